//! Readiness: whether the daemon can do its work right now. The scratch disk has room,
//! the source and output buckets and the table answer, no job is parked (a job that
//! cannot end until an operator acts), and it is not draining.
//!
//! Results are cached for a second, so that probes and `status` do not turn into a stream
//! of AWS calls.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::aws::records::Records;
use crate::aws::s3::S3;
use crate::spool::files::free_bytes;

/// How long a readiness answer is reused.
const CACHE_FOR: Duration = Duration::from_secs(1);
/// How long each AWS check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// One check of a readiness report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The readiness report (`GET /readyz`, `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// The failed checks, as one line.
    pub fn reasons(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The scratch disk and the free space jobs need on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchSpace {
    pub dir: PathBuf,
    pub min_free_bytes: u64,
}

impl ScratchSpace {
    /// Whether the scratch disk has room for more jobs; the error says how much is left.
    pub fn room(&self) -> Result<u64, String> {
        match free_bytes(&self.dir) {
            Ok(free) if free >= self.min_free_bytes => Ok(free),
            Ok(free) => Err(format!(
                "{} has {} free, below scratch.min_free_bytes ({})",
                self.dir.display(),
                human_bytes(free),
                human_bytes(self.min_free_bytes)
            )),
            Err(e) => Err(format!("cannot stat {}: {e}", self.dir.display())),
        }
    }
}

/// What the daemon knows of itself that readiness reports: not AWS, not the disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    pub accepting: bool,
    /// Parked jobs: key and reason.
    pub parked: Vec<(String, String)>,
}

/// The readiness checker.
#[derive(Debug)]
pub struct Readiness {
    pub s3: S3,
    pub records: Records,
    pub source_bucket: String,
    pub output_bucket: String,
    pub scratch: ScratchSpace,
    cache: tokio::sync::Mutex<Option<(Instant, Report)>>,
}

impl Readiness {
    pub fn new(
        s3: S3,
        records: Records,
        source_bucket: String,
        output_bucket: String,
        scratch: ScratchSpace,
    ) -> Readiness {
        Readiness {
            s3,
            records,
            source_bucket,
            output_bucket,
            scratch,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The report, at most a second old.
    pub async fn check(&self, condition: &Condition) -> Report {
        let mut cache = self.cache.lock().await;
        if let Some((at, report)) = cache.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return with_condition(report.clone(), condition);
        }
        let report = self.check_now().await;
        *cache = Some((Instant::now(), report.clone()));
        with_condition(report, condition)
    }

    async fn check_now(&self) -> Report {
        let timed = |name: &str| format!("no answer within {CHECK_TIMEOUT:?} ({name})");
        let (source, output, table) = tokio::join!(
            tokio::time::timeout(CHECK_TIMEOUT, self.s3.check_bucket(&self.source_bucket)),
            tokio::time::timeout(CHECK_TIMEOUT, self.s3.check_bucket(&self.output_bucket)),
            tokio::time::timeout(CHECK_TIMEOUT, self.records.check()),
        );
        let mut checks = vec![match self.scratch.room() {
            Ok(free) => Check {
                name: "scratch".into(),
                ok: true,
                detail: format!(
                    "{} free in {}",
                    human_bytes(free),
                    self.scratch.dir.display()
                ),
            },
            Err(detail) => Check {
                name: "scratch".into(),
                ok: false,
                detail,
            },
        }];
        let mut push = |name: &str, what: String, result: Result<Result<(), String>, ()>| {
            checks.push(match result {
                Ok(Ok(())) => Check {
                    name: name.into(),
                    ok: true,
                    detail: format!("{what} answers"),
                },
                Ok(Err(e)) => Check {
                    name: name.into(),
                    ok: false,
                    detail: e,
                },
                Err(()) => Check {
                    name: name.into(),
                    ok: false,
                    detail: timed(&what),
                },
            });
        };
        let s3 = |r: Result<Result<(), crate::aws::s3::S3Error>, _>| {
            r.map(|r| r.map_err(|e| e.to_string())).map_err(|_| ())
        };
        push(
            "s3-source",
            format!("bucket {}", self.source_bucket),
            s3(source),
        );
        push(
            "s3-output",
            format!("bucket {}", self.output_bucket),
            s3(output),
        );
        push(
            "dynamodb",
            format!("table {}", self.records.table()),
            table.map(|r| r.map_err(|e| e.to_string())).map_err(|_| ()),
        );
        Report {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

fn with_condition(mut report: Report, condition: &Condition) -> Report {
    if let Some((key, reason)) = condition.parked.first() {
        report.ready = false;
        report.checks.push(Check {
            name: "parked".into(),
            ok: false,
            detail: format!(
                "{} job(s) parked, first {}: {reason} (fix it, then `systemctl reload ec2-service`)",
                condition.parked.len(),
                pipeline_contract::escape_key(key)
            ),
        });
    }
    if !condition.accepting {
        report.ready = false;
        report.checks.push(Check {
            name: "accepting".into(),
            ok: false,
            detail: "draining: shutting down".into(),
        });
    }
    report
}

/// `1.5 GiB`, `512 MiB`, `10 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn draining_or_a_parked_job_is_never_ready() {
        let report = Report {
            ready: true,
            checks: vec![],
        };
        let drained = with_condition(report.clone(), &Condition::default());
        assert!(!drained.ready);
        assert_eq!(drained.reasons(), "accepting: draining: shutting down");
        let parked = with_condition(
            report.clone(),
            &Condition {
                accepting: true,
                parked: vec![(
                    "uploads/a\tb.jpg".into(),
                    "dynamodb-access-denied: no".into(),
                )],
            },
        );
        assert!(!parked.ready);
        assert!(
            parked.reasons().starts_with(
                "parked: 1 job(s) parked, first uploads/a\\tb.jpg: dynamodb-access-denied"
            ),
            "{}",
            parked.reasons()
        );
        let fine = with_condition(
            report,
            &Condition {
                accepting: true,
                parked: vec![],
            },
        );
        assert!(fine.ready);
    }
}
