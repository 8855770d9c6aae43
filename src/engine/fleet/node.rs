//! One `serve` instance's membership of the fleet, assembled: it registers in
//! `instances`, heartbeats, runs its leader elector for every duty and its
//! LISTEN connection, and hands the runtime what it needs to act as one of
//! several instances — whether it leads a duty now, the stream of fleet
//! events (catalog changes, the probe leader's verdicts, resyncs) and a way
//! to publish verdicts. Stopping it cleanly releases its leases at once and
//! marks it stopped; a killed instance is shown as gone after `gone_after`
//! and its leases expire after `leader_ttl`.

use super::heartbeat::Heartbeat;
use super::leader::LeaderElector;
use super::notify::{FleetEvent, HealthVerdict, Listener, publish_verdict};
use super::{Duty, FleetSettings, FleetStore, NewInstance};
use crate::domain::Clock;
use crate::domain::health::Verdict;
use crate::store::pg::fleet::ListenConfig;
use crate::store::pg::{PgStore, on_pg};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::sync::broadcast;

/// Every duty an instance competes for.
pub const ALL_DUTIES: [Duty; 3] = [Duty::Probes, Duty::Migrations, Duty::Alerts];

/// A running fleet member. Dropping it aborts its tasks (a clean stop goes
/// through [`FleetNode::stop`]).
pub struct FleetNode {
    id: i64,
    store: FleetStore,
    elector: Arc<LeaderElector>,
    listener: Arc<Listener>,
    settings: FleetSettings,
    clock: Arc<dyn Clock>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for FleetNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetNode").field("id", &self.id).field("roles", &self.elector.roles()).finish()
    }
}

impl FleetNode {
    /// Registers this process and starts its heartbeat, elector and listener.
    /// `requests`: the count of requests served (for the heartbeat's rate).
    /// The elector's first check runs before this returns, so a lone
    /// instance leads from its first tick.
    pub async fn start(
        pg: &PgStore,
        clock: Arc<dyn Clock>,
        settings: FleetSettings,
        requests: Arc<AtomicU64>,
    ) -> anyhow::Result<FleetNode> {
        let store = FleetStore::new(pg.clone());
        let info = NewInstance { host: crate::store::host_name(), pid: std::process::id(), version: env!("CARGO_PKG_VERSION").to_string() };
        let id = {
            let (s, now) = (store.clone(), settings.time.arg(clock.now()));
            on_pg(async move { s.register(&info, now).await }).await?
        };
        let elector = LeaderElector::new(store.clone(), id, &ALL_DUTIES, clock.clone(), settings.clone());
        let listener = Listener::new(ListenConfig::of(pg), settings.clone(), 1024);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(listener.clone().run()));
        {
            let e = elector.clone();
            on_pg(async move { e.tick().await }).await;
        }
        tasks.push(tokio::spawn(elector.clone().run()));
        let beat = Heartbeat::new(store.clone(), id, clock.clone(), settings.clone(), requests, Some(elector.clone()));
        {
            let b = beat.clone();
            if let Err(e) = on_pg(async move { b.tick().await }).await {
                tracing::warn!(error = %e, "first heartbeat failed");
            }
        }
        tasks.push(tokio::spawn(beat.run()));
        tracing::info!(instance = id, roles = ?elector.roles(), "joined the fleet");
        Ok(FleetNode { id, store, elector, listener, settings, clock, tasks })
    }

    /// This instance's id in `instances` (also its usage journal's key).
    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn store(&self) -> &FleetStore {
        &self.store
    }

    pub fn elector(&self) -> &Arc<LeaderElector> {
        &self.elector
    }

    pub fn settings(&self) -> &FleetSettings {
        &self.settings
    }

    /// Whether this instance leads `duty` now.
    pub fn leads(&self, duty: Duty) -> bool {
        self.elector.is_leader(duty).is_some()
    }

    /// A gate for a service: true while this instance leads `duty`.
    pub fn gate(&self, duty: Duty) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let e = self.elector.clone();
        Arc::new(move || e.is_leader(duty).is_some())
    }

    /// Catalog changes, verdicts and resyncs, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FleetEvent> {
        self.listener.subscribe()
    }

    /// A sink for the probe leader's verdicts: publishes on the health
    /// channel with this instance's `probes` epoch (nothing when it does not
    /// lead probes any more). Publishing runs on a task of its own.
    pub fn verdict_sink(&self) -> Arc<dyn Fn(i64, Verdict) + Send + Sync> {
        let (e, s, id) = (self.elector.clone(), self.store.clone(), self.id);
        Arc::new(move |account_id, verdict| {
            let Some(lease) = e.is_leader(Duty::Probes) else { return };
            let v = HealthVerdict { account_id, verdict, epoch: lease.epoch, instance: id };
            let s = s.clone();
            tokio::spawn(on_pg(async move {
                if let Err(err) = publish_verdict(&s, &v).await {
                    tracing::warn!(error = %err, "cannot publish a health verdict");
                }
            }));
        })
    }

    /// Leaves the fleet cleanly: stops the tasks, releases the leases and
    /// marks the instance stopped.
    pub async fn stop(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let (e, s, id, now) = (self.elector.clone(), self.store.clone(), self.id, self.settings.time.arg(self.clock.now()));
        let res = on_pg(async move {
            let _ = e.release_all().await;
            s.stop(id, now).await
        })
        .await;
        if let Err(e) = res {
            tracing::warn!(instance = self.id, error = %e, "could not mark this instance stopped (it will show as gone)");
        }
    }
}

impl Drop for FleetNode {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}
