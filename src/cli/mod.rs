//! The command line (clap): parses arguments, opens the store, runs one
//! command and prints its result. Human tables by default, `--json` where a
//! program reads the output. Errors are printed as one clear sentence and the
//! process exits non-zero; nothing here panics on user input.

mod cache;
pub mod console_routing;
mod demo;
mod export;
mod fleet;
mod fleet_leases;
mod health;
mod keys;
mod migrate;
mod pools;
mod report;
mod serve;
mod store;
mod supplier;
mod tokens;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Routes WedSync suppliers' AI requests between platform AI and their own provider accounts",
    long_about = "Switchboard decides, for every AI request made on a wedding supplier's behalf, whether WedSync's \
own provider accounts (platform AI, counted against the supplier's tier quota) or the supplier's own OpenAI / \
Anthropic / Azure OpenAI account (client AI) serves it.\n\nRun without a command to open the console."
)]
pub struct Cli {
    /// The database file (default: switchboard.db in the OS data directory),
    /// or a PostgreSQL URL (`postgres://USER@HOST:PORT/DATABASE`).
    #[arg(long, global = true, env = "SWITCHBOARD_DB", value_name = "PATH", hide_env_values = true)]
    pub db: Option<PathBuf>,

    /// A PostgreSQL database to use instead of a file
    /// (`postgres://USER@HOST:PORT/DATABASE`; takes precedence over --db): the
    /// fleet's shared database. Every command works on it but `demo-data`
    /// (generate into a file, then `store copy`); without a subcommand it
    /// opens the console on the fleet (which never routes there).
    #[arg(long, global = true, env = "SWITCHBOARD_DATABASE", value_name = "URL", hide_env_values = true)]
    pub database: Option<String>,

    /// Demo mode: a throwaway database filled with generated history, the
    /// built-in provider simulator and synthetic traffic.
    #[arg(long)]
    pub demo: bool,

    /// How many suppliers demo mode generates.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "N")]
    pub demo_suppliers: u32,

    /// How many days of history demo mode generates.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3_660), value_name = "DAYS")]
    pub demo_days: u32,

    /// The console view to open: overview, suppliers, keys, quotas, health, migrations, usage or audit (default: the last one used).
    #[arg(long, value_parser = crate::ui::View::from_name, value_name = "NAME")]
    pub view: Option<crate::ui::View>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write deterministic demo history (suppliers, weddings, accounts, usage) into a database.
    DemoData(demo::DemoDataArgs),
    /// Add, list, show, edit and remove suppliers.
    #[command(subcommand)]
    Supplier(supplier::SupplierCommand),
    /// Add, list, validate, rotate and remove provider API keys (kept only in the OS keychain).
    #[command(subcommand, alias = "keys")]
    Key(keys::KeyCommand),
    /// Issue, list and revoke suppliers' gateway tokens.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Run the routing runtime headless, with the OpenAI-compatible gateway.
    Serve(serve::ServeArgs),
    /// Run the provider simulator (OpenAI, Anthropic and Azure OpenAI wire formats, with faults).
    Simulate(crate::sim::SimulateArgs),
    /// Probe every provider account once and show health, latency and uptime.
    Health(health::HealthArgs),
    /// List alerts, or acknowledge / resolve one (`alerts ack ID`).
    Alerts(health::AlertsArgs),
    /// Plan, start, watch, pause, resume, roll back or abort a migration between routes.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// Send the same prompts to a supplier's current route and a candidate account, side by side.
    ParallelTest(migrate::ParallelArgs),
    /// List open recommendations (quota 90 %, parallel tests, rollbacks), or dismiss one.
    Recommendations(migrate::RecommendationsArgs),
    /// Export usage as CSV for spreadsheets.
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// The response cache: purge it (whole or one supplier's), its stats, a supplier's settings.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Usage analytics as JSON (cost over time, quotas, top suppliers, seasons,
    /// projections, cost comparison), or their timings with --bench.
    Report(report::ReportArgs),
    /// Move an installation: `store copy --from FILE.db --to postgres://…` (or back into a new file).
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// The fleet's key pair for keys shared on PostgreSQL: init, export-key, import-key, rotate, status.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
}

/// Entry point of the binary; returns the process exit code.
pub fn main() -> std::process::ExitCode {
    crate::ui::mark_launch();
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn error_chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub fn run(mut cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Fleet(_)) = &cli.command {
        // The fleet commands check their database themselves (PostgreSQL only).
        let url = cli.database.take().or_else(|| cli.db.as_deref().and_then(|p| p.to_str()).map(str::to_string));
        fleet::set_default_url(url);
    }
    if let Some(url) = cli.database.take() {
        if !crate::store::pg::is_postgres_url(&url) {
            anyhow::bail!(
                "--database (SWITCHBOARD_DATABASE) takes a PostgreSQL URL such as postgres://USER@HOST:PORT/DATABASE, not '{}'; name a SQLite file with --db PATH",
                crate::store::pg::mask_url(&url)
            );
        }
        cli.db = Some(PathBuf::from(url));
    }
    if let Some(url) = cli.db.as_deref().and_then(|p| p.to_str()).filter(|p| crate::store::pg::is_postgres_url(p)) {
        refuse_on_postgres(&cli.command, url)?;
    }
    match cli.command {
        Some(Command::DemoData(args)) => demo::run_demo_data(cli.db, args),
        Some(Command::Supplier(cmd)) => supplier::run(&open_store(cli.db)?, cmd),
        Some(Command::Key(cmd)) => keys::run(open_store(cli.db)?, cmd),
        Some(Command::Token(cmd)) => tokens::run(&open_store(cli.db)?, cmd),
        Some(Command::Serve(args)) => serve::run_serve(cli.db, args),
        Some(Command::Simulate(args)) => serve::run_simulate(args),
        Some(Command::Health(args)) => health::run_health(open_store(cli.db)?, args),
        Some(Command::Alerts(args)) => health::run_alerts(open_store(cli.db)?, args),
        Some(Command::Migrate(cmd)) => migrate::run(open_store(cli.db)?, cmd),
        Some(Command::ParallelTest(args)) => migrate::run_parallel(open_store(cli.db)?, args),
        Some(Command::Recommendations(args)) => migrate::run_recommendations(open_store(cli.db)?, args),
        Some(Command::Export(cmd)) => export::run(&open_store_for_usage(cli.db)?, cmd),
        Some(Command::Cache(cmd)) => cache::run(&open_store_for_usage(cli.db)?, cmd),
        Some(Command::Report(args)) => report::run(open_store_for_usage(cli.db)?, args),
        Some(Command::Store(cmd)) => store::run(cmd),
        Some(Command::Fleet(cmd)) => fleet::run(cmd),
        None => demo::run_console(demo::ConsoleArgs {
            db: cli.db,
            demo: cli.demo,
            demo_suppliers: cli.demo_suppliers,
            demo_days: cli.demo_days,
            view: cli.view,
        }),
    }
}

/// Refuses, before anything is opened, a command that does not run on
/// PostgreSQL. Every other command does (the console, supplier, key, token,
/// health, migrate, parallel-test and cache, both carried out by the fleet's
/// instances, alerts, recommendations, report, export, serve, simulate,
/// store copy and the fleet's own commands).
fn refuse_on_postgres(command: &Option<Command>, url: &str) -> anyhow::Result<()> {
    if let Some(Command::DemoData(_)) = command {
        anyhow::bail!(
            "demo-data writes a demonstration history into a SQLite file, not into a fleet's database ({}): run `switchboard demo-data --db demo.db`, then move it with `switchboard store copy --from demo.db --to URL` into an empty PostgreSQL database",
            crate::store::pg::mask_url(url)
        );
    }
    Ok(())
}

/// The default database location: `switchboard.db` in the OS data directory.
pub fn default_db_path() -> anyhow::Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("com", "WedSync", "Switchboard")
        .context("cannot find a data directory for this user; pass --db PATH")?;
    Ok(dirs.data_dir().join("switchboard.db"))
}

/// Opens the database named by `--db` (a file, or a PostgreSQL URL), or the
/// default file (creating its folder).
pub fn open_store(db: Option<PathBuf>) -> anyhow::Result<crate::store::Store> {
    if let Some(url) = db.as_deref().and_then(|p| p.to_str()).filter(|p| crate::store::pg::is_postgres_url(p)) {
        return Ok(crate::store::Store::open_postgres(url)?);
    }
    let path = match db {
        Some(p) => p,
        None => {
            let p = default_db_path()?;
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create the data folder {}", dir.display()))?;
            }
            p
        }
    };
    let store = crate::store::Store::open(&path)?;
    // Usage a stopped process journaled and did not fold: whoever opens the
    // database folds it (journals of live processes are theirs to fold).
    crate::engine::ledger::fold_leftovers(&store)?;
    Ok(store)
}

/// [`open_store`] for commands that read usage (export, report): also waits
/// (up to ten seconds) until serving processes have folded what they had
/// journaled, so a report started right after a burst includes every
/// answered request. On PostgreSQL the serving instances fold their own
/// journals (on their machines) into the database: a reader reads what is
/// in it, without waiting.
pub fn open_store_for_usage(db: Option<PathBuf>) -> anyhow::Result<crate::store::Store> {
    let store = open_store(db)?;
    if store.is_postgres() {
        return Ok(store);
    }
    if !crate::engine::ledger::wait_for_live_folds(&store, std::time::Duration::from_secs(10))? {
        eprintln!("warning: a serving process has not folded its latest usage yet; this reads what is folded");
    }
    Ok(store)
}

/// Parses a `YYYY-MM-DD` date with a message that says what was expected.
pub(crate) fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    s.trim().parse::<chrono::NaiveDate>().map_err(|_| format!("'{s}' is not a date; write it as YYYY-MM-DD, e.g. 2026-06-20"))
}

pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    use crate::domain::Clock;
    crate::domain::SystemClock.now()
}
