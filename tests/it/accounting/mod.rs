//! Usage accounting whatever the client does: reservations (quota, breaker
//! trial, in-flight count) are guards that a request future dropped at any
//! await point gives back; a plain request a client hung up on runs to
//! completion and is recorded as `client_gone`; a stream whose client hung up
//! is cut and recorded (estimated when the provider never said); every usage
//! row has its own event id, and the client's `X-Request-Id` is only a
//! tracing id. Real SQLite, real HTTP to the simulator, a manual clock.

use crate::support::{fast_providers, sim_account};
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use switchboard::domain::breaker::BreakerState;
use switchboard::domain::{
    AccountId, AccountOwner, AiMode, ManualClock, NewSupplier, PricingTable, ProviderKind, Secret, SupplierId, Tier, UsageStatus,
    VendorType,
};
use switchboard::engine::gateway_tokens as tokens;
use switchboard::engine::ledger::Ledger;
use switchboard::engine::router::{Caller, Router, RouterConfig};
use switchboard::gateway::{self, GatewayHandle};
use switchboard::providers::{ChatRequest, EmbeddingsRequest};
use switchboard::sim::{DEMO_OPENAI_KEY, Faults, Latency, SimConfig, SimHandle, Simulator};
use switchboard::store::Store;

mod migration;

/// A Wednesday in November, off-peak: the Starter quota is 50,000 tokens.
fn november() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 12, 0, 0).unwrap()
}

const PLATFORM: &str = "openai-platform";

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    sim: SimHandle,
    router: Arc<Router>,
    clock: ManualClock,
    account: AccountId,
}

/// One platform OpenAI account on the simulator; providers that do not retry
/// (so that every provider call the simulator counts is one attempt).
async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("acct.db")).unwrap());
    let sim = Simulator::start(SimConfig::demo()).await.unwrap();
    let clock = ManualClock::new(november());
    let account = sim_account(&store, AccountOwner::Platform, ProviderKind::OpenAi, "WedSync OpenAI", "gpt-4o-mini", sim.base_url());
    let router = Router::new(
        store.clone(),
        fast_providers(1),
        Arc::new(PricingTable::builtin()),
        Arc::new(clock.clone()),
        Ledger::start(&store).unwrap(),
        RouterConfig::default(),
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    router.set_key(account, Some(Secret::new(DEMO_OPENAI_KEY)));
    Env { _dir: dir, store, sim, router, clock, account }
}

impl Env {
    fn supplier(&self, name: &str, tier: Tier) -> SupplierId {
        let id =
            self.store.insert_supplier(&NewSupplier::new(name, VendorType::Photographer, tier, AiMode::Platform), november()).unwrap().id;
        self.router.reload().unwrap();
        id
    }

    fn token(&self, supplier: SupplierId) -> String {
        let issued = tokens::issue(&self.store, supplier, november(), "test").unwrap();
        self.router.reload().unwrap();
        issued.token.expose().to_string()
    }

    fn slow(&self, ms: u64, stream_gap_ms: u64) {
        let latency = Latency { median_ms: ms, sigma: 0.0, min_ms: ms };
        assert!(self.sim.set_faults(PLATFORM, Faults { latency, slow_stream_ms: stream_gap_ms, ..Faults::default() }));
    }

    fn reserved(&self, s: SupplierId) -> u64 {
        self.router.quota_snapshot(s).unwrap().1
    }

    fn breaker(&self) -> BreakerState {
        self.router.breaker_states().into_iter().find(|(a, _)| a.id == self.account).unwrap().1
    }

    /// (event id, request id, idempotency key, status, tokens, estimated) of the supplier's rows.
    #[allow(clippy::type_complexity)]
    fn rows(&self, s: SupplierId) -> Vec<(String, Option<String>, Option<String>, i64, i64, bool)> {
        // What was answered is in the journal; the database has it once folded.
        futures::executor::block_on(self.router.ledger().flush());
        self.store
            .with_conn(|c| {
                let mut st = c.prepare(
                    "SELECT event_id, request_id, idempotency_key, status, input_tokens + cached_tokens + output_tokens, estimated
                     FROM usage_events WHERE supplier_id = ?1 ORDER BY id",
                )?;
                let rows = st.query_map([s.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?;
                rows.collect()
            })
            .unwrap()
    }
}

fn chat_req(text: &str, max_tokens: u64, stream: bool) -> ChatRequest {
    serde_json::from_value(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "stream": stream,
    }))
    .unwrap()
}

/// Polls `fut` until it is ready, or drops it after its `n`-th suspension:
/// `n` = 1, 2, … drops the request at each await point it reaches in turn.
async fn poll_n<F: Future>(fut: F, n: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut polls = 0;
    std::future::poll_fn(|cx| {
        polls += 1;
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending if polls >= n => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_requests_leak_nothing() {
    let e = env().await;
    let s = e.supplier("Drop Studio", Tier::Starter);
    e.slow(15, 5);
    let check = |what: &str, n: usize| {
        assert_eq!(e.reserved(s), 0, "{what} dropped after {n} suspensions left tokens reserved");
        assert_eq!(e.router.in_flight(), 0, "{what} dropped after {n} suspensions is still counted in flight");
        assert!(
            !matches!(e.breaker(), BreakerState::HalfOpen { trial_in_flight: true }),
            "{what} dropped after {n} suspensions left the breaker's trial taken"
        );
    };
    for what in ["chat", "stream", "embeddings"] {
        let mut n = 1;
        loop {
            // A second apart: the tier's rate limit never refuses these.
            e.clock.advance(Duration::seconds(1));
            let done = match what {
                "chat" => {
                    poll_n(e.router.chat(Caller::supplier(s), None, None, chat_req("hello", 200, false)), n).await.map(|r| r.map(drop))
                }
                "stream" => poll_n(e.router.chat_stream(Caller::supplier(s), None, None, chat_req("hello", 200, true)), n)
                    .await
                    // The stream opened: dropping its body now is a client hanging up at once.
                    .map(|r| r.map(drop)),
                _ => {
                    let req: EmbeddingsRequest =
                        serde_json::from_value(json!({"model": "text-embedding-3-small", "input": "hello"})).unwrap();
                    poll_n(e.router.embeddings(Caller::supplier(s), None, None, req), n).await.map(|r| r.map(drop))
                }
            };
            check(what, n);
            if let Some(r) = done {
                r.unwrap_or_else(|err| panic!("{what} failed: {err}"));
                break;
            }
            n += 1;
            assert!(n < 1_000, "{what} never completed");
        }
        // At least one drop at a suspension point. (A chat in process
        // durability suspends only on its provider call: the journal append
        // that records it is one synchronous write, not an await.)
        assert!(n >= 2, "{what} was dropped at an await point ({n})");
    }

    // A half-open breaker: its one trial comes back at every drop, so the
    // account is tried again, and the completed trial closes it.
    e.sim.set_outage(PLATFORM, true);
    for _ in 0..5 {
        e.clock.advance(Duration::seconds(1));
        let err = e.router.chat(Caller::supplier(s), None, None, chat_req("outage", 50, false)).await.unwrap_err();
        assert_eq!(err.class(), "all_routes_failed", "{err}");
    }
    assert_eq!(e.breaker().name(), "open");
    e.sim.set_outage(PLATFORM, false);
    e.slow(15, 5);
    e.clock.advance(Duration::seconds(31));
    let mut n = 1;
    loop {
        e.clock.advance(Duration::seconds(1));
        let done = poll_n(e.router.chat(Caller::supplier(s), None, None, chat_req("the trial", 50, false)), n).await;
        check("the trial", n);
        if let Some(r) = done {
            r.unwrap();
            break;
        }
        assert!(matches!(e.breaker(), BreakerState::HalfOpen { trial_in_flight: false }), "{:?}", e.breaker());
        n += 1;
        assert!(n < 1_000);
    }
    assert_eq!(e.breaker().name(), "closed");

    // A stream read in part, then dropped: cut, recorded as cancelled with
    // estimated tokens (the provider sends its usage only at the end), and
    // settled against the quota at that estimate.
    e.slow(0, 40);
    let used_before = e.router.quota_snapshot(s).unwrap().0;
    let rows_before = e.rows(s).len();
    let mut a = e.router.chat_stream(Caller::supplier(s), None, Some("trace-cut"), chat_req("a long story", 400, true)).await.unwrap();
    assert!(a.body.next().await.unwrap().is_ok());
    drop(a);
    check("a stream read in part", 0);
    e.router.ledger().flush().await;
    let rows = e.rows(s);
    assert_eq!(rows.len(), rows_before + 1);
    let cut = rows.last().unwrap();
    assert_eq!(cut.3, UsageStatus::Cancelled.code());
    assert!(cut.5, "the cut stream's tokens are flagged as estimated");
    assert!(cut.4 > 0, "the estimate counts the prompt at least");
    assert_eq!(cut.1.as_deref(), Some("trace-cut"));
    assert_eq!(e.router.quota_snapshot(s).unwrap().0, used_before + cut.4 as u64, "the estimate is settled against the quota");
}

async fn gateway(e: &Env) -> GatewayHandle {
    gateway::start_with_lanes(e.router.clone(), "127.0.0.1:0".parse().unwrap(), 2).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_up_clients_leave_no_reservation_and_every_call_they_caused_is_recorded() {
    let e = env().await;
    let s = e.supplier("Hasty Studio", Tier::Starter);
    let t = e.token(s);
    let gw = gateway(&e).await;
    let http = reqwest::Client::new();
    let url = format!("{}/chat/completions", gw.base_url());
    assert_eq!(e.router.quota_snapshot(s).unwrap().2, 50_000, "the Starter quota off-peak");
    e.slow(3_000, 0);
    // Three clients ask for up to 16,000 tokens each and hang up once their
    // calls are at the provider (which takes 3 s to answer).
    let hung: Vec<_> = (0..3)
        .map(|i| {
            let req = http.post(&url).bearer_auth(&t).header("x-request-id", format!("hasty-{i}")).json(
                &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("Draft {i}")}], "max_tokens": 16_000}),
            );
            tokio::spawn(req.send())
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while e.sim.requests(PLATFORM) < 3 {
        assert!(std::time::Instant::now() < deadline, "the requests never reached the provider");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for h in hung {
        h.abort(); // the client hangs up: its connection is dropped
        assert!(h.await.unwrap_err().is_cancelled(), "the client gave up before its answer");
    }
    assert!(e.reserved(s) > 0, "the calls are still running after their clients left");
    // They run to completion on their lanes, are recorded and settled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while e.reserved(s) > 0 || e.rows(s).len() < 3 {
        assert!(std::time::Instant::now() < deadline, "reserved {} rows {:?}", e.reserved(s), e.rows(s));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rows = e.rows(s);
    assert_eq!(e.sim.requests(PLATFORM), 3, "three provider calls");
    assert_eq!(rows.len(), 3, "one usage row per provider call: {rows:?}");
    let mut traces: Vec<_> = rows.iter().map(|r| r.1.clone().unwrap()).collect();
    traces.sort();
    assert_eq!(traces, ["hasty-0", "hasty-1", "hasty-2"]);
    for r in &rows {
        assert_eq!(r.3, UsageStatus::ClientGone.code(), "{r:?}");
        assert!(r.4 > 0 && !r.5, "the provider's own usage: {r:?}");
    }
    let used: i64 = rows.iter().map(|r| r.4).sum();
    assert_eq!(e.router.quota_snapshot(s).unwrap(), (used as u64, 0, 50_000), "settled to what was used");

    // The supplier is not locked out: a request for 3,000 tokens is served.
    e.slow(0, 0);
    let r = http
        .post(&url)
        .bearer_auth(&t)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "One more"}], "max_tokens": 3_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(e.sim.requests(PLATFORM), 4);
    assert_eq!(e.rows(s).len(), 4, "every provider call has exactly one usage row");
    assert_eq!(e.reserved(s), 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_has_its_own_event_id_and_x_request_id_only_traces() {
    let e = env().await;
    let s = e.supplier("Echo Studio", Tier::Professional);
    let t = e.token(s);
    let gw = gateway(&e).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value, rid: Option<&str>, key: Option<&str>| {
        let mut b = http.post(format!("{}{path}", gw.base_url())).bearer_auth(&t).json(&body);
        if let Some(rid) = rid {
            b = b.header("x-request-id", rid);
        }
        if let Some(key) = key {
            b = b.header("idempotency-key", key);
        }
        b.send()
    };
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20});
    // A proxy sets the same tracing id twice: two paid calls, two rows.
    let mut event_ids = Vec::new();
    for _ in 0..2 {
        let r = post("/chat/completions", chat.clone(), Some("proxy-trace-1"), None).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-request-id"], "proxy-trace-1", "the tracing id is echoed as sent");
        event_ids.push(r.headers()["x-switchboard-event-id"].to_str().unwrap().to_string());
    }
    assert_ne!(event_ids[0], event_ids[1]);
    // A stream and embeddings say their row's event id too, and carry the idempotency key.
    let stream = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20, "stream": true});
    let r = post("/chat/completions", stream, None, Some("key-stream-1")).await.unwrap();
    let stream_id = r.headers()["x-switchboard-event-id"].to_str().unwrap().to_string();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(r.text().await.unwrap().contains("[DONE]"));
    let emb = json!({"model": "text-embedding-3-small", "input": "hello"});
    let r = post("/embeddings", emb, Some("emb-trace"), Some("key-emb-1")).await.unwrap();
    assert_eq!(r.status(), 200);
    let emb_id = r.headers()["x-switchboard-event-id"].to_str().unwrap().to_string();
    // An over-long idempotency key is refused before any provider call.
    let calls = e.sim.requests(PLATFORM);
    let r = post("/chat/completions", chat.clone(), None, Some(&"k".repeat(300))).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Idempotency-Key"), "{body}");
    assert_eq!(e.sim.requests(PLATFORM), calls);

    e.router.ledger().flush().await;
    let rows = e.rows(s);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(e.sim.requests(PLATFORM), 4, "one row per provider call");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_deref(), rows[0].2.as_deref()), (event_ids[0].as_str(), Some("proxy-trace-1"), None));
    assert_eq!((rows[1].0.as_str(), rows[1].1.as_deref()), (event_ids[1].as_str(), Some("proxy-trace-1")));
    assert_eq!(
        (rows[2].0.as_str(), rows[2].1.as_deref(), rows[2].2.as_deref()),
        (stream_id.as_str(), Some(generated.as_str()), Some("key-stream-1"))
    );
    assert_eq!((rows[3].0.as_str(), rows[3].1.as_deref(), rows[3].2.as_deref()), (emb_id.as_str(), Some("emb-trace"), Some("key-emb-1")));
    for (id, ..) in &rows {
        assert_eq!((id.len(), &id[14..15]), (36, "7"), "a UUIDv7: {id}");
    }
    // A retried ledger write of the same event is not counted twice.
    let ev = e.router.ledger().recent(10).into_iter().find(|ev| ev.event_id == event_ids[0]).unwrap();
    assert_eq!(e.store.append_usage(&[ev]).unwrap(), 0);
    assert_eq!(e.rows(s).len(), 4);
    gw.shutdown().await;
}

/// Every provider call is one usage row: a call that failed before the
/// failover has its own `error` row against the account that was called,
/// beside the row of the call that served; a request no provider could serve
/// has one row per call it made, and no extra row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_before_a_failover_has_its_own_row() {
    use switchboard::sim::DEMO_ANTHROPIC_KEY;
    let e = env().await;
    let backup =
        sim_account(&e.store, AccountOwner::Platform, ProviderKind::Anthropic, "WedSync Anthropic", "claude-haiku-4-5", e.sim.base_url());
    e.router.reload().unwrap();
    e.router.set_key(backup, Some(Secret::new(DEMO_ANTHROPIC_KEY)));
    let s = e.supplier("Failover Florals", Tier::Professional);
    assert!(e.sim.set_faults(PLATFORM, Faults { error_rate: 1.0, ..Faults::default() }));
    let a = e.router.chat(Caller::supplier(s), None, None, chat_req("Hello", 20, false)).await.unwrap();
    assert_eq!(a.account, backup, "served by the second platform account");
    e.router.ledger().flush().await;
    type Row = (String, Option<i64>, i64, Option<String>, i64);
    let rows: Vec<Row> = e
        .store
        .with_conn(|c| {
            let mut st = c.prepare(
                "SELECT event_id, account_id, status, error_class, input_tokens + output_tokens FROM usage_events
                 WHERE supplier_id = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([s.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
            rows.collect()
        })
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].1, rows[0].2, rows[0].4), (Some(e.account.0), UsageStatus::Error.code(), 0), "{rows:?}");
    assert!(rows[0].3.is_some(), "the failed call says why");
    assert_eq!((rows[1].0.as_str(), rows[1].1, rows[1].2), (a.event_id.as_str(), Some(backup.0), UsageStatus::Ok.code()));
    assert!(rows[1].4 > 0);

    // Both accounts fail: one row per call made, the last one's id is the request's.
    assert!(e.sim.set_faults("anthropic-platform", Faults { error_rate: 1.0, ..Faults::default() }));
    let calls = e.sim.requests(PLATFORM) + e.sim.requests("anthropic-platform");
    assert!(e.router.chat(Caller::supplier(s), None, None, chat_req("Hello again", 20, false)).await.is_err());
    let made = e.sim.requests(PLATFORM) + e.sim.requests("anthropic-platform") - calls;
    e.router.ledger().flush().await;
    let errors: i64 = e
        .store
        .with_conn(|c| {
            c.query_row("SELECT count(*) FROM usage_events WHERE supplier_id = ?1 AND status = ?2", [s.0, UsageStatus::Error.code()], |r| {
                r.get(0)
            })
        })
        .unwrap();
    assert_eq!(errors as u64, 1 + made, "one error row per failed provider call");
}
