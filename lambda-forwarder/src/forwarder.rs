//! The handler: one invocation in, at most one signed request out, and an answer that tells
//! Lambda exactly what failed.
//!
//! - Direct S3 event: every record that passes the filter goes in one request. If the
//!   daemon does not take every job (see [`JobAnswer::is_handled`]), or a record cannot be
//!   read, the invocation fails so that Lambda retries it and then hands it to the failure
//!   destination. (Readable records are still sent first: the daemon deduplicates the
//!   retries.)
//! - SQS batch: jobs are grouped per message and all sent in one request; the daemon answers
//!   per job. `batchItemFailures` names exactly the messages that are not done: those with
//!   a job the daemon did not take (or all that had jobs, when the request as a whole
//!   failed), and those that cannot be read (so they reach the DLQ rather than vanish).
//!   One refused job never fails its neighbours' messages. Messages that filter to nothing,
//!   and test events, succeed. The readable jobs of a partly unreadable message are still
//!   sent; its redelivery is deduplicated.
//! - `s3:TestEvent`: acknowledged, nothing sent.
//!
//! Nothing is ever logged and dropped: every outcome is a success or an error Lambda acts on.

use pipeline_contract::s3_event::{
    self as event, EventError, Incoming, Notification, RecordOutcome,
};
use pipeline_contract::{JobAnswer, JobAnswers, JobRequest, JobsRequest, LogKey};
use serde::Serialize;
use serde_json::Value;

use crate::client::{DaemonClient, SubmitError};
use pipeline_contract::Filter;

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
    /// The daemon answered, but did not take some jobs of a direct S3 event.
    #[error("{count} job(s) not taken by the daemon; first: {first}")]
    NotTaken {
        /// How many.
        count: usize,
        /// The first one's key and code.
        first: String,
    },
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
            Self::NotTaken { .. } => "Forwarder.NotTaken",
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
        if !jobs.is_empty() {
            let answers = match self.submit(jobs).await {
                Ok(answers) => answers,
                Err(error) => {
                    tracing::error!(%error, jobs = forwarded, "jobs not accepted; failing the invocation");
                    return Err(error.into());
                }
            };
            let not_taken: Vec<&JobAnswer> =
                answers.jobs.iter().filter(|a| !a.is_handled()).collect();
            if let Some(first) = not_taken.first() {
                let first = describe(first);
                tracing::error!(not_taken = not_taken.len(), first = %first, "jobs not taken; failing the invocation");
                return Err(ForwardError::NotTaken {
                    count: not_taken.len(),
                    first,
                });
            }
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

        // Each job remembers its message, so that an answer fails only its own message.
        let (owners, jobs): (Vec<usize>, Vec<JobRequest>) = per_message
            .iter()
            .enumerate()
            .flat_map(|(index, message)| message.jobs.iter().map(move |job| (index, job.clone())))
            .unzip();
        let job_count = jobs.len();
        let mut failed = vec![false; per_message.len()];
        if !jobs.is_empty() {
            match self.submit(jobs).await {
                Ok(answers) => {
                    for (owner, answer) in owners.iter().zip(&answers.jobs) {
                        if !answer.is_handled() {
                            tracing::error!(
                                message_id = ids[*owner],
                                job = %describe(answer),
                                "job not taken; its message returns to the queue"
                            );
                            failed[*owner] = true;
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(%error, jobs = job_count, "jobs not accepted; returning their messages to the queue");
                    for owner in &owners {
                        failed[*owner] = true;
                    }
                }
            }
        }

        let failures: Vec<BatchItemFailure> = ids
            .into_iter()
            .zip(&per_message)
            .zip(&failed)
            .filter(|((_, message), failed)| message.invalid.is_some() || **failed)
            .map(|((id, _), _)| BatchItemFailure {
                item_identifier: id,
            })
            .collect();
        let skipped: usize = per_message.iter().map(|message| message.skipped).sum();
        tracing::info!(
            messages = per_message.len(),
            jobs = job_count,
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
            tracing::info!(key = %LogKey(key.as_deref().unwrap_or("")), %reason, "record skipped");
        }
        outcome
    }

    async fn submit(&self, jobs: Vec<JobRequest>) -> Result<JobAnswers, SubmitError> {
        let count = jobs.len();
        let answers = self.client.submit(&JobsRequest { jobs }).await?;
        let taken = answers.jobs.iter().filter(|a| a.is_handled()).count();
        tracing::info!(sent = count, taken, "jobs answered by the daemon");
        Ok(answers)
    }
}

/// One answer for a log line: the key (escaped) and why it was not taken.
fn describe(answer: &JobAnswer) -> String {
    format!(
        "{} {}: {}",
        LogKey(&answer.key),
        answer.code.as_deref().unwrap_or("refused"),
        answer.message.as_deref().unwrap_or("")
    )
}
