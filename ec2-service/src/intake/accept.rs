//! `POST /v1/jobs`: verify the signature, validate every job, admit them durably, answer.
//!
//! Handlers verify, validate and admit; they never process. Admission (fsync) runs on a
//! blocking thread, never on the actix workers.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use pipeline_contract::{
    JOBS_METHOD, JobsAccepted, JobsRequest, KeySet, ReceivedSignature, is_derived_key,
};

use crate::daemon::health::Readiness;
use crate::http_error::ServiceError;
use crate::metrics::Metrics;
use crate::spool::files::JobFiles;
use crate::spool::job::{Job, validate_request};
use crate::spool::queue::Queue;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub keys: KeySet,
    pub max_skew_secs: u64,
    pub max_body_bytes: usize,
    pub source_bucket: String,
    pub derived_prefix: String,
    pub queue: Arc<Queue>,
    pub files: JobFiles,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    /// The daemon's runtime, where AWS calls run (the actix workers have their own).
    pub runtime: tokio::runtime::Handle,
    pub started: Instant,
    pub started_at: String,
}

pub async fn post_jobs(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ServiceError> {
    let result = accept_jobs(&request, body, &state).await;
    if let Err(error) = &result {
        state.metrics.rejected(error.code());
    }
    result
}

async fn accept_jobs(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ServiceError> {
    let body = match body.to_bytes_limited(state.max_body_bytes).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(ServiceError::BodyUnreadable(e.to_string())),
        Err(_) => {
            return Err(ServiceError::BodyTooLarge {
                limit: state.max_body_bytes,
            });
        }
    };
    let received =
        ReceivedSignature::from_lookup(|name| request.headers().get(name)?.to_str().ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let key_id = pipeline_contract::verify(
        &state.keys,
        JOBS_METHOD,
        request.path(),
        &body,
        &received,
        now,
        state.max_skew_secs,
    )?;
    let parsed: JobsRequest =
        serde_json::from_slice(&body).map_err(|e| ServiceError::MalformedBody(e.to_string()))?;
    for (index, job) in parsed.jobs.iter().enumerate() {
        validate_request(job).map_err(|reason| ServiceError::InvalidJob { index, reason })?;
        if job.bucket != state.source_bucket {
            return Err(ServiceError::WrongBucket {
                index,
                bucket: job.bucket.clone(),
            });
        }
        if is_derived_key(&job.key, &state.derived_prefix) {
            return Err(ServiceError::DerivedKey {
                index,
                key: job.key.clone(),
                prefix: state.derived_prefix.clone(),
            });
        }
    }
    if !parsed.jobs.is_empty() {
        state
            .readiness
            .scratch_room()
            .map_err(ServiceError::ScratchFull)?;
    }
    let jobs: Vec<Job> = parsed.jobs.into_iter().map(Job::from_event).collect();
    let accepted = admit(state, jobs).await?;
    tracing::debug!(key_id, jobs = accepted.jobs.len(), "jobs accepted");
    Ok(HttpResponse::Accepted().json(accepted))
}

/// Admits jobs on a blocking thread (the store fsyncs) and counts them.
pub async fn admit(state: &AppState, jobs: Vec<Job>) -> Result<JobsAccepted, ServiceError> {
    let queue = state.queue.clone();
    let store = state.files.clone();
    let answers = web::block(move || queue.admit(jobs, &store))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
    let duplicates = answers.iter().filter(|a| a.duplicate).count() as u64;
    state
        .metrics
        .accepted(answers.len() as u64 - duplicates, duplicates);
    Ok(JobsAccepted { jobs: answers })
}
