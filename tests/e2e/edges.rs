//! The client edges on moto: the JWT check of the local gateway (the stand-in for API
//! Gateway's authorizer, with the demo's own issuer), the upload API behind it (refusals,
//! a caller's own records only, newest first and paginated), CORS, and a photo posted
//! with the presigned form going through the whole pipeline to variants served by the site.
//!
//! moto accepts any presigned POST, so nothing here proves that S3 enforces the policy:
//! `upload_policy` does that against s3s-fs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::edge::{self, CLIENT_ID, Edge, add_owner_index, form_fields, post_form};
use crate::support::fixture::{Fixture, s};
use crate::support::photo;
use crate::support::pipeline::{PREFIX, Pipeline};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn the_authorizer_refuses_missing_expired_tampered_and_foreign_tokens() {
    let fx = Fixture::new("edge-jwt");
    add_owner_index(&fx);
    let edge = Edge::start(&fx, &[]);
    let body = || Some(json!({"name": "a.jpg", "content_type": "image/jpeg", "size": 10}));
    let good = edge.token("alice");
    assert_eq!(
        edge.call("POST", "/uploads", Some(&good), body()).0,
        201,
        "a valid token is accepted"
    );

    let claims = edge.issuer.access_claims("alice", SystemTime::now());
    let with = |changes: Value| {
        let mut c = claims.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    // Tampered: the payload of a valid token changed to another user, signature kept.
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("someone-else");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(payload.to_string()),
        parts[2]
    );
    // Foreign: another key, with its own key id or claiming the issuer's.
    let foreign = edge::issuer("foreign", &edge.issuer_url);
    // alg none, and HS256 keyed with public material (the classic confusion).
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    );
    let hs256 = {
        let header =
            b64.encode(json!({"alg": "HS256", "typ": "JWT", "kid": edge.issuer.kid()}).to_string());
        let body = b64.encode(claims.to_string());
        let jwks = edge.issuer.jwks().to_string();
        let key = jsonwebtoken::EncodingKey::from_secret(jwks.as_bytes());
        let signed = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &key,
        )
        .unwrap();
        format!("{header}.{body}.{}", signed.rsplit('.').next().unwrap())
    };
    let refused: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("not a JWT", Some("hello".into())),
        (
            "expired",
            Some(
                edge.issuer
                    .sign(&with(json!({"iat": now() - 7200, "exp": now() - 3600}))),
            ),
        ),
        (
            "not yet valid",
            Some(edge.issuer.sign(&with(json!({"nbf": now() + 3600})))),
        ),
        (
            "issued in the future",
            Some(edge.issuer.sign(&with(json!({"iat": now() + 3600})))),
        ),
        (
            "no exp",
            Some(edge.issuer.sign(&with(json!({"exp": null})))),
        ),
        ("tampered", Some(tampered)),
        ("foreign key", Some(foreign.sign(&claims))),
        (
            "foreign key, our kid",
            Some(foreign.sign_with_kid(&claims, edge.issuer.kid())),
        ),
        (
            "another issuer",
            Some(
                edge.issuer
                    .sign(&with(json!({"iss": "https://elsewhere.example"}))),
            ),
        ),
        (
            "another client",
            Some(edge.issuer.sign(&with(json!({"client_id": "other-app"})))),
        ),
        (
            "aud of another client wins over client_id",
            Some(edge.issuer.sign(&with(json!({"aud": "other-app"})))),
        ),
        ("alg none", Some(none)),
        ("HS256", Some(hs256)),
    ];
    for (what, token) in refused {
        let (status, answer) = edge.call("POST", "/uploads", token.as_deref(), body());
        assert_eq!(
            (status, answer.clone()),
            (401, json!({"message": "Unauthorized"})),
            "{what}: {answer}"
        );
    }
    // An ID token (aud = the client) is accepted, as API Gateway accepts it.
    let id_token = edge.issuer.sign(&with(
        json!({"aud": CLIENT_ID, "client_id": null, "token_use": "id"}),
    ));
    assert_eq!(
        edge.call("POST", "/uploads", Some(&id_token), body()).0,
        201
    );
    // Unknown routes are the gateway's 404, token or not.
    assert_eq!(edge.call("DELETE", "/images/x", Some(&good), None).0, 404);
}

#[test]
fn refusals_come_before_any_upload_with_the_daemons_codes() {
    let fx = Fixture::new("edge-refuse");
    add_owner_index(&fx);
    let edge = Edge::start(&fx, &[("MAX_SOURCE_BYTES", "1000")]);
    let cases = [
        ("big.jpg", "image/jpeg", 1001, 413, "source-too-large"),
        ("empty.png", "image/png", 0, 400, "empty-source"),
        (
            "notes.pdf",
            "application/pdf",
            10,
            415,
            "unsupported-format",
        ),
        ("page.html", "text/html", 10, 415, "unsupported-format"),
        ("IMG_0001.AVIF", "image/avif", 10, 415, "unsupported-format"),
    ];
    for (name, content_type, size, status, code) in cases {
        let (got, answer) = edge.presign("alice", name, content_type, size);
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{name}: {answer}"
        );
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, answer) = edge.call(
        "POST",
        "/uploads",
        Some(&edge.token("alice")),
        Some(json!({"name": "a.jpg"})),
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("bad-request")),
        "{answer}"
    );
    // Nothing was written for any of them.
    assert!(fx.records().is_empty(), "{:?}", fx.records());
    let (status, _) = edge.presign("alice", "ok.jpg", "image/jpeg", 1000);
    assert_eq!(status, 201);
}

#[test]
fn callers_see_only_their_own_records_newest_first_in_pages() {
    let fx = Fixture::new("edge-own");
    add_owner_index(&fx);
    let edge = Edge::start(&fx, &[]);
    let mut alice = Vec::new();
    for name in ["one.jpg", "two.png", "three.webp"] {
        let (status, answer) = edge.presign(
            "alice",
            name,
            if name.ends_with("png") {
                "image/png"
            } else if name.ends_with("webp") {
                "image/webp"
            } else {
                "image/jpeg"
            },
            100,
        );
        assert_eq!(status, 201, "{answer}");
        alice.push(answer["key"].as_str().unwrap().to_owned());
        std::thread::sleep(Duration::from_millis(5));
    }
    let (_, bob_upload) = edge.presign("bob", "bob.jpg", "image/jpeg", 100);
    let bob_key = bob_upload["key"].as_str().unwrap().to_owned();

    // The key is in the caller's folder, has the type's extension, and a stub says who.
    let alice_folder = local_edge::Issuer::subject("alice");
    assert!(
        alice[0].starts_with(&format!("{PREFIX}{alice_folder}/")) && alice[0].ends_with("-one.jpg"),
        "{}",
        alice[0]
    );
    assert!(alice[1].ends_with("-two.png") && alice[2].ends_with("-three.webp"));
    let stub = fx.record(&alice[0]).expect("a stub");
    assert_eq!(s(&stub, "Status"), "UPLOADING");
    assert_eq!(s(&stub, "Owner"), alice_folder);
    assert_eq!(s(&stub, "OriginalName"), "one.jpg");
    assert_eq!(s(&stub, "ContentType"), "image/jpeg");
    assert!(s(&stub, "UploadedAt").ends_with('Z'));
    let expires: u64 = stub["ExpiresAt"].as_n().unwrap().parse().unwrap();
    assert!(
        expires > now() + 13 * 86_400,
        "ExpiresAt {expires} is not about 14 days after the window"
    );

    let alice_token = edge.token("alice");
    let bob_token = edge.token("bob");
    let (status, mine) = edge.call(
        "GET",
        &format!("/images/{}", alice[0]),
        Some(&alice_token),
        None,
    );
    assert_eq!(
        (status, mine["status"].as_str(), mine["name"].as_str()),
        (200, Some("UPLOADING"), Some("one.jpg")),
        "{mine}"
    );
    // Another caller's key, or one that does not exist: the same 404.
    for (key, token) in [
        (&alice[0], &bob_token),
        (&bob_key, &alice_token),
        (&format!("{PREFIX}{alice_folder}/nope.jpg"), &alice_token),
    ] {
        let (status, answer) = edge.call("GET", &format!("/images/{key}"), Some(token), None);
        assert_eq!(
            (status, answer["code"].as_str()),
            (404, Some("not-found")),
            "{key}: {answer}"
        );
    }

    // Pages of two, newest first, through the index.
    let (status, page) = edge.call("GET", "/images?limit=2", Some(&alice_token), None);
    assert_eq!(status, 200, "{page}");
    let keys = |page: &Value| {
        page["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&page), vec![alice[2].clone(), alice[1].clone()]);
    let cursor = page["next_cursor"].as_str().expect("a cursor").to_owned();
    let (_, next) = edge.call(
        "GET",
        &format!("/images?limit=2&cursor={cursor}"),
        Some(&alice_token),
        None,
    );
    assert_eq!(keys(&next), vec![alice[0].clone()]);
    assert!(next["next_cursor"].is_null(), "{next}");
    let (_, bobs) = edge.call("GET", "/images", Some(&bob_token), None);
    assert_eq!(keys(&bobs), vec![bob_key]);
    // Alice's cursor is not Bob's to use; a made-up one is refused.
    let (status, answer) = edge.call(
        "GET",
        &format!("/images?cursor={cursor}"),
        Some(&bob_token),
        None,
    );
    assert_eq!((status, answer["code"].as_str()), (400, Some("bad-cursor")));
    assert_eq!(
        edge.call("GET", "/images?limit=1000", Some(&bob_token), None)
            .0,
        400
    );
}

#[test]
fn cors_admits_the_web_origin_only() {
    let fx = Fixture::new("edge-cors");
    add_owner_index(&fx);
    let edge = Edge::start(&fx, &[]);
    let origin = edge.web_url.trim_end_matches('/').to_owned();
    edge.block_on(async {
        let preflight = |origin: String| {
            edge.http
                .request(
                    reqwest::Method::OPTIONS,
                    format!("{}/uploads", edge.api_url),
                )
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type",
                )
                .send()
        };
        let ok = preflight(origin.clone()).await.unwrap();
        assert_eq!(ok.status(), 204);
        assert_eq!(ok.headers()["access-control-allow-origin"], origin.as_str());
        assert!(
            ok.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("authorization")
        );
        let other = preflight("https://evil.example".into()).await.unwrap();
        assert!(other.headers().get("access-control-allow-origin").is_none());
    });
    // The site serves the page and a config.js naming this API and issuer.
    let (page, config) = edge.block_on(async {
        let get = |p: &str| edge.http.get(format!("{}{p}", edge.web_url)).send();
        (
            get("").await.unwrap().text().await.unwrap(),
            get("config.js").await.unwrap().text().await.unwrap(),
        )
    });
    assert!(page.contains("<script src=\"app.js\""), "{page}");
    assert!(
        config.contains(&edge.api_url) && config.contains(&edge.issuer_url),
        "{config}"
    );
}

#[test]
fn a_photo_posted_with_the_presigned_form_goes_through_the_pipeline() {
    let pipeline = Pipeline::start("edge-journey");
    add_owner_index(&pipeline.fx);
    let edge = Edge::start(&pipeline.fx, &[]);
    let jpeg = photo(800, 600);
    let (status, answer) = edge.presign("carol", "Harbour at dawn.jpg", "image/jpeg", jpeg.len());
    assert_eq!(status, 201, "{answer}");
    let key = answer["key"].as_str().unwrap().to_owned();
    let upload = &answer["upload"];
    assert!(
        upload["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{}/", pipeline.fx.source_bucket))
    );
    assert_eq!(
        upload["fields"]["x-amz-security-token"],
        "e2e-session-token"
    );
    let (status, body) = edge.block_on(post_form(
        &edge.http,
        upload["url"].as_str().unwrap(),
        &form_fields(upload),
        &jpeg,
        "image/jpeg",
    ));
    assert!((200..300).contains(&status), "POST to S3: {status} {body}");

    // The event path takes it from there; the daemon keeps the stub's attributes.
    let record = pipeline
        .fx
        .wait_status(&key, "DONE", Duration::from_secs(60));
    assert_eq!(s(&record, "Owner"), local_edge::Issuer::subject("carol"));
    assert_eq!(s(&record, "OriginalName"), "Harbour at dawn.jpg");
    let token = edge.token("carol");
    let (status, image) = edge.call("GET", &format!("/images/{key}"), Some(&token), None);
    assert_eq!(
        (status, image["status"].as_str()),
        (200, Some("DONE")),
        "{image}"
    );
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(800), Some(600))
    );
    assert_eq!(image["camera"]["make"], "TestCam");
    assert_eq!(image["has_gps"], true);
    assert!(
        !image.to_string().contains("48.85"),
        "coordinates leaked: {image}"
    );
    let variants = image["variants"].as_array().unwrap();
    assert!(!variants.is_empty(), "{image}");
    // Every variant URL is the site's (the local distribution) and serves the variant.
    for variant in variants {
        let url = variant["url"].as_str().unwrap();
        assert!(url.starts_with(&edge.web_url), "{url}");
        let (status, content_type, bytes) = edge.block_on(async {
            let r = edge.http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, ct, r.bytes().await.unwrap())
        });
        let expected = format!("image/{}", variant["format"].as_str().unwrap());
        assert_eq!(
            (status, content_type.as_deref()),
            (200, Some(expected.as_str())),
            "{url}"
        );
        assert!(
            bytes.len() as u64 == variant["bytes"].as_u64().unwrap(),
            "{url}: {} bytes",
            bytes.len()
        );
    }
    let (_, list) = edge.call("GET", "/images", Some(&token), None);
    assert_eq!(list["images"][0]["key"], key.as_str());
    assert_eq!(list["images"][0]["status"], "DONE");
}
