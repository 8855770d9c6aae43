//! The routing gateway end to end: real HTTP over loopback into the gateway,
//! real HTTP from the router to the provider simulator, a real SQLite ledger,
//! and a manual clock for breakers, rate limits and quotas.

use crate::support::{fast_providers, june, python, sb, sim_account};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::domain::Secret;
use switchboard::domain::{
    AccountId, AccountOwner, AiMode, ManualClock, NewSupplier, PricingTable, ProviderKind, Route, SupplierId, Tier, UsageStatus, VendorType,
};
use switchboard::engine::gateway_tokens as tokens;
use switchboard::engine::ledger::Ledger;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::gateway::{self, GatewayHandle};
use switchboard::providers::{Providers, ProvidersConfig};
use switchboard::sim::{DEMO_ANTHROPIC_KEY, DEMO_CLIENT_OPENAI_KEY, DEMO_OPENAI_KEY, SimAccountConfig, SimConfig, SimHandle, Simulator};
use switchboard::store::{NewAccount, Store};

mod front;
mod idempotency;
mod migrations;

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

    /// (event id, route, status, tokens, cost, account) of the supplier's rows.
    fn usage_rows(&self, supplier: SupplierId) -> Vec<(String, i64, i64, i64, i64, i64)> {
        // What was answered is in the journal; the database has it once folded.
        futures::executor::block_on(self.router.ledger().flush());
        self.store
            .with_conn(|c| {
                let mut st = c.prepare(
                    "SELECT event_id, route, status, input_tokens + cached_tokens + output_tokens, cost_micros, account_id FROM usage_events WHERE supplier_id = ?1 ORDER BY id",
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
    // A plain request beside an open stream is answered at once: its usage
    // does not wait for the stream's.
    assert_eq!(e.router.writers_soon(), 0);
    let plain = tokio::time::timeout(std::time::Duration::from_secs(10), e.chat(&t, "gpt-4o-mini", "Quick one beside the stream."))
        .await
        .expect("a plain request beside an open stream waited for the stream's usage");
    assert_eq!(plain.status(), 200);
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

    // All routes down: 502/503 with the kinds of failure, not the platform's account labels.
    e.sim.set_outage("openai-platform", true);
    e.sim.set_outage("anthropic-platform", true);
    let (st, b) = json_of(e.chat(&t, "gpt-4o-mini", "hi").await).await;
    assert!(st == 502 || st == 503, "{st} {b}");
    assert_eq!(b["error"]["code"], "all_routes_failed");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("provider overloaded (2 accounts)") && !msg.contains("WedSync"), "{msg}");
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
async fn a_half_open_trial_whose_client_went_away_completes_and_closes_the_breaker() {
    // After the open period one trial request may reach the account. If its
    // client gives up mid-call, the request still runs to completion on its
    // own task: the trial reports its outcome (the breaker closes) and the
    // call is recorded as `client_gone`. (A trial whose request future is
    // dropped gives the trial back: see accounting::dropped_requests_leak_nothing.)
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
    for _ in 0..80 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = e.chat(&t, "gpt-4o-mini", "after the trial").await;
        assert_eq!(r.status(), 200);
        served_by = e.usage_rows(s).last().unwrap().5;
        if served_by == e.platform_openai.0 {
            break;
        }
    }
    assert_eq!(served_by, e.platform_openai.0, "once the trial answered, the recovered account serves again");
    assert_eq!(state(&e), "closed");
    let gone: Vec<_> = e.usage_rows(s).into_iter().filter(|r| r.2 == UsageStatus::ClientGone.code()).collect();
    assert_eq!(gone.len(), 1, "the trial the client gave up on is recorded once, as client_gone");
    assert_eq!(gone[0].5, e.platform_openai.0);
    assert!(gone[0].3 > 0, "with the provider's usage");
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
    // The primary cools down for the 5 s its 429 said (tried last until
    // then); once they are over it is first again.
    assert!(matches!(
        e.router.pool_snapshot().iter().find(|k| k.label == "Primary").and_then(|k| k.blocked),
        Some(switchboard::domain::keypool::Blocked::CoolingDown(_))
    ));
    e.clock.advance(Duration::seconds(6));
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

/// A supplier in `tz` with one wedding day.
fn supplier_in(e: &Env, name: &str, tz: &str, wedding: NaiveDate) -> SupplierId {
    let mut n = NewSupplier::new(name, VendorType::Photographer, Tier::Starter, AiMode::Platform);
    n.weddings = vec![wedding];
    n.time_zone = switchboard::domain::supplier::parse_time_zone(tz).unwrap();
    e.store.insert_supplier(&n, june()).unwrap().id
}

#[tokio::test]
async fn a_california_wedding_is_protected_all_saturday_evening_although_utc_is_sunday() {
    let mut cfg = RouterConfig::default();
    cfg.quota.starter_tokens = 200; // ×1.5 in June = 300
    let e = env(cfg).await;
    let saturday = NaiveDate::from_ymd_opt(2026, 6, 13).unwrap();
    let la = supplier_in(&e, "Golden Gate Weddings", "America/Los_Angeles", saturday);
    let london = supplier_in(&e, "Thames Weddings", "Europe/London", saturday);
    let (tla, tlondon) = (e.token(la, false), e.token(london, false));
    // Sunday 03:00 UTC: Saturday 20:00 in California, Sunday 04:00 in London.
    e.clock.set(Utc.with_ymd_and_hms(2026, 6, 14, 3, 0, 0).unwrap());
    let mut london_refused = false;
    for _ in 0..30 {
        let r = e.chat(&tla, "gpt-4o-mini", "Write a long welcome email for our couples please").await;
        assert_eq!(r.status(), 200, "the wedding day in California is served past the quota");
        let r = e.chat(&tlondon, "gpt-4o-mini", "Write a long welcome email for our couples please").await;
        london_refused |= r.status() == 429;
        e.clock.advance(Duration::seconds(2));
    }
    assert!(london_refused, "London's wedding day is over: its quota applies");
    assert!(e.router.quota_snapshot(la).unwrap().0 > 300, "overage recorded");
    assert!(e.router.quota_snapshot(london).unwrap().0 <= 300);
    // At local midnight in California (07:00 UTC) the protection ends.
    e.clock.set(Utc.with_ymd_and_hms(2026, 6, 14, 7, 0, 0).unwrap());
    let r = e.chat(&tla, "gpt-4o-mini", "Write a long welcome email for our couples please").await;
    assert_eq!(r.status(), 429);
}
