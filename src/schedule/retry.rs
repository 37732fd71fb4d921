//! How transient failures are retried: capped exponential backoff with
//! jitter, and a limit on attempts. Pure: the random factor is a parameter.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    pub base: Duration,
    /// The delay never grows beyond this.
    pub max: Duration,
    /// After this many attempts the job fails for good.
    pub max_attempts: u32,
}

impl RetryPolicy {
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(500),
        max: Duration::from_secs(300),
        max_attempts: 10,
    };

    /// The delay after attempt number `attempt` (1 for the first) failed.
    /// `jitter` in [0, 1) spreads it over 50 %..100 % of the exponential
    /// value, so processes that failed together do not retry together.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max);
        raw.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// Whether another attempt is allowed after `attempts` have been made.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// A jitter value in [0, 1) from the system's random source.
pub fn random_jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = RetryPolicy::DEFAULT;
        assert!(p.delay(1, 0.999) <= Duration::from_millis(500));
        assert!(p.delay(1, 0.999) > Duration::from_millis(490));
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(250));
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(500));
        assert_eq!(p.delay(3, 0.0), Duration::from_millis(1000));
        assert_eq!(p.delay(20, 0.0), Duration::from_secs(150));
        assert_eq!(p.delay(u32::MAX, 0.99).as_secs(), 298);
        assert!(p.may_retry(9));
        assert!(!p.may_retry(10));
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let j = random_jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
