//! The ledger's way back: holding the events of requests under way while
//! the database cannot write, and writing them, exactly once, when it can
//! (see [`super::health`] for the rules).

use super::health::{log_dropped, next_backoff};
use super::{LedgerError, MAX_BATCH, Writer};
use crate::domain::UsageEvent;
use crate::store::StoreError;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Writer {
    /// Keeps `batch` (emptying it) until the ledger can write again; what
    /// does not fit under the limit is logged in full and refused.
    pub(super) fn hold(&mut self, batch: &mut Vec<UsageEvent>) -> Result<(), LedgerError> {
        let limit = self.health.limit();
        let mut dropped = 0usize;
        for e in batch.drain(..) {
            if self.pending.len() < limit {
                self.pending.push_back(e);
            } else {
                log_dropped(&e, "too many events wait for the ledger to write again");
                dropped += 1;
            }
        }
        self.health.set_pending(self.pending.len());
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            return Err(LedgerError::Overflow(limit));
        }
        Ok(())
    }

    /// A retry failed (after writing `written` events): wait longer.
    fn retry_failed(&mut self, e: &StoreError, written: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.failures.fetch_add(1, Relaxed);
        self.stats.recovered.fetch_add(written, Relaxed);
        self.health.set_pending(self.pending.len());
        let wait = next_backoff(self.retry.map(|(_, w)| w).unwrap_or_default());
        tracing::warn!(error = %e, pending = self.pending.len(), retry_in_ms = wait.as_millis() as u64, "usage ledger still cannot write");
        self.health.went_down(e.to_string());
        self.retry = Some((Instant::now() + wait, wait));
    }

    /// Writes the pending events, oldest first, in batches; the ledger is up
    /// again once they are all written. On a failure the next try waits longer.
    pub(super) fn retry_pending(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut written = 0u64;
        while !self.pending.is_empty() {
            let n = self.pending.len().min(MAX_BATCH);
            let mut batch: Vec<UsageEvent> = self.pending.drain(..n).collect();
            match self.backend.append(&batch) {
                Ok(new) => {
                    written = written.saturating_add(batch.len() as u64);
                    self.committed(&mut batch, new);
                    self.health.set_pending(self.pending.len());
                }
                Err(e) if e.is_constraint() => {
                    // A row the database refuses would keep the ledger down
                    // for good: write the batch one event at a time, and let
                    // go of (log) only the refused ones.
                    let mut rest = batch.into_iter();
                    while let Some(ev) = rest.next() {
                        let mut one = vec![ev];
                        match self.backend.append(&one) {
                            Ok(new) => {
                                written = written.saturating_add(1);
                                self.committed(&mut one, new);
                            }
                            Err(e) if e.is_constraint() => {
                                for ev in &one {
                                    log_dropped(ev, &format!("the database refused the row: {e}"));
                                }
                                self.stats.dropped.fetch_add(1, Relaxed);
                            }
                            Err(e) => {
                                // The database failed again: the rest waits for the next try.
                                for ev in rest.rev().chain(one) {
                                    self.pending.push_front(ev);
                                }
                                self.retry_failed(&e, written);
                                return;
                            }
                        }
                    }
                    self.health.set_pending(self.pending.len());
                }
                Err(e) => {
                    // Back in front, in order.
                    for ev in batch.into_iter().rev() {
                        self.pending.push_front(ev);
                    }
                    self.retry_failed(&e, written);
                    return;
                }
            }
        }
        self.stats.recovered.fetch_add(written, Relaxed);
        self.health.set_pending(0);
        self.retry = None;
        let since = self.health.came_up();
        tracing::info!(written, down_since = ?since, "usage ledger writes again; new requests are accepted");
    }
}
