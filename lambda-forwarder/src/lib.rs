//! The forwarder: S3 and SQS events in, signed job requests out.
//!
//! A thin Lambda (`provided.al2023`, `bootstrap` built by cargo-lambda): it parses the
//! invocation tolerantly and filters keys with the contract's code
//! ([`pipeline_contract::s3_event`], [`pipeline_contract::Filter`], the same the daemon runs),
//! sends every job of the invocation in one signed `POST /v1/jobs` ([`client`]) and answers
//! Lambda so that nothing is dropped ([`forwarder`]): only the messages whose own jobs the
//! daemon did not take are failed. It does no image work and keeps no state between
//! invocations beyond what cold start builds: the configuration ([`config`]), the signing key
//! (from the environment, or SSM once) and the HTTP client.

pub mod client;
pub mod config;
pub mod forwarder;

use std::time::Duration;

use pipeline_contract::SigningKey;
use serde_json::Value;

pub use crate::client::{DaemonClient, SubmitError};
pub use crate::config::{Config, ConfigError, SecretSource};
pub use crate::forwarder::{
    BatchItemFailure, ForwardError, Forwarder, Response, SqsBatchResponse, Summary,
};
pub use pipeline_contract::{Filter, Skip};

/// Why cold start failed. Every variant names the variable or parameter at fault.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// An environment variable is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The SSM parameter could not be read.
    #[error(
        "could not read the signing key from SSM parameter {name:?} (named by {}): {reason}",
        config::SIGNING_KEY_PARAMETER
    )]
    Parameter {
        /// The parameter's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// Makes ring the process-wide rustls crypto provider (idempotent). Both HTTP clients use
/// rustls with ring: no OpenSSL and no aws-lc C build.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The AWS SDK's HTTPS client: rustls with ring, like the call to the daemon.
pub fn sdk_https_client() -> aws_sdk_ssm::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// JSON logs to stdout (what CloudWatch wants), one object per line. The level comes from
/// `AWS_LAMBDA_LOG_LEVEL` (Lambda's logging controls), else `RUST_LOG`, else `info`.
pub fn init_tracing() {
    let directives = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(directives.to_ascii_lowercase())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .with_target(false)
        .with_env_filter(filter)
        .init();
}

/// The signing key: the inline one, or the SSM SecureString read once now.
pub async fn resolve_signing_key(config: &Config) -> Result<SigningKey, InitError> {
    match &config.secret {
        SecretSource::Inline(key) => Ok(key.clone()),
        SecretSource::Parameter(name) => {
            let secret = read_parameter(name, config.request_timeout)
                .await
                .map_err(|reason| InitError::Parameter {
                    name: name.clone(),
                    reason,
                })?;
            SigningKey::new(config.key_id.clone(), secret).map_err(|error| InitError::Parameter {
                name: name.clone(),
                reason: error.to_string(),
            })
        }
    }
}

async fn read_parameter(name: &str, timeout: Duration) -> Result<String, String> {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(timeout.max(Duration::from_secs(5)))
        .build();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(sdk_https_client())
        .timeout_config(timeouts)
        .load()
        .await;
    let output = aws_sdk_ssm::Client::new(&sdk)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|error| match &error {
            // AccessDenied, ParameterNotFound, …: the code and AWS's message say it all.
            aws_sdk_ssm::error::SdkError::ServiceError(service) => {
                use aws_sdk_ssm::error::ProvideErrorMetadata as _;
                let error = service.err();
                format!(
                    "{}: {}",
                    error.code().unwrap_or("service error"),
                    error.message().unwrap_or("no message")
                )
            }
            // Timeouts, connection and credential failures: keep the whole chain.
            _ => aws_sdk_ssm::error::DisplayErrorContext(&error).to_string(),
        })?;
    output
        .parameter
        .and_then(|parameter| parameter.value)
        .ok_or_else(|| "the parameter has no value".to_owned())
}

impl Forwarder {
    /// Builds the forwarder from a validated configuration (reading SSM if configured so).
    pub async fn from_config(config: Config) -> Result<Self, InitError> {
        let key = resolve_signing_key(&config).await?;
        let client = DaemonClient::new(config.jobs_url(), key, config.request_timeout)?;
        Ok(Self::new(client, config.filter))
    }

    /// Cold start: configuration from the environment, then [`Self::from_config`].
    pub async fn from_env() -> Result<Self, InitError> {
        Self::from_config(Config::from_env()?).await
    }
}

/// Serves invocations from the Lambda Runtime API until the process is stopped.
pub async fn run(forwarder: Forwarder) -> Result<(), lambda_runtime::Error> {
    let forwarder = &forwarder;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| async move {
            forwarder.handle(event.payload).await
        },
    ))
    .await
}
