//! The desktop console, driven headless through egui_kittest against a real
//! SQLite store and the real console service on a tokio runtime: add and edit
//! suppliers through the form, search and filter the table, filter the audit
//! log, switch views, and watch demo generation finish; add, validate and
//! rotate a key against the provider simulator, issue a gateway token (shown
//! once), and watch the live Overview open a breaker during a simulated outage
//! — asserting both on what the UI shows and on the database afterwards;
//! export usage as CSV through an injected save dialog (re-read with the `csv`
//! crate and compared with the database, asked before overwriting), and show a
//! supplier projected to exceed its quota.

use chrono::{NaiveDate, Utc};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::console;
use switchboard::domain::{AiMode, Clock, NewSupplier, QuotaPolicy, SupplierId, SystemClock, Tier, VendorType};
use switchboard::engine::demo::DemoConfig;
use switchboard::store::{AuditFilter, Store, SupplierFilter};
use switchboard::ui::{AppOptions, ConsoleApp, SaveDialog, View};

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
    harness_sized(f, opts, egui::vec2(1360.0, 860.0))
}

fn harness_sized(f: &Fixture, opts: AppOptions, size: egui::Vec2) -> Harness<'static, ConsoleApp> {
    harness_clocked(f, opts, size, Arc::new(SystemClock))
}

fn harness_clocked(f: &Fixture, opts: AppOptions, size: egui::Vec2, clock: Arc<dyn Clock>) -> Harness<'static, ConsoleApp> {
    let (handle, events) = console::spawn(f._rt.handle(), f.store.clone(), clock, QuotaPolicy::default(), Arc::new(|| {}));
    let app = ConsoleApp::new(handle, events, opts, None);
    Harness::builder()
        .with_size(size)
        .with_context_setup(switchboard::ui::theme::install)
        .build_ui_state(|ui, app: &mut ConsoleApp| app.frame(ui), app)
}

fn start(view: View) -> AppOptions {
    // A test never opens the native dialog: it answers "no file" unless a test injects one.
    AppOptions { db_label: "test".into(), start_view: Some(view), save_dialog: SaveDialog::answering(None), ..Default::default() }
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
        if Instant::now() >= deadline {
            let labels = std::cell::RefCell::new(Vec::new());
            let _ = h.query_all_by(|n| {
                labels.borrow_mut().extend(n.label());
                false
            });
            let labels = labels.into_inner();
            panic!("timed out waiting for {what}; on screen: {labels:?}");
        }
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
fn views_tell_time_by_the_injected_clock() {
    // A fixed day years from now: a view that read the system clock would
    // count both weddings as coming, and start the usage range elsewhere.
    let now = "2030-01-15T12:00:00Z".parse::<chrono::DateTime<Utc>>().unwrap();
    let f = fixture();
    let id = add_supplier(&f.store, "Fixed Clock Florals", Tier::Starter, VendorType::Florist, &["2029-06-20", "2030-08-01"]);
    f.store.append_usage(&[usage_event("fixed-day", "2030-01-10".parse().unwrap(), id, 1_000)]).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now));
    let mut h = harness_clocked(&f, start(View::Suppliers), egui::vec2(1360.0, 860.0), clock.clone());
    wait_until(&mut h, "the row", |h| shows(h, "Supplier Fixed Clock Florals"));
    h.get_by_label("Supplier Fixed Clock Florals").click();
    wait_until(&mut h, "the detail panel", |h| shows(h, "Tokens per day"));
    assert!(shows(&h, "Weddings (1 coming, 1 past)"), "the detail panel counts weddings from the injected day");

    let mut h = harness_clocked(&f, start(View::Usage), egui::vec2(1360.0, 860.0), clock);
    // The default range is the last 365 days up to the injected day.
    wait_until(&mut h, "the chart", |h| shows(h, "2029-01-16 – 2030-01-15"));
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
    let mut h = harness(&f, AppOptions { db_label: "demo".into(), demo: Some(cfg), ..start(View::Overview) });
    h.step();
    assert!(shows(&h, "Preparing the demo"), "the window shows progress at once");
    wait_until(&mut h, "demo data", |h| shows(h, "Demo data ready"));
    wait_until(&mut h, "overview figures", |h| shows(h, "Requests this month") && shows(h, "Weddings this week"));
    assert!(shows(&h, "WedSync OpenAI"));

    h.get_by_label("Quotas").click();
    wait_until(&mut h, "the quota chart", |h| shows(h, "Month-to-date usage against the monthly quota"));
    h.get_by_label("Health").click();
    wait_until(&mut h, "the health board", |h| shows(h, "Provider accounts (") && shows(h, "No health monitor runs in this console"));
    h.get_by_label("Migrations").click();
    wait_until(&mut h, "the migrations view", |h| shows(h, "No migrations yet"));
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

// ---- Keys, tokens and the live overview -------------------------------------

use switchboard::console::{LiveServices, ServiceOptions};
use switchboard::domain::{AccountOwner, ProviderKind};
use switchboard::engine::runtime::{Runtime, RuntimeOptions};
use switchboard::sim::{SimAccountConfig, SimConfig, Simulator};
use switchboard::vault::Vault;

/// The real keychain when the private test keyring is up (scripts/test), else the in-memory demo store.
fn test_vault() -> Vault {
    if std::env::var_os("SWITCHBOARD_TEST_KEYRING").is_some() { Vault::os() } else { Vault::demo_in_memory() }
}

fn live_harness(f: &Fixture, live: LiveServices, view: View) -> Harness<'static, ConsoleApp> {
    let opts = ServiceOptions { live: Some(live), after_demo: None };
    let (handle, events) =
        console::spawn_with(f._rt.handle(), f.store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}), opts);
    let app = ConsoleApp::new(handle, events, start(view), None);
    Harness::builder()
        .with_size(egui::vec2(1360.0, 860.0))
        .with_context_setup(switchboard::ui::theme::install)
        .build_ui_state(|ui, app: &mut ConsoleApp| app.frame(ui), app)
}

/// The button labelled `label` (not a notification or table text with the same words).
fn button<'a>(h: &'a Harness<'static, ConsoleApp>, label: &'a str) -> egui_kittest::Node<'a> {
    h.get_by(|n| n.role() == egui::accesskit::Role::Button && n.label().as_deref() == Some(label))
}

fn db_bytes_contain(store: &Store, needle: &str) -> bool {
    let mut found = false;
    let dir = store.path().parent().unwrap().to_path_buf();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap_or_default();
        found |= bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    }
    found
}

const GOOD_KEY: &str = "sk-console-test-openai-0123456789abcdef";

#[test]
fn adds_and_validates_a_key_against_the_simulator() {
    let f = fixture();
    let sim = f
        ._rt
        .block_on(Simulator::start(SimConfig { seed: 1, accounts: vec![SimAccountConfig::new("studio", ProviderKind::OpenAi, GOOD_KEY)] }))
        .unwrap();
    let rt = f._rt.block_on(Runtime::start(f.store.clone(), test_vault(), Arc::new(SystemClock), RuntimeOptions::default())).unwrap();
    let supplier = add_supplier(&f.store, "Capture Moments", Tier::Professional, VendorType::Photographer, &[]);
    let live = LiveServices::keys_only(rt.keys.clone());
    let mut h = live_harness(&f, live, View::Keys);
    wait_until(&mut h, "the keys view", |h| shows(h, "Platform accounts (0)"));

    h.get_by_label("Add key…").click();
    h.step();
    h.get_by_label("A supplier").click();
    h.step();
    type_into(&mut h, "Owner's supplier ID", &supplier.0.to_string());
    type_into(&mut h, "Label", "Studio OpenAI");
    type_into(&mut h, "Base URL", sim.base_url());
    type_into(&mut h, "API key", GOOD_KEY);
    assert!(!shows(&h, GOOD_KEY), "the typed key is never shown");
    h.get_by_label("Save key").click();
    wait_until(&mut h, "the validated account", |h| shows(h, "Added 'Studio OpenAI'"));
    assert!(shows(&h, "validated"));
    wait_until(&mut h, "the account row", |h| shows(h, "Supplier accounts (1)"));
    assert!(shows(&h, "sk-…cdef"), "the masked fingerprint is shown");
    let accounts = f.store.list_accounts(Some(AccountOwner::Supplier(supplier))).unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].key_fingerprint.as_deref(), Some("sk-…cdef"));
    assert!(!db_bytes_contain(&f.store, GOOD_KEY), "the key is not in the database files");

    // Validate again from the row: progress, then the result.
    h.get_by_label("Validate").click();
    h.step();
    wait_until(&mut h, "the validation", |h| shows(h, "the key is valid"));

    // The provider refuses the key: its own message is shown.
    button(&h, "Rotate…").click();
    h.step();
    h.step();
    type_into(&mut h, "New API key", "sk-console-test-openai-wrongwrongwrong");
    button(&h, "Rotate").click();
    wait_until(&mut h, "the refusal", |h| shows(h, "was not accepted by OpenAI"));
    assert!(!shows(&h, "wrongwrongwrong"), "the refused key is not repeated");
    assert!(!db_bytes_contain(&f.store, "wrongwrongwrong"));
    f._rt.block_on(rt.shutdown());
}

#[test]
fn issues_a_token_once_and_keeps_only_its_hash() {
    let f = fixture();
    let rt =
        f._rt.block_on(Runtime::start(f.store.clone(), Vault::demo_in_memory(), Arc::new(SystemClock), RuntimeOptions::default())).unwrap();
    let supplier = add_supplier(&f.store, "Willow Lane Estate", Tier::Scale, VendorType::Venue, &[]);
    let live = LiveServices { demo: true, ..LiveServices::keys_only(rt.keys.clone()) };
    let mut h = live_harness(&f, live, View::Keys);
    wait_until(&mut h, "the keys view", |h| shows(h, "Gateway tokens (0 active)"));
    assert!(shows(&h, "Demo mode — simulator keys in memory"));
    type_into(&mut h, "Supplier ID", &supplier.0.to_string());
    h.get_by_label("Issue token").click();
    wait_until(&mut h, "the one-time dialog", |h| shows(h, "New gateway token for Willow Lane Estate"));
    assert!(shows(&h, "it will not be shown again"));
    let found = std::cell::RefCell::new(None);
    let _ = h
        .query_all_by(|n| {
            if let Some(l) = n.label().or_else(|| n.value())
                && l.starts_with("sbk_")
                && !l.contains('…')
            {
                *found.borrow_mut() = Some(l.to_string());
            }
            false
        })
        .count();
    let token = found.into_inner().expect("the full token is shown once");
    let tokens = f.store.list_tokens(Some(supplier)).unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(f.store.find_token_by_hash(&switchboard::store::TokenHash::of(&token)).unwrap().is_some(), "the hash is stored");
    assert!(!db_bytes_contain(&f.store, &token), "the token itself is not in the database files");
    h.get_by_label("Copy").click();
    h.step();
    button(&h, "Done").click();
    h.step();
    h.step();
    assert!(!shows(&h, &token), "the token is gone once the dialog is closed");
    wait_until(&mut h, "the token row", |h| shows(h, "Gateway tokens (1 active)"));
    assert!(shows(&h, &tokens[0].hint));
    f._rt.block_on(rt.shutdown());
}

#[test]
fn live_overview_shows_a_breaker_opening_during_a_simulated_outage() {
    use switchboard::engine::demo_traffic::{self, TrafficConfig, sim_account_name};
    let f = fixture();
    let sim_addr = demo_traffic::free_loopback_addr().unwrap();
    let mut cfg = DemoConfig::new(24, 3, 11, Utc::now().date_naive());
    cfg.sim_base_url = format!("http://{sim_addr}");
    switchboard::engine::demo::generate(&f.store, &cfg, |_, _| {}).unwrap();
    let traffic = TrafficConfig {
        suppliers_with_tokens: 6,
        requests_per_sec: 20.0,
        first_incident_after: Duration::from_secs(3600),
        ..TrafficConfig::default()
    };
    let demo = f._rt.block_on(demo_traffic::start(f.store.clone(), Arc::new(SystemClock), sim_addr, traffic)).unwrap();
    let (client, _) = *demo.suppliers.iter().find(|(_, client)| *client).expect("a client-mode supplier sends traffic");
    let own: Vec<_> = f.store.list_accounts(Some(AccountOwner::Supplier(client))).unwrap();
    assert!(!own.is_empty());
    // The demo migration was tried before the move: a parallel test of its
    // supplier (answers at provider-like speed) precedes it, off the start.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !demo.set_up() {
        assert!(Instant::now() < deadline, "the demo migration and mirror were not set up within a minute");
        std::thread::sleep(Duration::from_millis(50));
    }
    let migrations = f.store.list_migrations(None).unwrap();
    assert_eq!(migrations.len(), 1, "the demo starts one migration");
    for m in migrations {
        let tests = f.store.parallel_tests(Some(m.supplier)).unwrap();
        assert_eq!(tests.len(), 1, "migration {} of supplier {}", m.id, m.supplier);
        let report: switchboard::engine::parallel::ParallelReport = serde_json::from_str(&tests[0].1).unwrap();
        assert!(report.created_at <= m.created_at);
        assert_eq!(report.candidate.successes, report.candidate.requests);
    }
    let live = LiveServices {
        keys: demo.runtime.keys.clone(),
        router: Some(demo.runtime.router.clone()),
        health: Some(demo.runtime.health.clone()),
        migrations: Some(demo.runtime.migrations.clone()),
        gateway_url: Some("http://127.0.0.1:1".into()),
        demo: true,
        keep_alive: Vec::new(),
    };
    let mut h = live_harness(&f, live, View::Overview);
    wait_until(&mut h, "the live strip", |h| shows(h, "Demo mode — simulator keys in memory"));
    wait_until(&mut h, "requests flowing", |h| shows(h, "Last requests") && !shows(h, "No requests through the router yet"));
    assert!(!shows(&h, "open ·") && !shows(&h, "open (down)"), "every breaker is closed before the outage");
    for a in &own {
        assert!(demo.sim.set_outage(&sim_account_name(a.id), true));
    }
    wait_until(&mut h, "a breaker opening", |h| shows(h, "Breaker opened on"));
    // Open on its own (with the seconds left), or held open by the health
    // monitor once it has judged the account down, or already trying again.
    assert!(shows(&h, "open ·") || shows(&h, "open (down)") || shows(&h, "half-open"));
    wait_until(&mut h, "failover", |h| shows(h, "Failover:"));
    for a in &own {
        demo.sim.set_outage(&sim_account_name(a.id), false);
    }
    // The demo also mirrors another client supplier's live traffic to platform AI.
    let mirrors = f.store.running_mirrors().unwrap();
    assert_eq!(mirrors.len(), 1);
    assert_ne!(Some(mirrors[0].supplier_id), f.store.list_migrations(None).unwrap().first().map(|m| m.supplier));
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.store.mirror_copies(mirrors[0].id).unwrap() == 0 {
        assert!(Instant::now() < deadline, "the demo mirror copied nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(h);
    f._rt.block_on(async move { drop(demo) });
}

// ---- CSV export and projections ---------------------------------------------

use switchboard::domain::{Micros, PricingTable, RequestType, Route, TokenUsage, UsageEvent, UsageStatus};

fn pricing() -> &'static PricingTable {
    static P: std::sync::OnceLock<PricingTable> = std::sync::OnceLock::new();
    P.get_or_init(PricingTable::builtin)
}

fn usage_event(id: &str, day: NaiveDate, supplier: SupplierId, input: u64) -> UsageEvent {
    let usage = TokenUsage { input, output: input / 2, ..TokenUsage::default() };
    UsageEvent {
        request_id: id.into(),
        ts: day.and_hms_opt(0, 5, 0).unwrap().and_utc(),
        supplier_id: supplier,
        account_id: None,
        provider: ProviderKind::OpenAi,
        model: "gpt-4o-mini".into(),
        request_type: RequestType::EmailTemplate,
        route: Route::Platform,
        cost: pricing().cost(ProviderKind::OpenAi, "gpt-4o-mini", &usage).unwrap(),
        usage,
        latency_ms: 400,
        status: UsageStatus::Ok,
        error_class: None,
    }
}

/// "Overflow Studio" (Starter) uses 9,000 platform tokens a day, this month
/// and the two before: over any Starter quota (50,000, or 75,000 in peak
/// season) by every month's end. "Quiet Florals" (Scale) uses 300 a day.
fn seed_usage(store: &Store) -> (SupplierId, SupplierId) {
    let overflow = add_supplier(store, "Overflow Studio", Tier::Starter, VendorType::Photographer, &[]);
    let quiet = add_supplier(store, "Quiet Florals", Tier::Scale, VendorType::Florist, &[]);
    let today = Utc::now().date_naive();
    let first = switchboard::domain::calendar::add_months(today, -2);
    let mut events = Vec::new();
    let mut d = first;
    while d <= today {
        events.push(usage_event(&format!("o-{d}"), d, overflow, 6_000));
        events.push(usage_event(&format!("q-{d}"), d, quiet, 200));
        d += chrono::Duration::days(1);
    }
    store.append_usage(&events).unwrap();
    (overflow, quiet)
}

fn tall(f: &Fixture, opts: AppOptions) -> Harness<'static, ConsoleApp> {
    harness_sized(f, opts, egui::vec2(1360.0, 1700.0))
}

/// `12.345678` → 12,345,678 micro-dollars, exactly.
fn micros(cell: &str) -> i64 {
    let (whole, frac) = cell.split_once('.').unwrap_or((cell, "0"));
    assert!(frac.len() <= 6 && !whole.starts_with('-'), "{cell}");
    whole.parse::<i64>().unwrap() * 1_000_000 + format!("{frac:0<6}").parse::<i64>().unwrap()
}

/// Data rows and the sum of `cost_usd` of a CSV export.
fn read_export(path: &std::path::Path) -> (i64, i64) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let cost = r.headers().unwrap().iter().position(|h| h == "cost_usd").expect("a cost_usd column");
    let (mut rows, mut total) = (0, 0);
    for rec in r.records() {
        rows += 1;
        total += micros(&rec.unwrap()[cost]);
    }
    (rows, total)
}

fn no_partial_files(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().all(|e| !e.file_name().to_string_lossy().contains("partial"))
}

#[test]
fn ctrl_e_exports_usage_to_the_file_from_the_save_dialog() {
    let f = fixture();
    seed_usage(&f.store);
    let out = f._dir.path().join("usage.csv");
    let mut h = tall(&f, AppOptions { save_dialog: SaveDialog::answering(Some(out.clone())), ..start(View::Overview) });
    wait_until(&mut h, "the overview", |h| shows(h, "Requests today"));

    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::E);
    wait_until(&mut h, "the export panel", |h| shows(h, "Export usage as CSV"));
    assert_eq!(h.state().view(), View::Usage, "Ctrl+E opens the Usage view's export");
    // Prefilled from the view's range (the last 12 months).
    let today = Utc::now().date_naive();
    let from = today - chrono::Duration::days(364);
    let value = |h: &Harness<'static, ConsoleApp>, label: &str| h.get_by_label(label).value().map(|v| v.to_string());
    assert_eq!(value(&h, "Export from"), Some(from.to_string()));
    assert_eq!(value(&h, "to"), Some(today.to_string()));

    button(&h, "Choose file…").click();
    wait_until(&mut h, "the export notification", |h| shows(h, "Exported "));
    let (rows, cost) = read_export(&out);
    let db = f.store.usage_totals(from, today + chrono::Duration::days(1)).unwrap();
    assert!(rows > 100, "{rows} rows");
    assert_eq!((u64::try_from(rows).unwrap(), cost), (db.requests, db.cost.0), "the CSV holds every event and the same money");
    assert_eq!(rows, f.store.count_usage_events().unwrap());
    assert!(shows(&h, &format!("Exported {} rows", rows)) && shows(&h, "usage.csv"), "the notification names rows and file");
    assert!(!shows(&h, "Export usage as CSV"), "the panel closes when done");
    assert!(no_partial_files(f._dir.path()));
}

#[test]
fn a_second_export_to_the_same_file_asks_before_overwriting() {
    let f = fixture();
    let (overflow, _) = seed_usage(&f.store);
    let out = f._dir.path().join("usage.csv");
    // No dialog the first time (as without a desktop portal), then `out`.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let dialog = {
        let (calls, out) = (calls.clone(), out.clone());
        SaveDialog::new(move |req| {
            assert!(req.default_name.starts_with("usage-") && req.default_name.ends_with(".csv"), "{}", req.default_name);
            let answer = (calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0).then(|| out.clone());
            Box::pin(async move { answer })
        })
    };
    let mut h = tall(&f, AppOptions { save_dialog: dialog, ..start(View::Usage) });
    wait_until(&mut h, "the usage view", |h| shows(h, "Export CSV…"));
    button(&h, "Export CSV…").click();
    h.step();
    button(&h, "Choose file…").click();
    wait_until(&mut h, "the fallback", |h| shows(h, "type the full path of the CSV file below instead"));
    // The typed path must be a full path.
    h.get_by_label("CSV file path").click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label("CSV file path").type_text("relative.csv");
    h.step();
    button(&h, "Export").click();
    wait_until(&mut h, "the path error", |h| shows(h, "is not a full path"));
    h.get_by_label("CSV file path").click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label("CSV file path").type_text(&out.display().to_string());
    h.step();
    button(&h, "Export").click();
    wait_until(&mut h, "the first export", |h| shows(h, "Exported ") && !shows(h, "Export usage as CSV"));
    let first = std::fs::read(&out).unwrap();
    let (rows, _) = read_export(&out);

    // One more event; the same file again: refused until Overwrite.
    let today = Utc::now().date_naive();
    f.store.append_usage(&[usage_event("late", today, overflow, 1_000)]).unwrap();
    button(&h, "Export CSV…").click();
    h.step();
    button(&h, "Choose file…").click();
    wait_until(&mut h, "the exists message", |h| shows(h, "already exists, so nothing was written"));
    assert_eq!(std::fs::read(&out).unwrap(), first, "the existing file is untouched");
    assert!(no_partial_files(f._dir.path()));
    button(&h, "Overwrite").click();
    wait_until(&mut h, "the overwrite", |h| !shows(h, "already exists") && !shows(h, "Export usage as CSV"));
    let (rows_after, cost_after) = read_export(&out);
    assert_eq!(rows_after, rows + 1, "the file was replaced with the new export");
    let db = f.store.usage_totals(today - chrono::Duration::days(364), today + chrono::Duration::days(1)).unwrap();
    assert_eq!((u64::try_from(rows_after).unwrap(), cost_after), (db.requests, db.cost.0));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn projections_show_the_supplier_that_will_exceed_its_quota() {
    use switchboard::engine::analytics::AnalyticsService;
    let f = fixture();
    let (overflow, quiet) = seed_usage(&f.store);
    let today = Utc::now().date_naive();
    let report = AnalyticsService::new(f.store.clone(), PricingTable::builtin(), QuotaPolicy::default())
        .session()
        .unwrap()
        .projections(today)
        .unwrap();
    let flagged: Vec<SupplierId> = report.suppliers.iter().filter(|s| s.exceeds_quota_this_month).map(|s| s.supplier_id).collect();
    assert_eq!(flagged, vec![overflow], "the engine flags only the heavy user");
    assert!(report.suppliers.iter().any(|s| s.supplier_id == quiet));

    let mut h = tall(&f, start(View::Usage));
    wait_until(&mut h, "the projections", |h| shows(h, "Projected to exceed platform quota this month (1)"));
    assert!(shows(&h, &format!("Projections: monthly cost, as of {today}")));
    assert!(shows(&h, "Overflow Studio"), "the flagged supplier is listed");
    let to_date: i64 = report.suppliers.iter().map(|s| s.month_end.to_date_cost.0).sum();
    let month_end: i64 = report.suppliers.iter().map(|s| s.month_end.month.cost.0).sum();
    assert!(month_end > to_date && to_date > 0);
    assert!(
        shows(&h, &format!("This month: {} so far, {} projected by its end", Micros(to_date), Micros(month_end))),
        "the engine's sums, in dollars"
    );
    assert!(!shows(&h, "Quiet Florals"), "a supplier well under quota is not");
    assert!(shows(&h, "starter"));
    assert!(shows(&h, "Method: recent average for 2 suppliers"), "the method and history are shown");
    h.get_by_label("Tokens").click();
    wait_until(&mut h, "the tokens projection", |h| shows(h, "Projections: monthly tokens"));
}

#[test]
fn cancelling_an_export_leaves_no_file() {
    let f = fixture();
    let supplier = add_supplier(&f.store, "Busy Venue", Tier::Enterprise, VendorType::Venue, &[]);
    let today = Utc::now().date_naive();
    // Enough rows that the export is still writing when Cancel is clicked.
    let events: Vec<UsageEvent> =
        (0..100_000).map(|i| usage_event(&format!("bulk-{i}"), today - chrono::Duration::days(i % 60), supplier, 100)).collect();
    f.store.append_usage_bulk(&events).unwrap();
    f.store.rebuild_daily_rollups().unwrap();
    let out = f._dir.path().join("big.csv");
    let mut h = tall(&f, AppOptions { save_dialog: SaveDialog::answering(Some(out.clone())), ..start(View::Usage) });
    wait_until(&mut h, "the usage view", |h| shows(h, "Export CSV…"));
    button(&h, "Export CSV…").click();
    h.step();
    button(&h, "Choose file…").click();
    wait_until(&mut h, "rows being written", |h| shows(h, "rows of 100,000"));
    let locked = |n: &egui_kittest::kittest::AccessKitNode<'_>| {
        n.role() == egui::accesskit::Role::Button && n.label().as_deref() == Some("Choose file…") && n.is_disabled()
    };
    assert!(h.query_all_by(locked).next().is_some(), "one export at a time: the form is locked while one runs");
    button(&h, "Cancel").click();
    wait_until(&mut h, "the cancellation", |h| shows(h, "The export was cancelled; no file was written."));
    assert!(!out.exists(), "nothing under the final name");
    assert!(no_partial_files(f._dir.path()), "the temporary file is removed");
}

#[test]
fn peak_and_off_season_averages_count_only_days_with_history() {
    use switchboard::console::{ConsoleCommand, ConsoleEvent, UsageMetric, UsageQuery};
    let f = fixture();
    seed_usage(&f.store);
    let (handle, mut events) =
        console::spawn(f._rt.handle(), f.store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}));
    let today = Utc::now().date_naive();
    let q = UsageQuery {
        from: today - chrono::Duration::days(364),
        to: today,
        dimension: switchboard::domain::UsageDimension::Route,
        metric: UsageMetric::Requests,
        max_points: 400,
    };
    handle.send(ConsoleCommand::LoadUsage(q)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        assert!(Instant::now() < deadline, "no usage view");
        if let Some(ConsoleEvent::Usage(v)) = events.try_next() {
            break v;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Two requests every day since the first of the month two months ago, none before.
    let first = switchboard::domain::calendar::add_months(today, -2);
    assert_eq!(v.peak_days + v.off_days, (today - first).num_days() as usize + 1, "the empty months before are not counted");
    for (days, avg) in [(v.peak_days, v.peak_daily_avg), (v.off_days, v.off_daily_avg)] {
        assert!(days == 0 || avg == 2.0, "{avg} requests a day over {days} days");
    }
    assert_eq!(v.monthly.iter().map(|m| m.value).sum::<f64>(), v.total);
}

// ---- Health and migrations --------------------------------------------------

use switchboard::domain::Secret;
use switchboard::domain::migration::{MigrationState, RouteTarget};
use switchboard::domain::{AccountId, ManualClock, ValidationStatus};
use switchboard::engine::health::{HealthMonitor, MonitorConfig};
use switchboard::engine::keys::KeyService;
use switchboard::engine::ledger::Ledger;
use switchboard::engine::migrations::MigrationService;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::providers::{Providers, ProvidersConfig, RetryPolicy};
use switchboard::sim::{DEMO_CLIENT_OPENAI_KEY, DEMO_OPENAI_KEY, SimHandle};
use switchboard::store::NewAccount;

/// A router on a manual clock over the fixture's store, with the simulator's demo accounts.
struct Routed {
    sim: SimHandle,
    clock: ManualClock,
    providers: Providers,
    router: Arc<Router>,
}

fn routed(f: &Fixture, start: chrono::DateTime<Utc>) -> Routed {
    let sim = f._rt.block_on(Simulator::start(SimConfig::demo())).unwrap();
    let clock = ManualClock::new(start);
    let providers = Providers::new(ProvidersConfig {
        retry: RetryPolicy { max_attempts: 1, base_delay: Duration::from_millis(5), ..RetryPolicy::default() },
        ..ProvidersConfig::default()
    })
    .unwrap();
    let router = f._rt.block_on(async {
        Router::new(
            f.store.clone(),
            providers.clone(),
            Arc::new(PricingTable::builtin()),
            Arc::new(clock.clone()),
            Ledger::start(&f.store).unwrap(),
            RouterConfig::default(),
            Some(f._rt.handle().clone()),
        )
        .unwrap()
    });
    Routed { sim, clock, providers, router }
}

impl Routed {
    fn account(&self, f: &Fixture, owner: AccountOwner, label: &str, key: &str) -> AccountId {
        let n = NewAccount {
            owner,
            provider: ProviderKind::OpenAi,
            label: label.into(),
            base_url: self.sim.base_url().to_string(),
            azure: None,
            default_model: "gpt-4o-mini".into(),
        };
        let id = f.store.insert_account(&n, self.clock.now()).unwrap().id;
        self.router.set_key(id, Some(Secret::new(key)));
        self.router.reload().unwrap();
        id
    }

    fn live(&self, f: &Fixture, health: Option<Arc<HealthMonitor>>, migrations: Option<Arc<MigrationService>>) -> LiveServices {
        let keys =
            KeyService::new(f.store.clone(), Vault::demo_in_memory(), Arc::new(self.providers.clone()), Arc::new(self.clock.clone()));
        LiveServices {
            keys: Arc::new(keys),
            router: Some(self.router.clone()),
            health,
            migrations,
            gateway_url: None,
            demo: false,
            keep_alive: Vec::new(),
        }
    }
}

fn harness_at(f: &Fixture, live: Option<LiveServices>, clock: Arc<dyn Clock>, view: View) -> Harness<'static, ConsoleApp> {
    let opts = ServiceOptions { live, after_demo: None };
    let (handle, events) = console::spawn_with(f._rt.handle(), f.store.clone(), clock, QuotaPolicy::default(), Arc::new(|| {}), opts);
    let app = ConsoleApp::new(handle, events, start(view), None);
    Harness::builder()
        .with_size(egui::vec2(1360.0, 860.0))
        .with_context_setup(switchboard::ui::theme::install)
        .build_ui_state(|ui, app: &mut ConsoleApp| app.frame(ui), app)
}

#[test]
fn acknowledges_an_alert_from_the_health_view_and_audits_it() {
    use switchboard::domain::health::{AlertKind, Verdict};
    let f = fixture();
    let r = routed(&f, Utc::now());
    let venue = f
        .store
        .insert_supplier(&NewSupplier::new("Old Barn Venue", VendorType::Venue, Tier::Professional, AiMode::Client), Utc::now())
        .unwrap()
        .id;
    r.account(&f, AccountOwner::Platform, "WedSync OpenAI", DEMO_OPENAI_KEY);
    let client = r.account(&f, AccountOwner::Supplier(venue), "Venue OpenAI", DEMO_CLIENT_OPENAI_KEY);
    let m = HealthMonitor::for_router(
        r.router.clone(),
        r.providers.clone(),
        MonitorConfig { probe_timeout: std::time::Duration::from_secs(5), ..MonitorConfig::default() },
    );
    // Probe every account once (the manual clock stands in for 30 s of probing), then take the venue's provider down.
    for _ in 0..=6 {
        f._rt.block_on(m.tick());
        r.clock.advance(chrono::Duration::seconds(5));
    }
    assert_eq!(m.verdict(client), Verdict::Healthy);
    r.sim.set_outage("openai-client", true);
    for _ in 0..=30 {
        r.clock.advance(chrono::Duration::seconds(1));
        f._rt.block_on(m.tick());
        if m.verdict(client) == Verdict::Down {
            break;
        }
    }
    assert_eq!(m.verdict(client), Verdict::Down, "the outage is noticed within one probe interval");
    let open = f.store.list_alerts(true, 100).unwrap();
    let newest = open.first().expect("an open alert").clone();
    assert!(open.iter().any(|a| a.kind == AlertKind::ProviderDown && a.account_id == Some(client)), "{open:?}");

    let live = r.live(&f, Some(m.clone()), None);
    let mut h = harness_at(&f, Some(live), Arc::new(r.clock.clone()), View::Health);
    wait_until(&mut h, "the status board", |h| shows(h, "Provider accounts (2)"));
    assert!(shows(&h, "1 down · 0 degraded"), "the board counts the down account");
    assert!(shows(&h, "open (down)"), "the venue's breaker is held open by the monitor");
    assert!(shows(&h, "Venue OpenAI — latency and errors"), "the worst account's charts are shown first");
    wait_until(&mut h, "the alert list", |h| shows(h, &format!("Alerts ({} open)", open.len())));
    assert!(shows(&h, &newest.message));
    assert!(shows(&h, "Venue OpenAI (Old Barn Venue): provider down"), "an alert names its account and owner");
    assert!(f.store.audit_entries(&AuditFilter { action_prefix: Some("alert.".into()), ..Default::default() }).unwrap().is_empty());

    // The newest alert is the first row: acknowledge it.
    h.get_all_by(|n| n.role() == egui::accesskit::Role::Button && n.label().as_deref() == Some("Acknowledge")).next().unwrap().click();
    wait_until(&mut h, "the acknowledgement", |h| shows(h, &format!("Alert {} acknowledged", newest.id)));
    let a = f.store.find_alert(newest.id).unwrap().unwrap();
    let at = a.acknowledged_at.expect("acknowledged");
    assert!((at - r.clock.now()).num_milliseconds().abs() < 1_000, "acknowledged at the console's clock: {at}");
    assert!(a.is_open(), "acknowledging stops the escalation; the alert stays open");
    let others = f.store.list_alerts(false, 100).unwrap();
    assert_eq!(others.iter().filter(|x| x.acknowledged_at.is_some()).count(), 1, "only the clicked alert changed");
    let audit = f.store.audit_entries(&AuditFilter { action_prefix: Some("alert.".into()), ..Default::default() }).unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, "alert.acknowledge");
    assert_eq!(audit[0].account_id, newest.account_id);
    assert!(audit[0].detail.contains(&format!("alert {}", newest.id)), "{}", audit[0].detail);
    wait_until(&mut h, "the acknowledged row", |h| shows(h, "acknowledged ") && shows(h, "Resolve"));
    r.sim.set_outage("openai-client", false);
}

#[test]
fn starts_a_migration_with_a_wedding_warning_and_rolls_it_back() {
    // 23:30 the day before a wedding's 48 h window opens: starting is allowed,
    // but the third phase would begin inside the window.
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-09T23:30:00Z").unwrap().with_timezone(&Utc);
    let f = fixture();
    let r = routed(&f, now);
    let mut n = NewSupplier::new("Capture Moments", VendorType::Photographer, Tier::Professional, AiMode::Platform);
    n.weddings = vec!["2026-06-12".parse().unwrap()];
    let studio = f.store.insert_supplier(&n, now).unwrap().id;
    r.account(&f, AccountOwner::Platform, "WedSync OpenAI", DEMO_OPENAI_KEY);
    let own = r.account(&f, AccountOwner::Supplier(studio), "Studio OpenAI", DEMO_CLIENT_OPENAI_KEY);
    f.store.set_account_key(own, Some("test-entry"), Some("sk-…0001")).unwrap();
    f.store.set_account_validation(own, ValidationStatus::Valid, "ok", now).unwrap();
    r.router.reload().unwrap();
    let svc = MigrationService::new(f.store.clone(), r.router.clone(), Arc::new(r.clock.clone())).unwrap();
    let live = r.live(&f, None, Some(svc.clone()));
    let mut h = harness_at(&f, Some(live), Arc::new(r.clock.clone()), View::Migrations);
    wait_until(&mut h, "the empty list", |h| shows(h, "No migrations yet"));
    assert!(shows(&h, "No parallel test yet"));

    h.get_by_label("Start a migration…").click();
    h.step();
    // A supplier ID that is not a number is refused in place.
    type_into(&mut h, "Supplier ID", "capture");
    button(&h, "Check").click();
    h.step();
    assert!(shows(&h, "'capture' is not a supplier ID"));
    h.get_by_label("Supplier ID").click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label("Supplier ID").type_text(&studio.0.to_string());
    h.step();
    button(&h, "Check").click();
    wait_until(&mut h, "the checked plan", |h| {
        shows(h, "5 % for 10 min, then 25 % for 20 min, then 75 % for 30 min, then 100 % for 15 min")
    });
    assert!(shows(&h, "Studio OpenAI (account"), "the supplier's validated account is the target");
    assert!(shows(&h, "Wedding-window warning"));
    assert!(shows(&h, "Suggested start: Mon 15 Jun 2026 00:00 UTC"), "the suggested start clears the wedding's window");
    assert!(f.store.list_migrations(None).unwrap().is_empty(), "checking writes nothing");

    // Try before you move: a parallel test of the chosen route from the form, on the runtime's router.
    button(&h, "Run a parallel test").click();
    wait_until(&mut h, "the parallel test's report", |h| {
        shows(h, "Parallel test 1 of Capture Moments: Studio OpenAI answered 8 of 8 prompts")
    });
    let stored = f.store.parallel_tests(Some(studio)).unwrap();
    assert_eq!(stored.len(), 1, "the report is stored");
    let report: switchboard::engine::parallel::ParallelReport = serde_json::from_str(&stored[0].1).unwrap();
    assert_eq!(report.candidate.account_id, own);
    assert_eq!((report.candidate.successes, report.candidate.requests), (8, 8));
    wait_until(&mut h, "the report side by side", |h| shows(h, "Test 1 · Capture Moments"));
    assert!(shows(&h, "Parallel tests of Capture Moments"));
    assert!(shows(&h, "100 % success (8 of 8)"));
    assert!(shows(&h, "Projected monthly saving"));
    assert!(shows(&h, &format!("latency p50 {} ms", report.candidate.p50_ms)));
    assert_eq!(shadow_rows(&f.store), 16, "both copies of every prompt are shadow usage");
    let audit = f.store.audit_entries(&AuditFilter { action_prefix: Some("parallel_test.".into()), ..Default::default() }).unwrap();
    assert_eq!(audit.len(), 1);

    button(&h, "Start now anyway").click();
    wait_until(&mut h, "the started migration", |h| shows(h, "Migration 1 started: 5 % of Capture Moments's traffic"));
    wait_until(&mut h, "its timeline", |h| shows(h, "Timeline: planned vs actual phases") && shows(h, "running"));
    let m = f.store.migration(1).unwrap();
    assert_eq!((m.state, m.from, m.to), (MigrationState::Running, RouteTarget::Platform, RouteTarget::Account(own)));
    assert_eq!(svc.active().len(), 1, "the runtime's service drives it");

    // Five minutes later (manual clock), roll it back with a reason.
    r.clock.advance(chrono::Duration::minutes(5));
    button(&h, "Roll back…").click();
    h.step();
    h.step();
    type_into(&mut h, "Reason", "the studio asked to wait until after the season");
    button(&h, "Roll back").click();
    wait_until(&mut h, "the rollback", |h| shows(h, "Migration 1 rolled back: all of Capture Moments's traffic is back on platform AI"));
    wait_until(&mut h, "the rolled-back state", |h| shows(h, "rolled back ·") && shows(h, "the studio asked to wait"));
    let m = f.store.migration(1).unwrap();
    assert_eq!(m.state, MigrationState::RolledBack);
    assert_eq!(m.reason.as_deref(), Some("the studio asked to wait until after the season"));
    assert_eq!(m.phases[0].outcome.as_deref(), Some("rolled_back"));
    assert_eq!(m.phases[0].ended_at, Some(now + chrono::Duration::minutes(5)), "the rollback point is on the console's clock");
    assert!(svc.active().is_empty());
    let audit = f.store.audit_entries(&AuditFilter { action_prefix: Some("migration.".into()), ..Default::default() }).unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert!(actions.contains(&"migration.start") && actions.contains(&"migration.rollback"), "{actions:?}");
    let rb = audit.iter().find(|a| a.action == "migration.rollback").unwrap();
    assert_eq!(rb.supplier_id, Some(studio));
    assert!(rb.detail.contains("the studio asked to wait"), "{}", rb.detail);
    assert!(!shows(&h, "Roll back…"), "a finished migration offers no more actions");
}

#[test]
fn a_live_traffic_mirror_is_started_watched_and_stopped_from_the_console() {
    let now = Utc::now();
    let f = fixture();
    let r = routed(&f, now);
    let studio = add_supplier(&f.store, "Silver Birch Studio", Tier::Professional, VendorType::Photographer, &[]);
    r.account(&f, AccountOwner::Platform, "WedSync OpenAI", DEMO_OPENAI_KEY);
    let own = r.account(&f, AccountOwner::Supplier(studio), "Birch OpenAI", DEMO_CLIENT_OPENAI_KEY);
    f.store.set_account_key(own, Some("test-entry"), Some("sk-…0001")).unwrap();
    f.store.set_account_validation(own, ValidationStatus::Valid, "ok", now).unwrap();
    let token = switchboard::engine::gateway_tokens::issue(&f.store, studio, now, "test").unwrap().token.expose().to_string();
    r.router.reload().unwrap();
    let svc = MigrationService::new(f.store.clone(), r.router.clone(), Arc::new(r.clock.clone())).unwrap();
    let mut h = harness_at(&f, Some(r.live(&f, None, Some(svc))), Arc::new(r.clock.clone()), View::Migrations);
    wait_until(&mut h, "the empty list", |h| shows(h, "No migrations yet"));
    check_plan(&mut h, studio, |h| shows(h, "Birch OpenAI (account"));
    // The mirror's settings: a share typed in, the rest left at their defaults.
    type_into(&mut h, "Sample %", "30");
    button(&h, "Mirror live traffic").click();
    wait_until(&mut h, "the started mirror", |h| {
        shows(h, "Mirror 1 started: 30 % of Silver Birch Studio's live requests go to Birch OpenAI (account")
            && shows(h, "until 50 are compared (at most 7 days)")
    });
    wait_until(&mut h, "its progress", |h| shows(h, "Mirror 1: 30 % of Silver Birch Studio's live requests also go to Birch OpenAI"));
    assert!(shows(&h, "0 of 50"));
    let m = f.store.mirror(1).unwrap().unwrap();
    assert_eq!((m.sample_percent, m.target_requests), (30, 50));

    // Live traffic: every answer from platform AI; about a third is copied.
    r.router.reload().unwrap();
    for i in 0..40 {
        let req = switchboard::providers::ChatRequest::simple("gpt-4o-mini", &format!("Caption for photo {i}"));
        let a = f._rt.block_on(r.router.chat(Some(token.as_str()), None, None, req)).unwrap();
        assert_ne!(a.account, own, "the mirror never answers the caller");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let copies = loop {
        f._rt.block_on(r.router.ledger().flush());
        let n = shadow_rows(&f.store);
        std::thread::sleep(Duration::from_millis(200));
        f._rt.block_on(r.router.ledger().flush());
        if n > 0 && shadow_rows(&f.store) == n {
            break n;
        }
        assert!(Instant::now() < deadline, "no copies recorded");
    };
    assert!(copies < 40, "a sample, not every request: {copies}");

    button(&h, "Stop and report").click();
    wait_until(&mut h, "the report", |h| shows(h, &format!("Mirror 1 stopped: parallel test 1 compares {copies} live requests")));
    wait_until(&mut h, "the report side by side", |h| shows(h, "Test 1 · Silver Birch Studio"));
    assert!(shows(&h, "Mirror 1 to Birch OpenAI (account") && shows(&h, "done: test 1 below"));
    assert!(shows(&h, &format!("100 % success ({copies} of {copies})")));
    let m = f.store.mirror(1).unwrap().unwrap();
    assert_eq!((m.state.as_str(), m.report_id), ("done", Some(1)));
    // Stopped: later traffic is not copied.
    let req = switchboard::providers::ChatRequest::simple("gpt-4o-mini", "one more caption");
    f._rt.block_on(r.router.chat(Some(token.as_str()), None, None, req)).unwrap();
    f._rt.block_on(r.router.ledger().flush());
    assert_eq!(shadow_rows(&f.store), copies);
}

/// Opens the start form, checks `supplier`'s plan and waits until `shown`.
fn check_plan(h: &mut Harness<'static, ConsoleApp>, supplier: SupplierId, shown: impl Fn(&Harness<'static, ConsoleApp>) -> bool) {
    h.get_by_label("Start a migration…").click();
    h.step();
    type_into(h, "Supplier ID", &supplier.0.to_string());
    button(h, "Check").click();
    wait_until(h, "the checked plan", shown);
}

fn shadow_rows(store: &Store) -> i64 {
    let shadow = switchboard::domain::Route::Shadow.code();
    store.with_conn(|c| c.query_row("SELECT count(*) FROM usage_events WHERE route = ?1", [shadow], |r| r.get(0))).unwrap()
}

#[test]
fn without_a_runtime_a_parallel_test_uses_the_keychain_shows_progress_and_stops_when_asked() {
    use switchboard::engine::keys::NewKey;
    use switchboard::sim::{Faults, Latency};
    const PLATFORM_KEY: &str = "sk-console-platform-openai-0123456789ab";
    const STUDIO_KEY: &str = "sk-console-studio-openai-0123456789abcd";
    let f = fixture();
    let mut studio_account = SimAccountConfig::new("studio", ProviderKind::OpenAi, STUDIO_KEY);
    // Slow enough to watch the progress and stop between prompts.
    studio_account.faults = Faults { latency: Latency { median_ms: 400, sigma: 0.0, min_ms: 400 }, ..Faults::default() };
    let sim = f
        ._rt
        .block_on(Simulator::start(SimConfig {
            seed: 1,
            accounts: vec![SimAccountConfig::new("platform", ProviderKind::OpenAi, PLATFORM_KEY), studio_account],
        }))
        .unwrap();
    let rt = f._rt.block_on(Runtime::start(f.store.clone(), test_vault(), Arc::new(SystemClock), RuntimeOptions::default())).unwrap();
    let venue = add_supplier(&f.store, "Lakeside Venue", Tier::Professional, VendorType::Venue, &[]);
    let new = |owner, label: &str| NewKey {
        owner,
        provider: ProviderKind::OpenAi,
        label: Some(label.into()),
        base_url: Some(sim.base_url().to_string()),
        default_model: None,
        azure: None,
    };
    f._rt.block_on(rt.keys.add(new(AccountOwner::Platform, "WedSync OpenAI"), Secret::new(PLATFORM_KEY), false)).unwrap();
    let own = f
        ._rt
        .block_on(rt.keys.add(new(AccountOwner::Supplier(venue), "Lakeside OpenAI"), Secret::new(STUDIO_KEY), true))
        .unwrap()
        .account
        .id;
    let mut h = harness_at(&f, Some(LiveServices::keys_only(rt.keys.clone())), Arc::new(SystemClock), View::Migrations);
    wait_until(&mut h, "the empty list", |h| shows(h, "No migrations yet"));
    assert!(shows(&h, "This console does not route"));
    check_plan(&mut h, venue, |h| shows(h, "Lakeside OpenAI (account"));

    // Progress, then stop: the prompts sent are recorded, no report is stored.
    button(&h, "Run a parallel test").click();
    wait_until(&mut h, "the progress", |h| shows(h, "Parallel test of Lakeside Venue against Lakeside OpenAI (account"));
    wait_until(&mut h, "a prompt answered", |h| shows(h, "of 8 prompts answered by both routes"));
    button(&h, "Stop the test").click();
    wait_until(&mut h, "the stop", |h| shows(h, "Parallel test stopped after"));
    assert!(f.store.parallel_tests(Some(venue)).unwrap().is_empty(), "a stopped test stores no report");
    let sent = shadow_rows(&f.store);
    assert!((2..16).contains(&sent) && sent % 2 == 0, "both copies of each prompt sent are recorded: {sent}");

    // Run it to the end: the router of this console reads both keys from the keychain.
    button(&h, "Run a parallel test").click();
    wait_until(&mut h, "the report", |h| shows(h, "Parallel test 1 of Lakeside Venue: Lakeside OpenAI answered 8 of 8 prompts"));
    wait_until(&mut h, "the report side by side", |h| shows(h, "Test 1 · Lakeside Venue"));
    assert!(shows(&h, "100 % success (8 of 8)"));
    assert_eq!(shadow_rows(&f.store), sent + 16);
    let stored = f.store.parallel_tests(Some(venue)).unwrap();
    assert_eq!(stored.len(), 1);
    let report: switchboard::engine::parallel::ParallelReport = serde_json::from_str(&stored[0].1).unwrap();
    assert_eq!(report.candidate.account_id, own);
    assert!(report.candidate.p50_ms >= 400, "the candidate's latency is measured: {}", report.candidate.p50_ms);
    assert!(report.current.p50_ms < report.candidate.p50_ms);
    assert!(!db_bytes_contain(&f.store, PLATFORM_KEY) && !db_bytes_contain(&f.store, STUDIO_KEY));

    // The report links to planning the migration it compared.
    button(&h, "Cancel").click();
    h.step();
    h.step();
    button(&h, "Plan a migration to Lakeside OpenAI…").scroll_to_me();
    h.step();
    h.step();
    button(&h, "Plan a migration to Lakeside OpenAI…").click();
    wait_until(&mut h, "the plan from the report", |h| shows(h, "Lakeside OpenAI (account") && shows(h, "to Lakeside OpenAI (account"));
    assert!(f.store.list_migrations(None).unwrap().is_empty(), "planning writes nothing");
    f._rt.block_on(rt.shutdown());
}

/// An OpenAI account on an address nothing listens on (for views that never call it).
fn unreachable_account(store: &Store, owner: AccountOwner, label: &str) -> AccountId {
    let n = NewAccount {
        owner,
        provider: ProviderKind::OpenAi,
        label: label.into(),
        base_url: "http://127.0.0.1:9".into(),
        azure: None,
        default_model: "gpt-4o-mini".into(),
    };
    store.insert_account(&n, Utc::now()).unwrap().id
}

#[test]
fn recommendations_are_listed_plan_their_migration_and_can_be_dismissed() {
    let f = fixture();
    let now = Utc::now();
    let bloom = add_supplier(&f.store, "Bloom Florals", Tier::Starter, VendorType::Florist, &[]);
    let harbour = add_supplier(&f.store, "Harbour Venue", Tier::Scale, VendorType::Venue, &[]);
    let own = unreachable_account(&f.store, AccountOwner::Supplier(bloom), "Bloom OpenAI");
    f.store.set_account_key(own, Some("test-entry"), Some("sk-…0001")).unwrap();
    f.store.set_account_validation(own, ValidationStatus::Valid, "ok", now).unwrap();
    let quota_msg = "Bloom Florals has used 91 % of this month's platform quota (182000 of 200000 tokens). Consider client AI: run a parallel test, then migrate.";
    assert!(f.store.recommend(bloom, "move_to_client_ai", quota_msg, now).unwrap());
    assert!(f.store.recommend(harbour, "parallel_test", "Parallel test 3: Harbour OpenAI looks cheaper", now).unwrap());
    let mut h = harness_at(&f, None, Arc::new(SystemClock), View::Migrations);
    wait_until(&mut h, "the recommendations", |h| shows(h, "Recommendations (2 open)"));
    assert!(shows(&h, quota_msg) && shows(&h, "quota 90 %"));
    assert!(shows(&h, "Parallel test 3: Harbour OpenAI looks cheaper") && shows(&h, "parallel test"));

    // Newest first: Harbour's, then Bloom's. Plan Bloom's migration from its recommendation.
    let plan_buttons = |h: &Harness<'static, ConsoleApp>| {
        h.get_all_by(|n| n.role() == egui::accesskit::Role::Button && n.label().as_deref() == Some("Plan migration…")).count()
    };
    assert_eq!(plan_buttons(&h), 2);
    h.get_all_by(|n| n.role() == egui::accesskit::Role::Button && n.label().as_deref() == Some("Plan migration…")).nth(1).unwrap().click();
    wait_until(&mut h, "the plan", |h| shows(h, "platform AI to Bloom OpenAI (account"));
    assert!(shows(&h, "Bloom Florals"));
    assert!(f.store.list_migrations(None).unwrap().is_empty(), "planning writes nothing");

    // Dismiss Harbour's: gone from the list and from the store, and audited.
    h.get_all_by(|n| n.role() == egui::accesskit::Role::Button && n.label().as_deref() == Some("Dismiss")).next().unwrap().click();
    wait_until(&mut h, "the dismissal", |h| shows(h, "Dismissed the recommendation for Harbour Venue"));
    wait_until(&mut h, "the shorter list", |h| shows(h, "Recommendations (1 open)"));
    assert!(!shows(&h, "Parallel test 3: Harbour OpenAI looks cheaper"));
    let open = f.store.open_recommendations().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].supplier_id, bloom);
    let audit = f.store.audit_entries(&AuditFilter { action_prefix: Some("recommendation.".into()), ..Default::default() }).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].action.as_str(), audit[0].supplier_id), ("recommendation.dismiss", Some(harbour)));
    assert!(audit[0].detail.contains("looks cheaper"));

    // Once its migration runs, Bloom's recommendation offers no second one.
    button(&h, "Start migration").click();
    wait_until(&mut h, "the started migration", |h| shows(h, "Migration 1 started"));
    wait_until(&mut h, "the disabled plan button", |h| {
        h.query_by(|n| n.role() == egui::accesskit::Role::Button && n.label().as_deref() == Some("Plan migration…") && n.is_disabled())
            .is_some()
    });
}

#[test]
fn without_a_runtime_migration_actions_are_written_to_the_store_like_the_cli() {
    let f = fixture();
    let venue =
        f.store.insert_supplier(&NewSupplier::new("Willow Barn", VendorType::Venue, Tier::Scale, AiMode::Client), Utc::now()).unwrap().id;
    let own = unreachable_account(&f.store, AccountOwner::Supplier(venue), "Barn OpenAI");
    let mut h = harness_at(&f, None, Arc::new(SystemClock), View::Migrations);
    wait_until(&mut h, "the empty list", |h| shows(h, "No migrations yet"));
    assert!(shows(&h, "This console does not route"));
    check_plan(&mut h, venue, |h| shows(h, "Barn OpenAI (account") && shows(h, "to platform AI: 5 %"));
    button(&h, "Start migration").click();
    wait_until(&mut h, "the started migration", |h| shows(h, "a running `switchboard serve` drives its phases"));
    let m = f.store.migration(1).unwrap();
    assert_eq!((m.state, m.from, m.to), (MigrationState::Running, RouteTarget::Account(own), RouteTarget::Platform));
    wait_until(&mut h, "the pause button", |h| {
        h.query_by(|n| n.role() == egui::accesskit::Role::Button && n.label().as_deref() == Some("Pause")).is_some()
    });
    button(&h, "Pause").click();
    wait_until(&mut h, "the pause", |h| shows(h, "Migration 1 paused in phase 1"));
    assert_eq!(f.store.migration(1).unwrap().state, MigrationState::Paused);
    button(&h, "Abort…").click();
    h.step();
    h.step();
    button(&h, "Abort").click();
    wait_until(&mut h, "the abort", |h| shows(h, "Migration 1 aborted"));
    assert_eq!(f.store.migration(1).unwrap().state, MigrationState::Aborted);
    let actions: Vec<String> = f.store.audit_entries(&AuditFilter::default()).unwrap().into_iter().map(|a| a.action).collect();
    for a in ["migration.start", "migration.pause", "migration.abort"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing from {actions:?}");
    }
}

#[test]
fn health_and_migrations_views_are_in_the_navigation_and_on_the_command_line() {
    let names: Vec<&str> = View::ALL.iter().map(|v| v.slug()).collect();
    assert_eq!(names, ["overview", "suppliers", "keys", "quotas", "health", "migrations", "usage", "audit"]);
    assert_eq!(View::from_name("health"), Ok(View::Health));
    assert_eq!(View::from_name(" Migrations "), Ok(View::Migrations));
    assert!(View::from_name("alerts").unwrap_err().contains("health, migrations"));
    let f = fixture();
    let mut h = harness(&f, start(View::Overview));
    wait_until(&mut h, "the overview", |h| shows(h, "Requests today") || shows(h, "No suppliers yet"));
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Num5);
    wait_until(&mut h, "the health view", |h| shows(h, "No provider accounts yet"));
    assert_eq!(h.state().view(), View::Health);
    assert!(shows(&h, "Add a key in Keys"));
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Num6);
    wait_until(&mut h, "the migrations view", |h| shows(h, "No migrations yet"));
    assert_eq!(h.state().view(), View::Migrations);
}

#[test]
fn health_view_without_a_runtime_reads_the_stored_history_and_resolves_an_alert() {
    use switchboard::domain::health::{AlertKind, SampleSource, Severity};
    use switchboard::store::{HealthSampleRow, NewAlert};
    let f = fixture();
    let now = Utc::now();
    let n = NewAccount {
        owner: AccountOwner::Platform,
        provider: ProviderKind::Anthropic,
        label: "WedSync Anthropic".into(),
        base_url: "http://127.0.0.1:9".into(),
        azure: None,
        default_model: "claude-3-5-haiku-latest".into(),
    };
    let acc = f.store.insert_account(&n, now).unwrap().id;
    f.store.set_account_key(acc, Some("test-entry"), Some("sk-ant-…0001")).unwrap();
    // A probe every 30 s for the last 20 minutes; the last four failed.
    let rows: Vec<HealthSampleRow> = (0..40)
        .map(|i| HealthSampleRow {
            account: acc,
            at: now - chrono::Duration::seconds(30 * (40 - i)),
            ok: i < 36,
            latency_ms: 180,
            error_class: (i >= 36).then(|| "unreachable".to_string()),
            source: SampleSource::Probe,
        })
        .collect();
    f.store.insert_health_samples(&rows).unwrap();
    let raised = f
        .store
        .raise_alert(
            &NewAlert {
                kind: AlertKind::ProviderDown,
                condition_key: format!("down:account:{}", acc.0),
                severity: Severity::Critical,
                supplier_id: None,
                account_id: Some(acc),
                message: "WedSync Anthropic is down: 4 probes failed".into(),
                escalated: false,
            },
            now,
        )
        .unwrap();
    let id = match raised {
        switchboard::store::Raised::New(a) => a.id,
        other => panic!("{other:?}"),
    };
    let mut h = harness(&f, start(View::Health));
    wait_until(&mut h, "the stored board", |h| shows(h, "Provider accounts (1)"));
    assert!(shows(&h, "No health monitor runs in this console"));
    assert!(shows(&h, "10.0 %"), "the error rate of the last hour from the history (4 of 40)");
    assert!(shows(&h, "90.0 %"), "uptime over 24 h from the history");
    assert!(shows(&h, "unreachable"), "the last probe's failure");
    assert!(shows(&h, "40 samples"), "the chart reads the stored series");
    assert!(shows(&h, "WedSync Anthropic is down"));
    button(&h, "Acknowledge").click();
    wait_until(&mut h, "the acknowledgement", |h| shows(h, &format!("Alert {id} acknowledged")));
    wait_until(&mut h, "the resolve button", |h| {
        h.query_by(|n| n.role() == egui::accesskit::Role::Button && n.label().as_deref() == Some("Resolve")).is_some()
    });
    button(&h, "Resolve").click();
    wait_until(&mut h, "the resolution", |h| shows(h, &format!("Alert {id} resolved")));
    wait_until(&mut h, "the empty open list", |h| shows(h, "No open alerts."));
    let a = f.store.find_alert(id).unwrap().unwrap();
    assert!(a.acknowledged_at.is_some() && a.resolved_at.is_some());
    let audit = f.store.audit_entries(&AuditFilter { action_prefix: Some("alert.".into()), ..Default::default() }).unwrap();
    let mut actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    actions.sort();
    assert_eq!(actions, ["alert.acknowledge", "alert.resolve"]);
    assert!(audit.iter().all(|e| e.account_id == Some(acc) && e.detail.contains(&format!("alert {id}"))));
}
