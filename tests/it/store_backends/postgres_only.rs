//! What PostgreSQL mode adds, on the private cluster only: catalog changes
//! reach another pool and a LISTEN connection, methods not ported yet say so,
//! errors mask the URL's password, the catalog commands run through
//! `--database URL`, and two instances racing for one row: exactly one wins.

use super::{account, now, supplier};
use crate::support::pg::{base_url, fresh_db, raw, rt};
use chrono::{Duration, Utc};
use futures::StreamExt;
use switchboard::domain::health::{AlertKind, Severity};
use switchboard::domain::migration::{PhasePlan, RouteTarget};
use switchboard::domain::{AccountId, AccountOwner, SupplierFilter, SupplierId, Tier};
use switchboard::store::pg::catalog::CATALOG_CHANNEL;
use switchboard::store::{AuditFilter, NewAlert, Raised, ScheduleState, Store, StoreError, TokenHash};

/// What PostgreSQL mode adds: another process's pool sees a change as a new
/// catalog version, a LISTEN connection is told the version, a method not
/// ported yet says so, and errors never show a password.
#[test]
fn catalog_changes_reach_another_connection() {
    let Some(base) = base_url("store_backends::postgres_only::catalog_changes_reach_another_connection") else { return };
    let rt = rt();
    let url = rt.block_on(fresh_db(&base, "sbt_sb_notify"));
    let writer = Store::open_postgres(&url).unwrap();
    let reader = Store::open_location(&url).unwrap();
    assert_eq!(writer.location(), reader.location());
    assert_eq!(writer.schema_version().unwrap(), switchboard::store::pg::schema::LATEST_VERSION);

    let (listener, mut conn) = rt.block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    rt.spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    rt.block_on(listener.batch_execute(&format!("LISTEN {CATALOG_CHANNEL}"))).unwrap();
    // Waits for the notification announcing `version`, skipping older ones.
    let mut told = |version: i64| {
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), async {
                loop {
                    let (channel, payload) = rx.recv().await.expect("the listener ended");
                    assert_eq!(channel, CATALOG_CHANNEL);
                    if payload.parse::<i64>().unwrap() >= version {
                        return payload.parse::<i64>().unwrap();
                    }
                }
            })
            .await
            .expect("no notification within 5 s")
        })
    };

    let before = reader.catalog_version().unwrap();
    let s = writer.insert_supplier(&supplier("Studio", Tier::Starter, &[]), now()).unwrap();
    let after_insert = reader.catalog_version().unwrap();
    assert!(after_insert > before, "the reader sees the insert: {before} → {after_insert}");
    assert_eq!(told(after_insert), after_insert);
    assert_eq!(reader.supplier(s.id).unwrap().name, "Studio");

    let token = writer.insert_token(s.id, &TokenHash::of("sbk_live"), "sbk_…live", now()).unwrap();
    let after_token = reader.catalog_version().unwrap();
    assert!(after_token > after_insert);
    assert_eq!(told(after_token), after_token);
    assert!(!reader.find_token_by_hash(&TokenHash::of("sbk_live")).unwrap().unwrap().revoked);
    writer.revoke_token(token.id, now()).unwrap();
    let after_revoke = reader.catalog_version().unwrap();
    assert!(after_revoke > after_token);
    assert_eq!(told(after_revoke), after_revoke);
    assert!(reader.find_token_by_hash(&TokenHash::of("sbk_live")).unwrap().unwrap().revoked, "the other pool sees the revocation");

    // A raw statement on another connection (not through the store) is announced too.
    let other = rt.block_on(raw(&url));
    rt.block_on(other.execute("UPDATE suppliers SET tier = 'scale' WHERE id = $1", &[&s.id.0])).unwrap();
    let after_raw = writer.catalog_version().unwrap();
    assert!(after_raw > after_revoke);
    assert_eq!(told(after_raw), after_raw);
    assert_eq!(writer.supplier(s.id).unwrap().tier, Tier::Scale);

    // Not ported yet: a clear error, no panic.
    let Err(e) = reader.cache_purges_since(0) else { panic!("the response cache's purge log read on PostgreSQL") };
    assert!(matches!(e, StoreError::NotOnPostgres(_)), "{e:?}");
    assert!(e.to_string().starts_with("not available on PostgreSQL yet"), "{e}");
    assert!(matches!(reader.open_connection(), Err(StoreError::NotOnPostgres(_))));
}

#[test]
fn postgres_errors_mask_the_password() {
    // Nothing listens on port 1: the connection is refused at once.
    let e = Store::open_location("postgres://sb:s3cr3t-pw@127.0.0.1:1/sb").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StoreError::Postgres(_)), "{e:?}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
    assert!(text.contains("sb:***@127.0.0.1:1"), "{text}");

    let Some(base) = base_url("store_backends::postgres_only::postgres_errors_mask_the_password") else { return };
    // Another application's database is refused, untouched.
    let rt = rt();
    let url = rt.block_on(fresh_db(&base, "sbt_sb_foreign"));
    rt.block_on(async { raw(&url).await.batch_execute("CREATE TABLE orders (id INT)").await.unwrap() });
    let e = Store::open_location(&url).unwrap_err();
    assert!(e.to_string().contains("another application (orders)"), "{e}");
}

/// The catalog commands on PostgreSQL through `--database URL`,
/// `SWITCHBOARD_DATABASE` and `--db URL`; commands not ported yet refuse with
/// a clear message; no output ever shows the URL's password (the test
/// cluster trusts loopback, so a password in the URL is never checked).
#[test]
fn catalog_commands_on_postgres() {
    let Some(base) = base_url("store_backends::postgres_only::catalog_commands_on_postgres") else { return };
    let url = rt().block_on(fresh_db(&base, "sbt_sb_cli"));
    let (scheme, rest) = url.split_once("://").unwrap();
    let url = format!("{scheme}://{}", rest.replacen('@', ":hunter2-pw@", 1));
    let mut outputs = String::new();
    let mut run = |args: &[&str], how: usize, ok: bool| {
        let mut c = crate::support::bin();
        match how {
            0 => c.args(["--database", &url]),
            1 => c.env("SWITCHBOARD_DATABASE", &url),
            _ => c.args(["--db", &url]),
        };
        let out = c.args(args).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        outputs.push_str(&stdout);
        outputs.push_str(&stderr);
        assert_eq!(out.status.success(), ok, "{args:?}: {stdout}{stderr}");
        if ok { stdout } else { stderr }
    };
    run(&["supplier", "add", "--name", "Capture Moments", "--vendor-type", "photographer", "--tier", "starter"], 0, true);
    run(&["supplier", "add", "--name", "Grand Ballroom", "--vendor-type", "venue", "--tier", "scale", "--mode", "client"], 1, true);
    let list: serde_json::Value = serde_json::from_str(&run(&["supplier", "list", "--json"], 2, true)).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list[0]["name"], "Capture Moments");
    let id = list[0]["id"].to_string();
    run(&["supplier", "edit", &id, "--tier", "scale", "--add-wedding", "2026-06-20"], 0, true);
    let shown: serde_json::Value = serde_json::from_str(&run(&["supplier", "show", &id, "--json"], 0, true)).unwrap();
    assert_eq!((shown["tier"].as_str(), shown["weddings"].clone()), (Some("scale"), serde_json::json!(["2026-06-20"])));

    let issued: serde_json::Value = serde_json::from_str(&run(&["token", "issue", "--supplier", &id, "--json"], 0, true)).unwrap();
    let token_id = issued["id"].to_string();
    run(&["token", "revoke", &token_id], 1, true);
    let tokens: serde_json::Value = serde_json::from_str(&run(&["token", "list", "--json"], 0, true)).unwrap();
    assert_eq!(tokens.as_array().unwrap().len(), 1);
    assert!(!tokens[0]["revoked_at"].is_null(), "{tokens}");
    let keys: serde_json::Value = serde_json::from_str(&run(&["key", "list", "--json"], 0, true)).unwrap();
    assert_eq!(keys, serde_json::json!([]));
    let ballroom = list[1]["id"].to_string();
    run(&["supplier", "remove", &ballroom], 2, true);

    // The same database through the store: what the commands wrote, audited.
    let store = Store::open_postgres(&url).unwrap();
    assert_eq!(
        store.list_suppliers(&SupplierFilter::default()).unwrap().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["Capture Moments"]
    );
    let actions: Vec<String> = store.audit_entries(&AuditFilter::default()).unwrap().into_iter().map(|e| e.action).collect();
    assert!(actions.iter().any(|a| a.starts_with("token.")), "{actions:?}");

    // Alerts and recommendations raised by the fleet, handled from the CLI.
    let sid = SupplierId(list[0]["id"].as_i64().unwrap());
    let raised = match store.raise_alert(
        &NewAlert {
            kind: AlertKind::QuotaWarning,
            condition_key: "quota:1".into(),
            severity: Severity::Warning,
            supplier_id: Some(sid),
            account_id: None,
            message: "80 % of the quota used".into(),
            escalated: false,
            incident_id: None,
        },
        Utc::now(),
    ) {
        Ok(Raised::New(a)) => a,
        other => panic!("{other:?}"),
    };
    let alerts: serde_json::Value = serde_json::from_str(&run(&["alerts", "--json"], 1, true)).unwrap();
    assert_eq!(alerts[0]["id"], raised.id, "{alerts}");
    run(&["alerts", "ack", &raised.id.to_string()], 0, true);
    assert!(store.find_alert(raised.id).unwrap().unwrap().acknowledged_at.is_some());
    assert!(run(&["alerts", "resolve", "999"], 0, false).contains("999"));
    assert!(store.recommend(sid, "to_client", "move Capture Moments to its own account", Utc::now()).unwrap());
    let recs: serde_json::Value = serde_json::from_str(&run(&["recommendations", "--json"], 2, true)).unwrap();
    run(&["recommendations", "dismiss", &recs[0]["id"].to_string()], 0, true);
    assert!(store.open_recommendations().unwrap().is_empty());
    let actions: Vec<String> = store.audit_entries(&AuditFilter::default()).unwrap().into_iter().map(|e| e.action).collect();
    assert!(actions.iter().any(|a| a == "recommendation.dismiss") && actions.iter().any(|a| a.starts_with("alert.")), "{actions:?}");

    // Reports run on PostgreSQL (store_backends::analytics compares them with SQLite's), cache
    // figures too (the parallel test and purges, carried out by instances: tests/it/fleet_cli.rs).
    let quota: serde_json::Value =
        serde_json::from_str(&run(&["report", "quota", "--from", "2026-06-01", "--to", "2026-06-30"], 0, true)).unwrap();
    assert!(quota["quota use"].is_object(), "{quota}");
    let stats: serde_json::Value = serde_json::from_str(&run(&["cache", "stats", "--json"], 0, true)).unwrap();
    assert!(stats["suppliers"].is_array(), "{stats}");
    let e = run(&["demo-data"], 0, false);
    assert!(e.contains("demo-data writes a demonstration history into a SQLite file"), "{e}");
    // Health runs (tests/it/fleet_cli.rs probes real accounts); here there are none.
    let out = run(&["health"], 1, true);
    assert!(out.contains("No provider accounts yet"), "{out}");
    let e = crate::support::bin().args(["--database", "/tmp/x.db", "supplier", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&e.stderr).contains("takes a PostgreSQL URL"));
    assert!(!outputs.contains("hunter2-pw"), "a password was shown:\n{outputs}");
}

/// Two instances (two pools on one database) racing for the same alert,
/// incident, recommendation, mirror claim and schedule claim: exactly one
/// wins each, and the other sees the winner's row.
#[test]
fn instances_racing_for_one_row() {
    let Some(base) = base_url("store_backends::postgres_only::instances_racing_for_one_row") else { return };
    let url = rt().block_on(fresh_db(&base, "sbt_sb_race"));
    let a = std::sync::Arc::new(Store::open_postgres(&url).unwrap());
    let b = std::sync::Arc::new(Store::open_postgres(&url).unwrap());
    let s = a.insert_supplier(&supplier("Studio", Tier::Starter, &[]), now()).unwrap();
    let acc = a.insert_account(&account(AccountOwner::Supplier(s.id), "own"), now()).unwrap();
    let plan = [PhasePlan { percent: 100, min_secs: 0 }];
    for round in 0..20 {
        let key = format!("down:account:{round}");
        let sched = a.insert_schedule(s.id, RouteTarget::Platform, &plan, now(), now()).unwrap();
        let mirror = a.insert_mirror(s.id, acc.id, 10, 10, now(), now() + Duration::hours(1)).unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let race = |store: std::sync::Arc<Store>, barrier: std::sync::Arc<std::sync::Barrier>, key: String| {
            std::thread::spawn(move || {
                barrier.wait();
                let alert = store
                    .raise_alert(
                        &NewAlert {
                            kind: AlertKind::ProviderDown,
                            condition_key: key,
                            severity: Severity::Critical,
                            supplier_id: None,
                            account_id: Some(AccountId(round)),
                            message: "down".into(),
                            escalated: false,
                            incident_id: None,
                        },
                        now(),
                    )
                    .unwrap();
                let incident = store.open_incident(AccountId(round), now()).unwrap();
                let recommended = store.recommend(SupplierId(1), &format!("kind{round}"), "m", now()).unwrap();
                let mirror_claimed = store.claim_mirror(mirror.id, now()).unwrap();
                let schedule_claimed = store.claim_schedule(sched.id, now()).unwrap();
                (alert, incident, recommended, mirror_claimed, schedule_claimed)
            })
        };
        let ta = race(a.clone(), barrier.clone(), key.clone());
        let tb = race(b.clone(), barrier, key.clone());
        let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
        let id_of = |r: &Raised| match r {
            Raised::New(x) | Raised::AlreadyOpen(x) => x.id,
        };
        assert_eq!(id_of(&ra.0), id_of(&rb.0), "one alert for {key}");
        assert_eq!(matches!(ra.0, Raised::New(_)) as u8 + matches!(rb.0, Raised::New(_)) as u8, 1, "exactly one raised {key}");
        assert_eq!(ra.1.id, rb.1.id, "one incident");
        assert_eq!(ra.2 as u8 + rb.2 as u8, 1, "one recommendation");
        assert_eq!(ra.3 as u8 + rb.3 as u8, 1, "one mirror claim");
        assert_eq!(ra.4 as u8 + rb.4 as u8, 1, "one schedule claim");
        a.end_mirror(mirror.id, "done", None, "", now()).unwrap();
        a.finish_schedule(sched.id, ScheduleState::Refused, None, Some("test"), now()).unwrap();
    }
    assert_eq!(a.list_alerts(true, 100).unwrap().len(), 20);
    assert_eq!(b.open_incidents().unwrap().len(), 20);
    assert_eq!(b.open_recommendations().unwrap().len(), 20);
}
