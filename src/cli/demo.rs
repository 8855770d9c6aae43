//! `switchboard demo-data` and demo mode (`switchboard --demo`).

use crate::engine::demo::{DemoConfig, generate};
use crate::store::Store;
use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::Args;
use std::path::PathBuf;
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
    let started = Instant::now();
    let summary = generate(&store, &cfg, |stage| eprintln!("writing {stage}…"))?;
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
/// file whose history is generated on the runtime while the window shows progress.
pub fn run_console(args: ConsoleArgs) -> anyhow::Result<()> {
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
        let mut cfg = DemoConfig::new(args.demo_suppliers, args.demo_days, 7, super::now().date_naive());
        cfg.sim_base_url = "http://127.0.0.1:4490".into();
        (store, format!("demo · {}", path.display()), Some(cfg))
    } else {
        let store = super::open_store(args.db)?;
        let label = store.path().display().to_string();
        (store, label, None)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("switchboard-runtime")
        .enable_all()
        .build()
        .context("cannot start the background runtime")?;
    let repaint = crate::ui::RepaintSlot::default();
    let (handle, events) = crate::engine::console::spawn(
        runtime.handle(),
        std::sync::Arc::new(store),
        std::sync::Arc::new(crate::domain::SystemClock),
        crate::domain::QuotaPolicy::default(),
        repaint.callback(),
    );
    let res = crate::ui::run(crate::ui::RunOptions {
        handle,
        events,
        repaint,
        app: crate::ui::AppOptions { db_label: label, start_view: args.view, demo },
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    if let Some(dir) = temp_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    res
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("switchboard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
