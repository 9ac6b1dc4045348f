//! The handler: one invocation in, at most one signed request out, and an answer that tells
//! Lambda exactly what failed.
//!
//! - Direct S3 event: every record that passes the filter goes in one request. If the
//!   daemon does not accept it, or a record cannot be read, the invocation fails so that
//!   Lambda retries it and then hands it to the failure destination. (Readable records are
//!   still sent first: the daemon deduplicates the retries.)
//! - SQS batch: jobs are grouped per message and all sent in one request. The answer names
//!   in `batchItemFailures` exactly the messages that are not done: those that had a job
//!   when the request failed, and those that cannot be read (so they reach the DLQ rather
//!   than vanish). Messages that filter to nothing, and test events, succeed. The readable
//!   jobs of a partly unreadable message are still sent; its redelivery is deduplicated.
//! - `s3:TestEvent`: acknowledged, nothing sent.
//!
//! Nothing is ever logged and dropped: every outcome is a success or an error Lambda acts on.

use pipeline_contract::{JobRequest, JobsRequest};
use serde::Serialize;
use serde_json::Value;

use crate::client::{DaemonClient, SubmitError};
use crate::event::{self, EventError, Incoming, Notification, RecordOutcome};
use crate::filter::Filter;

/// The forwarder, built once at cold start.
#[derive(Debug, Clone)]
pub struct Forwarder {
    client: DaemonClient,
    filter: Filter,
}

/// What the function returns on success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// For an SQS batch: the messages to return to the queue.
    Batch(SqsBatchResponse),
    /// For a direct S3 event or a test event: what was done.
    Summary(Summary),
}

/// The partial batch response of an SQS event source mapping with
/// `ReportBatchItemFailures`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SqsBatchResponse {
    /// The failed messages.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// One failed SQS message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchItemFailure {
    /// The message's `messageId`.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// What a direct invocation did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    /// Jobs the daemon accepted.
    pub forwarded: usize,
    /// Records deliberately not forwarded (filtered out, or not an event we act on).
    pub skipped: usize,
}

/// Why an invocation failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The payload is none of the accepted shapes.
    #[error("unrecognised event: {0}")]
    UnrecognisedEvent(#[from] EventError),
    /// The daemon did not accept the jobs.
    #[error("the jobs were not accepted: {0}")]
    NotAccepted(#[from] SubmitError),
    /// Some records of a direct S3 event could not be read.
    #[error("{count} record(s) of the event could not be read; first: {first}")]
    InvalidRecords {
        /// How many.
        count: usize,
        /// What was wrong with the first one.
        first: String,
    },
    /// An SQS message has no `messageId`, so it cannot be named in `batchItemFailures`:
    /// the whole batch fails instead.
    #[error("SQS message {index} of the batch has no messageId; failing the whole batch")]
    MissingMessageId {
        /// Position of the message in the batch.
        index: usize,
    },
}

impl ForwardError {
    /// Stable `errorType` reported to Lambda (visible in the failure destination).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::UnrecognisedEvent(_) => "Forwarder.UnrecognisedEvent",
            Self::NotAccepted(_) => "Forwarder.NotAccepted",
            Self::InvalidRecords { .. } => "Forwarder.InvalidRecords",
            Self::MissingMessageId { .. } => "Forwarder.MissingMessageId",
        }
    }
}

impl From<ForwardError> for lambda_runtime::Diagnostic {
    fn from(error: ForwardError) -> Self {
        Self {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What one SQS message contributed.
#[derive(Debug, Default)]
struct MessageJobs {
    jobs: Vec<JobRequest>,
    skipped: usize,
    /// Why the message cannot be done, when it cannot.
    invalid: Option<String>,
}

impl Forwarder {
    /// A forwarder sending through `client` what passes `filter`.
    pub fn new(client: DaemonClient, filter: Filter) -> Self {
        Self { client, filter }
    }

    /// Handles one invocation payload.
    pub async fn handle(&self, payload: Value) -> Result<Response, ForwardError> {
        match event::classify(payload)? {
            Incoming::TestEvent => {
                tracing::info!("s3:TestEvent acknowledged, nothing to forward");
                Ok(Response::Summary(Summary::default()))
            }
            Incoming::S3(records) => self.handle_s3(records).await.map(Response::Summary),
            Incoming::Sqs(messages) => self.handle_sqs(messages).await.map(Response::Batch),
        }
    }

    async fn handle_s3(&self, records: Vec<Value>) -> Result<Summary, ForwardError> {
        let mut jobs = Vec::new();
        let mut skipped = 0;
        let mut invalid = Vec::new();
        for record in records {
            match self.read_record(record) {
                RecordOutcome::Job(job) => jobs.push(job),
                RecordOutcome::Skipped { .. } => skipped += 1,
                RecordOutcome::Invalid(why) => invalid.push(why),
            }
        }
        let forwarded = jobs.len();
        if !jobs.is_empty()
            && let Err(error) = self.submit(jobs).await
        {
            tracing::error!(%error, jobs = forwarded, "jobs not accepted; failing the invocation");
            return Err(error.into());
        }
        if let Some(first) = invalid.first() {
            tracing::error!(
                invalid = invalid.len(),
                forwarded,
                first = %first,
                "unreadable records; failing the invocation"
            );
            return Err(ForwardError::InvalidRecords {
                count: invalid.len(),
                first: first.clone(),
            });
        }
        tracing::info!(forwarded, skipped, "direct S3 event forwarded");
        Ok(Summary { forwarded, skipped })
    }

    async fn handle_sqs(
        &self,
        messages: Vec<event::SqsMessage>,
    ) -> Result<SqsBatchResponse, ForwardError> {
        let mut ids = Vec::with_capacity(messages.len());
        let mut per_message = Vec::with_capacity(messages.len());
        for (index, message) in messages.into_iter().enumerate() {
            let Some(id) = message.message_id else {
                tracing::error!(
                    index,
                    "SQS message without messageId; failing the whole batch"
                );
                return Err(ForwardError::MissingMessageId { index });
            };
            per_message.push(self.read_message(&id, message.body.as_deref()));
            ids.push(id);
        }

        let jobs: Vec<JobRequest> = per_message
            .iter()
            .flat_map(|message| message.jobs.iter().cloned())
            .collect();
        let job_count = jobs.len();
        let accepted = if jobs.is_empty() {
            true
        } else {
            match self.submit(jobs).await {
                Ok(()) => true,
                Err(error) => {
                    tracing::error!(%error, jobs = job_count, "jobs not accepted; returning their messages to the queue");
                    false
                }
            }
        };

        let failures: Vec<BatchItemFailure> = ids
            .into_iter()
            .zip(&per_message)
            .filter(|(_, message)| {
                message.invalid.is_some() || (!accepted && !message.jobs.is_empty())
            })
            .map(|(id, _)| BatchItemFailure {
                item_identifier: id,
            })
            .collect();
        let skipped: usize = per_message.iter().map(|message| message.skipped).sum();
        tracing::info!(
            messages = per_message.len(),
            jobs = job_count,
            accepted,
            skipped,
            failed_messages = failures.len(),
            "SQS batch handled"
        );
        Ok(SqsBatchResponse {
            batch_item_failures: failures,
        })
    }

    fn read_message(&self, id: &str, body: Option<&str>) -> MessageJobs {
        let notification = body
            .ok_or_else(|| EventError("the message has no body".into()))
            .and_then(event::read_sqs_body);
        let records = match notification {
            Ok(Notification::Records(records)) => records,
            Ok(Notification::TestEvent) => {
                tracing::info!(message_id = id, "s3:TestEvent acknowledged");
                return MessageJobs::default();
            }
            Err(error) => {
                tracing::error!(message_id = id, %error, "unreadable SQS message; it will be retried and then go to the DLQ");
                return MessageJobs {
                    invalid: Some(error.0),
                    ..MessageJobs::default()
                };
            }
        };
        let mut out = MessageJobs::default();
        for record in records {
            match self.read_record(record) {
                RecordOutcome::Job(job) => out.jobs.push(job),
                RecordOutcome::Skipped { .. } => out.skipped += 1,
                RecordOutcome::Invalid(why) => {
                    tracing::error!(message_id = id, reason = %why, "unreadable record; the message will be retried and then go to the DLQ");
                    out.invalid.get_or_insert(why);
                }
            }
        }
        out
    }

    fn read_record(&self, record: Value) -> RecordOutcome {
        let outcome = event::read_record(record, &self.filter);
        if let RecordOutcome::Skipped { key, reason } = &outcome {
            tracing::info!(key = key.as_deref().unwrap_or(""), %reason, "record skipped");
        }
        outcome
    }

    async fn submit(&self, jobs: Vec<JobRequest>) -> Result<(), SubmitError> {
        let count = jobs.len();
        let accepted = self.client.submit(&JobsRequest { jobs }).await?;
        if let Some(accepted) = accepted {
            let duplicates = accepted.jobs.iter().filter(|job| job.duplicate).count();
            tracing::info!(
                sent = count,
                accepted = accepted.jobs.len(),
                duplicates,
                "jobs accepted by the daemon"
            );
        }
        Ok(())
    }
}
