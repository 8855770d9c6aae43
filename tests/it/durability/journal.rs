//! The usage journal under the real binary (built with the `test-hooks`
//! feature, which `scripts/test` turns on): the fold is exactly-once when the
//! process is killed between the fold's commit and the segment deletion, and
//! in power mode responses wait for the group fdatasync that covers them.

use super::{Child, spawn_listening, wait_http};
use crate::support::{keyring_available, sb};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use switchboard::engine::ledger::journal;
use switchboard::sim::DEMO_OPENAI_KEY;
use switchboard::store::Store;

/// A supplier, a platform key on the simulator at `sim` and a gateway token.
fn setup(db: &Path, sim: &str) -> String {
    assert!(
        sb(db)
            .args(["supplier", "add", "--name", "Journal Bakery", "--vendor-type", "caterer", "--tier", "enterprise"])
            .status()
            .unwrap()
            .success()
    );
    let mut add = sb(db)
        .args(["key", "add", "--owner", "platform", "--provider", "openai", "--base-url", &format!("http://{sim}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(DEMO_OPENAI_KEY.as_bytes()).unwrap();
    assert!(add.wait().unwrap().success());
    let out = sb(db).args(["token", "issue", "--supplier", "1"]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .find(|w| w.starts_with("sbk_") && !w.contains('…'))
        .unwrap()
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
        .to_string()
}

async fn simulator() -> (Child, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["simulate", "--listen", "127.0.0.1:0"]);
    let (child, addr) = spawn_listening(cmd);
    wait_http(&format!("http://{addr}/_sim/accounts")).await;
    (child, addr)
}

async fn chat(http: &reqwest::Client, gw: &str, token: &str, rid: &str) -> Option<u16> {
    let r = http
        .post(format!("http://{gw}/v1/chat/completions"))
        .bearer_auth(token)
        .header("x-request-id", rid)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    let body = r.text().await.ok()?;
    (status == 200 && body.contains("chat.completion")).then_some(status)
}

/// Waits until the gateway answers a chat request.
async fn warm(http: &reqwest::Client, gw: &str, token: &str) {
    for i in 0..200 {
        if chat(http, gw, token, &format!("warm-{i}")).await.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway never answered");
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).map(|v| v.trim().parse::<f64>().unwrap() as u64))
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{text}"))
}

async fn metrics(http: &reqwest::Client, gw: &str) -> String {
    http.get(format!("http://{gw}/metrics")).send().await.unwrap().text().await.unwrap()
}

fn rows_by_request(store: &Store) -> HashMap<String, i64> {
    store
        .with_conn(|c| {
            let mut st = c.prepare("SELECT request_id, count(*) FROM usage_events GROUP BY request_id")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.collect()
        })
        .unwrap()
}

fn rolled(store: &Store) -> i64 {
    store.with_conn(|c| c.query_row("SELECT coalesce(sum(requests), 0) FROM usage_daily", [], |r| r.get(0))).unwrap()
}

#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_between_the_folds_commit_and_the_segment_deletion_counts_each_event_once() {
    if !keyring_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fold-crash.db");
    let (_sim, sim) = simulator().await;
    let token = setup(&db, &sim);
    let serve = || {
        let mut c = sb(&db);
        c.args(["serve", "--listen", "127.0.0.1:0"]);
        spawn_listening(c)
    };
    let (mut server, gw) = serve();
    wait_http(&format!("http://{gw}/healthz")).await;
    let http = reqwest::Client::new();
    warm(&http, &gw, &token).await;

    // Load from 8 clients, then kill -9 in the middle of it.
    let completed = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (completed, stop, token, gw) = (completed.clone(), stop.clone(), token.clone(), gw.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2_000 {
                n += 1;
                let rid = format!("c{c}-r{n}");
                if chat(&http, &gw, &token, &rid).await.is_some() {
                    completed.lock().push(rid);
                }
            }
        }));
    }
    // Until the load is well under way (a loaded machine answers slowly), then kill.
    let started = std::time::Instant::now();
    while completed.lock().len() < 40 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let completed = completed.lock().clone();
    assert!(completed.len() > 20, "the load ran: {} completed", completed.len());
    let inst = journal::root_of(&db).join("0");
    assert!(!journal::segments(&inst).unwrap().is_empty(), "the killed process left its journal");

    // The next process folds the journal it left, commits, and dies before
    // it deletes the folded segments.
    let out = sb(&db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SWITCHBOARD_HOOK_ABORT_BEFORE_DELETE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the hook aborted the process");
    assert!(String::from_utf8_lossy(&out.stderr).contains("between the fold's commit and the segment deletion"));
    let store = Store::open(&db).unwrap();
    let wm = store.journal_watermark(0).unwrap().expect("the fold moved the watermark");
    let left = journal::segments(&inst).unwrap();
    assert!(left.iter().any(|s| *s <= wm.segment), "folded segments are still there: {left:?}, watermark {wm:?}");
    let rows = rows_by_request(&store);
    for rid in &completed {
        assert_eq!(rows.get(rid), Some(&1), "request {rid} was answered: one usage row after the fold's commit");
    }

    // A normal restart: the segments behind the watermark are deleted, not folded again.
    let (_server3, gw3) = serve();
    wait_http(&format!("http://{gw3}/healthz")).await;
    let text = metrics(&http, &gw3).await;
    assert_eq!(metric(&text, "switchboard_ledger_duplicate_records_total"), 0, "no record behind the watermark was read again");
    assert!(journal::segments(&inst).unwrap().iter().all(|s| *s > wm.segment), "segments behind the watermark are gone");
    let rows = rows_by_request(&store);
    assert!(rows.values().all(|n| *n == 1), "no usage is recorded twice");
    for rid in &completed {
        assert_eq!(rows.get(rid), Some(&1));
    }
    assert_eq!(rolled(&store), rows.values().sum::<i64>(), "the rollups count each event once");
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

/// Power durability: a response waits for an fdatasync that covers its
/// journal record, and concurrent requests share one. A gate (test hook)
/// holds the sync thread back: requests whose records are journaled are not
/// answered until it opens, and then one or two syncs answer all of them.
/// Process durability, gate closed the same way, answers at once and never syncs.
#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_mode_answers_only_after_the_group_fdatasync() {
    if !keyring_available() {
        return;
    }
    const N: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("power.db");
    let gate = dir.path().join("sync-gate");
    let (_sim, sim) = simulator().await;
    let token = setup(&db, &sim);
    let http = reqwest::Client::new();
    for durability in ["power", "process"] {
        let mut c = sb(&db);
        c.args(["serve", "--listen", "127.0.0.1:0", "--ledger-durability", durability]).env("SWITCHBOARD_HOOK_SYNC_GATE", &gate);
        let (server, gw) = spawn_listening(c);
        wait_http(&format!("http://{gw}/healthz")).await;
        warm(&http, &gw, &token).await;
        let before = metrics(&http, &gw).await;
        let (journaled0, syncs0) =
            (metric(&before, "switchboard_ledger_events_total"), metric(&before, "switchboard_ledger_journal_fdatasyncs_total"));
        std::fs::write(&gate, b"closed").unwrap();
        let requests: Vec<_> = (0..N)
            .map(|i| {
                let (http, gw, token) = (http.clone(), gw.clone(), token.clone());
                tokio::spawn(async move { chat(&http, &gw, &token, &format!("{durability}-{i}")).await })
            })
            .collect();
        // Every request's record reaches the journal.
        let mut journaled = 0;
        for _ in 0..500 {
            journaled = metric(&metrics(&http, &gw).await, "switchboard_ledger_events_total") - journaled0;
            if journaled >= N as u64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(journaled, N as u64, "{durability}: every request was journaled");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let answered_before_sync = requests.iter().filter(|r| r.is_finished()).count();
        std::fs::remove_file(&gate).unwrap();
        for r in requests {
            assert_eq!(r.await.unwrap(), Some(200), "{durability}: answered");
        }
        let syncs = metric(&metrics(&http, &gw).await, "switchboard_ledger_journal_fdatasyncs_total") - syncs0;
        if durability == "power" {
            assert_eq!(answered_before_sync, 0, "no response completed before the fdatasync that covers it");
            assert!((1..=2).contains(&syncs), "{N} responses shared a group sync: {syncs} syncs");
        } else {
            assert_eq!(answered_before_sync, N, "process durability does not wait for a sync");
            assert_eq!(syncs, 0);
        }
        drop(server);
        // The next server takes the journal over: wait until this one is gone.
        let root = journal::root_of(&db);
        for _ in 0..500 {
            if !journal::Instance::is_held(&root, 0).unwrap() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let store = Store::open(&db).unwrap();
    switchboard::engine::ledger::fold_leftovers(&store).unwrap();
    let rows = rows_by_request(&store);
    for i in 0..N {
        for d in ["power", "process"] {
            assert_eq!(rows.get(&format!("{d}-{i}")), Some(&1));
        }
    }
}
