//! The console's Usage & cost view: CSV export and projections.

use super::*;

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
        shows(
            &h,
            &format!(
                "This month: {} so far, {} projected by its end",
                switchboard::ui::views::fmt_money(to_date),
                switchboard::ui::views::fmt_money(month_end)
            )
        ),
        "the engine's sums, in dollars"
    );
    // A supplier well under quota is not flagged (it is only in the top-suppliers table).
    assert_eq!(h.query_all_by_label_contains("Quiet Florals").count(), 1, "a supplier well under quota is not flagged");
    assert!(shows(&h, "starter"));
    assert!(shows(&h, "Method: recent average for 2 suppliers"), "the method and history are shown");
    // The metric's button (the top-suppliers table has a "Tokens" column too).
    button(&h, "Tokens").click();
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
        granularity: Default::default(),
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

#[test]
fn usage_shows_what_the_response_cache_saved_by_day_and_supplier_and_purges_it() {
    let f = fixture();
    let (overflow, _) = seed_usage(&f.store);
    let today = Utc::now().date_naive();
    // Two hits today for Overflow Studio, each saving what its call cost.
    let hits: Vec<UsageEvent> = (0..2)
        .map(|i| {
            let mut e = usage_event(&format!("hit-{i}"), today, overflow, 6_000);
            e.route = Route::Cache;
            e.saved = e.cost;
            e.cost = switchboard::domain::Micros::ZERO;
            e
        })
        .collect();
    let saved = hits[0].saved.0 * 2;
    f.store.append_usage(&hits).unwrap();
    let mut h = tall(&f, start(View::Usage));
    wait_until(&mut h, "the cache panel", |h| shows(h, "Response cache"));
    let fmt = switchboard::ui::views::fmt_money;
    // Today Overflow answered 3 requests, 2 from the cache; Quiet Florals 1.
    assert!(shows(&h, &format!("· {} saved", fmt(saved))), "the total saved, from the ledger");
    assert!(shows(&h, "2 hits of"), "hits of answered requests");
    assert!(shows(&h, "Per day, by supplier"));
    assert!(shows(&h, "66.7 %"), "Overflow's hit rate today: 2 of 3");
    assert!(h.query_all_by_label_contains("Overflow Studio").count() >= 2, "in the daily table and by supplier");
    // The whole cache's purge asks first, then is done and audited.
    button(&h, "Purge the whole cache…").click();
    wait_until(&mut h, "the confirmation", |h| shows(h, "Delete every supplier's cached answers?"));
    button(&h, "Purge the cache").click();
    wait_until(&mut h, "the purge notification", |h| shows(h, "Purged the whole response cache"));
    let audit = f.store.audit_entries(&AuditFilter::default()).unwrap();
    assert!(audit.iter().any(|a| a.action == "cache.purge" && a.supplier_id.is_none()), "{audit:?}");
}
