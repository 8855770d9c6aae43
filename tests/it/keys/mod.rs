//! API keys and gateway tokens on real parts: the real OS keychain (a private
//! gnome-keyring on a private D-Bus session, started by `scripts/test`, which
//! sets `SWITCHBOARD_TEST_KEYRING=1`), the real binary in separate processes
//! with keys on standard input, the provider simulator over loopback HTTP for
//! live validation, and real SQLite files for the leak checks.
//!
//! This module holds what its submodules share (the keys, running the
//! binary, a simulator, a key service); the tests are by topic: `lifecycle`
//! (add, read back, rotate, remove; no keychain or a locked one),
//! `validation` (every classification, format errors), `leaks` (tokens
//! resolve to their own supplier; no key or token in the database, WAL, logs
//! or CSV) and `removal` (a supplier's keys removed with it, orphaned
//! keychain entries).
//!
//! Tests that need the keychain are skipped (with a note) when
//! `SWITCHBOARD_TEST_KEYRING` is not set, so a bare `cargo test` outside the
//! test script does not touch the developer's own keyring.

use crate::support::{keyring_available, sb};
use chrono::Utc;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use switchboard::domain::Secret;
use switchboard::domain::{
    AccountId, AccountOwner, AiMode, NewSupplier, ProviderAccount, ProviderKind, SupplierId, SystemClock, Tier, ValidationStatus,
    VendorType,
};
use switchboard::engine::gateway_tokens as tokens;
use switchboard::engine::keys::{KeyError, KeyService, NewKey};
use switchboard::providers::{Providers, ProvidersConfig};
use switchboard::sim::{Faults, SimAccountConfig, SimConfig, SimHandle, Simulator};
use switchboard::store::{AuditFilter, Store};
use switchboard::vault::{KeyRef, Vault, VaultError};

mod leaks;
mod lifecycle;
mod removal;
mod validation;

// Distinctive key values: the LEAKCANARY parts never appear in a fingerprint
// (which shows only the prefix and the last four characters).
const OPENAI_KEY_1: &str = "sk-proj-LEAKCANARYopenaiOne0000000000000000a1b2";
const OPENAI_KEY_2: &str = "sk-proj-LEAKCANARYopenaiTwo0000000000000000c3d4";
const ANTHROPIC_KEY: &str = "sk-ant-api03-LEAKCANARYanthropic000000000000000e5f6";
const AZURE_KEY: &str = "0123456789abcdef4ea4ca9a7ba1e5f6"; // 32 hex; "4ea4ca9a7ba1" is its canary
const AZURE_CANARY: &str = "4ea4ca9a7ba1";

/// Runs the binary with `stdin` piped in.
fn run(mut c: Command, stdin: &str) -> Output {
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("the switchboard binary starts");
    {
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("the switchboard binary ends")
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "failed: {}\nstdout: {out}\nstderr: {}", o.status, String::from_utf8_lossy(&o.stderr));
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn sim_config() -> SimConfig {
    let mut azure = SimAccountConfig::new("azure-a", ProviderKind::AzureOpenAi, AZURE_KEY);
    azure.deployments.insert("gpt4o-prod".into(), "gpt-4o".into());
    SimConfig {
        seed: 7,
        accounts: vec![
            SimAccountConfig::new("openai-a", ProviderKind::OpenAi, OPENAI_KEY_1),
            SimAccountConfig::new("openai-b", ProviderKind::OpenAi, OPENAI_KEY_2),
            SimAccountConfig::new("anthropic-a", ProviderKind::Anthropic, ANTHROPIC_KEY),
            azure,
        ],
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn start_sim(rt: &tokio::runtime::Runtime) -> SimHandle {
    rt.block_on(Simulator::start(sim_config())).expect("simulator starts")
}

fn supplier(store: &Store, name: &str, mode: AiMode) -> SupplierId {
    store.insert_supplier(&NewSupplier::new(name, VendorType::Photographer, Tier::Professional, mode), Utc::now()).unwrap().id
}

fn accounts_json(db: &Path) -> Vec<ProviderAccount> {
    let mut c = sb(db);
    c.args(["key", "list", "--json"]);
    serde_json::from_str(&ok(&run(c, ""))).unwrap()
}

fn service(store: Arc<Store>, vault: Vault) -> KeyService {
    let providers = Providers::new(ProvidersConfig::default()).unwrap();
    KeyService::new(store, vault, Arc::new(providers), Arc::new(SystemClock))
}
