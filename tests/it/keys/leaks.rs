//! Gateway tokens resolve to their own supplier only (the database holds
//! hashes, never values), and no key or token leaks into the database, its
//! WAL, debug logs, command output or the day's usage exported as CSV.

use super::*;

/// What a presented token resolves to through the store's hash look-up (as
/// the router's catalog holds it), its use recorded.
#[derive(Debug, PartialEq)]
enum Resolved {
    Supplier(switchboard::store::TokenId, SupplierId),
    Revoked,
    Unknown,
}

fn resolve(store: &Store, token: &str, now: chrono::DateTime<Utc>) -> Resolved {
    match store.find_token_by_hash(&switchboard::store::TokenHash::of(token)).unwrap() {
        None => Resolved::Unknown,
        Some(t) if t.revoked => Resolved::Revoked,
        Some(t) => {
            store.touch_token_used(t.id, now).unwrap();
            Resolved::Supplier(t.id, t.supplier_id)
        }
    }
}

#[test]
fn a_suppliers_token_never_resolves_to_another_supplier() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("t.db")).unwrap();
    let now = Utc::now();
    let mut issued = Vec::new();
    for i in 0..60 {
        let s = supplier(&store, &format!("Supplier {i:02}"), if i % 2 == 0 { AiMode::Platform } else { AiMode::Client });
        for _ in 0..4 {
            let t = tokens::issue(&store, s, now, "tester").unwrap();
            assert!(t.token.expose().starts_with("sbk_"));
            assert_eq!(t.record.supplier_id, s);
            issued.push((s, t));
        }
    }
    // Revoke every fifth token.
    let revoked: Vec<usize> = (0..issued.len()).step_by(5).collect();
    for &i in &revoked {
        tokens::revoke(&store, issued[i].1.record.id, now, "tester").unwrap();
    }
    let rows = store.token_rows().unwrap();
    assert_eq!(rows.len(), issued.len());
    assert_eq!(rows.iter().filter(|r| !r.revoked).count(), issued.len() - revoked.len());
    for (i, (s, t)) in issued.iter().enumerate() {
        let token = t.token.expose();
        if revoked.contains(&i) {
            assert_eq!(resolve(&store, token, now), Resolved::Revoked);
        } else {
            assert_eq!(resolve(&store, token, now), Resolved::Supplier(t.record.id, *s));
            // One character changed, or a prefix: unknown, never someone else's.
            let mut altered = token.to_string();
            let last = altered.pop().unwrap();
            altered.push(if last == '0' { '1' } else { '0' });
            assert_eq!(resolve(&store, &altered, now), Resolved::Unknown);
            assert_eq!(resolve(&store, &token[..token.len() - 1], now), Resolved::Unknown);
        }
    }
    for bad in ["", "sbk_", "Bearer x", "sk-proj-abc", "sbk_0000000000000000000000000000000000000000000000000"] {
        assert_eq!(resolve(&store, bad, now), Resolved::Unknown, "{bad}");
    }
    // Tokens are unique, listed with hints only, and used ones have a last-used time.
    let mut values: Vec<&str> = issued.iter().map(|(_, t)| t.token.expose()).collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), issued.len());
    let listed = store.list_tokens(Some(issued[1].0)).unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|t| t.supplier_id == issued[1].0 && t.hint.starts_with("sbk_…") && t.hint.chars().count() == 9));
    assert!(store.token(issued[1].1.record.id).unwrap().last_used_at.is_some());
    // The database holds hashes, never token values.
    let path = store.sqlite_path().unwrap().to_path_buf();
    drop(store);
    let bytes = [std::fs::read(&path).unwrap(), std::fs::read(path.with_extension("db-wal")).unwrap_or_default()].concat();
    let text = String::from_utf8_lossy(&bytes);
    for (_, t) in &issued {
        let v = t.token.expose();
        assert!(!text.contains(&v[4..v.len() - 4]), "a token value is in the database");
    }
}

#[test]
fn no_key_or_token_leaks_into_database_wal_logs_or_csv() {
    if !keyring_available() {
        return;
    }
    let rt = runtime();
    let sim = start_sim(&rt);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leak.db");
    // Keep a connection open for the whole scenario so the WAL file stays
    // (SQLite removes it when the last connection closes).
    let holder = Store::open(&db).unwrap();
    let sup = supplier(&holder, "Bloom & Petal", AiMode::Client);
    let mut logs = String::new();
    let mut outputs = String::new();
    let step = |logs: &mut String, args: &[&str], stdin: &str| -> String {
        let mut c = sb(&db);
        c.env("SWITCHBOARD_LOG", "debug").args(args);
        let o = run(c, stdin);
        logs.push_str(&stderr(&o));
        ok(&o)
    };
    let s = sup.0.to_string();
    outputs += &step(&mut logs, &["key", "add", "--owner", &s, "--provider", "openai", "--base-url", sim.base_url()], OPENAI_KEY_1);
    outputs +=
        &step(&mut logs, &["key", "add", "--owner", "platform", "--provider", "anthropic", "--base-url", sim.base_url()], ANTHROPIC_KEY);
    outputs += &step(
        &mut logs,
        &[
            "key",
            "add",
            "--owner",
            "platform",
            "--provider",
            "azure-openai",
            "--base-url",
            sim.base_url(),
            "--deployment",
            "gpt4o-prod",
            "--api-version",
            "2024-10-21",
        ],
        AZURE_KEY,
    );
    outputs += &step(&mut logs, &["key", "rotate", "1"], OPENAI_KEY_2);
    outputs += &step(&mut logs, &["key", "validate", "2"], "");
    outputs += &step(&mut logs, &["key", "validate", "3"], "");
    outputs += &step(&mut logs, &["key", "list"], "");
    outputs += &step(&mut logs, &["key", "list", "--json"], "");
    // A rejected key and a mistyped one, whose errors must not repeat them.
    let mut c = sb(&db);
    c.env("SWITCHBOARD_LOG", "debug").args(["key", "rotate", "2"]);
    let o = run(c, "sk-ant-api03-LEAKCANARYrejected0000000000000000000");
    assert!(!o.status.success());
    logs.push_str(&stderr(&o));
    let mut c = sb(&db);
    c.env("SWITCHBOARD_LOG", "debug").args(["key", "add", "--owner", "platform", "--provider", "openai"]);
    let o = run(c, "LEAKCANARY-not-a-key");
    assert!(!o.status.success());
    logs.push_str(&stderr(&o));

    // Tokens: the value is printed once by `token issue` (its stdout), nowhere else.
    let mut token_values = Vec::new();
    for _ in 0..3 {
        let out = step(&mut logs, &["token", "issue", "--supplier", &s, "--json"], "");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        token_values.push(v["token"].as_str().unwrap().to_string());
    }
    let now = Utc::now();
    assert!(matches!(resolve(&holder, &token_values[0], now), Resolved::Supplier(_, s) if s == sup));
    outputs += &step(&mut logs, &["token", "list"], "");
    outputs += &step(&mut logs, &["token", "list", "--json"], "");
    outputs += &step(&mut logs, &["token", "revoke", "2"], "");

    // Real traffic: `switchboard serve` at debug level, one request through the
    // gateway with the supplier's token, served with the rotated key.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut serve = sb(&db);
    serve.env("SWITCHBOARD_LOG", "debug").args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    serve.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = serve.spawn().expect("switchboard serve starts");
    let status = rt.block_on(async {
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let body =
            serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Write a thank-you note to the couple"}]});
        let r = http.post(format!("{base}/v1/chat/completions")).bearer_auth(&token_values[0]).json(&body).send().await;
        r.map(|r| r.status().as_u16()).unwrap_or(0)
    });
    // Stop the server we started (by its own pid) so it flushes the ledger.
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let o = child.wait_with_output().unwrap();
    logs.push_str(&stderr(&o));
    outputs.push_str(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(status, 200, "a request through the gateway succeeds; serve said: {}", stderr(&o));

    // Usage CSV of the same day.
    let out = dir.path().join("usage.csv");
    let today = Utc::now().date_naive().to_string();
    let mut c = sb(&db);
    c.env("SWITCHBOARD_LOG", "debug").args(["export", "usage", "--from", &today, "--to", &today, "--out"]).arg(&out);
    let o = run(c, "");
    logs.push_str(&stderr(&o));
    ok(&o);
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(csv.lines().count() >= 2, "the CSV has the request: {csv}");
    assert!(logs.contains("DEBUG"), "debug logs were captured");

    let mut haystacks = vec![("logs", logs.clone()), ("command output", outputs.clone())];
    haystacks.push(("CSV", csv));
    for p in [db.clone(), db.with_extension("db-wal")] {
        let bytes = std::fs::read(&p).unwrap_or_default();
        haystacks.push((if p == db { "database" } else { "WAL" }, String::from_utf8_lossy(&bytes).to_string()));
    }
    assert!(haystacks.iter().any(|(w, t)| *w == "WAL" && t.len() > 1000), "the WAL file was kept for inspection");
    let mut needles: Vec<String> = vec!["LEAKCANARY".into(), AZURE_CANARY.into()];
    for k in [OPENAI_KEY_1, OPENAI_KEY_2, ANTHROPIC_KEY, AZURE_KEY] {
        needles.push(k.to_string());
    }
    for t in &token_values {
        needles.push(t.clone());
        needles.push(t[4..t.len() - 4].to_string());
    }
    for (what, text) in &haystacks {
        for n in &needles {
            assert!(!text.contains(n.as_str()), "a secret ({}) is in the {what}", Secret::new(n.clone()));
        }
    }
    drop(holder);
    drop(sim);
}
