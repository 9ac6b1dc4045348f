//! `bootstrap` for `provided.al2023`: configure once, then serve invocations.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    lambda_forwarder::init_tracing();
    let forwarder = match lambda_forwarder::Forwarder::from_env().await {
        Ok(forwarder) => forwarder,
        Err(error) => {
            tracing::error!(%error, "cold start failed");
            return ExitCode::FAILURE;
        }
    };
    match lambda_forwarder::run(forwarder).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the Lambda runtime loop stopped");
            ExitCode::FAILURE
        }
    }
}
