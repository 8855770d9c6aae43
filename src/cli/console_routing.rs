//! What the console needs to route by itself, built at the edge: the gateway
//! (an edge the console layer may not import) behind
//! [`crate::console::GatewayStarter`], and the [`ConsoleRouting`] the service
//! and `run_console` share (the window may close while it keeps routing in
//! the background).

use crate::console::{ConsoleRouting, GatewayStarter, RoutingSetup, RunningGateway};
use crate::engine::runtime::RuntimeOptions;
use crate::gateway::GatewayHandle;
use crate::vault::Vault;
use futures::future::BoxFuture;
use std::sync::Arc;

impl RunningGateway for GatewayHandle {
    fn base_url(&self) -> String {
        GatewayHandle::base_url(self)
    }
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(GatewayHandle::shutdown(*self))
    }
}

/// Starts the gateway with its default settings (as `switchboard serve` without flags).
pub fn gateway_starter() -> GatewayStarter {
    Arc::new(|router, addr| {
        Box::pin(async move {
            let gw = crate::gateway::start(router, addr).await?;
            Ok(Box::new(gw) as Box<dyn RunningGateway>)
        })
    })
}

/// The console's routing over `vault` (the OS keychain in the desktop app).
pub fn console_routing(vault: Vault) -> Arc<ConsoleRouting> {
    ConsoleRouting::new(RoutingSetup { vault, gateway: gateway_starter(), runtime: RuntimeOptions::default() })
}
