//! The Instances view's data: on PostgreSQL, every `serve` instance on the
//! fleet's database (host, version, started, last seen, requests per second,
//! live / gone / stopped) and which instance leads probes, migrations and
//! alert escalation; on a SQLite file, that there is no fleet.

use crate::console::ConsoleEvent;
use crate::console::service::{Res, Service, msg};
use crate::domain::SupplierId;
use crate::engine::fleet::roster::{DUTIES, Roster};
use crate::engine::fleet::{Duty, InstanceState};
use crate::store::pg::leases::{self, LeaseKey};
use chrono::{DateTime, NaiveDate, Utc};

/// One instance, as the view lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceLine {
    pub id: i64,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub state: InstanceState,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub requests_per_second: f64,
    /// The duties it leads now.
    pub leads: Vec<Duty>,
}

/// Who leads one duty.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderLine {
    pub duty: Duty,
    /// The leading instance and its host; `None`: nobody (no live instance, or a lease just expired).
    pub instance: Option<(i64, String)>,
    /// The lease's fencing epoch (how many times the duty changed hands), if one was ever taken.
    pub epoch: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A quota lease that ended with part of its grant not folded: its instance
/// is gone, and that part still counts against the supplier's quota until the
/// instance's journal is folded or it is written off.
#[derive(Debug, Clone, PartialEq)]
pub struct StrandedLease {
    pub supplier: SupplierId,
    pub supplier_name: String,
    /// The quota month's first day.
    pub month: NaiveDate,
    pub instance: i64,
    /// Tokens granted and not folded.
    pub outstanding: i64,
    pub ended_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstancesView {
    /// False on a SQLite file: one machine, no fleet.
    pub fleet: bool,
    /// Where the data lives (the URL with its password masked, or the file).
    pub location: String,
    /// When it was read.
    pub at: DateTime<Utc>,
    /// Live instances, then the others seen in the last day (all of them with `all`), newest first.
    pub instances: Vec<InstanceLine>,
    pub leaders: Vec<LeaderLine>,
    /// Instances registered more than a day ago and left out (unless `all`).
    pub older: usize,
    /// Leases of gone instances that still hold quota.
    pub stranded: Vec<StrandedLease>,
}

impl Service {
    pub(in crate::console) fn instances_view(&self, all: bool) -> Res<InstancesView> {
        let at = self.clock.now();
        let location = self.store.location();
        let Some(pg) = self.store.postgres() else {
            return Ok(InstancesView { fleet: false, location, at, instances: vec![], leaders: vec![], older: 0, stranded: vec![] });
        };
        let roster = pg.block(|pg| async move { Roster::load(&pg).await }).map_err(msg)?;
        let leases = pg.block(move |pg| async move { leases::stranded(&pg, at).await }).map_err(msg)?;
        let names = self.supplier_cache()?;
        let name_of = |id: SupplierId| {
            names.suppliers.iter().find(|s| s.id == id).map(|s| s.name.clone()).unwrap_or_else(|| format!("supplier {id} (removed)"))
        };
        let stranded = leases
            .iter()
            .map(|l| StrandedLease {
                supplier: l.key.supplier,
                supplier_name: name_of(l.key.supplier),
                month: l.key.month,
                instance: l.key.instance,
                outstanding: l.outstanding(),
                ended_at: l.expires_at,
            })
            .collect();
        Ok(InstancesView { stranded, ..view(&roster, location, at, all) })
    }

    /// Writes off a gone instance's lease (audited under this console's user).
    pub(in crate::console) fn write_off_lease(
        &self,
        supplier: SupplierId,
        month: NaiveDate,
        instance: i64,
        reason: &str,
    ) -> Res<ConsoleEvent> {
        let Some(pg) = self.store.postgres() else { return Err("quota leases exist only on PostgreSQL".into()) };
        let reason = reason.trim().to_string();
        if reason.is_empty() {
            return Err("say why the lease is written off (it is kept in the audit log)".into());
        }
        let key = LeaseKey { supplier, month, instance };
        let (actor, now) = (crate::store::audit_actor(), self.clock.now());
        let tokens = pg.block(move |pg| async move { leases::write_off(&pg, key, &actor, &reason, now).await }).map_err(msg)?;
        self.invalidate();
        Ok(ConsoleEvent::LeaseWrittenOff { supplier, instance, tokens })
    }
}

fn view(roster: &Roster, location: String, at: DateTime<Utc>, all: bool) -> InstancesView {
    let mut instances: Vec<InstanceLine> = roster
        .recent(at, all)
        .map(|r| InstanceLine {
            id: r.id,
            host: r.host.clone(),
            pid: r.pid,
            version: r.version.clone(),
            state: r.state,
            started_at: r.started_at,
            last_seen: r.last_seen,
            requests_per_second: r.requests_per_second,
            leads: roster.leads(r.id, at),
        })
        .collect();
    // Live first, then by id, newest first.
    instances.sort_by_key(|i| (i.state != InstanceState::Live, std::cmp::Reverse(i.id)));
    let older = roster.instances.len() - instances.len();
    let host_of = |id: i64| roster.instances.iter().find(|r| r.id == id).map(|r| r.host.clone()).unwrap_or_default();
    let leaders = DUTIES
        .iter()
        .map(|&duty| {
            let lease = roster.leases.iter().find(|l| l.duty == duty);
            LeaderLine {
                duty,
                instance: roster.leader(duty, at).map(|l| (l.instance, host_of(l.instance))),
                epoch: lease.map(|l| l.epoch),
                expires_at: lease.map(|l| l.expires_at),
            }
        })
        .collect();
    InstancesView { fleet: true, location, at, instances, leaders, older, stranded: vec![] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fleet::{InstanceRow, Lease};
    use chrono::TimeZone;

    #[test]
    fn live_instances_come_first_and_leaders_name_their_host() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
        let row = |id: i64, state, ago: i64| InstanceRow {
            id,
            host: format!("host-{id}"),
            pid: 100 + id,
            version: "0.1.0".into(),
            started_at: now - chrono::Duration::hours(1),
            last_seen: now - chrono::Duration::seconds(ago),
            requests_per_second: id as f64,
            roles: vec![],
            stopped_at: None,
            state,
        };
        let roster = Roster {
            instances: vec![row(4, InstanceState::Gone, 60), row(3, InstanceState::Live, 1), row(1, InstanceState::Stopped, 200_000)],
            leases: vec![Lease { duty: Duty::Probes, instance: 3, epoch: 2, expires_at: now + chrono::Duration::seconds(10) }],
        };
        let v = view(&roster, "postgres://switchboard@db/fleet".into(), now, false);
        assert_eq!(v.instances.iter().map(|i| i.id).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(v.older, 1);
        assert_eq!(v.instances[0].leads, vec![Duty::Probes]);
        assert_eq!(v.leaders[0].instance, Some((3, "host-3".to_string())));
        assert_eq!(v.leaders[0].epoch, Some(2));
        assert_eq!(v.leaders[1], LeaderLine { duty: Duty::Migrations, instance: None, epoch: None, expires_at: None });
        assert_eq!(view(&roster, String::new(), now, true).instances.len(), 3);
    }
}
