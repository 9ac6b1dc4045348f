//! The AWS edge: [`s3`] (sources and variants), [`records`] (DynamoDB) and
//! [`cloudwatch`] (the daemon's job metrics), over one SDK set-up shared by all:
//! one `SdkConfig` (rustls with ring, timeouts, the SDK's own retries, an optional local
//! endpoint) and the mapping of any SDK error to what the daemon does about it.
//!
//! Credentials are never configured here: the SDK's default chain finds them (the
//! instance role on EC2, the environment locally).

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::settings::AwsSettings;

pub mod cloudwatch;
pub mod records;
pub mod s3;

/// Makes ring the process-wide rustls crypto provider (idempotent).
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The SDK configuration every client is built from.
pub async fn sdk_config(aws: &AwsSettings) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

    install_crypto_provider();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(aws.connect_timeout_ms))
        .operation_attempt_timeout(Duration::from_millis(aws.attempt_timeout_ms))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(aws.sdk_max_attempts));
    if let Some(region) = &aws.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An S3 client for the configured endpoint and addressing style.
pub fn s3_client(sdk: &aws_config::SdkConfig, aws: &AwsSettings) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(aws.force_path_style);
    if let Some(url) = &aws.s3_endpoint_url {
        config = config.endpoint_url(url);
    }
    let config = config.build();
    aws_sdk_s3::Client::from_conf(config)
}

pub fn dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

/// The SQS client of fleet mode (`[intake] mode = "sqs"`) and of a fleet's reconcile.
pub fn sqs_client(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

/// The CloudWatch client of the metrics publisher (`[metrics]`).
pub fn cloudwatch_client(sdk: &aws_config::SdkConfig) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(sdk)
}

/// What a failed AWS call means for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// 404 or a not-found code: the object, bucket or table is not there.
    NotFound,
    /// A conditional request was refused (DynamoDB's ConditionalCheckFailed, S3's 412).
    ConditionFailed,
    /// Throttled (429, SlowDown, ProvisionedThroughputExceeded…): retry later.
    Throttled,
    /// 5xx, timeouts, connection and response errors: retry later.
    Unavailable,
    /// 403 and the like: retrying will not help until someone fixes a policy.
    Denied,
    /// Any other 4xx or a request that could not be built: permanent.
    Rejected,
}

impl FailureKind {
    /// Whether a later attempt may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, FailureKind::Throttled | FailureKind::Unavailable)
    }
}

/// A failed AWS call, reduced to what the daemon acts on and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkFailure {
    pub kind: FailureKind,
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The service's error code (`NoSuchKey`, `ThrottlingException`…), when it sent one.
    pub code: Option<String>,
    /// The whole cause chain.
    pub message: String,
}

impl std::fmt::Display for SdkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
    "LimitExceededException",
];

const UNAVAILABLE_CODES: &[&str] = &[
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

const NOT_FOUND_CODES: &[&str] = &[
    "NoSuchKey",
    "NotFound",
    "NoSuchBucket",
    "ResourceNotFoundException",
];

/// Classifies any SDK error (S3 and DynamoDB share the type).
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> SdkFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = DisplayErrorContext(error).to_string();
    match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().map(str::to_owned);
            let kind = kind_of(status, code.as_deref());
            SdkFailure {
                kind,
                status: Some(status),
                code,
                message,
            }
        }
        SdkError::ResponseError(response) => SdkFailure {
            kind: FailureKind::Unavailable,
            status: Some(response.raw().status().as_u16()),
            code: None,
            message,
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => SdkFailure {
            kind: FailureKind::Unavailable,
            status: None,
            code: None,
            message,
        },
        SdkError::ConstructionFailure(_) => SdkFailure {
            kind: FailureKind::Rejected,
            status: None,
            code: None,
            message,
        },
        // `SdkError` is non-exhaustive: whatever comes later is treated as transient,
        // which at worst retries a bounded number of times.
        _ => SdkFailure {
            kind: FailureKind::Unavailable,
            status: None,
            code: None,
            message,
        },
    }
}

/// The kind of a service error from its status and code.
pub fn kind_of(status: u16, code: Option<&str>) -> FailureKind {
    let code = code.unwrap_or("");
    if code == "ConditionalCheckFailedException" || status == 412 {
        FailureKind::ConditionFailed
    } else if status == 429 || THROTTLING_CODES.contains(&code) {
        FailureKind::Throttled
    } else if status >= 500 || UNAVAILABLE_CODES.contains(&code) {
        FailureKind::Unavailable
    } else if status == 404 || NOT_FOUND_CODES.contains(&code) {
        FailureKind::NotFound
    } else if status == 401 || status == 403 {
        FailureKind::Denied
    } else {
        FailureKind::Rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_are_classified_by_code_then_status() {
        use FailureKind::*;
        assert_eq!(
            kind_of(400, Some("ConditionalCheckFailedException")),
            ConditionFailed
        );
        assert_eq!(kind_of(412, None), ConditionFailed);
        assert_eq!(kind_of(400, Some("ThrottlingException")), Throttled);
        assert_eq!(
            kind_of(400, Some("ProvisionedThroughputExceededException")),
            Throttled
        );
        assert_eq!(kind_of(503, Some("SlowDown")), Throttled);
        assert_eq!(kind_of(429, None), Throttled);
        assert_eq!(kind_of(500, Some("InternalError")), Unavailable);
        assert_eq!(kind_of(502, None), Unavailable);
        assert_eq!(kind_of(404, None), NotFound);
        assert_eq!(kind_of(404, Some("NoSuchKey")), NotFound);
        assert_eq!(kind_of(400, Some("ResourceNotFoundException")), NotFound);
        assert_eq!(kind_of(403, Some("AccessDenied")), Denied);
        assert_eq!(kind_of(400, Some("ValidationException")), Rejected);
        assert!(Throttled.is_transient() && Unavailable.is_transient());
        assert!(!NotFound.is_transient() && !Denied.is_transient() && !Rejected.is_transient());
    }
}
