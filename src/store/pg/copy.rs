//! `store copy`: moves an installation between a SQLite file and a PostgreSQL
//! database, in either direction, table by table, then verifies the row count
//! of every table and the ledger's totals (tokens and micro-dollars) on both
//! sides. Copied: the catalog (suppliers, weddings, provider accounts with
//! their key references, gateway token hashes, key pool and cache settings,
//! database settings), the usage ledger, the audit log, health history (raw
//! samples and aggregates), incidents and alerts, migrations and their
//! phases, parallel tests, recommendations, mirrors and migration schedules,
//! and the installation's tag (`store_instance`, which names its keychain
//! entries). Not copied ([`NOT_COPIED`]): the usage rollups (rebuilt from
//! the copied events, and PostgreSQL's quota months with them), the fleet's
//! own tables (instances, leader leases, quota leases, journal watermarks),
//! the catalog version counter, and keys: no key material moves either way
//! (see [`CopyReport::keys_note`]).
//!
//! The target must be empty: a PostgreSQL database without Switchboard's
//! tables or with them all empty (the copy runs in one transaction, verified
//! before it commits), or a SQLite file that does not exist yet (removed
//! again if the copy fails). Ids are kept, and so are the id sequences
//! (`sqlite_sequence` ↔ the identity sequences), so an id is never reused
//! after a move. Into SQLite, the rollups are rebuilt from the copied events.

use super::{PgError, PgStore};
use crate::store::{Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::{Value as SqlValue, ValueRef};
use std::path::{Path, PathBuf};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path} does not exist. Name the SQLite file to copy from with --from FILE.db.")]
    SourceMissing { path: PathBuf },
    #[error("{path} already exists. `store copy` writes only into a new SQLite file: name one that does not exist.")]
    TargetExists { path: PathBuf },
    #[error("{target} is not empty ({table} has {rows} rows). `store copy` writes only into an empty database; nothing was written.")]
    TargetNotEmpty { target: String, table: &'static str, rows: i64 },
    #[error("{table}.{column} of row {row} cannot be copied: {detail}. Nothing was written.")]
    Data { table: &'static str, column: &'static str, row: String, detail: String },
    #[error("the copy does not match its source ({detail}). Nothing was written.")]
    Mismatch { detail: String },
}

/// How a column is stored on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// INTEGER ↔ BIGINT
    Int,
    /// INTEGER ↔ SMALLINT (enum codes)
    Small,
    /// INTEGER 0/1 ↔ BOOLEAN
    Bool,
    /// TEXT ↔ TEXT
    Text,
    /// RFC 3339 TEXT ↔ TIMESTAMPTZ
    Ts,
    /// Unix milliseconds INTEGER ↔ TIMESTAMPTZ
    Ms,
    /// 'YYYY-MM-DD' TEXT ↔ DATE
    Day,
}

impl Kind {
    fn pg_type(self) -> Type {
        match self {
            Kind::Int => Type::INT8,
            Kind::Small => Type::INT2,
            Kind::Bool => Type::BOOL,
            Kind::Text => Type::TEXT,
            Kind::Ts | Kind::Ms => Type::TIMESTAMPTZ,
            Kind::Day => Type::DATE,
        }
    }
}

struct TableSpec {
    name: &'static str,
    cols: &'static [(&'static str, Kind)],
    /// The order rows are read in (the primary key).
    order: &'static str,
    /// The table has an identity `id` (SQLite: a rowid, maybe AUTOINCREMENT).
    identity: bool,
}

use Kind::*;

/// Parents before children (foreign keys).
const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "suppliers",
        cols: &[
            ("id", Int),
            ("name", Text),
            ("vendor_type", Text),
            ("tier", Text),
            ("ai_mode", Text),
            ("allow_platform_failover", Bool),
            ("created_at", Ts),
            ("updated_at", Ts),
            ("time_zone", Text),
        ],
        order: "id",
        identity: true,
    },
    TableSpec { name: "weddings", cols: &[("supplier_id", Int), ("day", Day)], order: "supplier_id, day", identity: false },
    TableSpec {
        name: "provider_accounts",
        cols: &[
            ("id", Int),
            ("owner_supplier_id", Int),
            ("provider", Text),
            ("label", Text),
            ("base_url", Text),
            ("azure_deployment", Text),
            ("azure_api_version", Text),
            ("default_model", Text),
            ("key_ref", Text),
            ("key_fingerprint", Text),
            ("last_validated_at", Ts),
            ("last_validation", Text),
            ("last_validation_message", Text),
            ("enabled", Bool),
            ("created_at", Ts),
        ],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "gateway_tokens",
        cols: &[
            ("id", Int),
            ("supplier_id", Int),
            ("token_hash", Text),
            ("hint", Text),
            ("created_at", Ts),
            ("last_used_at", Ts),
            ("revoked_at", Ts),
        ],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "account_pool_settings",
        cols: &[("account_id", Int), ("weight", Int), ("rpm", Int), ("tpm", Int), ("monthly_budget_micros", Int)],
        order: "account_id",
        identity: false,
    },
    TableSpec {
        name: "supplier_cache_settings",
        cols: &[("supplier_id", Int), ("enabled", Bool), ("chat_ttl_secs", Int), ("embeddings_ttl_secs", Int)],
        order: "supplier_id",
        identity: false,
    },
    TableSpec { name: "database_settings", cols: &[("key", Text), ("value", Text)], order: "key", identity: false },
    TableSpec {
        name: "usage_events",
        cols: &[
            ("id", Int),
            ("event_id", Text),
            ("ts", Ms),
            ("supplier_id", Int),
            ("account_id", Int),
            ("provider", Text),
            ("model", Text),
            ("request_type", Small),
            ("route", Small),
            ("input_tokens", Int),
            ("output_tokens", Int),
            ("cached_tokens", Int),
            ("cache_write_tokens", Int),
            ("reasoning_tokens", Int),
            ("estimated", Bool),
            ("cost_micros", Int),
            ("latency_ms", Int),
            ("status", Small),
            ("error_class", Text),
            ("request_id", Text),
            ("idempotency_key", Text),
            ("saved_micros", Int),
        ],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "audit_log",
        cols: &[
            ("id", Int),
            ("ts", Ts),
            ("actor", Text),
            ("action", Text),
            ("supplier_id", Int),
            ("account_id", Int),
            ("result", Text),
            ("detail", Text),
        ],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "health_samples",
        cols: &[("id", Int), ("account_id", Int), ("ts", Ms), ("ok", Bool), ("latency_ms", Int), ("error_class", Text), ("source", Text)],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "health_aggregates",
        cols: &[
            ("account_id", Int),
            ("bucket_secs", Int),
            ("bucket_start", Ms),
            ("samples", Int),
            ("failures", Int),
            ("latency_ms_sum", Int),
            ("latency_ms_max", Int),
        ],
        order: "account_id, bucket_secs, bucket_start",
        identity: false,
    },
    TableSpec {
        name: "incidents",
        cols: &[("id", Int), ("account_id", Int), ("started_at", Ts), ("resolved_at", Ts)],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "alerts",
        cols: &[
            ("id", Int),
            ("kind", Text),
            ("condition_key", Text),
            ("severity", Text),
            ("supplier_id", Int),
            ("account_id", Int),
            ("message", Text),
            ("raised_at", Ts),
            ("escalated_at", Ts),
            ("acknowledged_at", Ts),
            ("resolved_at", Ts),
            ("incident_id", Int),
        ],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "migrations",
        cols: &[
            ("id", Int),
            ("supplier_id", Int),
            ("from_route", Text),
            ("to_route", Text),
            ("state", Text),
            ("plan", Text),
            ("criteria", Text),
            ("current_phase", Int),
            ("phase_started_at", Ts),
            ("phase_elapsed_ms", Int),
            ("reason", Text),
            ("created_at", Ts),
            ("updated_at", Ts),
        ],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "migration_phases",
        cols: &[
            ("migration_id", Int),
            ("idx", Int),
            ("traffic_percent", Int),
            ("min_duration_secs", Int),
            ("started_at", Ts),
            ("ended_at", Ts),
            ("outcome", Text),
            ("requests", Int),
            ("errors", Int),
            ("p95_ms", Int),
            ("latency_hist", Text),
        ],
        order: "migration_id, idx",
        identity: false,
    },
    TableSpec {
        name: "parallel_tests",
        cols: &[("id", Int), ("supplier_id", Int), ("account_id", Int), ("created_at", Ts), ("report", Text)],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "recommendations",
        cols: &[("id", Int), ("supplier_id", Int), ("kind", Text), ("message", Text), ("created_at", Ts), ("dismissed_at", Ts)],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "parallel_mirrors",
        cols: &[
            ("id", Int),
            ("supplier_id", Int),
            ("account_id", Int),
            ("sample_percent", Int),
            ("target_requests", Int),
            ("created_at", Ts),
            ("ends_at", Ts),
            ("state", Text),
            ("report_id", Int),
            ("reason", Text),
            ("updated_at", Ts),
        ],
        order: "id",
        identity: true,
    },
    TableSpec {
        name: "migration_schedules",
        cols: &[
            ("id", Int),
            ("supplier_id", Int),
            ("to_route", Text),
            ("plan", Text),
            ("start_at", Ts),
            ("state", Text),
            ("migration_id", Int),
            ("reason", Text),
            ("created_at", Ts),
            ("updated_at", Ts),
        ],
        order: "id",
        identity: true,
    },
];

/// The names of the tables `store copy` moves, in copy order.
pub fn copied_tables() -> Vec<&'static str> {
    TABLES.iter().map(|t| t.name).collect()
}

/// One value in transit.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Int(i64),
    Small(i16),
    Bool(bool),
    Text(String),
    Ts(DateTime<Utc>),
    Day(NaiveDate),
}

impl ToSql for Val {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(v) => v.to_sql(ty, out),
            Val::Small(v) => v.to_sql(ty, out),
            Val::Bool(v) => v.to_sql(ty, out),
            Val::Text(v) => v.to_sql(ty, out),
            Val::Ts(v) => v.to_sql(ty, out),
            Val::Day(v) => v.to_sql(ty, out),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

fn from_sqlite(v: ValueRef<'_>, kind: Kind) -> Result<Val, String> {
    let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_string).map_err(|_| "text that is not UTF-8".to_string());
    Ok(match (v, kind) {
        (ValueRef::Null, _) => Val::Null,
        (ValueRef::Integer(i), Int) => Val::Int(i),
        (ValueRef::Integer(i), Small) => Val::Small(i16::try_from(i).map_err(|_| format!("{i} is out of range for a code"))?),
        (ValueRef::Integer(i), Bool) => Val::Bool(i != 0),
        (ValueRef::Integer(i), Ms) => {
            Val::Ts(DateTime::from_timestamp_millis(i).ok_or_else(|| format!("{i} ms is not a time PostgreSQL can hold"))?)
        }
        (ValueRef::Text(b), Text) => Val::Text(text(b)?),
        (ValueRef::Text(b), Ts) => {
            let s = text(b)?;
            Val::Ts(DateTime::parse_from_rfc3339(&s).map_err(|_| format!("'{s}' is not an RFC 3339 time"))?.with_timezone(&Utc))
        }
        (ValueRef::Text(b), Day) => {
            let s = text(b)?;
            Val::Day(s.parse().map_err(|_| format!("'{s}' is not a YYYY-MM-DD date"))?)
        }
        (other, kind) => return Err(format!("a {:?} value where {kind:?} was expected", other.data_type())),
    })
}

fn to_sqlite(v: &Val, kind: Kind) -> SqlValue {
    match (v, kind) {
        (Val::Null, _) => SqlValue::Null,
        (Val::Int(i), _) => SqlValue::Integer(*i),
        (Val::Small(i), _) => SqlValue::Integer(i64::from(*i)),
        (Val::Bool(b), _) => SqlValue::Integer(i64::from(*b)),
        (Val::Text(s), _) => SqlValue::Text(s.clone()),
        (Val::Ts(t), Ms) => SqlValue::Integer(t.timestamp_millis()),
        (Val::Ts(t), _) => SqlValue::Text(crate::store::ts(*t)),
        (Val::Day(d), _) => SqlValue::Text(d.format("%Y-%m-%d").to_string()),
    }
}

fn from_pg(row: &tokio_postgres::Row, i: usize, kind: Kind) -> Result<Val, tokio_postgres::Error> {
    Ok(match kind {
        Int => row.try_get::<_, Option<i64>>(i)?.map_or(Val::Null, Val::Int),
        Small => row.try_get::<_, Option<i16>>(i)?.map_or(Val::Null, Val::Small),
        Bool => row.try_get::<_, Option<bool>>(i)?.map_or(Val::Null, Val::Bool),
        Text => row.try_get::<_, Option<String>>(i)?.map_or(Val::Null, Val::Text),
        Ts | Ms => row.try_get::<_, Option<DateTime<Utc>>>(i)?.map_or(Val::Null, Val::Ts),
        Day => row.try_get::<_, Option<NaiveDate>>(i)?.map_or(Val::Null, Val::Day),
    })
}

/// Rows of one table on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source: i64,
    pub target: i64,
}

/// The ledger's totals: what a move must not change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    pub events: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micros: i64,
    pub saved_micros: i64,
}

impl LedgerTotals {
    /// Every kind of token, summed (saturating).
    pub fn tokens(&self) -> i64 {
        [self.input_tokens, self.output_tokens, self.cached_tokens, self.cache_write_tokens, self.reasoning_tokens]
            .iter()
            .fold(0i64, |a, b| a.saturating_add(*b))
    }
}

const TOTALS_SQL: &str =
    "SELECT count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cached_tokens), 0),
    coalesce(sum(cache_write_tokens), 0), coalesce(sum(reasoning_tokens), 0), coalesce(sum(cost_micros), 0), coalesce(sum(saved_micros), 0)
    FROM usage_events";

// sum(bigint) is NUMERIC in PostgreSQL: back to BIGINT (an overflow is an error, not a wrap).
const PG_TOTALS_SQL: &str = "SELECT count(*), coalesce(sum(input_tokens), 0)::BIGINT, coalesce(sum(output_tokens), 0)::BIGINT,
    coalesce(sum(cached_tokens), 0)::BIGINT, coalesce(sum(cache_write_tokens), 0)::BIGINT, coalesce(sum(reasoning_tokens), 0)::BIGINT,
    coalesce(sum(cost_micros), 0)::BIGINT, coalesce(sum(saved_micros), 0)::BIGINT
    FROM usage_events";

fn sqlite_totals(conn: &rusqlite::Connection) -> rusqlite::Result<LedgerTotals> {
    conn.query_row(TOTALS_SQL, [], |r| {
        let mut v = [0i64; 8];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = r.get(i)?;
        }
        Ok(totals_from(|i| v[i]))
    })
}

fn totals_from(get: impl Fn(usize) -> i64) -> LedgerTotals {
    LedgerTotals {
        events: get(0),
        input_tokens: get(1),
        output_tokens: get(2),
        cached_tokens: get(3),
        cache_write_tokens: get(4),
        reasoning_tokens: get(5),
        cost_micros: get(6),
        saved_micros: get(7),
    }
}

/// Which way a copy went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    IntoPostgres,
    IntoSqlite,
}

/// What a copy did: every table's rows on both sides and the ledger totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub source: String,
    pub target: String,
    pub direction: Direction,
    pub tables: Vec<TableCount>,
    pub source_totals: LedgerTotals,
    pub target_totals: LedgerTotals,
    /// The installation's tag (`store_instance`), the same on both sides after the copy.
    pub instance_tag: String,
    /// Provider accounts whose key reference (`key_ref`) was copied.
    pub accounts_with_keys: i64,
}

impl CopyReport {
    /// What the copy did about provider keys (never key material: only the
    /// accounts' key references move), and what the operator does next.
    pub fn keys_note(&self) -> String {
        let n = self.accounts_with_keys;
        match self.direction {
            Direction::IntoPostgres => format!(
                "keys: no key was copied. {n} account(s) keep their key_ref, but PostgreSQL reads only keys sealed to the fleet key, \
                 and the keys stay in this machine's OS keychain. Create the fleet key once (`switchboard --database URL fleet init`), \
                 then re-add each account's key sealed with `switchboard --database URL key rotate ID` (the key on standard input)."
            ),
            Direction::IntoSqlite => format!(
                "keys: sealed keys (sealed_keys, fleet_keys) are not copied into SQLite, which keeps keys in the OS keychain. \
                 {n} account(s) keep their key_ref and the installation keeps its tag ({}), so keys still in this machine's keychain \
                 are found again; re-add any other with `switchboard --db FILE.db key rotate ID` (the key on standard input).",
                self.instance_tag
            ),
        }
    }
}

/// Tables of PostgreSQL that `store copy` does not move, and why (printed
/// with the report and kept in the module doc).
pub const NOT_COPIED: &[(&str, &str)] = &[
    ("usage rollups", "rebuilt from the copied events"),
    ("quota_months, quota_leases", "fleet quota leases: rebuilt (months) or not carried over (leases belong to running instances)"),
    ("usage_journal_watermark", "belongs to the journals of the instances that wrote it"),
    ("instances, leader_leases", "the fleet's running instances and leaders: not an installation's data"),
    ("fleet_keys, sealed_keys", "sealed keys: see the keys note"),
    ("catalog_version", "a change counter, each database keeps its own"),
    ("idempotency_keys, response_cache (SQLite)", "per instance, short-lived"),
    ("key_validation_requests, parallel_test_requests, cache_purges", "actions filed for the fleet's instances: short-lived"),
];

fn verify(tables: &[TableCount], source: &LedgerTotals, target: &LedgerTotals) -> Result<(), CopyError> {
    if let Some(t) = tables.iter().find(|t| t.source != t.target) {
        return Err(CopyError::Mismatch {
            detail: format!("{} has {} rows in the source and {} in the copy", t.table, t.source, t.target),
        });
    }
    if source != target {
        return Err(CopyError::Mismatch { detail: format!("ledger totals differ: source {source:?}, copy {target:?}") });
    }
    Ok(())
}

fn verify_tag(source: &str, copy: &str) -> Result<(), CopyError> {
    if source != copy {
        return Err(CopyError::Mismatch { detail: format!("the installation tag is {source} in the source and {copy} in the copy") });
    }
    Ok(())
}

fn select_sql(t: &TableSpec) -> String {
    let cols: Vec<&str> = t.cols.iter().map(|c| c.0).collect();
    format!("SELECT {} FROM {} ORDER BY {}", cols.join(", "), t.name, t.order)
}

fn sqlite_err(path: &Path, e: rusqlite::Error) -> CopyError {
    CopyError::Store(crate::store::map_err(path, e))
}

/// Copies the SQLite database at `from` (which must exist) into the empty
/// PostgreSQL database `to`, in one PostgreSQL transaction, verified before it
/// commits.
pub async fn sqlite_to_pg(from: &Store, to: &PgStore) -> Result<CopyReport, CopyError> {
    let path = from.sqlite_path_for("store copy from a SQLite file")?.to_path_buf();
    let mut client = to.client().await?;
    let tx = client.transaction().await.map_err(|e| to.db_err(&e))?;
    refuse_non_empty_pg(&tx, to).await?;
    // One read transaction on the source: a consistent snapshot of every table.
    let conn = from.open_connection()?;
    conn.execute_batch("BEGIN").map_err(|e| sqlite_err(&path, e))?;
    let mut tables = Vec::new();
    for t in TABLES {
        let types: Vec<Type> = t.cols.iter().map(|c| c.1.pg_type()).collect();
        let cols: Vec<&str> = t.cols.iter().map(|c| c.0).collect();
        let sink = tx.copy_in(&format!("COPY {} ({}) FROM STDIN BINARY", t.name, cols.join(", "))).await.map_err(|e| to.db_err(&e))?;
        let mut writer = std::pin::pin!(tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, &types));
        let mut st = conn.prepare(&select_sql(t)).map_err(|e| sqlite_err(&path, e))?;
        let mut rows = st.query([]).map_err(|e| sqlite_err(&path, e))?;
        let mut n = 0i64;
        while let Some(row) = rows.next().map_err(|e| sqlite_err(&path, e))? {
            let mut vals = Vec::with_capacity(t.cols.len());
            for (i, (col, kind)) in t.cols.iter().enumerate() {
                let v = row.get_ref(i).map_err(|e| sqlite_err(&path, e))?;
                let v =
                    from_sqlite(v, *kind).map_err(|detail| CopyError::Data { table: t.name, column: col, row: row_key(row, t), detail })?;
                vals.push(v);
            }
            let refs: Vec<&(dyn ToSql + Sync)> = vals.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            writer.as_mut().write(&refs).await.map_err(|e| to.db_err(&e))?;
            n += 1;
        }
        writer.as_mut().finish().await.map_err(|e| to.db_err(&e))?;
        if t.identity {
            let seq: i64 = conn
                .query_row("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?1), 0)", [t.name], |r| r.get(0))
                .map_err(|e| sqlite_err(&path, e))?;
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', 'id'), greatest($1, (SELECT max(id) FROM {0}))) \
                     WHERE greatest($1, (SELECT max(id) FROM {0})) > 0",
                    t.name
                ),
                &[&seq],
            )
            .await
            .map_err(|e| to.db_err(&e))?;
        }
        let target: i64 = tx.query_one(&format!("SELECT count(*) FROM {}", t.name), &[]).await.map_err(|e| to.db_err(&e))?.get(0);
        tables.push(TableCount { table: t.name, source: n, target });
    }
    let source_totals = sqlite_totals(&conn).map_err(|e| sqlite_err(&path, e))?;
    let (tag, accounts_with_keys): (String, i64) = conn
        .query_row(
            "SELECT (SELECT tag FROM store_instance WHERE id = 1), (SELECT count(*) FROM provider_accounts WHERE key_ref IS NOT NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| sqlite_err(&path, e))?;
    conn.execute_batch("COMMIT").map_err(|e| sqlite_err(&path, e))?;
    tx.execute("UPDATE store_instance SET tag = $1 WHERE id = 1", &[&tag]).await.map_err(|e| to.db_err(&e))?;
    let copied_tag: String = tx.query_one("SELECT tag FROM store_instance WHERE id = 1", &[]).await.map_err(|e| to.db_err(&e))?.get(0);
    verify_tag(&tag, &copied_tag)?;
    let row = tx.query_one(PG_TOTALS_SQL, &[]).await.map_err(|e| to.db_err(&e))?;
    let target_totals = totals_from(|i| row.get(i));
    verify(&tables, &source_totals, &target_totals)?;
    tx.batch_execute(super::ledger::REBUILD_ROLLUPS).await.map_err(|e| to.db_err(&e))?; // the rollups and quota months, from the copied events
    tx.commit().await.map_err(|e| to.db_err(&e))?;
    Ok(CopyReport {
        source: path.display().to_string(),
        target: to.url().to_string(),
        direction: Direction::IntoPostgres,
        tables,
        source_totals,
        target_totals,
        instance_tag: tag,
        accounts_with_keys,
    })
}

fn row_key(row: &rusqlite::Row<'_>, t: &TableSpec) -> String {
    let key_cols: Vec<&str> = t.order.split(',').map(str::trim).collect();
    let parts: Vec<String> = key_cols
        .iter()
        .filter_map(|k| t.cols.iter().position(|c| c.0 == *k))
        .map(|i| match row.get_ref(i) {
            Ok(ValueRef::Integer(v)) => v.to_string(),
            Ok(ValueRef::Text(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => "?".to_string(),
        })
        .collect();
    parts.join("/")
}

async fn refuse_non_empty_pg(tx: &tokio_postgres::Transaction<'_>, to: &PgStore) -> Result<(), CopyError> {
    for t in TABLES {
        let rows: i64 = tx
            .query_one(&format!("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT 1) x", t.name), &[])
            .await
            .map_err(|e| to.db_err(&e))?
            .get(0);
        if rows > 0 {
            let rows: i64 = tx.query_one(&format!("SELECT count(*) FROM {}", t.name), &[]).await.map_err(|e| to.db_err(&e))?.get(0);
            return Err(CopyError::TargetNotEmpty { target: to.url().to_string(), table: t.name, rows });
        }
    }
    Ok(())
}

/// Copies the PostgreSQL database `from` into a new SQLite file at `to`
/// (which must not exist; it is removed again if the copy fails).
pub async fn pg_to_sqlite(from: &PgStore, to: &Path) -> Result<CopyReport, CopyError> {
    if to.exists() {
        return Err(CopyError::TargetExists { path: to.to_path_buf() });
    }
    let result = pg_to_new_sqlite(from, to).await;
    if result.is_err() {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = to.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    }
    result
}

async fn pg_to_new_sqlite(from: &PgStore, to: &Path) -> Result<CopyReport, CopyError> {
    let store = Store::open(to)?;
    let path = to.to_path_buf();
    let mut client = from.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| from.db_err(&e))?;
    let mut conn = store.open_connection()?;
    let stx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| sqlite_err(&path, e))?;
    let mut tables = Vec::new();
    for t in TABLES {
        let cols: Vec<&str> = t.cols.iter().map(|c| c.0).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let insert = format!("INSERT INTO {} ({}) VALUES ({})", t.name, cols.join(", "), marks.join(", "));
        let params: [&(dyn ToSql + Sync); 0] = [];
        let portal = tx.bind(select_sql(t).as_str(), &params).await.map_err(|e| from.db_err(&e))?;
        let mut n = 0i64;
        {
            let mut st = stx.prepare(&insert).map_err(|e| sqlite_err(&path, e))?;
            loop {
                let rows = tx.query_portal(&portal, 5000).await.map_err(|e| from.db_err(&e))?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    let mut vals = Vec::with_capacity(t.cols.len());
                    for (i, (_, kind)) in t.cols.iter().enumerate() {
                        let v = from_pg(row, i, *kind).map_err(|e| from.db_err(&e))?;
                        vals.push(to_sqlite(&v, *kind));
                    }
                    st.execute(rusqlite::params_from_iter(vals.iter())).map_err(|e| sqlite_err(&path, e))?;
                    n += 1;
                }
            }
        }
        if t.identity {
            let row = tx
                .query_one(&format!("SELECT last_value, is_called FROM {}", pg_sequence(&tx, from, t.name).await?), &[])
                .await
                .map_err(|e| from.db_err(&e))?;
            let (last, called): (i64, bool) = (row.get(0), row.get(1));
            if called {
                // Only AUTOINCREMENT tables have a row in sqlite_sequence (made by
                // their first insert, so made here when no row was copied); the
                // others keep max(id).
                stx.execute("UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = ?2", rusqlite::params![last, t.name])
                    .map_err(|e| sqlite_err(&path, e))?;
                stx.execute(
                    "INSERT INTO sqlite_sequence (name, seq) SELECT ?2, ?1
                      WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?2)
                        AND (SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?2) LIKE '%AUTOINCREMENT%'",
                    rusqlite::params![last, t.name],
                )
                .map_err(|e| sqlite_err(&path, e))?;
            }
        }
        let target: i64 = stx.query_row(&format!("SELECT count(*) FROM {}", t.name), [], |r| r.get(0)).map_err(|e| sqlite_err(&path, e))?;
        tables.push(TableCount { table: t.name, source: n, target });
    }
    let row = tx.query_one(PG_TOTALS_SQL, &[]).await.map_err(|e| from.db_err(&e))?;
    let source_totals = totals_from(|i| row.get(i));
    let row = tx
        .query_one(
            "SELECT (SELECT tag FROM store_instance WHERE id = 1), (SELECT count(*) FROM provider_accounts WHERE key_ref IS NOT NULL)",
            &[],
        )
        .await
        .map_err(|e| from.db_err(&e))?;
    let (tag, accounts_with_keys): (String, i64) = (row.get(0), row.get(1));
    stx.execute("UPDATE store_instance SET tag = ?1 WHERE id = 1", [&tag]).map_err(|e| sqlite_err(&path, e))?;
    let copied_tag: String =
        stx.query_row("SELECT tag FROM store_instance WHERE id = 1", [], |r| r.get(0)).map_err(|e| sqlite_err(&path, e))?;
    let target_totals = sqlite_totals(&stx).map_err(|e| sqlite_err(&path, e))?;
    tx.commit().await.map_err(|e| from.db_err(&e))?;
    verify_tag(&tag, &copied_tag)?;
    verify(&tables, &source_totals, &target_totals)?;
    stx.commit().map_err(|e| sqlite_err(&path, e))?;
    drop(conn);
    store.rebuild_daily_rollups()?;
    Ok(CopyReport {
        source: from.url().to_string(),
        target: path.display().to_string(),
        direction: Direction::IntoSqlite,
        tables,
        source_totals,
        target_totals,
        instance_tag: tag,
        accounts_with_keys,
    })
}

async fn pg_sequence(tx: &tokio_postgres::Transaction<'_>, pg: &PgStore, table: &str) -> Result<String, CopyError> {
    let row = tx.query_one("SELECT pg_get_serial_sequence($1, 'id')", &[&table]).await.map_err(|e| pg.db_err(&e))?;
    row.get::<_, Option<String>>(0).ok_or_else(|| CopyError::Mismatch { detail: format!("{table} has no id sequence in PostgreSQL") })
}
