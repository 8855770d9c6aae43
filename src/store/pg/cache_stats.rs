//! What the response cache saved, read from the PostgreSQL ledger's daily
//! rollup (the fleet's console): hits and savings per supplier, per day and
//! supplier, and per supplier, model and request type. The cached answers
//! themselves live on each instance (its `local.db`), not here.

use super::PgStore;
use super::catalog::PgQ;
use crate::domain::{Micros, RequestType, Route, SupplierId};
use crate::store::CacheCell;
use crate::store::StoreResult;
use chrono::NaiveDate;

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Cache hits per supplier: (supplier, hits, saved), by supplier.
pub async fn hits_by_supplier(pg: &PgStore) -> StoreResult<Vec<(SupplierId, u64, Micros)>> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT supplier_id, coalesce(sum(requests), 0)::int8, coalesce(sum(saved_micros), 0)::int8 FROM usage_daily
             WHERE route = $1 GROUP BY supplier_id ORDER BY supplier_id",
            &[&(Route::Cache.code() as i16)],
        )
        .await
        .db(pg)?;
    Ok(rows.iter().map(|r| (SupplierId(r.get(0)), count(r.get(1)), Micros(r.get(2)))).collect())
}

/// [`crate::store::Store::cache_by_day_supplier`] (`per_day`) or
/// [`crate::store::Store::cache_by_dims`] on PostgreSQL, over `[from, to)`.
pub async fn cells(pg: &PgStore, from: NaiveDate, to: NaiveDate, per_day: bool) -> StoreResult<Vec<CacheCell>> {
    let (cache, shadow) = (Route::Cache.code(), Route::Shadow.code());
    let measures = format!(
        "coalesce(sum(CASE WHEN route = {cache} THEN requests - errors ELSE 0 END), 0)::int8,
         coalesce(sum(CASE WHEN route <> {shadow} THEN requests - errors ELSE 0 END), 0)::int8, coalesce(sum(saved_micros), 0)::int8"
    );
    let sql = if per_day {
        format!(
            "SELECT day, supplier_id, ''::text, (-1)::int2, {measures} FROM usage_daily WHERE day >= $1 AND day < $2
             GROUP BY day, supplier_id ORDER BY day, supplier_id"
        )
    } else {
        format!(
            "SELECT NULL::date, supplier_id, model, request_type, {measures} FROM usage_daily WHERE day >= $1 AND day < $2
             GROUP BY supplier_id, model, request_type HAVING sum(CASE WHEN route = {cache} THEN requests ELSE 0 END) > 0
             ORDER BY supplier_id, model COLLATE \"C\", request_type"
        )
    };
    let c = pg.client().await?;
    let rows = c.query(&sql, &[&from, &to]).await.db(pg)?;
    Ok(rows
        .iter()
        .map(|r| CacheCell {
            day: r.get(0),
            supplier: SupplierId(r.get(1)),
            model: r.get(2),
            request_type: RequestType::from_code(i64::from(r.get::<_, i16>(3))),
            hits: count(r.get(4)),
            answered: count(r.get(5)),
            saved: Micros(r.get(6)),
        })
        .collect())
}
