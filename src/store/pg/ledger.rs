//! The usage ledger on PostgreSQL ([`PgLedger`], issue 25): the fold of an
//! instance's usage journal into the shared database, and the rollups the
//! quotas and the dashboards read, as SQLite's [`crate::store::UsageLedger`]
//! does on one machine.
//!
//! [`UsageLedger::fold_batch`] is ONE PostgreSQL transaction:
//! 1. one statement inserts the batch (`unnest` of one array per column,
//!    `ON CONFLICT (event_id) DO NOTHING`), and folds exactly the rows it
//!    inserted (its `RETURNING`) into every rollup (`usage_daily`,
//!    `usage_daily_dims`, `usage_monthly_supplier`, `usage_supplier_month`,
//!    `usage_supplier_day`, schema [`LEDGER_SCHEMA`]);
//! 2. per supplier and quota month with platform tokens in the batch, adds
//!    them to `quota_months.used_folded` and shrinks this instance's quota
//!    lease ([`super::leases`]) by them: `quota_leases.folded` grows, so the
//!    lease's outstanding part `max(granted − folded, 0)` shrinks by exactly
//!    what became folded usage;
//! 3. moves the journal's watermark (`usage_journal_watermark`), never backwards.
//!
//! All or nothing: an event is counted in the rollups, the quota figures and
//! out of its lease exactly once, however the process stops.
//!
//! Unlike SQLite there is no rollup watermark on the event id: instances
//! commit concurrently, so identity values are not committed in order, and a
//! watermark would skip an event whose id was taken before another
//! instance's commit. Every write folds the rows it inserted itself instead
//! (so [`UsageLedger::fold_rollups`] has nothing left to do).
//!
//! Days and months are UTC (as SQLite's rollups and the quota month,
//! `domain::calendar`): `day` is a DATE, `month` the DATE of the month's first day.

use super::{PgError, PgResult, PgStore};
use crate::domain::{JournalPos, SupplierId, UsageEvent};
use crate::store::{StoreError, StoreResult, UsageLedger};
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::OnceLock;

/// The codes of `UsageStatus::Ok` and `ClientGone` (answered: not errors)
/// and of the routes that count against the platform quota (`Platform`,
/// `Failover`), as literals for the migration (a unit test checks them
/// against `domain::usage`).
macro_rules! answered_codes {
    () => {
        "0, 3"
    };
}
macro_rules! quota_route_codes {
    () => {
        "0, 2"
    };
}

/// Every rollup and `quota_months.used_folded` recomputed from the events.
macro_rules! rebuild_sql {
    () => {
        concat!(
            "DELETE FROM usage_daily; DELETE FROM usage_daily_dims; DELETE FROM usage_monthly_supplier;
DELETE FROM usage_supplier_month; DELETE FROM usage_supplier_day;
CREATE TEMP TABLE sb_rebuild ON COMMIT DROP AS
SELECT (ts AT TIME ZONE 'UTC')::date AS day, supplier_id, provider, model, request_type, route,
    (status NOT IN (",
            answered_codes!(),
            "))::int::int8 AS errors, input_tokens, output_tokens, cached_tokens, cache_write_tokens,
    reasoning_tokens, cost_micros, latency_ms AS latency_ms_sum, saved_micros,
    CASE WHEN route IN (",
            quota_route_codes!(),
            ") THEN input_tokens + output_tokens + cached_tokens + cache_write_tokens ELSE 0 END AS quota
FROM usage_events;
INSERT INTO usage_daily SELECT day, supplier_id, provider, model, request_type, route, ",
            measure_sums!(),
            ", sum(saved_micros)
    FROM sb_rebuild GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO usage_daily_dims SELECT day, coalesce(s.vendor_type, 'unknown'), provider, model, request_type, route, ",
            measure_sums!(),
            "
    FROM sb_rebuild r LEFT JOIN suppliers s ON s.id = r.supplier_id GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO usage_monthly_supplier SELECT date_trunc('month', day)::date, supplier_id, provider, model, route, ",
            measure_sums!(),
            "
    FROM sb_rebuild GROUP BY 1, 2, 3, 4, 5;
INSERT INTO usage_supplier_month SELECT date_trunc('month', day)::date, supplier_id, ",
            measure_sums!(),
            ", sum(quota)
    FROM sb_rebuild GROUP BY 1, 2;
INSERT INTO usage_supplier_day SELECT supplier_id, day, ",
            measure_sums!(),
            ", sum(quota) FROM sb_rebuild GROUP BY 1, 2;
UPDATE quota_months SET used_folded = 0;
INSERT INTO quota_months (supplier_id, month, used_folded)
    SELECT supplier_id, month, quota_tokens FROM usage_supplier_month WHERE quota_tokens <> 0
    ON CONFLICT (supplier_id, month) DO UPDATE SET used_folded = excluded.used_folded;
"
        )
    };
}
macro_rules! measure_sums {
    () => {
        "count(*), sum(errors), sum(input_tokens), sum(output_tokens), sum(cached_tokens), sum(cache_write_tokens),
    sum(reasoning_tokens), sum(cost_micros), sum(latency_ms_sum)"
    };
}

/// Recomputes every rollup from the events ([`rebuild_rollups`]).
pub(crate) const REBUILD_ROLLUPS: &str = rebuild_sql!();

/// The rollups, the journal watermark and the quota lease tables (one
/// migration entry in [`super::schema::MIGRATIONS`]). Ends by filling the
/// rollups and `quota_months` from events already in the database.
pub const LEDGER_SCHEMA: &str = concat!(
    r#"
CREATE TABLE usage_daily (
    day DATE NOT NULL,
    supplier_id BIGINT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    request_type SMALLINT NOT NULL,
    route SMALLINT NOT NULL,
    requests BIGINT NOT NULL, errors BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL, latency_ms_sum BIGINT NOT NULL,
    saved_micros BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, supplier_id, provider, model, request_type, route)
);
CREATE INDEX usage_daily_supplier ON usage_daily (supplier_id, day);

CREATE TABLE usage_daily_dims (
    day DATE NOT NULL,
    vendor_type TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    request_type SMALLINT NOT NULL,
    route SMALLINT NOT NULL,
    requests BIGINT NOT NULL, errors BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL, latency_ms_sum BIGINT NOT NULL,
    PRIMARY KEY (day, vendor_type, provider, model, request_type, route)
);

CREATE TABLE usage_monthly_supplier (
    month DATE NOT NULL,
    supplier_id BIGINT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    route SMALLINT NOT NULL,
    requests BIGINT NOT NULL, errors BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL, latency_ms_sum BIGINT NOT NULL,
    PRIMARY KEY (month, supplier_id, provider, model, route)
);
CREATE INDEX usage_monthly_supplier_supplier ON usage_monthly_supplier (supplier_id, month);

-- quota_tokens: tokens on the routes that count against the platform quota.
CREATE TABLE usage_supplier_month (
    month DATE NOT NULL,
    supplier_id BIGINT NOT NULL,
    requests BIGINT NOT NULL, errors BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL, latency_ms_sum BIGINT NOT NULL,
    quota_tokens BIGINT NOT NULL,
    PRIMARY KEY (month, supplier_id)
);

CREATE TABLE usage_supplier_day (
    supplier_id BIGINT NOT NULL,
    day DATE NOT NULL,
    requests BIGINT NOT NULL, errors BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL, latency_ms_sum BIGINT NOT NULL,
    quota_tokens BIGINT NOT NULL,
    PRIMARY KEY (supplier_id, day)
);

-- One row per usage journal (the fleet instance id): every record before
-- (segment, byte_offset) is folded. Never moves backwards.
CREATE TABLE usage_journal_watermark (
    journal BIGINT PRIMARY KEY,
    segment BIGINT NOT NULL CHECK (segment >= 0),
    byte_offset BIGINT NOT NULL CHECK (byte_offset >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Quota leases (store::pg::leases). One row per supplier and UTC quota month:
-- the lock every grant takes, and the platform tokens folded so far
-- (always equal to usage_supplier_month.quota_tokens).
CREATE TABLE quota_months (
    supplier_id BIGINT NOT NULL,
    month DATE NOT NULL,
    used_folded BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (supplier_id, month)
);

-- One lease per supplier, month and instance, cumulative: `granted` tokens
-- granted in all, `folded` of that instance's platform tokens folded since.
-- Outstanding (counted against the quota besides the folded usage):
-- max(granted - folded, 0), until the instance's journal is folded, the
-- unused part is returned, or an account manager writes it off.
CREATE TABLE quota_leases (
    supplier_id BIGINT NOT NULL,
    month DATE NOT NULL,
    instance_id BIGINT NOT NULL,
    granted BIGINT NOT NULL CHECK (granted >= 0),
    folded BIGINT NOT NULL DEFAULT 0 CHECK (folded >= 0),
    expires_at TIMESTAMPTZ NOT NULL,
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'written_off')),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (supplier_id, month, instance_id)
);
CREATE INDEX quota_leases_instance ON quota_leases (instance_id);
CREATE INDEX quota_leases_expires ON quota_leases (expires_at) WHERE granted > folded;
"#,
    rebuild_sql!()
);

const MEASURES: [&str; 9] = [
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_micros",
    "latency_ms_sum",
];

/// The fold statement: inserts the batch ($1..$21, one array per column),
/// folds the rows it inserted into every rollup, and returns per supplier and
/// quota month: the new events and their platform-quota tokens.
fn fold_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let upd = |extra: &[&str]| {
            MEASURES.iter().chain(extra).map(|c| format!("{c} = r.{c} + excluded.{c}")).collect::<Vec<_>>().join(", ")
        };
        let sums = "sum(requests)::int8, sum(errors)::int8, sum(input_tokens)::int8, sum(output_tokens)::int8, sum(cached_tokens)::int8,
            sum(cache_write_tokens)::int8, sum(reasoning_tokens)::int8, sum(cost_micros)::int8, sum(latency_ms_sum)::int8";
        format!(
            "WITH input AS (
                SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::int2[], $8::int2[],
                    $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::bool[], $15::int8[], $16::int8[], $17::int2[],
                    $18::text[], $19::text[], $20::text[], $21::int8[])
                AS t(event_id, ts, supplier_id, account_id, provider, model, request_type, route, input_tokens, output_tokens,
                    cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_micros, latency_ms, status, error_class,
                    request_id, idempotency_key, saved_micros)
            ),
            new AS (
                INSERT INTO usage_events (event_id, ts, supplier_id, account_id, provider, model, request_type, route, input_tokens,
                    output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_micros, latency_ms, status,
                    error_class, request_id, idempotency_key, saved_micros)
                SELECT * FROM input
                ON CONFLICT (event_id) DO NOTHING
                RETURNING (ts AT TIME ZONE 'UTC')::date AS day, supplier_id, provider, model, request_type, route,
                    (status NOT IN ({answered}))::int::int8 AS errors, input_tokens, output_tokens, cached_tokens, cache_write_tokens,
                    reasoning_tokens, cost_micros, latency_ms, saved_micros,
                    CASE WHEN route IN ({quota_routes}) THEN input_tokens + output_tokens + cached_tokens + cache_write_tokens ELSE 0 END AS quota
            ),
            daily AS (
                SELECT day, supplier_id, provider, model, request_type, route, count(*)::int8 AS requests, sum(errors)::int8 AS errors,
                    sum(input_tokens)::int8 AS input_tokens, sum(output_tokens)::int8 AS output_tokens, sum(cached_tokens)::int8 AS cached_tokens,
                    sum(cache_write_tokens)::int8 AS cache_write_tokens, sum(reasoning_tokens)::int8 AS reasoning_tokens,
                    sum(cost_micros)::int8 AS cost_micros, sum(latency_ms)::int8 AS latency_ms_sum, sum(saved_micros)::int8 AS saved_micros,
                    sum(quota)::int8 AS quota
                FROM new GROUP BY 1, 2, 3, 4, 5, 6
            ),
            d1 AS (
                INSERT INTO usage_daily AS r SELECT day, supplier_id, provider, model, request_type, route, requests, errors, input_tokens,
                    output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms_sum, saved_micros
                FROM daily ORDER BY 1, 2, 3, 4, 5, 6
                ON CONFLICT (day, supplier_id, provider, model, request_type, route) DO UPDATE SET {daily_upd}
            ),
            d2 AS (
                INSERT INTO usage_daily_dims AS r SELECT d.day, coalesce(s.vendor_type, 'unknown'), d.provider, d.model, d.request_type, d.route, {sums}
                FROM daily d LEFT JOIN suppliers s ON s.id = d.supplier_id GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
                ON CONFLICT (day, vendor_type, provider, model, request_type, route) DO UPDATE SET {upd}
            ),
            d3 AS (
                INSERT INTO usage_monthly_supplier AS r SELECT date_trunc('month', day)::date, supplier_id, provider, model, route, {sums}
                FROM daily GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
                ON CONFLICT (month, supplier_id, provider, model, route) DO UPDATE SET {upd}
            ),
            d4 AS (
                INSERT INTO usage_supplier_month AS r SELECT date_trunc('month', day)::date, supplier_id, {sums}, sum(quota)::int8
                FROM daily GROUP BY 1, 2 ORDER BY 1, 2
                ON CONFLICT (month, supplier_id) DO UPDATE SET {quota_upd}
            ),
            d5 AS (
                INSERT INTO usage_supplier_day AS r SELECT supplier_id, day, {sums}, sum(quota)::int8
                FROM daily GROUP BY 1, 2 ORDER BY 1, 2
                ON CONFLICT (supplier_id, day) DO UPDATE SET {quota_upd}
            )
            SELECT supplier_id, date_trunc('month', day)::date, sum(requests)::int8, sum(quota)::int8
            FROM daily GROUP BY 1, 2 ORDER BY 1, 2",
            answered = answered_codes!(),
            quota_routes = quota_route_codes!(),
            daily_upd = upd(&["saved_micros"]),
            upd = upd(&[]),
            quota_upd = upd(&["quota_tokens"]),
        )
    })
}

/// A batch as one array per column (the fold statement's parameters).
#[derive(Default)]
struct Columns {
    event_id: Vec<String>,
    ts: Vec<DateTime<Utc>>,
    supplier_id: Vec<i64>,
    account_id: Vec<Option<i64>>,
    provider: Vec<String>,
    model: Vec<String>,
    request_type: Vec<i16>,
    route: Vec<i16>,
    tokens: [Vec<i64>; 5],
    estimated: Vec<bool>,
    cost: Vec<i64>,
    latency: Vec<i64>,
    status: Vec<i16>,
    error_class: Vec<Option<String>>,
    request_id: Vec<Option<String>>,
    idempotency_key: Vec<Option<String>>,
    saved: Vec<i64>,
}

/// A token count from a provider as BIGINT (saturating).
fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn code16(v: i64) -> i16 {
    i16::try_from(v).unwrap_or(i16::MAX)
}

impl Columns {
    fn of(events: &[UsageEvent]) -> Columns {
        let mut c = Columns::default();
        for e in events {
            let u = &e.usage;
            c.event_id.push(e.event_id.clone());
            c.ts.push(e.ts);
            c.supplier_id.push(e.supplier_id.0);
            c.account_id.push(e.account_id.map(|a| a.0));
            c.provider.push(e.provider.as_str().to_string());
            c.model.push(e.model.clone());
            c.request_type.push(code16(e.request_type.code()));
            c.route.push(code16(e.route.code()));
            for (col, v) in c.tokens.iter_mut().zip([u.input, u.output, u.cached_read, u.cache_write, u.reasoning]) {
                col.push(big(v));
            }
            c.estimated.push(u.estimated);
            c.cost.push(e.cost.0);
            c.latency.push(i64::from(e.latency_ms));
            c.status.push(code16(e.status.code()));
            c.error_class.push(e.error_class.clone());
            c.request_id.push(Some(e.request_id.clone()));
            c.idempotency_key.push(e.idempotency_key.clone());
            c.saved.push(e.saved.0);
        }
        c
    }
}

/// What one fold wrote, per supplier and quota month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldedMonth {
    pub supplier: SupplierId,
    /// The first day of the UTC quota month.
    pub month: NaiveDate,
    /// Events new to the database.
    pub events: i64,
    /// Their platform-quota tokens.
    pub quota_tokens: i64,
}

/// Inserts `events` and folds the new ones into the rollups, the quota
/// months and (with `journal`) that instance's leases, and moves the
/// journal's watermark to `to`: all in `tx`. Returns how many events were new.
pub(crate) async fn fold_in(
    tx: &deadpool_postgres::Transaction<'_>,
    journal: Option<i64>,
    events: &[UsageEvent],
    to: Option<JournalPos>,
) -> Result<(usize, Vec<FoldedMonth>), tokio_postgres::Error> {
    // Statements go out pipelined (sent in order without waiting for each
    // answer): the batch with the watermark, then the quota months with the
    // lease, each month's row before its lease's (the lock order).
    let wm = tx
        .prepare_cached(
            "INSERT INTO usage_journal_watermark AS w (journal, segment, byte_offset) VALUES ($1, $2, $3)
             ON CONFLICT (journal) DO UPDATE SET segment = excluded.segment, byte_offset = excluded.byte_offset, updated_at = now()
             WHERE (excluded.segment, excluded.byte_offset) > (w.segment, w.byte_offset)",
        )
        .await?;
    let move_wm = async {
        match (journal, to) {
            (Some(journal), Some(to)) => tx.execute(&wm, &[&journal, &big(to.segment), &big(to.offset)]).await.map(|_| ()),
            _ => Ok(()),
        }
    };
    let mut months = Vec::new();
    if events.is_empty() {
        move_wm.await?;
    } else {
        let c = Columns::of(events);
        let st = tx.prepare_cached(fold_sql()).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 21] = [
            &c.event_id,
            &c.ts,
            &c.supplier_id,
            &c.account_id,
            &c.provider,
            &c.model,
            &c.request_type,
            &c.route,
            &c.tokens[0],
            &c.tokens[1],
            &c.tokens[2],
            &c.tokens[3],
            &c.tokens[4],
            &c.estimated,
            &c.cost,
            &c.latency,
            &c.status,
            &c.error_class,
            &c.request_id,
            &c.idempotency_key,
            &c.saved,
        ];
        let (rows, ()) = futures::try_join!(tx.query(&st, &params), move_wm)?;
        for r in rows {
            months.push(FoldedMonth { supplier: SupplierId(r.get(0)), month: r.get(1), events: r.get(2), quota_tokens: r.get(3) });
        }
    }
    let up = tx
        .prepare_cached(
            "INSERT INTO quota_months AS q (supplier_id, month, used_folded) VALUES ($1, $2, $3)
             ON CONFLICT (supplier_id, month) DO UPDATE SET used_folded = q.used_folded + excluded.used_folded",
        )
        .await?;
    let shrink = tx
        .prepare_cached(
            "UPDATE quota_leases SET folded = folded + $4, updated_at = now()
             WHERE supplier_id = $1 AND month = $2 AND instance_id = $3",
        )
        .await?;
    // Rows ordered by (supplier, month): every fold locks quota months in one order.
    type P<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
    let instance = journal.unwrap_or_default();
    let with_quota: Vec<&FoldedMonth> = months.iter().filter(|m| m.quota_tokens > 0).collect();
    let up_params: Vec<[P<'_>; 3]> = with_quota.iter().map(|m| [&m.supplier.0 as P<'_>, &m.month, &m.quota_tokens]).collect();
    let shrink_params: Vec<[P<'_>; 4]> =
        with_quota.iter().map(|m| [&m.supplier.0 as P<'_>, &m.month, &instance, &m.quota_tokens]).collect();
    let mut writes = Vec::new();
    for (u, sh) in up_params.iter().zip(&shrink_params) {
        writes.push(tx.execute(&up, u));
        if journal.is_some() {
            writes.push(tx.execute(&shrink, sh));
        }
    }
    futures::future::try_join_all(writes).await?;
    let new = months.iter().map(|m| m.events).sum::<i64>();
    Ok((usize::try_from(new).unwrap_or(0), months))
}

/// Recomputes every rollup and `quota_months.used_folded` from the events
/// (after `store copy` into PostgreSQL, which copies events only).
pub async fn rebuild_rollups(store: &PgStore) -> PgResult<()> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(|e| store.db_err(&e))?;
    tx.batch_execute(REBUILD_ROLLUPS).await.map_err(|e| store.db_err(&e))?;
    tx.commit().await.map_err(|e| store.db_err(&e))
}

/// A journal's watermark.
pub async fn journal_watermark(store: &PgStore, journal: i64) -> PgResult<Option<JournalPos>> {
    let client = store.client().await?;
    let row = client
        .query_opt("SELECT segment, byte_offset FROM usage_journal_watermark WHERE journal = $1", &[&journal])
        .await
        .map_err(|e| store.db_err(&e))?;
    Ok(row.map(|r| JournalPos { segment: r.get::<_, i64>(0).max(0) as u64, offset: r.get::<_, i64>(1).max(0) as u64 }))
}

/// Platform-quota tokens of `supplier` in the whole UTC days of `[from, to)`.
pub async fn quota_tokens_used(store: &PgStore, supplier: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> PgResult<u64> {
    let client = store.client().await?;
    let st = client
        .prepare_cached(
            "SELECT coalesce(sum(quota_tokens), 0)::int8 FROM usage_supplier_day WHERE supplier_id = $1 AND day >= $2 AND day < $3",
        )
        .await
        .map_err(|e| store.db_err(&e))?;
    let v: i64 = client.query_one(&st, &[&supplier.0, &from.date_naive(), &to.date_naive()]).await.map_err(|e| store.db_err(&e))?.get(0);
    Ok(v.max(0) as u64)
}

/// One transaction of [`fold_in`] on a pooled connection.
pub async fn fold(store: &PgStore, journal: Option<i64>, events: &[UsageEvent], to: Option<JournalPos>) -> PgResult<usize> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(|e| store.db_err(&e))?;
    let (n, _) = fold_in(&tx, journal, events, to).await.map_err(|e| store.db_err(&e))?;
    tx.commit().await.map_err(|e| store.db_err(&e))?;
    Ok(n)
}

/// The usage ledger on PostgreSQL: the synchronous [`UsageLedger`] the fold
/// thread drives, each call run on the PostgreSQL runtime
/// ([`PgStore::block`]; never call it from a `pg-io` thread).
#[derive(Debug, Clone)]
pub struct PgLedger {
    store: PgStore,
}

impl PgLedger {
    pub fn new(store: PgStore) -> PgLedger {
        PgLedger { store }
    }

    pub fn store(&self) -> &PgStore {
        &self.store
    }
}

/// A PostgreSQL failure as the store's error (its message, password masked).
fn store_err(e: PgError) -> StoreError {
    StoreError::Invalid(e.to_string())
}

impl UsageLedger for PgLedger {
    fn append(&mut self, events: &[UsageEvent]) -> StoreResult<usize> {
        let events = events.to_vec();
        self.store.block(move |s| async move { fold(&s, None, &events, None).await }).map_err(store_err)
    }

    /// Nothing to do: on PostgreSQL every write folds the rows it inserted
    /// into the rollups in its own transaction (see the module doc).
    fn fold_rollups(&mut self) -> StoreResult<usize> {
        Ok(0)
    }

    fn fold_batch(&mut self, journal: u32, events: &[UsageEvent], to: JournalPos) -> StoreResult<usize> {
        let events = events.to_vec();
        self.store.block(move |s| async move { fold(&s, Some(i64::from(journal)), &events, Some(to)).await }).map_err(store_err)
    }

    fn journal_watermark(&mut self, journal: u32) -> StoreResult<Option<JournalPos>> {
        self.store.block(move |s| async move { journal_watermark(&s, i64::from(journal)).await }).map_err(store_err)
    }

    /// A no-op: PostgreSQL's own checkpointer bounds its write-ahead log;
    /// there is no client-side WAL to copy (SQLite's reason for this call).
    fn checkpoint(&mut self) -> StoreResult<()> {
        Ok(())
    }

    fn quota_tokens_used(&mut self, supplier: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<u64> {
        self.store.block(move |s| async move { quota_tokens_used(&s, supplier, from, to).await }).map_err(store_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Route, UsageStatus};

    /// The route codes that count against the platform quota, as an SQL list
    /// (what `quota_route_codes!` must say).
    fn quota_routes() -> String {
        Route::ALL.iter().filter(|r| r.counts_against_quota()).map(|r| r.code().to_string()).collect::<Vec<_>>().join(", ")
    }

    #[test]
    fn the_sql_codes_are_the_domain_codes() {
        assert_eq!(quota_routes(), quota_route_codes!());
        let answered: Vec<String> = UsageStatus::ALL.iter().filter(|s| s.answered()).map(|s| s.code().to_string()).collect();
        assert_eq!(answered.join(", "), answered_codes!());
        assert!(LEDGER_SCHEMA.ends_with(REBUILD_ROLLUPS));
    }
}
