//! `health` and `migrate` on the fleet's PostgreSQL database, through the
//! CLI as an operator on a server runs them: `health` probes every account
//! with the keys the server's fleet key opens and reads the shared history;
//! `migrate` plans, starts, pauses, resumes and aborts a migration stored
//! for the fleet's migrations leader to drive. `parallel-test` and `cache
//! purge`, which only an instance can carry out (it alone opens keys, and
//! each keeps its own cache), are filed for the fleet and done by `serve`.

use crate::support::fleet::{Fleet, ok};
use crate::support::pg::raw;
use std::time::{Duration, Instant};
use switchboard::domain::Route;
use switchboard::sim::{DEMO_CLIENT_OPENAI_KEY, DEMO_OPENAI_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_migrate_run_on_the_fleets_database() {
    let Some(f) = Fleet::setup("fleet_cli").await else { return };
    let db = raw(&f.url).await;
    f.add_key(&db, "platform", "WedSync OpenAI", DEMO_OPENAI_KEY).await;
    let own = f.add_key(&db, "1", "Florals OpenAI", DEMO_CLIENT_OPENAI_KEY).await;

    // Health: both accounts probed with their sealed keys, the result as JSON.
    let out = ok(f.cmd().args(["health", "--json", "--timeout", "5"]));
    let snap: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = snap.to_string();
    assert!(text.contains("WedSync OpenAI") && text.contains("Florals OpenAI"), "{text}");
    assert!(!text.contains("key unavailable"), "{text}");
    let probes: i64 = db.query_one("SELECT count(*) FROM health_samples", &[]).await.unwrap().get(0);
    assert!(probes >= 2, "the probes are in the shared history: {probes}");

    // Migrate: the supplier moves from platform AI to its own account.
    let to = format!("account:{own}");
    let plan = ok(f.cmd().args(["migrate", "plan", "--supplier", "1", "--to", &to]));
    assert!(plan.contains("phase 1") && plan.contains(&format!("→ account {own}")), "{plan}");
    let started = ok(f.cmd().args(["migrate", "start", "--supplier", "1", "--to", &to]));
    assert!(started.contains("Started migration 1"), "{started}");
    async fn state(db: &tokio_postgres::Client) -> String {
        db.query_one("SELECT state FROM migrations WHERE id = 1", &[]).await.unwrap().get(0)
    }
    assert_eq!(state(&db).await, "running");
    let paused = ok(f.cmd().args(["migrate", "pause", "1"]));
    assert!(paused.contains("paused"), "{paused}");
    assert_eq!(state(&db).await, "paused");
    ok(f.cmd().args(["migrate", "resume", "1"]));
    let status: serde_json::Value = serde_json::from_str(&ok(f.cmd().args(["migrate", "status", "--json"]))).unwrap();
    assert_eq!(status[0]["state"], "running", "{status}");
    ok(f.cmd().args(["migrate", "abort", "1"]));
    assert_eq!(state(&db).await, "aborted");
    let actions: Vec<String> = db
        .query("SELECT action FROM audit_log WHERE action LIKE 'migration.%' ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for a in ["migration.start", "migration.pause", "migration.resume", "migration.abort"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing from {actions:?}");
    }
}

/// A deterministic chat request through the gateway: its `x-switchboard-cache` header.
async fn cached_chat(http: &reqwest::Client, gw: &str, token: &str) -> String {
    let r = http
        .post(format!("http://{gw}/v1/chat/completions"))
        .bearer_auth(token)
        .json(&serde_json::json!({"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 8,
            "messages": [{"role": "user", "content": "Name one spring flower."}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers().get("x-switchboard-cache").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_tests_and_cache_purges_on_postgresql_are_carried_out_by_the_fleet() {
    let Some(f) = Fleet::setup("fleet_cli_actions").await else { return };
    let db = raw(&f.url).await;
    f.add_key(&db, "platform", "WedSync OpenAI", DEMO_OPENAI_KEY).await;
    let own = f.add_key(&db, "1", "Florals OpenAI", DEMO_CLIENT_OPENAI_KEY).await.to_string();

    // No instance: the request is withdrawn after the wait, and the command says why.
    let out = f.cmd().args(["parallel-test", "--supplier", "1", "--account", &own, "--wait", "1"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no instance of the fleet took the parallel test within 1 s"), "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM parallel_test_requests WHERE state = 'withdrawn'").await, 1);
    // Nor would anything start a scheduled migration, and the schedule says so in the fleet's terms.
    let at = (chrono::Utc::now() + chrono::Duration::days(3)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let out = ok(f.cmd().args(["migrate", "start", "--supplier", "1", "--to", &format!("account:{own}"), "--at", &at]));
    assert!(out.contains("no instance of the fleet is running") && !out.contains("Overview"), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    ok(f.cmd().args(["migrate", "unschedule", &id]));

    // An instance takes it, runs both routes with the keys only it can open, and writes the report.
    let (mut instance, gw) = f.serve("host-a", 30);
    let out = ok(f.cmd().args(["parallel-test", "--supplier", "1", "--account", &own, "--json"]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["candidate"]["account_id"].to_string(), own, "{report}");
    assert_eq!((report["candidate"]["requests"].as_u64(), report["candidate"]["successes"].as_u64()), (Some(8), Some(8)), "{report}");
    assert_eq!(report["current"]["successes"].as_u64(), Some(8), "{report}");
    let row =
        db.query_one("SELECT state, report_id, done, total FROM parallel_test_requests WHERE state <> 'withdrawn'", &[]).await.unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, Option<i64>>(1), row.get::<_, i32>(2), row.get::<_, i32>(3)),
        ("done".into(), report["id"].as_i64(), 8, 8)
    );
    // Both copies of each prompt are shadow usage in the shared ledger, once the instance folds them.
    let shadow = format!("SELECT count(*) FROM usage_events WHERE route = {}", Route::Shadow.code());
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&db, &shadow).await < 16 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&db, &shadow).await, 16);
    let actions: Vec<String> = db.query("SELECT action FROM audit_log ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert!(actions.iter().any(|a| a == "parallel_test.request") && actions.iter().any(|a| a == "parallel_test.run"), "{actions:?}");

    // A purge from the CLI reaches the instance's own cache within a second.
    let http = reqwest::Client::new();
    assert_eq!(cached_chat(&http, &gw, &f.token).await, "miss");
    assert_eq!(cached_chat(&http, &gw, &f.token).await, "hit");
    // `cache stats` counts the entries the instances report (within a heartbeat) and the hits from the ledger.
    let stats = || -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&ok(f.cmd().args(["cache", "stats", "--json"]))).unwrap();
        v["suppliers"].as_array().unwrap().iter().find(|s| s["supplier"] == 1).cloned().unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = stats();
    while (s["entries"] != 1 || s["hits"] != 1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s = stats();
    }
    assert_eq!((s["entries"].as_u64(), s["hits"].as_u64()), (Some(1), Some(1)), "{s}");
    assert!(s["bytes"].as_u64().unwrap() > 100, "{s}");
    let out = ok(f.cmd().args(["cache", "purge", "--supplier", "1"]));
    assert!(out.contains("sent to the fleet"), "{out}");
    let filed = Instant::now();
    let mut answer = cached_chat(&http, &gw, &f.token).await;
    while answer == "hit" && filed.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer = cached_chat(&http, &gw, &f.token).await;
    }
    assert_eq!(answer, "miss", "the purge reached the instance within a second");
    assert_eq!(cached_chat(&http, &gw, &f.token).await, "hit");
    let purges: Vec<String> =
        db.query("SELECT detail FROM audit_log WHERE action = 'cache.purge'", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert!(purges.len() == 1 && purges[0].contains("every instance of the fleet"), "{purges:?}");

    // A scheduled start names the instance that will start it (the fleet routes, not a local lock holder).
    let at = (chrono::Utc::now() + chrono::Duration::days(3)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let out = ok(f.cmd().args(["migrate", "start", "--supplier", "1", "--to", &format!("account:{own}"), "--at", &at]));
    assert!(out.contains("fleet instance") && out.contains("routes this database and will start it on time"), "{out}");
    // Stopped cleanly, the instance's cache serves no one: its entries leave the fleet's count (its hits stay).
    let st = std::process::Command::new("kill").arg("-TERM").arg(instance.0.id().to_string()).status().unwrap();
    assert!(st.success());
    let _ = instance.0.wait();
    let s = stats();
    assert!(s["entries"] == 0 && s["hits"].as_u64().unwrap() >= 2, "{s}");
}
