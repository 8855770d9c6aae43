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
//! Batches ([`IdempotencyBackend::begin_batch`]) are a no-op here: each
//! change commits in its own transaction (one round trip of the engine's
//! idempotency thread per change).

use super::catalog::PgQ;
use super::{PgStore, block_on_pg};
use crate::domain::SupplierId;
use crate::domain::idempotency::{BodyState, Decision, Endpoint, Fingerprint, IdempotencyKey, KeyRecord, KeyState, decide};
use crate::store::{AttemptTimes, Claim, IdempotencyBackend, StoreResult, StoredAnswer};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
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
#[derive(Clone, Debug)]
pub struct PgIdempotency {
    pg: PgStore,
}

impl PgIdempotency {
    pub fn new(pg: PgStore) -> Self {
        Self { pg }
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
        let pg = &self.pg;
        let mut c = pg.client().await?;
        let tx = c.transaction().await.db(pg)?;
        let (s, k, e, fp) = (supplier.0, key.as_str(), code(endpoint.code()), &fingerprint.0[..]);
        let (now, lease, exp) = (ms(times.now), ms(times.lease_until), ms(times.expires_at));
        let ins = tx
            .prepare_cached(
                "INSERT INTO idempotency_keys (supplier_id, key, endpoint, fingerprint, state, created_ms, lease_until_ms, expires_ms)
                 VALUES ($1, $2, $3, $4, 0, $5, $6, $7) ON CONFLICT (supplier_id, key) DO NOTHING",
            )
            .await
            .db(pg)?;
        if tx.execute(&ins, &[&s, &k, &e, &fp, &now, &lease, &exp]).await.db(pg)? == 1 {
            tx.commit().await.db(pg)?;
            return Ok(Claim { decision: Decision::Run, record: None, answer: None });
        }
        let sel = format!("SELECT {COLUMNS}, body_len FROM idempotency_keys WHERE supplier_id = $1 AND key = $2 FOR UPDATE");
        let row = tx.query_opt(&sel, &[&s, &k]).await.db(pg)?;
        let old_len: i64 = row.as_ref().map_or(0, |r| if r.get::<_, Option<Vec<u8>>>(10).is_some() { r.get(11) } else { 0 });
        let found = row.as_ref().and_then(read);
        let decision = decide(found.as_ref().map(|f| &f.0), false, endpoint, fingerprint, times.now);
        match decision {
            Decision::Run => {
                let up = tx
                    .prepare_cached(
                        "INSERT INTO idempotency_keys (supplier_id, key, endpoint, fingerprint, state, created_ms, lease_until_ms, expires_ms)
                         VALUES ($1, $2, $3, $4, 0, $5, $6, $7)
                         ON CONFLICT (supplier_id, key) DO UPDATE SET endpoint = excluded.endpoint, fingerprint = excluded.fingerprint,
                            state = 0, status = NULL, request_id = NULL, headers = '[]', body = NULL, body_state = 0, body_len = 0,
                            created_ms = excluded.created_ms, lease_until_ms = excluded.lease_until_ms,
                            expires_ms = excluded.expires_ms, completed_ms = NULL",
                    )
                    .await
                    .db(pg)?;
                tx.execute(&up, &[&s, &k, &e, &fp, &now, &lease, &exp]).await.db(pg)?;
                if old_len > 0 {
                    // An expired record's body goes with it (the counter after the row: the lock order).
                    tx.execute("UPDATE idempotency_kept SET bytes = greatest(bytes - $1, 0) WHERE id = 1", &[&old_len]).await.db(pg)?;
                }
                tx.commit().await.db(pg)?;
                Ok(Claim { decision, record: found.map(|f| f.0), answer: None })
            }
            Decision::Replay => {
                tx.commit().await.db(pg)?;
                let (record, answer) = found.map_or((None, None), |(r, a)| (Some(r), a));
                Ok(Claim { decision, record, answer })
            }
            _ => {
                tx.commit().await.db(pg)?;
                Ok(Claim { decision, record: found.map(|f| f.0), answer: None })
            }
        }
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
        let pg = &self.pg;
        let len = i64::try_from(answer.body.len()).unwrap_or(i64::MAX);
        let max_total = keep_under.map_or(0, |m| i64::try_from(m).unwrap_or(i64::MAX));
        let mut keep = keep_under.is_some() && len <= max_total;
        let mut c = pg.client().await?;
        let tx = c.transaction().await.db(pg)?;
        let (s, k, fp) = (supplier.0, key.as_str(), &fingerprint.0[..]);
        // The key's own row first (the lock order), and only our in-flight attempt's.
        let own = tx
            .query_opt(
                "SELECT 1 FROM idempotency_keys WHERE supplier_id = $1 AND key = $2 AND fingerprint = $3 AND state = 0 FOR UPDATE",
                &[&s, &k, &fp],
            )
            .await
            .db(pg)?;
        if own.is_none() {
            tx.commit().await.db(pg)?;
            return Ok(Vec::new());
        }
        let mut evicted = Vec::new();
        if keep {
            let mut kept: i64 = tx.query_one("SELECT bytes FROM idempotency_kept WHERE id = 1 FOR UPDATE", &[]).await.db(pg)?.get(0);
            while kept.saturating_add(len) > max_total {
                let oldest = tx
                    .query(
                        "SELECT supplier_id, key, body_len FROM idempotency_keys WHERE body IS NOT NULL
                         ORDER BY completed_ms, supplier_id, key LIMIT 64 FOR UPDATE SKIP LOCKED",
                        &[],
                    )
                    .await
                    .db(pg)?;
                if oldest.is_empty() {
                    // What is kept is being changed by others: this body is not kept.
                    keep = false;
                    break;
                }
                for r in oldest {
                    if kept.saturating_add(len) <= max_total {
                        break;
                    }
                    let (os, ok, n): (i64, String, i64) = (r.get(0), r.get(1), r.get(2));
                    tx.execute(
                        "UPDATE idempotency_keys SET body = NULL, body_state = 3, body_len = 0 WHERE supplier_id = $1 AND key = $2",
                        &[&os, &ok],
                    )
                    .await
                    .db(pg)?;
                    kept = kept.saturating_sub(n.max(0)).max(0);
                    if let Ok(ok) = IdempotencyKey::parse(ok.as_bytes()) {
                        evicted.push((SupplierId(os), ok));
                    }
                }
            }
            let total = if keep { kept.saturating_add(len) } else { kept };
            tx.execute("UPDATE idempotency_kept SET bytes = $1 WHERE id = 1", &[&total]).await.db(pg)?;
        }
        let headers = serde_json::to_string(&answer.headers).unwrap_or_else(|_| "[]".into());
        let (body, body_state, body_len) =
            if keep { (Some(&answer.body[..]), BodyState::Kept, len) } else { (None, BodyState::TooLarge, 0) };
        tx.execute(
            "UPDATE idempotency_keys SET state = 1, status = $4, request_id = $5, headers = $6, body = $7, body_state = $8,
                body_len = $9, completed_ms = $10
             WHERE supplier_id = $1 AND key = $2 AND fingerprint = $3 AND state = 0",
            &[&s, &k, &fp, &i32::from(answer.status), &answer.request_id, &headers, &body, &code(body_state.code()), &body_len, &ms(now)],
        )
        .await
        .db(pg)?;
        tx.commit().await.db(pg)?;
        Ok(evicted)
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
        c.execute(
            "UPDATE idempotency_keys SET state = 2, status = $4, request_id = $5, completed_ms = $6
             WHERE supplier_id = $1 AND key = $2 AND fingerprint = $3 AND state = 0",
            &[&supplier.0, &key.as_str(), &&fingerprint.0[..], &status.map(i32::from), &request_id, &ms(now)],
        )
        .await
        .db(&self.pg)?;
        Ok(())
    }

    /// Deletes the records expired at `now` (skipping rows another
    /// transaction holds: the next purge takes them); returns how many.
    pub async fn purge(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        let pg = &self.pg;
        let mut c = pg.client().await?;
        let tx = c.transaction().await.db(pg)?;
        let rows = tx
            .query(
                "DELETE FROM idempotency_keys WHERE (supplier_id, key) IN (
                    SELECT supplier_id, key FROM idempotency_keys WHERE expires_ms <= $1 FOR UPDATE SKIP LOCKED)
                 RETURNING CASE WHEN body IS NULL THEN 0 ELSE body_len END",
                &[&ms(now)],
            )
            .await
            .db(pg)?;
        let freed = rows.iter().fold(0i64, |a, r| a.saturating_add(r.get::<_, i64>(0).max(0)));
        if freed > 0 {
            tx.execute("UPDATE idempotency_kept SET bytes = greatest(bytes - $1, 0) WHERE id = 1", &[&freed]).await.db(pg)?;
        }
        tx.commit().await.db(pg)?;
        Ok(rows.len())
    }
}

/// Runs `f` on the PostgreSQL runtime from the engine's idempotency thread.
fn blocking<T, F, Fut>(this: &PgIdempotency, f: F) -> StoreResult<T>
where
    F: FnOnce(PgIdempotency) -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>> + Send + 'static,
    T: Send + 'static,
{
    block_on_pg(f(this.clone()))
}

impl IdempotencyBackend for PgIdempotency {
    /// A no-op: each change commits on its own.
    fn begin_batch(&mut self) -> StoreResult<()> {
        Ok(())
    }
    fn commit_batch(&mut self) -> StoreResult<()> {
        Ok(())
    }
    fn claim(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        endpoint: Endpoint,
        fingerprint: &Fingerprint,
        times: AttemptTimes,
    ) -> StoreResult<Claim> {
        let (key, fp) = (key.clone(), *fingerprint);
        blocking(self, move |b| async move { b.claim(supplier, &key, endpoint, &fp, times).await })
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
        let (key, fp, answer) = (key.clone(), *fingerprint, answer.clone());
        blocking(self, move |b| async move { b.complete(supplier, &key, &fp, &answer, keep_under, now).await })
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
        let (key, fp, rid) = (key.clone(), *fingerprint, request_id.map(str::to_owned));
        blocking(self, move |b| async move { b.fail(supplier, &key, &fp, status, rid.as_deref(), now).await })
    }
    fn purge(&mut self, now: DateTime<Utc>) -> StoreResult<usize> {
        blocking(self, move |b| async move { b.purge(now).await })
    }
}
