//! `local-pump`: plays the part of Lambda's SQS event source mapping on one machine, for
//! the demo and the end-to-end tests (moto cannot run Lambda code).
//!
//! Loop: receive up to `BATCH_SIZE` messages from `QUEUE_URL`, build the SQS event Lambda
//! would deliver, call the real forwarder handler (`lambda_forwarder::Forwarder`, configured
//! from the same environment variables as the Lambda), then delete the messages it did not
//! name in `batchItemFailures`. Failed messages stay in the queue and come back after the
//! visibility timeout (and, with a redrive policy, end in the DLQ), as in AWS. A handler
//! error deletes nothing. Stops on SIGTERM or Ctrl-C after the batch in hand.
//!
//! Environment: `QUEUE_URL` (required), `BATCH_SIZE` (1-10, default 10),
//! `VISIBILITY_TIMEOUT_SECS` (default 30), the SDK's usual `AWS_ENDPOINT_URL`,
//! `AWS_REGION` and credentials, and the forwarder's variables (`EC2_SERVICE_URL`,
//! `SIGNING_KEY_ID`, `SIGNING_KEY`, `SOURCE_PREFIX`, ... see lambda-forwarder/README.md).

use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use lambda_forwarder::{Forwarder, Response};
use serde_json::{Value, json};

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
    let queue_url = std::env::var("QUEUE_URL").map_err(|_| "QUEUE_URL is not set".to_owned())?;
    let batch_size = env_number("BATCH_SIZE", 10, 1..=10)?;
    let visibility = env_number("VISIBILITY_TIMEOUT_SECS", 30, 1..=43_200)?;
    let forwarder = Forwarder::from_env().await.map_err(|e| e.to_string())?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let region = sdk
        .region()
        .map(ToString::to_string)
        .unwrap_or_else(|| "us-east-1".to_owned());
    let queue_arn = queue_arn(&queue_url, &region);
    tracing::info!(queue = %queue_url, batch_size, "local-pump polling");

    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let receive = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(batch_size)
            .visibility_timeout(visibility)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send();
        let received = tokio::select! {
            _ = &mut stop => break,
            r = receive => r,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let event = sqs_event(&messages, &queue_arn, &region);
        let failed: Vec<String> = match forwarder.handle(event).await {
            Ok(Response::Batch(batch)) => batch
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            Ok(Response::Summary(_)) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, messages = messages.len(), "handler failed: the batch returns to the queue");
                continue;
            }
        };
        let done: Vec<&Message> = messages
            .iter()
            .filter(|m| {
                m.message_id()
                    .is_some_and(|id| !failed.iter().any(|f| f == id))
            })
            .collect();
        tracing::info!(
            received = messages.len(),
            deleted = done.len(),
            failed = failed.len(),
            "batch handled"
        );
        delete(&sqs, &queue_url, &done).await;
    }
    tracing::info!("local-pump stopped");
    Ok(())
}

/// The event Lambda's SQS event source mapping delivers for `messages`.
fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id().unwrap_or_default(),
                "receiptHandle": m.receipt_handle().unwrap_or_default(),
                "body": m.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body().unwrap_or_default(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// `arn:aws:sqs:REGION:ACCOUNT:NAME` from `http://host/ACCOUNT/NAME`.
fn queue_arn(url: &str, region: &str) -> String {
    let mut parts = url.trim_end_matches('/').rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or("000000000000");
    format!("arn:aws:sqs:{region}:{account}:{name}")
}

async fn delete(sqs: &aws_sdk_sqs::Client, queue_url: &str, done: &[&Message]) {
    if done.is_empty() {
        return;
    }
    let entries: Vec<DeleteMessageBatchRequestEntry> = done
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle()?)
                .build()
                .ok()
        })
        .collect();
    if let Err(e) = sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        // Not fatal: the messages come back and the daemon deduplicates them.
        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arns_come_from_queue_urls() {
        assert_eq!(
            queue_arn(
                "http://127.0.0.1:5000/123456789012/demo-events",
                "us-east-1"
            ),
            "arn:aws:sqs:us-east-1:123456789012:demo-events"
        );
    }

    #[test]
    fn events_have_the_lambda_sqs_shape() {
        let m = Message::builder()
            .message_id("m-1")
            .receipt_handle("r-1")
            .body("{}")
            .build();
        let event = sqs_event(&[m], "arn:aws:sqs:us-east-1:1:q", "us-east-1");
        let record = &event["Records"][0];
        assert_eq!(record["messageId"], "m-1");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["body"], "{}");
    }
}
