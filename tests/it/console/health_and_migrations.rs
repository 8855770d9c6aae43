//! The console's Health and Migrations views: alerts, migrations, parallel tests, mirrors and recommendations.

use super::*;

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
    let (studio, own, svc, mut h) = r.studio_in_migrations(&f, now, &["2026-06-12"], None);
    assert!(shows(&h, "No parallel test yet"));

    h.get_by_label("Start a migration…").click();
    h.step();
    // A name that matches no supplier is refused in place, saying what to do.
    field(&h, "Supplier").click();
    h.step();
    field(&h, "Supplier").type_text("nobody");
    h.step();
    button(&h, "Check").click();
    h.step();
    assert!(shows(&h, "No supplier matches 'nobody'"));
    // Picked by part of its name from the list: the plan is checked at once.
    choose(&mut h, "Supplier", "capt", "Capture Moments");
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
    // The usage reaches the database with the journal's next fold (up to 100 ms later; more on a loaded machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while shadow_rows(&f.store) < 16 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
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
    assert_eq!(
        names,
        ["overview", "suppliers", "keys", "quotas", "health", "alerts", "migrations", "usage", "requests", "audit", "instances"]
    );
    assert_eq!(View::from_name("health"), Ok(View::Health));
    assert_eq!(View::from_name(" Migrations "), Ok(View::Migrations));
    assert_eq!(View::from_name("alerts"), Ok(View::Alerts));
    assert_eq!(View::from_name("requests"), Ok(View::Requests));
    assert!(View::from_name("incidents").unwrap_err().contains("health, alerts, migrations"));
    let f = fixture();
    let mut h = harness(&f, start(View::Overview));
    wait_until(&mut h, "the overview", |h| shows(h, "Requests today") || shows(h, "No suppliers yet"));
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Num5);
    wait_until(&mut h, "the health view", |h| shows(h, "No provider accounts yet"));
    assert_eq!(h.state().view(), View::Health);
    assert!(shows(&h, "Add a key in Keys"));
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Num6);
    wait_until(&mut h, "the alerts view", |h| shows(h, "No open alerts"));
    assert_eq!(h.state().view(), View::Alerts);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Num7);
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
                incident_id: None,
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

/// The live demo's senders: on a day when every client-mode sender but the
/// first has a wedding within 48 h (2026-12-04 for this demo: the suppliers
/// it used to pick had weddings on 2 and 5 December), one that may start a
/// migration is swapped in, so the demo shows a migration every day.
#[test]
fn the_live_demo_picks_a_sender_that_may_start_its_migration_whatever_the_day() {
    use switchboard::domain::migration::next_allowed;
    use switchboard::engine::demo_traffic::choose_senders;
    let f = fixture();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
    switchboard::engine::demo::generate(&f.store, &DemoConfig::new(24, 3, 11, day), |_, _| {}).unwrap();
    let suppliers = f.store.list_suppliers(&switchboard::store::SupplierFilter::default()).unwrap();
    let now = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let may_start = |id: switchboard::domain::SupplierId| {
        let s = suppliers.iter().find(|s| s.id == id).unwrap();
        next_allowed(now, s.wedding_calendar()) <= now
    };
    let client: Vec<_> = suppliers.iter().filter(|s| s.ai_mode == AiMode::Client).map(|s| s.id).collect();
    assert!(!client[1..3].iter().any(|id| may_start(*id)), "this day blocks the first three client-mode suppliers' migrations");
    let chosen = choose_senders(&suppliers, 6, now);
    assert_eq!(chosen.len(), 6);
    let senders: Vec<_> = chosen.iter().filter(|(_, c)| *c).map(|(id, _)| *id).collect();
    assert_eq!(senders.len(), 3, "half are in client mode");
    assert_eq!(senders[..2], client[..2], "the first (incident tests watch it) and the next stay");
    assert!(may_start(senders[2]), "the last may start the demo migration: {senders:?}");
    // On an ordinary day nothing is swapped.
    let later = now + chrono::Duration::days(20);
    let plain = choose_senders(&suppliers, 6, later);
    let unblocked =
        client[1..3].iter().any(|id| next_allowed(later, suppliers.iter().find(|s| s.id == *id).unwrap().wedding_calendar()) <= later);
    if unblocked {
        assert_eq!(plain.iter().filter(|(_, c)| *c).map(|(id, _)| *id).collect::<Vec<_>>(), client[..3]);
    }
}
