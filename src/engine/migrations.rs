//! The migration service: starts, drives, pauses, resumes, rolls back and
//! aborts migrations of a supplier from one route to another. It sets the
//! router's traffic split for each phase, feeds each phase's figures from the
//! router's attempt outcomes on the new route, evaluates the phase with
//! `domain::migration`, persists every change (so a restart resumes where it
//! was), writes the audit log, raises rollback alerts as audit entries and
//! recommendations, and completes by switching the supplier's route.

use crate::domain::migration::{
    Criteria, Migration, MigrationState, PhasePlan, PhaseStats, RouteTarget, Step, next_allowed, validate_plan,
};
use crate::domain::routing::Split;
use crate::domain::supplier::WeddingCalendar;
use crate::domain::{AccountOwner, AiMode, Clock, SupplierId};
use crate::engine::router::{AttemptOutcome, Router, RouterEvent};
use crate::store::{Store, StoreError, SupplierPatch};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Refused(String),
    /// Fleet mode: the write was refused because this instance no longer
    /// holds the `migrations` lease it acted under (another instance leads).
    #[error("{0}")]
    Fenced(String),
    /// Fleet mode: the leader's save was refused because another process (a
    /// console, the CLI) changed the migration's state since the leader read
    /// it; the stored change stands and the leader follows it.
    #[error("{0}")]
    Superseded(String),
}

/// Fleet mode: how the migrations leader saves the state it drove (a write
/// checked against its lease's fencing epoch, so a paused old leader cannot
/// overwrite what the new leader stored, and against the stored state its
/// step started from — the second argument — so that it cannot overwrite a
/// pause, resume, rollback or abort another process wrote meanwhile, whatever
/// the machines' clocks say). See `engine::fleet::duties`.
pub type MigrationSave = Arc<dyn Fn(&Migration, MigrationState) -> Result<(), MigrationError> + Send + Sync>;

/// Fleet mode: the figures of a supplier's migration phase since its start,
/// from the traffic every instance served (the shared ledger).
pub type PhaseFigures = Arc<dyn Fn(SupplierId, DateTime<Utc>) -> Result<PhaseStats, MigrationError> + Send + Sync>;

/// A planned migration, before it starts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationPlan {
    pub supplier: SupplierId,
    pub from: RouteTarget,
    pub to: RouteTarget,
    pub phases: Vec<PhasePlan>,
    pub criteria: Criteria,
    /// Earliest start that no wedding blocks (now when allowed).
    pub earliest_start: DateTime<Utc>,
    /// A wedding within 48 h that blocks starting now, if any.
    pub blocked_by: Option<chrono::NaiveDate>,
}

pub struct MigrationService {
    store: Arc<Store>,
    router: Arc<Router>,
    clock: Arc<dyn Clock>,
    active: Mutex<HashMap<SupplierId, Migration>>,
    actor: String,
    alerts: Mutex<Option<Arc<crate::engine::alerts::AlertService>>>,
    /// A service of a process that does not route: it never starts scheduled migrations.
    offline: bool,
    /// Fleet mode: true while this instance leads the `migrations` duty.
    /// The others only adopt what the leader stored (the traffic splits).
    leader: Mutex<Option<crate::engine::health::DutyGate>>,
    /// Fleet mode: the leader's saves go through this fenced write.
    fenced_save: Mutex<Option<MigrationSave>>,
    /// Fleet mode: phases judged on the fleet's traffic, not this instance's.
    phase_figures: Mutex<Option<PhaseFigures>>,
}

impl MigrationService {
    /// Loads running and paused migrations and restores their traffic splits.
    pub fn new(store: Arc<Store>, router: Arc<Router>, clock: Arc<dyn Clock>) -> Result<Arc<Self>, MigrationError> {
        let svc = Arc::new(Self {
            store,
            router,
            clock,
            active: Mutex::new(HashMap::new()),
            actor: crate::store::audit_actor(),
            alerts: Mutex::new(None),
            offline: false,
            leader: Mutex::new(None),
            fenced_save: Mutex::new(None),
            phase_figures: Mutex::new(None),
        });
        for m in svc.store.active_migrations()? {
            svc.apply_split(&m);
            tracing::info!(migration = m.id, supplier = m.supplier.0, phase = m.phase + 1, "resumed migration");
            svc.active.lock().insert(m.supplier, m);
        }
        Ok(svc)
    }

    /// A service for a process that does not route (the CLI, a console opened
    /// on a database file): a router over the store keeps the split
    /// bookkeeping, and every change is written to the store, from which a
    /// running runtime adopts it within a second ([`Self::sync_from_store`]).
    /// Build a fresh one per action, so it starts from what is stored now.
    pub fn offline(store: Arc<Store>, clock: Arc<dyn Clock>) -> Result<Arc<Self>, MigrationError> {
        let providers = crate::providers::Providers::new(crate::providers::ProvidersConfig::default())
            .map_err(|e| MigrationError::Refused(format!("cannot start the HTTP client: {e}")))?;
        // On PostgreSQL the serving instances journal the usage; this router records none.
        let ledger = match store.postgres() {
            Some(_) => crate::engine::ledger::Ledger::offline()?,
            None => crate::engine::ledger::Ledger::start(&store)?,
        };
        let router = Router::new(
            store.clone(),
            providers,
            Arc::new(crate::domain::PricingTable::builtin()),
            clock.clone(),
            ledger,
            crate::engine::router::RouterConfig::default(),
            // It serves no requests: its few audit writes run inline.
            None,
        )?;
        let svc = Self::new(store, router, clock)?;
        Ok(match Arc::try_unwrap(svc) {
            Ok(mut s) => {
                s.offline = true;
                Arc::new(s)
            }
            Err(a) => a,
        })
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub(crate) fn actor(&self) -> &str {
        &self.actor
    }

    /// Raises an alert through `alerts` whenever a migration rolls back.
    pub fn set_alerts(&self, alerts: Arc<crate::engine::alerts::AlertService>) {
        *self.alerts.lock() = Some(alerts);
    }

    fn alert_rollback(&self, m: &Migration, reason: &str) {
        let alerts = self.alerts.lock().clone();
        if let Some(a) = alerts {
            let now = self.clock.now();
            let wedding_day = self.store.supplier(m.supplier).map(|s| s.is_wedding_day(now)).unwrap_or(false);
            if let Err(e) = a.migration_rolled_back(m.supplier, m.id, reason, wedding_day) {
                tracing::warn!(error = %e, "rollback alert not raised");
            }
        }
    }

    pub fn with_actor(self: Arc<Self>, actor: &str) -> Arc<Self> {
        match Arc::try_unwrap(self) {
            Ok(mut s) => {
                s.actor = actor.to_string();
                Arc::new(s)
            }
            Err(a) => a,
        }
    }

    fn apply_split(&self, m: &Migration) {
        let split = if m.state.is_active() {
            Some(Split {
                to_account: match m.to {
                    RouteTarget::Account(a) => Some(a),
                    RouteTarget::Platform => None,
                },
                percent: m.current_percent(),
            })
        } else {
            None
        };
        self.router.set_split(m.supplier, split);
    }

    /// The current route of a supplier.
    fn current_route(&self, supplier: SupplierId) -> Result<RouteTarget, MigrationError> {
        let s = self.store.supplier(supplier)?;
        Ok(match s.ai_mode {
            AiMode::Platform => RouteTarget::Platform,
            AiMode::Client => {
                let acc =
                    self.store.list_accounts(Some(AccountOwner::Supplier(supplier)))?.into_iter().find(|a| a.enabled).ok_or_else(|| {
                        MigrationError::Refused(format!("supplier {supplier} is on client AI but has no enabled account"))
                    })?;
                RouteTarget::Account(acc.id)
            }
        })
    }

    /// Checks a migration and says when it may start.
    pub fn plan(&self, supplier: SupplierId, to: RouteTarget, phases: Option<Vec<PhasePlan>>) -> Result<MigrationPlan, MigrationError> {
        let phases = phases.unwrap_or_else(crate::domain::migration::default_plan);
        validate_plan(&phases).map_err(MigrationError::Refused)?;
        let s = self.store.supplier(supplier)?;
        let from = self.current_route(supplier)?;
        if from == to {
            return Err(MigrationError::Refused(format!("supplier {supplier} is already on {to}")));
        }
        if let RouteTarget::Account(a) = to {
            let acc = self.store.account(a)?;
            if acc.owner != AccountOwner::Supplier(supplier) {
                return Err(MigrationError::Refused(format!(
                    "account {a} does not belong to supplier {supplier}; a supplier can only move to its own account or to platform AI"
                )));
            }
            if acc.key_ref.is_none() {
                return Err(MigrationError::Refused(format!("account {a} has no key yet; add one with `switchboard key rotate {a}`")));
            }
            if acc.last_validation != Some(crate::domain::ValidationStatus::Valid) {
                return Err(MigrationError::Refused(format!(
                    "account {a}'s key is not validated as working; run `switchboard key validate {a}` first"
                )));
            }
        }
        let now = self.clock.now();
        let earliest_start = crate::domain::migration::suggest_start(now, s.wedding_calendar(), &phases);
        Ok(MigrationPlan {
            supplier,
            from,
            to,
            phases,
            criteria: Criteria::default(),
            earliest_start,
            blocked_by: crate::domain::migration::blocking_wedding(now, s.wedding_calendar()),
        })
    }

    /// Starts a migration now (refused inside a wedding window).
    pub fn start(
        &self,
        supplier: SupplierId,
        to: RouteTarget,
        phases: Option<Vec<PhasePlan>>,
        criteria: Option<Criteria>,
    ) -> Result<Migration, MigrationError> {
        let plan = self.plan(supplier, to, phases)?;
        let now = self.clock.now();
        let s = self.store.supplier(supplier)?;
        let opens = next_allowed(now, s.wedding_calendar());
        if opens > now {
            return Err(MigrationError::Refused(format!(
                "supplier {supplier} has a wedding within 48 h ({}); no migration may start before {}",
                plan.blocked_by.map(|d| d.to_string()).unwrap_or_default(),
                opens.format("%Y-%m-%d %H:%M UTC")
            )));
        }
        let mut m = Migration::new(supplier, plan.from, plan.to, &plan.phases, criteria.unwrap_or(plan.criteria), now);
        m.id = self.store.insert_migration(&m)?;
        self.apply_split(&m);
        self.audit("migration.start", &m, &format!("from {} to {}, first phase {} %", m.from, m.to, m.current_percent()));
        self.active.lock().insert(supplier, m.clone());
        Ok(m)
    }

    fn audit(&self, action: &str, m: &Migration, detail: &str) {
        let account = match (m.to, m.from) {
            (RouteTarget::Account(a), _) | (_, RouteTarget::Account(a)) => Some(a),
            _ => None,
        };
        if let Err(e) = self.store.audit(
            self.clock.now(),
            &self.actor,
            action,
            Some(m.supplier),
            account,
            "ok",
            &format!("migration {}: {detail}", m.id),
        ) {
            tracing::warn!(error = %e, "audit write failed");
        }
    }

    fn with_active<R>(&self, id: i64, f: impl FnOnce(&mut Migration) -> Result<R, String>) -> Result<(R, Migration), MigrationError> {
        let mut active = self.active.lock();
        let m = active.values_mut().find(|m| m.id == id).ok_or_else(|| match self.store.migration(id) {
            Ok(m) => {
                MigrationError::Refused(format!("migration {id} is {}; only running or paused migrations can change", m.state.as_str()))
            }
            Err(e) => MigrationError::Store(e),
        })?;
        if !self.drives() {
            // Another process drives it (the fleet's migrations leader, or a
            // serving runtime beside this CLI): act on what it stored last,
            // so that a pause does not take the migration back to an older phase.
            if let Ok(mut db) = self.store.migration(id) {
                if !db.state.is_active() {
                    let supplier = m.supplier;
                    active.remove(&supplier);
                    return Err(MigrationError::Refused(format!(
                        "migration {id} is {}; only running or paused migrations can change",
                        db.state.as_str()
                    )));
                }
                for (d, old) in db.phases.iter_mut().zip(&m.phases) {
                    if old.stats.requests > d.stats.requests {
                        d.stats = old.stats.clone();
                    }
                }
                *m = db;
            }
        }
        let r = f(m).map_err(MigrationError::Refused)?;
        let snapshot = m.clone();
        if !m.state.is_active() {
            let supplier = m.supplier;
            active.remove(&supplier);
        }
        drop(active);
        self.store.save_migration(&snapshot)?;
        self.apply_split(&snapshot);
        Ok((r, snapshot))
    }

    pub fn pause(&self, id: i64) -> Result<Migration, MigrationError> {
        let now = self.clock.now();
        let (_, m) = self.with_active(id, |m| m.pause(now))?;
        self.audit("migration.pause", &m, &format!("paused in phase {} at {} %", m.phase + 1, m.current_percent()));
        Ok(m)
    }

    pub fn resume(&self, id: i64) -> Result<Migration, MigrationError> {
        let now = self.clock.now();
        let (_, m) = self.with_active(id, |m| m.resume(now))?;
        self.audit("migration.resume", &m, &format!("resumed in phase {}", m.phase + 1));
        Ok(m)
    }

    /// Sends all traffic back to the old route at once.
    pub fn rollback(&self, id: i64, reason: &str) -> Result<Migration, MigrationError> {
        let now = self.clock.now();
        let (_, m) = self.with_active(id, |m| {
            m.end(MigrationState::RolledBack, "rolled_back", reason, now);
            Ok(())
        })?;
        self.audit("migration.rollback", &m, reason);
        self.alert_rollback(&m, reason);
        Ok(m)
    }

    /// Stops the migration (not a failure); traffic stays on the old route.
    pub fn abort(&self, id: i64) -> Result<Migration, MigrationError> {
        let now = self.clock.now();
        let (_, m) = self.with_active(id, |m| {
            m.end(MigrationState::Aborted, "aborted", "aborted by the account manager", now);
            Ok(())
        })?;
        self.audit("migration.abort", &m, "aborted; traffic stays on the old route");
        Ok(m)
    }

    /// Counts an attempt on a migrating supplier's new route.
    pub fn observe(&self, o: &AttemptOutcome) {
        if o.route != crate::domain::Route::Migration {
            return;
        }
        let mut active = self.active.lock();
        if let Some(m) = active.get_mut(&o.supplier)
            && m.state == MigrationState::Running
        {
            let phase = m.phase;
            if let Some(p) = m.phases.get_mut(phase) {
                p.stats.record(o.ok, o.latency_ms);
            }
        }
    }

    /// Adopts changes made by another process (the CLI) to the stored migrations:
    /// new ones, pauses and resumes, rollbacks and aborts. Figures seen here are kept.
    pub fn sync_from_store(&self) -> Result<(), MigrationError> {
        let stored = self.store.active_migrations()?;
        let mut changed = Vec::new();
        {
            let mut active = self.active.lock();
            let ids: Vec<i64> = stored.iter().map(|m| m.id).collect();
            let gone: Vec<SupplierId> = active.values().filter(|m| !ids.contains(&m.id)).map(|m| m.supplier).collect();
            for s in gone {
                if let Some(mut m) = active.remove(&s) {
                    if let Ok(db) = self.store.migration(m.id) {
                        m = db;
                    }
                    changed.push(m);
                }
            }
            for mut db in stored {
                match active.get_mut(&db.supplier) {
                    Some(mem) if mem.id == db.id => {
                        // A change of state (pause, resume, end) or of
                        // phase (the fleet's migrations leader advanced it).
                        if db.updated_at > mem.updated_at && (db.state != mem.state || db.phase != mem.phase) {
                            for (d, m) in db.phases.iter_mut().zip(&mem.phases) {
                                if m.stats.requests > d.stats.requests {
                                    d.stats = m.stats.clone();
                                }
                            }
                            *mem = db.clone();
                            changed.push(db);
                        }
                    }
                    _ => {
                        active.insert(db.supplier, db.clone());
                        changed.push(db);
                    }
                }
            }
        }
        for m in changed {
            self.apply_split(&m);
        }
        Ok(())
    }

    /// Evaluates every running migration and acts on the result; persists figures.
    pub fn tick(&self) -> Result<Vec<(i64, Step)>, MigrationError> {
        let leads = self.leader.lock().as_ref().is_none_or(|g| g());
        if !leads {
            // Another instance drives migrations: follow its stored state.
            self.sync_from_store()?;
            return Ok(Vec::new());
        }
        // Scheduled starts that are due begin first (the 48 h guard is checked again now).
        if !self.offline {
            crate::engine::migration_schedule::start_due(self)?;
        }
        self.sync_from_store()?;
        let now = self.clock.now();
        let suppliers: Vec<SupplierId> = self.active.lock().keys().copied().collect();
        let figures = self.phase_figures.lock().clone();
        let mut out = Vec::new();
        for supplier in suppliers {
            let (weddings, tz) =
                self.store.supplier(supplier).map(|s| (s.weddings, s.time_zone)).unwrap_or((Vec::new(), chrono_tz::Tz::UTC));
            if let Some(figures) = &figures {
                self.refresh_from_ledger(supplier, figures);
            }
            let (step, snapshot, before) = {
                let mut active = self.active.lock();
                let Some(m) = active.get_mut(&supplier) else { continue };
                let before = m.state;
                let step = m.step(now, WeddingCalendar { days: &weddings, tz });
                m.apply(&step, now);
                let snap = m.clone();
                if !snap.state.is_active() {
                    active.remove(&supplier);
                }
                (step, snap, before)
            };
            match self.save_driven(&snapshot, before) {
                Ok(()) => {}
                Err(MigrationError::Fenced(why) | MigrationError::Superseded(why)) => {
                    // Another instance leads now: what it stored wins; this
                    // one forgets its step and follows the stored state.
                    tracing::warn!(migration = snapshot.id, reason = %why, "migration step not saved: no longer the migrations leader");
                    self.active.lock().remove(&supplier);
                    self.sync_from_store()?;
                    return Ok(out);
                }
                Err(e) => return Err(e),
            }
            match &step {
                Step::Advance { next } => {
                    self.apply_split(&snapshot);
                    self.audit(
                        "migration.phase",
                        &snapshot,
                        &format!("phase {} passed; phase {} at {} %", next, next + 1, snapshot.current_percent()),
                    );
                }
                Step::Complete => {
                    self.complete(&snapshot)?;
                }
                Step::Rollback { reason } => {
                    self.apply_split(&snapshot);
                    self.audit("migration.rollback", &snapshot, &format!("automatic rollback: {reason}"));
                    self.alert_rollback(&snapshot, reason);
                    let _ = self.store.recommend(
                        snapshot.supplier,
                        "migration_rolled_back",
                        &format!("Migration {} was rolled back automatically: {reason}", snapshot.id),
                        now,
                    );
                }
                _ => {}
            }
            out.push((snapshot.id, step));
        }
        Ok(out)
    }

    fn complete(&self, m: &Migration) -> Result<(), MigrationError> {
        let now = self.clock.now();
        match (m.from, m.to) {
            (_, RouteTarget::Platform) => {
                self.store.update_supplier(m.supplier, &SupplierPatch { ai_mode: Some(AiMode::Platform), ..Default::default() }, now)?;
            }
            (from, RouteTarget::Account(_)) => {
                self.store.update_supplier(m.supplier, &SupplierPatch { ai_mode: Some(AiMode::Client), ..Default::default() }, now)?;
                if let RouteTarget::Account(old) = from {
                    // One of its accounts to another: the old one leaves routing.
                    self.store.set_account_enabled(old, false)?;
                }
            }
        }
        self.router.reload()?;
        self.router.set_split(m.supplier, None);
        let _ = self.store.dismiss_recommendations(m.supplier, "move_to_client_ai", now);
        self.audit("migration.complete", m, &format!("{} is now the supplier's route", m.to));
        Ok(())
    }

    /// Running and paused migrations.
    pub fn active(&self) -> Vec<Migration> {
        let mut v: Vec<Migration> = self.active.lock().values().cloned().collect();
        v.sort_by_key(|m| m.id);
        v
    }

    /// Raises a "move to client AI" recommendation when a platform supplier
    /// reaches its quota warning.
    pub fn on_router_event(&self, ev: &RouterEvent) {
        if let RouterEvent::QuotaWarning { supplier, used, quota } = ev {
            let name = self.store.supplier(*supplier).map(|s| s.name).unwrap_or_else(|_| format!("Supplier {supplier}"));
            let msg = format!(
                "{name} has used {} % of this month's platform quota ({used} of {quota} tokens). Consider client AI: run a parallel test, then migrate.",
                used * 100 / (*quota).max(1)
            );
            if let Err(e) = self.store.recommend(*supplier, "move_to_client_ai", &msg, self.clock.now()) {
                tracing::warn!(error = %e, "recommendation not stored");
            }
        }
    }

    /// Fleet mode: the leader's saves of the migrations it drives go
    /// through `save` (a write fenced by its `migrations` lease).
    pub fn set_fenced_save(&self, save: MigrationSave) {
        *self.fenced_save.lock() = Some(save);
    }

    /// Fleet mode: phases are judged on `figures` (the traffic every
    /// instance served, from the shared ledger) instead of the outcomes this
    /// instance's router saw.
    pub fn set_phase_figures(&self, figures: PhaseFigures) {
        *self.phase_figures.lock() = Some(figures);
    }

    /// Replaces the running phase's figures of `supplier`'s migration with
    /// the fleet's (kept as they are when the ledger cannot be read).
    fn refresh_from_ledger(&self, supplier: SupplierId, figures: &PhaseFigures) {
        let current = self.active.lock().get(&supplier).filter(|m| m.state == MigrationState::Running).and_then(|m| {
            let since = m.phases.get(m.phase).and_then(|p| p.started_at).or(m.phase_started_at)?;
            Some((m.id, m.phase, since))
        });
        let Some((id, phase, since)) = current else { return };
        match figures(supplier, since) {
            Ok(stats) => {
                let mut active = self.active.lock();
                if let Some(m) = active.get_mut(&supplier).filter(|m| m.id == id && m.phase == phase)
                    && let Some(p) = m.phases.get_mut(phase)
                {
                    p.stats = stats;
                }
            }
            Err(e) => {
                tracing::warn!(migration = id, error = %e, "phase figures from the shared ledger unavailable; judging on this instance's own")
            }
        }
    }

    /// Saves a migration this service drove (fenced in fleet mode).
    /// Whether this service drives its migrations (a routing runtime that
    /// leads them), rather than writing actions for another process to follow.
    fn drives(&self) -> bool {
        !self.offline && self.leader.lock().as_ref().is_none_or(|g| g())
    }

    fn save_driven(&self, m: &Migration, before: MigrationState) -> Result<(), MigrationError> {
        let hook = self.fenced_save.lock().clone();
        match hook {
            Some(save) => save(m, before),
            None => Ok(self.store.save_migration(m)?),
        }
    }

    /// Fleet mode: this service drives migrations only while `gate` says
    /// this instance leads the `migrations` duty; a new leader continues each
    /// migration from its stored state.
    pub fn set_leader_gate(&self, gate: crate::engine::health::DutyGate) {
        *self.leader.lock() = Some(gate);
    }

    /// Runs the service: takes in router outcomes every 100 ms (in batches: a
    /// task woken for every request would cost each request a cross-thread
    /// wake-up), reacts to router events, ticks every second; on `runtime`.
    pub fn spawn(self: &Arc<Self>, runtime: &tokio::runtime::Handle) -> tokio::task::JoinHandle<()> {
        use tokio::sync::broadcast::error::TryRecvError;
        let svc = self.clone();
        let mut outcomes = svc.router.subscribe_outcomes();
        let mut events = svc.router.subscribe_events();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            let mut drain = tokio::time::interval(std::time::Duration::from_millis(100));
            drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = drain.tick() => loop {
                        match outcomes.try_recv() {
                            Ok(o) => svc.observe(&o),
                            Err(TryRecvError::Lagged(n)) => tracing::warn!(n, "migration service lagged behind outcomes"),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Closed) => return,
                        }
                    },
                    e = events.recv() => if let Ok(e) = e { svc.on_router_event(&e) },
                    _ = tick.tick() => {
                        let s = svc.clone();
                        match tokio::task::spawn_blocking(move || s.tick()).await {
                            Ok(Err(e)) => tracing::warn!(error = %e, "migration tick failed"),
                            Err(e) => tracing::warn!(error = %e, "migration tick panicked"),
                            _ => {}
                        }
                    }
                }
            }
        })
    }
}
