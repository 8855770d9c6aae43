//! The usage ledger writer: one OS thread owns a SQLite connection and
//! group-commits the usage events that requests send it. A request's
//! `record` returns only once its event is committed (so a response never
//! completes before its usage is durable); writes are idempotent on the
//! request id. The last 1,000 committed events stay in memory for live views.

use crate::domain::UsageEvent;
use crate::store::{SqliteLedger, Store, StoreError, UsageLedger};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// How many recent events live views can see.
pub const LIVE_WINDOW: usize = 1_000;
/// Most events written in one transaction.
const MAX_BATCH: usize = 2_048;

enum Msg {
    Record(UsageEvent, Option<oneshot::Sender<Result<(), String>>>),
    Flush(oneshot::Sender<()>),
}

/// Cheap to clone; the writer thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::UnboundedSender<Msg>,
    recent: Arc<Mutex<VecDeque<UsageEvent>>>,
    stats: Arc<LedgerStats>,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct LedgerStats {
    pub committed: std::sync::atomic::AtomicU64,
    pub duplicates: std::sync::atomic::AtomicU64,
    pub batches: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the usage ledger could not write: {0}")]
    Write(String),
    #[error("the usage ledger has stopped")]
    Stopped,
}

impl Ledger {
    /// Starts the writer thread on its own connection to `store`'s file.
    pub fn start(store: &Store) -> Result<Ledger, StoreError> {
        let ledger = SqliteLedger::open(store)?;
        Ok(Self::start_with(Box::new(ledger)))
    }

    /// Starts the writer over any ledger backend.
    pub fn start_with(mut backend: Box<dyn UsageLedger>) -> Ledger {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let recent = Arc::new(Mutex::new(VecDeque::with_capacity(LIVE_WINDOW)));
        let stats = Arc::new(LedgerStats::default());
        let (recent2, stats2) = (recent.clone(), stats.clone());
        std::thread::Builder::new()
            .name("usage-ledger".into())
            .spawn(move || {
                let mut batch: Vec<UsageEvent> = Vec::with_capacity(MAX_BATCH);
                let mut acks: Vec<oneshot::Sender<Result<(), String>>> = Vec::with_capacity(MAX_BATCH);
                let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    let mut next = Some(first);
                    // Take everything already queued: one transaction for all of it.
                    while let Some(msg) = next.take().or_else(|| if batch.len() < MAX_BATCH { rx.try_recv().ok() } else { None }) {
                        match msg {
                            Msg::Record(e, ack) => {
                                batch.push(e);
                                if let Some(a) = ack {
                                    acks.push(a);
                                }
                            }
                            Msg::Flush(f) => flushes.push(f),
                        }
                    }
                    let result = if batch.is_empty() { Ok(0) } else { backend.append(&batch) };
                    use std::sync::atomic::Ordering::Relaxed;
                    match &result {
                        Ok(new) => {
                            stats2.committed.fetch_add(*new as u64, Relaxed);
                            stats2.duplicates.fetch_add((batch.len() - new) as u64, Relaxed);
                            stats2.batches.fetch_add(1, Relaxed);
                            let mut r = recent2.lock().unwrap_or_else(|e| e.into_inner());
                            for e in batch.drain(..) {
                                if r.len() == LIVE_WINDOW {
                                    r.pop_front();
                                }
                                r.push_back(e);
                            }
                        }
                        Err(e) => {
                            stats2.failures.fetch_add(1, Relaxed);
                            tracing::error!(error = %e, events = batch.len(), "usage ledger write failed");
                            batch.clear();
                        }
                    }
                    let res = result.map(|_| ()).map_err(|e| e.to_string());
                    for a in acks.drain(..) {
                        let _ = a.send(res.clone());
                    }
                    for f in flushes.drain(..) {
                        let _ = f.send(());
                    }
                }
            })
            .expect("spawn the usage ledger thread");
        Ledger { tx, recent, stats }
    }

    /// Records an event and waits until it is committed.
    pub async fn record(&self, event: UsageEvent) -> Result<(), LedgerError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Record(event, Some(tx))).map_err(|_| LedgerError::Stopped)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LedgerError::Write(e)),
            Err(_) => Err(LedgerError::Stopped),
        }
    }

    /// Records an event without waiting (for a stream whose client went away:
    /// there is no one left to answer, but the usage must still be written).
    pub fn record_detached(&self, event: UsageEvent) {
        let _ = self.tx.send(Msg::Record(event, None));
    }

    /// Waits until everything sent before this call is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The most recent committed events, newest last (at most [`LIVE_WINDOW`]).
    pub fn recent(&self, n: usize) -> Vec<UsageEvent> {
        let r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        r.iter().skip(r.len().saturating_sub(n)).cloned().collect()
    }

    pub fn stats(&self) -> &LedgerStats {
        &self.stats
    }
}
