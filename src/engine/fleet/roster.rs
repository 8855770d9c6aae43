//! The fleet as people see it: every instance on the database with its
//! state, and which instance leads each duty. `switchboard fleet instances`
//! prints it; the console's Instances view shows it. Reads only.

use super::{Duty, FleetSettings, FleetStore, InstanceRow, InstanceState, Lease};
use crate::store::pg::{PgResult, PgStore};
use chrono::{DateTime, Utc};

/// The duties a leader is elected for, in the order they are shown.
pub const DUTIES: [Duty; 3] = [Duty::Probes, Duty::Migrations, Duty::Alerts];

/// Instances and leader leases read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Roster {
    /// Newest first.
    pub instances: Vec<InstanceRow>,
    /// The current lease of each duty that has one (perhaps expired).
    pub leases: Vec<Lease>,
}

impl Roster {
    /// Reads the roster (instances are gone after `FleetSettings::gone_after`
    /// of silence, the product's figure).
    pub async fn load(pg: &PgStore) -> PgResult<Roster> {
        let store = FleetStore::new(pg.clone());
        let instances = store.list(None, FleetSettings::default().gone_after).await?;
        let mut leases = Vec::new();
        for d in DUTIES {
            if let Some(l) = store.lease(d).await? {
                leases.push(l);
            }
        }
        Ok(Roster { instances, leases })
    }

    /// The duties `instance` leads at `now` (an unexpired lease).
    pub fn leads(&self, instance: i64, now: DateTime<Utc>) -> Vec<Duty> {
        self.leases.iter().filter(|l| l.instance == instance && l.expires_at > now).map(|l| l.duty).collect()
    }

    /// Who leads `duty` at `now`: the lease, if unexpired.
    pub fn leader(&self, duty: Duty, now: DateTime<Utc>) -> Option<&Lease> {
        self.leases.iter().find(|l| l.duty == duty && l.expires_at > now)
    }

    /// The instances worth listing: live ones, and the others seen within a
    /// day (`all`: every instance ever registered).
    pub fn recent(&self, now: DateTime<Utc>, all: bool) -> impl Iterator<Item = &InstanceRow> {
        self.instances.iter().filter(move |r| all || r.state == InstanceState::Live || now - r.last_seen < chrono::Duration::days(1))
    }

    pub fn live(&self) -> usize {
        self.instances.iter().filter(|r| r.state == InstanceState::Live).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(id: i64, state: InstanceState, last_seen: DateTime<Utc>) -> InstanceRow {
        InstanceRow {
            id,
            host: format!("host-{id}"),
            pid: 1,
            version: "0.1.0".into(),
            started_at: last_seen,
            last_seen,
            requests_per_second: 0.0,
            roles: vec![],
            stopped_at: None,
            state,
        }
    }

    #[test]
    fn leaders_need_an_unexpired_lease_and_old_instances_are_left_out() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
        let r = Roster {
            instances: vec![
                row(3, InstanceState::Live, now),
                row(2, InstanceState::Gone, now - chrono::Duration::hours(2)),
                row(1, InstanceState::Stopped, now - chrono::Duration::days(3)),
            ],
            leases: vec![
                Lease { duty: Duty::Probes, instance: 3, epoch: 4, expires_at: now + chrono::Duration::seconds(5) },
                Lease { duty: Duty::Migrations, instance: 2, epoch: 1, expires_at: now - chrono::Duration::seconds(1) },
            ],
        };
        assert_eq!(r.leads(3, now), vec![Duty::Probes]);
        assert!(r.leads(2, now).is_empty(), "an expired lease leads nothing");
        assert_eq!(r.leader(Duty::Probes, now).map(|l| l.instance), Some(3));
        assert!(r.leader(Duty::Migrations, now).is_none());
        assert_eq!(r.recent(now, false).map(|i| i.id).collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!(r.recent(now, true).count(), 3);
        assert_eq!(r.live(), 1);
    }
}
