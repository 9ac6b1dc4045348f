//! The dispatcher: starts jobs from the queue, at most `concurrency` at once, survives a
//! job task that panics (logged with its job, its slot freed, the job retried and parked
//! after `[retry] max_attempts`), and drains on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pipeline_contract::LogKey;
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};

use super::Context;
use super::attempt::run_job;
use super::retry::backoff;
use crate::spool::job::Job;

/// How the dispatcher ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Jobs still in flight when the drain ran out (their files stay stored, so the next
    /// start resumes them).
    pub abandoned: usize,
    /// Job tasks that panicked while the daemon ran.
    pub panicked: usize,
}

/// Starts jobs, at most `concurrency` at once, until `ctx.stop` turns true; then waits up
/// to `drain` for the jobs in flight and abandons the rest.
pub async fn dispatch(ctx: Arc<Context>, concurrency: usize, drain: Duration) -> Dispatched {
    let mut stop = ctx.stop.clone();
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut running: JoinSet<()> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, Job> = HashMap::new();
    let mut ended = Dispatched::default();
    loop {
        while let Some(done) = running.try_join_next_with_id() {
            reap(&ctx, done, &mut in_flight, &mut ended).await;
        }
        // (No await inside the select's arms: its output holds the watch's read guard.)
        let next = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => None,
            Some(done) = running.join_next_with_id(), if !running.is_empty() => Some(Err(done)),
            permit = slots.clone().acquire_owned() => permit.ok().map(Ok),
        };
        let permit = match next {
            None => break,
            Some(Err(done)) => {
                reap(&ctx, done, &mut in_flight, &mut ended).await;
                continue;
            }
            Some(Ok(permit)) => permit,
        };
        let job = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            job = ctx.queue.next() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let task_ctx = ctx.clone();
        let task_job = job.clone();
        let handle = running.spawn(async move {
            crate::faults::maybe_panic(task_job.key());
            run_job(task_ctx, task_job).await;
            drop(permit);
        });
        in_flight.insert(handle.id(), job);
    }
    let drained = tokio::time::timeout(drain, async {
        while let Some(done) = running.join_next_with_id().await {
            reap(&ctx, done, &mut in_flight, &mut ended).await;
        }
    })
    .await;
    if drained.is_err() {
        ended.abandoned = running.len();
        running.abort_all();
    }
    ended
}

async fn reap(
    ctx: &Context,
    done: Result<(tokio::task::Id, ()), JoinError>,
    in_flight: &mut HashMap<tokio::task::Id, Job>,
    ended: &mut Dispatched,
) {
    let error = match done {
        Ok((id, ())) => {
            in_flight.remove(&id);
            return;
        }
        Err(error) => error,
    };
    let job = in_flight.remove(&error.id());
    if error.is_cancelled() {
        return;
    }
    ended.panicked += 1;
    ctx.metrics.panicked();
    let message = panic_message(error);
    let Some(mut job) = job else {
        tracing::error!(panic = %message, "a job task panicked");
        return;
    };
    job.attempts += 1;
    job.last_error = Some(format!("internal-error: the job panicked: {message}"));
    if let Some(messages) = &ctx.messages
        && job.message.is_some()
    {
        // Fleet mode: the message comes back later; past maxReceiveCount, the DLQ.
        tracing::error!(key = %LogKey(job.key()), job = %job.id, panic = %message, "a job panicked; its message goes back to the queue");
        let delay = backoff(job.attempts, ctx.retry.base_delay(), ctx.retry.max_delay());
        messages.job_again(&job, delay).await;
        ctx.queue.forget(&job);
        return;
    }
    let give_up = job.attempts >= ctx.retry.max_attempts;
    tracing::error!(
        key = %LogKey(job.key()), job = %job.id, attempts = job.attempts, panic = %message,
        "a job panicked; {}", if give_up { "it is parked" } else { "it will be retried" }
    );
    if give_up {
        job.parked = job.last_error.clone();
    }
    let files = ctx.files.clone();
    let stored = job.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || files.update(&stored)).await {
        tracing::error!(job = %job.id, error = %crate::error_chain::error_chain(&e), "cannot update the stored job");
    }
    if give_up {
        ctx.queue.park(job);
    } else {
        let delay = backoff(job.attempts, ctx.retry.base_delay(), ctx.retry.max_delay());
        ctx.queue.retry_later(job, delay);
    }
}

fn panic_message(error: JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned()),
        Err(error) => error.to_string(),
    }
}
