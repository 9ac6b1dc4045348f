//! The daemon's counters, gauges and histograms, and their Prometheus text exposition
//! (format 0.0.4) for `GET /metrics`.
//!
//! A handful of fixed metrics with atomics; no registry crate. Gauges that describe the
//! queue are read from it when scraped rather than kept here.

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
    }

    pub fn bytes_out(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn observe(&self, stage: Stage, duration: Duration) {
        self.stages[stage as usize].observe(duration);
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
    }
}
