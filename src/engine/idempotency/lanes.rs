//! How the records' changes reach their backend. SQLite: one named thread
//! (`idempotency`) owning the file's connection, so no database work runs on
//! the async runtime's threads. PostgreSQL: lanes (one by default,
//! `IdempotencyConfig::pg_lanes`), each a task on the PostgreSQL runtime
//! beside the connections it talks to (no thread of its own, no blocking
//! hand-off per statement), each taking the changes waiting for it (up to
//! [`MAX_BATCH`]) at once, on a connection of its own. A key always goes to
//! the same lane (a hash of supplier and key), so one key's changes are
//! applied in the order they were sent, as on the thread. Purges go to the
//! first lane. How a lane writes (in `process` mode one statement per kind
//! of change, in `power` mode one transaction) is
//! `store::pg::idempotency`'s `apply_lane`.

use super::{Cmd, MAX_BATCH, answer, changes_of, outcome};
use crate::domain::Clock;
use crate::store::pg::idempotency::{LaneConn, PgIdempotency};
use crate::store::{Change, Changed};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::mpsc as async_mpsc;

/// Where [`Cmd`]s go.
pub(super) enum Writer {
    Thread(mpsc::Sender<Cmd>),
    Lanes(Vec<async_mpsc::UnboundedSender<Cmd>>),
}

/// The writer is gone (the process is stopping).
#[derive(Debug)]
pub(super) struct Stopped;

impl Writer {
    /// Queues `cmd` without waiting (callable from `Drop` and from any thread).
    pub(super) fn send(&self, cmd: Cmd) -> Result<(), Stopped> {
        match self {
            Writer::Thread(tx) => tx.send(cmd).map_err(|_| Stopped),
            Writer::Lanes(lanes) => {
                let at = lane_of(&cmd, lanes.len());
                lanes.get(at).ok_or(Stopped)?.send(cmd).map_err(|_| Stopped)
            }
        }
    }

    /// Starts `lanes` lanes (at least one) on the PostgreSQL runtime; they
    /// stop when the writer is dropped.
    pub(super) fn start_lanes(
        db: PgIdempotency,
        lanes: usize,
        clock: Arc<dyn Clock>,
        purge_every: std::time::Duration,
        max_total: u64,
    ) -> Self {
        let senders = (0..lanes.max(1))
            .map(|i| {
                let (tx, rx) = async_mpsc::unbounded_channel();
                let purge = (i == 0).then_some(purge_every);
                PgIdempotency::spawn(lane(db.clone(), rx, clock.clone(), purge, max_total));
                tx
            })
            .collect();
        Writer::Lanes(senders)
    }
}

/// The lane of `cmd`'s key (a purge: the first).
fn lane_of(cmd: &Cmd, lanes: usize) -> usize {
    let k = match cmd {
        Cmd::Claim { k, .. } | Cmd::Complete { k, .. } | Cmd::Fail { k, .. } => k,
        Cmd::Purge { .. } => return 0,
    };
    if lanes <= 1 {
        return 0;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    k.hash(&mut h);
    usize::try_from(h.finish() % lanes as u64).unwrap_or(0)
}

/// One lane: the commands waiting together (up to [`MAX_BATCH`]) go through
/// [`PgIdempotency::apply_lane`] at once (pipelined on the lane's own
/// connection), their callers answered once their changes are committed; the first lane also purges expired records every `purge`.
async fn lane(
    db: PgIdempotency,
    mut rx: async_mpsc::UnboundedReceiver<Cmd>,
    clock: Arc<dyn Clock>,
    purge: Option<std::time::Duration>,
    max_total: u64,
) {
    let mut conn = LaneConn::default();
    let mut next_purge = purge.map(|every| tokio::time::Instant::now() + every);
    loop {
        let first = match next_purge {
            Some(at) => tokio::select! {
                c = rx.recv() => c,
                () = tokio::time::sleep_until(at) => {
                    next_purge = purge.map(|every| tokio::time::Instant::now() + every);
                    match db.apply_batch(vec![Change::Purge { now: clock.now() }]).await.pop() {
                        Some(Changed::Purge(Ok(0))) | None => {}
                        Some(Changed::Purge(Ok(n))) => tracing::debug!(purged = n, "expired idempotency records deleted"),
                        Some(Changed::Purge(Err(e))) => tracing::warn!(error = %e, "expired idempotency records could not be deleted"),
                        Some(_) => {}
                    }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let results = db.apply_lane(&mut conn, changes_of(&batch, &*clock, max_total)).await;
        batch.into_iter().zip(results).for_each(|(cmd, out)| answer(cmd, outcome(out)));
    }
}
