//! The request log's search on PostgreSQL: the PostgreSQL half of
//! `store::requests` (`search_requests`, `models_between`), with the same
//! filters and order as SQLite's — the events of a bounded time window,
//! newest first (`ts DESC, id DESC`), by supplier, model, route and status.
//! PostgreSQL picks its own index among `usage_events_ts`,
//! `usage_events_supplier_ts` and the partial `usage_events_failures_ts`
//! (schema v1). Times are compared and returned at millisecond precision,
//! as SQLite stores them.

use super::catalog::PgQ;
use super::{PgResult, PgStore};
use crate::domain::{Micros, RequestType, Route, SupplierId, UsageStatus};
use crate::store::requests::{RequestFilter, RequestRow, StatusFilter};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use tokio_postgres::types::ToSql;

const COLUMNS: &str = "id, event_id, request_id, idempotency_key, ts, supplier_id, account_id, provider, model, request_type, route,
    input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_micros, latency_ms, status,
    error_class";

/// The SQL and parameters of a search.
pub fn search_sql(f: &RequestFilter) -> (String, Vec<Box<dyn ToSql + Send + Sync>>) {
    let code = |v: i64| i16::try_from(v).unwrap_or(i16::MAX);
    let failed = [UsageStatus::Error.code(), UsageStatus::Cancelled.code()];
    let (from_ms, to_ms) = (super::analytics::clamp_ms(f.from_ms), super::analytics::clamp_ms(f.to_ms));
    let mut p: Vec<Box<dyn ToSql + Send + Sync>> = vec![Box::new(from_ms), Box::new(to_ms)];
    let mut wh = vec!["ts >= sb_from_ms($1) AND ts < sb_from_ms($2)".to_string()];
    if let Some(s) = f.supplier {
        p.push(Box::new(s.0));
        wh.push(format!("supplier_id = ${}", p.len()));
    }
    match f.status {
        // The literal list matches the partial index `usage_events_failures_ts`.
        Some(StatusFilter::Failed) => wh.push(format!("status IN ({}, {})", failed[0], failed[1])),
        Some(StatusFilter::Answered) => wh.push(format!("status NOT IN ({}, {})", failed[0], failed[1])),
        Some(StatusFilter::Exactly(s)) => {
            p.push(Box::new(code(s.code())));
            wh.push(format!("status = ${}", p.len()));
        }
        None => {}
    }
    if let Some(m) = &f.model {
        p.push(Box::new(m.clone()));
        wh.push(format!("model = ${}", p.len()));
    }
    if let Some(r) = f.route {
        p.push(Box::new(code(r.code())));
        wh.push(format!("route = ${}", p.len()));
    }
    p.push(Box::new(i64::from(f.limit)));
    let sql = format!("SELECT {COLUMNS} FROM usage_events WHERE {} ORDER BY ts DESC, id DESC LIMIT ${}", wh.join(" AND "), p.len());
    (sql, p)
}

fn row(r: &tokio_postgres::Row) -> Result<RequestRow, tokio_postgres::Error> {
    let u = |i: usize| -> Result<u64, tokio_postgres::Error> { Ok(r.try_get::<_, i64>(i)?.max(0) as u64) };
    let code = |i: usize| -> Result<i64, tokio_postgres::Error> { Ok(i64::from(r.try_get::<_, i16>(i)?)) };
    let ts: DateTime<Utc> = r.try_get(4)?;
    Ok(RequestRow {
        id: r.try_get(0)?,
        event_id: r.try_get(1)?,
        request_id: r.try_get(2)?,
        idempotency_key: r.try_get(3)?,
        ts: Utc.timestamp_millis_opt(ts.timestamp_millis()).single().unwrap_or_default(),
        supplier_id: SupplierId(r.try_get(5)?),
        account_id: r.try_get(6)?,
        provider: r.try_get(7)?,
        model: r.try_get(8)?,
        request_type: RequestType::from_code(code(9)?),
        route: Route::from_code(code(10)?),
        input_tokens: u(11)?,
        output_tokens: u(12)?,
        cached_tokens: u(13)?,
        cache_write_tokens: u(14)?,
        reasoning_tokens: u(15)?,
        estimated: r.try_get(16)?,
        cost: Micros(r.try_get(17)?),
        latency_ms: r.try_get(18)?,
        status: UsageStatus::from_code(code(19)?),
        error_class: r.try_get(20)?,
    })
}

/// One search, newest first.
pub async fn search_requests(pg: &PgStore, f: RequestFilter) -> PgResult<Vec<RequestRow>> {
    let c = pg.client().await?;
    let (sql, p) = search_sql(&f);
    let refs: Vec<&(dyn ToSql + Sync)> = p.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect();
    let st = c.prepare_cached(&sql).await.db(pg)?;
    let rows = c.query(&st, &refs).await.db(pg)?;
    rows.iter().map(|r| row(r).db(pg)).collect()
}

/// The distinct models of the daily rollup over the days `from..=to`, ordered bytewise.
pub async fn models_between(pg: &PgStore, from: NaiveDate, to: NaiveDate) -> PgResult<Vec<String>> {
    let c = pg.client().await?;
    let rows = c
        .query("SELECT DISTINCT model COLLATE \"C\" FROM usage_daily WHERE day >= $1 AND day <= $2 ORDER BY 1", &[&from, &to])
        .await
        .db(pg)?;
    rows.iter().map(|r| r.try_get(0).db(pg)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_filters_and_the_window_stays_in_range() {
        let base = RequestFilter { from_ms: 0, to_ms: i64::MAX, supplier: None, model: None, route: None, status: None, limit: 10 };
        let (sql, p) = search_sql(&base);
        assert!(sql.contains("ts >= sb_from_ms($1) AND ts < sb_from_ms($2)") && sql.ends_with("LIMIT $3"), "{sql}");
        assert_eq!(p.len(), 3);
        let (sql, p) = search_sql(&RequestFilter {
            supplier: Some(SupplierId(4)),
            status: Some(StatusFilter::Exactly(UsageStatus::Cancelled)),
            model: Some("gpt-4o".into()),
            route: Some(Route::Failover),
            ..base.clone()
        });
        assert!(sql.contains("supplier_id = $3") && sql.contains("status = $4") && sql.contains("model = $5"), "{sql}");
        assert!(sql.contains("route = $6") && sql.ends_with("LIMIT $7"), "{sql}");
        assert_eq!(p.len(), 7);
        let (sql, _) = search_sql(&RequestFilter { status: Some(StatusFilter::Failed), ..base });
        assert!(sql.contains("status IN (1, 2)"), "{sql}");
        assert_eq!(super::super::analytics::clamp_ms(i64::MAX), 9_000_000_000_000_000);
        assert_eq!(super::super::analytics::clamp_ms(i64::MIN), -200_000_000_000_000);
        assert_eq!(super::super::analytics::clamp_ms(1_780_000_000_000), 1_780_000_000_000);
    }
}
