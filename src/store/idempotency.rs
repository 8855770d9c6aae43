//! Idempotency records in SQLite (`idempotency_keys`, in a file of its own
//! beside the database: [`sidecar_path`]): one row
//! per (supplier, key) with the request's fingerprint, the attempt's state,
//! and the answer (status, the headers to replay, the body bytes while kept).
//! [`IdempotencyDb`] owns its own connection (the engine's idempotency thread
//! holds it) and keeps the total of the kept bodies under a cap by dropping
//! the oldest bodies first, keeping their small records. The rules (what a
//! request with a known key gets) are `domain::idempotency`'s.
//!
//! [`IdempotencyBackend`] is what the engine's idempotency thread calls: this
//! SQLite file (one instance), or `store::pg::idempotency` (a fleet on
//! PostgreSQL, where the claim is atomic across instances).

use super::{LedgerSync, Store, StoreError, StoreResult, connect, map_err};
use crate::domain::SupplierId;
use crate::domain::idempotency::{BodyState, Decision, Endpoint, Fingerprint, IdempotencyKey, KeyRecord, KeyState, decide};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// An answer as it is replayed: status, the headers worth replaying, the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub request_id: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// When a new attempt's record is written: now, until when the attempt may
/// run, and when the record is forgotten.
#[derive(Debug, Clone, Copy)]
pub struct AttemptTimes {
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What [`IdempotencyDb::claim`] found and decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub decision: Decision,
    /// The record as it was before the claim (expired or not).
    pub record: Option<KeyRecord>,
    /// The answer to replay (with [`Decision::Replay`]).
    pub answer: Option<StoredAnswer>,
}

/// The records as the engine's idempotency thread uses them (synchronously,
/// from that one thread). Every change is its own transaction, or a part of
/// the batch opened by [`IdempotencyBackend::begin_batch`].
pub trait IdempotencyBackend: Send {
    /// Opens one transaction for the changes that follow, until
    /// [`IdempotencyBackend::commit_batch`] (a backend may make it a no-op:
    /// each change then commits on its own).
    fn begin_batch(&mut self) -> StoreResult<()>;
    /// Commits the batch; if that fails, every change of the batch is rolled back.
    fn commit_batch(&mut self) -> StoreResult<()>;
    /// Decides what a request with `key` gets (as [`decide`] for a key this
    /// process is not serving) and, for a new attempt, writes its in-flight
    /// record, atomically. A replay comes with its answer.
    fn claim(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        endpoint: Endpoint,
        fingerprint: &Fingerprint,
        times: AttemptTimes,
    ) -> StoreResult<Claim>;
    /// Completes an in-flight attempt with `fingerprint` (see [`IdempotencyDb::complete`]);
    /// returns the keys whose bodies were dropped to stay under `keep_under`.
    fn complete(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        answer: &StoredAnswer,
        keep_under: Option<u64>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(SupplierId, IdempotencyKey)>>;
    /// Marks an in-flight attempt with `fingerprint` failed (retryable).
    fn fail(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        status: Option<u16>,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Deletes the records expired at `now`; returns how many.
    fn purge(&mut self, now: DateTime<Utc>) -> StoreResult<usize>;
    /// Applies the changes of an open batch, each with its own result, in
    /// order for each key (a backend may run changes of different keys at
    /// once: PostgreSQL pipelines them on the batch's connection). By
    /// default one by one.
    fn apply_all(&mut self, changes: Vec<Change>) -> Vec<Changed> {
        changes.into_iter().map(|c| apply_one(self, c)).collect()
    }
    /// Whether a commit of the changes that follow waits for the disk
    /// (power mode: [`LedgerSync::Full`]), read from the database session
    /// the next change will use; otherwise a commit is safe against this
    /// process being killed, not against a power cut or a crash of the
    /// database's host.
    fn commits_synced(&mut self) -> StoreResult<bool>;
}

/// One change of a batch ([`IdempotencyBackend::apply_all`]).
#[derive(Debug, Clone)]
pub enum Change {
    Claim {
        supplier: SupplierId,
        key: IdempotencyKey,
        endpoint: Endpoint,
        fingerprint: Fingerprint,
        times: AttemptTimes,
    },
    Complete {
        supplier: SupplierId,
        key: IdempotencyKey,
        fingerprint: Fingerprint,
        answer: StoredAnswer,
        keep_under: Option<u64>,
        now: DateTime<Utc>,
    },
    Fail {
        supplier: SupplierId,
        key: IdempotencyKey,
        fingerprint: Fingerprint,
        status: Option<u16>,
        request_id: Option<String>,
        now: DateTime<Utc>,
    },
    Purge {
        now: DateTime<Utc>,
    },
}

impl Change {
    /// The record the change is about (`None`: a purge, which touches many).
    pub fn key(&self) -> Option<(SupplierId, &IdempotencyKey)> {
        match self {
            Change::Claim { supplier, key, .. } | Change::Complete { supplier, key, .. } | Change::Fail { supplier, key, .. } => {
                Some((*supplier, key))
            }
            Change::Purge { .. } => None,
        }
    }
}

/// What a [`Change`] did.
#[derive(Debug)]
pub enum Changed {
    Claim(StoreResult<Claim>),
    Complete(StoreResult<Vec<(SupplierId, IdempotencyKey)>>),
    Fail(StoreResult<()>),
    Purge(StoreResult<usize>),
}

impl Changed {
    pub fn is_err(&self) -> bool {
        match self {
            Changed::Claim(r) => r.is_err(),
            Changed::Complete(r) => r.is_err(),
            Changed::Fail(r) => r.is_err(),
            Changed::Purge(r) => r.is_err(),
        }
    }
}

/// A change through the backend's one-change methods.
pub fn apply_one<B: IdempotencyBackend + ?Sized>(db: &mut B, c: Change) -> Changed {
    match c {
        Change::Claim { supplier, key, endpoint, fingerprint, times } => {
            Changed::Claim(db.claim(supplier, &key, endpoint, &fingerprint, times))
        }
        Change::Complete { supplier, key, fingerprint, answer, keep_under, now } => {
            Changed::Complete(db.complete(supplier, &key, &fingerprint, &answer, keep_under, now))
        }
        Change::Fail { supplier, key, fingerprint, status, request_id, now } => {
            Changed::Fail(db.fail(supplier, &key, &fingerprint, status, request_id.as_deref(), now))
        }
        Change::Purge { now } => Changed::Purge(db.purge(now)),
    }
}

impl IdempotencyBackend for IdempotencyDb {
    /// `PRAGMA synchronous` is FULL (2) or more: each commit syncs the WAL.
    fn commits_synced(&mut self) -> StoreResult<bool> {
        let level: i64 = self.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).map_err(|e| map_err(&self.path, e))?;
        Ok(level >= 2)
    }
    fn begin_batch(&mut self) -> StoreResult<()> {
        IdempotencyDb::begin_batch(self)
    }
    fn commit_batch(&mut self) -> StoreResult<()> {
        IdempotencyDb::commit_batch(self)
    }
    fn claim(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        endpoint: Endpoint,
        fingerprint: &Fingerprint,
        times: AttemptTimes,
    ) -> StoreResult<Claim> {
        IdempotencyDb::claim(self, supplier, key, endpoint, fingerprint, times)
    }
    fn complete(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        answer: &StoredAnswer,
        keep_under: Option<u64>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(SupplierId, IdempotencyKey)>> {
        IdempotencyDb::complete(self, supplier, key, fingerprint, answer, keep_under, now)
    }
    fn fail(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        status: Option<u16>,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        IdempotencyDb::fail(self, supplier, key, fingerprint, status, request_id, now)
    }
    fn purge(&mut self, now: DateTime<Utc>) -> StoreResult<usize> {
        IdempotencyDb::purge(self, now)
    }
}

/// WAL pages after which a commit of the idempotency connection checkpoints
/// on its own (~256 MB): only should the checkpoint thread fall behind.
const BACKSTOP_CHECKPOINT_PAGES: i64 = 65_536;

/// How often the checkpoint thread moves the file's WAL into it.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Every column, for moving rows out of the main file.
const ALL_COLUMNS: &str = "supplier_id, key, endpoint, fingerprint, state, status, request_id, headers, body, body_state, \
                           body_len, created_ms, lease_until_ms, expires_ms, completed_ms";

/// The idempotency records' own SQLite file beside the database
/// (`<db>.idempotency`): a keyed request's claim and completion commit there,
/// so they never wait for the usage fold's write transaction on the main
/// file (a few ms each: the keyed p99 at one connection was 4–9 ms).
pub fn sidecar_path(db: &std::path::Path) -> PathBuf {
    let mut name = db.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".idempotency");
    db.with_file_name(name)
}

/// The idempotency table on its own connection, in its own file.
pub struct IdempotencyDb {
    path: PathBuf,
    conn: Connection,
    /// Bytes of the bodies kept now.
    kept_bytes: u64,
    /// While a batch is open: `kept_bytes` when it began (restored if it rolls back).
    batch_kept: Option<u64>,
    /// Stops the checkpoint thread (set when this is dropped).
    stop: Arc<AtomicBool>,
}

impl Drop for IdempotencyDb {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Creates the records' table in their own file (schema v10's text, the
/// table and its indexes in one transaction) unless it is there.
fn create_table(conn: &Connection) -> rusqlite::Result<()> {
    let exists: bool =
        conn.query_row("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'idempotency_keys')", [], |r| r.get(0))?;
    if exists {
        return Ok(());
    }
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {} COMMIT;", super::schema::IDEMPOTENCY_KEYS)).inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })
}

/// Moves the records an older database kept in its main file into the
/// records' own file (once: the main file's table is left empty).
fn move_from_main(conn: &Connection, main: &std::path::Path) -> rusqlite::Result<()> {
    conn.execute("ATTACH DATABASE ?1 AS main_db", [main.to_string_lossy()])?;
    let moved = (|| {
        let has_table: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM main_db.sqlite_master WHERE type = 'table' AND name = 'idempotency_keys')",
            [],
            |r| r.get(0),
        )?;
        if !has_table || !conn.query_row("SELECT EXISTS(SELECT 1 FROM main_db.idempotency_keys)", [], |r| r.get::<_, bool>(0))? {
            return Ok(());
        }
        // Copied and committed first, then deleted: a commit across two WAL
        // files is not atomic, and a crash between the two leaves the rows
        // in both (copied again, ignored, the next time), never in neither.
        conn.execute(
            &format!("INSERT OR IGNORE INTO main.idempotency_keys ({ALL_COLUMNS}) SELECT {ALL_COLUMNS} FROM main_db.idempotency_keys"),
            [],
        )?;
        conn.execute("DELETE FROM main_db.idempotency_keys", []).map(drop)
    })();
    let detached = conn.execute_batch("DETACH DATABASE main_db");
    moved.and(detached)
}

/// The thread that checkpoints the records' WAL every [`CHECKPOINT_EVERY`]
/// on a connection of its own (passive: it never waits for the writer).
fn start_checkpoints(path: &std::path::Path, level: &str, stop: Arc<AtomicBool>) -> StoreResult<()> {
    let conn = connect(path)?;
    conn.pragma_update(None, "synchronous", level).map_err(|e| map_err(path, e))?;
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(|e| map_err(path, e))?;
    let p = path.to_path_buf();
    std::thread::Builder::new()
        .name("idempotency-checkpoint".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, file = %p.display(), "idempotency records: checkpoint skipped");
                }
            }
        })
        .map(drop)
        .map_err(|e| StoreError::Invalid(format!("cannot start the idempotency checkpoint thread: {e}")))
}

/// One change's transaction: its own `BEGIN IMMEDIATE` … `COMMIT`, or, inside
/// a batch ([`IdempotencyDb::begin_batch`]), a savepoint of the batch's
/// transaction. Dropped without [`Unit::commit`], it rolls its change back.
struct Unit<'c> {
    conn: &'c Connection,
    nested: bool,
    done: bool,
}

impl<'c> Unit<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        let nested = !conn.is_autocommit();
        conn.execute_batch(if nested { "SAVEPOINT unit" } else { "BEGIN IMMEDIATE" })?;
        Ok(Unit { conn, nested, done: false })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.done = true;
        self.conn.execute_batch(if self.nested { "RELEASE unit" } else { "COMMIT" })
    }
}

impl std::ops::Deref for Unit<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Unit<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch(if self.nested { "ROLLBACK TO unit; RELEASE unit" } else { "ROLLBACK" });
        }
    }
}

const COLUMNS: &str = "endpoint, fingerprint, state, status, request_id, body_state, created_ms, lease_until_ms, expires_ms";

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn record_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<KeyRecord>> {
    let fp: Vec<u8> = r.get(1)?;
    let (Some(endpoint), Ok(fp), Some(state), Some(body)) = (
        Endpoint::from_code(r.get(0)?),
        <[u8; 32]>::try_from(fp.as_slice()),
        KeyState::from_code(r.get(2)?),
        BodyState::from_code(r.get(5)?),
    ) else {
        // A row a newer Switchboard wrote: treated as absent (a new attempt overwrites it).
        return Ok(None);
    };
    let status: Option<i64> = r.get(3)?;
    Ok(Some(KeyRecord {
        endpoint,
        fingerprint: Fingerprint(fp),
        state,
        status: status.and_then(|s| u16::try_from(s).ok()),
        request_id: r.get(4)?,
        body,
        created_at: at(r.get(6)?),
        lease_until: at(r.get(7)?),
        expires_at: at(r.get(8)?),
    }))
}

impl IdempotencyDb {
    /// Opens the records' own file beside `store`'s (see [`sidecar_path`]),
    /// creating it and moving any records the main file holds (databases
    /// from before the file existed) into it. WAL; in `process` durability
    /// `synchronous=OFF` (a commit reaches the OS, which is what surviving
    /// `kill -9` needs, and no checkpoint waits for a disk), in `power`
    /// durability `FULL`. A thread of its own checkpoints the WAL every
    /// 250 ms on a second connection, so that no claim or completion runs a
    /// checkpoint.
    pub fn open(store: &Store) -> StoreResult<Self> {
        Self::open_with(store, LedgerSync::Normal)
    }

    /// [`IdempotencyDb::open`] with the given durability: with
    /// [`LedgerSync::Full`] (power mode) every commit syncs the WAL.
    pub fn open_with(store: &Store, sync: LedgerSync) -> StoreResult<Self> {
        let main = store.sqlite_path().ok_or_else(|| store.not_on_postgres())?.to_path_buf();
        let path = sidecar_path(&main);
        let conn = connect(&path)?;
        let level = if sync == LedgerSync::Full { "FULL" } else { "OFF" };
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(())).map_err(|e| map_err(&path, e))?;
        conn.pragma_update(None, "synchronous", level).map_err(|e| map_err(&path, e))?;
        conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_CHECKPOINT_PAGES).map_err(|e| map_err(&path, e))?;
        create_table(&conn).map_err(|e| map_err(&path, e))?;
        move_from_main(&conn, &main).map_err(|e| map_err(&path, e))?;
        let kept: i64 = conn
            .query_row("SELECT coalesce(sum(body_len), 0) FROM idempotency_keys WHERE body IS NOT NULL", [], |r| r.get(0))
            .map_err(|e| map_err(&path, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        start_checkpoints(&path, level, stop.clone())?;
        Ok(Self { path, conn, kept_bytes: kept.max(0) as u64, batch_kept: None, stop })
    }

    /// The records' file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Opens one transaction for the changes that follow (each its own
    /// savepoint) until [`IdempotencyDb::commit_batch`]: concurrent requests'
    /// claims and completions share one commit. Nothing is durable, and no
    /// caller may be told a change is written, before that commit.
    pub fn begin_batch(&mut self) -> StoreResult<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| map_err(&self.path, e))?;
        self.batch_kept = Some(self.kept_bytes);
        Ok(())
    }

    /// Commits the batch; if the commit fails, every change of the batch is
    /// rolled back (and the kept bytes with them).
    pub fn commit_batch(&mut self) -> StoreResult<()> {
        let before = self.batch_kept.take();
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                if let Some(k) = before {
                    self.kept_bytes = k;
                }
                Err(map_err(&self.path, e))
            }
        }
    }

    /// Bytes of the answer bodies kept now.
    pub fn kept_bytes(&self) -> u64 {
        self.kept_bytes
    }

    /// The record of `key` (expired or not), and its answer while kept.
    pub fn get(&self, supplier: SupplierId, key: &IdempotencyKey) -> StoreResult<Option<(KeyRecord, Option<StoredAnswer>)>> {
        get_in(&self.conn, supplier, key).map_err(|e| map_err(&self.path, e))
    }

    /// Decides what a request with `key` gets (as [`decide`] for a key this
    /// process is not serving) and, for a new attempt, writes its in-flight
    /// record, in one transaction. A replay comes with its answer.
    pub fn claim(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        endpoint: Endpoint,
        fingerprint: &Fingerprint,
        times: AttemptTimes,
    ) -> StoreResult<Claim> {
        let conn = &self.conn;
        let run = || -> rusqlite::Result<(Claim, u64)> {
            let tx = Unit::begin(conn)?;
            let found = get_in(&tx, supplier, key)?;
            let decision = decide(found.as_ref().map(|f| &f.0), false, endpoint, fingerprint, times.now);
            match decision {
                Decision::Run => {
                    // An expired record's body goes with it.
                    let old_kept = found.as_ref().and_then(|(_, a)| a.as_ref()).map_or(0, |a| a.body.len() as u64);
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO idempotency_keys (supplier_id, key, endpoint, fingerprint, state, status, request_id,
                            headers, body, body_state, body_len, created_ms, lease_until_ms, expires_ms, completed_ms)
                         VALUES (?1, ?2, ?3, ?4, 0, NULL, NULL, '[]', NULL, 0, 0, ?5, ?6, ?7, NULL)",
                    )?
                    .execute(params![
                        supplier.0,
                        key.as_str(),
                        endpoint.code(),
                        &fingerprint.0[..],
                        ms(times.now),
                        ms(times.lease_until),
                        ms(times.expires_at)
                    ])?;
                    tx.commit()?;
                    Ok((Claim { decision, record: found.map(|f| f.0), answer: None }, old_kept))
                }
                Decision::Replay => {
                    let (record, answer) = found.map_or((None, None), |(r, a)| (Some(r), a));
                    Ok((Claim { decision, record, answer }, 0))
                }
                _ => Ok((Claim { decision, record: found.map(|f| f.0), answer: None }, 0)),
            }
        };
        let (claim, freed) = run().map_err(|e| map_err(&self.path, e))?;
        self.kept_bytes = self.kept_bytes.saturating_sub(freed);
        Ok(claim)
    }

    /// Completes `key`'s attempt with `answer`. With `keep_under` (the caller
    /// checked the cap per answer) the body is kept if it fits under that
    /// total, after dropping the oldest kept bodies as needed. Returns the keys whose
    /// bodies were dropped. Only an in-flight record with `fingerprint` is
    /// changed.
    pub fn complete(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        answer: &StoredAnswer,
        keep_under: Option<u64>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(SupplierId, IdempotencyKey)>> {
        let len = answer.body.len() as u64;
        let max_total = keep_under.unwrap_or(0);
        let keep = keep_under.is_some_and(|max| len <= max);
        let mut kept = self.kept_bytes;
        let conn = &self.conn;
        let mut run = || -> rusqlite::Result<Vec<(SupplierId, IdempotencyKey)>> {
            let tx = Unit::begin(conn)?;
            let mut evicted = Vec::new();
            while keep && kept.saturating_add(len) > max_total {
                let oldest: Vec<(i64, String, i64)> = {
                    let mut st = tx.prepare_cached(
                        "SELECT supplier_id, key, body_len FROM idempotency_keys WHERE body IS NOT NULL ORDER BY completed_ms, rowid LIMIT 64",
                    )?;
                    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?
                };
                if oldest.is_empty() {
                    kept = 0;
                    break;
                }
                let mut drop_body = tx.prepare_cached(
                    "UPDATE idempotency_keys SET body = NULL, body_state = 3, body_len = 0 WHERE supplier_id = ?1 AND key = ?2",
                )?;
                for (s, k, n) in oldest {
                    if kept.saturating_add(len) <= max_total {
                        break;
                    }
                    drop_body.execute(params![s, k])?;
                    kept = kept.saturating_sub(n.max(0) as u64);
                    if let Ok(k) = IdempotencyKey::parse(k.as_bytes()) {
                        evicted.push((SupplierId(s), k));
                    }
                }
            }
            let headers = serde_json::to_string(&answer.headers).unwrap_or_else(|_| "[]".into());
            let (body, body_state, body_len) =
                if keep { (Some(&answer.body[..]), BodyState::Kept, len as i64) } else { (None, BodyState::TooLarge, 0) };
            let n = tx
                .prepare_cached(
                    "UPDATE idempotency_keys SET state = 1, status = ?4, request_id = ?5, headers = ?6, body = ?7, body_state = ?8,
                        body_len = ?9, completed_ms = ?10
                     WHERE supplier_id = ?1 AND key = ?2 AND fingerprint = ?3 AND state = 0",
                )?
                .execute(params![
                    supplier.0,
                    key.as_str(),
                    &fingerprint.0[..],
                    answer.status,
                    answer.request_id,
                    headers,
                    body,
                    body_state.code(),
                    body_len,
                    ms(now)
                ])?;
            tx.commit()?;
            if n == 1 && keep {
                kept = kept.saturating_add(len);
            }
            Ok(evicted)
        };
        let out = run().map_err(|e| map_err(&self.path, e))?;
        self.kept_bytes = kept;
        Ok(out)
    }

    /// Marks `key`'s in-flight attempt failed (an error answer, a cut
    /// stream, a client gone): the key may be retried with the same body.
    pub fn fail(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        status: Option<u16>,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE idempotency_keys SET state = 2, status = ?4, request_id = ?5, completed_ms = ?6
                 WHERE supplier_id = ?1 AND key = ?2 AND fingerprint = ?3 AND state = 0",
            )
            .and_then(|mut st| st.execute(params![supplier.0, key.as_str(), &fingerprint.0[..], status, request_id, ms(now)]))
            .map(|_| ())
            .map_err(|e| map_err(&self.path, e))
    }

    /// Deletes the records expired at `now`; returns how many.
    pub fn purge(&mut self, now: DateTime<Utc>) -> StoreResult<usize> {
        let conn = &self.conn;
        let run = || -> rusqlite::Result<(usize, i64)> {
            let tx = Unit::begin(conn)?;
            let freed: i64 = tx.query_row(
                "SELECT coalesce(sum(body_len), 0) FROM idempotency_keys WHERE expires_ms <= ?1 AND body IS NOT NULL",
                [ms(now)],
                |r| r.get(0),
            )?;
            let n = tx.execute("DELETE FROM idempotency_keys WHERE expires_ms <= ?1", [ms(now)])?;
            tx.commit()?;
            Ok((n, freed))
        };
        let (n, freed) = run().map_err(|e| map_err(&self.path, e))?;
        self.kept_bytes = self.kept_bytes.saturating_sub(freed.max(0) as u64);
        Ok(n)
    }
}

fn get_in(c: &Connection, supplier: SupplierId, key: &IdempotencyKey) -> rusqlite::Result<Option<(KeyRecord, Option<StoredAnswer>)>> {
    let sql = format!("SELECT {COLUMNS}, headers, body FROM idempotency_keys WHERE supplier_id = ?1 AND key = ?2");
    let mut st = c.prepare_cached(&sql)?;
    let row = st
        .query_row(params![supplier.0, key.as_str()], |r| {
            let Some(rec) = record_of(r)? else { return Ok(None) };
            let headers: String = r.get(9)?;
            let body: Option<Vec<u8>> = r.get(10)?;
            let answer = match (rec.state, rec.body, body) {
                (KeyState::Completed, BodyState::Kept, Some(body)) => Some(StoredAnswer {
                    status: rec.status.unwrap_or(200),
                    request_id: rec.request_id.clone(),
                    headers: serde_json::from_str(&headers).unwrap_or_default(),
                    body: Bytes::from(body),
                }),
                _ => None,
            };
            Ok(Some((rec, answer)))
        })
        .optional()?;
    Ok(row.flatten())
}
