//! One leader per duty across the fleet: each instance runs a
//! [`LeaderElector`] that, every `leader_check_every`, renews the leases it
//! holds and tries to take the free or expired ones
//! ([`FleetStore::try_acquire`]). Services ask [`LeaderElector::is_leader`]
//! ("am I the leader for this duty, with which epoch?") or watch a duty's
//! channel, and make their shared writes through [`LeaderElector::fenced`],
//! which the database refuses once the lease was taken over.
//!
//! An elector believes in a lease only until `t + leader_ttl`, where `t` is
//! its own clock's time *before* the statement that took or renewed it: the
//! database expires the lease no earlier than that (it computes the expiry
//! later, from a time at or after `t` when the clocks agree), so an instance
//! that stops renewing — paused, cut off from PostgreSQL, killed — stops
//! acting as leader by its own reckoning no later than the others may take
//! over. Fencing makes the rest safe: even a leader that still believes it
//! leads cannot write once its epoch is superseded.

use super::{Acquire, Duty, FenceError, FleetSettings, FleetStore, Lease};
use crate::domain::Clock;
use crate::store::pg::PgResult;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::sync::Arc;
use tokio::sync::watch;

/// A lease this instance holds, and until when (by its own clock) it may act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    pub lease: Lease,
    pub valid_until: DateTime<Utc>,
}

/// A change of leadership seen by one elector's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// This instance became leader (a new epoch).
    Took(Lease),
    /// It stopped being leader (taken over, expired unrenewed, released).
    Lost(Duty),
}

struct Slot {
    duty: Duty,
    tx: watch::Sender<Option<Leadership>>,
}

/// The leader elector of one instance, for a set of duties.
pub struct LeaderElector {
    store: FleetStore,
    instance: i64,
    clock: Arc<dyn Clock>,
    settings: FleetSettings,
    slots: Vec<Slot>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector").field("instance", &self.instance).field("roles", &self.roles()).finish()
    }
}

impl LeaderElector {
    /// An elector for `instance` (its `instances` id) competing for `duties`.
    pub fn new(store: FleetStore, instance: i64, duties: &[Duty], clock: Arc<dyn Clock>, settings: FleetSettings) -> Arc<Self> {
        let mut duties = duties.to_vec();
        duties.sort();
        duties.dedup();
        let slots = duties.into_iter().map(|duty| Slot { duty, tx: watch::channel(None).0 }).collect();
        Arc::new(LeaderElector { store, instance, clock, settings, slots })
    }

    pub fn instance(&self) -> i64 {
        self.instance
    }

    fn slot(&self, duty: Duty) -> Option<&Slot> {
        self.slots.iter().find(|s| s.duty == duty)
    }

    /// The lease when this instance leads `duty` now (by its clock), else None.
    pub fn is_leader(&self, duty: Duty) -> Option<Lease> {
        let now = self.clock.now();
        let slot = self.slot(duty)?;
        let held = *slot.tx.borrow();
        held.filter(|l| now < l.valid_until).map(|l| l.lease)
    }

    /// Leadership of `duty` as it changes (a new epoch, or None when lost).
    /// Renewals do not wake the receiver. A leadership whose `valid_until`
    /// passes without a renewal is reset at the next check; ask
    /// [`LeaderElector::is_leader`] at the moment of acting.
    pub fn watch(&self, duty: Duty) -> Option<watch::Receiver<Option<Leadership>>> {
        self.slot(duty).map(|s| s.tx.subscribe())
    }

    /// The duties this instance leads now (for its heartbeat).
    pub fn roles(&self) -> Vec<Duty> {
        self.slots.iter().map(|s| s.duty).filter(|d| self.is_leader(*d).is_some()).collect()
    }

    fn set(&self, slot: &Slot, next: Option<Leadership>) -> Option<Change> {
        let mut change = None;
        slot.tx.send_if_modified(|cur| {
            let before = cur.map(|l| l.lease.epoch);
            let after = next.map(|l| l.lease.epoch);
            *cur = next;
            if before != after {
                change = match next {
                    Some(l) => Some(Change::Took(l.lease)),
                    None => Some(Change::Lost(slot.duty)),
                };
            }
            before != after
        });
        change
    }

    /// One check: renews or takes every duty's lease (the duties side by
    /// side, so a statement that waits on one duty's row — a takeover behind
    /// an old leader's fenced write — does not delay the renewal of another).
    /// Returns the changes, in duty order. A database error keeps a lease
    /// until its `valid_until`, then drops it.
    pub async fn tick(&self) -> Vec<Change> {
        futures::future::join_all(self.slots.iter().map(|slot| self.check(slot))).await.into_iter().flatten().collect()
    }

    async fn check(&self, slot: &Slot) -> Option<Change> {
        let started = self.clock.now();
        let ttl = chrono::Duration::from_std(self.settings.leader_ttl).unwrap_or(chrono::Duration::MAX);
        let result = self.store.try_acquire(slot.duty, self.instance, self.settings.time.arg(started), self.settings.leader_ttl).await;
        let next = match result {
            Ok(Acquire::Mine(lease)) => Some(Leadership { lease, valid_until: started.checked_add_signed(ttl).unwrap_or(started) }),
            Ok(Acquire::Theirs(_)) => None,
            Err(e) => {
                tracing::warn!(duty = %slot.duty, error = %e, "leader lease check failed");
                let cur = *slot.tx.borrow();
                cur.filter(|l| self.clock.now() < l.valid_until)
            }
        };
        let change = self.set(slot, next)?;
        match change {
            Change::Took(l) => tracing::info!(duty = %l.duty, epoch = l.epoch, instance = self.instance, "leader lease taken"),
            Change::Lost(d) => tracing::info!(duty = %d, instance = self.instance, "leader lease lost"),
        }
        Some(change)
    }

    /// Checks every `leader_check_every` until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        let mut t = tokio::time::interval(self.settings.leader_check_every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            self.tick().await;
        }
    }

    /// Gives up every lease held (a clean exit: others take over at their
    /// next check rather than after the lease's time).
    pub async fn release_all(&self) -> PgResult<()> {
        for slot in &self.slots {
            let cur = *slot.tx.borrow();
            if let Some(l) = cur {
                self.set(slot, None);
                self.store.release(&l.lease).await?;
            }
        }
        Ok(())
    }

    /// Runs `write` only while this instance leads `duty` and the database
    /// agrees that its lease (holder and epoch) still holds; see
    /// [`FleetStore::fenced`].
    pub async fn fenced<T, F>(&self, duty: Duty, write: F) -> Result<T, FenceError>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t tokio_postgres::Transaction<'t>) -> BoxFuture<'t, PgResult<T>> + Send + 'static,
    {
        let Some(lease) = self.is_leader(duty) else {
            return Err(FenceError::NotLeader { duty });
        };
        self.store.fenced(&lease, self.settings.time.arg(self.clock.now()), write).await
    }
}
