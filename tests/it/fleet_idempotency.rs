//! Idempotency keys shared by a fleet on PostgreSQL (issue 25): the
//! PostgreSQL backend of the records against the private cluster scripts/test
//! starts (the claim race between two pools, replay, mismatch, expiry, the
//! fleet-wide body cap), the engine's `Idempotency` over it as two instances
//! would use it, and two `switchboard serve` processes on one database: a
//! retry that lands on the other instance replays the first answer, and the
//! simulator counts one generation.

use crate::support::fleet::Fleet;
use crate::support::pg::{base_url, fresh_db, raw};
use bytes::Bytes;
use chrono::{DateTime, Duration as CDuration, TimeZone, Utc};
use serde_json::json;
use std::sync::Arc;
use switchboard::domain::idempotency::{BodyState, Decision, Endpoint, Fingerprint, IdempotencyKey, KeyState};
use switchboard::domain::{Clock, ManualClock, SupplierId};
use switchboard::engine::idempotency::{Begin, Idempotency, IdempotencyConfig, Refusal};
use switchboard::sim::DEMO_OPENAI_KEY;
use switchboard::store::pg::PgStore;
use switchboard::store::pg::idempotency::PgIdempotency;
use switchboard::store::{AttemptTimes, Store, StoredAnswer};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 10, 12, 0, 0).unwrap()
}

fn times(now: DateTime<Utc>) -> AttemptTimes {
    AttemptTimes { now, lease_until: now + CDuration::minutes(10), expires_at: now + CDuration::hours(24) }
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k.as_bytes()).unwrap()
}

fn answer(body: &str) -> StoredAnswer {
    StoredAnswer {
        status: 200,
        request_id: Some(format!("sb-{body}")),
        headers: vec![("content-type".into(), "application/json".into()), ("x-switchboard-route".into(), "platform".into())],
        body: Bytes::from(body.to_string()),
    }
}

const S: SupplierId = SupplierId(1);
const CHAT: Endpoint = Endpoint::ChatCompletions;

/// Two pools on one fresh database, as two instances would hold them.
async fn two_pools(name: &str) -> Option<(PgIdempotency, PgIdempotency, String)> {
    let base = base_url(name)?;
    let url = fresh_db(&base, name).await;
    let a = PgStore::open(&url).await.unwrap();
    let b = PgStore::open(&url).await.unwrap();
    Some((PgIdempotency::new(a), PgIdempotency::new(b), url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pools_claiming_one_key_at_once_get_one_new_attempt() {
    let Some((a, b, _)) = two_pools("sbt_idem_race").await else { return };
    let fp = Fingerprint::of(b"{\"a\":1}");
    for round in 0..10 {
        let k = key(&format!("race-{round}"));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (be, k) = (if i % 2 == 0 { a.clone() } else { b.clone() }, k.clone());
            tasks.push(tokio::spawn(async move { be.claim(S, &k, CHAT, &fp, times(t0())).await.unwrap().decision }));
        }
        let mut decisions = Vec::new();
        for t in tasks {
            decisions.push(t.await.unwrap());
        }
        let runs = decisions.iter().filter(|d| **d == Decision::Run).count();
        assert_eq!(runs, 1, "round {round}: one new attempt: {decisions:?}");
        let until = t0() + CDuration::minutes(10);
        assert!(
            decisions.iter().all(|d| *d == Decision::Run || *d == Decision::OutcomeUnknown { until }),
            "the others are refused while the attempt is in flight: {decisions:?}"
        );
    }
}

#[tokio::test]
async fn a_completed_key_replays_on_the_other_pool_and_refuses_another_body() {
    let Some((a, b, _)) = two_pools("sbt_idem_replay").await else { return };
    let fp = Fingerprint::of(b"{\"a\":1}");
    let k = key("order-42");
    assert_eq!(a.claim(S, &k, CHAT, &fp, times(t0())).await.unwrap().decision, Decision::Run);
    let sent = answer("{\"id\":\"chatcmpl-1\"}");
    assert!(a.complete(S, &k, &fp, &sent, Some(1 << 20), t0()).await.unwrap().is_empty());
    let later = t0() + CDuration::minutes(5);
    let got = b.claim(S, &k, CHAT, &fp, times(later)).await.unwrap();
    assert_eq!(got.decision, Decision::Replay);
    assert_eq!(got.answer.as_ref(), Some(&sent), "the same status, request id, headers and bytes");
    assert_eq!(got.record.as_ref().map(|r| r.state), Some(KeyState::Completed));
    assert_eq!(b.kept_bytes().await.unwrap(), sent.body.len() as u64);
    // Another body, or another endpoint: refused, and the record is untouched.
    let other = Fingerprint::of(b"{\"a\":2}");
    assert_eq!(b.claim(S, &k, CHAT, &other, times(later)).await.unwrap().decision, Decision::Mismatch { endpoint: CHAT });
    assert_eq!(b.claim(S, &k, Endpoint::Embeddings, &fp, times(later)).await.unwrap().decision, Decision::Mismatch { endpoint: CHAT });
    // Another supplier's equal key never meets it.
    assert_eq!(b.claim(SupplierId(2), &k, CHAT, &other, times(later)).await.unwrap().decision, Decision::Run);
    let (rec, kept) = a.get(S, &k).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.fingerprint, kept), (KeyState::Completed, fp, Some(sent)));
}

#[tokio::test]
async fn failed_keys_retry_expired_ones_are_overwritten_and_purged() {
    let Some((a, b, url)) = two_pools("sbt_idem_expiry").await else { return };
    let fp = Fingerprint::of(b"{\"a\":1}");
    // A failed attempt: the retry on the other pool is a new attempt.
    let f = key("fails");
    assert_eq!(a.claim(S, &f, CHAT, &fp, times(t0())).await.unwrap().decision, Decision::Run);
    a.fail(S, &f, &fp, Some(502), Some("sb-x"), t0()).await.unwrap();
    assert_eq!(b.claim(S, &f, CHAT, &fp, times(t0())).await.unwrap().decision, Decision::Run);
    // A completed key is forgotten 24 hours on: even another body runs, and the old body's bytes are freed.
    let k = key("day-old");
    a.claim(S, &k, CHAT, &fp, times(t0())).await.unwrap();
    a.complete(S, &k, &fp, &answer("0123456789"), Some(1 << 20), t0()).await.unwrap();
    assert_eq!(a.kept_bytes().await.unwrap(), 10);
    let next_day = t0() + CDuration::hours(24);
    let other = Fingerprint::of(b"{\"a\":2}");
    let c = b.claim(S, &k, CHAT, &other, times(next_day)).await.unwrap();
    assert_eq!(c.decision, Decision::Run);
    assert_eq!(c.record.map(|r| r.fingerprint), Some(fp), "the expired record it replaced");
    assert_eq!(a.kept_bytes().await.unwrap(), 0);
    let (rec, _) = a.get(S, &k).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.fingerprint, rec.body), (KeyState::InFlight, other, BodyState::None));
    // An in-flight record left by a stopped instance blocks its key until its lease ends.
    let orphan = key("orphan");
    a.claim(S, &orphan, CHAT, &fp, times(t0())).await.unwrap();
    let until = t0() + CDuration::minutes(10);
    assert_eq!(b.claim(S, &orphan, CHAT, &fp, times(t0())).await.unwrap().decision, Decision::OutcomeUnknown { until });
    assert_eq!(b.claim(S, &orphan, CHAT, &fp, times(until)).await.unwrap().decision, Decision::Run);
    // Purging at t0 + 48 h deletes every record (all expired), and what they kept.
    b.complete(S, &k, &other, &answer("abc"), Some(1 << 20), next_day).await.unwrap();
    assert_eq!(a.kept_bytes().await.unwrap(), 3);
    assert_eq!(a.purge(t0() + CDuration::hours(24)).await.unwrap(), 1, "the failed key's retry, begun at t0");
    assert_eq!(a.purge(t0() + CDuration::hours(48) + CDuration::minutes(10)).await.unwrap(), 2);
    assert_eq!(a.kept_bytes().await.unwrap(), 0);
    let db = raw(&url).await;
    let left: i64 = db.query_one("SELECT count(*) FROM idempotency_keys", &[]).await.unwrap().get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_body_cap_holds_for_the_fleet_oldest_bodies_first() {
    let Some((a, b, _)) = two_pools("sbt_idem_cap").await else { return };
    let fp = Fingerprint::of(b"{}");
    let cap = Some(25u64);
    for (i, be) in [&a, &b, &a].into_iter().enumerate() {
        let k = key(&format!("k{i}"));
        be.claim(S, &k, CHAT, &fp, times(t0())).await.unwrap();
        let evicted = be.complete(S, &k, &fp, &answer("0123456789"), cap, t0() + CDuration::seconds(i as i64)).await.unwrap();
        assert_eq!(evicted, if i == 2 { vec![(S, key("k0"))] } else { vec![] }, "completing k{i}");
    }
    assert_eq!(a.kept_bytes().await.unwrap(), 20);
    // k0's body was dropped by the other pool's completion: a replay says so.
    assert_eq!(b.claim(S, &key("k0"), CHAT, &fp, times(t0())).await.unwrap().decision, Decision::NotKept(BodyState::Evicted));
    assert_eq!(b.claim(S, &key("k1"), CHAT, &fp, times(t0())).await.unwrap().decision, Decision::Replay);
    // Larger than the cap in all: completed without its body.
    let big = key("big");
    a.claim(S, &big, CHAT, &fp, times(t0())).await.unwrap();
    a.complete(S, &big, &fp, &answer(&"x".repeat(30)), cap, t0()).await.unwrap();
    assert_eq!(b.claim(S, &big, CHAT, &fp, times(t0())).await.unwrap().decision, Decision::NotKept(BodyState::TooLarge));
    assert_eq!(a.kept_bytes().await.unwrap(), 20);
}

/// The engine over a PostgreSQL store: two `Idempotency`s (two instances).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_on_postgres_replays_another_instances_answer_and_refuses_while_it_runs() {
    let Some(base) = base_url("sbt_idem_engine") else { return };
    let url = fresh_db(&base, "sbt_idem_engine").await;
    let u = url.clone();
    let (sa, sb) =
        tokio::task::spawn_blocking(move || (Store::open_postgres(&u).unwrap(), Store::open_postgres(&u).unwrap())).await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t0()));
    let a = Idempotency::start(&sa, clock.clone(), IdempotencyConfig::default()).unwrap();
    let b = Idempotency::start(&sb, clock.clone(), IdempotencyConfig::default()).unwrap();
    let body = br#"{"model":"gpt-4o-mini"}"#;
    let Begin::Run(ticket) = a.begin(S, key("k1"), CHAT, body).await.unwrap() else { panic!("a new attempt on A") };
    // While A serves it, B refuses the key — and its refusal does not mark A's attempt failed.
    for _ in 0..2 {
        match b.begin(S, key("k1"), CHAT, body).await.unwrap() {
            Begin::Refused(Refusal::OutcomeUnknown { .. } | Refusal::InFlight) => {}
            other => panic!("B while A serves: {other:?}"),
        }
    }
    match b.begin(S, key("k1"), CHAT, b"{}").await.unwrap() {
        Begin::Refused(Refusal::Mismatch { endpoint: CHAT }) => {}
        other => panic!("another body on B: {other:?}"),
    }
    let sent = answer("{\"id\":\"chatcmpl-A\"}");
    ticket.complete(sent.clone()).await;
    match b.begin(S, key("k1"), CHAT, body).await.unwrap() {
        Begin::Replay(got) => assert_eq!(*got, sent),
        other => panic!("B after A answered: {other:?}"),
    }
    // A failed attempt on B is retried on A.
    let Begin::Run(t2) = b.begin(S, key("k2"), CHAT, body).await.unwrap() else { panic!("k2 on B") };
    t2.fail(Some(502), None);
    // B's thread applies its commands in order: once this purge is done, so is the failure.
    b.purge().await.unwrap();
    match a.begin(S, key("k2"), CHAT, body).await.unwrap() {
        Begin::Run(t) => t.fail(None, None),
        other => panic!("a failed key is retryable on the other instance: {other:?}"),
    }
}

/// A refusal leaves the record it found as it was (before, the refused
/// request's claim guard marked it failed: one refusal, then a second paid
/// call). On SQLite: an attempt left in flight by a stopped process keeps
/// refusing its key until its lease ends, however often it is retried.
#[tokio::test]
async fn refusals_never_mark_the_record_they_found_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("sb.db")).unwrap();
    let mut db = switchboard::store::IdempotencyDb::open(&store).unwrap();
    let body = br#"{"model":"gpt-4o-mini"}"#;
    let fp = Fingerprint::of(body);
    assert_eq!(db.claim(S, &key("orphan"), CHAT, &fp, times(t0())).unwrap().decision, Decision::Run);
    drop(db);
    let clock = Arc::new(ManualClock::new(t0()));
    let idem = Idempotency::start(&store, clock.clone(), IdempotencyConfig::default()).unwrap();
    for i in 0..3 {
        match idem.begin(S, key("orphan"), CHAT, body).await.unwrap() {
            Begin::Refused(Refusal::OutcomeUnknown { retry_after_secs: 600 }) => {}
            other => panic!("retry {i} within the lease: {other:?}"),
        }
        match idem.begin(S, key("orphan"), CHAT, b"{}").await.unwrap() {
            Begin::Refused(Refusal::Mismatch { endpoint: CHAT }) => {}
            other => panic!("another body, retry {i}: {other:?}"),
        }
    }
    clock.advance(CDuration::minutes(10));
    assert!(matches!(idem.begin(S, key("orphan"), CHAT, body).await.unwrap(), Begin::Run(_)), "retryable once the lease ended");
}

// ---- two `serve` processes (setup as in tests/it/fleet.rs) ----

/// The fleet with supplier 1's platform account on the simulator.
async fn setup(name: &str) -> Option<Fleet> {
    let f = Fleet::setup(name).await?;
    f.add_key(&raw(&f.url).await, "platform", "platform", DEMO_OPENAI_KEY).await;
    Some(f)
}

/// Status, whether it was a replay, `x-request-id`, the body.
async fn keyed(http: &reqwest::Client, gw: &str, token: &str, key: &str, text: &str) -> (u16, bool, String, String) {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "max_tokens": 5});
    let r = http
        .post(format!("http://{gw}/v1/chat/completions"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    let rid = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (status, replayed, rid, r.text().await.unwrap())
}

/// Generations the simulator made so far (paid calls; probes are not generations).
async fn generations(http: &reqwest::Client, sim: &str) -> u64 {
    let list: serde_json::Value = http.get(format!("http://{sim}/_sim/accounts")).send().await.unwrap().json().await.unwrap();
    list.as_array().unwrap().iter().map(|a| a["generations"].as_u64().unwrap()).sum()
}

/// Every simulator account answers after `ms` milliseconds.
async fn slow_sim(http: &reqwest::Client, sim: &str, ms: u64) {
    let list: serde_json::Value = http.get(format!("http://{sim}/_sim/accounts")).send().await.unwrap().json().await.unwrap();
    for a in list.as_array().unwrap() {
        let name = a["name"].as_str().unwrap();
        let r = http
            .post(format!("http://{sim}/_sim/accounts/{name}/faults"))
            .json(&json!({"latency": {"median_ms": ms, "sigma": 0.0, "min_ms": ms}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    }
}

fn error_code(text: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_on_the_other_instance_replays_and_is_not_a_second_paid_call() {
    let Some(f) = setup("fleet_idem").await else { return };
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let (_a, gw_a) = f.serve("host-a", 600);
    let (_b, gw_b) = f.serve("host-b", 600);
    let before = generations(&http, &f.sim).await;

    // k1 on A, then the same request with k1 on B: B replays A's answer.
    let (st, replayed, rid_a, text_a) = keyed(&http, &gw_a, &f.token, "k1", "Thank the Hendersons.").await;
    assert_eq!((st, replayed), (200, false), "{text_a}");
    assert!(text_a.contains("chat.completion"), "{text_a}");
    let (st, replayed, rid_b, text_b) = keyed(&http, &gw_b, &f.token, "k1", "Thank the Hendersons.").await;
    assert_eq!((st, replayed), (200, true), "B replays: {text_b}");
    assert_eq!((rid_b.as_str(), text_b.as_str()), (rid_a.as_str(), text_a.as_str()), "the same request id and bytes");
    assert_eq!(generations(&http, &f.sim).await - before, 1, "one paid call for k1");

    // k1 with another body on B: refused (422), no call.
    let (st, _, _, text) = keyed(&http, &gw_b, &f.token, "k1", "Another note entirely.").await;
    assert_eq!((st, error_code(&text).as_str()), (422, "idempotency_key_reused"), "{text}");
    assert_eq!(generations(&http, &f.sim).await - before, 1);

    // k2 sent to A and B at once (answers take 400 ms): one is served, the
    // other refused as in flight or replayed; one paid call.
    slow_sim(&http, &f.sim, 400).await;
    let (ra, rb) = tokio::join!(
        keyed(&http, &gw_a, &f.token, "k2", "Confirm the peonies."),
        keyed(&http, &gw_b, &f.token, "k2", "Confirm the peonies.")
    );
    let mut outcomes = [(ra.0, ra.1), (rb.0, rb.1)];
    outcomes.sort();
    assert!(
        outcomes == [(200, false), (409, false)] || outcomes == [(200, false), (200, true)],
        "one served, one refused or replayed: A {:?} {}, B {:?} {}",
        (ra.0, ra.1),
        ra.3,
        (rb.0, rb.1),
        rb.3
    );
    for r in [&ra, &rb] {
        if r.0 == 409 {
            let c = error_code(&r.3);
            assert!(c == "idempotency_key_in_use" || c == "idempotency_outcome_unknown", "{}", r.3);
        }
    }
    assert_eq!(generations(&http, &f.sim).await - before, 2, "one paid call for k2");
    // Once answered, k2 replays on both.
    for gw in [&gw_a, &gw_b] {
        let (st, replayed, _, _) = keyed(&http, gw, &f.token, "k2", "Confirm the peonies.").await;
        assert_eq!((st, replayed), (200, true));
    }
    assert_eq!(generations(&http, &f.sim).await - before, 2);
    let db = raw(&f.url).await;
    let keys: i64 = db.query_one("SELECT count(*) FROM idempotency_keys WHERE state = 1", &[]).await.unwrap().get(0);
    assert_eq!(keys, 2, "k1 and k2 completed in the shared table");
}

/// The engine's batches on PostgreSQL: the changes waiting together share
/// one transaction; what it claimed is invisible to the other instance until
/// the commit, whose claim of the same key waits for it and then decides on
/// the committed record; a batch dropped open (the engine stopping) commits
/// nothing and leaves no connection inside its transaction.
#[test]
fn a_batch_commits_its_changes_together_and_holds_its_keys_until_then() {
    use switchboard::store::IdempotencyBackend;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some((mut a, b, url)) = rt.block_on(two_pools("sbt_idem_batch")) else { return };
    let fp = Fingerprint::of(b"{\"a\":1}");
    let db = rt.block_on(raw(&url));
    let count =
        |db: &tokio_postgres::Client| -> i64 { rt.block_on(db.query_one("SELECT count(*) FROM idempotency_keys", &[])).unwrap().get(0) };

    a.begin_batch().unwrap();
    assert_eq!(IdempotencyBackend::claim(&mut a, S, &key("batch-1"), CHAT, &fp, times(t0())).unwrap().decision, Decision::Run);
    assert_eq!(IdempotencyBackend::claim(&mut a, S, &key("batch-2"), CHAT, &fp, times(t0())).unwrap().decision, Decision::Run);
    let sent = answer("{\"id\":\"chatcmpl-b\"}");
    IdempotencyBackend::complete(&mut a, S, &key("batch-2"), &fp, &sent, Some(1 << 20), t0()).unwrap();
    assert_eq!(count(&db), 0, "nothing is visible before the commit");
    // The other instance's claim of a key the batch holds waits for the commit.
    let other = {
        let mut b = b.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let d = IdempotencyBackend::claim(&mut b, S, &key("batch-1"), CHAT, &fp, times(t0() + CDuration::seconds(1))).unwrap().decision;
            (d, started.elapsed())
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!other.is_finished(), "the other claim waits for the batch");
    a.commit_batch().unwrap();
    let (decision, waited) = other.join().unwrap();
    assert!(waited >= std::time::Duration::from_millis(250), "{waited:?}");
    let until = t0() + CDuration::minutes(10);
    assert_eq!(decision, Decision::OutcomeUnknown { until }, "decided on the committed in-flight record");
    assert_eq!(count(&db), 2);
    let replay = rt.block_on(b.claim(S, &key("batch-2"), CHAT, &fp, times(t0() + CDuration::seconds(2)))).unwrap();
    assert_eq!((replay.decision, replay.answer), (Decision::Replay, Some(sent)));

    // Dropped while open: nothing of it is committed, and the key is free at once.
    a.begin_batch().unwrap();
    assert_eq!(IdempotencyBackend::claim(&mut a, S, &key("batch-3"), CHAT, &fp, times(t0())).unwrap().decision, Decision::Run);
    drop(a);
    let mut b2 = b.clone();
    assert_eq!(IdempotencyBackend::claim(&mut b2, S, &key("batch-3"), CHAT, &fp, times(t0())).unwrap().decision, Decision::Run);
    assert_eq!(count(&db), 3);
    let in_tx: i64 = rt
        .block_on(db.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(in_tx, 0, "no connection is left inside a transaction");
}

/// A key in flight on another instance that still heartbeats is "in use"
/// (retry in a second: its answer will be replayed), not "outcome unknown"
/// with a retry-after of the whole lease; once that instance is gone or
/// stopped, its attempt's outcome is unknown until the lease ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_flight_on_a_live_instance_is_in_use_and_its_outcome_unknown_once_that_instance_is_gone() {
    use switchboard::store::pg::fleet::{FleetStore, NewInstance};
    let Some((a, b, url)) = two_pools("sbt_idem_holder").await else { return };
    let fleet = FleetStore::new(PgStore::open(&url).await.unwrap());
    let info = |host: &str| NewInstance { host: host.into(), pid: 1, version: "0.1.0".into() };
    let (ia, ib) = (fleet.register(&info("gw-a"), None).await.unwrap(), fleet.register(&info("gw-b"), None).await.unwrap());
    let gone_after = std::time::Duration::from_secs(30);
    let (a, b) = (a.held_by(Some((ia, gone_after))), b.held_by(Some((ib, gone_after))));
    let fp = Fingerprint::of(b"{\"a\":1}");
    let k = key("held");
    assert_eq!(a.claim(S, &k, CHAT, &fp, times(t0())).await.unwrap().decision, Decision::Run);
    let later = times(t0() + CDuration::seconds(5));
    assert_eq!(b.claim(S, &k, CHAT, &fp, later).await.unwrap().decision, Decision::InFlight, "its holder heartbeats");
    // Another body is still a mismatch, whoever holds the key.
    let other = Fingerprint::of(b"{\"a\":2}");
    assert_eq!(b.claim(S, &k, CHAT, &other, later).await.unwrap().decision, Decision::Mismatch { endpoint: CHAT });
    // The holder stops heartbeating (killed): the outcome is unknown until the lease ends.
    let db = raw(&url).await;
    db.execute("UPDATE instances SET last_seen = now() - interval '1 minute' WHERE id = $1", &[&ia]).await.unwrap();
    let until = t0() + CDuration::minutes(10);
    assert_eq!(b.claim(S, &k, CHAT, &fp, later).await.unwrap().decision, Decision::OutcomeUnknown { until });
    // A completed key replays whoever completed it.
    let k2 = key("held-2");
    assert_eq!(b.claim(S, &k2, CHAT, &fp, times(t0())).await.unwrap().decision, Decision::Run);
    b.complete(S, &k2, &fp, &answer("{\"id\":\"x\"}"), Some(1 << 20), t0()).await.unwrap();
    assert_eq!(a.claim(S, &k2, CHAT, &fp, later).await.unwrap().decision, Decision::Replay);
}

/// A batch's changes of different keys are pipelined on its connection; the
/// changes of one key keep their order; the body counter stays exact.
#[test]
fn a_batch_runs_different_keys_together_and_each_keys_changes_in_order() {
    use switchboard::store::{Change, Changed, IdempotencyBackend};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some((mut a, b, _url)) = rt.block_on(two_pools("sbt_idem_pipeline")) else { return };
    let fp = Fingerprint::of(b"{\"a\":1}");
    let claim = |k: &str| Change::Claim { supplier: S, key: key(k), endpoint: CHAT, fingerprint: fp, times: times(t0()) };
    a.begin_batch().unwrap();
    let out = a.apply_all(vec![claim("p-1"), claim("p-2"), claim("p-1"), claim("p-3")]);
    let decisions: Vec<Decision> = out
        .into_iter()
        .map(|c| match c {
            Changed::Claim(r) => r.unwrap().decision,
            other => panic!("{other:?}"),
        })
        .collect();
    let until = t0() + CDuration::minutes(10);
    assert_eq!(
        decisions,
        vec![Decision::Run, Decision::Run, Decision::OutcomeUnknown { until }, Decision::Run],
        "p-1's second claim sees its first"
    );
    a.commit_batch().unwrap();
    let (one, two) = (answer("{\"id\":\"one\"}"), answer("{\"id\":\"two-two\"}"));
    let complete = |k: &str, ans: &StoredAnswer| Change::Complete {
        supplier: S,
        key: key(k),
        fingerprint: fp,
        answer: ans.clone(),
        keep_under: Some(1 << 20),
        now: t0(),
    };
    a.begin_batch().unwrap();
    let fail = Change::Fail { supplier: S, key: key("p-3"), fingerprint: fp, status: Some(502), request_id: None, now: t0() };
    let out = a.apply_all(vec![complete("p-1", &one), complete("p-2", &two), fail]);
    assert!(out.iter().all(|c| !c.is_err()), "{out:?}");
    a.commit_batch().unwrap();
    assert_eq!(rt.block_on(b.kept_bytes()).unwrap(), (one.body.len() + two.body.len()) as u64, "both bodies counted");
    let later = times(t0() + CDuration::seconds(1));
    let replay = rt.block_on(b.claim(S, &key("p-2"), CHAT, &fp, later)).unwrap();
    assert_eq!((replay.decision, replay.answer), (Decision::Replay, Some(two)));
    assert_eq!(rt.block_on(b.claim(S, &key("p-3"), CHAT, &fp, later)).unwrap().decision, Decision::Run, "a failed key is retryable");
}

/// In `process` mode (the default) the engine's claims and completions do
/// not wait for the WAL flush (`SET LOCAL synchronous_commit = off`, as
/// SQLite's `synchronous=NORMAL`); in `power` mode they do. The setting is
/// local to those transactions: no pooled connection keeps it (the ledger's
/// folds use the same pool and always wait).
#[test]
fn commits_follow_the_ledger_durability_and_the_setting_ends_with_the_transaction() {
    use switchboard::store::{IdempotencyBackend, IdempotencyDb, LedgerSync};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(base) = base_url("sbt_idem_sync") else { return };
    let pg = rt.block_on(async { PgStore::open(&fresh_db(&base, "sbt_idem_sync").await).await.unwrap() });
    let a = PgIdempotency::new(pg.clone());
    let fp = Fingerprint::of(b"{\"a\":1}");
    let mut fast = a.clone().synced(LedgerSync::Normal);
    let mut safe = a.clone().synced(LedgerSync::Full);
    assert!(!fast.commits_synced().unwrap(), "process mode: no wait for the flush");
    assert!(safe.commits_synced().unwrap(), "power mode: each commit waits");
    fast.begin_batch().unwrap();
    assert_eq!(IdempotencyBackend::claim(&mut fast, S, &key("s-1"), CHAT, &fp, times(t0())).unwrap().decision, Decision::Run);
    assert!(!fast.commits_synced().unwrap(), "inside the batch");
    fast.commit_batch().unwrap();
    assert_eq!(IdempotencyBackend::claim(&mut fast, S, &key("s-2"), CHAT, &fp, times(t0())).unwrap().decision, Decision::Run);
    IdempotencyBackend::complete(&mut fast, S, &key("s-2"), &fp, &answer("{}"), Some(1 << 20), t0()).unwrap();
    // Every connection of the pool, taken at once, is back to the server's default.
    let settings: Vec<String> = rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pg.client().await.unwrap());
        }
        let mut out = Vec::new();
        for c in &held {
            out.push(c.query_one("SHOW synchronous_commit", &[]).await.unwrap().get::<_, String>(0));
        }
        out
    });
    assert!(settings.iter().all(|s| s == "on"), "{settings:?}");
    // The records are there for another instance (committed and visible at once).
    let replay = rt.block_on(a.claim(S, &key("s-2"), CHAT, &fp, times(t0() + CDuration::seconds(1)))).unwrap();
    assert_eq!(replay.decision, Decision::Replay);

    // SQLite: the idempotency connection follows the same setting.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("sync.db")).unwrap();
    assert!(!IdempotencyDb::open(&store).unwrap().commits_synced().unwrap(), "synchronous=NORMAL");
    assert!(IdempotencyDb::open_with(&store, LedgerSync::Full).unwrap().commits_synced().unwrap(), "synchronous=FULL");
}

/// An engine lane in `process` mode: the first change of each key goes in
/// one flight (the claims in one statement, the completions in another), a
/// key that exists, or bodies that need room, each in a transaction of its
/// own, one key's later changes in order after it; the lane's connection is
/// its own (the pool's connections still wait for the flush).
#[tokio::test]
async fn a_lane_applies_different_keys_together_and_falls_back_one_by_one() {
    use switchboard::store::pg::idempotency::LaneConn;
    use switchboard::store::{Change, Changed, LedgerSync};
    let Some((_, b, url)) = two_pools("sbt_idem_lane").await else { return };
    let pool = PgStore::open(&url).await.unwrap();
    let a = PgIdempotency::new(pool.clone()).synced(LedgerSync::Normal);
    let mut lane = LaneConn::default();
    let fp = Fingerprint::of(b"{\"a\":1}");
    let old = answer("{\"id\":\"o\"}");
    b.claim(S, &key("old"), CHAT, &fp, times(t0())).await.unwrap();
    b.complete(S, &key("old"), &fp, &old, Some(1 << 20), t0()).await.unwrap();
    let claim = |k: &str| Change::Claim { supplier: S, key: key(k), endpoint: CHAT, fingerprint: fp, times: times(t0()) };
    let decision = |c: Changed| match c {
        Changed::Claim(r) => r.unwrap().decision,
        other => panic!("{other:?}"),
    };
    let out = a
        .apply_lane(&mut lane, vec![claim("l-1"), claim("l-2"), claim("old"), claim("l-1"), claim("l-3"), claim("l-4"), claim("l-5")])
        .await;
    let until = t0() + CDuration::minutes(10);
    assert_eq!(
        out.into_iter().map(decision).collect::<Vec<_>>(),
        vec![
            Decision::Run,
            Decision::Run,
            Decision::Replay,
            Decision::OutcomeUnknown { until },
            Decision::Run,
            Decision::Run,
            Decision::Run
        ],
        "new keys claimed together; an existing one decided on its record; l-1's second claim after its first"
    );
    // Rows written by one statement share its transaction id.
    let writers = |keys: &'static [&'static str]| {
        let pool = pool.clone();
        async move {
            let c = pool.client().await.unwrap();
            let keys: Vec<&str> = keys.to_vec();
            let sql = "SELECT count(DISTINCT xmin::text) FROM idempotency_keys WHERE key = ANY($1)";
            c.query_one(sql, &[&keys]).await.unwrap().get::<_, i64>(0)
        }
    };
    assert_eq!(writers(&["l-1", "l-2", "l-3", "l-4", "l-5"]).await, 1, "the new claims: one statement");

    let complete = |k: &str, body: &str, cap: u64, secs: i64| Change::Complete {
        supplier: S,
        key: key(k),
        fingerprint: fp,
        answer: answer(body),
        keep_under: Some(cap),
        now: t0() + CDuration::seconds(secs),
    };
    let fail = Change::Fail { supplier: S, key: key("l-3"), fingerprint: fp, status: Some(502), request_id: None, now: t0() };
    let later = Change::Claim { supplier: S, key: key("l-1"), endpoint: CHAT, fingerprint: fp, times: times(t0() + CDuration::seconds(5)) };
    let mut out = a
        .apply_lane(
            &mut lane,
            vec![
                complete("l-1", "0123456789", 1 << 20, 1),
                complete("l-2", "abcdefghij", 1 << 20, 1),
                fail,
                later,
                Change::Purge { now: t0() },
            ],
        )
        .await;
    assert!(matches!(out.pop(), Some(Changed::Purge(Ok(0)))), "nothing expired");
    match out.pop() {
        Some(Changed::Claim(Ok(c))) => {
            assert_eq!((c.decision, c.answer), (Decision::Replay, Some(answer("0123456789"))), "l-1's retry after its completion")
        }
        other => panic!("{other:?}"),
    }
    assert!(out.iter().all(|c| matches!(c, Changed::Complete(Ok(e)) if e.is_empty()) || matches!(c, Changed::Fail(Ok(())))), "{out:?}");
    assert_eq!(b.kept_bytes().await.unwrap(), (old.body.len() + 20) as u64, "both bodies counted");
    assert_eq!(writers(&["l-1", "l-2"]).await, 1, "the completions: one statement");
    let failed = b.claim(S, &key("l-3"), CHAT, &fp, times(t0() + CDuration::seconds(5))).await.unwrap();
    assert_eq!(failed.decision, Decision::Run, "a failed key is retryable");

    // Two bodies that do not fit together: each makes room in a transaction
    // of its own, the oldest kept bodies first.
    let cap = (old.body.len() + 20 + 3) as u64;
    let out = a.apply_lane(&mut lane, vec![complete("l-4", "0123456789", cap, 2), complete("l-5", "9876543210", cap, 2)]).await;
    let mut evicted: Vec<_> = out
        .into_iter()
        .flat_map(|c| match c {
            Changed::Complete(r) => r.unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    evicted.sort_by(|x, y| x.1.as_str().cmp(y.1.as_str()));
    assert_eq!(evicted, vec![(S, key("l-1")), (S, key("old"))]);
    assert_eq!(b.kept_bytes().await.unwrap(), 30, "l-2, l-4 and l-5");
    for k in ["l-4", "l-5", "l-2"] {
        assert_eq!(b.claim(S, &key(k), CHAT, &fp, times(t0() + CDuration::seconds(5))).await.unwrap().decision, Decision::Replay, "{k}");
    }

    // The lane's session does not wait for the flush; it is out of the pool,
    // whose connections (every one, taken at once) still wait.
    let settings: Vec<String> = {
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.client().await.unwrap());
        }
        let mut out = Vec::new();
        for c in &held {
            out.push(c.query_one("SHOW synchronous_commit", &[]).await.unwrap().get::<_, String>(0));
        }
        out
    };
    assert!(settings.iter().all(|s| s == "on"), "{settings:?}");
}
