//! Per-supplier request rate limiting with GCRA (the generic cell rate
//! algorithm): exact, O(1) state per supplier, driven by the caller's clock.

use chrono::{DateTime, Utc};

/// GCRA state for one key. `rpm` requests per minute on average, with a burst
/// of up to `burst` requests at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Theoretical arrival time, in nanoseconds since the Unix epoch.
    tat_ns: i64,
}

/// A rate limit: requests per minute and burst size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub rpm: u32,
    pub burst: u32,
}

impl RateLimit {
    /// The default burst: a quarter of a minute's allowance (at least 1).
    pub fn per_minute(rpm: u32) -> Self {
        Self { rpm: rpm.max(1), burst: (rpm / 4).max(1) }
    }
    fn interval_ns(&self) -> i64 {
        60_000_000_000 / self.rpm.max(1) as i64
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allow,
    /// Refused; retry after this many milliseconds.
    Deny {
        retry_after_ms: u64,
    },
}

impl Default for Gcra {
    fn default() -> Self {
        Self::new()
    }
}

impl Gcra {
    pub fn new() -> Self {
        Self { tat_ns: i64::MIN }
    }

    pub fn check(&mut self, limit: RateLimit, now: DateTime<Utc>) -> RateDecision {
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let t = limit.interval_ns();
        let tau = t.saturating_mul(limit.burst.max(1) as i64 - 1);
        let tat = self.tat_ns.max(now_ns);
        if tat - now_ns > tau {
            let wait_ns = tat - now_ns - tau;
            return RateDecision::Deny { retry_after_ms: (wait_ns as u64).div_ceil(1_000_000) };
        }
        self.tat_ns = tat + t;
        RateDecision::Allow
    }

    /// Counts a request that was let through regardless of the limit (a
    /// wedding-day request), so it still uses up the supplier's allowance.
    pub fn force(&mut self, limit: RateLimit, now: DateTime<Utc>) {
        let now_ns = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        self.tat_ns = self.tat_ns.max(now_ns) + limit.interval_ns();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn allows_burst_then_paces_at_the_rate() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap();
        let limit = RateLimit { rpm: 60, burst: 5 };
        let mut g = Gcra::new();
        for i in 0..5 {
            assert_eq!(g.check(limit, t0), RateDecision::Allow, "burst request {i}");
        }
        match g.check(limit, t0) {
            RateDecision::Deny { retry_after_ms } => assert_eq!(retry_after_ms, 1000),
            d => panic!("expected deny, got {d:?}"),
        }
        assert_eq!(g.check(limit, t0 + Duration::seconds(1)), RateDecision::Allow);
        assert!(matches!(g.check(limit, t0 + Duration::seconds(1)), RateDecision::Deny { .. }));
    }

    #[test]
    fn a_minute_at_the_limit_lets_rpm_plus_burst_through() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap();
        let limit = RateLimit::per_minute(120);
        let mut g = Gcra::new();
        let mut allowed = 0;
        for ms in (0..60_000).step_by(10) {
            if g.check(limit, t0 + Duration::milliseconds(ms)) == RateDecision::Allow {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 120 + 30 - 1);
    }
}
