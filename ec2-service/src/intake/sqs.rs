//! Fleet mode (`[intake] mode = "sqs"`): the daemon long-polls the SQS queue that the S3
//! notification feeds, itself. The queue, not the scratch disk, keeps the jobs, so any
//! number of daemons can share it and losing a box loses nothing.
//!
//! - Bodies are S3 event notifications (and `s3:TestEvent`), read by the contract's code
//!   with the same filter as the forwarder; or an [`OperatorMessage`] that reconcile sends
//!   in fleet mode.
//! - A box receives no more than it can start (`[server] concurrency` minus what it holds).
//! - While a job works, its message is kept invisible ([`Messages::extend_due`], every few
//!   seconds): a render slower than the visibility timeout is never delivered twice.
//! - A message is deleted only once every job it holds has a final record. A transient
//!   failure makes it visible again after the backoff (SQS's receive count is the attempt
//!   count); a message that SQS is delivering for the last time before its DLQ gets a
//!   FAILED record saying so first, so a message that keeps killing daemons ends in the
//!   DLQ with its record telling why.
//! - SIGTERM: receiving stops at once, the jobs that have not started are handed back
//!   (visibility 0), those in flight get the drain, and what is left after it is handed
//!   back too. After a `kill -9` the messages come back after their visibility timeout.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use pipeline_contract::s3_event::{Notification, RecordOutcome, read_record, read_sqs_body};
use pipeline_contract::{Filter, LogKey, OperatorMessage};

use super::Intake;
use crate::aws::{SdkFailure, classify};
use crate::error_chain::error_chain;
use crate::spool::job::{Job, MessageRef, Origin, normalize};
use crate::spool::queue::Queue;

/// Why an SQS call failed.
#[derive(Debug, thiserror::Error)]
#[error("SQS {operation} failed: {failure}")]
pub struct QueueError {
    pub operation: &'static str,
    pub failure: SdkFailure,
}

fn sdk<E>(
    operation: &'static str,
) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>) -> QueueError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |error| QueueError {
        operation,
        failure: classify(&error),
    }
}

/// A message this daemon holds: its latest receipt and the jobs it is waiting for.
#[derive(Debug)]
struct Held {
    receipt: String,
    jobs: HashSet<String>,
    /// When its visibility must be extended next.
    extend_at: Instant,
}

#[derive(Debug, Default)]
struct Book {
    messages: HashMap<String, Held>,
    by_job: HashMap<String, Vec<String>>,
}

impl Book {
    /// Unlinks a job; returns the messages it was the last job of.
    fn job_ended(&mut self, job_id: &str) -> Vec<(String, String)> {
        let mut emptied = Vec::new();
        for message_id in self.by_job.remove(job_id).unwrap_or_default() {
            if let Some(held) = self.messages.get_mut(&message_id) {
                held.jobs.remove(job_id);
                if held.jobs.is_empty() {
                    let held = self.messages.remove(&message_id).expect("just found");
                    emptied.push((message_id, held.receipt));
                }
            }
        }
        emptied
    }

    /// Forgets every message linked to a job (whatever else they hold); returns them.
    fn release(&mut self, job_id: &str) -> Vec<(String, String)> {
        let mut released = Vec::new();
        for message_id in self.by_job.remove(job_id).unwrap_or_default() {
            if let Some(held) = self.messages.remove(&message_id) {
                for other in &held.jobs {
                    if let Some(list) = self.by_job.get_mut(other) {
                        list.retain(|m| *m != message_id);
                    }
                }
                released.push((message_id, held.receipt));
            }
        }
        released
    }
}

/// The messages this daemon holds, and the calls that end them.
#[derive(Debug)]
pub struct Messages {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    visibility: Duration,
    book: Mutex<Book>,
}

impl Messages {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String, visibility: Duration) -> Messages {
        Messages {
            client,
            queue_url,
            visibility,
            book: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds a message for these jobs (a redelivery of a held message updates its receipt).
    fn hold(&self, message_id: &str, receipt: &str, jobs: &[String]) {
        let mut book = self.book();
        let extend_at = Instant::now() + self.visibility / 2;
        let held = book
            .messages
            .entry(message_id.to_owned())
            .or_insert_with(|| Held {
                receipt: receipt.to_owned(),
                jobs: HashSet::new(),
                extend_at,
            });
        held.receipt = receipt.to_owned();
        held.extend_at = extend_at;
        held.jobs.extend(jobs.iter().cloned());
        for job in jobs {
            let list = book.by_job.entry(job.clone()).or_default();
            if !list.iter().any(|m| m == message_id) {
                list.push(message_id.to_owned());
            }
        }
    }

    /// How many messages are held.
    pub fn held(&self) -> usize {
        self.book().messages.len()
    }

    /// A job has its final record: the messages it was the last job of are deleted.
    pub async fn job_done(&self, job: &Job) {
        let emptied = self.book().job_ended(&job.id);
        for (message_id, receipt) in emptied {
            let deleted = self
                .client
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(&receipt)
                .send()
                .await
                .map_err(sdk("DeleteMessage"));
            if let Err(error) = deleted {
                // It comes back after its visibility timeout; its record refuses the claim.
                tracing::warn!(message_id, key = %LogKey(job.key()), error = %error_chain(&error), "cannot delete a finished job's message");
            }
        }
    }

    /// A job must run again later: its messages become visible after `delay` (0: now).
    pub async fn job_again(&self, job: &Job, delay: Duration) {
        let released = self.book().release(&job.id);
        self.make_visible(released, delay).await;
    }

    /// Hands back every held message now (visibility 0): another daemon takes them.
    pub async fn hand_back_all(&self) -> usize {
        let released: Vec<(String, String)> = {
            let mut book = self.book();
            book.by_job.clear();
            book.messages
                .drain()
                .map(|(id, held)| (id, held.receipt))
                .collect()
        };
        let count = released.len();
        self.make_visible(released, Duration::ZERO).await;
        count
    }

    async fn make_visible(&self, messages: Vec<(String, String)>, delay: Duration) {
        let secs = delay.as_secs().min(43_200) as i32;
        for chunk in messages.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (_, receipt))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(secs)
                        .build()
                        .ok()
                })
                .collect();
            let changed = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sdk("ChangeMessageVisibilityBatch"));
            if let Err(error) = changed {
                // They come back after their visibility timeout anyway.
                tracing::warn!(messages = chunk.len(), error = %error_chain(&error), "cannot hand messages back early");
            }
        }
    }

    /// Extends the visibility of the held messages that are due, by the visibility timeout.
    pub async fn extend_due(&self) {
        let now = Instant::now();
        let due: Vec<(String, String)> = {
            let mut book = self.book();
            book.messages
                .iter_mut()
                .filter(|(_, held)| held.extend_at <= now)
                .map(|(id, held)| {
                    held.extend_at = now + self.visibility / 2;
                    (id.clone(), held.receipt.clone())
                })
                .collect()
        };
        self.make_visible(due, self.visibility).await;
    }
}

/// The receiving side.
#[derive(Debug)]
pub struct SqsIntake {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub filter: Filter,
    pub wait_secs: i32,
    pub visibility: Duration,
    pub concurrency: usize,
    pub intake: Arc<Intake>,
    pub messages: Arc<Messages>,
}

/// The queue's `maxReceiveCount`, if it has a redrive policy (a DLQ).
pub async fn max_receive_count(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Option<u32>, QueueError> {
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(sdk("GetQueueAttributes"))?;
    let policy = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    Ok(policy.and_then(|p| match &p["maxReceiveCount"] {
        serde_json::Value::Number(n) => n.as_u64().map(|n| n as u32),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }))
}

impl SqsIntake {
    /// Receives until `stop` turns true.
    pub async fn run(
        &self,
        max_receive_count: Option<u32>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let queue: &Arc<Queue> = &self.intake.queue;
        loop {
            if *stop.borrow() {
                break;
            }
            let depth = queue.depth();
            let held = depth.waiting + depth.in_flight;
            let room = self.concurrency.saturating_sub(held).min(10);
            if room == 0 {
                tokio::select! {
                    _ = queue.changed(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                continue;
            }
            let received = tokio::select! {
                received = self.receive(room as i32) => received,
                _ = stop.wait_for(|s| *s) => break,
            };
            match received {
                Ok(messages) => {
                    for message in messages {
                        self.take(message, max_receive_count).await;
                    }
                }
                Err(error) => {
                    let transient = error.failure.kind.is_transient();
                    tracing::warn!(error = %error_chain(&error), transient, "cannot receive from the queue; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
            }
        }
        tracing::info!("stopped receiving from the queue");
    }

    async fn receive(&self, max: i32) -> Result<Vec<aws_sdk_sqs::types::Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(self.wait_secs)
            .visibility_timeout(self.visibility.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(sdk("ReceiveMessage"))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// One received message: its jobs admitted (and the message held), or the message
    /// deleted when it holds no job, or left to come back when it cannot be read.
    async fn take(&self, message: aws_sdk_sqs::types::Message, max_receive_count: Option<u32>) {
        let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else {
            tracing::error!("a message without an id or a receipt handle; it will come back");
            return;
        };
        let receive_count: u32 = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let reference = MessageRef {
            message_id: id.to_owned(),
            receive_count,
            last_delivery: max_receive_count.is_some_and(|max| receive_count >= max),
        };
        let body = message.body().unwrap_or_default();
        let jobs = match self.jobs_of(body, &reference) {
            Ok(jobs) => jobs,
            Err(why) => {
                tracing::error!(message_id = id, receive_count, reason = %why, "unreadable message; it will come back and then go to the DLQ");
                return;
            }
        };
        if jobs.is_empty() {
            self.delete(id, receipt).await;
            return;
        }
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        self.messages.hold(id, receipt, &ids);
        let queue = self.intake.queue.clone();
        let admitted = tokio::task::spawn_blocking(move || queue.admit_volatile(jobs)).await;
        match admitted {
            Ok(Ok(admitted)) => {
                let duplicates = admitted.iter().filter(|a| a.duplicate).count() as u64;
                self.intake
                    .metrics
                    .accepted(admitted.len() as u64 - duplicates, duplicates);
            }
            Ok(Err(error)) => {
                tracing::warn!(message_id = id, error = %error, "cannot take the message's jobs now; handing it back");
                for job in &ids {
                    let released = self.messages.book().release(job);
                    self.messages
                        .make_visible(released, Duration::from_secs(5))
                        .await;
                }
            }
            Err(error) => tracing::error!(message_id = id, error = %error, "admission failed"),
        }
    }

    /// The jobs a message body holds.
    fn jobs_of(&self, body: &str, reference: &MessageRef) -> Result<Vec<Job>, String> {
        let with_message = |mut job: Job| {
            job.message = Some(reference.clone());
            job
        };
        if let Ok(operator) = serde_json::from_str::<OperatorMessage>(body) {
            let job = operator.operator_job;
            let origin = match job.origin.as_str() {
                "reprocess" => Origin::Reprocess,
                _ => Origin::Reconcile,
            };
            let request = Job::operator_request(origin, &job.bucket, &job.key, job.etag);
            return match self.filter.rules().check(&request) {
                Ok(()) => Ok(vec![with_message(Job::operator(origin, request))]),
                Err(refusal) if refusal.is_deliberate_skip() => Ok(Vec::new()),
                Err(refusal) => Err(refusal.to_string()),
            };
        }
        let records = match read_sqs_body(body).map_err(|e| e.0)? {
            Notification::TestEvent => return Ok(Vec::new()),
            Notification::Records(records) => records,
        };
        let mut jobs = Vec::new();
        for record in records {
            match read_record(record, &self.filter) {
                RecordOutcome::Job(request) => {
                    let (request, dropped) = normalize(request);
                    for why in dropped {
                        tracing::warn!(key = %LogKey(&request.key), %why, "an event field was ignored");
                    }
                    jobs.push(with_message(Job::from_event(request)));
                }
                RecordOutcome::Skipped { key, reason } => {
                    tracing::info!(key = %LogKey(key.as_deref().unwrap_or("")), %reason, "record skipped");
                }
                RecordOutcome::Invalid(why) => return Err(why),
            }
        }
        Ok(jobs)
    }

    async fn delete(&self, id: &str, receipt: &str) {
        let deleted = self
            .client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(sdk("DeleteMessage"));
        if let Err(error) = deleted {
            tracing::warn!(message_id = id, error = %error_chain(&error), "cannot delete a message with nothing to do");
        }
    }
}

/// Extends the visibility of held messages until `stop` turns true.
pub async fn keep_invisible(
    messages: Arc<Messages>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    loop {
        // (No await inside the arms: the select's output holds the watch's read guard.)
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            break;
        }
        messages.extend_due().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_ends_when_its_last_job_does_and_a_retry_releases_it_whole() {
        let mut book = Book::default();
        let held = |jobs: &[&str]| Held {
            receipt: "r1".into(),
            jobs: jobs.iter().map(|j| (*j).to_owned()).collect(),
            extend_at: Instant::now(),
        };
        book.messages.insert("m1".into(), held(&["a", "b"]));
        book.by_job.insert("a".into(), vec!["m1".into()]);
        book.by_job.insert("b".into(), vec!["m1".into()]);
        assert!(book.job_ended("a").is_empty(), "b still runs");
        assert_eq!(book.job_ended("b"), [("m1".to_owned(), "r1".to_owned())]);
        assert!(book.messages.is_empty());

        book.messages.insert("m2".into(), held(&["c", "d"]));
        book.by_job.insert("c".into(), vec!["m2".into()]);
        book.by_job.insert("d".into(), vec!["m2".into()]);
        assert_eq!(book.release("c"), [("m2".to_owned(), "r1".to_owned())]);
        assert!(
            book.job_ended("d").is_empty(),
            "released: nothing left to delete"
        );
        assert!(book.messages.is_empty());
    }
}
