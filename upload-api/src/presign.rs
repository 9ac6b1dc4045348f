//! The presigned POST: a policy that S3 enforces (exact key, content type, size range,
//! expiry) and its AWS Signature Version 4, built by hand because the Rust SDK has no
//! presigned POST.
//!
//! Pure: no I/O, no clock (the caller passes the time), no credentials lookup (the caller
//! passes them). The signature is HMAC-SHA256 of the base64 policy with the SigV4 signing
//! key (`AWS4` + secret, then the date, the region, `s3` and `aws4_request`), hex-encoded;
//! see "Example: Browser-based upload using HTTP POST (using AWS signature version 4)" in
//! the S3 API reference, whose inputs and signature the tests reproduce.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The only algorithm S3 accepts for SigV4 POST policies.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What signs the policy: the caller's (in Lambda, the function role's) credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Present with temporary credentials (always in Lambda); it becomes the
    /// `x-amz-security-token` field, which the policy must name too.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What one upload may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload<'a> {
    pub bucket: &'a str,
    /// The exact key the object will have (the form may not choose another).
    pub key: &'a str,
    /// The `Content-Type` form field; the policy admits any value starting with
    /// [`Upload::content_type_prefix`].
    pub content_type: &'a str,
    pub content_type_prefix: &'a str,
    /// Largest body in bytes (the smallest is 1: an empty upload is refused).
    pub max_bytes: u64,
    pub region: &'a str,
    /// When the policy is signed (`x-amz-date`, and the date of the signing key).
    pub signed_at: SystemTime,
    /// When S3 stops accepting it.
    pub expires_at: SystemTime,
}

/// A form ready for a browser: POST to `url` with `fields` (any order), then the file last.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PresignedPost {
    pub url: String,
    pub fields: BTreeMap<String, String>,
}

/// `20151229T000000Z`: the SigV4 timestamp.
pub fn amz_date(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace(['-', ':'], "")
}

/// `2015-12-30T12:00:00.000Z`: the policy's expiration format.
pub fn policy_time(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The SigV4 signing key of `secret` for one day (`yyyymmdd`), region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let key = hmac(&key, region.as_bytes());
    let key = hmac(&key, service.as_bytes());
    hmac(&key, b"aws4_request")
}

/// The `x-amz-signature` of a base64 policy: the policy text itself is the string to sign.
pub fn sign_policy(secret: &str, date: &str, region: &str, policy_base64: &str) -> String {
    hex::encode(hmac(
        &signing_key(secret, date, region, "s3"),
        policy_base64.as_bytes(),
    ))
}

/// The policy document of `upload` (before base64), with every form field it admits.
pub fn policy(upload: &Upload<'_>, credentials: &Credentials) -> Value {
    let date = amz_date(upload.signed_at);
    let mut conditions = vec![
        json!({ "bucket": upload.bucket }),
        json!({ "key": upload.key }),
        json!(["starts-with", "$Content-Type", upload.content_type_prefix]),
        json!(["content-length-range", 1, upload.max_bytes]),
        json!({ "x-amz-algorithm": ALGORITHM }),
        json!({ "x-amz-credential": credential(upload, credentials) }),
        json!({ "x-amz-date": date }),
    ];
    if let Some(token) = &credentials.session_token {
        conditions.push(json!({ "x-amz-security-token": token }));
    }
    json!({ "expiration": policy_time(upload.expires_at), "conditions": conditions })
}

fn credential(upload: &Upload<'_>, credentials: &Credentials) -> String {
    let date = &amz_date(upload.signed_at)[..8];
    format!(
        "{}/{date}/{}/s3/aws4_request",
        credentials.access_key_id, upload.region
    )
}

/// Builds and signs the form for `upload` posted to `url`.
pub fn presign(url: &str, upload: &Upload<'_>, credentials: &Credentials) -> PresignedPost {
    let policy_base64 =
        base64::engine::general_purpose::STANDARD.encode(policy(upload, credentials).to_string());
    let date = amz_date(upload.signed_at);
    let signature = sign_policy(
        &credentials.secret_access_key,
        &date[..8],
        upload.region,
        &policy_base64,
    );
    let mut fields = BTreeMap::from([
        ("key".to_owned(), upload.key.to_owned()),
        ("Content-Type".to_owned(), upload.content_type.to_owned()),
        ("x-amz-algorithm".to_owned(), ALGORITHM.to_owned()),
        (
            "x-amz-credential".to_owned(),
            credential(upload, credentials),
        ),
        ("x-amz-date".to_owned(), date),
        ("policy".to_owned(), policy_base64),
        ("x-amz-signature".to_owned(), signature),
    ]);
    if let Some(token) = &credentials.session_token {
        fields.insert("x-amz-security-token".to_owned(), token.clone());
    }
    PresignedPost {
        url: url.to_owned(),
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// The inputs and the signature of the AWS example (S3 API reference, "Example:
    /// Browser-based upload using HTTP POST (using AWS signature version 4)"): its policy,
    /// base64-encoded with its CRLF line ends, signed on 20151229 in us-east-1.
    const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EXAMPLE_POLICY_BASE64: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
    const EXAMPLE_SIGNATURE: &str =
        "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";

    #[test]
    fn signs_the_aws_example_exactly() {
        assert_eq!(
            sign_policy(
                EXAMPLE_SECRET,
                "20151229",
                "us-east-1",
                EXAMPLE_POLICY_BASE64
            ),
            EXAMPLE_SIGNATURE
        );
        // The example's policy is what the page says it is (CRLF line ends included), so the
        // fixed input above is the documented one and not a copy that happens to match.
        let text = base64::engine::general_purpose::STANDARD
            .decode(EXAMPLE_POLICY_BASE64)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("{ \"expiration\": \"2015-12-30T12:00:00.000Z\",\r\n"));
        assert!(text.contains("{\"x-amz-date\": \"20151229T000000Z\" }"));
        // One changed byte of the policy, date, region or secret changes the signature.
        assert_ne!(
            sign_policy(
                EXAMPLE_SECRET,
                "20151230",
                "us-east-1",
                EXAMPLE_POLICY_BASE64
            ),
            EXAMPLE_SIGNATURE
        );
        assert_ne!(
            sign_policy(
                EXAMPLE_SECRET,
                "20151229",
                "us-east-2",
                EXAMPLE_POLICY_BASE64
            ),
            EXAMPLE_SIGNATURE
        );
    }

    /// 2015-12-29T00:00:00Z, the example's signing time.
    fn example_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_451_347_200)
    }

    fn upload(signed_at: SystemTime) -> Upload<'static> {
        Upload {
            bucket: "sigv4examplebucket",
            key: "uploads/user1/0123-photo.jpg",
            content_type: "image/jpeg",
            content_type_prefix: "image/",
            max_bytes: 209_715_200,
            region: "us-east-1",
            signed_at,
            expires_at: signed_at + Duration::from_secs(300),
        }
    }

    fn example_credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: EXAMPLE_SECRET.into(),
            session_token: token.map(str::to_owned),
        }
    }

    #[test]
    fn times_have_the_sigv4_and_policy_formats() {
        assert_eq!(amz_date(example_time()), "20151229T000000Z");
        assert_eq!(
            policy_time(example_time() + Duration::from_secs(129_600)),
            "2015-12-30T12:00:00.000Z"
        );
    }

    #[test]
    fn the_policy_pins_key_type_size_expiry_and_every_field() {
        let credentials = example_credentials(Some("session-token"));
        let form = presign(
            "https://sigv4examplebucket.s3.us-east-1.amazonaws.com/",
            &upload(example_time()),
            &credentials,
        );
        let policy: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(&form.fields["policy"])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            policy,
            json!({
                "expiration": "2015-12-29T00:05:00.000Z",
                "conditions": [
                    {"bucket": "sigv4examplebucket"},
                    {"key": "uploads/user1/0123-photo.jpg"},
                    ["starts-with", "$Content-Type", "image/"],
                    ["content-length-range", 1, 209_715_200],
                    {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                    {"x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"},
                    {"x-amz-date": "20151229T000000Z"},
                    {"x-amz-security-token": "session-token"},
                ]
            })
        );
        // Every field the form sends, except policy and signature, is named by a condition.
        for name in form.fields.keys() {
            if name == "policy" || name == "x-amz-signature" {
                continue;
            }
            let named = policy["conditions"].as_array().unwrap().iter().any(|c| {
                c.get(name).is_some()
                    || c.get(1).and_then(Value::as_str) == Some(&format!("${name}"))
            });
            assert!(named, "form field {name} is not in the policy");
        }
        assert_eq!(form.fields["x-amz-security-token"], "session-token");
        assert_eq!(
            form.fields["x-amz-signature"],
            sign_policy(
                EXAMPLE_SECRET,
                "20151229",
                "us-east-1",
                &form.fields["policy"]
            )
        );
    }

    #[test]
    fn long_term_credentials_send_no_token() {
        let form = presign(
            "https://b/",
            &upload(example_time()),
            &example_credentials(None),
        );
        assert!(!form.fields.contains_key("x-amz-security-token"));
        let policy = base64::engine::general_purpose::STANDARD
            .decode(&form.fields["policy"])
            .unwrap();
        assert!(
            !String::from_utf8(policy)
                .unwrap()
                .contains("x-amz-security-token")
        );
        assert!(!format!("{:?}", example_credentials(Some("t"))).contains(EXAMPLE_SECRET));
    }
}
