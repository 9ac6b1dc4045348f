//! `bootstrap` for `provided.al2023`: configure once, then serve invocations.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    upload_api::init_tracing();
    let api = match upload_api::Api::from_env().await {
        Ok(api) => api,
        Err(error) => {
            tracing::error!(%error, "cold start failed");
            return ExitCode::FAILURE;
        }
    };
    match upload_api::run(api).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the Lambda runtime loop stopped");
            ExitCode::FAILURE
        }
    }
}
