//! Fleet coordination (issue 25) against a real PostgreSQL: instances that
//! register, heartbeat and go silent; leader leases per duty with a fencing
//! epoch (take, renew, takeover after expiry, a paused old leader's write
//! refused, one winner among racing electors); LISTEN/NOTIFY between
//! connections within a second, and a listener that reconnects after its
//! backend is terminated and tells subscribers to resync. Several "instances"
//! are separate pools (and electors) in this one process; the two-process
//! tests are in `fleet`. Time is a `ManualClock` wherever it matters, except
//! one test that runs the server's clock with a short lease.

use crate::support::pg::{base_url, fresh_db, raw};
use chrono::{TimeZone, Utc};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchboard::domain::health::Verdict;
use switchboard::domain::{Clock, ManualClock};
use switchboard::engine::fleet::heartbeat::Heartbeat;
use switchboard::engine::fleet::leader::{Change, LeaderElector};
use switchboard::engine::fleet::notify::{self, FleetEvent, HealthVerdict, Listener};
use switchboard::engine::fleet::{Acquire, Duty, FenceError, FleetSettings, FleetStore, FleetTime, InstanceState, NewInstance};
use switchboard::store::pg::fleet::ListenConfig;
use switchboard::store::pg::{PgError, PgResult, PgStore, schema};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// A fenced write: one row (writer, epoch) into `fence_probe`.
fn write(
    writer: i64,
    epoch: i64,
) -> impl for<'t> FnOnce(&'t tokio_postgres::Transaction<'t>) -> BoxFuture<'t, PgResult<u64>> + Send + 'static {
    move |tx| {
        Box::pin(async move {
            tx.execute("INSERT INTO fence_probe VALUES ($1, $2)", &[&writer, &epoch])
                .await
                .map_err(|e| PgError::Db { url: String::new(), detail: e.to_string() })
        })
    }
}

/// Settings on the injected clock, with the product's lease numbers.
fn clock_settings() -> FleetSettings {
    FleetSettings { time: FleetTime::Clock, ..FleetSettings::default() }
}

/// One "instance": its own pool on the database.
async fn instance_store(url: &str) -> FleetStore {
    FleetStore::new(PgStore::open(url).await.unwrap())
}

fn who(host: &str) -> NewInstance {
    NewInstance { host: host.into(), pid: 4242, version: "0.1.0-test".into() }
}

#[test]
fn instances_register_heartbeat_and_are_gone_after_silence() {
    let Some(base) = base_url("fleet_coord::instances_register_heartbeat_and_are_gone_after_silence") else { return };
    rt().block_on(async {
        let url = fresh_db(&base, "sbt_fc_instances").await;
        let store = instance_store(&url).await;
        assert_eq!(store.pg().schema_version().await.unwrap(), schema::LATEST_VERSION);
        let clock = ManualClock::new(t0());
        let settings = clock_settings();
        let now = || Some(clock.now());

        let a = store.register(&who("gw-a"), now()).await.unwrap();
        let b = store.register(&who("gw-b"), now()).await.unwrap();
        assert!(a > 0 && b > a && b <= i64::from(u32::MAX), "ids {a}, {b} must be journal ids (u32)");

        // b leads probes; its heartbeat says so, with its request rate.
        let elector = LeaderElector::new(store.clone(), b, &[Duty::Probes], Arc::new(clock.clone()), settings.clone());
        assert_eq!(elector.tick().await.len(), 1);
        let requests = Arc::new(AtomicU64::new(0));
        let hb_b = Heartbeat::new(store.clone(), b, Arc::new(clock.clone()), settings.clone(), requests.clone(), Some(elector.clone()));
        let hb_a = Heartbeat::new(store.clone(), a, Arc::new(clock.clone()), settings.clone(), Arc::new(AtomicU64::new(0)), None);
        assert!(hb_b.tick().await.unwrap());
        clock.advance(chrono::Duration::seconds(5));
        requests.fetch_add(50, Ordering::Relaxed);
        assert!(hb_a.tick().await.unwrap());
        assert!(hb_b.tick().await.unwrap());

        let list = store.list(now(), settings.gone_after).await.unwrap();
        assert_eq!(list.iter().map(|i| i.id).collect::<Vec<_>>(), vec![b, a], "newest first");
        let row_b = &list[0];
        assert_eq!((row_b.host.as_str(), row_b.pid, row_b.version.as_str()), ("gw-b", 4242, "0.1.0-test"));
        assert_eq!(row_b.started_at, t0());
        assert_eq!(row_b.last_seen, t0() + chrono::Duration::seconds(5));
        assert_eq!(row_b.requests_per_second, 10.0, "50 requests in 5 s");
        assert_eq!(row_b.roles, vec![Duty::Probes]);
        assert!(list.iter().all(|i| i.state == InstanceState::Live));

        // a falls silent; b keeps heartbeating. Just under gone_after a is live, at it gone.
        let gone = chrono::Duration::from_std(settings.gone_after).unwrap();
        clock.advance(gone - chrono::Duration::seconds(1));
        assert!(hb_b.tick().await.unwrap());
        let state = |list: &[switchboard::engine::fleet::InstanceRow], id: i64| list.iter().find(|i| i.id == id).unwrap().state;
        let list = store.list(now(), settings.gone_after).await.unwrap();
        assert_eq!((state(&list, a), state(&list, b)), (InstanceState::Live, InstanceState::Live));
        clock.advance(chrono::Duration::seconds(1));
        let list = store.list(now(), settings.gone_after).await.unwrap();
        assert_eq!((state(&list, a), state(&list, b)), (InstanceState::Gone, InstanceState::Live));

        // b renews (re-takes its lapsed lease: epoch 2), then exits cleanly:
        // stopped, its lease released, and a heartbeat does not revive it.
        assert_eq!(elector.tick().await.len(), 1);
        assert_eq!(elector.is_leader(Duty::Probes).map(|l| l.epoch), Some(2));
        store.stop(b, now()).await.unwrap();
        let list = store.list(now(), settings.gone_after).await.unwrap();
        assert_eq!(state(&list, b), InstanceState::Stopped);
        assert!(list.iter().find(|i| i.id == b).unwrap().roles.is_empty());
        assert!(!hb_b.tick().await.unwrap());
        assert_eq!(state(&store.list(now(), settings.gone_after).await.unwrap(), b), InstanceState::Stopped);
        match store.try_acquire(Duty::Probes, a, now(), settings.leader_ttl).await.unwrap() {
            Acquire::Mine(l) => assert_eq!(l.epoch, 3, "the stopped leader's lease was free at once"),
            other => panic!("a should take the released lease: {other:?}"),
        }
    });
}

#[test]
fn leases_are_taken_renewed_and_taken_over_after_expiry_with_a_new_epoch() {
    let Some(base) = base_url("fleet_coord::leases_are_taken_renewed_and_taken_over_after_expiry_with_a_new_epoch") else {
        return;
    };
    rt().block_on(async {
        let url = fresh_db(&base, "sbt_fc_leases").await;
        let store = instance_store(&url).await;
        let clock = ManualClock::new(t0());
        let ttl = Duration::from_secs(15);
        let at = |s: i64| Some(t0() + chrono::Duration::seconds(s));
        let (a, b) = (1_i64, 2_i64);

        let Acquire::Mine(first) = store.try_acquire(Duty::Probes, a, at(0), ttl).await.unwrap() else { panic!("free lease not taken") };
        assert_eq!((first.instance, first.epoch, first.expires_at), (a, 1, t0() + chrono::Duration::seconds(15)));
        // Renewal: same epoch, later expiry.
        let Acquire::Mine(renewed) = store.try_acquire(Duty::Probes, a, at(10), ttl).await.unwrap() else { panic!("renewal refused") };
        assert_eq!((renewed.epoch, renewed.expires_at), (1, t0() + chrono::Duration::seconds(25)));
        // Held: b is told who holds it.
        assert_eq!(store.try_acquire(Duty::Probes, b, at(24), ttl).await.unwrap(), Acquire::Theirs(Some(renewed)));
        // Duties are independent.
        assert!(matches!(store.try_acquire(Duty::Migrations, b, at(24), ttl).await.unwrap(), Acquire::Mine(l) if l.epoch == 1));
        // Expired: b takes over with epoch 2; a can no longer renew.
        let Acquire::Mine(taken) = store.try_acquire(Duty::Probes, b, at(25), ttl).await.unwrap() else {
            panic!("expired lease not taken")
        };
        assert_eq!((taken.instance, taken.epoch), (b, 2));
        assert_eq!(store.try_acquire(Duty::Probes, a, at(26), ttl).await.unwrap(), Acquire::Theirs(Some(taken)));
        // b lets its own lease lapse and takes it again: a new epoch all the same.
        let Acquire::Mine(again) = store.try_acquire(Duty::Probes, b, at(41), ttl).await.unwrap() else { panic!() };
        assert_eq!((again.instance, again.epoch), (b, 3));
        // Released: taken at once by the other, epoch + 1; releasing a stale lease does nothing.
        assert!(store.release(&again).await.unwrap());
        assert!(!store.release(&again).await.unwrap());
        let Acquire::Mine(after) = store.try_acquire(Duty::Probes, a, at(42), ttl).await.unwrap() else { panic!() };
        assert_eq!((after.instance, after.epoch), (a, 4));
        assert_eq!(store.lease(Duty::Probes).await.unwrap(), Some(after));

        // The same through electors, on the manual clock.
        clock.set(t0() + chrono::Duration::seconds(100));
        let settings = clock_settings();
        let ea = LeaderElector::new(store.clone(), a, &Duty::ALL, Arc::new(clock.clone()), settings.clone());
        let eb = LeaderElector::new(store.clone(), b, &Duty::ALL, Arc::new(clock.clone()), settings.clone());
        let took = ea.tick().await;
        assert_eq!(took.len(), 3, "a takes every expired or free duty: {took:?}");
        assert_eq!(ea.is_leader(Duty::Probes).map(|l| l.epoch), Some(5));
        assert_eq!(ea.is_leader(Duty::Alerts).map(|l| l.epoch), Some(1));
        assert!(eb.tick().await.is_empty());
        assert_eq!(eb.roles(), vec![]);
        let mut watch_a = ea.watch(Duty::Probes).unwrap();
        watch_a.borrow_and_update();
        // a renews within the lease: no change.
        clock.advance(chrono::Duration::from_std(settings.leader_check_every).unwrap());
        assert!(ea.tick().await.is_empty());
        assert!(!watch_a.has_changed().unwrap(), "a renewal does not wake watchers");
        assert_eq!(ea.is_leader(Duty::Probes).map(|l| l.epoch), Some(5));
        // a dies (stops ticking). Within the ttl b cannot take over; after it, b does.
        clock.advance(chrono::Duration::from_std(settings.leader_ttl).unwrap() - chrono::Duration::seconds(1));
        assert!(eb.tick().await.is_empty());
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(ea.is_leader(Duty::Probes), None, "a's own belief ended with its lease");
        let changes = eb.tick().await;
        assert_eq!(changes.len(), 3);
        assert!(changes.contains(&Change::Took(eb.is_leader(Duty::Probes).unwrap())));
        assert_eq!(eb.is_leader(Duty::Probes).map(|l| (l.instance, l.epoch)), Some((b, 6)));
        assert_eq!(eb.roles(), Duty::ALL.to_vec());
        // a comes back: it learns it lost, and watchers hear it.
        assert_eq!(ea.tick().await, vec![Change::Lost(Duty::Probes), Change::Lost(Duty::Migrations), Change::Lost(Duty::Alerts)]);
        assert!(watch_a.has_changed().unwrap());
        assert_eq!(*watch_a.borrow_and_update(), None);
        // A clean exit hands over at the next check.
        eb.release_all().await.unwrap();
        assert_eq!(eb.roles(), vec![]);
        assert_eq!(ea.tick().await.len(), 3);
        assert_eq!(ea.is_leader(Duty::Probes).map(|l| l.epoch), Some(7));
    });
}

#[test]
fn a_paused_old_leaders_fenced_write_is_refused_after_takeover() {
    let Some(base) = base_url("fleet_coord::a_paused_old_leaders_fenced_write_is_refused_after_takeover") else { return };
    rt().block_on(async {
        let url = fresh_db(&base, "sbt_fc_fencing").await;
        let (store_a, store_b) = (instance_store(&url).await, instance_store(&url).await);
        let client = raw(&url).await;
        client.batch_execute("CREATE TABLE fence_probe (writer BIGINT NOT NULL, epoch BIGINT NOT NULL)").await.unwrap();
        let clock = ManualClock::new(t0());
        let settings = clock_settings();
        let ea = LeaderElector::new(store_a.clone(), 1, &[Duty::Migrations], Arc::new(clock.clone()), settings.clone());
        let eb = LeaderElector::new(store_b.clone(), 2, &[Duty::Migrations], Arc::new(clock.clone()), settings.clone());
        // Not a leader yet: nothing to fence with.
        assert!(matches!(ea.fenced(Duty::Migrations, write(1, 0)).await, Err(FenceError::NotLeader { duty: Duty::Migrations })));
        ea.tick().await;
        let old = ea.is_leader(Duty::Migrations).unwrap();
        assert_eq!(ea.fenced(Duty::Migrations, write(1, old.epoch)).await.unwrap(), 1, "the leader's write is made");

        // a pauses (no renewals); past its ttl b takes over.
        clock.advance(chrono::Duration::from_std(settings.leader_ttl).unwrap() + chrono::Duration::seconds(1));
        eb.tick().await;
        let new = eb.is_leader(Duty::Migrations).unwrap();
        assert_eq!(new.epoch, old.epoch + 1);
        // a wakes up still holding its old lease and a stale idea of the time:
        // the database refuses it by holder and epoch, whatever a's clock says.
        let stale_now = Some(t0() + chrono::Duration::seconds(1));
        match store_a.fenced(&old, stale_now, write(1, old.epoch)).await {
            Err(FenceError::Fenced { duty, instance, epoch }) => assert_eq!((duty, instance, epoch), (Duty::Migrations, 1, old.epoch)),
            other => panic!("the old leader's write must be fenced: {other:?}"),
        }
        assert!(matches!(ea.fenced(Duty::Migrations, write(1, old.epoch)).await, Err(FenceError::NotLeader { .. })));
        assert_eq!(eb.fenced(Duty::Migrations, write(2, new.epoch)).await.unwrap(), 1);
        // A failing write rolls back and the lease stays.
        let failing = eb
            .fenced(Duty::Migrations, |tx| {
                Box::pin(async move {
                    tx.execute("INSERT INTO fence_probe VALUES (2, 99)", &[])
                        .await
                        .map_err(|e| PgError::Db { url: String::new(), detail: e.to_string() })?;
                    tx.execute("INSERT INTO no_such_table VALUES (1)", &[])
                        .await
                        .map_err(|e| PgError::Db { url: String::new(), detail: e.to_string() })
                })
            })
            .await;
        assert!(matches!(failing, Err(FenceError::Store(_))), "{failing:?}");
        let rows: Vec<(i64, i64)> = client
            .query("SELECT writer, epoch FROM fence_probe ORDER BY epoch", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(rows, vec![(1, old.epoch), (2, new.epoch)], "exactly the two leaders' writes, each under its own epoch");

        // An expired lease that nobody took is refused too (by time).
        clock.advance(chrono::Duration::from_std(settings.leader_ttl).unwrap());
        assert!(matches!(store_b.fenced(&new, Some(clock.now()), write(2, new.epoch)).await, Err(FenceError::Fenced { .. })));
    });
}

#[test]
fn a_takeover_waits_for_the_old_leaders_fenced_write_in_flight() {
    let Some(base) = base_url("fleet_coord::a_takeover_waits_for_the_old_leaders_fenced_write_in_flight") else { return };
    rt().block_on(async {
        let url = fresh_db(&base, "sbt_fc_inflight").await;
        let (store_a, store_b) = (instance_store(&url).await, instance_store(&url).await);
        let admin = raw(&url).await;
        admin.batch_execute("CREATE TABLE fence_probe (writer BIGINT NOT NULL, epoch BIGINT NOT NULL)").await.unwrap();
        let ttl = Duration::from_secs(15);
        let at = |s: i64| Some(t0() + chrono::Duration::seconds(s));
        let Acquire::Mine(old) = store_a.try_acquire(Duty::Probes, 1, at(0), ttl).await.unwrap() else { panic!() };

        // a's fenced write passes the check at t=14 and then stalls inside its transaction.
        let (inside_tx, inside_rx) = tokio::sync::oneshot::channel::<()>();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let a = tokio::spawn(async move {
            store_a
                .fenced(&old, at(14), move |tx| {
                    Box::pin(async move {
                        let _ = inside_tx.send(());
                        let _ = go_rx.await;
                        tx.execute("INSERT INTO fence_probe VALUES (1, $1)", &[&old.epoch])
                            .await
                            .map_err(|e| PgError::Db { url: String::new(), detail: e.to_string() })
                    })
                })
                .await
        });
        inside_rx.await.unwrap();
        // b, past a's expiry, tries to take over: it must wait on a's share lock.
        let b = tokio::spawn(async move { store_b.try_acquire(Duty::Probes, 2, at(20), ttl).await });
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let waiting: i64 = admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                         AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO leader_leases%'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if waiting == 1 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the takeover did not wait for the fenced transaction");
        assert!(!b.is_finished());
        go_tx.send(()).unwrap();
        assert_eq!(a.await.unwrap().unwrap(), 1, "the write under the old epoch commits first");
        let Acquire::Mine(new) = b.await.unwrap().unwrap() else { panic!("b should take the expired lease") };
        assert_eq!((new.instance, new.epoch), (2, old.epoch + 1));
        let rows: i64 = admin.query_one("SELECT count(*) FROM fence_probe", &[]).await.unwrap().get(0);
        assert_eq!(rows, 1);
    });
}

#[test]
fn only_one_of_many_racing_electors_gets_each_duty() {
    let Some(base) = base_url("fleet_coord::only_one_of_many_racing_electors_gets_each_duty") else { return };
    rt().block_on(async {
        let url = fresh_db(&base, "sbt_fc_race").await;
        let clock = ManualClock::new(t0());
        let settings = clock_settings();
        const N: i64 = 8;
        let mut electors = Vec::new();
        for i in 1..=N {
            let store = instance_store(&url).await;
            electors.push(LeaderElector::new(store, i, &Duty::ALL, Arc::new(clock.clone()), settings.clone()));
        }
        for round in 1..=3_i64 {
            let barrier = Arc::new(tokio::sync::Barrier::new(electors.len()));
            let tasks: Vec<_> = electors
                .iter()
                .map(|e| {
                    let (e, barrier) = (e.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        e.tick().await
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            for duty in Duty::ALL {
                let leaders: Vec<_> = electors.iter().filter_map(|e| e.is_leader(duty)).collect();
                assert_eq!(leaders.len(), 1, "round {round}, {duty}: leaders {leaders:?}");
                assert_eq!(leaders[0].epoch, round, "round {round}, {duty}");
            }
            // Every lease expires: the next round is a fresh race.
            clock.advance(chrono::Duration::from_std(settings.leader_ttl).unwrap());
        }
    });
}

#[test]
fn a_verdict_published_on_one_connection_reaches_another_listener_within_a_second() {
    let Some(base) = base_url("fleet_coord::a_verdict_published_on_one_connection_reaches_another_listener_within_a_second") else {
        return;
    };
    rt().block_on(async {
        let url = fresh_db(&base, "sbt_fc_notify").await;
        let publisher = instance_store(&url).await;
        // Pinged often: a ping that broke the connection would show as a second session.
        let settings = FleetSettings { listen_ping_every: Duration::from_millis(20), ..FleetSettings::default() };
        let listener = Listener::new(ListenConfig::parse(&url).unwrap(), settings, 64);
        let mut events = listener.subscribe();
        let mut status = listener.status();
        let task = tokio::spawn(listener.clone().run());
        tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.connected)).await.expect("listener never connected").unwrap();

        let verdict = HealthVerdict { account_id: 12, verdict: Verdict::Down, epoch: 3, instance: 1 };
        notify::publish_verdict(&publisher, &verdict).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(1), events.recv()).await.expect("no verdict within 1 s").unwrap();
        assert_eq!(got, FleetEvent::Health(verdict));

        // A catalog trigger's notification, sent by plain SQL on another connection.
        let client = raw(&url).await;
        client.execute("SELECT pg_notify('switchboard_catalog', '{\"table\":\"gateway_tokens\",\"version\":7}')", &[]).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(1), events.recv()).await.expect("no catalog change within 1 s").unwrap();
        assert_eq!(got, FleetEvent::Catalog(r#"{"table":"gateway_tokens","version":7}"#.into()));

        // Too large a payload is refused before PostgreSQL sees it.
        let err = publisher.notify(notify::CATALOG_CHANNEL, &"x".repeat(8000)).await.unwrap_err();
        assert!(err.to_string().contains("at most 7999"), "{err}");
        assert_eq!(status.borrow().sessions, 1);
        assert!(events.try_recv().is_err(), "nothing else was delivered (no resync on a first connection)");
        task.abort();
    });
}

#[test]
fn the_listener_reconnects_after_its_backend_is_terminated_and_asks_for_a_resync() {
    let Some(base) = base_url("fleet_coord::the_listener_reconnects_after_its_backend_is_terminated_and_asks_for_a_resync") else {
        return;
    };
    rt().block_on(async {
        let url = fresh_db(&base, "sbt_fc_reconnect").await;
        let publisher = instance_store(&url).await;
        let settings = FleetSettings { listen_backoff_min: Duration::from_millis(50), ..FleetSettings::default() };
        let listener = Listener::new(ListenConfig::parse(&url).unwrap(), settings, 64);
        let mut events = listener.subscribe();
        let mut status = listener.status();
        let task = tokio::spawn(listener.clone().run());
        let first = *tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.connected)).await.unwrap().unwrap();
        let old_pid = first.backend_pid.unwrap();

        let admin = raw(&url).await;
        let killed: bool = admin.query_one("SELECT pg_terminate_backend($1)", &[&old_pid]).await.unwrap().get(0);
        assert!(killed);
        let got = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("no resync after the reconnect").unwrap();
        assert_eq!(got, FleetEvent::Resync);
        let now = *status.borrow();
        assert!(now.connected && now.sessions == 2, "{now:?}");
        assert_ne!(now.backend_pid, Some(old_pid));

        // The new connection listens: a verdict arrives within a second.
        let verdict = HealthVerdict { account_id: 5, verdict: Verdict::Healthy, epoch: 9, instance: 2 };
        notify::publish_verdict(&publisher, &verdict).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(1), events.recv()).await.expect("no verdict after reconnect").unwrap();
        assert_eq!(got, FleetEvent::Health(verdict));
        task.abort();
    });
}

#[test]
fn on_the_servers_clock_a_dead_leader_is_replaced_after_its_lease() {
    let Some(base) = base_url("fleet_coord::on_the_servers_clock_a_dead_leader_is_replaced_after_its_lease") else { return };
    rt().block_on(async {
        let url = fresh_db(&base, "sbt_fc_dbclock").await;
        let (store_a, store_b) = (instance_store(&url).await, instance_store(&url).await);
        // The server decides expiry; the electors' clocks only bound their own belief.
        let settings = FleetSettings {
            time: FleetTime::Database,
            leader_ttl: Duration::from_millis(600),
            leader_check_every: Duration::from_millis(100),
            ..FleetSettings::default()
        };
        let clock: Arc<dyn Clock> = Arc::new(switchboard::domain::SystemClock);
        let ea = LeaderElector::new(store_a, 1, &[Duty::Probes], clock.clone(), settings.clone());
        let eb = LeaderElector::new(store_b, 2, &[Duty::Probes], clock, settings.clone());
        ea.tick().await;
        let old = ea.is_leader(Duty::Probes).expect("a leads");
        let mut watch_b = eb.watch(Duty::Probes).unwrap();
        // a is dead (never renews); b keeps checking.
        let task = tokio::spawn(eb.clone().run());
        let lease =
            *tokio::time::timeout(Duration::from_secs(10), watch_b.wait_for(|l| l.is_some())).await.expect("b did not take over").unwrap();
        let lease = lease.unwrap().lease;
        assert_eq!((lease.instance, lease.epoch), (2, old.epoch + 1));
        // The server's clock: b's lease cannot have been granted before a's expired.
        assert!(lease.expires_at - chrono::Duration::from_std(settings.leader_ttl).unwrap() >= old.expires_at);
        task.abort();
    });
}
