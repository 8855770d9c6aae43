//! Idempotency keys end to end (Stripe's semantics): real HTTP into the
//! gateway, the provider simulator, a real SQLite file, a manual clock.

use super::{Env, env};
use crate::support::fast_providers;
use chrono::Duration;
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::domain::idempotency::{Endpoint, IdempotencyKey};
use switchboard::domain::{AiMode, PricingTable, Secret, SupplierId, Tier};
use switchboard::engine::idempotency::{Begin, IdempotencyConfig};
use switchboard::engine::ledger::Ledger;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::gateway::{self, GatewayHandle};
use switchboard::sim::{DEMO_OPENAI_KEY, Faults, Latency};

fn chat_body(text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "max_tokens": 40})).unwrap()
}

/// Posts exactly `body` with the given extra headers.
async fn send(base: &str, path: &str, token: &str, body: &[u8], headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

async fn keyed(e: &Env, token: &str, body: &[u8], key: &str) -> reqwest::Response {
    send(&e.gw.base_url(), "/chat/completions", token, body, &[("idempotency-key", key)]).await
}

/// Status, whether it was a replay, the body's text.
async fn parts(r: reqwest::Response) -> (u16, bool, String) {
    let replayed = r.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    (r.status().as_u16(), replayed, r.text().await.unwrap())
}

fn code(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

fn supplier(e: &Env, name: &str) -> (SupplierId, String) {
    let s = e.supplier(name, Tier::Professional, AiMode::Platform, &[]);
    let t = e.token(s, false);
    (s, t)
}

#[tokio::test]
async fn two_requests_with_one_key_make_one_provider_call_and_one_usage_row() {
    let e = env(RouterConfig::default()).await;
    let (s, t) = supplier(&e, "Capture Moments");
    let body = chat_body("Write a thank-you note for the Hendersons.");
    let first = keyed(&e, &t, &body, "order-42").await;
    let request_id = first.headers()["x-request-id"].clone();
    let (st1, replayed1, text1) = parts(first).await;
    assert_eq!((st1, replayed1), (200, false), "{text1}");
    let second = keyed(&e, &t, &body, "order-42").await;
    assert_eq!(second.headers()["x-request-id"], request_id, "the first answer's request id");
    assert_eq!(second.headers()["content-type"], "application/json");
    assert_eq!(second.headers()["x-switchboard-route"], "platform");
    let (st2, replayed2, text2) = parts(second).await;
    assert_eq!((st2, replayed2), (200, true));
    assert_eq!(text2, text1, "the same bytes");
    assert_eq!(e.sim.requests("openai-platform"), 1, "one provider call");
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).len(), 1, "one usage row");

    // Embeddings too, under their own key.
    let emb = serde_json::to_vec(&json!({"model": "text-embedding-3-small", "input": "lace veil"})).unwrap();
    let a = parts(send(&e.gw.base_url(), "/embeddings", &t, &emb, &[("idempotency-key", "emb-1")]).await).await;
    let b = parts(send(&e.gw.base_url(), "/embeddings", &t, &emb, &[("idempotency-key", "emb-1")]).await).await;
    assert_eq!((a.0, a.1, b.0, b.1), (200, false, 200, true), "{}", a.2);
    assert_eq!(a.2, b.2);
    assert_eq!(e.sim.requests("openai-platform"), 2);
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).len(), 2);

    // 24 hours on the key is forgotten (and purged): the same key is a new request.
    e.clock.advance(Duration::hours(24));
    assert!(e.router.idempotency().purge().await.unwrap() >= 2);
    let (st, replayed, _) = parts(keyed(&e, &t, &chat_body("A new note"), "order-42").await).await;
    assert_eq!((st, replayed), (200, false));
    assert_eq!(e.sim.requests("openai-platform"), 3);
}

#[tokio::test]
async fn the_same_key_in_flight_is_a_409_and_then_replays() {
    let e = env(RouterConfig::default()).await;
    let (_, t) = supplier(&e, "Slow Lane Studio");
    e.sim.set_faults("openai-platform", Faults { latency: Latency { median_ms: 1_500, sigma: 0.0, min_ms: 1_500 }, ..Default::default() });
    let body = chat_body("Take your time.");
    let (base, t1, b1) = (e.gw.base_url(), t.clone(), body.clone());
    let first =
        tokio::spawn(async move { parts(send(&base, "/chat/completions", &t1, &b1, &[("idempotency-key", "slow-1")]).await).await });
    for _ in 0..200 {
        if e.router.idempotency().in_flight() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(e.router.idempotency().in_flight(), 1);
    let r = keyed(&e, &t, &body, "slow-1").await;
    assert_eq!(r.headers()["retry-after"], "1");
    let (st, replayed, text) = parts(r).await;
    assert_eq!((st, replayed, code(&text).as_str()), (409, false, "idempotency_key_in_use"), "{text}");
    // A different body while in flight: 422.
    let (st, _, text) = parts(keyed(&e, &t, &chat_body("Something else"), "slow-1").await).await;
    assert_eq!((st, code(&text).as_str()), (422, "idempotency_key_reused"));
    let (st, replayed, text1) = first.await.unwrap();
    assert_eq!((st, replayed), (200, false));
    let (st, replayed, text2) = parts(keyed(&e, &t, &body, "slow-1").await).await;
    assert_eq!((st, replayed, text2), (200, true, text1));
    assert_eq!(e.sim.requests("openai-platform"), 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_or_endpoint_is_a_422_and_bad_keys_a_400() {
    let e = env(RouterConfig::default()).await;
    let (s, t) = supplier(&e, "Perfect Day Planning");
    assert_eq!(parts(keyed(&e, &t, &chat_body("one"), "k-1").await).await.0, 200);
    let (st, _, text) = parts(keyed(&e, &t, &chat_body("two"), "k-1").await).await;
    assert_eq!((st, code(&text).as_str()), (422, "idempotency_key_reused"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "idempotency_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("different request"), "{text}");
    let emb = serde_json::to_vec(&json!({"model": "text-embedding-3-small", "input": "one"})).unwrap();
    let (st, _, text) = parts(send(&e.gw.base_url(), "/embeddings", &t, &emb, &[("idempotency-key", "k-1")]).await).await;
    assert_eq!(st, 422);
    assert!(text.contains("/v1/chat/completions"), "names the endpoint the key was used on: {text}");

    let long = "k".repeat(256);
    for bad in [long.as_str(), "", "tab\tinside"] {
        let (st, _, text) = parts(keyed(&e, &t, &chat_body("one"), bad).await).await;
        assert_eq!((st, code(&text).as_str()), (400, "invalid_idempotency_key"), "{bad:?}: {text}");
    }
    let two = [("idempotency-key", "a"), ("idempotency-key", "b")];
    let (st, _, text) = parts(send(&e.gw.base_url(), "/chat/completions", &t, &chat_body("one"), &two).await).await;
    assert_eq!((st, code(&text).as_str()), (400, "invalid_idempotency_key"), "{text}");
    // A body that does not parse is refused without touching the key.
    let (st, _, _) = parts(keyed(&e, &t, b"{not json", "k-2").await).await;
    assert_eq!(st, 400);
    assert_eq!(parts(keyed(&e, &t, &chat_body("three"), "k-2").await).await.0, 200);
    assert_eq!(e.sim.requests("openai-platform"), 2, "only the two accepted requests were sent");
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).len(), 2);
}

#[tokio::test]
async fn an_evicted_or_too_large_answer_is_a_409_never_a_second_call() {
    let cfg = RouterConfig {
        idempotency: IdempotencyConfig { max_total_bytes: 2_500, ..IdempotencyConfig::default() },
        ..RouterConfig::default()
    };
    let e = env(cfg).await;
    let (_, t) = supplier(&e, "Tiny Disk Florist");
    for i in 0..8 {
        let (st, _, text) = parts(keyed(&e, &t, &chat_body(&format!("note {i}")), &format!("k-{i}")).await).await;
        assert_eq!(st, 200);
        assert!(text.len() < 2_500, "each answer fits the total cap: {}", text.len());
    }
    let calls = e.sim.requests("openai-platform");
    let (st, replayed, text) = parts(keyed(&e, &t, &chat_body("note 0"), "k-0").await).await;
    assert_eq!((st, replayed, code(&text).as_str()), (409, false, "idempotent_answer_unavailable"), "{text}");
    assert!(text.contains("no longer kept"), "{text}");
    // The newest answer is still kept.
    assert!(parts(keyed(&e, &t, &chat_body("note 7"), "k-7").await).await.1);
    assert_eq!(e.sim.requests("openai-platform"), calls, "no second paid call");

    // An answer larger than the cap per answer is never kept.
    let cfg =
        RouterConfig { idempotency: IdempotencyConfig { max_answer_bytes: 10, ..IdempotencyConfig::default() }, ..RouterConfig::default() };
    let e = env(cfg).await;
    let (_, t) = supplier(&e, "Big Answer Bakery");
    assert_eq!(parts(keyed(&e, &t, &chat_body("a long one"), "big").await).await.0, 200);
    let (st, _, text) = parts(keyed(&e, &t, &chat_body("a long one"), "big").await).await;
    assert_eq!((st, code(&text).as_str()), (409, "idempotent_answer_unavailable"));
    assert!(text.contains("larger than"), "{text}");
    assert_eq!(e.sim.requests("openai-platform"), 1);
}

#[tokio::test]
async fn a_failed_first_attempt_may_be_retried_and_its_row_stays() {
    let e = env(RouterConfig::default()).await;
    let (s, t) = supplier(&e, "Retry Rings");
    e.sim.set_outage("openai-platform", true);
    e.sim.set_outage("anthropic-platform", true);
    let body = chat_body("Try again later.");
    let (st, _, text) = parts(keyed(&e, &t, &body, "retry-1").await).await;
    assert!(st >= 500, "{st} {text}");
    e.router.ledger().flush().await;
    let failed = e.usage_rows(s);
    assert!(!failed.is_empty() && failed.iter().all(|r| r.2 != 0), "the failed attempt is recorded: {failed:?}");
    let calls = e.sim.requests("openai-platform");
    e.sim.set_outage("openai-platform", false);
    e.sim.set_outage("anthropic-platform", false);
    let (st, replayed, text) = parts(keyed(&e, &t, &body, "retry-1").await).await;
    assert_eq!((st, replayed), (200, false), "{text}");
    assert_eq!(e.sim.requests("openai-platform"), calls + 1, "the retry called the provider");
    e.router.ledger().flush().await;
    let rows = e.usage_rows(s);
    assert_eq!(rows.len(), failed.len() + 1, "the failed rows stay, the retry has its own");
    assert_eq!(&rows[..failed.len()], &failed[..]);
    assert_eq!(rows.last().unwrap().2, 0);
    // Completed now: replayed.
    assert!(parts(keyed(&e, &t, &body, "retry-1").await).await.1);
}

#[tokio::test]
async fn completed_streams_replay_and_cut_streams_may_be_retried() {
    let e = env(RouterConfig::default()).await;
    let (_, t) = supplier(&e, "Streaming Strings");
    let body = serde_json::to_vec(
        &json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Name three flowers."}]}),
    )
    .unwrap();
    let (st, replayed, first) = parts(keyed(&e, &t, &body, "s-1").await).await;
    assert_eq!((st, replayed), (200, false));
    assert!(first.ends_with("data: [DONE]\n\n"), "{first}");
    let r = keyed(&e, &t, &body, "s-1").await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let (st, replayed, again) = parts(r).await;
    assert_eq!((st, replayed, again), (200, true, first));
    assert_eq!(e.sim.requests("openai-platform"), 1);

    e.sim.set_faults("openai-platform", Faults { stream_cut_rate: 1.0, stream_cut_after: 2, ..Default::default() });
    let r = keyed(&e, &t, &body, "s-2").await;
    let cut = r.text().await.unwrap_or_default();
    assert!(!cut.ends_with("data: [DONE]\n\n"), "the stream was cut: {cut}");
    for _ in 0..200 {
        if e.router.idempotency().in_flight() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    e.sim.set_faults("openai-platform", Faults::default());
    let calls = e.sim.requests("openai-platform");
    let (st, replayed, text) = parts(keyed(&e, &t, &body, "s-2").await).await;
    assert_eq!((st, replayed), (200, false), "a cut stream's key is retried, not replayed");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(e.sim.requests("openai-platform"), calls + 1);
}

#[tokio::test]
async fn keys_are_per_supplier() {
    let e = env(RouterConfig::default()).await;
    let (a, ta) = supplier(&e, "Supplier A");
    let (b, tb) = supplier(&e, "Supplier B");
    let body = chat_body("Same words, two suppliers.");
    let ra = parts(keyed(&e, &ta, &body, "shared-key").await).await;
    let rb = parts(keyed(&e, &tb, &body, "shared-key").await).await;
    assert_eq!((ra.0, ra.1, rb.0, rb.1), (200, false, 200, false));
    assert_eq!(e.sim.requests("openai-platform"), 2);
    // Each supplier's key replays its own answer; another body is a 422 for A only.
    assert!(parts(keyed(&e, &ta, &body, "shared-key").await).await.1);
    assert_eq!(parts(keyed(&e, &ta, &chat_body("other"), "shared-key").await).await.0, 422);
    assert!(parts(keyed(&e, &tb, &body, "shared-key").await).await.1);
    e.router.ledger().flush().await;
    assert_eq!((e.usage_rows(a).len(), e.usage_rows(b).len()), (1, 1));
}

/// A router and gateway on `e`'s database, simulator and clock, as after a restart.
async fn restarted(e: &Env) -> (Arc<Router>, GatewayHandle) {
    let ledger = Ledger::start(&e.store).unwrap();
    let clock = Arc::new(e.clock.clone());
    let pricing = Arc::new(PricingTable::builtin());
    let router = Router::new(
        e.store.clone(),
        fast_providers(2),
        pricing,
        clock,
        ledger,
        RouterConfig::default(),
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    router.set_key(e.platform_openai, Some(Secret::new(DEMO_OPENAI_KEY)));
    let gw = gateway::start(router.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    (router, gw)
}

#[tokio::test]
async fn records_survive_a_restart_and_a_crash_leaves_the_outcome_unknown_until_the_lease_ends() {
    let e = env(RouterConfig::default()).await;
    let (s, t) = supplier(&e, "Durable Decor");
    let body = chat_body("Remember me.");
    let (st, _, first) = parts(keyed(&e, &t, &body, "durable").await).await;
    assert_eq!(st, 200);
    // A request in flight when its process dies: its record stays "in flight".
    let crashed = chat_body("Lost in the crash.");
    let key = IdempotencyKey::parse(b"crashed").unwrap();
    match e.router.idempotency().begin(s, key, Endpoint::ChatCompletions, &crashed).await.unwrap() {
        Begin::Run(ticket) => std::mem::forget(ticket),
        other => panic!("{other:?}"),
    }
    e.router.ledger().flush().await;
    let calls = e.sim.requests("openai-platform");

    let (_router, gw) = restarted(&e).await;
    let base = gw.base_url();
    let r = send(&base, "/chat/completions", &t, &body, &[("idempotency-key", "durable")]).await;
    let (st, replayed, text) = parts(r).await;
    assert_eq!((st, replayed, text), (200, true, first), "replayed from the database");
    let r = send(&base, "/chat/completions", &t, &crashed, &[("idempotency-key", "crashed")]).await;
    assert_eq!(r.headers()["retry-after"], "600");
    let (st, _, text) = parts(r).await;
    assert_eq!((st, code(&text).as_str()), (409, "idempotency_outcome_unknown"), "{text}");
    assert_eq!(e.sim.requests("openai-platform"), calls, "no provider call");
    // Once the lease (10 minutes) has run out, the first attempt is surely over: retryable.
    e.clock.advance(Duration::minutes(10));
    let (st, replayed, _) = parts(send(&base, "/chat/completions", &t, &crashed, &[("idempotency-key", "crashed")]).await).await;
    assert_eq!((st, replayed), (200, false));
    assert_eq!(e.sim.requests("openai-platform"), calls + 1);
}

/// X-Request-Id is a tracing id: it never deduplicates. Both requests are
/// served and both recorded (each provider call has its own event id), with
/// the tracing id on both rows.
#[tokio::test]
async fn x_request_id_never_deduplicates() {
    let e = env(RouterConfig::default()).await;
    let (s, t) = supplier(&e, "Traced Tables");
    for text in ["first", "second"] {
        let r = send(&e.gw.base_url(), "/chat/completions", &t, &chat_body(text), &[("x-request-id", "trace-1")]).await;
        let (st, replayed, _) = parts(r).await;
        assert_eq!((st, replayed), (200, false));
    }
    assert_eq!(e.sim.requests("openai-platform"), 2);
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).len(), 2, "both requests are recorded");
}

#[tokio::test]
async fn the_openai_python_sdk_gets_replays_and_mismatches() {
    let e = env(RouterConfig::default()).await;
    let (s, t) = supplier(&e, "SDK Keys Studio");
    let stdout =
        crate::support::run_python_script("idempotency_sdk.py", &[], &[("GATEWAY_BASE_URL", &e.gw.base_url()), ("GATEWAY_TOKEN", &t)])
            .await;
    assert!(stdout.contains("replay ok") && stdout.contains("mismatch ok"), "{stdout}");
    assert_eq!(e.sim.requests("openai-platform"), 1, "one provider call");
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).len(), 1);
}

/// The serving lanes are threads: a key begun on one while another completes
/// its own must not deadlock (they once took the key table and the answer
/// cache in opposite orders, and a benchmark's 32 keyed connections over two
/// lanes stopped the gateway for good).
#[tokio::test]
async fn keys_begun_and_completed_on_two_threads_at_once_never_deadlock() {
    use switchboard::store::StoredAnswer;
    let e = env(RouterConfig::default()).await;
    let (s, _) = supplier(&e, "Two Lanes Studio");
    let idem = e.router.idempotency().clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for lane in 0..2 {
        let (idem, done_tx) = (idem.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                // Eight at a time on this thread, as a lane serves its connections.
                let one = |i: usize| {
                    let idem = idem.clone();
                    async move {
                        let key = IdempotencyKey::parse(format!("lane{lane}-{i}").as_bytes()).unwrap();
                        match idem.begin(s, key, Endpoint::ChatCompletions, format!("body {i}").as_bytes()).await.unwrap() {
                            Begin::Run(t) => {
                                let answer = StoredAnswer { status: 200, request_id: None, headers: Vec::new(), body: "{}".into() };
                                t.complete(answer).await
                            }
                            _ => panic!("a fresh key was not run"),
                        }
                    }
                };
                use futures::StreamExt;
                futures::stream::iter(0..1500).map(one).buffer_unordered(8).collect::<Vec<()>>().await;
            });
            let _ = done_tx.send(lane);
        });
    }
    for _ in 0..2 {
        // Generous: 3,000 records take about a second here; a deadlock never ends.
        done_rx.recv_timeout(std::time::Duration::from_secs(120)).expect("the two threads deadlocked on the idempotency locks");
    }
    assert_eq!(idem.in_flight(), 0);
}

/// Concurrent requests' claims and completions share one commit: inside a
/// batch each change sees the ones before it, no other connection sees any of
/// them until the commit, and after it all of them are there.
#[test]
fn a_batch_of_claims_and_completions_is_one_commit() {
    use switchboard::domain::idempotency::{Decision, Fingerprint, KeyState};
    use switchboard::store::{AttemptTimes, IdempotencyDb, Store, StoredAnswer};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("batch.db")).unwrap();
    let s = SupplierId(1);
    let now = chrono::Utc::now();
    let times = AttemptTimes { now, lease_until: now + Duration::minutes(5), expires_at: now + Duration::hours(24) };
    let (k1, k2) = (IdempotencyKey::parse(b"batch-1").unwrap(), IdempotencyKey::parse(b"batch-2").unwrap());
    let fp = Fingerprint::of(b"the body");
    let answer = StoredAnswer { status: 200, request_id: None, headers: Vec::new(), body: "{\"ok\":true}".into() };
    let mut db = IdempotencyDb::open(&store).unwrap();
    let other = IdempotencyDb::open(&store).unwrap();

    db.begin_batch().unwrap();
    assert_eq!(db.claim(s, &k1, Endpoint::ChatCompletions, &fp, times).unwrap().decision, Decision::Run);
    assert_eq!(db.claim(s, &k2, Endpoint::ChatCompletions, &fp, times).unwrap().decision, Decision::Run);
    // The same key again in the batch finds its in-flight record (and writes nothing).
    assert_ne!(db.claim(s, &k1, Endpoint::ChatCompletions, &fp, times).unwrap().decision, Decision::Run);
    db.complete(s, &k1, &fp, &answer, Some(1 << 20), now).unwrap();
    db.fail(s, &k2, &fp, Some(502), None, now).unwrap();
    assert!(other.get(s, &k1).unwrap().is_none(), "seen before the commit");
    db.commit_batch().unwrap();

    let (r1, a1) = other.get(s, &k1).unwrap().expect("k1 committed");
    assert_eq!((r1.state, a1.map(|a| a.body)), (KeyState::Completed, Some(answer.body.clone())));
    assert_eq!(other.get(s, &k2).unwrap().expect("k2 committed").0.state, KeyState::Failed);
    assert_eq!(db.kept_bytes(), answer.body.len() as u64);
    // Outside a batch each change is its own transaction again.
    let k3 = IdempotencyKey::parse(b"batch-3").unwrap();
    assert_eq!(db.claim(s, &k3, Endpoint::Embeddings, &fp, times).unwrap().decision, Decision::Run);
    assert_eq!(other.get(s, &k3).unwrap().expect("k3 committed").0.state, KeyState::InFlight);
}

/// The records live in their own file beside the database: a claim and a
/// completion commit while another connection holds the main file's write
/// lock (as the usage fold does for a few ms at a time; before, a keyed
/// request waited for it), and an older database's records move there when
/// it is first opened.
#[test]
fn the_records_have_their_own_file_and_never_wait_for_the_main_files_writer() {
    use switchboard::domain::idempotency::{Decision, Fingerprint, KeyState};
    use switchboard::store::{AttemptTimes, IdempotencyDb, Store, StoredAnswer, idempotency_path};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("own.db");
    let store = Store::open(&path).unwrap();
    let s = SupplierId(1);
    let now = chrono::Utc::now();
    let times = AttemptTimes { now, lease_until: now + Duration::minutes(5), expires_at: now + Duration::hours(24) };
    let fp = Fingerprint::of(b"the body");
    let answer = StoredAnswer { status: 200, request_id: None, headers: Vec::new(), body: "{\"ok\":true}".into() };

    // A record an older Switchboard kept in the main file (schema v10's table).
    let main = rusqlite::Connection::open(&path).unwrap();
    main.execute(
        "INSERT INTO idempotency_keys (supplier_id, key, endpoint, fingerprint, state, status, body, body_state, body_len, \
         created_ms, lease_until_ms, expires_ms, completed_ms) VALUES (1, 'old-key', 0, ?1, 1, 200, ?2, 1, ?3, ?4, ?4, ?5, ?4)",
        rusqlite::params![
            fp.0.to_vec(),
            answer.body.to_vec(),
            answer.body.len() as i64,
            now.timestamp_millis(),
            (now + Duration::hours(24)).timestamp_millis()
        ],
    )
    .unwrap();
    let db = IdempotencyDb::open(&store).unwrap();
    assert_eq!(db.path(), idempotency_path(&path));
    assert_eq!(db.path().file_name().unwrap(), "own.db.idempotency");
    let old = IdempotencyKey::parse(b"old-key").unwrap();
    let (rec, kept) = db.get(s, &old).unwrap().expect("the old record moved to the records' file");
    assert_eq!((rec.state, kept.map(|a| a.body)), (KeyState::Completed, Some(answer.body.clone())));
    assert_eq!(db.kept_bytes(), answer.body.len() as u64, "its kept body is counted");
    let left: i64 = main.query_row("SELECT count(*) FROM idempotency_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 0, "the main file keeps none");
    drop(db);
    // Opened again: nothing to move, the record is still there once.
    let mut db = IdempotencyDb::open(&store).unwrap();
    assert!(db.get(s, &old).unwrap().is_some());

    // Another connection holds the main file's write lock throughout.
    main.execute_batch(
        "BEGIN IMMEDIATE; INSERT INTO database_settings (key, value) VALUES ('held', 'by the fold') ON CONFLICT DO NOTHING;",
    )
    .unwrap();
    let k = IdempotencyKey::parse(b"new-key").unwrap();
    assert_eq!(db.claim(s, &k, Endpoint::ChatCompletions, &fp, times).unwrap().decision, Decision::Run);
    db.complete(s, &k, &fp, &answer, Some(1 << 20), now).unwrap();
    assert_eq!(db.get(s, &k).unwrap().expect("completed").0.state, KeyState::Completed);
    main.execute_batch("ROLLBACK").unwrap();
    // The main file's table is untouched by the new records.
    let in_main: i64 = main.query_row("SELECT count(*) FROM idempotency_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(in_main, 0);
}
