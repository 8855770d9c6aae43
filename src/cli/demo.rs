//! `switchboard demo-data` and demo mode (`switchboard --demo`).

use crate::console::{LiveServices, LiveStarter, ServiceOptions};
use crate::domain::{Clock, SystemClock};
use crate::engine::demo::{DemoConfig, generate};
use crate::engine::demo_traffic::TrafficConfig;
use crate::engine::keys::KeyService;
use crate::store::Store;
use crate::vault::Vault;
use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::Args;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// How many suppliers to create.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    suppliers: u32,
    /// How many days of usage history to write, ending on --until.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3_660))]
    days: u32,
    /// Random seed: the same seed (and --until) always writes the same data.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Last day of history, YYYY-MM-DD (default: today, UTC).
    #[arg(long, value_parser = super::parse_date)]
    until: Option<NaiveDate>,
    /// Base URL of the provider simulator the demo accounts point at.
    #[arg(long, default_value = "http://127.0.0.1:4490")]
    sim_url: String,
}

pub fn run_demo_data(db: Option<PathBuf>, args: DemoDataArgs) -> anyhow::Result<()> {
    let Some(db) = db else {
        bail!("demo-data needs --db PATH: it writes generated suppliers and usage, so it never touches your real database");
    };
    let store = Store::open(&db)?;
    let existing = store.count_suppliers()?;
    if existing > 0 {
        bail!(
            "{} already has {existing} supplier(s); demo data goes into a new, empty database. Choose another file with --db PATH.",
            db.display()
        );
    }
    let until = args.until.unwrap_or_else(|| super::now().date_naive());
    let mut cfg = DemoConfig::new(args.suppliers, args.days, args.seed, until);
    cfg.sim_base_url = args.sim_url;
    // History (usage and health) up to now, or to the end of `--until` when that is earlier.
    let end_of_until = (until + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    cfg.history_until = Some(end_of_until.map_or(super::now(), |e| e.min(super::now())));
    let started = Instant::now();
    let summary = generate(&store, &cfg, crate::engine::demo::once_per_stage(|stage| eprintln!("writing {stage}…")))?;
    println!(
        "Wrote {} suppliers, {} weddings, {} provider accounts, {} usage events and {} provider incidents into {} in {:.1} s.",
        summary.suppliers,
        summary.weddings,
        summary.accounts,
        summary.usage_events,
        summary.incidents,
        db.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What `switchboard` without a command was asked to open.
pub struct ConsoleArgs {
    pub db: Option<PathBuf>,
    pub demo: bool,
    pub demo_suppliers: u32,
    pub demo_days: u32,
    pub view: Option<crate::ui::View>,
}

/// Opens the desktop console. `main` owns the tokio runtime: it is built here,
/// the console service is started on it, and eframe runs on this (the main)
/// thread until the window closes. In demo mode the database is a throwaway
/// file whose history is generated on the runtime while the window shows
/// progress; then the simulator, the routing runtime (simulator keys in the
/// in-memory demo vault), the gateway and synthetic traffic start. Otherwise
/// the key service uses the OS keychain and this console does not route.
/// On PostgreSQL (`--database`) the console is the fleet's: keys are sealed
/// to the fleet's public key (it holds no private key and opens none), and it
/// never routes; its actions are written for the fleet's instances to carry out.
pub fn run_console(args: ConsoleArgs) -> anyhow::Result<()> {
    let on_postgres = args.db.as_deref().and_then(|p| p.to_str()).is_some_and(crate::store::pg::is_postgres_url);
    if args.demo && on_postgres {
        bail!("demo mode makes a throwaway SQLite database; leave out --database (or give --db a new file)");
    }
    let mut temp_dir = None;
    let (store, label, demo) = if args.demo {
        let path = match args.db {
            Some(p) => p,
            None => {
                let dir = tempfile_dir()?;
                let p = dir.join("switchboard-demo.db");
                temp_dir = Some(dir);
                p
            }
        };
        let store = Store::open(&path)?;
        if store.count_suppliers()? > 0 {
            bail!(
                "{} already has suppliers; demo mode needs a new, empty database. Leave out --db to use a throwaway one.",
                path.display()
            );
        }
        let sim_addr = crate::engine::demo_traffic::free_loopback_addr().context("no free loopback port for the provider simulator")?;
        let mut cfg = DemoConfig::new(args.demo_suppliers, args.demo_days, 7, super::now().date_naive());
        cfg.sim_base_url = format!("http://{sim_addr}");
        cfg.history_until = Some(super::now());
        (store, format!("demo · {}", path.display()), Some((cfg, sim_addr)))
    } else {
        let store = super::open_store(args.db)?;
        let label = if store.is_postgres() { format!("fleet · {}", store.location()) } else { store.location() };
        (store, label, None)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("switchboard-runtime")
        .enable_all()
        .build()
        .context("cannot start the background runtime")?;
    if let Some(dir) = temp_dir.clone() {
        // Closed by a signal (Ctrl+C, `kill`): remove the throwaway database too.
        runtime.spawn(async move {
            wait_for_stop_signal().await;
            let _ = std::fs::remove_dir_all(&dir);
            std::process::exit(130);
        });
    }
    let store = Arc::new(store);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let opts = match &demo {
        Some((_, sim_addr)) => {
            ServiceOptions { live: None, after_demo: Some(live_demo_starter(clock.clone(), *sim_addr)), notify_sink: None, routing: None }
        }
        None => {
            // On PostgreSQL keys are sealed to the fleet's public key: this
            // console can add and rotate them but open none.
            let vault = match store.postgres() {
                Some(pg) => crate::engine::sealed_keys::console_vault(pg.clone(), clock.clone()),
                None => Vault::os(),
            };
            let keys = runtime.block_on(async {
                let providers = crate::providers::Providers::new(crate::providers::ProvidersConfig::default())?;
                anyhow::Ok(KeyService::new(store.clone(), vault, Arc::new(providers), clock.clone()))
            })?;
            // No routing here: health comes from the stored history, and migration
            // actions are written to the store for a running `switchboard serve` (as the CLI does).
            let keys = Arc::new(keys);
            // Report keychain entries of removed accounts in the log (the Keys view shows them too).
            let reporter = keys.clone();
            runtime.spawn(async move { reporter.report_orphans().await });
            let live = LiveServices::keys_only(keys);
            // The console may route a SQLite database itself (the Overview's
            // switch); the fleet's database is routed by its `serve` instances.
            let routing = (!store.is_postgres()).then(|| super::console_routing::console_routing(Vault::os()));
            ServiceOptions { live: Some(live), after_demo: None, notify_sink: None, routing }
        }
    };
    let routing = opts.routing.clone();
    if let Some(routing) = routing.clone() {
        // Ctrl+C or SIGTERM while the window is open: stop routing cleanly (the
        // ledger flushed, the lock released) before the process ends, as `serve` does.
        runtime.spawn(async move {
            wait_for_stop_signal().await;
            if routing.url().is_some() {
                eprintln!("stopping: finishing requests in flight and flushing the usage ledger…");
            }
            routing.stop().await;
            std::process::exit(0);
        });
    }
    let repaint = crate::ui::RepaintSlot::default();
    let (handle, events) =
        crate::console::spawn_with(runtime.handle(), store, clock, crate::domain::QuotaPolicy::default(), repaint.callback(), opts);
    let res = crate::ui::run(crate::ui::RunOptions {
        handle,
        events,
        repaint,
        app: crate::ui::AppOptions {
            db_label: label,
            start_view: args.view,
            can_route: routing.is_some(),
            demo: demo.map(|(cfg, _)| cfg),
            desktop_notifications: true,
            ..Default::default()
        },
    });
    if let Some(routing) = routing {
        // The window closed while the console routed: "Keep routing in the
        // background" was chosen (the window asks; "Stop routing and quit"
        // stops first). Route headless, like `serve`, until a stop signal.
        if let Some(url) = routing.url() {
            println!(
                "Switchboard keeps routing in the background: gateway {url}, process {}. Stop with Ctrl+C or SIGTERM.",
                std::process::id()
            );
            runtime.block_on(wait_for_stop_signal());
            eprintln!("stopping: finishing requests in flight and flushing the usage ledger…");
        }
        runtime.block_on(routing.stop());
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    if let Some(dir) = temp_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    res
}

/// Demo mode's live part, started once the history is written: simulator,
/// runtime and traffic (engine), and the gateway (this edge) on a free port.
pub fn live_demo_starter(clock: Arc<dyn Clock>, sim_addr: SocketAddr) -> LiveStarter {
    Arc::new(move |store| {
        let clock = clock.clone();
        Box::pin(async move {
            let demo = crate::engine::demo_traffic::start(store, clock, sim_addr, TrafficConfig::default())
                .await
                .map_err(|e| format!("the live demo could not start: {e:#}"))?;
            let gw = crate::gateway::start(demo.runtime.router.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(|e| format!("the demo gateway could not start: {e:#}"))?;
            Ok(LiveServices {
                keys: demo.runtime.keys.clone(),
                router: Some(demo.runtime.router.clone()),
                health: Some(demo.runtime.health.clone()),
                migrations: Some(demo.runtime.migrations.clone()),
                gateway_url: Some(gw.base_url()),
                demo: true,
                keep_alive: vec![Box::new(Mutex::new(demo)), Box::new(Mutex::new(gw))],
            })
        })
    })
}

/// A fresh folder for the throwaway demo database. Folders left by demo
/// consoles that were killed (their process no longer exists) are removed
/// first, so repeated demos never fill the temp folder.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    remove_orphaned_demo_dirs();
    let dir = std::env::temp_dir().join(format!("switchboard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Removes `switchboard-demo-PID` folders whose process is gone (Linux: no
/// `/proc/PID`; elsewhere nothing is removed).
fn remove_orphaned_demo_dirs() {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("switchboard-demo-")).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Resolves on Ctrl+C, and on Unix also on SIGTERM or SIGHUP.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
            (Ok(mut term), Ok(mut hup)) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
