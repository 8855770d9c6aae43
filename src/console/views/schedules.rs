//! Scheduled migration starts in the console: the rows the Migrations view
//! shows (when, in the supplier's time zone; waiting, started, refused or
//! cancelled; and, while one waits, what it waits for — no runtime routing the
//! database is said plainly), and the schedule / cancel actions, which go
//! through `engine::migration_schedule` like `switchboard migrate start --at`.

use crate::console::ConsoleEvent;
use crate::console::service::{Res, Service, msg};
use crate::domain::SupplierId;
use crate::domain::migration::{PhasePlan, RouteTarget};
use crate::domain::schedule::format_local;
use crate::engine::migration_schedule as schedule;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// One scheduled start, as the Migrations view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub id: i64,
    pub supplier: SupplierId,
    pub supplier_name: String,
    pub to: String,
    pub start_at: DateTime<Utc>,
    /// The start in the supplier's time zone, e.g. `Tue 02 Jun 2026 09:00 CEST (Europe/Berlin)`.
    pub start_local: String,
    /// waiting, starting, started, refused or cancelled.
    pub state: String,
    pub waiting: bool,
    /// The migration it started.
    pub migration_id: Option<i64>,
    /// Why it was refused, or what a waiting one waits for (no runtime routing).
    pub note: Option<String>,
}

/// How many schedules the view lists (waiting first).
pub(in crate::console) const SCHEDULES_SHOWN: usize = 20;

impl Service {
    /// Waiting schedules first (soonest first), then the latest ended ones.
    pub(in crate::console) fn schedule_rows(&self) -> Res<(Vec<ScheduleRow>, Option<String>)> {
        let now = self.clock.now();
        let router = schedule::router_of(&self.store);
        let labels = self.route_labels()?;
        let cat = self.supplier_cache()?;
        let info: HashMap<SupplierId, (String, crate::domain::supplier::Tz)> =
            cat.suppliers.iter().map(|s| (s.id, (s.name.clone(), s.time_zone))).collect();
        let mut list = self.store.schedules(None).map_err(msg)?;
        list.sort_by_key(|s| {
            (
                s.state != crate::store::ScheduleState::Waiting,
                if s.state == crate::store::ScheduleState::Waiting { s.start_at.timestamp() } else { -s.updated_at.timestamp() },
            )
        });
        let rows = list
            .iter()
            .take(SCHEDULES_SHOWN)
            .map(|s| {
                let (name, tz) = info.get(&s.supplier).cloned().unwrap_or_else(|| (format!("supplier {}", s.supplier), chrono_tz::Tz::UTC));
                ScheduleRow {
                    id: s.id,
                    supplier: s.supplier,
                    supplier_name: name,
                    to: Self::route_label(&labels, s.to),
                    start_at: s.start_at,
                    start_local: format_local(s.start_at, tz),
                    state: s.state.as_str().to_string(),
                    waiting: s.state == crate::store::ScheduleState::Waiting,
                    migration_id: s.migration_id,
                    note: s.reason.clone().or_else(|| schedule::waiting_reason(s, now, router.as_ref(), self.store.is_postgres())),
                }
            })
            .collect();
        Ok((rows, router.map(|h| h.to_string())))
    }

    pub(in crate::console) fn schedule_migration(
        &self,
        supplier: SupplierId,
        to: RouteTarget,
        at: DateTime<Utc>,
        phases: Option<Vec<PhasePlan>>,
    ) -> Res<ConsoleEvent> {
        let svc = self.migration_service()?;
        let s = schedule::schedule(&svc, supplier, to, phases, at).map_err(msg)?;
        let sup = self.store.supplier(supplier).map_err(msg)?;
        let labels = self.route_labels()?;
        let mut what = format!(
            "Migration of {} to {} scheduled for {}",
            sup.name,
            Self::route_label(&labels, s.to),
            format_local(s.start_at, sup.time_zone)
        );
        if schedule::router_of(&self.store).is_none() {
            what.push_str(if self.store.is_postgres() {
                "; no instance of the fleet is running now, so it waits until one does (`switchboard serve` on a server)"
            } else {
                "; nothing routes this database now, so it waits until routing is on (Overview) or `switchboard serve` runs"
            });
        }
        Ok(ConsoleEvent::ScheduleChanged { id: s.id, what })
    }

    pub(in crate::console) fn cancel_schedule(&self, id: i64) -> Res<ConsoleEvent> {
        let svc = self.migration_service()?;
        let s = schedule::cancel(&svc, id).map_err(msg)?;
        let name = self.supplier_name(s.supplier)?;
        Ok(ConsoleEvent::ScheduleChanged { id, what: format!("The scheduled migration of {name} is cancelled") })
    }
}
