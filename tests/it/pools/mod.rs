//! Key pools end to end: three OpenAI platform keys on the simulator with
//! different rate limits (the simulator enforces them per key and sends the
//! providers' rate-limit headers), a real SQLite ledger, real HTTP, and one
//! manual clock shared by the router and the simulator's limits.

use crate::support::{fast_providers, june, sim_account};
use futures::StreamExt;
use std::sync::Arc;
use switchboard::domain::health::AlertKind;
use switchboard::domain::keypool::{Blocked, PoolSettings, Strategy};
use switchboard::domain::{
    AccountId, AccountOwner, AiMode, Clock, ManualClock, Micros, NewSupplier, PricingTable, ProviderKind, Secret, SupplierId, Tier,
    VendorType,
};
use switchboard::engine::alerts::AlertService;
use switchboard::engine::ledger::Ledger;
use switchboard::engine::pool_alerts::PoolWatch;
use switchboard::engine::pool_settings;
use switchboard::engine::router::{Caller, RouteError, Router, RouterConfig};
use switchboard::providers::ChatRequest;
use switchboard::sim::{DEMO_ANTHROPIC_KEY, SimAccountConfig, SimConfig, SimHandle, SimLimits, Simulator};
use switchboard::store::Store;

mod bench;

pub const KEYS: [&str; 3] = ["sk-sim-pool-key-a-000000000001", "sk-sim-pool-key-b-000000000002", "sk-sim-pool-key-c-000000000003"];
pub const NAMES: [&str; 3] = ["pool-a", "pool-b", "pool-c"];

pub struct Pool {
    _dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub sim: SimHandle,
    pub router: Arc<Router>,
    pub clock: ManualClock,
    pub supplier: SupplierId,
    pub keys: [AccountId; 3],
}

/// Three OpenAI platform keys (and, with `anthropic`, an Anthropic platform
/// key for cross-provider failover); the simulator's per-key `limits`.
pub async fn pool(strategy: Strategy, limits: [SimLimits; 3], anthropic: bool) -> Pool {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("pool.db")).unwrap());
    let mut cfg = SimConfig { seed: 7, accounts: Vec::new() };
    for (name, key) in NAMES.iter().zip(KEYS) {
        cfg.accounts.push(SimAccountConfig::new(name, ProviderKind::OpenAi, key));
    }
    cfg.accounts.push(SimAccountConfig::new("anthropic-platform", ProviderKind::Anthropic, DEMO_ANTHROPIC_KEY));
    let sim = Simulator::start(cfg).await.unwrap();
    let clock = ManualClock::new(june());
    sim.set_clock(Arc::new(clock.clone()));
    for (name, l) in NAMES.iter().zip(limits) {
        assert!(sim.set_limits(name, l));
    }
    let mk = |label: &str, provider, model: &str| sim_account(&store, AccountOwner::Platform, provider, label, model, sim.base_url());
    let keys = [0, 1, 2].map(|i| mk(&format!("WedSync OpenAI {}", i + 1), ProviderKind::OpenAi, "gpt-4o-mini"));
    let anthropic = anthropic.then(|| mk("WedSync Anthropic", ProviderKind::Anthropic, "claude-haiku-4-5"));
    // A wedding today: neither the tier's rate limit nor the quota refuses
    // anything, so every refusal seen here is the pool's.
    let mut n = NewSupplier::new("Pool Photography", VendorType::Photographer, Tier::Professional, AiMode::Platform);
    n.weddings = vec![june().date_naive()];
    let supplier = store.insert_supplier(&n, june()).unwrap().id;
    let router = Router::new(
        store.clone(),
        fast_providers(2),
        Arc::new(PricingTable::builtin()),
        Arc::new(clock.clone()),
        Ledger::start(&store).unwrap(),
        RouterConfig { pool_strategy: strategy, ..RouterConfig::default() },
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    for (id, key) in keys.iter().zip(KEYS) {
        router.set_key(*id, Some(Secret::new(key)));
    }
    if let Some(a) = anthropic {
        router.set_key(a, Some(Secret::new(DEMO_ANTHROPIC_KEY)));
    }
    Pool { _dir: dir, store, sim, router, clock, supplier, keys }
}

impl Pool {
    /// Sends `n` chat requests, `concurrency` at a time; returns the failures.
    pub async fn send(&self, n: usize, concurrency: usize) -> Vec<RouteError> {
        let results: Vec<Result<(), RouteError>> = futures::stream::iter(0..n)
            .map(|i| async move {
                let req = ChatRequest::simple("gpt-4o-mini", &format!("Write a short thank-you note for wedding guest {i}"));
                self.router.chat(Caller::supplier(self.supplier), None, None, req).await.map(|_| ())
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().filter_map(Result::err).collect()
    }

    /// Calls each simulated key answered (429s of its limits not included).
    pub fn served(&self) -> [u64; 3] {
        NAMES.map(|n| self.sim.requests(n))
    }

    pub fn set(&self, i: usize, s: PoolSettings) {
        pool_settings::set(&self.store, self.keys[i], s, "test", june()).unwrap();
        self.router.reload().unwrap();
    }
}

#[tokio::test]
async fn traffic_follows_the_headroom_the_provider_reports_with_no_client_failure_while_a_key_has_room() {
    let limits = [10, 20, 30].map(|rpm| SimLimits { rpm: Some(rpm), tpm: None });
    let p = pool(Strategy::Headroom, limits, false).await;
    // The router knows no limit of its own: it learns them from the headers.
    let failures = p.send(56, 4).await;
    assert!(failures.is_empty(), "client-visible failures while keys had room: {failures:?}");
    let served = p.served();
    assert_eq!(served.iter().sum::<u64>(), 56);
    for (s, limit) in served.iter().zip([10, 20, 30]) {
        assert!(*s <= limit, "a key served more than its limit: {served:?}");
    }
    assert!(served[2] > served[1] && served[1] > served[0], "traffic does not follow the headroom: {served:?}");
    let snap = p.router.pool_snapshot();
    assert_eq!(snap.iter().filter(|k| k.reported_requests.is_some()).count(), 3, "limits learned from the headers: {snap:?}");
    // The pool's capacity (60 a minute) is the limit: past it, refusals, and
    // no key is called beyond its limit.
    let failures = p.send(10, 1).await;
    assert_eq!(failures.len(), 6, "{failures:?}");
    assert!(failures.iter().all(|e| e.status_code() >= 500), "{failures:?}");
    assert_eq!(p.served(), [10, 20, 30]);
    // A minute later the windows are full again.
    p.clock.advance(chrono::Duration::seconds(61));
    assert!(p.send(6, 2).await.is_empty());
}

#[tokio::test]
async fn weighted_traffic_follows_the_weights_and_shows_in_metrics() {
    let p = pool(Strategy::Weighted, [SimLimits::default(); 3], false).await;
    for (i, w) in [1, 2, 3].into_iter().enumerate() {
        p.set(i, PoolSettings { weight: Some(w), ..Default::default() });
    }
    assert!(p.send(60, 1).await.is_empty());
    assert_eq!(p.served(), [10, 20, 30]);
    let gw = switchboard::gateway::start(p.router.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let text = reqwest::get(format!("{}/metrics", gw.base_url().trim_end_matches("/v1"))).await.unwrap().text().await.unwrap();
    let share = |i: usize| {
        let prefix = format!("switchboard_key_share{{account=\"{}\",label=\"WedSync OpenAI {}\"", p.keys[i].0, i + 1);
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
    };
    assert!((share(0) - 1.0 / 6.0).abs() < 0.01 && (share(2) - 0.5).abs() < 0.01, "{text}");
    assert!(text.contains("switchboard_key_rate_limited_total{"), "{text}");
}

#[tokio::test]
async fn a_key_returning_429s_gets_no_traffic_until_its_reset_and_the_pool_takes_it_before_another_provider() {
    let p = pool(Strategy::Headroom, [SimLimits::default(); 3], true).await;
    p.sim.update_faults(NAMES[0], |f| {
        f.rate_limit_rate = 1.0;
        f.retry_after_ms = 30_000;
    });
    assert!(p.send(30, 1).await.is_empty(), "a 429 from one key reached the client");
    let served = p.served();
    assert_eq!(served[0], 1, "the throttled key was called again before its reset: {served:?}");
    assert_eq!(served[1] + served[2], 30);
    assert_eq!(p.sim.requests("anthropic-platform"), 0, "failed over to another provider while the pool had room");
    let k = p.router.pool_snapshot().into_iter().find(|k| k.account == p.keys[0]).unwrap();
    assert!(matches!(k.blocked, Some(Blocked::CoolingDown(_))) && k.recent_429 == 1, "{k:?}");
    // The key recovers at once on the provider's side, but its reset (30 s) is not over.
    p.sim.update_faults(NAMES[0], |f| f.rate_limit_rate = 0.0);
    p.clock.advance(chrono::Duration::seconds(20));
    assert!(p.send(10, 1).await.is_empty());
    assert_eq!(p.served()[0], 1);
    // After it, the key takes its share again.
    p.clock.advance(chrono::Duration::seconds(11));
    assert!(p.send(30, 1).await.is_empty());
    assert!(p.served()[0] >= 8, "{:?}", p.served());
    assert_eq!(p.sim.requests("anthropic-platform"), 0);
}

#[tokio::test]
async fn a_budgeted_key_stops_at_its_budget_with_an_alert_and_the_pool_carries_on() {
    let p = pool(Strategy::Weighted, [SimLimits::default(); 3], false).await;
    p.set(0, PoolSettings { weight: Some(10), monthly_budget: Some(Micros(100)), ..Default::default() });
    assert!(p.send(30, 1).await.is_empty(), "the budget failed a request");
    let served = p.served();
    // The rows are in the journal; the database has them once folded (the
    // burst can end within one fold interval).
    p.router.ledger().flush().await;
    let spent: i64 = p
        .store
        .with_conn(|c| c.query_row("SELECT sum(cost_micros) FROM usage_events WHERE account_id = ?1", [p.keys[0].0], |r| r.get(0)))
        .unwrap();
    let per_call = spent / served[0] as i64;
    assert!(per_call > 0, "calls cost nothing: the test would prove nothing");
    assert!(spent >= 100 && spent < 100 + per_call, "spent {spent} µ$ against a budget of 100 µ$ ({served:?})");
    assert_eq!(served.iter().sum::<u64>(), 30);
    assert!(p.router.key_over_budget(p.keys[0]).is_some());
    let alerts = AlertService::new(p.store.clone(), Arc::new(p.clock.clone()), Default::default(), None);
    PoolWatch::default().tick(&p.router, &alerts, p.clock.now()).unwrap();
    let open = alerts.list(true).unwrap();
    let a = open.iter().find(|a| a.kind == AlertKind::KeyBudgetReached).expect("no budget alert");
    assert_eq!(a.account_id, Some(p.keys[0]));
    assert!(a.message.contains("WedSync OpenAI 1") && a.message.contains("the rest of the openai pool carries on"), "{}", a.message);
    // Next month the key takes traffic again.
    p.clock.set(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 7, 1, 9, 0, 0).unwrap());
    let before = p.served()[0];
    // (No wedding in July: the supplier's tier limit applies; a few requests fit.)
    assert!(p.send(3, 1).await.is_empty());
    assert!(p.served()[0] > before);
}

#[tokio::test]
async fn keys_at_their_own_limits_are_skipped_before_a_call_and_a_low_pool_alerts_after_ten_minutes() {
    let p = pool(Strategy::Headroom, [SimLimits::default(); 3], false).await;
    for i in 0..3 {
        p.set(i, PoolSettings { rpm: Some(5), ..Default::default() });
    }
    let alerts = AlertService::new(p.store.clone(), Arc::new(p.clock.clone()), Default::default(), None);
    let watch = PoolWatch::default();
    let low = || alerts.list(true).unwrap().into_iter().find(|a| a.kind == AlertKind::PoolLowHeadroom);
    for minute in [0, 5, 10] {
        p.clock.set(june() + chrono::Duration::minutes(minute));
        let before = p.served();
        assert!(p.send(13, 1).await.is_empty());
        let after = p.served();
        for i in 0..3 {
            assert!(after[i] - before[i] <= 5, "a key was called past its own limit: {before:?} → {after:?}");
        }
        watch.tick(&p.router, &alerts, p.clock.now()).unwrap();
        assert_eq!(low().is_some(), minute == 10, "minute {minute}");
    }
    let a = low().unwrap();
    assert!(a.message.contains("add another openai key"), "{}", a.message);
    // The pool is full: the 16th request of the minute is refused without a call.
    let before = p.served();
    assert_eq!(p.send(3, 1).await.len(), 1);
    assert_eq!(p.served().iter().sum::<u64>(), before.iter().sum::<u64>() + 2);
}

#[test]
fn the_cli_shows_sets_and_unsets_a_keys_pool_settings() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let id = {
        let store = Store::open(&db).unwrap();
        sim_account(&store, AccountOwner::Platform, ProviderKind::OpenAi, "WedSync OpenAI 1", "gpt-4o-mini", "http://127.0.0.1:9")
    };
    let run = |args: &[&str]| {
        let out = crate::support::sb(&db).args(["key", "pool", &id.0.to_string()]).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (ok, text) = run(&["--weight", "3", "--rpm", "500", "--budget", "250.50"]);
    assert!(ok, "{text}");
    assert_eq!(text.trim(), format!("WedSync OpenAI 1 (account {}): weight 3, 500 rpm, budget $250.50", id.0));
    let store = Store::open(&db).unwrap();
    let s = store.account_pool_settings(id).unwrap();
    assert_eq!(s, PoolSettings { weight: Some(3), rpm: Some(500), tpm: None, monthly_budget: Some(Micros(250_500_000)) });
    assert!(store.audit_entries(&Default::default()).unwrap().iter().any(|e| e.action == "key.pool_settings"));
    drop(store);
    let (ok, text) = run(&["--budget", "none", "--json"]);
    assert!(ok, "{text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["settings"]["monthly_budget"], serde_json::Value::Null);
    assert_eq!(v["settings"]["weight"], 3);
    let (ok, text) = run(&["--weight", "0"]);
    assert!(!ok && text.contains("weight 0 is out of range"), "{text}");
    let (ok, text) = run(&["--rpm", "lots"]);
    assert!(!ok && text.contains("not a whole number"), "{text}");
}
