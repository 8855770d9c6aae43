//! `switchboard store copy`: moves an installation between a SQLite file and
//! a PostgreSQL database (store::pg::copy), and prints what it copied and
//! verified. A PostgreSQL URL comes from --from/--to or, when one side is
//! left out, from SWITCHBOARD_DATABASE (so a password need not be on the
//! command line); passwords are masked in everything printed.

use crate::store::pg::copy::{self, CopyReport};
use crate::store::pg::{self, PgStore};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy everything that moving an installation needs (catalog, ledger, audit log,
    /// health history, alerts, incidents, migrations, mirrors, schedules, recommendations)
    /// from a SQLite file into an empty PostgreSQL database, or back into a new SQLite
    /// file, then verify row counts and ledger totals on both sides.
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Where to copy from: a SQLite file, or postgres://USER@HOST:PORT/DB
    /// (default: SWITCHBOARD_DATABASE).
    #[arg(long, value_name = "FILE.db|URL")]
    pub from: Option<String>,
    /// Where to copy to: postgres://USER@HOST:PORT/DB (an empty database), or a
    /// SQLite file that does not exist yet (default: SWITCHBOARD_DATABASE).
    #[arg(long, value_name = "FILE.db|URL")]
    pub to: Option<String>,
}

pub fn run(cmd: StoreCommand) -> anyhow::Result<()> {
    match cmd {
        StoreCommand::Copy(args) => run_copy(args),
    }
}

fn run_copy(args: CopyArgs) -> anyhow::Result<()> {
    let env = std::env::var("SWITCHBOARD_DATABASE").ok().filter(|s| !s.trim().is_empty());
    let (from, to) = match (args.from, args.to, env) {
        (Some(f), Some(t), _) => (f, t),
        (Some(f), None, Some(e)) => (f, e),
        (None, Some(t), Some(e)) => (e, t),
        _ => bail!(
            "name both sides: --from FILE.db --to postgres://… (or --from postgres://… --to NEW.db); a PostgreSQL URL may come from SWITCHBOARD_DATABASE instead"
        ),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let report = match (pg::is_postgres_url(&from), pg::is_postgres_url(&to)) {
        (false, true) => {
            let path = PathBuf::from(&from);
            if !path.is_file() {
                return Err(copy::CopyError::SourceMissing { path }.into());
            }
            let source = super::open_store(Some(path))?;
            rt.block_on(async {
                let target = PgStore::open(&to).await?;
                copy::sqlite_to_pg(&source, &target).await
            })?
        }
        (true, false) => rt.block_on(async {
            let source = PgStore::open(&from).await?;
            copy::pg_to_sqlite(&source, &PathBuf::from(&to)).await
        })?,
        (true, true) => bail!("both sides are PostgreSQL URLs; one side must be a SQLite file"),
        (false, false) => {
            bail!("neither side is a PostgreSQL URL (postgres://…); `store copy` copies between a SQLite file and PostgreSQL")
        }
    };
    print_report(&report);
    Ok(())
}

fn print_report(r: &CopyReport) {
    println!("copied {} → {}", r.source, r.target);
    println!("{:<26} {:>12} {:>12}", "table", "source", "copy");
    for t in &r.tables {
        println!("{:<26} {:>12} {:>12}", t.table, t.source, t.target);
    }
    let (s, t) = (&r.source_totals, &r.target_totals);
    println!("{:<26} {:>12} {:>12}", "ledger: events", s.events, t.events);
    println!("{:<26} {:>12} {:>12}", "ledger: tokens", s.tokens(), t.tokens());
    println!("{:<26} {:>12} {:>12}", "ledger: cost (micro-$)", s.cost_micros, t.cost_micros);
    println!("{:<26} {:>12} {:>12}", "ledger: saved (micro-$)", s.saved_micros, t.saved_micros);
    println!("{:<26} {:>12} {:>12}", "installation tag", r.instance_tag, r.instance_tag);
    println!("verified: every table's rows and the ledger totals match");
    for (what, why) in copy::NOT_COPIED {
        println!("not copied: {what} ({why})");
    }
    println!("{}", r.keys_note());
}
