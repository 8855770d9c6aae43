//! Retry policy: jittered exponential backoff that honours the provider's
//! retry-after hint, with caps. Streams are retried only before any byte has
//! been handed to the caller.

use super::error::ProviderError;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (1 = never retry).
    pub max_attempts: u32,
    pub base_delay: Duration,
    /// Cap of the computed backoff.
    pub max_delay: Duration,
    /// A retry-after hint longer than this is not waited for: the error is
    /// returned so the router can fail over instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// This policy for an attempt with another route after it: at most one
    /// quick retry (a blip on a supplier's own key is not worth moving the
    /// request onto another account, or onto platform AI), and no wait for a
    /// rate limit's retry-after beyond a second, since the next route answers
    /// sooner.
    pub fn before_failover(&self) -> Self {
        Self {
            max_attempts: self.max_attempts.min(2),
            base_delay: self.base_delay.min(Duration::from_millis(50)),
            max_delay: self.max_delay.min(Duration::from_millis(100)),
            max_retry_after: self.max_retry_after.min(Duration::from_secs(1)),
        }
    }

    /// How long to wait before the next attempt, after `attempts_made`
    /// attempts of which the last failed with `err`; `None` to give up.
    /// `random` is any random u64 (the jitter source).
    pub fn delay(&self, attempts_made: u32, err: &ProviderError, random: u64) -> Option<Duration> {
        if !err.is_retryable() || attempts_made >= self.max_attempts {
            return None;
        }
        let exp = self.base_delay.saturating_mul(1u32 << attempts_made.saturating_sub(1).min(16)).min(self.max_delay);
        // "Equal jitter": half fixed, half random.
        let half = exp.as_millis() as u64 / 2;
        let jittered = Duration::from_millis(half + random % (half + 1));
        match err.retry_after() {
            Some(ra) if ra > self.max_retry_after => None,
            Some(ra) => Some(ra.max(jittered)),
            None => Some(jittered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy { max_attempts: 10, ..RetryPolicy::default() };
        let server = ProviderError::Server { provider: "x", status: 500, message: String::new() };
        for (n, lo, hi) in [(1, 100, 200), (2, 200, 400), (3, 400, 800), (9, 2500, 5000)] {
            for r in [0, 7, u64::MAX] {
                let d = p.delay(n, &server, r).unwrap().as_millis() as u64;
                assert!((lo..=hi).contains(&d), "attempt {n}: {d}");
            }
        }
        assert_eq!(p.delay(10, &server, 0), None);
        let rl = |s| ProviderError::RateLimited { provider: "x", retry_after: Some(Duration::from_secs(s)), message: String::new() };
        assert_eq!(p.delay(1, &rl(2), 0), Some(Duration::from_secs(2)));
        assert_eq!(p.delay(1, &rl(60), 0), None, "too long: fail over instead");
        let auth = ProviderError::Auth { provider: "x", status: 401, message: String::new() };
        assert_eq!(p.delay(1, &auth, 0), None);
        assert_eq!(RetryPolicy::none().delay(1, &server, 0), None);

        // Before a failover: one quick retry, no long retry-after waits.
        let f = RetryPolicy::default().before_failover();
        assert!(f.delay(1, &server, u64::MAX).unwrap() <= Duration::from_millis(50));
        assert_eq!(f.delay(2, &server, 0), None);
        assert_eq!(f.delay(1, &rl(2), 0), None, "a 2 s retry-after: fail over instead");
        assert_eq!(RetryPolicy::none().before_failover().max_attempts, 1);
    }
}
