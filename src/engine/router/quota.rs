//! The platform quota on the request path: one counter per supplier and
//! calendar month (loaded from the ledger when the month starts), tokens
//! reserved before a platform attempt as an owned [`Reservation`] (given back
//! when it drops: error, client gone, panic, shutdown) and settled to the
//! actual usage after it, and the quota warning and exceeded events.
//!
//! Fleet mode ([`super::RouterConfig::quota_leases`]): each counter also
//! holds this instance's lease on the supplier's month
//! ([`crate::engine::quota_lease::LocalLease`]); reservations come from the
//! lease (no round trip), and [`Router::top_up_quota_leases`], run by a
//! background task, asks the fleet's database for slices.

use super::attempt::Prepared;
use super::catalog::SupplierEntry;
use super::{RouteError, Router, RouterEvent};
use crate::domain::SupplierId;
use crate::domain::calendar::next_month_start;
use crate::engine::quota_lease::{LeaseAsk, LocalLease, QuotaSource, lease_end, quota_month};
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
    /// Fleet mode: this instance's lease on the month.
    pub(super) lease: Option<LocalLease>,
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
    /// Fleet mode: the month of the lease the tokens were reserved from.
    lease_month: Option<chrono::NaiveDate>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let n = std::mem::take(&mut self.tokens);
        if n > 0 {
            let mut q = self.counter.lock();
            q.reserved = q.reserved.saturating_sub(n);
            if let Some(l) = q.lease.as_mut().filter(|l| Some(l.month) == self.lease_month) {
                l.release(n);
            }
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
            q.lease = self.cfg.quota_leases.map(|_| LocalLease::new(quota_month(now)));
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
        let lease_month = match q.lease.as_mut() {
            // Fleet mode: the lease decides (a wedding day passes, debited).
            Some(l) => {
                l.try_reserve(n, p.wedding_day, p.now).ok()?;
                Some(l.month)
            }
            None => {
                if !p.wedding_day && q.used.saturating_add(q.reserved).saturating_add(n) > quota {
                    return None;
                }
                None
            }
        };
        q.reserved = q.reserved.saturating_add(n);
        Some(Reservation { counter: p.supplier.quota.clone(), tokens: n, lease_month })
    }

    /// Replaces a reservation by the actual usage; raises quota events.
    pub(super) fn settle(&self, p: &Prepared, mut reservation: Reservation, actual: u64) {
        let quota = self.quota_of(p);
        let reserved = std::mem::take(&mut reservation.tokens);
        let events = {
            let mut q = reservation.counter.lock();
            q.reserved = q.reserved.saturating_sub(reserved);
            q.used = q.used.saturating_add(actual);
            let month = reservation.lease_month;
            if let Some(l) = q.lease.as_mut().filter(|l| Some(l.month) == month) {
                l.settle(reserved, actual);
            }
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

    /// Fleet mode: asks `source` for what every supplier's lease wants now
    /// (a slice when it runs low or has ended, a renewal when it ends soon)
    /// and applies the answers; returns how many asks were answered. A
    /// background task calls it every `LeaseSettings::check_every` ([`crate::engine::quota_lease::run`]); never
    /// the request path. Does nothing outside fleet mode.
    pub async fn top_up_quota_leases(&self, source: &dyn QuotaSource) -> Result<usize, String> {
        let Some(settings) = self.cfg.quota_leases else { return Ok(0) };
        let cat = self.catalog();
        let mut answered = 0;
        for s in cat.suppliers.values() {
            // One ask at a time per supplier, with the requests' own asks
            // (`router::lease`), so answers are applied in the order given.
            let gate = self.lease_refill.gate(s.supplier.id);
            let _one_at_a_time = gate.lock().await;
            let now = self.clock.now();
            let want = {
                let mut q = s.quota.lock();
                self.roll(&mut q, s.supplier.id, now);
                q.lease.as_ref().and_then(|l| l.want(&settings, now).map(|w| (w, l.month)))
            };
            let Some((want, month)) = want else { continue };
            let ask = LeaseAsk {
                supplier: s.supplier.id,
                month,
                want,
                quota: self.cfg.quota.monthly_tokens(s.supplier.tier, now.date_naive()),
                now,
                expires_at: lease_end(now, settings.ttl, s.supplier.time_zone),
            };
            let a = source.lease(ask).await?;
            let mut q = s.quota.lock();
            if let Some(l) = q.lease.as_mut().filter(|l| l.month == month) {
                l.apply(a.granted, a.folded, a.expires_at);
            }
            answered += 1;
        }
        Ok(answered)
    }

    /// Fleet mode: gives back what the leases hold and will not use (at a
    /// clean stop, before the last fold). Returns the tokens given back.
    pub async fn return_quota_leases(&self, source: &dyn QuotaSource) -> Result<u64, String> {
        if self.cfg.quota_leases.is_none() {
            return Ok(0);
        }
        let cat = self.catalog();
        let mut back = 0u64;
        for s in cat.suppliers.values() {
            let gate = self.lease_refill.gate(s.supplier.id);
            let _one_at_a_time = gate.lock().await;
            let held = s.quota.lock().lease.as_ref().filter(|l| l.granted > 0).map(|l| (l.month, l.keep()));
            if let Some((month, keep)) = held {
                back = back.saturating_add(source.return_unused(s.supplier.id, month, keep, self.clock.now()).await?);
                if let Some(l) = s.quota.lock().lease.as_mut().filter(|l| l.month == month) {
                    l.granted = l.granted.min(i64::try_from(keep).unwrap_or(i64::MAX));
                }
            }
        }
        Ok(back)
    }

    /// Fleet mode: a supplier's lease as this instance sees it.
    pub fn quota_lease(&self, supplier: SupplierId) -> Option<LocalLease> {
        let cat = self.catalog();
        let s = cat.suppliers.get(&supplier)?;
        let mut q = s.quota.lock();
        self.roll(&mut q, supplier, self.clock.now());
        q.lease.clone()
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
