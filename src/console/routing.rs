//! The console's own routing runtime: on a SQLite database the console can
//! run the routing runtime (`engine::runtime`) and the gateway itself, so one
//! desk needs no second program. [`ConsoleRouting`] is built by the edge (it
//! knows the gateway, an edge the console may not import, through a
//! [`GatewayStarter`]) and handed to the service in
//! [`ServiceOptions::routing`](crate::console::ServiceOptions); the UI turns it
//! on and off with [`ConsoleCommand::StartRouting`] / [`ConsoleCommand::StopRouting`]
//! and is told every [`RoutingState`] on the `Routing` channel.
//!
//! Start and stop run on the console service's tokio runtime, one at a time.
//! Starting takes the database's routing lock (`Runtime::start`): while
//! `switchboard serve` or another console routes the file, the start is
//! [`RoutingState::Refused`] with the other's process and host. While it
//! routes, the service's live services are the runtime's (router, health
//! monitor, migration service, the gateway's URL), so the live Overview,
//! Health and Migrations work as in `serve`. Stopping stops the gateway
//! (requests in flight finish), then the runtime (the usage ledger flushed, the
//! lock released), and goes back to the key service alone. The edge keeps a
//! clone to stop it after the window closed ("keep routing in the background").

use crate::console::service::{Outbox, Service};
use crate::console::*;
use crate::engine::router::Router;
use crate::engine::runtime::{Runtime, RuntimeOptions};
use crate::store::RoutingLockError;
use crate::vault::Vault;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The console's gateway port unless the user types another: `switchboard serve`'s default.
pub const DEFAULT_ROUTING_PORT: u16 = 4480;

/// What this process writes in the routing lock when the console routes.
pub const CONSOLE_PROGRAM: &str = "the Switchboard console";

/// A gateway the edge started in front of the console's router.
pub trait RunningGateway: Send + Sync {
    /// `http://ADDR/v1`.
    fn base_url(&self) -> String;
    /// Stops accepting and lets requests in flight finish.
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Starts the gateway on a loopback address for a router (the edge's `gateway::start`).
pub type GatewayStarter = Arc<dyn Fn(Arc<Router>, SocketAddr) -> BoxFuture<'static, anyhow::Result<Box<dyn RunningGateway>>> + Send + Sync>;

/// Where the console's routing is, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingState {
    Off,
    Starting {
        port: u16,
    },
    On {
        /// The gateway's base URL (`http://127.0.0.1:PORT/v1`).
        url: String,
        /// This process as the routing lock names it.
        holder: String,
        /// The runtime that held the lock before and was killed, if any.
        left_behind: Option<String>,
    },
    Stopping,
    /// Another runtime routes this database; the sentence names its process and host.
    Refused {
        message: String,
    },
    /// The runtime or the gateway could not start (a taken port, the keychain…).
    Failed {
        message: String,
    },
}

impl RoutingState {
    /// Starting, on or stopping: the window asks before it closes.
    pub fn busy(&self) -> bool {
        matches!(self, RoutingState::Starting { .. } | RoutingState::On { .. } | RoutingState::Stopping)
    }
}

/// The parts that let the console route (built by the edge).
pub struct RoutingSetup {
    /// Where the runtime's key service reads the keys (the OS keychain).
    pub vault: Vault,
    pub gateway: GatewayStarter,
    pub runtime: RuntimeOptions,
}

struct Running {
    runtime: Runtime,
    gateway: Box<dyn RunningGateway>,
    url: String,
}

/// The console's routing: its setup, the running runtime and gateway, and the
/// state. Shared by the service and the edge.
pub struct ConsoleRouting {
    setup: RoutingSetup,
    /// Start and stop, one at a time.
    running: tokio::sync::Mutex<Option<Running>>,
    state: Mutex<RoutingState>,
}

impl ConsoleRouting {
    pub fn new(setup: RoutingSetup) -> Arc<Self> {
        Arc::new(ConsoleRouting { setup, running: tokio::sync::Mutex::new(None), state: Mutex::new(RoutingState::Off) })
    }

    pub fn state(&self) -> RoutingState {
        self.state.lock().clone()
    }

    /// The gateway's URL while it routes.
    pub fn url(&self) -> Option<String> {
        match &*self.state.lock() {
            RoutingState::On { url, .. } => Some(url.clone()),
            _ => None,
        }
    }

    /// Stops the gateway and the runtime (ledger flushed, lock released) if they run.
    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        if let Some(r) = running.take() {
            *self.state.lock() = RoutingState::Stopping;
            tracing::info!(url = %r.url, "the console stops routing");
            r.gateway.shutdown().await;
            r.runtime.shutdown().await;
        }
        *self.state.lock() = RoutingState::Off;
    }

    fn set(&self, s: RoutingState) -> RoutingState {
        *self.state.lock() = s.clone();
        s
    }
}

impl Service {
    /// Starts routing on `127.0.0.1:port` (on its own task); every state change is sent.
    pub(in crate::console) fn start_routing(self: &Arc<Self>, port: u16, ticket: Ticket, out: Outbox) {
        let Some(routing) = self.routing.clone() else {
            out.send(
                ticket,
                ConsoleEvent::Routing(RoutingState::Failed {
                    message: "this console cannot route (demo mode routes by itself); run `switchboard serve` on the database".into(),
                }),
            );
            return;
        };
        let svc = self.clone();
        tokio::spawn(async move {
            let mut running = routing.running.lock().await;
            if running.is_some() {
                out.send(ticket, ConsoleEvent::Routing(routing.state()));
                return;
            }
            out.send(ticket, ConsoleEvent::Routing(routing.set(RoutingState::Starting { port })));
            let mut opts = routing.setup.runtime.clone();
            opts.program = CONSOLE_PROGRAM.into();
            let runtime = match Runtime::start(svc.store.clone(), routing.setup.vault.clone(), svc.clock.clone(), opts).await {
                Ok(r) => r,
                Err(e) => {
                    let state = match e.downcast_ref::<RoutingLockError>() {
                        Some(held @ RoutingLockError::Held { .. }) => RoutingState::Refused { message: held.to_string() },
                        _ => RoutingState::Failed { message: format!("the routing runtime could not start: {e:#}") },
                    };
                    out.send(ticket, ConsoleEvent::Routing(routing.set(state)));
                    return;
                }
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let gateway = match (routing.setup.gateway)(runtime.router.clone(), addr).await {
                Ok(g) => g,
                Err(e) => {
                    runtime.shutdown().await;
                    let state = RoutingState::Failed {
                        message: format!(
                            "the gateway could not start on 127.0.0.1:{port} ({e:#}); type another port and switch routing on again"
                        ),
                    };
                    out.send(ticket, ConsoleEvent::Routing(routing.set(state)));
                    return;
                }
            };
            let url = gateway.base_url();
            // The console routes only a database file (PostgreSQL has no routing lock: it is refused before).
            let (holder, left_behind) = match runtime.routing_lock() {
                Some(lock) => (lock.holder_info().to_string(), lock.left_behind().map(|h| h.to_string())),
                None => (String::new(), None),
            };
            tracing::info!(%url, db = %svc.store.location(), "the console routes");
            svc.install_live(
                LiveServices {
                    keys: runtime.keys.clone(),
                    router: Some(runtime.router.clone()),
                    gateway_url: Some(url.clone()),
                    health: Some(runtime.health.clone()),
                    migrations: Some(runtime.migrations.clone()),
                    demo: false,
                    keep_alive: Vec::new(),
                },
                &tokio::runtime::Handle::current(),
            );
            svc.fresh.store(true, Ordering::SeqCst);
            *running = Some(Running { runtime, gateway, url: url.clone() });
            out.send(ticket, ConsoleEvent::Routing(routing.set(RoutingState::On { url, holder, left_behind })));
        });
    }

    /// Stops routing (on its own task): the gateway, then the runtime with its ledger flushed.
    pub(in crate::console) fn stop_routing(self: &Arc<Self>, ticket: Ticket, out: Outbox) {
        let Some(routing) = self.routing.clone() else {
            out.send(ticket, ConsoleEvent::Routing(RoutingState::Off));
            return;
        };
        let svc = self.clone();
        tokio::spawn(async move {
            if routing.state().busy() {
                out.send(ticket, ConsoleEvent::Routing(RoutingState::Stopping));
            }
            routing.stop().await;
            // Back to the key service alone (health from the stored history, migrations offline).
            if let Some(keys) = svc.base_keys.clone() {
                svc.install_live(LiveServices::keys_only(keys), &tokio::runtime::Handle::current());
            } else {
                *svc.live.write() = None;
            }
            out.send(ticket, ConsoleEvent::Routing(routing.state()));
        });
    }
}
