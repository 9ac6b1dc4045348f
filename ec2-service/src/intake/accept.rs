//! `POST /v1/jobs`: the forwarder's signed requests.
//!
//! Nothing unauthenticated is held in memory: the signature headers (present, the key
//! known, the timestamp inside the window) and the declared length are checked before a
//! byte of the body is read; bodies are then read under a timeout and a bound on how many
//! are held at once, and the signature is verified over the body. A request seen before
//! (the same signature inside the window) is answered as a duplicate without any work.
//! Then every job is answered on its own ([`Intake::admit`]): one refused job never sinks
//! its neighbours.
//!
//! Handlers verify, check and admit; they never process.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::BytesMut;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use pipeline_contract::{JOBS_METHOD, JobAnswers, JobsRequest, KeySet, ReceivedSignature};
use tokio::sync::Semaphore;

use super::Intake;
use super::replay::Seen;
use crate::http_error::ServiceError;
use crate::spool::job::Job;

/// How many accepted signatures are remembered for replay detection, at most.
const REPLAY_CAPACITY: usize = 100_000;

/// What `POST /v1/jobs` needs.
#[derive(Debug)]
pub struct Accept {
    pub intake: Arc<Intake>,
    pub keys: KeySet,
    pub max_skew_secs: u64,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    /// One permit per body held in memory at once.
    bodies: Semaphore,
    seen: Seen,
}

impl Accept {
    pub fn new(
        intake: Arc<Intake>,
        keys: KeySet,
        max_skew_secs: u64,
        max_body_bytes: usize,
        body_timeout: Duration,
        max_bodies: usize,
    ) -> Accept {
        Accept {
            intake,
            keys,
            max_skew_secs,
            max_body_bytes,
            body_timeout,
            bodies: Semaphore::new(max_bodies.max(1)),
            seen: Seen::new(REPLAY_CAPACITY),
        }
    }
}

pub async fn post_jobs(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<Accept>,
) -> Result<HttpResponse, ServiceError> {
    let result = accept_jobs(&request, body, &state).await;
    if let Err(error) = &result {
        state.intake.metrics.rejected(error.code());
    }
    result
}

/// The body, at most `limit` bytes, in one buffer of the declared length: what a permit
/// holds is that length, not the doubling growth of a buffer filled chunk by chunk.
async fn read_body(
    mut body: web::Payload,
    declared: usize,
    limit: usize,
) -> Result<BytesMut, ServiceError> {
    let too_large = ServiceError::BodyTooLarge { limit };
    let mut buffer = BytesMut::with_capacity(declared.min(limit));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ServiceError::BodyUnreadable(e.to_string()))?;
        if buffer.len() + chunk.len() > limit {
            return Err(too_large);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn accept_jobs(
    request: &HttpRequest,
    body: web::Payload,
    state: &Accept,
) -> Result<HttpResponse, ServiceError> {
    let received =
        ReceivedSignature::from_lookup(|name| request.headers().get(name)?.to_str().ok());
    let checked =
        pipeline_contract::check_headers(&state.keys, &received, now_secs(), state.max_skew_secs)?;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > state.max_body_bytes as u64) {
        return Err(ServiceError::BodyTooLarge {
            limit: state.max_body_bytes,
        });
    }

    let deadline = tokio::time::Instant::now() + state.body_timeout;
    let _permit = tokio::time::timeout_at(deadline, state.bodies.acquire())
        .await
        .map_err(|_| ServiceError::Busy)?
        .map_err(|_| ServiceError::ShuttingDown)?;
    let capacity = declared.map_or(0, |length| length as usize);
    let body = tokio::time::timeout_at(deadline, read_body(body, capacity, state.max_body_bytes))
        .await
        .map_err(|_| ServiceError::BodyTimeout {
            secs: state.body_timeout.as_secs(),
        })??;
    let key_id = checked.verify_body(JOBS_METHOD, request.path(), &body)?;
    let replay = state.seen.check_and_insert(
        *checked.signature(),
        checked.timestamp().saturating_add(state.max_skew_secs),
        now_secs(),
    );
    let parsed: JobsRequest =
        serde_json::from_slice(&body).map_err(|e| ServiceError::MalformedBody(e.to_string()))?;
    drop(body);
    let answers = if replay {
        state.intake.metrics.replayed();
        tracing::info!(
            key_id,
            jobs = parsed.jobs.len(),
            "replayed request answered as duplicates"
        );
        state.intake.replayed(parsed.jobs)
    } else {
        state.intake.admit(parsed.jobs, Job::from_event).await?
    };
    tracing::debug!(key_id, jobs = answers.len(), "jobs answered");
    Ok(HttpResponse::Accepted().json(JobAnswers { jobs: answers }))
}
