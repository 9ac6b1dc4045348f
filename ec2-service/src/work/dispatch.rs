//! The dispatcher: starts jobs from the queue, at most `concurrency` at once, and drains
//! on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Context;
use super::attempt::run_job;

/// Starts jobs, at most `concurrency` at once, until `stop` turns true; then waits up to
/// `drain` for the jobs in flight and abandons the rest (their files stay stored, so the
/// next start resumes them). Returns how many were abandoned.
pub async fn dispatch(
    ctx: Arc<Context>,
    concurrency: usize,
    drain: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> usize {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut running = JoinSet::new();
    loop {
        let permit = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let job = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            job = ctx.queue.next() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let ctx = ctx.clone();
        running.spawn(async move {
            run_job(ctx, job).await;
            drop(permit);
        });
        // Reap finished tasks so the set does not grow.
        while running.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(drain, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => 0,
        Err(_) => {
            let left = running.len();
            running.abort_all();
            left
        }
    }
}
