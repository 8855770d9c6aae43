//! The health monitor of the background runtime. Every provider account
//! (platform and client) with a key is probed every 30 s (configurable; each
//! account on its own jittered phase so probes do not fire together) with a
//! cheap authenticated call (`Providers::validate_key`, the model list) under a
//! timeout. Probe results and the router's live attempt outcomes (passive
//! health) feed a bounded sliding window per account; the verdict
//! (`domain::health`) is judged against wedding-day thresholds for accounts
//! serving a supplier with a wedding today (the supplier's local day).
//!
//! Wiring: an account that goes down gets its router breaker forced open
//! (failover starts); when probes see it working again the monitor closes the
//! breaker it opened (traffic returns by itself). Verdicts, invalid keys and
//! router events (quota, failover) become alerts through
//! [`crate::engine::alerts::AlertService`]. Probe samples, and the first
//! [`TRAFFIC_SAMPLES_PER_MINUTE`] live outcomes of each account per minute,
//! are written to the history tables, compacted periodically.
//!
//! Everything is driven by [`HealthMonitor::tick`], which reads time from the
//! injected clock: the runtime's loop calls it every second, tests call it
//! directly after moving a `ManualClock`.

use crate::domain::Secret;
pub use crate::domain::health::ChartRange;
use crate::domain::health::{
    AccountWindow, AlertRules, HealthRules, Retention, Sample, SampleSource, Thresholds, Verdict, WindowStats, bucket_start,
};
use crate::domain::{AccountId, AccountOwner, AiMode, Clock, ProviderAccount, ProviderKind, SupplierId, ValidationStatus};
use crate::engine::alerts::{AlertService, WebhookConfig};
use crate::engine::router::{AttemptOutcome, Router, RouterEvent};
use crate::providers::{ProviderTarget, Providers};
use crate::store::{Alert, CompactionReport, HealthSampleRow, SeriesPoint, Store, StoreResult};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::broadcast::error::TryRecvError;

/// Monitor settings; `Default` is the product's numbers (probes every 30 s).
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub probe_interval_secs: i64,
    /// Spread accounts' probes over the interval (each account on its own phase).
    pub jitter: bool,
    pub probe_timeout: std::time::Duration,
    pub max_concurrent_probes: usize,
    pub rules: HealthRules,
    pub alert_rules: AlertRules,
    pub retention: Retention,
    pub compact_every_secs: i64,
    /// How often the runtime's loop calls `tick` (real time).
    pub loop_every: std::time::Duration,
    /// Raise and resolve alerts and force router breakers (off for a one-off CLI round).
    pub act: bool,
    pub webhook: Option<WebhookConfig>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            probe_interval_secs: 30,
            jitter: true,
            probe_timeout: std::time::Duration::from_secs(10),
            max_concurrent_probes: 16,
            rules: HealthRules::default(),
            alert_rules: AlertRules::default(),
            retention: Retention::default(),
            compact_every_secs: 600,
            loop_every: std::time::Duration::from_secs(1),
            act: true,
            webhook: None,
        }
    }
}

/// Where a probe key comes from (the router's keys in the runtime, the keychain in the CLI).
pub type KeyLookup = Arc<dyn Fn(AccountId) -> Option<Secret> + Send + Sync>;

/// The last probe of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub latency_ms: u32,
    /// `invalid_key`, `no_permission`, `quota_exhausted`, `unreachable`, `timeout`.
    pub error_class: Option<String>,
    /// The provider's message (never the key).
    pub message: String,
}

#[derive(Debug, Default)]
struct AccountState {
    window: AccountWindow,
    next_probe: Option<DateTime<Utc>>,
    last_probe: Option<ProbeResult>,
    /// The monitor opened this account's router breaker.
    forced_open: bool,
    /// Fleet mode: the probe leader (another instance) says it is down.
    remote_down: bool,
    /// The minute (Unix minutes) of the live outcomes being kept for history,
    /// and how many of them were kept.
    traffic_minute: i64,
    traffic_kept: u32,
}

/// Live request outcomes written to the health history, per account and
/// minute (the first ones of each minute): enough for the charts to show what
/// traffic saw between probes, bounded under any load.
pub const TRAFFIC_SAMPLES_PER_MINUTE: u32 = 6;

/// What the monitor probes and how strictly: the enabled accounts with a key,
/// and which of them (and which suppliers) have a wedding today, in each
/// supplier's own time zone. Re-read from the store when its catalog version
/// moves or any supplier's local day changes.
#[derive(Debug, Default)]
struct ProbeTargets {
    version: i64,
    /// The next local midnight of any supplier (UTC midnight without suppliers).
    valid_until: Option<DateTime<Utc>>,
    accounts: Vec<ProviderAccount>,
    wedding_accounts: HashSet<AccountId>,
    wedding_suppliers: HashSet<SupplierId>,
}

/// One account's health, as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountHealth {
    pub account: AccountId,
    pub label: String,
    pub provider: ProviderKind,
    pub owner: AccountOwner,
    pub verdict: Verdict,
    /// Serves a supplier with a wedding today: judged with the wedding-day thresholds.
    pub wedding_day: bool,
    pub thresholds: Thresholds,
    pub window: WindowStats,
    pub last_probe: Option<ProbeResult>,
    pub uptime_1h: Option<f64>,
    pub uptime_24h: Option<f64>,
    pub uptime_30d: Option<f64>,
    /// Router breaker: `closed`, `open`, `half_open`, or `none` without a router.
    pub breaker: String,
    pub has_key: bool,
    pub taken_out_by_monitor: bool,
}

/// Everything the health view shows.
#[derive(Debug, Clone, Serialize)]
pub struct HealthSnapshot {
    pub at: DateTime<Utc>,
    pub probe_interval_secs: i64,
    pub accounts: Vec<AccountHealth>,
    pub open_alerts: Vec<Alert>,
}

/// A verdict change seen by a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub account: AccountId,
    pub from: Verdict,
    pub to: Verdict,
}

/// What one tick did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    pub at: Option<DateTime<Utc>>,
    pub probed: Vec<AccountId>,
    pub passive_samples: usize,
    pub transitions: Vec<Transition>,
    pub compaction: Option<CompactionReport>,
}

/// Sizes of the monitor's in-memory state (for the memory benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MemoryFootprint {
    pub accounts: usize,
    pub retained_samples: usize,
    pub window_bytes: usize,
    pub pending_rows: usize,
}

pub struct HealthMonitor {
    store: Arc<Store>,
    router: Option<Arc<Router>>,
    providers: Providers,
    clock: Arc<dyn Clock>,
    cfg: MonitorConfig,
    keys: KeyLookup,
    alerts: Arc<AlertService>,
    state: Mutex<HashMap<AccountId, AccountState>>,
    targets: Mutex<Arc<ProbeTargets>>,
    outcomes: Option<Mutex<tokio::sync::broadcast::Receiver<AttemptOutcome>>>,
    events: Option<Mutex<tokio::sync::broadcast::Receiver<RouterEvent>>>,
    pending: Mutex<Vec<HealthSampleRow>>,
    last_compaction: Mutex<Option<DateTime<Utc>>>,
    /// Key pools' alerts (low headroom, budgets).
    pool_watch: crate::engine::pool_alerts::PoolWatch,
    /// Fleet mode: who probes, who raises alerts, where verdicts go.
    fleet: Mutex<Option<FleetHealth>>,
    /// Fleet mode: when the probe leader last published every down verdict.
    last_publish_all: Mutex<Option<DateTime<Utc>>>,
}

/// A predicate asked at the moment of acting ("do I lead this duty now?").
pub type DutyGate = Arc<dyn Fn() -> bool + Send + Sync>;

/// The monitor as one instance of several on one PostgreSQL (issue 25):
/// only the probe leader probes, and it publishes its verdicts (on every
/// change, and every down verdict once per probe interval, so that an
/// instance started meanwhile learns them); every instance applies the
/// verdicts it receives to its breakers ([`HealthMonitor::apply_remote_verdict`])
/// and still feeds its own live outcomes to its breakers and the shared
/// history. Only the alert leader raises alerts, writes the transitions'
/// audit rows and compacts the history, so each happens once.
#[derive(Clone)]
pub struct FleetHealth {
    pub probes: DutyGate,
    pub alerts: DutyGate,
    /// Publishes the probe leader's verdict on an account.
    pub publish: Arc<dyn Fn(i64, Verdict) + Send + Sync>,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor").field("cfg", &self.cfg).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

impl HealthMonitor {
    /// A monitor wired to the router (passive health, breakers, router events),
    /// probing with the router's keys.
    pub fn for_router(router: Arc<Router>, providers: Providers, cfg: MonitorConfig) -> Arc<HealthMonitor> {
        let r = router.clone();
        let keys: KeyLookup = Arc::new(move |id| r.key(id));
        Self::build(router.store().clone(), Some(router.clone()), providers, router.clock().clone(), keys, cfg)
    }

    /// A monitor without a router (the CLI's one-off probe round), probing with `keys`.
    pub fn standalone(store: Arc<Store>, providers: Providers, clock: Arc<dyn Clock>, keys: KeyLookup, cfg: MonitorConfig) -> Arc<Self> {
        Self::build(store, None, providers, clock, keys, cfg)
    }

    fn build(
        store: Arc<Store>,
        router: Option<Arc<Router>>,
        providers: Providers,
        clock: Arc<dyn Clock>,
        keys: KeyLookup,
        cfg: MonitorConfig,
    ) -> Arc<Self> {
        let alerts = Arc::new(AlertService::new(store.clone(), clock.clone(), cfg.alert_rules, cfg.webhook.clone()));
        Arc::new(HealthMonitor {
            outcomes: router.as_ref().map(|r| Mutex::new(r.subscribe_outcomes())),
            events: router.as_ref().map(|r| Mutex::new(r.subscribe_events())),
            store,
            router,
            providers,
            clock,
            cfg,
            keys,
            alerts,
            state: Mutex::new(HashMap::new()),
            targets: Mutex::new(Arc::new(ProbeTargets { version: -1, ..ProbeTargets::default() })),
            pending: Mutex::new(Vec::new()),
            last_compaction: Mutex::new(None),
            pool_watch: Default::default(),
            fleet: Mutex::new(None),
            last_publish_all: Mutex::new(None),
        })
    }

    /// Runs this monitor as one instance of a fleet (see [`FleetHealth`]).
    pub fn set_fleet(&self, fleet: FleetHealth) {
        *lock(&self.fleet) = Some(fleet);
    }

    fn fleet(&self) -> Option<FleetHealth> {
        lock(&self.fleet).clone()
    }

    /// A verdict of the fleet's probe leader: a down account's breaker is
    /// opened here too (and closed again when the leader sees it up, unless
    /// this instance's own live traffic still finds it down).
    pub fn apply_remote_verdict(&self, account: AccountId, verdict: Verdict) {
        let open = {
            let mut st = lock(&self.state);
            let s = st.entry(account).or_default();
            s.remote_down = verdict == Verdict::Down;
            let open = s.remote_down || s.window.verdict() == Verdict::Down;
            if open == s.forced_open {
                return;
            }
            s.forced_open = open;
            open
        };
        tracing::info!(account = account.0, verdict = %verdict, "the probe leader's verdict applied");
        if let Some(router) = &self.router {
            router.force_breaker(account, open);
        }
    }

    /// Forgets every remote verdict (after notifications may have been
    /// missed); the probe leader publishes its down verdicts again within one
    /// probe interval.
    pub fn clear_remote_verdicts(&self) {
        let mut st = lock(&self.state);
        for s in st.values_mut() {
            s.remote_down = false;
        }
    }

    pub fn alerts(&self) -> &Arc<AlertService> {
        &self.alerts
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.cfg
    }

    /// Runs `tick` forever every `loop_every` (spawn it; abort the task to stop).
    /// Between ticks, live outcomes are taken in every 100 ms, so that heavy
    /// traffic (thousands of requests a second) does not overflow the router's
    /// outcome channel before the next tick.
    pub async fn run(self: Arc<Self>) {
        // The drain runs on its own task: a tick can wait seconds on probes.
        let me = self.clone();
        let _drainer = AbortOnDrop(tokio::spawn(async move {
            let mut drain = tokio::time::interval(std::time::Duration::from_millis(100));
            drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                drain.tick().await;
                me.drain_outcomes();
            }
        }));
        let mut t = tokio::time::interval(self.cfg.loop_every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            self.tick().await;
        }
    }

    /// One step at the clock's now: takes in live outcomes and router events,
    /// probes the accounts that are due, judges every account, acts on changes
    /// (breakers, alerts), writes samples and compacts history when due.
    pub async fn tick(self: &Arc<Self>) -> TickReport {
        let now = self.clock.now();
        self.refresh_targets(now).await;
        let cat = self.probe_targets_now();
        let probing = self.fleet().is_none_or(|f| (f.probes)());
        let due: Vec<ProviderAccount> = if !probing {
            Vec::new()
        } else {
            let mut st = lock(&self.state);
            let known: HashSet<AccountId> = cat.accounts.iter().map(|a| a.id).collect();
            st.retain(|id, _| known.contains(id));
            cat.accounts
                .iter()
                .filter(|a| {
                    let s = st.entry(a.id).or_default();
                    let next = *s.next_probe.get_or_insert_with(|| now + self.phase(a.id));
                    next <= now
                })
                .cloned()
                .collect()
        };
        self.probe_accounts(due, now, false).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "health tick failed");
            TickReport { at: Some(now), ..TickReport::default() }
        })
    }

    /// Probes every enabled account now (whatever its schedule) and judges it.
    pub async fn probe_all(self: &Arc<Self>) -> StoreResult<TickReport> {
        let now = self.clock.now();
        self.refresh_targets(now).await;
        let cat = self.probe_targets_now();
        self.probe_accounts(cat.accounts.clone(), now, true).await
    }

    fn phase(&self, id: AccountId) -> Duration {
        if !self.cfg.jitter {
            return Duration::zero();
        }
        // SplitMix64 of the id: a stable phase in [0, interval).
        let mut z = (id.0 as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let ms = self.cfg.probe_interval_secs.max(1) as u64 * 1000;
        Duration::milliseconds((z % ms) as i64)
    }

    fn probe_targets_now(&self) -> Arc<ProbeTargets> {
        lock(&self.targets).clone()
    }

    async fn refresh_targets(&self, now: DateTime<Utc>) {
        let cur = self.probe_targets_now();
        let store = self.store.clone();
        let res = tokio::task::spawn_blocking(move || -> StoreResult<Option<ProbeTargets>> {
            let version = store.catalog_version()?;
            if version == cur.version && cur.valid_until.is_some_and(|until| now < until) {
                return Ok(None);
            }
            let accounts: Vec<ProviderAccount> = store.list_accounts(None)?.into_iter().filter(|a| a.enabled).collect();
            let suppliers = store.list_suppliers(&Default::default())?;
            let wedding_suppliers: HashSet<SupplierId> = suppliers.iter().filter(|s| s.is_wedding_day(now)).map(|s| s.id).collect();
            let platform_wedding =
                suppliers.iter().any(|s| s.is_wedding_day(now) && (s.ai_mode == AiMode::Platform || s.allow_platform_failover));
            let valid_until = suppliers
                .iter()
                .map(|s| crate::domain::calendar::local_day_range(s.local_date(now), s.time_zone).1)
                .min()
                .unwrap_or_else(|| crate::domain::calendar::next_day_start(now.date_naive()));
            let wedding_accounts = accounts
                .iter()
                .filter(|a| match a.owner {
                    AccountOwner::Platform => platform_wedding,
                    AccountOwner::Supplier(s) => wedding_suppliers.contains(&s),
                })
                .map(|a| a.id)
                .collect();
            Ok(Some(ProbeTargets { version, valid_until: Some(valid_until), accounts, wedding_accounts, wedding_suppliers }))
        })
        .await;
        match res {
            Ok(Ok(Some(c))) => *lock(&self.targets) = Arc::new(c),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "health monitor cannot read its probe targets"),
            Err(e) => tracing::warn!(error = %e, "health monitor probe-target task failed"),
        }
    }

    async fn probe_one(&self, a: ProviderAccount, now: DateTime<Utc>) -> Option<(AccountId, ProbeResult)> {
        let key = (self.keys)(a.id)?;
        let target = ProviderTarget::from_account(&a, key).with_timeout(self.cfg.probe_timeout);
        let started = std::time::Instant::now();
        let res =
            tokio::time::timeout(self.cfg.probe_timeout + std::time::Duration::from_millis(500), self.providers.validate_key(&target))
                .await;
        let latency_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
        let (ok, error_class, message) = match res {
            // A rate-limited answer still proves the provider is up and the key works.
            Ok((ValidationStatus::Valid | ValidationStatus::RateLimited, m)) => (true, None, m),
            Ok((status, m)) => (false, Some(status.as_str().to_string()), m),
            Err(_) => (false, Some("timeout".to_string()), format!("no answer within {:?}", self.cfg.probe_timeout)),
        };
        Some((a.id, ProbeResult { at: now, ok, latency_ms, error_class, message }))
    }

    async fn probe_accounts(self: &Arc<Self>, due: Vec<ProviderAccount>, now: DateTime<Utc>, all: bool) -> StoreResult<TickReport> {
        let mut report = TickReport { at: Some(now), ..TickReport::default() };
        // Schedule the next probe first, so a slow probe is never fired twice.
        {
            let interval = Duration::seconds(self.cfg.probe_interval_secs.max(1));
            let mut st = lock(&self.state);
            for a in &due {
                let s = st.entry(a.id).or_default();
                let prev = s.next_probe.unwrap_or(now);
                let next = if all || prev > now {
                    now + interval
                } else {
                    let k = (now - prev).num_milliseconds() / interval.num_milliseconds() + 1;
                    prev + interval * k as i32
                };
                s.next_probe = Some(next);
            }
        }
        let results: Vec<(AccountId, ProbeResult)> = futures::stream::iter(due.into_iter().map(|a| self.probe_one(a, now)))
            .buffer_unordered(self.cfg.max_concurrent_probes.max(1))
            .filter_map(|r| async move { r })
            .collect()
            .await;
        report.passive_samples = self.drain_outcomes();
        let events = self.drain_events();
        let cat = self.probe_targets_now();
        let mut actions: Vec<(AccountId, Verdict, Option<String>)> = Vec::new();
        let mut breakers: Vec<(AccountId, bool)> = Vec::new();
        {
            let mut st = lock(&self.state);
            let mut pending = lock(&self.pending);
            for (id, p) in results {
                let s = st.entry(id).or_default();
                s.window.push(Sample { at: p.at, ok: p.ok, latency_ms: p.latency_ms, source: SampleSource::Probe }, &self.cfg.rules);
                pending.push(HealthSampleRow {
                    account: id,
                    at: p.at,
                    ok: p.ok,
                    latency_ms: p.latency_ms,
                    error_class: p.error_class.clone(),
                    source: SampleSource::Probe,
                });
                s.last_probe = Some(p);
                report.probed.push(id);
            }
            for a in &cat.accounts {
                let s = st.entry(a.id).or_default();
                let (from, to) = s.window.evaluate(now, &self.cfg.rules, cat.wedding_accounts.contains(&a.id));
                if from != to {
                    report.transitions.push(Transition { account: a.id, from, to });
                    tracing::info!(account = a.id.0, from = %from, to = %to, "provider health changed");
                }
                if !self.cfg.act {
                    continue;
                }
                let down = to == Verdict::Down || s.remote_down;
                if down && !s.forced_open {
                    s.forced_open = true;
                    breakers.push((a.id, true));
                } else if !down && s.forced_open {
                    s.forced_open = false;
                    breakers.push((a.id, false));
                }
                let key_class = s
                    .last_probe
                    .as_ref()
                    .and_then(|p| p.error_class.clone())
                    .filter(|c| c == "invalid_key" || c == "no_permission")
                    .map(|_| s.last_probe.as_ref().map(|p| p.message.clone()).unwrap_or_default());
                actions.push((a.id, to, key_class));
            }
        }
        if let Some(router) = &self.router {
            for (id, open) in breakers {
                router.force_breaker(id, open);
            }
        }
        let fleet = self.fleet();
        if let Some(f) = fleet.as_ref().filter(|f| (f.probes)()) {
            self.publish_verdicts(f, &report.transitions, now);
        }
        // In a fleet, one instance raises alerts and compacts the shared history.
        let alerting = fleet.as_ref().is_none_or(|f| (f.alerts)());
        let me = self.clone();
        let compact_due = alerting && {
            let last = *lock(&self.last_compaction);
            last.is_none_or(|l| now - l >= Duration::seconds(self.cfg.compact_every_secs))
        };
        let transitions = report.transitions.clone();
        let res = tokio::task::spawn_blocking(move || -> StoreResult<Option<CompactionReport>> {
            let rows = std::mem::take(&mut *lock(&me.pending));
            if let Err(e) = me.store.insert_health_samples(&rows) {
                // Keep them for the next tick (bounded: drop the oldest beyond a cap).
                let mut p = lock(&me.pending);
                let mut rows = rows;
                rows.append(&mut p);
                let cap = 100_000;
                if rows.len() > cap {
                    rows.drain(..rows.len() - cap);
                }
                *p = rows;
                return Err(e);
            }
            if me.cfg.act && alerting {
                for t in transitions.iter().filter(|t| t.to == Verdict::Down || t.from == Verdict::Down) {
                    let (action, what) = if t.to == Verdict::Down {
                        ("health.down", "probes see it down: taken out of routing")
                    } else {
                        ("health.up", "probes see it working again: back in routing")
                    };
                    let a = cat.accounts.iter().find(|a| a.id == t.account);
                    let supplier = a.and_then(|a| a.owner.supplier());
                    let name = a
                        .map(|a| format!("{} ({}, account {})", a.label, a.provider.display_name(), t.account.0))
                        .unwrap_or_else(|| format!("account {}", t.account.0));
                    me.store.audit(now, "runtime", action, supplier, Some(t.account), "ok", &format!("{name}: {what}"))?;
                }
                me.apply_alerts(&cat, &actions, &events)?;
            }
            if compact_due {
                *lock(&me.last_compaction) = Some(now);
                return me.store.compact_health(now, &me.cfg.retention).map(Some);
            }
            Ok(None)
        })
        .await;
        match res {
            Ok(Ok(c)) => report.compaction = c,
            Ok(Err(e)) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "health store task failed"),
        }
        Ok(report)
    }

    /// The probe leader's verdicts: every change, and every down account
    /// again once per probe interval.
    fn publish_verdicts(&self, f: &FleetHealth, transitions: &[Transition], now: DateTime<Utc>) {
        for t in transitions {
            (f.publish)(t.account.0, t.to);
        }
        let all_due = {
            let mut last = lock(&self.last_publish_all);
            let due = last.is_none_or(|l| now - l >= Duration::seconds(self.cfg.probe_interval_secs.max(1)));
            if due {
                *last = Some(now);
            }
            due
        };
        if all_due {
            let down: Vec<AccountId> =
                lock(&self.state).iter().filter(|(_, s)| s.window.verdict() == Verdict::Down).map(|(id, _)| *id).collect();
            for id in down {
                (f.publish)(id.0, Verdict::Down);
            }
        }
    }

    fn drain_outcomes(&self) -> usize {
        let Some(rx) = &self.outcomes else { return 0 };
        let mut rx = lock(rx);
        let mut st = lock(&self.state);
        let mut n = 0;
        let mut kept = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(o) => {
                    if let Some(s) = st.get_mut(&o.account) {
                        s.window
                            .push(Sample { at: o.at, ok: o.ok, latency_ms: o.latency_ms, source: SampleSource::Traffic }, &self.cfg.rules);
                        n += 1;
                        // History: answers, and the failures that count against health.
                        if o.ok || o.counts_against_health {
                            let minute = o.at.timestamp().div_euclid(60);
                            if s.traffic_minute != minute {
                                s.traffic_minute = minute;
                                s.traffic_kept = 0;
                            }
                            if s.traffic_kept < TRAFFIC_SAMPLES_PER_MINUTE {
                                s.traffic_kept += 1;
                                kept.push(HealthSampleRow {
                                    account: o.account,
                                    at: o.at,
                                    ok: o.ok,
                                    latency_ms: o.latency_ms,
                                    error_class: o.error_class.map(str::to_string),
                                    source: SampleSource::Traffic,
                                });
                            }
                        }
                    }
                }
                Err(TryRecvError::Lagged(k)) => {
                    tracing::warn!(missed = k, "health monitor fell behind live traffic; some outcomes skipped")
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if !kept.is_empty() {
            // Written with the next tick's probe results.
            lock(&self.pending).append(&mut kept);
        }
        n
    }

    fn drain_events(&self) -> Vec<RouterEvent> {
        let Some(rx) = &self.events else { return Vec::new() };
        let mut rx = lock(rx);
        let mut v = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(e) => v.push(e),
                Err(TryRecvError::Lagged(k)) => tracing::warn!(missed = k, "health monitor missed router events"),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        v
    }

    fn apply_alerts(
        &self,
        cat: &ProbeTargets,
        actions: &[(AccountId, Verdict, Option<String>)],
        events: &[RouterEvent],
    ) -> StoreResult<()> {
        let label: HashMap<AccountId, &ProviderAccount> = cat.accounts.iter().map(|a| (a.id, a)).collect();
        for (id, verdict, key_problem) in actions {
            let wedding = cat.wedding_accounts.contains(id);
            let t = self.cfg.rules.thresholds(wedding);
            self.alerts.on_verdict(*id, label.get(id).copied(), *verdict, key_problem.as_deref(), wedding, t)?;
        }
        for ev in events {
            let supplier = match ev {
                RouterEvent::QuotaWarning { supplier, .. }
                | RouterEvent::QuotaExceeded { supplier, .. }
                | RouterEvent::FailoverStarted { supplier, .. }
                | RouterEvent::FailoverEnded { supplier } => Some(*supplier),
                _ => None,
            };
            let wedding = supplier.is_some_and(|s| cat.wedding_suppliers.contains(&s));
            self.alerts.on_router_event(ev, wedding)?;
        }
        if let Some(router) = &self.router {
            self.pool_watch.tick(router, &self.alerts, self.clock.now())?;
        }
        self.alerts.tick(|a| {
            a.supplier_id.is_some_and(|s| cat.wedding_suppliers.contains(&s))
                || a.account_id.is_some_and(|x| cat.wedding_accounts.contains(&x))
        })?;
        Ok(())
    }

    /// The verdict of one account as of the last tick.
    pub fn verdict(&self, account: AccountId) -> Verdict {
        lock(&self.state).get(&account).map(|s| s.window.verdict()).unwrap_or(Verdict::Unknown)
    }

    /// Uptime percent of an account over the last `span`, from the history
    /// (the window start is aligned to a history bucket, so compaction never changes it).
    pub fn uptime(&self, account: AccountId, span: Duration) -> StoreResult<Option<f64>> {
        let now = self.clock.now();
        let r = &self.cfg.retention;
        let bucket = if span > Duration::seconds(r.fine_keep_secs) - Duration::days(1) { r.coarse_bucket_secs } else { r.fine_bucket_secs };
        let from = DateTime::from_timestamp_millis(bucket_start((now - span).timestamp_millis(), bucket)).unwrap_or(now - span);
        Ok(self.store.health_counts(account, from, now + Duration::milliseconds(1))?.uptime_percent())
    }

    /// Latency and error series of an account for a chart.
    pub fn series(&self, account: AccountId, range: ChartRange) -> StoreResult<Vec<SeriesPoint>> {
        let now = self.clock.now();
        let (span, bucket) = range.span_and_bucket();
        let from = DateTime::from_timestamp_millis(bucket_start((now - span).timestamp_millis(), bucket)).unwrap_or(now - span);
        self.store.health_series(account, from, now + Duration::milliseconds(1), bucket)
    }

    /// The health view (reads the database: call it off the UI thread, e.g. with `spawn_blocking`).
    pub fn snapshot(&self) -> StoreResult<HealthSnapshot> {
        let now = self.clock.now();
        let cat = self.probe_targets_now();
        let breakers: HashMap<AccountId, String> = self
            .router
            .as_ref()
            .map(|r| r.breaker_states().into_iter().map(|(a, b)| (a.id, b.name().to_string())).collect())
            .unwrap_or_default();
        let rows: Vec<(ProviderAccount, Verdict, WindowStats, Option<ProbeResult>, bool)> = {
            let st = lock(&self.state);
            cat.accounts
                .iter()
                .map(|a| match st.get(&a.id) {
                    Some(s) => (a.clone(), s.window.verdict(), s.window.stats(), s.last_probe.clone(), s.forced_open),
                    None => (a.clone(), Verdict::Unknown, WindowStats::default(), None, false),
                })
                .collect()
        };
        let mut accounts = Vec::with_capacity(rows.len());
        for (a, verdict, window, last_probe, forced) in rows {
            let wedding_day = cat.wedding_accounts.contains(&a.id);
            accounts.push(AccountHealth {
                account: a.id,
                label: a.label.clone(),
                provider: a.provider,
                owner: a.owner,
                verdict,
                wedding_day,
                thresholds: self.cfg.rules.thresholds(wedding_day),
                window,
                last_probe,
                uptime_1h: self.uptime(a.id, Duration::hours(1))?,
                uptime_24h: self.uptime(a.id, Duration::hours(24))?,
                uptime_30d: self.uptime(a.id, Duration::days(30))?,
                breaker: breakers.get(&a.id).cloned().unwrap_or_else(|| "none".into()),
                has_key: (self.keys)(a.id).is_some(),
                taken_out_by_monitor: forced,
            });
        }
        Ok(HealthSnapshot { at: now, probe_interval_secs: self.cfg.probe_interval_secs, accounts, open_alerts: self.alerts.list(true)? })
    }

    /// Sizes of the in-memory state.
    pub fn memory_footprint(&self) -> MemoryFootprint {
        let st = lock(&self.state);
        MemoryFootprint {
            accounts: st.len(),
            retained_samples: st.values().map(|s| s.window.len()).sum(),
            window_bytes: st.values().map(|s| s.window.heap_bytes() + std::mem::size_of::<AccountState>()).sum(),
            pending_rows: lock(&self.pending).len(),
        }
    }
}

/// Aborts a task when dropped (so the drain task ends with the monitor's task).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
