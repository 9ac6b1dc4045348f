//! The bounded queue of unfinished jobs: admission (capacity, duplicates, durable files
//! before the answer), the order jobs start in, what is in flight and what is parked.
//!
//! Every unfinished job is here and in the [`JobFiles`]: waiting (maybe until a retry
//! time), in flight, or parked (it cannot end until an operator fixes something, see
//! [`park`](Queue::park)). Jobs start in acceptance order, except that two jobs for the
//! same source never run at once: the later one waits, so that one daemon never races
//! itself on a record. The capacity bounds every unfinished job, so that a flood cannot
//! fill the scratch disk.
//!
//! Indexed so that a dispatch costs O(log n) whatever the queue holds: per source, the due
//! jobs in acceptance order; across sources, the first due job of every source that is not
//! busy; the jobs waiting for a retry time by that time; every waiting job (due or
//! delayed) in acceptance order, for the age of the oldest one (the metrics); a count of
//! unfinished jobs per source (for reconcile).
//!
//! No I/O besides the file calls made while admitting.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::spool::files::{JobFiles, SpoolError};
use crate::spool::job::{Ending, Job};

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
    Spool(#[from] SpoolError),
}

/// One admitted job: its id, and whether it was already held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub id: String,
    pub key: String,
    pub duplicate: bool,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub id: String,
    pub key: String,
    pub origin: String,
    pub status: Ending,
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
    /// `waiting`, `retrying` (waiting for its retry time), `in-flight` or `parked`.
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
    /// Parked: they cannot end until an operator acts (see `ec2-service jobs`).
    #[serde(default)]
    pub parked: usize,
    pub capacity: usize,
}

type Source = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum SlotState {
    /// Due now (in `due` of its source).
    Due,
    /// Waiting for its retry time (in `delayed`).
    Delayed(Instant),
    InFlight,
    Parked,
}

#[derive(Debug)]
struct Slot {
    job: Job,
    state: SlotState,
}

#[derive(Debug, Default)]
struct State {
    slots: HashMap<String, Slot>,
    /// Unfinished jobs per source, whatever their state.
    per_source: HashMap<Source, usize>,
    /// Sources with a job in flight.
    busy: HashSet<Source>,
    /// Due jobs of each source, in acceptance order.
    due: HashMap<Source, BTreeSet<(u64, String)>>,
    /// The first due job of every source that is not busy: what may start now.
    heads: BTreeSet<(u64, Source)>,
    /// Jobs waiting for their retry time.
    delayed: BTreeSet<(Instant, u64, String)>,
    /// Every job waiting to start (due or delayed), in acceptance order.
    waiting: BTreeSet<(u64, String)>,
    in_flight: usize,
    parked: usize,
    accepting: bool,
    dispatching: bool,
    recent: VecDeque<Finished>,
}

fn source_of(job: &Job) -> Source {
    (job.request.bucket.clone(), job.request.key.clone())
}

impl State {
    /// The first due job of `source`, as an entry of `heads`.
    fn head_of(&self, source: &Source) -> Option<(u64, Source)> {
        self.due
            .get(source)
            .and_then(|set| set.first())
            .map(|(seq, _)| (*seq, source.clone()))
    }

    fn set_head(&mut self, source: &Source, old: Option<(u64, Source)>) {
        if let Some(old) = old {
            self.heads.remove(&old);
        }
        if !self.busy.contains(source)
            && let Some(head) = self.head_of(source)
        {
            self.heads.insert(head);
        }
    }

    /// Makes a job due (it may start as soon as its source is free).
    fn make_due(&mut self, id: &str) {
        let slot = self.slots.get_mut(id).expect("a held job");
        slot.state = SlotState::Due;
        let seq = slot.job.seq;
        let source = source_of(&slot.job);
        let old = if self.busy.contains(&source) {
            None
        } else {
            self.head_of(&source)
        };
        self.due
            .entry(source.clone())
            .or_default()
            .insert((seq, id.to_owned()));
        self.waiting.insert((seq, id.to_owned()));
        self.set_head(&source, old);
    }

    fn insert(&mut self, job: Job, not_before: Option<Instant>) {
        let id = job.id.clone();
        let seq = job.seq;
        *self.per_source.entry(source_of(&job)).or_default() += 1;
        let delayed = not_before.filter(|t| *t > Instant::now());
        self.slots.insert(
            id.clone(),
            Slot {
                job,
                state: SlotState::Parked,
            },
        );
        match delayed {
            Some(at) => {
                self.slots.get_mut(&id).expect("just inserted").state = SlotState::Delayed(at);
                self.waiting.insert((seq, id.clone()));
                self.delayed.insert((at, seq, id));
            }
            None => self.make_due(&id),
        }
    }

    /// Leaves an in-flight job's source free again.
    fn release(&mut self, source: &Source) {
        self.busy.remove(source);
        self.in_flight -= 1;
        self.set_head(source, None);
    }

    fn promote_due(&mut self, now: Instant, cost: &AtomicU64) {
        while let Some((at, seq, id)) = self.delayed.first().cloned() {
            if at > now {
                break;
            }
            cost.fetch_add(1, Ordering::Relaxed);
            self.delayed.remove(&(at, seq, id.clone()));
            self.make_due(&id);
        }
    }

    /// The oldest job that may start now, or how long until one may (`None`: until woken).
    fn take(&mut self, cost: &AtomicU64) -> Result<Job, Option<Duration>> {
        let now = Instant::now();
        self.promote_due(now, cost);
        cost.fetch_add(1, Ordering::Relaxed);
        let Some((seq, source)) = self.heads.pop_first() else {
            return Err(self
                .delayed
                .first()
                .map(|(at, _, _)| at.saturating_duration_since(now)));
        };
        let set = self.due.get_mut(&source).expect("a head has due jobs");
        let (_, id) = set.pop_first().expect("a head has due jobs");
        debug_assert!(set.is_empty() || set.first().is_some_and(|(s, _)| *s > seq));
        if set.is_empty() {
            self.due.remove(&source);
        }
        self.waiting.remove(&(seq, id.clone()));
        self.busy.insert(source);
        self.in_flight += 1;
        let slot = self.slots.get_mut(&id).expect("a due job is held");
        slot.state = SlotState::InFlight;
        Ok(slot.job.clone())
    }

    fn remove(&mut self, id: &str) -> Option<Slot> {
        let slot = self.slots.remove(id)?;
        let source = source_of(&slot.job);
        // Out of the indexes too, for a job that had not started.
        match slot.state {
            SlotState::Due => {
                let old = if self.busy.contains(&source) {
                    None
                } else {
                    self.head_of(&source)
                };
                if let Some(set) = self.due.get_mut(&source) {
                    set.remove(&(slot.job.seq, id.to_owned()));
                    if set.is_empty() {
                        self.due.remove(&source);
                    }
                }
                self.set_head(&source, old);
                self.waiting.remove(&(slot.job.seq, id.to_owned()));
            }
            SlotState::Delayed(at) => {
                self.delayed.remove(&(at, slot.job.seq, id.to_owned()));
                self.waiting.remove(&(slot.job.seq, id.to_owned()));
            }
            SlotState::InFlight => {}
            SlotState::Parked => self.parked -= 1,
        }
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
        Some(slot)
    }
}

/// The queue. Shared by the intake (admit), the dispatcher (take) and the workers (finish,
/// retry, park).
#[derive(Debug)]
pub struct Queue {
    capacity: usize,
    state: Mutex<State>,
    /// Admissions are serialised, so that the capacity and duplicate checks and the durable
    /// files are one step.
    admit_lock: Mutex<()>,
    wake: Notify,
    /// Told of every change, for those who wait for room (the SQS intake).
    changes: Notify,
    /// Index entries examined by dispatches (see the tests).
    cost: AtomicU64,
}

impl Queue {
    /// A queue holding `resumed` (jobs found in the files on start). Jobs that were parked
    /// come back waiting: a restart is a retry of whatever parked them.
    pub fn new(capacity: usize, resumed: Vec<Job>) -> Queue {
        let mut state = State {
            accepting: true,
            dispatching: true,
            ..State::default()
        };
        for mut job in resumed {
            job.parked = None;
            state.insert(job, None);
        }
        Queue {
            capacity,
            state: Mutex::new(state),
            admit_lock: Mutex::new(()),
            wake: Notify::new(),
            changes: Notify::new(),
            cost: AtomicU64::new(0),
        }
    }

    /// Wakes the dispatcher (one waiter, a permit kept if it is busy) and whoever waits
    /// for a change.
    fn notify(&self) {
        self.wake.notify_one();
        self.changes.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (no await, no I/O inside),
        // so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits jobs: duplicates (same id already held, or twice in this request) are
    /// answered without being stored again; the rest are stored durably and queued, or
    /// none is when they do not all fit. Blocking (fsync): call from a blocking thread.
    pub fn admit(&self, jobs: Vec<Job>, files: &JobFiles) -> Result<Vec<Admitted>, AdmitError> {
        self.admit_into(jobs, Some(files))
    }

    /// As [`admit`](Self::admit), without files: for jobs that SQS keeps (fleet mode).
    pub fn admit_volatile(&self, jobs: Vec<Job>) -> Result<Vec<Admitted>, AdmitError> {
        self.admit_into(jobs, None)
    }

    fn admit_into(
        &self,
        jobs: Vec<Job>,
        files: Option<&JobFiles>,
    ) -> Result<Vec<Admitted>, AdmitError> {
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
                answers.push(Admitted {
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
        if let Some(files) = files {
            files.persist(&fresh)?;
        }
        let mut state = self.lock();
        for job in fresh {
            state.insert(job, None);
        }
        drop(state);
        self.notify();
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
                match state.take(&self.cost) {
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
        if let Some(slot) = state.remove(&job.id)
            && slot.state == SlotState::InFlight
        {
            state.release(&source_of(&job));
        }
        state.insert(job, Some(Instant::now() + delay));
        drop(state);
        self.notify();
    }

    /// Parks an in-flight job: it stays held (and on disk) but does not start again until
    /// [`unpark_all`](Self::unpark_all) (a reload) or a restart. For jobs that cannot end
    /// without an operator: their record cannot be written, or they keep crashing.
    pub fn park(&self, job: Job) {
        let mut state = self.lock();
        let source = source_of(&job);
        if let Some(slot) = state.remove(&job.id)
            && slot.state == SlotState::InFlight
        {
            state.release(&source);
        }
        *state.per_source.entry(source).or_default() += 1;
        state.parked += 1;
        state.slots.insert(
            job.id.clone(),
            Slot {
                job,
                state: SlotState::Parked,
            },
        );
        drop(state);
        self.notify();
    }

    /// Forgets an in-flight job without recording an ending: its SQS message, handed back
    /// to the queue, brings it again.
    pub fn forget(&self, job: &Job) {
        let mut state = self.lock();
        if let Some(slot) = state.remove(&job.id)
            && slot.state == SlotState::InFlight
        {
            state.release(&source_of(job));
        }
        drop(state);
        self.notify();
    }

    /// Jobs held that have not started (for handing their messages back at a stop).
    pub fn not_started(&self) -> Vec<Job> {
        self.lock()
            .slots
            .values()
            .filter(|slot| !matches!(slot.state, SlotState::InFlight))
            .map(|slot| slot.job.clone())
            .collect()
    }

    /// Waits until the queue changes (a job admitted, finished or put back), or `at_most`.
    pub async fn changed(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.changes.notified()).await;
    }

    /// Makes every parked job due again; returns how many.
    pub fn unpark_all(&self) -> usize {
        let mut state = self.lock();
        let ids: Vec<String> = state
            .slots
            .iter()
            .filter(|(_, slot)| slot.state == SlotState::Parked)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            let slot = state.slots.get_mut(id).expect("just listed");
            slot.job.parked = None;
            state.parked -= 1;
            state.make_due(id);
        }
        drop(state);
        self.notify();
        ids.len()
    }

    /// Forgets a finished job (its file must already be removed) and remembers how it
    /// ended.
    pub fn finish(&self, finished: Finished) {
        let mut state = self.lock();
        if let Some(slot) = state.remove(&finished.id)
            && slot.state == SlotState::InFlight
        {
            state.release(&source_of(&slot.job));
        }
        if state.recent.len() == RECENT {
            state.recent.pop_front();
        }
        state.recent.push_back(finished);
        drop(state);
        self.notify();
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
        self.notify();
    }

    pub fn depth(&self) -> Depth {
        let state = self.lock();
        let parked = state.parked;
        Depth {
            waiting: state.slots.len() - state.in_flight - parked,
            retrying: state.delayed.len(),
            in_flight: state.in_flight,
            parked,
            capacity: self.capacity,
        }
    }

    /// How long the oldest job waiting to start (due, or waiting for its retry time) has
    /// been held, from its acceptance (its `seq`, microseconds since the epoch) to `now`;
    /// `None` when no job waits. In flight and parked jobs do not count. O(log n).
    pub fn oldest_waiting(&self, now: SystemTime) -> Option<Duration> {
        let seq = self.lock().waiting.first()?.0;
        let now_micros = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Some(Duration::from_micros(now_micros.saturating_sub(seq)))
    }

    /// Every unfinished job, oldest first (for the operator: a scan is fine here).
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
                    SlotState::Parked => ("parked", None),
                    SlotState::Delayed(t) if t > now => ("retrying", Some((t - now).as_secs_f64())),
                    SlotState::Delayed(_) | SlotState::Due => ("waiting", None),
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
                    last_error: job.parked.clone().or_else(|| job.last_error.clone()),
                    retry_in_secs: retry_in,
                }
            })
            .collect()
    }

    /// The parked jobs' keys and reasons, oldest first.
    pub fn parked(&self) -> Vec<(String, String)> {
        let state = self.lock();
        let mut parked: Vec<&Slot> = state
            .slots
            .values()
            .filter(|slot| slot.state == SlotState::Parked)
            .collect();
        parked.sort_by_key(|slot| slot.job.seq);
        parked
            .into_iter()
            .map(|slot| {
                (
                    slot.job.request.key.clone(),
                    slot.job.parked.clone().unwrap_or_default(),
                )
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
            .per_source
            .contains_key(&(bucket.to_owned(), key.to_owned()))
    }

    /// Index entries examined by all dispatches so far.
    pub fn dispatch_cost(&self) -> u64 {
        self.cost.load(Ordering::Relaxed)
    }
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

    fn files(name: &str) -> (JobFiles, std::path::PathBuf) {
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
            status: Ending::Done,
            code: None,
            message: None,
            attempts: 1,
            finished_at: String::new(),
        }
    }

    #[tokio::test]
    async fn admits_dedupes_bounds_and_serialises_each_source() {
        let (files, dir) = files("admit");
        let queue = Queue::new(3, Vec::new());
        let (a1, a2, b) = (job("a", "01"), job("a", "02"), job("b", "01"));
        let answers = queue
            .admit(vec![a1.clone(), a1.clone(), a2.clone()], &files)
            .unwrap();
        assert_eq!(
            answers.iter().map(|a| a.duplicate).collect::<Vec<_>>(),
            [false, true, false]
        );
        let again = queue.admit(vec![a1.clone()], &files).unwrap();
        assert!(again[0].duplicate, "a held job is a duplicate");
        assert!(matches!(
            queue.admit(vec![b.clone(), job("c", "01")], &files),
            Err(AdmitError::Full {
                unfinished: 2,
                incoming: 2,
                capacity: 3
            })
        ));
        queue.admit(vec![b.clone()], &files).unwrap();
        assert_eq!(queue.depth().waiting, 3);
        assert!(queue.holds_source("b", "a") && !queue.holds_source("b", "c"));

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

        // A parked job stays held, counts, and starts again only once unparked.
        let mut parked = again.clone();
        parked.parked = Some("dynamodb-access-denied: not allowed".into());
        queue.park(parked);
        assert_eq!(queue.depth().parked, 1);
        assert_eq!(queue.depth().waiting, 0);
        assert!(queue.holds_source("b", "a"));
        assert_eq!(queue.parked()[0].0, "a");
        assert_eq!(
            queue
                .pending()
                .iter()
                .find(|p| p.id == a2.id)
                .unwrap()
                .state,
            "parked"
        );
        assert_eq!(queue.unpark_all(), 1);
        assert_eq!(queue.next().await.unwrap().id, a2.id);

        queue.stop_accepting();
        assert!(matches!(
            queue.admit(vec![job("d", "01")], &files),
            Err(AdmitError::Stopping)
        ));
        queue.stop_dispatching();
        assert!(queue.next().await.is_none());
        assert_eq!(queue.recent()[0].id, a1.id);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The oldest waiting job by a scan of every slot: what the index must agree with.
    fn oldest_by_scan(queue: &Queue) -> Option<u64> {
        queue
            .lock()
            .slots
            .values()
            .filter(|slot| matches!(slot.state, SlotState::Due | SlotState::Delayed(_)))
            .map(|slot| slot.job.seq)
            .min()
    }

    fn oldest_by_index(queue: &Queue) -> Option<u64> {
        queue.lock().waiting.first().map(|(seq, _)| *seq)
    }

    #[tokio::test]
    async fn the_oldest_waiting_job_is_tracked_through_every_move() {
        // Two jobs of one source (the second waits behind the first in flight), others
        // started, retried, parked, unparked, forgotten and finished: after each move the
        // index names the job a scan would find.
        let (a1, a2, b, c) = (
            job("a", "01"),
            job("a", "02"),
            job("b", "01"),
            job("c", "01"),
        );
        let queue = Queue::new(10, Vec::new());
        assert_eq!(queue.oldest_waiting(SystemTime::now()), None);
        queue
            .admit_volatile(vec![a1.clone(), a2.clone(), b.clone(), c.clone()])
            .unwrap();
        let check = |what: &str| {
            assert_eq!(oldest_by_index(&queue), oldest_by_scan(&queue), "{what}");
        };
        check("admitted");
        assert_eq!(oldest_by_index(&queue), Some(a1.seq));

        let first = queue.next().await.unwrap();
        assert_eq!(first.id, a1.id);
        check("a1 in flight: a2 still waits behind it");
        assert_eq!(oldest_by_index(&queue), Some(a2.seq));
        let second = queue.next().await.unwrap();
        assert_eq!(second.id, b.id);
        check("b in flight");

        queue.retry_later(second.clone(), Duration::from_secs(3600));
        check("b waiting for its retry time counts as waiting");
        assert_eq!(oldest_by_index(&queue), Some(a2.seq));
        queue.finish(finished(&first));
        check("a1 finished");
        let third = queue.next().await.unwrap();
        assert_eq!(third.id, a2.id);
        check("a2 in flight");
        assert_eq!(
            oldest_by_index(&queue),
            Some(b.seq),
            "b, delayed, is older than c"
        );
        queue.park(third.clone());
        check("a2 parked does not count");
        assert_eq!(queue.unpark_all(), 1);
        check("a2 unparked waits again");
        assert_eq!(oldest_by_index(&queue), Some(a2.seq));
        let again = queue.next().await.unwrap();
        assert_eq!(again.id, a2.id);
        queue.forget(&again);
        check("a2 forgotten");
        let last = queue.next().await.unwrap();
        assert_eq!(last.id, c.id);
        check("c in flight: only b, delayed, waits");
        assert_eq!(oldest_by_index(&queue), Some(b.seq));
        queue.finish(finished(&last));
        for job in queue.not_started() {
            queue.forget(&job);
        }
        check("everything gone");
        assert_eq!(queue.oldest_waiting(SystemTime::now()), None);

        // The age is counted from the acceptance (seq: microseconds since the epoch).
        let d = job("d", "01");
        queue.admit_volatile(vec![d.clone()]).unwrap();
        let accepted = UNIX_EPOCH + Duration::from_micros(d.seq);
        assert_eq!(
            queue.oldest_waiting(accepted + Duration::from_secs(90)),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            queue.oldest_waiting(accepted - Duration::from_secs(1)),
            Some(Duration::ZERO),
            "a clock set back gives 0, not a huge age"
        );
    }

    #[tokio::test]
    async fn a_dispatch_costs_the_same_with_ten_thousand_jobs_waiting() {
        // 10,000 jobs over 5,000 sources, some waiting to retry: each dispatch examines a
        // handful of index entries, never the whole queue (a scan would examine ~10,000).
        let mut jobs = Vec::new();
        for i in 0..10_000 {
            jobs.push(job(&format!("k{}", i % 5_000), &format!("{i:08X}")));
        }
        let queue = Queue::new(20_000, jobs);
        let before = queue.dispatch_cost();
        let mut last_seq = 0;
        let mut taken = Vec::new();
        for _ in 0..100 {
            let job = queue.next().await.unwrap();
            assert!(job.seq > last_seq, "acceptance order");
            last_seq = job.seq;
            taken.push(job);
        }
        let per_dispatch = (queue.dispatch_cost() - before) as f64 / 100.0;
        assert!(per_dispatch <= 2.0, "{per_dispatch} entries per dispatch");
        // Retrying jobs cost one promotion each when they come due, not a scan.
        for job in taken.drain(..50) {
            queue.retry_later(job, Duration::from_millis(1));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let before = queue.dispatch_cost();
        for _ in 0..100 {
            queue.next().await.unwrap();
        }
        let spent = queue.dispatch_cost() - before;
        assert!(spent <= 100 + 50, "{spent}");
        assert_eq!(queue.depth().in_flight, 150);
    }
}
