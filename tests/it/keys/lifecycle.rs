//! A key's life in the real keychain: added, read back, rotated and removed
//! across separate processes (refusals and the audit log included), a
//! rotation that leaves requests in flight on their key, and no keychain or a
//! locked one reported with the fix, nothing stored anywhere else.

use super::*;

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
