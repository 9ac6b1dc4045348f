//! The HTTP edge: API Gateway HTTP API requests (payload format 2.0) in, responses out.
//!
//! Routes (each behind the JWT authorizer, which has already verified the token: the
//! caller is the `sub` claim API Gateway passes in `requestContext.authorizer.jwt.claims`):
//!
//! - `POST /uploads` `{name, content_type, size}` → 201 with the presigned POST and the key
//!   the photo will have (and a stub record), or the daemon's refusal code.
//! - `GET /images/{key}` → the caller's record; 404 for a key that is not the caller's.
//! - `GET /images?limit=&cursor=` → the caller's records, newest first, and the next cursor.
//!
//! Errors are `{code, message}` with a stable kebab-case code, mapped to a status in one
//! exhaustive match. CORS is API Gateway's job (the stack's `CorsConfiguration`), not this
//! function's.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Config;
use crate::presign::{self, Credentials, Upload};
use crate::records::{Cursor, RecordError, Records, STATUS_UPLOADING, Stub};
use crate::upload::{self, Refusal, UploadRequest};
use crate::view;

/// An HTTP API request (payload format 2.0), the fields this API reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiRequest {
    pub route_key: String,
    pub raw_path: String,
    pub raw_query_string: String,
    pub headers: HashMap<String, String>,
    pub query_string_parameters: HashMap<String, String>,
    pub path_parameters: HashMap<String, String>,
    pub request_context: RequestContext,
    pub body: Option<String>,
    pub is_base64_encoded: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestContext {
    pub request_id: String,
    pub http: Http,
    pub authorizer: Option<Authorizer>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Http {
    pub method: String,
    pub path: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Authorizer {
    pub jwt: Option<Jwt>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Jwt {
    pub claims: HashMap<String, Value>,
    pub scopes: Option<Vec<String>>,
}

/// The answer (payload format 2.0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResponse {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub is_base64_encoded: bool,
}

impl ApiResponse {
    fn json(status_code: u16, body: &Value) -> ApiResponse {
        ApiResponse {
            status_code,
            headers: BTreeMap::from([
                ("content-type".to_owned(), "application/json".to_owned()),
                ("cache-control".to_owned(), "no-store".to_owned()),
            ]),
            body: body.to_string(),
            is_base64_encoded: false,
        }
    }

    /// The body as JSON (tests and the local gateway read answers this way).
    pub fn body_json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no verified caller (the route has no JWT authorizer?)")]
    Unauthenticated,
    #[error("no route {0}")]
    NoSuchRoute(String),
    #[error("no such image")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("the cursor is not one this API gave you")]
    BadCursor,
    #[error(transparent)]
    Records(#[from] RecordError),
    #[error("no credentials to sign the upload: {0}")]
    Credentials(String),
}

impl ApiError {
    /// Status, code, and the message the caller may see.
    fn answer(&self) -> (u16, &'static str, String) {
        let public = self.to_string();
        match self {
            ApiError::Unauthenticated => (401, "unauthenticated", public),
            ApiError::NoSuchRoute(_) => (404, "no-such-route", public),
            ApiError::NotFound => (404, "not-found", public),
            ApiError::BadRequest(_) => (400, "bad-request", public),
            ApiError::Refused(refusal) => {
                let status = match refusal {
                    Refusal::TooLarge { .. } => 413,
                    Refusal::Unsupported { .. } => 415,
                    Refusal::Empty | Refusal::BadName => 400,
                };
                (status, refusal.code(), public)
            }
            ApiError::BadCursor => (400, "bad-cursor", public),
            ApiError::Records(RecordError::Throttled { .. }) => (
                503,
                "throttled",
                "too many requests; try again in a moment".to_owned(),
            ),
            ApiError::Records(RecordError::Failed { .. } | RecordError::Exists(_))
            | ApiError::Credentials(_) => (
                500,
                "internal-error",
                "the request could not be completed".to_owned(),
            ),
        }
    }

    fn response(&self) -> ApiResponse {
        let (status, code, message) = self.answer();
        if status >= 500 {
            tracing::error!(code, error = %self, "request failed");
        } else {
            tracing::info!(code, error = %self, "request refused");
        }
        let mut response = ApiResponse::json(status, &json!({ "code": code, "message": message }));
        if status == 503 {
            response
                .headers
                .insert("retry-after".to_owned(), "1".to_owned());
        }
        response
    }
}

/// Records per page of `GET /images`: default and maximum.
pub const DEFAULT_PAGE: i32 = 24;
pub const MAX_PAGE: i32 = 100;
/// An `UPLOADING` stub this long past its upload window is left out of `GET /images`
/// (abandoned, or its event is late; it shows again once the daemon claims it).
pub const STALE_STUB: Duration = Duration::from_secs(3600);

/// The upload API: configuration, the table, and what signs the forms.
#[derive(Debug, Clone)]
pub struct Api {
    config: Config,
    records: Records,
    credentials: SharedCredentialsProvider,
}

impl Api {
    pub fn new(
        config: Config,
        dynamodb: aws_sdk_dynamodb::Client,
        credentials: SharedCredentialsProvider,
    ) -> Api {
        let records = Records::new(dynamodb, config.table.clone());
        Api {
            config,
            records,
            credentials,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Answers one request; every failure is an answer too.
    pub async fn handle(&self, request: ApiRequest) -> ApiResponse {
        match self.route(&request).await {
            Ok((status, body)) => ApiResponse::json(status, &body),
            Err(error) => error.response(),
        }
    }

    async fn route(&self, request: &ApiRequest) -> Result<(u16, Value), ApiError> {
        let method = request.request_context.http.method.as_str();
        let path = if request.raw_path.is_empty() {
            request.request_context.http.path.as_str()
        } else {
            request.raw_path.as_str()
        };
        let route = match (method, path) {
            ("POST", "/uploads") => Route::Upload,
            ("GET", "/images") => Route::List,
            ("GET", rest) if rest.starts_with("/images/") && rest.len() > "/images/".len() => {
                let key = request
                    .path_parameters
                    .get("key")
                    .cloned()
                    .unwrap_or_else(|| rest["/images/".len()..].to_owned());
                let key = percent_encoding::percent_decode_str(&key)
                    .decode_utf8()
                    .map_err(|_| ApiError::NotFound)?
                    .into_owned();
                Route::Get(key)
            }
            _ => return Err(ApiError::NoSuchRoute(format!("{method} {path}"))),
        };
        let caller = caller(request)?;
        let folder = upload::caller_folder(&caller);
        match route {
            Route::Upload => self.upload(request, &folder).await,
            Route::Get(key) => self.get(&key, &folder).await,
            Route::List => self.list(request, &folder).await,
        }
    }

    async fn upload(&self, request: &ApiRequest, folder: &str) -> Result<(u16, Value), ApiError> {
        let body = body_text(request)?;
        let wanted: UploadRequest = serde_json::from_str(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                "the body must be {{\"name\", \"content_type\", \"size\"}}: {e}"
            ))
        })?;
        let accepted = upload::check(&wanted, self.config.max_source_bytes)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let key = upload::source_key(
            &self.config.prefix,
            folder,
            &id,
            &wanted.name,
            accepted.extension,
        );
        let credentials = self.signing_credentials().await?;
        let now = SystemTime::now();
        let expires_at = now + self.config.upload_expiry;
        let form = presign::presign(
            &self.config.upload_url,
            &Upload {
                bucket: &self.config.bucket,
                key: &key,
                content_type: &accepted.content_type,
                content_type_prefix: "image/",
                max_bytes: self.config.max_source_bytes,
                region: &self.config.region,
                signed_at: now,
                expires_at,
            },
            &credentials,
        );
        self.records
            .put_stub(&Stub {
                key: key.clone(),
                owner: folder.to_owned(),
                uploaded_at: presign::policy_time(now),
                original_name: wanted.name.clone(),
                content_type: accepted.content_type.clone(),
                expires_at: expires_at + self.config.stub_ttl,
            })
            .await?;
        tracing::info!(key, size = wanted.size, "upload presigned");
        Ok((
            201,
            json!({
                "key": key,
                "upload": form,
                "expires_at": presign::policy_time(expires_at),
                "max_bytes": self.config.max_source_bytes,
            }),
        ))
    }

    async fn get(&self, key: &str, folder: &str) -> Result<(u16, Value), ApiError> {
        // Keys outside the caller's folder are not even looked up.
        if !key.starts_with(&format!("{}{folder}/", self.config.prefix)) {
            return Err(ApiError::NotFound);
        }
        let item = self.records.get(key).await?.ok_or(ApiError::NotFound)?;
        let owned = matches!(item.get("Owner"), Some(aws_sdk_dynamodb::types::AttributeValue::S(o)) if o == folder);
        if !owned {
            return Err(ApiError::NotFound);
        }
        let image = view::image(&item, &self.config.public_base_url).ok_or(ApiError::NotFound)?;
        Ok((200, serde_json::to_value(image).unwrap_or(Value::Null)))
    }

    async fn list(&self, request: &ApiRequest, folder: &str) -> Result<(u16, Value), ApiError> {
        let query = &request.query_string_parameters;
        let limit = match query.get("limit") {
            None => DEFAULT_PAGE,
            Some(text) => match text.parse::<i32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "limit must be 1 to {MAX_PAGE}"
                    )));
                }
            },
        };
        let cursor = match query.get("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(text) => Some(decode_cursor(
                text,
                &format!("{}{folder}/", self.config.prefix),
            )?),
        };
        let page = self.records.list(folder, limit, cursor.as_ref()).await?;
        let now = SystemTime::now();
        let stale = |uploaded_at: Option<&str>| {
            uploaded_at
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .is_some_and(|t| t + self.config.upload_expiry + STALE_STUB < now)
        };
        let images: Vec<Value> = page
            .items
            .iter()
            .filter_map(|item| view::image(item, &self.config.public_base_url))
            .filter(|image| {
                !(image.status == STATUS_UPLOADING && stale(image.uploaded_at.as_deref()))
            })
            .map(|image| serde_json::to_value(image).unwrap_or(Value::Null))
            .collect();
        Ok((
            200,
            json!({ "images": images, "next_cursor": page.next.as_ref().map(encode_cursor) }),
        ))
    }

    async fn signing_credentials(&self) -> Result<Credentials, ApiError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| ApiError::Credentials(e.to_string()))?;
        Ok(Credentials {
            access_key_id: credentials.access_key_id().to_owned(),
            secret_access_key: credentials.secret_access_key().to_owned(),
            session_token: credentials.session_token().map(str::to_owned),
        })
    }
}

enum Route {
    Upload,
    Get(String),
    List,
}

/// The verified caller: the `sub` claim that the JWT authorizer passed on.
fn caller(request: &ApiRequest) -> Result<String, ApiError> {
    let claims = request
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .map(|jwt| &jwt.claims)
        .ok_or(ApiError::Unauthenticated)?;
    match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => Ok(sub.clone()),
        _ => Err(ApiError::Unauthenticated),
    }
}

fn body_text(request: &ApiRequest) -> Result<String, ApiError> {
    let body = request.body.clone().unwrap_or_default();
    if !request.is_base64_encoded {
        return Ok(body);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| ApiError::BadRequest("the body is not valid base64".to_owned()))?;
    String::from_utf8(bytes).map_err(|_| ApiError::BadRequest("the body is not UTF-8".to_owned()))
}

/// The opaque `next_cursor`: base64url of the last item's keys.
pub fn encode_cursor(cursor: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(cursor).unwrap_or_default())
}

fn decode_cursor(text: &str, folder_prefix: &str) -> Result<Cursor, ApiError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .map_err(|_| ApiError::BadCursor)?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| ApiError::BadCursor)?;
    // A cursor names a key of the caller's own; anything else is refused.
    if !cursor.key.starts_with(folder_prefix)
        || humantime::parse_rfc3339(&cursor.uploaded_at).is_err()
    {
        return Err(ApiError::BadCursor);
    }
    Ok(cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_status_and_a_code() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::Unauthenticated, 401, "unauthenticated"),
            (ApiError::NoSuchRoute("GET /x".into()), 404, "no-such-route"),
            (ApiError::NotFound, 404, "not-found"),
            (ApiError::BadRequest("x".into()), 400, "bad-request"),
            (
                Refusal::TooLarge { size: 2, max: 1 }.into(),
                413,
                "source-too-large",
            ),
            (Refusal::Empty.into(), 400, "empty-source"),
            (
                Refusal::Unsupported {
                    content_type: "text/html".into(),
                }
                .into(),
                415,
                "unsupported-format",
            ),
            (ApiError::BadCursor, 400, "bad-cursor"),
            (
                RecordError::Throttled {
                    operation: "Query",
                    message: "slow down".into(),
                }
                .into(),
                503,
                "throttled",
            ),
            (
                RecordError::Failed {
                    operation: "Query",
                    message: "secret detail".into(),
                }
                .into(),
                500,
                "internal-error",
            ),
            (ApiError::Credentials("none".into()), 500, "internal-error"),
        ];
        for (error, status, code) in cases {
            let response = error.response();
            assert_eq!(response.status_code, status, "{error}");
            assert_eq!(response.body_json()["code"], code, "{error}");
            assert!(
                !response.body.contains("secret detail"),
                "internals leaked: {}",
                response.body
            );
        }
        assert_eq!(
            ApiError::Records(RecordError::Throttled {
                operation: "Query",
                message: String::new()
            })
            .response()
            .headers["retry-after"],
            "1"
        );
    }

    #[test]
    fn cursors_round_trip_and_stay_in_the_callers_folder() {
        let cursor = Cursor {
            key: "uploads/u1/a-b.jpg".into(),
            uploaded_at: "2026-12-01T10:00:00.000Z".into(),
        };
        let text = encode_cursor(&cursor);
        assert_eq!(decode_cursor(&text, "uploads/u1/").unwrap(), cursor);
        assert!(matches!(
            decode_cursor(&text, "uploads/u2/"),
            Err(ApiError::BadCursor)
        ));
        assert!(matches!(
            decode_cursor("!!", "uploads/u1/"),
            Err(ApiError::BadCursor)
        ));
    }

    #[test]
    fn the_caller_is_the_verified_subject() {
        let mut request = ApiRequest::default();
        assert!(matches!(caller(&request), Err(ApiError::Unauthenticated)));
        request.request_context.authorizer = Some(Authorizer {
            jwt: Some(Jwt {
                claims: HashMap::from([("sub".into(), json!("u-1"))]),
                scopes: None,
            }),
        });
        assert_eq!(caller(&request).unwrap(), "u-1");
        // The payload API Gateway sends parses, claims and all.
        let event: ApiRequest = serde_json::from_value(json!({
            "version": "2.0", "routeKey": "GET /images/{key+}", "rawPath": "/images/uploads/u-1/a-b.jpg",
            "rawQueryString": "", "headers": {"authorization": "Bearer x"},
            "pathParameters": {"key": "uploads/u-1/a-b.jpg"},
            "requestContext": {"requestId": "r1", "http": {"method": "GET", "path": "/images/uploads/u-1/a-b.jpg", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "t"},
                "authorizer": {"jwt": {"claims": {"sub": "u-1", "client_id": "c"}, "scopes": null}}, "timeEpoch": 1},
            "isBase64Encoded": false
        })).unwrap();
        assert_eq!(caller(&event).unwrap(), "u-1");
    }
}
