//! The response cache end to end (issue 26): real HTTP over loopback into
//! the gateway, real HTTP from the router to the provider simulator (whose
//! per-account request counters say how many provider calls were made), a
//! real SQLite file for the ledger and the persistent cache, and a manual
//! clock for the TTLs.

use crate::support::{fast_providers, june, sb, sim_account};
use chrono::Duration;
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::domain::cache::CacheSettings;
use switchboard::domain::{
    AccountOwner, AiMode, ManualClock, NewSupplier, PricingTable, ProviderKind, Route, Secret, SupplierId, Tier, VendorType,
};
use switchboard::engine::cache::CacheConfig;
use switchboard::engine::gateway_tokens as tokens;
use switchboard::engine::ledger::Ledger;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::gateway::{self, GatewayHandle};
use switchboard::sim::{DEMO_ANTHROPIC_KEY, DEMO_OPENAI_KEY, Faults, SimConfig, SimHandle, Simulator};
use switchboard::store::Store;

struct Env {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    sim: SimHandle,
    router: Arc<Router>,
    gw: GatewayHandle,
    clock: ManualClock,
    http: reqwest::Client,
}

const OPENAI: &str = "openai-platform";
const ANTHROPIC: &str = "anthropic-platform";

async fn router_on(store: &Arc<Store>, clock: &ManualClock, cfg: RouterConfig) -> Arc<Router> {
    let ledger = Ledger::start(store).unwrap();
    let router = Router::new(
        store.clone(),
        fast_providers(1),
        Arc::new(PricingTable::builtin()),
        Arc::new(clock.clone()),
        ledger,
        cfg,
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    for a in store.list_accounts(None).unwrap() {
        let key = if a.provider == ProviderKind::Anthropic { DEMO_ANTHROPIC_KEY } else { DEMO_OPENAI_KEY };
        router.set_key(a.id, Some(Secret::new(key)));
    }
    router
}

async fn env_with(cfg: RouterConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("cache.db")).unwrap());
    let sim = Simulator::start(SimConfig::demo()).await.unwrap();
    let clock = ManualClock::new(june());
    sim_account(&store, AccountOwner::Platform, ProviderKind::OpenAi, "WedSync OpenAI", "gpt-4o-mini", sim.base_url());
    sim_account(&store, AccountOwner::Platform, ProviderKind::Anthropic, "WedSync Anthropic", "claude-haiku-4-5", sim.base_url());
    let router = router_on(&store, &clock, cfg).await;
    let gw = gateway::start(router.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Env { dir, store, sim, router, gw, clock, http: reqwest::Client::new() }
}

async fn env() -> Env {
    env_with(RouterConfig::default()).await
}

struct Reply {
    status: u16,
    cache: String,
    route: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }
}

impl Env {
    fn supplier(&self, name: &str) -> (SupplierId, String) {
        let n = NewSupplier::new(name, VendorType::Photographer, Tier::Professional, AiMode::Platform);
        let id = self.store.insert_supplier(&n, june()).unwrap().id;
        let t = tokens::issue(&self.store, id, june(), "test").unwrap();
        self.router.reload().unwrap();
        (id, t.token.expose().to_string())
    }

    async fn send(&self, path: &str, token: &str, headers: &[(&str, &str)], body: String) -> Reply {
        let mut rq = self.http.post(format!("{}{path}", self.gw.base_url())).bearer_auth(token).header("content-type", "application/json");
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        let r = rq.body(body).send().await.unwrap();
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let (status, cache, route) = (r.status().as_u16(), h("x-switchboard-cache"), h("x-switchboard-route"));
        let mut body = String::new();
        let mut s = r.bytes_stream();
        while let Some(c) = s.next().await {
            match c {
                Ok(c) => body.push_str(&String::from_utf8_lossy(&c)),
                Err(_) => break,
            }
        }
        Reply { status, cache, route, body }
    }

    async fn chat(&self, token: &str, temperature: Option<f64>, text: &str, headers: &[(&str, &str)]) -> Reply {
        let mut b = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "max_tokens": 40});
        if let Some(t) = temperature {
            b["temperature"] = json!(t);
        }
        self.send("/chat/completions", token, headers, b.to_string()).await
    }

    /// (route, cost, saved, tokens, account) of the supplier's rows, in order.
    async fn rows(&self, s: SupplierId) -> Vec<(i64, i64, i64, i64, Option<i64>)> {
        self.router.ledger().flush().await;
        self.store
            .with_conn(|c| {
                let mut st = c.prepare(
                    "SELECT route, cost_micros, saved_micros, input_tokens + output_tokens, account_id FROM usage_events WHERE supplier_id = ?1 ORDER BY id",
                )?;
                let rows = st.query_map([s.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
                rows.collect()
            })
            .unwrap()
    }

    async fn metric(&self, name: &str) -> u64 {
        let text = self.http.get(format!("http://{}/metrics", self.gw.addr())).send().await.unwrap().text().await.unwrap();
        text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).unwrap_or_else(|| panic!("{name} not in /metrics")).parse().unwrap()
    }
}

#[tokio::test]
async fn two_identical_deterministic_requests_make_one_provider_call_two_rows_and_the_same_answer() {
    let e = env().await;
    let (s, t) = e.supplier("Capture Moments");
    let first = e.chat(&t, Some(0.0), "Write a thank-you note for the Hendersons.", &[]).await;
    assert_eq!((first.status, first.cache.as_str(), first.route.as_str()), (200, "miss", "platform"), "{}", first.body);
    // The same request with its keys in another order and other whitespace.
    let reordered = r#"{ "max_tokens": 40,
        "messages": [ { "content": "Write a thank-you note for the Hendersons.", "role": "user" } ],
        "temperature": 0, "model": "gpt-4o-mini" }"#;
    let second = e.send("/chat/completions", &t, &[], reordered.to_string()).await;
    assert_eq!((second.status, second.cache.as_str(), second.route.as_str()), (200, "hit", "cache"));
    assert_eq!(second.body, first.body, "the same answer, byte for byte");
    assert_eq!(e.sim.requests(OPENAI), 1, "one provider call");
    let rows = e.rows(s).await;
    assert_eq!(rows.len(), 2, "two usage rows");
    assert_eq!(rows[0].0, Route::Platform.code());
    assert!(rows[0].1 > 0 && rows[0].2 == 0, "the call cost money: {rows:?}");
    assert_eq!(rows[1].0, Route::Cache.code(), "the hit is on route cache");
    assert_eq!((rows[1].1, rows[1].2), (0, rows[0].1), "no provider cost; saved what the call cost");
    assert_eq!(rows[1].3, rows[0].3, "the answer's tokens");
    assert_eq!(rows[1].4, None, "no account was called");
    // The hit did not count against the platform quota (the policy).
    assert_eq!(e.router.quota_snapshot(s).unwrap().0, rows[0].3 as u64);
    assert_eq!(e.metric("switchboard_cache_hits_total").await, 1);
    assert_eq!(e.metric("switchboard_cache_misses_total").await, 1);
    assert_eq!(e.metric("switchboard_cache_saved_micro_usd_total").await, rows[0].1 as u64);
    assert!(e.metric("switchboard_cache_memory_bytes").await > first.body.len() as u64);
    e.router.cache().flush().await;
    assert!(e.metric("switchboard_cache_persistent_bytes").await >= first.body.len() as u64);

    // Embeddings are cached without asking.
    let emb = json!({"model": "text-embedding-3-small", "input": ["Lakeside venue, 120 guests"]}).to_string();
    let a = e.send("/embeddings", &t, &[], emb.clone()).await;
    let b = e.send("/embeddings", &t, &[], emb).await;
    assert_eq!((a.status, a.cache.as_str(), b.cache.as_str()), (200, "miss", "hit"), "{}", a.body);
    assert_eq!(a.body, b.body);
    assert_eq!(e.sim.requests(OPENAI), 2);

    // Analytics and the CSV export show the hits and what they saved, by supplier, model and request type.
    e.router.ledger().flush().await;
    let day = june().date_naive();
    let report = switchboard::engine::analytics::cache::cache_report(&e.store, day, day).unwrap();
    assert_eq!((report.total.hits, report.total.answered), (2, 4));
    assert_eq!(report.total.saved.0, rows[0].1 + e.rows(s).await[2].1, "the chat call's cost and the embeddings call's");
    assert_eq!(report.by_supplier[0].key, "Capture Moments");
    let models: Vec<&str> = report.by_model.iter().map(|g| g.key.as_str()).collect();
    assert!(models.contains(&"gpt-4o-mini") && models.contains(&"text-embedding-3-small"), "{models:?}");
    assert_eq!(report.by_request_type.len(), 2, "{:?}", report.by_request_type);
    let out = e.dir.path().join("usage.csv");
    let opts =
        switchboard::engine::export::ExportOptions { from: day, to: day, supplier: None, group_by: None, out: out.clone(), force: false };
    switchboard::engine::export::export_usage(&e.store, &opts, &Default::default(), |_| {}).unwrap();
    let mut rd = csv::Reader::from_path(&out).unwrap();
    let h = rd.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let recs: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    let hits: Vec<&csv::StringRecord> = recs.iter().filter(|r| &r[col("route")] == "cache").collect();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|r| &r[col("cost_micro_usd")] == "0"), "a hit costs nothing");
    // The chat hit saved the chat call's cost (a few embedding tokens may cost under a micro-dollar).
    assert_eq!(hits[0][col("saved_micro_usd")], rows[0].1.to_string());
    assert_eq!(&hits[0][col("model")], "gpt-4o-mini");
}

#[tokio::test]
async fn a_non_deterministic_request_is_cached_only_when_asked_and_the_header_decides() {
    let e = env().await;
    let (s, t) = e.supplier("Bloom Florals");
    let text = "Suggest a bouquet for a June wedding.";
    for _ in 0..2 {
        let r = e.chat(&t, Some(0.7), text, &[]).await;
        assert_eq!((r.status, r.cache.as_str()), (200, "skip"));
    }
    // No temperature: the provider's default (1), not deterministic either.
    assert_eq!(e.chat(&t, None, text, &[]).await.cache, "skip");
    assert_eq!(e.sim.requests(OPENAI), 3);
    let a = e.chat(&t, Some(0.7), text, &[("x-switchboard-cache", "use")]).await;
    let b = e.chat(&t, Some(0.7), text, &[("x-switchboard-cache", "use")]).await;
    assert_eq!((a.cache.as_str(), b.cache.as_str()), ("miss", "hit"));
    assert_eq!(a.body, b.body);
    assert_eq!(e.sim.requests(OPENAI), 4);
    // `skip` on a deterministic request: neither looked up nor kept.
    let d = e.chat(&t, Some(0.0), text, &[("x-switchboard-cache", "skip")]).await;
    assert_eq!(d.cache, "skip");
    assert_eq!(e.chat(&t, Some(0.0), text, &[]).await.cache, "miss", "the skipped answer was not kept");
    // `refresh`: calls the provider and replaces the entry.
    let r = e.chat(&t, Some(0.0), text, &[("x-switchboard-cache", "refresh")]).await;
    assert_eq!(r.cache, "miss");
    let after = e.chat(&t, Some(0.0), text, &[]).await;
    assert_eq!(after.cache, "hit");
    assert_eq!(after.body, r.body, "the refreshed answer is the one served");
    assert_eq!(e.sim.requests(OPENAI), 7);
    // A bad header value is the client's error, in OpenAI's shape, before any call.
    let bad = e.chat(&t, Some(0.0), text, &[("x-switchboard-cache", "always")]).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["type"], "invalid_request_error");
    assert_eq!(e.sim.requests(OPENAI), 7);
    // A supplier with the cache off (from the CLI, audited): no header turns it on.
    let out = sb(&e.dir.path().join("cache.db")).args(["cache", "set", &s.0.to_string(), "--cache", "off"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cache off, chat answers kept 24 h"));
    assert_eq!(e.store.cache_settings(s).unwrap(), CacheSettings { enabled: false, ..CacheSettings::default() });
    assert!(e.store.audit_entries(&Default::default()).unwrap().iter().any(|a| a.action == "cache.settings" && a.supplier_id == Some(s)));
    assert!(e.router.reload_if_changed().unwrap(), "the settings bump the catalog version");
    assert_eq!(e.chat(&t, Some(0.0), text, &[("x-switchboard-cache", "use")]).await.cache, "skip");
    assert_eq!(e.sim.requests(OPENAI), 8);
}

#[tokio::test]
async fn one_suppliers_answer_is_never_served_to_another() {
    let e = env().await;
    let (a, ta) = e.supplier("Capture Moments");
    let (b, tb) = e.supplier("Grand Ballroom");
    let text = "Describe a rustic barn venue.";
    let ra = e.chat(&ta, Some(0.0), text, &[]).await;
    let rb = e.chat(&tb, Some(0.0), text, &[("x-switchboard-cache", "use")]).await;
    assert_eq!((ra.cache.as_str(), rb.cache.as_str()), ("miss", "miss"), "B's identical request is not A's hit");
    assert_eq!(e.sim.requests(OPENAI), 2);
    assert_ne!(ra.json()["id"], rb.json()["id"], "B got its own answer");
    assert_eq!(e.chat(&ta, Some(0.0), text, &[]).await.body, ra.body);
    assert_eq!(e.chat(&tb, Some(0.0), text, &[]).await.body, rb.body);
    assert_eq!(e.sim.requests(OPENAI), 2);
    assert_eq!(e.rows(a).await.iter().filter(|r| r.0 == Route::Cache.code()).count(), 1);
    assert_eq!(e.rows(b).await.iter().filter(|r| r.0 == Route::Cache.code()).count(), 1);
}

fn text_deltas(sse: &str, openai: bool) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            let t = if openai { &v["choices"][0]["delta"]["content"] } else { &v["delta"]["text"] };
            t.as_str().map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn a_streamed_hit_replays_the_stream_in_both_formats() {
    let e = env().await;
    let (s, t) = e.supplier("Perfect Day Planning");
    let body = json!({"model": "gpt-4o-mini", "stream": true, "temperature": 0,
        "messages": [{"role": "user", "content": "Name three flowers for June."}]})
    .to_string();
    let first = e.send("/chat/completions", &t, &[], body.clone()).await;
    assert_eq!((first.status, first.cache.as_str()), (200, "miss"));
    assert!(first.body.trim_end().ends_with("data: [DONE]"), "{}", first.body);
    let second = e.send("/chat/completions", &t, &[], body).await;
    assert_eq!((second.status, second.cache.as_str(), second.route.as_str()), (200, "hit", "cache"));
    assert_eq!(second.body, first.body, "the same events, in order");
    assert!(!text_deltas(&second.body, true).is_empty());
    assert_eq!(e.sim.requests(OPENAI), 1);
    // A plain request with the same messages is another entry (a stream is not a body).
    let plain =
        json!({"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": "Name three flowers for June."}]});
    assert_eq!(e.send("/chat/completions", &t, &[], plain.to_string()).await.cache, "miss");

    // Anthropic's Messages endpoint: replayed in Anthropic's shape, plain and streamed.
    let msg = |stream: bool| {
        json!({"model": "claude-haiku-4-5", "max_tokens": 60, "temperature": 0, "stream": stream,
            "messages": [{"role": "user", "content": "A toast for the best man, please."}]})
        .to_string()
    };
    let m1 = e.send("/messages", &t, &[("anthropic-version", "2023-06-01")], msg(false)).await;
    let m2 = e.send("/messages", &t, &[("anthropic-version", "2023-06-01")], msg(false)).await;
    assert_eq!((m1.status, m1.cache.as_str(), m2.cache.as_str()), (200, "miss", "hit"), "{}", m1.body);
    assert_eq!(m2.json()["type"], "message");
    assert_eq!(m2.json()["content"], m1.json()["content"]);
    let s1 = e.send("/messages", &t, &[], msg(true)).await;
    let s2 = e.send("/messages", &t, &[], msg(true)).await;
    assert_eq!((s1.cache.as_str(), s2.cache.as_str()), ("miss", "hit"));
    assert!(s2.body.contains("event: message_stop"), "{}", s2.body);
    let (d1, d2) = (text_deltas(&s1.body, false), text_deltas(&s2.body, false));
    assert!(!d1.is_empty());
    assert_eq!(d1, d2, "the replayed stream has the same text");
    assert_eq!(e.sim.requests(ANTHROPIC), 2, "one call per Messages entry");
    let rows = e.rows(s).await;
    assert_eq!(rows.iter().filter(|r| r.0 == Route::Cache.code()).count(), 3);
}

#[tokio::test]
async fn errors_and_cut_streams_are_never_cached() {
    let e = env().await;
    let (_s, t) = e.supplier("Bloom Florals");
    let errors = Faults { error_rate: 1.0, ..Faults::default() };
    e.sim.set_faults(OPENAI, errors);
    e.sim.set_faults(ANTHROPIC, errors);
    let text = "Write a menu description.";
    let failed = e.chat(&t, Some(0.0), text, &[]).await;
    assert!(failed.status >= 500, "{}", failed.body);
    e.sim.set_faults(OPENAI, Faults::default());
    e.sim.set_faults(ANTHROPIC, Faults::default());
    let calls = e.sim.requests(OPENAI) + e.sim.requests(ANTHROPIC);
    let ok = e.chat(&t, Some(0.0), text, &[]).await;
    assert_eq!((ok.status, ok.cache.as_str()), (200, "miss"), "the error was not kept");
    assert_eq!(e.sim.requests(OPENAI) + e.sim.requests(ANTHROPIC), calls + 1);

    // A stream cut upstream is not kept either.
    e.sim.set_faults(OPENAI, Faults { stream_cut_rate: 1.0, stream_cut_after: 2, ..Faults::default() });
    let body =
        json!({"model": "gpt-4o-mini", "stream": true, "temperature": 0, "messages": [{"role": "user", "content": "Count to ten."}]})
            .to_string();
    let cut = e.send("/chat/completions", &t, &[], body.clone()).await;
    assert!(!cut.body.contains("[DONE]"), "the stream was cut: {}", cut.body);
    e.sim.set_faults(OPENAI, Faults::default());
    let before = e.sim.requests(OPENAI);
    let whole = e.send("/chat/completions", &t, &[], body).await;
    assert_eq!(whole.cache, "miss");
    assert!(whole.body.contains("[DONE]"));
    assert_eq!(e.sim.requests(OPENAI), before + 1);
}

#[tokio::test]
async fn entries_expire_after_their_ttl_on_the_injected_clock() {
    let e = env().await;
    let (s, t) = e.supplier("Capture Moments");
    let text = "A caption for a first-dance photo.";
    assert_eq!(e.chat(&t, Some(0.0), text, &[]).await.cache, "miss");
    e.clock.advance(Duration::hours(23));
    assert_eq!(e.chat(&t, Some(0.0), text, &[]).await.cache, "hit", "within the default 24 h");
    e.clock.advance(Duration::hours(1) + Duration::seconds(1));
    assert_eq!(e.chat(&t, Some(0.0), text, &[]).await.cache, "miss", "expired after 24 h");
    assert_eq!(e.sim.requests(OPENAI), 2);
    // Embeddings live 30 days.
    let emb = json!({"model": "text-embedding-3-small", "input": "price list"}).to_string();
    assert_eq!(e.send("/embeddings", &t, &[], emb.clone()).await.cache, "miss");
    e.clock.advance(Duration::days(29));
    assert_eq!(e.send("/embeddings", &t, &[], emb.clone()).await.cache, "hit");
    e.clock.advance(Duration::days(1) + Duration::seconds(1));
    assert_eq!(e.send("/embeddings", &t, &[], emb).await.cache, "miss");
    // A supplier's own TTL applies to the answers kept after it is set.
    e.store.set_cache_settings(s, &CacheSettings { chat_ttl_secs: 60, ..CacheSettings::default() }).unwrap();
    e.router.reload().unwrap();
    let text = "Another caption.";
    assert_eq!(e.chat(&t, Some(0.0), text, &[]).await.cache, "miss");
    e.clock.advance(Duration::seconds(59));
    assert_eq!(e.chat(&t, Some(0.0), text, &[]).await.cache, "hit");
    e.clock.advance(Duration::seconds(2));
    assert_eq!(e.chat(&t, Some(0.0), text, &[]).await.cache, "miss");
    // The sweep deletes expired rows from the database.
    e.clock.advance(Duration::days(31));
    e.router.cache().flush().await;
    assert!(e.router.cache().sweep().await.unwrap() >= 1);
    let left: i64 = e.store.with_conn(|c| c.query_row("SELECT count(*) FROM response_cache", [], |r| r.get(0))).unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn purges_by_supplier_or_whole_from_the_cli_and_removing_a_supplier_are_seen_by_the_runtime_and_audited() {
    let e = env().await;
    let (a, ta) = e.supplier("Capture Moments");
    let (b, tb) = e.supplier("Grand Ballroom");
    let text = "Describe the venue's garden.";
    for t in [&ta, &tb] {
        assert_eq!(e.chat(t, Some(0.0), text, &[]).await.cache, "miss");
    }
    e.router.cache().flush().await;
    // The CLI, another process on the same database, purges supplier A.
    let db = e.dir.path().join("cache.db");
    let out = sb(&db).args(["cache", "purge", "--supplier", &a.0.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Purged 1 cached answers"), "{}", String::from_utf8_lossy(&out.stdout));
    // The runtime reloads when the catalog version moves (the purge log bumps it).
    assert!(e.router.reload_if_changed().unwrap());
    assert_eq!(e.chat(&ta, Some(0.0), text, &[]).await.cache, "miss", "A's memory entry went too");
    assert_eq!(e.chat(&tb, Some(0.0), text, &[]).await.cache, "hit", "B's stayed");
    let audit = e.store.audit_entries(&Default::default()).unwrap();
    assert!(audit.iter().any(|x| x.action == "cache.purge" && x.supplier_id == Some(a)), "{audit:?}");
    // Stats from the CLI: hits and savings per supplier.
    let out = sb(&db).args(["cache", "stats", "--json"]).output().unwrap();
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let row_b = stats["suppliers"].as_array().unwrap().iter().find(|r| r["supplier"] == b.0).unwrap().clone();
    assert_eq!(row_b["hits"], 1);
    assert!(row_b["saved_micro_usd"].as_i64().unwrap() > 0 && row_b["entries"] == 1, "{stats}");
    // The whole cache, from the service (the console's path).
    assert!(e.router.cache().purge(None, "test").await.unwrap() >= 1);
    assert_eq!(e.chat(&tb, Some(0.0), text, &[]).await.cache, "miss");
    assert_eq!(e.chat(&ta, Some(0.0), text, &[]).await.cache, "miss");
    e.router.cache().flush().await;
    // Removing a supplier deletes its entries in the same transaction.
    let count = |s: SupplierId| -> i64 {
        e.store.with_conn(|c| c.query_row("SELECT count(*) FROM response_cache WHERE supplier_id = ?1", [s.0], |r| r.get(0))).unwrap()
    };
    assert_eq!(count(b), 1);
    e.store.delete_supplier(b).unwrap();
    assert_eq!(count(b), 0);
    e.router.reload().unwrap();
    assert_eq!(e.router.cache().stats().memory_entries, 1, "only A's answer is left in memory");
}

#[tokio::test]
async fn the_cache_survives_a_restart() {
    let e = env().await;
    let (s, t) = e.supplier("Capture Moments");
    let text = "Write an enquiry reply for a 2027 wedding.";
    let first = e.chat(&t, Some(0.0), text, &[]).await;
    assert_eq!(first.cache, "miss");
    e.router.cache().flush().await;
    e.router.ledger().flush().await;
    let Env { dir, store, sim, router, gw, clock, http } = e;
    gw.shutdown().await;
    drop(router);
    // A new router on the same database file: its memory is empty.
    let router = router_on(&store, &clock, RouterConfig::default()).await;
    assert_eq!(router.cache().stats().memory_entries, 0);
    let gw = gateway::start(router.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let e = Env { dir, store, sim, router, gw, clock, http };
    let again = e.chat(&t, Some(0.0), text, &[]).await;
    assert_eq!((again.cache.as_str(), again.route.as_str()), ("hit", "cache"));
    assert_eq!(again.body, first.body);
    assert_eq!(e.sim.requests(OPENAI), 1);
    assert_eq!(e.rows(s).await.len(), 2);
}

#[tokio::test]
async fn the_byte_bounds_hold_under_a_load_of_distinct_requests() {
    let memory = 16 * 1024;
    let persistent = 24 * 1024;
    let cfg = RouterConfig {
        cache: CacheConfig { memory_bytes: memory, persistent_bytes: persistent, ..CacheConfig::default() },
        ..RouterConfig::default()
    };
    let e = env_with(cfg).await;
    let (_s, t) = e.supplier("Capture Moments");
    let e = Arc::new(e);
    let t = Arc::new(t);
    let mut body_bytes = 0u64;
    for round in 0..15 {
        // Within the tier's rate limit.
        e.clock.advance(Duration::seconds(30));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (e, t) = (e.clone(), t.clone());
                tokio::spawn(async move { e.chat(&t, Some(0.0), &format!("Distinct request {round}-{i}: describe a venue."), &[]).await })
            })
            .collect();
        for task in tasks {
            let r = task.await.unwrap();
            assert_eq!((r.status, r.cache.as_str()), (200, "miss"));
            body_bytes += r.body.len() as u64;
        }
        let st = e.router.cache().stats();
        assert!(st.memory_bytes <= memory as u64, "memory {} over its bound {memory}", st.memory_bytes);
    }
    assert!(body_bytes > 2 * persistent, "the load is larger than both bounds ({body_bytes} bytes)");
    e.router.cache().flush().await;
    let st = e.router.cache().stats();
    assert!(st.memory_entries > 0 && st.memory_entries < 120, "{st:?}");
    // The accounting is each entry's body plus its overhead: never under what the entries hold.
    assert!(st.memory_bytes >= st.memory_entries * switchboard::engine::cache::ENTRY_OVERHEAD as u64);
    let (rows, on_disk): (i64, i64) = e
        .store
        .with_conn(|c| c.query_row("SELECT count(*), coalesce(sum(body_len), 0) FROM response_cache", [], |r| Ok((r.get(0)?, r.get(1)?))))
        .unwrap();
    assert!(on_disk as u64 <= persistent, "persistent {on_disk} over its bound {persistent}");
    assert_eq!(on_disk as u64, st.persistent_bytes, "the persistent size counter matches the table");
    assert!(rows > 0 && rows < 120);
    // The most recent answer is still served.
    let last = e.chat(&t, Some(0.0), "Distinct request 14-7: describe a venue.", &[]).await;
    assert_eq!(last.cache, "hit");
}

#[tokio::test]
async fn a_hit_is_idempotent_with_its_key_like_any_request() {
    let e = env().await;
    let (s, t) = e.supplier("Capture Moments");
    let text = "A short bio for the About page.";
    assert_eq!(e.chat(&t, Some(0.0), text, &[("idempotency-key", "k-1")]).await.cache, "miss");
    let hit = e.chat(&t, Some(0.0), text, &[("idempotency-key", "k-2")]).await;
    assert_eq!(hit.cache, "hit");
    // The same key again: the first answer replayed, no new row.
    let replay = e.chat(&t, Some(0.0), text, &[("idempotency-key", "k-2")]).await;
    assert_eq!(replay.body, hit.body);
    let rows = e.rows(s).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let key: Option<String> = e
        .store
        .with_conn(|c| c.query_row("SELECT idempotency_key FROM usage_events WHERE route = ?1", [Route::Cache.code()], |r| r.get(0)))
        .unwrap();
    assert_eq!(key.as_deref(), Some("k-2"), "the hit's row carries its key");
}

/// An answer is kept even when another connection commits to the database
/// file while it is being written (the usage fold does, ten times a second).
/// The write used to read first and then take the write lock, which SQLite
/// refuses (SQLITE_BUSY_SNAPSHOT) once another commit came in between: the
/// answer then stayed in memory only (seen as a flaky persistent-bytes check).
#[test]
fn an_answer_is_kept_while_another_connection_commits_to_the_file() {
    use switchboard::domain::cache::CacheKey;
    use switchboard::domain::idempotency::Endpoint;
    use switchboard::domain::{Micros, ProviderKind, SupplierId, TokenUsage};
    use switchboard::store::{CachedAnswer, ResponseCacheStore, SqliteCacheStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let store = Store::open(&path).unwrap();
    let sid = SupplierId(1);
    let mut cache = SqliteCacheStore::open(&store).unwrap();
    let now = chrono::Utc::now();
    let answer = CachedAnswer {
        supplier: sid,
        endpoint: Endpoint::ChatCompletions,
        stream: false,
        provider: ProviderKind::OpenAi,
        model: "gpt-4o-mini".into(),
        account: None,
        usage: TokenUsage::default(),
        cost: Micros(120),
        body: bytes::Bytes::from_static(b"{\"id\":\"chatcmpl-kept\"}"),
        created_at: now,
        expires_at: now + Duration::hours(1),
    };
    for round in 0..3u8 {
        // Another connection holds the write lock, then commits a change.
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let writer = std::thread::spawn(move || {
            let c = rusqlite::Connection::open(&p).unwrap();
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            c.execute("INSERT OR REPLACE INTO database_settings (key, value) VALUES ('writer', ?1)", [round.to_string()]).unwrap();
            held_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            c.execute_batch("COMMIT").unwrap();
        });
        held_rx.recv().unwrap();
        let key = CacheKey([round; 32]);
        cache.put(&key, &answer, now, 1 << 30).expect("kept although another connection committed meanwhile");
        writer.join().unwrap();
        assert_eq!(cache.get(&key, sid, now).unwrap().map(|a| a.body), Some(answer.body.clone()));
    }
    assert_eq!(cache.bytes(), 3 * answer.body.len() as u64);
}
