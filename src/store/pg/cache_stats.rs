//! What the response cache saved, read from the PostgreSQL ledger's daily
//! rollup (the fleet's console): hits and savings per supplier, per day and
//! supplier, and per supplier, model and request type. The cached answers
//! themselves live on each instance (its `local.db`), not here; each instance
//! reports what its cache holds per supplier (`instance_cache`, replaced at
//! every report, dropped when it stops cleanly), and the fleet's entries are
//! the sum over the live instances.

use super::PgStore;
use super::catalog::PgQ;
use crate::domain::{Micros, RequestType, Route, SupplierId};
use crate::store::StoreResult;
use crate::store::{CacheCell, CacheUsage};
use chrono::NaiveDate;

/// v12: what each instance's response cache holds, per supplier.
pub const CACHE_USAGE_MIGRATION: &str = r#"
CREATE TABLE instance_cache (
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    supplier_id BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    hits BIGINT NOT NULL,
    PRIMARY KEY (instance_id, supplier_id)
);
"#;

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Replaces instance `instance`'s report of its cache with `usage` (one transaction).
pub async fn report_usage(pg: &PgStore, instance: i64, usage: &[(SupplierId, CacheUsage)]) -> StoreResult<()> {
    let mut c = pg.client().await?;
    let tx = c.transaction().await.db(pg)?;
    tx.execute("DELETE FROM instance_cache WHERE instance_id = $1", &[&instance]).await.db(pg)?;
    let suppliers: Vec<i64> = usage.iter().map(|u| u.0.0).collect();
    let (entries, bytes, hits): (Vec<i64>, Vec<i64>, Vec<i64>) = (
        usage.iter().map(|u| signed(u.1.entries)).collect(),
        usage.iter().map(|u| signed(u.1.bytes)).collect(),
        usage.iter().map(|u| signed(u.1.hits)).collect(),
    );
    if !suppliers.is_empty() {
        tx.execute(
            "INSERT INTO instance_cache (instance_id, supplier_id, entries, bytes, hits)
             SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::int8[])",
            &[&instance, &suppliers, &entries, &bytes, &hits],
        )
        .await
        .db(pg)?;
    }
    Ok(tx.commit().await.db(pg)?)
}

/// What the live instances' caches hold, per supplier (summed over them): an
/// instance that stopped, or has been silent for `gone_after` (the
/// database's clock), is not serving its entries.
pub async fn fleet_usage(pg: &PgStore, gone_after: std::time::Duration) -> StoreResult<Vec<(SupplierId, CacheUsage)>> {
    let c = pg.client().await?;
    let ms = i64::try_from(gone_after.as_millis()).unwrap_or(i64::MAX);
    let rows = c
        .query(
            "SELECT c.supplier_id, sum(c.entries)::int8, sum(c.bytes)::int8, sum(c.hits)::int8
             FROM instance_cache c JOIN instances i ON i.id = c.instance_id
             WHERE i.stopped_at IS NULL AND i.last_seen > now() - $1::bigint * interval '1 millisecond'
             GROUP BY c.supplier_id ORDER BY c.supplier_id",
            &[&ms],
        )
        .await
        .db(pg)?;
    Ok(rows
        .iter()
        .map(|r| (SupplierId(r.get(0)), CacheUsage { entries: count(r.get(1)), bytes: count(r.get(2)), hits: count(r.get(3)) }))
        .collect())
}

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
