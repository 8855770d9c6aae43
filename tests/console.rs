//! The desktop console, driven headless through egui_kittest against a real
//! SQLite store and the real console service on a tokio runtime: add and edit
//! suppliers through the form, search and filter the table, filter the audit
//! log, switch views, and watch demo generation finish — asserting both on what
//! the UI shows and on the database afterwards.

use chrono::{NaiveDate, Utc};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::domain::{AiMode, NewSupplier, QuotaPolicy, SupplierId, SystemClock, Tier, VendorType};
use switchboard::engine::console;
use switchboard::engine::demo::DemoConfig;
use switchboard::store::{AuditFilter, Store, SupplierFilter};
use switchboard::ui::{AppOptions, ConsoleApp, View};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    _rt: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("console.db")).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    Fixture { _dir: dir, store, _rt: rt }
}

fn harness(f: &Fixture, opts: AppOptions) -> Harness<'static, ConsoleApp> {
    let (handle, events) = console::spawn(f._rt.handle(), f.store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}));
    let app = ConsoleApp::new(handle, events, opts, None);
    Harness::builder()
        .with_size(egui::vec2(1360.0, 860.0))
        .with_context_setup(switchboard::ui::theme::install)
        .build_ui_state(|ui, app: &mut ConsoleApp| app.frame(ui), app)
}

fn start(view: View) -> AppOptions {
    AppOptions { db_label: "test".into(), start_view: Some(view), demo: None }
}

/// Steps the UI while the background runtime works, until `done` or a timeout.
fn wait_until(h: &mut Harness<'static, ConsoleApp>, what: &str, done: impl Fn(&Harness<'static, ConsoleApp>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        h.step();
        if done(h) {
            h.step();
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(15));
    }
}

fn shows(h: &Harness<'static, ConsoleApp>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

/// Types into the first field labelled `label`.
fn type_into(h: &mut Harness<'static, ConsoleApp>, label: &str, text: &str) {
    h.get_all_by_label(label).next().unwrap().click();
    h.step();
    h.get_all_by_label(label).next().unwrap().type_text(text);
    h.step();
}

/// Opens combo box number `nth` labelled `label` and picks `option`.
fn pick(h: &mut Harness<'static, ConsoleApp>, label: &str, nth: usize, option: &str) {
    let combos: Vec<_> = h.query_all_by(|n| n.role() == egui::accesskit::Role::ComboBox && n.label().as_deref() == Some(label)).collect();
    combos.get(nth).unwrap_or_else(|| panic!("no combo box {nth} labelled {label}")).click();
    h.step();
    h.step();
    // The popup's option, not a table cell with the same text.
    h.get_by(|n| n.label().as_deref() == Some(option) && n.role() != egui::accesskit::Role::Label).click();
    h.step();
}

fn add_supplier(store: &Store, name: &str, tier: Tier, vendor: VendorType, weddings: &[&str]) -> SupplierId {
    let mut n = NewSupplier::new(name, vendor, tier, AiMode::Platform);
    n.weddings = weddings.iter().map(|d| d.parse().unwrap()).collect();
    store.insert_supplier(&n, Utc::now()).unwrap().id
}

#[test]
fn adds_a_supplier_through_the_form_with_date_validation() {
    let f = fixture();
    let mut h = harness(&f, start(View::Suppliers));
    wait_until(&mut h, "the empty state", |h| shows(h, "No suppliers yet"));

    h.get_by_label("Add supplier").click();
    h.step();
    type_into(&mut h, "Name", "Capture Moments");
    // The form's combo boxes come after the filter bar's.
    pick(&mut h, "Tier", 1, "scale");

    // A wrong date is refused in place, with what to write instead.
    type_into(&mut h, "Wedding date", "2026-13-40");
    h.get_by_label("Add date").click();
    h.step();
    assert!(shows(&h, "is not a date; write it as YYYY-MM-DD"));
    assert!(f.store.count_suppliers().unwrap() == 0);

    h.get_by_label("Wedding date").click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.step();
    h.get_by_label("Wedding date").type_text("2027-06-19");
    h.step();
    h.get_by_label("Add date").click();
    h.step();
    assert!(!shows(&h, "is not a date"));
    assert!(shows(&h, "2027-06-19"));

    h.get_by_label("Save").click();
    wait_until(&mut h, "the saved notification", |h| shows(h, "Added 'Capture Moments'"));
    wait_until(&mut h, "the new row", |h| shows(h, "Supplier Capture Moments"));

    let all = f.store.list_suppliers(&SupplierFilter::default()).unwrap();
    assert_eq!(all.len(), 1);
    let s = &all[0];
    assert_eq!((s.name.as_str(), s.tier), ("Capture Moments", Tier::Scale));
    assert_eq!(s.weddings, vec!["2027-06-19".parse::<NaiveDate>().unwrap()]);
    let audit = f.store.audit_entries(&AuditFilter::default()).unwrap();
    assert_eq!(audit[0].action, "supplier.add");
}

#[test]
fn edits_tier_and_weddings_from_the_detail_panel() {
    let f = fixture();
    let id = add_supplier(&f.store, "Golden Hour Venue", Tier::Starter, VendorType::Venue, &["2027-05-01"]);
    let mut h = harness(&f, start(View::Suppliers));
    wait_until(&mut h, "the row", |h| shows(h, "Supplier Golden Hour Venue"));
    h.get_by_label("Supplier Golden Hour Venue").click();
    wait_until(&mut h, "the detail panel", |h| shows(h, "Edit") && shows(h, "Tokens per day"));
    h.get_by_label("Edit").click();
    h.step();
    h.step();
    pick(&mut h, "Tier", 1, "enterprise");
    type_into(&mut h, "Wedding date", "2027-09-18");
    h.get_by_label("Add date").click();
    h.step();
    h.get_by_label("Save").click();
    wait_until(&mut h, "the saved notification", |h| shows(h, "Saved 'Golden Hour Venue'"));

    let s = f.store.supplier(id).unwrap();
    assert_eq!(s.tier, Tier::Enterprise);
    assert_eq!(s.weddings.len(), 2);
    let audit = f.store.audit_entries(&AuditFilter::default()).unwrap();
    assert_eq!(audit[0].action, "supplier.edit");
    assert!(audit[0].detail.contains("tier=enterprise"), "{}", audit[0].detail);
    // The table shows the new tier.
    wait_until(&mut h, "the new tier in the table", |h| shows(h, "enterprise"));
}

#[test]
fn searches_and_filters_the_table_and_ctrl_f_focuses_search() {
    let f = fixture();
    for i in 0..60 {
        let tier = if i % 3 == 0 { Tier::Scale } else { Tier::Starter };
        add_supplier(&f.store, &format!("Studio {i:02}"), tier, VendorType::Photographer, &[]);
    }
    add_supplier(&f.store, "Willow Barn Weddings", Tier::Professional, VendorType::Venue, &[]);
    let mut h = harness(&f, start(View::Overview));
    wait_until(&mut h, "the overview", |h| shows(h, "Requests today"));

    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    wait_until(&mut h, "the suppliers view", |h| shows(h, "61 suppliers"));
    assert!(h.get_by_label("Search").is_focused(), "Ctrl+F focuses the search field");
    h.get_by_label("Search").type_text("willow");
    wait_until(&mut h, "the search result", |h| shows(h, "1 of 61 suppliers"));
    assert!(shows(&h, "Supplier Willow Barn Weddings"));
    assert!(!shows(&h, "Supplier Studio 01"));

    h.get_by_label("Clear filters").click();
    h.step();
    pick(&mut h, "Tier", 0, "scale");
    wait_until(&mut h, "the tier filter", |h| shows(h, "20 of 61 suppliers"));
}

#[test]
fn filters_the_audit_log_by_supplier_action_and_date() {
    let f = fixture();
    let a = add_supplier(&f.store, "Blush Petal Florals", Tier::Starter, VendorType::Florist, &[]);
    let b = add_supplier(&f.store, "Ivory Lens Photography", Tier::Scale, VendorType::Photographer, &[]);
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    f.store.audit(t("2026-03-01T10:00:00Z"), "ana", "supplier.add", Some(a), None, "ok", "added").unwrap();
    f.store.audit(t("2026-03-02T10:00:00Z"), "ana", "supplier.add", Some(b), None, "ok", "added").unwrap();
    f.store.audit(t("2026-04-10T10:00:00Z"), "ben", "supplier.edit", Some(b), None, "ok", "tier=scale").unwrap();
    f.store.audit(t("2026-05-10T10:00:00Z"), "ben", "key.rotate", Some(b), None, "ok", "rotated").unwrap();
    let mut h = harness(&f, start(View::Audit));
    wait_until(&mut h, "four entries", |h| shows(h, "4 entries"));

    type_into(&mut h, "Supplier", "ivory");
    wait_until(&mut h, "the supplier filter", |h| shows(h, "3 entries"));
    pick(&mut h, "Action", 0, "supplier.");
    wait_until(&mut h, "the action filter", |h| shows(h, "2 entries"));
    type_into(&mut h, "From", "2026-04-01");
    wait_until(&mut h, "the date filter", |h| shows(h, "1 entry"));
    assert!(shows(&h, "tier=scale"));
    type_into(&mut h, "To", "2026-01-01");
    wait_until(&mut h, "the date error", |h| shows(h, "the 'to' date is before the 'from' date"));
}

#[test]
fn demo_mode_shows_progress_then_every_view_renders_its_data() {
    let f = fixture();
    let today = Utc::now().date_naive();
    let cfg = DemoConfig::new(40, 60, 3, today);
    let mut h = harness(&f, AppOptions { db_label: "demo".into(), start_view: Some(View::Overview), demo: Some(cfg) });
    h.step();
    assert!(shows(&h, "Preparing the demo"), "the window shows progress at once");
    wait_until(&mut h, "demo data", |h| shows(h, "Demo data ready"));
    wait_until(&mut h, "overview figures", |h| shows(h, "Requests this month") && shows(h, "Weddings this week"));
    assert!(shows(&h, "WedSync OpenAI"));

    h.get_by_label("Quotas").click();
    wait_until(&mut h, "the quota chart", |h| shows(h, "Month-to-date usage against the monthly quota"));
    h.get_by_label("Usage & cost").click();
    wait_until(&mut h, "the usage charts", |h| shows(h, "per day by provider"));
    h.get_by_label("Model").click();
    wait_until(&mut h, "the model breakdown", |h| shows(h, "per day by model"));
    h.get_by_label("Audit log").click();
    wait_until(&mut h, "the audit log", |h| shows(h, "demo.generate"));
    assert_eq!(h.state().view(), View::Audit);
    assert_eq!(h.state().persisted().view, View::Audit);
}

#[test]
fn stale_answers_are_dropped() {
    let f = fixture();
    for i in 0..5 {
        add_supplier(&f.store, &format!("Name {i}"), Tier::Starter, VendorType::Other, &[]);
    }
    let (handle, mut events) =
        console::spawn(f._rt.handle(), f.store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}));
    for search in ["N", "Na", "Nam", "Name 3"] {
        let filter = SupplierFilter { search: Some(search.into()), ..Default::default() };
        handle.send(console::ConsoleCommand::LoadSuppliers(console::SupplierQuery { filter, ..Default::default() })).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while handle.is_loading(console::Channel::Suppliers) {
        assert!(Instant::now() < deadline);
        if let Some(console::ConsoleEvent::Suppliers(l)) = events.try_next() {
            got.push(l.rows.len());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(got, vec![1], "only the latest search's answer reaches the UI");
}
