//! Idempotency keys at run time (Stripe's semantics; the rules are
//! `domain::idempotency`'s, the SQL `store::idempotency`'s). This module
//! owns the live state: the keys this process is serving now (in flight),
//! and the recent completed keys with their answers (`cache`). Every change
//! is written through (`lanes`): to the SQLite file by one named thread
//! (`idempotency`) that owns its own connection, or, when the store is
//! PostgreSQL, to the fleet's shared table (`store::pg::idempotency`, whose
//! claim is atomic across instances, so a retry landing on another instance
//! replays the first answer) by a few lanes on the PostgreSQL runtime. No
//! database work runs on the gateway runtime's threads; expired records are
//! purged once a minute.
//!
//! A request with a key calls [`Idempotency::begin`]: a new attempt gets a
//! [`Ticket`] once its in-flight record is written (before any provider is
//! called); [`Ticket::complete`] writes the answer (before it is returned to
//! the client); a ticket dropped without completion (an error answer, a cut
//! stream, a client that went away) marks the key failed, so it may be
//! retried. Records survive a restart: an in-flight record a stopped process
//! left behind answers 409 "outcome unknown" until its lease has run out
//! (the longest a request can still be running upstream), then the key may
//! be retried.
#![deny(clippy::unwrap_used, clippy::expect_used)] // the request path

mod cache;
mod lanes;

use crate::domain::idempotency::{BodyState, Decision, Endpoint, Fingerprint, IdempotencyKey, KeyRecord, KeyState, decide};
use crate::domain::{Clock, SupplierId};
use crate::store::pg::idempotency::PgIdempotency;
use crate::store::{AttemptTimes, Change, Changed, Claim, IdempotencyBackend, IdempotencyDb, LedgerSync, Store, StoreError, StoredAnswer};
use cache::{Cache, Key};
use lanes::Writer;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// How long records live, and how much of the answers is kept.
#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    /// How long a key is remembered after its attempt began (Stripe: 24 hours).
    pub ttl: chrono::Duration,
    /// Largest answer kept for replay; a larger one completes its key without
    /// its body (a replay then gets a 409 that says so).
    pub max_answer_bytes: usize,
    /// Most answer bytes kept in the database; the oldest bodies are dropped
    /// first (their small records stay).
    pub max_total_bytes: u64,
    /// Most bytes of recent answers kept in memory as well.
    pub memory_bytes: usize,
    /// How long an in-flight record left by a stopped process blocks its key:
    /// longer than any request can run upstream (provider timeouts and retries).
    pub in_flight_lease: chrono::Duration,
    /// How often expired records are deleted.
    pub purge_every: std::time::Duration,
    /// In a fleet: this instance's id and how long an instance may miss its
    /// heartbeats before it counts as gone. A key in flight on another live
    /// instance is then "in use" (retry in a second), and "outcome unknown"
    /// only when its holder is gone (PostgreSQL only).
    pub fleet_instance: Option<(i64, std::time::Duration)>,
    /// When a claim or a completion reaches the disk: as the instance's
    /// usage (`--ledger-durability`). [`LedgerSync::Normal`]: safe when the
    /// process is killed; [`LedgerSync::Full`]: each commit synced first.
    pub sync: LedgerSync,
    /// PostgreSQL: how many lanes write at once, each on a connection of its
    /// own (one key's changes always in one lane). One by default: a lane
    /// writes the changes waiting for it with one statement per kind, so
    /// fewer, fuller batches cost PostgreSQL less (BENCHMARKS.md compares one,
    /// two and three lanes).
    pub pg_lanes: usize,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            ttl: chrono::Duration::hours(24),
            max_answer_bytes: 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            memory_bytes: 32 * 1024 * 1024,
            in_flight_lease: chrono::Duration::minutes(10),
            purge_every: std::time::Duration::from_secs(60),
            fleet_instance: None,
            sync: LedgerSync::Normal,
            pg_lanes: 1,
        }
    }
}

/// What a request with a key gets.
#[derive(Debug)]
pub enum Begin {
    /// A new attempt: serve it, then complete the ticket (or drop it).
    Run(Ticket),
    /// The first attempt's answer, to send again as it was.
    Replay(Arc<StoredAnswer>),
    Refused(Refusal),
}

/// Why a request with a key is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The first request with the key is being served now.
    InFlight,
    /// A request with the key was in flight when its process stopped.
    OutcomeUnknown { retry_after_secs: u64 },
    /// The key was used with another body, or on `endpoint`.
    Mismatch { endpoint: Endpoint },
    /// The answer was not kept ([`BodyState::TooLarge`]) or not any more ([`BodyState::Evicted`]).
    NotKept(BodyState),
}

/// The records cannot be read or written: the request must not go on.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the idempotency thread has stopped")]
    Stopped,
}

enum Cmd {
    Claim { k: Key, endpoint: Endpoint, fp: Fingerprint, times: AttemptTimes, reply: oneshot::Sender<ClaimResult> },
    Complete { k: Key, fp: Fingerprint, answer: Arc<StoredAnswer>, keep: bool, reply: oneshot::Sender<Result<Vec<Key>, StoreError>> },
    Fail { k: Key, fp: Fingerprint, status: Option<u16>, request_id: Option<String> },
    Purge { reply: oneshot::Sender<Result<usize, StoreError>> },
}

type ClaimResult = Result<Claim, StoreError>;

/// Cheap to clone; the thread stops when the last handle and ticket are gone.
#[derive(Clone)]
pub struct Idempotency {
    inner: Arc<Inner>,
}

/// Lock order: `live` before `cache`, whoever holds both (the serving lanes
/// are threads: `begin` on one and `finish` on another would deadlock if
/// either took them the other way round).
struct Inner {
    cfg: IdempotencyConfig,
    clock: Arc<dyn Clock>,
    /// Keys this process is serving now, with what they were first sent with.
    live: Mutex<HashMap<Key, (Endpoint, Fingerprint)>>,
    cache: Mutex<Cache>,
    tx: Writer,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency").field("live", &self.inner.live.lock().len()).finish()
    }
}

impl Idempotency {
    /// Opens the records in `store` (a SQLite file's own table, or the
    /// fleet's table when `store` is PostgreSQL) and starts the thread that writes them.
    pub fn start(store: &Store, clock: Arc<dyn Clock>, cfg: IdempotencyConfig) -> Result<Self, StoreError> {
        let (every, max_total) = (cfg.purge_every, cfg.max_total_bytes);
        let tx = match store.postgres() {
            Some(pg) => {
                let mut db = PgIdempotency::new(pg.clone()).held_by(cfg.fleet_instance).synced(cfg.sync);
                log_synced(&mut db);
                Writer::start_lanes(db, cfg.pg_lanes, clock.clone(), every, max_total)
            }
            None => {
                let mut db = IdempotencyDb::open_with(store, cfg.sync)?;
                log_synced(&mut db);
                let (tx, rx) = mpsc::channel();
                let thread_clock = clock.clone();
                std::thread::Builder::new()
                    .name("idempotency".into())
                    .spawn(move || run(Box::new(db), rx, thread_clock, every, max_total))
                    .map_err(|e| StoreError::Invalid(format!("cannot start the idempotency thread: {e}")))?;
                Writer::Thread(tx)
            }
        };
        let cache = Mutex::new(Cache::new(cfg.memory_bytes));
        Ok(Idempotency { inner: Arc::new(Inner { cfg, clock, live: Mutex::new(HashMap::new()), cache, tx }) })
    }

    pub fn config(&self) -> &IdempotencyConfig {
        &self.inner.cfg
    }

    /// Keys being served by this process now.
    pub fn in_flight(&self) -> usize {
        self.inner.live.lock().len()
    }

    /// What a request on `endpoint` with `body` and `key` from `supplier`
    /// gets. A new attempt's in-flight record is written before this returns.
    pub async fn begin(
        &self,
        supplier: SupplierId,
        key: IdempotencyKey,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Result<Begin, IdempotencyError> {
        let inner = &self.inner;
        let fp = Fingerprint::of(body);
        let now = inner.clock.now();
        let k: Key = (supplier, key);
        {
            let mut live = inner.live.lock();
            if let Some(&(e, f)) = live.get(&k) {
                let first = KeyRecord {
                    endpoint: e,
                    fingerprint: f,
                    state: KeyState::InFlight,
                    status: None,
                    request_id: None,
                    body: BodyState::None,
                    created_at: now,
                    lease_until: now,
                    expires_at: now + inner.cfg.ttl,
                };
                return Ok(Begin::Refused(refusal(decide(Some(&first), true, endpoint, &fp, now), now)));
            }
            if let Some(entry) = inner.cache.lock().get(&k) {
                match decide(Some(&entry.record), false, endpoint, &fp, now) {
                    Decision::Replay => {
                        if let Some(a) = &entry.answer {
                            return Ok(Begin::Replay(a.clone()));
                        }
                    }
                    Decision::Run => {}
                    other => return Ok(Begin::Refused(refusal(other, now))),
                }
            }
            live.insert(k.clone(), (endpoint, fp));
        }
        // From here the key is ours: the claim guard gives it back on every
        // path but a new attempt's (and marks a claim written but never
        // answered failed, should this future be dropped).
        let claim = ClaimGuard { inner: inner.clone(), k: Some(k.clone()), fp };
        let times = AttemptTimes { now, lease_until: now + inner.cfg.in_flight_lease, expires_at: now + inner.cfg.ttl };
        let (reply, rx) = oneshot::channel();
        inner.tx.send(Cmd::Claim { k: k.clone(), endpoint, fp, times, reply }).map_err(|_| IdempotencyError::Stopped)?;
        let claimed = match rx.await.map_err(|_| IdempotencyError::Stopped)? {
            Ok(c) if c.decision == Decision::Run => return Ok(Begin::Run(claim.into_ticket(endpoint, times))),
            other => other,
        };
        // No record of ours was written (a refusal, a replay, a claim rolled
        // back): the key goes back without marking anything failed — in a
        // fleet, the record found may be another instance's attempt.
        let out = match claimed {
            Err(e) => Err(e.into()),
            Ok(claimed) => match (claimed.decision, claimed.record, claimed.answer) {
                (Decision::Replay, Some(record), Some(a)) => {
                    let a = Arc::new(a);
                    inner.cache.lock().insert(k, record, Some(a.clone()));
                    Ok(Begin::Replay(a))
                }
                (Decision::Replay, _, _) => Ok(Begin::Refused(Refusal::NotKept(BodyState::Evicted))),
                (other, _, _) => Ok(Begin::Refused(refusal(other, now))),
            },
        };
        claim.unclaimed();
        out
    }

    /// Deletes the expired records now (the thread does it once a
    /// [`IdempotencyConfig::purge_every`] too); returns how many.
    pub async fn purge(&self) -> Result<usize, IdempotencyError> {
        let (reply, rx) = oneshot::channel();
        self.inner.tx.send(Cmd::Purge { reply }).map_err(|_| IdempotencyError::Stopped)?;
        Ok(rx.await.map_err(|_| IdempotencyError::Stopped)??)
    }
}

/// Says at start whether the records' commits wait for the disk.
fn log_synced(db: &mut dyn IdempotencyBackend) {
    match db.commits_synced() {
        Ok(synced) => tracing::info!(synced, "idempotency records open (synced: each commit waits for the disk)"),
        Err(e) => tracing::warn!(error = %e, "cannot read how idempotency commits reach the disk"),
    }
}

fn refusal(d: Decision, now: chrono::DateTime<chrono::Utc>) -> Refusal {
    match d {
        Decision::OutcomeUnknown { until } => {
            Refusal::OutcomeUnknown { retry_after_secs: (until - now).num_seconds().max(1).unsigned_abs() }
        }
        Decision::Mismatch { endpoint } => Refusal::Mismatch { endpoint },
        Decision::NotKept(b) => Refusal::NotKept(b),
        Decision::InFlight | Decision::Run | Decision::Replay => Refusal::InFlight,
    }
}

/// A key claimed by [`Idempotency::begin`] until its claim is decided.
struct ClaimGuard {
    inner: Arc<Inner>,
    k: Option<Key>,
    fp: Fingerprint,
}

impl ClaimGuard {
    fn into_ticket(mut self, endpoint: Endpoint, times: AttemptTimes) -> Ticket {
        let k = self.k.take();
        Ticket { inner: self.inner.clone(), k, endpoint, fp: self.fp, times }
    }
}

impl ClaimGuard {
    /// Gives the key back when the claim wrote nothing (no `Fail` is sent).
    fn unclaimed(mut self) {
        if let Some(k) = self.k.take() {
            self.inner.live.lock().remove(&k);
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some(k) = self.k.take() {
            // The future was dropped while the claim was on its way: it may
            // have been written, so it is marked failed (retryable).
            let _ = self.inner.tx.send(Cmd::Fail { k: k.clone(), fp: self.fp, status: None, request_id: None });
            self.inner.live.lock().remove(&k);
        }
    }
}

/// A new attempt under a key. Complete it with the answer; dropped without
/// completion, it marks the key failed (retryable).
pub struct Ticket {
    inner: Arc<Inner>,
    k: Option<Key>,
    endpoint: Endpoint,
    fp: Fingerprint,
    times: AttemptTimes,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("key", &self.k.as_ref().map(|k| k.1.as_str())).field("endpoint", &self.endpoint).finish()
    }
}

impl Ticket {
    /// Largest answer kept for replay.
    pub fn max_answer_bytes(&self) -> usize {
        self.inner.cfg.max_answer_bytes
    }

    /// Completes the key with a successful answer, kept for replay if it is
    /// no larger than [`Ticket::max_answer_bytes`]. Returns once the record is
    /// written (a write that fails is logged; the answer is then replayed from
    /// memory only, and after a restart the key is retryable once its lease ends).
    pub async fn complete(self, answer: StoredAnswer) {
        let keep = answer.body.len() <= self.max_answer_bytes();
        self.finish(answer, keep).await
    }

    /// Completes the key with a successful answer too large to keep (a
    /// stream whose bytes were not all held): a replay gets a 409.
    pub async fn complete_unkept(self, status: u16, request_id: Option<String>) {
        let answer = StoredAnswer { status, request_id, headers: Vec::new(), body: bytes::Bytes::new() };
        self.finish(answer, false).await
    }

    async fn finish(mut self, answer: StoredAnswer, keep: bool) {
        let Some(k) = self.k.clone() else { return };
        let inner = self.inner.clone();
        let answer = Arc::new(answer);
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Complete { k: k.clone(), fp: self.fp, answer: answer.clone(), keep, reply };
        let evicted = match inner.tx.send(cmd) {
            Ok(()) => match rx.await {
                Ok(Ok(evicted)) => evicted,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "an idempotent answer could not be recorded; it is replayed from memory only");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            },
            Err(_) => {
                tracing::error!("the idempotency thread has stopped; an idempotent answer is replayed from memory only");
                Vec::new()
            }
        };
        let record = KeyRecord {
            endpoint: self.endpoint,
            fingerprint: self.fp,
            state: KeyState::Completed,
            status: Some(answer.status),
            request_id: answer.request_id.clone(),
            body: if keep { BodyState::Kept } else { BodyState::TooLarge },
            created_at: self.times.now,
            lease_until: self.times.lease_until,
            expires_at: self.times.expires_at,
        };
        {
            // Cached before the key leaves `live`: a concurrent request sees
            // one or the other, never neither. Locks in the one order
            // (`live`, then `cache`; see [`Inner`]).
            let mut live = inner.live.lock();
            let mut cache = inner.cache.lock();
            for e in &evicted {
                cache.evict_body(e);
            }
            cache.insert(k.clone(), record, keep.then_some(answer));
            live.remove(&k);
        }
        self.k = None;
    }

    /// Marks the key failed with the error answer's status: it may be retried.
    pub fn fail(mut self, status: Option<u16>, request_id: Option<String>) {
        self.release(status, request_id);
    }

    fn release(&mut self, status: Option<u16>, request_id: Option<String>) {
        if let Some(k) = self.k.take() {
            // Sent before the key leaves `live`: a retry's claim is written after it.
            if self.inner.tx.send(Cmd::Fail { k: k.clone(), fp: self.fp, status, request_id }).is_err() {
                tracing::error!("the idempotency thread has stopped; a failed attempt's key stays in flight until its lease ends");
            }
            self.inner.live.lock().remove(&k);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release(None, None);
    }
}

/// The writer thread: applies commands in order, purges when idle. The
/// commands waiting together (concurrent requests' claims and completions)
/// share one transaction, and their callers hear back once it is committed.
fn run(mut db: Box<dyn IdempotencyBackend>, rx: mpsc::Receiver<Cmd>, clock: Arc<dyn Clock>, every: std::time::Duration, max_total: u64) {
    let mut next_purge = std::time::Instant::now() + every;
    loop {
        let wait = next_purge.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(wait) {
            Ok(first) => {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                apply_batch(&mut *db, batch, &*clock, max_total);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                next_purge = std::time::Instant::now() + every;
                match db.purge(clock.now()) {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(purged = n, "expired idempotency records deleted"),
                    Err(e) => tracing::warn!(error = %e, "expired idempotency records could not be deleted"),
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// The most commands one transaction takes.
const MAX_BATCH: usize = 64;

/// What a command did, held until its transaction is committed.
enum Outcome {
    Claim(ClaimResult),
    Complete(Result<Vec<Key>, StoreError>),
    Fail(Result<(), StoreError>),
    Purge(Result<usize, StoreError>),
}

/// The store's changes for `batch`, one each, in order.
fn changes_of(batch: &[Cmd], clock: &dyn Clock, max_total: u64) -> Vec<Change> {
    let now = clock.now();
    batch
        .iter()
        .map(|cmd| match cmd {
            Cmd::Claim { k, endpoint, fp, times, .. } => {
                Change::Claim { supplier: k.0, key: k.1.clone(), endpoint: *endpoint, fingerprint: *fp, times: *times }
            }
            Cmd::Complete { k, fp, answer, keep, .. } => Change::Complete {
                supplier: k.0,
                key: k.1.clone(),
                fingerprint: *fp,
                answer: StoredAnswer::clone(answer),
                keep_under: keep.then_some(max_total),
                now,
            },
            Cmd::Fail { k, fp, status, request_id } => {
                Change::Fail { supplier: k.0, key: k.1.clone(), fingerprint: *fp, status: *status, request_id: request_id.clone(), now }
            }
            Cmd::Purge { .. } => Change::Purge { now },
        })
        .collect()
}

fn outcome(c: Changed) -> Outcome {
    match c {
        Changed::Claim(r) => Outcome::Claim(r),
        Changed::Complete(r) => Outcome::Complete(r),
        Changed::Fail(r) => Outcome::Fail(r),
        Changed::Purge(r) => Outcome::Purge(r),
    }
}

/// Applies `batch` through [`IdempotencyBackend::apply_all`], one outcome
/// each: inside the open batch (where a backend may run different keys'
/// changes at once), or with no batch open each in its own transaction.
fn apply_together(db: &mut dyn IdempotencyBackend, batch: &[Cmd], clock: &dyn Clock, max_total: u64) -> Vec<Outcome> {
    db.apply_all(changes_of(batch, clock, max_total)).into_iter().map(outcome).collect()
}

/// Tells `cmd`'s caller what it did (a failed `Fail` is logged: nobody waits for it).
fn answer(cmd: Cmd, out: Outcome) {
    match (cmd, out) {
        (Cmd::Claim { reply, .. }, Outcome::Claim(r)) => {
            let _ = reply.send(r);
        }
        (Cmd::Complete { reply, .. }, Outcome::Complete(r)) => {
            let _ = reply.send(r);
        }
        (Cmd::Purge { reply, .. }, Outcome::Purge(r)) => {
            let _ = reply.send(r);
        }
        (Cmd::Fail { .. }, Outcome::Fail(Err(e))) => {
            tracing::error!(error = %e, "a failed idempotent attempt could not be recorded; its key is retryable once its lease ends");
        }
        // `apply` gives each command its own kind of outcome.
        _ => {}
    }
}

/// One command: its own transaction. Several: one transaction, each command a
/// savepoint in it, the answers sent after the commit; should the batch not
/// open or not commit, the commands are applied again one by one (a rolled
/// back batch changed nothing), so each caller hears its own command's fate.
fn apply_batch(db: &mut dyn IdempotencyBackend, batch: Vec<Cmd>, clock: &dyn Clock, max_total: u64) {
    if batch.len() > 1 && db.begin_batch().is_ok() {
        let outcomes = apply_together(db, &batch, clock, max_total);
        match db.commit_batch() {
            Ok(()) => {
                batch.into_iter().zip(outcomes).for_each(|(cmd, out)| answer(cmd, out));
                return;
            }
            Err(e) => tracing::warn!(error = %e, "a batch of idempotency records could not be committed; applying them one by one"),
        }
    }
    for cmd in batch {
        let out = apply_together(db, std::slice::from_ref(&cmd), clock, max_total);
        std::iter::once(cmd).zip(out).for_each(|(cmd, out)| answer(cmd, out));
    }
}
