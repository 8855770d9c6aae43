//! Two `switchboard serve` processes on one PostgreSQL (the private cluster
//! scripts/test starts), set up through the CLI only: the fleet key, a
//! supplier, a platform key sealed to the fleet key, a gateway token. Each
//! instance has its own "host" folder (journal, local file). Timings are
//! shortened with serve's flags (probes every 2 s, leader leases of 900 ms,
//! heartbeats every 300 ms).

use crate::support::fleet::{Fleet, chat, ok};
use crate::support::pg::raw;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use switchboard::sim::DEMO_OPENAI_KEY;

/// The fleet with supplier 1's platform account on the simulator.
async fn setup(name: &str) -> Option<Fleet> {
    let f = Fleet::setup(name).await?;
    f.add_key(&raw(&f.url).await, "platform", "platform", DEMO_OPENAI_KEY).await;
    Some(f)
}

async fn until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn rows_by_request(db: &tokio_postgres::Client) -> HashMap<String, i64> {
    db.query("SELECT request_id, count(*) FROM usage_events WHERE request_id IS NOT NULL GROUP BY request_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect()
}

/// Probes made so far at the simulator (requests that are not generations).
async fn probes(http: &reqwest::Client, sim: &str) -> u64 {
    let list: serde_json::Value = http.get(format!("http://{sim}/_sim/accounts")).send().await.unwrap().json().await.unwrap();
    list.as_array().unwrap().iter().map(|a| a["requests"].as_u64().unwrap().saturating_sub(a["generations"].as_u64().unwrap())).sum()
}

async fn probe_leader(db: &tokio_postgres::Client) -> Option<i64> {
    db.query_opt("SELECT holder_instance FROM leader_leases WHERE duty = 'probes' AND expires_at > now()", &[])
        .await
        .unwrap()
        .map(|r| r.get::<_, i64>(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_usage_probes_revocations_and_hand_over_the_probe_duty() {
    let Some(f) = setup("fleet_two").await else { return };
    let db = raw(&f.url).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let (mut a, gw_a) = f.serve("host-a", 2);
    let (mut b, gw_b) = f.serve("host-b", 2);
    // Both answer, and every answered request is one usage row in the shared ledger.
    for i in 0..20 {
        assert_eq!(chat(&http, &gw_a, &f.token, &format!("a-{i}")).await, Some(200), "instance A");
        assert_eq!(chat(&http, &gw_b, &f.token, &format!("b-{i}")).await, Some(200), "instance B");
    }
    until("40 usage rows in PostgreSQL", Duration::from_secs(10), async || rows_by_request(&db).await.len() == 40).await;
    let rows = rows_by_request(&db).await;
    assert!(rows.values().all(|&n| n == 1), "one row per request: {rows:?}");
    let instances: Vec<(i64, String)> = db
        .query("SELECT id, host FROM instances WHERE stopped_at IS NULL ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(instances.len(), 2, "two live instances: {instances:?}");
    until("a probe leader", Duration::from_secs(5), async || probe_leader(&db).await.is_some()).await;
    let listed: serde_json::Value = serde_json::from_str(&ok(f.cmd().args(["fleet", "instances", "--json"]))).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|i| i["state"] == "live"), "{listed:?}");
    let probers: Vec<_> = listed.iter().filter(|i| i["leads"].as_array().unwrap().iter().any(|d| d == "probes")).collect();
    assert_eq!(probers.len(), 1, "one instance leads probes: {listed:?}");

    // One prober for the fleet: over three probe intervals, about three
    // probes of the one account (two instances probing would make six).
    until("a probe leader", Duration::from_secs(5), async || probe_leader(&db).await.is_some()).await;
    let before = probes(&http, &f.sim).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let made = probes(&http, &f.sim).await - before;
    assert!((2..=4).contains(&made), "{made} probes in 6 s at a 2 s interval across the fleet");

    // A revoked token is refused by both instances within a second.
    ok(f.cmd().args(["token", "revoke", &f.token_id.to_string()]));
    let revoked = Instant::now();
    until("both instances refuse the revoked token", Duration::from_secs(1), async || {
        chat(&http, &gw_a, &f.token, "after-revoke-a").await == Some(403)
            && chat(&http, &gw_b, &f.token, "after-revoke-b").await == Some(403)
    })
    .await;
    eprintln!("revocation reached both instances in {:?}", revoked.elapsed());

    // The probe leader is killed: the other instance leads probes within its
    // lease's time and probing goes on.
    let leader = probe_leader(&db).await.unwrap();
    let ids: Vec<i64> = instances.iter().map(|(id, _)| *id).collect();
    // A registered first (it was listening before B started).
    let (victim, survivor) = if leader == ids[0] { (&mut a, ids[1]) } else { (&mut b, ids[0]) };
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    let killed = Instant::now();
    until("the surviving instance leads probes", Duration::from_secs(3), async || probe_leader(&db).await == Some(survivor)).await;
    eprintln!("probe duty handed over in {:?}", killed.elapsed());
    let after = probes(&http, &f.sim).await;
    until("probes go on", Duration::from_secs(5), async || probes(&http, &f.sim).await > after).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_instance_under_load_loses_and_doubles_nothing_across_the_fleet() {
    let Some(f) = setup("fleet_kill").await else { return };
    let db = raw(&f.url).await;
    let (mut a, gw_a) = f.serve("host-a", 2);
    let (_b, gw_b) = f.serve("host-b", 2);
    let answered = std::sync::Arc::new(parking_lot::Mutex::new(HashSet::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for w in 0..8 {
        let (gw, token, answered, stop) =
            (if w % 2 == 0 { gw_a.clone() } else { gw_b.clone() }, f.token.clone(), answered.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let rid = format!("w{w}-{i}");
                if chat(&http, &gw, &token, &rid).await == Some(200) {
                    answered.lock().insert(rid);
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    // A restarts on its host: it folds what the killed process journaled.
    let (_a2, gw_a2) = f.serve("host-a", 2);
    let http = reqwest::Client::new();
    assert_eq!(chat(&http, &gw_a2, &f.token, "after-restart").await, Some(200));
    answered.lock().insert("after-restart".to_string());
    let expect: HashSet<String> = answered.lock().clone();
    assert!(expect.len() > 20, "the load answered only {} requests", expect.len());
    until("every answered request folded", Duration::from_secs(10), async || {
        let rows = rows_by_request(&db).await;
        expect.iter().all(|r| rows.contains_key(r))
    })
    .await;
    let rows = rows_by_request(&db).await;
    let doubled: Vec<_> = rows.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "requests with two rows: {doubled:?}");
    let wm: i64 = db.query_one("SELECT count(*) FROM usage_journal_watermark", &[]).await.unwrap().get(0);
    assert!(wm >= 3, "a watermark per journal (two instances and the restarted one): {wm}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tier_rate_limit_holds_for_the_fleet_as_a_whole() {
    use switchboard::domain::{QuotaPolicy, Tier};
    let Some(f) = setup("fleet_rate").await else { return };
    let db = raw(&f.url).await;
    ok(f.cmd().args(["supplier", "add", "--name", "Starter Studio", "--vendor-type", "photographer", "--tier", "starter"]));
    let issued: serde_json::Value = serde_json::from_str(&ok(f.cmd().args(["token", "issue", "--supplier", "2", "--json"]))).unwrap();
    let token = issued["token"].as_str().unwrap().to_string();
    let (_a, gw_a) = f.serve("host-a", 2);
    let (_b, gw_b) = f.serve("host-b", 2);
    until("two live instances", Duration::from_secs(5), async || {
        db.query_one("SELECT count(*) FROM instances WHERE stopped_at IS NULL", &[]).await.unwrap().get::<_, i64>(0) == 2
    })
    .await;
    // Each instance learns the fleet's size on its next heartbeat interval (300 ms).
    tokio::time::sleep(Duration::from_millis(900)).await;
    let rpm = QuotaPolicy::default().rpm(Tier::Starter, chrono::Utc::now().date_naive());
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let started = Instant::now();
    let mut allowed = 0u32;
    let mut limited = 0u32;
    for i in 0..(rpm / 2 + 20) {
        let gw = if i % 2 == 0 { &gw_a } else { &gw_b };
        match chat(&http, gw, &token, &format!("rate-{i}")).await {
            Some(200) => allowed += 1,
            Some(429) => limited += 1,
            other => panic!("request {i}: {other:?}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // The fleet's burst is the tier's (rpm / 4), refilled at rpm per minute;
    // each instance allows half of it. Alone, each would allow a whole burst.
    let fleet_bound = f64::from(rpm / 4) + f64::from(rpm) / 60.0 * secs + 2.0;
    eprintln!("{allowed} allowed, {limited} limited in {secs:.2} s; the tier allows {rpm}/min, burst {}", rpm / 4);
    assert!(f64::from(allowed) <= fleet_bound, "{allowed} allowed across the fleet; the tier's bound is {fleet_bound:.1}");
    assert!(allowed >= (rpm / 4).saturating_sub(2).max(1), "{allowed} allowed: the fleet must still serve about the tier's burst");
    assert!(limited > 0);
}

/// One client of the quota race: sends `prompt`s through `gw` until the
/// quota refuses one; returns how many were answered.
async fn race_client(http: reqwest::Client, gw: String, token: String, client: usize, prompt: String, max_tokens: u64) -> u64 {
    let mut ok = 0;
    loop {
        let r = http
            .post(format!("http://{gw}/v1/chat/completions"))
            .bearer_auth(&token)
            .header("x-request-id", format!("race-{client}-{ok}"))
            .json(&serde_json::json!({
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": format!("client {client} request {ok}: {prompt}")}],
                "max_tokens": max_tokens,
            }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        match (status, body["error"]["code"].as_str()) {
            (200, _) => ok += 1,
            (429, Some("quota_exceeded")) => return ok,
            (429, Some("rate_limit_exceeded")) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("client {client}: {other:?} {body}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_on_two_instances_end_within_one_request_of_the_quota() {
    use switchboard::domain::{QuotaPolicy, Tier};
    let Some(f) = setup("fleet_quota_race").await else { return };
    let db = raw(&f.url).await;
    ok(f.cmd().args(["supplier", "add", "--name", "Race Venue", "--vendor-type", "venue", "--tier", "scale"]));
    let issued: serde_json::Value = serde_json::from_str(&ok(f.cmd().args(["token", "issue", "--supplier", "2", "--json"]))).unwrap();
    let token = issued["token"].as_str().unwrap().to_string();
    let (_a, gw_a) = f.serve("host-a", 30);
    let (_b, gw_b) = f.serve("host-b", 30);
    let today = chrono::Utc::now().date_naive();
    let quota = QuotaPolicy::default().monthly_tokens(Tier::Scale, today);
    // About a hundredth of the quota per request (the simulator counts a
    // token per 4 bytes, about as the tokenizer does for this text), so the
    // race takes about a hundred requests and stays within the tier's burst.
    let sentence = "The ceremony starts at four; photos by the lake after. ";
    let prompt = sentence.repeat((quota / 100 / 14) as usize);
    // Reservations hold max_tokens for the answer, which is short: actual
    // usage stays below what was reserved, so the quota is never passed.
    let max_tokens = 500;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let mut tasks = Vec::new();
    for client in 0..64 {
        let gw = if client % 2 == 0 { gw_a.clone() } else { gw_b.clone() };
        tasks.push(tokio::spawn(race_client(http.clone(), gw, token.clone(), client, prompt.clone(), max_tokens)));
    }
    let mut served = [0u64; 2];
    for (client, t) in tasks.into_iter().enumerate() {
        served[client % 2] += t.await.unwrap();
    }
    let answered = served[0] + served[1];
    // Every answer reaches the shared ledger once (each instance folds its journal).
    let mut rows: i64 = 0;
    until("every answer folded", Duration::from_secs(10), async || {
        rows = db.query_one("SELECT count(*) FROM usage_events WHERE supplier_id = 2 AND status = 0", &[]).await.unwrap().get(0);
        rows as u64 >= answered
    })
    .await;
    assert_eq!(rows as u64, answered, "one usage row per answered request");
    let used: i64 =
        db.query_one("SELECT coalesce(sum(used_folded), 0)::bigint FROM quota_months WHERE supplier_id = 2", &[]).await.unwrap().get(0);
    let ledger: i64 = db
        .query_one("SELECT coalesce(sum(input_tokens + cached_tokens + cache_write_tokens + output_tokens), 0)::bigint FROM usage_events WHERE supplier_id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(used, ledger, "the quota month counts exactly the ledger's platform tokens");
    let per_request = used as u64 / answered.max(1);
    let reservation = per_request + max_tokens;
    eprintln!(
        "{answered} answered ({} on A, {} on B), {used} of {quota} tokens used, {} short; about {per_request} tokens per request",
        served[0],
        served[1],
        quota as i64 - used
    );
    assert!(served[0] > 0 && served[1] > 0, "both instances served: {served:?}");
    assert!(used as u64 <= quota, "{used} tokens used on a quota of {quota}");
    assert!(quota - used as u64 <= reservation, "{used} of {quota}: more than one request ({reservation} tokens) left unserved");
}
