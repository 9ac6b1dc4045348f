//! Processing jobs: the dispatcher that starts them (a fixed number at once), and the
//! stages of one job with its failure handling.
//!
//! One attempt of a job: claim the record → for `process`: HEAD (size limit before any
//! download) → stream to the scratch disk → render on the pool → PUT every variant (and
//! remove those an earlier recipe made that this one does not) → write DONE; for `delete`: remove the variants → write DELETED. The scratch file is removed at
//! the end of every attempt.
//!
//! Failures: a transient one (throttling, 5xx, timeouts, connection errors) puts the job
//! back with an exponential, jittered delay, up to `[retry] max_attempts`, then it ends
//! FAILED with its code; a permanent one (undecodable, over a limit, source gone) ends
//! FAILED at once. The job file is removed only once its record says how it ended; when
//! the record itself cannot be written, the job stays stored and is retried, so no
//! accepted job silently vanishes.

use super::Context;
use super::retry::backoff;
use crate::aws::records::{
    Claim, Done, RecordError, STATUS_DELETED, STATUS_DONE, STATUS_FAILED, VariantRecord, Written,
};
use crate::aws::s3::{S3Error, SourceHead, Upload, variant_key, variants_prefix};
use crate::error_chain::error_chain;
use crate::metrics::{Metrics, Stage};
use crate::pipeline::{Metadata, PipelineError};
use crate::spool::job::{Job, now_rfc3339};
use crate::spool::queue::Finished;
use crate::work::render_pool::{RenderError, RenderSettings};
use pipeline_contract::JobAction;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Why one attempt of a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("the rendering pool went away")]
    PoolGone,
    #[error("cannot read the downloaded source: {0}")]
    Scratch(#[source] std::io::Error),
}

impl From<RenderError> for JobError {
    fn from(error: RenderError) -> Self {
        match error {
            RenderError::Pipeline(e) => JobError::Pipeline(e),
            RenderError::PoolGone => JobError::PoolGone,
        }
    }
}

impl JobError {
    pub fn is_transient(&self) -> bool {
        match self {
            JobError::S3(e) => e.is_transient(),
            JobError::Pipeline(_) => false,
            JobError::PoolGone | JobError::Scratch(_) => true,
        }
    }

    /// The stable code of the FAILED record.
    pub fn code(&self) -> &'static str {
        match self {
            JobError::S3(e) => e.code(),
            JobError::Pipeline(e) => e.code(),
            JobError::PoolGone => "internal-error",
            JobError::Scratch(_) => "scratch-error",
        }
    }

    /// Whether this is a problem of ours or of AWS (logged at ERROR), not of the source.
    fn is_server_side(&self) -> bool {
        match self {
            JobError::S3(e) => !matches!(e, S3Error::NotFound { .. } | S3Error::TooLarge { .. }),
            JobError::Pipeline(e) => matches!(e, PipelineError::Internal(_)),
            JobError::PoolGone | JobError::Scratch(_) => true,
        }
    }
}

/// Wall time per stage of one attempt.
#[derive(Debug, Default, Clone, Copy)]
struct Timings {
    stages: [Duration; Stage::ALL.len()],
}

impl Timings {
    async fn time<T>(&mut self, stage: Stage, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let output = work.await;
        self.stages[stage as usize] += started.elapsed();
        output
    }

    fn add(&mut self, stage: Stage, duration: Duration) {
        self.stages[stage as usize] += duration;
    }

    fn ms(&self, stage: Stage) -> u64 {
        self.stages[stage as usize].as_millis() as u64
    }

    fn report(&self, metrics: &Metrics) {
        for stage in Stage::ALL {
            let spent = self.stages[stage as usize];
            if !spent.is_zero() {
                metrics.observe(stage, spent);
            }
        }
    }
}

/// What a successful `process` attempt produced, before its record is written.
#[derive(Debug)]
struct Processed {
    head: SourceHead,
    metadata: Metadata,
    variants: Vec<VariantRecord>,
    bytes_out: u64,
    recipe_version: String,
}

/// One attempt of one job, with everything that follows from its outcome.
pub async fn run_job(ctx: Arc<Context>, mut job: Job) {
    job.attempts += 1;
    let started = Instant::now();
    let mut timings = Timings::default();
    let settings = ctx.render_settings();

    let claim = timings.time(Stage::Record, ctx.records.claim(&job)).await;
    let claim = match claim {
        Ok(claim) => claim,
        Err(error) => return record_unavailable(&ctx, job, &error, timings).await,
    };
    if let Claim::Superseded { status, event } = claim {
        let message = format!(
            "the record already holds {} ({})",
            event.as_deref().unwrap_or("this or a newer event"),
            status.as_deref().unwrap_or("status unknown")
        );
        return finish(
            &ctx,
            job,
            "SKIPPED",
            None,
            Some(message),
            timings,
            started,
            0,
            0,
        )
        .await;
    }

    let outcome = match job.request.action {
        JobAction::Process => process(&ctx, &job, &settings, &mut timings).await.map(Some),
        JobAction::Delete => delete(&ctx, &job, &mut timings).await.map(|_| None),
    };
    let _ = tokio::fs::remove_file(ctx.files.source_path(&job.id)).await;
    let processing_ms = started.elapsed().as_millis() as u64;

    let (written, status, code, message, bytes_in, bytes_out) = match outcome {
        Ok(Some(processed)) => {
            let done = Done {
                head: &processed.head,
                metadata: &processed.metadata,
                variants: &processed.variants,
                recipe_version: &processed.recipe_version,
                attempts: job.attempts,
                processing_ms,
            };
            let written = timings
                .time(Stage::Record, ctx.records.complete(&job, &done))
                .await;
            (
                written,
                STATUS_DONE,
                None,
                None,
                processed.head.size,
                processed.bytes_out,
            )
        }
        Ok(None) => {
            let written = timings
                .time(Stage::Record, ctx.records.mark_deleted(&job, processing_ms))
                .await;
            (written, STATUS_DELETED, None, None, 0, 0)
        }
        Err(error) if error.is_transient() && job.attempts < ctx.retry.max_attempts => {
            return retry(&ctx, job, &error, timings).await;
        }
        Err(error) => {
            let mut message = error_chain(&error);
            if error.is_transient() {
                message = format!("gave up after {} attempts: {message}", job.attempts);
            }
            if error.is_server_side() {
                tracing::error!(key = job.key(), job = %job.id, code = error.code(), attempts = job.attempts, error = %message, "job failed");
            }
            let written = timings
                .time(
                    Stage::Record,
                    ctx.records.fail(
                        &job,
                        error.code(),
                        &message,
                        &settings.recipe.version,
                        processing_ms,
                    ),
                )
                .await;
            (
                written,
                STATUS_FAILED,
                Some(error.code()),
                Some(message),
                0,
                0,
            )
        }
    };
    match written {
        Ok(Written::Yes) => {
            finish(
                &ctx,
                job,
                status,
                code.map(str::to_owned),
                message,
                timings,
                started,
                bytes_in,
                bytes_out,
            )
            .await;
        }
        Ok(Written::LostClaim) => {
            let message = "another job claimed the record while this one ran".to_owned();
            finish(
                &ctx,
                job,
                "SKIPPED",
                None,
                Some(message),
                timings,
                started,
                0,
                0,
            )
            .await;
        }
        Err(error) => record_unavailable(&ctx, job, &error, timings).await,
    }
}

async fn process(
    ctx: &Context,
    job: &Job,
    settings: &Arc<RenderSettings>,
    timings: &mut Timings,
) -> Result<Processed, JobError> {
    let request = &job.request;
    let limits = &settings.limits;
    let path = ctx.files.source_path(&job.id);
    let head = timings
        .time(Stage::Download, ctx.s3.head(&request.bucket, &request.key))
        .await?;
    limits.check_source_bytes(head.size)?;
    let downloaded = timings
        .time(
            Stage::Download,
            ctx.s3.download(
                &request.bucket,
                &request.key,
                head.etag.as_deref(),
                limits.max_source_bytes,
                &path,
            ),
        )
        .await?;
    ctx.metrics.bytes_in(downloaded);
    let bytes = tokio::fs::read(&path).await.map_err(JobError::Scratch)?;
    let rendered = ctx.pool.render(Arc::new(bytes), settings.clone()).await?;
    let t = &rendered.timings;
    timings.add(Stage::Decode, t.probe + t.decode);
    timings.add(Stage::Render, t.color + t.orient + t.resize + t.encode);

    let recipe_version = settings.recipe.version.clone();
    let mut uploads = JoinSet::new();
    let mut variants = Vec::with_capacity(rendered.variants.len());
    let mut bytes_out = 0;
    for variant in rendered.variants {
        let key = variant_key(
            &ctx.derived_prefix,
            &request.key,
            &variant.name,
            variant.format.extension(),
        );
        bytes_out += variant.bytes.len() as u64;
        variants.push(VariantRecord {
            name: variant.name.clone(),
            key: key.clone(),
            width: variant.width,
            height: variant.height,
            bytes: variant.bytes.len() as u64,
            format: variant.format.name(),
        });
        let s3 = ctx.s3.clone();
        let bucket = ctx.output_bucket.clone();
        let upload = Upload {
            key,
            content_type: variant.format.content_type(),
            bytes: variant.bytes,
            source_key: request.key.clone(),
            recipe_version: recipe_version.clone(),
        };
        uploads.spawn(async move { s3.put_variant(&bucket, upload).await });
    }
    timings
        .time(Stage::Upload, async {
            let mut first_error = None;
            while let Some(result) = uploads.join_next().await {
                let result = result.unwrap_or_else(|e| {
                    Err(S3Error::Scratch {
                        path: "upload task".to_owned(),
                        source: std::io::Error::other(e),
                    })
                });
                if let Err(e) = result {
                    first_error.get_or_insert(e);
                }
            }
            if let Some(error) = first_error {
                return Err(error);
            }
            // Variants an earlier recipe made and this one does not: removed, so that the
            // output bucket holds what the record lists.
            let keep: Vec<&str> = variants.iter().map(|v| v.key.as_str()).collect();
            let prefix = variants_prefix(&ctx.derived_prefix, &request.key);
            ctx.s3
                .delete_variants(&ctx.output_bucket, &prefix, &keep)
                .await
                .map(|_| ())
        })
        .await?;
    ctx.metrics.bytes_out(bytes_out);
    Ok(Processed {
        head,
        metadata: rendered.metadata,
        variants,
        bytes_out,
        recipe_version,
    })
}

async fn delete(ctx: &Context, job: &Job, timings: &mut Timings) -> Result<usize, JobError> {
    let prefix = variants_prefix(&ctx.derived_prefix, job.key());
    let removed = timings
        .time(
            Stage::Upload,
            ctx.s3.delete_variants(&ctx.output_bucket, &prefix, &[]),
        )
        .await?;
    Ok(removed)
}

/// Puts the job back for a later attempt after a transient failure.
async fn retry(ctx: &Context, mut job: Job, error: &JobError, timings: Timings) {
    let delay = backoff(job.attempts, ctx.retry.base_delay(), ctx.retry.max_delay());
    let message = error_chain(error);
    tracing::warn!(
        key = job.key(), job = %job.id, code = error.code(), attempt = job.attempts,
        max_attempts = ctx.retry.max_attempts, retry_in_ms = delay.as_millis() as u64,
        error = %message, "transient failure, will retry"
    );
    job.last_error = Some(format!("{}: {message}", error.code()));
    requeue(ctx, job, delay, timings).await;
}

/// The record could not be read or written: the job stays stored and comes back later,
/// however many attempts it took (it cannot end without a record).
async fn record_unavailable(ctx: &Context, mut job: Job, error: &RecordError, timings: Timings) {
    let delay = backoff(job.attempts, ctx.retry.base_delay(), ctx.retry.max_delay());
    let message = error_chain(error);
    if job.attempts == ctx.retry.max_attempts {
        tracing::error!(
            key = job.key(), job = %job.id, code = error.code(), attempts = job.attempts,
            error = %message,
            "cannot write the record; the job stays stored and keeps being retried"
        );
    } else {
        tracing::warn!(
            key = job.key(), job = %job.id, code = error.code(), attempt = job.attempts,
            retry_in_ms = delay.as_millis() as u64, error = %message,
            "cannot write the record, will retry"
        );
    }
    job.last_error = Some(format!("{}: {message}", error.code()));
    requeue(ctx, job, delay, timings).await;
}

async fn requeue(ctx: &Context, job: Job, delay: Duration, timings: Timings) {
    ctx.metrics.retried();
    timings.report(&ctx.metrics);
    let store = ctx.files.clone();
    let stored = job.clone();
    match tokio::task::spawn_blocking(move || store.update(&stored)).await {
        Ok(Ok(())) => {}
        // The previous file is still there: the job is not lost, only its attempt count.
        Ok(Err(e)) => {
            tracing::error!(job = %job.id, error = %error_chain(&e), "cannot update the stored job");
        }
        Err(e) => tracing::error!(job = %job.id, error = %e, "cannot update the stored job"),
    }
    ctx.queue.retry_later(job, delay);
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    ctx: &Context,
    job: Job,
    status: &str,
    code: Option<String>,
    message: Option<String>,
    timings: Timings,
    started: Instant,
    bytes_in: u64,
    bytes_out: u64,
) {
    timings.report(&ctx.metrics);
    let store = ctx.files.clone();
    let id = job.id.clone();
    match tokio::task::spawn_blocking(move || store.remove(&id)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            // Replaying a finished job is harmless (its record refuses the claim).
            tracing::error!(job = %job.id, error = %error_chain(&e), "cannot remove the finished job's file");
        }
        Err(e) => {
            tracing::error!(job = %job.id, error = %e, "cannot remove the finished job's file");
        }
    }
    let code_text = code.clone().unwrap_or_default();
    ctx.metrics.finished(status, &code_text);
    tracing::info!(
        key = job.key(),
        job = %job.id,
        action = ?job.request.action,
        origin = job.origin.name(),
        status,
        code = code_text.as_str(),
        attempts = job.attempts,
        bytes_in,
        bytes_out,
        download_ms = timings.ms(Stage::Download),
        decode_ms = timings.ms(Stage::Decode),
        render_ms = timings.ms(Stage::Render),
        upload_ms = timings.ms(Stage::Upload),
        record_ms = timings.ms(Stage::Record),
        total_ms = started.elapsed().as_millis() as u64,
        detail = message.as_deref().unwrap_or(""),
        "job finished"
    );
    ctx.queue.finish(Finished {
        id: job.id.clone(),
        key: job.request.key.clone(),
        origin: job.origin.name().to_owned(),
        status: status.to_owned(),
        code,
        message,
        attempts: job.attempts,
        finished_at: now_rfc3339(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_transience() {
        let error = JobError::Scratch(std::io::Error::other("disk on fire"));
        assert_eq!(error.code(), "scratch-error");
        assert!(error.is_transient());
        let pipeline = JobError::Pipeline(PipelineError::EmptySource);
        assert_eq!(pipeline.code(), "empty-source");
        assert!(!pipeline.is_transient());
    }
}
