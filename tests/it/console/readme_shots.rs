//! The README's scripted screenshots, rendered by egui_kittest's wgpu renderer
//! at the window's default size (1360×860) into `docs/screenshots/`: the
//! first-run checklist on an empty database (with the routing switch), a
//! picker open with a typed filter, a scheduled migration on the Migrations
//! view, and an incident's alerts grouped into one row. Ignored in the suite;
//! `scripts/screenshots` runs them (`SHOTS=scripted`), and they check that
//! each picture shows what its README caption claims before writing it.

use super::*;

fn save(h: &mut Harness<'static, ConsoleApp>, name: &str) {
    for _ in 0..4 {
        h.step();
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let img = h.render().expect("the wgpu renderer (lavapipe) renders the window");
    img.save(dir.join(format!("{name}.png"))).unwrap();
}

#[test]
#[ignore = "writes docs/screenshots; run by scripts/screenshots"]
fn shot_first_run_checklist() {
    let f = fixture();
    let (mut h, _routing) = super::routing::routing_harness(&f, None, "switchboard.db");
    wait_until(&mut h, "the checklist", |h| shows(h, "Getting started · 0 of 5 done") && shows(h, "Route requests from this console"));
    save(&mut h, "first-run");
}

#[test]
#[ignore = "writes docs/screenshots; run by scripts/screenshots"]
fn shot_picker() {
    let f = fixture();
    let cfg = DemoConfig::new(60, 30, 7, Utc::now().date_naive());
    switchboard::engine::demo::generate(&f.store, &cfg, |_, _| {}).unwrap();
    let (mut h, _routing) = super::routing::routing_harness(&f, None, "switchboard.db");
    wait_until(&mut h, "the overview", |h| shows(h, "Requests today"));
    button(&h, "Keys").click();
    wait_until(&mut h, "the keys view", |h| h.query_by_label("Add key…").is_some());
    h.get_by_label("Add key…").click();
    h.step();
    h.get_by_label("A supplier").click();
    h.step();
    field(&h, "Owner").click();
    h.step();
    field(&h, "Owner").type_text("photo");
    wait_until(&mut h, "the picker's matches", |h| {
        h.query_all_by(|n| n.role() == egui::accesskit::Role::Button && n.label().is_some_and(|l| l.contains("photographer"))).count() >= 3
    });
    save(&mut h, "picker");
}

#[test]
#[ignore = "writes docs/screenshots; run by scripts/screenshots"]
fn shot_scheduled_migration() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-10T12:00:00Z").unwrap().with_timezone(&Utc);
    let f = fixture();
    let r = routed(&f, now);
    let (studio, _, _, mut h) = r.studio_in_migrations(&f, now, &["2026-06-12", "2026-07-04"], Some("Europe/Berlin"));
    check_plan(&mut h, studio, |h| shows(h, "Studio OpenAI (account"));
    button(&h, "Schedule for Mon 15 Jun 2026 00:00 CEST (Europe/Berlin)").click();
    // A runtime routes the database: the start is shown as scheduled, naming who starts it.
    let lock = switchboard::store::RoutingLock::acquire(f.store.sqlite_path().unwrap(), "switchboard serve", now).unwrap();
    wait_until(&mut h, "the scheduled start", |h| {
        shows(h, "Scheduled starts (1 waiting)") && shows(h, "Started on time by the runtime that routes this database: process")
    });
    save(&mut h, "scheduled-migration");
    drop(lock);
}

#[test]
#[ignore = "writes docs/screenshots; run by scripts/screenshots"]
fn shot_grouped_alerts() {
    let f = fixture();
    let willow = add_supplier(&f.store, "Willow Promise Catering", Tier::Professional, VendorType::Caterer, &[]);
    let quota = add_supplier(&f.store, "Sugar Bloom Cakes", Tier::Starter, VendorType::Other, &[]);
    let platform = unreachable_account(&f.store, AccountOwner::Platform, "WedSync OpenAI");
    let own = unreachable_account(&f.store, AccountOwner::Supplier(willow), "Willow OpenAI");
    super::alerts_and_requests::raise_an_incident(&f.store, willow, own, platform, quota);
    let mut h = harness(&f, AppOptions { db_label: "switchboard.db".into(), ..start(View::Alerts) });
    wait_until(&mut h, "the alert groups", |h| shows(h, "4 open alerts in 1 open incident"));
    h.get_by_label("Show 3 alerts").click();
    wait_until(&mut h, "the incident's alerts", |h| shows(h, "requests fall back to platform AI, WedSync OpenAI"));
    save(&mut h, "alerts-grouped");
}
