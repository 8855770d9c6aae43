//! Scheduling a migration from the console: a start that a wedding blocks is
//! not offered (and says why); the suggested start is scheduled instead, shown
//! in the supplier's time zone; the view says it waits while nothing routes the
//! database, shows it as scheduled once a runtime holds the routing lock, and
//! as started when the runtime's tick reaches its time on the manual clock.

use super::*;
use switchboard::store::RoutingLock;

#[test]
fn schedules_the_suggested_start_and_shows_it_waiting_scheduled_then_started() {
    // Wednesday noon; the studio (in Berlin) marries a couple on Friday: a start now is refused.
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-10T12:00:00Z").unwrap().with_timezone(&Utc);
    let f = fixture();
    let r = routed(&f, now);
    let (studio, own, svc, mut h) = r.studio_in_migrations(&f, now, &["2026-06-12"], Some("Europe/Berlin"));

    check_plan(&mut h, studio, |h| shows(h, "Studio OpenAI (account"));
    assert!(shows(&h, "Wedding on Fri 12 Jun: no migration may start within 48 h of it."));
    assert!(shows(&h, "Starting now is refused (a wedding is within 48 h)."));
    assert!(h.query_by_label("Start now anyway").is_none() && h.query_by_label("Start migration").is_none(), "no greyed-out start");
    // The guard covers Wed 10 → Sun 14 Jun 24:00 Berlin; the suggestion is Monday's first minute there.
    let suggested = "Schedule for Mon 15 Jun 2026 00:00 CEST (Europe/Berlin)";
    assert!(shows(&h, "Suggested start, clear of weddings for the whole plan: Mon 15 Jun 2026 00:00 CEST (Europe/Berlin)."));

    // A typed time without its offset is refused in place.
    type_into(&mut h, "Or start at", "2026-06-16 09:00");
    button(&h, "Schedule").click();
    h.step();
    assert!(shows(&h, "is not an RFC 3339 time with its offset"));

    button(&h, suggested).click();
    wait_until(&mut h, "the scheduled start", |h| {
        shows(h, "Migration of Capture Moments to Studio OpenAI (account") && shows(h, "Scheduled starts (1 waiting)")
    });
    let s = &f.store.schedules(Some(studio)).unwrap()[0];
    assert_eq!(s.start_at.to_rfc3339(), "2026-06-14T22:00:00+00:00");
    assert_eq!(s.to, RouteTarget::Account(own));
    assert!(f.store.list_migrations(None).unwrap().is_empty(), "scheduling starts nothing");
    // Nothing routes this file: it says so.
    assert!(shows(&h, "No runtime routes this database now"));
    assert!(shows(&h, "no runtime routes this database, so nothing will start it"));

    // A runtime takes the routing lock: the start is shown as scheduled, naming who will start it.
    let lock = RoutingLock::acquire(f.store.sqlite_path().unwrap(), "the console", now).unwrap();
    wait_until(&mut h, "the runtime named", |h| shows(h, "Started on time by the runtime that routes this database: process"));
    assert!(h.query_all_by_label("scheduled").next().is_some());

    // Monday 00:00 Berlin: the runtime's tick starts it.
    r.clock.advance(chrono::Duration::hours(106));
    svc.tick().unwrap();
    wait_until(&mut h, "the started schedule", |h| shows(h, "started as migration #1"));
    let m = f.store.migration(1).unwrap();
    assert_eq!((m.state, m.to), (MigrationState::Running, RouteTarget::Account(own)));
    wait_until(&mut h, "its timeline", |h| shows(h, "Timeline: planned vs actual phases"));
    let actions: Vec<String> = f.store.audit_entries(&AuditFilter::default()).unwrap().into_iter().map(|a| a.action).collect();
    assert!(actions.iter().any(|a| a == "migration.schedule") && actions.iter().any(|a| a == "migration.scheduled_start"), "{actions:?}");
    drop(lock);
}

/// On an empty database the Overview leads: a checklist whose steps tick as
/// the database fills (a platform key, suppliers, a token, a runtime holding
/// the routing lock), the gateway's URL and snippets, and the "waiting for the
/// first request" light that turns green when a request is recorded.
#[test]
fn an_empty_database_shows_the_getting_started_checklist_ticking_as_the_database_fills() {
    let f = fixture();
    let mut h = harness(&f, start(View::Overview));
    wait_until(&mut h, "the checklist", |h| shows(h, "Getting started · 0 of 5 done"));
    assert!(shows(&h, "Waiting for the first request…"));
    assert!(shows(&h, "http://127.0.0.1:4480/v1"));
    assert!(shows(&h, "Run `switchboard serve` on this database."), "no switch where the console cannot route");
    assert!(!shows(&h, "Route requests from this console"));
    assert!(shows(&h, "switchboard supplier import FILE.csv"));
    for b in ["Copy curl", "Copy Python (OpenAI SDK)", "Copy Node"] {
        assert!(h.query_by_label(b).is_some(), "{b}");
    }

    let platform = unreachable_account(&f.store, AccountOwner::Platform, "WedSync OpenAI");
    f.store.set_account_key(platform, Some("test-entry"), Some("sk-…0001")).unwrap();
    let studio = add_supplier(&f.store, "Capture Moments", Tier::Professional, VendorType::Photographer, &[]);
    switchboard::engine::gateway_tokens::issue(&f.store, studio, Utc::now(), "tester").unwrap();
    wait_until(&mut h, "three steps done", |h| shows(h, "Getting started · 3 of 5 done"));
    assert!(shows(&h, "2. Add suppliers (1)") && shows(&h, "3. Issue gateway tokens (1)"));

    let lock = RoutingLock::acquire(f.store.sqlite_path().unwrap(), "switchboard serve", Utc::now()).unwrap();
    wait_until(&mut h, "the gateway step", |h| shows(h, "Getting started · 4 of 5 done"));
    assert!(shows(&h, &format!("Routing: process {} on host", std::process::id())));
    f.store.append_usage(&[usage_event("first", Utc::now().date_naive(), studio, 100)]).unwrap();
    wait_until(&mut h, "the first request", |h| shows(h, "Getting started · 5 of 5 done") && shows(h, "First request received"));
    assert!(!shows(&h, "Waiting for the first request…"));
    // Completed while on screen, it stays ticked until hidden; then it steps aside.
    h.get_by_label("Hide the checklist").click();
    h.step();
    h.step();
    assert!(!shows(&h, "Getting started"), "a complete checklist steps aside");
    drop(lock);
}
