//! The background runtime: assembles the usage ledger, the provider clients,
//! the key service and the router over one store, keeps the router's catalog
//! and keys in step with the database (changes made by the CLI or the console
//! are picked up within a second), runs the provider health monitor, and shuts
//! down cleanly, flushing the ledger.
//! The edges (`serve`, the console) start it and put the gateway in front.

use crate::domain::{Clock, PricingTable, ProviderAccount};
use crate::engine::health::{HealthMonitor, MonitorConfig};
use crate::engine::keys::KeyService;
use crate::engine::ledger::Ledger;
use crate::engine::migrations::MigrationService;
use crate::engine::router::{Router, RouterConfig};
use crate::providers::{Providers, ProvidersConfig};
use crate::store::{LedgerSync, RoutingLock, Store};
use crate::vault::Vault;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub providers: ProvidersConfig,
    pub router: RouterConfig,
    /// How often the catalog version is checked for changes.
    pub reload_every: Duration,
    pub pricing: PricingTable,
    /// Provider health monitor (probes, alerts, history).
    pub health: MonitorConfig,
    /// When a usage commit reaches the disk (see [`LedgerSync`]).
    pub ledger_sync: LedgerSync,
    /// What routes, as written in the routing lock (`switchboard serve`, `the console`).
    pub program: String,
    /// Fleet mode (a PostgreSQL store): coordination, the local journal, leases.
    pub fleet: FleetOptions,
}

/// How an instance runs as one of a fleet on PostgreSQL.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    pub settings: crate::engine::fleet::FleetSettings,
    pub leases: crate::engine::quota_lease::LeaseSettings,
    /// This host's folder for the usage journal and the instance's own
    /// SQLite file (idempotency records, the response cache). None: the
    /// user's state folder (`$XDG_STATE_HOME/switchboard/fleet`).
    pub local_dir: Option<std::path::PathBuf>,
}

/// The default local folder of a fleet instance.
pub fn default_fleet_dir() -> std::path::PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    state.join("switchboard").join("fleet")
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            providers: ProvidersConfig::default(),
            router: RouterConfig::default(),
            reload_every: Duration::from_millis(500),
            pricing: PricingTable::builtin(),
            health: MonitorConfig::default(),
            ledger_sync: LedgerSync::Normal,
            program: "switchboard serve".into(),
            fleet: FleetOptions::default(),
        }
    }
}

/// The running services. Dropping it stops the background tasks.
pub struct Runtime {
    pub store: Arc<Store>,
    pub router: Arc<Router>,
    pub keys: Arc<KeyService>,
    pub providers: Providers,
    pub health: Arc<HealthMonitor>,
    /// Running migrations (resumed from the store at start).
    pub migrations: Arc<MigrationService>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// SQLite: only one runtime routes a database; released when the runtime
    /// is dropped. PostgreSQL: none (the instances of a fleet share it).
    lock: Option<RoutingLock>,
    /// PostgreSQL: this instance's membership of the fleet.
    fleet: Option<crate::engine::fleet::node::FleetNode>,
    /// PostgreSQL: stops the quota lease task (which then returns the unused part).
    lease_stop: Option<tokio::sync::oneshot::Sender<()>>,
    lease_task: Option<tokio::task::JoinHandle<()>>,
}

impl Runtime {
    /// Starts the services on the tokio runtime it is called from (which
    /// then runs the router's background work too).
    /// Refused with [`crate::store::RoutingLockError::Held`], naming the other
    /// process and host, while another runtime routes the same database.
    pub async fn start(store: Arc<Store>, vault: Vault, clock: Arc<dyn Clock>, opts: RuntimeOptions) -> anyhow::Result<Runtime> {
        if store.is_postgres() {
            return crate::engine::fleet::serve::start(store, vault, clock, opts).await;
        }
        let lock = {
            let (path, program, now) = (store.sqlite_path_for("the routing runtime")?.to_path_buf(), opts.program.clone(), clock.now());
            tokio::task::spawn_blocking(move || RoutingLock::acquire(&path, &program, now)).await??
        };
        let ledger = Ledger::start_synced(&store, opts.ledger_sync)?;
        ledger.set_clock(clock.clone());
        // Before the gateway answers anyone: the first request would wait for it.
        tokio::task::spawn_blocking(crate::providers::token_count::warm_up).await?;
        let providers = Providers::new(opts.providers.clone())?;
        let keys = Arc::new(KeyService::new(store.clone(), vault, Arc::new(providers.clone()), clock.clone()));
        let router = {
            let store = store.clone();
            let providers = providers.clone();
            let pricing = Arc::new(opts.pricing.clone());
            let mut cfg = opts.router.clone();
            cfg.idempotency.sync = opts.ledger_sync;
            let clock = clock.clone();
            // The router's background work (audit writes, tokens' last use) runs on this runtime.
            let rt = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || Router::new(store, providers, pricing, clock, ledger, cfg, Some(rt))).await??
        };
        sync_keys(&router, &keys).await;
        let mut tasks = Vec::new();
        {
            let (router, keys, clock) = (router.clone(), keys.clone(), clock.clone());
            let every = opts.reload_every;
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let r = router.clone();
                    match tokio::task::spawn_blocking(move || r.reload_if_changed()).await {
                        Ok(Ok(true)) => sync_keys(&router, &keys).await,
                        Ok(Ok(false)) => {}
                        Ok(Err(e)) => tracing::warn!(error = %e, "catalog reload failed"),
                        Err(e) => tracing::warn!(error = %e, "catalog reload task failed"),
                    }
                    finish_due_mirrors(&router, clock.now()).await;
                }
            }));
        }
        let health = HealthMonitor::for_router(router.clone(), providers.clone(), opts.health.clone());
        tasks.push(tokio::spawn(health.clone().run()));
        let migrations = {
            let (store, router, clock) = (store.clone(), router.clone(), clock.clone());
            tokio::task::spawn_blocking(move || MigrationService::new(store, router, clock)).await??
        };
        migrations.set_alerts(health.alerts().clone());
        tasks.push(migrations.spawn(&tokio::runtime::Handle::current()));
        Ok(Runtime {
            store,
            router,
            keys,
            providers,
            health,
            migrations,
            tasks,
            lock: Some(lock),
            fleet: None,
            lease_stop: None,
            lease_task: None,
        })
    }

    /// The routing lock this runtime holds (who it says it is, and the holder
    /// it found left behind by a killed process, if any); None on PostgreSQL.
    pub fn routing_lock(&self) -> Option<&RoutingLock> {
        self.lock.as_ref()
    }

    /// This instance in the fleet (PostgreSQL only).
    pub fn fleet(&self) -> Option<&crate::engine::fleet::node::FleetNode> {
        self.fleet.as_ref()
    }

    /// Assembles a fleet instance's runtime (see `engine::fleet::serve`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fleet_parts(
        store: Arc<Store>,
        router: Arc<Router>,
        keys: Arc<KeyService>,
        providers: Providers,
        health: Arc<HealthMonitor>,
        migrations: Arc<MigrationService>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
        fleet: crate::engine::fleet::node::FleetNode,
        lease: (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>),
    ) -> Runtime {
        Runtime {
            store,
            router,
            keys,
            providers,
            health,
            migrations,
            tasks,
            lock: None,
            fleet: Some(fleet),
            lease_stop: Some(lease.0),
            lease_task: Some(lease.1),
        }
    }

    /// Stops background tasks and waits until every usage event is committed.
    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        // Fleet: the unused part of the quota leases goes back first.
        if let (Some(stop), Some(task)) = (self.lease_stop.take(), self.lease_task.take()) {
            let _ = stop.send(());
            let _ = task.await;
        }
        self.router.ledger().flush().await;
        if let Some(node) = self.fleet.take() {
            crate::engine::fleet::serve::leave(&self.store, node, self.router.clock().now()).await;
        }
        // The keychain client blocks when it is dropped: never drop it on an async worker.
        let keys = self.keys.clone();
        drop(self);
        let _ = tokio::task::spawn_blocking(move || drop(keys)).await;
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// Writes the reports of the live-traffic mirrors that have compared enough
/// requests or run out of time (see `engine::parallel::finish_mirror`).
pub async fn finish_due_mirrors(router: &Arc<Router>, now: chrono::DateTime<chrono::Utc>) {
    let due = router.mirrors_due(now);
    if !due.is_empty() {
        // The reports are built from the ledger: every copy answered so far is folded first.
        router.ledger().flush().await;
    }
    for (id, why) in due {
        let r = router.clone();
        let res = tokio::task::spawn_blocking(move || {
            let res = crate::engine::parallel::finish_mirror(r.store(), r.pricing(), id, now, why, false);
            if let Err(e) = r.reload() {
                tracing::warn!(error = %e, "catalog reload failed");
            }
            res
        })
        .await;
        match res {
            Ok(Ok(Some(report))) => tracing::info!(mirror = id, report = report.id, "mirror report written"),
            Ok(Ok(None)) => tracing::info!(mirror = id, why, "mirror ended without a report"),
            Ok(Err(e)) => tracing::warn!(mirror = id, error = %e, "mirror report failed"),
            Err(e) => tracing::warn!(mirror = id, error = %e, "mirror report task failed"),
        }
    }
}

/// A router over the store that serves no gateway, with the accounts' keys
/// from `keys`: for work that calls providers outside a routing runtime (a
/// parallel test from the CLI, or from a console that does not route).
/// Flush its ledger before dropping it.
pub async fn offline_router(store: Arc<Store>, clock: Arc<dyn Clock>, keys: &KeyService) -> anyhow::Result<Arc<Router>> {
    let providers = Providers::new(ProvidersConfig::default())?;
    let ledger = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || Ledger::start(&store)).await??
    };
    let rt = tokio::runtime::Handle::current();
    let router = Router::new(store, providers, Arc::new(PricingTable::builtin()), clock, ledger, RouterConfig::default(), Some(rt))?;
    sync_keys(&router, keys).await;
    Ok(router)
}

/// Gives the router the current key of every account that has one (from the
/// key service's snapshots, reading the keychain only for changed entries).
pub async fn sync_keys(router: &Router, keys: &KeyService) {
    let accounts: Vec<ProviderAccount> = match keys.list(None) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list accounts for key sync");
            return;
        }
    };
    for a in accounts {
        if a.key_ref.is_none() {
            router.set_key(a.id, None);
            continue;
        }
        match keys.key_for_account(&a).await {
            Ok(k) => router.set_key(a.id, Some(k)),
            Err(e) => {
                tracing::warn!(account = a.id.0, error = %e, "key unavailable: the account is out of routing until it is fixed");
                router.set_key(a.id, None);
            }
        }
    }
}
