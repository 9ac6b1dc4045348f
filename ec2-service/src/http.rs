//! The HTTP edge (actix-web): `POST /v1/jobs`, `GET /healthz`, `GET /readyz`,
//! `GET /metrics`, and [`ServiceError`], the one error type of every handler.
//!
//! Handlers verify, validate and admit; they never process. Admission (fsync) runs on a
//! blocking thread and AWS calls (readiness) on the daemon's runtime, never on the actix
//! workers. Every non-2xx answer is a contract [`ErrorBody`] with a stable code and a
//! public message; 5xx are logged once at ERROR with their cause chain, client mistakes at
//! INFO.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use pipeline_contract::{
    ErrorBody, JOBS_METHOD, JOBS_PATH, JobsAccepted, JobsRequest, KeySet, ReceivedSignature,
    SignatureError, is_derived_key,
};

use crate::health::Readiness;
use crate::job::{Job, validate_request};
use crate::metrics::Metrics;
use crate::queue::{AdmitError, Queue};
use crate::store::{JobStore, StoreError};
use crate::worker::error_chain;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub keys: KeySet,
    pub max_skew_secs: u64,
    pub max_body_bytes: usize,
    pub source_bucket: String,
    pub derived_prefix: String,
    pub queue: Arc<Queue>,
    pub store: JobStore,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    /// The daemon's runtime, where AWS calls run (the actix workers have their own).
    pub runtime: tokio::runtime::Handle,
    pub started: Instant,
    pub started_at: String,
}

/// Every error a handler answers with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("the body is not a valid job request: {0}")]
    MalformedBody(String),
    #[error("job {index}: {reason}")]
    InvalidJob { index: usize, reason: String },
    #[error("job {index}: bucket {bucket:?} is not the source bucket this daemon serves")]
    WrongBucket { index: usize, bucket: String },
    #[error("job {index}: {key:?} is a derived object (under {prefix:?}) and is never processed")]
    DerivedKey {
        index: usize,
        key: String,
        prefix: String,
    },
    #[error("the body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("cannot read the body: {0}")]
    BodyUnreadable(String),
    #[error("{0}")]
    QueueFull(String),
    #[error("the scratch disk is too full to store jobs: {0}")]
    ScratchFull(String),
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("a reconcile is already running")]
    ReconcileRunning,
    #[error("cannot store the jobs")]
    Store(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AdmitError> for ServiceError {
    fn from(error: AdmitError) -> Self {
        match error {
            AdmitError::Stopping => ServiceError::ShuttingDown,
            full @ AdmitError::Full { .. } => ServiceError::QueueFull(full.to_string()),
            AdmitError::Store(e) => ServiceError::Store(e),
        }
    }
}

impl ServiceError {
    /// The stable kebab-case code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Signature(e) => e.code(),
            ServiceError::MalformedBody(_) => "malformed-body",
            ServiceError::InvalidJob { .. } => "invalid-job",
            ServiceError::WrongBucket { .. } => "wrong-bucket",
            ServiceError::DerivedKey { .. } => "derived-key",
            ServiceError::BodyTooLarge { .. } => "body-too-large",
            ServiceError::BodyUnreadable(_) => "body-unreadable",
            ServiceError::QueueFull(_) => "queue-full",
            ServiceError::ScratchFull(_) => "scratch-full",
            ServiceError::ShuttingDown => "shutting-down",
            ServiceError::NotReady(_) => "not-ready",
            ServiceError::ReconcileRunning => "reconcile-running",
            ServiceError::Store(_) => "store-failed",
            ServiceError::Internal(_) => "internal-error",
        }
    }

    /// Seconds a client should wait before trying again, for the 503s.
    fn retry_after_secs(&self) -> Option<u32> {
        match self {
            ServiceError::QueueFull(_) => Some(5),
            ServiceError::ScratchFull(_) => Some(30),
            ServiceError::ShuttingDown | ServiceError::NotReady(_) => Some(10),
            _ => None,
        }
    }

    /// What the caller is told: the details of client mistakes, nothing internal.
    fn public_message(&self) -> String {
        match self {
            ServiceError::Store(_) => "the jobs could not be stored; try again".to_owned(),
            ServiceError::Internal(_) => "internal error; try again".to_owned(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for ServiceError {
    fn status_code(&self) -> StatusCode {
        match self {
            ServiceError::Signature(_) => StatusCode::UNAUTHORIZED,
            ServiceError::MalformedBody(_)
            | ServiceError::InvalidJob { .. }
            | ServiceError::WrongBucket { .. }
            | ServiceError::DerivedKey { .. }
            | ServiceError::BodyUnreadable(_) => StatusCode::BAD_REQUEST,
            ServiceError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::ReconcileRunning => StatusCode::CONFLICT,
            ServiceError::QueueFull(_)
            | ServiceError::ScratchFull(_)
            | ServiceError::ShuttingDown
            | ServiceError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Store(_) | ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() && !matches!(status, StatusCode::SERVICE_UNAVAILABLE) {
            tracing::error!(code = self.code(), error = %error_chain(self), "request failed");
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(code = self.code(), error = %self, "request refused");
        } else {
            tracing::info!(code = self.code(), error = %self, "request refused");
        }
        let mut response = HttpResponse::build(status);
        if let Some(secs) = self.retry_after_secs() {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        response.json(ErrorBody {
            code: self.code().to_owned(),
            message: self.public_message(),
        })
    }
}

/// The public routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(JOBS_PATH, web::post().to(post_jobs))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn post_jobs(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ServiceError> {
    let result = accept_jobs(&request, body, &state).await;
    if let Err(error) = &result {
        state.metrics.rejected(error.code());
    }
    result
}

async fn accept_jobs(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ServiceError> {
    let body = match body.to_bytes_limited(state.max_body_bytes).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(ServiceError::BodyUnreadable(e.to_string())),
        Err(_) => {
            return Err(ServiceError::BodyTooLarge {
                limit: state.max_body_bytes,
            });
        }
    };
    let received =
        ReceivedSignature::from_lookup(|name| request.headers().get(name)?.to_str().ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let key_id = pipeline_contract::verify(
        &state.keys,
        JOBS_METHOD,
        request.path(),
        &body,
        &received,
        now,
        state.max_skew_secs,
    )?;
    let parsed: JobsRequest =
        serde_json::from_slice(&body).map_err(|e| ServiceError::MalformedBody(e.to_string()))?;
    for (index, job) in parsed.jobs.iter().enumerate() {
        validate_request(job).map_err(|reason| ServiceError::InvalidJob { index, reason })?;
        if job.bucket != state.source_bucket {
            return Err(ServiceError::WrongBucket {
                index,
                bucket: job.bucket.clone(),
            });
        }
        if is_derived_key(&job.key, &state.derived_prefix) {
            return Err(ServiceError::DerivedKey {
                index,
                key: job.key.clone(),
                prefix: state.derived_prefix.clone(),
            });
        }
    }
    if !parsed.jobs.is_empty() {
        state
            .readiness
            .scratch_room()
            .map_err(ServiceError::ScratchFull)?;
    }
    let jobs: Vec<Job> = parsed.jobs.into_iter().map(Job::from_event).collect();
    let accepted = admit(state, jobs).await?;
    tracing::debug!(key_id, jobs = accepted.jobs.len(), "jobs accepted");
    Ok(HttpResponse::Accepted().json(accepted))
}

/// Admits jobs on a blocking thread (the store fsyncs) and counts them.
pub async fn admit(state: &AppState, jobs: Vec<Job>) -> Result<JobsAccepted, ServiceError> {
    let queue = state.queue.clone();
    let store = state.store.clone();
    let answers = web::block(move || queue.admit(jobs, &store))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
    let duplicates = answers.iter().filter(|a| a.duplicate).count() as u64;
    state
        .metrics
        .accepted(answers.len() as u64 - duplicates, duplicates);
    Ok(JobsAccepted { jobs: answers })
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ServiceError> {
    let report = readiness(&state).await?;
    if report.ready {
        Ok(HttpResponse::Ok().json(report))
    } else {
        Err(ServiceError::NotReady(report.reasons()))
    }
}

/// The readiness report, computed on the daemon's runtime.
pub async fn readiness(state: &AppState) -> Result<crate::health::Report, ServiceError> {
    let readiness = state.readiness.clone();
    let accepting = state.queue.is_accepting();
    state
        .runtime
        .spawn(async move { readiness.check(accepting).await })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(
            state
                .metrics
                .render(state.queue.depth(), state.queue.is_accepting()),
        )
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    fn answer(error: &ServiceError) -> (u16, ErrorBody, Option<String>) {
        let response = error.error_response();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().try_into_bytes().unwrap();
        (status, serde_json::from_slice(&body).unwrap(), retry_after)
    }

    #[test]
    fn every_error_has_its_status_code_and_a_public_body() {
        let io = || StoreError::Io {
            action: "fsync",
            path: "/var/lib/ec2-service/jobs/secret-path".into(),
            source: std::io::Error::other("disk on fire"),
        };
        let cases: Vec<(ServiceError, u16, &str, bool)> = vec![
            (
                SignatureError::BadSignature.into(),
                401,
                "bad-signature",
                false,
            ),
            (
                SignatureError::ExpiredSignature {
                    timestamp: 1,
                    now: 1000,
                    max_skew_secs: 300,
                }
                .into(),
                401,
                "expired-signature",
                false,
            ),
            (
                ServiceError::MalformedBody("eof".into()),
                400,
                "malformed-body",
                false,
            ),
            (
                ServiceError::InvalidJob {
                    index: 0,
                    reason: "key is empty".into(),
                },
                400,
                "invalid-job",
                false,
            ),
            (
                ServiceError::WrongBucket {
                    index: 0,
                    bucket: "x".into(),
                },
                400,
                "wrong-bucket",
                false,
            ),
            (
                ServiceError::BodyTooLarge { limit: 10 },
                413,
                "body-too-large",
                false,
            ),
            (
                ServiceError::QueueFull("full".into()),
                503,
                "queue-full",
                true,
            ),
            (
                ServiceError::ScratchFull("1 MiB".into()),
                503,
                "scratch-full",
                true,
            ),
            (ServiceError::ShuttingDown, 503, "shutting-down", true),
            (ServiceError::NotReady("s3".into()), 503, "not-ready", true),
            (
                ServiceError::ReconcileRunning,
                409,
                "reconcile-running",
                false,
            ),
            (ServiceError::Store(io()), 500, "store-failed", false),
            (
                ServiceError::Internal("bug".into()),
                500,
                "internal-error",
                false,
            ),
        ];
        for (error, status, code, retry) in cases {
            let (got_status, body, retry_after) = answer(&error);
            assert_eq!((got_status, body.code.as_str()), (status, code), "{error}");
            assert_eq!(retry_after.is_some(), retry, "{error}");
            assert!(!body.message.is_empty());
            assert!(
                !body.message.contains("secret-path") && !body.message.contains("disk on fire")
            );
        }
        let full: ServiceError = AdmitError::Full {
            unfinished: 3,
            incoming: 2,
            capacity: 4,
        }
        .into();
        assert_eq!(full.code(), "queue-full");
        assert!(full.to_string().contains("capacity of 4"));
    }
}
