//! Scheduled migration starts: planning one for a later time (the suggested
//! start clear of weddings, or any other time clear of them), cancelling it,
//! and starting the due ones — which only a routing runtime does, from its
//! migration service's tick (`MigrationService::tick`), checking the 48 h
//! wedding guard again at the start time since weddings may have been added
//! meanwhile. A schedule is claimed in the store before it starts, so two
//! processes never start the same one. What a schedule waits for when no
//! runtime routes the database is said by [`waiting_reason`].

use crate::domain::SupplierId;
use crate::domain::migration::{PhasePlan, RouteTarget, blocking_wedding, next_allowed};
use crate::domain::schedule::format_local;
use crate::engine::migrations::{MigrationError, MigrationService};
use crate::store::{LockHolder, MigrationSchedule, RoutingLock, ScheduleState, Store};
use chrono::{DateTime, Utc};

/// Schedules a migration of `supplier` to `to` for `at`. Refused when `at` has
/// passed, when a wedding's 48 h guard covers `at` (the message names the
/// earliest time clear of it, in the supplier's time zone), or when the
/// migration itself could not start (the route, the key).
pub fn schedule(
    svc: &MigrationService,
    supplier: SupplierId,
    to: RouteTarget,
    phases: Option<Vec<PhasePlan>>,
    at: DateTime<Utc>,
) -> Result<MigrationSchedule, MigrationError> {
    let plan = svc.plan(supplier, to, phases)?;
    let store = svc.store();
    let now = svc.clock().now();
    let s = store.supplier(supplier)?;
    if at <= now {
        return Err(MigrationError::Refused(format!(
            "{} has already passed; choose a later time, or start the migration now",
            format_local(at, s.time_zone)
        )));
    }
    let cal = s.wedding_calendar();
    if let Some(day) = blocking_wedding(at, cal) {
        let opens = next_allowed(at, cal);
        return Err(MigrationError::Refused(format!(
            "{} is within 48 h of {}'s wedding on {day}; the earliest start clear of it is {}",
            format_local(at, s.time_zone),
            s.name,
            format_local(opens, s.time_zone)
        )));
    }
    let sched = store.insert_schedule(supplier, plan.to, &plan.phases, at, now)?;
    audit(
        store,
        now,
        svc.actor(),
        "migration.schedule",
        supplier,
        "ok",
        &format!("schedule {}: {} to {} at {}", sched.id, plan.from, plan.to, format_local(at, s.time_zone)),
    );
    Ok(sched)
}

/// Cancels a waiting schedule.
pub fn cancel(svc: &MigrationService, id: i64) -> Result<MigrationSchedule, MigrationError> {
    let store = svc.store();
    let now = svc.clock().now();
    let sched = store.schedule(id)?;
    if !store.cancel_schedule(id, now)? {
        return Err(MigrationError::Refused(format!(
            "scheduled migration {id} is {}; only a waiting one can be cancelled",
            sched.state.as_str()
        )));
    }
    audit(store, now, svc.actor(), "migration.unschedule", sched.supplier, "ok", &format!("schedule {id} cancelled"));
    Ok(store.schedule(id)?)
}

/// Starts every schedule that is due (run by a routing runtime's tick). A start
/// the guard or the route refuses now ends the schedule as refused, with the
/// reason, an audit entry and a recommendation the manager sees.
pub fn start_due(svc: &MigrationService) -> Result<Vec<MigrationSchedule>, MigrationError> {
    let store = svc.store();
    let now = svc.clock().now();
    let mut done = Vec::new();
    for sched in store.due_schedules(now)? {
        if !store.claim_schedule(sched.id, now)? {
            continue;
        }
        let late = (now - sched.start_at).num_minutes();
        match svc.start(sched.supplier, sched.to, Some(sched.phases.clone()), None) {
            Ok(m) => {
                store.finish_schedule(sched.id, ScheduleState::Started, Some(m.id), None, now)?;
                let note = if late >= 1 { format!(" ({late} min late: no runtime was routing at the time)") } else { String::new() };
                audit(
                    store,
                    now,
                    svc.actor(),
                    "migration.scheduled_start",
                    sched.supplier,
                    "ok",
                    &format!("schedule {} started migration {}{note}", sched.id, m.id),
                );
                tracing::info!(schedule = sched.id, migration = m.id, "scheduled migration started");
            }
            Err(e) => {
                let reason = e.to_string();
                store.finish_schedule(sched.id, ScheduleState::Refused, None, Some(&reason), now)?;
                audit(
                    store,
                    now,
                    svc.actor(),
                    "migration.scheduled_start",
                    sched.supplier,
                    "refused",
                    &format!("schedule {} not started: {reason}", sched.id),
                );
                let _ = store.recommend(
                    sched.supplier,
                    "scheduled_migration_refused",
                    &format!("The migration scheduled for {} did not start: {reason}", sched.start_at.format("%Y-%m-%d %H:%M UTC")),
                    now,
                );
                tracing::warn!(schedule = sched.id, %reason, "scheduled migration refused at its start time");
            }
        }
        done.push(store.schedule(sched.id)?);
    }
    Ok(done)
}

/// Why a waiting schedule has not started, for the timeline: `None` when a
/// runtime routes the database and the time has not come, else a sentence.
/// `fleet`: the database is the fleet's PostgreSQL (where only `serve` instances route).
pub fn waiting_reason(sched: &MigrationSchedule, now: DateTime<Utc>, router: Option<&LockHolder>, fleet: bool) -> Option<String> {
    if sched.state != ScheduleState::Waiting {
        return None;
    }
    match (router, sched.start_at <= now) {
        (None, _) if fleet => {
            Some("no instance of the fleet is running, so nothing will start it: start `switchboard serve` on one of the servers".into())
        }
        (None, _) => Some(
            "no runtime routes this database, so nothing will start it: turn on routing on the Overview, or run `switchboard serve`".into(),
        ),
        (Some(h), true) => Some(format!("due; {h} starts it within a second")),
        (Some(_), false) => None,
    }
}

/// Who routes the database of `store` now, if anyone: the routing lock's
/// holder on a SQLite file; on PostgreSQL the fleet instance that leads
/// migrations (it starts due schedules), or else a live instance (one of
/// them takes the lead within a leader check).
pub fn router_of(store: &Store) -> Option<LockHolder> {
    let Some(pg) = store.postgres() else {
        return store.sqlite_path().and_then(|p| RoutingLock::holder(p).ok().flatten());
    };
    let pg = pg.clone();
    let roster = crate::store::pg::block_on_pg(async move { crate::engine::fleet::roster::Roster::load(&pg).await }).ok()?;
    let live = |id: i64| roster.instances.iter().find(|r| r.id == id && r.state == crate::engine::fleet::InstanceState::Live);
    // The last holder of the lease, while it is live (its lease is renewed on every check).
    let leader = roster.leases.iter().find(|l| l.duty == crate::engine::fleet::Duty::Migrations);
    let (row, role) = match leader.and_then(|l| live(l.instance)) {
        Some(r) => (r, "the migrations leader"),
        None => (roster.instances.iter().find(|r| r.state == crate::engine::fleet::InstanceState::Live)?, "a live instance"),
    };
    Some(LockHolder {
        pid: u32::try_from(row.pid).unwrap_or(0),
        host: row.host.clone(),
        program: format!("switchboard serve, fleet instance {}, {role}", row.id),
        since: row.started_at,
    })
}

fn audit(store: &Store, now: DateTime<Utc>, actor: &str, action: &str, supplier: SupplierId, result: &str, detail: &str) {
    if let Err(e) = store.audit(now, actor, action, Some(supplier), None, result, detail) {
        tracing::warn!(error = %e, "audit write failed");
    }
}
