//! The instance's heartbeat: every `heartbeat_every` it writes its last-seen
//! time (the Clock's, or the server's with [`super::FleetTime::Database`]),
//! its requests per second since the previous heartbeat (from the gateway's
//! request counter) and the duties it leads, so the console can list the
//! fleet and show a silent instance as gone.

use super::leader::LeaderElector;
use super::{FleetSettings, FleetStore};
use crate::domain::Clock;
use crate::store::pg::PgResult;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests per second from a monotonically growing request counter.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    last: Option<(DateTime<Utc>, u64)>,
    rate: f64,
}

impl RateMeter {
    /// The rate between the previous observation and this one (0 at the
    /// first; the previous rate when no time passed; a counter that went
    /// back — a restart — counts from zero).
    pub fn observe(&mut self, now: DateTime<Utc>, total: u64) -> f64 {
        if let Some((at, before)) = self.last {
            let ms = now.signed_duration_since(at).num_milliseconds();
            if ms <= 0 {
                return self.rate;
            }
            let delta = if total >= before { total - before } else { total };
            self.rate = delta as f64 * 1000.0 / ms as f64;
        }
        self.last = Some((now, total));
        self.rate
    }
}

/// One instance's heartbeat.
pub struct Heartbeat {
    store: FleetStore,
    instance: i64,
    clock: Arc<dyn Clock>,
    settings: FleetSettings,
    requests: Arc<AtomicU64>,
    elector: Option<Arc<LeaderElector>>,
    meter: Mutex<RateMeter>,
}

impl Heartbeat {
    /// `requests`: the instance's count of requests served so far;
    /// `elector`: where its roles come from (None: it leads nothing).
    pub fn new(
        store: FleetStore,
        instance: i64,
        clock: Arc<dyn Clock>,
        settings: FleetSettings,
        requests: Arc<AtomicU64>,
        elector: Option<Arc<LeaderElector>>,
    ) -> Arc<Self> {
        Arc::new(Heartbeat { store, instance, clock, settings, requests, elector, meter: Mutex::new(RateMeter::default()) })
    }

    /// One heartbeat; false when the instance's row is gone or stopped.
    pub async fn tick(&self) -> PgResult<bool> {
        let now = self.clock.now();
        let rps = self.meter.lock().observe(now, self.requests.load(Ordering::Relaxed));
        let roles = self.elector.as_ref().map(|e| e.roles()).unwrap_or_default();
        self.store.heartbeat(self.instance, self.settings.time.arg(now), rps, &roles).await
    }

    /// Heartbeats every `heartbeat_every` until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        let mut t = tokio::time::interval(self.settings.heartbeat_every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            match self.tick().await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(instance = self.instance, "heartbeat: this instance is not registered or was stopped"),
                Err(e) => tracing::warn!(instance = self.instance, error = %e, "heartbeat failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fleet_rate_meter() {
        let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        let mut m = RateMeter::default();
        assert_eq!(m.observe(at(0), 100), 0.0);
        assert_eq!(m.observe(at(5000), 150), 10.0);
        assert_eq!(m.observe(at(5000), 999), 10.0, "no time passed: the last rate");
        assert_eq!(m.observe(at(7000), 151), 0.5);
        assert_eq!(m.observe(at(8000), 4), 4.0, "a counter that restarted counts from zero");
        assert_eq!(m.observe(at(9000), u64::MAX), u64::MAX as f64 - 4.0);
    }
}
