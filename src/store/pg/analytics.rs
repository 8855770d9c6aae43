//! The analytics reader on PostgreSQL ([`PgReader`]): the PostgreSQL half of
//! `store::analytics::AnalyticsReader` (the rollup reads behind the
//! console's Usage, Costs and Overview views and `switchboard report`, and
//! the streamed reads behind `switchboard export`), with the same answers as
//! the SQLite reader: days as `YYYY-MM-DD` text and months as `YYYY-MM`
//! (the columns are DATEs here, see `store::pg::ledger`), sums cast back to
//! BIGINT (an overflow is an error, not a wrap), text ordered bytewise
//! (`COLLATE "C"`, SQLite's order), times at millisecond precision.
//!
//! A reader owns one connection of its own, outside the pool (as the SQLite
//! reader owns its own connection), read-only. Its [`PgInterrupt`] cancels
//! the statement in flight (the driver's `CancelToken`) and sets a flag
//! checked between batches; an interrupted reader stays interrupted (every
//! later call answers [`PgError::Cancelled`]; open another). Streams
//! ([`PgReader::stream`]) read through a portal in a read-only transaction,
//! [`BATCH`] rows at a time, handed to the caller's thread over a bounded
//! channel: memory stays flat on millions of rows.
//!
//! The request log's search on PostgreSQL is in [`super::requests`].

use super::{PgError, PgResult, PgStore, block_on_pg, spawn_on_pg, tls_connector};
use crate::domain::{Micros, Route, SupplierId, UsageTotals};
use crate::store::analytics::{DimColumn, DimFilter, SupplierModelMonth};
use crate::store::{StoreError, StoreResult};
use chrono::{Datelike, NaiveDate};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// Rows per portal fetch of a stream.
pub const BATCH: i32 = 4_096;

/// The nine measures, summed, in `UsageTotals` order.
const SUMS: &str = "coalesce(sum(requests), 0)::BIGINT, coalesce(sum(errors), 0)::BIGINT, coalesce(sum(input_tokens), 0)::BIGINT,
    coalesce(sum(output_tokens), 0)::BIGINT, coalesce(sum(cached_tokens), 0)::BIGINT, coalesce(sum(cache_write_tokens), 0)::BIGINT,
    coalesce(sum(reasoning_tokens), 0)::BIGINT, coalesce(sum(cost_micros), 0)::BIGINT, coalesce(sum(latency_ms_sum), 0)::BIGINT";

/// The nine measure columns, unsummed.
const MEASURES: &str =
    "requests, errors, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms_sum";

/// A supplier's vendor type from `usage_daily` (its row in `suppliers`, or `unknown`).
const SUPPLIER_VENDOR: &str = "coalesce((SELECT s.vendor_type FROM suppliers s WHERE s.id = supplier_id), 'unknown')";

/// A supplier's row as text: (id, name, vendor type, tier, AI mode).
pub type SupplierText = (i64, String, String, String, String);

/// Owned query parameters (they move to the PostgreSQL runtime).
pub type Params = Vec<Box<dyn ToSql + Send + Sync>>;

fn refs(ps: &Params) -> Vec<&(dyn ToSql + Sync)> {
    ps.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
}

/// Cancels a [`PgReader`]'s statement in flight and stops its streams.
pub struct PgInterrupt {
    flag: AtomicBool,
    token: tokio_postgres::CancelToken,
}

impl std::fmt::Debug for PgInterrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgInterrupt").field("interrupted", &self.is_interrupted()).finish()
    }
}

impl PgInterrupt {
    /// Sets the flag and asks the server to cancel whatever the reader's
    /// connection runs (harmless when it runs nothing). Returns at once.
    pub fn interrupt(&self) {
        if self.flag.swap(true, Ordering::SeqCst) {
            return;
        }
        let token = self.token.clone();
        spawn_on_pg(async move {
            if let Ok(tls) = tls_connector()
                && let Err(e) = token.cancel_query(tls).await
            {
                tracing::debug!(error = %e, "the PostgreSQL cancel request failed; the reader stops at its next batch");
            }
        });
    }

    pub fn is_interrupted(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// A read-only connection of its own for analytics and export reads.
pub struct PgReader {
    pg: PgStore,
    client: Arc<tokio::sync::Mutex<tokio_postgres::Client>>,
    interrupt: Arc<PgInterrupt>,
}

impl std::fmt::Debug for PgReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReader").field("url", &self.pg.url()).finish()
    }
}

/// `YYYY-MM-DD` as a date.
pub fn parse_day(s: &str) -> StoreResult<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| StoreError::Invalid(format!("'{s}' is not a day (YYYY-MM-DD)")))
}

/// `YYYY-MM` as the date of the month's first day.
pub fn parse_month(s: &str) -> StoreResult<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").map_err(|_| StoreError::Invalid(format!("'{s}' is not a month (YYYY-MM)")))
}

/// A month's DATE as `YYYY-MM` (SQLite's text).
pub fn month_text(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

fn nonneg(v: i64) -> u64 {
    v.max(0) as u64
}

impl PgReader {
    /// Connects (outside the pool) with the store's settings; the session is read-only.
    pub fn open(pg: &PgStore) -> PgResult<PgReader> {
        let (cfg, url) = (pg.config().clone(), pg.url().to_string());
        let scrub = pg.clone();
        let client = block_on_pg(async move {
            let tls = tls_connector().map_err(|detail| PgError::Connect { url: url.clone(), detail })?;
            let (client, conn) = cfg.connect(tls).await.map_err(|e| PgError::Connect { url: url.clone(), detail: scrub.detail(&e) })?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "an analytics connection ended");
                }
            });
            client
                .batch_execute("SET default_transaction_read_only = on; SET application_name = 'switchboard-analytics'")
                .await
                .map_err(|e| scrub.db_err(&e))?;
            Ok::<_, PgError>(client)
        })?;
        let interrupt = Arc::new(PgInterrupt { flag: AtomicBool::new(false), token: client.cancel_token() });
        Ok(PgReader { pg: pg.clone(), client: Arc::new(tokio::sync::Mutex::new(client)), interrupt })
    }

    pub fn interrupter(&self) -> Arc<PgInterrupt> {
        self.interrupt.clone()
    }

    fn cancelled(&self) -> StoreError {
        StoreError::Postgres(PgError::Cancelled { url: self.pg.url().to_string() })
    }

    /// A driver error as the store's (cancelled, once interrupted).
    fn err(&self, e: &tokio_postgres::Error) -> StoreError {
        if self.interrupt.is_interrupted() { self.cancelled() } else { StoreError::Postgres(self.pg.db_err(e)) }
    }

    /// Runs one query on the reader's connection; all its rows.
    pub fn rows(&self, sql: String, ps: Params) -> StoreResult<Vec<Row>> {
        if self.interrupt.is_interrupted() {
            return Err(self.cancelled());
        }
        let client = self.client.clone();
        let r = block_on_pg(async move {
            let c = client.lock().await;
            c.query(sql.as_str(), &refs(&ps)).await
        });
        r.map_err(|e| self.err(&e))
    }

    /// Streams the rows of `sql` to `each` on this thread, [`BATCH`] at a
    /// time through a portal; stops at the first error of `each` or on an
    /// interrupt. Returns how many rows `each` saw.
    pub fn stream<E: From<StoreError>>(&self, sql: String, ps: Params, mut each: impl FnMut(&Row) -> Result<(), E>) -> Result<u64, E> {
        if self.interrupt.is_interrupted() {
            return Err(self.cancelled().into());
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Row>, tokio_postgres::Error>>(2);
        let (client, interrupt) = (self.client.clone(), self.interrupt.clone());
        spawn_on_pg(async move {
            let mut c = client.lock().await;
            let read = async {
                let t = c.build_transaction().read_only(true).start().await?;
                let st = t.prepare(&sql).await?;
                let portal = t.bind(&st, &refs(&ps)).await?;
                while !interrupt.is_interrupted() {
                    let rows = t.query_portal(&portal, BATCH).await?;
                    let last = rows.len() < BATCH as usize;
                    // The receiver gone: the caller stopped.
                    if tx.send(Ok(rows)).await.is_err() || last {
                        break;
                    }
                }
                t.rollback().await
            };
            if let Err(e) = read.await {
                let _ = tx.send(Err(e)).await;
            }
        });
        let mut n = 0u64;
        while let Some(batch) = futures::executor::block_on(rx.recv()) {
            let rows = batch.map_err(|e| E::from(self.err(&e)))?;
            for r in &rows {
                if self.interrupt.is_interrupted() {
                    return Err(self.cancelled().into());
                }
                each(r)?;
                n += 1;
            }
        }
        if self.interrupt.is_interrupted() {
            return Err(self.cancelled().into());
        }
        Ok(n)
    }

    /// A column, or a clear error when it does not read as `T`.
    pub fn get<'a, T: tokio_postgres::types::FromSql<'a>>(&self, r: &'a Row, i: usize) -> StoreResult<T> {
        r.try_get(i).map_err(|e| StoreError::Postgres(self.pg.db_err(&e)))
    }

    /// The nine measures starting at column `i`.
    pub fn totals(&self, r: &Row, i: usize) -> StoreResult<UsageTotals> {
        let n = |k: usize| -> StoreResult<u64> { Ok(nonneg(self.get::<i64>(r, i + k)?)) };
        Ok(UsageTotals {
            requests: n(0)?,
            errors: n(1)?,
            input_tokens: n(2)?,
            output_tokens: n(3)?,
            cached_tokens: n(4)?,
            cache_write_tokens: n(5)?,
            reasoning_tokens: n(6)?,
            cost: Micros(self.get(r, i + 7)?),
            latency_ms_sum: n(8)?,
        })
    }

    /// A DATE column as `YYYY-MM-DD`.
    fn day_at(&self, r: &Row, i: usize) -> StoreResult<String> {
        Ok(self.get::<NaiveDate>(r, i)?.to_string())
    }

    /// `store::AnalyticsReader::daily_by`: grouped here, ordered by the caller's rule (day, then key bytewise).
    pub fn daily_by(
        &self,
        from: &str,
        to: &str,
        dim: DimColumn,
        supplier: Option<SupplierId>,
        filter: &DimFilter,
    ) -> StoreResult<Vec<(String, String, UsageTotals)>> {
        let vendor = if supplier.is_some() { SUPPLIER_VENDOR } else { "vendor_type" };
        let key = match dim {
            DimColumn::None => "''".to_string(),
            DimColumn::VendorType => vendor.to_string(),
            DimColumn::Provider => "provider".into(),
            DimColumn::Model => "model".into(),
            DimColumn::RequestType => "request_type::TEXT".into(),
            DimColumn::Route => "route::TEXT".into(),
            DimColumn::VendorAndRequestType => format!("{vendor} || '|' || request_type::TEXT"),
        };
        let mut ps: Params = vec![Box::new(parse_day(from)?), Box::new(parse_day(to)?)];
        let mut conds = vec!["day >= $1".to_string(), "day <= $2".to_string()];
        if let Some(s) = supplier {
            ps.push(Box::new(s.0));
            conds.push(format!("supplier_id = ${}", ps.len()));
        }
        dim_conds(filter, vendor, &mut conds, &mut ps);
        let table = if supplier.is_some() { "usage_daily" } else { "usage_daily_dims" };
        let sql = format!("SELECT day, {key}, {SUMS} FROM {table} WHERE {} GROUP BY 1, 2", conds.join(" AND "));
        let mut out = Vec::new();
        for r in self.rows(sql, ps)? {
            out.push((self.day_at(&r, 0)?, self.get::<String>(&r, 1)?, self.totals(&r, 2)?));
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(out)
    }

    /// `store::AnalyticsReader::supplier_days`: per supplier in the order asked, days ascending.
    pub fn supplier_days(&self, from: &str, to: &str, suppliers: &[SupplierId]) -> StoreResult<Vec<(String, SupplierId, UsageTotals)>> {
        if suppliers.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = suppliers.iter().map(|s| s.0).collect();
        let sql = format!(
            "SELECT day, supplier_id, {MEASURES} FROM usage_supplier_day WHERE supplier_id = ANY($1) AND day >= $2 AND day <= $3
             ORDER BY supplier_id, day"
        );
        let mut by: std::collections::HashMap<i64, Vec<(String, SupplierId, UsageTotals)>> = std::collections::HashMap::new();
        for r in self.rows(sql, vec![Box::new(ids), Box::new(parse_day(from)?), Box::new(parse_day(to)?)])? {
            let id: i64 = self.get(&r, 1)?;
            by.entry(id).or_default().push((self.day_at(&r, 0)?, SupplierId(id), self.totals(&r, 2)?));
        }
        Ok(suppliers.iter().flat_map(|s| by.get(&s.0).cloned().unwrap_or_default()).collect())
    }

    /// `store::AnalyticsReader::daily_for_suppliers`.
    pub fn daily_for_suppliers(
        &self,
        from: &str,
        to: &str,
        suppliers: &[SupplierId],
        filter: &DimFilter,
    ) -> StoreResult<Vec<(String, SupplierId, UsageTotals)>> {
        if suppliers.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = suppliers.iter().map(|s| s.0).collect();
        let mut ps: Params = vec![Box::new(ids), Box::new(parse_day(from)?), Box::new(parse_day(to)?)];
        let mut conds = vec!["supplier_id = ANY($1)".to_string(), "day >= $2".into(), "day <= $3".into()];
        dim_conds(filter, SUPPLIER_VENDOR, &mut conds, &mut ps);
        let sql = format!("SELECT day, supplier_id, {SUMS} FROM usage_daily WHERE {} GROUP BY 1, 2 ORDER BY 1, 2", conds.join(" AND "));
        self.rows(sql, ps)?.iter().map(|r| Ok((self.day_at(r, 0)?, SupplierId(self.get(r, 1)?), self.totals(r, 2)?))).collect()
    }

    /// `store::AnalyticsReader::supplier_months`: (month, supplier, totals, quota tokens).
    pub fn supplier_months(
        &self,
        from_month: &str,
        to_month: &str,
        supplier: Option<SupplierId>,
    ) -> StoreResult<Vec<(String, SupplierId, UsageTotals, u64)>> {
        let mut ps: Params = vec![Box::new(parse_month(from_month)?), Box::new(parse_month(to_month)?)];
        let mut conds = vec!["month >= $1".to_string(), "month <= $2".to_string()];
        if let Some(s) = supplier {
            ps.push(Box::new(s.0));
            conds.push(format!("supplier_id = ${}", ps.len()));
        }
        let sql = format!(
            "SELECT month, supplier_id, {MEASURES}, quota_tokens FROM usage_supplier_month WHERE {} ORDER BY 1, 2",
            conds.join(" AND ")
        );
        self.rows(sql, ps)?
            .iter()
            .map(|r| {
                let month = month_text(self.get(r, 0)?);
                Ok((month, SupplierId(self.get(r, 1)?), self.totals(r, 2)?, nonneg(self.get(r, 11)?)))
            })
            .collect()
    }

    /// `store::AnalyticsReader::first_months`, by supplier id.
    pub fn first_months(&self) -> StoreResult<Vec<(SupplierId, String)>> {
        let sql = "SELECT supplier_id, min(month) FROM usage_supplier_month GROUP BY supplier_id ORDER BY supplier_id".to_string();
        self.rows(sql, Vec::new())?.iter().map(|r| Ok((SupplierId(self.get(r, 0)?), month_text(self.get(r, 1)?)))).collect()
    }

    /// `store::AnalyticsReader::supplier_model_months` (shadow traffic left
    /// out), in no particular order, as on SQLite: the caller sums the rows
    /// (sorting 40,000 rows bytewise here tripled the cost comparison's time).
    pub fn supplier_model_months(
        &self,
        from_month: &str,
        to_month: &str,
        supplier: Option<SupplierId>,
    ) -> StoreResult<Vec<SupplierModelMonth>> {
        let mut ps: Params = vec![Box::new(parse_month(from_month)?), Box::new(parse_month(to_month)?)];
        let mut conds = vec!["month >= $1".to_string(), "month <= $2".to_string()];
        if let Some(s) = supplier {
            ps.push(Box::new(s.0));
            conds.push(format!("supplier_id = ${}", ps.len()));
        }
        conds.push(format!("route <> {}", Route::Shadow.code()));
        let sql =
            format!("SELECT month, supplier_id, provider, model, {MEASURES} FROM usage_monthly_supplier WHERE {}", conds.join(" AND "));
        self.rows(sql, ps)?
            .iter()
            .map(|r| {
                Ok(SupplierModelMonth {
                    month: month_text(self.get(r, 0)?),
                    supplier_id: SupplierId(self.get(r, 1)?),
                    provider: self.get(r, 2)?,
                    model: self.get(r, 3)?,
                    totals: self.totals(r, 4)?,
                })
            })
            .collect()
    }

    /// `store::AnalyticsReader::suppliers` as raw text: (id, name, vendor type, tier, AI mode).
    pub fn suppliers(&self) -> StoreResult<Vec<SupplierText>> {
        let sql = "SELECT id, name, vendor_type, tier, ai_mode FROM suppliers ORDER BY id".to_string();
        self.rows(sql, Vec::new())?
            .iter()
            .map(|r| Ok((self.get(r, 0)?, self.get(r, 1)?, self.get(r, 2)?, self.get(r, 3)?, self.get(r, 4)?)))
            .collect()
    }

    /// `store::AnalyticsReader::client_accounts`.
    pub fn client_accounts(&self) -> StoreResult<Vec<(SupplierId, String, String)>> {
        let sql = "SELECT owner_supplier_id, provider, default_model FROM provider_accounts
             WHERE owner_supplier_id IS NOT NULL AND enabled ORDER BY id"
            .to_string();
        self.rows(sql, Vec::new())?.iter().map(|r| Ok((SupplierId(self.get(r, 0)?), self.get(r, 1)?, self.get(r, 2)?))).collect()
    }

    /// `store::AnalyticsReader::count_requests`.
    pub fn count_requests(&self, from: &str, to: &str, supplier: Option<SupplierId>) -> StoreResult<u64> {
        let (from, to) = (parse_day(from)?, parse_day(to)?);
        let (sql, ps): (&str, Params) = match supplier {
            Some(s) => (
                "SELECT coalesce(sum(requests), 0)::BIGINT FROM usage_supplier_day WHERE supplier_id = $1 AND day >= $2 AND day <= $3",
                vec![Box::new(s.0), Box::new(from), Box::new(to)],
            ),
            None => (
                "SELECT coalesce(sum(requests), 0)::BIGINT FROM usage_daily_dims WHERE day >= $1 AND day <= $2",
                vec![Box::new(from), Box::new(to)],
            ),
        };
        let rows = self.rows(sql.to_string(), ps)?;
        match rows.first() {
            Some(r) => Ok(nonneg(self.get(r, 0)?)),
            None => Ok(0),
        }
    }

    /// The SQL and parameters of `for_each_event`'s stream.
    pub fn events_sql(from_ms: i64, to_ms: i64, supplier: Option<SupplierId>) -> (String, Params) {
        let (from_ms, to_ms) = (clamp_ms(from_ms), clamp_ms(to_ms));
        let cols = "coalesce(request_id, event_id), ts, supplier_id, account_id, provider, model, request_type, route, input_tokens,
            output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_micros, latency_ms, status, error_class,
            event_id, saved_micros";
        match supplier {
            Some(s) => (
                format!(
                    "SELECT {cols} FROM usage_events WHERE supplier_id = $1 AND ts >= sb_from_ms($2) AND ts < sb_from_ms($3) ORDER BY ts, id"
                ),
                vec![Box::new(s.0), Box::new(from_ms), Box::new(to_ms)],
            ),
            None => (
                format!("SELECT {cols} FROM usage_events WHERE ts >= sb_from_ms($1) AND ts < sb_from_ms($2) ORDER BY ts, id"),
                vec![Box::new(from_ms), Box::new(to_ms)],
            ),
        }
    }

    /// The SQL and parameters of `for_each_group`'s stream (provider and model ordered bytewise).
    pub fn groups_sql(from: &str, to: &str, supplier: Option<SupplierId>, by_month: bool) -> StoreResult<(String, Params)> {
        let period = if by_month { "date_trunc('month', day)::DATE" } else { "day" };
        let mut ps: Params = vec![Box::new(parse_day(from)?), Box::new(parse_day(to)?)];
        let mut conds = vec!["day >= $1".to_string(), "day <= $2".to_string()];
        if let Some(s) = supplier {
            ps.push(Box::new(s.0));
            conds.push(format!("supplier_id = ${}", ps.len()));
        }
        let sql = format!(
            "SELECT {period}, supplier_id, provider, model, request_type, route, {SUMS}, coalesce(sum(saved_micros), 0)::BIGINT
             FROM usage_daily WHERE {} GROUP BY 1, 2, 3, 4, 5, 6
             ORDER BY 1, 2, provider COLLATE \"C\", model COLLATE \"C\", 5, 6",
            conds.join(" AND ")
        );
        Ok((sql, ps))
    }
}

/// The dimension filter's conditions; `vendor` is the table's vendor-type expression.
fn dim_conds(f: &DimFilter, vendor: &str, conds: &mut Vec<String>, ps: &mut Params) {
    if let Some(v) = f.vendor_type {
        ps.push(Box::new(v.as_str().to_string()));
        conds.push(format!("{vendor} = ${}", ps.len()));
    }
    if let Some(p) = f.provider {
        ps.push(Box::new(p.as_str().to_string()));
        conds.push(format!("provider = ${}", ps.len()));
    }
    if let Some(m) = &f.model {
        ps.push(Box::new(m.clone()));
        conds.push(format!("model = ${}", ps.len()));
    }
    if let Some(t) = f.request_type {
        ps.push(Box::new(code16(t.code())));
        conds.push(format!("request_type = ${}", ps.len()));
    }
    if let Some(r) = f.route {
        ps.push(Box::new(code16(r.code())));
        conds.push(format!("route = ${}", ps.len()));
    }
}

/// Unix milliseconds within PostgreSQL's TIMESTAMPTZ range (4713 BC to
/// 294276 AD), so that `sb_from_ms` never overflows: bounds past either end
/// select what SQLite's integer comparison selects (every event).
pub fn clamp_ms(ms: i64) -> i64 {
    ms.clamp(-200_000_000_000_000, 9_000_000_000_000_000)
}

/// An enum code as the SMALLINT column holds it (saturating; no code is that large).
pub(crate) fn code16(v: i64) -> i16 {
    i16::try_from(v).unwrap_or(i16::MAX)
}

impl PgReader {
    /// One row of [`PgReader::events_sql`] as the export reads it (text borrowed from the row).
    pub fn event_row<'a>(&self, r: &'a Row) -> StoreResult<crate::store::analytics::EventRow<'a>> {
        let code = |i: usize| -> StoreResult<i64> { Ok(i64::from(self.get::<i16>(r, i)?)) };
        let n = |i: usize| -> StoreResult<u64> { Ok(nonneg(self.get::<i64>(r, i)?)) };
        Ok(crate::store::analytics::EventRow {
            event_id: self.get(r, 18)?,
            request_id: self.get(r, 0)?,
            ts_ms: self.get::<chrono::DateTime<chrono::Utc>>(r, 1)?.timestamp_millis(),
            supplier_id: self.get(r, 2)?,
            account_id: self.get(r, 3)?,
            provider: self.get(r, 4)?,
            model: self.get(r, 5)?,
            request_type: code(6)?,
            route: code(7)?,
            input_tokens: n(8)?,
            output_tokens: n(9)?,
            cached_tokens: n(10)?,
            cache_write_tokens: n(11)?,
            reasoning_tokens: n(12)?,
            estimated: self.get(r, 13)?,
            cost_micros: self.get(r, 14)?,
            latency_ms: self.get(r, 15)?,
            status: code(16)?,
            error_class: self.get(r, 17)?,
            saved_micros: self.get(r, 19)?,
        })
    }

    /// One row of [`PgReader::groups_sql`].
    pub fn group_row(&self, r: &Row, by_month: bool) -> StoreResult<crate::store::analytics::GroupRow> {
        let period: NaiveDate = self.get(r, 0)?;
        Ok(crate::store::analytics::GroupRow {
            period: if by_month { month_text(period) } else { period.to_string() },
            supplier_id: self.get(r, 1)?,
            provider: self.get(r, 2)?,
            model: self.get(r, 3)?,
            request_type: i64::from(self.get::<i16>(r, 4)?),
            route: i64::from(self.get::<i16>(r, 5)?),
            totals: self.totals(r, 6)?,
            saved_micros: self.get(r, 15)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_read_and_print_as_sqlite_keeps_them() {
        assert_eq!(parse_day("2026-06-09").unwrap(), NaiveDate::from_ymd_opt(2026, 6, 9).unwrap());
        assert_eq!(parse_month("2026-07").unwrap(), NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert_eq!(month_text(NaiveDate::from_ymd_opt(2026, 7, 31).unwrap()), "2026-07");
        assert!(matches!(parse_day("2026-13-01"), Err(StoreError::Invalid(_))));
        assert!(matches!(parse_month("July"), Err(StoreError::Invalid(_))));
        let (sql, p) = PgReader::groups_sql("2026-06-01", "2026-06-30", Some(SupplierId(3)), true).unwrap();
        assert!(sql.contains("date_trunc('month', day)") && sql.contains("supplier_id = $3"), "{sql}");
        assert_eq!(p.len(), 3);
        let (sql, p) = PgReader::events_sql(0, i64::MAX, None);
        assert!(sql.ends_with("ORDER BY ts, id"), "{sql}");
        assert_eq!(p.len(), 2);
    }
}
