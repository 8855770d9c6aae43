//! The leaders' duties with two `switchboard serve` processes on one
//! PostgreSQL (the private cluster scripts/test starts), set up through the
//! CLI as in `fleet`: the probe leader's verdicts applied by the other
//! instance within a second, alerts raised once, a migration driven by one
//! instance and finished by the other after the first is killed or paused,
//! and the migration leader's saves fenced by its lease's epoch.
//! Timings are shortened with serve's flags (leader leases of 900 ms,
//! heartbeats every 300 ms) and short migration phases.

use crate::support::fleet::{Child, Fleet, chat};
use crate::support::pg::raw;
use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard::domain::migration::{Criteria, Migration, MigrationState, PhasePlan, RouteTarget, Step};
use switchboard::domain::{AccountId, Clock, ManualClock, SupplierId};
use switchboard::engine::fleet::leader::LeaderElector;
use switchboard::engine::fleet::{Duty, FleetSettings, FleetStore, FleetTime, NewInstance};
use switchboard::engine::migrations::MigrationError;
use switchboard::sim::{DEMO_CLIENT_OPENAI_KEY, DEMO_OPENAI_KEY};
use switchboard::store::Store;
use switchboard::store::pg::PgStore;

/// One `serve` process: the child, its gateway address and its fleet id.
struct Instance {
    child: Child,
    gw: String,
    id: i64,
}

impl Instance {
    fn signal(&self, sig: &str) {
        let st = Command::new("kill").arg(format!("-{sig}")).arg(self.child.0.id().to_string()).status().unwrap();
        assert!(st.success(), "kill -{sig}");
    }
}

/// Starts an instance on `host` and waits for its row in `instances`.
async fn serve(f: &Fleet, db: &tokio_postgres::Client, host: &str, probe_every: u32) -> Instance {
    let (child, gw) = f.serve(host, probe_every);
    let pid = i64::from(child.0.id());
    let row = db
        .query_opt("SELECT id FROM instances WHERE pid = $1 AND stopped_at IS NULL ORDER BY id DESC LIMIT 1", &[&pid])
        .await
        .unwrap()
        .expect("a listening instance is registered");
    Instance { child, gw, id: row.get(0) }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(3)).build().unwrap()
}

async fn until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// An instance's breaker state for `account` from its /metrics (0 closed, 1 half-open, 2 open).
async fn breaker(http: &reqwest::Client, gw: &str, account: i64) -> Option<u8> {
    let text = http.get(format!("http://{gw}/metrics")).send().await.ok()?.text().await.ok()?;
    let prefix = format!("switchboard_breaker_state{{account=\"{account}\",");
    text.lines().find(|l| l.starts_with(&prefix))?.rsplit(' ').next()?.parse().ok()
}

/// Requests the simulator received for its account `name` (probes and generations).
async fn sim_requests(http: &reqwest::Client, sim: &str, name: &str) -> u64 {
    let list: serde_json::Value = http.get(format!("http://{sim}/_sim/accounts")).send().await.unwrap().json().await.unwrap();
    list.as_array().unwrap().iter().find(|a| a["name"] == name).unwrap()["requests"].as_u64().unwrap()
}

async fn outage(http: &reqwest::Client, sim: &str, name: &str, on: bool) {
    let r = http.post(format!("http://{sim}/_sim/accounts/{name}/faults")).json(&json!({"outage": on})).send().await.unwrap();
    assert!(r.status().is_success(), "sim faults: {}", r.status());
}

async fn leader(db: &tokio_postgres::Client, duty: &str) -> Option<i64> {
    db.query_opt("SELECT holder_instance FROM leader_leases WHERE duty = $1 AND expires_at > now()", &[&duty])
        .await
        .unwrap()
        .map(|r| r.get::<_, i64>(0))
}

async fn count(db: &tokio_postgres::Client, sql: &str, account: i64) -> i64 {
    db.query_one(sql, &[&account]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_probe_leaders_verdict_reaches_the_other_instance_within_a_second_and_its_alert_is_raised_once() {
    let Some(f) = Fleet::setup("fleet_duties_verdicts").await else { return };
    let db = raw(&f.url).await;
    let http = http();
    // Two platform accounts on the simulator's two OpenAI accounts.
    let down = f.add_key(&db, "platform", "p-one", DEMO_OPENAI_KEY).await;
    let _other = f.add_key(&db, "platform", "p-two", DEMO_CLIENT_OPENAI_KEY).await;
    let a = serve(&f, &db, "host-a", 1).await;
    let b = serve(&f, &db, "host-b", 1).await;
    for i in 0..4 {
        assert_eq!(chat(&http, &a.gw, &f.token, &format!("a-{i}")).await, Some(200));
        assert_eq!(chat(&http, &b.gw, &f.token, &format!("b-{i}")).await, Some(200));
    }
    until("a probe leader", Duration::from_secs(5), async || leader(&db, "probes").await.is_some()).await;
    let lead_id = leader(&db, "probes").await.unwrap();
    let (lead, other) = if lead_id == a.id { (&a, &b) } else { (&b, &a) };

    // The outage: no traffic is sent to either instance until both breakers are open.
    outage(&http, &f.sim, "openai-platform", true).await;
    let (mut lead_open, mut other_open) = (None::<Instant>, None::<Instant>);
    until("both instances take the down account out of routing", Duration::from_secs(10), async || {
        if lead_open.is_none() && breaker(&http, &lead.gw, down).await == Some(2) {
            lead_open = Some(Instant::now());
        }
        if other_open.is_none() && breaker(&http, &other.gw, down).await == Some(2) {
            other_open = Some(Instant::now());
        }
        lead_open.is_some() && other_open.is_some()
    })
    .await;
    let lag = other_open.unwrap().saturating_duration_since(lead_open.unwrap());
    eprintln!("down verdict: applied by the other instance {lag:?} after the prober");
    assert!(lag <= Duration::from_secs(1), "the down verdict reached the other instance after {lag:?}");

    // The other instance routes around it without trying it: while the
    // prober is paused (no probes), its requests all succeed and the down
    // account sees no request at all.
    lead.signal("STOP");
    let before = sim_requests(&http, &f.sim, "openai-platform").await;
    let started = Instant::now();
    let mut codes = Vec::new();
    for i in 0..8 {
        codes.push(chat(&http, &other.gw, &f.token, &format!("during-{i}")).await);
    }
    let tried = sim_requests(&http, &f.sim, "openai-platform").await - before;
    let burst = started.elapsed();
    lead.signal("CONT");
    eprintln!("8 requests on the other instance while the prober was stopped: {burst:?}, {tried} requests at the down account");
    assert!(codes.iter().all(|c| *c == Some(200)), "requests on the other instance during the outage: {codes:?}");
    assert_eq!(tried, 0, "the other instance sent {tried} requests to the down account (burst of {burst:?})");
    assert!(burst < Duration::from_millis(800), "the burst took {burst:?}: the probe lease may have moved, which voids the check");

    // Alerts are raised once for the fleet: one open alert, one open
    // incident and one `health.down` audit entry for the account.
    until("an open alert for the down account", Duration::from_secs(10), async || {
        count(&db, "SELECT count(*) FROM alerts WHERE account_id = $1 AND resolved_at IS NULL", down).await >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alerts = count(&db, "SELECT count(*) FROM alerts WHERE account_id = $1", down).await;
    let incidents = count(&db, "SELECT count(*) FROM incidents WHERE account_id = $1", down).await;
    let downs = count(&db, "SELECT count(*) FROM audit_log WHERE action = 'health.down' AND account_id = $1", down).await;
    assert_eq!((alerts, incidents, downs), (1, 1, 1), "(alerts, incidents, health.down audits) for the down account");

    // Recovery reaches the other instance within a second too.
    outage(&http, &f.sim, "openai-platform", false).await;
    let (mut lead_closed, mut other_closed) = (None::<Instant>, None::<Instant>);
    until("both instances put the account back", Duration::from_secs(15), async || {
        if lead_closed.is_none() && breaker(&http, &lead.gw, down).await == Some(0) {
            lead_closed = Some(Instant::now());
        }
        if other_closed.is_none() && breaker(&http, &other.gw, down).await == Some(0) {
            other_closed = Some(Instant::now());
        }
        lead_closed.is_some() && other_closed.is_some()
    })
    .await;
    let lag = other_closed.unwrap().saturating_duration_since(lead_closed.unwrap());
    eprintln!("up verdict: applied by the other instance {lag:?} after the prober");
    assert!(lag <= Duration::from_secs(1), "the up verdict reached the other instance after {lag:?}");
    for i in 0..4 {
        assert_eq!(chat(&http, &other.gw, &f.token, &format!("after-{i}")).await, Some(200));
    }
    let ups = count(&db, "SELECT count(*) FROM audit_log WHERE action = 'health.up' AND account_id = $1", down).await;
    assert_eq!(ups, 1, "one health.up audit entry for the fleet");
}

/// A supplier-owned client account, a platform account, two instances and
/// load on both; the migration from platform to the client account.
struct Migrating {
    _f: Fleet,
    db: tokio_postgres::Client,
    a: Instance,
    b: Instance,
    id: i64,
    stop: Arc<AtomicBool>,
    served: Arc<[AtomicU64; 2]>,
    skip: Arc<[AtomicBool; 2]>,
    load: Vec<tokio::task::JoinHandle<()>>,
}

/// `only_follower`: no load on the migrations leader (all on the other instance).
async fn migrating(name: &str, plan: &[PhasePlan], only_follower: bool) -> Option<Migrating> {
    let f = Fleet::setup(name).await?;
    let db = raw(&f.url).await;
    f.add_key(&db, "platform", "platform", DEMO_OPENAI_KEY).await;
    let client = f.add_key(&db, "1", "own", DEMO_CLIENT_OPENAI_KEY).await;
    let a = serve(&f, &db, "host-a", 30).await;
    let b = serve(&f, &db, "host-b", 30).await;
    let (stop, served, skip) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
        Arc::new([AtomicBool::new(false), AtomicBool::new(false)]),
    );
    if only_follower {
        until("a migrations leader", Duration::from_secs(5), async || leader(&db, "migrations").await.is_some()).await;
        let lead = leader(&db, "migrations").await.unwrap();
        skip[if lead == a.id { 0 } else { 1 }].store(true, Ordering::Relaxed);
    }
    let mut load = Vec::new();
    for (w, gw) in [a.gw.clone(), b.gw.clone(), a.gw.clone(), b.gw.clone()].into_iter().enumerate() {
        let (token, stop, served, skip) = (f.token.clone(), stop.clone(), served.clone(), skip.clone());
        load.push(tokio::spawn(async move {
            let http = http();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if skip[w % 2].load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                if chat(&http, &gw, &token, &format!("w{w}-{i}")).await == Some(200) {
                    served[w % 2].fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }));
    }
    // The migration, inserted through the store as `migrate start` would.
    let (url, plan) = (f.url.clone(), plan.to_vec());
    let id = tokio::task::spawn_blocking(move || {
        let store = Store::open_postgres(&url).unwrap();
        let criteria = Criteria { max_error_bp: 1_000, max_p95_ms: 5_000, min_requests: 5 };
        let m = Migration::new(
            SupplierId(1),
            RouteTarget::Platform,
            RouteTarget::Account(AccountId(client)),
            &plan,
            criteria,
            chrono::Utc::now(),
        );
        store.insert_migration(&m).unwrap()
    })
    .await
    .unwrap();
    Some(Migrating { _f: f, db, a, b, id, stop, served, skip, load })
}

impl Migrating {
    async fn state(&self) -> (String, i64) {
        let r = self.db.query_one("SELECT state, current_phase FROM migrations WHERE id = $1", &[&self.id]).await.unwrap();
        (r.get(0), r.get(1))
    }

    async fn audits(&self, action: &str) -> i64 {
        self.db.query_one("SELECT count(*) FROM audit_log WHERE action = $1", &[&action]).await.unwrap().get(0)
    }

    async fn stop_load(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for l in self.load.drain(..) {
            l.await.unwrap();
        }
    }

    /// What each phase stored (requests judged) beside what the shared
    /// ledger holds for the migration route in that phase's window.
    async fn phase_figures(&self) -> Vec<(i64, i64)> {
        let rows = self
            .db
            .query(
                "SELECT p.requests,
                        (SELECT count(*) FROM usage_events e
                          WHERE e.supplier_id = m.supplier_id AND e.route = 3
                            AND e.ts >= p.started_at AND e.ts < coalesce(p.ended_at, now()))
                   FROM migration_phases p JOIN migrations m ON m.id = p.migration_id
                  WHERE m.id = $1 ORDER BY p.idx",
                &[&self.id],
            )
            .await
            .unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_is_driven_by_one_instance_and_completed_by_the_other_after_kill_9() {
    let plan = [PhasePlan { percent: 50, min_secs: 3 }, PhasePlan { percent: 100, min_secs: 3 }];
    let Some(mut m) = migrating("fleet_duties_migrate", &plan, false).await else { return };
    until("a migrations leader", Duration::from_secs(5), async || leader(&m.db, "migrations").await.is_some()).await;
    let lead = leader(&m.db, "migrations").await.unwrap();
    until("the first phase passed", Duration::from_secs(20), async || m.state().await == ("running".into(), 1)).await;
    assert_eq!(leader(&m.db, "migrations").await, Some(lead), "one leader drove the first phase");
    // The audit row is written after the phase is saved, in the background.
    until("the phase audited", Duration::from_secs(5), async || m.audits("migration.phase").await == 1).await;

    // The leader is killed in the second phase: the other instance takes
    // over within its lease's time and finishes from the stored state.
    let victim_slot = if lead == m.a.id { 0 } else { 1 };
    m.skip[victim_slot].store(true, Ordering::Relaxed);
    let (victim, survivor) = if lead == m.a.id { (&mut m.a, m.b.id) } else { (&mut m.b, m.a.id) };
    victim.child.0.kill().unwrap();
    victim.child.0.wait().unwrap();
    let killed = Instant::now();
    until("the survivor leads migrations", Duration::from_secs(3), async || leader(&m.db, "migrations").await == Some(survivor)).await;
    eprintln!("migrations duty handed over in {:?}", killed.elapsed());
    // Completed is saved first, then the supplier is switched and audited.
    until("the migration completed", Duration::from_secs(20), async || {
        m.state().await.0 == "completed" && m.audits("migration.complete").await > 0
    })
    .await;
    m.stop_load().await;
    let (state, phase) = m.state().await;
    assert_eq!((state.as_str(), phase), ("completed", 1));
    // Each step once: the survivor continued phase 2, it did not redo phase 1.
    assert_eq!((m.audits("migration.phase").await, m.audits("migration.complete").await), (1, 1));
    let outcomes: Vec<Option<String>> =
        m.db.query("SELECT outcome FROM migration_phases WHERE migration_id = $1 ORDER BY idx", &[&m.id])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(outcomes, vec![Some("passed".to_string()), Some("passed".to_string())]);
    let mode: String = m.db.query_one("SELECT ai_mode FROM suppliers WHERE id = 1", &[]).await.unwrap().get(0);
    assert_eq!(mode, "client", "the supplier now routes to its own account");
    eprintln!(
        "served: {:?}; per phase (requests judged, migration-route rows in the ledger): {:?}",
        [m.served[0].load(Ordering::Relaxed), m.served[1].load(Ordering::Relaxed)],
        m.phase_figures().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_migrations_leader_resumes_as_a_follower_and_the_new_leaders_state_stands() {
    let plan = [PhasePlan { percent: 50, min_secs: 4 }, PhasePlan { percent: 100, min_secs: 2 }];
    let Some(mut m) = migrating("fleet_duties_pause", &plan, false).await else { return };
    until("a migrations leader", Duration::from_secs(5), async || leader(&m.db, "migrations").await.is_some()).await;
    let lead = leader(&m.db, "migrations").await.unwrap();
    // Let the leader save some figures of the first phase.
    until("figures saved", Duration::from_secs(10), async || {
        let n: i64 =
            m.db.query_one("SELECT requests FROM migration_phases WHERE migration_id = $1 AND idx = 0", &[&m.id]).await.unwrap().get(0);
        n > 0
    })
    .await;
    let (old, survivor, slot) = if lead == m.a.id { (&m.a, m.b.id, 0) } else { (&m.b, m.a.id, 1) };
    m.skip[slot].store(true, Ordering::Relaxed);
    old.signal("STOP");
    let paused = Instant::now();
    until("the other instance leads migrations", Duration::from_secs(3), async || leader(&m.db, "migrations").await == Some(survivor))
        .await;
    eprintln!("migrations duty taken over from the paused leader in {:?}", paused.elapsed());
    // The new leader saves at least once while the old one is stopped.
    let saved_before: chrono::DateTime<chrono::Utc> =
        m.db.query_one("SELECT updated_at FROM migrations WHERE id = $1", &[&m.id]).await.unwrap().get(0);
    until("the new leader saved the migration", Duration::from_secs(5), async || {
        let t: chrono::DateTime<chrono::Utc> =
            m.db.query_one("SELECT updated_at FROM migrations WHERE id = $1", &[&m.id]).await.unwrap().get(0);
        t > saved_before
    })
    .await;
    old.signal("CONT");
    m.skip[slot].store(false, Ordering::Relaxed);
    until("the migration completed", Duration::from_secs(30), async || {
        m.state().await.0 == "completed" && m.audits("migration.complete").await > 0
    })
    .await;
    // The old leader never took the lease back and never redid a step.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(leader(&m.db, "migrations").await, Some(survivor), "the resumed instance did not take the duty back");
    assert_eq!((m.audits("migration.phase").await, m.audits("migration.complete").await), (1, 1));
    assert_eq!(m.state().await, ("completed".to_string(), 1));
    m.stop_load().await;
}

/// The leader judges phases on the traffic every instance served (the
/// shared ledger): with all the load on the other instance, the migration
/// still passes its phases and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn phases_are_judged_on_the_traffic_of_every_instance() {
    let plan = [PhasePlan { percent: 50, min_secs: 2 }, PhasePlan { percent: 100, min_secs: 2 }];
    let Some(mut m) = migrating("fleet_duties_ledger", &plan, true).await else { return };
    let lead = leader(&m.db, "migrations").await.unwrap();
    let slot = if lead == m.a.id { 0 } else { 1 };
    until("the migration completed", Duration::from_secs(30), async || {
        m.state().await.0 == "completed" && m.audits("migration.complete").await > 0
    })
    .await;
    m.stop_load().await;
    assert_eq!(leader(&m.db, "migrations").await, Some(lead), "one leader drove it all");
    assert_eq!(m.served[slot].load(Ordering::Relaxed), 0, "the leader served no request");
    let figures = m.phase_figures().await;
    eprintln!("per phase (requests judged, migration-route rows in the ledger): {figures:?}");
    for (judged, ledger) in figures {
        assert!(judged >= 5 && judged <= ledger, "judged {judged} requests, the ledger holds {ledger}");
    }
}

/// The fence itself: an instance that believes it still leads (its clock
/// stopped, as a paused process's) has its save refused once another took
/// the lease; the stored state is the new leader's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_migration_save_of_a_leader_that_lost_its_lease_is_refused() {
    let Some(f) = Fleet::setup("fleet_duties_fence").await else { return };
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let url = f.url.clone();
    let store = tokio::task::spawn_blocking(move || Arc::new(Store::open_postgres(&url).unwrap())).await.unwrap();
    let plan = [PhasePlan { percent: 50, min_secs: 60 }, PhasePlan { percent: 100, min_secs: 60 }];
    let mig = Migration::new(SupplierId(1), RouteTarget::Platform, RouteTarget::Account(AccountId(99)), &plan, Criteria::default(), t0);
    let id = {
        let (s, m) = (store.clone(), mig.clone());
        tokio::task::spawn_blocking(move || s.insert_migration(&m).unwrap()).await.unwrap()
    };
    let settings = FleetSettings { time: FleetTime::Clock, ..FleetSettings::default() };
    let pg = PgStore::open(&f.url).await.unwrap();
    let fleet = FleetStore::new(pg.clone());
    let who = |h: &str| NewInstance { host: h.into(), pid: 1, version: "test".into() };
    let (ia, ib) = (fleet.register(&who("a"), Some(t0)).await.unwrap(), fleet.register(&who("b"), Some(t0)).await.unwrap());
    let (clock_a, clock_b) = (ManualClock::new(t0), ManualClock::new(t0));
    let ea = LeaderElector::new(fleet.clone(), ia, &[Duty::Migrations], Arc::new(clock_a.clone()), settings.clone());
    let eb = LeaderElector::new(fleet.clone(), ib, &[Duty::Migrations], Arc::new(clock_b.clone()), settings.clone());
    ea.tick().await;
    assert!(ea.is_leader(Duty::Migrations).is_some());
    let save_a = switchboard::engine::fleet::duties::fenced_migration_save(ea.clone(), pg.clone());
    let save_b = switchboard::engine::fleet::duties::fenced_migration_save(eb.clone(), pg.clone());
    let saved = |s: Arc<Store>| async move { tokio::task::spawn_blocking(move || s.migration(id).unwrap()).await.unwrap() };
    let run = |save: switchboard::engine::migrations::MigrationSave, m: Migration| async move {
        tokio::task::spawn_blocking(move || save(&m, MigrationState::Running)).await.unwrap()
    };

    // A leads: its save is written.
    let mut by_a = saved(store.clone()).await;
    by_a.apply(&Step::Advance { next: 1 }, t0 + chrono::Duration::seconds(61));
    run(save_a.clone(), by_a.clone()).await.unwrap();
    assert_eq!(saved(store.clone()).await.phase, 1);

    // A "pauses" (its clock stops); B's lease check finds A's lease expired
    // and takes it with the next epoch. A still believes it leads.
    clock_b.set(t0 + chrono::Duration::from_std(settings.leader_ttl).unwrap() + chrono::Duration::seconds(1));
    eb.tick().await;
    let (la, lb) = (ea.is_leader(Duty::Migrations).unwrap(), eb.is_leader(Duty::Migrations).unwrap());
    assert!(lb.epoch > la.epoch, "B took the lease with a later epoch ({} > {})", lb.epoch, la.epoch);
    let mut by_b = saved(store.clone()).await;
    by_b.reason = Some("saved by the new leader".into());
    by_b.updated_at = clock_b.now();
    run(save_b, by_b.clone()).await.unwrap();

    // A resumes and writes what it decided before the pause: refused.
    let mut stale = by_a.clone();
    stale.end(MigrationState::RolledBack, "rolled_back", "the old leader's late decision", t0 + chrono::Duration::seconds(62));
    match run(save_a, stale).await {
        Err(MigrationError::Fenced(msg)) => assert!(msg.contains("no longer holds"), "{msg}"),
        other => panic!("the old leader's save was not fenced: {other:?}"),
    }
    let now = saved(store.clone()).await;
    assert_eq!((now.state, now.phase, now.reason.as_deref()), (MigrationState::Running, 1, Some("saved by the new leader")));
}

/// A pause written by a console whose clock runs behind the leader's is not
/// undone by the leader's next save: the save is refused as superseded (the
/// stored state is no longer the one its step started from), the pause and
/// the phase stand, and a console's action is applied to the leader's latest
/// stored phase, not to an older copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consoles_pause_stands_against_the_leaders_next_save_whatever_the_clocks() {
    use switchboard::engine::migrations::MigrationService;
    let Some(f) = Fleet::setup("fleet_duties_superseded").await else { return };
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let url = f.url.clone();
    let store = tokio::task::spawn_blocking(move || Arc::new(Store::open_postgres(&url).unwrap())).await.unwrap();
    let plan = [PhasePlan { percent: 10, min_secs: 60 }, PhasePlan { percent: 50, min_secs: 60 }, PhasePlan { percent: 100, min_secs: 60 }];
    let mig = Migration::new(SupplierId(1), RouteTarget::Platform, RouteTarget::Account(AccountId(99)), &plan, Criteria::default(), t0);
    let id = {
        let (s, m) = (store.clone(), mig.clone());
        tokio::task::spawn_blocking(move || s.insert_migration(&m).unwrap()).await.unwrap()
    };
    // The console's bookkeeping service loads the migration while it is in phase 1.
    let console_clock = ManualClock::new(t0 - chrono::Duration::seconds(30));
    let console = {
        let (s, c) = (store.clone(), console_clock.clone());
        tokio::task::spawn_blocking(move || MigrationService::offline(s, Arc::new(c)).unwrap()).await.unwrap()
    };
    let settings = FleetSettings { time: FleetTime::Clock, ..FleetSettings::default() };
    let pg = PgStore::open(&f.url).await.unwrap();
    let fleet = FleetStore::new(pg.clone());
    let ia = fleet.register(&NewInstance { host: "a".into(), pid: 1, version: "test".into() }, Some(t0)).await.unwrap();
    let ea = LeaderElector::new(fleet.clone(), ia, &[Duty::Migrations], Arc::new(ManualClock::new(t0)), settings);
    ea.tick().await;
    let save = switchboard::engine::fleet::duties::fenced_migration_save(ea.clone(), pg.clone());
    let saved = |s: Arc<Store>| async move { tokio::task::spawn_blocking(move || s.migration(id).unwrap()).await.unwrap() };

    // The leader advances to phase 2.
    let mut leader = saved(store.clone()).await;
    leader.apply(&Step::Advance { next: 1 }, t0 + chrono::Duration::seconds(61));
    {
        let (save, m) = (save.clone(), leader.clone());
        tokio::task::spawn_blocking(move || save(&m, MigrationState::Running)).await.unwrap().unwrap();
    }
    // The console, 30 s behind, pauses: applied to the stored phase 2, not its phase-1 copy.
    let paused = tokio::task::spawn_blocking(move || console.pause(id).unwrap()).await.unwrap();
    assert_eq!((paused.state, paused.phase), (MigrationState::Paused, 1));
    assert!(paused.updated_at < leader.updated_at, "the console's clock is behind the leader's");
    // The leader, which has not seen the pause, steps on from running: refused, the pause stands.
    leader.apply(&Step::Advance { next: 2 }, t0 + chrono::Duration::seconds(122));
    let res = {
        let (save, m) = (save.clone(), leader.clone());
        tokio::task::spawn_blocking(move || save(&m, MigrationState::Running)).await.unwrap()
    };
    match res {
        Err(MigrationError::Superseded(msg)) => assert!(msg.contains("changed by another process") && msg.contains("paused"), "{msg}"),
        other => panic!("the leader's save overwrote the pause: {other:?}"),
    }
    let now = saved(store.clone()).await;
    assert_eq!((now.state, now.phase), (MigrationState::Paused, 1));
}
