//! The daemon's counters, gauges and histograms, and their Prometheus text exposition
//! (format 0.0.4) for `GET /metrics`; and the per-job values (render seconds, source bytes)
//! since the CloudWatch publisher last took them ([`Samples`], in bounded
//! [`Distribution`]s).
//!
//! A handful of fixed metrics with atomics; no registry crate. Gauges that describe the
//! queue are read from it when scraped rather than kept here. Nothing here talks to AWS:
//! the publisher is `aws::cloudwatch`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::spool::job::Ending;
use crate::spool::queue::Depth;

/// The stages whose durations are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// HEAD and GET of the source.
    Download,
    /// Waiting for the source's share of the memory budget.
    Wait,
    /// Running the recipe on the source (`pipeline::render`: decode to encode).
    Render,
    /// PUT and removal of variants.
    Upload,
    /// DynamoDB reads and writes of the record.
    Record,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Download,
        Stage::Wait,
        Stage::Render,
        Stage::Upload,
        Stage::Record,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Download => "download",
            Stage::Wait => "wait",
            Stage::Render => "render",
            Stage::Upload => "upload",
            Stage::Record => "record",
        }
    }
}

/// Upper bounds of the duration buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, duration: Duration) {
        let secs = duration.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(duration.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Relative width of a [`Distribution`]'s buckets: each holds values within 2% of each
/// other.
const DISTRIBUTION_GROWTH: f64 = 1.02;
/// Values are bucketed as if clamped to this range, so that a distribution never has more
/// than about 2,450 buckets (log(1e21) / log(1.02)) whatever it is fed.
const DISTRIBUTION_RANGE: (f64, f64) = (1e-6, 1e15);

/// One bucket of a [`Distribution`]: how many values, and their exact sum.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Bucket {
    count: u64,
    sum: f64,
}

/// Values (durations, sizes) in logarithmic buckets 2% wide, each with its count and sum:
/// bounded memory however many values it gets, and the raw material of CloudWatch's
/// "values and counts" (which keep its percentiles). Each bucket is reported as the mean of
/// its values ([`values_and_counts`](Self::values_and_counts)): within 2% of each of them,
/// and the sum of value x count is the exact sum. Zero, negative and non-finite values are
/// counted as 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Distribution {
    buckets: BTreeMap<i32, Bucket>,
}

impl Distribution {
    /// The bucket of a value, and the value as it is counted.
    fn bucket_of(value: f64) -> (i32, f64) {
        if value.is_finite() && value > 0.0 {
            let clamped = value.clamp(DISTRIBUTION_RANGE.0, DISTRIBUTION_RANGE.1);
            let key = (clamped.ln() / DISTRIBUTION_GROWTH.ln()).floor() as i32;
            (key, value)
        } else {
            (i32::MIN, 0.0)
        }
    }

    pub fn record(&mut self, value: f64) {
        let (key, value) = Distribution::bucket_of(value);
        let bucket = self.buckets.entry(key).or_default();
        bucket.count += 1;
        bucket.sum += value;
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: Distribution) {
        for (key, theirs) in other.buckets {
            let ours = self.buckets.entry(key).or_default();
            ours.count += theirs.count;
            ours.sum += theirs.sum;
        }
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.values().map(|b| b.count).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Distinct values of [`values_and_counts`](Self::values_and_counts).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// `(value, count)` per bucket, smallest first: the mean of the bucket's values and how
    /// many there were.
    pub fn values_and_counts(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.buckets
            .values()
            .map(|b| (b.sum / b.count as f64, b.count))
    }
}

/// The per-job values since they were last taken ([`Metrics::take_samples`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    /// Seconds of the render stage (decode to encode), one value per attempt that rendered.
    pub render_seconds: Distribution,
    /// Bytes of each source downloaded.
    pub source_bytes: Distribution,
}

/// The memory budget at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub reserved_bytes: u64,
    pub budget_bytes: u64,
}

/// Every metric of the daemon.
#[derive(Debug, Default)]
pub struct Metrics {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    finished: Mutex<BTreeMap<(Ending, String), u64>>,
    retries: AtomicU64,
    record_waits: AtomicU64,
    replays: AtomicU64,
    panics: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    stages: [Histogram; Stage::ALL.len()],
    samples: Mutex<Samples>,
    cloudwatch_failures: AtomicU64,
    cloudwatch_dropped: AtomicU64,
}

impl Metrics {
    pub fn accepted(&self, fresh: u64, duplicates: u64) {
        self.accepted.fetch_add(fresh, Ordering::Relaxed);
        self.duplicates.fetch_add(duplicates, Ordering::Relaxed);
    }

    /// A request or a job refused with this error code.
    pub fn rejected(&self, code: &'static str) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code)
            .or_default() += 1;
    }

    /// A job ended so, with `code` (empty unless failed).
    pub fn finished(&self, ending: Ending, code: &str) {
        *self
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((ending, code.to_owned()))
            .or_default() += 1;
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// A job waited for the record store (no attempt spent).
    pub fn record_waited(&self) {
        self.record_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// A signed request seen before was answered as duplicates.
    pub fn replayed(&self) {
        self.replays.fetch_add(1, Ordering::Relaxed);
    }

    /// A job task panicked.
    pub fn panicked(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bytes_in(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.lock_samples().source_bytes.record(bytes as f64);
    }

    pub fn bytes_out(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn observe(&self, stage: Stage, duration: Duration) {
        self.stages[stage as usize].observe(duration);
        if stage == Stage::Render {
            self.lock_samples()
                .render_seconds
                .record(duration.as_secs_f64());
        }
    }

    fn lock_samples(&self) -> std::sync::MutexGuard<'_, Samples> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The per-job values since the last call (bounded however long nobody calls).
    pub fn take_samples(&self) -> Samples {
        std::mem::take(&mut *self.lock_samples())
    }

    /// Jobs finished so far, by ending, in the order of [`Ending::ALL`].
    pub fn finished_by_ending(&self) -> [u64; Ending::ALL.len()] {
        let finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        Ending::ALL.map(|ending| {
            finished
                .iter()
                .filter(|((e, _), _)| *e == ending)
                .map(|(_, n)| n)
                .sum()
        })
    }

    /// A PutMetricData call failed.
    pub fn cloudwatch_failed(&self) {
        self.cloudwatch_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Values that will never reach CloudWatch.
    pub fn cloudwatch_dropped(&self, values: u64) {
        self.cloudwatch_dropped.fetch_add(values, Ordering::Relaxed);
    }

    /// Jobs that ended so, any code.
    pub fn finished_count(&self, ending: Ending) -> u64 {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((e, _), _)| *e == ending)
            .map(|(_, n)| n)
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn exposition(&self, depth: Depth, accepting: bool, memory: Memory) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "ec2_service_jobs_accepted_total",
            "Jobs accepted and stored (duplicates excluded).",
            self.accepted.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ec2_service_jobs_duplicate_total",
            "Jobs answered as duplicates of a job already held.",
            self.duplicates.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP ec2_service_requests_rejected_total Job requests refused, by error code.\n\
             # TYPE ec2_service_requests_rejected_total counter"
        );
        for (code, n) in self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "ec2_service_requests_rejected_total{{code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP ec2_service_jobs_finished_total Jobs finished, by record status and error code.\n\
             # TYPE ec2_service_jobs_finished_total counter"
        );
        for ((status, code), n) in self
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "ec2_service_jobs_finished_total{{status=\"{status}\",code=\"{code}\"}} {n}"
            );
        }
        counter(
            &mut out,
            "ec2_service_job_retries_total",
            "Attempts put back for a retry after a transient failure.",
            self.retries.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ec2_service_record_waits_total",
            "Times a job waited for the record store (DynamoDB) without spending an attempt.",
            self.record_waits.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ec2_service_requests_replayed_total",
            "Signed requests seen before, answered as duplicates without any work.",
            self.replays.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ec2_service_job_panics_total",
            "Job tasks that panicked (a bug: please report it).",
            self.panics.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ec2_service_bytes_in_total",
            "Source bytes downloaded.",
            self.bytes_in.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ec2_service_bytes_out_total",
            "Variant bytes uploaded.",
            self.bytes_out.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ec2_service_cloudwatch_publish_failures_total",
            "PutMetricData calls that failed (what they carried goes with the next one).",
            self.cloudwatch_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "ec2_service_cloudwatch_dropped_values_total",
            "Values never sent to CloudWatch: gauges of failed publishes, batches it refused.",
            self.cloudwatch_dropped.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ec2_service_queue_depth",
            "Jobs waiting to start, including those waiting to retry.",
            depth.waiting as u64,
        );
        gauge(
            &mut out,
            "ec2_service_jobs_retrying",
            "Jobs waiting for their retry time.",
            depth.retrying as u64,
        );
        gauge(
            &mut out,
            "ec2_service_jobs_in_flight",
            "Jobs being processed.",
            depth.in_flight as u64,
        );
        gauge(
            &mut out,
            "ec2_service_jobs_parked",
            "Jobs that cannot end until an operator acts (see `ec2-service jobs`).",
            depth.parked as u64,
        );
        gauge(
            &mut out,
            "ec2_service_memory_budget_reserved_bytes",
            "Memory budget reserved by the sources being read and rendered.",
            memory.reserved_bytes,
        );
        gauge(
            &mut out,
            "ec2_service_memory_budget_bytes",
            "The whole memory budget of the renders (server.memory_budget_bytes).",
            memory.budget_bytes,
        );
        gauge(
            &mut out,
            "ec2_service_queue_capacity",
            "Most unfinished jobs held at once.",
            depth.capacity as u64,
        );
        gauge(
            &mut out,
            "ec2_service_accepting",
            "1 while jobs are accepted, 0 while draining.",
            u64::from(accepting),
        );
        let name = "ec2_service_stage_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Duration of each stage of a job.\n# TYPE {name} histogram"
        );
        for stage in Stage::ALL {
            let histogram = &self.stages[stage as usize];
            let stage = stage.name();
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += histogram.counts[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{stage=\"{stage}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += histogram.counts[BUCKETS.len()].load(Ordering::Relaxed);
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {cumulative}\n\
                 {name}_sum{{stage=\"{stage}\"}} {sum}\n\
                 {name}_count{{stage=\"{stage}\"}} {cumulative}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_metric_with_its_labels() {
        let m = Metrics::default();
        m.accepted(3, 1);
        m.rejected("bad-signature");
        m.finished(Ending::Done, "");
        m.finished(Ending::Failed, "corrupt-image");
        m.finished(Ending::Failed, "corrupt-image");
        m.observe(Stage::Download, Duration::from_millis(30));
        m.observe(Stage::Download, Duration::from_secs(1000));
        m.bytes_in(1234);
        let text = m.exposition(
            Depth {
                waiting: 2,
                retrying: 1,
                in_flight: 1,
                parked: 1,
                capacity: 10,
            },
            true,
            Memory {
                reserved_bytes: 5,
                budget_bytes: 100,
            },
        );
        for line in [
            "ec2_service_jobs_accepted_total 3",
            "ec2_service_jobs_duplicate_total 1",
            "ec2_service_requests_rejected_total{code=\"bad-signature\"} 1",
            "ec2_service_jobs_finished_total{status=\"DONE\",code=\"\"} 1",
            "ec2_service_jobs_finished_total{status=\"FAILED\",code=\"corrupt-image\"} 2",
            "ec2_service_queue_depth 2",
            "ec2_service_jobs_in_flight 1",
            "ec2_service_jobs_parked 1",
            "ec2_service_memory_budget_reserved_bytes 5",
            "ec2_service_bytes_in_total 1234",
            "ec2_service_stage_duration_seconds_bucket{stage=\"download\",le=\"0.025\"} 0",
            "ec2_service_stage_duration_seconds_bucket{stage=\"download\",le=\"0.05\"} 1",
            "ec2_service_stage_duration_seconds_bucket{stage=\"download\",le=\"+Inf\"} 2",
            "ec2_service_stage_duration_seconds_count{stage=\"record\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(m.finished_count(Ending::Failed), 2);
        assert_eq!(m.finished_by_ending(), [1, 2, 0, 0]);
    }

    #[test]
    fn samples_hold_the_render_seconds_and_source_bytes_since_they_were_taken() {
        let m = Metrics::default();
        m.observe(Stage::Render, Duration::from_millis(1500));
        m.observe(Stage::Download, Duration::from_millis(20));
        m.observe(Stage::Render, Duration::from_millis(250));
        m.bytes_in(1000);
        m.bytes_in(3000);
        let samples = m.take_samples();
        assert_eq!(samples.render_seconds.count(), 2, "only the render stage");
        assert_eq!(samples.source_bytes.count(), 2);
        let bytes: Vec<(f64, u64)> = samples.source_bytes.values_and_counts().collect();
        assert_eq!(bytes, [(1000.0, 1), (3000.0, 1)]);
        assert_eq!(m.take_samples(), Samples::default(), "taken: empty again");
    }

    #[test]
    fn a_distribution_keeps_counts_and_sums_exact_values_within_two_percent() {
        let mut d = Distribution::default();
        // Values within 2% of each other (one bucket, [98.9, 100.9)) are reported as their
        // mean; zero, negative and non-finite values as 0.
        for v in [100.0, 100.2, 100.4, 250.0, 0.0, -3.0, f64::NAN] {
            d.record(v);
        }
        assert_eq!(d.count(), 7);
        let pairs: Vec<(f64, u64)> = d.values_and_counts().collect();
        assert_eq!(pairs.len(), 3, "{pairs:?}");
        assert_eq!(pairs[0], (0.0, 3));
        assert_eq!(pairs[2], (250.0, 1));
        assert!(
            (pairs[1].0 - 100.2).abs() < 1e-9 && pairs[1].1 == 3,
            "{pairs:?}"
        );
        let sum: f64 = pairs.iter().map(|(v, c)| v * *c as f64).sum();
        assert!((sum - 550.6).abs() < 1e-9, "the sum is exact: {sum}");

        // Every value is reported as its bucket's mean, within 2% of it.
        let mut spread = Distribution::default();
        let values: Vec<f64> = (0..20_000).map(|i| 1e-3 * 1.0007f64.powi(i)).collect();
        for v in &values {
            spread.record(*v);
        }
        let means: BTreeMap<i32, f64> = spread
            .buckets
            .iter()
            .map(|(key, b)| (*key, b.sum / b.count as f64))
            .collect();
        for v in &values {
            let mean = means[&Distribution::bucket_of(*v).0];
            assert!((mean / v - 1.0).abs() <= 0.02, "{v} reported as {mean}");
        }
        assert!(
            spread.len() < 800,
            "{} buckets for 20,000 values",
            spread.len()
        );
        let mut merged = spread.clone();
        merged.merge(spread.clone());
        assert_eq!(merged.len(), spread.len());
        assert_eq!(merged.count(), 40_000);

        // Bounded: over a million distinct values give no more buckets than the range.
        let mut wide = Distribution::default();
        let mut v = 1e-300;
        while v < 1e300 {
            wide.record(v);
            v *= 1.001;
        }
        let most = ((DISTRIBUTION_RANGE.1 / DISTRIBUTION_RANGE.0).ln() / DISTRIBUTION_GROWTH.ln())
            .ceil() as usize
            + 2;
        assert!(wide.len() <= most, "{} buckets, at most {most}", wide.len());
    }
}
