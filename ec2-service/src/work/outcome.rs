//! How one job ended ([`Outcome`]), and [`finish`]: what every ending does — the job's file
//! removed, the metrics counted, one log line with the key, the outcome and the timings,
//! and the queue told.

use std::time::{Duration, Instant};

use pipeline_contract::LogKey;

use super::Context;
use crate::error_chain::error_chain;
use crate::metrics::{Metrics, Stage};
use crate::spool::job::{Ending, Job, now_rfc3339};
use crate::spool::queue::Finished;

/// The end of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rendered and recorded DONE.
    Done { bytes_in: u64, bytes_out: u64 },
    /// Recorded FAILED with a stable code.
    Failed { code: &'static str, message: String },
    /// The variants removed, the record DELETED.
    Deleted,
    /// Nothing written: the record already holds this event or a newer one, or another
    /// job took it over.
    Skipped { reason: String },
}

impl Outcome {
    pub fn ending(&self) -> Ending {
        match self {
            Outcome::Done { .. } => Ending::Done,
            Outcome::Failed { .. } => Ending::Failed,
            Outcome::Deleted => Ending::Deleted,
            Outcome::Skipped { .. } => Ending::Skipped,
        }
    }

    pub fn code(&self) -> Option<&'static str> {
        match self {
            Outcome::Failed { code, .. } => Some(code),
            Outcome::Done { .. } | Outcome::Deleted | Outcome::Skipped { .. } => None,
        }
    }

    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Failed { message, .. } => Some(message),
            Outcome::Skipped { reason } => Some(reason),
            Outcome::Done { .. } | Outcome::Deleted => None,
        }
    }

    fn bytes(&self) -> (u64, u64) {
        match self {
            Outcome::Done {
                bytes_in,
                bytes_out,
            } => (*bytes_in, *bytes_out),
            Outcome::Failed { .. } | Outcome::Deleted | Outcome::Skipped { .. } => (0, 0),
        }
    }
}

/// Wall time per stage of one attempt.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timings {
    stages: [Duration; Stage::ALL.len()],
}

impl Timings {
    pub async fn time<T>(&mut self, stage: Stage, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let output = work.await;
        self.stages[stage as usize] += started.elapsed();
        output
    }

    pub fn ms(&self, stage: Stage) -> u64 {
        self.stages[stage as usize].as_millis() as u64
    }

    pub fn report(&self, metrics: &Metrics) {
        for stage in Stage::ALL {
            let spent = self.stages[stage as usize];
            if !spent.is_zero() {
                metrics.observe(stage, spent);
            }
        }
    }
}

/// Ends a job: its file removed, counted, logged, and forgotten by the queue.
pub async fn finish(ctx: &Context, job: Job, outcome: Outcome, timings: Timings, started: Instant) {
    timings.report(&ctx.metrics);
    let files = ctx.files.clone();
    let id = job.id.clone();
    match tokio::task::spawn_blocking(move || files.remove(&id)).await {
        Ok(Ok(())) => {}
        // Replaying a finished job is harmless (its record refuses the claim).
        Ok(Err(e)) => {
            tracing::error!(job = %job.id, error = %error_chain(&e), "cannot remove the finished job's file");
        }
        Err(e) => {
            tracing::error!(job = %job.id, error = %e, "cannot remove the finished job's file");
        }
    }
    let ending = outcome.ending();
    let code = outcome.code();
    let (bytes_in, bytes_out) = outcome.bytes();
    ctx.metrics.finished(ending, code.unwrap_or(""));
    tracing::info!(
        key = %LogKey(job.key()),
        job = %job.id,
        action = ?job.request.action,
        origin = job.origin.name(),
        status = ending.name(),
        code = code.unwrap_or(""),
        attempts = job.attempts,
        bytes_in,
        bytes_out,
        download_ms = timings.ms(Stage::Download),
        wait_ms = timings.ms(Stage::Wait),
        render_ms = timings.ms(Stage::Render),
        upload_ms = timings.ms(Stage::Upload),
        record_ms = timings.ms(Stage::Record),
        total_ms = started.elapsed().as_millis() as u64,
        detail = outcome.detail().unwrap_or(""),
        "job finished"
    );
    if let Some(messages) = &ctx.messages
        && job.message.is_some()
    {
        messages.job_done(&job).await;
    }
    ctx.queue.finish(Finished {
        id: job.id.clone(),
        key: job.request.key.clone(),
        origin: job.origin.name().to_owned(),
        status: ending,
        code: code.map(str::to_owned),
        message: outcome.detail().map(str::to_owned),
        attempts: job.attempts,
        finished_at: now_rfc3339(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_ending_code_and_detail() {
        let done = Outcome::Done {
            bytes_in: 10,
            bytes_out: 4,
        };
        assert_eq!(
            (done.ending(), done.code(), done.bytes()),
            (Ending::Done, None, (10, 4))
        );
        let failed = Outcome::Failed {
            code: "corrupt-image",
            message: "truncated".into(),
        };
        assert_eq!(failed.ending(), Ending::Failed);
        assert_eq!(
            (failed.code(), failed.detail()),
            (Some("corrupt-image"), Some("truncated"))
        );
        let skipped = Outcome::Skipped {
            reason: "newer".into(),
        };
        assert_eq!(
            (skipped.ending(), skipped.detail()),
            (Ending::Skipped, Some("newer"))
        );
        assert_eq!(Outcome::Deleted.ending().name(), "DELETED");
    }
}
