//! The append-only audit log (triggers in the schema refuse UPDATE and DELETE).

use super::{Store, StoreResult, parse_ts, ts};
use crate::domain::{AccountId, SupplierId};
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub ts: DateTime<Utc>,
    /// OS user (or `runtime` for automatic actions).
    pub actor: String,
    pub action: String,
    pub supplier_id: Option<SupplierId>,
    pub account_id: Option<AccountId>,
    pub result: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub supplier_id: Option<SupplierId>,
    /// Prefix of the action, e.g. `key.` or `supplier.add`.
    pub action_prefix: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

/// The OS user running this process, for the audit log.
pub fn os_user() -> String {
    std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into())
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub fn audit(
        &self,
        now: DateTime<Utc>,
        actor: &str,
        action: &str,
        supplier_id: Option<SupplierId>,
        account_id: Option<AccountId>,
        result: &str,
        detail: &str,
    ) -> StoreResult<i64> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO audit_log (ts, actor, action, supplier_id, account_id, result, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![ts(now), actor, action, supplier_id.map(|s| s.0), account_id.map(|a| a.0), result, detail],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Newest first.
    pub fn audit_entries(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        self.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT id, ts, actor, action, supplier_id, account_id, result, detail FROM audit_log
                 WHERE (?1 IS NULL OR supplier_id = ?1) AND (?2 IS NULL OR action LIKE ?2 || '%')
                   AND (?3 IS NULL OR ts >= ?3) AND (?4 IS NULL OR ts < ?4)
                 ORDER BY id DESC LIMIT ?5",
            )?;
            let rows = st.query_map(
                params![f.supplier_id.map(|s| s.0), f.action_prefix, f.from.map(ts), f.to.map(ts), f.limit.unwrap_or(10_000)],
                |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        ts: parse_ts(&r.get::<_, String>(1)?),
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        supplier_id: r.get::<_, Option<i64>>(4)?.map(SupplierId),
                        account_id: r.get::<_, Option<i64>>(5)?.map(AccountId),
                        result: r.get(6)?,
                        detail: r.get(7)?,
                    })
                },
            )?;
            rows.collect()
        })
    }
}
