//! The two-instance tests' fleet on a fresh
//! PostgreSQL database set up through the CLI only (the fleet key in a file,
//! one enterprise supplier with id 1 and its gateway token, the simulator),
//! whose `serve` instances each get their own "host" folder.

use super::bin;
use super::pg::{base_url, fresh_db};
pub use super::process::{Child, spawn_listening};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Runs `c`, which must succeed; its standard output.
pub fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A plain chat request with a request id: its status (None: no answer, or a
/// 200 that is not a chat completion).
pub async fn chat(http: &reqwest::Client, gw: &str, token: &str, rid: &str) -> Option<u16> {
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
    if status == 200 && !body.contains("chat.completion") {
        return None;
    }
    Some(status)
}

/// The fleet's database, its key file, the simulator and a folder for the "hosts".
pub struct Fleet {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub key_file: PathBuf,
    pub sim: String,
    _sim: Child,
    /// Supplier 1's gateway token, and its id.
    pub token: String,
    pub token_id: i64,
}

impl Fleet {
    /// The fleet key, supplier 1 and its token; no provider account yet.
    /// None (the test is skipped) without the test cluster outside CI.
    pub async fn setup(name: &str) -> Option<Fleet> {
        let base = base_url(name)?;
        let url = fresh_db(&base, name).await;
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("fleet.key");
        let mut sim_cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        sim_cmd.args(["simulate", "--listen", "127.0.0.1:0"]);
        let (sim_child, sim) = spawn_listening(sim_cmd);
        let mut f = Fleet { url, dir, key_file, sim, _sim: sim_child, token: String::new(), token_id: 0 };
        ok(f.cmd().args(["fleet", "init", "--key-file"]).arg(&f.key_file));
        ok(f.cmd().args(["supplier", "add", "--name", "Fleet Florals", "--vendor-type", "florist", "--tier", "enterprise"]));
        let issued: serde_json::Value = serde_json::from_str(&ok(f.cmd().args(["token", "issue", "--supplier", "1", "--json"]))).unwrap();
        f.token = issued["token"].as_str().unwrap().to_string();
        f.token_id = issued["id"].as_i64().unwrap();
        Some(f)
    }

    /// The binary on the fleet's database, with the fleet's private key.
    pub fn cmd(&self) -> Command {
        let mut c = bin();
        c.arg("--database").arg(&self.url).env("SWITCHBOARD_FLEET_KEY_FILE", &self.key_file);
        c
    }

    /// Starts an instance on `host` (its own folder) probing every
    /// `probe_every` seconds, with leader leases of 900 ms and heartbeats every 300 ms.
    pub fn serve(&self, host: &str, probe_every: u32) -> (Child, String) {
        let mut c = self.cmd();
        c.args(["serve", "--listen", "127.0.0.1:0", "--leader-ttl-ms", "900", "--heartbeat-ms", "300"])
            .arg("--probe-every")
            .arg(probe_every.to_string())
            .arg("--fleet-dir")
            .arg(self.dir.path().join(host));
        spawn_listening(c)
    }

    /// Adds an OpenAI account on the simulator (`owner`: `platform` or a
    /// supplier id) with `key` on standard input, labelled `label`; its id.
    pub async fn add_key(&self, db: &tokio_postgres::Client, owner: &str, label: &str, key: &str) -> i64 {
        let mut add = self
            .cmd()
            .args(["key", "add", "--owner", owner, "--provider", "openai", "--label", label, "--base-url", &format!("http://{}", self.sim)])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        add.stdin.take().unwrap().write_all(key.as_bytes()).unwrap();
        let out = add.wait_with_output().unwrap();
        assert!(out.status.success(), "key add: {}", String::from_utf8_lossy(&out.stderr));
        db.query_one("SELECT id FROM provider_accounts WHERE label = $1", &[&label]).await.unwrap().get(0)
    }
}
