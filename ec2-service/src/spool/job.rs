//! What one job is inside the daemon: the contract's [`JobRequest`] plus where it came from,
//! its id, its attempts, and the keys that order it against other events of the same
//! source.
//!
//! Ids are derived from the event (same event, same id), which is how a duplicate delivery
//! is recognised while the first copy is still held. Ordering follows S3: the `sequencer`
//! when both events have one (compared like [`compare_sequencers`]), else the event time.
//! [`sequencer_key`] and [`event_time_key`] turn both into strings whose plain byte order
//! is that order, so that DynamoDB condition expressions can compare them.
//!
//! No I/O here.
//!
//! [`compare_sequencers`]: pipeline_contract::compare_sequencers

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pipeline_contract::{JobAction, JobRequest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest sequencer accepted, in hex digits (S3's are about 18).
pub const MAX_SEQUENCER_LEN: usize = 128;

/// Why a job was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// An S3 event (through the forwarder, or read from SQS in fleet mode).
    Event,
    /// `ec2-service reprocess`.
    Reprocess,
    /// `ec2-service reconcile`.
    Reconcile,
}

impl Origin {
    /// Operator jobs re-render the current object whatever the record says about the
    /// event that produced it; they never change the record's event ordering.
    pub fn is_forced(self) -> bool {
        !matches!(self, Origin::Event)
    }

    pub fn name(self) -> &'static str {
        match self {
            Origin::Event => "event",
            Origin::Reprocess => "reprocess",
            Origin::Reconcile => "reconcile",
        }
    }
}

/// One accepted job, as stored on the scratch disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub origin: Origin,
    pub request: JobRequest,
    /// When the daemon accepted it, RFC 3339.
    pub accepted_at: String,
    /// Acceptance order (microseconds since the epoch, strictly increasing, also across
    /// restarts): jobs are started in this order.
    pub seq: u64,
    /// Attempts already made.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Waits for the record store that did not count as attempts (they set the backoff).
    #[serde(default)]
    pub record_waits: u32,
    /// Why the job is parked, when it is: it cannot end until an operator acts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<String>,
    /// The SQS message the job came from (fleet mode): the queue, not the scratch disk,
    /// keeps such a job, so it is never written to a file.
    #[serde(skip)]
    pub message: Option<MessageRef>,
}

/// Where a job read from SQS came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub message_id: String,
    /// How many times SQS has delivered the message (this delivery included).
    pub receive_count: u32,
    /// This is the last delivery before SQS moves the message to the DLQ.
    pub last_delivery: bool,
}

/// How a job ended, as `status`, `jobs`, the metrics and the log line say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Ending {
    /// Rendered; the record is DONE.
    Done,
    /// The record is FAILED, with a code.
    Failed,
    /// The source was removed; the record is DELETED.
    Deleted,
    /// Nothing to do: the record already holds this event or a newer one.
    Skipped,
}

impl Ending {
    pub const ALL: [Ending; 4] = [
        Ending::Done,
        Ending::Failed,
        Ending::Deleted,
        Ending::Skipped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ending::Done => "DONE",
            Ending::Failed => "FAILED",
            Ending::Deleted => "DELETED",
            Ending::Skipped => "SKIPPED",
        }
    }
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl Job {
    /// A job for an S3 event; the id is derived from the event.
    pub fn from_event(request: JobRequest) -> Job {
        Job::new(event_id(&request), Origin::Event, request)
    }

    /// The request of an operator job (`reprocess`, `reconcile`) for the current object
    /// at `key`; [`Job::operator`] makes the job once the rules have passed it.
    pub fn operator_request(
        origin: Origin,
        bucket: &str,
        key: &str,
        etag: Option<String>,
    ) -> JobRequest {
        JobRequest {
            action: JobAction::Process,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: None,
            etag,
            version_id: None,
            sequencer: None,
            event_time: None,
            event_name: format!("Operator:{}", origin.name()),
        }
    }

    /// An operator job: every request is a new job (its id is never a duplicate).
    pub fn operator(origin: Origin, request: JobRequest) -> Job {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nonce = format!(
            "{}\0{}\0{}",
            now_nanos(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let id = format!(
            "{}-{}",
            &origin.name()[..1],
            short_hash(&[&request.bucket, &request.key, &nonce])
        );
        Job::new(id, origin, request)
    }

    /// An operator job for the current object at `key`.
    pub fn forced(origin: Origin, bucket: &str, key: &str, etag: Option<String>) -> Job {
        Job::operator(origin, Job::operator_request(origin, bucket, key, etag))
    }

    fn new(id: String, origin: Origin, request: JobRequest) -> Job {
        Job {
            id,
            origin,
            request,
            accepted_at: now_rfc3339(),
            seq: next_seq(),
            attempts: 0,
            last_error: None,
            record_waits: 0,
            parked: None,
            message: None,
        }
    }

    /// The event's identity for the record (`EventId`); absent for operator jobs.
    pub fn event_id(&self) -> Option<String> {
        (!self.origin.is_forced()).then(|| event_id(&self.request))
    }

    pub fn key(&self) -> &str {
        &self.request.key
    }
}

/// The identity of an event: the same object, version and event give the same id.
pub fn event_id(request: &JobRequest) -> String {
    let action = match request.action {
        JobAction::Process => "process",
        JobAction::Delete => "delete",
    };
    let field = |value: &Option<String>| value.clone().unwrap_or_default();
    format!(
        "e-{}",
        short_hash(&[
            action,
            &request.bucket,
            &request.key,
            &field(&request.version_id),
            &field(&request.sequencer),
            &field(&request.etag),
            &field(&request.event_time),
        ])
    )
}

fn short_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..12])
}

/// Drops the event fields the daemon cannot use, and says why: a `sequencer` that is not
/// 1 to [`MAX_SEQUENCER_LEN`] hex digits, an `eventTime` that is not RFC 3339 UTC. The job
/// itself is kept: its record is then ordered by what is left (the event time, or nothing),
/// rather than the event being refused and lost.
pub fn normalize(mut request: JobRequest) -> (JobRequest, Vec<String>) {
    let mut dropped = Vec::new();
    if let Some(sequencer) = &request.sequencer {
        let hex = !sequencer.is_empty()
            && sequencer.len() <= MAX_SEQUENCER_LEN
            && sequencer.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            dropped.push(format!(
                "sequencer {sequencer:?} is not 1 to {MAX_SEQUENCER_LEN} hex digits"
            ));
            request.sequencer = None;
        }
    }
    if let Some(time) = &request.event_time
        && event_time_key(time).is_none()
    {
        dropped.push(format!("eventTime {time:?} is not an RFC 3339 UTC time"));
        request.event_time = None;
    }
    (request, dropped)
}

/// A sequencer as a string whose byte order is [`compare_sequencers`]'s order: upper case
/// (hex digits compare case-insensitively) without trailing zeros (the shorter value is
/// right-padded with zeros). Only for validated sequencers (hex digits).
///
/// [`compare_sequencers`]: pipeline_contract::compare_sequencers
pub fn sequencer_key(sequencer: &str) -> String {
    sequencer
        .to_ascii_uppercase()
        .trim_end_matches('0')
        .to_owned()
}

/// An RFC 3339 UTC event time as a fixed-width string of nanoseconds since the epoch, so
/// that byte order is time order; `None` when it does not parse.
pub fn event_time_key(time: &str) -> Option<String> {
    let at = humantime::parse_rfc3339_weak(time).ok()?;
    let nanos = at.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    Some(format!("{nanos:024}"))
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// `SystemTime` as RFC 3339 with milliseconds.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Increasing acceptance numbers, also across restarts (they start from the clock).
fn next_seq() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = (now_nanos() / 1_000) as u64;
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(current) => last = current,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use pipeline_contract::compare_sequencers;

    use super::*;

    fn request(sequencer: Option<&str>, time: Option<&str>) -> JobRequest {
        JobRequest {
            action: JobAction::Process,
            bucket: "photos".into(),
            key: "a b+c/ü.jpg".into(),
            size: Some(10),
            etag: Some("abc".into()),
            version_id: None,
            sequencer: sequencer.map(str::to_owned),
            event_time: time.map(str::to_owned),
            event_name: "ObjectCreated:Put".into(),
        }
    }

    #[test]
    fn sequencer_keys_order_exactly_like_compare_sequencers() {
        let mut values: Vec<String> = [
            "0",
            "00",
            "1",
            "01",
            "0A",
            "0a",
            "A",
            "a0",
            "A00",
            "A01",
            "ABC",
            "ABC000",
            "ABC001",
            "ABD",
            "ABC999",
            "F",
            "FF",
            "0055AED6DCD90281E5",
            "0055aed6dcd90281e500",
            "0055AED6DCD90281E501",
            "0056",
            "9",
            "90",
            "09",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // And a deterministic spread of pseudo-random hex strings of various lengths.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 7) as usize + 1;
            let text: String = (0..len)
                .map(|i| b"0123456789ABCDEFabcdef0000"[((state >> (i * 5)) % 26) as usize] as char)
                .collect();
            values.push(text);
        }
        for a in &values {
            for b in &values {
                assert_eq!(
                    sequencer_key(a).cmp(&sequencer_key(b)),
                    compare_sequencers(a, b),
                    "{a} vs {b}"
                );
            }
        }
        assert_eq!(
            compare_sequencers("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
            Ordering::Less
        );
    }

    #[test]
    fn event_times_order_as_times() {
        let a = event_time_key("2024-05-01T12:00:00.000Z").unwrap();
        let b = event_time_key("2024-05-01T12:00:00.001Z").unwrap();
        let c = event_time_key("2024-05-01T12:00:01Z").unwrap();
        let d = event_time_key("2025-01-01T00:00:00.5Z").unwrap();
        assert!(a < b && b < c && c < d);
        assert_eq!(a.len(), d.len());
        assert!(event_time_key("yesterday").is_none());
    }

    #[test]
    fn the_same_event_has_the_same_id_and_another_event_another() {
        let a = Job::from_event(request(Some("0A"), None));
        let b = Job::from_event(request(Some("0A"), None));
        let c = Job::from_event(request(Some("0B"), None));
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert!(a.id.starts_with("e-"));
        assert_eq!(a.event_id(), Some(a.id.clone()));
        let forced = Job::forced(Origin::Reprocess, "photos", "a.jpg", None);
        let again = Job::forced(Origin::Reprocess, "photos", "a.jpg", None);
        assert_ne!(forced.id, again.id, "every operator request is a new job");
        assert!(forced.id.starts_with("r-"));
        assert_eq!(forced.event_id(), None);
        assert!(again.seq > forced.seq);
    }

    #[test]
    fn unusable_event_fields_are_dropped_and_the_job_kept() {
        let (ok, dropped) = normalize(request(Some("0055AED6DCD90281E5"), None));
        assert!(dropped.is_empty());
        assert_eq!(ok.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
        let (ok, dropped) = normalize(request(None, Some("2024-05-01T12:00:00.000Z")));
        assert!(dropped.is_empty() && ok.event_time.is_some());
        for (sequencer, time) in [
            (Some("xyz"), None),
            (Some(""), None),
            (None, Some("May 1st")),
        ] {
            let (job, dropped) = normalize(request(sequencer, time));
            assert_eq!(dropped.len(), 1, "{sequencer:?} {time:?}");
            assert!(job.sequencer.is_none() && job.event_time.is_none());
            assert_eq!(job.key, "a b+c/ü.jpg");
        }
        // A key with control characters is an ordinary key.
        let mut r = request(None, None);
        r.key = "a\tb\nc.jpg".into();
        assert_eq!(normalize(r.clone()).0, r);
    }
}
