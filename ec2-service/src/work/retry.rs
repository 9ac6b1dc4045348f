//! The retry policy of transient failures: exponential backoff with jitter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, capped at `max`, then
/// "equal jitter" (a random point in its upper half), so that jobs failed by one outage
/// do not all come back at once.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1u32 << exponent).min(max);
    let half = ceiling / 2;
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    half + half.mul_f64(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 1..=12 {
            let ceiling = (base * 2u32.pow(attempt - 1)).min(max);
            for _ in 0..20 {
                let d = backoff(attempt, base, max);
                assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
            }
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| backoff(5, base, max)).collect();
        assert!(spread.len() > 1, "jittered");
        assert!(backoff(u32::MAX, base, max) <= max);
    }
}
