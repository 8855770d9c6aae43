//! Fleet coordination (issue 25): several `serve` instances on one
//! PostgreSQL. Each instance registers and heartbeats ([`heartbeat`]), runs a
//! [`leader::LeaderElector`] that holds, per [`Duty`], a lease with a fencing
//! epoch (one leader for probes, migrations and alert escalation across the
//! fleet), and keeps one `LISTEN` connection ([`notify::Listener`]) that
//! delivers catalog changes and the probe leader's health verdicts to
//! subscribers, with a resync after every reconnect.
//!
//! The SQL is in [`crate::store::pg::fleet`]; this module owns the loops, the
//! settings and the decisions. See docs/fleet-coordination.md.

pub mod duties;
pub mod heartbeat;
pub mod leader;
pub mod node;
pub mod notify;
pub mod roster;
pub mod serve;

pub use crate::store::pg::fleet::{Acquire, Duty, FenceError, FleetStore, InstanceRow, InstanceState, Lease, NewInstance};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Which clock decides lease expiry, fencing and "gone".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FleetTime {
    /// The PostgreSQL server's `now()`: one clock for the whole fleet, so
    /// hosts' clock skew does not matter (the production default).
    #[default]
    Database,
    /// The instance's injected [`crate::domain::Clock`] (tests, with a
    /// `ManualClock`). Every instance's clock must agree within the bound in
    /// docs/fleet-coordination.md.
    Clock,
}

impl FleetTime {
    /// The `now` argument of the store's functions (None: the server's clock).
    pub fn arg(self, clock_now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            FleetTime::Database => None,
            FleetTime::Clock => Some(clock_now),
        }
    }
}

/// Every interval and timeout of fleet coordination; `Default` is the
/// product's numbers, chosen so a dead leader is replaced within one probe
/// interval (30 s): `leader_ttl + leader_check_every` = 20 s.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    pub time: FleetTime,
    /// How often an instance heartbeats.
    pub heartbeat_every: Duration,
    /// Silence after which an instance is shown as gone.
    pub gone_after: Duration,
    /// Length of a leader lease; renewed every `leader_check_every`.
    pub leader_ttl: Duration,
    /// How often an elector renews its leases or tries to take free ones
    /// (well under `leader_ttl`: a leader renews about 3 times per lease).
    pub leader_check_every: Duration,
    /// Reconnect delays of the LISTEN connection (doubling from min to max).
    pub listen_backoff_min: Duration,
    pub listen_backoff_max: Duration,
    /// How often the LISTEN connection is pinged, and how long a ping may take
    /// before the connection is taken for dead and replaced.
    pub listen_ping_every: Duration,
    pub listen_ping_timeout: Duration,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self {
            time: FleetTime::Database,
            heartbeat_every: Duration::from_secs(5),
            gone_after: crate::store::pg::fleet::DEFAULT_GONE_AFTER,
            leader_ttl: Duration::from_secs(15),
            leader_check_every: Duration::from_secs(5),
            listen_backoff_min: Duration::from_millis(200),
            listen_backoff_max: Duration::from_secs(10),
            listen_ping_every: Duration::from_secs(10),
            listen_ping_timeout: Duration::from_secs(5),
        }
    }
}

impl FleetSettings {
    /// The longest a duty can stay without a leader after its leader dies
    /// silently: the rest of its lease, plus one check of the next instance.
    pub fn takeover_bound(&self) -> Duration {
        self.leader_ttl.saturating_add(self.leader_check_every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_default_takeover_is_within_one_probe_interval() {
        let s = FleetSettings::default();
        let probe_interval = Duration::from_secs(crate::engine::health::MonitorConfig::default().probe_interval_secs as u64);
        assert!(s.takeover_bound() < probe_interval, "{:?} ≥ {probe_interval:?}", s.takeover_bound());
        assert!(s.leader_check_every * 2 < s.leader_ttl, "a leader must renew at least twice per lease");
        assert!(s.heartbeat_every * 3 <= s.gone_after);
    }

    #[test]
    fn fleet_time_arg() {
        let t = chrono::DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(FleetTime::Database.arg(t), None);
        assert_eq!(FleetTime::Clock.arg(t), Some(t));
    }
}
