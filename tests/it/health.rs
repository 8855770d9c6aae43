//! Provider health end to end: a real SQLite file, the provider simulator over
//! loopback HTTP, the router, and the health monitor driven tick by tick with a
//! manual clock (no test waits for minutes of real time).

use crate::support::{fast_providers, june, sim_account};
use chrono::{Duration, NaiveDate};
use std::sync::Arc;
use switchboard::domain::Secret;
use switchboard::domain::health::{AccountWindow, AlertKind, HealthRules, Retention, Sample, SampleSource, Severity, Thresholds, Verdict};
use switchboard::domain::{
    AccountId, AccountOwner, AiMode, Clock, ManualClock, NewSupplier, PricingTable, ProviderKind, Route, SupplierId, Tier, VendorType,
};
use switchboard::engine::alerts::keys;
use switchboard::engine::gateway_tokens as tokens;
use switchboard::engine::health::{HealthMonitor, MonitorConfig};
use switchboard::engine::ledger::Ledger;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::providers::{ChatRequest, Providers};
use switchboard::sim::{DEMO_CLIENT_OPENAI_KEY, DEMO_OPENAI_KEY, Latency, SimAccountConfig, SimConfig, SimHandle, Simulator};
use switchboard::store::{HealthSampleRow, Store};

const CLIENT2_KEY: &str = "sk-sim-openai-client-000000000002";

fn today() -> NaiveDate {
    june().date_naive()
}

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    sim: SimHandle,
    router: Arc<Router>,
    clock: ManualClock,
    providers: Providers,
    platform: AccountId,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("health.db")).unwrap());
    let mut sim_cfg = SimConfig::demo();
    sim_cfg.accounts.push(SimAccountConfig::new("openai-client-2", ProviderKind::OpenAi, CLIENT2_KEY));
    let sim = Simulator::start(sim_cfg).await.unwrap();
    let clock = ManualClock::new(june());
    let platform = sim_account(&store, AccountOwner::Platform, ProviderKind::OpenAi, "WedSync OpenAI", "gpt-4o-mini", sim.base_url());
    let providers = fast_providers(1);
    let ledger = Ledger::start(&store).unwrap();
    let router = Router::new(
        store.clone(),
        providers.clone(),
        Arc::new(PricingTable::builtin()),
        Arc::new(clock.clone()),
        ledger,
        RouterConfig::default(),
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    router.set_key(platform, Some(Secret::new(DEMO_OPENAI_KEY)));
    Env { _dir: dir, store, sim, router, clock, providers, platform }
}

impl Env {
    fn supplier(&self, name: &str, mode: AiMode, weddings: &[NaiveDate], failover: bool) -> SupplierId {
        let mut n = NewSupplier::new(name, VendorType::Venue, Tier::Professional, mode);
        n.weddings = weddings.to_vec();
        n.allow_platform_failover = failover;
        self.store.insert_supplier(&n, june()).unwrap().id
    }

    fn client_account(&self, supplier: SupplierId, label: &str, key: &str) -> AccountId {
        let id =
            sim_account(&self.store, AccountOwner::Supplier(supplier), ProviderKind::OpenAi, label, "gpt-4o-mini", self.sim.base_url());
        self.router.set_key(id, Some(Secret::new(key)));
        self.router.reload().unwrap();
        id
    }

    fn token(&self, supplier: SupplierId) -> String {
        let t = tokens::issue(&self.store, supplier, june(), "test").unwrap();
        self.router.reload().unwrap();
        t.token.expose().to_string()
    }

    fn monitor(&self, cfg: MonitorConfig) -> Arc<HealthMonitor> {
        HealthMonitor::for_router(self.router.clone(), self.providers.clone(), cfg)
    }

    async fn chat_route(&self, token: &str) -> Route {
        let req: ChatRequest = serde_json::from_value(
            serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}),
        )
        .unwrap();
        self.router.chat(Some(token), None, None, req).await.unwrap().route
    }

    fn breaker(&self, id: AccountId) -> String {
        self.router.breaker_states().into_iter().find(|(a, _)| a.id == id).map(|(_, b)| b.name().to_string()).unwrap()
    }

    fn alerts_for(&self, condition: &str) -> Vec<switchboard::store::Alert> {
        self.store.list_alerts(false, 1000).unwrap().into_iter().filter(|a| a.condition_key == condition).collect()
    }
}

fn fast_cfg() -> MonitorConfig {
    MonitorConfig { probe_timeout: std::time::Duration::from_secs(5), ..MonitorConfig::default() }
}

#[tokio::test]
async fn outage_is_noticed_within_one_interval_fails_over_and_traffic_returns_by_itself() {
    let e = env().await;
    let venue = e.supplier("Old Barn Venue", AiMode::Client, &[], true);
    let client = e.client_account(venue, "Venue OpenAI", DEMO_CLIENT_OPENAI_KEY);
    let token = e.token(venue);
    let m = e.monitor(fast_cfg()); // jittered phases, 30 s interval
    // Warm up: within one interval every account has been probed once.
    for _ in 0..=6 {
        m.tick().await;
        e.clock.advance(Duration::seconds(5));
    }
    assert_eq!(m.verdict(client), Verdict::Healthy);
    assert_eq!(m.verdict(e.platform), Verdict::Healthy);
    assert_eq!(e.chat_route(&token).await, Route::Client);

    // The venue's provider goes down.
    e.sim.set_outage("openai-client", true);
    let outage_at = e.clock.now();
    let mut noticed = None;
    for _ in 0..=30 {
        e.clock.advance(Duration::seconds(1));
        m.tick().await;
        if m.verdict(client) == Verdict::Down {
            noticed = Some(e.clock.now() - outage_at);
            break;
        }
    }
    let noticed = noticed.expect("outage not noticed within 30 s");
    assert!(noticed <= Duration::seconds(30), "noticed after {noticed}");
    assert_eq!(e.breaker(client), "open", "the monitor takes the account out of routing");
    assert_eq!(m.verdict(e.platform), Verdict::Healthy, "only the failing account is down");
    // Requests fail over to platform AI without an error.
    assert_eq!(e.chat_route(&token).await, Route::Failover);
    m.tick().await; // takes in the router's failover event
    let down = e.alerts_for(&keys::down(client));
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].kind, AlertKind::ProviderDown);
    assert_eq!(down[0].severity, Severity::Warning, "one supplier's own account down: a warning");
    assert!(down[0].is_open());
    assert!(down[0].incident_id.is_some(), "in the account's incident");
    assert!(e.alerts_for(&keys::failover(venue)).is_empty(), "a failover shorter than a minute raises no alert");
    let audit =
        e.store.audit_entries(&switchboard::store::AuditFilter { action_prefix: Some("health.".into()), ..Default::default() }).unwrap();
    assert!(audit.iter().any(|a| a.action == "health.down" && a.account_id == Some(client)), "{audit:?}");

    // It recovers: the next probe (≤ 30 s) sees it, the breaker closes, traffic goes back.
    e.sim.set_outage("openai-client", false);
    let back_at = e.clock.now();
    for _ in 0..=30 {
        e.clock.advance(Duration::seconds(1));
        m.tick().await;
        if m.verdict(client) != Verdict::Down {
            break;
        }
    }
    assert_eq!(m.verdict(client), Verdict::Healthy);
    assert!(e.clock.now() - back_at <= Duration::seconds(30));
    assert_eq!(e.breaker(client), "closed");
    assert_eq!(e.chat_route(&token).await, Route::Client);
    m.tick().await;
    assert!(e.alerts_for(&keys::failover_ended(venue)).is_empty(), "no alert for things being fine");
    // The down alert resolves once the condition stayed clear (2 min by default).
    for _ in 0..6 {
        e.clock.advance(Duration::seconds(30));
        m.tick().await;
    }
    let down = e.alerts_for(&keys::down(client));
    assert_eq!(down.len(), 1);
    assert!(!down[0].is_open(), "resolved automatically: {down:?}");
    let incident = e.store.find_incident(down[0].incident_id.unwrap()).unwrap().unwrap();
    assert!(incident.resolved_at.is_some(), "the incident closed with its last alert: {incident:?}");
    // The snapshot shows it all.
    let snap = m.snapshot().unwrap();
    let row = snap.accounts.iter().find(|a| a.account == client).unwrap();
    assert_eq!(row.verdict, Verdict::Healthy);
    assert_eq!(row.breaker, "closed");
    let up = row.uptime_1h.unwrap();
    assert!(up > 50.0 && up < 100.0, "uptime over the hour counts the failed probes: {up}");
    assert!(serde_json::to_string(&snap).is_ok());
}

#[tokio::test]
async fn unacknowledged_alert_escalates_after_15_minutes_and_acknowledged_one_does_not() {
    let e = env().await;
    let s1 = e.supplier("Slow Studio", AiMode::Client, &[], true);
    let s2 = e.supplier("Slow Florist", AiMode::Client, &[], true);
    let a1 = e.client_account(s1, "Studio OpenAI", DEMO_CLIENT_OPENAI_KEY);
    let a2 = e.client_account(s2, "Florist OpenAI", CLIENT2_KEY);
    for name in ["openai-client", "openai-client-2"] {
        e.sim.update_faults(name, |f| f.latency = Latency { median_ms: 150, sigma: 0.0, min_ms: 150 });
    }
    let mut cfg = fast_cfg();
    cfg.jitter = false;
    cfg.rules.normal = Thresholds { max_latency_ms: 100, max_error_percent: 5.0 };
    let m = e.monitor(cfg);
    m.tick().await;
    assert_eq!(m.verdict(a1), Verdict::Degraded);
    assert_eq!(m.verdict(a2), Verdict::Degraded);
    let d1 = e.alerts_for(&keys::degraded(a1)).remove(0);
    let d2 = e.alerts_for(&keys::degraded(a2)).remove(0);
    assert_eq!((d1.severity, d2.severity), (Severity::Warning, Severity::Warning));
    m.alerts().acknowledge(d2.id).unwrap();
    for minute in 1..=15 {
        e.clock.advance(Duration::seconds(60));
        m.tick().await;
        let d1 = e.store.find_alert(d1.id).unwrap().unwrap();
        if minute < 15 {
            assert_eq!(d1.severity, Severity::Warning, "minute {minute}");
        } else {
            assert_eq!(d1.severity, Severity::Critical, "escalated after 15 minutes");
            assert!(d1.escalated_at.is_some());
        }
    }
    let d2 = e.store.find_alert(d2.id).unwrap().unwrap();
    assert_eq!(d2.severity, Severity::Warning, "acknowledged alerts do not escalate");
    assert_eq!(e.alerts_for(&keys::degraded(a1)).len(), 1, "still one alert for the condition");
}

#[tokio::test]
async fn wedding_day_thresholds_apply_only_to_accounts_serving_a_wedding_today() {
    let e = env().await;
    let bride = e.supplier("Wedding Today Photo", AiMode::Client, &[today()], false);
    let other = e.supplier("Quiet Planner", AiMode::Client, &[today() + Duration::days(3)], false);
    let a_bride = e.client_account(bride, "Photo OpenAI", DEMO_CLIENT_OPENAI_KEY);
    let a_other = e.client_account(other, "Planner OpenAI", CLIENT2_KEY);
    for name in ["openai-client", "openai-client-2"] {
        e.sim.update_faults(name, |f| f.latency = Latency { median_ms: 150, sigma: 0.0, min_ms: 150 });
    }
    let mut cfg = fast_cfg();
    cfg.rules.normal = Thresholds { max_latency_ms: 1_000, max_error_percent: 5.0 };
    cfg.rules.wedding_day = Thresholds { max_latency_ms: 100, max_error_percent: 2.0 };
    let m = e.monitor(cfg);
    m.probe_all().await.unwrap();
    assert_eq!(m.verdict(a_bride), Verdict::Degraded, "150 ms is too slow on a wedding day");
    assert_eq!(m.verdict(a_other), Verdict::Healthy, "same latency, no wedding today");
    assert_eq!(m.verdict(e.platform), Verdict::Healthy);
    let snap = m.snapshot().unwrap();
    let row = |id| snap.accounts.iter().find(|a| a.account == id).unwrap().clone();
    assert!(row(a_bride).wedding_day);
    assert_eq!(row(a_bride).thresholds.max_latency_ms, 100);
    assert!(!row(a_other).wedding_day);
    assert!(!row(e.platform).wedding_day, "no platform supplier has a wedding today");
    assert!(row(a_bride).window.p95_ms.unwrap() >= 150);
    // Alerts about a wedding-day supplier are raised one level higher.
    let alert = e.alerts_for(&keys::degraded(a_bride)).remove(0);
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(alert.supplier_id, Some(bride));
    assert!(e.alerts_for(&keys::degraded(a_other)).is_empty());
    // The next day the same account is judged with normal thresholds.
    e.clock.advance(Duration::days(1));
    m.probe_all().await.unwrap();
    assert_eq!(m.verdict(a_bride), Verdict::Healthy);
}

#[tokio::test]
async fn a_flapping_provider_raises_one_alert_not_a_flood() {
    let e = env().await;
    let s = e.supplier("Flappy Caterer", AiMode::Client, &[], true);
    let a = e.client_account(s, "Caterer OpenAI", DEMO_CLIENT_OPENAI_KEY);
    let mut cfg = fast_cfg();
    cfg.jitter = false;
    let m = e.monitor(cfg);
    let mut downs = 0;
    for i in 0..12 {
        e.sim.set_outage("openai-client", i % 2 == 0);
        m.tick().await;
        if m.verdict(a) == Verdict::Down {
            downs += 1;
        }
        e.clock.advance(Duration::seconds(30));
    }
    assert_eq!(downs, 6, "every failed probe is seen");
    assert_eq!(e.alerts_for(&keys::down(a)).len(), 1, "one alert for the whole flapping period");
    // Stable again: it resolves once, and no new alert appears.
    e.sim.set_outage("openai-client", false);
    for _ in 0..8 {
        m.tick().await;
        e.clock.advance(Duration::seconds(30));
    }
    let all = e.alerts_for(&keys::down(a));
    assert_eq!(all.len(), 1);
    assert!(!all[0].is_open());
    assert_eq!(e.breaker(a), "closed");
}

#[tokio::test]
async fn invalid_key_raises_a_key_alert_and_takes_the_account_out() {
    let e = env().await;
    let s = e.supplier("Wrong Key Florist", AiMode::Client, &[], true);
    let a = e.client_account(s, "Florist OpenAI", "sk-sim-openai-client-wrong00000000009");
    let mut cfg = fast_cfg();
    cfg.jitter = false;
    let m = e.monitor(cfg);
    m.tick().await;
    assert_eq!(m.verdict(a), Verdict::Down);
    assert_eq!(e.breaker(a), "open");
    let k = e.alerts_for(&keys::key_invalid(a));
    assert_eq!(k.len(), 1);
    assert_eq!(k[0].kind, AlertKind::KeyInvalid);
    assert!(!k[0].message.contains("wrong00000000009"), "no key in alert messages: {}", k[0].message);
    assert!(e.alerts_for(&keys::down(a)).is_empty());
}

#[tokio::test]
async fn migration_rollback_and_quota_alerts_and_manual_ack() {
    let e = env().await;
    let s = e.supplier("Quota Studio", AiMode::Platform, &[today()], true);
    let m = e.monitor(fast_cfg());
    let r = m.alerts().migration_rolled_back(s, 7, "error rate 14 % on the new provider", true).unwrap();
    let alert = match r {
        switchboard::store::Raised::New(a) => a,
        other => panic!("expected a new alert, got {other:?}"),
    };
    assert_eq!(alert.kind, AlertKind::MigrationRolledBack);
    assert_eq!(alert.severity, Severity::Critical, "wedding day: one level higher");
    assert!(alert.message.starts_with(&format!("migration 7 of Quota Studio (supplier {})", s.0)), "{}", alert.message);
    m.alerts()
        .on_router_event(&switchboard::engine::router::RouterEvent::QuotaWarning { supplier: s, used: 180_000, quota: 200_000 }, false)
        .unwrap();
    m.alerts()
        .on_router_event(&switchboard::engine::router::RouterEvent::QuotaWarning { supplier: s, used: 185_000, quota: 200_000 }, false)
        .unwrap();
    let q = e.alerts_for(&keys::quota(s, 90, "2026-06"));
    assert_eq!(q.len(), 1, "one quota alert per month");
    assert_eq!(q[0].severity, Severity::Warning);
    assert!(q[0].message.starts_with("Quota Studio (supplier "), "an alert names its supplier: {}", q[0].message);
    let platform = e.store.list_accounts(Some(switchboard::domain::AccountOwner::Platform)).unwrap()[0].clone();
    m.alerts()
        .on_router_event(&switchboard::engine::router::RouterEvent::FailoverStarted { supplier: s, account: platform.id }, true)
        .unwrap();
    let f = e.alerts_for(&keys::failover(s));
    assert_eq!(f.len(), 1, "a wedding-day failover is alerted at once");
    assert!(
        f[0].message.starts_with(&format!(
            "Quota Studio (supplier {}): its own provider failed; its requests fall back to platform AI, {} (account {})",
            s.0, platform.label, platform.id.0
        )),
        "{}",
        f[0].message
    );
    let acked = m.alerts().acknowledge(q[0].id).unwrap();
    assert!(acked.acknowledged_at.is_some());
    assert!(m.alerts().acknowledge(999_999).is_err(), "unknown alert id is a clear error");
    let resolved = m.alerts().resolve(alert.id).unwrap();
    assert!(!resolved.is_open());
    assert_eq!(e.store.list_alerts(true, 100).unwrap().len(), 2, "the quota warning and the failover stay open");
}

#[tokio::test]
async fn compaction_bounds_history_and_keeps_uptime_figures() {
    let e = env().await;
    let mut cfg = fast_cfg();
    cfg.jitter = false;
    let m = e.monitor(cfg);
    let a = AccountId(4242);
    // 40 days of one probe a minute; every 10th fails; a bad hour yesterday.
    let now = e.clock.now();
    let start = now - Duration::days(40);
    let mut rows = Vec::new();
    let mut i = 0i64;
    let mut t = start;
    while t < now {
        let bad_hour = t >= now - Duration::hours(20) && t < now - Duration::hours(19);
        rows.push(HealthSampleRow {
            account: a,
            at: t,
            ok: !(bad_hour || i % 10 == 0),
            latency_ms: 100 + (i % 7) as u32 * 10,
            error_class: None,
            source: SampleSource::Probe,
        });
        i += 1;
        t += Duration::minutes(1);
    }
    e.store.insert_health_samples(&rows).unwrap();
    let spans = [Duration::hours(1), Duration::hours(24), Duration::days(30), Duration::days(365)];
    let before: Vec<_> = spans.iter().map(|s| m.uptime(a, *s).unwrap().unwrap()).collect();
    assert!((before[0] - 90.0).abs() < 0.01, "1 h: {}", before[0]);
    assert!(before[1] < 90.0 - 3.0, "24 h includes the bad hour: {}", before[1]);
    let report = e.store.compact_health(now, &Retention::default()).unwrap();
    assert!(report.raw_rolled > 50_000);
    let after: Vec<_> = spans.iter().map(|s| m.uptime(a, *s).unwrap().unwrap()).collect();
    assert_eq!(before, after, "compaction must not change uptime figures");
    let (raw, fine, coarse) = e.store.health_history_sizes(&Retention::default()).unwrap();
    eprintln!("40 days of 1-minute samples ({}) compacted to {raw} raw rows, {fine} 5-minute and {coarse} hourly buckets", rows.len());
    assert!(raw <= 24 * 60 + 5, "raw samples kept 24 h: {raw}");
    assert!(fine <= 30 * 288 + 12 && fine > 0, "5-minute buckets for 30 days: {fine}");
    assert!(coarse <= 10 * 24 + 1 && coarse > 0, "hourly buckets for what is older: {coarse}");
    let series = m.series(a, switchboard::engine::health::ChartRange::Month).unwrap();
    assert!(series.len() >= 29 * 24, "hourly chart points over 30 days: {}", series.len());
    assert!(series.iter().all(|p| p.samples <= 60));
    // A year and a bit later everything is gone.
    e.clock.advance(Duration::days(400));
    e.store.compact_health(e.clock.now(), &Retention::default()).unwrap();
    assert_eq!(e.store.health_history_sizes(&Retention::default()).unwrap(), (0, 0, 0));
    // The monitor compacts on its own.
    let r = m.tick().await;
    assert!(r.compaction.is_some());
}

/// Drives the in-memory part of the monitor (per-account windows and verdicts)
/// through `days` of 30-s probe ticks for 500 accounts, with one passive
/// sample per account per tick, and returns (retained samples, window bytes,
/// RSS KiB) at the end of day 1 and at the end.
fn simulate_month(days: i64) -> ((usize, usize, u64), (usize, usize, u64)) {
    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
            .map(|pages| pages * 4)
            .unwrap_or(0)
    }
    let rules = HealthRules::default();
    let mut windows: Vec<AccountWindow> = (0..500).map(|_| AccountWindow::default()).collect();
    let start = june();
    let ticks_per_day = 2880;
    let mut day1 = (0, 0, 0);
    for tick in 0..days * ticks_per_day {
        let now = start + Duration::seconds(tick * 30);
        for (i, w) in windows.iter_mut().enumerate() {
            let ok = (tick + i as i64) % 97 != 0;
            w.push(Sample { at: now, ok, latency_ms: 200 + (i as u32 % 50), source: SampleSource::Probe }, &rules);
            w.push(Sample { at: now, ok: true, latency_ms: 300, source: SampleSource::Traffic }, &rules);
            if tick % 4 == 0 {
                w.evaluate(now, &rules, i % 10 == 0);
            }
        }
        if tick == ticks_per_day - 1 {
            day1 = (windows.iter().map(|w| w.len()).sum(), windows.iter().map(|w| w.heap_bytes()).sum(), rss_kib());
        }
    }
    let end = (windows.iter().map(|w| w.len()).sum(), windows.iter().map(|w| w.heap_bytes()).sum(), rss_kib());
    (day1, end)
}

#[test]
fn memory_stays_flat_over_simulated_days_for_500_accounts() {
    let (day1, end) = simulate_month(3);
    eprintln!("500 accounts, 3 days: day 1 {day1:?}, end {end:?} (samples, window bytes, RSS KiB)");
    // Windows restart when an account recovers, so the count moves a little; it never grows.
    assert!(day1.0 <= 500 * 22 && end.0 <= 500 * 22, "a 5-minute window of 30-s probes plus traffic");
    assert_eq!(day1.1, end.1, "window memory does not grow");
}

/// The full month (run with `--ignored --nocapture`; figure in BENCHMARKS.md).
#[test]
#[ignore]
fn memory_stays_flat_over_a_simulated_month_for_500_accounts() {
    let (day1, end) = simulate_month(30);
    eprintln!("500 accounts, 30 days of 30-s probes: day 1 {day1:?}, day 30 {end:?} (samples, window bytes, RSS KiB)");
    assert!(end.0 <= 500 * 22);
    assert_eq!(day1.1, end.1);
    assert!(end.2 <= day1.2 + 1024, "RSS grew by more than 1 MiB");
}

#[tokio::test]
async fn webhook_gets_alerts_with_retries_and_a_hanging_webhook_never_slows_the_caller() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let e = env().await;
    let s = e.supplier("Hooked Venue", AiMode::Platform, &[], true);
    // A webhook that refuses the first post, then accepts; and one that never answers.
    let hits = Arc::new(AtomicU32::new(0));
    let bodies = Arc::new(parking_lot::Mutex::new(Vec::<serde_json::Value>::new()));
    let app = {
        let (hits, bodies) = (hits.clone(), bodies.clone());
        axum::Router::new()
            .route(
                "/flaky",
                axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                    let (hits, bodies) = (hits.clone(), bodies.clone());
                    async move {
                        if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                            return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        bodies.lock().push(v);
                        axum::http::StatusCode::OK
                    }
                }),
            )
            .route(
                "/hang",
                axum::routing::post(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    "late"
                }),
            )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let hook = |path: &str| switchboard::engine::alerts::WebhookConfig {
        url: format!("http://{addr}{path}"),
        attempts: 3,
        timeout: std::time::Duration::from_secs(30),
        backoff: std::time::Duration::from_millis(10),
        runtime: tokio::runtime::Handle::current(),
    };
    let mut cfg = fast_cfg();
    cfg.webhook = Some(hook("/flaky"));
    let m = e.monitor(cfg);
    m.alerts().migration_rolled_back(s, 1, "p95 2.4 s on the new provider", false).unwrap();
    for _ in 0..200 {
        if !bodies.lock().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let got = bodies.lock().clone();
    assert_eq!(got.len(), 1, "delivered after one retry");
    assert_eq!(got[0]["event"], "raised");
    assert_eq!(got[0]["alert"]["kind"], "migration_rolled_back");
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let mut cfg = fast_cfg();
    cfg.webhook = Some(hook("/hang"));
    let m = e.monitor(cfg);
    let started = std::time::Instant::now();
    for id in 10..60 {
        m.alerts().migration_rolled_back(s, id, "test", false).unwrap();
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "raising alerts waited for the webhook: {:?}", started.elapsed());
}

#[tokio::test]
async fn live_request_outcomes_reach_the_health_history_a_few_per_minute() {
    let e = env().await;
    let venue = e.supplier("Sampled Barn", AiMode::Client, &[], true);
    let client = e.client_account(venue, "Sampled Barn OpenAI", DEMO_CLIENT_OPENAI_KEY);
    let token = e.token(venue);
    let m = e.monitor(MonitorConfig { jitter: false, ..fast_cfg() });
    m.tick().await; // every account probed once
    let count = |source: &str| {
        e.store
            .with_conn(|c| {
                c.query_row("SELECT COUNT(*) FROM health_samples WHERE account_id = ?1 AND source = ?2", (client.0, source), |r| {
                    r.get::<_, i64>(0)
                })
            })
            .unwrap()
    };
    assert_eq!((count("probe"), count("traffic")), (1, 0));
    for _ in 0..20 {
        assert_eq!(e.chat_route(&token).await, Route::Client);
    }
    m.tick().await;
    assert_eq!(count("traffic"), 6, "the first six requests of the minute are kept");
    // The next minute keeps six more, with their latency; the probe goes on.
    e.clock.advance(Duration::seconds(61));
    for _ in 0..10 {
        e.chat_route(&token).await;
    }
    m.tick().await;
    assert_eq!((count("probe"), count("traffic")), (2, 12));
    // The chart and the 24-hour figures count them with the probes.
    let series = e.store.health_series(client, june(), e.clock.now() + Duration::seconds(1), 60).unwrap();
    assert_eq!(series.iter().map(|p| p.samples).sum::<u64>(), 14);
    assert!(series.iter().all(|p| p.failures == 0 && p.avg_latency_ms.is_some()));
}
