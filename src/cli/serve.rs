//! `switchboard serve` (the headless runtime with the gateway) and
//! `switchboard simulate` (the provider simulator).

use crate::domain::SystemClock;
use crate::engine::runtime::{Runtime, RuntimeOptions};
use crate::gateway::{GatewayConfig, OpsToken};
use crate::store::LedgerSync;
use crate::vault::Vault;
use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the OpenAI-compatible gateway. Loopback by default: listening
    /// on another address exposes the gateway to that network.
    #[arg(long, default_value = "127.0.0.1:4480")]
    listen: SocketAddr,
    /// When each request's usage reaches the disk. `process`: written to the
    /// usage journal (the kernel) before the response, safe when the process
    /// is killed. `power`: the journal is also synced to disk before the
    /// response (safe across a power cut; one fdatasync per group of
    /// concurrent requests).
    #[arg(long, value_enum, default_value = "process")]
    ledger_durability: LedgerDurability,
    /// Seconds a client has to send a request's headers; then its connection
    /// is closed. Also the longest a keep-alive connection stays idle.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout: u64,
    /// Seconds a client has to send a request's body once its headers are
    /// in; a slower body gets a 408.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout: u64,
    /// Largest request body, in bytes (a larger one gets a 413 before it is read).
    #[arg(long, value_name = "BYTES", default_value_t = crate::gateway::MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Open connections at most, all clients together; a connection above it
    /// gets a 503 and is closed.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Open connections at most from one client address; above it a new one
    /// gets a 429. 0: no cap (the default: a load balancer in front is one address).
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_connections_per_address: u64,
    /// A file holding the token that /metrics and /healthz then require
    /// (`Authorization: Bearer …`). Without it, the token is read from the
    /// SWITCHBOARD_METRICS_TOKEN environment variable; with neither, both
    /// endpoints are open. Never given on the command line, where `ps` shows it.
    #[arg(long, value_name = "PATH")]
    metrics_token_file: Option<std::path::PathBuf>,
    /// Serving threads of the gateway, each with its own runtime and pool of
    /// upstream connections (default: one per core, at most 8).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    lanes: Option<u64>,
    /// Busy polling: after it has worked, a lane keeps polling its sockets
    /// for up to this many microseconds before it sleeps, so that the next
    /// event (the upstream's answer, the client's next request) finds it
    /// awake: a fast request's latency drops on machines where waking an
    /// idle CPU is slow (virtual machines with halt polling off). The window
    /// adapts, as KVM's halt polling: it opens while the lane's idle spells
    /// are short enough for polling to catch and shuts after one too long
    /// (a provider answering in hundreds of milliseconds), so a lane waiting
    /// on slow providers seldom polls. 0 turns it off. As HAProxy's
    /// `busy-polling`. See BENCHMARKS.md.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    busy_poll_us: u64,
    /// Memory the response cache may hold, in MiB (its least recently used
    /// answers leave first; the database keeps them up to --cache-disk-mb).
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=65_536))]
    cache_memory_mb: u64,
    /// Answer bytes the response cache keeps in the database, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    cache_disk_mb: u64,
    /// PostgreSQL (fleet) mode: this host's folder for the usage journal and
    /// the instance's own file (idempotency records, response cache).
    /// Default: $XDG_STATE_HOME/switchboard/fleet.
    #[arg(long, value_name = "DIR")]
    fleet_dir: Option<std::path::PathBuf>,
    /// Seconds between two health probes of an account (across the fleet on PostgreSQL).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    probe_every: u64,
    /// PostgreSQL mode: milliseconds a leader lease lasts unless renewed (it
    /// is renewed every third of it). A killed leader is replaced within
    /// this plus a third; keep it under the probe interval.
    #[arg(long, value_name = "MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(300..=600_000))]
    leader_ttl_ms: u64,
    /// PostgreSQL mode: milliseconds between two heartbeats of this instance
    /// (it is shown as gone after six missed ones).
    #[arg(long, value_name = "MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    heartbeat_ms: u64,
}

impl ServeArgs {
    /// The gateway settings these flags ask for.
    /// The fleet settings these flags ask for (used on PostgreSQL).
    fn fleet_options(&self) -> crate::engine::runtime::FleetOptions {
        let ttl = Duration::from_millis(self.leader_ttl_ms);
        let beat = Duration::from_millis(self.heartbeat_ms);
        let settings = crate::engine::fleet::FleetSettings {
            leader_ttl: ttl,
            leader_check_every: ttl / 3,
            heartbeat_every: beat,
            gone_after: beat * 6,
            ..crate::engine::fleet::FleetSettings::default()
        };
        crate::engine::runtime::FleetOptions { settings, local_dir: self.fleet_dir.clone(), ..Default::default() }
    }

    fn gateway_config(&self) -> anyhow::Result<GatewayConfig> {
        Ok(GatewayConfig {
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            body_read_timeout: Duration::from_secs(self.body_read_timeout),
            max_body_bytes: self.max_body_bytes.max(1),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            max_connections_per_address: usize::try_from(self.max_connections_per_address).unwrap_or(usize::MAX),
            ops_token: OpsToken::load(self.metrics_token_file.as_deref())?,
            lanes: self.lanes.map_or_else(crate::gateway::default_lanes, |n| usize::try_from(n).unwrap_or(1)),
            busy_poll: Duration::from_micros(self.busy_poll_us),
        })
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LedgerDurability {
    Process,
    Power,
}

pub fn run_serve(db: Option<std::path::PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let gateway = args.gateway_config()?;
    let store = Arc::new(super::open_store(db)?);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("switchboard").build()?;
    rt.block_on(async move {
        let ledger_sync = match args.ledger_durability {
            LedgerDurability::Process => LedgerSync::Normal,
            LedgerDurability::Power => LedgerSync::Full,
        };
        let mut opts = RuntimeOptions { ledger_sync, fleet: args.fleet_options(), ..RuntimeOptions::default() };
        opts.health.probe_interval_secs = i64::try_from(args.probe_every).unwrap_or(30);
        opts.router.cache.memory_bytes = usize::try_from(args.cache_memory_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        opts.router.cache.persistent_bytes = args.cache_disk_mb.saturating_mul(1024 * 1024);
        let clock: Arc<dyn crate::domain::Clock> = Arc::new(SystemClock);
        let vault = match store.postgres() {
            Some(pg) => crate::engine::sealed_keys::server_vault(pg.clone(), clock.clone()),
            None => Vault::os(),
        };
        let runtime = Runtime::start(store.clone(), vault, clock, opts).await?;
        if let Some(node) = runtime.fleet() {
            println!(
                "Fleet instance {} on {}; leads: {}.",
                node.id(),
                store.location(),
                match node.elector().roles() {
                    r if r.is_empty() => "nothing yet".to_string(),
                    r => r.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", "),
                }
            );
        }
        if let Some(h) = runtime.routing_lock().and_then(|l| l.left_behind()) {
            println!(
                "The previous runtime on this database, {h}, ended without stopping (killed or crashed); its routing lock went with it."
            );
        }
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
        let guarded = gateway.ops_token.is_some();
        // Registered before the gateway says it listens: a SIGTERM sent right
        // after that line stops it cleanly instead of killing it.
        let stop = stop_signal();
        let gw = crate::gateway::start_with(runtime.router.clone(), args.listen, gateway).await?;
        println!("Switchboard gateway listening on {} (database {})", gw.base_url(), store.location());
        println!("{routable} of {} provider accounts have a usable key. Stop with Ctrl+C.", accounts.len());
        if guarded {
            println!("/metrics and /healthz require the metrics token.");
        }
        if routable < accounts.len() {
            println!("Accounts without a usable key are out of routing; see `switchboard key list`.");
        }
        stop.await;
        eprintln!("stopping: finishing requests in flight and flushing the usage ledger…");
        gw.shutdown().await;
        runtime.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })
}

/// Registers SIGTERM and SIGINT now (call it on the runtime) and returns
/// what resolves at the first of them.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (term, int) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
        async move {
            match (term, int) {
                (Some(mut t), Some(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => {}
                        _ = i.recv() => {}
                    }
                }
                (Some(mut t), None) => {
                    t.recv().await;
                }
                (None, Some(mut i)) => {
                    i.recv().await;
                }
                (None, None) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub fn run_simulate(args: crate::sim::SimulateArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(crate::sim::run_simulate(args))
}
