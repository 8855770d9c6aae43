//! `LISTEN`/`NOTIFY` across the fleet. Each instance keeps one dedicated
//! listening connection (a [`ListenSession`], not from the pool) on
//! [`CATALOG_CHANNEL`] and [`HEALTH_CHANNEL`], and hands what arrives to
//! subscribers as [`FleetEvent`]s (a tokio broadcast channel).
//!
//! - Catalog: the catalog tables' triggers `pg_notify(switchboard_catalog, …)`
//!   after a change; subscribers reload what the payload names (or everything).
//! - Health: the probe leader publishes a [`HealthVerdict`]
//!   ([`publish_verdict`]) carrying its lease's epoch; every instance applies
//!   it to its own router. A [`VerdictGate`] drops verdicts from a superseded
//!   prober (an older epoch than one already seen).
//!
//! The connection is pinged every `listen_ping_every` and replaced when a ping
//! fails or times out, or when the server ends it; reconnects back off from
//! `listen_backoff_min` to `listen_backoff_max`. Notifications sent while no
//! connection listens are lost, so after every reconnect (and after a first
//! connection that needed retries) subscribers get [`FleetEvent::Resync`]:
//! reload everything. Periodic reconciliation remains the last fallback.

use super::{FleetSettings, FleetStore};
use crate::domain::health::Verdict;
use crate::store::pg::PgResult;
use crate::store::pg::fleet::{ListenConfig, ListenSession, Notice};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Catalog changes (suppliers, accounts, tokens, mirrors).
pub const CATALOG_CHANNEL: &str = "switchboard_catalog";
/// Health verdicts of the probe leader.
pub const HEALTH_CHANNEL: &str = "switchboard_health";

/// The probe leader's verdict on one provider account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthVerdict {
    pub account_id: i64,
    pub verdict: Verdict,
    /// The epoch of the prober's `probes` lease.
    pub epoch: i64,
    /// The prober's instance id.
    pub instance: i64,
}

/// What the listener delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetEvent {
    /// A catalog change; the payload as the trigger wrote it (JSON).
    Catalog(String),
    /// A health verdict from the probe leader.
    Health(HealthVerdict),
    /// Notifications may have been missed: reload everything.
    Resync,
}

/// The listener's connection, for status displays and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerStatus {
    pub connected: bool,
    /// Connections made so far (1 after the first).
    pub sessions: u64,
    /// The server process of the current connection.
    pub backend_pid: Option<i32>,
}

/// Publishes `verdict` on [`HEALTH_CHANNEL`].
pub async fn publish_verdict(store: &FleetStore, verdict: &HealthVerdict) -> PgResult<()> {
    // A few scalars: always valid JSON and far under the payload limit.
    let payload = serde_json::to_string(verdict).unwrap_or_default();
    store.notify(HEALTH_CHANNEL, &payload).await
}

/// Drops verdicts of a prober whose lease was superseded: once a verdict of
/// epoch N was accepted, verdicts of epochs below N are stale.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerdictGate {
    newest_epoch: i64,
}

impl VerdictGate {
    pub fn accept(&mut self, v: &HealthVerdict) -> bool {
        if v.epoch < self.newest_epoch {
            return false;
        }
        self.newest_epoch = v.epoch;
        true
    }
}

fn event_of(n: Notice) -> Option<FleetEvent> {
    match n.channel.as_str() {
        CATALOG_CHANNEL => Some(FleetEvent::Catalog(n.payload)),
        HEALTH_CHANNEL => match serde_json::from_str::<HealthVerdict>(&n.payload) {
            Ok(v) => Some(FleetEvent::Health(v)),
            Err(e) => {
                tracing::warn!(error = %e, "ignored a malformed health verdict");
                None
            }
        },
        _ => None,
    }
}

/// One instance's listener. Start [`Listener::run`] on a task; subscribe any time.
pub struct Listener {
    cfg: ListenConfig,
    settings: FleetSettings,
    events: broadcast::Sender<FleetEvent>,
    status: watch::Sender<ListenerStatus>,
}

impl Listener {
    /// `capacity`: events buffered per subscriber before a slow one lags
    /// (a lagging subscriber should resync).
    pub fn new(cfg: ListenConfig, settings: FleetSettings, capacity: usize) -> Arc<Self> {
        Arc::new(Listener {
            cfg,
            settings,
            events: broadcast::channel(capacity.max(1)).0,
            status: watch::channel(ListenerStatus::default()).0,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FleetEvent> {
        self.events.subscribe()
    }

    pub fn status(&self) -> watch::Receiver<ListenerStatus> {
        self.status.subscribe()
    }

    /// Listens, reconnecting for ever, until the task is aborted (which
    /// closes the connection).
    pub async fn run(self: Arc<Self>) {
        let mut backoff = self.settings.listen_backoff_min;
        let mut missed = false;
        loop {
            let session = ListenSession::open(&self.cfg, &[CATALOG_CHANNEL, HEALTH_CHANNEL]).await;
            let mut session = match session {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot LISTEN for fleet notifications");
                    missed = true;
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(self.settings.listen_backoff_max);
                    continue;
                }
            };
            backoff = self.settings.listen_backoff_min;
            self.status.send_modify(|s| {
                s.connected = true;
                s.sessions += 1;
                s.backend_pid = Some(session.backend_pid());
            });
            if missed {
                let _ = self.events.send(FleetEvent::Resync);
            }
            tracing::info!(db = %self.cfg.url(), pid = session.backend_pid(), "listening for fleet notifications");
            self.listen(&mut session).await;
            drop(session);
            self.status.send_modify(|s| {
                s.connected = false;
                s.backend_pid = None;
            });
            missed = true;
            tracing::warn!(db = %self.cfg.url(), "the fleet notification connection was lost; reconnecting");
        }
    }

    /// Delivers until the session's connection is gone or stops answering.
    async fn listen(&self, session: &mut ListenSession) {
        let mut ping = tokio::time::interval(self.settings.listen_ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                n = session.next() => match n {
                    Some(n) => {
                        if let Some(ev) = event_of(n) {
                            // No subscriber yet is not an error.
                            let _ = self.events.send(ev);
                        }
                    }
                    None => return,
                },
                _ = ping.tick() => {
                    match tokio::time::timeout(self.settings.listen_ping_timeout, session.ping()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "fleet notification connection ping failed");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!("fleet notification connection ping timed out");
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(epoch: i64, verdict: Verdict) -> HealthVerdict {
        HealthVerdict { account_id: 7, verdict, epoch, instance: 1 }
    }

    #[test]
    fn fleet_verdict_gate_drops_superseded_probers() {
        let mut g = VerdictGate::default();
        assert!(g.accept(&v(2, Verdict::Down)));
        assert!(g.accept(&v(2, Verdict::Healthy)));
        assert!(!g.accept(&v(1, Verdict::Down)), "a verdict from the previous leader's epoch");
        assert!(g.accept(&v(3, Verdict::Down)));
    }

    #[test]
    fn fleet_notices_become_events() {
        let n = |channel: &str, payload: &str| Notice { channel: channel.into(), payload: payload.into() };
        let verdict = v(4, Verdict::Down);
        let json = serde_json::to_string(&verdict).unwrap();
        assert_eq!(json, r#"{"account_id":7,"verdict":"down","epoch":4,"instance":1}"#);
        assert_eq!(event_of(n(HEALTH_CHANNEL, &json)), Some(FleetEvent::Health(verdict)));
        assert_eq!(event_of(n(CATALOG_CHANNEL, r#"{"table":"suppliers"}"#)), Some(FleetEvent::Catalog(r#"{"table":"suppliers"}"#.into())));
        assert_eq!(event_of(n(HEALTH_CHANNEL, "not json")), None);
        assert_eq!(event_of(n("other", "x")), None);
    }
}
