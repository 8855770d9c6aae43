//! What the integration tests share: the real binary, the private test
//! keyring, fixed dates, accounts on the provider simulator and fast-retrying
//! provider clients. Each test module keeps only what is its own.

pub mod fleet;
pub mod pg;
pub mod process;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use std::path::Path;
use std::process::Command;
use switchboard::domain::{AccountId, AccountOwner, ProviderKind};
use switchboard::providers::{Providers, ProvidersConfig, RetryPolicy};
use switchboard::store::{NewAccount, Store};

/// The `switchboard` binary, with no database chosen from the environment.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    c.env_remove("SWITCHBOARD_DB").env_remove("SWITCHBOARD_DATABASE");
    c
}

/// The `switchboard` binary on the database file `db`.
pub fn sb(db: &Path) -> Command {
    let mut c = bin();
    c.arg("--db").arg(db);
    c
}

/// Whether the private test keyring is there (scripts/test sets it up); a
/// test that needs the real keychain says it is skipped otherwise.
pub fn keyring_available() -> bool {
    if std::env::var_os("SWITCHBOARD_TEST_KEYRING").is_some() {
        return true;
    }
    eprintln!("skipped: needs the private test keyring (run scripts/test, which sets SWITCHBOARD_TEST_KEYRING=1)");
    false
}

/// A Wednesday in June, peak season, at noon UTC: the tests' fixed "now".
pub fn june() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 10, 12, 0, 0).unwrap()
}

/// `"2026-06-10"` as a date.
pub fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// An account on the simulator at `base_url` (no key: the caller sets it).
pub fn sim_account(store: &Store, owner: AccountOwner, provider: ProviderKind, label: &str, model: &str, base_url: &str) -> AccountId {
    let n = NewAccount { owner, provider, label: label.into(), base_url: base_url.to_string(), azure: None, default_model: model.into() };
    store.insert_account(&n, june()).unwrap().id
}

/// Provider clients that retry `max_attempts` times with a 5 ms backoff.
pub fn fast_providers(max_attempts: u32) -> Providers {
    Providers::new(ProvidersConfig {
        retry: RetryPolicy { max_attempts, base_delay: std::time::Duration::from_millis(5), ..RetryPolicy::default() },
        ..ProvidersConfig::default()
    })
    .unwrap()
}

/// The Python with the official SDKs (`SWITCHBOARD_PYTHON`, or the `.venv` that
/// scripts/test makes).
pub fn python() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = match std::env::var_os("SWITCHBOARD_PYTHON") {
        Some(p) => std::path::PathBuf::from(p),
        None => root.join(".venv/bin/python"),
    };
    assert!(
        python.exists(),
        "no Python with the OpenAI SDK at {} (set SWITCHBOARD_PYTHON, or run scripts/test, which makes .venv with `pip install openai`)",
        python.display()
    );
    python
}

/// Runs `tests/python/<script>` (an official SDK against the gateway or the
/// simulator) with `args` and the environment `vars`; returns its stdout. The
/// test fails on a non-zero exit, with the script's stdout and stderr.
pub async fn run_python_script(script: &str, args: &[&str], vars: &[(&str, &str)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(&path).args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{script} failed:\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}
