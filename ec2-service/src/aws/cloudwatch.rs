//! Publishes the daemon's job metrics to CloudWatch (`[metrics]`, README "CloudWatch"): one
//! PutMetricData call per interval, at multiples of the interval since the epoch, carrying
//! what happened since the last call that succeeded. Every metric has the dimension
//! `Stack` (`metrics.stack`):
//!
//! - `JobsFinished` (Count; also `Outcome`: `done`, `failed`, `deleted`, `skipped`): jobs
//!   finished since the last publish, one datum per outcome, 0 included.
//! - `RenderSeconds` (Seconds) and `SourceBytes` (Bytes): every value since the last
//!   publish, as values and counts (a [`Distribution`]: each within 2%, the sum exact), so
//!   that CloudWatch keeps their percentiles; absent when there were none.
//! - `QueueDepth` (Count: jobs held and not finished: waiting, retrying, in flight,
//!   parked), `OldestWaitingSeconds` (Seconds; 0 when no job waits) and `ScratchFreeBytes`
//!   (Bytes): one sample each per interval, stamped with the interval's boundary, so that
//!   each box of a fleet adds exactly one value per period of that length.
//!
//! A failed call is logged (WARN) and counted; the counts and values it carried stay in
//! the [`Batch`] (bounded: four counters and two distributions) and go with the next call,
//! while its gauge samples are dropped and counted. A call CloudWatch refuses as invalid is
//! dropped whole (counted), not sent again for ever. The publisher is a task of its own:
//! it never blocks a job, only takes the metrics' and the queue's short locks. On stop, a
//! last call sends what finished since the last one (no gauges: the box's last sample of
//! the minute has been sent).
//!
//! Not here: the alarms and the dashboard that read these (cloudformation/template.yaml),
//! the Prometheus text of `GET /metrics` (`metrics`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::builders::MetricDatumBuilder;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::aws::{FailureKind, SdkFailure, classify};
use crate::metrics::{Distribution, Metrics, Samples};
use crate::settings::MetricsSettings;
use crate::spool::files::free_bytes;
use crate::spool::job::Ending;
use crate::spool::queue::Queue;

pub const JOBS_FINISHED: &str = "JobsFinished";
pub const RENDER_SECONDS: &str = "RenderSeconds";
pub const SOURCE_BYTES: &str = "SourceBytes";
pub const QUEUE_DEPTH: &str = "QueueDepth";
pub const OLDEST_WAITING_SECONDS: &str = "OldestWaitingSeconds";
pub const SCRATCH_FREE_BYTES: &str = "ScratchFreeBytes";
pub const STACK: &str = "Stack";
pub const OUTCOME: &str = "Outcome";

/// Most values (and counts) of one datum: CloudWatch's limit.
pub const MAX_VALUES_PER_DATUM: usize = 150;
/// Most datums of one call: CloudWatch's limit. A batch never comes near it (a
/// distribution has at most ~2,450 buckets: 17 datums).
pub const MAX_DATUMS_PER_CALL: usize = 1000;
/// How long one periodic call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the last call, on stop, may take: the daemon is exiting.
const LAST_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The `Outcome` dimension of an ending.
pub fn outcome(ending: Ending) -> &'static str {
    match ending {
        Ending::Done => "done",
        Ending::Failed => "failed",
        Ending::Deleted => "deleted",
        Ending::Skipped => "skipped",
    }
}

/// The gauges sampled for one periodic publish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauges {
    pub queue_depth: u64,
    pub oldest_waiting: Duration,
    /// `None` when the scratch disk could not be read.
    pub scratch_free_bytes: Option<u64>,
}

impl Gauges {
    /// How many values these are.
    fn len(&self) -> u64 {
        2 + u64::from(self.scratch_free_bytes.is_some())
    }
}

/// What has not been published yet, and the finished-job counters as last seen (the
/// counters only grow: each collect adds their increase).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    seen: [u64; Ending::ALL.len()],
    finished: [u64; Ending::ALL.len()],
    render_seconds: Distribution,
    source_bytes: Distribution,
}

impl Batch {
    /// A batch counting from the counters' values `finished` (by [`Ending::ALL`]).
    pub fn starting_at(finished: [u64; Ending::ALL.len()]) -> Batch {
        Batch {
            seen: finished,
            ..Batch::default()
        }
    }

    /// Adds what happened since the last collect: the counters' increase and the samples.
    pub fn collect(&mut self, finished: [u64; Ending::ALL.len()], samples: Samples) {
        for (i, now) in finished.into_iter().enumerate() {
            self.finished[i] += now.saturating_sub(self.seen[i]);
            self.seen[i] = now;
        }
        self.render_seconds.merge(samples.render_seconds);
        self.source_bytes.merge(samples.source_bytes);
    }

    /// Jobs finished, by [`Ending::ALL`], not yet published.
    pub fn finished(&self) -> [u64; Ending::ALL.len()] {
        self.finished
    }

    /// Whether any job finished or any value was observed since the last publish.
    pub fn has_news(&self) -> bool {
        self.values() > 0
    }

    /// Jobs and values not yet published.
    pub fn values(&self) -> u64 {
        self.finished.iter().sum::<u64>() + self.render_seconds.count() + self.source_bytes.count()
    }

    /// Published (or dropped): nothing left to send; the counters' positions are kept.
    pub fn clear(&mut self) {
        *self = Batch::starting_at(self.seen);
    }

    /// The datums of one call: the batch, and `gauges` when given, all stamped `at`.
    pub fn datums(&self, stack: &str, at: SystemTime, gauges: Option<&Gauges>) -> Vec<MetricDatum> {
        let at = DateTime::from(at);
        let datum = |name: &str, unit: StandardUnit| {
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(dimension(STACK, stack))
                .timestamp(at)
                .unit(unit)
        };
        let mut datums = Vec::new();
        for (ending, count) in Ending::ALL.into_iter().zip(self.finished) {
            datums.push(
                datum(JOBS_FINISHED, StandardUnit::Count)
                    .dimensions(dimension(OUTCOME, outcome(ending)))
                    .value(count as f64)
                    .build(),
            );
        }
        let render = datum(RENDER_SECONDS, StandardUnit::Seconds);
        push_distribution(&mut datums, &render, &self.render_seconds);
        let bytes = datum(SOURCE_BYTES, StandardUnit::Bytes);
        push_distribution(&mut datums, &bytes, &self.source_bytes);
        if let Some(gauges) = gauges {
            datums.push(
                datum(QUEUE_DEPTH, StandardUnit::Count)
                    .value(gauges.queue_depth as f64)
                    .build(),
            );
            datums.push(
                datum(OLDEST_WAITING_SECONDS, StandardUnit::Seconds)
                    .value(gauges.oldest_waiting.as_secs_f64())
                    .build(),
            );
            if let Some(free) = gauges.scratch_free_bytes {
                datums.push(
                    datum(SCRATCH_FREE_BYTES, StandardUnit::Bytes)
                        .value(free as f64)
                        .build(),
                );
            }
        }
        datums
    }
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

/// A distribution as datums of at most [`MAX_VALUES_PER_DATUM`] values and counts.
fn push_distribution(
    datums: &mut Vec<MetricDatum>,
    datum: &MetricDatumBuilder,
    values: &Distribution,
) {
    let pairs: Vec<(f64, u64)> = values.values_and_counts().collect();
    for chunk in pairs.chunks(MAX_VALUES_PER_DATUM) {
        datums.push(
            datum
                .clone()
                .set_values(Some(chunk.iter().map(|(v, _)| *v).collect()))
                .set_counts(Some(chunk.iter().map(|(_, c)| *c as f64).collect()))
                .build(),
        );
    }
}

/// From `now` to the next multiple of `interval` since the epoch (a whole interval when
/// `now` is exactly on one).
pub fn until_boundary(now: SystemTime, interval: Duration) -> Duration {
    let since = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let every = interval.as_nanos().max(1);
    nanos(every - since % every)
}

/// The multiple of `interval` since the epoch nearest to `now`.
pub fn nearest_boundary(now: SystemTime, interval: Duration) -> SystemTime {
    let since = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let every = interval.as_nanos().max(1);
    UNIX_EPOCH + nanos((since + every / 2) / every * every)
}

fn nanos(n: u128) -> Duration {
    Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
}

/// The publisher, before it runs.
#[derive(Debug)]
pub struct Publisher {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
    stack: String,
    interval: Duration,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    scratch_dir: PathBuf,
    batch: Batch,
}

/// The publisher running: [`finish`](Running::finish) stops it after a last call.
#[derive(Debug)]
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops the publisher: a last call with what finished since the last one, bounded in
    /// time (the daemon is exiting).
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        let bound = LAST_CALL_TIMEOUT + Duration::from_secs(1);
        if tokio::time::timeout(bound, &mut task).await.is_err() {
            task.abort();
            tracing::warn!("the last job metrics were not published in time");
        }
    }
}

impl Publisher {
    pub fn new(
        client: aws_sdk_cloudwatch::Client,
        settings: &MetricsSettings,
        queue: Arc<Queue>,
        metrics: Arc<Metrics>,
        scratch_dir: PathBuf,
    ) -> Publisher {
        let batch = Batch::starting_at(metrics.finished_by_ending());
        Publisher {
            client,
            namespace: settings.namespace.clone(),
            stack: settings.stack.clone(),
            interval: settings.interval(),
            queue,
            metrics,
            scratch_dir,
            batch,
        }
    }

    pub fn spawn(self) -> Running {
        let (stop, stopped) = watch::channel(false);
        tracing::info!(
            namespace = self.namespace,
            stack = self.stack,
            interval_secs = self.interval.as_secs(),
            "publishing the job metrics to CloudWatch"
        );
        Running {
            stop,
            task: tokio::spawn(self.run(stopped)),
        }
    }

    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        loop {
            let wait = until_boundary(SystemTime::now(), self.interval);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stopped.wait_for(|stop| *stop) => break,
            }
            let at = nearest_boundary(SystemTime::now(), self.interval);
            self.collect();
            let gauges = self.gauges().await;
            if !self
                .publish(at, Some(gauges), CALL_TIMEOUT, &mut stopped)
                .await
            {
                break;
            }
        }
        self.collect();
        if self.batch.has_news() {
            // The sender is kept: a receiver whose sender is gone ends its wait_for at once.
            let (_sender, mut never) = watch::channel(false);
            self.publish(SystemTime::now(), None, LAST_CALL_TIMEOUT, &mut never)
                .await;
        }
    }

    fn collect(&mut self) {
        self.batch.collect(
            self.metrics.finished_by_ending(),
            self.metrics.take_samples(),
        );
    }

    async fn gauges(&self) -> Gauges {
        let depth = self.queue.depth();
        let dir = self.scratch_dir.clone();
        let free = match tokio::task::spawn_blocking(move || free_bytes(&dir)).await {
            Ok(Ok(free)) => Some(free),
            Ok(Err(e)) => {
                tracing::warn!(dir = %self.scratch_dir.display(), error = %e, "cannot read the scratch disk's free space for the metrics");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the scratch disk's free space for the metrics");
                None
            }
        };
        Gauges {
            queue_depth: (depth.waiting + depth.in_flight + depth.parked) as u64,
            oldest_waiting: self
                .queue
                .oldest_waiting(SystemTime::now())
                .unwrap_or_default(),
            scratch_free_bytes: free,
        }
    }

    /// One call with the batch and the gauges; false when `stopped` came first (the batch
    /// is kept for the last call).
    async fn publish(
        &mut self,
        at: SystemTime,
        gauges: Option<Gauges>,
        within: Duration,
        stopped: &mut watch::Receiver<bool>,
    ) -> bool {
        let datums = self.batch.datums(&self.stack, at, gauges.as_ref());
        let call = self
            .client
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(datums))
            .send();
        let answer = tokio::select! {
            answer = tokio::time::timeout(within, call) => answer,
            _ = stopped.wait_for(|stop| *stop) => return false,
        };
        let failure = match answer {
            Ok(Ok(_)) => {
                tracing::debug!(
                    jobs = self.batch.finished().iter().sum::<u64>(),
                    "job metrics published"
                );
                self.batch.clear();
                return true;
            }
            Ok(Err(e)) => classify(&e),
            Err(_) => SdkFailure {
                kind: FailureKind::Unavailable,
                status: None,
                code: None,
                message: format!("no answer within {} s", within.as_secs()),
            },
        };
        self.metrics.cloudwatch_failed();
        let gauges_lost = gauges.map_or(0, |g| g.len());
        match failure.kind {
            // Sending it again would be refused again.
            FailureKind::Rejected | FailureKind::NotFound | FailureKind::ConditionFailed => {
                let dropped = self.batch.values() + gauges_lost;
                self.batch.clear();
                self.metrics.cloudwatch_dropped(dropped);
                tracing::warn!(
                    namespace = self.namespace,
                    error = %failure,
                    dropped,
                    "CloudWatch refused the job metrics; they are dropped"
                );
            }
            FailureKind::Throttled | FailureKind::Unavailable | FailureKind::Denied => {
                self.metrics.cloudwatch_dropped(gauges_lost);
                tracing::warn!(
                    namespace = self.namespace,
                    error = %failure,
                    kept = self.batch.values(),
                    "cannot publish the job metrics to CloudWatch; their counts go with the next publish"
                );
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(render: &[f64], bytes: &[f64]) -> Samples {
        let mut samples = Samples::default();
        for v in render {
            samples.render_seconds.record(*v);
        }
        for v in bytes {
            samples.source_bytes.record(*v);
        }
        samples
    }

    fn named<'a>(datums: &'a [MetricDatum], name: &str) -> Vec<&'a MetricDatum> {
        datums
            .iter()
            .filter(|d| d.metric_name() == Some(name))
            .collect()
    }

    fn dims(datum: &MetricDatum) -> Vec<(&str, &str)> {
        datum
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap_or(""), d.value().unwrap_or("")))
            .collect()
    }

    #[test]
    fn counters_are_sent_as_their_increase_since_the_last_publish() {
        // The daemon had finished jobs before the publisher started: not its to send.
        let mut batch = Batch::starting_at([5, 1, 0, 0]);
        assert!(!batch.has_news());
        batch.collect([7, 1, 0, 1], samples(&[0.5], &[]));
        assert_eq!(batch.finished(), [2, 0, 0, 1]);
        batch.collect([7, 1, 0, 1], Samples::default());
        assert_eq!(batch.finished(), [2, 0, 0, 1], "no change, no increase");
        assert_eq!(batch.values(), 4);

        // A failed publish keeps the batch: the next collect adds to it.
        batch.collect([8, 3, 0, 1], samples(&[0.7], &[1000.0]));
        assert_eq!(batch.finished(), [3, 2, 0, 1]);
        assert_eq!(batch.values(), 3 + 2 + 1 + 2 + 1);

        // Published: only what comes after counts.
        batch.clear();
        assert!(!batch.has_news());
        batch.collect([8, 4, 0, 1], Samples::default());
        assert_eq!(batch.finished(), [0, 1, 0, 0]);
    }

    #[test]
    fn the_datums_carry_the_names_units_and_dimensions_the_alarms_read() {
        let mut batch = Batch::starting_at([0; 4]);
        batch.collect([3, 1, 0, 0], samples(&[1.5, 1.5, 0.25], &[1000.0, 2000.0]));
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let gauges = Gauges {
            queue_depth: 4,
            oldest_waiting: Duration::from_millis(2500),
            scratch_free_bytes: Some(7 << 30),
        };
        let datums = batch.datums("pipeline-prod", at, Some(&gauges));
        assert!(
            datums
                .iter()
                .all(|d| d.timestamp() == Some(&DateTime::from(at))),
            "one timestamp"
        );

        let finished = named(&datums, JOBS_FINISHED);
        type Dimensions<'a> = Vec<(&'a str, &'a str)>;
        let by_outcome: Vec<(Dimensions, Option<f64>)> =
            finished.iter().map(|d| (dims(d), d.value())).collect();
        assert_eq!(
            by_outcome,
            [
                (
                    vec![("Stack", "pipeline-prod"), ("Outcome", "done")],
                    Some(3.0)
                ),
                (
                    vec![("Stack", "pipeline-prod"), ("Outcome", "failed")],
                    Some(1.0)
                ),
                (
                    vec![("Stack", "pipeline-prod"), ("Outcome", "deleted")],
                    Some(0.0)
                ),
                (
                    vec![("Stack", "pipeline-prod"), ("Outcome", "skipped")],
                    Some(0.0)
                ),
            ],
            "every outcome, 0 included"
        );
        assert!(
            finished
                .iter()
                .all(|d| d.unit() == Some(&StandardUnit::Count))
        );

        let render = named(&datums, RENDER_SECONDS);
        assert_eq!(render.len(), 1);
        assert_eq!(render[0].unit(), Some(&StandardUnit::Seconds));
        assert_eq!(dims(render[0]), [("Stack", "pipeline-prod")]);
        assert_eq!(render[0].values(), [0.25, 1.5]);
        assert_eq!(render[0].counts(), [1.0, 2.0]);
        assert_eq!(render[0].value(), None);

        let bytes = named(&datums, SOURCE_BYTES);
        assert_eq!(bytes[0].unit(), Some(&StandardUnit::Bytes));
        assert_eq!(bytes[0].values(), [1000.0, 2000.0]);

        let gauge = |name| {
            let found = named(&datums, name);
            assert_eq!(found.len(), 1, "{name}");
            assert_eq!(dims(found[0]), [("Stack", "pipeline-prod")], "{name}");
            (found[0].value(), found[0].unit().cloned())
        };
        assert_eq!(gauge(QUEUE_DEPTH), (Some(4.0), Some(StandardUnit::Count)));
        assert_eq!(
            gauge(OLDEST_WAITING_SECONDS),
            (Some(2.5), Some(StandardUnit::Seconds))
        );
        assert_eq!(
            gauge(SCRATCH_FREE_BYTES),
            (Some((7u64 << 30) as f64), Some(StandardUnit::Bytes))
        );
        assert_eq!(datums.len(), 4 + 2 + 3);

        // The last call on stop has no gauges; nothing observed: no distribution datum.
        let mut quiet = Batch::starting_at([0; 4]);
        quiet.collect([0, 0, 1, 0], Samples::default());
        let datums = quiet.datums("s", at, None);
        assert_eq!(datums.len(), 4);
        assert!(named(&datums, QUEUE_DEPTH).is_empty());
        let unreadable = Gauges {
            scratch_free_bytes: None,
            ..gauges
        };
        assert_eq!(quiet.datums("s", at, Some(&unreadable)).len(), 4 + 2);
    }

    #[test]
    fn any_batch_fits_one_call() {
        // Values over the whole range a distribution buckets, more than a minute could
        // ever bring: still one call within CloudWatch's limits.
        let mut many = Samples::default();
        let mut v = 1e-9;
        while v < 1e18 {
            many.render_seconds.record(v);
            many.source_bytes.record(v);
            v *= 1.005;
        }
        let mut batch = Batch::starting_at([0; 4]);
        batch.collect([1, 0, 0, 0], many);
        let gauges = Gauges {
            queue_depth: 0,
            oldest_waiting: Duration::ZERO,
            scratch_free_bytes: Some(1),
        };
        let datums = batch.datums("s", SystemTime::now(), Some(&gauges));
        assert!(datums.len() <= MAX_DATUMS_PER_CALL, "{}", datums.len());
        assert!(datums.len() < 50, "{} datums", datums.len());
        for datum in &datums {
            assert!(datum.values().len() <= MAX_VALUES_PER_DATUM);
            assert_eq!(datum.values().len(), datum.counts().len());
        }
        let sent: f64 = named(&datums, RENDER_SECONDS)
            .iter()
            .flat_map(|d| d.counts())
            .sum();
        assert_eq!(
            sent as u64,
            batch.render_seconds.count(),
            "every value sent"
        );
    }

    #[test]
    fn ticks_fall_on_multiples_of_the_interval() {
        let minute = Duration::from_secs(60);
        let at = |secs: f64| UNIX_EPOCH + Duration::from_secs_f64(secs);
        assert_eq!(
            until_boundary(at(1_800_000_010.0), minute),
            Duration::from_secs(50)
        );
        assert_eq!(
            until_boundary(at(1_800_000_000.0), minute),
            minute,
            "on one: the next"
        );
        assert_eq!(
            until_boundary(at(1_800_000_059.75), minute),
            Duration::from_millis(250)
        );
        // Woken a little late or early, the sample is stamped with the boundary meant.
        assert_eq!(
            nearest_boundary(at(1_800_000_060.004), minute),
            at(1_800_000_060.0)
        );
        assert_eq!(
            nearest_boundary(at(1_800_000_059.998), minute),
            at(1_800_000_060.0)
        );
        assert_eq!(
            nearest_boundary(at(1_800_000_007.3), Duration::from_secs(2)),
            at(1_800_000_008.0)
        );
    }
}
