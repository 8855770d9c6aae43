//! Scheduled migration starts (`migration_schedules`, schema v11), the
//! settings that belong to one database (`database_settings`), and whether a
//! request was ever recorded (for the first-run checklist).
//!
//! A schedule is written by whoever plans it (console or CLI) and started by
//! whichever runtime routes the database when it is due; `claim_schedule`
//! moves it out of `waiting` in one statement, so two processes never start
//! the same one.

use super::pg::migrations as pgm;
use super::{Store, StoreError, StoreResult, parse_ts, ts};
use crate::domain::SupplierId;
use crate::domain::migration::{PhasePlan, RouteTarget};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

/// Where a scheduled start stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleState {
    /// Not due yet, or due and not picked up by a runtime yet.
    Waiting,
    /// A runtime has claimed it and is starting it (a moment only).
    Starting,
    /// Started as migration `migration_id`.
    Started,
    /// Refused at its start time (a wedding came within 48 h, the account's key
    /// stopped validating, …); `reason` says why.
    Refused,
    /// Cancelled by the account manager.
    Cancelled,
}

impl ScheduleState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Waiting => "waiting",
            ScheduleState::Starting => "starting",
            ScheduleState::Started => "started",
            ScheduleState::Refused => "refused",
            ScheduleState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Waiting, Self::Starting, Self::Started, Self::Refused, Self::Cancelled].into_iter().find(|v| v.as_str() == s)
    }
}

/// One scheduled migration start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationSchedule {
    pub id: i64,
    pub supplier: SupplierId,
    pub to: RouteTarget,
    pub phases: Vec<PhasePlan>,
    pub start_at: DateTime<Utc>,
    pub state: ScheduleState,
    pub migration_id: Option<i64>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "id, supplier_id, to_route, plan, start_at, state, migration_id, reason, created_at, updated_at";

fn bad_json(col: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MigrationSchedule> {
    let state: String = r.get(5)?;
    Ok(MigrationSchedule {
        id: r.get(0)?,
        supplier: SupplierId(r.get(1)?),
        to: serde_json::from_str(&r.get::<_, String>(2)?).map_err(|e| bad_json(2, e))?,
        phases: serde_json::from_str(&r.get::<_, String>(3)?).map_err(|e| bad_json(3, e))?,
        start_at: parse_ts(&r.get::<_, String>(4)?),
        state: ScheduleState::parse(&state).unwrap_or(ScheduleState::Refused),
        migration_id: r.get(6)?,
        reason: r.get(7)?,
        created_at: parse_ts(&r.get::<_, String>(8)?),
        updated_at: parse_ts(&r.get::<_, String>(9)?),
    })
}

impl Store {
    /// Writes a waiting schedule; refused while the supplier has another one waiting.
    pub fn insert_schedule(
        &self,
        supplier: SupplierId,
        to: RouteTarget,
        phases: &[PhasePlan],
        start_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<MigrationSchedule> {
        if let Some(s) = self.schedules(Some(supplier))?.into_iter().find(|s| s.state == ScheduleState::Waiting) {
            return Err(StoreError::Invalid(format!(
                "supplier {supplier} already has a migration scheduled for {} (schedule {}); cancel it first",
                s.start_at.format("%Y-%m-%d %H:%M UTC"),
                s.id
            )));
        }
        let to_json = serde_json::to_string(&to).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let plan_json = serde_json::to_string(phases).map_err(|e| StoreError::Invalid(e.to_string()))?;
        if let Some(pg) = self.postgres() {
            let id = pg.block(move |pg| async move { pgm::insert_schedule(&pg, supplier, to_json, plan_json, start_at, now).await })?;
            return self.schedule(id);
        }
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO migration_schedules (supplier_id, to_route, plan, start_at, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'waiting', ?5, ?5)",
                params![supplier.0, to_json, plan_json, ts(start_at), ts(now)],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.schedule(id)
    }

    pub fn schedule(&self, id: i64) -> StoreResult<MigrationSchedule> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgm::schedules(&pg, Some(id), None, None).await })?.pop().ok_or(StoreError::NotFound {
                what: "scheduled migration",
                id: id.to_string(),
                hint: "; list them with `switchboard migrate status`",
            });
        }
        self.with_conn(|c| c.query_row(&format!("SELECT {COLS} FROM migration_schedules WHERE id = ?1"), [id], row).optional())?.ok_or(
            StoreError::NotFound { what: "scheduled migration", id: id.to_string(), hint: "; list them with `switchboard migrate status`" },
        )
    }

    /// Schedules, newest start first (of one supplier, or all).
    pub fn schedules(&self, supplier: Option<SupplierId>) -> StoreResult<Vec<MigrationSchedule>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgm::schedules(&pg, None, supplier, None).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM migration_schedules WHERE (?1 IS NULL OR supplier_id = ?1) ORDER BY start_at DESC, id DESC LIMIT 500"
            ))?;
            st.query_map([supplier.map(|s| s.0)], row)?.collect()
        })
    }

    /// Waiting schedules whose start time has come, oldest first.
    pub fn due_schedules(&self, now: DateTime<Utc>) -> StoreResult<Vec<MigrationSchedule>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgm::schedules(&pg, None, None, Some(now)).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLS} FROM migration_schedules WHERE state = 'waiting' AND start_at <= ?1 ORDER BY start_at, id"
            ))?;
            st.query_map([ts(now)], row)?.collect()
        })
    }

    /// Moves a waiting schedule to `starting`; false when another process
    /// took it first or it was cancelled meanwhile.
    pub fn claim_schedule(&self, id: i64, now: DateTime<Utc>) -> StoreResult<bool> {
        if let Some(pg) = self.postgres() {
            let sql = "UPDATE migration_schedules SET state = 'starting', updated_at = $2 WHERE id = $1 AND state = 'waiting'";
            return pg.block(move |pg| async move { pgm::update_schedule(&pg, sql, id, now, None).await }).map(|n| n == 1);
        }
        self.with_conn(|c| {
            c.execute(
                "UPDATE migration_schedules SET state = 'starting', updated_at = ?2 WHERE id = ?1 AND state = 'waiting'",
                params![id, ts(now)],
            )
        })
        .map(|n| n == 1)
    }

    /// Ends a schedule: started (with its migration), refused (with the reason) or cancelled.
    pub fn finish_schedule(
        &self,
        id: i64,
        state: ScheduleState,
        migration_id: Option<i64>,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let sql = "UPDATE migration_schedules SET state = $3, migration_id = $4, reason = $5, updated_at = $2 WHERE id = $1";
            let extra = (state.as_str().to_string(), migration_id, reason.map(str::to_string));
            return pg.block(move |pg| async move { pgm::update_schedule(&pg, sql, id, now, Some(extra)).await }).map(drop);
        }
        self.with_conn(|c| {
            c.execute(
                "UPDATE migration_schedules SET state = ?2, migration_id = ?3, reason = ?4, updated_at = ?5 WHERE id = ?1",
                params![id, state.as_str(), migration_id, reason, ts(now)],
            )
        })
        .map(drop)
    }

    /// Cancels a waiting schedule; false when it is no longer waiting.
    pub fn cancel_schedule(&self, id: i64, now: DateTime<Utc>) -> StoreResult<bool> {
        if let Some(pg) = self.postgres() {
            let sql = "UPDATE migration_schedules SET state = 'cancelled', reason = 'cancelled by the account manager', updated_at = $2
                       WHERE id = $1 AND state = 'waiting'";
            return pg.block(move |pg| async move { pgm::update_schedule(&pg, sql, id, now, None).await }).map(|n| n == 1);
        }
        self.with_conn(|c| {
            c.execute(
                "UPDATE migration_schedules SET state = 'cancelled', reason = 'cancelled by the account manager', updated_at = ?2
                 WHERE id = ?1 AND state = 'waiting'",
                params![id, ts(now)],
            )
        })
        .map(|n| n == 1)
    }

    /// Whether any request was ever recorded (one index probe, not a count).
    pub fn has_usage_events(&self) -> StoreResult<bool> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { pgm::has_usage_events(&pg).await });
        }
        self.with_conn(|c| c.query_row("SELECT EXISTS (SELECT 1 FROM usage_events)", [], |r| r.get(0)))
    }

    /// A setting of this database (`None` when never set).
    pub fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        if let Some(pg) = self.postgres() {
            let key = key.to_string();
            return pg.block(move |pg| async move { pgm::setting(&pg, key).await });
        }
        self.with_conn(|c| c.query_row("SELECT value FROM database_settings WHERE key = ?1", [key], |r| r.get(0)).optional())
    }

    pub fn set_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let (key, value) = (key.to_string(), value.to_string());
            return pg.block(move |pg| async move { pgm::set_setting(&pg, key, value).await });
        }
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO database_settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
        })
        .map(drop)
    }
}
