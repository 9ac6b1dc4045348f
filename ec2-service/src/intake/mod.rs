//! How jobs arrive: [`accept`], the signed `POST /v1/jobs` of the forwarder, with
//! [`replay`] detection; [`sqs`], the queue a fleet of daemons reads itself; and
//! [`Intake`], the admission every way in shares (the forwarder's
//! requests, the operator's `reprocess` and `reconcile`): the contract's [`Rules`], one
//! answer per job, durable storage before the answer.

pub mod accept;
pub mod replay;
pub mod sqs;

use std::sync::Arc;

use pipeline_contract::{AnswerStatus, JobAnswer, JobRequest, LogKey, Rules};

use crate::daemon::health::ScratchSpace;
use crate::http_error::ServiceError;
use crate::metrics::Metrics;
use crate::spool::files::JobFiles;
use crate::spool::job::{Job, normalize};
use crate::spool::queue::Queue;

/// Admission into the spool.
#[derive(Debug)]
pub struct Intake {
    pub rules: Rules,
    pub queue: Arc<Queue>,
    pub files: JobFiles,
    pub metrics: Arc<Metrics>,
    pub scratch: ScratchSpace,
}

impl Intake {
    /// Checks every request against the rules, then admits the jobs that pass (durably,
    /// on a blocking thread), answering per job in the request's order. `make` turns a
    /// checked request into a job (an event job, or an operator's). Errors only when
    /// nothing can be admitted now (queue full, draining, scratch disk full or failing).
    pub async fn admit(
        &self,
        requests: Vec<JobRequest>,
        make: impl Fn(JobRequest) -> Job,
    ) -> Result<Vec<JobAnswer>, ServiceError> {
        let mut answers: Vec<Option<JobAnswer>> = Vec::with_capacity(requests.len());
        let mut jobs = Vec::new();
        let mut slots = Vec::new();
        for request in requests {
            match self.rules.check(&request) {
                Ok(()) => {
                    let (request, dropped) = normalize(request);
                    for why in dropped {
                        tracing::warn!(key = %LogKey(&request.key), %why, "an event field was ignored");
                    }
                    slots.push(answers.len());
                    answers.push(None);
                    jobs.push(make(request));
                }
                Err(refusal) => {
                    tracing::info!(key = %LogKey(&request.key), bucket = request.bucket, code = refusal.code(), reason = %refusal, "job refused");
                    self.metrics.rejected(refusal.code());
                    answers.push(Some(JobAnswer {
                        id: None,
                        key: request.key,
                        status: AnswerStatus::Refused,
                        code: Some(refusal.code().to_owned()),
                        message: Some(refusal.to_string()),
                    }));
                }
            }
        }
        if !jobs.is_empty() {
            self.scratch.room().map_err(ServiceError::ScratchFull)?;
            let queue = self.queue.clone();
            let files = self.files.clone();
            let admitted = tokio::task::spawn_blocking(move || queue.admit(jobs, &files))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))??;
            let duplicates = admitted.iter().filter(|a| a.duplicate).count() as u64;
            self.metrics
                .accepted(admitted.len() as u64 - duplicates, duplicates);
            for (slot, admitted) in slots.into_iter().zip(admitted) {
                answers[slot] = Some(JobAnswer {
                    id: Some(admitted.id),
                    key: admitted.key,
                    status: if admitted.duplicate {
                        AnswerStatus::Duplicate
                    } else {
                        AnswerStatus::Accepted
                    },
                    code: None,
                    message: None,
                });
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.expect("every job answered"))
            .collect())
    }

    /// The answers a replayed request gets: what the rules refuse is refused again, the
    /// rest is a duplicate of what the first delivery stored. Nothing is stored.
    pub fn replayed(&self, requests: Vec<JobRequest>) -> Vec<JobAnswer> {
        requests
            .into_iter()
            .map(|request| match self.rules.check(&request) {
                Ok(()) => {
                    let (request, _) = normalize(request);
                    let job = Job::from_event(request);
                    JobAnswer {
                        id: Some(job.id),
                        key: job.request.key,
                        status: AnswerStatus::Duplicate,
                        code: None,
                        message: None,
                    }
                }
                Err(refusal) => JobAnswer {
                    id: None,
                    key: request.key,
                    status: AnswerStatus::Refused,
                    code: Some(refusal.code().to_owned()),
                    message: Some(refusal.to_string()),
                },
            })
            .collect()
    }
}
