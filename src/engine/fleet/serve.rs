//! The routing runtime of one instance of a fleet on PostgreSQL: what
//! [`crate::engine::runtime::Runtime::start`] assembles when its store is
//! PostgreSQL.
//!
//! - The instance joins the fleet ([`FleetNode`]): registered, heartbeating,
//!   competing for the `probes`, `migrations` and `alerts` duties, listening
//!   for catalog changes and verdicts.
//! - Usage goes to a journal on this host (`<local dir>/<database tag>/journal`)
//!   claimed under the instance's fleet id, and is folded into PostgreSQL by
//!   [`PgLedger`] (events, rollups, quota leases and the watermark in one
//!   transaction). Journals left on this host by killed instances are folded
//!   at start under their own ids, and their leases closed.
//! - Platform quota is served from leases ([`crate::engine::quota_lease`]),
//!   topped up by a background task; no database round trip per request.
//! - The catalog is reloaded on every `switchboard_catalog` notification and
//!   resync, and checked every `reload_every` as a fallback.
//! - Health: only the probe leader probes and publishes verdicts; every
//!   instance applies them and feeds its own outcomes to its breakers and the
//!   shared history. Only the alert leader raises alerts. Only the migration
//!   leader drives migrations (its saves fenced by its lease's epoch, its
//!   phases judged on every instance's traffic from the shared ledger); the
//!   others follow the stored phases and splits.
//! - Idempotency keys are claimed in PostgreSQL (`store::pg::idempotency`),
//!   so a retry on another instance replays the first answer. What stays per
//!   instance: the response cache, in `<local dir>/<database tag>/local.db`
//!   (SQLite), whose entries per supplier it reports to `instance_cache`
//!   every heartbeat interval (purges reach it through `cache_purges`).

use super::Duty;
use super::node::FleetNode;
use super::notify::{FleetEvent, VerdictGate};
use crate::domain::{AccountId, Clock};
use crate::engine::health::{FleetHealth, HealthMonitor};
use crate::engine::keys::KeyService;
use crate::engine::ledger::{Ledger, LedgerOptions};
use crate::engine::migrations::MigrationService;
use crate::engine::quota_lease::PgQuotaSource;
use crate::engine::router::Router;
use crate::engine::runtime::{Runtime, RuntimeOptions, default_fleet_dir, sync_keys};
use crate::providers::Providers;
use crate::store::Store;
use crate::store::pg::ledger::PgLedger;
use crate::store::pg::{leases, on_pg};
use crate::vault::Vault;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Starts a fleet instance's runtime on `store` (PostgreSQL).
pub async fn start(store: Arc<Store>, vault: Vault, clock: Arc<dyn Clock>, opts: RuntimeOptions) -> anyhow::Result<Runtime> {
    let pg = store.postgres().cloned().ok_or_else(|| anyhow::anyhow!("the fleet runtime needs a PostgreSQL store"))?;
    let requests = Arc::new(AtomicU64::new(0));
    let node = FleetNode::start(&pg, clock.clone(), opts.fleet.settings.clone(), requests.clone()).await?;
    let id = node.id();
    let journal_id = u32::try_from(id).map_err(|_| anyhow::anyhow!("fleet instance id {id} does not fit a journal id"))?;
    let dir = {
        let s = store.clone();
        let tag = tokio::task::spawn_blocking(move || s.instance_tag()).await??;
        opts.fleet.local_dir.clone().unwrap_or_else(default_fleet_dir).join(sanitize(&tag))
    };
    let root = dir.join("journal");
    std::fs::create_dir_all(&root).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", root.display()))?;
    let leftovers = old_journals(&root, journal_id);
    let ledger = {
        let (pg, root, sync) = (pg.clone(), root.clone(), opts.ledger_sync);
        tokio::task::spawn_blocking(move || {
            let lo = LedgerOptions { sync, instance: Some(journal_id), ..LedgerOptions::default() };
            Ledger::start_with(Box::new(PgLedger::new(pg)), &root, lo)
        })
        .await??
    };
    ledger.set_clock(clock.clone());
    // Journals of instances killed on this host are folded now: what their
    // leases still hold unused is given back.
    for old in leftovers {
        let (pg, now) = (pg.clone(), clock.now());
        match on_pg(async move { leases::close_instance(&pg, i64::from(old), now).await }).await {
            Ok(n) if n > 0 => tracing::info!(instance = old, tokens = n, "closed the quota leases of a stopped instance"),
            Ok(_) => {}
            Err(e) => tracing::warn!(instance = old, error = %e, "cannot close an old instance's quota leases"),
        }
    }
    let local = {
        let path = dir.join("local.db");
        Arc::new(tokio::task::spawn_blocking(move || Store::open(path)).await??)
    };
    tokio::task::spawn_blocking(crate::providers::token_count::warm_up).await?;
    let providers = Providers::new(opts.providers.clone())?;
    let keys = Arc::new(KeyService::new(store.clone(), vault, Arc::new(providers.clone()), clock.clone()));
    let router = {
        let (store, providers, clock) = (store.clone(), providers.clone(), clock.clone());
        let pricing = Arc::new(opts.pricing.clone());
        let mut cfg = opts.router.clone();
        cfg.quota_leases = Some(opts.fleet.leases);
        cfg.idempotency.fleet_instance = Some((id, opts.fleet.settings.gone_after));
        cfg.idempotency.sync = opts.ledger_sync;
        cfg.local_store = Some(local.clone());
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || Router::new(store, providers, pricing, clock, ledger, cfg, Some(rt))).await??
    };
    sync_keys(&router, &keys).await;
    // Quota first, then the gateway may answer.
    let source = Arc::new(PgQuotaSource { store: pg.clone(), instance: id });
    router.set_quota_source(source.clone());
    if let Err(e) = router.top_up_quota_leases(source.as_ref()).await {
        tracing::warn!(error = %e, "cannot lease quota yet (platform requests are refused until a lease is granted)");
    }
    let lease = {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (r, s, settings) = (router.clone(), source.clone(), opts.fleet.leases);
        let task = tokio::spawn(crate::engine::quota_lease::run(r, s, settings, async move {
            let _ = rx.await;
        }));
        (tx, task)
    };
    let health = HealthMonitor::for_router(router.clone(), providers.clone(), opts.health.clone());
    health.set_fleet(FleetHealth { probes: node.gate(Duty::Probes), alerts: node.gate(Duty::Alerts), publish: node.verdict_sink() });
    let mut tasks = vec![tokio::spawn(health.clone().run())];
    tasks.push(tokio::spawn(follow_fleet(node.subscribe(), router.clone(), keys.clone(), health.clone(), id, opts.reload_every)));
    tasks.push(tokio::spawn(count_requests(router.clone(), requests, opts.fleet.settings.heartbeat_every)));
    tasks.push(tokio::spawn(share_rate_limits(router.clone(), node.store().clone(), opts.fleet.settings.clone())));
    tasks.push(tokio::spawn(validate_for_consoles(keys.clone())));
    tasks.push(tokio::spawn(parallel_tests_for_consoles(router.clone(), id, opts.fleet.settings.gone_after)));
    tasks.push(tokio::spawn(apply_cache_purges(router.clone(), store.clone(), local.clone())));
    tasks.push(tokio::spawn(report_cache_usage(pg.clone(), local, id, opts.fleet.settings.heartbeat_every)));
    let migrations = {
        let (store, router, clock) = (store.clone(), router.clone(), clock.clone());
        tokio::task::spawn_blocking(move || MigrationService::new(store, router, clock)).await??
    };
    migrations.set_alerts(health.alerts().clone());
    migrations.set_leader_gate(node.gate(Duty::Migrations));
    migrations.set_fenced_save(super::duties::fenced_migration_save(node.elector().clone(), pg.clone()));
    migrations.set_phase_figures(super::duties::ledger_phase_figures(pg.clone()));
    tasks.push(migrations.spawn(&tokio::runtime::Handle::current()));
    Ok(Runtime::fleet_parts(store, router, keys, providers, health, migrations, tasks, node, lease))
}

/// Leaves the fleet after the runtime's last fold: what the leases still
/// hold is released and the instance is marked stopped.
pub async fn leave(store: &Store, node: FleetNode, now: chrono::DateTime<chrono::Utc>) {
    if let Some(pg) = store.postgres().cloned() {
        let id = node.id();
        if let Err(e) = on_pg(async move { leases::close_instance(&pg, id, now).await }).await {
            tracing::warn!(instance = id, error = %e, "cannot close this instance's quota leases (they expire on their own)");
        }
    }
    node.stop().await;
}

/// Keeps the router in step with the fleet: the catalog reloaded on every
/// change notification or resync (and every `every` as a fallback), keys
/// re-read when it changed, the probe leader's verdicts applied to breakers.
async fn follow_fleet(
    mut events: tokio::sync::broadcast::Receiver<FleetEvent>,
    router: Arc<Router>,
    keys: Arc<KeyService>,
    health: Arc<HealthMonitor>,
    own: i64,
    every: std::time::Duration,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gate = VerdictGate::default();
    loop {
        let changed = tokio::select! {
            _ = tick.tick() => false,
            ev = events.recv() => match ev {
                Ok(FleetEvent::Catalog(_)) => true,
                Ok(FleetEvent::Health(v)) => {
                    if v.instance != own && gate.accept(&v) {
                        health.apply_remote_verdict(AccountId(v.account_id), v.verdict);
                    }
                    continue;
                }
                Ok(FleetEvent::Resync) | Err(RecvError::Lagged(_)) => {
                    health.clear_remote_verdicts();
                    true
                }
                Err(RecvError::Closed) => {
                    tick.tick().await;
                    false
                }
            },
        };
        let r = router.clone();
        let res = tokio::task::spawn_blocking(move || if changed { r.reload().map(|()| true) } else { r.reload_if_changed() }).await;
        match res {
            Ok(Ok(true)) => sync_keys(&router, &keys).await,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "catalog reload failed"),
            Err(e) => tracing::warn!(error = %e, "catalog reload task failed"),
        }
    }
}

/// Keeps the router's share of every supplier's rate limit at one over the
/// number of live instances (read every heartbeat interval). Between a change
/// of the fleet and the next read, the fleet allows up to one instance's share
/// more (an instance joined) or less (one died, until it is shown as gone).
async fn share_rate_limits(router: Arc<Router>, store: super::FleetStore, settings: super::FleetSettings) {
    let mut t = tokio::time::interval(settings.heartbeat_every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        t.tick().await;
        let (s, gone_after) = (store.clone(), settings.gone_after);
        match on_pg(async move { s.list(None, gone_after).await }).await {
            Ok(rows) => {
                let live = rows.iter().filter(|r| r.state == super::InstanceState::Live).count();
                router.set_rate_share(u32::try_from(live.max(1)).unwrap_or(u32::MAX));
            }
            Err(e) => tracing::warn!(error = %e, "cannot count the fleet's instances (the rate limit share stays as it was)"),
        }
    }
}

/// Validates the keys that consoles (which cannot open them) asked about;
/// each request is claimed by one instance only.
async fn validate_for_consoles(keys: Arc<KeyService>) {
    let mut t = tokio::time::interval(crate::engine::keys::FLEET_VALIDATION_POLL);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        t.tick().await;
        if let Err(e) = keys.validate_requested().await {
            tracing::warn!(error = %e, "cannot read the consoles' key validation requests (will retry)");
        }
    }
}

/// Runs the parallel tests that consoles and the CLI filed (they cannot open
/// keys), one at a time on this instance; each request is taken by one instance.
async fn parallel_tests_for_consoles(router: Arc<Router>, own: i64, gone_after: std::time::Duration) {
    let mut t = tokio::time::interval(crate::engine::parallel::fleet::POLL);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        t.tick().await;
        if let Err(e) = crate::engine::parallel::fleet::run_requested(&router, own, gone_after).await {
            tracing::warn!(error = %e, "cannot read the consoles' parallel test requests (will retry)");
        }
    }
}

/// Applies the fleet's response cache purges to this instance's own cache
/// (memory and `local.db`) within a second of their filing.
async fn apply_cache_purges(router: Arc<Router>, store: Arc<Store>, local: Arc<Store>) {
    let mut t = tokio::time::interval(std::time::Duration::from_millis(500));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        t.tick().await;
        if let Err(e) = crate::engine::cache::apply_fleet_purges(router.cache(), &store, &local).await {
            tracing::warn!(error = %e, "cannot apply the fleet's cache purges (will retry)");
        }
    }
}

/// Reports what this instance's response cache holds per supplier (its
/// `local.db`), every heartbeat interval when it changed, so that the
/// fleet's consoles and `cache stats` count the entries across instances.
async fn report_cache_usage(pg: crate::store::pg::PgStore, local: Arc<Store>, own: i64, every: std::time::Duration) {
    let mut t = tokio::time::interval(every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = None;
    loop {
        t.tick().await;
        let l = local.clone();
        let usage = match tokio::task::spawn_blocking(move || l.response_cache_usage()).await {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read this instance's cache usage (will retry)");
                continue;
            }
            Err(_) => continue,
        };
        if reported.as_ref() == Some(&usage) {
            continue;
        }
        let (p, u) = (pg.clone(), usage.clone());
        match on_pg(async move { crate::store::pg::cache_stats::report_usage(&p, own, &u).await }).await {
            Ok(()) => reported = Some(usage),
            Err(e) => tracing::warn!(error = %e, "cannot report this instance's cache usage (will retry)"),
        }
    }
}

/// Copies the gateway's request count into the heartbeat's counter.
async fn count_requests(router: Arc<Router>, requests: Arc<AtomicU64>, every: std::time::Duration) {
    let mut t = tokio::time::interval((every / 2).max(std::time::Duration::from_millis(100)));
    loop {
        t.tick().await;
        let m = router.metrics();
        let n: u64 = m.requests_by_route().iter().map(|(_, n, _)| n).sum::<u64>().saturating_add(m.refused.load(Ordering::Relaxed));
        requests.store(n, Ordering::Relaxed);
    }
}

/// The journal folders under `root` other than `own` (instances of earlier
/// runs on this host; the ledger folds the ones nobody holds at start).
fn old_journals(root: &Path, own: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(root) else { return Vec::new() };
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&id| id != own && !crate::engine::ledger::journal::Instance::is_held(root, id).unwrap_or(true))
        .collect()
}

/// A database tag as a folder name.
fn sanitize(tag: &str) -> PathBuf {
    let s: String = tag.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    PathBuf::from(if s.is_empty() { "fleet".to_string() } else { s })
}
