//! The signatures of the requests accepted within the skew window, so that a replay of a
//! signed request (by an attacker who captured it, or a retrying client) is answered as a
//! duplicate without storing or claiming anything again.
//!
//! Only requests whose signature verified are remembered, and each only until its
//! timestamp leaves the window (after that the signature itself is refused as expired).
//! The set is bounded: past `capacity` the oldest entries are forgotten first, which at
//! worst lets a very old replay through to the ordinary duplicate checks.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Signatures seen, with the unix second after which each is expired anyway.
#[derive(Debug)]
pub struct Seen {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    set: HashSet<[u8; 32]>,
    /// In arrival order: (expires at, signature).
    order: VecDeque<(u64, [u8; 32])>,
}

impl Seen {
    pub fn new(capacity: usize) -> Seen {
        Seen {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records `signature`, valid until `expires_at` (unix seconds); returns `true` when it
    /// was already there (a replay). `now` drops the entries that expired.
    pub fn check_and_insert(&self, signature: [u8; 32], expires_at: u64, now: u64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while inner.order.front().is_some_and(|(at, _)| *at < now) {
            let (_, old) = inner.order.pop_front().expect("checked above");
            inner.set.remove(&old);
        }
        if inner.set.contains(&signature) {
            return true;
        }
        while inner.set.len() >= self.capacity {
            let Some((_, old)) = inner.order.pop_front() else {
                break;
            };
            inner.set.remove(&old);
        }
        inner.set.insert(signature);
        inner.order.push_back((expires_at, signature));
        false
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_is_recognised_until_it_expires_and_the_set_stays_bounded() {
        let seen = Seen::new(3);
        assert!(!seen.check_and_insert([1; 32], 100, 50));
        assert!(seen.check_and_insert([1; 32], 100, 60), "replayed");
        assert!(!seen.check_and_insert([2; 32], 200, 60));
        // At 101 the first one has expired (and would be refused as expired anyway).
        assert!(!seen.check_and_insert([3; 32], 300, 101));
        assert_eq!(seen.len(), 2);
        assert!(!seen.check_and_insert([4; 32], 300, 102));
        assert!(!seen.check_and_insert([5; 32], 300, 103));
        assert_eq!(seen.len(), 3, "bounded by the capacity");
        assert!(seen.check_and_insert([5; 32], 300, 104));
    }
}
