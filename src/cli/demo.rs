//! `switchboard demo-data` and demo mode (`switchboard --demo`).

use crate::engine::demo::{DemoConfig, generate};
use crate::store::Store;
use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::{Args, CommandFactory};
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

/// Opens the console. Until the desktop console lands, demo mode fills a
/// throwaway database and prints what is in it; without --demo it prints help.
pub fn run_console(db: Option<PathBuf>, demo: bool) -> anyhow::Result<()> {
    if !demo {
        super::Cli::command().print_help()?;
        println!();
        return Ok(());
    }
    let dir = tempfile_dir()?;
    let path = db.unwrap_or_else(|| dir.join("switchboard-demo.db"));
    let store = Store::open(&path)?;
    let today = super::now().date_naive();
    let cfg = DemoConfig::new(200, 365, 7, today);
    let started = Instant::now();
    let summary = generate(&store, &cfg, |stage| eprintln!("demo: writing {stage}…"))?;
    println!(
        "Demo database {} — {} suppliers, {} weddings, {} accounts, {} usage events ({:.1} s).",
        path.display(),
        summary.suppliers,
        summary.weddings,
        summary.accounts,
        summary.usage_events,
        started.elapsed().as_secs_f64()
    );
    print_monthly(&store)?;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("switchboard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn print_monthly(store: &Store) -> anyhow::Result<()> {
    let rows = store.with_conn(|c| {
        let mut st = c.prepare(
            "SELECT substr(day, 1, 7), sum(requests), sum(input_tokens + cached_tokens + output_tokens), sum(cost_micros)
             FROM usage_daily GROUP BY 1 ORDER BY 1",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)))?;
        rows.collect::<Result<Vec<_>, _>>()
    })?;
    println!("{:<8} {:>10} {:>14} {:>12}", "MONTH", "REQUESTS", "TOKENS", "COST");
    for (month, req, tok, cost) in rows {
        println!("{month:<8} {req:>10} {tok:>14} {:>12}", crate::domain::Micros(cost).to_string());
    }
    Ok(())
}
