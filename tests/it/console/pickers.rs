//! Picking by name, and nothing typed lost: the type-ahead picker (keyboard
//! and mouse) in Quotas and the key form, a wedding date typed but not added
//! that is saved with the supplier (or stops the save, saying why), a past
//! date said so, a client-mode supplier without a key asked about before it
//! is saved, and view settings kept per database.

use super::*;
use switchboard::domain::ManualClock;

fn fixed_clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new("2026-06-15T10:00:00Z".parse::<chrono::DateTime<Utc>>().unwrap()))
}

#[test]
fn quotas_picks_any_supplier_by_name_with_the_keyboard() {
    let f = fixture();
    add_supplier(&f.store, "Amber Lane Estate", Tier::Professional, VendorType::Venue, &[]);
    add_supplier(&f.store, "Fern & Petal Florals", Tier::Starter, VendorType::Florist, &[]);
    let wild = add_supplier(&f.store, "Wildflower Florals", Tier::Scale, VendorType::Florist, &[]);
    let mut h = harness(&f, start(View::Quotas));
    wait_until(&mut h, "the quota chart", |h| shows(h, "Month-to-date usage against the monthly quota"));

    // Part of a word, the vendor type: both florists are listed, by name.
    field(&h, "Show supplier").click();
    h.step();
    field(&h, "Show supplier").type_text("flor");
    h.step();
    h.step();
    let listed = |h: &Harness<'static, ConsoleApp>, name: &str| {
        h.query_all_by(|n| n.role() == egui::accesskit::Role::Button && n.label().is_some_and(|l| l.starts_with(&format!("{name}  —  "))))
            .next()
            .is_some()
    };
    assert!(listed(&h, "Fern & Petal Florals") && listed(&h, "Wildflower Florals"));
    assert!(!listed(&h, "Amber Lane Estate"), "a supplier that does not match is not listed");
    assert!(shows(&h, &format!("florist · scale · platform AI · #{}", wild.0)), "vendor type, tier, mode and ID are shown");

    // ↓ then Enter picks the second match; its chart is shown.
    h.key_press(egui::Key::ArrowDown);
    h.step();
    h.key_press(egui::Key::Enter);
    h.step();
    assert_eq!(field(&h, "Show supplier").value().as_deref(), Some("Wildflower Florals"));
    wait_until(&mut h, "the picked supplier's chart", |h| shows(h, "florist · scale tier · platform AI"));
    assert!(!listed(&h, "Fern & Petal Florals"), "the list closes once a supplier is picked");

    // The ID works as well, and the mouse picks.
    field(&h, "Show supplier").click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    field(&h, "Show supplier").type_text("#1");
    h.step();
    h.step();
    h.get_by(|n| n.role() == egui::accesskit::Role::Button && n.label().is_some_and(|l| l.starts_with("Amber Lane Estate  —  "))).click();
    h.step();
    wait_until(&mut h, "the first supplier's chart", |h| shows(h, "venue · professional tier · platform AI"));
}

#[test]
fn a_typed_wedding_date_is_saved_not_dropped_and_a_half_typed_one_stops_the_save() {
    let f = fixture();
    let mut h = harness_clocked(&f, start(View::Suppliers), egui::vec2(1360.0, 860.0), fixed_clock());
    wait_until(&mut h, "the empty state", |h| shows(h, "No suppliers yet"));
    h.get_by_label("Add supplier").click();
    h.step();
    type_into(&mut h, "Name", "Golden Hour Venue");

    // A date in the past is added, and said so (see also the unit test of `Form::add_date`).
    type_into(&mut h, "Wedding date", "2026-05-02");
    h.get_by_label("Add date").click();
    h.step();
    h.step();

    // Half typed: Save refuses, saying why; nothing is written.
    type_into(&mut h, "Wedding date", "2026-09-1");
    h.get_by_label("Save").click();
    h.step();
    h.step();
    assert!(shows(&h, "The wedding date '2026-09-1' is not added yet"));
    assert_eq!(f.store.count_suppliers().unwrap(), 0);

    // Typed in full but not added: Save adds it.
    h.get_by_label("Wedding date").click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label("Wedding date").type_text("2026-09-12");
    h.step();
    h.get_by_label("Save").click();
    wait_until(&mut h, "the saved notification", |h| shows(h, "Added 'Golden Hour Venue'"));
    let all = f.store.list_suppliers(&SupplierFilter::default()).unwrap();
    let days: Vec<NaiveDate> = ["2026-05-02", "2026-09-12"].iter().map(|d| d.parse().unwrap()).collect();
    assert_eq!(all[0].weddings, days, "the date typed but not added is saved too");
    wait_until(&mut h, "the new row with its ID", |h| shows(h, "Supplier Golden Hour Venue"));
    h.get_by_label("Supplier Golden Hour Venue").click();
    wait_until(&mut h, "the detail with the ID", |h| shows(h, &format!("ID {} · photographer", all[0].id.0)));
}

#[test]
fn a_client_mode_supplier_without_a_key_is_asked_about_with_the_routing_consequence() {
    let f = fixture();
    let mut h = harness(&f, start(View::Suppliers));
    wait_until(&mut h, "the empty state", |h| shows(h, "No suppliers yet"));
    h.get_by_label("Add supplier").click();
    h.step();
    type_into(&mut h, "Name", "Own Key Studio");
    pick(&mut h, "AI mode", 0, "client");
    assert!(shows(&h, "until one is added in Keys, its requests will go to platform AI"), "the consequence is shown before saving");
    h.get_by_label("Fail over to platform AI when its own provider is down").click();
    h.step();
    assert!(shows(&h, "its requests will fail"), "without failover the requests fail");
    h.get_by_label("Save").click();
    h.step();
    h.step();
    assert!(shows(&h, "Save this supplier in client mode?"));
    assert_eq!(f.store.count_suppliers().unwrap(), 0, "nothing is saved before the answer");
    button(&h, "Save anyway").click();
    wait_until(&mut h, "the saved notification", |h| shows(h, "Added 'Own Key Studio'"));
    let s = &f.store.list_suppliers(&SupplierFilter::default()).unwrap()[0];
    assert_eq!((s.ai_mode, s.allow_platform_failover), (AiMode::Client, false));
}

#[test]
fn view_settings_belong_to_the_database_they_were_made_on() {
    let f = fixture();
    let mut storage = MemStorage::default();
    let app = |db: &str, storage: &MemStorage| {
        let (handle, events) =
            console::spawn(f._rt.handle(), f.store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}));
        let opts = AppOptions { db_label: db.into(), ..start(View::Usage) };
        Harness::builder()
            .with_size(egui::vec2(1360.0, 860.0))
            .with_context_setup(switchboard::ui::theme::install)
            .build_ui_state(|ui, app: &mut ConsoleApp| app.frame(ui), ConsoleApp::new(handle, events, opts, Some(storage)))
    };
    let mut a = app("/data/a.db", &storage);
    a.step();
    a.get_by_label("90 days").click();
    a.step();
    a.get_by_label("Weekly").click();
    a.step();
    eframe::App::save(a.state_mut(), &mut storage);
    let chosen = a.state().view_settings().usage;
    assert_eq!(chosen.granularity, console::UsageGranularity::Week);

    let b = app("/data/b.db", &storage);
    assert_eq!(b.state().view_settings().usage.granularity, console::UsageGranularity::Day, "another database starts with defaults");
    let again = app("/data/a.db", &storage);
    assert_eq!(again.state().view_settings().usage.granularity, console::UsageGranularity::Week, "its own settings come back");
    assert_eq!(format!("{:?}", again.state().view_settings().usage.range), format!("{:?}", chosen.range));
}
