//! Fleet mode: the request path's own ask for quota when this instance's
//! lease has no room for a platform request.
//!
//! The lease task ([`crate::engine::quota_lease::run`]) tops leases up every
//! `check_every`, but a busy supplier can spend a slice faster than that,
//! and a supplier's first request on an instance finds no lease at all.
//! Refusing such a request with `quota_exceeded` would be a false refusal:
//! the fleet's quota may have plenty of room. So an attempt that finds no
//! room asks the fleet's database for a slice itself and is refused only
//! when the database has none either. This is a round trip on the request
//! path, but only when the lease ran dry: one at a time per supplier (the
//! requests that arrive meanwhile wait for that answer instead of asking
//! again), and not again for `check_every` after the database had no room,
//! so a supplier past its quota does not turn each refusal into a query.
//!
//! When the database has no room, the lease gives back what it holds past
//! its spending and reservations: another instance whose requests still
//! fit can lease it, so the fleet ends within about one request's tokens
//! of the quota instead of one request per instance (docs/fleet-quotas.md).

use super::Router;
use super::attempt::Prepared;
use crate::domain::SupplierId;
use crate::engine::quota_lease::{LeaseAsk, QuotaSource, lease_end, quota_month};
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;

/// When the database last had no room for a supplier's request, per supplier,
/// behind the lock that makes its asks one at a time.
type Gate = Arc<tokio::sync::Mutex<Option<DateTime<Utc>>>>;

/// Where a fleet router asks for quota on the request path.
#[derive(Default)]
pub(super) struct LeaseRefill {
    source: RwLock<Option<Arc<dyn QuotaSource>>>,
    gates: Mutex<HashMap<SupplierId, Gate>>,
}

impl LeaseRefill {
    fn gate(&self, supplier: SupplierId) -> Gate {
        self.gates.lock().entry(supplier).or_default().clone()
    }
}

impl Router {
    /// Fleet mode: lets requests whose lease has no room ask `source` (the
    /// fleet's database) for a slice themselves. Without it (and outside
    /// fleet mode) such requests are refused until the lease task's next
    /// round.
    pub fn set_quota_source(&self, source: Arc<dyn QuotaSource>) {
        *self.lease_refill.source.write() = Some(source);
    }

    /// Fleet mode: asks the fleet's database for a slice of `p`'s supplier's
    /// quota because the lease had no room for the request's estimate.
    /// Returns whether the lease has room for it now (then the attempt
    /// reserves again).
    pub(super) async fn refill_lease(&self, p: &Prepared) -> bool {
        let Some(settings) = self.cfg.quota_leases else { return false };
        if p.wedding_day {
            return false; // a wedding day is never refused by the lease
        }
        let Some(source) = self.lease_refill.source.read().clone() else { return false };
        let supplier = p.supplier.supplier.id;
        let need = i64::try_from(p.estimate).unwrap_or(i64::MAX);
        let has_room = |now: DateTime<Utc>| {
            let q = p.supplier.quota.lock();
            q.lease.as_ref().is_some_and(|l| l.is_live(now) && l.remaining() >= need)
        };
        let gate = self.lease_refill.gate(supplier);
        let mut no_room_at = gate.lock().await;
        let now = self.clock.now();
        if has_room(now) {
            return true; // asked for by the request this one waited for
        }
        let window = chrono::Duration::from_std(settings.check_every).unwrap_or(chrono::Duration::MAX);
        if no_room_at.is_some_and(|at| at <= now && now - at < window) {
            return false;
        }
        let month = quota_month(now);
        let ask = LeaseAsk {
            supplier,
            month,
            want: settings.slice_tokens.max(p.estimate.saturating_mul(2)),
            quota: self.quota_of(p),
            now,
            expires_at: lease_end(now, settings.ttl, p.supplier.supplier.time_zone),
        };
        let answer = match source.lease(ask).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, supplier = supplier.0, "cannot lease quota for a request (refused as over quota)");
                *no_room_at = Some(now);
                return false;
            }
        };
        let keep = {
            let mut q = p.supplier.quota.lock();
            match q.lease.as_mut().filter(|l| l.month == month) {
                Some(l) => {
                    l.apply(answer.granted, answer.folded, answer.expires_at);
                    if l.is_live(now) && l.remaining() >= need {
                        return true;
                    }
                    // Nothing more is reserved from what goes back.
                    let keep = l.keep();
                    l.granted = l.granted.min(i64::try_from(keep).unwrap_or(i64::MAX));
                    keep
                }
                None => return false,
            }
        };
        *no_room_at = Some(now);
        // No room here or in the database: give back what this lease holds
        // unused, for an instance whose requests still fit. (If that fails,
        // this instance only under-counts its grant until the next answer.)
        if let Err(e) = source.return_unused(supplier, month, keep, now).await {
            tracing::warn!(error = %e, supplier = supplier.0, "cannot return an unused quota lease");
        }
        false
    }
}
