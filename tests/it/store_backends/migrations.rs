//! Migrations, parallel tests, recommendations, mirrors, schedules and
//! settings on both backends (same transcript on SQLite and PostgreSQL).

use super::{Version, account, now, on_both, supplier};
use chrono::Duration;
use std::fmt::Write as _;
use switchboard::domain::migration::{Criteria, Migration, MigrationState, PhasePlan, PhaseStats, RouteTarget};
use switchboard::domain::{AccountOwner, SupplierId, Tier};
use switchboard::store::ScheduleState;

#[test]
fn migrations_mirrors_schedules_and_settings() {
    on_both("store_backends::migrations::migrations_mirrors_schedules_and_settings", |store, t| {
        let s = store.insert_supplier(&supplier("Studio", Tier::Starter, &[]), now()).unwrap();
        let acc = store.insert_account(&account(AccountOwner::Supplier(s.id), "own"), now()).unwrap();
        let plan = [PhasePlan { percent: 10, min_secs: 60 }, PhasePlan { percent: 100, min_secs: 0 }];
        let m = Migration::new(s.id, RouteTarget::Account(acc.id), RouteTarget::Platform, &plan, Criteria::default(), now());
        let id = store.insert_migration(&m).unwrap();
        writeln!(t, "migration: {:?}", store.migration(id).unwrap()).unwrap();
        writeln!(t, "second refused: {}", store.insert_migration(&m).unwrap_err()).unwrap();
        let mut m = store.migration(id).unwrap();
        m.phases[0].stats = PhaseStats { requests: 40, errors: 2, latency_hist: vec![5, 20, 10, 3, 2] };
        m.phases[0].ended_at = Some(now() + Duration::minutes(2));
        m.phases[0].outcome = Some("passed".into());
        m.phase = 1;
        m.phases[1].started_at = Some(now() + Duration::minutes(2));
        m.state = MigrationState::Paused;
        m.phase_started_at = None;
        m.phase_elapsed_ms = 1_234;
        m.updated_at = now() + Duration::minutes(3);
        store.save_migration(&m).unwrap();
        let saved = store.migration(id).unwrap();
        assert_eq!((&saved.phases[0].stats, saved.state, saved.phase, saved.phase_elapsed_ms), (&m.phases[0].stats, m.state, 1, 1_234));
        assert_eq!(saved.phases[0].stats.p95_ms(), m.phases[0].stats.p95_ms());
        writeln!(t, "saved: {saved:?}").unwrap();
        writeln!(t, "active: {:?}", store.active_migrations().unwrap().iter().map(|m| m.id).collect::<Vec<_>>()).unwrap();
        writeln!(
            t,
            "of supplier: {:?} of other: {:?} missing: {}",
            store.list_migrations(Some(s.id)).unwrap().len(),
            store.list_migrations(Some(SupplierId(99))).unwrap().len(),
            store.migration(99).unwrap_err()
        )
        .unwrap();
        m.state = MigrationState::Completed;
        store.save_migration(&m).unwrap();
        writeln!(t, "active after: {:?} all: {}", store.active_migrations().unwrap(), store.list_migrations(None).unwrap().len()).unwrap();

        let report = store.insert_parallel_test(s.id, acc.id.0, now(), r#"{"id":0,"compared":12,"verdict":"ok"}"#).unwrap();
        let tests = store.parallel_tests(None).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&tests[0].1).unwrap();
        writeln!(t, "parallel test {report}: {parsed} of supplier: {}", store.parallel_tests(Some(s.id)).unwrap().len()).unwrap();

        writeln!(
            t,
            "recommend: {} again: {}",
            store.recommend(s.id, "to_client", "move it", now()).unwrap(),
            store.recommend(s.id, "to_client", "move it again", now()).unwrap()
        )
        .unwrap();
        let open = store.open_recommendations().unwrap();
        writeln!(t, "open: {open:?}").unwrap();
        writeln!(
            t,
            "dismissed: {:?} again: {:?}",
            store.dismiss_recommendation(open[0].id, now()).unwrap(),
            store.dismiss_recommendation(open[0].id, now()).unwrap()
        )
        .unwrap();
        store.recommend(s.id, "to_client", "once more", now()).unwrap();
        store.dismiss_recommendations(s.id, "to_client", now()).unwrap();
        writeln!(t, "open after: {:?}", store.open_recommendations().unwrap()).unwrap();

        let mut v = Version::start(store);
        let mirror = store.insert_mirror(s.id, acc.id, 25, 50, now(), now() + Duration::hours(1)).unwrap();
        writeln!(t, "mirror: {mirror:?} moved={}", v.moved(store)).unwrap();
        writeln!(t, "second mirror: {}", store.insert_mirror(s.id, acc.id, 25, 50, now(), now()).unwrap_err()).unwrap();
        writeln!(t, "running: {:?}", store.running_mirrors().unwrap().iter().map(|m| m.id).collect::<Vec<_>>()).unwrap();
        writeln!(
            t,
            "claimed: {} again: {} moved={}",
            store.claim_mirror(mirror.id, now()).unwrap(),
            store.claim_mirror(mirror.id, now()).unwrap(),
            v.moved(store)
        )
        .unwrap();
        store.end_mirror(mirror.id, "done", Some(report), "enough compared", now()).unwrap();
        writeln!(t, "ended: {:?} moved={}", store.mirror(mirror.id).unwrap(), v.moved(store)).unwrap();
        writeln!(t, "mirrors: {:?} missing: {:?}", store.mirrors(Some(s.id), 5).unwrap().len(), store.mirror(99).unwrap()).unwrap();

        let start = now() + Duration::days(3);
        let sched = store.insert_schedule(s.id, RouteTarget::Platform, &plan, start, now()).unwrap();
        writeln!(t, "schedule: {sched:?}").unwrap();
        writeln!(t, "second schedule: {}", store.insert_schedule(s.id, RouteTarget::Platform, &plan, start, now()).unwrap_err()).unwrap();
        writeln!(
            t,
            "due now: {:?} due then: {:?}",
            store.due_schedules(now()).unwrap().len(),
            store.due_schedules(start).unwrap().iter().map(|s| s.id).collect::<Vec<_>>()
        )
        .unwrap();
        writeln!(t, "claim: {} again: {}", store.claim_schedule(sched.id, start).unwrap(), store.claim_schedule(sched.id, start).unwrap())
            .unwrap();
        store.finish_schedule(sched.id, ScheduleState::Started, Some(id), None, start).unwrap();
        writeln!(t, "finished: {:?}", store.schedule(sched.id).unwrap()).unwrap();
        let other = store.insert_schedule(s.id, RouteTarget::Platform, &plan, start + Duration::days(1), now()).unwrap();
        writeln!(
            t,
            "cancel: {} again: {} -> {:?}",
            store.cancel_schedule(other.id, now()).unwrap(),
            store.cancel_schedule(other.id, now()).unwrap(),
            store.schedule(other.id).unwrap().reason
        )
        .unwrap();
        writeln!(
            t,
            "schedules: {:?} missing: {}",
            store.schedules(Some(s.id)).unwrap().iter().map(|s| s.id).collect::<Vec<_>>(),
            store.schedule(99).unwrap_err()
        )
        .unwrap();

        writeln!(t, "setting: {:?}", store.setting("console.routes").unwrap()).unwrap();
        store.set_setting("console.routes", "yes").unwrap();
        store.set_setting("console.routes", "no").unwrap();
        writeln!(t, "setting: {:?} usage: {}", store.setting("console.routes").unwrap(), store.has_usage_events().unwrap()).unwrap();
    });
}
