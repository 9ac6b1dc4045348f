//! The operator commands: `status`, `jobs [--failed]`, `reprocess KEY...`,
//! `reconcile [--prefix P]`. Each asks the running daemon over its loopback admin listener
//! (`[admin] listen`) and prints the answer for a person. Exit status: 0 on success, 1 when
//! the daemon refused, 64 for a bad configuration, 69 when the daemon cannot be reached.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pipeline_contract::{AnswerStatus, ErrorBody, JobAnswers, LogKey};
use serde::de::DeserializeOwned;

use crate::admin::{
    Jobs, ReconcileAnswer, ReconcileReport, ReconcileRequest, ReprocessRequest, Status,
};
use crate::cli::admin_client;
use crate::settings::Settings;
use crate::spool::job::Ending;
use crate::spool::queue::Finished;

use super::EXIT_USAGE;

/// The daemon cannot be reached (sysexits EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: i32 = 69;

/// A whole command: find the daemon, ask, print.
pub fn run(config: Option<&Path>, command: Op) -> i32 {
    let settings = match Settings::load_for_cli(config) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("ec2-service: {e}");
            return EXIT_USAGE;
        }
    };
    let Ok(addr) = settings.admin.listen.parse::<SocketAddr>() else {
        eprintln!("ec2-service: admin.listen is not an address");
        return EXIT_USAGE;
    };
    let admin = Admin { addr };
    let result = match command {
        Op::Status => admin
            .get::<Status>("/admin/status")
            .map(|s| print_status(&s)),
        Op::Jobs { failed } => admin
            .get::<Jobs>(if failed {
                "/admin/jobs?failed=true"
            } else {
                "/admin/jobs"
            })
            .map(|j| print_jobs(&j, failed)),
        Op::Reprocess { keys } => admin
            .post::<JobAnswers>("/admin/reprocess", &ReprocessRequest { keys })
            .map(|a| print_reprocess(&a)),
        Op::Reconcile { prefix } => admin
            .post::<ReconcileAnswer>("/admin/reconcile", &ReconcileRequest { prefix })
            .map(|a| print_reconcile(&a)),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(Failure::Unreachable(message)) => {
            eprintln!("ec2-service: {message}");
            EXIT_UNAVAILABLE
        }
        Err(Failure::Refused(message)) => {
            eprintln!("ec2-service: {message}");
            1
        }
    }
}

/// One operator command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Status,
    Jobs { failed: bool },
    Reprocess { keys: Vec<String> },
    Reconcile { prefix: Option<String> },
}

enum Failure {
    Unreachable(String),
    Refused(String),
}

struct Admin {
    addr: SocketAddr,
}

impl Admin {
    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<T, Failure> {
        let headers = match body {
            Some(_) => vec![("Content-Type", "application/json".to_owned())],
            None => Vec::new(),
        };
        let response = admin_client::request(
            self.addr,
            method,
            path,
            &headers,
            body.unwrap_or_default(),
            Duration::from_secs(5),
        )
        .map_err(|e| {
            Failure::Unreachable(format!(
                "cannot reach the daemon's admin listener at {}: {e} (is it running? systemctl status ec2-service)",
                self.addr
            ))
        })?;
        if !(200..300).contains(&response.status) {
            let detail = serde_json::from_slice::<ErrorBody>(&response.body)
                .map(|b| format!("{}: {}", b.code, b.message))
                .unwrap_or_else(|_| response.text());
            return Err(Failure::Refused(format!(
                "the daemon answered {}: {detail}",
                response.status
            )));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| Failure::Refused(format!("unexpected answer from the daemon: {e}")))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.call("GET", path, None)
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, Failure> {
        let body = serde_json::to_vec(body).expect("requests serialise");
        self.call("POST", path, Some(&body))
    }
}

fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d {:02}h", secs / 86_400, secs / 3600 % 24),
    }
}

fn failure_line(f: &Finished) -> String {
    format!(
        "  {}  {}  {}  {}\n",
        f.finished_at,
        f.code.as_deref().unwrap_or("-"),
        LogKey(&f.key),
        f.message.as_deref().unwrap_or("")
    )
}

/// `status`, for a person.
pub fn print_status(s: &Status) -> String {
    let mut out = format!(
        "ec2-service {}, up {}, recipe {}, {}\n",
        s.version,
        duration(s.uptime_secs),
        s.recipe_version,
        if s.accepting {
            "accepting jobs"
        } else {
            "draining (not accepting jobs)"
        }
    );
    out.push_str(&format!(
        "ready:     {}\n",
        if s.readiness.ready { "yes" } else { "NO" }
    ));
    for check in &s.readiness.checks {
        out.push_str(&format!(
            "  {:<4} {:<10} {}\n",
            if check.ok { "ok" } else { "FAIL" },
            check.name,
            check.detail
        ));
    }
    let q = &s.queue;
    out.push_str(&format!(
        "queue:     {} waiting ({} waiting to retry), {} in flight, {} parked, capacity {}\n",
        q.waiting, q.retrying, q.in_flight, q.parked, q.capacity
    ));
    let count = |ending: Ending| s.finished.get(&ending).copied().unwrap_or(0);
    out.push_str(&format!(
        "finished:  {} done, {} failed, {} deleted, {} skipped (since start)\n",
        count(Ending::Done),
        count(Ending::Failed),
        count(Ending::Deleted),
        count(Ending::Skipped)
    ));
    if !s.parked.is_empty() {
        out.push_str(
            "parked (they cannot end until the cause is fixed; then `systemctl reload ec2-service`):\n",
        );
        for (key, reason) in &s.parked {
            out.push_str(&format!("  {}  {reason}\n", LogKey(key)));
        }
    }
    if s.recent_failures.is_empty() {
        out.push_str("recent failures: none\n");
    } else {
        out.push_str("recent failures (newest first):\n");
        for f in &s.recent_failures {
            out.push_str(&failure_line(f));
        }
    }
    if let Some(r) = &s.reconcile {
        out.push_str(&match (&r.report, &r.error, r.running) {
            (_, _, true) => format!("reconcile: running since {}\n", r.started_at),
            (Some(report), _, _) => format!("reconcile: {}", reconcile_summary(report)),
            (None, Some(error), _) => format!("reconcile: failed ({error})\n"),
            (None, None, false) => "reconcile: finished\n".to_owned(),
        });
    }
    out
}

/// `jobs`, for a person.
pub fn print_jobs(jobs: &Jobs, failed_only: bool) -> String {
    let mut out = String::new();
    let what = if failed_only {
        "unfinished jobs with errors"
    } else {
        "unfinished jobs"
    };
    if jobs.pending.is_empty() {
        out.push_str(&format!("no {what}\n"));
    } else {
        out.push_str(&format!("{} {what} (oldest first):\n", jobs.pending.len()));
        out.push_str("  STATE      TRIES  ACCEPTED                  ACTION   KEY\n");
        for p in &jobs.pending {
            let state = match p.retry_in_secs {
                Some(secs) => format!("{} {:.0}s", p.state, secs.ceil()),
                None => p.state.clone(),
            };
            out.push_str(&format!(
                "  {:<10} {:<6} {:<25} {:<8} {}\n",
                state,
                p.attempts,
                p.accepted_at,
                p.action,
                LogKey(&p.key)
            ));
            if let Some(error) = &p.last_error {
                out.push_str(&format!("             last error: {error}\n"));
            }
        }
    }
    let what = if failed_only { "failed" } else { "finished" };
    if jobs.recent.is_empty() {
        out.push_str(&format!("no recently {what} jobs\n"));
    } else {
        out.push_str(&format!("recently {what} (newest first):\n"));
        out.push_str("  FINISHED                  STATUS   TRIES  CODE                  KEY\n");
        for f in &jobs.recent {
            out.push_str(&format!(
                "  {:<25} {:<8} {:<6} {:<21} {}\n",
                f.finished_at,
                f.status,
                f.attempts,
                f.code.as_deref().unwrap_or("-"),
                LogKey(&f.key)
            ));
            if f.status == Ending::Failed
                && let Some(message) = &f.message
            {
                out.push_str(&format!("             {message}\n"));
            }
        }
    }
    out
}

fn print_reprocess(answers: &JobAnswers) -> String {
    let queued = answers
        .jobs
        .iter()
        .filter(|a| a.status != AnswerStatus::Refused)
        .count();
    let mut out = format!("queued {queued} jobs:\n");
    for answer in &answers.jobs {
        match answer.status {
            AnswerStatus::Accepted | AnswerStatus::Duplicate => out.push_str(&format!(
                "  {}  {}\n",
                answer.id.as_deref().unwrap_or("-"),
                LogKey(&answer.key)
            )),
            AnswerStatus::Refused => out.push_str(&format!(
                "  refused {}: {} {}\n",
                LogKey(&answer.key),
                answer.code.as_deref().unwrap_or("-"),
                answer.message.as_deref().unwrap_or("")
            )),
        }
    }
    out
}

fn reconcile_summary(r: &ReconcileReport) -> String {
    let reasons: Vec<String> = r.reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let mut line = format!(
        "listed {} sources under {:?} in {} page(s): {} up to date, {} enqueued{}, {} already queued\n",
        r.listed,
        r.prefix,
        r.pages,
        r.up_to_date,
        r.enqueued,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        },
        r.already_queued
    );
    if !r.complete {
        line.push_str(&format!(
            "stopped early: {}; run it again later\n",
            r.stopped_because.as_deref().unwrap_or("unknown reason")
        ));
    }
    line
}

fn print_reconcile(answer: &ReconcileAnswer) -> String {
    match &answer.report {
        Some(report) => reconcile_summary(report),
        None => "reconcile is running in the background; `ec2-service status` shows its result\n"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::daemon::health::{Check, Report};
    use crate::spool::queue::{Depth, Pending};

    #[test]
    fn status_and_jobs_read_well() {
        let failure = Finished {
            id: "e-1".into(),
            key: "uploads/bad.jpg".into(),
            origin: "event".into(),
            status: Ending::Failed,
            code: Some("corrupt-image".into()),
            message: Some("corrupt jpeg image: truncated".into()),
            attempts: 1,
            finished_at: "2026-01-01T00:00:00.000Z".into(),
        };
        let status = Status {
            version: "0.1.0".into(),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            uptime_secs: 3725,
            accepting: true,
            recipe_version: "standard-1".into(),
            queue: Depth {
                waiting: 3,
                retrying: 1,
                in_flight: 2,
                parked: 1,
                capacity: 100,
            },
            finished: BTreeMap::from([(Ending::Done, 7), (Ending::Failed, 1)]),
            parked: vec![("uploads/p.jpg".into(), "dynamodb-access-denied: no".into())],
            recent_failures: vec![failure.clone()],
            readiness: Report {
                ready: false,
                checks: vec![Check {
                    name: "dynamodb".into(),
                    ok: false,
                    detail: "timed out".into(),
                }],
            },
            reconcile: None,
        };
        let text = print_status(&status);
        assert!(text.contains("up 1h 02m"), "{text}");
        assert!(
            text.contains("ready:     NO\n  FAIL dynamodb   timed out"),
            "{text}"
        );
        assert!(
            text.contains("3 waiting (1 waiting to retry), 2 in flight, 1 parked, capacity 100"),
            "{text}"
        );
        assert!(
            text.contains("7 done, 1 failed, 0 deleted, 0 skipped"),
            "{text}"
        );
        assert!(text.contains("corrupt-image  uploads/bad.jpg"), "{text}");
        assert!(
            text.contains("  uploads/p.jpg  dynamodb-access-denied: no\n"),
            "{text}"
        );

        let jobs = Jobs {
            pending: vec![Pending {
                id: "e-2".into(),
                key: "a b.jpg".into(),
                action: "process".into(),
                origin: "event".into(),
                state: "retrying".into(),
                attempts: 2,
                accepted_at: "2026-01-01T00:00:00.000Z".into(),
                last_error: Some("s3-unavailable: connection refused".into()),
                retry_in_secs: Some(3.2),
            }],
            recent: vec![failure],
        };
        let text = print_jobs(&jobs, false);
        assert!(text.contains("retrying 4s"), "{text}");
        assert!(text.contains("last error: s3-unavailable"), "{text}");
        assert!(text.contains("FAILED   1      corrupt-image"), "{text}");
    }
}
