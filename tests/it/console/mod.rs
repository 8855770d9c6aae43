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

mod alerts_and_requests;
mod fleet;
mod health_and_migrations;
mod import;
mod pickers;
mod readme_shots;
mod routing;
mod schedule;
mod usage_and_export;

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
                labels.borrow_mut().extend(n.label().or_else(|| n.value()));
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

/// The full gateway token the one-time dialog shows (a masked one has `…`).
fn shown_token(h: &Harness<'static, ConsoleApp>) -> Option<String> {
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
    found.into_inner()
}

/// eframe's storage, in memory (what the desktop app keeps in its config folder).
#[derive(Default)]
struct MemStorage(std::collections::HashMap<String, String>);

impl eframe::Storage for MemStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

/// Types into the first field labelled `label`.
fn type_into(h: &mut Harness<'static, ConsoleApp>, label: &str, text: &str) {
    h.get_all_by_label(label).next().unwrap().click();
    h.step();
    h.get_all_by_label(label).next().unwrap().type_text(text);
    h.step();
}

/// The text field labelled `label` (not a label or a table cell with the same words).
fn field<'a>(h: &'a Harness<'static, ConsoleApp>, label: &'a str) -> egui_kittest::Node<'a> {
    h.get_by(|n| n.role() == egui::accesskit::Role::TextInput && n.label().as_deref() == Some(label))
}

/// Types `typed` into the picker labelled `label` and clicks the match whose name is `name`.
fn choose(h: &mut Harness<'static, ConsoleApp>, label: &str, typed: &str, name: &str) {
    field(h, label).click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    field(h, label).type_text(typed);
    h.step();
    h.step();
    let item = format!("{name}  —  ");
    h.get_by(|n| n.role() == egui::accesskit::Role::Button && n.label().is_some_and(|l| l.starts_with(&item))).click();
    h.step();
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
    assert_eq!(audit[0].detail, "tier: starter -> enterprise; weddings: +2027-09-18", "before → after");
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
    let opts = ServiceOptions { live: Some(live), ..Default::default() };
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
    let dir = store.sqlite_path().unwrap().parent().unwrap().to_path_buf();
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
    choose(&mut h, "Owner", "capture", "Capture Moments");
    assert_eq!(field(&h, "Owner").value().as_deref(), Some("Capture Moments"), "the chosen name fills the field");
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
    // The ID works as well as the name.
    field(&h, "Token for").click();
    h.step();
    field(&h, "Token for").type_text(&supplier.0.to_string());
    h.step();
    h.get_by_label("Issue token").click();
    wait_until(&mut h, "the one-time dialog", |h| shows(h, "New gateway token for Willow Lane Estate"));
    assert!(shows(&h, "it will not be shown again"));
    let token = shown_token(&h).expect("the full token is shown once");
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

use switchboard::domain::{PricingTable, RequestType, Route, TokenUsage, UsageEvent, UsageStatus};

fn pricing() -> &'static PricingTable {
    static P: std::sync::OnceLock<PricingTable> = std::sync::OnceLock::new();
    P.get_or_init(PricingTable::builtin)
}

fn usage_event(id: &str, day: NaiveDate, supplier: SupplierId, input: u64) -> UsageEvent {
    let usage = TokenUsage { input, output: input / 2, ..TokenUsage::default() };
    UsageEvent {
        saved: switchboard::domain::Micros::ZERO,
        event_id: id.into(),
        request_id: id.into(),
        idempotency_key: None,
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

    /// "Capture Moments", a photographer with `weddings` (in `time_zone`, or
    /// UTC), a platform account and its own validated one; then the
    /// Migrations view with a migration service, on its empty list.
    fn studio_in_migrations(
        &self,
        f: &Fixture,
        now: chrono::DateTime<Utc>,
        weddings: &[&str],
        time_zone: Option<&str>,
    ) -> (SupplierId, AccountId, Arc<MigrationService>, Harness<'static, ConsoleApp>) {
        let mut n = NewSupplier::new("Capture Moments", VendorType::Photographer, Tier::Professional, AiMode::Platform);
        n.weddings = weddings.iter().map(|d| d.parse().unwrap()).collect();
        if let Some(tz) = time_zone {
            n.time_zone = tz.parse().unwrap();
        }
        let studio = f.store.insert_supplier(&n, now).unwrap().id;
        self.account(f, AccountOwner::Platform, "WedSync OpenAI", DEMO_OPENAI_KEY);
        let own = self.account(f, AccountOwner::Supplier(studio), "Studio OpenAI", DEMO_CLIENT_OPENAI_KEY);
        f.store.set_account_key(own, Some("test-entry"), Some("sk-…0001")).unwrap();
        f.store.set_account_validation(own, ValidationStatus::Valid, "ok", now).unwrap();
        self.router.reload().unwrap();
        let svc = MigrationService::new(f.store.clone(), self.router.clone(), Arc::new(self.clock.clone())).unwrap();
        let live = self.live(f, None, Some(svc.clone()));
        let mut h = harness_at(f, Some(live), Arc::new(self.clock.clone()), View::Migrations);
        wait_until(&mut h, "the empty list", |h| shows(h, "No migrations yet"));
        (studio, own, svc, h)
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
    let opts = ServiceOptions { live, ..Default::default() };
    let (handle, events) = console::spawn_with(f._rt.handle(), f.store.clone(), clock, QuotaPolicy::default(), Arc::new(|| {}), opts);
    let app = ConsoleApp::new(handle, events, start(view), None);
    Harness::builder()
        .with_size(egui::vec2(1360.0, 860.0))
        .with_context_setup(switchboard::ui::theme::install)
        .build_ui_state(|ui, app: &mut ConsoleApp| app.frame(ui), app)
}

/// Opens the start form, checks `supplier`'s plan and waits until `shown`.
fn check_plan(h: &mut Harness<'static, ConsoleApp>, supplier: SupplierId, shown: impl Fn(&Harness<'static, ConsoleApp>) -> bool) {
    check_plan_with(h, supplier, "", shown);
}

/// [`check_plan`] with `phases` typed into the form's Phases field first (empty: the default plan).
fn check_plan_with(
    h: &mut Harness<'static, ConsoleApp>,
    supplier: SupplierId,
    phases: &str,
    shown: impl Fn(&Harness<'static, ConsoleApp>) -> bool,
) {
    h.get_by_label("Start a migration…").click();
    h.step();
    if !phases.is_empty() {
        field(h, "Phases").click();
        h.step();
        field(h, "Phases").type_text(phases);
        h.step();
    }
    field(h, "Supplier").click();
    h.step();
    field(h, "Supplier").type_text(&supplier.0.to_string());
    h.step();
    button(h, "Check").click();
    wait_until(h, "the checked plan", shown);
}

fn shadow_rows(store: &Store) -> i64 {
    let shadow = switchboard::domain::Route::Shadow.code();
    store.with_conn(|c| c.query_row("SELECT count(*) FROM usage_events WHERE route = ?1", [shadow], |r| r.get(0))).unwrap()
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
