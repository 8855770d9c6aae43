//! Keys shared safely across a fleet (issue 25), against a real PostgreSQL
//! (scripts/test's private cluster, SWITCHBOARD_TEST_POSTGRES) and the real
//! test keychain: provider keys sealed to the fleet's public key, a console
//! that can seal but not open, a ciphertext moved to another account refused,
//! rotation re-sealing every key, the private key exported to and imported on
//! a "second server", a key file readable by others refused, and the leak
//! test in PostgreSQL mode (every table, the CLI's output and logs).
//! Each test works in a database of its own; without SWITCHBOARD_TEST_POSTGRES
//! the tests say they are skipped, except under CI, where that is a failure.

use crate::support::pg::{base_url, fresh_db, raw};
use crate::support::{bin, keyring_available};
use parking_lot::Mutex;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use switchboard::domain::{Secret, SystemClock};
use switchboard::engine::sealed_keys;
use switchboard::store::pg::{PgStore, block_on_pg};
use switchboard::vault::sealed::{self, FleetPrivateKey, FoundKey, KeyFinder, KeyPlace};
use switchboard::vault::{KeyRef, Vault, VaultError};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

fn open_pg(url: &str) -> PgStore {
    let url = url.to_string();
    block_on_pg(async move { PgStore::open(&url).await }).unwrap()
}

/// `switchboard fleet ARGS --database URL`, with no fleet key place or
/// database taken from the test's own environment.
fn fleet(url: &str, args: &[&str]) -> Command {
    let mut c = bin();
    c.env_remove("SWITCHBOARD_DATABASE").env_remove(sealed::KEY_FILE_ENV).env_remove("CREDENTIALS_DIRECTORY");
    c.arg("fleet").args(args).arg("--database").arg(url);
    c
}

fn output(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn ok(c: Command) -> (String, String) {
    let o = output(c);
    let (out, err) = text(&o);
    assert!(o.status.success(), "command failed\nstdout: {out}\nstderr: {err}");
    (out, err)
}

fn fails(c: Command) -> String {
    let o = output(c);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "command should have failed\nstdout: {out}\nstderr: {err}");
    err
}

/// A private key lookup that reads one file (a server whose key is that file).
fn file_finder(path: &Path) -> KeyFinder {
    let path = path.to_path_buf();
    Arc::new(move |_| {
        let place = KeyPlace::File(path.clone());
        sealed::read_key_file(&path, place.clone()).map(|key| Some(FoundKey { key, place }))
    })
}

fn file_server(url: &str, key_file: &Path) -> Vault {
    sealed_keys::server_vault_with(open_pg(url), Arc::new(SystemClock), file_finder(key_file))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn key_file_private(p: &Path) -> FleetPrivateKey {
    sealed::read_key_file(p, KeyPlace::File(p.to_path_buf())).unwrap()
}

/// (id, key_ref, fleet_key_id, ciphertext) of every sealed key, and the fleet keys (id, retired?).
async fn rows(url: &str) -> (Vec<(String, i64, Vec<u8>)>, Vec<(i64, bool)>) {
    let c = raw(url).await;
    let sealed = c
        .query("SELECT key_ref, fleet_key_id, ciphertext FROM sealed_keys ORDER BY key_ref", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let keys = c
        .query("SELECT id, retired_at IS NOT NULL FROM fleet_keys ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    (sealed, keys)
}

#[test]
fn console_seals_server_opens_and_keychain_rotation_is_picked_up() {
    let Some(base) = base_url("fleet_keys::console_seals_server_opens_and_keychain_rotation_is_picked_up") else { return };
    if !keyring_available() {
        return;
    }
    let rt = rt();
    let url = rt.block_on(fresh_db(&base, "sbt_fleet_console"));
    let (out, _) = ok(fleet(&url, &["init"]));
    assert!(out.contains("public key:  age1") && out.contains("OS keychain"), "{out}");
    // A second init is refused and changes nothing.
    let err = fails(fleet(&url, &["init"]));
    assert!(err.contains("already has a key"), "{err}");
    assert_eq!(rt.block_on(rows(&url)).1.len(), 1);

    let console = sealed_keys::console_vault(open_pg(&url), Arc::new(SystemClock));
    let server = sealed_keys::server_vault(open_pg(&url), Arc::new(SystemClock));
    assert!(console.is_public_key_only() && !server.is_public_key_only());
    let (a, b) = (KeyRef::from_stored("account-1-aaaaaa"), KeyRef::from_stored("account-2-bbbbbb"));
    // The console adds a key it can never read back; the server opens it.
    rt.block_on(console.set(&a, &Secret::new("sk-proj-consoleAddedKey000000000000a1"))).unwrap();
    let e = rt.block_on(console.get(&a)).unwrap_err();
    assert_eq!(e, VaultError::PublicKeyOnly);
    assert!(e.to_string().contains("this desktop holds only the fleet's public key; the fleet validates and uses the key"), "{e}");
    assert_eq!(rt.block_on(server.get(&a)).unwrap().expose(), "sk-proj-consoleAddedKey000000000000a1");
    rt.block_on(server.set(&b, &Secret::new("sk-ant-serverAddedKey00000000000000b2"))).unwrap();
    assert_eq!(rt.block_on(server.get(&b)).unwrap().expose(), "sk-ant-serverAddedKey00000000000000b2");
    assert_eq!(rt.block_on(console.list_refs()).unwrap(), vec![a.clone(), b.clone()]);
    // Replacing a key keeps one row; the fingerprint is the masked one.
    rt.block_on(console.set(&a, &Secret::new("sk-proj-consoleRotatedKey0000000000c3"))).unwrap();
    assert_eq!(rt.block_on(server.get(&a)).unwrap().expose(), "sk-proj-consoleRotatedKey0000000000c3");
    let fp: String = rt.block_on(async {
        raw(&url).await.query_one("SELECT fingerprint FROM sealed_keys WHERE key_ref = $1", &[&a.as_str()]).await.unwrap().get(0)
    });
    assert_eq!(fp, "sk-proj-…00c3");

    // Rotation by the CLI, keychain to keychain: the old entry goes, the
    // running server finds the new key on its own and opens every key.
    let old_entry = {
        let pg = open_pg(&url);
        let cur = pg.block(|pg| async move { pg.current_fleet_key().await }).unwrap().unwrap();
        sealed::keychain_entry(&sealed::FleetPublicKey::parse(&cur.public_key).unwrap())
    };
    let (out, _) = ok(fleet(&url, &["rotate"]));
    assert!(out.contains("re-sealed 2 key(s) in one transaction"), "{out}");
    let keychain = Vault::os_for_service(sealed::KEYCHAIN_SERVICE);
    assert!(matches!(rt.block_on(keychain.get(&KeyRef::from_stored(old_entry))), Err(VaultError::Missing { .. })));
    assert_eq!(rt.block_on(server.get(&a)).unwrap().expose(), "sk-proj-consoleRotatedKey0000000000c3");
    assert_eq!(rt.block_on(server.get(&b)).unwrap().expose(), "sk-ant-serverAddedKey00000000000000b2");
    let (out, _) = ok(fleet(&url, &["status"]));
    assert!(out.contains("sealed keys:  2") && out.contains("retired keys: 1") && out.contains("can open them"), "{out}");
    assert!(rt.block_on(server.delete(&a)).unwrap());
    assert!(matches!(rt.block_on(server.get(&a)), Err(VaultError::Missing { .. })));
}

#[test]
fn a_ciphertext_moved_to_another_key_ref_is_refused() {
    let Some(base) = base_url("fleet_keys::a_ciphertext_moved_to_another_key_ref_is_refused") else { return };
    let rt = rt();
    let url = rt.block_on(fresh_db(&base, "sbt_fleet_moved"));
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("fleet.key");
    ok(fleet(&url, &["init", "--key-file", key_file.to_str().unwrap()]));
    assert_eq!(mode(&key_file), 0o600);
    let server = file_server(&url, &key_file);
    let (victim, thief) = (KeyRef::from_stored("account-7-aaaaaa"), KeyRef::from_stored("account-8-bbbbbb"));
    rt.block_on(server.set(&victim, &Secret::new("sk-proj-victimsKey000000000000000000d4"))).unwrap();
    rt.block_on(server.set(&thief, &Secret::new("sk-proj-thiefsOwnKey0000000000000000e5"))).unwrap();
    rt.block_on(async {
        raw(&url)
            .await
            .execute(
                "UPDATE sealed_keys SET ciphertext = (SELECT ciphertext FROM sealed_keys WHERE key_ref = $1) WHERE key_ref = $2",
                &[&victim.as_str(), &thief.as_str()],
            )
            .await
            .unwrap()
    });
    let e = rt.block_on(server.get(&thief)).unwrap_err();
    assert!(matches!(e, VaultError::Sealed { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("sealed for 'account-7-aaaaaa'") && m.contains("refused") && !m.contains("victimsKey"), "{m}");
    assert_eq!(rt.block_on(server.get(&victim)).unwrap().expose(), "sk-proj-victimsKey000000000000000000d4");
}

#[test]
fn rotate_reseals_every_key_and_the_old_private_key_no_longer_opens_them() {
    let Some(base) = base_url("fleet_keys::rotate_reseals_every_key_and_the_old_private_key_no_longer_opens_them") else { return };
    let rt = rt();
    let url = rt.block_on(fresh_db(&base, "sbt_fleet_rotate"));
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("fleet.key");
    ok(fleet(&url, &["init", "--key-file", key_file.to_str().unwrap()]));
    let old_key = key_file_private(&key_file);
    let server = file_server(&url, &key_file);
    let keys: Vec<(KeyRef, String)> = (1..=5)
        .map(|i| (KeyRef::from_stored(format!("account-{i}-abcdef")), format!("sk-proj-rotateKey{i}000000000000000000f{i}")))
        .collect();
    for (r, k) in &keys {
        rt.block_on(server.set(r, &Secret::new(k.as_str()))).unwrap();
    }
    let (before, fleet_keys) = rt.block_on(rows(&url));
    assert_eq!(fleet_keys, vec![(fleet_keys[0].0, false)]);

    let mut c = fleet(&url, &["rotate"]);
    c.env(sealed::KEY_FILE_ENV, &key_file);
    let (out, _) = ok(c);
    assert!(out.contains("re-sealed 5 key(s) in one transaction"), "{out}");
    assert_eq!(mode(&key_file), 0o600, "the new key file is private too");
    let new_key = key_file_private(&key_file);
    assert_ne!(new_key.public(), old_key.public());

    let (after, fleet_keys) = rt.block_on(rows(&url));
    assert_eq!(fleet_keys.len(), 2);
    assert!(fleet_keys[0].1 && !fleet_keys[1].1, "old retired, new current: {fleet_keys:?}");
    assert_eq!(after.len(), 5);
    for ((r, k), ((key_ref, id, ct), (_, _, old_ct))) in keys.iter().zip(after.iter().zip(before.iter())) {
        assert_eq!(key_ref, r.as_str());
        assert_eq!(*id, fleet_keys[1].0, "every key sealed to the new fleet key");
        assert_ne!(ct, old_ct);
        assert_eq!(sealed::open(&old_key, r, ct).unwrap_err(), sealed::SealError::NotForThisKey);
        assert_eq!(sealed::open(&new_key, r, ct).unwrap().expose(), k);
        // The running server's cached old key is replaced by the file's new one.
        assert_eq!(rt.block_on(server.get(r)).unwrap().expose(), k);
    }
    // A server still holding only the old private key is told what to do.
    let old_file = dir.path().join("old.key");
    sealed::write_key_file(&old_file, &old_key).unwrap();
    let stale = file_server(&url, &old_file);
    let e = rt.block_on(stale.get(&keys[0].0)).unwrap_err();
    assert!(matches!(e, VaultError::NoPrivateKey { .. }) && e.to_string().contains("import-key"), "{e}");
}

#[test]
fn export_and_import_move_the_private_key_to_a_second_server() {
    let Some(base) = base_url("fleet_keys::export_and_import_move_the_private_key_to_a_second_server") else { return };
    let rt = rt();
    let url = rt.block_on(fresh_db(&base, "sbt_fleet_export"));
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.key");
    ok(fleet(&url, &["init", "--key-file", first.to_str().unwrap()]));
    let r = KeyRef::from_stored("account-3-cccccc");
    rt.block_on(file_server(&url, &first).set(&r, &Secret::new("sk-proj-sharedByTheFleet0000000000a7"))).unwrap();

    // Through a file: export writes a new 0600 file and never overwrites one.
    let moved = dir.path().join("moved.key");
    let mut c = fleet(&url, &["export-key", "--to", moved.to_str().unwrap()]);
    c.env(sealed::KEY_FILE_ENV, &first);
    let (out, err) = ok(c);
    assert!(out.is_empty() && err.contains("mode 0600"), "{out} {err}");
    assert_eq!(mode(&moved), 0o600);
    let mut c = fleet(&url, &["export-key", "--to", moved.to_str().unwrap()]);
    c.env(sealed::KEY_FILE_ENV, &first);
    assert!(fails(c).contains("already exists"));
    let second = dir.path().join("second.key");
    let (out, _) = ok(fleet(&url, &["import-key", "--from", moved.to_str().unwrap(), "--key-file", second.to_str().unwrap()]));
    assert!(out.contains("imported the private key"), "{out}");
    assert_eq!(mode(&second), 0o600);
    assert_eq!(rt.block_on(file_server(&url, &second).get(&r)).unwrap().expose(), "sk-proj-sharedByTheFleet0000000000a7");

    // Through standard output and standard input.
    let mut c = fleet(&url, &["export-key"]);
    c.env(sealed::KEY_FILE_ENV, &first);
    let exported = output(c);
    assert!(exported.status.success());
    assert!(String::from_utf8_lossy(&exported.stdout).starts_with("AGE-SECRET-KEY-1"));
    let third = dir.path().join("third.key");
    let mut c = fleet(&url, &["import-key", "--key-file", third.to_str().unwrap()]);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(&exported.stdout).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(rt.block_on(file_server(&url, &third).get(&r)).unwrap().expose(), "sk-proj-sharedByTheFleet0000000000a7");

    // Another fleet's private key is refused and stored nowhere.
    let foreign = dir.path().join("foreign.key");
    sealed::write_key_file(&foreign, &FleetPrivateKey::generate()).unwrap();
    let fourth = dir.path().join("fourth.key");
    let err = fails(fleet(&url, &["import-key", "--from", foreign.to_str().unwrap(), "--key-file", fourth.to_str().unwrap()]));
    assert!(err.contains("not to the fleet's current key"), "{err}");
    assert!(!fourth.exists());
    // Without a key, this host cannot export one.
    let err = fails(fleet(&url, &["export-key", "--to", dir.path().join("none.key").to_str().unwrap()]));
    assert!(err.contains("import-key") || err.contains("keychain"), "{err}");
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    let Some(base) = base_url("fleet_keys::a_key_file_readable_by_others_is_refused") else { return };
    let rt = rt();
    let url = rt.block_on(fresh_db(&base, "sbt_fleet_mode"));
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("fleet.key");
    ok(fleet(&url, &["init", "--key-file", key_file.to_str().unwrap()]));
    let r = KeyRef::from_stored("account-5-dddddd");
    rt.block_on(file_server(&url, &key_file).set(&r, &Secret::new("sk-proj-modeTestKey000000000000000b8"))).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = rt.block_on(file_server(&url, &key_file).get(&r)).unwrap_err();
    assert!(e.to_string().contains("can be read by group or others (mode 0644)") && e.to_string().contains("chmod 600"), "{e}");
    let mut c = fleet(&url, &["export-key"]);
    c.env(sealed::KEY_FILE_ENV, &key_file);
    let err = fails(c);
    assert!(err.contains("mode 0644") && err.contains("chmod 600"), "{err}");
    let mut c = fleet(&url, &["status"]);
    c.env(sealed::KEY_FILE_ENV, &key_file);
    let (out, _) = ok(c);
    assert!(out.contains("cannot open them") && out.contains("chmod 600"), "{out}");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(rt.block_on(file_server(&url, &key_file).get(&r)).unwrap().expose(), "sk-proj-modeTestKey000000000000000b8");
}

#[test]
fn a_systemd_credential_is_found_after_the_key_file_and_rotation_writes_a_new_file() {
    let Some(base) = base_url("fleet_keys::a_systemd_credential_is_found_after_the_key_file_and_rotation_writes_a_new_file") else {
        return;
    };
    let rt = rt();
    let url = rt.block_on(fresh_db(&base, "sbt_fleet_cred"));
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let cred = creds.join(sealed::CREDENTIAL_NAME);
    ok(fleet(&url, &["init", "--key-file", cred.to_str().unwrap()]));
    // systemd hands the service its credential read-only (0400).
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o400)).unwrap();
    let with_cred = |args: &[&str]| {
        let mut c = fleet(&url, args);
        c.env("CREDENTIALS_DIRECTORY", &creds);
        c
    };
    let (out, _) = ok(with_cred(&["status"]));
    assert!(out.contains("can open them") && out.contains("systemd credential"), "{out}");
    // SWITCHBOARD_FLEET_KEY_FILE comes first: another fleet's key there is reported, not skipped.
    let other = dir.path().join("other.key");
    sealed::write_key_file(&other, &FleetPrivateKey::generate()).unwrap();
    let mut c = with_cred(&["status"]);
    c.env(sealed::KEY_FILE_ENV, &other);
    let (out, _) = ok(c);
    assert!(out.contains("cannot open them") && out.contains("other.key") && out.contains("another fleet key"), "{out}");

    let r = KeyRef::from_stored("account-9-eeeeee");
    rt.block_on(file_server(&url, &cred).set(&r, &Secret::new("sk-proj-credentialKey0000000000000c9"))).unwrap();
    // The credential cannot be rewritten: rotation wants a new file for the new key.
    let err = fails(with_cred(&["rotate"]));
    assert!(err.contains("--new-key-file"), "{err}");
    assert_eq!(rt.block_on(rows(&url)).1.len(), 1, "nothing rotated");
    let next = dir.path().join("next.key");
    let (out, _) = ok(with_cred(&["rotate", "--new-key-file", next.to_str().unwrap()]));
    assert!(out.contains("re-sealed 1 key(s)") && out.contains("next.key"), "{out}");
    assert_eq!(mode(&next), 0o600);
    let e = rt.block_on(file_server(&url, &cred).get(&r)).unwrap_err();
    assert!(matches!(e, VaultError::NoPrivateKey { .. }), "{e}");
    assert_eq!(rt.block_on(file_server(&url, &next).get(&r)).unwrap().expose(), "sk-proj-credentialKey0000000000000c9");
}

#[test]
fn fleet_commands_need_a_postgres_database_and_never_print_its_password() {
    let mut c = bin();
    c.env_remove("SWITCHBOARD_DATABASE").args(["fleet", "status"]);
    assert!(fails(c).contains("name the fleet's database: --database postgres://"));
    let mut c = bin();
    c.env_remove("SWITCHBOARD_DATABASE").args(["fleet", "init", "--database", "switchboard.db"]);
    assert!(fails(c).contains("fleet keys exist only on PostgreSQL"));
    // From the environment, unreachable: the message names the URL masked.
    let mut c = bin();
    c.env("SWITCHBOARD_DATABASE", "postgres://sb:PwCanary5q1@127.0.0.1:1/sb").args(["fleet", "status"]);
    let err = fails(c);
    assert!(err.contains("postgres://sb:***@127.0.0.1:1/sb") && !err.contains("PwCanary5q1"), "{err}");
    let mut c = bin();
    c.env("SWITCHBOARD_DATABASE", "postgres://sb:PwCanary5q1@127.0.0.1:1/sb").args(["fleet", "status", "--help"]);
    let (out, err) = ok(c);
    assert!(!out.contains("PwCanary5q1") && !err.contains("PwCanary5q1"), "{out}");
}

/// Everything the vault, `engine::sealed_keys` and the PostgreSQL adapter
/// log (at every level) in this test process, in memory; kept this narrow so
/// that the other tests of the binary do not pay for it.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = LogWriter(buf.clone());
        let filter = tracing_subscriber::EnvFilter::new(
            "switchboard::vault=trace,switchboard::engine::sealed_keys=trace,switchboard::store::pg=trace",
        );
        let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(move || writer.clone()).finish();
        // Another test binary part may have set one already: then logs go there
        // and this buffer stays empty, which the test reports.
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every 8-character piece of `key`.
fn pieces(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    chars.windows(8).map(|w| w.iter().collect()).collect()
}

#[test]
fn no_key_leaks_into_any_table_the_cli_or_logs_in_postgres_mode() {
    let Some(base) = base_url("fleet_keys::no_key_leaks_into_any_table_the_cli_or_logs_in_postgres_mode") else { return };
    let logs = captured_logs();
    let rt = rt();
    let plain = rt.block_on(fresh_db(&base, "sbt_fleet_leak"));
    // A password in the URL (the test cluster trusts loopback, so it is never
    // checked): it must never be printed either.
    let url = plain.replacen('@', ":PwCanary9x7@", 1);
    assert!(url.contains(":PwCanary9x7@"), "{url}");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("fleet.key");
    let keys = [
        (KeyRef::from_stored("account-11-a1a1a1"), "sk-FLEETCANARYopenai7f3a9c2e5b1d4f6a8c0e"),
        (KeyRef::from_stored("account-12-b2b2b2"), "sk-ant-api03-FLEETCANARYanthropic93bd01ce77"),
        (KeyRef::from_stored("account-13-c3c3c3"), "FLEETCANARYazure0123456789abcdef0123456789"),
    ];
    let mut cli_output = String::new();
    let mut run = |mut c: Command, env_key: bool| {
        if env_key {
            c.env(sealed::KEY_FILE_ENV, &key_file);
        }
        c.env("SWITCHBOARD_LOG", "trace");
        let o = output(c);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}\n{err}");
        cli_output.push_str(&out);
        cli_output.push_str(&err);
    };
    run(fleet(&url, &["init", "--key-file", key_file.to_str().unwrap()]), false);
    let server = sealed_keys::server_vault_with(open_pg(&url), Arc::new(SystemClock), file_finder(&key_file));
    let console = sealed_keys::console_vault(open_pg(&url), Arc::new(SystemClock));
    // Through the fleet vault: sealed on the console and on a server, opened on the server.
    rt.block_on(console.set(&keys[0].0, &Secret::new(keys[0].1))).unwrap();
    rt.block_on(server.set(&keys[1].0, &Secret::new(keys[1].1))).unwrap();
    rt.block_on(console.set(&keys[2].0, &Secret::new(keys[2].1))).unwrap();
    for (r, k) in &keys {
        assert_eq!(rt.block_on(server.get(r)).unwrap().expose(), *k);
        let e = rt.block_on(console.get(r)).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("FLEETCANARY"));
    }
    // Errors about keys name no key either.
    let moved = rt.block_on(async {
        raw(&plain)
            .await
            .execute(
                "UPDATE sealed_keys SET ciphertext = (SELECT ciphertext FROM sealed_keys WHERE key_ref = $1) WHERE key_ref = $2",
                &[&keys[0].0.as_str(), &keys[2].0.as_str()],
            )
            .await
            .unwrap()
    });
    assert_eq!(moved, 1);
    let e = rt.block_on(server.get(&keys[2].0)).unwrap_err();
    let error_text = format!("{e} {e:?}");
    rt.block_on(server.set(&keys[2].0, &Secret::new(keys[2].1))).unwrap();
    // Through the CLI: status, rotation (every key opened and re-sealed), status again, export to a file.
    run(fleet(&url, &["status"]), true);
    run(fleet(&url, &["rotate"]), true);
    run(fleet(&url, &["status", "--json"]), true);
    run(fleet(&url, &["export-key", "--to", dir.path().join("export.key").to_str().unwrap()]), true);
    for (r, k) in &keys {
        assert_eq!(rt.block_on(server.get(r)).unwrap().expose(), *k);
    }

    // Every column of every table, as text (bytea as hex) and bytea raw.
    let (dump, raw_bytes) = rt.block_on(async {
        let c = raw(&plain).await;
        let tables: Vec<String> = c
            .query("SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(tables.iter().any(|t| t == "sealed_keys") && tables.iter().any(|t| t == "fleet_keys"), "{tables:?}");
        let mut dump = String::new();
        for t in &tables {
            for r in c.query(&format!("SELECT t::text FROM {t} t"), &[]).await.unwrap() {
                dump.push_str(r.get::<_, &str>(0));
                dump.push('\n');
            }
        }
        let mut raw_bytes = Vec::new();
        for r in c
            .query(
                "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns WHERE table_schema = 'public' AND data_type = 'bytea'",
                &[],
            )
            .await
            .unwrap()
        {
            let (t, col): (&str, &str) = (r.get(0), r.get(1));
            for v in c.query(&format!("SELECT {col} FROM {t}"), &[]).await.unwrap() {
                raw_bytes.extend_from_slice(v.get::<_, &[u8]>(0));
            }
        }
        (dump, raw_bytes)
    });
    assert!(dump.contains("sk-…8c0e"), "the dump holds the sealed keys' fingerprints: {dump}");
    let log_text = String::from_utf8_lossy(&logs.lock()).into_owned();
    assert!(log_text.contains("key sealed to the fleet key"), "the in-process logs were captured: {log_text}");
    assert!(cli_output.contains("re-sealed 3 key(s)"), "{cli_output}");
    assert!(cli_output.contains("DEBUG") && cli_output.contains("tokio_postgres"), "the CLI ran with its logs on: {cli_output}");
    for (_, key) in &keys {
        for piece in pieces(key) {
            assert!(!dump.contains(&piece), "'{piece}' of a key is in a table");
            assert!(!dump.contains(&hex::encode(piece.as_bytes())), "'{piece}' of a key is in a bytea column (hex)");
            assert!(!raw_bytes.windows(8).any(|w| w == piece.as_bytes()), "'{piece}' of a key is in a bytea column");
            assert!(!cli_output.contains(&piece), "'{piece}' of a key is in the CLI's output");
            assert!(!log_text.contains(&piece), "'{piece}' of a key is in the logs");
            assert!(!error_text.contains(&piece), "'{piece}' of a key is in an error");
        }
    }
    assert!(!cli_output.contains("PwCanary9x7") && !log_text.contains("PwCanary9x7"), "the database password was printed");
    assert!(cli_output.contains(":***@"), "the URL is shown masked: {cli_output}");
}
