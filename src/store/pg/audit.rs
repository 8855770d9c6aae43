//! The append-only audit log on PostgreSQL (schema v1's triggers refuse
//! UPDATE, DELETE and TRUNCATE): appending, and the two readers the CLI and
//! the console use, answering what the SQLite versions answer.

use super::PgStore;
use super::catalog::{PgQ, ms};
use crate::domain::{AccountId, AuditQuery, SupplierId};
use crate::store::{AuditEntry, AuditFilter, AuditRow, StoreResult};
use chrono::{DateTime, Utc};

pub struct NewEntry {
    pub now: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub supplier_id: Option<SupplierId>,
    pub account_id: Option<AccountId>,
    pub result: String,
    pub detail: String,
}

pub async fn append(pg: &PgStore, e: NewEntry) -> StoreResult<i64> {
    let c = pg.client().await?;
    let row = c
        .query_one(
            "INSERT INTO audit_log (ts, actor, action, supplier_id, account_id, result, detail) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[&ms(e.now), &e.actor, &e.action, &e.supplier_id.map(|s| s.0), &e.account_id.map(|a| a.0), &e.result, &e.detail],
        )
        .await
        .db(pg)?;
    Ok(row.get(0))
}

/// Newest first: by time, then by id.
pub async fn entries(pg: &PgStore, f: AuditFilter) -> StoreResult<Vec<AuditEntry>> {
    let c = pg.client().await?;
    let limit = i64::from(f.limit.unwrap_or(10_000));
    let rows = c
        .query(
            "SELECT id, ts, actor, action, supplier_id, account_id, result, detail FROM audit_log
             WHERE ($1::BIGINT IS NULL OR supplier_id = $1) AND ($2::TEXT IS NULL OR action ILIKE $2 || '%')
               AND ($3::TIMESTAMPTZ IS NULL OR ts >= $3) AND ($4::TIMESTAMPTZ IS NULL OR ts < $4)
             ORDER BY ts DESC, id DESC LIMIT $5",
            &[&f.supplier_id.map(|s| s.0), &f.action_prefix, &f.from.map(ms), &f.to.map(ms), &limit],
        )
        .await
        .db(pg)?;
    Ok(rows
        .iter()
        .map(|r| AuditEntry {
            id: r.get(0),
            ts: r.get(1),
            actor: r.get(2),
            action: r.get(3),
            supplier_id: r.get::<_, Option<i64>>(4).map(SupplierId),
            account_id: r.get::<_, Option<i64>>(5).map(AccountId),
            result: r.get(6),
            detail: r.get(7),
        })
        .collect())
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Audit entries with supplier names (the console's audit view).
pub async fn search(pg: &PgStore, q: AuditQuery) -> StoreResult<Vec<AuditRow>> {
    let supplier = q.supplier.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let supplier_id = supplier.and_then(|s| s.parse::<i64>().ok());
    let supplier_name = supplier.filter(|_| supplier_id.is_none()).map(|s| format!("%{}%", escape_like(s)));
    let action = q.action_prefix.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|s| format!("{}%", escape_like(s)));
    let limit = i64::from(if q.limit == 0 { 5_000 } else { q.limit });
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT a.id, a.ts, a.actor, a.action, a.supplier_id, s.name, a.account_id, a.result, a.detail
             FROM audit_log a LEFT JOIN suppliers s ON s.id = a.supplier_id
             WHERE ($1::BIGINT IS NULL OR a.supplier_id = $1)
               AND ($2::TEXT IS NULL OR s.name ILIKE $2 ESCAPE '\\' OR (s.name IS NULL AND a.detail ILIKE $2 ESCAPE '\\'))
               AND ($3::TEXT IS NULL OR a.action ILIKE $3 ESCAPE '\\')
               AND ($4::TIMESTAMPTZ IS NULL OR a.ts >= $4) AND ($5::TIMESTAMPTZ IS NULL OR a.ts < $5)
             ORDER BY a.ts DESC, a.id DESC LIMIT $6",
            &[&supplier_id, &supplier_name, &action, &q.from.map(ms), &q.to.map(ms), &limit],
        )
        .await
        .db(pg)?;
    Ok(rows
        .iter()
        .map(|r| AuditRow {
            id: r.get(0),
            ts: r.get(1),
            actor: r.get(2),
            action: r.get(3),
            supplier_id: r.get::<_, Option<i64>>(4).map(SupplierId),
            supplier_name: r.get(5),
            account_id: r.get::<_, Option<i64>>(6).map(AccountId),
            result: r.get(7),
            detail: r.get(8),
        })
        .collect())
}

/// The distinct actions, sorted (byte order, as SQLite's).
pub async fn actions(pg: &PgStore) -> StoreResult<Vec<String>> {
    let c = pg.client().await?;
    Ok(c.query("SELECT DISTINCT action COLLATE \"C\" FROM audit_log ORDER BY 1", &[]).await.db(pg)?.iter().map(|r| r.get(0)).collect())
}
