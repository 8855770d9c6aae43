//! The PostgreSQL adapter against a real PostgreSQL (scripts/test starts a
//! private cluster and sets SWITCHBOARD_TEST_POSTGRES): the versioned schema,
//! refusals that write nothing, and `store copy` SQLite → PostgreSQL → SQLite
//! with every row and the ledger totals kept. Each test works in a database of
//! its own. Without SWITCHBOARD_TEST_POSTGRES the tests say they are skipped,
//! except under CI, where that is a failure.

use crate::support::pg::{base_url, fresh_db, raw, rt};
use crate::support::{bin, day};
use rusqlite::types::Value;
use std::path::Path;
use switchboard::domain::health::{AlertKind, SampleSource, Severity};
use switchboard::domain::migration::{Criteria, Migration, PhasePlan, RouteTarget};
use switchboard::domain::{AccountId, AccountOwner, AiMode, NewSupplier, ProviderKind, SupplierId, Tier, VendorType};
use switchboard::engine::demo::{DemoConfig, generate};
use switchboard::store::pg::copy::{self, CopyError};
use switchboard::store::pg::{PgError, PgStore, schema};
use switchboard::store::{HealthAggregateRow, HealthSampleRow, NewAccount, NewAlert, Store, TokenHash};

async fn table_names(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query("SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn schema_is_created_versioned_and_reopened() {
    let Some(base) = base_url("pg::schema_is_created_versioned_and_reopened") else { return };
    rt().block_on(async {
        let url = fresh_db(&base, "sbt_schema").await;
        let store = PgStore::open(&url).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), schema::LATEST_VERSION);
        let client = raw(&url).await;
        let tables = table_names(&client).await;
        for t in copy::copied_tables().into_iter().chain(["switchboard_schema"]) {
            assert!(tables.iter().any(|n| n == t), "{t} missing from {tables:?}");
        }
        // Proper types: micro-dollars are BIGINT, times TIMESTAMPTZ, days DATE.
        let ty = |t: &'static str, c: &'static str| {
            let client = &client;
            async move {
                client
                    .query_one(
                        "SELECT data_type::TEXT FROM information_schema.columns WHERE table_name = $1 AND column_name = $2",
                        &[&t, &c],
                    )
                    .await
                    .unwrap()
                    .get::<_, String>(0)
            }
        };
        assert_eq!(ty("usage_events", "cost_micros").await, "bigint");
        assert_eq!(ty("usage_events", "ts").await, "timestamp with time zone");
        assert_eq!(ty("weddings", "day").await, "date");
        assert_eq!(ty("suppliers", "allow_platform_failover").await, "boolean");
        // The audit log is append-only here too.
        client.execute("INSERT INTO audit_log (ts, actor, action, result) VALUES (now(), 'test', 'x', 'ok')", &[]).await.unwrap();
        let err = client.execute("DELETE FROM audit_log", &[]).await.unwrap_err();
        assert!(err.as_db_error().unwrap().message().contains("append-only"), "{err}");
        // Opening again changes nothing and is not refused.
        drop(store);
        let again = PgStore::open(&url).await.unwrap();
        assert_eq!(again.schema_version().await.unwrap(), schema::LATEST_VERSION);
        assert_eq!(table_names(&client).await, tables);

        // sslmode=require goes through the rustls connector (this test cluster offers no TLS: refused, clearly).
        let err = PgStore::open(&format!("{url}?sslmode=require")).await.unwrap_err();
        assert!(matches!(err, PgError::Connect { .. }), "{err}");
        assert!(err.to_string().contains("TLS"), "{err}");

        // Two processes opening one new database at once: it is migrated once, both open it.
        let url = fresh_db(&base, "sbt_schema_race").await;
        let (a, b) = tokio::join!(PgStore::open(&url), PgStore::open(&url));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.schema_version().await.unwrap(), schema::LATEST_VERSION);
        assert_eq!(b.schema_version().await.unwrap(), schema::LATEST_VERSION);
    });
}

#[test]
fn newer_and_foreign_databases_are_refused_and_left_untouched() {
    let Some(base) = base_url("pg::newer_and_foreign_databases_are_refused_and_left_untouched") else { return };
    rt().block_on(async {
        // A newer Switchboard's database.
        let url = fresh_db(&base, "sbt_newer").await;
        let client = raw(&url).await;
        let newer = i32::try_from(schema::LATEST_VERSION + 1).unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE switchboard_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL);
                 INSERT INTO switchboard_schema VALUES (1, {newer});
                 CREATE TABLE suppliers (id BIGINT PRIMARY KEY, name TEXT, shiny_new_column TEXT);"
            ))
            .await
            .unwrap();
        let err = PgStore::open(&url).await.unwrap_err();
        assert!(matches!(err, PgError::NewerSchema { found, .. } if found == i64::from(newer)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("newer Switchboard") && msg.contains("left it untouched"), "{msg}");
        assert_eq!(table_names(&client).await, ["suppliers", "switchboard_schema"]);
        let v: i32 = client.query_one("SELECT version FROM switchboard_schema", &[]).await.unwrap().get(0);
        assert_eq!(v, newer);

        // Another application's database: tables, no schema table.
        let url = fresh_db(&base, "sbt_foreign").await;
        let client = raw(&url).await;
        client.batch_execute("CREATE TABLE orders (id INT PRIMARY KEY, what TEXT); INSERT INTO orders VALUES (1, 'cake');").await.unwrap();
        let err = PgStore::open(&url).await.unwrap_err();
        assert!(matches!(err, PgError::Foreign { .. }), "{err}");
        assert!(err.to_string().contains("another application (orders)"), "{err}");
        assert_eq!(table_names(&client).await, ["orders"]);
        let what: String = client.query_one("SELECT what FROM orders WHERE id = 1", &[]).await.unwrap().get(0);
        assert_eq!(what, "cake");
    });
}

/// Every row of `table`, every column, in key order.
fn dump(path: &Path, table: &str) -> Vec<Vec<Value>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let n = conn.prepare(&format!("SELECT * FROM {table} LIMIT 0")).unwrap().column_count();
    let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let mut st = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {}", order.join(", "))).unwrap();
    st.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>()).unwrap().collect::<Result<_, _>>().unwrap()
}

fn sequences(path: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    // response_cache_purges is the SQLite-only response cache's purge log (not moved).
    let mut st = conn.prepare("SELECT name, seq FROM sqlite_sequence WHERE name != 'response_cache_purges' ORDER BY 1").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

/// A demo installation with a token, key pool and cache settings, a database
/// setting, and a removed supplier (so the id sequence is ahead of the ids).
fn demo_installation(path: &Path) {
    let store = Store::open(path).unwrap();
    let until = day("2026-11-25");
    let cfg = DemoConfig::new(6, 20, 11, until);
    generate(&store, &cfg, |_, _| {}).unwrap();
    let now = until.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let supplier = store.with_conn(|c| c.query_row("SELECT min(id) FROM suppliers", [], |r| r.get::<_, i64>(0))).unwrap();
    store.insert_token(switchboard::domain::SupplierId(supplier), &TokenHash::of("sbk_pg_test"), "sbk_…test", now).unwrap();
    store
        .with_conn(|c| {
            c.execute_batch(
                "INSERT INTO account_pool_settings (account_id, weight, rpm, tpm, monthly_budget_micros)
                    SELECT min(id), 3, 60, NULL, 5000000 FROM provider_accounts;
                 INSERT INTO supplier_cache_settings (supplier_id, enabled, chat_ttl_secs, embeddings_ttl_secs)
                    SELECT min(id), 1, 600, 86400 FROM suppliers;
                 INSERT OR REPLACE INTO database_settings (key, value) VALUES ('pg_test', 'kept');
                 INSERT INTO suppliers (name, vendor_type, tier, ai_mode, created_at, updated_at)
                    VALUES ('Gone Soon', 'florist', 'starter', 'platform', '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z');
                 DELETE FROM suppliers WHERE name = 'Gone Soon';",
            )
        })
        .unwrap();
    operations_history(&store, now);
}

/// Health samples, an incident with its alerts (one escalated, one
/// acknowledged), a migration with its phases, a parallel test, a finished
/// mirror, a schedule and recommendations (one dismissed), through the
/// `Store` API: the rest of what moving an installation moves.
fn operations_history(store: &Store, now: chrono::DateTime<chrono::Utc>) {
    use chrono::{Duration, DurationRound};
    let s =
        store.insert_supplier(&NewSupplier::new("Copy Studio", VendorType::Photographer, Tier::Starter, AiMode::Platform), now).unwrap();
    let acc = store
        .insert_account(
            &NewAccount {
                owner: AccountOwner::Supplier(s.id),
                provider: ProviderKind::OpenAi,
                label: "own".into(),
                base_url: "https://api.openai.example/v1/".into(),
                azure: None,
                default_model: "gpt-4o-mini".into(),
            },
            now,
        )
        .unwrap();
    let samples: Vec<HealthSampleRow> = (0..40)
        .map(|i| HealthSampleRow {
            account: acc.id,
            at: now - Duration::minutes(i) + Duration::microseconds(700),
            ok: i % 7 != 0,
            latency_ms: 90 + i as u32,
            error_class: (i % 7 == 0).then(|| "timeout".to_string()),
            source: if i % 2 == 0 { SampleSource::Probe } else { SampleSource::Traffic },
        })
        .collect();
    store.insert_health_samples(&samples).unwrap();
    let buckets: Vec<HealthAggregateRow> = (1..=6)
        .map(|h| HealthAggregateRow {
            account: acc.id,
            bucket_secs: 3600,
            bucket_start: (now - Duration::hours(h + 24)).duration_trunc(Duration::hours(1)).unwrap(),
            samples: 60,
            failures: h as u64,
            latency_ms_sum: 6000 + h as u64,
            latency_ms_max: 400,
        })
        .collect();
    store.insert_health_aggregates(&buckets).unwrap();
    let incident = store.open_incident(acc.id, now - Duration::minutes(30)).unwrap();
    let alert = |key: &str, kind: AlertKind, escalated: bool| NewAlert {
        kind,
        condition_key: key.into(),
        severity: Severity::Warning,
        supplier_id: Some(s.id),
        account_id: Some(acc.id),
        message: format!("{key} happened"),
        escalated,
        incident_id: Some(incident.id),
    };
    store.raise_alert(&alert(&format!("down:account:{}", acc.id.0), AlertKind::ProviderDown, true), now).unwrap();
    let quota = match store.raise_alert(&alert("quota:copy", AlertKind::QuotaWarning, false), now).unwrap() {
        switchboard::store::Raised::New(a) | switchboard::store::Raised::AlreadyOpen(a) => a,
    };
    store.acknowledge_alert(quota.id, now + Duration::minutes(1)).unwrap();
    store.resolve_incident(incident.id, now + Duration::minutes(5)).unwrap();
    store.open_incident(AccountId(acc.id.0), now + Duration::minutes(6)).unwrap();

    let plan = [PhasePlan { percent: 10, min_secs: 60 }, PhasePlan { percent: 100, min_secs: 0 }];
    let m = Migration::new(s.id, RouteTarget::Platform, RouteTarget::Account(acc.id), &plan, Criteria::default(), now);
    store.insert_migration(&m).unwrap();
    let report = store.insert_parallel_test(s.id, acc.id.0, now, r#"{"compared":12,"verdict":"ok"}"#).unwrap();
    let mirror = store.insert_mirror(s.id, acc.id, 25, 50, now, now + Duration::hours(1)).unwrap();
    store.claim_mirror(mirror.id, now).unwrap();
    store.end_mirror(mirror.id, "done", Some(report), "enough compared", now + Duration::minutes(2)).unwrap();
    store.insert_schedule(s.id, RouteTarget::Platform, &plan, now + Duration::days(3), now).unwrap();
    assert!(store.recommend(s.id, "to_client", "move it", now).unwrap());
    store.dismiss_recommendations(s.id, "to_client", now + Duration::minutes(1)).unwrap();
    assert!(store.recommend(SupplierId(s.id.0), "to_platform", "move it back", now).unwrap());
}

#[test]
fn store_copy_round_trip_keeps_every_row_and_the_totals() {
    let Some(base) = base_url("pg::store_copy_round_trip_keeps_every_row_and_the_totals") else { return };
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.db");
    demo_installation(&original);
    let back = dir.path().join("back.db");
    let url = rt().block_on(async {
        let url = fresh_db(&base, "sbt_roundtrip").await;
        let source = Store::open(&original).unwrap();
        let pg = PgStore::open(&url).await.unwrap();
        let there = copy::sqlite_to_pg(&source, &pg).await.unwrap();
        assert!(there.source_totals.events > 100, "{there:?}");
        assert!(there.source_totals.cost_micros > 0 && there.source_totals.tokens() > 0);
        assert_eq!(there.source_totals, there.target_totals);
        for t in &there.tables {
            assert_eq!(t.source, t.target, "{t:?}");
            assert!(t.source > 0, "the demo installation has no {} rows: the test would prove nothing", t.table);
        }

        // A second copy into the same (now non-empty) database is refused.
        let err = copy::sqlite_to_pg(&source, &pg).await.unwrap_err();
        assert!(matches!(err, CopyError::TargetNotEmpty { .. }), "{err}");
        let n: i64 = raw(&url).await.query_one("SELECT count(*) FROM usage_events", &[]).await.unwrap().get(0);
        assert_eq!(n, there.target_totals.events, "the refused copy wrote nothing");

        // The installation's tag is kept (it names its keychain entries).
        let tag: String = raw(&url).await.query_one("SELECT tag FROM store_instance", &[]).await.unwrap().get(0);
        assert_eq!(tag, there.instance_tag);
        assert_eq!(Some(tag.clone()), source.with_conn(|c| c.query_row("SELECT tag FROM store_instance", [], |r| r.get(0))).ok());
        assert!(there.accounts_with_keys >= 0 && there.keys_note().contains("key rotate"), "{}", there.keys_note());

        let home = copy::pg_to_sqlite(&pg, &back).await.unwrap();
        assert_eq!(home.source_totals, there.source_totals);
        assert_eq!(home.target_totals, there.source_totals);
        assert_eq!(home.tables, there.tables);
        assert_eq!(home.instance_tag, there.instance_tag);
        assert!(home.keys_note().contains("not copied into SQLite"), "{}", home.keys_note());

        // Into an existing file: refused, the file left alone.
        let err = copy::pg_to_sqlite(&pg, &original).await.unwrap_err();
        assert!(matches!(err, CopyError::TargetExists { .. }), "{err}");
        url
    });
    // What the PostgreSQL store reads is what the SQLite store read.
    let (source, on_pg) = (Store::open(&original).unwrap(), Store::open_location(&url).unwrap());
    let same = |what: &str, a: String, b: String| assert!(a == b, "{what} differs on PostgreSQL:\n{a}\n{b}");
    same("alerts", format!("{:?}", source.list_alerts(false, 100).unwrap()), format!("{:?}", on_pg.list_alerts(false, 100).unwrap()));
    same("incidents", format!("{:?}", source.open_incidents().unwrap()), format!("{:?}", on_pg.open_incidents().unwrap()));
    same("migrations", format!("{:?}", source.list_migrations(None).unwrap()), format!("{:?}", on_pg.list_migrations(None).unwrap()));
    same("schedules", format!("{:?}", source.schedules(None).unwrap()), format!("{:?}", on_pg.schedules(None).unwrap()));
    same("mirrors", format!("{:?}", source.mirrors(None, 10).unwrap()), format!("{:?}", on_pg.mirrors(None, 10).unwrap()));
    same(
        "recommendations",
        format!("{:?}", source.open_recommendations().unwrap()),
        format!("{:?}", on_pg.open_recommendations().unwrap()),
    );
    same("last probes", format!("{:?}", source.health_last_probes().unwrap()), format!("{:?}", on_pg.health_last_probes().unwrap()));
    let (from, to) = (day("2026-10-01"), day("2026-11-26"));
    let by_day = source.cache_by_day_supplier(from, to).unwrap();
    assert!(by_day.iter().any(|c| c.answered > 0), "the demo has answered requests in the range");
    same("cache by day", format!("{by_day:?}"), format!("{:?}", on_pg.cache_by_day_supplier(from, to).unwrap()));
    same(
        "cache by dims",
        format!("{:?}", source.cache_by_dims(from, to).unwrap()),
        format!("{:?}", on_pg.cache_by_dims(from, to).unwrap()),
    );
    same("cache hits", format!("{:?}", source.cache_hits_by_supplier().unwrap()), format!("{:?}", on_pg.cache_hits_by_supplier().unwrap()));
    assert!(on_pg.response_cache_usage().unwrap().is_empty(), "cached answers live on the instances, and none reports any");
    let e = on_pg.purge_response_cache(None, chrono::Utc::now(), "test").unwrap_err().to_string();
    assert!(e.contains("each instance keeps its own response cache"), "{e}");
    drop((source, on_pg));
    assert!(Store::open(&original).unwrap().integrity_check().unwrap() == "ok");
    for t in copy::copied_tables().into_iter().chain(["store_instance"]) {
        assert!(dump(&original, t) == dump(&back, t), "{t} differs after the round trip");
    }
    // The rollups rebuilt from the copied events equal the original's.
    for t in ["usage_daily", "usage_supplier_day", "usage_supplier_month"] {
        assert!(dump(&original, t) == dump(&back, t), "{t} differs after the round trip");
    }
    assert_eq!(sequences(&original), sequences(&back));
    let s = sequences(&back);
    assert!(s.iter().any(|(n, seq)| n == "suppliers" && *seq > 6), "the removed supplier's id stays used: {s:?}");
}

#[test]
fn cli_store_copy_prints_the_verification_and_never_a_password() {
    let Some(base) = base_url("pg::cli_store_copy_prints_the_verification_and_never_a_password") else { return };
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.db");
    demo_installation(&original);
    let url = rt().block_on(fresh_db(&base, "sbt_cli"));
    // The test cluster trusts loopback, so any password is accepted: it must still never be printed.
    let with_password = url.replacen('@', ":hunter2pw@", 1);
    let (scheme_user, _) = with_password.split_once(":hunter2pw@").unwrap();
    assert!(scheme_user.starts_with("postgres://"));

    let out = bin().args(["store", "copy", "--from"]).arg(&original).env("SWITCHBOARD_DATABASE", &with_password).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("verified: every table's rows and the ledger totals match"), "{stdout}");
    assert!(stdout.contains("usage_events") && stdout.contains("ledger: cost (micro-$)"), "{stdout}");
    assert!(stdout.contains(":***@"), "the URL is shown masked: {stdout}");
    assert!(stdout.contains("health_samples") && stdout.contains("migration_schedules"), "{stdout}");
    assert!(stdout.contains("keys: no key was copied") && stdout.contains("key rotate ID"), "{stdout}");
    assert!(!stdout.contains("hunter2pw") && !stderr.contains("hunter2pw"));

    // Back into a new file, the URL on the command line this time.
    let back = dir.path().join("back.db");
    let out = bin().args(["store", "copy", "--from", &with_password, "--to"]).arg(&back).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("hunter2pw") && !stderr.contains("hunter2pw"));

    // A refusal (the database is not empty any more) names it masked, and says why.
    let out = bin().args(["store", "copy", "--from"]).arg(&original).args(["--to", &with_password]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not empty") && stderr.contains(":***@"), "{stderr}");
    assert!(!stderr.contains("hunter2pw"), "{stderr}");

    // A database that does not exist: the connection error is masked too.
    let missing = with_password.rsplit_once('/').map(|(p, _)| format!("{p}/sbt_no_such_db")).unwrap();
    let out = bin().args(["store", "copy", "--from"]).arg(&original).args(["--to", &missing]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("sbt_no_such_db") && !stderr.contains("hunter2pw"), "{stderr}");
}
