//! The ledger's disk fills up under load, then has room again: `switchboard
//! serve` runs as a child process (SIGXFSZ ignored, as a shell's `trap ''`
//! leaves it across `exec`) whose file-size limit (`RLIMIT_FSIZE`, set with
//! `prlimit` on its pid) is lowered to one byte, so every write past the
//! first byte of any file fails as on a full disk, and raised again. No mount
//! needed.
//!
//! With the usage journal: the next journal write fails (EFBIG), the segment
//! is given up, and no new segment can be opened (its preallocation fails),
//! so the ledger stays down and refuses requests until the limit is raised;
//! then a new segment takes the held events first. SQLite's writes fail too
//! meanwhile, which only delays the fold.
//!
//! Checked: every request answered 200 has exactly one usage row after
//! recovery; every provider call has a row; no provider call was made while
//! the ledger was down beyond those already in flight; refused requests got
//! a generic OpenAI-shaped 503 with Retry-After that names no file; `/healthz`
//! said degraded (503, reason, since) then ok; `/metrics` showed the ledger
//! down with pending events and refusals; the log names the journal (next to
//! the database).

use super::{Child, spawn_listening, wait_http};
use crate::support::{keyring_available, sb};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use switchboard::sim::DEMO_OPENAI_KEY;
use switchboard::store::Store;

const CLIENTS: usize = 8;

/// One answer the load got.
struct Seen {
    status: u16,
    request_id: Option<String>,
    retry_after: Option<String>,
    body: String,
}

fn prlimit_fsize(pid: u32, limit: &str) {
    let st = Command::new("prlimit").args(["--pid", &pid.to_string(), &format!("--fsize={limit}:")]).status();
    assert!(st.expect("prlimit (util-linux) runs").success(), "prlimit --fsize={limit}");
}

/// Chat completions and embeddings the simulator served (not model lists:
/// the key check and health probes list models, and have no usage row).
async fn sim_requests(http: &reqwest::Client, sim: &str) -> u64 {
    let list: Value = http.get(format!("http://{sim}/_sim/accounts")).send().await.unwrap().json().await.unwrap();
    list.as_array().unwrap().iter().map(|a| a["generations"].as_u64().unwrap()).sum()
}

async fn healthz(http: &reqwest::Client, gw: &str) -> (u16, Value) {
    let r = http.get(format!("http://{gw}/healthz")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// A metric's value in the Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).map(|v| v.trim().parse::<f64>().unwrap()))
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_requests_at_once_and_loses_no_answered_usage() {
    if !keyring_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger-down.db");
    let mut sim_cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    sim_cmd.args(["simulate", "--listen", "127.0.0.1:0"]);
    let (_sim, sim) = spawn_listening(sim_cmd);
    wait_http(&format!("http://{sim}/_sim/accounts")).await;
    let ok = |c: &mut Command| c.status().unwrap().success();
    // A wedding today: the tier's rate limit (6,000 a minute, a quarter minute's burst) is counted but
    // never refuses, so the only refusals are the full disk's however fast the gateway answers.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(ok(sb(&db).args([
        "supplier",
        "add",
        "--name",
        "Full Disk Florals",
        "--vendor-type",
        "florist",
        "--tier",
        "enterprise",
        "--wedding",
        &today
    ])));
    let mut add = sb(&db)
        .args(["key", "add", "--owner", "platform", "--provider", "openai", "--base-url", &format!("http://{sim}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(DEMO_OPENAI_KEY.as_bytes()).unwrap();
    assert!(add.wait().unwrap().success());
    let out = sb(&db).args(["token", "issue", "--supplier", "1"]).output().unwrap();
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .find(|w| w.starts_with("sbk_") && !w.contains('…'))
        .unwrap()
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
        .to_string();

    // `serve` under a shell that ignores SIGXFSZ and execs it (same pid): a
    // write past the file-size limit then fails with EFBIG instead of
    // killing the process.
    let mut base = sb(&db);
    base.args(["serve", "--listen", "127.0.0.1:0"]);
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("trap '' XFSZ; exec \"$0\" \"$@\"").arg(base.get_program()).args(base.get_args());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("RUST_LOG", "warn").stderr(Stdio::piped());
    let (mut server, gw): (Child, String) = spawn_listening(cmd);
    let pid = server.0.id();
    let log = Arc::new(Mutex::new(String::new()));
    {
        let (stderr, log) = (server.0.stderr.take().unwrap(), log.clone());
        std::thread::Builder::new()
            .name("serve-stderr".into())
            .spawn(move || {
                for l in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut g = log.lock();
                    g.push_str(&l);
                    g.push('\n');
                }
            })
            .unwrap();
    }
    wait_http(&format!("http://{gw}/healthz")).await;
    let http = reqwest::Client::new();
    let chat = |rid: String| {
        http.post(format!("http://{gw}/v1/chat/completions"))
            .bearer_auth(&token)
            .header("x-request-id", rid)
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
            .send()
    };
    let mut up = false;
    for i in 0..100 {
        if chat(format!("warm-{i}")).await.map(|r| r.status() == 200).unwrap_or(false) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the gateway answers");
    assert_eq!(healthz(&http, &gw).await, (200, json!({"status": "ok", "ledger_failures": 0})));

    // Load: 8 clients, each request with its own id, until told to stop.
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (seen, stop, token, gw) = (seen.clone(), stop.clone(), token.clone(), gw.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r = http
                    .post(format!("http://{gw}/v1/chat/completions"))
                    .bearer_auth(&token)
                    .header("x-request-id", format!("c{c}-r{n}"))
                    .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
                    .send()
                    .await
                    .expect("the gateway stays up");
                let header = |h: &str| r.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
                let (status, request_id, retry_after) = (r.status().as_u16(), header("x-request-id"), header("retry-after"));
                let body = r.text().await.unwrap_or_default();
                seen.lock().push(Seen { status, request_id, retry_after, body });
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;

    // The disk is "full": no file of the process may grow past one byte.
    prlimit_fsize(pid, "1");
    let mut degraded = None;
    for _ in 0..200 {
        let (status, body) = healthz(&http, &gw).await;
        if body["status"] == "degraded" {
            degraded = Some((status, body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = degraded.expect("/healthz says degraded once a ledger write failed");
    let calls_when_down = sim_requests(&http, &sim).await;
    assert_eq!(status, 503, "a degraded instance is taken out of rotation: {body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("ledger-down.db"), "the operator sees which file: {reason}");
    assert!(body["since"].as_str().is_some_and(|s| s.parse::<chrono::DateTime<chrono::Utc>>().is_ok()), "{body}");

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let calls_before_freed = sim_requests(&http, &sim).await;
    let text = http.get(format!("http://{gw}/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&text, "switchboard_ledger_up"), 0.0);
    assert!(metric(&text, "switchboard_ledger_pending_events") >= 1.0, "the failed write's events wait in memory");
    assert!(metric(&text, "switchboard_ledger_failures_total") >= 1.0);
    let refused = metric(&text, "switchboard_ledger_refused_total");
    assert!(refused >= 50.0, "the load went on and was refused: {refused}");
    // Only requests already past the check when the write failed reached the provider.
    assert!(
        calls_before_freed - calls_when_down <= CLIENTS as u64,
        "{} provider calls while the ledger was down ({refused} requests refused)",
        calls_before_freed - calls_when_down
    );

    // Room again.
    prlimit_fsize(pid, "unlimited");
    let mut back = false;
    for _ in 0..400 {
        if healthz(&http, &gw).await.0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(back, "the ledger comes back within its retry wait");
    let (status, body) = healthz(&http, &gw).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let text = http.get(format!("http://{gw}/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!((metric(&text, "switchboard_ledger_up"), metric(&text, "switchboard_ledger_pending_events")), (1.0, 0.0));
    assert!(metric(&text, "switchboard_ledger_recovered_events_total") >= 1.0);
    assert_eq!(metric(&text, "switchboard_ledger_dropped_events_total"), 0.0);

    let seen = std::mem::take(&mut *seen.lock());
    let answered: Vec<&Seen> = seen.iter().filter(|s| s.status == 200).collect();
    let refusals: Vec<&Seen> = seen.iter().filter(|s| s.status == 503).collect();
    eprintln!(
        "ledger down: {} answered, {} refused, {} provider calls after /healthz said degraded",
        answered.len(),
        refusals.len(),
        calls_before_freed - calls_when_down
    );
    assert_eq!(answered.len() + refusals.len(), seen.len(), "only answers and 503s");
    assert!(answered.len() > 20 && refusals.len() >= 50, "{} answered, {} refused", answered.len(), refusals.len());
    for r in &refusals {
        let e: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!((e["error"]["type"].as_str(), e["error"]["code"].as_str()), (Some("api_error"), Some("ledger_unavailable")));
        assert!(r.retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok()), "a 503 says when to retry");
        for secret in ["ledger-down.db", dir.path().to_str().unwrap(), "disk", "I/O", "SQLITE", "database error"] {
            assert!(!r.body.contains(secret), "a client's 503 names {secret}: {}", r.body);
        }
    }

    // Every answered request has exactly one usage row, and every provider call has one.
    let store = Store::open(&db).unwrap();
    assert!(switchboard::engine::ledger::wait_for_live_folds(&store, Duration::from_secs(20)).unwrap(), "the server folds its journal");
    let rows: HashMap<String, i64> = store
        .with_conn(|c| {
            let mut st = c.prepare("SELECT request_id, count(*) FROM usage_events GROUP BY request_id")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.collect()
        })
        .unwrap();
    for a in &answered {
        let rid = a.request_id.as_deref().expect("an answer names its request");
        assert_eq!(rows.get(rid), Some(&1), "request {rid} was answered, so it has exactly one usage row");
    }
    let calls = sim_requests(&http, &sim).await;
    assert_eq!(rows.values().sum::<i64>() as u64, calls, "every provider call has its usage row, none twice");
    assert!(log.lock().contains("ledger-down.db.journal"), "the log names the journal next to the database file");
    drop(server);
}
