//! `local-pump`: Lambda's SQS event source mapping on one machine (see the library docs).
//! Stops on SIGTERM or Ctrl-C after the batch in hand.
//!
//! Environment: `QUEUE_URL` (required), `BATCH_SIZE` (1-10, default 10),
//! `VISIBILITY_TIMEOUT_SECS` (default 30), the SDK's usual `AWS_ENDPOINT_URL`,
//! `AWS_REGION` and credentials, and the forwarder's variables (`EC2_SERVICE_URL`,
//! `SIGNING_KEY_ID`, `SIGNING_KEY`, `SOURCE_BUCKET`, `OUTPUT_BUCKET`, `SOURCE_PREFIX`, ...
//! see lambda-forwarder/README.md).

use lambda_forwarder::Forwarder;
use local_pump::{Pump, Settings};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    lambda_forwarder::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Err(message) = run().await {
        tracing::error!("{message}");
        std::process::exit(1);
    }
}

fn env_number(
    name: &str,
    default: i32,
    range: std::ops::RangeInclusive<i32>,
) -> Result<i32, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .parse()
            .ok()
            .filter(|v| range.contains(v))
            .ok_or_else(|| format!("{name}={text:?} must be a number in {range:?}")),
    }
}

async fn run() -> Result<(), String> {
    let settings = Settings {
        queue_url: std::env::var("QUEUE_URL").map_err(|_| "QUEUE_URL is not set".to_owned())?,
        batch_size: env_number("BATCH_SIZE", 10, 1..=10)?,
        visibility_timeout_secs: env_number("VISIBILITY_TIMEOUT_SECS", 30, 1..=43_200)?,
        wait_secs: 1,
    };
    let forwarder = Forwarder::from_env().await.map_err(|e| e.to_string())?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(lambda_forwarder::sdk_https_client())
        .load()
        .await;
    let region = sdk
        .region()
        .map(ToString::to_string)
        .unwrap_or_else(|| "us-east-1".to_owned());
    tracing::info!(queue = %settings.queue_url, batch_size = settings.batch_size, "local-pump polling");
    let pump = Pump::new(aws_sdk_sqs::Client::new(&sdk), forwarder, settings, &region);
    pump.run(shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
