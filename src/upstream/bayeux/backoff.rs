//! Backoff with full jitter: the n-th consecutive failure waits a uniform random delay in
//! `0..=cap(n)`, `cap(n) = min(max, base * 2^(n-1))`. Full jitter spreads the clients of
//! many agents apart after an upstream restart instead of having them retry in step.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

/// Returns the largest delay of the `attempt`-th consecutive failure (1 for the first).
pub(super) fn cap(attempt: u32, base: Duration, max: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    base.saturating_mul(1 << doublings).min(max)
}

/// Returns the delay for `attempt`, `unit` (in `0.0..=1.0`) of its cap.
pub(super) fn delay_at(attempt: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    cap(attempt, base, max).mul_f64(unit.clamp(0.0, 1.0))
}

/// Returns a random delay for `attempt`.
pub(super) fn delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    delay_at(attempt, base, max, random_unit())
}

/// Returns a number in `0.0..1.0`. Jitter needs no strong randomness: std's per-instance
/// random hasher keys are enough, and spare a dependency.
fn random_unit() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn caps_double_from_base_up_to_max() {
        let caps: Vec<u64> = (1..=9)
            .map(|n| cap(n, BASE, MAX).as_millis() as u64)
            .collect();
        assert_eq!(caps, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert_eq!(cap(u32::MAX, BASE, MAX), MAX, "no overflow");
        assert_eq!(cap(0, BASE, MAX), BASE);
    }

    #[test]
    fn delays_stay_within_the_cap() {
        assert_eq!(delay_at(3, BASE, MAX, 0.0), Duration::ZERO);
        assert_eq!(delay_at(3, BASE, MAX, 1.0), Duration::from_millis(400));
        assert_eq!(delay_at(3, BASE, MAX, 0.5), Duration::from_millis(200));
        assert_eq!(delay_at(3, BASE, MAX, 7.0), Duration::from_millis(400));
        for n in 1..40 {
            assert!(delay(n, BASE, MAX) <= cap(n, BASE, MAX));
        }
    }

    #[test]
    fn random_units_differ() {
        let draws: Vec<f64> = (0..16).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }
}
