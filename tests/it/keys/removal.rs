//! Keys removed with their supplier (on the command line and in the console),
//! and orphaned keychain entries reported and pruned for this database only.

use super::*;

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
