//! Read side of the usage ledger for analytics and export, and the coarse
//! rollups behind the dashboards.
//!
//! Three rollup levels answer every dashboard query without touching the ten
//! million rows of `usage_events`:
//! - `usage_daily` (schema v1): per day × supplier × provider × model × request type × route;
//! - `usage_daily_dims` (v3): per day × vendor type × provider × model × request type × route,
//!   all suppliers together (a few thousand rows a year);
//! - `usage_monthly_supplier` (v3): per month × supplier × provider × model × route.
//!
//! The coarse rollups are folded from the events with `usage_daily`, behind
//! the same watermark (`store::usage::fold_rollups`), and rebuilt with it
//! (`REBUILD_COARSE_ROLLUPS`). An [`AnalyticsReader`] owns its own
//! connection, so heavy reads never hold the catalog connection, and can be
//! interrupted from another thread ([`Interrupter`]) when the user changes a
//! filter. Exports stream events and groups through callbacks, row by row.
//!
//! The reader works on both backends with one API and the same answers: on
//! PostgreSQL each method hands over to [`super::pg::analytics::PgReader`]
//! (the same rollups, kept by `store::pg::ledger` in the fold's transaction).

use super::pg::PgError;
use super::pg::analytics::{PgInterrupt, PgReader};
use super::{Store, StoreError, StoreResult, map_err};
pub use crate::domain::UsageTotals;
use crate::domain::{AiMode, Micros, ProviderKind, Route, SupplierId, Tier, VendorType};
use rusqlite::types::Value;
use rusqlite::{Connection, Row};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Recomputes the v3 rollups from `usage_daily` (run after `usage_daily` is rebuilt).
pub(crate) const REBUILD_COARSE_ROLLUPS: &str = "
DELETE FROM usage_daily_dims;
INSERT INTO usage_daily_dims
SELECT d.day, coalesce(s.vendor_type, 'unknown'), d.provider, d.model, d.request_type, d.route, sum(d.requests), sum(d.errors),
    sum(d.input_tokens), sum(d.output_tokens), sum(d.cached_tokens), sum(d.cache_write_tokens), sum(d.reasoning_tokens),
    sum(d.cost_micros), sum(d.latency_ms_sum)
FROM usage_daily d LEFT JOIN suppliers s ON s.id = d.supplier_id GROUP BY 1, 2, 3, 4, 5, 6;
DELETE FROM usage_monthly_supplier;
INSERT INTO usage_monthly_supplier
SELECT substr(day, 1, 7), supplier_id, provider, model, route, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens),
    sum(cached_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_micros), sum(latency_ms_sum)
FROM usage_daily GROUP BY 1, 2, 3, 4, 5;
DELETE FROM usage_supplier_month;
INSERT INTO usage_supplier_month
SELECT substr(day, 1, 7), supplier_id, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(cached_tokens),
    sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_micros), sum(latency_ms_sum),
    sum(CASE WHEN route IN (0, 2) THEN input_tokens + cached_tokens + cache_write_tokens + output_tokens ELSE 0 END)
FROM usage_daily GROUP BY 1, 2;
DELETE FROM usage_supplier_day;
INSERT INTO usage_supplier_day
SELECT supplier_id, day, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(cached_tokens),
    sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_micros), sum(latency_ms_sum),
    sum(CASE WHEN route IN (0, 2) THEN input_tokens + cached_tokens + cache_write_tokens + output_tokens ELSE 0 END)
FROM usage_daily GROUP BY 1, 2;
";

/// The SET clause of every rollup upsert: add the new measures.
pub(crate) const MEASURE_UPDATE: &str = "requests = requests + excluded.requests, errors = errors + excluded.errors,
    input_tokens = input_tokens + excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens,
    cached_tokens = cached_tokens + excluded.cached_tokens, cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
    reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens, cost_micros = cost_micros + excluded.cost_micros,
    latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum";

/// The nine measure columns, unsummed, in [`totals_at`] order.
const MEASURES: &str = "requests, errors, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros,
    latency_ms_sum";

pub(super) const SUMS: &str =
    "coalesce(sum(requests), 0), coalesce(sum(errors), 0), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
    coalesce(sum(cached_tokens), 0), coalesce(sum(cache_write_tokens), 0), coalesce(sum(reasoning_tokens), 0),
    coalesce(sum(cost_micros), 0), coalesce(sum(latency_ms_sum), 0)";

fn u(r: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(r.get::<_, i64>(i)?.max(0) as u64)
}

/// A text or integer column as text.
fn value_text(v: rusqlite::types::ValueRef<'_>) -> std::borrow::Cow<'_, str> {
    match v {
        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t),
        rusqlite::types::ValueRef::Integer(i) => i.to_string().into(),
        _ => "".into(),
    }
}

/// Reads the nine measures of [`SUMS`] / [`MEASURES`] starting at column `i`.
pub(super) fn totals_at(r: &Row<'_>, i: usize) -> rusqlite::Result<UsageTotals> {
    Ok(UsageTotals {
        requests: u(r, i)?,
        errors: u(r, i + 1)?,
        input_tokens: u(r, i + 2)?,
        output_tokens: u(r, i + 3)?,
        cached_tokens: u(r, i + 4)?,
        cache_write_tokens: u(r, i + 5)?,
        reasoning_tokens: u(r, i + 6)?,
        cost: Micros(r.get(i + 7)?),
        latency_ms_sum: u(r, i + 8)?,
    })
}

/// The column a daily query groups by (besides the day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimColumn {
    None,
    VendorType,
    Provider,
    Model,
    RequestType,
    Route,
    /// `vendor_type|request_type code` in one key.
    VendorAndRequestType,
}

/// Optional equality filters on the dimensions (all `None` = everything).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimFilter {
    pub vendor_type: Option<VendorType>,
    pub provider: Option<ProviderKind>,
    pub model: Option<String>,
    pub request_type: Option<crate::domain::RequestType>,
    pub route: Option<Route>,
}

impl DimFilter {
    /// SQL conditions and their parameters; `vendor` is the vendor-type expression of the table.
    fn sql(&self, vendor: &str, out: &mut Vec<String>, params: &mut Vec<Value>) {
        if let Some(v) = self.vendor_type {
            out.push(format!("{vendor} = ?"));
            params.push(Value::Text(v.as_str().into()));
        }
        if let Some(p) = self.provider {
            out.push("provider = ?".into());
            params.push(Value::Text(p.as_str().into()));
        }
        if let Some(m) = &self.model {
            out.push("model = ?".into());
            params.push(Value::Text(m.clone()));
        }
        if let Some(t) = self.request_type {
            out.push("request_type = ?".into());
            params.push(Value::Integer(t.code()));
        }
        if let Some(r) = self.route {
            out.push("route = ?".into());
            params.push(Value::Integer(r.code()));
        }
    }
}

/// A supplier as the analytics need it (no weddings, no timestamps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplierInfo {
    pub id: SupplierId,
    pub name: String,
    pub vendor_type: VendorType,
    pub tier: Tier,
    pub ai_mode: AiMode,
}

/// One supplier-month from `usage_monthly_supplier`, routes summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierMonth {
    /// `YYYY-MM`.
    pub month: String,
    pub supplier_id: SupplierId,
    pub totals: UsageTotals,
    /// Tokens on the platform and failover routes (what counts against the quota).
    pub quota_tokens: u64,
}

/// One row of `usage_monthly_supplier` without its route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierModelMonth {
    pub month: String,
    pub supplier_id: SupplierId,
    pub provider: String,
    pub model: String,
    pub totals: UsageTotals,
}

/// One usage event as exported, borrowed from SQLite's row (codes not yet
/// turned into names): no allocation per row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRow<'a> {
    /// The row's own id (the ledger's deduplication key).
    pub event_id: &'a str,
    /// The client's tracing id (the event id on rows written before schema v8).
    pub request_id: &'a str,
    pub ts_ms: i64,
    pub supplier_id: i64,
    pub account_id: Option<i64>,
    pub provider: &'a str,
    pub model: &'a str,
    pub request_type: i64,
    pub route: i64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub estimated: bool,
    pub cost_micros: i64,
    pub latency_ms: i64,
    pub status: i64,
    pub error_class: Option<&'a str>,
    /// What a cache hit saved (0 on other rows).
    pub saved_micros: i64,
}

/// One grouped export row (per day or month × supplier × provider × model × request type × route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// `YYYY-MM-DD` for days, `YYYY-MM` for months.
    pub period: String,
    pub supplier_id: i64,
    pub provider: String,
    pub model: String,
    pub request_type: i64,
    pub route: i64,
    pub totals: UsageTotals,
    /// What the group's cache hits saved.
    pub saved_micros: i64,
}

/// Interrupts the running statement of an [`AnalyticsReader`] from another
/// thread. On PostgreSQL it cancels the statement in flight and stops the
/// reader's streams; the reader then answers every call with a cancelled
/// error (open another).
#[derive(Clone)]
pub struct Interrupter(InterruptOn);

#[derive(Clone)]
enum InterruptOn {
    Sqlite(std::sync::Arc<rusqlite::InterruptHandle>),
    Postgres(std::sync::Arc<PgInterrupt>),
}

impl Interrupter {
    pub fn interrupt(&self) {
        match &self.0 {
            InterruptOn::Sqlite(h) => h.interrupt(),
            InterruptOn::Postgres(p) => p.interrupt(),
        }
    }
}

impl std::fmt::Debug for Interrupter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interrupter")
    }
}

/// Whether a store error is the answer to an [`Interrupter`] (SQLite's
/// interrupt, or a PostgreSQL reader's cancelled query).
pub fn is_interrupted(e: &StoreError) -> bool {
    match e {
        StoreError::Sqlite { source, .. } => source.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted),
        StoreError::Postgres(PgError::Cancelled { .. }) => true,
        _ => false,
    }
}

/// Read-only analytics queries on a connection of their own.
pub struct AnalyticsReader {
    path: PathBuf,
    on: ReaderOn,
}

enum ReaderOn {
    Sqlite(Connection),
    Postgres(Box<PgReader>),
}

impl Store {
    /// Opens a connection for analytics and export reads (on PostgreSQL, a
    /// read-only connection outside the pool).
    pub fn analytics_reader(&self) -> StoreResult<AnalyticsReader> {
        if let Some(pg) = self.postgres() {
            return Ok(AnalyticsReader { path: self.error_path(), on: ReaderOn::Postgres(Box::new(PgReader::open(pg)?)) });
        }
        let conn = self.open_connection()?;
        Ok(AnalyticsReader { path: self.error_path(), on: ReaderOn::Sqlite(conn) })
    }
}

impl AnalyticsReader {
    fn err(&self, e: rusqlite::Error) -> StoreError {
        map_err(&self.path, e)
    }

    pub fn interrupter(&self) -> Interrupter {
        match &self.on {
            ReaderOn::Sqlite(conn) => Interrupter(InterruptOn::Sqlite(std::sync::Arc::new(conn.get_interrupt_handle()))),
            ReaderOn::Postgres(pg) => Interrupter(InterruptOn::Postgres(pg.interrupter())),
        }
    }

    /// Whether this reader reads PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.on, ReaderOn::Postgres(_))
    }

    /// Usage per day (`YYYY-MM-DD`, inclusive range) and dimension value, all
    /// suppliers (from `usage_daily_dims`) or one supplier (from `usage_daily`).
    /// Request types and routes come back as their integer codes in text.
    pub fn daily_by(
        &self,
        from: &str,
        to: &str,
        dim: DimColumn,
        supplier: Option<SupplierId>,
        filter: &DimFilter,
    ) -> StoreResult<Vec<(String, String, UsageTotals)>> {
        let conn = match &self.on {
            ReaderOn::Postgres(pg) => return pg.daily_by(from, to, dim, supplier, filter),
            ReaderOn::Sqlite(conn) => conn,
        };
        let vendor = if supplier.is_some() {
            "coalesce((SELECT vendor_type FROM suppliers WHERE id = supplier_id), 'unknown')"
        } else {
            "vendor_type"
        };
        let key = match dim {
            DimColumn::None => "''".to_string(),
            DimColumn::VendorType => vendor.to_string(),
            DimColumn::Provider => "provider".into(),
            DimColumn::Model => "model".into(),
            DimColumn::RequestType => "request_type".into(),
            DimColumn::Route => "route".into(),
            DimColumn::VendorAndRequestType => format!("{vendor} || '|' || request_type"),
        };
        let mut conds = vec!["day >= ?".to_string(), "day <= ?".to_string()];
        let mut ps = vec![Value::Text(from.into()), Value::Text(to.into())];
        if let Some(s) = supplier {
            conds.push("supplier_id = ?".into());
            ps.push(Value::Integer(s.0));
        }
        filter.sql(vendor, &mut conds, &mut ps);
        let table = if supplier.is_some() { "usage_daily" } else { "usage_daily_dims" };
        // Rows come in day order straight from the primary key (or the
        // supplier index); summing them here is cheaper than SQLite's sorter.
        let sql = format!("SELECT day, {key}, {MEASURES} FROM {table} WHERE {} ORDER BY day", conds.join(" AND "));
        let mut st = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = st.query(rusqlite::params_from_iter(ps)).map_err(|e| self.err(e))?;
        let mut out: Vec<(String, String, UsageTotals)> = Vec::new();
        let mut day_start = 0;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let read = || -> rusqlite::Result<(rusqlite::types::ValueRef<'_>, rusqlite::types::ValueRef<'_>, UsageTotals)> {
                Ok((r.get_ref(0)?, r.get_ref(1)?, totals_at(r, 2)?))
            };
            let (day, key, t) = read().map_err(|e| self.err(e))?;
            let (day, key) = (day.as_str().unwrap_or(""), value_text(key));
            if out.last().is_none_or(|l| l.0 != day) {
                day_start = out.len();
            }
            match out[day_start..].iter_mut().find(|x| x.1 == key) {
                Some(x) => x.2.add(&t),
                None => out.push((day.to_string(), key.into_owned(), t)),
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(out)
    }

    /// Per day and supplier totals for the given suppliers, from `usage_supplier_day` (no dimension filter).
    pub fn supplier_days(&self, from: &str, to: &str, suppliers: &[SupplierId]) -> StoreResult<Vec<(String, SupplierId, UsageTotals)>> {
        let conn = match &self.on {
            ReaderOn::Postgres(pg) => return pg.supplier_days(from, to, suppliers),
            ReaderOn::Sqlite(conn) => conn,
        };
        let mut out = Vec::new();
        for s in suppliers {
            out.extend(self.query(
                conn,
                &format!("SELECT day, {MEASURES} FROM usage_supplier_day WHERE supplier_id = ?1 AND day >= ?2 AND day <= ?3"),
                vec![Value::Integer(s.0), Value::Text(from.into()), Value::Text(to.into())],
                |r| Ok((r.get(0)?, *s, totals_at(r, 1)?)),
            )?);
        }
        Ok(out)
    }

    /// Usage per day and supplier for the given suppliers (from `usage_daily`).
    pub fn daily_for_suppliers(
        &self,
        from: &str,
        to: &str,
        suppliers: &[SupplierId],
        filter: &DimFilter,
    ) -> StoreResult<Vec<(String, SupplierId, UsageTotals)>> {
        let conn = match &self.on {
            ReaderOn::Postgres(pg) => return pg.daily_for_suppliers(from, to, suppliers, filter),
            ReaderOn::Sqlite(conn) => conn,
        };
        if suppliers.is_empty() {
            return Ok(Vec::new());
        }
        let vendor = "coalesce((SELECT vendor_type FROM suppliers WHERE id = supplier_id), 'unknown')";
        let mut conds = vec![
            format!("supplier_id IN ({})", suppliers.iter().map(|s| s.0.to_string()).collect::<Vec<_>>().join(",")),
            "day >= ?".into(),
            "day <= ?".into(),
        ];
        let mut ps = vec![Value::Text(from.into()), Value::Text(to.into())];
        filter.sql(vendor, &mut conds, &mut ps);
        let sql = format!("SELECT day, supplier_id, {SUMS} FROM usage_daily WHERE {} GROUP BY 1, 2 ORDER BY 1, 2", conds.join(" AND "));
        self.query(conn, &sql, ps, |r| Ok((r.get(0)?, SupplierId(r.get(1)?), totals_at(r, 2)?)))
    }

    /// Per supplier and month (`YYYY-MM`, inclusive), everything summed, with
    /// the quota-counting tokens (platform and failover routes).
    pub fn supplier_months(&self, from_month: &str, to_month: &str, supplier: Option<SupplierId>) -> StoreResult<Vec<SupplierMonth>> {
        let conn = match &self.on {
            ReaderOn::Postgres(pg) => {
                let rows = pg.supplier_months(from_month, to_month, supplier)?;
                return Ok(rows
                    .into_iter()
                    .map(|(month, supplier_id, totals, quota_tokens)| SupplierMonth { month, supplier_id, totals, quota_tokens })
                    .collect());
            }
            ReaderOn::Sqlite(conn) => conn,
        };
        let mut conds = vec!["month >= ?".to_string(), "month <= ?".to_string()];
        let mut ps = vec![Value::Text(from_month.into()), Value::Text(to_month.into())];
        if let Some(s) = supplier {
            conds.push("supplier_id = ?".into());
            ps.push(Value::Integer(s.0));
        }
        let sql = format!(
            "SELECT month, supplier_id, {MEASURES}, quota_tokens FROM usage_supplier_month WHERE {} ORDER BY 1, 2",
            conds.join(" AND ")
        );
        self.query(conn, &sql, ps, |r| {
            Ok(SupplierMonth { month: r.get(0)?, supplier_id: SupplierId(r.get(1)?), totals: totals_at(r, 2)?, quota_tokens: u(r, 11)? })
        })
    }

    /// The first month (`YYYY-MM`) with usage, per supplier.
    pub fn first_months(&self) -> StoreResult<Vec<(SupplierId, String)>> {
        let conn = match &self.on {
            ReaderOn::Postgres(pg) => return pg.first_months(),
            ReaderOn::Sqlite(conn) => conn,
        };
        self.query(conn, "SELECT supplier_id, min(month) FROM usage_supplier_month GROUP BY supplier_id", Vec::new(), |r| {
            Ok((SupplierId(r.get(0)?), r.get(1)?))
        })
    }

    /// Per supplier, month, provider, model (and route: several rows may share
    /// the first four), without shadow traffic (mirrored copies of parallel tests).
    pub fn supplier_model_months(
        &self,
        from_month: &str,
        to_month: &str,
        supplier: Option<SupplierId>,
    ) -> StoreResult<Vec<SupplierModelMonth>> {
        let conn = match &self.on {
            ReaderOn::Postgres(pg) => return pg.supplier_model_months(from_month, to_month, supplier),
            ReaderOn::Sqlite(conn) => conn,
        };
        let mut conds = vec!["month >= ?".to_string(), "month <= ?".to_string()];
        let mut ps = vec![Value::Text(from_month.into()), Value::Text(to_month.into())];
        if let Some(s) = supplier {
            conds.push("supplier_id = ?".into());
            ps.push(Value::Integer(s.0));
        }
        conds.push(format!("route != {}", Route::Shadow.code()));
        // Rows per route come back separately (summing them in SQLite is slower than in the caller).
        let sql =
            format!("SELECT month, supplier_id, provider, model, {MEASURES} FROM usage_monthly_supplier WHERE {}", conds.join(" AND "));
        self.query(conn, &sql, ps, |r| {
            Ok(SupplierModelMonth {
                month: r.get(0)?,
                supplier_id: SupplierId(r.get(1)?),
                provider: r.get(2)?,
                model: r.get(3)?,
                totals: totals_at(r, 4)?,
            })
        })
    }

    /// Every supplier, by id.
    pub fn suppliers(&self) -> StoreResult<Vec<SupplierInfo>> {
        let rows: Vec<(i64, String, String, String, String)> = match &self.on {
            ReaderOn::Postgres(pg) => pg.suppliers()?,
            ReaderOn::Sqlite(conn) => {
                self.query(conn, "SELECT id, name, vendor_type, tier, ai_mode FROM suppliers ORDER BY id", Vec::new(), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
            }
        };
        rows.into_iter()
            .map(|(id, name, v, t, m)| {
                let bad = |what: &str, e: crate::domain::ParseEnumError| StoreError::Invalid(format!("supplier {id}: {what}: {e}"));
                Ok(SupplierInfo {
                    id: SupplierId(id),
                    name,
                    vendor_type: v.parse().map_err(|e| bad("vendor type", e))?,
                    tier: t.parse().map_err(|e| bad("tier", e))?,
                    ai_mode: m.parse().map_err(|e| bad("AI mode", e))?,
                })
            })
            .collect()
    }

    /// Enabled provider accounts owned by suppliers: (supplier, provider, default model), oldest first.
    pub fn client_accounts(&self) -> StoreResult<Vec<(SupplierId, String, String)>> {
        let conn = match &self.on {
            ReaderOn::Postgres(pg) => return pg.client_accounts(),
            ReaderOn::Sqlite(conn) => conn,
        };
        self.query(
            conn,
            "SELECT owner_supplier_id, provider, default_model FROM provider_accounts
             WHERE owner_supplier_id IS NOT NULL AND enabled = 1 ORDER BY id",
            Vec::new(),
            |r| Ok((SupplierId(r.get(0)?), r.get(1)?, r.get(2)?)),
        )
    }

    /// Requests recorded on the UTC days `from..=to` (from the rollups; for progress).
    pub fn count_requests(&self, from: &str, to: &str, supplier: Option<SupplierId>) -> StoreResult<u64> {
        let conn = match &self.on {
            ReaderOn::Postgres(pg) => return pg.count_requests(from, to, supplier),
            ReaderOn::Sqlite(conn) => conn,
        };
        let (sql, ps) = match supplier {
            Some(s) => (
                "SELECT coalesce(sum(requests), 0) FROM usage_daily WHERE supplier_id = ?1 AND day >= ?2 AND day <= ?3",
                vec![Value::Integer(s.0), Value::Text(from.into()), Value::Text(to.into())],
            ),
            None => (
                "SELECT coalesce(sum(requests), 0) FROM usage_daily_dims WHERE day >= ?1 AND day <= ?2",
                vec![Value::Text(from.into()), Value::Text(to.into())],
            ),
        };
        Ok(self.query(conn, sql, ps, |r| u(r, 0))?.into_iter().next().unwrap_or(0))
    }

    /// Streams the events with `from_ms <= ts < to_ms` in time order to `f`.
    /// Returns how many rows were read; stops at the first error of `f`.
    pub fn for_each_event<E: From<StoreError>>(
        &self,
        from_ms: i64,
        to_ms: i64,
        supplier: Option<SupplierId>,
        mut f: impl FnMut(&EventRow<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let conn = match &self.on {
            ReaderOn::Postgres(pg) => {
                let (sql, ps) = PgReader::events_sql(from_ms, to_ms, supplier);
                return pg.stream(sql, ps, |r| {
                    let row = pg.event_row(r).map_err(E::from)?;
                    f(&row)
                });
            }
            ReaderOn::Sqlite(conn) => conn,
        };
        let cols = "coalesce(request_id, event_id), ts, supplier_id, account_id, provider, model, request_type, route, input_tokens, output_tokens,
            cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_micros, latency_ms, status, error_class, event_id, saved_micros";
        let (sql, ps) = match supplier {
            Some(s) => (
                format!("SELECT {cols} FROM usage_events WHERE supplier_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts, id"),
                vec![Value::Integer(s.0), Value::Integer(from_ms), Value::Integer(to_ms)],
            ),
            None => (
                format!("SELECT {cols} FROM usage_events WHERE ts >= ?1 AND ts < ?2 ORDER BY ts, id"),
                vec![Value::Integer(from_ms), Value::Integer(to_ms)],
            ),
        };
        let mut st = conn.prepare(&sql).map_err(|e| E::from(self.err(e)))?;
        let mut rows = st.query(rusqlite::params_from_iter(ps)).map_err(|e| E::from(self.err(e)))?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(|e| E::from(self.err(e)))? {
            let text = |i: usize| -> rusqlite::Result<&str> { r.get_ref(i)?.as_str().map_err(rusqlite::Error::from) };
            let read = || -> rusqlite::Result<EventRow<'_>> {
                Ok(EventRow {
                    event_id: text(18)?,
                    request_id: text(0)?,
                    ts_ms: r.get(1)?,
                    supplier_id: r.get(2)?,
                    account_id: r.get(3)?,
                    provider: text(4)?,
                    model: text(5)?,
                    request_type: r.get(6)?,
                    route: r.get(7)?,
                    input_tokens: u(r, 8)?,
                    output_tokens: u(r, 9)?,
                    cached_tokens: u(r, 10)?,
                    cache_write_tokens: u(r, 11)?,
                    reasoning_tokens: u(r, 12)?,
                    estimated: r.get::<_, i64>(13)? != 0,
                    cost_micros: r.get(14)?,
                    latency_ms: r.get(15)?,
                    status: r.get(16)?,
                    error_class: r.get_ref(17)?.as_str_or_null().map_err(rusqlite::Error::from)?,
                    saved_micros: r.get(19)?,
                })
            };
            let row = read().map_err(|e| E::from(self.err(e)))?;
            f(&row)?;
            n += 1;
        }
        Ok(n)
    }

    /// Streams grouped usage for the days `from..=to` (by day, or by month when
    /// `by_month`) per supplier, provider, model, request type and route.
    pub fn for_each_group<E: From<StoreError>>(
        &self,
        from: &str,
        to: &str,
        supplier: Option<SupplierId>,
        by_month: bool,
        mut f: impl FnMut(&GroupRow) -> Result<(), E>,
    ) -> Result<u64, E> {
        let conn = match &self.on {
            ReaderOn::Postgres(pg) => {
                let (sql, ps) = PgReader::groups_sql(from, to, supplier, by_month).map_err(E::from)?;
                return pg.stream(sql, ps, |r| {
                    let g = pg.group_row(r, by_month).map_err(E::from)?;
                    f(&g)
                });
            }
            ReaderOn::Sqlite(conn) => conn,
        };
        let period = if by_month { "substr(day, 1, 7)" } else { "day" };
        let mut conds = vec!["day >= ?".to_string(), "day <= ?".to_string()];
        let mut ps = vec![Value::Text(from.into()), Value::Text(to.into())];
        if let Some(s) = supplier {
            conds.push("supplier_id = ?".into());
            ps.push(Value::Integer(s.0));
        }
        let sql = format!(
            "SELECT {period}, supplier_id, provider, model, request_type, route, {SUMS}, sum(saved_micros) FROM usage_daily WHERE {}
             GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6",
            conds.join(" AND ")
        );
        let mut st = conn.prepare(&sql).map_err(|e| E::from(self.err(e)))?;
        let mut rows = st.query(rusqlite::params_from_iter(ps)).map_err(|e| E::from(self.err(e)))?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(|e| E::from(self.err(e)))? {
            let read = || -> rusqlite::Result<GroupRow> {
                Ok(GroupRow {
                    period: r.get(0)?,
                    supplier_id: r.get(1)?,
                    provider: r.get(2)?,
                    model: r.get(3)?,
                    request_type: r.get(4)?,
                    route: r.get(5)?,
                    totals: totals_at(r, 6)?,
                    saved_micros: r.get(15)?,
                })
            };
            let g = read().map_err(|e| E::from(self.err(e)))?;
            f(&g)?;
            n += 1;
        }
        Ok(n)
    }

    fn query<T>(
        &self,
        conn: &Connection,
        sql: &str,
        ps: Vec<Value>,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        let mut st = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = st.query_map(rusqlite::params_from_iter(ps), f).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}
