//! `health` and `migrate` on the fleet's PostgreSQL database, through the
//! CLI as an operator on a server runs them: `health` probes every account
//! with the keys the server's fleet key opens and reads the shared history;
//! `migrate` plans, starts, pauses, resumes and aborts a migration stored
//! for the fleet's migrations leader to drive.

use crate::support::fleet::{Fleet, ok};
use crate::support::pg::raw;
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
