//! The platform quota on the request path: one counter per supplier and
//! calendar month (loaded from the ledger when the month starts), tokens
//! reserved before a platform attempt as an owned [`Reservation`] (given back
//! when it drops: error, client gone, panic, shutdown) and settled to the
//! actual usage after it, and the quota warning and exceeded events.

use super::attempt::Prepared;
use super::catalog::SupplierEntry;
use super::{RouteError, Router, RouterEvent};
use crate::domain::SupplierId;
use crate::domain::calendar::next_month_start;
use chrono::{DateTime, Datelike, Utc};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A platform quota counter for one supplier and calendar month.
#[derive(Debug, Default)]
pub(super) struct QuotaCounter {
    month: (i32, u32),
    used: u64,
    reserved: u64,
    warned: bool,
    /// When `QuotaExceeded` was last raised, and whether for a wedding day.
    exceeded_raised: Option<(DateTime<Utc>, bool)>,
}

/// Platform tokens held against a supplier's quota while an attempt runs.
/// Dropping it gives them back, whatever ended the attempt (an error, the
/// request future dropped because the client went away, a panic, shutdown);
/// [`Router::settle`] consumes it and counts the actual usage instead. It
/// cannot leak: nothing else holds reserved tokens.
#[must_use = "dropping a reservation gives its tokens back at once"]
pub(super) struct Reservation {
    counter: Arc<Mutex<QuotaCounter>>,
    tokens: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let n = std::mem::take(&mut self.tokens);
        if n > 0 {
            let mut q = self.counter.lock();
            q.reserved = q.reserved.saturating_sub(n);
        }
    }
}

/// While a supplier stays over its quota (wedding-day overage), its
/// `QuotaExceeded` event is raised again at most this often, with the latest
/// figures: once per request flooded the event channel under load.
const QUOTA_EXCEEDED_EVERY_SECS: i64 = 60;

impl Router {
    /// Platform tokens used and reserved this month by a supplier (from the
    /// live counter), and its quota: (used, reserved, quota).
    pub fn quota_snapshot(&self, supplier: SupplierId) -> Option<(u64, u64, u64)> {
        let cat = self.catalog();
        let s = cat.suppliers.get(&supplier)?;
        let now = self.clock.now();
        let q = self.counter(s, now);
        let quota = self.cfg.quota.monthly_tokens(s.supplier.tier, now.date_naive());
        Some((q.0, q.1, quota))
    }

    /// (used, reserved) of the supplier's counter, rolled over to `now`'s month
    /// (loading the month's usage from the ledger the first time).
    pub(super) fn counter(&self, s: &SupplierEntry, now: DateTime<Utc>) -> (u64, u64) {
        let mut q = s.quota.lock();
        self.roll(&mut q, s.supplier.id, now);
        (q.used, q.reserved)
    }

    fn roll(&self, q: &mut QuotaCounter, supplier: SupplierId, now: DateTime<Utc>) {
        let month = (now.year(), now.month());
        if q.month != month {
            let from = crate::domain::calendar::month_start(now);
            // The folded usage plus what this process journaled and has not folded yet.
            let used = self.ledger.quota_tokens_used(&self.store, supplier, from, next_month_start(now)).unwrap_or(0);
            q.month = month;
            q.used = used;
            q.warned = false;
            q.exceeded_raised = None;
        }
    }

    /// The supplier's monthly platform quota on the request's day.
    pub(super) fn quota_of(&self, p: &Prepared) -> u64 {
        self.cfg.quota.monthly_tokens(p.supplier.supplier.tier, p.now.date_naive())
    }

    /// Tries to reserve `n` platform tokens; `None` when the quota has no room.
    pub(super) fn reserve(&self, p: &Prepared, n: u64) -> Option<Reservation> {
        let quota = self.quota_of(p);
        let mut q = p.supplier.quota.lock();
        self.roll(&mut q, p.supplier.supplier.id, p.now);
        if !p.wedding_day && q.used.saturating_add(q.reserved).saturating_add(n) > quota {
            return None;
        }
        q.reserved = q.reserved.saturating_add(n);
        Some(Reservation { counter: p.supplier.quota.clone(), tokens: n })
    }

    /// Replaces a reservation by the actual usage; raises quota events.
    pub(super) fn settle(&self, p: &Prepared, mut reservation: Reservation, actual: u64) {
        let quota = self.quota_of(p);
        let reserved = std::mem::take(&mut reservation.tokens);
        let events = {
            let mut q = reservation.counter.lock();
            q.reserved = q.reserved.saturating_sub(reserved);
            q.used = q.used.saturating_add(actual);
            let status = crate::domain::QuotaStatus::new(q.used, quota, self.cfg.quota.warn_percent);
            let mut ev = Vec::new();
            if status.is_warning() && !q.warned {
                q.warned = true;
                ev.push(RouterEvent::QuotaWarning { supplier: p.supplier.supplier.id, used: q.used, quota });
            }
            let due = match q.exceeded_raised {
                None => true,
                Some((at, wedding)) => (p.now - at).num_seconds() >= QUOTA_EXCEEDED_EVERY_SECS || at > p.now || (p.wedding_day && !wedding),
            };
            if status.is_exhausted() && due {
                q.exceeded_raised = Some((p.now, p.wedding_day));
                ev.push(RouterEvent::QuotaExceeded { supplier: p.supplier.supplier.id, used: q.used, quota, wedding_day: p.wedding_day });
            }
            ev
        };
        for e in events {
            let _ = self.events.send(e);
        }
    }

    /// The refusal of a request the platform quota has no room for.
    pub(super) fn quota_error(&self, p: &Prepared) -> RouteError {
        let quota = self.quota_of(p);
        let (used, _) = self.counter(&p.supplier, p.now);
        let reset = next_month_start(p.now);
        self.metrics.quota_refused.fetch_add(1, Ordering::Relaxed);
        RouteError::QuotaExceeded { quota, used, reset: reset.to_rfc3339(), retry_after_secs: (reset - p.now).num_seconds().max(1) as u64 }
    }
}
