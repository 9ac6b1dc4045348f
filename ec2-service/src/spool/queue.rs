//! The bounded queue of unfinished jobs: admission (capacity, duplicates, durable store
//! before the answer), the order jobs start in, and what is in flight.
//!
//! Every unfinished job is here and in the [`JobFiles`], waiting (maybe until a retry
//! time) or in flight. Jobs start in acceptance order, except that two jobs for the same
//! source never run at once: the later one waits, so that one daemon never races itself
//! on a record. The capacity bounds every unfinished job, so that a flood cannot fill the
//! scratch disk.
//!
//! No I/O besides the store calls made while admitting.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pipeline_contract::AcceptedJob;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::spool::files::{JobFiles, SpoolError};
use crate::spool::job::Job;

/// How many finished jobs `status` and `jobs` remember.
const RECENT: usize = 200;

/// Why jobs were not admitted. Nothing of the request was stored.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("the daemon is shutting down")]
    Stopping,
    #[error(
        "the queue is full: {unfinished} unfinished jobs, {incoming} more would exceed the capacity of {capacity}"
    )]
    Full {
        unfinished: usize,
        incoming: usize,
        capacity: usize,
    },
    #[error(transparent)]
    Store(#[from] SpoolError),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub id: String,
    pub key: String,
    pub origin: String,
    /// `DONE`, `FAILED`, `DELETED`, or `SKIPPED` (the record already held this event or a
    /// newer one).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub attempts: u32,
    pub finished_at: String,
}

/// One unfinished job as `jobs` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub id: String,
    pub key: String,
    pub action: String,
    pub origin: String,
    /// `waiting`, `retrying` (waiting for its retry time) or `in-flight`.
    pub state: String,
    pub attempts: u32,
    pub accepted_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Seconds until the next attempt, for `retrying` jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_secs: Option<f64>,
}

/// Counts of the queue at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Depth {
    /// Waiting to start (including those waiting for a retry).
    pub waiting: usize,
    /// Of which waiting for their retry time.
    pub retrying: usize,
    pub in_flight: usize,
    pub capacity: usize,
}

#[derive(Debug)]
enum SlotState {
    Waiting { not_before: Option<Instant> },
    InFlight,
}

#[derive(Debug)]
struct Slot {
    job: Job,
    state: SlotState,
}

#[derive(Debug)]
struct State {
    slots: HashMap<String, Slot>,
    busy_sources: HashSet<(String, String)>,
    accepting: bool,
    dispatching: bool,
    recent: VecDeque<Finished>,
}

/// The queue. Shared by the HTTP handlers (admit), the dispatcher (take) and the workers
/// (finish, retry).
#[derive(Debug)]
pub struct Queue {
    capacity: usize,
    state: Mutex<State>,
    /// Admissions are serialised, so that the capacity and duplicate checks and the durable
    /// store are one step.
    admit_lock: Mutex<()>,
    wake: Notify,
}

impl Queue {
    /// A queue holding `resumed` (jobs found in the store on start).
    pub fn new(capacity: usize, resumed: Vec<Job>) -> Queue {
        let slots = resumed
            .into_iter()
            .map(|job| {
                (
                    job.id.clone(),
                    Slot {
                        job,
                        state: SlotState::Waiting { not_before: None },
                    },
                )
            })
            .collect();
        Queue {
            capacity,
            state: Mutex::new(State {
                slots,
                busy_sources: HashSet::new(),
                accepting: true,
                dispatching: true,
                recent: VecDeque::new(),
            }),
            admit_lock: Mutex::new(()),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every change is one
        // statement), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits jobs: duplicates (same id already held, or twice in this request) are
    /// answered without being stored again; the rest are stored durably and queued, or
    /// none is when they do not all fit. Blocking (fsync): call from a blocking thread.
    pub fn admit(&self, jobs: Vec<Job>, store: &JobFiles) -> Result<Vec<AcceptedJob>, AdmitError> {
        let _serial = self.admit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut answers = Vec::with_capacity(jobs.len());
        let mut fresh: Vec<Job> = Vec::new();
        {
            let state = self.lock();
            if !state.accepting {
                return Err(AdmitError::Stopping);
            }
            let mut seen = HashSet::new();
            for job in jobs {
                let duplicate = state.slots.contains_key(&job.id) || !seen.insert(job.id.clone());
                answers.push(AcceptedJob {
                    id: job.id.clone(),
                    key: job.request.key.clone(),
                    duplicate,
                });
                if !duplicate {
                    fresh.push(job);
                }
            }
            let unfinished = state.slots.len();
            if !fresh.is_empty() && unfinished + fresh.len() > self.capacity {
                return Err(AdmitError::Full {
                    unfinished,
                    incoming: fresh.len(),
                    capacity: self.capacity,
                });
            }
        }
        if fresh.is_empty() {
            return Ok(answers);
        }
        store.persist(&fresh)?;
        let mut state = self.lock();
        for job in fresh {
            state.slots.insert(
                job.id.clone(),
                Slot {
                    job,
                    state: SlotState::Waiting { not_before: None },
                },
            );
        }
        drop(state);
        self.wake.notify_one();
        Ok(answers)
    }

    /// Waits for the next job that may start and marks it in flight. Returns `None` once
    /// [`stop_dispatching`](Self::stop_dispatching) was called. Only one task should call
    /// this (the dispatcher).
    pub async fn next(&self) -> Option<Job> {
        loop {
            let wait = {
                let mut state = self.lock();
                if !state.dispatching {
                    return None;
                }
                match take_ready(&mut state) {
                    Ok(job) => return Some(job),
                    Err(wait) => wait,
                }
            };
            match wait {
                Some(delay) => {
                    let _ = tokio::time::timeout(delay, self.wake.notified()).await;
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// Puts an in-flight job back, to start again after `delay`.
    pub fn retry_later(&self, job: Job, delay: Duration) {
        let mut state = self.lock();
        state
            .busy_sources
            .remove(&(job.request.bucket.clone(), job.request.key.clone()));
        let id = job.id.clone();
        state.slots.insert(
            id,
            Slot {
                job,
                state: SlotState::Waiting {
                    not_before: Some(Instant::now() + delay),
                },
            },
        );
        drop(state);
        self.wake.notify_one();
    }

    /// Forgets a finished job (its file must already be removed) and remembers how it
    /// ended.
    pub fn finish(&self, finished: Finished) {
        let mut state = self.lock();
        if let Some(slot) = state.slots.remove(&finished.id) {
            let source = (slot.job.request.bucket, slot.job.request.key);
            state.busy_sources.remove(&source);
        }
        if state.recent.len() == RECENT {
            state.recent.pop_front();
        }
        state.recent.push_back(finished);
        drop(state);
        self.wake.notify_one();
    }

    /// Refuses further admissions (SIGTERM).
    pub fn stop_accepting(&self) {
        self.lock().accepting = false;
    }

    pub fn is_accepting(&self) -> bool {
        self.lock().accepting
    }

    /// Makes [`next`](Self::next) return `None`: no job starts any more.
    pub fn stop_dispatching(&self) {
        self.lock().dispatching = false;
        self.wake.notify_one();
    }

    pub fn depth(&self) -> Depth {
        let state = self.lock();
        let now = Instant::now();
        let mut depth = Depth {
            capacity: self.capacity,
            ..Depth::default()
        };
        for slot in state.slots.values() {
            match slot.state {
                SlotState::InFlight => depth.in_flight += 1,
                SlotState::Waiting { not_before } => {
                    depth.waiting += 1;
                    if not_before.is_some_and(|t| t > now) {
                        depth.retrying += 1;
                    }
                }
            }
        }
        depth
    }

    /// Every unfinished job, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        let state = self.lock();
        let now = Instant::now();
        let mut slots: Vec<&Slot> = state.slots.values().collect();
        slots.sort_by_key(|slot| slot.job.seq);
        slots
            .into_iter()
            .map(|slot| {
                let (label, retry_in) = match slot.state {
                    SlotState::InFlight => ("in-flight", None),
                    SlotState::Waiting {
                        not_before: Some(t),
                    } if t > now => ("retrying", Some((t - now).as_secs_f64())),
                    SlotState::Waiting { .. } => ("waiting", None),
                };
                let job = &slot.job;
                Pending {
                    id: job.id.clone(),
                    key: job.request.key.clone(),
                    action: format!("{:?}", job.request.action).to_lowercase(),
                    origin: job.origin.name().to_owned(),
                    state: label.to_owned(),
                    attempts: job.attempts,
                    accepted_at: job.accepted_at.clone(),
                    last_error: job.last_error.clone(),
                    retry_in_secs: retry_in,
                }
            })
            .collect()
    }

    /// The last finished jobs, newest first.
    pub fn recent(&self) -> Vec<Finished> {
        self.lock().recent.iter().rev().cloned().collect()
    }

    /// Whether a job for this source is unfinished (used by reconcile).
    pub fn holds_source(&self, bucket: &str, key: &str) -> bool {
        self.lock()
            .slots
            .values()
            .any(|slot| slot.job.request.bucket == bucket && slot.job.request.key == key)
    }
}

/// The oldest job that may start now, or how long until one may (`None`: until woken).
fn take_ready(state: &mut State) -> Result<Job, Option<Duration>> {
    let now = Instant::now();
    let mut best: Option<(&String, u64)> = None;
    let mut soonest: Option<Instant> = None;
    for (id, slot) in &state.slots {
        let SlotState::Waiting { not_before } = slot.state else {
            continue;
        };
        let source = (
            slot.job.request.bucket.clone(),
            slot.job.request.key.clone(),
        );
        if state.busy_sources.contains(&source) {
            continue;
        }
        match not_before {
            Some(t) if t > now => soonest = Some(soonest.map_or(t, |s| s.min(t))),
            _ => {
                if best.is_none_or(|(_, seq)| slot.job.seq < seq) {
                    best = Some((id, slot.job.seq));
                }
            }
        }
    }
    let Some((id, _)) = best else {
        return Err(soonest.map(|t| t.saturating_duration_since(now)));
    };
    let id = id.clone();
    let slot = state.slots.get_mut(&id).expect("the id was just found");
    slot.state = SlotState::InFlight;
    let job = slot.job.clone();
    state
        .busy_sources
        .insert((job.request.bucket.clone(), job.request.key.clone()));
    Ok(job)
}

#[cfg(test)]
mod tests {
    use pipeline_contract::{JobAction, JobRequest};

    use super::*;

    fn job(key: &str, sequencer: &str) -> Job {
        Job::from_event(JobRequest {
            action: JobAction::Process,
            bucket: "b".into(),
            key: key.into(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: Some(sequencer.into()),
            event_time: None,
            event_name: "ObjectCreated:Put".into(),
        })
    }

    fn store(name: &str) -> (JobFiles, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("ec2-service-queue-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (JobFiles::open(&dir).unwrap().0, dir)
    }

    fn finished(job: &Job) -> Finished {
        Finished {
            id: job.id.clone(),
            key: job.request.key.clone(),
            origin: "event".into(),
            status: "DONE".into(),
            code: None,
            message: None,
            attempts: 1,
            finished_at: String::new(),
        }
    }

    #[tokio::test]
    async fn admits_dedupes_bounds_and_serialises_each_source() {
        let (store, dir) = store("admit");
        let queue = Queue::new(3, Vec::new());
        let (a1, a2, b) = (job("a", "01"), job("a", "02"), job("b", "01"));
        let answers = queue
            .admit(vec![a1.clone(), a1.clone(), a2.clone()], &store)
            .unwrap();
        assert_eq!(
            answers.iter().map(|a| a.duplicate).collect::<Vec<_>>(),
            [false, true, false]
        );
        let again = queue.admit(vec![a1.clone()], &store).unwrap();
        assert!(again[0].duplicate, "a held job is a duplicate");
        assert!(matches!(
            queue.admit(vec![b.clone(), job("c", "01")], &store),
            Err(AdmitError::Full {
                unfinished: 2,
                incoming: 2,
                capacity: 3
            })
        ));
        queue.admit(vec![b.clone()], &store).unwrap();
        assert_eq!(queue.depth().waiting, 3);

        // Oldest first, but never two jobs of one source at once.
        let first = queue.next().await.unwrap();
        assert_eq!(first.id, a1.id);
        let second = queue.next().await.unwrap();
        assert_eq!(second.id, b.id, "a2 waits while a1 is in flight");
        assert_eq!(queue.depth().in_flight, 2);
        queue.finish(finished(&first));
        let third = queue.next().await.unwrap();
        assert_eq!(third.id, a2.id);

        // A retried job waits for its time.
        queue.retry_later(third.clone(), Duration::from_millis(50));
        assert_eq!(queue.depth().retrying, 1);
        let started = Instant::now();
        let again = queue.next().await.unwrap();
        assert_eq!(again.id, a2.id);
        assert!(started.elapsed() >= Duration::from_millis(40));

        queue.stop_accepting();
        assert!(matches!(
            queue.admit(vec![job("d", "01")], &store),
            Err(AdmitError::Stopping)
        ));
        queue.stop_dispatching();
        assert!(queue.next().await.is_none());
        assert_eq!(queue.recent()[0].id, a1.id);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
