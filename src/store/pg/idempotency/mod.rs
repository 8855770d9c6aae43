//! Idempotency records on PostgreSQL (issue 25): the fleet's one table of
//! `Idempotency-Key`s, so a retry that lands on another instance replays the
//! first answer instead of paying for a second call. Same rows as the SQLite
//! table (`store::idempotency`; times as epoch milliseconds, the body as
//! BYTEA), same rules (`domain::idempotency::decide`).
//!
//! The claim is atomic across instances: `INSERT … ON CONFLICT DO NOTHING`,
//! and when the key exists, `SELECT … FOR UPDATE` then the decision, in one
//! transaction. Two instances claiming one key at once: the second's insert
//! waits for the first's commit, then finds its in-flight record (one new
//! attempt, one 409).
//!
//! The kept bodies' total is one counter row (`idempotency_kept`), so the
//! cap holds for the fleet. Lock order, everywhere: the key's own row, then
//! the counter row; rows whose bodies are dropped to make room (or purged)
//! are taken with `SKIP LOCKED`, never waited for.
//!
//! The engine writes through a few lanes (`lane`: `engine::idempotency`
//! hashes each key to one, so one key's changes stay in order). In
//! `process` mode a lane has a connection of its own and no transaction:
//! the first change of each key waiting in the lane goes in one flight,
//! the new keys' claims as one `INSERT … SELECT FROM unnest(…)`, the
//! completions whose bodies fit as one statement that locks their rows, then
//! the counter once for the lot; whatever needs a transaction (a key that
//! exists, bodies that need room, a purge) or whose statement failed runs in
//! a transaction of its own (`statements`' full forms). In `power` mode a
//! lane's changes share one transaction, so one WAL flush
//! (`PgIdempotency::apply_batch`, as [`IdempotencyBackend::begin_batch`] and
//! `apply_all` do for a caller of the trait): when any statement fails, the
//! transaction is rolled back and the changes applied again one by one.
//! Callers are answered only after their change is committed.
//!
//! Durability follows the instance's `--ledger-durability`: in `process` mode
//! (the default) the engine's statements commit with `synchronous_commit =
//! off` (a lane's session, or `SET LOCAL` in a transaction): visible to every instance at once and safe
//! against any instance being killed, but not waiting for PostgreSQL's WAL
//! flush, so a crash of the database's host can lose the last few hundred
//! milliseconds of claims and completions (a retry then runs again), as a
//! power cut can on SQLite with `synchronous=NORMAL`. In `power` mode each
//! commit waits for the flush. Only these: a lane's connection is out of the
//! pool and `SET LOCAL` ends with its transaction, so the ledger's folds, on
//! the same pool, always wait.

mod lane;
mod statements;

use super::catalog::PgQ;
use super::{PgStore, block_on_pg};
use crate::domain::SupplierId;
use crate::domain::idempotency::{BodyState, Endpoint, Fingerprint, IdempotencyKey, KeyRecord, KeyState};
use crate::store::{AttemptTimes, Change, Changed, Claim, IdempotencyBackend, LedgerSync, StoreResult, StoredAnswer};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
pub use lane::LaneConn;
use statements::{claim_on, complete_on, fail_on, pipelined, purge_on};
use tokio_postgres::Row;

/// PostgreSQL schema entry: the keys, and the kept bodies' total.
pub const IDEMPOTENCY_MIGRATION: &str = r#"
CREATE TABLE idempotency_keys (
    supplier_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    endpoint SMALLINT NOT NULL,            -- 0 chat completions, 1 embeddings, 2 messages
    fingerprint BYTEA NOT NULL,            -- SHA-256 of the request body
    state SMALLINT NOT NULL,               -- 0 in flight, 1 completed, 2 failed
    status INTEGER,                        -- the answer's HTTP status
    request_id TEXT,
    headers TEXT NOT NULL DEFAULT '[]',    -- JSON [[name, value], ...] replayed with the body
    body BYTEA,                            -- the answer's bytes while kept
    body_state SMALLINT NOT NULL DEFAULT 0, -- 0 none, 1 kept, 2 too large, 3 evicted
    body_len BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    lease_until_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    completed_ms BIGINT,
    PRIMARY KEY (supplier_id, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_ms);
CREATE INDEX idempotency_keys_bodies ON idempotency_keys (completed_ms) WHERE body IS NOT NULL;
CREATE TABLE idempotency_kept (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    bytes BIGINT NOT NULL
);
INSERT INTO idempotency_kept (id, bytes) VALUES (1, 0);
"#;

/// Schema v11: the instance that holds a key in flight (NULL: a process
/// before v11, or one outside the fleet's instances).
pub const HOLDER_MIGRATION: &str = "ALTER TABLE idempotency_keys ADD COLUMN instance_id BIGINT;";

const COLUMNS: &str = "endpoint, fingerprint, state, status, request_id, body_state, created_ms, lease_until_ms, expires_ms, headers, body";

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A row as a record and its answer; `None` for a row a newer Switchboard
/// wrote (treated as absent: a new attempt overwrites it).
fn read(r: &Row) -> Option<(KeyRecord, Option<StoredAnswer>)> {
    let fp: Vec<u8> = r.get(1);
    let rec = KeyRecord {
        endpoint: Endpoint::from_code(i64::from(r.get::<_, i16>(0)))?,
        fingerprint: Fingerprint(<[u8; 32]>::try_from(fp.as_slice()).ok()?),
        state: KeyState::from_code(i64::from(r.get::<_, i16>(2)))?,
        status: r.get::<_, Option<i32>>(3).and_then(|s| u16::try_from(s).ok()),
        request_id: r.get(4),
        body: BodyState::from_code(i64::from(r.get::<_, i16>(5)))?,
        created_at: at(r.get(6)),
        lease_until: at(r.get(7)),
        expires_at: at(r.get(8)),
    };
    let headers: String = r.get(9);
    let body: Option<Vec<u8>> = r.get(10);
    let answer = match (rec.state, rec.body, body) {
        (KeyState::Completed, BodyState::Kept, Some(body)) => Some(StoredAnswer {
            status: rec.status.unwrap_or(200),
            request_id: rec.request_id.clone(),
            headers: serde_json::from_str(&headers).unwrap_or_default(),
            body: Bytes::from(body),
        }),
        _ => None,
    };
    Some((rec, answer))
}

fn code(c: i64) -> i16 {
    i16::try_from(c).unwrap_or(i16::MAX)
}

/// The records in the fleet's PostgreSQL database.
#[derive(Debug)]
pub struct PgIdempotency {
    pg: PgStore,
    /// The open batch, between `begin_batch` and `commit_batch`.
    batch: Option<Batch>,
    /// This instance, and after how long without a heartbeat another is gone.
    holder: Holder,
    /// Whether the engine's commits wait for the WAL flush (see the module's doc).
    sync: LedgerSync,
}

/// Who claims keys: an instance of the fleet (its id and the heartbeat
/// timeout that makes another instance gone), or an anonymous process.
#[derive(Debug, Clone, Copy, Default)]
struct Holder {
    instance: Option<i64>,
    gone_after_ms: i64,
}

/// Another handle on the same records (without the open batch, if any).
impl Clone for PgIdempotency {
    fn clone(&self) -> Self {
        Self { pg: self.pg.clone(), batch: None, holder: self.holder, sync: self.sync }
    }
}

type Conn = deadpool_postgres::Object;
/// A connection, pooled or a lane's own ([`LaneConn`]).
type Client = deadpool_postgres::ClientWrapper;

/// A batch's connection, inside its transaction.
struct Batch {
    conn: Option<Conn>,
    /// A statement failed: the transaction is aborted and is rolled back at the end.
    failed: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("failed", &self.failed).finish()
    }
}

impl Drop for Batch {
    /// A batch dropped while open (the engine stopping) takes its connection
    /// out of the pool, so that no one reuses it inside the open transaction;
    /// the server rolls the transaction back when the connection closes.
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            drop(deadpool_postgres::Object::take(c));
        }
    }
}

/// Ends a change's own transaction: committed when it succeeded, rolled back otherwise.
async fn finish<T>(pg: &PgStore, c: &Client, r: StoreResult<T>) -> StoreResult<T> {
    match r {
        Ok(v) => {
            c.batch_execute("COMMIT").await.db(pg)?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// A pooled connection inside a new transaction (whose commit waits for the WAL flush).
async fn begin(pg: &PgStore) -> StoreResult<Conn> {
    begin_synced(pg, LedgerSync::Full).await
}

/// A pooled connection inside a new transaction committing as `sync` says
/// (one round trip either way).
async fn begin_synced(pg: &PgStore, sync: LedgerSync) -> StoreResult<Conn> {
    let c = pg.client().await?;
    let sql = match sync {
        LedgerSync::Full => "BEGIN",
        LedgerSync::Normal => "BEGIN; SET LOCAL synchronous_commit = off",
    };
    c.batch_execute(sql).await.db(pg)?;
    Ok(c)
}

impl PgIdempotency {
    pub fn new(pg: PgStore) -> Self {
        Self { pg, batch: None, holder: Holder::default(), sync: LedgerSync::Full }
    }

    /// How the engine's transactions commit: [`LedgerSync::Normal`] without
    /// waiting for the WAL flush (`process` mode), [`LedgerSync::Full`]
    /// waiting (`power` mode; the default of [`PgIdempotency::new`]).
    pub fn synced(mut self, sync: LedgerSync) -> Self {
        self.sync = sync;
        self
    }

    /// Claims as fleet instance `id` (with the fleet's heartbeat timeout):
    /// another instance's claim of a key this one holds in flight is then
    /// told "in use" while this instance heartbeats, and "outcome unknown"
    /// only once it is gone or stopped.
    pub fn held_by(mut self, instance: Option<(i64, std::time::Duration)>) -> Self {
        self.holder = match instance {
            Some((id, gone_after)) => {
                Holder { instance: Some(id), gone_after_ms: i64::try_from(gone_after.as_millis()).unwrap_or(i64::MAX) }
            }
            None => Holder::default(),
        };
        self
    }

    /// The record of `key` (expired or not), and its answer while kept.
    pub async fn get(&self, supplier: SupplierId, key: &IdempotencyKey) -> StoreResult<Option<(KeyRecord, Option<StoredAnswer>)>> {
        let c = self.pg.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM idempotency_keys WHERE supplier_id = $1 AND key = $2");
        let row = c.query_opt(&sql, &[&supplier.0, &key.as_str()]).await.db(&self.pg)?;
        Ok(row.as_ref().and_then(read))
    }

    /// Bytes of the answer bodies kept now, across the fleet.
    pub async fn kept_bytes(&self) -> StoreResult<u64> {
        let c = self.pg.client().await?;
        let row = c.query_one("SELECT bytes FROM idempotency_kept WHERE id = 1", &[]).await.db(&self.pg)?;
        Ok(row.get::<_, i64>(0).max(0).unsigned_abs())
    }

    /// See [`IdempotencyBackend::claim`]: one transaction, atomic across instances.
    pub async fn claim(
        &self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        endpoint: Endpoint,
        fingerprint: &Fingerprint,
        times: AttemptTimes,
    ) -> StoreResult<Claim> {
        let c = begin(&self.pg).await?;
        let r = claim_on(&self.pg, &c, self.holder, supplier, key, endpoint, fingerprint, times).await;
        finish(&self.pg, &c, r).await
    }

    /// See [`IdempotencyBackend::complete`]: the body is kept if it fits
    /// under `keep_under` in all (the fleet's total), after dropping the
    /// oldest kept bodies that no one is changing now.
    pub async fn complete(
        &self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        answer: &StoredAnswer,
        keep_under: Option<u64>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(SupplierId, IdempotencyKey)>> {
        let c = begin(&self.pg).await?;
        let r = complete_on(&self.pg, &c, supplier, key, fingerprint, answer, keep_under, now).await;
        finish(&self.pg, &c, r).await
    }

    /// See [`IdempotencyBackend::fail`].
    pub async fn fail(
        &self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        status: Option<u16>,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let c = self.pg.client().await?;
        fail_on(&self.pg, &c, supplier, key, fingerprint, status, request_id, now).await
    }

    /// Deletes the records expired at `now` (skipping rows another
    /// transaction holds: the next purge takes them); returns how many.
    pub async fn purge(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        let c = begin(&self.pg).await?;
        let r = purge_on(&self.pg, &c, now).await;
        finish(&self.pg, &c, r).await
    }
}

impl PgIdempotency {
    /// One change from the engine's idempotency thread: inside the open batch
    /// (through [`IdempotencyBackend::apply_all`]), or in a transaction of its own.
    fn one(&mut self, c: Change) -> Changed {
        if self.batch.is_some() {
            return self.apply_all(vec![c]).pop().unwrap_or_else(|| Changed::Purge(Err(aborted())));
        }
        let me = self.clone();
        block_on_pg(async move { me.alone(c).await })
    }
}

/// A [`Changed`] of the one-change method that asked for another kind (never
/// happens: `run_change` answers each change in its own kind).
fn other_kind(c: Changed) -> crate::store::StoreError {
    crate::store::StoreError::Invalid(format!("internal: an idempotency change answered as another kind: {c:?}"))
}

fn aborted() -> crate::store::StoreError {
    crate::store::StoreError::Invalid("an earlier change of this idempotency batch failed; the batch is rolled back".into())
}

impl IdempotencyBackend for PgIdempotency {
    /// Opens a transaction on a connection of its own for the changes that follow.
    fn begin_batch(&mut self) -> StoreResult<()> {
        let (pg, sync) = (self.pg.clone(), self.sync);
        let conn = block_on_pg(async move { begin_synced(&pg, sync).await })?;
        self.batch = Some(Batch { conn: Some(conn), failed: false });
        Ok(())
    }
    /// Commits the batch, or rolls it back and says so when one of its changes failed.
    fn commit_batch(&mut self) -> StoreResult<()> {
        let Some(mut b) = self.batch.take() else { return Ok(()) };
        let Some(conn) = b.conn.take() else { return Err(aborted()) };
        let (pg, failed) = (self.pg.clone(), b.failed);
        block_on_pg(async move {
            if failed {
                conn.batch_execute("ROLLBACK").await.db(&pg)?;
                return Err(aborted());
            }
            conn.batch_execute("COMMIT").await.db(&pg)?;
            Ok(())
        })
    }
    fn claim(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        endpoint: Endpoint,
        fingerprint: &Fingerprint,
        times: AttemptTimes,
    ) -> StoreResult<Claim> {
        match self.one(Change::Claim { supplier, key: key.clone(), endpoint, fingerprint: *fingerprint, times }) {
            Changed::Claim(r) => r,
            other => Err(other_kind(other)),
        }
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
        let c = Change::Complete { supplier, key: key.clone(), fingerprint: *fingerprint, answer: answer.clone(), keep_under, now };
        match self.one(c) {
            Changed::Complete(r) => r,
            other => Err(other_kind(other)),
        }
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
        let c =
            Change::Fail { supplier, key: key.clone(), fingerprint: *fingerprint, status, request_id: request_id.map(str::to_owned), now };
        match self.one(c) {
            Changed::Fail(r) => r,
            other => Err(other_kind(other)),
        }
    }
    fn purge(&mut self, now: DateTime<Utc>) -> StoreResult<usize> {
        match self.one(Change::Purge { now }) {
            Changed::Purge(r) => r,
            other => Err(other_kind(other)),
        }
    }
    /// `synchronous_commit` of the open batch's transaction, or of a new
    /// transaction as the next change would open it.
    fn commits_synced(&mut self) -> StoreResult<bool> {
        // Every setting but `off` waits for at least the local flush.
        let show = |v: String| v != "off";
        if let Some(b) = self.batch.as_mut() {
            let conn = b.conn.take().ok_or_else(aborted)?;
            let pg = self.pg.clone();
            let (conn, row) = block_on_pg(async move {
                let row = conn.query_one("SHOW synchronous_commit", &[]).await.db(&pg);
                (conn, row)
            });
            b.conn = Some(conn);
            b.failed |= row.is_err();
            return Ok(show(row?.get(0)));
        }
        let (pg, sync) = (self.pg.clone(), self.sync);
        block_on_pg(async move {
            let c = begin_synced(&pg, sync).await?;
            let row = c.query_one("SHOW synchronous_commit", &[]).await.db(&pg);
            let _ = c.batch_execute("ROLLBACK").await;
            Ok(show(row?.get(0)))
        })
    }
    /// Inside a batch, the changes of different keys are sent together on
    /// the batch's connection (pipelined: the server runs them in the order
    /// sent, without a round trip between them); each key's changes in order,
    /// purges last.
    fn apply_all(&mut self, changes: Vec<Change>) -> Vec<Changed> {
        let Some(mut b) = self.batch.take() else {
            return changes.into_iter().map(|c| crate::store::idempotency::apply_one(self, c)).collect();
        };
        let Some(conn) = b.conn.take().filter(|_| !b.failed) else {
            self.batch = Some(b);
            return changes.iter().map(refused).collect();
        };
        let (pg, holder) = (self.pg.clone(), self.holder);
        let (conn, results) = block_on_pg(async move {
            let results = pipelined(&pg, &conn, holder, &changes).await;
            (conn, results)
        });
        b.failed = results.iter().any(Changed::is_err);
        b.conn = Some(conn);
        self.batch = Some(b);
        results
    }
}

/// A change refused because its batch already failed.
fn refused(c: &Change) -> Changed {
    failed_with(c, aborted())
}

/// `c`'s kind of answer, failed with `e`.
fn failed_with(c: &Change, e: crate::store::StoreError) -> Changed {
    match c {
        Change::Claim { .. } => Changed::Claim(Err(e)),
        Change::Complete { .. } => Changed::Complete(Err(e)),
        Change::Fail { .. } => Changed::Fail(Err(e)),
        Change::Purge { .. } => Changed::Purge(Err(e)),
    }
}
