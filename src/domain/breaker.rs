//! The circuit breaker of one provider account, as a pure state machine driven
//! by the caller's clock: it opens after 5 consecutive failures or when at
//! least half of the last 20 requests failed, stays open 30 s, then lets one
//! trial request through (half-open); the trial's outcome closes or re-opens it.
//! A trial that never reports (not sent after all, or abandoned by its client)
//! is given back with [`Breaker::release_trial`].

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerConfig {
    pub consecutive_failures: u32,
    pub window: u32,
    /// Failures in a full window that open the breaker, in percent.
    pub failure_percent: u32,
    pub open_for_secs: i64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { consecutive_failures: 5, window: 20, failure_percent: 50, open_for_secs: 30 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum BreakerState {
    Closed,
    /// Refusing requests until `until`, then half-open; a breaker `held` open
    /// (the health monitor saw the account down) stays open past `until`
    /// until it is forced closed, so no live request is sent to a dead account.
    Open {
        until: DateTime<Utc>,
        #[serde(default)]
        held: bool,
    },
    /// One trial request may go through; others are refused until it reports.
    HalfOpen {
        trial_in_flight: bool,
    },
}

impl BreakerState {
    pub fn name(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half_open",
        }
    }
}

/// What changed when an outcome was recorded (for the audit log and alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerTransition {
    None,
    Opened,
    Closed,
    HalfOpened,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    consecutive: u32,
    /// Last `window` outcomes as a bit ring (1 = failure).
    ring: u64,
    filled: u32,
    pos: u32,
    /// Trials granted so far: names the trial in flight (see [`Breaker::trial`]).
    trials: u64,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        let window = cfg.window.clamp(1, 64);
        Self { cfg: BreakerConfig { window, ..cfg }, state: BreakerState::Closed, consecutive: 0, ring: 0, filled: 0, pos: 0, trials: 0 }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The state as seen at `now` (an open breaker whose time is up is half-open).
    pub fn state_at(&self, now: DateTime<Utc>) -> BreakerState {
        match self.state {
            BreakerState::Open { until, held: false } if now >= until => BreakerState::HalfOpen { trial_in_flight: false },
            s => s,
        }
    }

    /// Whether a request may be sent now. In half-open state the first caller
    /// gets the single trial slot; the caller must then `record` its outcome.
    pub fn try_acquire(&mut self, now: DateTime<Utc>) -> (bool, BreakerTransition) {
        let mut transition = BreakerTransition::None;
        if let BreakerState::Open { until, held: false } = self.state
            && now >= until
        {
            self.state = BreakerState::HalfOpen { trial_in_flight: false };
            transition = BreakerTransition::HalfOpened;
        }
        match self.state {
            BreakerState::Closed => (true, transition),
            BreakerState::Open { .. } => (false, transition),
            BreakerState::HalfOpen { trial_in_flight: false } => {
                self.state = BreakerState::HalfOpen { trial_in_flight: true };
                self.trials += 1;
                (true, transition)
            }
            BreakerState::HalfOpen { trial_in_flight: true } => (false, transition),
        }
    }

    /// The trial in flight, if any: right after a granted [`Breaker::try_acquire`],
    /// `Some` means the caller holds the half-open trial.
    pub fn trial(&self) -> Option<u64> {
        matches!(self.state, BreakerState::HalfOpen { trial_in_flight: true }).then_some(self.trials)
    }

    /// Gives back a trial that never reported (the request was not sent, or
    /// its caller went away before the answer), so that the next request can
    /// be the trial: otherwise the breaker would refuse every request for
    /// good. A trial that has reported, or another caller's, is left alone.
    pub fn release_trial(&mut self, trial: u64) {
        if self.trial() == Some(trial) {
            self.state = BreakerState::HalfOpen { trial_in_flight: false };
        }
    }

    /// Records a request's outcome (only outcomes that count against health
    /// should be recorded as failures).
    pub fn record(&mut self, success: bool, now: DateTime<Utc>) -> BreakerTransition {
        match self.state {
            BreakerState::HalfOpen { .. } => {
                if success {
                    self.reset();
                    BreakerTransition::Closed
                } else {
                    self.open(now);
                    BreakerTransition::Opened
                }
            }
            BreakerState::Open { .. } => BreakerTransition::None,
            BreakerState::Closed => {
                self.push(!success);
                if success {
                    self.consecutive = 0;
                    return BreakerTransition::None;
                }
                self.consecutive += 1;
                let window_failures = self.ring.count_ones();
                let full = self.filled >= self.cfg.window;
                if self.consecutive >= self.cfg.consecutive_failures
                    || (full && window_failures * 100 >= self.cfg.failure_percent * self.cfg.window)
                {
                    self.open(now);
                    BreakerTransition::Opened
                } else {
                    BreakerTransition::None
                }
            }
        }
    }

    /// Forces the breaker open and holds it open (the health monitor saw the
    /// account down) until [`force_close`](Self::force_close): no half-open
    /// trial is sent meanwhile.
    pub fn force_open(&mut self, now: DateTime<Utc>) -> BreakerTransition {
        if let BreakerState::Open { until, .. } = self.state {
            self.state = BreakerState::Open { until, held: true };
            return BreakerTransition::None;
        }
        self.open(now);
        self.state = BreakerState::Open { until: now + Duration::seconds(self.cfg.open_for_secs), held: true };
        BreakerTransition::Opened
    }

    /// Whether the breaker is held open by [`force_open`](Self::force_open).
    pub fn is_held(&self) -> bool {
        matches!(self.state, BreakerState::Open { held: true, .. })
    }

    /// Forces the breaker closed (e.g. probes see the account healthy again).
    pub fn force_close(&mut self) -> BreakerTransition {
        if self.state == BreakerState::Closed {
            return BreakerTransition::None;
        }
        self.reset();
        BreakerTransition::Closed
    }

    fn open(&mut self, now: DateTime<Utc>) {
        self.state = BreakerState::Open { until: now + Duration::seconds(self.cfg.open_for_secs), held: false };
        self.consecutive = 0;
        self.ring = 0;
        self.filled = 0;
        self.pos = 0;
    }

    fn reset(&mut self) {
        self.state = BreakerState::Closed;
        self.consecutive = 0;
        self.ring = 0;
        self.filled = 0;
        self.pos = 0;
    }

    fn push(&mut self, failure: bool) {
        let bit = 1u64 << self.pos;
        if failure {
            self.ring |= bit
        } else {
            self.ring &= !bit
        }
        self.pos = (self.pos + 1) % self.cfg.window;
        self.filled = (self.filled + 1).min(self.cfg.window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 20, 14, 0, 0).unwrap()
    }

    #[test]
    fn opens_after_five_consecutive_failures_then_trial_closes_it() {
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..4 {
            assert_eq!(b.record(false, t0()), BreakerTransition::None, "failure {i}");
        }
        assert_eq!(b.record(false, t0()), BreakerTransition::Opened);
        assert!(!b.try_acquire(t0() + Duration::seconds(29)).0);
        // After 30 s exactly one trial goes through.
        let (ok, tr) = b.try_acquire(t0() + Duration::seconds(30));
        assert!(ok);
        assert_eq!(tr, BreakerTransition::HalfOpened);
        assert!(!b.try_acquire(t0() + Duration::seconds(30)).0, "only one trial at a time");
        // A trial that never reports is given back; a stale release is ignored.
        let trial = b.trial().unwrap();
        b.release_trial(trial + 1);
        assert!(!b.try_acquire(t0() + Duration::seconds(30)).0);
        b.release_trial(trial);
        assert_eq!(b.state(), BreakerState::HalfOpen { trial_in_flight: false });
        assert!(b.try_acquire(t0() + Duration::seconds(30)).0, "the next request is the trial");
        assert_eq!(b.trial(), Some(trial + 1));
        assert_eq!(b.record(true, t0() + Duration::seconds(31)), BreakerTransition::Closed);
        assert!(b.try_acquire(t0() + Duration::seconds(31)).0);
    }

    #[test]
    fn a_breaker_forced_open_is_held_past_30_seconds_until_forced_closed() {
        let mut b = Breaker::new(BreakerConfig::default());
        assert_eq!(b.force_open(t0()), BreakerTransition::Opened);
        assert!(b.is_held());
        let later = t0() + Duration::minutes(10);
        assert_eq!(b.try_acquire(later), (false, BreakerTransition::None), "no trial to a dead account");
        assert!(matches!(b.state_at(later), BreakerState::Open { held: true, .. }));
        assert_eq!(b.force_close(), BreakerTransition::Closed);
        assert!(!b.is_held());
        assert!(b.try_acquire(later).0);
        // A breaker opened by failures and then forced open is held too.
        for _ in 0..5 {
            b.record(false, later);
        }
        assert_eq!(b.force_open(later), BreakerTransition::None);
        assert!(!b.try_acquire(later + Duration::minutes(5)).0);
        // A breaker opened by failures alone still half-opens after 30 s.
        let mut c = Breaker::new(BreakerConfig::default());
        for _ in 0..5 {
            c.record(false, t0());
        }
        assert!(!c.is_held());
        assert!(c.try_acquire(t0() + Duration::seconds(30)).0);
    }

    #[test]
    fn failed_trial_reopens_for_another_30_seconds() {
        let mut b = Breaker::new(BreakerConfig::default());
        for _ in 0..5 {
            b.record(false, t0());
        }
        let t = t0() + Duration::seconds(30);
        assert!(b.try_acquire(t).0);
        assert_eq!(b.record(false, t), BreakerTransition::Opened);
        assert!(!b.try_acquire(t + Duration::seconds(29)).0);
        assert!(b.try_acquire(t + Duration::seconds(30)).0);
    }

    #[test]
    fn opens_at_half_failures_over_a_full_window_of_twenty() {
        let mut b = Breaker::new(BreakerConfig::default());
        // Alternate: never 5 in a row; 10 failures in 20 opens it on the 20th.
        let mut opened_at = None;
        for i in 0..20 {
            if b.record(i % 2 == 0, t0()) == BreakerTransition::Opened {
                opened_at = Some(i);
            }
        }
        assert_eq!(opened_at, Some(19));
    }

    #[test]
    fn below_half_failures_stays_closed() {
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..200 {
            // 3 failures in every 10, never consecutive beyond 3.
            let fail = i % 10 < 3;
            assert_ne!(b.record(!fail, t0()), BreakerTransition::Opened);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
