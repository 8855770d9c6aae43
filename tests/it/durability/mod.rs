//! Durability of the serving process. Here: a crash test: `switchboard serve` is killed with
//! SIGKILL in the middle of a load run, restarted on the same database, and
//! every request that received a complete answer must have exactly one usage
//! row. Runs in its own test binary so nothing else shares the machine's
//! sockets and processes while it does. `ledger_down`: the ledger's disk
//! fills up under load and frees again. `journal`: the fold killed between
//! its commit and the segment deletion, and power mode's group fdatasync.

mod journal;
mod ledger_down;

use crate::support::process::{Child, spawn_listening, wait_http};
use crate::support::{keyring_available, sb};
use serde_json::json;
use std::sync::Arc;
use switchboard::sim::DEMO_OPENAI_KEY;
use switchboard::store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_load_loses_no_completed_request_and_counts_none_twice() {
    if !keyring_available() {
        return;
    }
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durable.db");
    let mut sim_cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    sim_cmd.args(["simulate", "--listen", "127.0.0.1:0"]);
    let (_sim, sim_addr) = spawn_listening(sim_cmd);
    wait_http(&format!("http://{sim_addr}/_sim/accounts")).await;
    assert!(
        sb(&db)
            .args(["supplier", "add", "--name", "Durable Studio", "--vendor-type", "venue", "--tier", "enterprise"])
            .status()
            .unwrap()
            .success()
    );
    let mut add = sb(&db)
        .args(["key", "add", "--owner", "platform", "--provider", "openai", "--base-url", &format!("http://{sim_addr}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(DEMO_OPENAI_KEY.as_bytes()).unwrap();
    assert!(add.wait().unwrap().success());
    let out = sb(&db).args(["token", "issue", "--supplier", "1"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("sbk_") && !w.contains('…'))
        .unwrap()
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
        .to_string();

    let serve = || {
        let mut c = sb(&db);
        c.args(["serve", "--listen", "127.0.0.1:0"]);
        spawn_listening(c)
    };
    let (mut server, gw_addr) = serve();
    wait_http(&format!("http://{gw_addr}/healthz")).await;

    // The server answers before the load starts (it is up, its key loaded).
    let warm = reqwest::Client::new();
    let mut ready = false;
    for i in 0..200 {
        let r = warm
            .post(format!("http://{gw_addr}/v1/chat/completions"))
            .bearer_auth(&token)
            .header("x-request-id", format!("warm-{i}"))
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 200 => {
                ready = true;
                break;
            }
            Ok(r) => eprintln!("warm-up {i}: {} {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => eprintln!("warm-up {i}: {e:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the gateway never answered");

    // 16 clients, unique request ids; remember which requests got a complete answer.
    let completed = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..16 {
        let (completed, stop, token, gw_addr) = (completed.clone(), stop.clone(), token.clone(), gw_addr.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2_000 {
                n += 1;
                let rid = format!("c{c}-r{n}");
                let r = http
                    .post(format!("http://{gw_addr}/v1/chat/completions"))
                    .bearer_auth(&token)
                    .header("x-request-id", &rid)
                    .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
                    .send()
                    .await;
                match r {
                    Ok(r) => {
                        let status = r.status();
                        match r.text().await {
                            Ok(body) if status == 200 && body.contains("chat.completion") => completed.lock().push(rid),
                            Ok(body) if n == 1 => eprintln!("client {c}: {status} {body}"),
                            _ => {}
                        }
                    }
                    Err(e) if n == 1 && c == 0 => eprintln!("client {c}: {e:?}"),
                    Err(_) => {}
                }
            }
        }));
    }
    // Until the load is well under way (a loaded machine answers slowly), then kill.
    let started = std::time::Instant::now();
    while completed.lock().len() < 80 && started.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    server.0.kill().unwrap(); // SIGKILL: no shutdown code runs
    server.0.wait().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let completed = completed.lock().clone();
    assert!(completed.len() > 50, "the load ran: {} completed", completed.len());

    // Restart on the same file: it opens cleanly and serves again.
    let (_server2, gw_addr2) = serve();
    wait_http(&format!("http://{gw_addr2}/healthz")).await;
    let store = Store::open(&db).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let ids: std::collections::HashMap<String, i64> = store
        .with_conn(|c| {
            let mut st = c.prepare("SELECT request_id, count(*) FROM usage_events GROUP BY request_id")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.collect()
        })
        .unwrap();
    for rid in &completed {
        assert_eq!(ids.get(rid), Some(&1), "request {rid} got an answer, so it has exactly one usage row");
    }
    assert!(ids.values().all(|n| *n == 1), "no usage is recorded twice");
    let (rows, event_ids): (i64, i64) = store
        .with_conn(|c| c.query_row("SELECT count(*), count(DISTINCT event_id) FROM usage_events", [], |r| Ok((r.get(0)?, r.get(1)?))))
        .unwrap();
    assert_eq!(rows, event_ids, "every row has its own event id");
    // The fold watermark is consistent: the killed process's segments were
    // folded and deleted, the live one's are at or past the watermark, and no
    // record behind it was read twice.
    let inst = switchboard::engine::ledger::journal::root_of(&db).join("0");
    let wm = store.journal_watermark(0).unwrap().expect("a watermark for the journal");
    let segs = switchboard::engine::ledger::journal::segments(&inst).unwrap();
    assert!(!segs.is_empty() && segs.iter().all(|s| *s >= wm.segment), "segments {segs:?}, watermark {wm:?}");
    let text = reqwest::get(format!("http://{gw_addr2}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.lines().any(|l| l == "switchboard_ledger_duplicate_records_total 0"), "{text}");
    // Events committed before the kill but not yet folded were folded when
    // the second process opened the ledger: every rollup counts each once.
    for table in ["usage_daily", "usage_daily_dims", "usage_monthly_supplier", "usage_supplier_month", "usage_supplier_day"] {
        let rolled: i64 =
            store.with_conn(|c| c.query_row(&format!("SELECT coalesce(sum(requests), 0) FROM {table}"), [], |r| r.get(0))).unwrap();
        assert_eq!(rolled as usize, ids.len(), "{table} agrees with the events");
    }
}
