//! The console on the fleet's PostgreSQL database (the private cluster
//! scripts/test starts): the Instances view lists the registered `serve`
//! instances with their state and shows who leads each duty, refreshed while
//! it is on screen; a key added from the console is sealed to the fleet's
//! public key, which the console can use but not open. On a SQLite file the
//! Instances view says there is no fleet.

use super::*;
use crate::support::pg::{base_url, fresh_db};
use switchboard::engine::fleet::{Duty, FleetStore, NewInstance};
use switchboard::engine::keys::KeyService;
use switchboard::engine::sealed_keys;
use switchboard::store::pg::block_on_pg;

/// A console fixture on a fresh PostgreSQL database; None outside CI without the test cluster.
fn pg_fixture(test: &str, name: &str) -> Option<(Fixture, String)> {
    let base = base_url(test)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let url = rt.block_on(fresh_db(&base, name));
    let store = Arc::new(Store::open_postgres(&url).unwrap());
    Some((Fixture { _dir: tempfile::tempdir().unwrap(), store, _rt: rt }, url))
}

fn instance(host: &str) -> NewInstance {
    NewInstance { host: host.into(), pid: 4242, version: "0.1.0".into() }
}

#[test]
fn the_instances_view_lists_the_fleet_and_who_leads_each_duty() {
    let Some((f, _url)) = pg_fixture("console::fleet::the_instances_view_lists_the_fleet_and_who_leads_each_duty", "sbt_console_fleet")
    else {
        return;
    };
    let fleet = FleetStore::new(f.store.postgres().unwrap().clone());
    let ttl = Duration::from_secs(30);
    let (a, b, c) = block_on_pg({
        let fleet = fleet.clone();
        async move {
            let a = fleet.register(&instance("gw-north"), None).await.unwrap();
            let b = fleet.register(&instance("gw-south"), None).await.unwrap();
            let c = fleet.register(&instance("gw-retired"), None).await.unwrap();
            fleet.stop(c, None).await.unwrap();
            fleet.try_acquire(Duty::Probes, a, None, ttl).await.unwrap();
            fleet.try_acquire(Duty::Alerts, a, None, ttl).await.unwrap();
            fleet.heartbeat(a, None, 12.5, &[Duty::Probes, Duty::Alerts]).await.unwrap();
            fleet.heartbeat(b, None, 7.5, &[]).await.unwrap();
            (a, b, c)
        }
    });
    let mut h = harness(&f, start(View::Instances));
    wait_until(&mut h, "the instances", |h| shows(h, "gw-north") && shows(h, "gw-south"));
    assert!(shows(&h, "gw-retired") && shows(&h, "stopped"), "a cleanly stopped instance is listed as stopped");
    assert!(shows(&h, &format!("#{a}")) && shows(&h, &format!("#{b}")) && shows(&h, &format!("#{c}")));
    assert!(shows(&h, "20.0"), "the live instances' requests per second together");
    assert!(shows(&h, "probes, alerts"), "what gw-north leads, on its row");
    assert!(shows(&h, "gw-north · epoch 1"), "the probes leader's card names its host and epoch");
    assert!(shows(&h, "no instance has led it yet"), "nobody has led migrations");

    // The view refreshes while shown: gw-south takes the migrations duty.
    block_on_pg({
        let fleet = fleet.clone();
        async move {
            fleet.try_acquire(Duty::Migrations, b, None, ttl).await.unwrap();
        }
    });
    wait_until(&mut h, "the new migrations leader", |h| shows(h, "gw-south · epoch 1"));
    assert!(!shows(&h, "no instance has led it yet"));

    // A gone instance's lease still holds quota: written off from here, with a reason.
    let supplier = add_supplier(&f.store, "Lakeside Lodge", Tier::Scale, VendorType::Venue, &[]);
    let now = Utc::now();
    let month = switchboard::engine::quota_lease::quota_month(now);
    let key = switchboard::store::pg::leases::LeaseKey { supplier, month, instance: c };
    let pg = f.store.postgres().unwrap().clone();
    block_on_pg(async move {
        switchboard::store::pg::leases::lease(&pg, key, 5_000, 500_000, now, now - chrono::Duration::seconds(1)).await.unwrap();
    });
    wait_until(&mut h, "the stranded lease", |h| shows(h, "Quota held by gone instances (1)"));
    assert!(shows(&h, "5,000 tokens"));
    h.get_by_label("Write off…").click();
    h.step();
    h.step();
    type_into(&mut h, "Reason", "host gw-retired decommissioned");
    button(&h, "Write off").click();
    wait_until(&mut h, "the write-off", |h| shows(h, "Wrote off 5,000 tokens of instance"));
    wait_until(&mut h, "the list without it", |h| !shows(h, "Quota held by gone instances"));
    let audit = f.store.audit_entries(&AuditFilter::default()).unwrap();
    let row = audit.iter().find(|a| a.action == "quota.lease_write_off").expect("the write-off is audited");
    assert!(row.detail.contains("host gw-retired decommissioned") && row.detail.contains("5000 tokens"), "{}", row.detail);
}

#[test]
fn on_a_sqlite_file_the_instances_view_says_there_is_no_fleet() {
    let f = fixture();
    let mut h = harness(&f, start(View::Instances));
    wait_until(&mut h, "the explanation", |h| shows(h, "One machine: this database is a SQLite file"));
    assert!(shows(&h, "docs/deploy.md"));
}

/// A console fixture on the fleet's database and its key service as
/// `switchboard --database URL` builds it: the fleet's public key only
/// (waiting `fleet_wait` for the fleet to validate a key).
fn console_on_fleet(rt: tokio::runtime::Runtime, url: &str, fleet_wait: Duration) -> (Fixture, Arc<KeyService>) {
    let store = Arc::new(Store::open_postgres(url).unwrap());
    let f = Fixture { _dir: tempfile::tempdir().unwrap(), store, _rt: rt };
    let pg = f.store.postgres().unwrap().clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys = f._rt.block_on(async {
        let providers = switchboard::providers::Providers::new(switchboard::providers::ProvidersConfig::default()).unwrap();
        Arc::new(
            KeyService::new(f.store.clone(), sealed_keys::console_vault(pg, clock.clone()), Arc::new(providers), clock)
                .with_fleet_wait(fleet_wait),
        )
    });
    (f, keys)
}

#[test]
fn a_key_added_from_a_console_on_postgresql_is_sealed_and_validated_by_the_fleet() {
    use crate::support::fleet::Fleet;
    use switchboard::sim::DEMO_OPENAI_KEY;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // The fleet (key pair, a supplier, the simulator) set up through the CLI, one `serve` instance.
    let Some(fleet) = rt.block_on(Fleet::setup("sbt_console_sealed")) else { return };
    let (mut instance, _gw) = fleet.serve("host-a", 30);
    let (f, keys) = console_on_fleet(rt, &fleet.url, Duration::from_secs(3));
    assert!(keys.validates_through_fleet());
    let mut h = live_harness(&f, LiveServices::keys_only(keys.clone()), View::Keys);
    wait_until(&mut h, "the keys view", |h| shows(h, "Platform accounts (0)"));
    h.get_by_label("Add key…").click();
    h.step();
    type_into(&mut h, "Label", "Fleet OpenAI");
    type_into(&mut h, "Base URL", &format!("http://{}", fleet.sim));
    type_into(&mut h, "API key", DEMO_OPENAI_KEY);
    h.get_by_label("Save key").click();
    // Sealed here, validated by the instance (which alone can open it).
    wait_until(&mut h, "the new account", |h| shows(h, "Added 'Fleet OpenAI'"));
    assert!(shows(&h, "validated"), "the fleet's verdict is shown");
    wait_until(&mut h, "the account row", |h| shows(h, "Platform accounts (1)"));
    assert!(shows(&h, "sk-…0001"), "the masked fingerprint is shown");
    let audit: Vec<(String, String, String)> =
        f.store.audit_entries(&AuditFilter::default()).unwrap().into_iter().map(|a| (a.action, a.result, a.detail)).collect();
    assert!(audit.iter().any(|(a, r, _)| a == "key.validate.request" && r == "ok"), "{audit:?}");
    assert!(audit.iter().any(|(a, r, d)| a == "key.validate" && r == "valid" && d.contains("requested by")), "{audit:?}");

    // Validated again from the row, by the fleet.
    h.get_by_label("Validate").click();
    h.step();
    wait_until(&mut h, "the validation", |h| shows(h, "the key is valid"));

    // No key material in any table.
    let raw = f._rt.block_on(crate::support::pg::raw(&fleet.url));
    let rows: Vec<String> = f._rt.block_on(async {
        let mut all = Vec::new();
        for t in raw.query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'", &[]).await.unwrap() {
            let t: String = t.get(0);
            for r in raw.query(&format!("SELECT t::text FROM {t} t"), &[]).await.unwrap() {
                all.push(r.get::<_, String>(0));
            }
        }
        all
    });
    assert!(rows.iter().all(|row| !row.contains("platform-000000000001")), "the key is in no table");

    // With no instance running, the console says so (and the request stays filed).
    let _ = instance.0.kill();
    let _ = instance.0.wait();
    let id = f.store.list_accounts(None).unwrap()[0].id;
    let e = f._rt.block_on(keys.validate(id)).unwrap_err();
    assert!(e.to_string().contains("no instance of the fleet validated"), "{e}");
    let pending: i64 = f._rt.block_on(raw.query_one("SELECT count(*) FROM key_validation_requests", &[])).unwrap().get(0);
    assert_eq!(pending, 1);
}

/// Whether every view's first load has ended (no "Loading…" line left).
fn settled(h: &Harness<'static, ConsoleApp>) -> bool {
    const BUSY: [&str; 5] = ["Loading", "Reading the fleet", "Projecting", "Searching the request log", "Computing"];
    h.query_all_by(|n| n.label().or_else(|| n.value()).is_some_and(|l| BUSY.iter().any(|b| l.starts_with(b)))).next().is_none()
}

/// Error text any view shows for a read that failed.
fn errors(h: &Harness<'static, ConsoleApp>) -> Vec<String> {
    let found = std::cell::RefCell::new(Vec::new());
    let _ = h
        .query_all_by(|n| {
            if let Some(l) = n.label().or_else(|| n.value())
                && (l.contains("not available on PostgreSQL") || l.contains("database error") || l.contains("PostgreSQL error"))
            {
                found.borrow_mut().push(l.to_string());
            }
            false
        })
        .count();
    found.into_inner()
}

#[test]
fn every_view_works_on_an_installation_moved_to_postgresql() {
    let Some((f, _url)) = pg_fixture("console::fleet::every_view_works_on_an_installation_moved_to_postgresql", "sbt_console_views") else {
        return;
    };
    // A month of demo history on SQLite, moved with `store copy`.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path().join("demo.db")).unwrap();
    let cfg = DemoConfig::new(12, 30, 5, Utc::now().date_naive());
    switchboard::engine::demo::generate(&sqlite, &cfg, |_, _| {}).unwrap();
    let pg = f.store.postgres().unwrap().clone();
    let report = f._rt.block_on(switchboard::store::pg::copy::sqlite_to_pg(&sqlite, &pg)).unwrap();
    assert_eq!(report.source_totals, report.target_totals);
    let name = f.store.list_suppliers(&SupplierFilter::default()).unwrap()[0].name.clone();
    let mut h = harness(&f, start(View::Overview));
    for view in View::ALL {
        button(&h, view.label()).click();
        h.step();
        wait_until(&mut h, &format!("the {} view to load", view.label()), settled);
        // Late answers (refreshes, second queries) have a moment to arrive.
        for _ in 0..20 {
            h.step();
            std::thread::sleep(Duration::from_millis(15));
        }
        assert_eq!(h.state().view(), *view);
        let e = errors(&h);
        assert!(e.is_empty(), "{}: {e:?}", view.label());
    }
    // The data is there, not only the absence of errors.
    button(&h, View::Suppliers.label()).click();
    wait_until(&mut h, "a copied supplier", |h| shows(h, &name));
}

#[test]
fn a_parallel_test_started_from_a_console_on_postgresql_is_run_by_the_fleet() {
    use crate::support::fleet::Fleet;
    use switchboard::sim::{DEMO_CLIENT_OPENAI_KEY, DEMO_OPENAI_KEY};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(fleet) = rt.block_on(Fleet::setup("sbt_console_parallel")) else { return };
    let raw = rt.block_on(crate::support::pg::raw(&fleet.url));
    rt.block_on(fleet.add_key(&raw, "platform", "WedSync OpenAI", DEMO_OPENAI_KEY));
    let own = rt.block_on(fleet.add_key(&raw, "1", "Florals OpenAI", DEMO_CLIENT_OPENAI_KEY));
    let (mut instance, _gw) = fleet.serve("host-a", 30);
    let (f, keys) = console_on_fleet(rt, &fleet.url, switchboard::engine::keys::FLEET_VALIDATION_WAIT);
    let mut h = live_harness(&f, LiveServices::keys_only(keys), View::Migrations);
    wait_until(&mut h, "the empty list", |h| shows(h, "No migrations yet"));
    check_plan(&mut h, SupplierId(1), |h| shows(h, "Florals OpenAI (account"));
    button(&h, "Run a parallel test").click();
    // Filed, taken by the instance, run with the keys only it can open, and shown here.
    wait_until(&mut h, "the report", |h| shows(h, "Parallel test 1 of Fleet Florals: Florals OpenAI answered 8 of 8 prompts"));
    wait_until(&mut h, "the report side by side", |h| shows(h, "Test 1 · Fleet Florals"));
    let row = f._rt.block_on(raw.query_one("SELECT state, instance_id, account_id FROM parallel_test_requests", &[])).unwrap();
    assert_eq!(row.get::<_, String>(0), "done");
    assert!(row.get::<_, Option<i64>>(1).is_some(), "an instance took it");
    assert_eq!(row.get::<_, i64>(2), own);
    let actions: Vec<String> = f.store.audit_entries(&AuditFilter::default()).unwrap().into_iter().map(|a| a.action).collect();
    assert!(actions.iter().any(|a| a == "parallel_test.request") && actions.iter().any(|a| a == "parallel_test.run"), "{actions:?}");
    let _ = instance.0.kill();
    let _ = instance.0.wait();
}

/// A migration started from a console on the fleet's database (with a short
/// plan typed in the form) is only written there; the fleet's migrations
/// leader drives it on the traffic it serves, and the console, which never
/// routes, watches it through to completion.
#[test]
fn a_migration_started_from_a_console_on_postgresql_is_driven_to_completion_by_the_fleet() {
    use crate::support::fleet::{Fleet, chat};
    use std::sync::atomic::{AtomicBool, Ordering};
    use switchboard::domain::AccountId;
    use switchboard::domain::migration::{MigrationState, RouteTarget};
    use switchboard::sim::{DEMO_CLIENT_OPENAI_KEY, DEMO_OPENAI_KEY};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(fleet) = rt.block_on(Fleet::setup("sbt_console_migrate")) else { return };
    let raw = rt.block_on(crate::support::pg::raw(&fleet.url));
    rt.block_on(fleet.add_key(&raw, "platform", "WedSync OpenAI", DEMO_OPENAI_KEY));
    let own = rt.block_on(fleet.add_key(&raw, "1", "Florals OpenAI", DEMO_CLIENT_OPENAI_KEY));
    let (mut instance, gw) = fleet.serve("host-a", 30);
    let (token, url) = (fleet.token.clone(), fleet.url.clone());
    let (f, keys) = console_on_fleet(rt, &url, switchboard::engine::keys::FLEET_VALIDATION_WAIT);
    let mut h = live_harness(&f, LiveServices::keys_only(keys), View::Migrations);
    wait_until(&mut h, "the empty list", |h| shows(h, "No migrations yet"));
    assert!(shows(&h, "This console does not route"));
    // A plan that does not parse is refused in the form, before anything is sent.
    check_plan_with(&mut h, SupplierId(1), "50:1m", |h| shows(h, "Phases: the last phase must send 100 % of traffic to the new route"));
    // One phase of two seconds at 100 %: checked, shown, started as checked.
    button(&h, "Cancel").click();
    h.step();
    check_plan_with(&mut h, SupplierId(1), "100:2s", |h| shows(h, "platform AI to Florals OpenAI (account 2): 100 % for 2 s"));
    button(&h, "Start migration").click();
    wait_until(&mut h, "the started migration", |h| shows(h, "a running `switchboard serve` drives its phases"));
    // Traffic through the instance: the phase is judged on it (at least 20 requests on the new route).
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, gw, token) = (stop.clone(), gw.clone(), token.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let http = reqwest::Client::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let _ = chat(&http, &gw, &token, &format!("m-{i}")).await;
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
    };
    wait_until(&mut h, "the completed migration", |h| shows(h, "completed · "));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let m = f.store.migration(1).unwrap();
    assert_eq!((m.state, m.to), (MigrationState::Completed, RouteTarget::Account(AccountId(own))));
    assert_eq!(m.plan(), vec![switchboard::domain::migration::PhasePlan { percent: 100, min_secs: 2 }], "the plan as typed");
    let actions: Vec<String> = f.store.audit_entries(&AuditFilter::default()).unwrap().into_iter().map(|a| a.action).collect();
    for a in ["migration.start", "migration.complete"] {
        assert_eq!(actions.iter().filter(|x| *x == a).count(), 1, "{a} once: {actions:?}");
    }
    let _ = instance.0.kill();
    let _ = instance.0.wait();
}

/// The README's picture of the Instances view (a fleet of two live instances,
/// one stopped, one gone whose lease still holds quota). Ignored in the suite;
/// it needs the PostgreSQL cluster `scripts/test` starts:
/// `scripts/test -- --test it -- --ignored console::fleet::shot_instances`.
#[test]
#[ignore = "writes docs/screenshots/instances.png; needs the test cluster"]
fn shot_instances() {
    let Some((f, _url)) = pg_fixture("console::fleet::shot_instances", "sbt_console_shot") else { return };
    let fleet = FleetStore::new(f.store.postgres().unwrap().clone());
    let ttl = Duration::from_secs(30);
    let supplier = add_supplier(&f.store, "Lakeside Lodge", Tier::Scale, VendorType::Venue, &[]);
    let pg = f.store.postgres().unwrap().clone();
    block_on_pg(async move {
        let info = |host: &str, pid: u32| NewInstance { host: host.into(), pid, version: "0.1.0".into() };
        let gone = fleet.register(&info("gw-3.wedsync.internal", 2207), Some(Utc::now() - chrono::Duration::hours(2))).await.unwrap();
        let old = fleet.register(&info("gw-old.wedsync.internal", 1893), None).await.unwrap();
        fleet.stop(old, None).await.unwrap();
        let a = fleet.register(&info("gw-1.wedsync.internal", 4121), None).await.unwrap();
        let b = fleet.register(&info("gw-2.wedsync.internal", 4187), None).await.unwrap();
        fleet.try_acquire(Duty::Probes, a, None, ttl).await.unwrap();
        fleet.try_acquire(Duty::Alerts, a, None, ttl).await.unwrap();
        fleet.try_acquire(Duty::Migrations, b, None, ttl).await.unwrap();
        fleet.heartbeat(a, None, 41.5, &[Duty::Probes, Duty::Alerts]).await.unwrap();
        fleet.heartbeat(b, None, 38.0, &[Duty::Migrations]).await.unwrap();
        let now = Utc::now();
        let month = switchboard::engine::quota_lease::quota_month(now);
        let key = switchboard::store::pg::leases::LeaseKey { supplier, month, instance: gone };
        switchboard::store::pg::leases::lease(
            &pg,
            key,
            12_000,
            500_000,
            now - chrono::Duration::hours(2),
            now - chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    });
    let mut h = harness(&f, start(View::Instances));
    wait_until(&mut h, "the fleet", |h| {
        shows(h, "gw-1.wedsync.internal") && shows(h, "gw-2.wedsync.internal") && shows(h, "Quota held by gone instances (1)")
    });
    for _ in 0..4 {
        h.step();
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    h.render().expect("the wgpu renderer renders the window").save(dir.join("instances.png")).unwrap();
}
