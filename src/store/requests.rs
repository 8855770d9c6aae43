//! The request log's search over the usage ledger: the events of a bounded
//! time window (never the whole ledger), by supplier, model, route and
//! status, newest first, with every detail of a request (event id, request
//! id, idempotency key, tokens, cost, latency, error class). Runs on its own
//! read connection, which the caller may interrupt.
//!
//! How it stays fast on 10 M events (BENCHMARKS.md, "Request log"): a
//! supplier's search walks `usage_events_supplier_ts`; any other walks
//! `usage_events_ts` backwards from the window's end and stops at the page's
//! last row; a search for failures walks the small partial index
//! `usage_events_failures_ts` (failed and cancelled requests only, so the
//! ledger's write of a successful request does not touch it).
//!
//! On PostgreSQL ([`RequestLog::Postgres`]) the same search runs through
//! the pool (`store::pg::requests`), with the same filters and order.

use super::{Store, StoreResult};
use crate::domain::{Micros, RequestType, Route, SupplierId, UsageStatus};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, params_from_iter};

/// Which requests by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Answered in full (`ok`, `client_gone`).
    Answered,
    /// Failed or cancelled (`error`, `cancelled`).
    Failed,
    Exactly(UsageStatus),
}

/// A search of the request log. `from_ms..to_ms` is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFilter {
    pub from_ms: i64,
    pub to_ms: i64,
    pub supplier: Option<SupplierId>,
    /// The model exactly as recorded (e.g. `gpt-4o-mini`).
    pub model: Option<String>,
    pub route: Option<Route>,
    pub status: Option<StatusFilter>,
    /// Rows to return (newest first).
    pub limit: u32,
}

/// One request as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: i64,
    pub event_id: String,
    /// The client's `X-Request-Id` (or one made up); `None` on rows before schema v8.
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub ts: DateTime<Utc>,
    pub supplier_id: SupplierId,
    pub account_id: Option<i64>,
    pub provider: String,
    pub model: String,
    pub request_type: Option<RequestType>,
    pub route: Option<Route>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub estimated: bool,
    pub cost: Micros,
    pub latency_ms: i64,
    pub status: Option<UsageStatus>,
    pub error_class: Option<String>,
}

const COLUMNS: &str = "id, event_id, request_id, idempotency_key, ts, supplier_id, account_id, provider, model, request_type, route,
    input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_micros, latency_ms, status,
    error_class";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRow> {
    let u = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    Ok(RequestRow {
        id: r.get(0)?,
        event_id: r.get(1)?,
        request_id: r.get(2)?,
        idempotency_key: r.get(3)?,
        ts: Utc.timestamp_millis_opt(r.get(4)?).single().unwrap_or_default(),
        supplier_id: SupplierId(r.get(5)?),
        account_id: r.get(6)?,
        provider: r.get(7)?,
        model: r.get(8)?,
        request_type: RequestType::from_code(r.get(9)?),
        route: Route::from_code(r.get(10)?),
        input_tokens: u(11)?,
        output_tokens: u(12)?,
        cached_tokens: u(13)?,
        cache_write_tokens: u(14)?,
        reasoning_tokens: u(15)?,
        estimated: r.get(16)?,
        cost: Micros(r.get(17)?),
        latency_ms: r.get(18)?,
        status: UsageStatus::from_code(r.get(19)?),
        error_class: r.get(20)?,
    })
}

/// The SQL and its parameters for a filter (also used by the benchmark to show the plan).
pub fn request_search_sql(f: &RequestFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let failed = [UsageStatus::Error.code(), UsageStatus::Cancelled.code()];
    let mut sql = format!("SELECT {COLUMNS} FROM usage_events");
    let mut p: Vec<Value> = vec![Value::Integer(f.from_ms), Value::Integer(f.to_ms)];
    let mut wh = vec!["ts >= ?1 AND ts < ?2".to_string()];
    // Index choice (see the module comment): SQLite would otherwise pick by its own guesses.
    if let Some(s) = f.supplier {
        sql.push_str(" INDEXED BY usage_events_supplier_ts");
        p.push(Value::Integer(s.0));
        wh.push(format!("supplier_id = ?{}", p.len()));
    } else if f.status == Some(StatusFilter::Failed) {
        sql.push_str(" INDEXED BY usage_events_failures_ts");
    } else {
        sql.push_str(" INDEXED BY usage_events_ts");
    }
    match f.status {
        Some(StatusFilter::Failed) => wh.push(format!("status IN ({}, {})", failed[0], failed[1])),
        Some(StatusFilter::Answered) => wh.push(format!("status NOT IN ({}, {})", failed[0], failed[1])),
        Some(StatusFilter::Exactly(s)) => {
            p.push(Value::Integer(s.code()));
            wh.push(format!("status = ?{}", p.len()));
        }
        None => {}
    }
    if let Some(m) = &f.model {
        p.push(Value::Text(m.clone()));
        wh.push(format!("model = ?{}", p.len()));
    }
    if let Some(r) = f.route {
        p.push(Value::Integer(r.code()));
        wh.push(format!("route = ?{}", p.len()));
    }
    p.push(Value::Integer(i64::from(f.limit)));
    sql.push_str(&format!(" WHERE {} ORDER BY ts DESC, id DESC LIMIT ?{}", wh.join(" AND "), p.len()));
    (sql, p)
}

/// Where the request log is read: a read-only SQLite connection of its own,
/// or the PostgreSQL pool.
pub enum RequestLog {
    Sqlite { path: std::path::PathBuf, conn: Connection },
    Postgres(super::pg::PgStore),
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestLog::Sqlite { path, .. } => f.debug_tuple("RequestLog::Sqlite").field(path).finish(),
            RequestLog::Postgres(pg) => f.debug_tuple("RequestLog::Postgres").field(&pg.url()).finish(),
        }
    }
}

impl RequestLog {
    /// The SQLite connection (for plans and benchmarks), or `None` on PostgreSQL.
    pub fn sqlite(&self) -> Option<&Connection> {
        match self {
            RequestLog::Sqlite { conn, .. } => Some(conn),
            RequestLog::Postgres(_) => None,
        }
    }
}

/// Runs a search on SQLite connection `conn` (a read connection of the store's file).
pub fn search_sqlite(conn: &Connection, f: &RequestFilter) -> rusqlite::Result<Vec<RequestRow>> {
    let (sql, p) = request_search_sql(f);
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(p), row)?;
    rows.collect()
}

/// Runs a search on the request log.
pub fn search_requests(log: &RequestLog, f: &RequestFilter) -> StoreResult<Vec<RequestRow>> {
    match log {
        RequestLog::Sqlite { path, conn } => search_sqlite(conn, f).map_err(|e| super::map_err(path, e)),
        RequestLog::Postgres(pg) => {
            let f = f.clone();
            Ok(pg.block(move |pg| async move { super::pg::requests::search_requests(&pg, f).await })?)
        }
    }
}

/// The distinct models in the ledger's daily rollup over a window of days
/// (`YYYY-MM-DD`, inclusive), for the model filter, ordered bytewise.
pub fn models_between(log: &RequestLog, from_day: &str, to_day: &str) -> StoreResult<Vec<String>> {
    match log {
        RequestLog::Sqlite { path, conn } => (|| -> rusqlite::Result<Vec<String>> {
            let mut st = conn.prepare_cached("SELECT DISTINCT model FROM usage_daily WHERE day >= ?1 AND day <= ?2 ORDER BY model")?;
            let rows = st.query_map([from_day, to_day], |r| r.get(0))?;
            rows.collect()
        })()
        .map_err(|e| super::map_err(path, e)),
        RequestLog::Postgres(pg) => {
            let (from, to) = (super::pg::analytics::parse_day(from_day)?, super::pg::analytics::parse_day(to_day)?);
            Ok(pg.block(move |pg| async move { super::pg::requests::models_between(&pg, from, to).await })?)
        }
    }
}

impl Store {
    /// Where to read the request log: on SQLite a read connection of its own
    /// (so a search can be interrupted without touching the store's main
    /// connection), on PostgreSQL the pool.
    pub fn request_log_connection(&self) -> StoreResult<RequestLog> {
        if let Some(pg) = self.postgres() {
            return Ok(RequestLog::Postgres(pg.clone()));
        }
        let c = self.open_connection()?;
        c.execute_batch("PRAGMA query_only = ON").map_err(|e| self.err(e))?;
        Ok(RequestLog::Sqlite { path: self.error_path(), conn: c })
    }

    /// Runs one search (on SQLite, on a connection of its own).
    pub fn search_requests(&self, f: &RequestFilter) -> StoreResult<Vec<RequestRow>> {
        search_requests(&self.request_log_connection()?, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_always_in_the_query_and_the_index_follows_the_filter() {
        let base = RequestFilter { from_ms: 0, to_ms: 86_400_000, supplier: None, model: None, route: None, status: None, limit: 100 };
        let (sql, p) = request_search_sql(&base);
        assert!(sql.contains("ts >= ?1 AND ts < ?2") && sql.contains("INDEXED BY usage_events_ts"), "{sql}");
        assert_eq!(p.len(), 3);
        let (sql, _) = request_search_sql(&RequestFilter { supplier: Some(SupplierId(4)), ..base.clone() });
        assert!(sql.contains("usage_events_supplier_ts") && sql.contains("supplier_id = ?3"), "{sql}");
        let (sql, p) = request_search_sql(&RequestFilter {
            status: Some(StatusFilter::Failed),
            model: Some("gpt-4o".into()),
            route: Some(Route::Failover),
            ..base
        });
        assert!(sql.contains("usage_events_failures_ts") && sql.contains("status IN (1, 2)"), "{sql}");
        assert!(sql.contains("model = ?3") && sql.contains("route = ?4") && sql.ends_with("LIMIT ?5"), "{sql}");
        assert_eq!(p.len(), 5);
    }
}
