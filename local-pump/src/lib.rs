//! `local-pump`: plays the part of Lambda's SQS event source mapping on one machine, for
//! the demo and the end-to-end tests (moto cannot run Lambda code).
//!
//! Each round: receive up to `batch_size` messages, build the SQS event Lambda would
//! deliver, call the real forwarder handler ([`lambda_forwarder::Forwarder`]), then delete
//! the messages it did not name in `batchItemFailures`. Failed messages stay in the queue
//! and come back after the visibility timeout (and, with a redrive policy, end in the DLQ),
//! as in AWS. A handler error deletes nothing.
//!
//! The binary (`src/main.rs`) configures a [`Pump`] from the environment; the end-to-end
//! tests build one directly and run it beside the daemon.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use lambda_forwarder::{Forwarder, Response};
use serde_json::{Value, json};

/// How to poll the queue.
#[derive(Debug, Clone)]
pub struct Settings {
    pub queue_url: String,
    /// Messages per batch, 1-10 (Lambda's SQS maximum for standard queues is larger, but a
    /// single ReceiveMessage returns at most 10).
    pub batch_size: i32,
    /// Seconds a received message stays invisible before it comes back.
    pub visibility_timeout_secs: i32,
    /// Long-poll wait per ReceiveMessage, seconds (0-20).
    pub wait_secs: i32,
}

/// The pump: one queue, one forwarder.
pub struct Pump {
    sqs: aws_sdk_sqs::Client,
    forwarder: Forwarder,
    settings: Settings,
    queue_arn: String,
    region: String,
}

impl std::fmt::Debug for Pump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump")
            .field("settings", &self.settings)
            .field("queue_arn", &self.queue_arn)
            .finish_non_exhaustive()
    }
}

impl Pump {
    /// `region` only fills the event's `awsRegion` and `eventSourceARN`.
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        forwarder: Forwarder,
        settings: Settings,
        region: &str,
    ) -> Pump {
        Pump {
            queue_arn: queue_arn(&settings.queue_url, region),
            region: region.to_owned(),
            sqs,
            forwarder,
            settings,
        }
    }

    /// Runs rounds until `stop` completes (checked between rounds and while waiting for
    /// messages; a batch in hand is always finished).
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let round = tokio::select! {
                _ = &mut stop => break,
                round = self.receive() => round,
            };
            match round {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    self.forward(&messages).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "receive failed; retrying");
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        tracing::info!("local-pump stopped");
    }

    async fn receive(&self) -> Result<Vec<Message>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.settings.queue_url)
            .max_number_of_messages(self.settings.batch_size)
            .visibility_timeout(self.settings.visibility_timeout_secs)
            .wait_time_seconds(self.settings.wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn forward(&self, messages: &[Message]) {
        let event = sqs_event(messages, &self.queue_arn, &self.region);
        let failed: Vec<String> = match self.forwarder.handle(event).await {
            Ok(Response::Batch(batch)) => batch
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            Ok(Response::Summary(_)) => Vec::new(),
            Err(error) => {
                tracing::warn!(%error, messages = messages.len(), "handler failed: the batch returns to the queue");
                return;
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
        self.delete(&done).await;
    }

    async fn delete(&self, done: &[&Message]) {
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
        if let Err(e) = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.settings.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            // Not fatal: the messages come back and the daemon deduplicates them.
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed");
        }
    }
}

/// The event Lambda's SQS event source mapping delivers for `messages`.
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> Value {
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
pub fn queue_arn(url: &str, region: &str) -> String {
    let mut parts = url.trim_end_matches('/').rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or("000000000000");
    format!("arn:aws:sqs:{region}:{account}:{name}")
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
        assert_eq!(record["eventSourceARN"], "arn:aws:sqs:us-east-1:1:q");
    }
}
