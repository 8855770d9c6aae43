//! Running a desk on a real SQLite file: scheduled migration starts (on the
//! injected clock; the 48 h wedding guard checked again at the start time),
//! the single-runtime routing lock (two runtimes in one process, two `serve`
//! processes, a killed holder), and the CSV import of 5,000 suppliers with
//! progress and a report of rejected rows (engine and CLI).

use crate::support::{day, june, sb};
use chrono::Duration;
use std::sync::Arc;
use switchboard::domain::migration::{MigrationState, RouteTarget};
use switchboard::domain::{AccountOwner, AiMode, Clock, ManualClock, NewSupplier, PricingTable, SupplierId, Tier, VendorType};
use switchboard::engine::ledger::Ledger;
use switchboard::engine::migration_schedule as schedule;
use switchboard::engine::migrations::MigrationService;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::engine::runtime::{Runtime, RuntimeOptions};
use switchboard::store::{RoutingLock, RoutingLockError, ScheduleState, Store, SupplierPatch};
use switchboard::vault::Vault;

fn client_supplier(store: &Store, name: &str, tz: &str, weddings: &[&str]) -> SupplierId {
    let mut n = NewSupplier::new(name, VendorType::Caterer, Tier::Professional, AiMode::Client);
    n.time_zone = tz.parse().unwrap();
    n.weddings = weddings.iter().map(|d| day(d)).collect();
    let id = store.insert_supplier(&n, june()).unwrap().id;
    crate::support::sim_account(
        store,
        AccountOwner::Supplier(id),
        switchboard::domain::ProviderKind::OpenAi,
        "Own OpenAI",
        "gpt-4o-mini",
        "http://127.0.0.1:9",
    );
    id
}

/// A migration service that routes (it starts due schedules on its tick) on a manual clock.
fn live_service(store: &Arc<Store>, clock: &ManualClock) -> Arc<MigrationService> {
    let router = Router::new(
        store.clone(),
        crate::support::fast_providers(1),
        Arc::new(PricingTable::builtin()),
        Arc::new(clock.clone()),
        Ledger::start(store).unwrap(),
        RouterConfig::default(),
        None,
    )
    .unwrap();
    MigrationService::new(store.clone(), router, Arc::new(clock.clone())).unwrap()
}

#[test]
fn a_scheduled_migration_starts_on_time_and_the_wedding_guard_is_checked_again_then() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.db")).unwrap());
    let clock = ManualClock::new(june()); // 2026-06-10 12:00 UTC
    let berlin = client_supplier(&store, "Willow Promise Catering", "Europe/Berlin", &["2026-06-20"]);
    let quiet = client_supplier(&store, "Capture Moments", "America/Los_Angeles", &[]);
    let svc = live_service(&store, &clock);

    // A time inside the guard of the 20th (from the 18th, 00:00 Berlin) is refused, naming the way out in local time.
    let inside = switchboard::domain::schedule::parse_start_time("2026-06-19T10:00:00+02:00").unwrap();
    let e = schedule::schedule(&svc, berlin, RouteTarget::Platform, None, inside).unwrap_err().to_string();
    assert!(e.contains("within 48 h") && e.contains("Tue 23 Jun 2026 00:00 CEST (Europe/Berlin)"), "{e}");
    // So is a time that has passed.
    assert!(schedule::schedule(&svc, berlin, RouteTarget::Platform, None, june() - Duration::minutes(1)).is_err());

    let a = schedule::schedule(&svc, berlin, RouteTarget::Platform, None, june() + Duration::hours(2)).unwrap();
    let b = schedule::schedule(&svc, quiet, RouteTarget::Platform, None, june() + Duration::minutes(30)).unwrap();
    assert_eq!(a.state, ScheduleState::Waiting);
    let e = schedule::schedule(&svc, quiet, RouteTarget::Platform, None, june() + Duration::hours(5)).unwrap_err().to_string();
    assert!(e.contains("already has a migration scheduled"), "{e}");
    // Nobody routes this database: the timeline says what it waits for.
    let why = schedule::waiting_reason(&b, clock.now(), schedule::router_of(&store).as_ref(), false).unwrap();
    assert!(why.contains("no runtime routes this database"), "{why}");

    // Not due yet: nothing starts.
    svc.tick().unwrap();
    assert!(store.list_migrations(None).unwrap().is_empty());
    clock.advance(Duration::minutes(29));
    svc.tick().unwrap();
    assert!(store.list_migrations(None).unwrap().is_empty());

    // Due: the quiet supplier's starts, with its first phase's split.
    clock.advance(Duration::minutes(1));
    svc.tick().unwrap();
    let b = store.schedule(b.id).unwrap();
    assert_eq!(b.state, ScheduleState::Started);
    let m = store.migration(b.migration_id.unwrap()).unwrap();
    assert_eq!((m.supplier, m.to, m.state), (quiet, RouteTarget::Platform, MigrationState::Running));
    assert_eq!(m.created_at, june() + Duration::minutes(30));

    // Meanwhile a wedding was booked for tomorrow (Berlin): at its start time the other one is refused.
    store.update_supplier(berlin, &SupplierPatch { add_weddings: vec![day("2026-06-11")], ..Default::default() }, clock.now()).unwrap();
    clock.advance(Duration::minutes(90));
    svc.tick().unwrap();
    let a = store.schedule(a.id).unwrap();
    assert_eq!(a.state, ScheduleState::Refused);
    assert!(a.reason.as_deref().unwrap_or("").contains("wedding within 48 h"), "{:?}", a.reason);
    assert!(store.list_migrations(Some(berlin)).unwrap().is_empty(), "a refused schedule starts nothing");
    assert!(store.open_recommendations().unwrap().iter().any(|r| r.supplier_id == berlin && r.kind == "scheduled_migration_refused"));
    let audit = store.audit_entries(&switchboard::store::AuditFilter::default()).unwrap();
    assert!(audit.iter().any(|e| e.action == "migration.scheduled_start" && e.result == "refused"));
    assert!(audit.iter().any(|e| e.action == "migration.scheduled_start" && e.result == "ok"));

    // A process that does not route (the CLI's, a console's on a file) never starts one.
    let c = client_supplier(&store, "Petal & Stem", "UTC", &[]);
    let offline = MigrationService::offline(store.clone(), Arc::new(clock.clone())).unwrap();
    let s = schedule::schedule(&offline, c, RouteTarget::Platform, None, clock.now() + Duration::minutes(1)).unwrap();
    clock.advance(Duration::minutes(2));
    offline.tick().unwrap();
    assert_eq!(store.schedule(s.id).unwrap().state, ScheduleState::Waiting);
    // Cancelled, it never starts.
    schedule::cancel(&offline, s.id).unwrap();
    svc.tick().unwrap();
    assert_eq!(store.schedule(s.id).unwrap().state, ScheduleState::Cancelled);
    assert!(store.list_migrations(Some(c)).unwrap().is_empty());
}

#[test]
fn the_cli_schedules_in_the_suppliers_time_zone_and_says_nothing_will_start_it_without_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let store = Store::open(&db).unwrap();
    let id = client_supplier(&store, "Willow Promise Catering", "Europe/Berlin", &[]);
    drop(store);
    let at = (chrono::Utc::now() + Duration::days(3)).with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let out = sb(&db).args(["migrate", "start", "--supplier", &id.0.to_string(), "--to", "platform", "--at", &at]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("(Europe/Berlin)") && text.contains("waiting") && text.contains("No runtime routes this database"), "{text}");
    let out = sb(&db)
        .args(["migrate", "start", "--supplier", &id.0.to_string(), "--to", "platform", "--at", "2026-06-02 09:00"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("offset"));
    let out = sb(&db).args(["migrate", "scheduled", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["state"], "waiting");
    let out = sb(&db).args(["migrate", "unschedule", "1"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("cancelled"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_second_runtime_on_the_same_database_is_refused_and_named_until_the_first_stops() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.db")).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(june()));
    let opts = |p: &str| RuntimeOptions { program: p.into(), ..RuntimeOptions::default() };
    let first = rt.block_on(Runtime::start(store.clone(), Vault::demo_in_memory(), clock.clone(), opts("the console"))).unwrap();
    let err = rt.block_on(Runtime::start(store.clone(), Vault::demo_in_memory(), clock.clone(), opts("switchboard serve"))).err().unwrap();
    let held = err.downcast_ref::<RoutingLockError>().expect("a routing lock error");
    assert!(matches!(held, RoutingLockError::Held { holder: Some(h), .. } if h.pid == std::process::id() && h.program == "the console"));
    let msg = err.to_string();
    assert!(msg.contains(&format!("process {} on host", std::process::id())) && msg.contains("Only one runtime"), "{msg}");
    assert_eq!(RoutingLock::holder(store.sqlite_path().unwrap()).unwrap().map(|h| h.program), Some("the console".to_string()));
    rt.block_on(first.shutdown());
    assert_eq!(RoutingLock::holder(store.sqlite_path().unwrap()).unwrap(), None);
    let second = rt.block_on(Runtime::start(store.clone(), Vault::demo_in_memory(), clock.clone(), opts("switchboard serve"))).unwrap();
    assert!(second.routing_lock().unwrap().left_behind().is_none(), "a clean stop leaves nothing behind");
    rt.block_on(second.shutdown());
}

/// Waits (bounded) until `serve` holds the routing lock of `db`.
fn wait_for_holder(db: &std::path::Path, child: &mut std::process::Child) -> switchboard::store::LockHolder {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(h) = RoutingLock::holder(db).unwrap().filter(|h| h.pid != 0) {
            return h;
        }
        assert!(child.try_wait().unwrap().is_none(), "serve exited before routing");
        assert!(std::time::Instant::now() < deadline, "serve did not take the routing lock");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn two_serve_processes_one_refused_with_the_others_pid_and_host_and_a_killed_holder_is_detected() {
    if !crate::support::keyring_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    drop(Store::open(&db).unwrap());
    let serve = |port: &str| {
        sb(&db)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = serve("0");
    let holder = wait_for_holder(&db, &mut first);
    assert_eq!(holder.pid, first.id());
    assert_eq!(holder.program, "switchboard serve");
    let second = sb(&db).args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&format!("process {} on host {}", first.id(), holder.host)), "{err}");
    // kill -9: the OS drops the lock with the process; the next runtime routes and says what it found.
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(RoutingLock::holder(&db).unwrap(), None, "a killed holder's lock is gone");
    let mut third = serve("0");
    let h = wait_for_holder(&db, &mut third);
    assert_eq!(h.pid, third.id());
    // It says what it found, then listens (read up to that line: its signal handler is in place by then).
    let mut text = String::new();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(third.stdout.take().unwrap()));
    for line in lines.by_ref() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.contains("gateway listening") {
            break;
        }
    }
    assert!(text.contains("ended without stopping (killed or crashed)"), "{text}");
    // SIGTERM: a clean stop empties the lock file.
    let _ = std::process::Command::new("kill").arg(third.id().to_string()).status();
    // Read to the end rather than closing the pipe: what it prints while it
    // stops must not meet a closed stdout (a broken pipe would fail the exit).
    for line in lines {
        text.push_str(&line.unwrap_or_default());
        text.push('\n');
    }
    assert!(third.wait().unwrap().success(), "{text}");
    assert_eq!(std::fs::read_to_string(switchboard::store::routing_lock::lock_path(&db)).unwrap(), "");
}

fn import_file(dir: &std::path::Path, rows: usize) -> (std::path::PathBuf, Vec<u64>) {
    let mut text = String::from("name,vendor_type,tier,mode,time_zone,weddings\n");
    let mut bad = Vec::new();
    for i in 0..rows {
        let line = (i + 2) as u64;
        let row = match i {
            17 => "Broken Tier Studio,photographer,gold,platform,UTC,".to_string(),
            400 => "Bad Date Venue,venue,scale,client,Europe/Paris,2026-02-30".to_string(),
            2500 => "Supplier 00001,florist,starter,,,".to_string(), // repeats row 2's name
            4999 => ",planner,starter,platform,UTC,".to_string(),
            _ => format!(
                "Supplier {:05},{},{},{},{},2026-{:02}-{:02};2026-09-12",
                i + 1,
                ["photographer", "venue", "planner", "florist", "caterer", "other"][i % 6],
                ["starter", "professional", "scale", "enterprise"][i % 4],
                if i % 3 == 0 { "client" } else { "platform" },
                ["Europe/London", "America/New_York", "UTC"][i % 3],
                5 + i % 5,
                1 + i % 28
            ),
        };
        if matches!(i, 17 | 400 | 2500 | 4999) {
            bad.push(line);
        }
        text.push_str(&row);
        text.push('\n');
    }
    let path = dir.join("suppliers.csv");
    std::fs::write(&path, text).unwrap();
    (path, bad)
}

#[test]
fn importing_5000_suppliers_reports_progress_and_every_rejected_row_by_line() {
    use switchboard::engine::supplier_import as imp;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let (path, bad) = import_file(dir.path(), 5000);
    let preview = imp::preview_file(&path, &store, chrono_tz::Tz::UTC).unwrap();
    assert_eq!((preview.total, preview.valid.len(), preview.rejected.len()), (5000, 4996, 4));
    assert_eq!(store.count_suppliers().unwrap(), 0, "a preview writes nothing");
    let mut seen = Vec::new();
    let report =
        imp::import(&store, preview, june(), "tester", &switchboard::engine::analytics::CancelHandle::new(), |p| seen.push(p)).unwrap();
    assert_eq!(report.imported, 4996);
    assert_eq!(report.rejected.iter().map(|r| r.line).collect::<Vec<_>>(), bad);
    assert!(report.rejected[0].reason.contains("tier") && report.rejected[1].reason.contains("2026-02-30"), "{:?}", report.rejected);
    assert!(report.rejected[2].reason.contains("already exists") && report.rejected[3].reason.contains("name: empty"));
    assert!(seen.len() >= 49 && seen.windows(2).all(|w| w[0].done <= w[1].done), "progress every 100 rows");
    assert_eq!(seen.last().map(|p| (p.done, p.total)), Some((4996, 4996)));
    assert_eq!(store.count_suppliers().unwrap(), 4996);
    let s =
        store.list_suppliers(&switchboard::store::SupplierFilter { search: Some("Supplier 00004".into()), ..Default::default() }).unwrap();
    assert_eq!(s[0].time_zone.name(), "Europe/London");
    assert_eq!(s[0].weddings, vec![day("2026-08-04"), day("2026-09-12")]);
    assert_eq!(s[0].ai_mode, AiMode::Client);
    // Importing the same file again rejects every row as a duplicate and writes nothing.
    let again = imp::preview_file(&path, &store, chrono_tz::Tz::UTC).unwrap();
    assert_eq!(again.valid.len(), 0);
    // A cancelled import stops between rows.
    let (path2, _) = import_file(&dir.path().join("x").tap_mkdir(), 300);
    let store2 = Store::open(dir.path().join("t.db")).unwrap();
    let cancel = switchboard::engine::analytics::CancelHandle::new();
    let c2 = cancel.clone();
    let r = imp::import(&store2, imp::preview_file(&path2, &store2, chrono_tz::Tz::UTC).unwrap(), june(), "t", &cancel, move |p| {
        if p.done >= 100 {
            c2.cancel()
        }
    })
    .unwrap();
    assert!(r.cancelled && r.imported == 100, "{r:?}");
}

trait TapMkdir {
    fn tap_mkdir(self) -> std::path::PathBuf;
}
impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> std::path::PathBuf {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn the_cli_imports_a_file_writes_the_rejected_rows_and_refuses_unknown_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let (path, bad) = import_file(dir.path(), 5000);
    let rejected = dir.path().join("rejected.csv");
    let out = sb(&db).args(["supplier", "import"]).arg(&path).arg("--rejected").arg(&rejected).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["imported"], 4996);
    assert_eq!(report["rejected"].as_array().unwrap().len(), 4);
    let csv = std::fs::read_to_string(&rejected).unwrap();
    assert!(csv.starts_with("line,name,reason\n"), "{csv}");
    assert!(csv.contains(&format!("{},Broken Tier Studio,", bad[0])), "{csv}");
    assert_eq!(Store::open(&db).unwrap().count_suppliers().unwrap(), 4996);

    let template = dir.path().join("template.csv");
    assert!(sb(&db).args(["supplier", "import", "--template"]).arg(&template).output().unwrap().status.success());
    let out = sb(&db).args(["supplier", "import", "--dry-run"]).arg(&template).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 can be imported"), "{}", String::from_utf8_lossy(&out.stdout));

    let unknown = dir.path().join("unknown.csv");
    std::fs::write(&unknown, "name,vendor_type,tier,email\nA,venue,starter,a@example.com\n").unwrap();
    let out = sb(&db).args(["supplier", "import"]).arg(&unknown).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown column 'email'") && err.contains("name, vendor_type, tier, mode, time_zone, weddings"), "{err}");
}
