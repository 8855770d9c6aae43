//! `switchboard export usage …`: CSV export of usage events or day / month
//! groups, with progress on stderr.

use crate::engine::analytics::CancelHandle;
use crate::engine::export::{ExportOptions, GroupBy, export_usage};
use crate::store::Store;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Usage as CSV: one row per request, or per day / month with --group-by.
    Usage(UsageArgs),
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// First day (UTC), YYYY-MM-DD, inclusive.
    #[arg(long, value_parser = super::parse_date)]
    from: NaiveDate,
    /// Last day (UTC), YYYY-MM-DD, inclusive.
    #[arg(long, value_parser = super::parse_date)]
    to: NaiveDate,
    /// Only this supplier (its id, see `switchboard supplier list`).
    #[arg(long, value_name = "ID")]
    supplier: Option<i64>,
    /// One row per day or per month (per supplier, provider, model, request type and route).
    #[arg(long, value_name = "day|month")]
    group_by: Option<GroupBy>,
    /// The CSV file to write.
    #[arg(long, value_name = "FILE.csv")]
    out: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    force: bool,
}

pub fn run(store: &Store, cmd: ExportCommand) -> anyhow::Result<()> {
    let ExportCommand::Usage(a) = cmd;
    let opts = ExportOptions {
        from: a.from,
        to: a.to,
        supplier: a.supplier.map(crate::domain::SupplierId),
        group_by: a.group_by,
        out: a.out,
        force: a.force,
    };
    let started = Instant::now();
    let mut last_print: Option<Instant> = None;
    let summary = export_usage(store, &opts, &CancelHandle::new(), |p| {
        // At most four lines a second (the callback comes every few thousand rows).
        if last_print.is_some_and(|t| t.elapsed().as_millis() < 250) && p.rows < p.events_in_range {
            return;
        }
        last_print = Some(Instant::now());
        if p.events_in_range > 0 && opts.group_by.is_none() {
            eprint!("\rexporting… {} of {} rows ({:.0} %)", p.rows, p.events_in_range, p.rows as f64 * 100.0 / p.events_in_range as f64);
        } else {
            eprint!("\rexporting… {} rows", p.rows);
        }
    })?;
    eprintln!();
    println!(
        "Wrote {} rows ({:.1} MB) to {} in {:.1} s.",
        summary.rows,
        summary.bytes as f64 / 1e6,
        summary.path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
