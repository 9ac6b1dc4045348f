//! One attempt of one job, and everything that follows from how it went.
//!
//! 1. **Claim** the record. Waiting for the record store never spends the job's attempts:
//!    a transient failure (throttling, unavailability) puts the job back with a backoff of
//!    its own; a permanent one (access denied, no such table, a validation error) *parks*
//!    the job: it stays stored, is logged once at ERROR, counted in `/metrics`, listed by
//!    `status` and fails `/readyz`, until a reload or a restart retries it.
//! 2. **Work** (one attempt of `[retry] max_attempts`). `process`: HEAD (the variant marker
//!    and the size limit, before any download) → stream to the scratch disk → reserve the
//!    memory budget from the size and the header → read and render on the pool → PUT every
//!    variant under this render's own keys. `delete`: remove the variants the record
//!    listed. A transient failure puts the job back with an exponential, jittered delay;
//!    past the last attempt, or for a permanent failure, the job ends FAILED with its code.
//! 3. **Record** the outcome, *if* the claim is still this job's. Transient record errors
//!    are waited out in place (the work is not redone); permanent ones park the job.
//!    Publication is safe by construction: a landed DONE replaces the record's pointer to
//!    one complete set of immutable variants and removes the set it replaced; a job that
//!    lost its claim removes its own set. No ordering of two jobs leaves the record and the
//!    variants disagreeing.
//!
//! The job's file is removed only once its record says how it ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline_contract::{JobAction, LogKey};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::Context;
use super::outcome::{Outcome, Timings, finish};
use super::retry::backoff;
use crate::aws::records::{
    Claim, Done, Previous, RecordError, STATUS_DELETED, VariantRecord, Written,
};
use crate::aws::s3::{S3Error, SourceHead, Upload, variant_key};
use crate::error_chain::error_chain;
use crate::metrics::Stage;
use crate::pipeline::probe::HEADER_BYTES;
use crate::pipeline::{Metadata, PipelineError};
use crate::spool::job::Job;
use crate::work::render_pool::{RenderError, RenderSettings};

/// Why one attempt of a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(
        "the object is a variant written by this daemon (x-amz-meta-variant-by), never a source"
    )]
    OwnOutput,
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
            JobError::Pipeline(_) | JobError::OwnOutput => false,
            JobError::PoolGone | JobError::Scratch(_) => true,
        }
    }

    /// The stable code of the FAILED record.
    pub fn code(&self) -> &'static str {
        match self {
            JobError::S3(e) => e.code(),
            JobError::Pipeline(e) => e.code(),
            JobError::OwnOutput => "own-output",
            JobError::PoolGone => "internal-error",
            JobError::Scratch(_) => "scratch-error",
        }
    }

    /// Whether this is a problem of ours or of AWS (logged at ERROR), not of the source.
    fn is_server_side(&self) -> bool {
        match self {
            JobError::S3(e) => !matches!(e, S3Error::NotFound { .. } | S3Error::TooLarge { .. }),
            JobError::Pipeline(e) => matches!(e, PipelineError::Internal(_)),
            JobError::OwnOutput => false,
            JobError::PoolGone | JobError::Scratch(_) => true,
        }
    }
}

/// What the work of an attempt produced, before its record is written.
#[derive(Debug)]
enum Work {
    Rendered(Box<Rendered>),
    Deleted,
}

#[derive(Debug)]
struct Rendered {
    head: SourceHead,
    metadata: Metadata,
    variants: Vec<VariantRecord>,
    render_id: String,
    bytes_out: u64,
    recipe_version: String,
}

/// Why the record could not be written.
enum Unwritten {
    /// A permanent error: the job must be parked.
    Refused(RecordError),
    /// The daemon is stopping while the store is away: the job stays stored.
    Stopping(RecordError),
}

/// One attempt of one job, with everything that follows from its outcome.
pub async fn run_job(ctx: Arc<Context>, mut job: Job) {
    let started = Instant::now();
    let mut timings = Timings::default();
    let settings = ctx.render_settings();

    let previous = match claim(&ctx, &job, &mut timings).await {
        Ok(Ok(previous)) => previous,
        Ok(Err(outcome)) => return finish(&ctx, job, outcome, timings, started).await,
        Err(error) if error.is_transient() => {
            return wait_for_records(&ctx, job, &error, timings).await;
        }
        Err(error) => return park(&ctx, job, &error).await,
    };
    job.record_waits = 0;
    if let Some(message) = job.message.as_ref().filter(|m| m.last_delivery) {
        // If this attempt does not finish (it kills the daemon again), SQS moves the
        // message to the DLQ: the record says so first.
        let why = format!(
            "delivered {} times, the queue's maxReceiveCount: if this attempt does not finish, the message moves to the DLQ",
            message.receive_count
        );
        let recipe = settings.recipe.version.clone();
        if let Err(error) = ctx
            .records
            .fail(&job, "delivery-limit", &why, &recipe, 0)
            .await
        {
            tracing::warn!(key = %LogKey(job.key()), error = %error_chain(&error), "cannot record the last delivery");
        }
    }

    job.attempts = job
        .attempts
        .max(job.message.as_ref().map_or(0, |m| m.receive_count - 1));
    job.attempts += 1;
    let mut published = Vec::new();
    let work = match job.request.action {
        JobAction::Process => process(&ctx, &job, &settings, &mut timings, &mut published)
            .await
            .map(|r| Work::Rendered(Box::new(r))),
        JobAction::Delete => delete(&ctx, &previous, &mut timings)
            .await
            .map(|()| Work::Deleted),
    };
    let _ = tokio::fs::remove_file(ctx.files.source_path(&job.id)).await;
    let processing_ms = started.elapsed().as_millis() as u64;

    let (outcome, written) = match work {
        Ok(Work::Rendered(rendered)) => {
            let done = Done {
                head: &rendered.head,
                metadata: &rendered.metadata,
                variants: &rendered.variants,
                render_id: &rendered.render_id,
                recipe_version: &rendered.recipe_version,
                attempts: job.attempts,
                processing_ms,
            };
            let view = job.clone();
            let written = write(&ctx, &mut job, &mut timings, || {
                ctx.records.complete(&view, &done)
            })
            .await;
            let outcome = Outcome::Done {
                bytes_in: rendered.head.size,
                bytes_out: rendered.bytes_out,
            };
            (outcome, written)
        }
        Ok(Work::Deleted) => {
            let view = job.clone();
            let written = write(&ctx, &mut job, &mut timings, || {
                ctx.records.mark_deleted(&view, processing_ms)
            })
            .await;
            (Outcome::Deleted, written)
        }
        Err(error) if error.is_transient() && job.attempts < ctx.retry.max_attempts => {
            remove_variants(&ctx, &job, &published, &mut timings).await;
            return retry(&ctx, job, &error, timings).await;
        }
        Err(error) => {
            let mut message = error_chain(&error);
            if error.is_transient() {
                message = format!("gave up after {} attempts: {message}", job.attempts);
            }
            if error.is_server_side() {
                tracing::error!(key = %LogKey(job.key()), job = %job.id, code = error.code(), attempts = job.attempts, error = %message, "job failed");
            }
            let code = error.code();
            let recipe = settings.recipe.version.clone();
            let view = job.clone();
            let written = write(&ctx, &mut job, &mut timings, || {
                ctx.records
                    .fail(&view, code, &message, &recipe, processing_ms)
            })
            .await;
            (Outcome::Failed { code, message }, written)
        }
    };

    match written {
        Ok(Written::Yes(replaced)) => {
            // Variants nobody points at any more: a DONE record replaced the set it
            // listed; a DELETED one listed nothing; a FAILED one keeps the set it listed,
            // so only what this attempt published goes.
            let stale: Vec<String> = match &outcome {
                Outcome::Done { .. } => replaced
                    .variant_keys
                    .into_iter()
                    .filter(|k| !published.contains(k))
                    .collect(),
                Outcome::Deleted => replaced.variant_keys,
                Outcome::Failed { .. } | Outcome::Skipped { .. } => published.clone(),
            };
            remove_variants(&ctx, &job, &stale, &mut timings).await;
            finish(&ctx, job, outcome, timings, started).await;
        }
        Ok(Written::LostClaim) => {
            remove_variants(&ctx, &job, &published, &mut timings).await;
            let reason = "another job claimed the record while this one ran".to_owned();
            finish(&ctx, job, Outcome::Skipped { reason }, timings, started).await;
        }
        Err(Unwritten::Refused(error)) => park(&ctx, job, &error).await,
        Err(Unwritten::Stopping(error)) => {
            // The work is lost, not the job: it is still stored and runs again next start.
            tracing::warn!(key = %LogKey(job.key()), job = %job.id, error = %error_chain(&error), "stopping before the record could be written; the job stays stored");
            requeue(&ctx, job, Duration::ZERO, timings).await;
        }
    }
}

/// Claims the record: `Ok(Ok(previous))` the job may work, `Ok(Err(outcome))` it ends now.
async fn claim(
    ctx: &Context,
    job: &Job,
    timings: &mut Timings,
) -> Result<Result<Previous, Outcome>, RecordError> {
    let claim = timings
        .time(Stage::Record, ctx.records.claim(job, false))
        .await?;
    match claim {
        Claim::Claimed(previous) => Ok(Ok(previous)),
        Claim::Superseded { status, .. }
            if job.origin.is_forced() && status.as_deref() == Some(STATUS_DELETED) =>
        {
            // An operator asked to render a source whose record says it was deleted: only
            // if the source is really there again (its event was lost).
            let found = timings
                .time(
                    Stage::Download,
                    ctx.s3.head(&job.request.bucket, &job.request.key),
                )
                .await;
            match found {
                Ok(_) => match timings
                    .time(Stage::Record, ctx.records.claim(job, true))
                    .await?
                {
                    Claim::Claimed(previous) => Ok(Ok(previous)),
                    Claim::Superseded { .. } => Ok(Err(Outcome::Skipped {
                        reason: "the record changed while it was claimed".to_owned(),
                    })),
                },
                Err(S3Error::NotFound { .. }) => Ok(Err(Outcome::Skipped {
                    reason: "the source is deleted; its record stays DELETED".to_owned(),
                })),
                // Cannot tell: claim it, and let the work find out (and retry) as usual.
                Err(_) => match timings
                    .time(Stage::Record, ctx.records.claim(job, true))
                    .await?
                {
                    Claim::Claimed(previous) => Ok(Ok(previous)),
                    Claim::Superseded { .. } => Ok(Err(Outcome::Skipped {
                        reason: "the record changed while it was claimed".to_owned(),
                    })),
                },
            }
        }
        Claim::Superseded { status, event } => Ok(Err(Outcome::Skipped {
            reason: format!(
                "the record already holds {} ({})",
                event.as_deref().unwrap_or("this or a newer event"),
                status.as_deref().unwrap_or("status unknown")
            ),
        })),
    }
}

/// Writes an outcome, waiting out transient record errors in place (the work stays done),
/// until the daemon stops.
async fn write<F, Fut>(
    ctx: &Context,
    job: &mut Job,
    timings: &mut Timings,
    mut attempt: F,
) -> Result<Written, Unwritten>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Written, RecordError>>,
{
    let mut waits = 0u32;
    loop {
        match timings.time(Stage::Record, attempt()).await {
            Ok(written) => return Ok(written),
            Err(error) if !error.is_transient() => return Err(Unwritten::Refused(error)),
            Err(error) => {
                waits += 1;
                job.record_waits += 1;
                let delay = backoff(waits, ctx.retry.base_delay(), ctx.retry.max_delay());
                tracing::warn!(
                    key = %LogKey(job.key()), job = %job.id, code = error.code(), wait = waits,
                    retry_in_ms = delay.as_millis() as u64, error = %error_chain(&error),
                    "cannot write the record, waiting for the record store (no attempt spent)"
                );
                let mut stop = ctx.stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|stopping| *stopping) => return Err(Unwritten::Stopping(error)),
                }
            }
        }
    }
}

/// The render's own id: the same job rendering the same bytes with the same recipe gets
/// the same keys (a retry overwrites what it wrote); anything else gets new ones.
fn render_id(job: &Job, etag: Option<&str>, recipe_version: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [job.id.as_str(), etag.unwrap_or(""), recipe_version] {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..6])
}

async fn process(
    ctx: &Context,
    job: &Job,
    settings: &Arc<RenderSettings>,
    timings: &mut Timings,
    published: &mut Vec<String>,
) -> Result<Rendered, JobError> {
    let request = &job.request;
    let limits = &settings.limits;
    let path = ctx.files.source_path(&job.id);
    let head = timings
        .time(Stage::Download, ctx.s3.head(&request.bucket, &request.key))
        .await?;
    if head.is_variant {
        return Err(JobError::OwnOutput);
    }
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

    // The budget is taken before the source is read into memory, and the source is read
    // before a render slot is taken: a slot goes straight to the pool.
    let (file, header) = scratch(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut header = Vec::new();
        (&mut file)
            .take(HEADER_BYTES.min(downloaded))
            .read_to_end(&mut header)?;
        Ok((file, header))
    })
    .await?;
    let cost = ctx.pool.cost_mib(&header, downloaded, settings);
    let reservation = timings.time(Stage::Wait, ctx.pool.reserve(cost)).await?;
    let bytes = scratch(move || {
        use std::io::Read;
        let mut bytes = header;
        bytes.reserve(downloaded as usize - bytes.len());
        let mut file = file;
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    })
    .await?;
    let slot = timings.time(Stage::Wait, ctx.pool.slot()).await?;
    crate::faults::maybe_abort(job.key());
    if let Some(delay) = crate::faults::render_delay(job.key()) {
        timings.time(Stage::Render, tokio::time::sleep(delay)).await;
    }
    let rendered = timings
        .time(
            Stage::Render,
            ctx.pool
                .render(&reservation, Arc::new(bytes), settings.clone()),
        )
        .await?;
    drop(slot);
    drop(reservation);

    let recipe_version = settings.recipe.version.clone();
    let render_id = render_id(job, head.etag.as_deref(), &recipe_version);
    let mut uploads = JoinSet::new();
    let mut variants = Vec::with_capacity(rendered.variants.len());
    let mut bytes_out = 0;
    for variant in rendered.variants {
        let key = variant_key(
            &ctx.variant_prefix,
            &request.key,
            &render_id,
            &variant.name,
            variant.format.extension(),
        );
        bytes_out += variant.bytes.len() as u64;
        variants.push(VariantRecord {
            name: variant.name.clone(),
            url: ctx
                .public_base_url
                .as_ref()
                .map(|base| public_url(base, &key)),
            key: key.clone(),
            width: variant.width,
            height: variant.height,
            bytes: variant.bytes.len() as u64,
            format: variant.format.name(),
        });
        published.push(key.clone());
        let s3 = ctx.s3.clone();
        let bucket = ctx.output_bucket.clone();
        let upload = Upload {
            key,
            content_type: variant.format.content_type(),
            bytes: variant.bytes,
            source_key: request.key.clone(),
            recipe_version: recipe_version.clone(),
            render_id: render_id.clone(),
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
            first_error.map_or(Ok(()), Err)
        })
        .await?;
    ctx.metrics.bytes_out(bytes_out);
    Ok(Rendered {
        head,
        metadata: rendered.metadata,
        variants,
        render_id,
        bytes_out,
        recipe_version,
    })
}

/// Runs a read of the scratch disk on a blocking thread: one trip for the whole read.
async fn scratch<T, F>(read: F) -> Result<T, JobError>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(read).await {
        Ok(result) => result.map_err(JobError::Scratch),
        Err(e) => Err(JobError::Scratch(std::io::Error::other(e))),
    }
}

/// `base` + the key, each segment percent-encoded as a URL path needs.
fn public_url(base: &str, key: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let path: Vec<String> = key
        .split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect();
    format!("{}/{}", base.trim_end_matches('/'), path.join("/"))
}

/// A delete removes the variants the record listed when the job claimed it; the record is
/// then written DELETED.
async fn delete(ctx: &Context, previous: &Previous, timings: &mut Timings) -> Result<(), JobError> {
    timings
        .time(
            Stage::Upload,
            ctx.s3
                .delete_keys(&ctx.output_bucket, &previous.variant_keys),
        )
        .await?;
    Ok(())
}

/// Removes variants nobody points at any more. A failure leaves them behind (logged): the
/// record is right either way.
async fn remove_variants(ctx: &Context, job: &Job, keys: &[String], timings: &mut Timings) {
    if keys.is_empty() {
        return;
    }
    let removed = timings
        .time(Stage::Upload, ctx.s3.delete_keys(&ctx.output_bucket, keys))
        .await;
    if let Err(error) = removed {
        tracing::warn!(key = %LogKey(job.key()), job = %job.id, variants = keys.len(), error = %error_chain(&error), "cannot remove variants the record no longer lists; they stay in the output bucket");
    }
}

/// Puts the job back for a later attempt after a transient failure of its work.
async fn retry(ctx: &Context, mut job: Job, error: &JobError, timings: Timings) {
    let delay = backoff(job.attempts, ctx.retry.base_delay(), ctx.retry.max_delay());
    let message = error_chain(error);
    tracing::warn!(
        key = %LogKey(job.key()), job = %job.id, code = error.code(), attempt = job.attempts,
        max_attempts = ctx.retry.max_attempts, retry_in_ms = delay.as_millis() as u64,
        error = %message, "transient failure, will retry"
    );
    job.last_error = Some(format!("{}: {message}", error.code()));
    ctx.metrics.retried();
    requeue(ctx, job, delay, timings).await;
}

/// The record store is away before the work started: the job comes back after a backoff
/// of its own, without spending an attempt.
async fn wait_for_records(ctx: &Context, mut job: Job, error: &RecordError, timings: Timings) {
    job.record_waits += 1;
    let delay = backoff(
        job.record_waits,
        ctx.retry.base_delay(),
        ctx.retry.max_delay(),
    );
    let message = error_chain(error);
    tracing::warn!(
        key = %LogKey(job.key()), job = %job.id, code = error.code(), wait = job.record_waits,
        retry_in_ms = delay.as_millis() as u64, error = %message,
        "cannot claim the record, waiting for the record store (no attempt spent)"
    );
    job.last_error = Some(format!("{}: {message}", error.code()));
    ctx.metrics.record_waited();
    requeue(ctx, job, delay, timings).await;
}

/// A record error that waiting will not fix: the job is parked until an operator acts.
async fn park(ctx: &Context, mut job: Job, error: &RecordError) {
    let reason = format!("{}: {}", error.code(), error_chain(error));
    if let Some(messages) = &ctx.messages
        && job.message.is_some()
    {
        // Fleet mode: the queue keeps it; it comes back after the longest backoff and,
        // past maxReceiveCount, ends in the DLQ where the alarm sees it.
        tracing::error!(
            key = %LogKey(job.key()), job = %job.id, code = error.code(), error = %reason,
            "the record cannot be written; the message goes back to the queue (fix the cause; it ends in the DLQ otherwise)"
        );
        ctx.metrics.retried();
        messages.job_again(&job, ctx.retry.max_delay()).await;
        ctx.queue.forget(&job);
        return;
    }
    tracing::error!(
        key = %LogKey(job.key()), job = %job.id, code = error.code(), error = %reason,
        "the record cannot be written; the job is parked until `systemctl reload ec2-service` or a restart (fix the cause first)"
    );
    job.parked = Some(reason);
    store(ctx, &job).await;
    ctx.queue.park(job);
}

/// Puts the job back: into the queue after `delay`, or (fleet mode) its message back to
/// SQS, visible after `delay`.
pub async fn requeue(ctx: &Context, job: Job, delay: Duration, timings: Timings) {
    timings.report(&ctx.metrics);
    if let Some(messages) = &ctx.messages
        && job.message.is_some()
    {
        messages.job_again(&job, delay).await;
        ctx.queue.forget(&job);
        return;
    }
    store(ctx, &job).await;
    ctx.queue.retry_later(job, delay);
}

/// Rewrites the job's file (attempts, last error, parked reason); jobs SQS keeps have none.
async fn store(ctx: &Context, job: &Job) {
    if job.message.is_some() {
        return;
    }
    let files = ctx.files.clone();
    let stored = job.clone();
    match tokio::task::spawn_blocking(move || files.update(&stored)).await {
        Ok(Ok(())) => {}
        // The previous file is still there: the job is not lost, only its attempt count.
        Ok(Err(e)) => {
            tracing::error!(job = %job.id, error = %error_chain(&e), "cannot update the stored job");
        }
        Err(e) => tracing::error!(job = %job.id, error = %e, "cannot update the stored job"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::job::Origin;

    #[test]
    fn codes_and_transience() {
        let error = JobError::Scratch(std::io::Error::other("disk on fire"));
        assert_eq!(error.code(), "scratch-error");
        assert!(error.is_transient());
        let pipeline = JobError::Pipeline(PipelineError::EmptySource);
        assert_eq!(pipeline.code(), "empty-source");
        assert!(!pipeline.is_transient());
        assert_eq!(JobError::OwnOutput.code(), "own-output");
        assert!(!JobError::OwnOutput.is_transient());
    }

    #[test]
    fn render_ids_change_with_the_job_the_bytes_and_the_recipe() {
        let job = Job::forced(Origin::Reprocess, "b", "a.jpg", None);
        let other = Job::forced(Origin::Reprocess, "b", "a.jpg", None);
        let id = render_id(&job, Some("\"e1\""), "r1");
        assert_eq!(id, render_id(&job, Some("\"e1\""), "r1"));
        assert_eq!(id.len(), 12);
        assert_ne!(id, render_id(&other, Some("\"e1\""), "r1"));
        assert_ne!(id, render_id(&job, Some("\"e2\""), "r1"));
        assert_ne!(id, render_id(&job, Some("\"e1\""), "r2"));
    }

    #[test]
    fn public_urls_encode_each_segment_of_the_key() {
        assert_eq!(
            public_url(
                "https://d1.cloudfront.net/",
                "variants/uploads/a b+c#1.jpg/r1/thumb.webp"
            ),
            "https://d1.cloudfront.net/variants/uploads/a%20b%2Bc%231.jpg/r1/thumb.webp"
        );
        assert_eq!(
            public_url("http://127.0.0.1:9000/out", "variants/é.jpg/r/large.jpg"),
            "http://127.0.0.1:9000/out/variants/%C3%A9.jpg/r/large.jpg"
        );
    }
}
