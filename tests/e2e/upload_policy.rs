//! The presigned POST against an S3 that enforces its policy (s3s-fs; moto accepts any
//! POST): the form the upload API answers stores the photo; the same form with a bigger
//! body, another content type, a key outside the caller's folder or a changed signature
//! is refused, and so is an expired policy; nothing refused is stored.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use serde_json::json;
use upload_api::presign::{self, Credentials, Upload};
use upload_api::{Api, ApiRequest, Config};

use crate::support::edge::{
    S3S_ACCESS_KEY, S3S_SECRET_KEY, S3s, add_owner_index, form_fields, post_form,
};
use crate::support::fixture::Fixture;

const BUCKET: &str = "photos";
const MAX: u64 = 4096;

fn request(sub: &str, body: &serde_json::Value) -> ApiRequest {
    serde_json::from_value(json!({
        "version": "2.0", "routeKey": "POST /uploads", "rawPath": "/uploads",
        "requestContext": {"requestId": "t", "http": {"method": "POST", "path": "/uploads"},
            "authorizer": {"jwt": {"claims": {"sub": sub}, "scopes": null}}},
        "body": body.to_string(), "isBase64Encoded": false
    }))
    .unwrap()
}

#[test]
fn s3_enforces_the_policy_of_the_apis_form() {
    let fx = Fixture::new("policy");
    add_owner_index(&fx);
    let s3s = S3s::start("policy");
    s3s.bucket(BUCKET);
    let config = Config::from_lookup(|name| {
        Some(match name {
            "TABLE" => fx.table.clone(),
            "SOURCE_BUCKET" => BUCKET.to_owned(),
            "AWS_REGION" => "us-east-1".to_owned(),
            "PUBLIC_BASE_URL" => "https://d111111abcdef8.cloudfront.net/".to_owned(),
            "UPLOAD_URL" => format!("{}/{BUCKET}/", s3s.endpoint),
            "MAX_SOURCE_BYTES" => MAX.to_string(),
            _ => return None,
        })
    })
    .unwrap();
    let signer = SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
        S3S_ACCESS_KEY,
        S3S_SECRET_KEY,
        Some("a-session-token".into()),
        None,
        "s3s",
    ));
    let api = Api::new(config, aws_sdk_dynamodb::Client::new(fx.sdk()), signer);
    let http = reqwest::Client::new();

    let answer = fx.block_on(api.handle(request(
        "user-1",
        &json!({"name": "a.jpg", "content_type": "image/jpeg", "size": 100}),
    )));
    assert_eq!(answer.status_code, 201, "{}", answer.body);
    let answer = answer.body_json();
    let key = answer["key"].as_str().unwrap().to_owned();
    let url = answer["upload"]["url"].as_str().unwrap().to_owned();
    let fields = form_fields(&answer["upload"]);
    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if k == name {
                        value.to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    };
    let photo = vec![0xAB; 100];

    let refused = [
        (
            "over the size range",
            fields.clone(),
            vec![0xAB; MAX as usize + 1],
            "image/jpeg",
            "EntityTooLarge",
        ),
        (
            "not an image type",
            with("Content-Type", "text/html"),
            photo.clone(),
            "text/html",
            "",
        ),
        (
            "key outside the caller's folder",
            with("key", "uploads/user-2/x-a.jpg"),
            photo.clone(),
            "image/jpeg",
            "",
        ),
        (
            "another key in the caller's folder",
            with("key", &key.replace("-a.jpg", "-b.jpg")),
            photo.clone(),
            "image/jpeg",
            "",
        ),
        (
            "a changed signature",
            with("x-amz-signature", &"0".repeat(64)),
            photo.clone(),
            "image/jpeg",
            "",
        ),
        (
            "an empty body",
            fields.clone(),
            Vec::new(),
            "image/jpeg",
            "",
        ),
    ];
    for (what, form, body, file_type, code) in refused {
        let (status, text) = fx.block_on(post_form(&http, &url, &form, &body, file_type));
        assert!(
            (400..500).contains(&status),
            "{what}: S3 answered {status} {text}"
        );
        assert!(text.contains(code), "{what}: expected {code}: {text}");
        assert!(
            s3s.object(BUCKET, "uploads/user-2/x-a.jpg").is_none()
                && s3s.object(BUCKET, &key).is_none(),
            "{what} was stored"
        );
    }
    let (status, text) = fx.block_on(post_form(&http, &url, &fields, &photo, "image/jpeg"));
    assert!(
        (200..300).contains(&status),
        "the right upload: {status} {text}"
    );
    assert_eq!(
        s3s.object(BUCKET, &key).as_deref(),
        Some(&photo[..]),
        "the photo is stored under its key"
    );
}

#[test]
fn s3_refuses_an_expired_policy() {
    let s3s = S3s::start("expired");
    s3s.bucket(BUCKET);
    let credentials = Credentials {
        access_key_id: S3S_ACCESS_KEY.into(),
        secret_access_key: S3S_SECRET_KEY.into(),
        session_token: None,
    };
    let form = |signed_at: SystemTime, expires_at: SystemTime| {
        presign::presign(
            &format!("{}/{BUCKET}/", s3s.endpoint),
            &Upload {
                bucket: BUCKET,
                key: "uploads/user-1/late.jpg",
                content_type: "image/jpeg",
                content_type_prefix: "image/",
                max_bytes: MAX,
                region: "us-east-1",
                signed_at,
                expires_at,
            },
            &credentials,
        )
    };
    let http = reqwest::Client::new();
    let now = SystemTime::now();
    let post = |form: presign::PresignedPost| {
        let fields: Vec<(String, String)> = form.fields.into_iter().collect();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(post_form(
                &http,
                &form.url,
                &fields,
                &[1, 2, 3],
                "image/jpeg",
            ))
    };
    let (status, text) = post(form(
        now - Duration::from_secs(600),
        now - Duration::from_secs(300),
    ));
    assert_eq!(status, 403, "an expired policy: {text}");
    assert!(s3s.object(BUCKET, "uploads/user-1/late.jpg").is_none());
    // The same form within its window is stored: the refusal was the expiry.
    let (status, text) = post(form(now, now + Duration::from_secs(300)));
    assert!((200..300).contains(&status), "{status} {text}");
    assert!(s3s.object(BUCKET, "uploads/user-1/late.jpg").is_some());
}
