//! The routing catalog on PostgreSQL: the catalog version (a one-row counter
//! that triggers bump on every change to suppliers, weddings, provider
//! accounts, gateway tokens, key pool and cache settings, announcing the new
//! version with `pg_notify('switchboard_catalog', version)`), suppliers and
//! their weddings, key pool and cache settings, and the database's instance
//! tag. The `Store` facade (`store::suppliers`, `store::catalog`, …) calls
//! these on the PostgreSQL runtime; they answer exactly what the SQLite
//! versions answer for the same data (timestamps kept to the millisecond,
//! as SQLite stores them).

use super::{PgError, PgStore};
use crate::domain::cache::CacheSettings;
use crate::domain::keypool::PoolSettings;
use crate::domain::supplier::{normalize_weddings, validate_name};
use crate::domain::{AccountId, Micros, NewSupplier, Supplier, SupplierFilter, SupplierId, SupplierPatch};
use crate::store::{StoreError, StoreResult, WeddingRow};
use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;

/// The channel on which every catalog change is announced (payload: the new
/// catalog version).
pub const CATALOG_CHANNEL: &str = "switchboard_catalog";

/// The catalog version, its triggers and the instance tag (appended to
/// `schema::MIGRATIONS`).
pub const CATALOG_MIGRATION: &str = r#"
CREATE TABLE catalog_version (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
INSERT INTO catalog_version (id, version) VALUES (1, 0);
CREATE FUNCTION catalog_bump() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v BIGINT;
BEGIN
    UPDATE catalog_version SET version = version + 1 WHERE id = 1 RETURNING version INTO v;
    PERFORM pg_notify('switchboard_catalog', v::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER catalog_suppliers AFTER INSERT OR UPDATE OR DELETE ON suppliers
    FOR EACH ROW EXECUTE FUNCTION catalog_bump();
CREATE TRIGGER catalog_weddings AFTER INSERT OR UPDATE OR DELETE ON weddings
    FOR EACH ROW EXECUTE FUNCTION catalog_bump();
CREATE TRIGGER catalog_accounts AFTER INSERT OR DELETE ON provider_accounts
    FOR EACH ROW EXECUTE FUNCTION catalog_bump();
-- As in SQLite: validation results and fingerprints do not change routing.
CREATE TRIGGER catalog_accounts_u AFTER UPDATE OF owner_supplier_id, provider, base_url, azure_deployment,
    azure_api_version, default_model, key_ref, enabled ON provider_accounts
    FOR EACH ROW EXECUTE FUNCTION catalog_bump();
CREATE TRIGGER catalog_tokens AFTER INSERT OR DELETE ON gateway_tokens
    FOR EACH ROW EXECUTE FUNCTION catalog_bump();
CREATE TRIGGER catalog_tokens_u AFTER UPDATE OF revoked_at ON gateway_tokens
    FOR EACH ROW EXECUTE FUNCTION catalog_bump();
CREATE TRIGGER catalog_pool AFTER INSERT OR UPDATE OR DELETE ON account_pool_settings
    FOR EACH ROW EXECUTE FUNCTION catalog_bump();
CREATE TRIGGER catalog_cache_settings AFTER INSERT OR UPDATE OR DELETE ON supplier_cache_settings
    FOR EACH ROW EXECUTE FUNCTION catalog_bump();

CREATE TABLE store_instance (id INTEGER PRIMARY KEY CHECK (id = 1), tag TEXT NOT NULL);
INSERT INTO store_instance (id, tag) VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 12));
"#;

/// A driver result as a store result (the error's text scrubbed of secrets).
pub(crate) trait PgQ<T> {
    fn db(self, pg: &PgStore) -> Result<T, PgError>;
}

impl<T> PgQ<T> for Result<T, tokio_postgres::Error> {
    fn db(self, pg: &PgStore) -> Result<T, PgError> {
        self.map_err(|e| pg.db_err(&e))
    }
}

/// A time as SQLite keeps it: to the millisecond.
pub(crate) fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

/// A stored value this build cannot read (an enum's text, say).
pub(crate) fn bad_value(pg: &PgStore, what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres(PgError::Db { url: pg.url().to_string(), detail: format!("unreadable {what}: {detail}") })
}

fn parse<T: std::str::FromStr>(pg: &PgStore, what: &str, s: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| bad_value(pg, what, e))
}

fn is_unique_violation(e: &tokio_postgres::Error, constraint: &str) -> bool {
    e.as_db_error()
        .is_some_and(|d| d.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION && d.constraint().is_some_and(|c| c == constraint))
}

fn not_found(id: SupplierId) -> StoreError {
    StoreError::NotFound { what: "supplier", id: id.to_string(), hint: " (see `switchboard supplier list`)" }
}

pub async fn catalog_version(pg: &PgStore) -> StoreResult<i64> {
    let c = pg.client().await?;
    Ok(c.query_one("SELECT version FROM catalog_version WHERE id = 1", &[]).await.db(pg)?.get(0))
}

pub async fn instance_tag(pg: &PgStore) -> StoreResult<String> {
    let c = pg.client().await?;
    Ok(c.query_one("SELECT tag FROM store_instance WHERE id = 1", &[]).await.db(pg)?.get(0))
}

const SELECT: &str =
    "SELECT id, name, vendor_type, tier, ai_mode, allow_platform_failover, created_at, updated_at, time_zone FROM suppliers";

fn row_to_supplier(pg: &PgStore, r: &tokio_postgres::Row) -> StoreResult<Supplier> {
    Ok(Supplier {
        id: SupplierId(r.get(0)),
        name: r.get(1),
        vendor_type: parse(pg, "vendor type", r.get(2))?,
        tier: parse(pg, "tier", r.get(3))?,
        ai_mode: parse(pg, "AI mode", r.get(4))?,
        allow_platform_failover: r.get(5),
        weddings: Vec::new(),
        time_zone: parse(pg, "time zone", r.get(8))?,
        created_at: r.get(6),
        updated_at: r.get(7),
    })
}

pub async fn insert_supplier(pg: &PgStore, new: NewSupplier, now: DateTime<Utc>) -> StoreResult<Supplier> {
    let new = new.normalized().map_err(StoreError::Invalid)?;
    let duplicate =
        || StoreError::Invalid(format!("a supplier named '{}' already exists; choose another name or edit that supplier", new.name));
    let mut c = pg.client().await?;
    let tx = c.transaction().await.db(pg)?;
    // Checked first so that a refused name does not use up an id (as in
    // SQLite); the unique index still decides between concurrent inserts.
    if tx.query_opt("SELECT 1 FROM suppliers WHERE lower(name) = lower($1)", &[&new.name]).await.db(pg)?.is_some() {
        return Err(duplicate());
    }
    let res = tx
        .query_one(
            "INSERT INTO suppliers (name, vendor_type, tier, ai_mode, allow_platform_failover, created_at, updated_at, time_zone)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING id",
            &[
                &new.name,
                &new.vendor_type.as_str(),
                &new.tier.as_str(),
                &new.ai_mode.as_str(),
                &new.allow_platform_failover,
                &ms(now),
                &new.time_zone.name(),
            ],
        )
        .await;
    let id = match res {
        Ok(row) => SupplierId(row.get(0)),
        Err(e) if is_unique_violation(&e, "suppliers_name") => return Err(duplicate()),
        Err(e) => return Err(pg.db_err(&e).into()),
    };
    for d in &new.weddings {
        tx.execute("INSERT INTO weddings (supplier_id, day) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&id.0, d]).await.db(pg)?;
    }
    tx.commit().await.db(pg)?;
    // As the SQLite store answers: the times as given (stored to the millisecond).
    Ok(Supplier {
        id,
        name: new.name,
        vendor_type: new.vendor_type,
        tier: new.tier,
        ai_mode: new.ai_mode,
        allow_platform_failover: new.allow_platform_failover,
        weddings: new.weddings,
        time_zone: new.time_zone,
        created_at: now,
        updated_at: now,
    })
}

pub async fn find_supplier(pg: &PgStore, id: SupplierId) -> StoreResult<Option<Supplier>> {
    let c = pg.client().await?;
    let Some(row) = c.query_opt(&format!("{SELECT} WHERE id = $1"), &[&id.0]).await.db(pg)? else { return Ok(None) };
    let mut s = row_to_supplier(pg, &row)?;
    s.weddings = c
        .query("SELECT day FROM weddings WHERE supplier_id = $1 ORDER BY day", &[&id.0])
        .await
        .db(pg)?
        .iter()
        .map(|r| r.get::<_, NaiveDate>(0))
        .collect();
    Ok(Some(s))
}

/// Suppliers matching `filter`, ordered by name (ASCII case folded, as
/// SQLite's `NOCASE`), each with its weddings.
pub async fn list_suppliers(pg: &PgStore, filter: SupplierFilter) -> StoreResult<Vec<Supplier>> {
    let (clauses, args) = crate::store::suppliers::filter_clauses(&filter, "ILIKE", |n| format!("${n}"));
    let mut sql = format!("{SELECT} WHERE TRUE{clauses}");
    sql.push_str(" ORDER BY lower(name COLLATE \"C\"), id");
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    let c = pg.client().await?;
    let mut list = c.query(&sql, &params).await.db(pg)?.iter().map(|r| row_to_supplier(pg, r)).collect::<StoreResult<Vec<_>>>()?;
    let by_id: HashMap<i64, usize> = list.iter().enumerate().map(|(i, s)| (s.id.0, i)).collect();
    for r in c.query("SELECT supplier_id, day FROM weddings ORDER BY supplier_id, day", &[]).await.db(pg)? {
        if let Some(i) = by_id.get(&r.get::<_, i64>(0)) {
            list[*i].weddings.push(r.get(1));
        }
    }
    Ok(list)
}

pub async fn update_supplier(pg: &PgStore, id: SupplierId, patch: SupplierPatch, now: DateTime<Utc>) -> StoreResult<()> {
    let name = patch.name.as_deref().map(validate_name).transpose().map_err(StoreError::Invalid)?;
    let mut c = pg.client().await?;
    let tx = c.transaction().await.db(pg)?;
    if tx.query_opt("SELECT id FROM suppliers WHERE id = $1 FOR UPDATE", &[&id.0]).await.db(pg)?.is_none() {
        return Err(not_found(id));
    }
    let res = tx
        .execute(
            "UPDATE suppliers SET name = coalesce($2, name), vendor_type = coalesce($3, vendor_type), tier = coalesce($4, tier),
             ai_mode = coalesce($5, ai_mode), allow_platform_failover = coalesce($6, allow_platform_failover), updated_at = $7,
             time_zone = coalesce($8, time_zone) WHERE id = $1",
            &[
                &id.0,
                &name,
                &patch.vendor_type.map(|v| v.as_str()),
                &patch.tier.map(|v| v.as_str()),
                &patch.ai_mode.map(|v| v.as_str()),
                &patch.allow_platform_failover,
                &ms(now),
                &patch.time_zone.map(|tz| tz.name()),
            ],
        )
        .await;
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e, "suppliers_name") => {
            return Err(StoreError::Invalid(format!(
                "a supplier named '{}' already exists; choose another name",
                name.unwrap_or_default()
            )));
        }
        Err(e) => return Err(pg.db_err(&e).into()),
    }
    if let Some(set) = &patch.set_weddings {
        let mut set = set.clone();
        normalize_weddings(&mut set);
        tx.execute("DELETE FROM weddings WHERE supplier_id = $1", &[&id.0]).await.db(pg)?;
        for d in &set {
            tx.execute("INSERT INTO weddings (supplier_id, day) VALUES ($1, $2)", &[&id.0, d]).await.db(pg)?;
        }
    }
    for d in &patch.add_weddings {
        tx.execute("INSERT INTO weddings (supplier_id, day) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&id.0, d]).await.db(pg)?;
    }
    for d in &patch.remove_weddings {
        tx.execute("DELETE FROM weddings WHERE supplier_id = $1 AND day = $2", &[&id.0, d]).await.db(pg)?;
    }
    tx.commit().await.db(pg)?;
    Ok(())
}

pub async fn delete_supplier(pg: &PgStore, id: SupplierId) -> StoreResult<()> {
    let c = pg.client().await?;
    let n = c.execute("DELETE FROM suppliers WHERE id = $1", &[&id.0]).await.db(pg)?;
    if n == 0 { Err(not_found(id)) } else { Ok(()) }
}

pub async fn count_suppliers(pg: &PgStore) -> StoreResult<i64> {
    let c = pg.client().await?;
    Ok(c.query_one("SELECT count(*) FROM suppliers", &[]).await.db(pg)?.get(0))
}

/// Weddings on the days `[from, to)`, by day then supplier name.
pub async fn weddings_between(pg: &PgStore, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<WeddingRow>> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT w.day, s.id, s.name, s.vendor_type, s.tier FROM weddings w JOIN suppliers s ON s.id = w.supplier_id
             WHERE w.day >= $1 AND w.day < $2 ORDER BY w.day, lower(s.name COLLATE \"C\")",
            &[&from, &to],
        )
        .await
        .db(pg)?;
    Ok(rows
        .iter()
        .map(|r| WeddingRow {
            day: r.get(0),
            supplier_id: SupplierId(r.get(1)),
            supplier_name: r.get(2),
            vendor_type: r.get::<_, String>(3).parse().ok(),
            tier: r.get::<_, String>(4).parse().ok(),
        })
        .collect())
}

fn pool_row(r: &tokio_postgres::Row, at: usize) -> PoolSettings {
    PoolSettings {
        weight: r.get::<_, Option<i64>>(at).map(|v| v.clamp(1, u32::MAX as i64) as u32),
        rpm: r.get::<_, Option<i64>>(at + 1).map(|v| v.clamp(1, u32::MAX as i64) as u32),
        tpm: r.get::<_, Option<i64>>(at + 2).map(|v| v.max(1) as u64),
        monthly_budget: r.get::<_, Option<i64>>(at + 3).map(Micros),
    }
}

pub async fn pool_settings(pg: &PgStore) -> StoreResult<HashMap<AccountId, PoolSettings>> {
    let c = pg.client().await?;
    let rows = c.query("SELECT account_id, weight, rpm, tpm, monthly_budget_micros FROM account_pool_settings", &[]).await.db(pg)?;
    Ok(rows.iter().map(|r| (AccountId(r.get(0)), pool_row(r, 1))).collect())
}

pub async fn account_pool_settings(pg: &PgStore, account: AccountId) -> StoreResult<PoolSettings> {
    let c = pg.client().await?;
    let row = c
        .query_opt("SELECT weight, rpm, tpm, monthly_budget_micros FROM account_pool_settings WHERE account_id = $1", &[&account.0])
        .await
        .db(pg)?;
    Ok(row.map(|r| pool_row(&r, 0)).unwrap_or_default())
}

/// Sets (all `None`: removes) an account's pool settings; the caller has
/// checked that the account exists.
pub async fn set_account_pool_settings(pg: &PgStore, account: AccountId, s: PoolSettings) -> StoreResult<()> {
    let c = pg.client().await?;
    if s.is_default() {
        c.execute("DELETE FROM account_pool_settings WHERE account_id = $1", &[&account.0]).await.db(pg)?;
    } else {
        c.execute(
            "INSERT INTO account_pool_settings (account_id, weight, rpm, tpm, monthly_budget_micros) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account_id) DO UPDATE SET weight = $2, rpm = $3, tpm = $4, monthly_budget_micros = $5",
            &[
                &account.0,
                &s.weight.map(i64::from),
                &s.rpm.map(i64::from),
                &s.tpm.map(|v| v.min(i64::MAX as u64) as i64),
                &s.monthly_budget.map(|m| m.0),
            ],
        )
        .await
        .db(pg)?;
    }
    Ok(())
}

pub async fn cache_settings_all(pg: &PgStore) -> StoreResult<HashMap<SupplierId, CacheSettings>> {
    let c = pg.client().await?;
    let rows = c.query("SELECT supplier_id, enabled, chat_ttl_secs, embeddings_ttl_secs FROM supplier_cache_settings", &[]).await.db(pg)?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                SupplierId(r.get(0)),
                CacheSettings {
                    enabled: r.get(1),
                    chat_ttl_secs: r.get::<_, i64>(2).max(1) as u64,
                    embeddings_ttl_secs: r.get::<_, i64>(3).max(1) as u64,
                },
            )
        })
        .collect())
}

pub async fn set_cache_settings(pg: &PgStore, supplier: SupplierId, s: CacheSettings) -> StoreResult<()> {
    let ttl = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let c = pg.client().await?;
    c.execute(
        "INSERT INTO supplier_cache_settings (supplier_id, enabled, chat_ttl_secs, embeddings_ttl_secs) VALUES ($1, $2, $3, $4)
         ON CONFLICT (supplier_id) DO UPDATE SET enabled = excluded.enabled, chat_ttl_secs = excluded.chat_ttl_secs,
            embeddings_ttl_secs = excluded.embeddings_ttl_secs",
        &[&supplier.0, &s.enabled, &ttl(s.chat_ttl_secs), &ttl(s.embeddings_ttl_secs)],
    )
    .await
    .db(pg)?;
    Ok(())
}
