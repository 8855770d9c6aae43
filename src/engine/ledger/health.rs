//! The ledger's health and the events it holds while the journal cannot write.
//!
//! The ledger is either up or down. It goes down when the usage journal
//! cannot take a record: a write into the current segment fails, or a new
//! segment cannot be created and preallocated (a full disk, a file-size
//! limit, an I/O error). A database that cannot write does not take it down:
//! the journal keeps the events and the fold catches up later. While it is down:
//!
//! - [`Ledger::admit`](super::Ledger::admit) refuses every new request before
//!   any provider is called (the router checks it in its prepare step), and
//!   counts the refusal;
//! - events of requests already under way are kept in memory, in order, up to
//!   [`PENDING_LIMIT`] (the bound only limits events of requests that were in
//!   flight when the ledger went down, since no new request is let in); past
//!   it, an event is written to the log in full, counted as dropped, and its
//!   request is answered with an error;
//! - the fold thread tries to open a new segment with a backoff of
//!   [`RETRY_FIRST`] doubling up to [`RETRY_MAX`]; once one opens, the held
//!   events are written into it first, oldest first, and the ledger is up
//!   again.

use super::LedgerStats;
use crate::domain::{Clock, SystemClock, UsageEvent};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Most events kept in memory while the ledger is down.
pub const PENDING_LIMIT: usize = 100_000;
/// The first retry of pending events comes this long after the failure.
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
/// The longest wait between two retries.
pub const RETRY_MAX: Duration = Duration::from_secs(2);
/// What a refused request is told to wait (about the longest retry wait).
pub const RETRY_AFTER_SECS: u64 = 2;

/// The wait after `last` failed retry (doubling, at most [`RETRY_MAX`]).
pub fn next_backoff(last: Duration) -> Duration {
    last.saturating_mul(2).clamp(RETRY_FIRST, RETRY_MAX)
}

/// Why and since when the ledger cannot write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerDown {
    /// The store's error: names the database file and SQLite's text. For
    /// operators (log, `/healthz`), never for clients.
    pub reason: String,
    pub since: DateTime<Utc>,
    /// Events waiting to be written.
    pub pending: usize,
}

/// The ledger's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerState {
    Up,
    Down(LedgerDown),
}

/// A new request was refused because the ledger cannot write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the usage ledger cannot write")]
pub struct LedgerRefusal;

/// Shared between the writer and the request path.
pub(super) struct Health {
    /// Its `down` flag is read by every request (the one check on the fast
    /// path); its `pending` gauge counts the events held now.
    stats: Arc<LedgerStats>,
    /// The reason and since when, while down.
    detail: Mutex<Option<(String, DateTime<Utc>)>>,
    clock: Mutex<Arc<dyn Clock>>,
    limit: AtomicU64,
}

impl Health {
    pub(super) fn new(stats: Arc<LedgerStats>) -> Self {
        Health { stats, detail: Mutex::new(None), clock: Mutex::new(Arc::new(SystemClock)), limit: AtomicU64::new(PENDING_LIMIT as u64) }
    }

    pub(super) fn is_down(&self) -> bool {
        self.stats.down.load(Ordering::Acquire)
    }

    /// Sets the gauge of events held.
    pub(super) fn set_pending(&self, n: usize) {
        self.stats.pending.store(n as u64, Ordering::Relaxed);
    }

    pub(super) fn set_clock(&self, clock: Arc<dyn Clock>) {
        *self.clock.lock() = clock;
    }

    pub(super) fn set_limit(&self, n: usize) {
        self.limit.store(n as u64, Ordering::Relaxed);
    }

    pub(super) fn limit(&self) -> usize {
        usize::try_from(self.limit.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Marks the ledger down (keeping the first `since`, updating the reason).
    pub(super) fn went_down(&self, reason: String) {
        let mut d = self.detail.lock();
        match d.as_mut() {
            Some((r, _)) => *r = reason,
            None => {
                let since = self.clock.lock().now();
                *d = Some((reason, since));
            }
        }
        self.stats.down.store(true, Ordering::Release);
    }

    /// Marks the ledger up; returns since when it was down.
    pub(super) fn came_up(&self) -> Option<DateTime<Utc>> {
        let was = self.detail.lock().take().map(|(_, since)| since);
        self.stats.down.store(false, Ordering::Release);
        was
    }

    pub(super) fn state(&self) -> LedgerState {
        match self.detail.lock().as_ref() {
            Some((reason, since)) => LedgerState::Down(LedgerDown {
                reason: reason.clone(),
                since: *since,
                pending: usize::try_from(self.stats.pending.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
            }),
            None => LedgerState::Up,
        }
    }
}

/// Writes an event the ledger had to let go of to the log, in full, so that
/// it can still be accounted for by hand.
pub(super) fn log_dropped(e: &UsageEvent, why: &str) {
    let u = &e.usage;
    tracing::error!(
        event_id = %e.event_id,
        request_id = %e.request_id,
        idempotency_key = ?e.idempotency_key,
        ts = %e.ts.to_rfc3339(),
        supplier_id = e.supplier_id.0,
        account_id = ?e.account_id.map(|a| a.0),
        provider = e.provider.as_str(),
        model = %e.model,
        request_type = e.request_type.code(),
        route = e.route.code(),
        input_tokens = u.input,
        output_tokens = u.output,
        cached_tokens = u.cached_read,
        cache_write_tokens = u.cache_write,
        reasoning_tokens = u.reasoning,
        estimated = u.estimated,
        cost_micros = e.cost.0,
        latency_ms = e.latency_ms,
        status = e.status.code(),
        error_class = ?e.error_class,
        "usage event not recorded ({why}); account for it by hand"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ManualClock;
    use chrono::TimeZone;

    #[test]
    fn backoff_doubles_from_the_first_wait_up_to_the_longest() {
        assert_eq!(next_backoff(Duration::ZERO), RETRY_FIRST);
        assert_eq!(next_backoff(RETRY_FIRST), Duration::from_millis(500));
        assert_eq!(next_backoff(Duration::from_millis(1500)), RETRY_MAX);
        assert_eq!(next_backoff(Duration::MAX), RETRY_MAX, "no overflow");
    }

    #[test]
    fn down_keeps_its_first_moment_and_up_clears_it() {
        let t0 = Utc.with_ymd_and_hms(2026, 6, 6, 18, 0, 0).unwrap();
        let clock = ManualClock::new(t0);
        let h = Health::new(Arc::default());
        h.set_clock(Arc::new(clock.clone()));
        assert_eq!(h.state(), LedgerState::Up);
        h.went_down("disk full".into());
        clock.advance(chrono::Duration::seconds(5));
        h.went_down("still full".into());
        assert!(h.is_down());
        assert_eq!(h.state(), LedgerState::Down(LedgerDown { reason: "still full".into(), since: t0, pending: 0 }));
        assert_eq!(h.came_up(), Some(t0));
        assert!(!h.is_down());
        assert_eq!(h.state(), LedgerState::Up);
    }
}
