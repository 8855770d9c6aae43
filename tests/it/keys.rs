//! API keys and gateway tokens on real parts: the real OS keychain (a private
//! gnome-keyring on a private D-Bus session, started by `scripts/test`, which
//! sets `SWITCHBOARD_TEST_KEYRING=1`), the real binary in separate processes
//! with keys on standard input, the provider simulator over loopback HTTP for
//! live validation, and real SQLite files for the leak checks.
//!
//! The leak test also exports the day's usage as CSV and searches it too.
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

#[test]
fn add_read_back_rotate_remove_across_processes() {
    if !keyring_available() {
        return;
    }
    let rt = runtime();
    let sim = start_sim(&rt);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let sup = supplier(&Store::open(&db).unwrap(), "Capture Moments", AiMode::Client);

    // Process 1: add, key on stdin, validated live against the simulator.
    let mut c = sb(&db);
    c.args(["key", "add", "--owner", &sup.0.to_string(), "--provider", "openai", "--base-url", sim.base_url()]);
    let out = ok(&run(c, &format!("{OPENAI_KEY_1}\n")));
    assert!(out.contains("sk-proj-…a1b2"), "{out}");
    assert!(out.contains("Validated live"), "{out}");

    // Process 2: the database holds a reference and a fingerprint only.
    let list = accounts_json(&db);
    assert_eq!(list.len(), 1);
    let a = &list[0];
    assert_eq!(a.owner, AccountOwner::Supplier(sup));
    assert_eq!(a.key_fingerprint.as_deref(), Some("sk-proj-…a1b2"));
    assert_eq!(a.last_validation, Some(ValidationStatus::Valid));
    let first_ref = KeyRef::from_stored(a.key_ref.clone().unwrap());
    assert!(first_ref.as_str().starts_with(&format!("account-{}-", a.id)));

    // This test process reads back what another process stored in the keychain.
    let vault = Vault::os();
    assert_eq!(rt.block_on(vault.get(&first_ref)).unwrap().expose(), OPENAI_KEY_1);

    // Process 3: rotate to a key the provider rejects → refused, old key intact.
    let mut c = sb(&db);
    c.args(["key", "rotate", &a.id.to_string()]);
    let o = run(c, "sk-proj-NotAcceptedByTheProvider000000000000zz99\n");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("was not accepted") && err.contains("invalid_key") && err.contains("old key is still in use"), "{err}");
    assert!(!err.contains("NotAcceptedByTheProvider"), "{err}");
    assert_eq!(accounts_json(&db)[0].key_ref.as_deref(), Some(first_ref.as_str()));
    assert_eq!(rt.block_on(vault.get(&first_ref)).unwrap().expose(), OPENAI_KEY_1);

    // Process 4: rotate to a good key.
    let mut c = sb(&db);
    c.args(["key", "rotate", &a.id.to_string()]);
    let out = ok(&run(c, OPENAI_KEY_2));
    assert!(out.contains("sk-proj-…c3d4"), "{out}");
    let a2 = accounts_json(&db).remove(0);
    let second_ref = KeyRef::from_stored(a2.key_ref.clone().unwrap());
    assert_ne!(second_ref, first_ref);
    assert_eq!(a2.key_fingerprint.as_deref(), Some("sk-proj-…c3d4"));
    assert_eq!(rt.block_on(vault.get(&second_ref)).unwrap().expose(), OPENAI_KEY_2);
    assert!(matches!(rt.block_on(vault.get(&first_ref)), Err(VaultError::Missing { .. })), "old entry removed");

    // Process 5: validate reads the key from the keychain in a fresh process.
    let mut c = sb(&db);
    c.args(["key", "validate", &a.id.to_string()]);
    assert!(ok(&run(c, "")).contains("valid"));

    // Process 6: remove is refused while this is the client-mode supplier's only account…
    let mut c = sb(&db);
    c.args(["key", "remove", &a.id.to_string()]);
    let o = run(c, "");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("active route"), "{}", stderr(&o));
    assert_eq!(rt.block_on(vault.get(&second_ref)).unwrap().expose(), OPENAI_KEY_2);
    // … and done with --force: gone from the keychain and the database.
    let mut c = sb(&db);
    c.args(["key", "remove", &a.id.to_string(), "--force"]);
    ok(&run(c, ""));
    assert!(accounts_json(&db).is_empty());
    assert!(matches!(rt.block_on(vault.get(&second_ref)), Err(VaultError::Missing { .. })));

    // Every action is in the audit log with the OS user; never the key.
    let store = Store::open(&db).unwrap();
    let audit = store.audit_entries(&AuditFilter { action_prefix: Some("key.".into()), ..Default::default() }).unwrap();
    let actions: Vec<(&str, &str)> = audit.iter().rev().map(|e| (e.action.as_str(), e.result.as_str())).collect();
    assert_eq!(
        actions,
        vec![
            ("key.add", "ok"),
            ("key.rotate", "refused"),
            ("key.rotate", "ok"),
            ("key.validate", "valid"),
            ("key.remove", "refused"),
            ("key.remove", "ok")
        ]
    );
    let user = switchboard::store::audit_actor();
    for e in &audit {
        assert_eq!(e.actor, user);
        assert_eq!(e.account_id, Some(a.id));
        assert!(!e.detail.contains("LEAKCANARY") && !e.detail.contains("NotAccepted"), "{}", e.detail);
    }
    drop(sim);
}

#[test]
fn without_a_keychain_every_key_path_says_so_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nokeychain.db");
    let store = Store::open(&db).unwrap();
    let sup = supplier(&store, "Lakeside Venue", AiMode::Client);
    // Give it an account that refers to a keychain entry, as if added earlier.
    let acc = store
        .insert_account(
            &switchboard::store::NewAccount {
                owner: AccountOwner::Supplier(sup),
                provider: ProviderKind::OpenAi,
                label: "venue".into(),
                base_url: "http://127.0.0.1:9".into(),
                azure: None,
                default_model: "gpt-4o-mini".into(),
            },
            Utc::now(),
        )
        .unwrap();
    store.set_account_key(acc.id, Some("account-1-feedfacecafe"), Some("sk-…a1b2")).unwrap();
    drop(store);

    let no_bus = |args: &[&str]| {
        let mut c = sb(&db);
        c.env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", dir.path().join("no-such-bus").display()));
        c.args(args);
        c
    };
    let o = run(no_bus(&["key", "add", "--owner", "platform", "--provider", "openai", "--no-validate"]), OPENAI_KEY_1);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("no OS keychain is available"), "{err}");
    if cfg!(target_os = "linux") {
        assert!(err.contains("start gnome-keyring"), "{err}");
    }
    assert!(err.contains("never stores them anywhere else"), "{err}");
    assert!(!err.contains("LEAKCANARY"), "{err}");

    for args in [vec!["key", "validate", "1"], vec!["key", "remove", "1", "--force"]] {
        let o = run(no_bus(&args), "");
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains("no OS keychain is available"), "{args:?}: {}", stderr(&o));
    }
    let mut rotate = no_bus(&["key", "rotate", "1"]);
    rotate.arg("--json");
    let o = run(rotate, OPENAI_KEY_2);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no OS keychain is available"), "{}", stderr(&o));

    // Nothing was stored anywhere else: only the account made before, unchanged.
    let store = Store::open(&db).unwrap();
    let list = store.list_accounts(None).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].key_ref.as_deref(), Some("account-1-feedfacecafe"));
    drop(store);
    assert_no_canary_in_files(&db);
}

fn assert_no_canary_in_files(db: &Path) {
    for p in [db.to_path_buf(), db.with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&p) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("LEAKCANARY"), "a key is in {}", p.display());
        }
    }
}

/// A loopback server answering the model list the way a provider answers a
/// key that is valid but lacks permission (OpenAI's restricted-key 403 and
/// Anthropic's `permission_error`), which the simulator does not produce.
async fn forbidding_server() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/v1/models",
        get(|h: axum::http::HeaderMap| async move {
            let body = if h.contains_key("x-api-key") {
                r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."},"request_id":"req_011"}"#
            } else {
                r#"{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: api.model.read. Check that you have the correct role in your organization (Reader, Writer, Owner) and project (Member, Owner), and if you're using a restricted API key, that it has the necessary scopes.","type":"invalid_request_error","param":null,"code":null}}"#
            };
            (StatusCode::FORBIDDEN, [("content-type", "application/json")], body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[test]
fn validation_reaches_every_classification() {
    // Validation is about the provider's answers; the key lives in the
    // explicit in-memory demo store so this runs with or without a keyring.
    let rt = runtime();
    let sim = start_sim(&rt);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("v.db")).unwrap());
    let svc = service(store.clone(), Vault::demo_in_memory());
    let base = sim.base_url().to_string();
    let add = |provider: ProviderKind, key: &str, base_url: &str| {
        let azure = (provider == ProviderKind::AzureOpenAi)
            .then(|| switchboard::domain::AzureConfig { deployment: "gpt4o-prod".into(), api_version: "2024-10-21".into() });
        let new = NewKey {
            owner: AccountOwner::Platform,
            provider,
            label: None,
            base_url: Some(base_url.to_string()),
            default_model: None,
            azure,
        };
        rt.block_on(svc.add(new, Secret::new(key), false)).unwrap().account.id
    };
    let check = |id: AccountId, want: ValidationStatus, msg_part: &str| {
        let v = rt.block_on(svc.validate(id)).unwrap();
        assert_eq!(v.status, want, "{}", v.message);
        assert!(v.message.to_lowercase().contains(&msg_part.to_lowercase()), "{want}: {}", v.message);
        let a = store.account(id).unwrap();
        assert_eq!(a.last_validation, Some(want));
        assert_eq!(a.last_validation_message.as_deref(), Some(v.message.as_str()));
        assert!(a.last_validated_at.is_some());
    };

    let openai = add(ProviderKind::OpenAi, OPENAI_KEY_1, &base);
    let anthropic = add(ProviderKind::Anthropic, ANTHROPIC_KEY, &base);
    let azure = add(ProviderKind::AzureOpenAi, AZURE_KEY, &base);
    check(openai, ValidationStatus::Valid, "key accepted");
    check(anthropic, ValidationStatus::Valid, "key accepted");
    check(azure, ValidationStatus::Valid, "key accepted");

    // Invalid key: the provider's own 401 message.
    let wrong_openai = add(ProviderKind::OpenAi, "sk-proj-WrongKeyForTheSimulator00000000000000", &base);
    check(wrong_openai, ValidationStatus::InvalidKey, "Incorrect API key provided");
    let wrong_anthropic = add(ProviderKind::Anthropic, "sk-ant-api03-WrongKeyForTheSimulator000000", &base);
    check(wrong_anthropic, ValidationStatus::InvalidKey, "invalid x-api-key");
    let wrong_azure = add(ProviderKind::AzureOpenAi, "ffffffffffffffffffffffffffffffff", &base);
    check(wrong_azure, ValidationStatus::InvalidKey, "Access denied");

    // Rate limited, quota exhausted, a provider's own 503 (reached, so not
    // "unreachable"), and unreachable (a closed port).
    sim.set_faults("openai-a", Faults { rate_limit_rate: 1.0, ..Faults::default() });
    check(openai, ValidationStatus::RateLimited, "rate limit");
    sim.set_faults("openai-a", Faults { spend_limit: true, ..Faults::default() });
    check(openai, ValidationStatus::QuotaExhausted, "quota");
    sim.set_faults("anthropic-a", Faults { spend_limit: true, ..Faults::default() });
    check(anthropic, ValidationStatus::QuotaExhausted, "");
    sim.set_faults("openai-a", Faults { outage: true, ..Faults::default() });
    check(openai, ValidationStatus::ServerError, "");
    sim.set_faults("openai-a", Faults::default());
    check(openai, ValidationStatus::Valid, "key accepted");
    let closed = add(ProviderKind::OpenAi, OPENAI_KEY_2, "http://127.0.0.1:9");
    check(closed, ValidationStatus::Unreachable, "");

    // No permission: a 403 with the providers' real bodies.
    let (forbid_url, task) = rt.block_on(forbidding_server());
    let restricted = add(ProviderKind::OpenAi, OPENAI_KEY_2, &forbid_url);
    check(restricted, ValidationStatus::NoPermission, "insufficient permissions");
    let restricted_an = add(ProviderKind::Anthropic, ANTHROPIC_KEY, &forbid_url);
    check(restricted_an, ValidationStatus::NoPermission, "does not have permission");
    task.abort();

    // The audit log has each result, never a key.
    let audit = store.audit_entries(&AuditFilter { action_prefix: Some("key.validate".into()), ..Default::default() }).unwrap();
    // (A timeout needs a provider that never answers; the health probes' tests cover it.)
    for s in ValidationStatus::ALL.iter().filter(|s| **s != ValidationStatus::Timeout) {
        assert!(audit.iter().any(|e| e.result == s.as_str()), "no audit entry with {s}");
    }
    for e in &audit {
        assert!(!e.detail.contains("LEAKCANARY") && !e.detail.contains(AZURE_CANARY) && !e.detail.contains("WrongKey"), "{}", e.detail);
    }
}

#[test]
fn format_errors_come_before_anything_is_stored() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("f.db")).unwrap());
    let svc = service(store.clone(), Vault::demo_in_memory());
    let new = |provider, base_url: Option<&str>, azure| NewKey {
        owner: AccountOwner::Platform,
        provider,
        label: None,
        base_url: base_url.map(String::from),
        default_model: None,
        azure,
    };
    let cases: Vec<(NewKey, &str, &str)> = vec![
        (new(ProviderKind::OpenAi, None, None), "sk-ant-api03-LEAKCANARYxxxxxxxxxxxx", "Anthropic key"),
        (new(ProviderKind::Anthropic, None, None), "sk-proj-LEAKCANARYxxxxxxxxxxxxxxxx", "starts with 'sk-ant-'"),
        (new(ProviderKind::AzureOpenAi, Some("https://r.openai.azure.com"), None), AZURE_KEY, "deployment and an api-version"),
        (new(ProviderKind::AzureOpenAi, Some("https://r.openai.azure.com"), None), "LEAKCANARY", "32 hexadecimal"),
        (
            new(
                ProviderKind::AzureOpenAi,
                None,
                Some(switchboard::domain::AzureConfig { deployment: "d".into(), api_version: "2024-10-21".into() }),
            ),
            AZURE_KEY,
            "resource endpoint",
        ),
    ];
    for (n, key, want) in cases {
        let e = rt.block_on(svc.add(n, Secret::new(key), false)).unwrap_err();
        assert!(matches!(e, KeyError::Format(_)), "{e}");
        assert!(e.to_string().contains(want), "{e}");
        assert!(!e.to_string().contains("LEAKCANARY") && !e.to_string().contains(AZURE_CANARY), "{e}");
    }
    assert!(store.list_accounts(None).unwrap().is_empty());
    let audit = store.audit_entries(&AuditFilter { action_prefix: Some("key.add".into()), ..Default::default() }).unwrap();
    assert_eq!(audit.len(), 5);
    assert!(audit.iter().all(|e| e.result == "refused"));
}

#[test]
fn rotation_keeps_requests_in_flight_on_their_key() {
    if !keyring_available() {
        return;
    }
    let rt = runtime();
    let sim = start_sim(&rt);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("r.db")).unwrap());
    let svc = service(store.clone(), Vault::os());
    let new = NewKey {
        owner: AccountOwner::Platform,
        provider: ProviderKind::OpenAi,
        label: Some("platform openai".into()),
        base_url: Some(sim.base_url().to_string()),
        default_model: None,
        azure: None,
    };
    let id = rt.block_on(svc.add(new, Secret::new(OPENAI_KEY_1), true)).unwrap().account.id;
    let in_flight = rt.block_on(svc.key_for(id)).unwrap();
    assert_eq!(in_flight.expose(), OPENAI_KEY_1);
    // Every request shares the one in-memory value: a snapshot copies no key.
    let again = rt.block_on(svc.key_for(id)).unwrap();
    assert!(std::ptr::eq(in_flight.expose().as_ptr(), again.expose().as_ptr()), "a key snapshot must not copy the key");
    drop(again);
    // Another process (e.g. the gateway while the CLI rotates) holding the old key in memory.
    let other = service(store.clone(), Vault::os());
    let other_in_flight = rt.block_on(other.key_for(id)).unwrap();
    assert_eq!(other_in_flight.expose(), OPENAI_KEY_1);

    rt.block_on(svc.rotate(id, Secret::new(OPENAI_KEY_2))).unwrap();
    // The request that started before the rotation still holds the old key …
    assert_eq!(in_flight.expose(), OPENAI_KEY_1);
    // … and every new request gets the new one, also after a restart.
    assert_eq!(rt.block_on(svc.key_for(id)).unwrap().expose(), OPENAI_KEY_2);
    assert_eq!(other_in_flight.expose(), OPENAI_KEY_1);
    assert_eq!(rt.block_on(other.key_for(id)).unwrap().expose(), OPENAI_KEY_2, "a rotation elsewhere is seen");
    let restarted = service(store.clone(), Vault::os());
    assert_eq!(rt.block_on(restarted.key_for(id)).unwrap().expose(), OPENAI_KEY_2);

    // A platform account is never a supplier's active route: removal is not refused.
    rt.block_on(svc.remove(id, false)).unwrap();
    assert!(matches!(rt.block_on(restarted.key_for(id)), Err(KeyError::Store(_))));
    assert!(matches!(rt.block_on(other.key_for(id)), Err(KeyError::Store(_))));
    drop(sim);
}

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

#[test]
fn a_locked_keyring_is_reported_with_the_fix() {
    if !keyring_available() {
        return;
    }
    // A second private session whose gnome-keyring was started but never unlocked.
    let dir = tempfile::tempdir().unwrap();
    let (data, runtime_dir) = (dir.path().join("data"), dir.path().join("run"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&runtime_dir).unwrap();
    std::fs::set_permissions(&runtime_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let db = dir.path().join("locked.db");
    let mut c = Command::new("dbus-run-session");
    c.args(["--", "sh", "-c", "gnome-keyring-daemon --components=secrets --daemonize >/dev/null && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--db")
        .arg(&db)
        .args(["key", "add", "--owner", "platform", "--provider", "openai", "--no-validate"])
        .env("XDG_DATA_HOME", &data)
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        .env_remove("SWITCHBOARD_DB");
    let o = run(c, OPENAI_KEY_1);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("the OS keychain is locked"), "{err}");
    assert!(err.contains("gnome-keyring-daemon --unlock"), "{err}");
    assert!(!err.contains("LEAKCANARY"), "{err}");
    assert!(Store::open(&db).unwrap().list_accounts(None).unwrap().is_empty());
    assert_no_canary_in_files(&db);
}

#[test]
fn removing_a_supplier_removes_its_keys_from_the_keychain() {
    if !keyring_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let sup = supplier(&Store::open(&db).unwrap(), "Golden Hour Films", AiMode::Client);
    let mut c = sb(&db);
    c.args(["key", "add", "--owner", &sup.0.to_string(), "--provider", "anthropic", "--no-validate"]);
    ok(&run(c, ANTHROPIC_KEY));
    let key_ref = KeyRef::from_stored(accounts_json(&db)[0].key_ref.clone().unwrap());
    let rt = runtime();
    assert_eq!(rt.block_on(Vault::os().get(&key_ref)).unwrap().expose(), ANTHROPIC_KEY);
    let mut c = sb(&db);
    c.args(["supplier", "remove", &sup.0.to_string()]);
    assert!(ok(&run(c, "")).contains("their keys from the keychain"));
    assert!(matches!(rt.block_on(Vault::os().get(&key_ref)), Err(VaultError::Missing { .. })));
    assert!(accounts_json(&db).is_empty());
}

/// Sends `cmd` to a console service on `store` (keys in the real keychain) and
/// waits for the first event that is not `skip`.
fn console_do(
    rt: &tokio::runtime::Runtime,
    store: Arc<Store>,
    cmds: Vec<switchboard::console::ConsoleCommand>,
) -> Vec<switchboard::console::ConsoleEvent> {
    use switchboard::console::{LiveServices, ServiceOptions};
    let keys = Arc::new(service(store.clone(), Vault::os()));
    let opts = ServiceOptions { live: Some(LiveServices::keys_only(keys)), ..Default::default() };
    let (handle, mut events) = switchboard::console::spawn_with(
        rt.handle(),
        store,
        Arc::new(SystemClock),
        switchboard::domain::QuotaPolicy::default(),
        Arc::new(|| {}),
        opts,
    );
    let mut out = Vec::new();
    for cmd in cmds {
        handle.send(cmd).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(ev) = events.try_next() {
                out.push(ev);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no answer from the console service");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    out
}

#[test]
fn removing_a_supplier_in_the_console_removes_its_keys_from_the_keychain() {
    if !keyring_available() {
        return;
    }
    use switchboard::console::{ConsoleCommand, ConsoleEvent};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let store = Arc::new(Store::open(&db).unwrap());
    let sup = supplier(&store, "Console Removed Films", AiMode::Client);
    let rt = runtime();
    let svc = service(store.clone(), Vault::os());
    let new = |p| NewKey { owner: AccountOwner::Supplier(sup), provider: p, label: None, base_url: None, default_model: None, azure: None };
    let a = rt.block_on(svc.add(new(ProviderKind::Anthropic), Secret::new(ANTHROPIC_KEY), false)).unwrap().account;
    let b = rt.block_on(svc.add(new(ProviderKind::OpenAi), Secret::new(OPENAI_KEY_1), false)).unwrap().account;
    let refs: Vec<KeyRef> = [&a, &b].iter().map(|x| KeyRef::from_stored(x.key_ref.clone().unwrap())).collect();
    for r in &refs {
        assert!(rt.block_on(Vault::os().get(r)).is_ok());
    }
    let evs = console_do(&rt, store.clone(), vec![ConsoleCommand::RemoveSupplier(sup)]);
    assert!(matches!(&evs[0], ConsoleEvent::SupplierRemoved { id, .. } if *id == sup), "{:?}", evs[0]);
    for r in &refs {
        assert!(matches!(rt.block_on(Vault::os().get(r)), Err(VaultError::Missing { .. })), "{r} left in the keychain");
    }
    assert!(store.find_supplier(sup).unwrap().is_none());
    assert!(store.list_accounts(None).unwrap().is_empty());
    assert!(rt.block_on(svc.orphan_keys()).unwrap().is_empty());
}

#[test]
fn orphaned_keychain_entries_are_reported_and_pruned_only_for_this_database() {
    if !keyring_available() {
        return;
    }
    use switchboard::console::{ConsoleCommand, ConsoleEvent};
    let dir = tempfile::tempdir().unwrap();
    let (db, other_db) = (dir.path().join("o.db"), dir.path().join("other.db"));
    let store = Arc::new(Store::open(&db).unwrap());
    let other = Arc::new(Store::open(&other_db).unwrap());
    let rt = runtime();
    let platform = |p| NewKey { owner: AccountOwner::Platform, provider: p, label: None, base_url: None, default_model: None, azure: None };
    let svc = service(store.clone(), Vault::os());
    let kept = rt.block_on(svc.add(platform(ProviderKind::OpenAi), Secret::new(OPENAI_KEY_1), false)).unwrap().account;
    let gone = rt.block_on(svc.add(platform(ProviderKind::Anthropic), Secret::new(ANTHROPIC_KEY), false)).unwrap().account;
    // Another database in the same keychain, with an account of the same id as `gone`.
    let other_svc = service(other.clone(), Vault::os());
    rt.block_on(other_svc.add(platform(ProviderKind::OpenAi), Secret::new(OPENAI_KEY_2), false)).unwrap();
    let other_gone = rt.block_on(other_svc.add(platform(ProviderKind::OpenAi), Secret::new(OPENAI_KEY_2), false)).unwrap().account;
    let other_ref = KeyRef::from_stored(other_gone.key_ref.clone().unwrap());
    other.delete_account(other_gone.id).unwrap();
    // The account row goes without its key (as the console did before): the entry is orphaned.
    let gone_ref = KeyRef::from_stored(gone.key_ref.clone().unwrap());
    store.delete_account(gone.id).unwrap();
    let orphans = rt.block_on(svc.orphan_keys()).unwrap();
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    assert_eq!((orphans[0].key_ref.as_str(), orphans[0].account, orphans[0].untagged), (gone_ref.as_str(), gone.id, false));
    // The console's Keys view shows them.
    let evs = console_do(&rt, store.clone(), vec![ConsoleCommand::LoadKeys]);
    match &evs[0] {
        ConsoleEvent::Keys(v) => assert_eq!(v.orphans, orphans),
        other => panic!("{other:?}"),
    }
    // The CLI: a dry run lists and keeps; then the entry is removed, names only in the output.
    let mut c = sb(&db);
    c.args(["key", "prune-orphans", "--dry-run"]);
    let out = ok(&run(c, ""));
    assert!(out.contains(gone_ref.as_str()) && out.contains("would be removed") && !out.contains("LEAKCANARY"), "{out}");
    assert!(rt.block_on(Vault::os().get(&gone_ref)).is_ok());
    let mut c = sb(&db);
    c.args(["keys", "prune-orphans"]);
    let out = ok(&run(c, ""));
    assert!(out.contains("Removed 1 orphaned keychain entry"), "{out}");
    assert!(matches!(rt.block_on(Vault::os().get(&gone_ref)), Err(VaultError::Missing { .. })));
    // The kept account's key and the other database's orphan are untouched.
    assert_eq!(rt.block_on(Vault::os().get(&KeyRef::from_stored(kept.key_ref.clone().unwrap()))).unwrap().expose(), OPENAI_KEY_1);
    assert_eq!(rt.block_on(Vault::os().get(&other_ref)).unwrap().expose(), OPENAI_KEY_2);
    assert!(rt.block_on(svc.orphan_keys()).unwrap().is_empty());
    let audit = store.audit_entries(&AuditFilter::default()).unwrap();
    assert!(audit.iter().any(|e| e.action == "key.prune_orphan" && e.detail.contains(gone_ref.as_str())));
    // The other database prunes its own.
    assert_eq!(rt.block_on(other_svc.prune_orphans(false)).unwrap().len(), 1);
    assert!(matches!(rt.block_on(Vault::os().get(&other_ref)), Err(VaultError::Missing { .. })));
}
