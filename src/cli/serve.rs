//! `switchboard serve` (the headless runtime with the gateway) and
//! `switchboard simulate` (the provider simulator).

use crate::domain::SystemClock;
use crate::engine::runtime::{Runtime, RuntimeOptions};
use crate::store::LedgerSync;
use crate::vault::Vault;
use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the OpenAI-compatible gateway. Loopback by default: listening
    /// on another address exposes the gateway to that network.
    #[arg(long, default_value = "127.0.0.1:4480")]
    listen: SocketAddr,
    /// When each request's usage row reaches the disk. `process`: committed
    /// before the response, safe when the process is killed, synced to disk
    /// twice a second. `power`: synced to disk before the response too (safe
    /// across a power cut; costs one fsync per group of concurrent requests).
    #[arg(long, value_enum, default_value = "process")]
    ledger_durability: LedgerDurability,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LedgerDurability {
    Process,
    Power,
}

pub fn run_serve(db: Option<std::path::PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let store = Arc::new(super::open_store(db)?);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("switchboard").build()?;
    rt.block_on(async move {
        let ledger_sync = match args.ledger_durability {
            LedgerDurability::Process => LedgerSync::Normal,
            LedgerDurability::Power => LedgerSync::Full,
        };
        let opts = RuntimeOptions { ledger_sync, ..RuntimeOptions::default() };
        let runtime = Runtime::start(store.clone(), Vault::os(), Arc::new(SystemClock), opts).await?;
        let accounts = runtime.keys.list(None)?;
        let orphans = runtime.keys.report_orphans().await;
        if !orphans.is_empty() {
            println!(
                "{} keychain entr{} of removed provider accounts (see the log); remove with `switchboard key prune-orphans`.",
                orphans.len(),
                if orphans.len() == 1 { "y" } else { "ies" }
            );
        }
        let routable = accounts.iter().filter(|a| runtime.router.has_key(a.id)).count();
        let gw = crate::gateway::start(runtime.router.clone(), args.listen).await?;
        println!("Switchboard gateway listening on {} (database {})", gw.base_url(), store.path().display());
        println!("{routable} of {} provider accounts have a usable key. Stop with Ctrl+C.", accounts.len());
        if routable < accounts.len() {
            println!("Accounts without a usable key are out of routing; see `switchboard key list`.");
        }
        shutdown_signal().await;
        eprintln!("stopping: finishing requests in flight and flushing the usage ledger…");
        gw.shutdown().await;
        runtime.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn run_simulate(args: crate::sim::SimulateArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(crate::sim::run_simulate(args))
}
