//! A local HTTP API gateway: what API Gateway does in front of the upload API, on loopback,
//! around the real handler (`upload_api::Api`, called in this process as Lambda would call
//! it, with the same payload format 2.0 JSON).
//!
//! - Routes `POST /uploads`, `GET /images`, `GET /images/{key+}`; anything else is 404
//!   `{"message":"Not Found"}` without invoking the function.
//! - The JWT authorizer, checked as the API Gateway documentation describes it: the token
//!   from `Authorization` (with or without `Bearer `); an RSA algorithm only; a `kid`
//!   found in the issuer's JWKS (fetched from its discovery document over HTTP, again when
//!   an unknown `kid` shows up); the signature; `iss` equal to the issuer; `aud` one of the
//!   audiences, or, only when there is no `aud`, `client_id`; `exp` after now; `nbf` and
//!   `iat` not after now. Any failure is 401 `{"message":"Unauthorized"}`. The verified
//!   claims go to the function in `requestContext.authorizer.jwt.claims`, as strings.
//! - CORS as the stack's `CorsConfiguration` says: preflights answered without a token,
//!   allowed origins echoed.
//!
//! Not here: throttling, custom domains, stages other than `$default`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};
use upload_api::{Api, ApiRequest};

/// Why a token was refused (logged; the caller only sees `Unauthorized`).
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("no token")]
    Missing,
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not an RSA algorithm")]
    Algorithm(Algorithm),
    #[error("no kid in the header")]
    NoKid,
    #[error("kid {0:?} is not in the issuer's JWKS")]
    UnknownKid(String),
    #[error("the issuer's JWKS could not be read: {0}")]
    Jwks(String),
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("neither aud nor client_id is one of the audiences")]
    Audience,
    #[error("issued in the future")]
    IssuedLater,
}

/// The JWT authorizer of one issuer.
pub struct Authorizer {
    issuer: String,
    audiences: Vec<String>,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<Keys>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
}

/// How often an unknown `kid` may trigger a new fetch of the JWKS.
const REFETCH_AFTER: Duration = Duration::from_secs(5);
/// Keys are kept this long (API Gateway caches them for up to two hours).
const KEYS_TTL: Duration = Duration::from_secs(2 * 3600);

impl Authorizer {
    pub fn new(issuer: &str, audiences: Vec<String>) -> Authorizer {
        Authorizer {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audiences,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
            keys: tokio::sync::Mutex::new(Keys::default()),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, Denied> {
        let get = |url: String| async move {
            let response = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| Denied::Jwks(format!("{url}: {e}")))?;
            if !response.status().is_success() {
                return Err(Denied::Jwks(format!("{url}: HTTP {}", response.status())));
            }
            let text = response
                .text()
                .await
                .map_err(|e| Denied::Jwks(e.to_string()))?;
            serde_json::from_str::<Value>(&text).map_err(|e| Denied::Jwks(format!("{url}: {e}")))
        };
        let discovery = get(format!("{}/.well-known/openid-configuration", self.issuer)).await?;
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .ok_or_else(|| Denied::Jwks("no jwks_uri in the discovery document".into()))?
            .to_owned();
        let jwks = get(jwks_uri).await?;
        let mut keys = HashMap::new();
        for key in jwks["keys"].as_array().into_iter().flatten() {
            if let (Some("RSA"), Some(kid), Some(n), Some(e)) = (
                key["kty"].as_str(),
                key["kid"].as_str(),
                key["n"].as_str(),
                key["e"].as_str(),
            ) && let Ok(decoding) = DecodingKey::from_rsa_components(n, e)
            {
                keys.insert(kid.to_owned(), decoding);
            }
        }
        Ok(keys)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, Denied> {
        let mut keys = self.keys.lock().await;
        let stale = keys.fetched.is_none_or(|t| t.elapsed() > KEYS_TTL);
        let may_refetch = keys.fetched.is_none_or(|t| t.elapsed() > REFETCH_AFTER);
        if stale || (!keys.by_kid.contains_key(kid) && may_refetch) {
            keys.by_kid = self.fetch().await?;
            keys.fetched = Some(Instant::now());
        }
        keys.by_kid
            .get(kid)
            .cloned()
            .ok_or_else(|| Denied::UnknownKid(kid.to_owned()))
    }

    /// The verified claims of the token in an `Authorization` header value.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Map<String, Value>, Denied> {
        let value = authorization
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(Denied::Missing)?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => value,
        };
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| Denied::Malformed(e.to_string()))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
        ) {
            return Err(Denied::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(Denied::NoKid)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| Denied::Invalid(e.to_string()))?
            .claims;
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => self.audiences.contains(aud),
            Some(Value::Array(auds)) => auds.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| self.audiences.iter().any(|x| x == a))
            }),
            Some(_) => false,
            None => claims
                .get("client_id")
                .and_then(Value::as_str)
                .is_some_and(|c| self.audiences.iter().any(|x| x == c)),
        };
        if !audience_ok {
            return Err(Denied::Audience);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if claims
            .get("iat")
            .and_then(Value::as_u64)
            .is_some_and(|iat| iat > now)
        {
            return Err(Denied::IssuedLater);
        }
        Ok(claims)
    }
}

/// The gateway's state: the authorizer, the function, the CORS origins.
#[derive(Debug)]
pub struct Gateway {
    pub authorizer: Authorizer,
    pub api: Api,
    pub allowed_origins: Vec<String>,
    requests: Mutex<u64>,
}

impl Gateway {
    pub fn new(authorizer: Authorizer, api: Api, allowed_origins: Vec<String>) -> Gateway {
        Gateway {
            authorizer,
            api,
            allowed_origins,
            requests: Mutex::new(0),
        }
    }

    fn allowed_origin(&self, request: &HttpRequest) -> Option<String> {
        let origin = request.headers().get(header::ORIGIN)?.to_str().ok()?;
        self.allowed_origins
            .iter()
            .any(|o| o == origin || o == "*")
            .then(|| origin.to_owned())
    }
}

/// The route key a request matches, API Gateway style.
fn route_key(method: &Method, path: &str) -> Option<&'static str> {
    match (method.as_str(), path) {
        ("POST", "/uploads") => Some("POST /uploads"),
        ("GET", "/images") => Some("GET /images"),
        ("GET", p) if p.len() > "/images/".len() && p.starts_with("/images/") => {
            Some("GET /images/{key+}")
        }
        _ => None,
    }
}

fn message(status: StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "message": text }))
}

/// Every request of the API.
pub async fn handle(
    gateway: web::Data<Gateway>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let origin = gateway.allowed_origin(&request);
    let mut response = answer(&gateway, &request, body).await;
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            origin.parse().expect("an origin header"),
        );
        headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    response
}

async fn answer(gateway: &Gateway, request: &HttpRequest, body: web::Bytes) -> HttpResponse {
    let path = request.path().to_owned();
    if request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        if gateway.allowed_origin(request).is_none() {
            return HttpResponse::NoContent().finish();
        }
        return HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET,POST,OPTIONS"))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization,content-type",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "3600"))
            .finish();
    }
    let Some(route) = route_key(request.method(), &path) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = match gateway.authorizer.verify(authorization).await {
        Ok(claims) => claims,
        Err(denied) => {
            tracing::info!(%denied, route, "token refused");
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(json!({ "message": "Unauthorized" }));
        }
    };
    let event = event(gateway, request, route, claims, &body);
    let event: ApiRequest = match serde_json::from_value(event) {
        Ok(event) => event,
        Err(error) => {
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("bad event: {error}"),
            );
        }
    };
    let answer = gateway.api.handle(event).await;
    let status = StatusCode::from_u16(answer.status_code).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for (name, value) in &answer.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    let body = if answer.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(answer.body.as_bytes())
            .unwrap_or_default()
    } else {
        answer.body.into_bytes()
    };
    response.body(body)
}

/// The payload format 2.0 event of `request`, as API Gateway builds it.
fn event(
    gateway: &Gateway,
    request: &HttpRequest,
    route: &str,
    claims: Map<String, Value>,
    body: &[u8],
) -> Value {
    let mut headers: Map<String, Value> = Map::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let query: Map<String, Value> = url_query(request.query_string());
    let path = request.path();
    let mut path_parameters = Map::new();
    if route == "GET /images/{key+}" {
        let raw = &path["/images/".len()..];
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        path_parameters.insert("key".into(), Value::String(decoded));
    }
    // API Gateway passes every claim as a string.
    let claims: Map<String, Value> = claims
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Array(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|i| i
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            (k, Value::String(text))
        })
        .collect();
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let number = {
        let mut n = gateway.requests.lock().expect("counter lock");
        *n += 1;
        *n
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": request.query_string(),
        "headers": headers,
        "queryStringParameters": query,
        "pathParameters": path_parameters,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": request.connection_info().host(),
            "http": {
                "method": request.method().as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
                "userAgent": request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default(),
            },
            "requestId": format!("local-{number}"),
            "routeKey": route,
            "stage": "$default",
            "timeEpoch": now.as_millis() as u64,
            "authorizer": { "jwt": { "claims": claims, "scopes": Value::Null } },
        },
        "body": body,
        "isBase64Encoded": base64,
    })
}

fn url_query(query: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let (k, v) = (decode(k), decode(v));
        match map.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                map.insert(k, Value::String(v));
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_stacks() {
        assert_eq!(route_key(&Method::POST, "/uploads"), Some("POST /uploads"));
        assert_eq!(route_key(&Method::GET, "/images"), Some("GET /images"));
        assert_eq!(
            route_key(&Method::GET, "/images/uploads/u/a.jpg"),
            Some("GET /images/{key+}")
        );
        assert_eq!(route_key(&Method::GET, "/images/"), None);
        assert_eq!(route_key(&Method::DELETE, "/images/x"), None);
        assert_eq!(route_key(&Method::GET, "/uploads"), None);
    }

    #[test]
    fn queries_decode_like_api_gateway() {
        let q = url_query("limit=5&cursor=a%2Bb&x=1&x=2");
        assert_eq!(q["limit"], "5");
        assert_eq!(q["cursor"], "a+b");
        assert_eq!(q["x"], "1,2");
    }
}
