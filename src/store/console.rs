//! Read queries behind the desktop console: usage totals and breakdowns from the
//! daily rollups, platform-quota usage per supplier, the week's weddings and a
//! searchable audit log. Plain rows out; the console layer (`console`) turns
//! them into view snapshots. (The analytics engine will take over the usage
//! breakdowns; these queries read the daily rollups only.)

use super::analytics::{SUMS, totals_at};
use super::{Store, StoreResult, parse_ts, ts};
use crate::domain::{AccountId, AuditQuery, RequestType, Route, SupplierId, Tier, UsageDimension, UsageTotals, VendorType};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;
use std::collections::HashMap;

/// One day of one supplier's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierDay {
    pub day: NaiveDate,
    pub requests: i64,
    /// Tokens that count against the platform quota (platform and failover routes).
    pub quota_tokens: i64,
    /// All tokens, whatever the route.
    pub tokens: i64,
    pub cost_micros: i64,
}

/// One (day, group) cell of a usage breakdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakdownCell {
    pub day: NaiveDate,
    pub key: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost_micros: i64,
}

/// One supplier's usage summed over a range of days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierSpend {
    pub id: SupplierId,
    /// Its name now, or `supplier #ID` when it was removed.
    pub name: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost_micros: i64,
}

/// A wedding on a day, with the supplier it affects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeddingRow {
    pub day: NaiveDate,
    pub supplier_id: SupplierId,
    pub supplier_name: String,
    pub vendor_type: Option<VendorType>,
    pub tier: Option<Tier>,
}

/// An audit entry with the name of its supplier (when it still exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub ts: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub supplier_id: Option<SupplierId>,
    pub supplier_name: Option<String>,
    pub account_id: Option<AccountId>,
    pub result: String,
    pub detail: String,
}

fn day_str(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn parse_day(s: &str) -> NaiveDate {
    s.parse().unwrap_or_default()
}

fn like_pattern(s: &str) -> String {
    format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

const QUOTA_TOKENS: &str = "input_tokens + cached_tokens + cache_write_tokens + output_tokens";

impl Store {
    /// Totals over the days `[from, to)`.
    pub fn usage_totals(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<UsageTotals> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(move |pg| async move { super::pg::usage_reads::usage_totals(&pg, from, to).await })?);
        }
        self.with_conn(|c| {
            c.query_row(
                &format!("SELECT {SUMS} FROM usage_daily_dims WHERE day >= ?1 AND day < ?2"),
                params![day_str(from), day_str(to)],
                |r| totals_at(r, 0),
            )
        })
    }

    /// Platform-quota tokens (platform and failover routes) of every supplier
    /// with any, over the days `[from, to)`.
    pub fn quota_tokens_by_supplier(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<HashMap<SupplierId, u64>> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(move |pg| async move { super::pg::usage_reads::quota_tokens_by_supplier(&pg, from, to).await })?);
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!(
                "SELECT supplier_id, sum({QUOTA_TOKENS}) FROM usage_daily
                 WHERE day >= ?1 AND day < ?2 AND route IN (?3, ?4) GROUP BY supplier_id"
            ))?;
            let rows = st.query_map(params![day_str(from), day_str(to), Route::Platform.code(), Route::Failover.code()], |r| {
                Ok((SupplierId(r.get(0)?), r.get::<_, i64>(1)?.max(0) as u64))
            })?;
            rows.collect()
        })
    }

    /// One supplier's usage per day over `[from, to)`; days without usage are absent.
    pub fn supplier_daily_usage(&self, supplier: SupplierId, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<SupplierDay>> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(move |pg| async move { super::pg::usage_reads::supplier_daily_usage(&pg, supplier, from, to).await })?);
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!(
                "SELECT day, sum(requests), sum(CASE WHEN route IN (?4, ?5) THEN {QUOTA_TOKENS} ELSE 0 END), sum({QUOTA_TOKENS}), sum(cost_micros)
                 FROM usage_daily WHERE supplier_id = ?1 AND day >= ?2 AND day < ?3 GROUP BY day ORDER BY day"
            ))?;
            let rows = st.query_map(
                params![supplier.0, day_str(from), day_str(to), Route::Platform.code(), Route::Failover.code()],
                |r| {
                    Ok(SupplierDay {
                        day: parse_day(&r.get::<_, String>(0)?),
                        requests: r.get(1)?,
                        quota_tokens: r.get(2)?,
                        tokens: r.get(3)?,
                        cost_micros: r.get(4)?,
                    })
                },
            )?;
            rows.collect()
        })
    }

    /// Usage per day and per group of `dim` over `[from, to)`.
    pub fn usage_breakdown(&self, dim: UsageDimension, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<BreakdownCell>> {
        if dim == UsageDimension::Supplier {
            return self.usage_by_supplier_day(from, to);
        }
        // All suppliers together: the day × dimensions rollup, a few hundred
        // rows a day whatever the number of suppliers (vendor type as it was
        // when the usage was recorded).
        let key = match dim {
            UsageDimension::Provider => "u.provider",
            UsageDimension::Model => "u.model",
            UsageDimension::Route => "CAST(u.route AS TEXT)",
            UsageDimension::RequestType => "CAST(u.request_type AS TEXT)",
            UsageDimension::VendorType => "u.vendor_type",
            UsageDimension::Supplier => "u.supplier_id",
        };
        let rows = if let Some(pg) = self.postgres() {
            pg.block(move |pg| async move { super::pg::usage_reads::breakdown_by(&pg, key, from, to).await })?
        } else {
            self.sqlite_breakdown(key, from, to)?
        };
        // Integer codes become their names.
        let name = |k: &str| -> String {
            let code = k.parse::<i64>().ok();
            match dim {
                UsageDimension::Route => code.and_then(Route::from_code).map(|r| r.as_str().to_string()),
                UsageDimension::RequestType => code.and_then(RequestType::from_code).map(|r| r.as_str().to_string()),
                _ => None,
            }
            .unwrap_or_else(|| k.to_string())
        };
        Ok(rows
            .into_iter()
            .map(|mut c| {
                c.key = name(&c.key);
                c
            })
            .collect())
    }

    fn sqlite_breakdown(&self, key: &str, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<BreakdownCell>> {
        self.with_conn(|c| {
            let mut st = c.prepare(&format!(
                "SELECT u.day, {key}, sum(u.requests), sum(u.input_tokens + u.cached_tokens + u.cache_write_tokens + u.output_tokens), sum(u.cost_micros)
                 FROM usage_daily_dims u WHERE u.day >= ?1 AND u.day < ?2 GROUP BY 1, 2 ORDER BY 1, 2"
            ))?;
            let rows = st.query_map(params![day_str(from), day_str(to)], |r| {
                Ok(BreakdownCell {
                    day: parse_day(&r.get::<_, String>(0)?),
                    key: r.get(1)?,
                    requests: r.get(2)?,
                    tokens: r.get(3)?,
                    cost_micros: r.get(4)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })
    }

    /// Usage per day and supplier over `[from, to)` from the per-supplier day
    /// rollup, keyed by the supplier's name.
    fn usage_by_supplier_day(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<BreakdownCell>> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(move |pg| async move { super::pg::usage_reads::usage_by_supplier_day(&pg, from, to).await })?);
        }
        self.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT u.day, coalesce(s.name, 'supplier #' || u.supplier_id), u.requests,
                        u.input_tokens + u.cached_tokens + u.cache_write_tokens + u.output_tokens, u.cost_micros
                 FROM usage_supplier_day u LEFT JOIN suppliers s ON s.id = u.supplier_id
                 WHERE u.day >= ?1 AND u.day < ?2 ORDER BY 1, 2",
            )?;
            let rows = st.query_map(params![day_str(from), day_str(to)], |r| {
                Ok(BreakdownCell {
                    day: parse_day(&r.get::<_, String>(0)?),
                    key: r.get(1)?,
                    requests: r.get(2)?,
                    tokens: r.get(3)?,
                    cost_micros: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Every supplier's usage summed over `[from, to)`, the most expensive first
    /// (then by name); suppliers without usage in the range are absent.
    pub fn supplier_spend(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<SupplierSpend>> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(move |pg| async move { super::pg::usage_reads::supplier_spend(&pg, from, to).await })?);
        }
        self.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT u.supplier_id, coalesce(s.name, 'supplier #' || u.supplier_id), sum(u.requests),
                        sum(u.input_tokens + u.cached_tokens + u.cache_write_tokens + u.output_tokens), sum(u.cost_micros)
                 FROM usage_supplier_day u LEFT JOIN suppliers s ON s.id = u.supplier_id
                 WHERE u.day >= ?1 AND u.day < ?2 GROUP BY u.supplier_id ORDER BY 5 DESC, 2 COLLATE NOCASE, 1",
            )?;
            let rows = st.query_map(params![day_str(from), day_str(to)], |r| {
                Ok(SupplierSpend {
                    id: SupplierId(r.get(0)?),
                    name: r.get(1)?,
                    requests: r.get(2)?,
                    tokens: r.get(3)?,
                    cost_micros: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Weddings on the days `[from, to)`, by day then supplier name.
    pub fn weddings_between(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<WeddingRow>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { super::pg::catalog::weddings_between(&pg, from, to).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT w.day, s.id, s.name, s.vendor_type, s.tier FROM weddings w JOIN suppliers s ON s.id = w.supplier_id
                 WHERE w.day >= ?1 AND w.day < ?2 ORDER BY w.day, s.name COLLATE NOCASE",
            )?;
            let rows = st.query_map(params![day_str(from), day_str(to)], |r| {
                Ok(WeddingRow {
                    day: parse_day(&r.get::<_, String>(0)?),
                    supplier_id: SupplierId(r.get(1)?),
                    supplier_name: r.get(2)?,
                    vendor_type: r.get::<_, String>(3)?.parse().ok(),
                    tier: r.get::<_, String>(4)?.parse().ok(),
                })
            })?;
            rows.collect()
        })
    }

    /// Audit entries, newest first (strictly: by time, then by id, since
    /// background writers may append an entry after a newer one), with supplier names.
    pub fn audit_search(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        if let Some(pg) = self.postgres() {
            let q = q.clone();
            return pg.block(move |pg| async move { super::pg::audit::search(&pg, q).await });
        }
        let supplier = q.supplier.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let supplier_id = supplier.and_then(|s| s.parse::<i64>().ok());
        let supplier_name = supplier.filter(|_| supplier_id.is_none()).map(like_pattern);
        let action = q
            .action_prefix
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| format!("{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
        self.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT a.id, a.ts, a.actor, a.action, a.supplier_id, s.name, a.account_id, a.result, a.detail
                 FROM audit_log a LEFT JOIN suppliers s ON s.id = a.supplier_id
                 WHERE (?1 IS NULL OR a.supplier_id = ?1)
                   AND (?2 IS NULL OR s.name LIKE ?2 ESCAPE '\\' OR (s.name IS NULL AND a.detail LIKE ?2 ESCAPE '\\'))
                   AND (?3 IS NULL OR a.action LIKE ?3 ESCAPE '\\')
                   AND (?4 IS NULL OR a.ts >= ?4) AND (?5 IS NULL OR a.ts < ?5)
                 ORDER BY a.ts DESC, a.id DESC LIMIT ?6",
            )?;
            let rows = st.query_map(
                params![supplier_id, supplier_name, action, q.from.map(ts), q.to.map(ts), if q.limit == 0 { 5_000 } else { q.limit }],
                |r| {
                    Ok(AuditRow {
                        id: r.get(0)?,
                        ts: parse_ts(&r.get::<_, String>(1)?),
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        supplier_id: r.get::<_, Option<i64>>(4)?.map(SupplierId),
                        supplier_name: r.get(5)?,
                        account_id: r.get::<_, Option<i64>>(6)?.map(AccountId),
                        result: r.get(7)?,
                        detail: r.get(8)?,
                    })
                },
            )?;
            rows.collect()
        })
    }

    /// The distinct actions in the audit log, for a filter menu.
    pub fn audit_actions(&self) -> StoreResult<Vec<String>> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { super::pg::audit::actions(&pg).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare("SELECT DISTINCT action FROM audit_log ORDER BY action")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }
}
