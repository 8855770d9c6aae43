//! Quota leases, the instance's side (issue 25; the database side is
//! `store::pg::leases`, the bound is in docs/fleet-quotas.md): pure
//! arithmetic, no I/O, time passed in.
//!
//! An instance serves a supplier's platform requests from a [`LocalLease`]:
//! it reserves a request's tokens from the lease before the provider call
//! (no round trip), settles them to the actual usage after, and asks the
//! database for another slice ([`LocalLease::want`], [`LeaseSettings`]) from
//! a background task when the lease runs low or is about to expire. What the
//! database answers is applied with [`LocalLease::apply`].
//!
//! - A lease covers one UTC quota month ([`quota_month`], the rule of
//!   `domain::calendar` and of the SQLite quota counter), and ends at
//!   [`lease_end`]: its time to live, the month's end, or the supplier's next
//!   local midnight, whichever comes first. So a lease never serves past the
//!   supplier's local midnight unseen: a wedding day ends there, and the
//!   next day's requests wait for a renewal that sees the debt.
//! - Wedding-day requests are served past the lease by design, and debited
//!   from it all the same: its remaining part goes negative, and the next
//!   slice pays that debt first.
//! - An expired lease serves only wedding-day requests (which pass the quota
//!   anyway); the others are refused until the lease is renewed.

use crate::domain::SupplierId;
use crate::domain::calendar::{local_day_start, month_start, next_month_start};
use crate::store::pg::PgStore;
use crate::store::pg::leases::{self, LeaseKey};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// How an instance leases quota. Every figure is a setting (tests and
/// `serve` flags set them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Tokens asked for at a time. Smaller slices leave less quota idle in
    /// other instances' leases (an instance refuses sooner than the fleet
    /// must while others hold unused slices) at the cost of more round trips;
    /// they do not change how far past the quota the fleet can go
    /// (docs/fleet-quotas.md).
    pub slice_tokens: u64,
    /// Ask for the next slice when the lease's remaining part falls below this.
    pub refill_below: u64,
    /// How long a lease lasts unless renewed (an instance that stops
    /// renewing is gone; its lease stays counted until its journal is folded).
    pub ttl: Duration,
    /// Renew when the lease ends within this.
    pub renew_before: Duration,
    /// How often the background task looks at the leases ([`run`]).
    pub check_every: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            slice_tokens: 20_000,
            refill_below: 5_000,
            ttl: Duration::from_secs(60),
            renew_before: Duration::from_secs(20),
            check_every: Duration::from_millis(100),
        }
    }
}

/// The quota month of `now`: the first day of its UTC calendar month.
pub fn quota_month(now: DateTime<Utc>) -> NaiveDate {
    month_start(now).date_naive()
}

/// When a lease taken or renewed at `now` ends: after `ttl`, at the end of
/// the quota month, or at the supplier's next local midnight in `tz`,
/// whichever comes first (always after `now`).
pub fn lease_end(now: DateTime<Utc>, ttl: Duration, tz: Tz) -> DateTime<Utc> {
    let by_ttl = chrono::Duration::from_std(ttl).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC);
    let local_today = now.with_timezone(&tz).date_naive();
    let midnight = local_today.succ_opt().map(|d| local_day_start(d, tz)).filter(|m| *m > now);
    let month_end = next_month_start(now);
    let mut end = by_ttl.min(month_end);
    if let Some(m) = midnight {
        end = end.min(m);
    }
    end
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The lease has ended (or is another month's): renew it first.
    Expired,
    /// The lease has less room than the request needs.
    NoRoom { remaining: i64 },
}

/// One instance's lease on one supplier's quota month, as the instance
/// sees it: the database's cumulative grant, what this instance spent on it
/// (settled usage, journaled whether folded or not) and what it holds for
/// requests in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLease {
    pub month: NaiveDate,
    /// The lease's cumulative grant (`quota_leases.granted`).
    pub granted: i64,
    /// Settled platform tokens of this instance in this month.
    pub spent: i64,
    /// Tokens reserved by requests in flight.
    pub reserved: i64,
    pub expires_at: DateTime<Utc>,
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl LocalLease {
    /// No lease yet for `month` (everything but a wedding day is refused until the first grant).
    pub fn new(month: NaiveDate) -> LocalLease {
        LocalLease { month, granted: 0, spent: 0, reserved: 0, expires_at: DateTime::<Utc>::MIN_UTC }
    }

    /// `granted − spent − reserved`: negative after wedding-day usage past the grant.
    pub fn remaining(&self) -> i64 {
        self.granted.saturating_sub(self.spent).saturating_sub(self.reserved)
    }

    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at && quota_month(now) == self.month
    }

    /// Reserves `n` tokens for a request about to call a provider: on a
    /// wedding day always (the debit may take the lease negative),
    /// otherwise only from a live lease with room for all of `n`.
    pub fn try_reserve(&mut self, n: u64, wedding_day: bool, now: DateTime<Utc>) -> Result<(), Refusal> {
        if !wedding_day {
            if !self.is_live(now) {
                return Err(Refusal::Expired);
            }
            let remaining = self.remaining();
            if remaining < big(n) {
                return Err(Refusal::NoRoom { remaining });
            }
        }
        self.reserved = self.reserved.saturating_add(big(n));
        Ok(())
    }

    /// Replaces a reservation of `reserved` tokens by the `actual` usage.
    pub fn settle(&mut self, reserved: u64, actual: u64) {
        self.reserved = self.reserved.saturating_sub(big(reserved)).max(0);
        self.spent = self.spent.saturating_add(big(actual));
    }

    /// Gives a reservation back (the attempt ended without usage).
    pub fn release(&mut self, reserved: u64) {
        self.reserved = self.reserved.saturating_sub(big(reserved)).max(0);
    }

    /// Takes the database's answer: the cumulative grant, the instance's
    /// usage folded against the lease (its spending is at least that: a
    /// restarted instance starts from it) and the new end.
    pub fn apply(&mut self, granted: i64, folded: i64, expires_at: DateTime<Utc>) {
        self.granted = granted;
        self.spent = self.spent.max(folded);
        self.expires_at = expires_at;
    }

    /// What the lease must keep when the unused part is returned: spent plus in flight.
    pub fn keep(&self) -> u64 {
        u64::try_from(self.spent.saturating_add(self.reserved).max(0)).unwrap_or(0)
    }

    /// What to ask the database for now, if anything: a slice when the
    /// remaining part is low (or negative, or the lease has ended), 0 (a
    /// renewal only) when the lease ends soon, `None` when nothing is due.
    pub fn want(&self, s: &LeaseSettings, now: DateTime<Utc>) -> Option<u64> {
        if quota_month(now) != self.month {
            return None;
        }
        if !self.is_live(now) || self.remaining() < big(s.refill_below) {
            return Some(s.slice_tokens);
        }
        let soon = chrono::Duration::from_std(s.renew_before).unwrap_or(chrono::Duration::MAX);
        (self.expires_at.signed_duration_since(now) <= soon).then_some(0)
    }
}

/// A request for a slice of a supplier's quota month (or, with `want` 0, a renewal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseAsk {
    pub supplier: SupplierId,
    pub month: NaiveDate,
    pub want: u64,
    /// The supplier's monthly platform quota.
    pub quota: u64,
    pub now: DateTime<Utc>,
    /// [`lease_end`] of `now`.
    pub expires_at: DateTime<Utc>,
}

/// What the fleet's database answered ([`LocalLease::apply`] takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseAnswer {
    pub granted_now: u64,
    /// The lease's cumulative grant.
    pub granted: i64,
    /// This instance's usage folded against the lease.
    pub folded: i64,
    pub expires_at: DateTime<Utc>,
}

/// Where an instance's router gets quota from in fleet mode: the fleet's
/// database ([`PgQuotaSource`]). Called from the background task, and by a
/// request whose lease ran dry (`lease_for_request`).
pub trait QuotaSource: Send + Sync {
    fn lease(&self, ask: LeaseAsk) -> BoxFuture<'_, Result<LeaseAnswer, String>>;
    /// A request's own ask: grants only if at least `at_least` tokens can be
    /// granted; otherwise grants nothing and, atomically with that decision,
    /// gives back what the lease holds past `keep` (`store::pg::leases::lease_for_request`).
    fn lease_for_request(&self, ask: LeaseAsk, at_least: u64, keep: u64) -> BoxFuture<'_, Result<LeaseAnswer, String>>;
    /// Gives back what the lease holds past `keep`; returns the tokens given back.
    fn return_unused(&self, supplier: SupplierId, month: NaiveDate, keep: u64, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64, String>>;
}

/// Quota leases of one fleet instance in PostgreSQL (`store::pg::leases`).
#[derive(Debug, Clone)]
pub struct PgQuotaSource {
    pub store: PgStore,
    /// The fleet instance id (also its usage journal's id).
    pub instance: i64,
}

impl QuotaSource for PgQuotaSource {
    fn lease(&self, a: LeaseAsk) -> BoxFuture<'_, Result<LeaseAnswer, String>> {
        Box::pin(async move {
            let key = LeaseKey { supplier: a.supplier, month: a.month, instance: self.instance };
            let g = leases::lease(&self.store, key, a.want, a.quota, a.now, a.expires_at).await.map_err(|e| e.to_string())?;
            Ok(LeaseAnswer { granted_now: g.granted_now, granted: g.granted, folded: g.folded, expires_at: g.expires_at })
        })
    }

    fn lease_for_request(&self, a: LeaseAsk, at_least: u64, keep: u64) -> BoxFuture<'_, Result<LeaseAnswer, String>> {
        Box::pin(async move {
            let key = LeaseKey { supplier: a.supplier, month: a.month, instance: self.instance };
            let g = leases::lease_for_request(&self.store, key, a.want, at_least, keep, a.quota, a.now, a.expires_at)
                .await
                .map_err(|e| e.to_string())?;
            Ok(LeaseAnswer { granted_now: g.granted_now, granted: g.granted, folded: g.folded, expires_at: g.expires_at })
        })
    }

    fn return_unused(&self, supplier: SupplierId, month: NaiveDate, keep: u64, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move {
            let key = LeaseKey { supplier, month, instance: self.instance };
            leases::return_unused(&self.store, key, keep, now).await.map_err(|e| e.to_string())
        })
    }
}

/// The lease task of a fleet instance: tops the router's leases up every
/// `check_every` until `stop` resolves, then returns what they hold unused.
/// A failed ask is logged and retried on the next round (requests meanwhile
/// serve from what the leases hold, and are refused when that runs out).
pub async fn run(
    router: Arc<crate::engine::router::Router>,
    source: Arc<dyn QuotaSource>,
    settings: LeaseSettings,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(settings.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                if let Err(e) = router.top_up_quota_leases(source.as_ref()).await {
                    tracing::warn!(error = %e, "cannot lease quota from the fleet's database (will retry)");
                }
            }
        }
    }
    if let Err(e) = router.return_quota_leases(source.as_ref()).await {
        tracing::warn!(error = %e, "cannot return unused quota leases; they stay counted until this instance's journal is folded");
    }
}

/// The bound of docs/fleet-quotas.md for one instance: how far past its
/// grant an instance's spending can end, given the requests in flight at
/// its last successful reservation as (reserved, actual) pairs.
pub fn overshoot(in_flight: impl IntoIterator<Item = (u64, u64)>) -> u64 {
    in_flight.into_iter().fold(0u64, |a, (reserved, actual)| a.saturating_add(actual.saturating_sub(reserved)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn a_lease_ends_at_its_ttl_the_month_end_or_local_midnight() {
        let ttl = Duration::from_secs(60);
        // Midday UTC in UTC: the ttl.
        assert_eq!(lease_end(t(2026, 6, 10, 12, 0), ttl, Tz::UTC), t(2026, 6, 10, 12, 1));
        // 23:59:30 UTC: midnight (also the day's end) comes first.
        let late = Utc.with_ymd_and_hms(2026, 6, 10, 23, 59, 30).unwrap();
        assert_eq!(lease_end(late, ttl, Tz::UTC), t(2026, 6, 11, 0, 0));
        // New York is UTC-4 in June: local midnight is 04:00 UTC.
        let ny = Utc.with_ymd_and_hms(2026, 6, 11, 3, 59, 30).unwrap();
        assert_eq!(lease_end(ny, ttl, chrono_tz::America::New_York), t(2026, 6, 11, 4, 0));
        // The month's end (UTC), even where the local day goes on.
        let eom = Utc.with_ymd_and_hms(2026, 6, 30, 23, 59, 45).unwrap();
        assert_eq!(lease_end(eom, ttl, chrono_tz::America::New_York), t(2026, 7, 1, 0, 0));
        // A long ttl never passes any of them.
        assert_eq!(lease_end(t(2026, 6, 10, 12, 0), Duration::from_secs(86_400 * 40), Tz::UTC), t(2026, 6, 11, 0, 0));
        assert_eq!(lease_end(t(2026, 6, 10, 12, 0), Duration::MAX, Tz::UTC), t(2026, 6, 11, 0, 0));
        assert_eq!(quota_month(eom), NaiveDate::from_ymd_opt(2026, 6, 1).unwrap());
    }

    #[test]
    fn reservations_stay_within_the_grant_except_on_a_wedding_day() {
        let now = t(2026, 6, 10, 12, 0);
        let mut l = LocalLease::new(quota_month(now));
        assert_eq!(l.try_reserve(1, false, now), Err(Refusal::Expired), "no grant yet");
        l.apply(1_000, 0, lease_end(now, Duration::from_secs(60), Tz::UTC));
        assert!(l.try_reserve(600, false, now).is_ok());
        assert_eq!(l.try_reserve(500, false, now), Err(Refusal::NoRoom { remaining: 400 }));
        assert!(l.try_reserve(400, false, now).is_ok());
        l.settle(600, 500);
        l.release(400);
        assert_eq!((l.spent, l.reserved, l.remaining()), (500, 0, 500));
        // A wedding day: served past the grant, and debited.
        assert!(l.try_reserve(2_000, true, now).is_ok());
        l.settle(2_000, 1_800);
        assert_eq!(l.remaining(), -1_300);
        assert_eq!(l.try_reserve(1, false, now), Err(Refusal::NoRoom { remaining: -1_300 }));
        // The next slice pays the debt first.
        l.apply(1_000 + 2_000, 2_300, l.expires_at);
        assert_eq!(l.remaining(), 700);
        assert_eq!(l.keep(), 2_300);
    }

    #[test]
    fn an_ended_lease_serves_only_wedding_days() {
        let now = t(2026, 6, 10, 23, 59);
        let mut l = LocalLease::new(quota_month(now));
        l.apply(10_000, 0, lease_end(now, Duration::from_secs(600), Tz::UTC));
        assert!(l.try_reserve(10, false, now).is_ok());
        let after = t(2026, 6, 11, 0, 0);
        assert_eq!(l.try_reserve(10, false, after), Err(Refusal::Expired), "not past local midnight unseen");
        assert!(l.try_reserve(10, true, after).is_ok());
        // Another month's lease never serves.
        let july = t(2026, 7, 1, 0, 0);
        assert_eq!(l.try_reserve(10, false, july), Err(Refusal::Expired));
        assert_eq!(l.want(&LeaseSettings::default(), july), None, "a new month takes a new lease");
    }

    #[test]
    fn what_to_ask_for() {
        let s = LeaseSettings {
            slice_tokens: 1_000,
            refill_below: 200,
            ttl: Duration::from_secs(60),
            renew_before: Duration::from_secs(20),
            ..LeaseSettings::default()
        };
        let now = t(2026, 6, 10, 12, 0);
        let mut l = LocalLease::new(quota_month(now));
        assert_eq!(l.want(&s, now), Some(1_000));
        l.apply(1_000, 0, lease_end(now, s.ttl, Tz::UTC));
        assert_eq!(l.want(&s, now), None);
        l.settle(0, 850);
        assert_eq!(l.want(&s, now), Some(1_000), "below the refill mark");
        l.apply(2_000, 850, l.expires_at);
        let later = now + chrono::Duration::seconds(45);
        assert_eq!(l.want(&s, later), Some(0), "renewal only");
        assert_eq!(l.want(&s, now + chrono::Duration::seconds(60)), Some(1_000), "ended");
        // Restarted instance: spending starts from what is folded.
        let mut fresh = LocalLease::new(l.month);
        fresh.apply(3_000, 2_500, l.expires_at);
        assert_eq!(fresh.remaining(), 500);
    }

    #[test]
    fn overshoot_counts_only_what_actual_usage_passed_reservations_by() {
        assert_eq!(overshoot([(100, 90), (100, 130), (50, 50)]), 30);
        assert_eq!(overshoot([(0, u64::MAX), (0, 1)]), u64::MAX);
        assert_eq!(overshoot(std::iter::empty()), 0);
    }
}
