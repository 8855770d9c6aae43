//! The Migrations view's data: every migration (running and paused first),
//! the selected one's timeline (planned and actual phases over time, the
//! traffic share, each phase's figures against the success criteria, the
//! rollback point), the parallel test reports of its supplier, and the plan
//! check before a start (with the 48 h wedding guard and a suggested start).
//! Actions go through the runtime's [`MigrationService`]; a console without a
//! runtime does what the CLI does: a service over the store, whose changes a
//! running `switchboard serve` adopts within a second.

use crate::console::service::{Res, Service, msg};
use crate::console::{ConsoleCommand, ConsoleEvent};
use crate::domain::migration::{Criteria, Migration, MigrationState, RouteTarget};
use crate::domain::{AccountOwner, SupplierId};
use crate::engine::migrations::MigrationService;
use crate::engine::parallel::ParallelReport;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// What the Migrations view asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MigrationQuery {
    /// The migration whose timeline to show; `None` picks the first in the list.
    pub selected: Option<i64>,
    /// Whose parallel tests to show; `None`: the selected migration's supplier's.
    pub parallel_supplier: Option<SupplierId>,
}

/// One migration in the list.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationRow {
    pub id: i64,
    pub supplier: SupplierId,
    pub supplier_name: String,
    pub from: String,
    pub to: String,
    pub state: MigrationState,
    /// Index of the current (or last) phase.
    pub phase: usize,
    pub phases: usize,
    /// Share of traffic on the new route now.
    pub percent: u8,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Why it ended or is waiting.
    pub reason: Option<String>,
}

/// How a phase stands against the success criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseCheck {
    /// Not started yet.
    Planned,
    /// Running and within the criteria so far.
    OnTrack,
    /// Running and outside the criteria: it rolls back when evaluated.
    Failing,
    Passed,
    /// The migration was rolled back in this phase.
    RolledBack,
    /// The migration was aborted in this phase.
    Aborted,
}

impl PhaseCheck {
    pub fn label(self) -> &'static str {
        match self {
            PhaseCheck::Planned => "planned",
            PhaseCheck::OnTrack => "on track",
            PhaseCheck::Failing => "outside the criteria",
            PhaseCheck::Passed => "passed",
            PhaseCheck::RolledBack => "rolled back",
            PhaseCheck::Aborted => "aborted",
        }
    }
}

/// One phase on the timeline; times are Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseView {
    pub index: usize,
    pub percent: u8,
    pub min_secs: i64,
    /// Start and end as planned at the migration's start (phases back to back at their minimum length).
    pub planned: [f64; 2],
    /// Start and end (or now) as it happened.
    pub actual: Option<[f64; 2]>,
    pub requests: u32,
    pub errors: u32,
    pub error_percent: f64,
    pub p95_ms: Option<u32>,
    pub check: PhaseCheck,
}

/// The selected migration's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationDetail {
    pub row: MigrationRow,
    pub criteria: Criteria,
    pub phases: Vec<PhaseView>,
    /// Traffic share on the new route over time (x Unix seconds, y percent), a step line.
    pub share: Vec<[f64; 2]>,
    /// When all traffic went back to the old route.
    pub rollback_at: Option<f64>,
    /// The right edge of the timeline (now while active, else the last change).
    pub now: f64,
}

/// A stored parallel test report.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelRow {
    pub supplier_name: String,
    pub report: ParallelReport,
    /// The route a migration to the tested candidate would move to.
    pub candidate_target: RouteTarget,
}

/// An open recommendation ("move to client AI", a parallel test's verdict, a
/// rolled-back migration), with what the view needs to act on it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendationRow {
    pub id: i64,
    pub supplier: SupplierId,
    pub supplier_name: String,
    pub kind: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    /// The supplier's migration in progress, if any (another cannot start).
    pub migrating: Option<i64>,
}

impl RecommendationRow {
    /// A short name for the kind.
    pub fn kind_label(&self) -> &str {
        match self.kind.as_str() {
            "move_to_client_ai" => "quota 90 %",
            "parallel_test" => "parallel test",
            "migration_rolled_back" => "rolled back",
            other => other,
        }
    }
}

/// A parallel test on mirrored live traffic: running, or how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorRow {
    pub id: i64,
    pub supplier: SupplierId,
    pub supplier_name: String,
    pub candidate: String,
    pub sample_percent: u32,
    pub target_requests: u32,
    /// Copies recorded so far.
    pub compared: u32,
    pub created_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// running, finishing, done, expired or stopped.
    pub state: String,
    pub report_id: Option<i64>,
    pub reason: Option<String>,
}

impl MirrorRow {
    pub fn is_running(&self) -> bool {
        self.state == "running" || self.state == "finishing"
    }
}

/// Everything the Migrations view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationsView {
    /// A routing runtime drives migrations in this console (otherwise `switchboard serve` must run).
    pub runtime: bool,
    /// Running and paused first, then the rest, newest first.
    pub rows: Vec<MigrationRow>,
    pub detail: Option<MigrationDetail>,
    /// The parallel tests of the asked-for supplier, else of the selected
    /// migration's supplier, else the latest ones.
    pub parallel: Vec<ParallelRow>,
    /// The supplier whose parallel tests these are (`None`: anyone's latest).
    pub parallel_supplier: Option<(SupplierId, String)>,
    /// Open recommendations, newest first (at most 50).
    pub recommendations: Vec<RecommendationRow>,
    /// Every running live-traffic mirror, then the shown supplier's ended
    /// ones, newest first.
    pub mirrors: Vec<MirrorRow>,
    /// Scheduled starts: waiting ones (soonest first), then the latest ended ones.
    pub schedules: Vec<super::schedules::ScheduleRow>,
    /// Who routes this database now (the routing lock's holder), if anyone.
    pub routed_by: Option<String>,
}

pub(in crate::console) const LIST_LIMIT: usize = 200;
pub(in crate::console) const PARALLEL_SHOWN: usize = 4;
pub(in crate::console) const RECOMMENDATIONS_SHOWN: usize = 50;
pub(in crate::console) const MIRRORS_SHOWN: usize = 4;

pub(in crate::console) fn ts(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl Service {
    pub(in crate::console) fn route_labels(&self) -> Res<HashMap<crate::domain::AccountId, String>> {
        Ok(self.store.list_accounts(None).map_err(msg)?.into_iter().map(|a| (a.id, a.label)).collect())
    }

    pub(in crate::console) fn route_label(labels: &HashMap<crate::domain::AccountId, String>, r: RouteTarget) -> String {
        match r {
            RouteTarget::Platform => "platform AI".into(),
            RouteTarget::Account(a) => match labels.get(&a) {
                Some(l) => format!("{l} (account {a})"),
                None => format!("account {a}"),
            },
        }
    }

    pub(in crate::console) fn supplier_name(&self, id: SupplierId) -> Res<String> {
        let cat = self.supplier_cache()?;
        Ok(cat.suppliers.iter().find(|s| s.id == id).map(|s| s.name.clone()).unwrap_or_else(|| format!("supplier {id}")))
    }

    pub(in crate::console) fn migration_row(
        &self,
        m: &Migration,
        labels: &HashMap<crate::domain::AccountId, String>,
        names: &HashMap<SupplierId, String>,
    ) -> MigrationRow {
        MigrationRow {
            id: m.id,
            supplier: m.supplier,
            supplier_name: names.get(&m.supplier).cloned().unwrap_or_else(|| format!("supplier {}", m.supplier)),
            from: Self::route_label(labels, m.from),
            to: Self::route_label(labels, m.to),
            state: m.state,
            phase: m.phase,
            phases: m.phases.len(),
            percent: m.current_percent(),
            created_at: m.created_at,
            updated_at: m.updated_at,
            reason: m.reason.clone(),
        }
    }

    pub(in crate::console) fn migrations_view(&self, q: &MigrationQuery) -> Res<MigrationsView> {
        let now = self.clock.now();
        let labels = self.route_labels()?;
        let cat = self.supplier_cache()?;
        let names: HashMap<SupplierId, String> = cat.suppliers.iter().map(|s| (s.id, s.name.clone())).collect();
        let mut all = self.store.list_migrations(None).map_err(msg)?;
        // Running and paused first (stable: newest first within each group).
        all.sort_by_key(|m| (!m.state.is_active(), std::cmp::Reverse(m.id)));
        all.truncate(LIST_LIMIT);
        let rows: Vec<MigrationRow> = all.iter().map(|m| self.migration_row(m, &labels, &names)).collect();
        let selected = match q.selected {
            Some(id) => match all.iter().find(|m| m.id == id) {
                Some(m) => Some(m.clone()),
                None => self.store.migration(id).ok(),
            },
            None => all.first().cloned(),
        };
        let detail = selected.as_ref().map(|m| self.migration_detail(m, self.migration_row(m, &labels, &names), now));
        let parallel_supplier = q.parallel_supplier.or(selected.as_ref().map(|m| m.supplier));
        let platform: std::collections::HashSet<crate::domain::AccountId> =
            self.store.list_accounts(Some(AccountOwner::Platform)).map_err(msg)?.into_iter().map(|a| a.id).collect();
        let mut parallel = Vec::new();
        for (id, json) in self.store.parallel_tests(parallel_supplier).map_err(msg)? {
            // A report written by another version that no longer parses is left out.
            if let Ok(mut report) = serde_json::from_str::<ParallelReport>(&json) {
                // The JSON is written before its row id exists; the row's id is the report's.
                report.id = id;
                let supplier_name = names.get(&report.supplier).cloned().unwrap_or_else(|| format!("supplier {}", report.supplier));
                let candidate = report.candidate.account_id;
                let candidate_target = if platform.contains(&candidate) { RouteTarget::Platform } else { RouteTarget::Account(candidate) };
                parallel.push(ParallelRow { supplier_name, report, candidate_target });
            }
            if parallel.len() >= PARALLEL_SHOWN {
                break;
            }
        }
        let runtime = self.live().is_some_and(|l| l.services.migrations.is_some());
        let parallel_supplier = parallel_supplier.map(|s| (s, names.get(&s).cloned().unwrap_or_else(|| format!("supplier {s}"))));
        let migrating: HashMap<SupplierId, i64> = all.iter().filter(|m| m.state.is_active()).map(|m| (m.supplier, m.id)).collect();
        let recommendations = self
            .store
            .open_recommendations()
            .map_err(msg)?
            .into_iter()
            .take(RECOMMENDATIONS_SHOWN)
            .map(|r| RecommendationRow {
                id: r.id,
                supplier: r.supplier_id,
                supplier_name: names.get(&r.supplier_id).cloned().unwrap_or_else(|| format!("supplier {}", r.supplier_id)),
                kind: r.kind,
                message: r.message,
                created_at: r.created_at,
                migrating: migrating.get(&r.supplier_id).copied(),
            })
            .collect();
        let labels = self.route_labels()?;
        // Every running mirror (an account manager watches them all), then how
        // the shown supplier's recent ones ended.
        let shown = parallel_supplier.as_ref().map(|(s, _)| *s);
        let mut list: Vec<_> = self.store.running_mirrors().map_err(msg)?;
        list.sort_by_key(|m| std::cmp::Reverse(m.id));
        if let Some(s) = shown {
            list.extend(self.store.mirrors(Some(s), MIRRORS_SHOWN).map_err(msg)?.into_iter().filter(|m| !m.is_running()));
        }
        let mirrors = list
            .into_iter()
            .map(|m| {
                Ok(MirrorRow {
                    id: m.id,
                    supplier: m.supplier_id,
                    supplier_name: names.get(&m.supplier_id).cloned().unwrap_or_else(|| format!("supplier {}", m.supplier_id)),
                    candidate: Self::route_label(&labels, RouteTarget::Account(m.account_id)),
                    sample_percent: m.sample_percent,
                    target_requests: m.target_requests,
                    compared: if m.is_running() { self.store.mirror_copies(m.id).map_err(msg)? } else { 0 },
                    created_at: m.created_at,
                    ends_at: m.ends_at,
                    state: m.state,
                    report_id: m.report_id,
                    reason: m.reason,
                })
            })
            .collect::<Res<Vec<_>>>()?;
        let (schedules, routed_by) = self.schedule_rows()?;
        Ok(MigrationsView { runtime, rows, detail, parallel, parallel_supplier, recommendations, mirrors, schedules, routed_by })
    }

    pub(in crate::console) fn migration_detail(&self, m: &Migration, row: MigrationRow, now: DateTime<Utc>) -> MigrationDetail {
        let end = if m.state.is_active() { now } else { m.updated_at };
        let mut planned_start = m.created_at;
        let mut phases = Vec::with_capacity(m.phases.len());
        let mut share: Vec<[f64; 2]> = Vec::new();
        for (i, p) in m.phases.iter().enumerate() {
            let planned_end = planned_start + Duration::seconds(p.min_secs.max(0));
            let current = i == m.phase;
            let actual_end = p.ended_at.or_else(|| (current && p.started_at.is_some()).then_some(end));
            let actual = match (p.started_at, actual_end) {
                (Some(s), Some(e)) => Some([ts(s), ts(e.max(s))]),
                _ => None,
            };
            if let Some([s, e]) = actual {
                share.push([s, p.percent as f64]);
                share.push([e, p.percent as f64]);
            }
            let failing = p.stats.requests > 0
                && (p.stats.error_bp() > m.criteria.max_error_bp || p.stats.p95_ms().is_some_and(|v| v >= m.criteria.max_p95_ms));
            let check = match p.outcome.as_deref() {
                Some("passed") => PhaseCheck::Passed,
                Some("rolled_back") => PhaseCheck::RolledBack,
                Some("aborted") => PhaseCheck::Aborted,
                _ if p.started_at.is_none() => PhaseCheck::Planned,
                _ if failing => PhaseCheck::Failing,
                _ => PhaseCheck::OnTrack,
            };
            phases.push(PhaseView {
                index: i,
                percent: p.percent,
                min_secs: p.min_secs,
                planned: [ts(planned_start), ts(planned_end)],
                actual,
                requests: p.stats.requests,
                errors: p.stats.errors,
                error_percent: p.stats.error_bp() as f64 / 100.0,
                p95_ms: p.stats.p95_ms(),
                check,
            });
            planned_start = planned_end;
        }
        let rollback_at =
            (m.state == MigrationState::RolledBack).then(|| m.phases.get(m.phase).and_then(|p| p.ended_at).unwrap_or(m.updated_at)).map(ts);
        if matches!(m.state, MigrationState::RolledBack | MigrationState::Aborted)
            && let Some(last) = share.last().copied()
        {
            share.push([last[0], 0.0]);
        }
        MigrationDetail { row, criteria: m.criteria, phases, share, rollback_at, now: ts(end) }
    }

    /// The runtime's migration service, or (without a runtime) one over the store, as the CLI uses.
    pub(in crate::console) fn migration_service(&self) -> Res<Arc<MigrationService>> {
        match self.live().and_then(|l| l.services.migrations.clone()) {
            Some(m) => Ok(m),
            None => MigrationService::offline(self.store.clone(), self.clock.clone()).map_err(msg),
        }
    }

    pub(in crate::console) fn migration_action(&self, cmd: ConsoleCommand) -> Res<ConsoleEvent> {
        let svc = self.migration_service()?;
        let runtime = self.live().is_some_and(|l| l.services.migrations.is_some());
        let labels = self.route_labels()?;
        let (m, what) = match cmd {
            ConsoleCommand::StartMigration { supplier, to, phases } => {
                let m = svc.start(supplier, to, phases, None).map_err(msg)?;
                let mut what = format!(
                    "Migration {} started: {} % of {}'s traffic now goes to {}",
                    m.id,
                    m.current_percent(),
                    self.supplier_name(m.supplier)?,
                    Self::route_label(&labels, m.to)
                );
                if !runtime {
                    what.push_str(" (this console does not route: a running `switchboard serve` drives its phases)");
                }
                (m, what)
            }
            ConsoleCommand::PauseMigration(id) => {
                let m = svc.pause(id).map_err(msg)?;
                let what = format!("Migration {id} paused in phase {} at {} %", m.phase + 1, m.current_percent());
                (m, what)
            }
            ConsoleCommand::ResumeMigration(id) => {
                let m = svc.resume(id).map_err(msg)?;
                let what = format!("Migration {id} resumed in phase {}", m.phase + 1);
                (m, what)
            }
            ConsoleCommand::RollbackMigration { id, reason } => {
                let reason = reason.trim();
                let reason = if reason.is_empty() { "rolled back by the account manager" } else { reason };
                let m = svc.rollback(id, reason).map_err(msg)?;
                let what = format!(
                    "Migration {id} rolled back: all of {}'s traffic is back on {}",
                    self.supplier_name(m.supplier)?,
                    Self::route_label(&labels, m.from)
                );
                (m, what)
            }
            ConsoleCommand::AbortMigration(id) => {
                let m = svc.abort(id).map_err(msg)?;
                let what = format!(
                    "Migration {id} aborted: {}'s traffic stays on {}",
                    self.supplier_name(m.supplier)?,
                    Self::route_label(&labels, m.from)
                );
                (m, what)
            }
            ConsoleCommand::MirrorLiveTraffic { supplier, to, plan } => {
                let now = self.clock.now();
                let s = self.store.supplier(supplier).map_err(msg)?;
                let candidate = match to {
                    RouteTarget::Platform => crate::engine::parallel::platform_candidate(&self.store, supplier).map_err(msg)?,
                    RouteTarget::Account(id) => id,
                };
                let m = crate::engine::parallel::start_mirror(&self.store, supplier, candidate, plan, now).map_err(msg)?;
                let mut what = format!(
                    "Mirror {} started: {} % of {}'s live requests go to {} as well, until {} are compared (at most {} days)",
                    m.id,
                    m.sample_percent,
                    s.name,
                    Self::route_label(&labels, RouteTarget::Account(candidate)),
                    m.target_requests,
                    plan.duration.num_days()
                );
                if !runtime {
                    what.push_str(" (this console does not route: a running `switchboard serve` does the mirroring)");
                }
                return Ok(ConsoleEvent::MirrorChanged { id: m.id, supplier, what });
            }
            ConsoleCommand::StopMirror(id) => {
                let now = self.clock.now();
                let pricing = match self.live().and_then(|l| l.services.router.clone()) {
                    Some(r) => r.pricing().clone(),
                    None => crate::domain::PricingTable::builtin(),
                };
                let m = self.store.mirror(id).map_err(msg)?.ok_or_else(|| format!("mirror {id} does not exist"))?;
                if !m.is_running() {
                    return Err(format!("mirror {id} has already ended ({}); the list is refreshed", m.state));
                }
                let report = crate::engine::parallel::finish_mirror(&self.store, &pricing, id, now, "stopped by the account manager", true)
                    .map_err(msg)?;
                if let Some(r) = self.live().and_then(|l| l.services.router.clone()) {
                    // Stop copying at once rather than at the runtime's next reload.
                    r.reload().map_err(msg)?;
                }
                let what = match report {
                    Some(r) => format!("Mirror {id} stopped: parallel test {} compares {} live requests", r.id, r.candidate.requests),
                    None => format!("Mirror {id} stopped: no live request had been mirrored yet, so there is no report"),
                };
                return Ok(ConsoleEvent::MirrorChanged { id, supplier: m.supplier_id, what });
            }
            ConsoleCommand::DismissRecommendation(id) => {
                let now = self.clock.now();
                let r = self
                    .store
                    .dismiss_recommendation(id, now)
                    .map_err(msg)?
                    .ok_or_else(|| format!("recommendation {id} is not open any more; the list is refreshed"))?;
                let name = self.supplier_name(r.supplier_id)?;
                self.store
                    .audit(now, &crate::store::audit_actor(), "recommendation.dismiss", Some(r.supplier_id), None, "ok", &r.message)
                    .map_err(msg)?;
                return Ok(ConsoleEvent::RecommendationDismissed { id, what: format!("Dismissed the recommendation for {name}") });
            }
            other => return Err(format!("internal: {:?} is not a migration action", other.channel())),
        };
        Ok(ConsoleEvent::MigrationChanged { id: m.id, what })
    }
}
