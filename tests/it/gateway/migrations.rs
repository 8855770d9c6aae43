//! Migrations, parallel tests, mirrors and recommendations through the router and the command line.

use super::*;

#[tokio::test]
async fn a_clean_migration_moves_traffic_phase_by_phase_and_completes() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Capture Moments", Tier::Enterprise, AiMode::Platform, &[]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    let mut rx = e.router.subscribe_outcomes();
    let m = svc.start(s, RouteTarget::Account(acc), None, None).unwrap();
    for (phase, percent, minutes) in [(0usize, 5u32, 10i64), (1, 25, 20), (2, 75, 30), (3, 100, 15)] {
        // Enough requests that even 5 % gives the phase its minimum of 20 on the new route.
        let n = if percent < 25 { 1_000 } else { 400 };
        let migrated = e.traffic(&t, &svc, &mut rx, n).await as f64;
        let share = migrated * 100.0 / n as f64;
        // Binomial tolerance: 4 standard deviations.
        let p = percent as f64 / 100.0;
        let tol = 400.0 * (p * (1.0 - p) / n as f64).sqrt() + 100.0 / n as f64;
        assert!((share - percent as f64).abs() <= tol, "phase {}: {share:.1} % of traffic, expected {percent} % ± {tol:.1}", phase + 1);
        assert_eq!(svc.tick().unwrap(), vec![(m.id, Step::Stay)], "the phase lasts its minimum time");
        e.clock.advance(Duration::minutes(minutes));
        let step = svc.tick().unwrap();
        if phase < 3 {
            assert_eq!(step, vec![(m.id, Step::Advance { next: phase + 1 })]);
        } else {
            assert_eq!(step, vec![(m.id, Step::Complete)]);
        }
        e.clock.advance(Duration::seconds(60)); // stay clear of the rate limit
    }
    let done = e.store.migration(m.id).unwrap();
    assert_eq!(done.state, MigrationState::Completed);
    assert!(done.phases.iter().all(|p| p.outcome.as_deref() == Some("passed") && p.stats.requests >= 20));
    assert_eq!(e.store.supplier(s).unwrap().ai_mode, AiMode::Client, "the new route is the supplier's mode");
    assert_eq!(e.chat(&t, "gpt-4o-mini", "after").await.headers()["x-switchboard-route"], "client");
    let actions: Vec<String> = e.store.audit_entries(&Default::default()).unwrap().into_iter().map(|a| a.action).collect();
    for a in ["migration.start", "migration.phase", "migration.complete"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing");
    }
}

#[tokio::test]
async fn errors_on_the_new_route_roll_back_at_once_without_failing_a_request() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Grand Ballroom", Tier::Enterprise, AiMode::Platform, &[]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    let mut rx = e.router.subscribe_outcomes();
    let m = svc
        .start(
            s,
            RouteTarget::Account(acc),
            Some(vec![
                switchboard::domain::migration::PhasePlan { percent: 50, min_secs: 600 },
                switchboard::domain::migration::PhasePlan { percent: 100, min_secs: 600 },
            ]),
            None,
        )
        .unwrap();
    e.sim.update_faults("openai-client", |f| f.error_rate = 0.5);
    e.traffic(&t, &svc, &mut rx, 200).await;
    let steps = svc.tick().unwrap();
    assert!(matches!(&steps[0].1, Step::Rollback { reason } if reason.contains("error rate")), "{steps:?}");
    let m = e.store.migration(m.id).unwrap();
    assert_eq!(m.state, MigrationState::RolledBack);
    assert!(m.reason.unwrap().contains("above 10.0 %"));
    assert!(e.router.split(s).is_none(), "all traffic back on the old route");
    for i in 0..20 {
        let r = e.chat(&t, "gpt-4o-mini", &format!("after rollback {i}")).await;
        assert_eq!(r.headers()["x-switchboard-route"], "platform");
    }
    assert!(e.store.open_recommendations().unwrap().iter().any(|r| r.kind == "migration_rolled_back"));
}

#[tokio::test]
async fn slow_responses_on_the_new_route_roll_back() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Slow Venue", Tier::Enterprise, AiMode::Platform, &[]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    let mut rx = e.router.subscribe_outcomes();
    // The default criterion is p95 < 2 s; scaled to 100 ms here so the test stays quick.
    let criteria = Criteria { max_p95_ms: 100, ..Criteria::default() };
    let phases = vec![switchboard::domain::migration::PhasePlan { percent: 100, min_secs: 600 }];
    let m = svc.start(s, RouteTarget::Account(acc), Some(phases), Some(criteria)).unwrap();
    e.sim.update_faults("openai-client", |f| f.latency = switchboard::sim::Latency { median_ms: 160, sigma: 0.0, min_ms: 160 });
    e.traffic(&t, &svc, &mut rx, 25).await;
    let steps = svc.tick().unwrap();
    assert!(matches!(&steps[0].1, Step::Rollback { reason } if reason.contains("p95")), "{steps:?}");
    assert_eq!(e.store.migration(m.id).unwrap().state, MigrationState::RolledBack);
}

#[tokio::test]
async fn weddings_block_starts_and_phase_changes_for_48_hours() {
    let e = env(RouterConfig::default()).await;
    let wedding = (june() + Duration::days(1)).date_naive();
    let s = e.supplier("Busy Planner", Tier::Enterprise, AiMode::Platform, &[wedding]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    let err = svc.start(s, RouteTarget::Account(acc), None, None).unwrap_err().to_string();
    assert!(err.contains("wedding within 48 h") && err.contains("2026-06-14 00:00 UTC"), "{err}");
    let plan = svc.plan(s, RouteTarget::Account(acc), None).unwrap();
    assert_eq!(plan.earliest_start, Utc.with_ymd_and_hms(2026, 6, 14, 0, 0, 0).unwrap());
    // Start once allowed; a phase that ends just inside the next wedding's guard waits for the window.
    let later = e.supplier("Later Planner", Tier::Enterprise, AiMode::Platform, &[(june() + Duration::days(3)).date_naive()]);
    let acc2 = e.validated_account(later, CLIENT2_KEY);
    let t2 = e.token(later, false);
    let mut rx = e.router.subscribe_outcomes();
    let m = svc
        .start(
            later,
            RouteTarget::Account(acc2),
            Some(vec![
                switchboard::domain::migration::PhasePlan { percent: 100, min_secs: 600 },
                switchboard::domain::migration::PhasePlan { percent: 100, min_secs: 600 },
            ]),
            None,
        )
        .unwrap();
    e.traffic(&t2, &svc, &mut rx, 30).await;
    e.clock.advance(Duration::hours(13)); // now inside the 48 h guard of 13 June
    let steps = svc.tick().unwrap();
    assert!(matches!(steps.iter().find(|(id, _)| *id == m.id).unwrap().1, Step::WaitForWindow { .. }), "{steps:?}");
    assert_eq!(e.store.migration(m.id).unwrap().phase, 0, "no phase begins inside the window");
}

#[tokio::test]
async fn a_migration_resumes_after_a_crash_with_its_phase_and_figures() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Crashy Caterer", Tier::Enterprise, AiMode::Platform, &[]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let id = {
        let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
        let mut rx = e.router.subscribe_outcomes();
        let m = svc.start(s, RouteTarget::Account(acc), None, None).unwrap();
        e.traffic(&t, &svc, &mut rx, 1_000).await;
        e.clock.advance(Duration::minutes(10));
        assert_eq!(svc.tick().unwrap(), vec![(m.id, Step::Advance { next: 1 })]); // → phase 2 (25 %)
        e.clock.advance(Duration::seconds(60));
        e.traffic(&t, &svc, &mut rx, 200).await;
        e.clock.advance(Duration::minutes(5));
        svc.tick().unwrap(); // figures persisted
        m.id
        // the service is dropped here without any shutdown: a crash
    };
    e.router.set_split(s, None);
    let before = e.store.migration(id).unwrap();
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    let m = &svc.active()[0];
    assert_eq!(m.id, id);
    assert_eq!(m.phase, 1);
    assert_eq!(m.phases[1].stats, before.phases[1].stats);
    assert!(m.phases[1].stats.requests > 0);
    // Phase 2 began, then 1 + 5 minutes passed before the crash.
    assert_eq!(m.phase_elapsed_secs(e.clock.now()), 6 * 60, "elapsed time intact");
    assert_eq!(e.router.split(s).map(|x| x.percent), Some(25), "the split is restored");
    // Pause stops the phase clock; resume continues it.
    svc.pause(id).unwrap();
    e.clock.advance(Duration::hours(2));
    svc.resume(id).unwrap();
    assert_eq!(svc.active()[0].phase_elapsed_secs(e.clock.now()), 6 * 60);
    svc.abort(id).unwrap();
    assert!(e.router.split(s).is_none());
}

#[tokio::test]
async fn a_parallel_test_projects_the_saving_by_hand_computation() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Perfect Day Planning", Tier::Professional, AiMode::Platform, &[(june() + Duration::days(1)).date_naive()]);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    // The platform account answers with gpt-4o; the candidate with gpt-4o-mini.
    e.store.with_conn(|c| c.execute("UPDATE provider_accounts SET default_model = 'gpt-4o' WHERE id = ?1", [e.platform_openai.0])).unwrap();
    e.router.reload().unwrap();
    // The last 30 days: 1,000,000 fresh input, 200,000 cached input, 500,000 output tokens.
    let usage = switchboard::domain::TokenUsage { input: 1_000_000, cached_read: 200_000, output: 500_000, ..Default::default() };
    e.store
        .append_usage(&[switchboard::domain::UsageEvent {
            saved: switchboard::domain::Micros::ZERO,
            event_id: "history-1".into(),
            request_id: "history-1".into(),
            idempotency_key: None,
            ts: june() - Duration::days(3),
            supplier_id: s,
            account_id: Some(e.platform_openai),
            provider: ProviderKind::OpenAi,
            model: "gpt-4o".into(),
            request_type: switchboard::domain::RequestType::EmailTemplate,
            route: switchboard::domain::Route::Platform,
            usage,
            cost: switchboard::domain::Micros(7_750_000),
            latency_ms: 800,
            status: switchboard::domain::UsageStatus::Ok,
            error_class: None,
        }])
        .unwrap();
    let r = switchboard::engine::parallel::run(&e.router, s, acc, &[]).await.unwrap();
    // gpt-4o:      1.0M × $2.50 + 0.2M × $1.25 + 0.5M × $10.00 = $2.50 + $0.25 + $5.00 = $7.75
    // gpt-4o-mini: 1.0M × $0.15 + 0.2M × $0.075 + 0.5M × $0.60 = $0.15 + $0.015 + $0.30 = $0.465
    assert_eq!(r.current.projected_monthly_cost, switchboard::domain::Micros(7_750_000));
    assert_eq!(r.candidate.projected_monthly_cost, switchboard::domain::Micros(465_000));
    assert_eq!(r.projected_monthly_saving, switchboard::domain::Micros(7_285_000));
    assert_eq!((r.current.requests, r.current.successes), (8, 8));
    assert_eq!((r.candidate.requests, r.candidate.successes), (8, 8));
    assert!(r.current.cost_per_request > r.candidate.cost_per_request);
    assert!(r.candidate.p50_ms <= r.candidate.p95_ms);
    // The wedding tomorrow pushes the suggested start past its 48 h guard.
    assert_eq!(r.suggested_start, Utc.with_ymd_and_hms(2026, 6, 14, 0, 0, 0).unwrap());
    assert!(r.recommendation.as_deref().unwrap().contains("cheaper"));
    // Both copies are shadow usage and never touch the quota.
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).iter().filter(|r| r.1 == 4).count(), 16);
    assert_eq!(e.router.quota_snapshot(s).unwrap().1, 0);
    assert_eq!(e.store.parallel_tests(Some(s)).unwrap().len(), 1);
}

#[test]
fn the_migrate_commands_plan_start_pause_and_roll_back() {
    let (_dir, db, store, s, acc) = cli_db("CLI Planner", "Own");
    let run = |args: &[&str]| sb(&db).args(args).output().unwrap();
    let to = format!("account:{}", acc.id);
    let sid = s.id.to_string();
    let out = run(&["migrate", "plan", "--supplier", &sid, "--to", &to]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no key yet"), "{}", String::from_utf8_lossy(&out.stderr));
    store.set_account_key(acc.id, Some("entry"), Some("sk-…0001")).unwrap();
    store.set_account_validation(acc.id, switchboard::domain::ValidationStatus::Valid, "ok", Utc::now()).unwrap();
    let out = run(&["migrate", "plan", "--supplier", &sid, "--to", &to]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("5 % of traffic") && text.contains("100 % of traffic"), "{text}");
    let out = run(&["migrate", "start", "--supplier", &sid, "--to", &to, "--plan", "10:5m,100:5m"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["migrate", "start", "--supplier", &sid, "--to", &to]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has migration"));
    assert!(run(&["migrate", "pause", "1"]).status.success());
    let status: Value = serde_json::from_slice(&run(&["migrate", "status", "--json"]).stdout).unwrap();
    assert_eq!(status[0]["state"], "paused");
    assert_eq!(status[0]["phases"][0]["percent"], 10);
    assert!(run(&["migrate", "rollback", "1", "--reason", "changed our mind"]).status.success());
    let m = store.migration(1).unwrap();
    assert_eq!(m.state, MigrationState::RolledBack);
    assert_eq!(m.reason.as_deref(), Some("changed our mind"));
    let out = run(&["migrate", "start", "--supplier", &sid, "--to", "somewhere"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("write `platform` or `account:ID`"));
    let out = run(&["migrate", "start", "--supplier", &sid, "--to", &to, "--plan", "50:5m,20:5m"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must not decrease"));
}

#[test]
fn recommendations_are_listed_and_dismissed_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let store = Store::open(&db).unwrap();
    let s = store
        .insert_supplier(&NewSupplier::new("Meadow Florals", VendorType::Florist, Tier::Starter, AiMode::Platform), Utc::now())
        .unwrap();
    store.recommend(s.id, "move_to_client_ai", "Meadow Florals has used 92 % of this month's platform quota", Utc::now()).unwrap();
    let run = |args: &[&str]| sb(&db).args(args).output().unwrap();
    let out = run(&["recommendations"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("move_to_client_ai") && text.contains("92 %"), "{text}");
    let out = run(&["recommendations", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = list[0]["id"].as_i64().unwrap();
    assert_eq!(list[0]["supplier_id"].as_i64(), Some(s.id.0));
    let out = run(&["recommendations", "dismiss", &id.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(store.open_recommendations().unwrap().is_empty());
    let out = run(&["recommendations", "dismiss", &id.to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("there is no open recommendation {id}")));
    let audit = store.audit_entries(&switchboard::store::AuditFilter::default()).unwrap();
    assert!(audit.iter().any(|a| a.action == "recommendation.dismiss" && a.supplier_id == Some(s.id)));
}

#[tokio::test]
async fn a_mirror_compares_a_sample_of_live_traffic_without_touching_the_answers_or_the_quota() {
    use switchboard::engine::parallel::{MirrorPlan, finish_mirror, start_mirror};
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Lumen Studio", Tier::Professional, AiMode::Platform, &[]);
    let own = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    // Mirroring to the route that already serves the supplier is refused.
    let plan = MirrorPlan { sample_percent: 100, requests: 6, duration: Duration::days(1) };
    let err = start_mirror(&e.store, s, e.platform_openai, plan, e.clock.now()).unwrap_err();
    assert!(err.to_string().contains("already serves Lumen Studio's requests"), "{err}");
    let m = start_mirror(&e.store, s, own, plan, e.clock.now()).unwrap();
    let err = start_mirror(&e.store, s, own, plan, e.clock.now()).unwrap_err();
    assert!(err.to_string().contains("already has live traffic mirrored"), "{err}");
    e.router.reload().unwrap();

    // Eight live requests, three of them streamed: every answer comes from
    // platform AI as before; six copies go to the candidate (streams once
    // they have completed, as plain requests).
    for i in 0..8 {
        let text = format!("Write a thank-you note, number {i}");
        if i % 3 == 1 {
            let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": text}]});
            let r = e.post("/chat/completions", &t, body).await;
            assert_eq!(r.status(), 200);
            assert!(r.text().await.unwrap().contains("[DONE]"), "the stream is answered whole");
        } else {
            let (st, b) = json_of(e.chat(&t, "gpt-4o-mini", &text).await).await;
            assert_eq!(st, 200, "{b}");
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while e.router.mirrors_due(e.clock.now()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the copies were not recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    e.router.ledger().flush().await;
    let rows = e.usage_rows(s);
    let shadow: Vec<_> = rows.iter().filter(|r| r.1 == Route::Shadow.code()).collect();
    let live: Vec<_> = rows.iter().filter(|r| r.1 == Route::Platform.code()).collect();
    assert_eq!((live.len(), shadow.len()), (8, 6), "the sample stops at the mirror's six requests");
    let mut originals: Vec<&str> = shadow
        .iter()
        .map(|c| {
            assert_eq!(c.5, own.0, "copies go to the candidate");
            c.0.strip_prefix(&format!("m{}~", m.id)).expect("a copy's id names its original")
        })
        .collect();
    originals.sort();
    // A copy's event id is `m<mirror>~<the original's event id>`.
    let mut first_six: Vec<&str> = live[..6].iter().map(|l| l.0.as_str()).collect();
    first_six.sort();
    assert_eq!(originals, first_six, "the first six requests are copied, the two streams among them");
    let live_tokens: i64 = live.iter().map(|r| r.3).sum();
    assert_eq!(e.router.quota_snapshot(s).unwrap().0 as i64, live_tokens, "copies never count against the quota");

    // The runtime's tick writes the report from the ledger.
    switchboard::engine::runtime::finish_due_mirrors(&e.router, e.clock.now()).await;
    let done = e.store.mirror(m.id).unwrap().unwrap();
    assert_eq!(done.state, "done", "{done:?}");
    let tests = e.store.parallel_tests(Some(s)).unwrap();
    assert_eq!(tests.len(), 1);
    assert_eq!(done.report_id, Some(tests[0].0));
    let r: switchboard::engine::parallel::ParallelReport = serde_json::from_str(&tests[0].1).unwrap();
    assert_eq!((r.current.account_id, r.candidate.account_id), (e.platform_openai, own));
    assert_eq!((r.current.requests, r.candidate.requests, r.candidate.successes), (6, 6, 6));
    assert!(r.candidate.avg_output_tokens > 0 && r.current.cost_per_request.0 > 0);
    let audit: Vec<String> = e.store.audit_entries(&Default::default()).unwrap().into_iter().map(|a| a.action).collect();
    assert!(audit.iter().any(|a| a == "parallel_test.mirror_start") && audit.iter().any(|a| a == "parallel_test.mirror_done"), "{audit:?}");
    // Ending it twice does nothing; later traffic is not mirrored.
    assert!(finish_mirror(&e.store, e.router.pricing(), m.id, e.clock.now(), "again", true).unwrap().is_none());
    assert!(e.router.mirrors_due(e.clock.now()).is_empty());
    assert_eq!(json_of(e.chat(&t, "gpt-4o-mini", "one more").await).await.0, 200);
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).iter().filter(|r| r.1 == Route::Shadow.code()).count(), 6);

    // A mirror that sees no traffic ends at its deadline without a report.
    let quiet = start_mirror(&e.store, s, own, MirrorPlan { duration: Duration::minutes(30), ..plan }, e.clock.now()).unwrap();
    e.router.reload().unwrap();
    e.clock.advance(Duration::minutes(31));
    assert_eq!(e.router.mirrors_due(e.clock.now()), vec![(quiet.id, "the mirror's time ran out")]);
    switchboard::engine::runtime::finish_due_mirrors(&e.router, e.clock.now()).await;
    let q = e.store.mirror(quiet.id).unwrap().unwrap();
    assert_eq!((q.state.as_str(), q.report_id), ("expired", None));
    assert!(q.reason.unwrap().contains("no live request had been mirrored"));
    assert_eq!(e.store.parallel_tests(Some(s)).unwrap().len(), 1);
}

#[test]
fn a_live_traffic_mirror_is_started_and_stopped_on_the_command_line() {
    let (_dir, db, store, s, acc) = cli_db("Fern Planning", "Fern OpenAI");
    let run = |args: &[&str]| sb(&db).args(args).output().unwrap();
    let (sid, aid) = (s.id.to_string(), acc.id.to_string());
    let out = run(&["parallel-test", "--supplier", &sid, "--account", &aid, "--mirror"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("disabled or has no key"), "{}", String::from_utf8_lossy(&out.stderr));
    store.set_account_key(acc.id, Some("entry"), Some("sk-…0001")).unwrap();
    let out = run(&["parallel-test", "--supplier", &sid, "--account", &aid, "--mirror", "--sample", "150"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("choose 1 to 100 %"), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        run(&["parallel-test", "--supplier", &sid, "--account", &aid, "--mirror", "--sample", "10", "--requests", "20", "--days", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Mirror 1 started: 10 % of supplier") && text.contains("until 20 are compared"),
        "{text}"
    );
    let m = store.mirror(1).unwrap().unwrap();
    assert_eq!((m.state.as_str(), m.sample_percent, m.target_requests), ("running", 10, 20));
    assert_eq!((m.ends_at - m.created_at).num_days(), 2);
    let out = run(&["parallel-test", "--stop-mirror", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("no live request had been mirrored"), "{text}");
    assert_eq!(store.mirror(1).unwrap().unwrap().state, "stopped");
    let out = run(&["parallel-test", "--stop-mirror", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not running (it is stopped)"));
}

#[tokio::test]
async fn a_mirror_resumes_its_count_from_the_ledger_after_a_restart() {
    use switchboard::engine::parallel::{MirrorPlan, start_mirror};
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Oak Hall Venue", Tier::Scale, AiMode::Platform, &[]);
    let own = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let m = start_mirror(&e.store, s, own, MirrorPlan { sample_percent: 100, requests: 10, duration: Duration::days(1) }, e.clock.now())
        .unwrap();
    e.router.reload().unwrap();
    for i in 0..4 {
        assert_eq!(json_of(e.chat(&t, "gpt-4o-mini", &format!("menu idea {i}")).await).await.0, 200);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while e.store.mirror_copies(m.id).unwrap() < 4 {
        assert!(std::time::Instant::now() < deadline, "four copies expected");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // "Restart": a new router over the same database adopts the running mirror with its four copies.
    let providers = Providers::new(ProvidersConfig::default()).unwrap();
    let clock: Arc<dyn switchboard::domain::Clock> = Arc::new(e.clock.clone());
    let r2 = Router::new(
        e.store.clone(),
        providers,
        Arc::new(PricingTable::builtin()),
        clock,
        Ledger::start(&e.store).unwrap(),
        RouterConfig::default(),
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    r2.set_key(e.platform_openai, Some(Secret::new(DEMO_OPENAI_KEY)));
    r2.set_key(own, Some(Secret::new(DEMO_CLIENT_OPENAI_KEY)));
    assert!(r2.mirrors_due(e.clock.now()).is_empty(), "4 of 10 compared");
    for i in 0..8 {
        let req = switchboard::providers::ChatRequest::simple("gpt-4o-mini", &format!("seating plan {i}"));
        r2.chat(Some(t.as_str()), None, None, req).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r2.mirrors_due(e.clock.now()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the mirror did not fill up after the restart");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    r2.ledger().flush().await;
    assert_eq!(e.store.mirror_copies(m.id).unwrap(), 10, "the count went on from the ledger's four, and stopped at ten");
    switchboard::engine::runtime::finish_due_mirrors(&r2, e.clock.now()).await;
    let (row_id, json) = e.store.parallel_tests(Some(s)).unwrap().remove(0);
    let r: switchboard::engine::parallel::ParallelReport = serde_json::from_str(&json).unwrap();
    assert_eq!((r.current.requests, r.candidate.requests), (10, 10), "pairs from both processes are in the report");
    assert_eq!(r.id, row_id, "the stored report carries its own row id");
}

#[tokio::test]
async fn a_mirror_shows_the_candidate_answering_when_every_current_route_fails() {
    use switchboard::engine::parallel::{MirrorPlan, start_mirror};
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Rose Garden Venue", Tier::Scale, AiMode::Platform, &[]);
    let own = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    start_mirror(&e.store, s, own, MirrorPlan { sample_percent: 100, requests: 4, duration: Duration::days(1) }, e.clock.now()).unwrap();
    e.router.reload().unwrap();
    e.sim.set_outage("openai-platform", true);
    e.sim.set_outage("anthropic-platform", true);
    for i in 0..4 {
        let (st, b) = json_of(e.chat(&t, "gpt-4o-mini", &format!("toast idea {i}")).await).await;
        assert!(st == 502 || st == 503, "{st} {b}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while e.router.mirrors_due(e.clock.now()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the copies were not recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    switchboard::engine::runtime::finish_due_mirrors(&e.router, e.clock.now()).await;
    let r: switchboard::engine::parallel::ParallelReport = serde_json::from_str(&e.store.parallel_tests(Some(s)).unwrap()[0].1).unwrap();
    assert_eq!((r.current.successes, r.current.requests), (0, 4));
    assert_eq!((r.candidate.successes, r.candidate.requests), (4, 4));
    assert_eq!(r.current.p50_ms, 0, "failed requests have no answer latency");
    let rec = r.recommendation.expect("the candidate answered what the current route could not");
    assert!(rec.contains("more reliable") && rec.contains("4 of 4 answered vs 0 of 4"), "{rec}");
}

#[tokio::test]
async fn the_48_hour_guard_runs_from_the_weddings_local_midnights() {
    let e = env(RouterConfig::default()).await;
    // A Saturday wedding in California: the day is 07:00 UTC Saturday to 07:00 UTC Sunday,
    // so the guard ends at 07:00 UTC on Tuesday, not at UTC midnight.
    let saturday = NaiveDate::from_ymd_opt(2026, 6, 13).unwrap();
    let s = supplier_in(&e, "Pacific Planner", "America/Los_Angeles", saturday);
    let acc = e.validated_account(s, DEMO_CLIENT_OPENAI_KEY);
    let svc = MigrationService::new(e.store.clone(), e.router.clone(), Arc::new(e.clock.clone())).unwrap();
    // Tuesday 03:00 UTC is Monday 20:00 in California: still inside the guard.
    e.clock.set(Utc.with_ymd_and_hms(2026, 6, 16, 3, 0, 0).unwrap());
    let err = svc.start(s, RouteTarget::Account(acc), None, None).unwrap_err().to_string();
    assert!(err.contains("wedding within 48 h") && err.contains("2026-06-16 07:00 UTC"), "{err}");
    let plan = svc.plan(s, RouteTarget::Account(acc), None).unwrap();
    assert_eq!(plan.earliest_start, Utc.with_ymd_and_hms(2026, 6, 16, 7, 0, 0).unwrap());
    assert_eq!(plan.blocked_by, Some(saturday));
    // Thursday 07:00 UTC (Thursday 00:00 local) is exactly 48 h before: blocked; a second earlier is not.
    e.clock.set(Utc.with_ymd_and_hms(2026, 6, 11, 6, 59, 59).unwrap());
    assert_eq!(svc.plan(s, RouteTarget::Account(acc), None).unwrap().blocked_by, None);
    e.clock.set(Utc.with_ymd_and_hms(2026, 6, 11, 7, 0, 0).unwrap());
    assert_eq!(svc.plan(s, RouteTarget::Account(acc), None).unwrap().blocked_by, Some(saturday));
    // Once the guard is over the migration starts.
    e.clock.set(Utc.with_ymd_and_hms(2026, 6, 16, 7, 0, 0).unwrap());
    svc.start(s, RouteTarget::Account(acc), None, None).unwrap();
}
