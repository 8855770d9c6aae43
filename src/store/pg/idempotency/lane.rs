//! The engine's idempotency lanes on PostgreSQL (`engine::idempotency`'s
//! `Writer::Lanes`): each lane's own connection ([`LaneConn`]), a batch of
//! changes applied on it ([`PgIdempotency::apply_lane`]) or in one
//! transaction ([`PgIdempotency::apply_batch`]), and a change alone in a
//! transaction of its own, the fallback of both.

use super::statements::{
    Fitted, NewAnswer, NewClaim, chains_of, claim_new, claims_new, complete_fitting, completes_fitting, fail_on, pipelined, run_change,
};
use super::{Batch, Client, PgIdempotency, aborted, begin_synced, failed_with, finish};
use crate::domain::idempotency::Decision;
use crate::store::pg::PgStore;
use crate::store::pg::catalog::PgQ;
use crate::store::{Change, Changed, Claim, LedgerSync, StoreResult};

/// An idempotency lane's own connection (taken out of the pool for good),
/// its session committing without waiting for the WAL flush; opened on first
/// use and again after it breaks.
#[derive(Default)]
pub struct LaneConn(Option<Client>);

impl std::fmt::Debug for LaneConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneConn").field("open", &self.0.is_some()).finish()
    }
}

impl LaneConn {
    async fn open(&mut self, pg: &PgStore) -> StoreResult<&Client> {
        self.check();
        if self.0.is_none() {
            let c = deadpool_postgres::Object::take(pg.client().await?);
            c.batch_execute("SET synchronous_commit = off").await.db(pg)?;
            self.0 = Some(c);
        }
        match self.0.as_ref() {
            Some(c) => Ok(c),
            None => Err(aborted()),
        }
    }

    /// Forgets a connection that has closed.
    fn check(&mut self) {
        if self.0.as_ref().is_some_and(|c| c.is_closed()) {
            self.0 = None;
        }
    }
}

impl PgIdempotency {
    /// Applies `changes` as the engine's idempotency lanes do, on the
    /// PostgreSQL runtime (await it there: see [`PgIdempotency::spawn`]).
    /// Several changes share one transaction, pipelined (each key's in
    /// order, purges last); should any of them fail, or the commit, the
    /// transaction is rolled back and every change applied again in a
    /// transaction of its own, so each result is its own change's fate. One
    /// change: its own transaction. A future dropped inside a transaction
    /// takes its connection out of the pool (the server rolls back).
    pub async fn apply_batch(&self, changes: Vec<Change>) -> Vec<Changed> {
        if changes.len() > 1 {
            match begin_synced(&self.pg, self.sync).await {
                Ok(conn) => {
                    let mut open = Batch { conn: Some(conn), failed: false };
                    let results = match open.conn.as_ref() {
                        Some(c) => pipelined(&self.pg, c, self.holder, &changes).await,
                        None => Vec::new(),
                    };
                    let failed = results.len() != changes.len() || results.iter().any(Changed::is_err);
                    if let Some(conn) = open.conn.take() {
                        let end = if failed { "ROLLBACK" } else { "COMMIT" };
                        match conn.batch_execute(end).await {
                            Ok(()) if !failed => return results,
                            Ok(()) => tracing::debug!("a batch of idempotency records failed; applying them one by one"),
                            Err(e) => {
                                tracing::warn!(error = %e, "a batch of idempotency records could not be committed; applying them one by one");
                                drop(deadpool_postgres::Object::take(conn));
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "a batch of idempotency records could not begin; applying them one by one"),
            }
        }
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            out.push(self.alone(c).await);
        }
        out
    }

    /// Applies `changes` as one lane of the engine. In `process` mode, on the
    /// lane's own connection (`lane`, whose session does not wait for the
    /// WAL flush), without a transaction: the first change of each key goes
    /// in one flight, the claims together in one statement, the completions
    /// together in another, each failure in one of its own; a later change of
    /// the same key (rare: a retry beside its first attempt's completion)
    /// follows in order, one statement each. A change that needs a
    /// transaction (a claim of a key that exists, a body that needs room, a
    /// purge), or whose statement failed (a statement that fails changed
    /// nothing), runs in a transaction of its own on a pooled connection. In
    /// `power` mode: [`PgIdempotency::apply_batch`] (the batch's one commit
    /// is one WAL flush).
    pub async fn apply_lane(&self, lane: &mut LaneConn, changes: Vec<Change>) -> Vec<Changed> {
        if self.sync == LedgerSync::Full {
            return self.apply_batch(changes).await;
        }
        let conn = match lane.open(&self.pg).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "an idempotency lane cannot open its connection; using pooled ones");
                return self.apply_batch(changes).await;
            }
        };
        let (chains, purges) = chains_of(&changes);
        let (mut claims, mut answers, mut others, mut tails) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for chain in chains {
            let mut chain = chain.into_iter();
            match chain.next() {
                Some(head @ (_, Change::Claim { .. })) => claims.push(head),
                Some(head @ (_, Change::Complete { .. })) => answers.push(head),
                Some(head) => others.push(head),
                None => {}
            }
            let rest: Vec<_> = chain.collect();
            if !rest.is_empty() {
                tails.push(rest);
            }
        }
        let singles = futures::future::join_all(others.into_iter().map(|(i, ch)| async move { (i, self.quick(conn, ch).await) }));
        let (claimed, completed, singles) =
            futures::join!(self.claims_together(conn, claims), self.completes_together(conn, answers), singles);
        let mut done: Vec<(usize, Changed)> = claimed.into_iter().chain(completed).chain(singles).collect();
        let tails = tails.into_iter().map(|chain| async move {
            let mut out = Vec::with_capacity(chain.len());
            for (i, ch) in chain {
                out.push((i, self.quick(conn, ch).await));
            }
            out
        });
        done.extend(futures::future::join_all(tails).await.into_iter().flatten());
        for (i, ch) in purges {
            done.push((i, self.alone(ch.clone()).await));
        }
        lane.check();
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    }

    /// Claims of different keys in one statement (one alone: [`Self::quick`]);
    /// the keys that exist, or all should the statement fail, each in a
    /// transaction of its own.
    async fn claims_together(&self, c: &Client, claims: Vec<(usize, &Change)>) -> Vec<(usize, Changed)> {
        if claims.len() <= 1 {
            return futures::future::join_all(claims.into_iter().map(|(i, ch)| async move { (i, self.quick(c, ch).await) })).await;
        }
        let rows: Vec<NewClaim<'_>> = claims
            .iter()
            .filter_map(|(_, ch)| match ch {
                Change::Claim { supplier, key, endpoint, fingerprint, times } => {
                    Some(NewClaim { supplier: *supplier, key, endpoint: *endpoint, fingerprint, times: *times })
                }
                _ => None,
            })
            .collect();
        let new = match claims_new(&self.pg, c, self.holder, &rows).await {
            Ok(new) if new.len() == claims.len() => new,
            _ => vec![false; claims.len()],
        };
        let run = || Changed::Claim(Ok(Claim { decision: Decision::Run, record: None, answer: None }));
        let rest = claims.into_iter().zip(new).map(|((i, ch), new)| async move {
            // The key exists (deciding on its record needs a transaction), or the statement failed.
            (i, if new { run() } else { self.alone(ch.clone()).await })
        });
        futures::future::join_all(rest).await
    }

    /// Completions of different keys in one statement (one alone:
    /// [`Self::quick`]); those whose bodies need room, or all should the
    /// statement fail, each in a transaction of its own.
    async fn completes_together(&self, c: &Client, answers: Vec<(usize, &Change)>) -> Vec<(usize, Changed)> {
        if answers.len() <= 1 {
            return futures::future::join_all(answers.into_iter().map(|(i, ch)| async move { (i, self.quick(c, ch).await) })).await;
        }
        let rows: Vec<NewAnswer<'_>> = answers
            .iter()
            .filter_map(|(_, ch)| match ch {
                Change::Complete { supplier, key, fingerprint, answer, keep_under, now } => {
                    Some(NewAnswer { supplier: *supplier, key, fingerprint, answer, keep_under: *keep_under, now: *now })
                }
                _ => None,
            })
            .collect();
        let fitted = match completes_fitting(&self.pg, c, &rows).await {
            Ok(fitted) if fitted.len() == answers.len() => fitted,
            _ => vec![Fitted::NoRoom; answers.len()],
        };
        let rest = answers.into_iter().zip(fitted).map(|((i, ch), fitted)| async move {
            match fitted {
                Fitted::NotOurs | Fitted::Done => (i, Changed::Complete(Ok(Vec::new()))),
                Fitted::NoRoom => (i, self.alone(ch.clone()).await),
            }
        });
        futures::future::join_all(rest).await
    }

    /// One change on a lane's connection, in one statement when it can be;
    /// otherwise (or should the statement fail: a single statement that
    /// fails changed nothing) in a transaction of its own.
    async fn quick(&self, c: &Client, ch: &Change) -> Changed {
        let pg = &self.pg;
        let quick = match ch {
            Change::Claim { supplier, key, endpoint, fingerprint, times } => {
                match claim_new(pg, c, self.holder, *supplier, key, *endpoint, fingerprint, *times).await {
                    Ok(true) => Some(Changed::Claim(Ok(Claim { decision: Decision::Run, record: None, answer: None }))),
                    // The key exists: deciding on its record needs a transaction.
                    Ok(false) | Err(_) => None,
                }
            }
            Change::Complete { supplier, key, fingerprint, answer, keep_under, now } => {
                match complete_fitting(pg, c, *supplier, key, fingerprint, answer, *keep_under, *now).await {
                    Ok(Fitted::NotOurs | Fitted::Done) => Some(Changed::Complete(Ok(Vec::new()))),
                    Ok(Fitted::NoRoom) | Err(_) => None,
                }
            }
            Change::Fail { supplier, key, fingerprint, status, request_id, now } => {
                fail_on(pg, c, *supplier, key, fingerprint, *status, request_id.as_deref(), *now).await.ok().map(|()| Changed::Fail(Ok(())))
            }
            Change::Purge { .. } => None,
        };
        match quick {
            Some(done) => done,
            None => self.alone(ch.clone()).await,
        }
    }

    /// Runs `fut` (an [`PgIdempotency::apply_batch`] loop) on the PostgreSQL
    /// runtime, beside the connections it talks to.
    pub fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(fut: F) {
        crate::store::pg::spawn_on_pg(fut);
    }

    /// One change in a transaction of its own.
    pub(super) async fn alone(&self, c: Change) -> Changed {
        let conn = match begin_synced(&self.pg, self.sync).await {
            Ok(conn) => conn,
            Err(e) => return failed_with(&c, e),
        };
        let mut open = Batch { conn: Some(conn), failed: false };
        let Some(conn) = open.conn.as_ref() else { return failed_with(&c, aborted()) };
        let r = run_change(&self.pg, conn, self.holder, &c).await;
        let r = match r {
            Changed::Claim(r) => Changed::Claim(finish(&self.pg, conn, r).await),
            Changed::Complete(r) => Changed::Complete(finish(&self.pg, conn, r).await),
            Changed::Fail(r) => Changed::Fail(finish(&self.pg, conn, r).await),
            Changed::Purge(r) => Changed::Purge(finish(&self.pg, conn, r).await),
        };
        // Ended (committed or rolled back): the connection goes back to the pool.
        drop(open.conn.take());
        r
    }
}
