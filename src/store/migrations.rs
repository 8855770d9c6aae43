//! Migrations and their phases, parallel test reports and recommendations.

use super::pg::migrations as pgm;
use super::{Store, StoreError, StoreResult, parse_ts, ts};
use crate::domain::migration::{Criteria, Migration, MigrationState, PhaseRecord, PhaseStats, RouteTarget};
use crate::domain::{AccountId, SupplierId};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, col: usize) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e)))
}

/// A stored recommendation (e.g. "move to client AI").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recommendation {
    pub id: i64,
    pub supplier_id: SupplierId,
    pub kind: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// A parallel test on mirrored live traffic (see schema v7).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MirrorRecord {
    pub id: i64,
    pub supplier_id: SupplierId,
    pub account_id: AccountId,
    pub sample_percent: u32,
    pub target_requests: u32,
    pub created_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// running, finishing, done, expired or stopped.
    pub state: String,
    pub report_id: Option<i64>,
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl MirrorRecord {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
    /// The request-id prefix of this mirror's shadow copies.
    pub fn prefix(&self) -> String {
        mirror_prefix(self.id)
    }
}

/// The event-id prefix of mirror `id`'s shadow copies: `m<id>~` (followed by the original's event id).
pub fn mirror_prefix(id: i64) -> String {
    format!("m{id}~")
}

/// One side of a mirrored request, as the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSide {
    pub account_id: Option<AccountId>,
    pub provider: String,
    pub model: String,
    pub usage: crate::domain::TokenUsage,
    pub cost_micros: i64,
    pub latency_ms: u32,
    pub ok: bool,
    pub error_class: Option<String>,
}

const MIRROR_COLS: &str =
    "id, supplier_id, account_id, sample_percent, target_requests, created_at, ends_at, state, report_id, reason, updated_at";

/// A `recommendations` row read as `id, supplier_id, kind, message, created_at`.
fn recommendation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Recommendation> {
    Ok(Recommendation {
        id: r.get(0)?,
        supplier_id: SupplierId(r.get(1)?),
        kind: r.get(2)?,
        message: r.get(3)?,
        created_at: parse_ts(&r.get::<_, String>(4)?),
    })
}

fn mirror_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MirrorRecord> {
    Ok(MirrorRecord {
        id: r.get(0)?,
        supplier_id: SupplierId(r.get(1)?),
        account_id: AccountId(r.get(2)?),
        sample_percent: r.get(3)?,
        target_requests: r.get(4)?,
        created_at: parse_ts(&r.get::<_, String>(5)?),
        ends_at: parse_ts(&r.get::<_, String>(6)?),
        state: r.get(7)?,
        report_id: r.get(8)?,
        reason: r.get(9)?,
        updated_at: parse_ts(&r.get::<_, String>(10)?),
    })
}

impl Store {
    /// Starts a mirror; refused while the supplier has another one running.
    pub fn insert_mirror(
        &self,
        supplier: SupplierId,
        account: AccountId,
        sample_percent: u32,
        target_requests: u32,
        now: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    ) -> StoreResult<MirrorRecord> {
        if let Some(m) = self.mirrors(Some(supplier), 1)?.into_iter().find(|m| m.state == "finishing") {
            // A process that claimed it stopped before writing its report (a crash): give up on it.
            if now - m.updated_at > chrono::Duration::minutes(5) {
                self.end_mirror(m.id, "expired", None, "interrupted while its report was written; start a new one", now)?;
            }
        }
        if let Some(m) = self.mirrors(Some(supplier), 1)?.into_iter().find(|m| m.state == "running" || m.state == "finishing") {
            return Err(StoreError::Invalid(format!(
                "supplier {supplier} already has live traffic mirrored (mirror {}); stop it first",
                m.id
            )));
        }
        if let Some(pg) = self.postgres() {
            let id = pg.block(move |pg| async move {
                pgm::insert_mirror(&pg, supplier, account, sample_percent, target_requests, now, ends_at).await
            })?;
            return self.mirror(id)?.ok_or(StoreError::NotFound { what: "mirror", id: id.to_string(), hint: "" });
        }
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO parallel_mirrors (supplier_id, account_id, sample_percent, target_requests, created_at, ends_at, state, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?5)",
                params![supplier.0, account.0, sample_percent, target_requests, ts(now), ts(ends_at)],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.mirror(id)?.ok_or(StoreError::NotFound { what: "mirror", id: id.to_string(), hint: "" })
    }

    pub fn mirror(&self, id: i64) -> StoreResult<Option<MirrorRecord>> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(move |pg| async move { pgm::mirrors(&pg, Some(id), None, false, 1).await })?.pop());
        }
        self.with_conn(|c| c.query_row(&format!("SELECT {MIRROR_COLS} FROM parallel_mirrors WHERE id = ?1"), [id], mirror_row).optional())
    }

    /// Mirrors, newest first.
    pub fn mirrors(&self, supplier: Option<SupplierId>, limit: usize) -> StoreResult<Vec<MirrorRecord>> {
        if let Some(pg) = self.postgres() {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            return pg.block(move |pg| async move { pgm::mirrors(&pg, None, supplier, false, limit).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {MIRROR_COLS} FROM parallel_mirrors WHERE (?1 IS NULL OR supplier_id = ?1) ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = st.query_map(params![supplier.map(|s| s.0), limit as i64], mirror_row)?;
            rows.collect()
        })
    }

    pub fn running_mirrors(&self) -> StoreResult<Vec<MirrorRecord>> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { pgm::mirrors(&pg, None, None, true, i64::MAX).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!("SELECT {MIRROR_COLS} FROM parallel_mirrors WHERE state = 'running' ORDER BY id"))?;
            let rows = st.query_map([], mirror_row)?;
            rows.collect()
        })
    }

    /// Takes a running mirror for its report; false when another process
    /// (or an earlier call) already did, or it is not running.
    pub fn claim_mirror(&self, id: i64, now: DateTime<Utc>) -> StoreResult<bool> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgm::claim_mirror(&pg, id, now).await });
        }
        self.with_conn(|c| {
            let n = c.execute(
                "UPDATE parallel_mirrors SET state = 'finishing', updated_at = ?2 WHERE id = ?1 AND state = 'running'",
                params![id, ts(now)],
            )?;
            Ok(n == 1)
        })
    }

    /// Ends a claimed mirror: `done` (with its report), `expired` or `stopped`.
    pub fn end_mirror(&self, id: i64, state: &str, report_id: Option<i64>, reason: &str, now: DateTime<Utc>) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let (state, reason) = (state.to_string(), reason.to_string());
            return pg.block(move |pg| async move { pgm::end_mirror(&pg, id, state, report_id, reason, now).await });
        }
        self.with_conn(|c| {
            c.execute(
                "UPDATE parallel_mirrors SET state = ?2, report_id = ?3, reason = ?4, updated_at = ?5 WHERE id = ?1",
                params![id, state, report_id, reason, ts(now)],
            )
            .map(|_| ())
        })
    }

    /// How many shadow copies mirror `id` has in the ledger.
    pub fn mirror_copies(&self, id: i64) -> StoreResult<u32> {
        if let Some(pg) = self.postgres() {
            let prefix = mirror_prefix(id);
            return Ok(pg.block(move |pg| async move { super::pg::usage_reads::mirror_copies(&pg, prefix).await })?);
        }
        let (lo, hi) = prefix_range(&mirror_prefix(id));
        self.with_conn(|c| {
            c.query_row("SELECT count(*) FROM usage_events WHERE event_id >= ?1 AND event_id < ?2", params![lo, hi], |r| r.get(0))
        })
    }

    /// Every (original, shadow copy) pair of mirror `id`, in request order.
    pub fn mirror_pairs(&self, id: i64) -> StoreResult<Vec<(LedgerSide, LedgerSide)>> {
        if let Some(pg) = self.postgres() {
            let prefix = mirror_prefix(id);
            return Ok(pg.block(move |pg| async move { super::pg::usage_reads::mirror_pairs(&pg, prefix).await })?);
        }
        let prefix = mirror_prefix(id);
        let (lo, hi) = prefix_range(&prefix);
        self.with_conn(|c| {
            let cols = "account_id, provider, model, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms, status, error_class";
            let side = |r: &rusqlite::Row<'_>, at: usize| -> rusqlite::Result<LedgerSide> {
                Ok(LedgerSide {
                    account_id: r.get::<_, Option<i64>>(at)?.map(AccountId),
                    provider: r.get(at + 1)?,
                    model: r.get(at + 2)?,
                    usage: crate::domain::TokenUsage {
                        input: r.get::<_, i64>(at + 3)?.max(0) as u64,
                        output: r.get::<_, i64>(at + 4)?.max(0) as u64,
                        cached_read: r.get::<_, i64>(at + 5)?.max(0) as u64,
                        cache_write: r.get::<_, i64>(at + 6)?.max(0) as u64,
                        reasoning: r.get::<_, i64>(at + 7)?.max(0) as u64,
                        estimated: false,
                    },
                    cost_micros: r.get(at + 8)?,
                    latency_ms: r.get::<_, i64>(at + 9)?.clamp(0, u32::MAX as i64) as u32,
                    ok: crate::domain::UsageStatus::from_code(r.get(at + 10)?).is_some_and(|s| s.answered()),
                    error_class: r.get(at + 11)?,
                })
            };
            let orig_cols: String = cols.split(", ").map(|c| format!("o.{c}")).collect::<Vec<_>>().join(", ");
            let copy_cols: String = cols.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ");
            let mut st = c.prepare(&format!(
                "SELECT {orig_cols}, {copy_cols} FROM usage_events s JOIN usage_events o ON o.event_id = substr(s.event_id, ?3)
                 WHERE s.event_id >= ?1 AND s.event_id < ?2 ORDER BY s.id"
            ))?;
            let rows = st.query_map(params![lo, hi, prefix.len() as i64 + 1], |r| Ok((side(r, 0)?, side(r, 12)?)))?;
            rows.collect()
        })
    }

    pub fn insert_migration(&self, m: &Migration) -> StoreResult<i64> {
        if let Some(pg) = self.postgres() {
            let m = m.clone();
            return pg.block(move |pg| async move { pgm::insert_migration(&pg, m).await });
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        let active: Option<i64> = tx
            .query_row("SELECT id FROM migrations WHERE supplier_id = ?1 AND state IN ('running', 'paused')", [m.supplier.0], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        if let Some(id) = active {
            return Err(StoreError::Invalid(format!(
                "supplier {} already has migration {id} in progress; finish, roll back or abort it first",
                m.supplier
            )));
        }
        tx.execute(
            "INSERT INTO migrations (supplier_id, from_route, to_route, state, plan, criteria, current_phase, phase_started_at, phase_elapsed_ms, reason, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                m.supplier.0,
                json(&m.from),
                json(&m.to),
                m.state.as_str(),
                json(&m.plan()),
                json(&m.criteria),
                m.phase as i64,
                m.phase_started_at.map(ts),
                m.phase_elapsed_ms,
                m.reason,
                ts(m.created_at),
                ts(m.updated_at)
            ],
        )
        .map_err(|e| self.err(e))?;
        let id = tx.last_insert_rowid();
        for (i, p) in m.phases.iter().enumerate() {
            tx.execute(
                "INSERT INTO migration_phases (migration_id, idx, traffic_percent, min_duration_secs) VALUES (?1, ?2, ?3, ?4)",
                params![id, i as i64, p.percent, p.min_secs],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        drop(conn);
        let mut m = m.clone();
        m.id = id;
        self.save_migration(&m)?;
        Ok(id)
    }

    /// Writes a migration's state and every phase's figures.
    pub fn save_migration(&self, m: &Migration) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let m = m.clone();
            return pg.block(move |pg| async move { pgm::save_migration(&pg, m).await });
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE migrations SET state = ?2, current_phase = ?3, phase_started_at = ?4, phase_elapsed_ms = ?5, reason = ?6, updated_at = ?7 WHERE id = ?1",
            params![m.id, m.state.as_str(), m.phase as i64, m.phase_started_at.map(ts), m.phase_elapsed_ms, m.reason, ts(m.updated_at)],
        )
        .map_err(|e| self.err(e))?;
        for (i, p) in m.phases.iter().enumerate() {
            tx.execute(
                "UPDATE migration_phases SET started_at = ?3, ended_at = ?4, outcome = ?5, requests = ?6, errors = ?7, p95_ms = ?8, latency_hist = ?9
                 WHERE migration_id = ?1 AND idx = ?2",
                params![
                    m.id,
                    i as i64,
                    p.started_at.map(ts),
                    p.ended_at.map(ts),
                    p.outcome,
                    p.stats.requests,
                    p.stats.errors,
                    p.stats.p95_ms(),
                    json(&p.stats.latency_hist)
                ],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn load_where(&self, clause: &'static str, arg: Option<i64>) -> StoreResult<Vec<Migration>> {
        if let Some(pg) = self.postgres() {
            // The clauses below are written once for both: `?1` is `$1` there.
            let clause: &'static str = match clause {
                "WHERE id = ?1" => "WHERE id = $1",
                "WHERE supplier_id = ?1" => "WHERE supplier_id = $1",
                other => other,
            };
            return pg.block(move |pg| async move { pgm::load_where(&pg, clause, arg).await });
        }
        self.with_conn(|c| {
            let sql = format!(
                "SELECT id, supplier_id, from_route, to_route, state, criteria, current_phase, phase_started_at, phase_elapsed_ms, reason, created_at, updated_at
                 FROM migrations {clause} ORDER BY id DESC"
            );
            let mut st = c.prepare(&sql)?;
            let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Migration> {
                let state: String = r.get(4)?;
                Ok(Migration {
                    id: r.get(0)?,
                    supplier: SupplierId(r.get(1)?),
                    from: from_json::<RouteTarget>(&r.get::<_, String>(2)?, 2)?,
                    to: from_json::<RouteTarget>(&r.get::<_, String>(3)?, 3)?,
                    state: MigrationState::parse(&state).unwrap_or(MigrationState::Aborted),
                    criteria: from_json::<Criteria>(&r.get::<_, String>(5)?, 5).unwrap_or_default(),
                    phase: r.get::<_, i64>(6)?.max(0) as usize,
                    phase_started_at: r.get::<_, Option<String>>(7)?.map(|s| parse_ts(&s)),
                    phase_elapsed_ms: r.get(8)?,
                    reason: r.get(9)?,
                    created_at: parse_ts(&r.get::<_, String>(10)?),
                    updated_at: parse_ts(&r.get::<_, String>(11)?),
                    phases: Vec::new(),
                })
            };
            let mut list: Vec<Migration> = match arg {
                Some(a) => st.query_map([a], map)?.collect::<Result<_, _>>()?,
                None => st.query_map([], map)?.collect::<Result<_, _>>()?,
            };
            let mut ph = c.prepare(
                "SELECT traffic_percent, min_duration_secs, started_at, ended_at, outcome, requests, errors, latency_hist
                 FROM migration_phases WHERE migration_id = ?1 ORDER BY idx",
            )?;
            for m in &mut list {
                m.phases = ph
                    .query_map([m.id], |r| {
                        Ok(PhaseRecord {
                            percent: r.get::<_, i64>(0)?.clamp(0, 100) as u8,
                            min_secs: r.get(1)?,
                            started_at: r.get::<_, Option<String>>(2)?.map(|s| parse_ts(&s)),
                            ended_at: r.get::<_, Option<String>>(3)?.map(|s| parse_ts(&s)),
                            outcome: r.get(4)?,
                            stats: PhaseStats {
                                requests: r.get(5)?,
                                errors: r.get(6)?,
                                latency_hist: from_json(&r.get::<_, String>(7)?, 7).unwrap_or_default(),
                            },
                        })
                    })?
                    .collect::<Result<_, _>>()?;
            }
            Ok(list)
        })
    }

    pub fn migration(&self, id: i64) -> StoreResult<Migration> {
        self.load_where("WHERE id = ?1", Some(id))?.into_iter().next().ok_or(StoreError::NotFound {
            what: "migration",
            id: id.to_string(),
            hint: " (see `switchboard migrate status`)",
        })
    }

    /// Running and paused migrations.
    pub fn active_migrations(&self) -> StoreResult<Vec<Migration>> {
        self.load_where("WHERE state IN ('running', 'paused')", None)
    }

    /// Every migration, newest first (optionally one supplier's).
    pub fn list_migrations(&self, supplier: Option<SupplierId>) -> StoreResult<Vec<Migration>> {
        match supplier {
            Some(s) => self.load_where("WHERE supplier_id = ?1", Some(s.0)),
            None => self.load_where("", None),
        }
    }

    /// Stores a parallel test's report (JSON with an `id` field) and returns
    /// its row id, which is also written into the stored JSON's `id`.
    pub fn insert_parallel_test(&self, supplier: SupplierId, account: i64, now: DateTime<Utc>, report_json: &str) -> StoreResult<i64> {
        if let Some(pg) = self.postgres() {
            let report = report_json.to_string();
            return pg.block(move |pg| async move { pgm::insert_parallel_test(&pg, supplier, account, now, report).await });
        }
        self.with_conn(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO parallel_tests (supplier_id, account_id, created_at, report) VALUES (?1, ?2, ?3, ?4)",
                params![supplier.0, account, ts(now), report_json],
            )?;
            let id = tx.last_insert_rowid();
            // The report is serialised before its row exists; its id is the row's.
            tx.execute("UPDATE parallel_tests SET report = json_set(report, '$.id', ?1) WHERE id = ?1 AND json_valid(report)", [id])?;
            tx.commit()?;
            Ok(id)
        })
    }

    /// Parallel test reports as stored JSON, newest first.
    pub fn parallel_tests(&self, supplier: Option<SupplierId>) -> StoreResult<Vec<(i64, String)>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgm::parallel_tests(&pg, supplier).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare("SELECT id, report FROM parallel_tests WHERE (?1 IS NULL OR supplier_id = ?1) ORDER BY id DESC")?;
            let rows = st.query_map([supplier.map(|s| s.0)], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Raises a recommendation unless the same kind is already open for the supplier.
    /// Returns true when a new one was written.
    pub fn recommend(&self, supplier: SupplierId, kind: &str, message: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        if let Some(pg) = self.postgres() {
            let (kind, message) = (kind.to_string(), message.to_string());
            return pg.block(move |pg| async move { pgm::recommend(&pg, supplier, kind, message, now).await });
        }
        self.with_conn(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO recommendations (supplier_id, kind, message, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![supplier.0, kind, message, ts(now)],
            )?;
            Ok(n > 0)
        })
    }

    pub fn open_recommendations(&self) -> StoreResult<Vec<Recommendation>> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { pgm::open_recommendations(&pg).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT id, supplier_id, kind, message, created_at FROM recommendations WHERE dismissed_at IS NULL ORDER BY id DESC",
            )?;
            let rows = st.query_map([], recommendation_row)?;
            rows.collect()
        })
    }

    /// Dismisses one open recommendation; `None` when no open one has that id.
    pub fn dismiss_recommendation(&self, id: i64, now: DateTime<Utc>) -> StoreResult<Option<Recommendation>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgm::dismiss_recommendation(&pg, id, now).await });
        }
        self.with_conn(|c| {
            let rec = c
                .query_row(
                    "UPDATE recommendations SET dismissed_at = ?2 WHERE id = ?1 AND dismissed_at IS NULL
                     RETURNING id, supplier_id, kind, message, created_at",
                    params![id, ts(now)],
                    recommendation_row,
                )
                .optional()?;
            Ok(rec)
        })
    }

    pub fn dismiss_recommendations(&self, supplier: SupplierId, kind: &str, now: DateTime<Utc>) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let kind = kind.to_string();
            return pg.block(move |pg| async move { pgm::dismiss_recommendations(&pg, supplier, kind, now).await });
        }
        self.with_conn(|c| {
            c.execute(
                "UPDATE recommendations SET dismissed_at = ?3 WHERE supplier_id = ?1 AND kind = ?2 AND dismissed_at IS NULL",
                params![supplier.0, kind, ts(now)],
            )
            .map(|_| ())
        })
    }
}

/// The range of strings that start with `prefix` (ASCII prefixes ending in `~`).
fn prefix_range(prefix: &str) -> (String, String) {
    let mut hi = prefix.to_string();
    hi.pop();
    hi.push('\u{7f}');
    (prefix.to_string(), hi)
}
