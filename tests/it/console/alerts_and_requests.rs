//! The console's Alerts view (an incident's alerts grouped into one row, bulk
//! acknowledge, CSV export), Request log (search the ledger, a request's
//! details) and the audit log's before → after, through egui_kittest against
//! a real SQLite store.

use super::*;
use switchboard::domain::health::{AlertKind, AlertRules, Thresholds, Verdict};
use switchboard::domain::{AccountOwner, ManualClock, ProviderKind, RequestType, Route, UsageStatus};
use switchboard::engine::alerts::AlertService;
use switchboard::engine::router::RouterEvent;
use switchboard::store::NewAccount;

fn account(store: &Store, owner: AccountOwner, label: &str) -> switchboard::domain::AccountId {
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

/// One incident, as the runtime's alert service sees it from the health
/// monitor and the router: `supplier`'s own account `own` opens its breaker,
/// the supplier fails over to `platform` (and stays there), `own` is degraded
/// at 10 s and down at 40 s, 90 s in all; then `quota` nears its quota.
pub(super) fn raise_an_incident(
    store: &Arc<Store>,
    supplier: SupplierId,
    own: switchboard::domain::AccountId,
    platform: switchboard::domain::AccountId,
    quota: SupplierId,
) -> AlertService {
    let clock = ManualClock::new(Utc::now());
    let alerts = AlertService::new(store.clone(), Arc::new(clock.clone()), AlertRules::default(), None);
    let own_acc = store.account(own).unwrap();
    alerts.on_router_event(&RouterEvent::BreakerOpened { account: own }, false).unwrap();
    alerts.on_router_event(&RouterEvent::FailoverStarted { supplier, account: platform }, false).unwrap();
    for s in 0..90 {
        if s == 10 {
            alerts.on_verdict(own, Some(&own_acc), Verdict::Degraded, None, false, Thresholds::NORMAL).unwrap();
        }
        if s == 40 {
            alerts.on_verdict(own, Some(&own_acc), Verdict::Down, None, false, Thresholds::NORMAL).unwrap();
        }
        alerts.tick(|_| false).unwrap();
        clock.advance(chrono::Duration::seconds(1));
    }
    alerts.on_router_event(&RouterEvent::QuotaWarning { supplier: quota, used: 46_000, quota: 50_000 }, false).unwrap();
    alerts
}

#[test]
fn alerts_view_groups_an_incident_into_one_row_and_acknowledges_in_bulk() {
    let f = fixture();
    let willow = add_supplier(&f.store, "Willow Promise Catering", Tier::Professional, VendorType::Caterer, &[]);
    let quota = add_supplier(&f.store, "Quota Studio", Tier::Starter, VendorType::Photographer, &[]);
    let platform = account(&f.store, AccountOwner::Platform, "WedSync OpenAI");
    let own = account(&f.store, AccountOwner::Supplier(willow), "Willow OpenAI");
    raise_an_incident(&f.store, willow, own, platform, quota);
    let raised = f.store.list_alerts(true, 100).unwrap();
    assert_eq!(raised.len(), 4, "degraded, down, the lasting failover, the quota warning: {raised:#?}");
    assert_eq!(raised.iter().filter(|a| a.incident_id.is_some()).count(), 3);
    assert!(raised.iter().any(|a| a.kind == AlertKind::FailoverStarted));

    let mut h = harness(&f, start(View::Alerts));
    wait_until(&mut h, "the alert groups", |h| shows(h, "4 open alerts in 1 open incident"));
    // Two rows: the incident (three alerts) and the quota warning alone.
    assert_eq!(h.query_all_by_label("Incident").count(), 1);
    assert_eq!(h.query_all_by_label("Alert").count(), 1);
    assert!(shows(&h, "Willow OpenAI (Willow Promise Catering) — degraded, down, 1 supplier failing over"));
    assert!(shows(&h, "Quota Studio (supplier"));
    h.get_by_label("Show 3 alerts").click();
    wait_until(&mut h, "the incident's alerts", |h| shows(h, "requests fall back to platform AI, WedSync OpenAI"));

    h.get_by_label("Select all").click();
    h.step();
    h.get_by_label("Acknowledge selected (4)").click();
    wait_until(&mut h, "the bulk acknowledgement", |h| shows(h, "Acknowledged 4 alerts"));
    let now_open = f.store.list_alerts(true, 100).unwrap();
    assert!(now_open.iter().all(|a| a.acknowledged_at.is_some()), "{now_open:#?}");
    let audit = f.store.audit_entries(&AuditFilter { action_prefix: Some("alert.acknowledge".into()), ..Default::default() }).unwrap();
    assert_eq!(audit.len(), 4, "each acknowledged alert is audited");
    wait_until(&mut h, "the acknowledged rows", |h| {
        h.query_all_by_label("acknowledged").count() >= 2 && !shows(h, "Acknowledge selected (4)")
    });
}

#[test]
fn alerts_and_the_audit_log_export_as_formula_safe_csv() {
    let f = fixture();
    let s = add_supplier(&f.store, "=HYPERLINK(\"x\") Films", Tier::Starter, VendorType::Photographer, &[]);
    let alerts = AlertService::new(f.store.clone(), Arc::new(SystemClock), AlertRules::default(), None);
    alerts.on_router_event(&RouterEvent::QuotaExceeded { supplier: s, used: 50_000, quota: 50_000, wedding_day: false }, false).unwrap();
    f.store.audit(Utc::now(), "ann", "supplier.edit", Some(s), None, "ok", "tier: starter -> scale").unwrap();
    let (handle, mut events) =
        console::spawn(f._rt.handle(), f.store.clone(), Arc::new(SystemClock), QuotaPolicy::default(), Arc::new(|| {}));
    let dir = tempfile::tempdir().unwrap();
    let next = |events: &mut console::ConsoleEvents| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(ev) = events.try_next() {
                return ev;
            }
            assert!(Instant::now() < deadline, "no answer");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    handle.send(console::ConsoleCommand::ExportAlerts(dir.path().to_path_buf())).unwrap();
    let path = match next(&mut events) {
        console::ConsoleEvent::ListExported { what: "alerts", summary } => summary.path,
        other => panic!("{other:?}"),
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(&r.headers().unwrap()[2], "raised_utc");
    let row = r.records().next().unwrap().unwrap();
    assert_eq!(&row[3], "quota_exceeded");
    assert_eq!(&row[4], "critical");
    assert!(row[6].starts_with("'="), "a name that is a formula is written as text: {}", &row[6]);
    assert!(chrono::NaiveDateTime::parse_from_str(&row[2], "%Y-%m-%dT%H:%M:%S").is_ok(), "{}", &row[2]);

    handle
        .send(console::ConsoleCommand::ExportAudit { query: switchboard::domain::AuditQuery::default(), dir: dir.path().to_path_buf() })
        .unwrap();
    let path = match next(&mut events) {
        console::ConsoleEvent::ListExported { what: "audit log", summary } => {
            assert_eq!(summary.rows, 1);
            summary.path
        }
        other => panic!("{other:?}"),
    };
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("id,time_utc,actor,action,supplier_id,supplier_name,account_id,result,detail\n"), "{text}");
    assert!(text.contains("tier: starter -> scale"));
    assert!(text.contains("\"'=HYPERLINK"), "a name that is a formula is written as text: {text}");
}

fn event(id: &str, at: chrono::DateTime<Utc>, supplier: SupplierId, model: &str, route: Route, status: UsageStatus) -> UsageEvent {
    let mut e = usage_event(id, at.date_naive(), supplier, 1_000);
    e.ts = at;
    e.request_id = format!("req-{id}");
    e.idempotency_key = Some(format!("idem-{id}"));
    e.model = model.into();
    e.route = route;
    e.status = status;
    e.request_type = RequestType::EmailTemplate;
    e.error_class = (status == UsageStatus::Error).then(|| "provider_5xx".to_string());
    e
}

#[test]
fn request_log_searches_the_ledger_within_a_day_and_shows_a_requests_details() {
    let f = fixture();
    let a = add_supplier(&f.store, "Capture Moments", Tier::Professional, VendorType::Photographer, &[]);
    let b = add_supplier(&f.store, "Bloom Florals", Tier::Starter, VendorType::Florist, &[]);
    let now = Utc::now();
    let today = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    f.store
        .append_usage(&[
            event("ev-ok-1", today + chrono::Duration::minutes(1), a, "gpt-4o-mini", Route::Platform, UsageStatus::Ok),
            event("ev-err-1", today + chrono::Duration::minutes(2), a, "gpt-4o", Route::Failover, UsageStatus::Error),
            event("ev-ok-2", today + chrono::Duration::minutes(3), b, "gpt-4o-mini", Route::Client, UsageStatus::Ok),
            // Yesterday: outside the default window.
            event("ev-old", today - chrono::Duration::hours(2), a, "gpt-4o-mini", Route::Platform, UsageStatus::Error),
        ])
        .unwrap();

    let mut h = harness(&f, start(View::Requests));
    wait_until(&mut h, "today's requests", |h| shows(h, "3 requests"));
    assert!(h.query_by_label("Request ev-old").is_none(), "a day by default");
    assert!(h.query_by_label("Request ev-ok-2").is_some());
    pick(&mut h, "Status", 0, "failed or cancelled");
    wait_until(&mut h, "the failed one", |h| shows(h, "1 request ·"));
    assert!(h.query_by_label("Request ev-ok-1").is_none());
    h.get_by_label("Request ev-err-1").click();
    wait_until(&mut h, "its details", |h| shows(h, "Request details"));
    for text in ["ev-err-1", "req-ev-err-1", "idem-ev-err-1", "provider_5xx", "failover", "gpt-4o", "Capture Moments (ID"] {
        assert!(shows(&h, text), "details show {text}");
    }
    // A wider window finds yesterday's failure too; a window past 31 days is refused in place.
    h.get_by_label("From").click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.step();
    h.get_by_label("From").type_text(&(now.date_naive() - chrono::Duration::days(1)).to_string());
    wait_until(&mut h, "two failures", |h| shows(h, "2 requests"));
    h.get_by_label("From").click();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.step();
    h.get_by_label("From").type_text(&(now.date_naive() - chrono::Duration::days(40)).to_string());
    wait_until(&mut h, "the window refused", |h| shows(h, "search at most 31 days at a time"));
}

#[test]
fn audit_log_shows_an_edit_before_and_after_and_nothing_for_a_save_that_changed_nothing() {
    let f = fixture();
    let id = add_supplier(&f.store, "Golden Hour Venue", Tier::Starter, VendorType::Venue, &[]);
    let mut h = harness(&f, start(View::Suppliers));
    wait_until(&mut h, "the row", |h| shows(h, "Supplier Golden Hour Venue"));
    h.get_by_label("Supplier Golden Hour Venue").click();
    wait_until(&mut h, "the detail panel", |h| shows(h, "Edit") && shows(h, "Tokens per day"));
    h.get_by_label("Edit").click();
    h.step();
    h.step();
    pick(&mut h, "Tier", 1, "scale");
    h.get_by_label("Save").click();
    wait_until(&mut h, "the saved notification", |h| shows(h, "Saved 'Golden Hour Venue'"));
    // Save again without changing anything: no entry.
    let saved_at = f.store.supplier(id).unwrap().updated_at;
    wait_until(&mut h, "the detail panel", |h| shows(h, "Edit"));
    h.get_by_label("Edit").click();
    h.step();
    h.step();
    h.get_by_label("Save").click();
    let store = f.store.clone();
    wait_until(&mut h, "the second save", move |_| store.supplier(id).unwrap().updated_at > saved_at);
    assert_eq!(f.store.supplier(id).unwrap().tier, Tier::Scale);
    let edits = f.store.audit_entries(&AuditFilter { action_prefix: Some("supplier.edit".into()), ..Default::default() }).unwrap();
    assert_eq!(edits.len(), 1, "{edits:#?}");

    let mut h = harness(&f, start(View::Audit));
    wait_until(&mut h, "the audit log", |h| shows(h, "1 entry"));
    assert!(shows(&h, "tier: starter -> scale"));
}

#[test]
fn the_audit_log_is_strictly_newest_first() {
    let f = fixture();
    let t = |s: &str| s.parse::<chrono::DateTime<Utc>>().unwrap();
    // A background writer appends an older entry after a newer one.
    f.store.audit(t("2026-04-10T10:00:02Z"), "runtime", "breaker.open", None, None, "ok", "second").unwrap();
    f.store.audit(t("2026-04-10T10:00:01Z"), "runtime", "failover.start", None, None, "ok", "first").unwrap();
    f.store.audit(t("2026-04-10T10:00:02Z"), "runtime", "breaker.close", None, None, "ok", "third, same time").unwrap();
    let rows = f.store.audit_entries(&AuditFilter::default()).unwrap();
    let details: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
    assert_eq!(details, ["third, same time", "second", "first"]);
    let rows = f.store.audit_search(&switchboard::domain::AuditQuery::default()).unwrap();
    let details: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
    assert_eq!(details, ["third, same time", "second", "first"]);
}

#[test]
fn critical_alerts_become_desktop_notifications_once_off_the_ui_thread() {
    let f = fixture();
    let platform = account(&f.store, AccountOwner::Platform, "WedSync OpenAI");
    let old = account(&f.store, AccountOwner::Platform, "WedSync Anthropic");
    let alerts = AlertService::new(f.store.clone(), Arc::new(SystemClock), AlertRules::default(), None);
    // Open before notifications are switched on: not news.
    let old_acc = f.store.account(old).unwrap();
    alerts.on_verdict(old, Some(&old_acc), Verdict::Down, None, false, Thresholds::NORMAL).unwrap();
    let got: Arc<parking_lot::Mutex<Vec<switchboard::console::notify::Note>>> = Arc::default();
    let sink: switchboard::console::notify::Sink = {
        let got = got.clone();
        Arc::new(move |n| got.lock().push(n))
    };
    let (handle, _events) = console::spawn_with(
        f._rt.handle(),
        f.store.clone(),
        Arc::new(SystemClock),
        QuotaPolicy::default(),
        Arc::new(|| {}),
        console::ServiceOptions { notify_sink: Some(sink), ..Default::default() },
    );
    handle.send(console::ConsoleCommand::SetDesktopNotifications(true)).unwrap();
    std::thread::sleep(switchboard::console::notify::POLL + Duration::from_millis(500));
    assert!(got.lock().is_empty(), "alerts open before the switch are not notified");
    // The platform account goes down: critical, one notification for its incident.
    let acc = f.store.account(platform).unwrap();
    alerts.on_verdict(platform, Some(&acc), Verdict::Degraded, None, false, Thresholds::NORMAL).unwrap();
    alerts.on_verdict(platform, Some(&acc), Verdict::Down, None, false, Thresholds::NORMAL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(switchboard::console::notify::POLL + Duration::from_millis(500));
    let notes = got.lock().clone();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(notes[0].critical);
    assert!(notes[0].body.starts_with("platform account WedSync OpenAI"), "{}", notes[0].body);
    // Switched off: nothing more.
    handle.send(console::ConsoleCommand::SetDesktopNotifications(false)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let q = switchboard::domain::SupplierId(0);
    let _ = q;
    alerts.on_router_event(&RouterEvent::QuotaExceeded { supplier: q, used: 1, quota: 1, wedding_day: false }, false).unwrap();
    std::thread::sleep(switchboard::console::notify::POLL + Duration::from_millis(500));
    assert_eq!(got.lock().len(), 1, "off means off");
}
