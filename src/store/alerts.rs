//! Alerts: raise (at most one open alert per condition key, enforced by a
//! unique index), escalate, acknowledge (one or many), resolve and list; and
//! incidents (at most one open per account), which group the alerts one
//! account's trouble causes.

use super::pg::health as pgh;
use super::{Store, StoreError, StoreResult, parse_ts, ts};
use crate::domain::health::{AlertKind, Severity};
use crate::domain::{AccountId, SupplierId};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub kind: AlertKind,
    /// What the alert is about, e.g. `down:account:7`; one open alert per key.
    pub condition_key: String,
    pub severity: Severity,
    pub supplier_id: Option<SupplierId>,
    pub account_id: Option<AccountId>,
    pub message: String,
    pub raised_at: DateTime<Utc>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The incident it belongs to (alerts about an account's trouble and the
    /// failovers it causes); `None` for quota and migration alerts.
    pub incident_id: Option<i64>,
}

impl Alert {
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }
}

/// What is needed to raise an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub kind: AlertKind,
    pub condition_key: String,
    pub severity: Severity,
    pub supplier_id: Option<SupplierId>,
    pub account_id: Option<AccountId>,
    pub message: String,
    /// Raised already escalated (a supplier on a wedding day is affected).
    pub escalated: bool,
    pub incident_id: Option<i64>,
}

/// One account's trouble from its first failure to its recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    pub id: i64,
    pub account_id: AccountId,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Whether raising created a new alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raised {
    New(Alert),
    AlreadyOpen(Alert),
}

const SELECT: &str = "SELECT id, kind, condition_key, severity, supplier_id, account_id, message, raised_at, escalated_at,
    acknowledged_at, resolved_at, incident_id FROM alerts";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    let conv = |i: usize, e: crate::domain::ParseEnumError| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.to_string().into())
    };
    Ok(Alert {
        id: r.get(0)?,
        kind: r.get::<_, String>(1)?.parse().map_err(|e| conv(1, e))?,
        condition_key: r.get(2)?,
        severity: r.get::<_, String>(3)?.parse().map_err(|e| conv(3, e))?,
        supplier_id: r.get::<_, Option<i64>>(4)?.map(SupplierId),
        account_id: r.get::<_, Option<i64>>(5)?.map(AccountId),
        message: r.get(6)?,
        raised_at: parse_ts(&r.get::<_, String>(7)?),
        escalated_at: r.get::<_, Option<String>>(8)?.map(|s| parse_ts(&s)),
        acknowledged_at: r.get::<_, Option<String>>(9)?.map(|s| parse_ts(&s)),
        resolved_at: r.get::<_, Option<String>>(10)?.map(|s| parse_ts(&s)),
        incident_id: r.get(11)?,
    })
}

fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        account_id: AccountId(r.get(1)?),
        started_at: parse_ts(&r.get::<_, String>(2)?),
        resolved_at: r.get::<_, Option<String>>(3)?.map(|s| parse_ts(&s)),
    })
}

const SELECT_INCIDENT: &str = "SELECT id, account_id, started_at, resolved_at FROM incidents";

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound { what: "alert", id: id.to_string(), hint: " (see `switchboard alerts`)" }
}

impl Store {
    /// Raises an alert unless one is already open for its condition key.
    pub fn raise_alert(&self, a: &NewAlert, now: DateTime<Utc>) -> StoreResult<Raised> {
        if let Some(pg) = self.postgres() {
            let a = a.clone();
            return pg.block(move |pg| async move { pgh::raise(&pg, a, now).await });
        }
        self.with_conn(|c| {
            let open =
                c.query_row(&format!("{SELECT} WHERE condition_key = ?1 AND resolved_at IS NULL"), [&a.condition_key], row).optional()?;
            if let Some(open) = open {
                return Ok(Raised::AlreadyOpen(open));
            }
            c.execute(
                "INSERT INTO alerts (kind, condition_key, severity, supplier_id, account_id, message, raised_at, escalated_at,
                 incident_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    a.kind.as_str(),
                    a.condition_key,
                    a.severity.as_str(),
                    a.supplier_id.map(|s| s.0),
                    a.account_id.map(|x| x.0),
                    a.message,
                    ts(now),
                    a.escalated.then(|| ts(now)),
                    a.incident_id,
                ],
            )?;
            let id = c.last_insert_rowid();
            Ok(Raised::New(c.query_row(&format!("{SELECT} WHERE id = ?1"), [id], row)?))
        })
    }

    pub fn find_alert(&self, id: i64) -> StoreResult<Option<Alert>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgh::find_alert(&pg, id).await });
        }
        self.with_conn(|c| c.query_row(&format!("{SELECT} WHERE id = ?1"), [id], row).optional())
    }

    pub fn open_alert_for(&self, condition_key: &str) -> StoreResult<Option<Alert>> {
        if let Some(pg) = self.postgres() {
            let key = condition_key.to_string();
            return pg.block(move |pg| async move { pgh::open_alert_for(&pg, key).await });
        }
        self.with_conn(|c| {
            c.query_row(&format!("{SELECT} WHERE condition_key = ?1 AND resolved_at IS NULL"), [condition_key], row).optional()
        })
    }

    /// Newest first; `open_only` leaves out resolved alerts.
    pub fn list_alerts(&self, open_only: bool, limit: u32) -> StoreResult<Vec<Alert>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgh::list_alerts(&pg, open_only, limit).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!("{SELECT} WHERE (?1 = 0 OR resolved_at IS NULL) ORDER BY id DESC LIMIT ?2"))?;
            let rows = st.query_map(params![open_only, limit], row)?;
            rows.collect()
        })
    }

    /// Acknowledges several alerts in one transaction (bulk acknowledge);
    /// returns them as they are now. Unknown ids are refused before anything changes.
    pub fn acknowledge_alerts(&self, ids: &[i64], now: DateTime<Utc>) -> StoreResult<Vec<Alert>> {
        if let Some(pg) = self.postgres() {
            let ids = ids.to_vec();
            return pg.block(move |pg| async move { pgh::acknowledge_alerts(&pg, ids, now).await });
        }
        let r = self.with_conn(|c| {
            let tx = c.unchecked_transaction()?;
            let mut out = Vec::with_capacity(ids.len());
            for &id in ids {
                tx.execute("UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, ?2) WHERE id = ?1", params![id, ts(now)])?;
                match tx.query_row(&format!("{SELECT} WHERE id = ?1"), [id], row).optional()? {
                    Some(a) => out.push(a),
                    None => return Ok(Err(id)), // dropping `tx` rolls back
                }
            }
            tx.commit()?;
            Ok(Ok(out))
        })?;
        r.map_err(not_found)
    }

    /// The open incident of an account, or a new one started at `started_at`.
    pub fn open_incident(&self, account: AccountId, started_at: DateTime<Utc>) -> StoreResult<Incident> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgh::open_incident(&pg, account, started_at).await });
        }
        self.with_conn(|c| {
            if let Some(i) = c
                .query_row(&format!("{SELECT_INCIDENT} WHERE account_id = ?1 AND resolved_at IS NULL"), [account.0], incident_row)
                .optional()?
            {
                return Ok(i);
            }
            c.execute("INSERT INTO incidents (account_id, started_at) VALUES (?1, ?2)", params![account.0, ts(started_at)])?;
            let id = c.last_insert_rowid();
            c.query_row(&format!("{SELECT_INCIDENT} WHERE id = ?1"), [id], incident_row)
        })
    }

    pub fn open_incidents(&self) -> StoreResult<Vec<Incident>> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { pgh::incidents(&pg, true, None).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!("{SELECT_INCIDENT} WHERE resolved_at IS NULL ORDER BY id DESC"))?;
            let rows = st.query_map([], incident_row)?;
            rows.collect()
        })
    }

    pub fn find_incident(&self, id: i64) -> StoreResult<Option<Incident>> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(move |pg| async move { pgh::incidents(&pg, false, Some(vec![id])).await })?.pop());
        }
        self.with_conn(|c| c.query_row(&format!("{SELECT_INCIDENT} WHERE id = ?1"), [id], incident_row).optional())
    }

    /// Incidents by id (for grouping a page of alerts).
    pub fn incidents_by_id(&self, ids: &[i64]) -> StoreResult<Vec<Incident>> {
        if let Some(pg) = self.postgres() {
            let ids = ids.to_vec();
            return pg.block(move |pg| async move { pgh::incidents(&pg, false, Some(ids)).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!("{SELECT_INCIDENT} WHERE id = ?1"))?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(i) = st.query_row([id], incident_row).optional()? {
                    out.push(i);
                }
            }
            Ok(out)
        })
    }

    /// The alerts of an incident, oldest first.
    pub fn incident_alerts(&self, incident: i64) -> StoreResult<Vec<Alert>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgh::incident_alerts(&pg, incident).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!("{SELECT} WHERE incident_id = ?1 ORDER BY id"))?;
            let rows = st.query_map([incident], row)?;
            rows.collect()
        })
    }

    /// Closes an incident (idempotent).
    pub fn resolve_incident(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgh::resolve_incident(&pg, id, now).await });
        }
        self.with_conn(|c| c.execute("UPDATE incidents SET resolved_at = COALESCE(resolved_at, ?2) WHERE id = ?1", params![id, ts(now)]))?;
        Ok(())
    }

    /// Sets a new severity and the escalation time.
    pub fn escalate_alert(&self, id: i64, severity: Severity, now: DateTime<Utc>) -> StoreResult<Alert> {
        if let Some(pg) = self.postgres() {
            let sql = "UPDATE alerts SET severity = $3, escalated_at = $2 WHERE id = $1 AND resolved_at IS NULL";
            return pg.block(move |pg| async move { pgh::update_alert(&pg, id, sql, now, Some(severity)).await });
        }
        self.update_alert(
            id,
            "UPDATE alerts SET severity = ?2, escalated_at = ?3 WHERE id = ?1 AND resolved_at IS NULL",
            params![id, severity.as_str(), ts(now)],
        )
    }

    /// Acknowledges an alert (idempotent; the first acknowledgement time is kept).
    pub fn acknowledge_alert(&self, id: i64, now: DateTime<Utc>) -> StoreResult<Alert> {
        if let Some(pg) = self.postgres() {
            let sql = "UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, $2) WHERE id = $1";
            return pg.block(move |pg| async move { pgh::update_alert(&pg, id, sql, now, None).await });
        }
        self.update_alert(id, "UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, ?2) WHERE id = ?1", params![id, ts(now)])
    }

    /// Resolves an alert (idempotent).
    pub fn resolve_alert(&self, id: i64, now: DateTime<Utc>) -> StoreResult<Alert> {
        if let Some(pg) = self.postgres() {
            let sql = "UPDATE alerts SET resolved_at = COALESCE(resolved_at, $2) WHERE id = $1";
            return pg.block(move |pg| async move { pgh::update_alert(&pg, id, sql, now, None).await });
        }
        self.update_alert(id, "UPDATE alerts SET resolved_at = COALESCE(resolved_at, ?2) WHERE id = ?1", params![id, ts(now)])
    }

    /// Runs one UPDATE on an alert and returns it as it is now.
    fn update_alert(&self, id: i64, sql: &str, p: &[&dyn rusqlite::ToSql]) -> StoreResult<Alert> {
        self.with_conn(|c| {
            c.execute(sql, p)?;
            c.query_row(&format!("{SELECT} WHERE id = ?1"), [id], row).optional()
        })?
        .ok_or_else(|| not_found(id))
    }
}
