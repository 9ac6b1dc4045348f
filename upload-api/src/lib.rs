//! The upload API: a thin Lambda behind an API Gateway HTTP API whose JWT authorizer has
//! already verified the caller.
//!
//! It hands a signed-in caller a presigned POST for one photo ([`presign`]: a policy S3
//! enforces; [`upload`]: what may be uploaded and the key it gets), writes a stub record so
//! the caller's photos can be listed ([`records`]), and shows the caller their records with
//! public variant URLs ([`view`]), through [`api`]. It never touches the photo itself (the
//! browser posts it straight to S3; the usual event path takes it from there), never writes
//! a record the daemon has claimed, and keeps no state between invocations beyond what cold
//! start builds ([`config`], the SDK clients).

pub mod api;
pub mod config;
pub mod presign;
pub mod records;
pub mod upload;
pub mod view;

pub use crate::api::{Api, ApiRequest, ApiResponse};
pub use crate::config::{Config, ConfigError};

/// Makes ring the process-wide rustls crypto provider (idempotent): no OpenSSL and no
/// aws-lc C build.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The SDK configuration of the Lambda: default credentials chain and region, HTTPS
/// through rustls with ring.
pub async fn sdk_config() -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    install_crypto_provider();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}

impl Api {
    /// Cold start: configuration from the environment, the SDK's clients and credentials.
    pub async fn from_env() -> Result<Api, String> {
        let config = Config::from_env().map_err(|e| e.to_string())?;
        let sdk = sdk_config().await;
        let credentials = sdk
            .credentials_provider()
            .ok_or("no AWS credentials provider (AWS_ACCESS_KEY_ID, a role, ...)")?;
        Ok(Api::new(
            config,
            aws_sdk_dynamodb::Client::new(&sdk),
            credentials,
        ))
    }
}

/// JSON logs to stdout (what CloudWatch wants), one object per line; the level comes from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`.
pub fn init_tracing() {
    let directives = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(directives.to_ascii_lowercase())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_ansi(false)
        .with_target(false)
        .with_env_filter(filter)
        .init();
}

/// Serves invocations from the Lambda Runtime API until the process is stopped.
pub async fn run(api: Api) -> Result<(), lambda_runtime::Error> {
    let api = &api;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<ApiRequest>| async move {
            Ok::<_, std::convert::Infallible>(api.handle(event.payload).await)
        },
    ))
    .await
}
