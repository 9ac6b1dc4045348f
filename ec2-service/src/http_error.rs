//! [`ServiceError`], the one error type every HTTP handler (public and admin) answers with.
//!
//! Every non-2xx answer is a contract [`ErrorBody`] with a stable code and a public
//! message; 5xx are logged once at ERROR with their cause chain, client mistakes at INFO.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use pipeline_contract::{ErrorBody, SignatureError};

use crate::error_chain::error_chain;
use crate::spool::files::SpoolError;
use crate::spool::queue::AdmitError;

/// Every error a handler answers with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("the body is not a valid job request: {0}")]
    MalformedBody(String),
    #[error("the body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("cannot read the body: {0}")]
    BodyUnreadable(String),
    #[error("the body did not arrive within {secs} s")]
    BodyTimeout { secs: u64 },
    #[error("too many requests are being read; try again")]
    Busy,
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
    Store(#[source] SpoolError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AdmitError> for ServiceError {
    fn from(error: AdmitError) -> Self {
        match error {
            AdmitError::Stopping => ServiceError::ShuttingDown,
            full @ AdmitError::Full { .. } => ServiceError::QueueFull(full.to_string()),
            AdmitError::Spool(e) => ServiceError::Store(e),
        }
    }
}

impl ServiceError {
    /// The stable kebab-case code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Signature(e) => e.code(),
            ServiceError::MalformedBody(_) => "malformed-body",
            ServiceError::BodyTooLarge { .. } => "body-too-large",
            ServiceError::BodyUnreadable(_) => "body-unreadable",
            ServiceError::BodyTimeout { .. } => "body-timeout",
            ServiceError::Busy => "busy",
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
            ServiceError::Busy => Some(1),
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
            ServiceError::MalformedBody(_) | ServiceError::BodyUnreadable(_) => {
                StatusCode::BAD_REQUEST
            }
            ServiceError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ServiceError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::ReconcileRunning => StatusCode::CONFLICT,
            ServiceError::QueueFull(_)
            | ServiceError::ScratchFull(_)
            | ServiceError::ShuttingDown
            | ServiceError::Busy
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
        let io = || SpoolError::Io {
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
                ServiceError::BodyTimeout { secs: 10 },
                408,
                "body-timeout",
                false,
            ),
            (ServiceError::Busy, 503, "busy", true),
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
            // A 401 never tells the caller the server's clock.
            assert!(!body.message.contains("1000"), "{}", body.message);
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
