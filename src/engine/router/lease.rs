//! Fleet mode: the request path's own ask for quota when this instance's
//! lease has no room for a platform request.
//!
//! The lease task ([`crate::engine::quota_lease::run`]) tops leases up every
//! `check_every`, but a busy supplier can spend a slice faster than that,
//! and a supplier's first request on an instance may find no lease at all.
//! Refusing such a request with `quota_exceeded` would be a false refusal:
//! the fleet's quota may have plenty of room. So an attempt that finds no
//! room asks the fleet's database for what it lacks and is refused only when
//! the database has too little left for it. That is a round trip on the
//! request path, but only when the lease ran dry, and one at a time per
//! supplier (requests that arrive while an ask is on its way wait for it,
//! and find room if it brought enough). A request the database refuses has
//! asked for itself: an answer given to another request earlier may be
//! stale by then (another instance may have given quota back since), so it
//! is not reused. A supplier past its quota thus costs one query per
//! refused request, no more than its tier's rate limit lets through. After
//! a failed ask (the database unreachable) none is made for `check_every`.
//!
//! When the database has too little, the same transaction gives back what
//! this lease holds past its spending and reservations
//! (`store::pg::leases::lease_for_request`), so another instance whose
//! requests still fit can lease it: the fleet ends within one request's
//! reservation of the quota, as one instance does (docs/fleet-quotas.md).

use super::Router;
use super::attempt::Prepared;
use crate::domain::SupplierId;
use crate::engine::quota_lease::{LeaseAsk, QuotaSource, lease_end, quota_month};
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;

/// When a supplier's last ask failed (the database unreachable), by the router's clock.
pub(super) type Failed = Option<DateTime<Utc>>;

/// Per supplier: the lock that makes asks one at a time, and when the last one failed.
pub(super) type Gate = Arc<tokio::sync::Mutex<Failed>>;

/// Where a fleet router asks for quota on the request path.
#[derive(Default)]
pub(super) struct LeaseRefill {
    source: RwLock<Option<Arc<dyn QuotaSource>>>,
    gates: Mutex<HashMap<SupplierId, Gate>>,
}

impl LeaseRefill {
    pub(super) fn gate(&self, supplier: SupplierId) -> Gate {
        self.gates.lock().entry(supplier).or_default().clone()
    }
}

impl Router {
    /// Fleet mode: lets requests whose lease has no room ask `source` (the
    /// fleet's database) for quota themselves. Without it (and outside
    /// fleet mode) such requests are refused until the lease task's next round.
    pub fn set_quota_source(&self, source: Arc<dyn QuotaSource>) {
        *self.lease_refill.source.write() = Some(source);
    }

    /// Fleet mode: asks the fleet's database for what `p`'s supplier's lease
    /// lacks for the request's estimate. Returns whether the lease has room
    /// for it now (then the attempt reserves again).
    pub(super) async fn refill_lease(&self, p: &Prepared) -> bool {
        let Some(settings) = self.cfg.quota_leases else { return false };
        if p.wedding_day {
            return false; // a wedding day is never refused by the lease
        }
        let Some(source) = self.lease_refill.source.read().clone() else { return false };
        let supplier = p.supplier.supplier.id;
        let need = i64::try_from(p.estimate).unwrap_or(i64::MAX);
        let gate = self.lease_refill.gate(supplier);
        let mut failed = gate.lock().await;
        let now = self.clock.now();
        let month = quota_month(now);
        // What the lease lacks, and what it must keep if it gives back; and
        // nothing more is reserved from it while the ask is on its way.
        let (lacked, keep, held) = {
            let mut q = p.supplier.quota.lock();
            let Some(l) = q.lease.as_mut().filter(|l| l.month == month) else { return false };
            if l.is_live(now) && l.remaining() >= need {
                return true; // an ask this request waited for brought enough
            }
            let lacked = u64::try_from(need.saturating_sub(l.remaining().max(0))).unwrap_or(0);
            let keep = l.keep();
            let held = l.granted;
            l.granted = l.granted.min(i64::try_from(keep).unwrap_or(i64::MAX));
            (lacked, keep, held)
        };
        let restore = || {
            if let Some(l) = p.supplier.quota.lock().lease.as_mut().filter(|l| l.month == month) {
                l.granted = l.granted.max(held);
            }
        };
        let backoff = chrono::Duration::from_std(settings.check_every).unwrap_or_default();
        if failed.is_some_and(|at| at <= now && now - at < backoff) {
            restore();
            return false;
        }
        let ask = LeaseAsk {
            supplier,
            month,
            want: settings.slice_tokens.max(p.estimate.saturating_mul(2)),
            quota: self.quota_of(p),
            now,
            expires_at: lease_end(now, settings.ttl, p.supplier.supplier.time_zone),
        };
        let answer = match source.lease_for_request(ask, lacked, keep).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, supplier = supplier.0, "cannot lease quota for a request (refused as over quota)");
                restore();
                *failed = Some(now);
                return false;
            }
        };
        let mut q = p.supplier.quota.lock();
        let Some(l) = q.lease.as_mut().filter(|l| l.month == month) else { return false };
        l.apply(answer.granted, answer.folded, answer.expires_at);
        *failed = None;
        l.is_live(now) && l.remaining() >= need
    }
}
