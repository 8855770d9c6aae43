//! The console service loop: [`spawn`] / [`spawn_with`] start the task that
//! takes commands from the UI, skips the ones already superseded, runs each on
//! the blocking pool (or its own task) and sends the answer with a repaint; the
//! [`Service`] state shared by the views' handlers; demo data generation.

use crate::console::live::Live;
use crate::console::views::suppliers::SupplierCache;
use crate::console::*;
use crate::domain::{Clock, QuotaPolicy};
use crate::engine::analytics::{AnalyticsService, CancelHandle};
use crate::engine::demo::{DemoConfig, generate};
use crate::engine::health::HealthMonitor;
use crate::engine::keys::KeyService;
use crate::engine::migrations::MigrationService;
use crate::engine::router::Router;
use crate::store::{Store, audit_actor};
use chrono::NaiveDate;
use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;

/// The services behind the Keys view and the live Overview, started by the edge.
pub struct LiveServices {
    pub keys: Arc<KeyService>,
    /// The routing runtime, when this process routes (demo mode).
    pub router: Option<Arc<Router>>,
    /// The gateway's base URL, when one listens.
    pub gateway_url: Option<String>,
    /// The provider health monitor of the routing runtime (probes, verdicts, alerts).
    pub health: Option<Arc<HealthMonitor>>,
    /// The migration service of the routing runtime (drives running migrations).
    pub migrations: Option<Arc<MigrationService>>,
    /// Demo mode: the keys are simulator keys in the in-memory demo store.
    pub demo: bool,
    /// Whatever must live as long as the services (simulator, gateway,
    /// traffic); wrap a value that is not `Sync` in a `Mutex`.
    pub keep_alive: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl LiveServices {
    /// Only the key service: a console that does not route (health comes from
    /// the stored history, migration actions are written to the store).
    pub fn keys_only(keys: Arc<KeyService>) -> Self {
        LiveServices { keys, router: None, health: None, migrations: None, gateway_url: None, demo: false, keep_alive: Vec::new() }
    }
}

/// Starts the live services once demo history is written (demo mode).
pub type LiveStarter = Arc<dyn Fn(Arc<Store>) -> BoxFuture<'static, Result<LiveServices, String>> + Send + Sync>;

/// Optional parts of the console service.
#[derive(Default)]
pub struct ServiceOptions {
    /// Available from the start (the key service on the OS keychain; tests).
    pub live: Option<LiveServices>,
    /// Demo mode: called after `GenerateDemo` succeeded; its services replace `live`.
    pub after_demo: Option<LiveStarter>,
    /// Where desktop notifications go (`None`: the desktop's notification service).
    pub notify_sink: Option<crate::console::notify::Sink>,
    /// The console may route by itself (a database file; not demo mode).
    pub routing: Option<Arc<crate::console::routing::ConsoleRouting>>,
}

/// Starts the console service on `rt` and returns the UI's two ends.
pub fn spawn(
    rt: &tokio::runtime::Handle,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    policy: QuotaPolicy,
    repaint: Repaint,
) -> (ConsoleHandle, ConsoleEvents) {
    spawn_with(rt, store, clock, policy, repaint, ServiceOptions::default())
}

/// [`spawn`] with key, token and live services.
pub fn spawn_with(
    rt: &tokio::runtime::Handle,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    policy: QuotaPolicy,
    repaint: Repaint,
    opts: ServiceOptions,
) -> (ConsoleHandle, ConsoleEvents) {
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<(Ticket, ConsoleCommand)>();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let gens = Arc::new(Generations::default());
    let handle_clock = clock.clone();
    let service = Arc::new(Service {
        analytics: AnalyticsService::new(store.clone(), crate::domain::PricingTable::builtin(), policy.clone()),
        projections: Mutex::new(Vec::new()),
        export: Mutex::new(None),
        parallel: Mutex::new(None),
        store,
        clock,
        policy,
        cache: Mutex::new(None),
        live: RwLock::new(None),
        after_demo: opts.after_demo,
        watch: Mutex::new(Watch::Nothing),
        health_query: Mutex::new(None),
        migrations_query: Mutex::new(None),
        instances_query: Mutex::new(None),
        fresh: AtomicBool::new(false),
        notifier: Arc::new(crate::console::notify::Notifier::default()),
        base_keys: opts.live.as_ref().map(|l| l.keys.clone()),
        routing: opts.routing,
        import: Mutex::new(None),
    });
    let notify_sink = opts.notify_sink;
    if let Some(l) = opts.live {
        service.install_live(l, rt);
    }
    let out = Outbox { tx: ev_tx, repaint, gens: gens.clone() };
    {
        let (svc, out) = (service.clone(), out.clone());
        rt.spawn(async move { svc.live_ticker(out).await });
    }
    let rt2 = rt.clone();
    rt.spawn(async move {
        while let Some((ticket, cmd)) = cmd_rx.recv().await {
            if !out.gens.is_current(ticket.channel, ticket.generation) {
                continue; // superseded while it waited
            }
            if let ConsoleCommand::GenerateDemo(cfg) = cmd {
                let (svc, out, rt) = (service.clone(), out.clone(), rt2.clone());
                tokio::spawn(async move {
                    let ok = {
                        let (svc, out) = (svc.clone(), out.clone());
                        tokio::task::spawn_blocking(move || svc.generate_demo(&cfg, ticket, &out)).await.unwrap_or(false)
                    };
                    if ok && let Some(start) = svc.after_demo.clone() {
                        let ev = match start(svc.store.clone()).await {
                            Ok(l) => {
                                let gateway_url = l.gateway_url.clone();
                                svc.install_live(l, &rt);
                                svc.fresh.store(true, Ordering::SeqCst);
                                ConsoleEvent::LiveReady { gateway_url }
                            }
                            Err(message) => ConsoleEvent::Failed { channel: Channel::Live, message },
                        };
                        out.send(out.live_ticket(), ev);
                    }
                });
                continue;
            }
            if let ConsoleCommand::SetDesktopNotifications(on) = cmd {
                service.notifier.set(on, service.store.clone(), &rt2, notify_sink.clone());
                continue;
            }
            if let ConsoleCommand::Watch(w) = cmd {
                *lock(&service.watch) = w;
                service.fresh.store(w != Watch::Nothing, Ordering::SeqCst);
                continue;
            }
            // The ticker keeps the watched view fresh with the latest query.
            match &cmd {
                ConsoleCommand::LoadHealth(q) => *lock(&service.health_query) = Some((ticket.generation, *q)),
                ConsoleCommand::LoadMigrations(q) => *lock(&service.migrations_query) = Some((ticket.generation, *q)),
                ConsoleCommand::LoadInstances { all } => *lock(&service.instances_query) = Some((ticket.generation, *all)),
                _ => {}
            }
            let cmd = match cmd {
                ConsoleCommand::LoadProjections { as_of } => {
                    service.start_projections(as_of, ticket, out.clone());
                    continue;
                }
                ConsoleCommand::ExportUsage(opts) => {
                    service.start_export(opts, ticket, out.clone());
                    continue;
                }
                ConsoleCommand::CancelExport => {
                    if let Some(c) = service.export.lock().as_ref() {
                        c.cancel();
                    }
                    continue;
                }
                ConsoleCommand::RunParallelTest { supplier, to } => {
                    service.start_parallel(supplier, to, ticket, out.clone());
                    continue;
                }
                ConsoleCommand::RemoveSupplier(id) => {
                    // Async (the keychain), but awaited here so writes stay in order.
                    let channel = ticket.channel;
                    let ev = service.clone().remove_supplier(id).await.unwrap_or_else(|message| ConsoleEvent::Failed { channel, message });
                    out.send(ticket, ev);
                    continue;
                }
                ConsoleCommand::CancelParallelTest => {
                    if let Some(c) = lock(&service.parallel).as_ref() {
                        c.cancel();
                    }
                    continue;
                }
                ConsoleCommand::StartRouting { port } => {
                    service.start_routing(port, ticket, out.clone());
                    continue;
                }
                ConsoleCommand::StopRouting => {
                    service.stop_routing(ticket, out.clone());
                    continue;
                }
                ConsoleCommand::ImportSuppliers { path } => {
                    service.start_import(path, ticket, out.clone());
                    continue;
                }
                ConsoleCommand::CancelImport => {
                    if let Some(c) = lock(&service.import).as_ref() {
                        c.cancel();
                    }
                    continue;
                }
                cmd => cmd,
            };
            if matches!(cmd.channel(), Channel::Keys | Channel::KeyWrite) {
                let (svc, out) = (service.clone(), out.clone());
                let channel = ticket.channel;
                tokio::spawn(async move {
                    let ev = svc.key_command(cmd).await.unwrap_or_else(|message| ConsoleEvent::Failed { channel, message });
                    out.send(ticket, ev);
                });
                continue;
            }
            let svc = service.clone();
            let channel = ticket.channel;
            let ev = tokio::task::spawn_blocking(move || svc.execute(cmd))
                .await
                .unwrap_or_else(|e| Err(format!("the console service failed unexpectedly ({e}); try again, and report it if it repeats")));
            out.send(ticket, ev.unwrap_or_else(|message| ConsoleEvent::Failed { channel, message }));
        }
    });
    (ConsoleHandle { tx: cmd_tx, gens: gens.clone(), clock: handle_clock }, ConsoleEvents { rx: ev_rx, gens })
}

#[derive(Clone)]
pub(in crate::console) struct Outbox {
    pub(in crate::console) tx: mpsc::UnboundedSender<(Ticket, ConsoleEvent)>,
    pub(in crate::console) repaint: Repaint,
    pub(in crate::console) gens: Arc<Generations>,
}

impl Outbox {
    /// Live events answer the latest `Watch`, so `is_loading(Channel::Live)` settles.
    pub(in crate::console) fn live_ticket(&self) -> Ticket {
        Ticket { channel: Channel::Live, generation: self.gens.latest(Channel::Live) }
    }

    pub(in crate::console) fn send(&self, ticket: Ticket, ev: ConsoleEvent) {
        if self.gens.is_current(ticket.channel, ticket.generation) && self.tx.send((ticket, ev)).is_ok() {
            (self.repaint)();
        }
    }
}

pub(in crate::console) struct Service {
    pub(in crate::console) store: Arc<Store>,
    pub(in crate::console) clock: Arc<dyn Clock>,
    pub(in crate::console) policy: QuotaPolicy,
    pub(in crate::console) cache: Mutex<Option<Arc<SupplierCache>>>,
    pub(in crate::console) live: RwLock<Option<Arc<Live>>>,
    pub(in crate::console) after_demo: Option<LiveStarter>,
    /// The view with live data that is visible.
    pub(in crate::console) watch: Mutex<Watch>,
    /// The Health view's latest query and its generation.
    pub(in crate::console) health_query: Mutex<Option<(u64, HealthQuery)>>,
    /// The Migrations view's latest query and its generation.
    pub(in crate::console) migrations_query: Mutex<Option<(u64, MigrationQuery)>>,
    /// The Instances view's last query (`all`), for the ticker.
    pub(in crate::console) instances_query: Mutex<Option<(u64, bool)>>,
    /// Send the next snapshot even if it did not change (a view just became visible).
    pub(in crate::console) fresh: AtomicBool,
    pub(in crate::console) analytics: AnalyticsService,
    /// The running projection queries, cancelled by the next request.
    pub(in crate::console) projections: Mutex<Vec<CancelHandle>>,
    /// The running export's cancel handle (one export at a time).
    pub(in crate::console) export: Mutex<Option<CancelHandle>>,
    /// The running parallel test's cancel handle (one at a time).
    pub(in crate::console) parallel: Mutex<Option<CancelHandle>>,
    /// Desktop notifications of critical alerts and wedding-day incidents.
    pub(in crate::console) notifier: Arc<crate::console::notify::Notifier>,
    /// The key service the console started with (used again when its own routing stops).
    pub(in crate::console) base_keys: Option<Arc<KeyService>>,
    /// The console's own routing runtime, when it may route.
    pub(in crate::console) routing: Option<Arc<crate::console::routing::ConsoleRouting>>,
    /// The running supplier import's cancel handle (one at a time).
    pub(in crate::console) import: Mutex<Option<CancelHandle>>,
}

pub(in crate::console) type Res<T> = Result<T, String>;

pub(in crate::console) fn msg(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub(in crate::console) fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

impl Service {
    pub(in crate::console) fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    pub(in crate::console) fn execute(&self, cmd: ConsoleCommand) -> Res<ConsoleEvent> {
        Ok(match cmd {
            ConsoleCommand::LoadOverview => ConsoleEvent::Overview(Arc::new(self.overview()?)),
            ConsoleCommand::LoadDirectory => ConsoleEvent::Directory(Arc::new(self.directory()?)),
            ConsoleCommand::LoadSuppliers(q) => ConsoleEvent::Suppliers(Arc::new(self.suppliers(&q)?)),
            ConsoleCommand::LoadSupplierDetail(id) => ConsoleEvent::SupplierDetail(Arc::new(self.detail(id)?)),
            ConsoleCommand::AddSupplier(new) => {
                let s = self.store.insert_supplier(&new, self.clock.now()).map_err(msg)?;
                self.invalidate();
                self.store
                    .audit(
                        self.clock.now(),
                        &audit_actor(),
                        "supplier.add",
                        Some(s.id),
                        None,
                        "ok",
                        &format!("{} ({}, {}, {})", s.name, s.vendor_type, s.tier, s.ai_mode),
                    )
                    .map_err(msg)?;
                ConsoleEvent::SupplierSaved { supplier: s, created: true }
            }
            ConsoleCommand::EditSupplier { id, patch } => {
                let before = self.store.supplier(id).map_err(msg)?;
                let s = self.store.update_supplier(id, &patch, self.clock.now()).map_err(msg)?;
                self.invalidate();
                // Before→after; a save that changed nothing leaves no entry.
                if let Some(change) = crate::domain::supplier_query::describe_change(&before, &s) {
                    self.store.audit(self.clock.now(), &audit_actor(), "supplier.edit", Some(s.id), None, "ok", &change).map_err(msg)?;
                }
                ConsoleEvent::SupplierSaved { supplier: s, created: false }
            }
            ConsoleCommand::SetCacheSettings { id, settings } => {
                crate::engine::cache::set_settings(&self.store, id, settings, &audit_actor(), self.clock.now()).map_err(msg)?;
                self.invalidate();
                ConsoleEvent::CacheSettingsSaved { id, summary: crate::engine::cache::describe(&settings) }
            }
            ConsoleCommand::PurgeCache(supplier) => {
                let entries = crate::engine::cache::purge_offline(&self.store, supplier, self.clock.now(), &audit_actor()).map_err(msg)?;
                self.invalidate();
                ConsoleEvent::CachePurged { supplier, entries }
            }
            ConsoleCommand::RemoveSupplier(_) => {
                return Err("internal: removing a supplier goes through remove_supplier (its keys first)".into());
            }
            ConsoleCommand::LoadQuota(q) => ConsoleEvent::Quota(Arc::new(self.quota(q)?)),
            ConsoleCommand::LoadUsage(q) => ConsoleEvent::Usage(Arc::new(self.usage(q)?)),
            ConsoleCommand::LoadAudit(q) => ConsoleEvent::Audit(Arc::new(self.audit(&q)?)),
            ConsoleCommand::LoadHealth(q) => ConsoleEvent::Health(Arc::new(self.health_view(&q)?)),
            ConsoleCommand::AcknowledgeAlert(id) => self.alert_action(id, false)?,
            ConsoleCommand::ResolveAlert(id) => self.alert_action(id, true)?,
            ConsoleCommand::LoadAlerts(q) => ConsoleEvent::Alerts(Arc::new(self.alerts_view(&q)?)),
            ConsoleCommand::AcknowledgeAlerts(ids) => self.acknowledge_alerts(&ids)?,
            ConsoleCommand::ExportAlerts(dir) => self.export_alerts(dir)?,
            ConsoleCommand::ExportAudit { query, dir } => self.export_audit(&query, dir)?,
            ConsoleCommand::SearchRequests(q) => ConsoleEvent::Requests(Arc::new(self.requests(&q)?)),
            ConsoleCommand::LoadInstances { all } => ConsoleEvent::Instances(Arc::new(self.instances_view(all)?)),
            ConsoleCommand::WriteOffLease { supplier, month, instance, reason } => {
                self.write_off_lease(supplier, month, instance, &reason)?
            }
            ConsoleCommand::LoadMigrations(q) => ConsoleEvent::Migrations(Arc::new(self.migrations_view(&q)?)),
            ConsoleCommand::PlanMigration { supplier, to, phases } => {
                ConsoleEvent::MigrationPlanned(Arc::new(self.plan_migration(supplier, to, phases)?))
            }
            ConsoleCommand::ScheduleMigration { supplier, to, at, phases } => self.schedule_migration(supplier, to, at, phases)?,
            ConsoleCommand::CancelSchedule(id) => self.cancel_schedule(id)?,
            ConsoleCommand::PreviewImport(path) => ConsoleEvent::ImportPreview(Arc::new(self.preview_import(&path)?)),
            ConsoleCommand::SaveImportTemplate(path) => self.save_import_template(&path)?,
            ConsoleCommand::SaveImportReport { path, rows } => self.save_import_report(&path, &rows)?,
            cmd @ (ConsoleCommand::StartMigration { .. }
            | ConsoleCommand::PauseMigration(_)
            | ConsoleCommand::ResumeMigration(_)
            | ConsoleCommand::RollbackMigration { .. }
            | ConsoleCommand::AbortMigration(_)
            | ConsoleCommand::DismissRecommendation(_)
            | ConsoleCommand::MirrorLiveTraffic { .. }
            | ConsoleCommand::StopMirror(_)) => self.migration_action(cmd)?,
            ConsoleCommand::GenerateDemo(_)
            | ConsoleCommand::Watch(_)
            | ConsoleCommand::SetDesktopNotifications(_)
            | ConsoleCommand::LoadKeys
            | ConsoleCommand::AddKey { .. }
            | ConsoleCommand::ValidateKey(_)
            | ConsoleCommand::RotateKey { .. }
            | ConsoleCommand::RemoveKey { .. }
            | ConsoleCommand::IssueToken(_)
            | ConsoleCommand::RevokeToken(_)
            | ConsoleCommand::SetPoolSettings { .. }
            | ConsoleCommand::LoadProjections { .. }
            | ConsoleCommand::ExportUsage(_)
            | ConsoleCommand::CancelExport
            | ConsoleCommand::RunParallelTest { .. }
            | ConsoleCommand::CancelParallelTest
            | ConsoleCommand::StartRouting { .. }
            | ConsoleCommand::StopRouting
            | ConsoleCommand::ImportSuppliers { .. }
            | ConsoleCommand::CancelImport => return Err("internal: this command runs on its own task".into()),
        })
    }

    pub(in crate::console) fn generate_demo(&self, cfg: &DemoConfig, ticket: Ticket, out: &Outbox) -> bool {
        let started = Instant::now();
        let res = generate(&self.store, cfg, |stage, done| {
            out.send(ticket, ConsoleEvent::DemoProgress { stage: stage.to_string(), done, elapsed_secs: started.elapsed().as_secs_f64() });
        });
        self.invalidate();
        let ok = res.is_ok();
        let ev = match res {
            Ok(summary) => ConsoleEvent::DemoReady { summary, elapsed_secs: started.elapsed().as_secs_f64() },
            Err(e) => ConsoleEvent::Failed { channel: Channel::Demo, message: format!("demo data could not be written: {e}") },
        };
        out.send(ticket, ev);
        ok
    }
}
