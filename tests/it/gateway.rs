//! The routing gateway end to end: real HTTP over loopback into the gateway,
//! real HTTP from the router to the provider simulator, a real SQLite ledger,
//! and a manual clock for breakers, rate limits and quotas.

use crate::support::{fast_providers, june, sb, sim_account};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::domain::Secret;
use switchboard::domain::{
    AccountId, AccountOwner, AiMode, ManualClock, NewSupplier, PricingTable, ProviderKind, Route, SupplierId, Tier, VendorType,
};
use switchboard::engine::gateway_tokens as tokens;
use switchboard::engine::ledger::Ledger;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::gateway::{self, GatewayHandle};
use switchboard::providers::{Providers, ProvidersConfig};
use switchboard::sim::{DEMO_ANTHROPIC_KEY, DEMO_CLIENT_OPENAI_KEY, DEMO_OPENAI_KEY, SimAccountConfig, SimConfig, SimHandle, Simulator};
use switchboard::store::{NewAccount, Store};

const CLIENT2_KEY: &str = "sk-sim-openai-client-000000000002";

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    sim: SimHandle,
    router: Arc<Router>,
    gw: GatewayHandle,
    clock: ManualClock,
    http: reqwest::Client,
    platform_openai: AccountId,
}

async fn env(cfg: RouterConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("gw.db")).unwrap());
    let mut sim_cfg = SimConfig::demo();
    sim_cfg.accounts.push(SimAccountConfig::new("openai-client-2", ProviderKind::OpenAi, CLIENT2_KEY));
    let sim = Simulator::start(sim_cfg).await.unwrap();
    let clock = ManualClock::new(june());
    let mk = |owner, provider, label: &str, model: &str| sim_account(&store, owner, provider, label, model, sim.base_url());
    let platform_openai = mk(AccountOwner::Platform, ProviderKind::OpenAi, "WedSync OpenAI", "gpt-4o-mini");
    let platform_anthropic = mk(AccountOwner::Platform, ProviderKind::Anthropic, "WedSync Anthropic", "claude-haiku-4-5");
    let ledger = Ledger::start(&store).unwrap();
    let providers = fast_providers(2);
    let router = Router::new(
        store.clone(),
        providers,
        Arc::new(PricingTable::builtin()),
        Arc::new(clock.clone()),
        ledger,
        cfg,
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    router.set_key(platform_openai, Some(Secret::new(DEMO_OPENAI_KEY)));
    router.set_key(platform_anthropic, Some(Secret::new(DEMO_ANTHROPIC_KEY)));
    let gw = gateway::start(router.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Env { _dir: dir, store, sim, router, gw, clock, http: reqwest::Client::new(), platform_openai }
}

impl Env {
    fn supplier(&self, name: &str, tier: Tier, mode: AiMode, weddings: &[NaiveDate]) -> SupplierId {
        let mut n = NewSupplier::new(name, VendorType::Photographer, tier, mode);
        n.weddings = weddings.to_vec();
        self.store.insert_supplier(&n, june()).unwrap().id
    }

    /// A client account on the simulator for `supplier`, with its key set.
    fn client_account(&self, supplier: SupplierId, label: &str, key: &str) -> AccountId {
        let id =
            sim_account(&self.store, AccountOwner::Supplier(supplier), ProviderKind::OpenAi, label, "gpt-4o-mini", self.sim.base_url());
        self.router.set_key(id, Some(Secret::new(key)));
        id
    }

    fn token(&self, supplier: SupplierId, revoked: bool) -> String {
        let issued = tokens::issue(&self.store, supplier, june(), "test").unwrap();
        if revoked {
            tokens::revoke(&self.store, issued.record.id, june(), "test").unwrap();
        }
        self.router.reload().unwrap();
        issued.token.expose().to_string()
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.gw.base_url())).bearer_auth(token).json(&body).send().await.unwrap()
    }

    async fn chat(&self, token: &str, model: &str, text: &str) -> reqwest::Response {
        self.post("/chat/completions", token, json!({"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 50}))
            .await
    }

    fn usage_rows(&self, supplier: SupplierId) -> Vec<(String, i64, i64, i64, i64, i64)> {
        self.store
            .with_conn(|c| {
                let mut st = c.prepare(
                    "SELECT request_id, route, status, input_tokens + cached_tokens + output_tokens, cost_micros, account_id FROM usage_events WHERE supplier_id = ?1 ORDER BY id",
                )?;
                let rows = st.query_map([supplier.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, Option<i64>>(5)?.unwrap_or(0))))?;
                rows.collect()
            })
            .unwrap()
    }
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

#[tokio::test]
async fn platform_route_answers_and_records_usage() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Capture Moments", Tier::Professional, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let r = e.chat(&t, "gpt-4o-mini", "Write a thank-you note for the Hendersons.").await;
    assert_eq!(r.headers()["x-switchboard-route"], "platform");
    let (status, body) = json_of(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(!body["choices"][0]["message"]["content"].as_str().unwrap().is_empty());
    let total = body["usage"]["total_tokens"].as_i64().unwrap();
    let rows = e.usage_rows(s);
    assert_eq!(rows.len(), 1, "exactly one usage row");
    assert_eq!(rows[0].1, 0, "route platform");
    assert_eq!(rows[0].2, 0, "status ok");
    assert_eq!(rows[0].3, total, "ledger tokens equal the answer's usage");
    assert!(rows[0].4 > 0, "cost recorded");
    assert_eq!(rows[0].5, e.platform_openai.0);
    // The quota counter moved by exactly that.
    assert_eq!(e.router.quota_snapshot(s).unwrap().0, total as u64);
}

#[tokio::test]
async fn a_tokens_last_use_is_recorded_at_most_once_a_minute() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Capture Moments", Tier::Professional, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let last_used = || e.store.list_tokens(Some(s)).unwrap()[0].last_used_at;
    assert_eq!(last_used(), None);
    let wait_for = |want: chrono::DateTime<Utc>| async move {
        for _ in 0..200 {
            if last_used() == Some(want) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("last use is {:?}, expected {want}", last_used());
    };
    assert_eq!(e.chat(&t, "gpt-4o-mini", "Hello").await.status(), 200);
    wait_for(june()).await;
    // Within the minute: not written again.
    e.clock.advance(Duration::seconds(30));
    assert_eq!(e.chat(&t, "gpt-4o-mini", "Hello again").await.status(), 200);
    e.clock.advance(Duration::seconds(40));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(last_used(), Some(june()));
    // A minute later: written with the new time.
    assert_eq!(e.chat(&t, "gpt-4o-mini", "And again").await.status(), 200);
    wait_for(june() + Duration::seconds(70)).await;
}

#[tokio::test]
async fn client_route_uses_the_suppliers_own_account_and_not_the_quota() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Grand Ballroom", Tier::Scale, AiMode::Client, &[]);
    let acc = e.client_account(s, "Ballroom OpenAI", DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let r = e.chat(&t, "gpt-4o-mini", "Describe the ballroom for a brochure.").await;
    assert_eq!(r.headers()["x-switchboard-route"], "client");
    assert_eq!(r.status(), 200);
    assert_eq!(e.sim.requests("openai-client"), 1);
    let rows = e.usage_rows(s);
    assert_eq!((rows[0].1, rows[0].5), (1, acc.0), "route client on its own account");
    assert_eq!(e.router.quota_snapshot(s).unwrap().0, 0, "client AI does not use the platform quota");
}

#[tokio::test]
async fn claude_models_are_translated_to_openai_format() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Perfect Day Planning", Tier::Professional, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let r = e
        .post(
            "/chat/completions",
            &t,
            json!({"model": "claude-haiku-4-5", "messages": [{"role": "system", "content": "You are a wedding planner."}, {"role": "user", "content": "Plan a timeline."}], "max_tokens": 80}),
        )
        .await;
    let (status, body) = json_of(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["usage"]["prompt_tokens"].as_i64().unwrap() > 0);
    assert_eq!(e.sim.requests("anthropic-platform"), 1);
}

#[tokio::test]
async fn streams_are_forwarded_and_recorded_when_they_end() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Bloom Florals", Tier::Starter, AiMode::Platform, &[]);
    let t = e.token(s, false);
    for model in ["gpt-4o-mini", "claude-haiku-4-5"] {
        let r = e
            .post(
                "/chat/completions",
                &t,
                json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "Name three flowers for June."}]}),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let mut body = String::new();
        let mut s2 = r.bytes_stream();
        while let Some(chunk) = s2.next().await {
            body.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
        assert!(body.contains("chat.completion.chunk"), "{body}");
        assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    }
    e.router.ledger().flush().await;
    let rows = e.usage_rows(s);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.2 == 0 && r.3 > 0), "{rows:?}");
    assert_eq!(e.router.in_flight(), 0, "ended streams are no longer in flight");
    // An open stream counts as in flight (for /metrics) until its client goes away.
    // Two seconds between chunks: the stream outlasts the plain request below.
    e.sim.update_faults("openai-platform", |f| f.slow_stream_ms = 2_000);
    let r = e
        .post(
            "/chat/completions",
            &t,
            json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Slowly, please."}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let metrics = e.http.get(format!("http://{}/metrics", e.gw.addr())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchboard_requests_in_flight 1"), "{metrics}");
    // But the ledger does not wait for an open stream's usage: a plain
    // request beside it is committed at once, not after the commit delay.
    assert_eq!(e.router.writers_soon(), 0);
    e.router.ledger().set_commit_delay(std::time::Duration::from_secs(30));
    let plain = tokio::time::timeout(std::time::Duration::from_secs(10), e.chat(&t, "gpt-4o-mini", "Quick one beside the stream."))
        .await
        .expect("a plain request beside an open stream waited for the stream's usage");
    assert_eq!(plain.status(), 200);
    e.router.ledger().set_commit_delay(switchboard::engine::ledger::COMMIT_DELAY);
    drop(r);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while e.router.in_flight() != 0 {
        assert!(std::time::Instant::now() < deadline, "a stream whose client went away stays in flight");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).len(), 4, "the abandoned stream's usage is recorded too");
}

#[tokio::test]
async fn embeddings_and_models() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Harbor Catering", Tier::Scale, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let r = e.post("/embeddings", &t, json!({"model": "text-embedding-3-small", "input": ["menu tasting notes"]})).await;
    let (status, body) = json_of(r).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"][0]["embedding"].as_array().unwrap().len() > 10);
    let rows = e.usage_rows(s);
    assert_eq!(rows.len(), 1);
    let models = e.http.get(format!("{}/models", e.gw.base_url())).bearer_auth(&t).send().await.unwrap();
    let (status, body) = json_of(models).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"gpt-4o") && ids.contains(&"claude-sonnet-4-5"), "{ids:?}");
}

/// Errors counted in `/metrics`, over every route and provider.
fn metric_errors(e: &Env) -> u64 {
    e.router.metrics().requests_by_route().iter().map(|(_, _, errors)| errors).sum()
}

#[tokio::test]
async fn a_providers_refusal_of_the_request_is_counted_in_metrics_for_every_kind_of_request() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Lantern Florals", Tier::Scale, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let refused = |body: Value| {
        let e = &e;
        let t = &t;
        async move {
            let path = if body.get("messages").is_some() { "/chat/completions" } else { "/embeddings" };
            json_of(e.post(path, t, body).await).await
        }
    };
    // Plain chat: the provider's 400 is passed through and counted.
    let (st, b) = refused(json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "[sim:context_length] a brief"}]})).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("context_length")), "{b}");
    assert_eq!(metric_errors(&e), 1);
    // A stream refused before its first byte: the same.
    let (st, b) =
        refused(json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "[sim:context_length] a brief"}]}))
            .await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("context_length")), "{b}");
    assert_eq!(metric_errors(&e), 2, "a stream's refusal is counted");
    // Embeddings the provider finds malformed: the same.
    let (st, b) = refused(json!({"model": "text-embedding-3-small", "input": []})).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("bad_request")), "{b}");
    assert_eq!(metric_errors(&e), 3, "an embeddings refusal is counted");
    assert_eq!(e.router.metrics().refused.load(std::sync::atomic::Ordering::Relaxed), 0, "not counted as unrouted");
    let rows = e.usage_rows(s);
    assert_eq!(rows.len(), 3, "each recorded once");
}

#[tokio::test]
async fn embeddings_stop_on_a_content_filter_refusal_as_chat_does() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Two Keys Studio", Tier::Scale, AiMode::Client, &[]);
    let _a1 = e.client_account(s, "Primary", DEMO_CLIENT_OPENAI_KEY);
    let _a2 = e.client_account(s, "Backup", CLIENT2_KEY);
    let t = e.token(s, false);
    let r = e.post("/embeddings", &t, json!({"model": "text-embedding-3-small", "input": ["[sim:content_filter] the guest list"]})).await;
    let (st, b) = json_of(r).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("content_filtered")), "{b}");
    assert_eq!(b["error"]["type"], "invalid_request_error");
    // Another route would say the same: neither the backup nor platform AI is asked.
    assert_eq!(e.sim.requests("openai-client"), 1);
    assert_eq!(e.sim.requests("openai-client-2"), 0, "no failover on a content-filter refusal");
    assert_eq!(e.sim.requests("openai-platform"), 0);
    assert_eq!(metric_errors(&e), 1);
    // A clean input is served by the primary as usual.
    let r = e.post("/embeddings", &t, json!({"model": "text-embedding-3-small", "input": "a clean one"})).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_router_given_no_runtime_does_its_background_work_inline_and_one_given_a_runtime_uses_it() {
    let e = env(RouterConfig::default()).await;
    let breaker_audits = |e: &Env| {
        e.store
            .audit_entries(&switchboard::store::AuditFilter { action_prefix: Some("breaker.".into()), ..Default::default() })
            .unwrap()
            .len()
    };
    // As the CLI's bookkeeping builds one: no runtime given, so its audit
    // line is written before `force_breaker` returns.
    let offline = Router::new(
        e.store.clone(),
        Providers::new(ProvidersConfig::default()).unwrap(),
        Arc::new(PricingTable::builtin()),
        Arc::new(e.clock.clone()),
        Ledger::start(&e.store).unwrap(),
        RouterConfig::default(),
        None,
    )
    .unwrap();
    offline.force_breaker(e.platform_openai, true);
    assert_eq!(breaker_audits(&e), 1, "written inline");
    // The gateway's router was given this test's runtime: its write runs there.
    e.router.force_breaker(e.platform_openai, true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while breaker_audits(&e) < 2 {
        assert!(std::time::Instant::now() < deadline, "the background audit write never ran");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn every_refusal_has_its_status_and_openai_error_shape() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Velvet Vow Events", Tier::Starter, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let revoked = e.token(s, true);
    let url = format!("{}/chat/completions", e.gw.base_url());

    let check = |status: u16, body: &Value, want_status: u16, want_code: &str| {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["error"]["code"], want_code, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10);
        assert!(body["error"]["type"].is_string());
    };
    let r = e.http.post(&url).bearer_auth(&t).body("{not json").send().await.unwrap();
    let (st, b) = json_of(r).await;
    check(st, &b, 400, "invalid_request");
    let (st, b) = json_of(e.post("/chat/completions", &t, json!({"model": "gpt-4o-mini"})).await).await;
    check(st, &b, 400, "invalid_request");
    assert!(b["error"]["message"].as_str().unwrap().contains("messages"), "{b}");
    let (st, b) = json_of(e.chat("sbk_nope", "gpt-4o-mini", "hi").await).await;
    check(st, &b, 401, "invalid_api_key");
    let (st, b) = json_of(e.http.post(&url).json(&json!({})).send().await.unwrap()).await;
    check(st, &b, 401, "invalid_api_key");
    let (st, b) = json_of(e.chat(&revoked, "gpt-4o-mini", "hi").await).await;
    check(st, &b, 403, "token_revoked");
    let (st, b) = json_of(e.chat(&t, "gpt-7-ultra", "hi").await).await;
    check(st, &b, 404, "model_not_found");
    let big = "x".repeat(gateway::MAX_BODY_BYTES + 10);
    let (st, b) = json_of(e.http.post(&url).bearer_auth(&t).body(big).send().await.unwrap()).await;
    check(st, &b, 413, "request_too_large");
    let r = e
        .http
        .post(&url)
        .bearer_auth(&t)
        .header("X-Switchboard-Request-Type", "poetry")
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let (st, b) = json_of(r).await;
    check(st, &b, 400, "invalid_request");
    assert!(b["error"]["message"].as_str().unwrap().contains("email_template"));

    // Rate limit: Starter is 60/min ×1.5 in June = 90/min with a burst of 22; the clock stands still.
    let mut limited = None;
    for i in 0..40 {
        let r = e.chat(&t, "gpt-4o-mini", "hi").await;
        if r.status() == 429 {
            let ra: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(ra >= 1);
            limited = Some((i, json_of(r).await.1));
            break;
        }
    }
    let (i, b) = limited.expect("the rate limit must refuse a burst");
    assert_eq!(i, 22);
    assert_eq!(b["error"]["code"], "rate_limit_exceeded");
    e.clock.advance(Duration::seconds(60));

    // All routes down: 502/503 listing each route's reason.
    e.sim.set_outage("openai-platform", true);
    e.sim.set_outage("anthropic-platform", true);
    let (st, b) = json_of(e.chat(&t, "gpt-4o-mini", "hi").await).await;
    assert!(st == 502 || st == 503, "{st} {b}");
    assert_eq!(b["error"]["code"], "all_routes_failed");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("WedSync OpenAI") && msg.contains("WedSync Anthropic"), "{msg}");
    // 404 for unknown endpoints, in the same shape.
    let r = e.http.get(format!("{}/nope", e.gw.base_url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn quota_is_enforced_with_reset_time_except_on_wedding_days() {
    let mut cfg = RouterConfig::default();
    cfg.quota.starter_tokens = 400; // ×1.5 in June = 600
    let e = env(cfg).await;
    let wedding = june().date_naive();
    let s = e.supplier("Starter Studio", Tier::Starter, AiMode::Platform, &[]);
    let w = e.supplier("Wedding Day Studio", Tier::Starter, AiMode::Platform, &[wedding]);
    let (ts, tw) = (e.token(s, false), e.token(w, false));
    let mut events = e.router.subscribe_events();
    let mut refused = None;
    for _ in 0..30 {
        let r = e.chat(&ts, "gpt-4o-mini", "Write a long welcome email for our couples please").await;
        if r.status() == 429 {
            refused = Some(json_of(r).await.1);
            break;
        }
        e.clock.advance(Duration::seconds(2));
    }
    let b = refused.expect("quota must run out");
    assert_eq!(b["error"]["code"], "quota_exceeded");
    assert!(b["error"]["message"].as_str().unwrap().contains("2026-07-01"), "{b}");
    let (used, reserved, quota) = e.router.quota_snapshot(s).unwrap();
    assert_eq!((reserved, quota), (0, 600));
    assert!(used <= 600, "never over the quota: {used}");
    // The 90 % warning was raised.
    let mut warned = false;
    while let Ok(ev) = events.try_recv() {
        warned |= matches!(ev, switchboard::engine::router::RouterEvent::QuotaWarning { supplier, .. } if supplier == s);
    }
    assert!(warned);
    // On its wedding day a supplier is never refused for quota: the overage is recorded.
    let mut events = e.router.subscribe_events();
    for _ in 0..30 {
        let r = e.chat(&tw, "gpt-4o-mini", "Write a long welcome email for our couples please").await;
        assert_eq!(r.status(), 200);
        e.clock.advance(Duration::seconds(2));
    }
    assert!(e.router.quota_snapshot(w).unwrap().0 > 600, "overage recorded");
    // ... and alerted: once when it goes over, then at most once a minute with
    // the latest figures, not once per request.
    let mut exceeded = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let switchboard::engine::router::RouterEvent::QuotaExceeded { supplier, used, wedding_day, .. } = ev {
            assert_eq!(supplier, w);
            exceeded.push((used, wedding_day));
        }
    }
    assert!((1..=2).contains(&exceeded.len()), "{exceeded:?}");
    assert!(exceeded.iter().all(|&(used, wedding)| used > 600 && wedding), "{exceeded:?}");
}

#[tokio::test]
async fn near_its_quota_a_request_is_measured_with_the_tokenizer_not_its_length() {
    // Far from the quota a request reserves a cheap bound (its prompt's bytes);
    // near it, the tokenizer's count decides. This prompt is about 550 bytes
    // but about 120 tokens: with 300 tokens left it must still be served.
    let mut cfg = RouterConfig::default();
    cfg.quota.starter_tokens = 200; // ×1.5 in June = 300
    let e = env(cfg).await;
    let s = e.supplier("Near Quota Studio", Tier::Starter, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let prompt = "The ceremony starts at four; photos by the lake after. ".repeat(10);
    let r = e.chat(&t, "gpt-4o-mini", &prompt).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (used, reserved, quota) = e.router.quota_snapshot(s).unwrap();
    assert_eq!((reserved, quota), (0, 300));
    assert!(used > 0 && used <= quota, "{used}");
    // The next one does not fit any more, however it is counted.
    e.clock.advance(Duration::seconds(2));
    let r = e.chat(&t, "gpt-4o-mini", &prompt).await;
    assert_eq!(r.status(), 429);
    assert!(e.router.quota_snapshot(s).unwrap().0 <= quota);
}

#[tokio::test]
async fn sixty_four_concurrent_clients_cannot_overrun_the_quota() {
    let mut cfg = RouterConfig::default();
    cfg.quota.professional_tokens = 4_000; // 6,000 in June
    let e = Arc::new(env(cfg).await);
    let s = e.supplier("Race Studio", Tier::Professional, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (e, t) = (e.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for j in 0..6 {
                let r = e.chat(&t, "gpt-4o-mini", &format!("client {i} request {j}: write a short note")).await;
                match r.status().as_u16() {
                    200 => ok += 1,
                    429 => {}
                    s => panic!("unexpected status {s}"),
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert!(ok > 0);
    let (used, reserved, quota) = e.router.quota_snapshot(s).unwrap();
    assert_eq!(reserved, 0);
    // Reservations include max_tokens (50) plus the prompt, so no request can push past the quota.
    assert!(used <= quota, "used {used} > quota {quota}");
    let ledger: i64 = e.usage_rows(s).iter().filter(|r| r.2 == 0).map(|r| r.3).sum();
    assert_eq!(ledger as u64, used, "the ledger agrees with the counter");
}

#[tokio::test]
async fn client_outage_fails_over_to_platform_and_returns_by_itself() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Grand Ballroom", Tier::Scale, AiMode::Client, &[]);
    let acc = e.client_account(s, "Ballroom OpenAI", DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    assert_eq!(e.chat(&t, "gpt-4o-mini", "before").await.headers()["x-switchboard-route"], "client");

    e.sim.set_outage("openai-client", true);
    let mut routes = Vec::new();
    for i in 0..20 {
        let r = e.chat(&t, "gpt-4o-mini", &format!("during outage {i}")).await;
        assert_eq!(r.status(), 200, "no client request fails during the switch");
        routes.push(r.headers()["x-switchboard-route"].to_str().unwrap().to_string());
        e.clock.advance(Duration::seconds(1));
    }
    assert!(routes.iter().all(|r| r == "failover"), "{routes:?}");
    let states = e.router.breaker_states();
    let (_, st) = states.iter().find(|(a, _)| a.id == acc).unwrap();
    assert_eq!(st.name(), "open");
    // The open breaker keeps traffic off the dead account (no more requests to it).
    let before = e.sim.requests("openai-client");
    e.chat(&t, "gpt-4o-mini", "still out").await;
    assert_eq!(e.sim.requests("openai-client"), before);

    // The provider recovers; after the open period a trial goes through and traffic returns.
    e.sim.set_outage("openai-client", false);
    e.clock.advance(Duration::seconds(31));
    let r = e.chat(&t, "gpt-4o-mini", "after").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchboard-route"], "client");
    assert_eq!(e.chat(&t, "gpt-4o-mini", "after 2").await.headers()["x-switchboard-route"], "client");

    // Every step is in the audit log.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let actions: Vec<String> = e.store.audit_entries(&Default::default()).unwrap().into_iter().map(|a| a.action).rev().collect();
    let pos = |a: &str| actions.iter().position(|x| x == a).unwrap_or_else(|| panic!("{a} missing from {actions:?}"));
    assert!(pos("failover.start") < pos("breaker.open") || pos("breaker.open") < pos("failover.end"));
    assert!(pos("breaker.close") <= pos("failover.end"));
    // Failover usage is recorded as such, and counts against the platform quota.
    let rows = e.usage_rows(s);
    assert!(rows.iter().filter(|r| r.1 == 2).count() >= 20, "failover rows");
    assert!(e.router.quota_snapshot(s).unwrap().0 > 0);
}

#[tokio::test]
async fn a_missing_azure_deployment_fails_over_instead_of_failing_the_request() {
    // The deployment is the account's setting: a 404 DeploymentNotFound means
    // the account is misconfigured, not that the client asked for something wrong.
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Azure Typo Bakery", Tier::Scale, AiMode::Client, &[]);
    let acc = e
        .store
        .insert_account(
            &NewAccount {
                owner: AccountOwner::Supplier(s),
                provider: ProviderKind::AzureOpenAi,
                label: "Bakery Azure".into(),
                base_url: e.sim.base_url().to_string(),
                azure: Some(switchboard::domain::AzureConfig { deployment: "gpt-4o-mini-typo".into(), api_version: "2024-10-21".into() }),
                default_model: "gpt-4o-mini".into(),
            },
            june(),
        )
        .unwrap()
        .id;
    e.router.set_key(acc, Some(Secret::new(switchboard::sim::DEMO_AZURE_KEY)));
    e.router.reload().unwrap();
    let t = e.token(s, false);
    let r = e.chat(&t, "gpt-4o-mini", "a cake for 120 guests").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["x-switchboard-route"], "failover");
    assert_eq!(e.sim.requests("azure-platform"), 1, "asked once, not retried");
    let rows = e.usage_rows(s);
    assert_eq!(rows.last().unwrap().1, 2, "recorded as failover usage");
}

#[tokio::test]
async fn a_half_open_trial_whose_client_went_away_is_given_back() {
    // After the open period one trial request may reach the account. If its
    // client gives up mid-call, the gateway drops the request: the trial must
    // be given back, or the breaker waits for it, and keeps the account out
    // of service, for good.
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Trial Studio", Tier::Scale, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let state = |e: &Env| {
        let states = e.router.breaker_states();
        states.iter().find(|(a, _)| a.id == e.platform_openai).unwrap().1.name()
    };
    e.sim.set_outage("openai-platform", true);
    for i in 0..6 {
        // Served by the Anthropic platform account meanwhile.
        assert_eq!(e.chat(&t, "gpt-4o-mini", &format!("outage {i}")).await.status(), 200);
    }
    assert_eq!(state(&e), "open");
    e.sim.set_faults(
        "openai-platform",
        switchboard::sim::Faults {
            latency: switchboard::sim::Latency { median_ms: 3_000, sigma: 0.0, min_ms: 3_000 },
            ..Default::default()
        },
    );
    e.clock.advance(Duration::seconds(31));
    let gave_up = e
        .http
        .post(format!("{}/chat/completions", e.gw.base_url()))
        .bearer_auth(&t)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "the trial"}], "max_tokens": 20}))
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client gave up");
    e.sim.set_faults("openai-platform", switchboard::sim::Faults::default());
    // The gateway notices the closed connection and drops the request.
    let mut served_by = 0;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = e.chat(&t, "gpt-4o-mini", "after the trial").await;
        assert_eq!(r.status(), 200);
        served_by = e.usage_rows(s).last().unwrap().5;
        if served_by == e.platform_openai.0 {
            break;
        }
    }
    assert_eq!(served_by, e.platform_openai.0, "the next request was the trial, and it went to the recovered account");
    assert_eq!(state(&e), "closed");
}

#[tokio::test]
async fn a_client_supplier_may_forbid_platform_failover_and_uses_its_other_accounts_first() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Two Keys Venue", Tier::Scale, AiMode::Client, &[]);
    let _a1 = e.client_account(s, "Primary", DEMO_CLIENT_OPENAI_KEY);
    let a2 = e.client_account(s, "Backup", CLIENT2_KEY);
    let t = e.token(s, false);
    // The primary key is rate limited for 5 s. With another route left, that
    // wait is not worth it (the test's policy would wait up to 20 s).
    e.sim.set_faults("openai-client", switchboard::sim::Faults { rate_limit_rate: 1.0, retry_after_ms: 5_000, ..Default::default() });
    let started = std::time::Instant::now();
    let r = e.chat(&t, "gpt-4o-mini", "hi").await;
    assert_eq!(r.headers()["x-switchboard-route"], "client", "the supplier's other account first");
    assert_eq!(e.usage_rows(s).last().unwrap().5, a2.0);
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "failed over without waiting: {:?}", started.elapsed());
    assert_eq!(e.sim.requests("openai-client"), 1, "asked once");
    // Forbid platform failover, take the backup down too: the request fails with reasons.
    e.store
        .update_supplier(s, &switchboard::store::SupplierPatch { allow_platform_failover: Some(false), ..Default::default() }, june())
        .unwrap();
    e.router.reload().unwrap();
    e.sim.set_outage("openai-client-2", true);
    let before = (e.sim.requests("openai-client"), e.sim.requests("openai-client-2"));
    let (st, b) = json_of(e.chat(&t, "gpt-4o-mini", "hi").await).await;
    assert!(st >= 502, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("failover to platform AI is off"), "{b}");
    assert_eq!(e.sim.requests("openai-platform"), 0, "never onto platform AI");
    // The first account had a route after it (no retry-after wait); the last route was retried.
    assert_eq!((e.sim.requests("openai-client") - before.0, e.sim.requests("openai-client-2") - before.1), (1, 2));
}

#[tokio::test]
async fn metrics_and_health_endpoints() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Metrics Studio", Tier::Scale, AiMode::Platform, &[]);
    let t = e.token(s, false);
    e.chat(&t, "gpt-4o-mini", "hi").await;
    let m = e.http.get(format!("http://{}/metrics", e.gw.addr())).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("switchboard_requests_total{route=\"platform\",provider=\"openai\"} 1"), "{m}");
    assert!(m.contains("switchboard_request_duration_seconds_bucket"));
    assert!(m.contains("switchboard_breaker_state{account="));
    assert!(m.contains("switchboard_cost_micro_usd_total"));
    let h = e.http.get(format!("http://{}/healthz", e.gw.addr())).send().await.unwrap();
    assert_eq!(h.status(), 200);
}

fn python() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = match std::env::var_os("SWITCHBOARD_PYTHON") {
        Some(p) => std::path::PathBuf::from(p),
        None => root.join(".venv/bin/python"),
    };
    assert!(
        python.exists(),
        "no Python with the OpenAI SDK at {} (set SWITCHBOARD_PYTHON, or run scripts/test, which makes .venv with `pip install openai`)",
        python.display()
    );
    python
}

#[tokio::test]
async fn the_openai_python_sdk_works_through_the_gateway() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("SDK Studio", Tier::Scale, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/gateway_sdk.py");
    let out = tokio::process::Command::new(python())
        .arg(&script)
        .env("GATEWAY_BASE_URL", e.gw.base_url())
        .env("GATEWAY_TOKEN", &t)
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "the SDK script failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("plain ok") && stdout.contains("stream ok") && stdout.contains("errors ok"), "{stdout}");
    e.router.ledger().flush().await;
    assert!(e.usage_rows(s).len() >= 3);
}

// ---- Migrations and parallel tests (issue 7) ----

use switchboard::domain::Clock;
use switchboard::domain::migration::{Criteria, MigrationState, RouteTarget, Step};
use switchboard::engine::migrations::MigrationService;

impl Env {
    /// A client account ready to migrate to: key set and validated.
    fn validated_account(&self, supplier: SupplierId, key: &str) -> AccountId {
        let id = self.client_account(supplier, "Own OpenAI", key);
        self.store.set_account_key(id, Some("test-entry"), Some("sk-…0001")).unwrap();
        self.store.set_account_validation(id, switchboard::domain::ValidationStatus::Valid, "ok", june()).unwrap();
        self.router.reload().unwrap();
        id
    }

    /// Sends `n` requests; returns how many the new route served. Fails the
    /// test on any failed client request.
    async fn traffic(
        &self,
        token: &str,
        svc: &MigrationService,
        rx: &mut tokio::sync::broadcast::Receiver<switchboard::engine::router::AttemptOutcome>,
        n: usize,
    ) -> usize {
        let mut migrated = 0;
        for i in 0..n {
            let r = self.chat(token, "gpt-4o-mini", &format!("migration traffic {i}")).await;
            assert_eq!(r.status(), 200, "no client request fails during a migration");
            if r.headers()["x-switchboard-route"] == "migration" {
                migrated += 1;
            }
        }
        while let Ok(o) = rx.try_recv() {
            svc.observe(&o);
        }
        migrated
    }
}

#[tokio::test]
async fn a_clean_migration_moves_traffic_phase_by_phase_and_completes() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Capture Moments", Tier::Enterprise, AiMode::Platform, &[]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    let mut rx = e.router.subscribe_outcomes();
    let m = svc.start(s, RouteTarget::Account(acc), None, None).unwrap();
    for (phase, percent, minutes) in [(0usize, 5u32, 10i64), (1, 25, 20), (2, 75, 30), (3, 100, 15)] {
        // Enough requests that even 5 % gives the phase its minimum of 20 on the new route.
        let n = if percent < 25 { 1_000 } else { 400 };
        let migrated = e.traffic(&t, &svc, &mut rx, n).await as f64;
        let share = migrated * 100.0 / n as f64;
        // Binomial tolerance: 4 standard deviations.
        let p = percent as f64 / 100.0;
        let tol = 400.0 * (p * (1.0 - p) / n as f64).sqrt() + 100.0 / n as f64;
        assert!((share - percent as f64).abs() <= tol, "phase {}: {share:.1} % of traffic, expected {percent} % ± {tol:.1}", phase + 1);
        assert_eq!(svc.tick().unwrap(), vec![(m.id, Step::Stay)], "the phase lasts its minimum time");
        e.clock.advance(Duration::minutes(minutes));
        let step = svc.tick().unwrap();
        if phase < 3 {
            assert_eq!(step, vec![(m.id, Step::Advance { next: phase + 1 })]);
        } else {
            assert_eq!(step, vec![(m.id, Step::Complete)]);
        }
        e.clock.advance(Duration::seconds(60)); // stay clear of the rate limit
    }
    let done = e.store.migration(m.id).unwrap();
    assert_eq!(done.state, MigrationState::Completed);
    assert!(done.phases.iter().all(|p| p.outcome.as_deref() == Some("passed") && p.stats.requests >= 20));
    assert_eq!(e.store.supplier(s).unwrap().ai_mode, AiMode::Client, "the new route is the supplier's mode");
    assert_eq!(e.chat(&t, "gpt-4o-mini", "after").await.headers()["x-switchboard-route"], "client");
    let actions: Vec<String> = e.store.audit_entries(&Default::default()).unwrap().into_iter().map(|a| a.action).collect();
    for a in ["migration.start", "migration.phase", "migration.complete"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing");
    }
}

#[tokio::test]
async fn errors_on_the_new_route_roll_back_at_once_without_failing_a_request() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Grand Ballroom", Tier::Enterprise, AiMode::Platform, &[]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    let mut rx = e.router.subscribe_outcomes();
    let m = svc
        .start(
            s,
            RouteTarget::Account(acc),
            Some(vec![
                switchboard::domain::migration::PhasePlan { percent: 50, min_secs: 600 },
                switchboard::domain::migration::PhasePlan { percent: 100, min_secs: 600 },
            ]),
            None,
        )
        .unwrap();
    e.sim.update_faults("openai-client", |f| f.error_rate = 0.5);
    e.traffic(&t, &svc, &mut rx, 200).await;
    let steps = svc.tick().unwrap();
    assert!(matches!(&steps[0].1, Step::Rollback { reason } if reason.contains("error rate")), "{steps:?}");
    let m = e.store.migration(m.id).unwrap();
    assert_eq!(m.state, MigrationState::RolledBack);
    assert!(m.reason.unwrap().contains("above 10.0 %"));
    assert!(e.router.split(s).is_none(), "all traffic back on the old route");
    for i in 0..20 {
        let r = e.chat(&t, "gpt-4o-mini", &format!("after rollback {i}")).await;
        assert_eq!(r.headers()["x-switchboard-route"], "platform");
    }
    assert!(e.store.open_recommendations().unwrap().iter().any(|r| r.kind == "migration_rolled_back"));
}

#[tokio::test]
async fn slow_responses_on_the_new_route_roll_back() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Slow Venue", Tier::Enterprise, AiMode::Platform, &[]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    let mut rx = e.router.subscribe_outcomes();
    // The default criterion is p95 < 2 s; scaled to 100 ms here so the test stays quick.
    let criteria = Criteria { max_p95_ms: 100, ..Criteria::default() };
    let phases = vec![switchboard::domain::migration::PhasePlan { percent: 100, min_secs: 600 }];
    let m = svc.start(s, RouteTarget::Account(acc), Some(phases), Some(criteria)).unwrap();
    e.sim.update_faults("openai-client", |f| f.latency = switchboard::sim::Latency { median_ms: 160, sigma: 0.0, min_ms: 160 });
    e.traffic(&t, &svc, &mut rx, 25).await;
    let steps = svc.tick().unwrap();
    assert!(matches!(&steps[0].1, Step::Rollback { reason } if reason.contains("p95")), "{steps:?}");
    assert_eq!(e.store.migration(m.id).unwrap().state, MigrationState::RolledBack);
}

#[tokio::test]
async fn weddings_block_starts_and_phase_changes_for_48_hours() {
    let e = env(RouterConfig::default()).await;
    let wedding = (june() + Duration::days(1)).date_naive();
    let s = e.supplier("Busy Planner", Tier::Enterprise, AiMode::Platform, &[wedding]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    let err = svc.start(s, RouteTarget::Account(acc), None, None).unwrap_err().to_string();
    assert!(err.contains("wedding within 48 h") && err.contains("2026-06-14 00:00 UTC"), "{err}");
    let plan = svc.plan(s, RouteTarget::Account(acc), None).unwrap();
    assert_eq!(plan.earliest_start, Utc.with_ymd_and_hms(2026, 6, 14, 0, 0, 0).unwrap());
    // Start once allowed; a phase that ends just inside the next wedding's guard waits for the window.
    let later = e.supplier("Later Planner", Tier::Enterprise, AiMode::Platform, &[(june() + Duration::days(3)).date_naive()]);
    let acc2 = e.validated_account(later, CLIENT2_KEY);
    let t2 = e.token(later, false);
    let mut rx = e.router.subscribe_outcomes();
    let m = svc
        .start(
            later,
            RouteTarget::Account(acc2),
            Some(vec![
                switchboard::domain::migration::PhasePlan { percent: 100, min_secs: 600 },
                switchboard::domain::migration::PhasePlan { percent: 100, min_secs: 600 },
            ]),
            None,
        )
        .unwrap();
    e.traffic(&t2, &svc, &mut rx, 30).await;
    e.clock.advance(Duration::hours(13)); // now inside the 48 h guard of 13 June
    let steps = svc.tick().unwrap();
    assert!(matches!(steps.iter().find(|(id, _)| *id == m.id).unwrap().1, Step::WaitForWindow { .. }), "{steps:?}");
    assert_eq!(e.store.migration(m.id).unwrap().phase, 0, "no phase begins inside the window");
}

#[tokio::test]
async fn a_migration_resumes_after_a_crash_with_its_phase_and_figures() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Crashy Caterer", Tier::Enterprise, AiMode::Platform, &[]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let id = {
        let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
        let mut rx = e.router.subscribe_outcomes();
        let m = svc.start(s, RouteTarget::Account(acc), None, None).unwrap();
        e.traffic(&t, &svc, &mut rx, 1_000).await;
        e.clock.advance(Duration::minutes(10));
        assert_eq!(svc.tick().unwrap(), vec![(m.id, Step::Advance { next: 1 })]); // → phase 2 (25 %)
        e.clock.advance(Duration::seconds(60));
        e.traffic(&t, &svc, &mut rx, 200).await;
        e.clock.advance(Duration::minutes(5));
        svc.tick().unwrap(); // figures persisted
        m.id
        // the service is dropped here without any shutdown: a crash
    };
    e.router.set_split(s, None);
    let before = e.store.migration(id).unwrap();
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    let m = &svc.active()[0];
    assert_eq!(m.id, id);
    assert_eq!(m.phase, 1);
    assert_eq!(m.phases[1].stats, before.phases[1].stats);
    assert!(m.phases[1].stats.requests > 0);
    // Phase 2 began, then 1 + 5 minutes passed before the crash.
    assert_eq!(m.phase_elapsed_secs(e.clock.now()), 6 * 60, "elapsed time intact");
    assert_eq!(e.router.split(s).map(|x| x.percent), Some(25), "the split is restored");
    // Pause stops the phase clock; resume continues it.
    svc.pause(id).unwrap();
    e.clock.advance(Duration::hours(2));
    svc.resume(id).unwrap();
    assert_eq!(svc.active()[0].phase_elapsed_secs(e.clock.now()), 6 * 60);
    svc.abort(id).unwrap();
    assert!(e.router.split(s).is_none());
}

#[tokio::test]
async fn a_parallel_test_projects_the_saving_by_hand_computation() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Perfect Day Planning", Tier::Professional, AiMode::Platform, &[(june() + Duration::days(1)).date_naive()]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    // The platform account answers with gpt-4o; the candidate with gpt-4o-mini.
    e.store.with_conn(|c| c.execute("UPDATE provider_accounts SET default_model = 'gpt-4o' WHERE id = ?1", [e.platform_openai.0])).unwrap();
    e.router.reload().unwrap();
    // The last 30 days: 1,000,000 fresh input, 200,000 cached input, 500,000 output tokens.
    let usage = switchboard::domain::TokenUsage { input: 1_000_000, cached_read: 200_000, output: 500_000, ..Default::default() };
    e.store
        .append_usage(&[switchboard::domain::UsageEvent {
            request_id: "history-1".into(),
            ts: june() - Duration::days(3),
            supplier_id: s,
            account_id: Some(e.platform_openai),
            provider: ProviderKind::OpenAi,
            model: "gpt-4o".into(),
            request_type: switchboard::domain::RequestType::EmailTemplate,
            route: switchboard::domain::Route::Platform,
            usage,
            cost: switchboard::domain::Micros(7_750_000),
            latency_ms: 800,
            status: switchboard::domain::UsageStatus::Ok,
            error_class: None,
        }])
        .unwrap();
    let r = switchboard::engine::parallel::run(&e.router, s, acc, &[]).await.unwrap();
    // gpt-4o:      1.0M × $2.50 + 0.2M × $1.25 + 0.5M × $10.00 = $2.50 + $0.25 + $5.00 = $7.75
    // gpt-4o-mini: 1.0M × $0.15 + 0.2M × $0.075 + 0.5M × $0.60 = $0.15 + $0.015 + $0.30 = $0.465
    assert_eq!(r.current.projected_monthly_cost, switchboard::domain::Micros(7_750_000));
    assert_eq!(r.candidate.projected_monthly_cost, switchboard::domain::Micros(465_000));
    assert_eq!(r.projected_monthly_saving, switchboard::domain::Micros(7_285_000));
    assert_eq!((r.current.requests, r.current.successes), (8, 8));
    assert_eq!((r.candidate.requests, r.candidate.successes), (8, 8));
    assert!(r.current.cost_per_request > r.candidate.cost_per_request);
    assert!(r.candidate.p50_ms <= r.candidate.p95_ms);
    // The wedding tomorrow pushes the suggested start past its 48 h guard.
    assert_eq!(r.suggested_start, Utc.with_ymd_and_hms(2026, 6, 14, 0, 0, 0).unwrap());
    assert!(r.recommendation.as_deref().unwrap().contains("cheaper"));
    // Both copies are shadow usage and never touch the quota.
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).iter().filter(|r| r.1 == 4).count(), 16);
    assert_eq!(e.router.quota_snapshot(s).unwrap().1, 0);
    assert_eq!(e.store.parallel_tests(Some(s)).unwrap().len(), 1);
}

#[test]
fn the_migrate_commands_plan_start_pause_and_roll_back() {
    let (_dir, db, store, s, acc) = cli_db("CLI Planner", "Own");
    let run = |args: &[&str]| sb(&db).args(args).output().unwrap();
    let to = format!("account:{}", acc.id);
    let sid = s.id.to_string();
    let out = run(&["migrate", "plan", "--supplier", &sid, "--to", &to]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no key yet"), "{}", String::from_utf8_lossy(&out.stderr));
    store.set_account_key(acc.id, Some("entry"), Some("sk-…0001")).unwrap();
    store.set_account_validation(acc.id, switchboard::domain::ValidationStatus::Valid, "ok", Utc::now()).unwrap();
    let out = run(&["migrate", "plan", "--supplier", &sid, "--to", &to]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("5 % of traffic") && text.contains("100 % of traffic"), "{text}");
    let out = run(&["migrate", "start", "--supplier", &sid, "--to", &to, "--plan", "10:5m,100:5m"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["migrate", "start", "--supplier", &sid, "--to", &to]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has migration"));
    assert!(run(&["migrate", "pause", "1"]).status.success());
    let status: Value = serde_json::from_slice(&run(&["migrate", "status", "--json"]).stdout).unwrap();
    assert_eq!(status[0]["state"], "paused");
    assert_eq!(status[0]["phases"][0]["percent"], 10);
    assert!(run(&["migrate", "rollback", "1", "--reason", "changed our mind"]).status.success());
    let m = store.migration(1).unwrap();
    assert_eq!(m.state, MigrationState::RolledBack);
    assert_eq!(m.reason.as_deref(), Some("changed our mind"));
    let out = run(&["migrate", "start", "--supplier", &sid, "--to", "somewhere"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("write `platform` or `account:ID`"));
    let out = run(&["migrate", "start", "--supplier", &sid, "--to", &to, "--plan", "50:5m,20:5m"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must not decrease"));
}

/// A database file for CLI tests: a Scale platform-AI planner with one account
/// of its own on an address nothing listens on.
fn cli_db(
    name: &str,
    label: &str,
) -> (tempfile::TempDir, std::path::PathBuf, Store, switchboard::domain::Supplier, switchboard::domain::ProviderAccount) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let store = Store::open(&db).unwrap();
    let s = store.insert_supplier(&NewSupplier::new(name, VendorType::Planner, Tier::Scale, AiMode::Platform), Utc::now()).unwrap();
    let n = NewAccount {
        owner: AccountOwner::Supplier(s.id),
        provider: ProviderKind::OpenAi,
        label: label.into(),
        base_url: "http://127.0.0.1:9".into(),
        azure: None,
        default_model: "gpt-4o-mini".into(),
    };
    let acc = store.insert_account(&n, Utc::now()).unwrap();
    (dir, db, store, s, acc)
}

#[test]
fn recommendations_are_listed_and_dismissed_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let store = Store::open(&db).unwrap();
    let s = store
        .insert_supplier(&NewSupplier::new("Meadow Florals", VendorType::Florist, Tier::Starter, AiMode::Platform), Utc::now())
        .unwrap();
    store.recommend(s.id, "move_to_client_ai", "Meadow Florals has used 92 % of this month's platform quota", Utc::now()).unwrap();
    let run = |args: &[&str]| sb(&db).args(args).output().unwrap();
    let out = run(&["recommendations"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("move_to_client_ai") && text.contains("92 %"), "{text}");
    let out = run(&["recommendations", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = list[0]["id"].as_i64().unwrap();
    assert_eq!(list[0]["supplier_id"].as_i64(), Some(s.id.0));
    let out = run(&["recommendations", "dismiss", &id.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(store.open_recommendations().unwrap().is_empty());
    let out = run(&["recommendations", "dismiss", &id.to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("there is no open recommendation {id}")));
    let audit = store.audit_entries(&switchboard::store::AuditFilter::default()).unwrap();
    assert!(audit.iter().any(|a| a.action == "recommendation.dismiss" && a.supplier_id == Some(s.id)));
}

#[tokio::test]
async fn a_mirror_compares_a_sample_of_live_traffic_without_touching_the_answers_or_the_quota() {
    use switchboard::engine::parallel::{MirrorPlan, finish_mirror, start_mirror};
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Lumen Studio", Tier::Professional, AiMode::Platform, &[]);
    let own = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    // Mirroring to the route that already serves the supplier is refused.
    let plan = MirrorPlan { sample_percent: 100, requests: 6, duration: Duration::days(1) };
    let err = start_mirror(&e.store, s, e.platform_openai, plan, e.clock.now()).unwrap_err();
    assert!(err.to_string().contains("already serves Lumen Studio's requests"), "{err}");
    let m = start_mirror(&e.store, s, own, plan, e.clock.now()).unwrap();
    let err = start_mirror(&e.store, s, own, plan, e.clock.now()).unwrap_err();
    assert!(err.to_string().contains("already has live traffic mirrored"), "{err}");
    e.router.reload().unwrap();

    // Eight live requests, three of them streamed: every answer comes from
    // platform AI as before; six copies go to the candidate (streams once
    // they have completed, as plain requests).
    for i in 0..8 {
        let text = format!("Write a thank-you note, number {i}");
        if i % 3 == 1 {
            let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": text}]});
            let r = e.post("/chat/completions", &t, body).await;
            assert_eq!(r.status(), 200);
            assert!(r.text().await.unwrap().contains("[DONE]"), "the stream is answered whole");
        } else {
            let (st, b) = json_of(e.chat(&t, "gpt-4o-mini", &text).await).await;
            assert_eq!(st, 200, "{b}");
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while e.router.mirrors_due(e.clock.now()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the copies were not recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    e.router.ledger().flush().await;
    let rows = e.usage_rows(s);
    let shadow: Vec<_> = rows.iter().filter(|r| r.1 == Route::Shadow.code()).collect();
    let live: Vec<_> = rows.iter().filter(|r| r.1 == Route::Platform.code()).collect();
    assert_eq!((live.len(), shadow.len()), (8, 6), "the sample stops at the mirror's six requests");
    let mut originals: Vec<&str> = shadow
        .iter()
        .map(|c| {
            assert_eq!(c.5, own.0, "copies go to the candidate");
            c.0.strip_prefix(&format!("m{}~", m.id)).expect("a copy's id names its original")
        })
        .collect();
    originals.sort();
    let mut first_six: Vec<&str> = live[..6].iter().map(|l| l.0.as_str()).collect();
    first_six.sort();
    assert_eq!(originals, first_six, "the first six requests are copied, the two streams among them");
    let live_tokens: i64 = live.iter().map(|r| r.3).sum();
    assert_eq!(e.router.quota_snapshot(s).unwrap().0 as i64, live_tokens, "copies never count against the quota");

    // The runtime's tick writes the report from the ledger.
    switchboard::engine::runtime::finish_due_mirrors(&e.router, e.clock.now()).await;
    let done = e.store.mirror(m.id).unwrap().unwrap();
    assert_eq!(done.state, "done", "{done:?}");
    let tests = e.store.parallel_tests(Some(s)).unwrap();
    assert_eq!(tests.len(), 1);
    assert_eq!(done.report_id, Some(tests[0].0));
    let r: switchboard::engine::parallel::ParallelReport = serde_json::from_str(&tests[0].1).unwrap();
    assert_eq!((r.current.account_id, r.candidate.account_id), (e.platform_openai, own));
    assert_eq!((r.current.requests, r.candidate.requests, r.candidate.successes), (6, 6, 6));
    assert!(r.candidate.avg_output_tokens > 0 && r.current.cost_per_request.0 > 0);
    let audit: Vec<String> = e.store.audit_entries(&Default::default()).unwrap().into_iter().map(|a| a.action).collect();
    assert!(audit.iter().any(|a| a == "parallel_test.mirror_start") && audit.iter().any(|a| a == "parallel_test.mirror_done"), "{audit:?}");
    // Ending it twice does nothing; later traffic is not mirrored.
    assert!(finish_mirror(&e.store, e.router.pricing(), m.id, e.clock.now(), "again", true).unwrap().is_none());
    assert!(e.router.mirrors_due(e.clock.now()).is_empty());
    assert_eq!(json_of(e.chat(&t, "gpt-4o-mini", "one more").await).await.0, 200);
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).iter().filter(|r| r.1 == Route::Shadow.code()).count(), 6);

    // A mirror that sees no traffic ends at its deadline without a report.
    let quiet = start_mirror(&e.store, s, own, MirrorPlan { duration: Duration::minutes(30), ..plan }, e.clock.now()).unwrap();
    e.router.reload().unwrap();
    e.clock.advance(Duration::minutes(31));
    assert_eq!(e.router.mirrors_due(e.clock.now()), vec![(quiet.id, "the mirror's time ran out")]);
    switchboard::engine::runtime::finish_due_mirrors(&e.router, e.clock.now()).await;
    let q = e.store.mirror(quiet.id).unwrap().unwrap();
    assert_eq!((q.state.as_str(), q.report_id), ("expired", None));
    assert!(q.reason.unwrap().contains("no live request had been mirrored"));
    assert_eq!(e.store.parallel_tests(Some(s)).unwrap().len(), 1);
}

#[test]
fn a_live_traffic_mirror_is_started_and_stopped_on_the_command_line() {
    let (_dir, db, store, s, acc) = cli_db("Fern Planning", "Fern OpenAI");
    let run = |args: &[&str]| sb(&db).args(args).output().unwrap();
    let (sid, aid) = (s.id.to_string(), acc.id.to_string());
    let out = run(&["parallel-test", "--supplier", &sid, "--account", &aid, "--mirror"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("disabled or has no key"), "{}", String::from_utf8_lossy(&out.stderr));
    store.set_account_key(acc.id, Some("entry"), Some("sk-…0001")).unwrap();
    let out = run(&["parallel-test", "--supplier", &sid, "--account", &aid, "--mirror", "--sample", "150"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("choose 1 to 100 %"), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        run(&["parallel-test", "--supplier", &sid, "--account", &aid, "--mirror", "--sample", "10", "--requests", "20", "--days", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Mirror 1 started: 10 % of supplier") && text.contains("until 20 are compared"),
        "{text}"
    );
    let m = store.mirror(1).unwrap().unwrap();
    assert_eq!((m.state.as_str(), m.sample_percent, m.target_requests), ("running", 10, 20));
    assert_eq!((m.ends_at - m.created_at).num_days(), 2);
    let out = run(&["parallel-test", "--stop-mirror", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("no live request had been mirrored"), "{text}");
    assert_eq!(store.mirror(1).unwrap().unwrap().state, "stopped");
    let out = run(&["parallel-test", "--stop-mirror", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not running (it is stopped)"));
}

#[tokio::test]
async fn a_mirror_resumes_its_count_from_the_ledger_after_a_restart() {
    use switchboard::engine::parallel::{MirrorPlan, start_mirror};
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Oak Hall Venue", Tier::Scale, AiMode::Platform, &[]);
    let own = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let m = start_mirror(&e.store, s, own, MirrorPlan { sample_percent: 100, requests: 10, duration: Duration::days(1) }, e.clock.now())
        .unwrap();
    e.router.reload().unwrap();
    for i in 0..4 {
        assert_eq!(json_of(e.chat(&t, "gpt-4o-mini", &format!("menu idea {i}")).await).await.0, 200);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while e.store.mirror_copies(m.id).unwrap() < 4 {
        assert!(std::time::Instant::now() < deadline, "four copies expected");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // "Restart": a new router over the same database adopts the running mirror with its four copies.
    let providers = Providers::new(ProvidersConfig::default()).unwrap();
    let clock: Arc<dyn switchboard::domain::Clock> = Arc::new(e.clock.clone());
    let r2 = Router::new(
        e.store.clone(),
        providers,
        Arc::new(PricingTable::builtin()),
        clock,
        Ledger::start(&e.store).unwrap(),
        RouterConfig::default(),
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    r2.set_key(e.platform_openai, Some(Secret::new(DEMO_OPENAI_KEY)));
    r2.set_key(own, Some(Secret::new(DEMO_CLIENT_OPENAI_KEY)));
    assert!(r2.mirrors_due(e.clock.now()).is_empty(), "4 of 10 compared");
    for i in 0..8 {
        let req = switchboard::providers::ChatRequest::simple("gpt-4o-mini", &format!("seating plan {i}"));
        r2.chat(Some(t.as_str()), None, None, req).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r2.mirrors_due(e.clock.now()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the mirror did not fill up after the restart");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    r2.ledger().flush().await;
    assert_eq!(e.store.mirror_copies(m.id).unwrap(), 10, "the count went on from the ledger's four, and stopped at ten");
    switchboard::engine::runtime::finish_due_mirrors(&r2, e.clock.now()).await;
    let (row_id, json) = e.store.parallel_tests(Some(s)).unwrap().remove(0);
    let r: switchboard::engine::parallel::ParallelReport = serde_json::from_str(&json).unwrap();
    assert_eq!((r.current.requests, r.candidate.requests), (10, 10), "pairs from both processes are in the report");
    assert_eq!(r.id, row_id, "the stored report carries its own row id");
}

#[tokio::test]
async fn a_mirror_shows_the_candidate_answering_when_every_current_route_fails() {
    use switchboard::engine::parallel::{MirrorPlan, start_mirror};
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Rose Garden Venue", Tier::Scale, AiMode::Platform, &[]);
    let own = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    start_mirror(&e.store, s, own, MirrorPlan { sample_percent: 100, requests: 4, duration: Duration::days(1) }, e.clock.now()).unwrap();
    e.router.reload().unwrap();
    e.sim.set_outage("openai-platform", true);
    e.sim.set_outage("anthropic-platform", true);
    for i in 0..4 {
        let (st, b) = json_of(e.chat(&t, "gpt-4o-mini", &format!("toast idea {i}")).await).await;
        assert!(st == 502 || st == 503, "{st} {b}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while e.router.mirrors_due(e.clock.now()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the copies were not recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    switchboard::engine::runtime::finish_due_mirrors(&e.router, e.clock.now()).await;
    let r: switchboard::engine::parallel::ParallelReport = serde_json::from_str(&e.store.parallel_tests(Some(s)).unwrap()[0].1).unwrap();
    assert_eq!((r.current.successes, r.current.requests), (0, 4));
    assert_eq!((r.candidate.successes, r.candidate.requests), (4, 4));
    assert_eq!(r.current.p50_ms, 0, "failed requests have no answer latency");
    let rec = r.recommendation.expect("the candidate answered what the current route could not");
    assert!(rec.contains("more reliable") && rec.contains("4 of 4 answered vs 0 of 4"), "{rec}");
}
