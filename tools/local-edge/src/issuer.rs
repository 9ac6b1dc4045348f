//! A local OpenID Connect issuer, so that the JWT check of the local gateway is real: its
//! own RSA key (RS256, as Cognito signs), its JWKS, discovery, and the authorization code
//! flow with PKCE that the web page uses against Cognito's hosted UI: `/oauth2/authorize`
//! shows a sign-in form, `/oauth2/token` exchanges the code for tokens shaped like
//! Cognito's (an access token with `client_id`, an ID token with `aud`).
//!
//! Local sign-in only: any user name signs in, without a password (the demo has no user
//! store). What it deliberately keeps strict is what a client can get wrong: the client id,
//! the redirect URI, the PKCE verifier, single-use codes that expire in a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{HttpResponse, http::header, web};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Reads an RSA private key: PKCS#1, as PEM (`BEGIN RSA PRIVATE KEY`, what
/// `openssl genrsa -traditional` writes) or DER.
pub fn read_pkcs1_key(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(bytes.to_vec());
    };
    if text.contains("BEGIN PRIVATE KEY") {
        return Err("a PKCS#8 key: give a PKCS#1 one (openssl genrsa -traditional 2048)".into());
    }
    let Some(start) = text.find("-----BEGIN RSA PRIVATE KEY-----") else {
        return Ok(bytes.to_vec());
    };
    let body: String = text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| format!("bad PEM: {e}"))
}

/// A sign-in waiting for its code to be exchanged.
#[derive(Debug)]
struct Pending {
    username: String,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    expires: Instant,
}

/// The issuer: its URL (the `iss` of its tokens), the one client it serves, its key.
pub struct Issuer {
    pub url: String,
    pub client_id: String,
    /// Redirect URIs must start with one of these (the web page's origin).
    pub redirect_prefixes: Vec<String>,
    pub token_lifetime: Duration,
    kid: String,
    key: EncodingKey,
    jwk: Value,
    codes: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer signing with `pkcs1_der`; the key id is derived from the public key.
    pub fn new(url: &str, client_id: &str, pkcs1_der: &[u8]) -> Result<Issuer, String> {
        let pair = ring::signature::RsaKeyPair::from_der(pkcs1_der)
            .map_err(|e| format!("not an RSA private key (PKCS#1 DER): {e}"))?;
        let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
        let kid = B64URL.encode(&Sha256::digest(&public.n)[..12]);
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": B64URL.encode(&public.n), "e": B64URL.encode(&public.e),
        });
        Ok(Issuer {
            url: url.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            redirect_prefixes: Vec::new(),
            token_lifetime: Duration::from_secs(3600),
            kid,
            key: EncodingKey::from_rsa_der(pkcs1_der),
            jwk,
            codes: Mutex::new(HashMap::new()),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `{"keys": [...]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// Signs any claims (RS256, this key's `kid`): tests make expired or odd tokens this way.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_kid(claims, &self.kid)
    }

    /// Signs with this key but names another key id in the header.
    pub fn sign_with_kid(&self, claims: &Value, kid: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).expect("RS256 signing cannot fail")
    }

    /// The `sub` of a local user: stable for a name, shaped like Cognito's (a UUID).
    pub fn subject(username: &str) -> String {
        let h = hex::encode(&Sha256::digest(format!("local-user:{username}").as_bytes())[..16]);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    /// An access token for `username` as Cognito issues them (`client_id`, no `aud`),
    /// valid from `now` for the token lifetime.
    pub fn access_token(&self, username: &str, now: SystemTime) -> String {
        self.sign(&self.access_claims(username, now))
    }

    pub fn access_claims(&self, username: &str, now: SystemTime) -> Value {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        json!({
            "sub": Self::subject(username), "iss": self.url, "client_id": self.client_id,
            "token_use": "access", "scope": "openid", "username": username,
            "iat": iat, "auth_time": iat, "exp": iat + self.token_lifetime.as_secs(),
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    fn id_token(&self, username: &str, now: SystemTime) -> String {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.sign(&json!({
            "sub": Self::subject(username), "iss": self.url, "aud": self.client_id,
            "token_use": "id", "cognito:username": username, "name": username,
            "iat": iat, "auth_time": iat, "exp": iat + self.token_lifetime.as_secs(),
        }))
    }

    fn discovery(&self) -> Value {
        json!({
            "issuer": self.url,
            "authorization_endpoint": format!("{}/oauth2/authorize", self.url),
            "token_endpoint": format!("{}/oauth2/token", self.url),
            "jwks_uri": format!("{}/.well-known/jwks.json", self.url),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid"],
        })
    }

    fn redirect_allowed(&self, uri: &str) -> bool {
        self.redirect_prefixes
            .iter()
            .any(|p| uri.starts_with(p.as_str()))
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "error": error, "error_description": description }))
}

type Form = web::Form<HashMap<String, String>>;
type Query = web::Query<HashMap<String, String>>;

async fn discovery(issuer: web::Data<Issuer>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(issuer.discovery())
}

async fn jwks(issuer: web::Data<Issuer>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(issuer.jwks())
}

/// Checks an authorization request; `Err` says why it is refused.
fn check_authorize(issuer: &Issuer, q: &HashMap<String, String>) -> Result<(), &'static str> {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let refuse = Err;
    if get("response_type") != "code" {
        return refuse("response_type must be code");
    }
    if get("client_id") != issuer.client_id {
        return refuse("unknown client_id");
    }
    if !issuer.redirect_allowed(get("redirect_uri")) {
        return refuse("redirect_uri is not registered for this client");
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").len() < 43 {
        return refuse("PKCE is required: code_challenge (S256)");
    }
    Ok(())
}

/// The page an authorization request that is refused gets.
fn refused(why: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain")
        .body(why.to_owned())
}

/// The sign-in form.
async fn authorize_form(issuer: web::Data<Issuer>, q: Query) -> HttpResponse {
    if let Err(why) = check_authorize(&issuer, &q) {
        return refused(why);
    }
    let hidden: String = [
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
        "scope",
    ]
    .iter()
    .filter_map(|k| q.get(*k).map(|v| (k, v)))
    .map(|(k, v)| {
        format!(
            r#"<input type="hidden" name="{k}" value="{}">"#,
            html_escape(v)
        )
    })
    .collect();
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:15px system-ui,sans-serif;background:#f3f4f6;display:grid;place-items:center;min-height:100vh;margin:0}}
form{{background:#fff;padding:2em;border-radius:10px;box-shadow:0 2px 12px #0002;min-width:18em}}
label{{display:block;margin:.8em 0 .3em;color:#444}}input[type=text]{{width:100%;padding:.5em;font:inherit;box-sizing:border-box}}
button{{margin-top:1.2em;padding:.6em 1.4em;font:inherit;background:#2563eb;color:#fff;border:0;border-radius:6px}}
p{{color:#666;font-size:13px;max-width:22em}}</style></head><body>
<form method="post" action="/oauth2/authorize"><h1>Sign in</h1>
<p>Local issuer of the demo (stands in for Cognito's hosted UI): any user name signs in; each name is its own user.</p>
<label for="username">User name</label><input type="text" id="username" name="username" required autofocus autocomplete="username">
{hidden}<button type="submit" id="sign-in">Sign in</button></form></body></html>"#
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

/// The form's answer: a code, back to the redirect URI.
async fn authorize_submit(issuer: web::Data<Issuer>, form: Form) -> HttpResponse {
    if let Err(why) = check_authorize(&issuer, &form) {
        return refused(why);
    }
    let username = form.get("username").map(|u| u.trim()).unwrap_or_default();
    if username.is_empty() || username.len() > 128 {
        return HttpResponse::BadRequest()
            .content_type("text/plain")
            .body("a user name is required");
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    let redirect_uri = form["redirect_uri"].clone();
    let mut codes = issuer.codes.lock().expect("codes lock");
    codes.retain(|_, p| p.expires > Instant::now());
    codes.insert(
        code.clone(),
        Pending {
            username: username.to_owned(),
            client_id: form["client_id"].clone(),
            redirect_uri: redirect_uri.clone(),
            challenge: form["code_challenge"].clone(),
            expires: Instant::now() + Duration::from_secs(60),
        },
    );
    let mut location = format!(
        "{redirect_uri}{}code={code}",
        if redirect_uri.contains('?') { '&' } else { '?' }
    );
    if let Some(state) = form.get("state") {
        location.push_str("&state=");
        location.push_str(
            &percent_encoding::utf8_percent_encode(state, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// `grant_type=authorization_code`: the code, once, with the PKCE verifier.
async fn token(issuer: web::Data<Issuer>, form: Form) -> HttpResponse {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return oauth_error(400, "unsupported_grant_type", "only authorization_code");
    }
    let Some(pending) = issuer.codes.lock().expect("codes lock").remove(get("code")) else {
        return oauth_error(400, "invalid_grant", "unknown or used code");
    };
    if pending.expires < Instant::now() {
        return oauth_error(400, "invalid_grant", "the code expired");
    }
    if get("client_id") != pending.client_id || get("redirect_uri") != pending.redirect_uri {
        return oauth_error(
            400,
            "invalid_grant",
            "client_id or redirect_uri differ from the authorization",
        );
    }
    if B64URL.encode(Sha256::digest(get("code_verifier").as_bytes())) != pending.challenge {
        return oauth_error(
            400,
            "invalid_grant",
            "the code_verifier does not match the code_challenge",
        );
    }
    let now = SystemTime::now();
    HttpResponse::Ok()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "access_token": issuer.access_token(&pending.username, now),
            "id_token": issuer.id_token(&pending.username, now),
            "token_type": "Bearer",
            "expires_in": issuer.token_lifetime.as_secs(),
        }))
}

/// The issuer's routes (the app must hold a `web::Data<Issuer>`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(discovery),
    )
    .route("/.well-known/jwks.json", web::get().to(jwks))
    .route("/oauth2/authorize", web::get().to(authorize_form))
    .route("/oauth2/authorize", web::post().to(authorize_submit))
    .route("/oauth2/token", web::post().to(token));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_stable_uuids_per_name() {
        let a = Issuer::subject("alice");
        assert_eq!(a, Issuer::subject("alice"));
        assert_ne!(a, Issuer::subject("bob"));
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }

    #[test]
    fn pem_keys_are_read_and_pkcs8_is_refused_with_a_hint() {
        assert!(
            read_pkcs1_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .unwrap_err()
                .contains("genrsa -traditional")
        );
        assert_eq!(
            read_pkcs1_key(
                b"-----BEGIN RSA PRIVATE KEY-----\nAQID\n-----END RSA PRIVATE KEY-----\n"
            )
            .unwrap(),
            vec![1, 2, 3]
        );
    }
}
