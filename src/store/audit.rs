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

/// The OS user running this process, for the audit log: `USER`, `LOGNAME`
/// or `USERNAME`, else (a service started without them, e.g. by systemd or
/// cron) the name of the process's user id in `/etc/passwd`, else `uid N`.
pub fn os_user() -> String {
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .map(|v| v.trim().to_string())
            .find(|v| !v.is_empty())
            .or_else(user_of_uid)
            .unwrap_or_else(|| "unknown".into())
    })
    .clone()
}

/// The process's real user id (from `/proc/self/status`), named from `/etc/passwd` when it is there.
fn user_of_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Some(passwd_name(&passwd, &uid).unwrap_or_else(|| format!("uid {uid}")))
}

/// The user name with `uid` in an `/etc/passwd` text.
fn passwd_name(passwd: &str, uid: &str) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid && !name.is_empty()).then(|| name.to_string())
    })
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
        if let Some(pg) = self.postgres() {
            let e = super::pg::audit::NewEntry {
                now,
                actor: actor.to_string(),
                action: action.to_string(),
                supplier_id,
                account_id,
                result: result.to_string(),
                detail: detail.to_string(),
            };
            return pg.block(move |pg| async move { super::pg::audit::append(&pg, e).await });
        }
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO audit_log (ts, actor, action, supplier_id, account_id, result, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![ts(now), actor, action, supplier_id.map(|s| s.0), account_id.map(|a| a.0), result, detail],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Newest first: by time, then by id (background writers may append an
    /// entry after a newer one).
    pub fn audit_entries(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        if let Some(pg) = self.postgres() {
            let f = f.clone();
            return pg.block(move |pg| async move { super::pg::audit::entries(&pg, f).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT id, ts, actor, action, supplier_id, account_id, result, detail FROM audit_log
                 WHERE (?1 IS NULL OR supplier_id = ?1) AND (?2 IS NULL OR action LIKE ?2 || '%')
                   AND (?3 IS NULL OR ts >= ?3) AND (?4 IS NULL OR ts < ?4)
                 ORDER BY ts DESC, id DESC LIMIT ?5",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup_finds_the_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nwedsync:x:1001:1001::/home/wedsync:/bin/sh\nbroken\n";
        assert_eq!(passwd_name(passwd, "1001").as_deref(), Some("wedsync"));
        assert_eq!(passwd_name(passwd, "0").as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, "42"), None);
        assert!(!os_user().is_empty());
    }
}
