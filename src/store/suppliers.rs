//! Suppliers, their time zones and their wedding calendars. Supplier ids are
//! never reused (the table is `AUTOINCREMENT` since schema v8), so a new
//! supplier never inherits a removed one's usage, CSV rows or audit history.

use super::pg::catalog as pgc;
use super::{Store, StoreError, StoreResult, parse_ts, ts};
use crate::domain::supplier::{normalize_weddings, validate_name};
use crate::domain::{NewSupplier, Supplier, SupplierId};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

pub use crate::domain::{SupplierFilter, SupplierPatch};

const NOT_FOUND_HINT: &str = " (see `switchboard supplier list`)";

fn not_found(id: SupplierId) -> StoreError {
    StoreError::NotFound { what: "supplier", id: id.to_string(), hint: NOT_FOUND_HINT }
}

fn parse_enum<T: std::str::FromStr>(s: String) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.to_string().into()))
}

fn row_to_supplier(r: &rusqlite::Row<'_>) -> rusqlite::Result<Supplier> {
    Ok(Supplier {
        id: SupplierId(r.get(0)?),
        name: r.get(1)?,
        vendor_type: parse_enum(r.get(2)?)?,
        tier: parse_enum(r.get(3)?)?,
        ai_mode: parse_enum(r.get(4)?)?,
        allow_platform_failover: r.get(5)?,
        weddings: Vec::new(),
        time_zone: parse_enum(r.get(8)?)?,
        created_at: parse_ts(&r.get::<_, String>(6)?),
        updated_at: parse_ts(&r.get::<_, String>(7)?),
    })
}

const SELECT: &str =
    "SELECT id, name, vendor_type, tier, ai_mode, allow_platform_failover, created_at, updated_at, time_zone FROM suppliers";

fn weddings_of(c: &Connection, id: SupplierId) -> rusqlite::Result<Vec<NaiveDate>> {
    let mut st = c.prepare_cached("SELECT day FROM weddings WHERE supplier_id = ?1 ORDER BY day")?;
    let days = st.query_map([id.0], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for d in days {
        if let Ok(day) = d?.parse() {
            out.push(day);
        }
    }
    Ok(out)
}

fn duplicate_name(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, Some(msg)) if f.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("suppliers.name"))
}

/// A supplier filter as SQL: the `AND …` clauses and their arguments, in
/// either backend's dialect (`like`: `LIKE` or `ILIKE`; `param(n)`: the n-th
/// placeholder, `?n` or `$n`). The search is a substring, with `%`, `_` and
/// `\` taken literally.
pub(crate) fn filter_clauses(filter: &SupplierFilter, like: &str, param: impl Fn(usize) -> String) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut args: Vec<String> = Vec::new();
    if let Some(s) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        args.push(format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
        sql.push_str(&format!(" AND name {like} {} ESCAPE '\\'", param(args.len())));
    }
    let equal = [
        ("tier", filter.tier.map(|t| t.as_str())),
        ("vendor_type", filter.vendor_type.map(|v| v.as_str())),
        ("ai_mode", filter.ai_mode.map(|m| m.as_str())),
    ];
    for (column, value) in equal {
        if let Some(v) = value {
            args.push(v.to_string());
            sql.push_str(&format!(" AND {column} = {}", param(args.len())));
        }
    }
    (sql, args)
}

impl Store {
    pub fn insert_supplier(&self, new: &NewSupplier, now: DateTime<Utc>) -> StoreResult<Supplier> {
        if let Some(pg) = self.postgres() {
            let new = new.clone();
            return pg.block(move |pg| async move { pgc::insert_supplier(&pg, new, now).await });
        }
        let new = new.clone().normalized().map_err(StoreError::Invalid)?;
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let res = tx.execute(
            "INSERT INTO suppliers (name, vendor_type, tier, ai_mode, allow_platform_failover, created_at, updated_at, time_zone)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
            params![
                new.name,
                new.vendor_type.as_str(),
                new.tier.as_str(),
                new.ai_mode.as_str(),
                new.allow_platform_failover,
                ts(now),
                new.time_zone.name()
            ],
        );
        if let Err(e) = res {
            if duplicate_name(&e) {
                return Err(StoreError::Invalid(format!(
                    "a supplier named '{}' already exists; choose another name or edit that supplier",
                    new.name
                )));
            }
            return Err(self.err(e));
        }
        let id = SupplierId(tx.last_insert_rowid());
        {
            let mut st = tx.prepare_cached("INSERT OR IGNORE INTO weddings (supplier_id, day) VALUES (?1, ?2)").map_err(|e| self.err(e))?;
            for d in &new.weddings {
                st.execute(params![id.0, d.to_string()]).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
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

    pub fn find_supplier(&self, id: SupplierId) -> StoreResult<Option<Supplier>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgc::find_supplier(&pg, id).await });
        }
        let conn = self.conn()?;
        let s = conn.query_row(&format!("{SELECT} WHERE id = ?1"), [id.0], row_to_supplier).optional().map_err(|e| self.err(e))?;
        match s {
            Some(mut s) => {
                s.weddings = weddings_of(&conn, id).map_err(|e| self.err(e))?;
                Ok(Some(s))
            }
            None => Ok(None),
        }
    }

    pub fn supplier(&self, id: SupplierId) -> StoreResult<Supplier> {
        self.find_supplier(id)?.ok_or_else(|| not_found(id))
    }

    /// Suppliers matching `filter`, ordered by name, each with its weddings.
    pub fn list_suppliers(&self, filter: &SupplierFilter) -> StoreResult<Vec<Supplier>> {
        if let Some(pg) = self.postgres() {
            let filter = filter.clone();
            return pg.block(move |pg| async move { pgc::list_suppliers(&pg, filter).await });
        }
        let conn = self.conn()?;
        let (clauses, args) = filter_clauses(filter, "LIKE", |n| format!("?{n}"));
        let mut sql = format!("{SELECT} WHERE 1=1{clauses}");
        sql.push_str(" ORDER BY name COLLATE NOCASE, id");
        let mut st = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut list: Vec<Supplier> = st
            .query_map(rusqlite::params_from_iter(args.iter()), row_to_supplier)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        // Weddings for all of them in one pass.
        let mut by_id: HashMap<i64, usize> = list.iter().enumerate().map(|(i, s)| (s.id.0, i)).collect();
        let mut st = conn.prepare("SELECT supplier_id, day FROM weddings ORDER BY supplier_id, day").map_err(|e| self.err(e))?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).map_err(|e| self.err(e))?;
        for row in rows {
            let (sid, day) = row.map_err(|e| self.err(e))?;
            if let (Some(i), Ok(d)) = (by_id.get_mut(&sid), day.parse::<NaiveDate>()) {
                list[*i].weddings.push(d);
            }
        }
        Ok(list)
    }

    pub fn update_supplier(&self, id: SupplierId, patch: &SupplierPatch, now: DateTime<Utc>) -> StoreResult<Supplier> {
        if let Some(pg) = self.postgres() {
            let patch = patch.clone();
            pg.block(move |pg| async move { pgc::update_supplier(&pg, id, patch, now).await })?;
            return self.supplier(id);
        }
        let name = patch.name.as_deref().map(validate_name).transpose().map_err(StoreError::Invalid)?;
        {
            let mut conn = self.conn()?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
            let exists: Option<i64> =
                tx.query_row("SELECT id FROM suppliers WHERE id = ?1", [id.0], |r| r.get(0)).optional().map_err(|e| self.err(e))?;
            if exists.is_none() {
                return Err(not_found(id));
            }
            let res = tx.execute(
                "UPDATE suppliers SET name = coalesce(?2, name), vendor_type = coalesce(?3, vendor_type), tier = coalesce(?4, tier),
                 ai_mode = coalesce(?5, ai_mode), allow_platform_failover = coalesce(?6, allow_platform_failover), updated_at = ?7,
                 time_zone = coalesce(?8, time_zone) WHERE id = ?1",
                params![
                    id.0,
                    name,
                    patch.vendor_type.map(|v| v.as_str()),
                    patch.tier.map(|v| v.as_str()),
                    patch.ai_mode.map(|v| v.as_str()),
                    patch.allow_platform_failover,
                    ts(now),
                    patch.time_zone.map(|tz| tz.name())
                ],
            );
            if let Err(e) = res {
                if duplicate_name(&e) {
                    return Err(StoreError::Invalid(format!(
                        "a supplier named '{}' already exists; choose another name",
                        name.unwrap_or_default()
                    )));
                }
                return Err(self.err(e));
            }
            if let Some(set) = &patch.set_weddings {
                let mut set = set.clone();
                normalize_weddings(&mut set);
                tx.execute("DELETE FROM weddings WHERE supplier_id = ?1", [id.0]).map_err(|e| self.err(e))?;
                for d in set {
                    tx.execute("INSERT INTO weddings (supplier_id, day) VALUES (?1, ?2)", params![id.0, d.to_string()])
                        .map_err(|e| self.err(e))?;
                }
            }
            for d in &patch.add_weddings {
                tx.execute("INSERT OR IGNORE INTO weddings (supplier_id, day) VALUES (?1, ?2)", params![id.0, d.to_string()])
                    .map_err(|e| self.err(e))?;
            }
            for d in &patch.remove_weddings {
                tx.execute("DELETE FROM weddings WHERE supplier_id = ?1 AND day = ?2", params![id.0, d.to_string()])
                    .map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))?;
        }
        self.supplier(id)
    }

    /// Deletes a supplier with its weddings, accounts and tokens. Its usage
    /// history stays in the ledger (money was spent; the record is kept).
    pub fn delete_supplier(&self, id: SupplierId) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgc::delete_supplier(&pg, id).await });
        }
        let n = self.with_conn(|c| c.execute("DELETE FROM suppliers WHERE id = ?1", [id.0]))?;
        if n == 0 { Err(not_found(id)) } else { Ok(()) }
    }

    pub fn count_suppliers(&self) -> StoreResult<i64> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { pgc::count_suppliers(&pg).await });
        }
        self.with_conn(|c| c.query_row("SELECT count(*) FROM suppliers", [], |r| r.get(0)))
    }
}
