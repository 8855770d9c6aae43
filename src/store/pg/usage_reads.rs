//! The usage ledger's reads on PostgreSQL behind `serve` and the console's
//! summaries: the PostgreSQL halves of `Store::count_usage_events`,
//! `usage_totals`, `quota_tokens_by_supplier`, `supplier_daily_usage`,
//! `usage_breakdown`, `supplier_spend`, `account_spend`, `mirror_copies` and
//! `mirror_pairs`. They read the rollups that `store::pg::ledger` keeps in
//! the same transaction as the events (`usage_daily`, `usage_daily_dims`,
//! `usage_supplier_day`), or the events themselves, and answer exactly what
//! the SQLite queries answer: sums cast back to BIGINT (an overflow is an
//! error, not a wrap), text ordered bytewise (`COLLATE "C"`, SQLite's
//! order), times compared at millisecond precision as SQLite stores them.

use super::catalog::PgQ;
use super::{PgResult, PgStore};
use crate::domain::{AccountId, Micros, Route, SupplierId, TokenUsage, UsageStatus, UsageTotals};
use crate::store::{BreakdownCell, LedgerSide, SupplierDay, SupplierSpend};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

const SUMS: &str = "coalesce(sum(requests), 0)::BIGINT, coalesce(sum(errors), 0)::BIGINT, coalesce(sum(input_tokens), 0)::BIGINT,
    coalesce(sum(output_tokens), 0)::BIGINT, coalesce(sum(cached_tokens), 0)::BIGINT, coalesce(sum(cache_write_tokens), 0)::BIGINT,
    coalesce(sum(reasoning_tokens), 0)::BIGINT, coalesce(sum(cost_micros), 0)::BIGINT, coalesce(sum(latency_ms_sum), 0)::BIGINT";

const QUOTA_TOKENS: &str = "input_tokens + cached_tokens + cache_write_tokens + output_tokens";

fn u(v: i64) -> u64 {
    v.max(0) as u64
}

fn code(r: Route) -> i16 {
    r.code() as i16
}

pub async fn count_usage_events(pg: &PgStore) -> PgResult<i64> {
    let c = pg.client().await?;
    Ok(c.query_one("SELECT count(*) FROM usage_events", &[]).await.db(pg)?.get(0))
}

pub async fn usage_totals(pg: &PgStore, from: NaiveDate, to: NaiveDate) -> PgResult<UsageTotals> {
    let c = pg.client().await?;
    let r = c.query_one(&format!("SELECT {SUMS} FROM usage_daily_dims WHERE day >= $1 AND day < $2"), &[&from, &to]).await.db(pg)?;
    Ok(UsageTotals {
        requests: u(r.get(0)),
        errors: u(r.get(1)),
        input_tokens: u(r.get(2)),
        output_tokens: u(r.get(3)),
        cached_tokens: u(r.get(4)),
        cache_write_tokens: u(r.get(5)),
        reasoning_tokens: u(r.get(6)),
        cost: Micros(r.get(7)),
        latency_ms_sum: u(r.get(8)),
    })
}

pub async fn quota_tokens_by_supplier(pg: &PgStore, from: NaiveDate, to: NaiveDate) -> PgResult<HashMap<SupplierId, u64>> {
    let c = pg.client().await?;
    let rows = c
        .query(
            &format!(
                "SELECT supplier_id, sum({QUOTA_TOKENS})::BIGINT FROM usage_daily
                 WHERE day >= $1 AND day < $2 AND route IN ($3, $4) GROUP BY supplier_id"
            ),
            &[&from, &to, &code(Route::Platform), &code(Route::Failover)],
        )
        .await
        .db(pg)?;
    Ok(rows.iter().map(|r| (SupplierId(r.get(0)), u(r.get(1)))).collect())
}

pub async fn supplier_daily_usage(pg: &PgStore, supplier: SupplierId, from: NaiveDate, to: NaiveDate) -> PgResult<Vec<SupplierDay>> {
    let c = pg.client().await?;
    let rows = c
        .query(
            &format!(
                "SELECT day, sum(requests)::BIGINT, sum(CASE WHEN route IN ($4, $5) THEN {QUOTA_TOKENS} ELSE 0 END)::BIGINT,
                        sum({QUOTA_TOKENS})::BIGINT, sum(cost_micros)::BIGINT
                 FROM usage_daily WHERE supplier_id = $1 AND day >= $2 AND day < $3 GROUP BY day ORDER BY day"
            ),
            &[&supplier.0, &from, &to, &code(Route::Platform), &code(Route::Failover)],
        )
        .await
        .db(pg)?;
    Ok(rows
        .iter()
        .map(|r| SupplierDay { day: r.get(0), requests: r.get(1), quota_tokens: r.get(2), tokens: r.get(3), cost_micros: r.get(4) })
        .collect())
}

fn cells(rows: &[tokio_postgres::Row]) -> Vec<BreakdownCell> {
    rows.iter()
        .map(|r| BreakdownCell { day: r.get(0), key: r.get(1), requests: r.get(2), tokens: r.get(3), cost_micros: r.get(4) })
        .collect()
}

/// Usage per day and group over `[from, to)` from the day × dimensions
/// rollup; `key` is the SQL of the group (a column of `usage_daily_dims u`,
/// as text). Codes are turned into names by the caller, as on SQLite.
pub async fn breakdown_by(pg: &PgStore, key: &'static str, from: NaiveDate, to: NaiveDate) -> PgResult<Vec<BreakdownCell>> {
    let c = pg.client().await?;
    let rows = c
        .query(
            &format!(
                "SELECT u.day, {key} AS k, sum(u.requests)::BIGINT,
                        sum(u.input_tokens + u.cached_tokens + u.cache_write_tokens + u.output_tokens)::BIGINT, sum(u.cost_micros)::BIGINT
                 FROM usage_daily_dims u WHERE u.day >= $1 AND u.day < $2 GROUP BY 1, 2 ORDER BY 1, {key} COLLATE \"C\""
            ),
            &[&from, &to],
        )
        .await
        .db(pg)?;
    Ok(cells(&rows))
}

/// Usage per day and supplier (by name) over `[from, to)`.
pub async fn usage_by_supplier_day(pg: &PgStore, from: NaiveDate, to: NaiveDate) -> PgResult<Vec<BreakdownCell>> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT u.day, coalesce(s.name, 'supplier #' || u.supplier_id) AS k, u.requests,
                    u.input_tokens + u.cached_tokens + u.cache_write_tokens + u.output_tokens, u.cost_micros
             FROM usage_supplier_day u LEFT JOIN suppliers s ON s.id = u.supplier_id
             WHERE u.day >= $1 AND u.day < $2 ORDER BY 1, coalesce(s.name, 'supplier #' || u.supplier_id) COLLATE \"C\"",
            &[&from, &to],
        )
        .await
        .db(pg)?;
    Ok(cells(&rows))
}

pub async fn supplier_spend(pg: &PgStore, from: NaiveDate, to: NaiveDate) -> PgResult<Vec<SupplierSpend>> {
    let c = pg.client().await?;
    // SQLite's NOCASE folds ASCII letters only: so does this.
    let rows = c
        .query(
            "SELECT u.supplier_id, coalesce(s.name, 'supplier #' || u.supplier_id) AS k, sum(u.requests)::BIGINT,
                    sum(u.input_tokens + u.cached_tokens + u.cache_write_tokens + u.output_tokens)::BIGINT, sum(u.cost_micros)::BIGINT
             FROM usage_supplier_day u LEFT JOIN suppliers s ON s.id = u.supplier_id
             WHERE u.day >= $1 AND u.day < $2 GROUP BY u.supplier_id, s.name
             ORDER BY 5 DESC, translate(coalesce(s.name, 'supplier #' || u.supplier_id), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') COLLATE \"C\", 1",
            &[&from, &to],
        )
        .await
        .db(pg)?;
    Ok(rows
        .iter()
        .map(|r| SupplierSpend { id: SupplierId(r.get(0)), name: r.get(1), requests: r.get(2), tokens: r.get(3), cost_micros: r.get(4) })
        .collect())
}

pub async fn account_spend(pg: &PgStore, account: AccountId, from: DateTime<Utc>, to: DateTime<Utc>) -> PgResult<Micros> {
    let c = pg.client().await?;
    let r = c
        .query_one(
            "SELECT coalesce(sum(cost_micros), 0)::BIGINT FROM usage_events
             WHERE account_id = $1 AND ts >= sb_from_ms($2) AND ts < sb_from_ms($3)",
            &[&account.0, &from.timestamp_millis(), &to.timestamp_millis()],
        )
        .await
        .db(pg)?;
    Ok(Micros(r.get(0)))
}

pub async fn mirror_copies(pg: &PgStore, prefix: String) -> PgResult<u32> {
    let c = pg.client().await?;
    let n: i64 = c.query_one("SELECT count(*) FROM usage_events WHERE starts_with(event_id, $1)", &[&prefix]).await.db(pg)?.get(0);
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

const SIDE_COLS: &str = "account_id, provider, model, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms, status, error_class";

fn side(r: &tokio_postgres::Row, at: usize) -> LedgerSide {
    LedgerSide {
        account_id: r.get::<_, Option<i64>>(at).map(AccountId),
        provider: r.get(at + 1),
        model: r.get(at + 2),
        usage: TokenUsage {
            input: u(r.get(at + 3)),
            output: u(r.get(at + 4)),
            cached_read: u(r.get(at + 5)),
            cache_write: u(r.get(at + 6)),
            reasoning: u(r.get(at + 7)),
            estimated: false,
        },
        cost_micros: r.get(at + 8),
        latency_ms: r.get::<_, i64>(at + 9).clamp(0, i64::from(u32::MAX)) as u32,
        ok: UsageStatus::from_code(i64::from(r.get::<_, i16>(at + 10))).is_some_and(|s| s.answered()),
        error_class: r.get(at + 11),
    }
}

pub async fn mirror_pairs(pg: &PgStore, prefix: String) -> PgResult<Vec<(LedgerSide, LedgerSide)>> {
    let c = pg.client().await?;
    let cols = |t: &str| SIDE_COLS.split(", ").map(|c| format!("{t}.{c}")).collect::<Vec<_>>().join(", ");
    let start = i32::try_from(prefix.chars().count() + 1).unwrap_or(i32::MAX);
    let rows = c
        .query(
            &format!(
                "SELECT {}, {} FROM usage_events s JOIN usage_events o ON o.event_id = substr(s.event_id, $2)
                 WHERE starts_with(s.event_id, $1) ORDER BY s.id",
                cols("o"),
                cols("s")
            ),
            &[&prefix, &start],
        )
        .await
        .db(pg)?;
    Ok(rows.iter().map(|r| (side(r, 0), side(r, 12))).collect())
}
