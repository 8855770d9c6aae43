//! `switchboard fleet leases` and `fleet write-off`: the quota leases that
//! ended with part of their grant not folded (their instance gone), and
//! writing one off, audited (docs/fleet-quotas.md, "A lease whose instance
//! is gone stays counted").

use super::fleet::DatabaseArg;
use crate::domain::SupplierId;
use crate::store::pg::PgStore;
use crate::store::pg::block_on_pg;
use crate::store::pg::leases::{self, LeaseKey};
use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::Args;

#[derive(Debug, Args)]
pub struct LeasesArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WriteOffArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// The supplier whose quota the lease holds.
    #[arg(long)]
    pub supplier: i64,
    /// The instance that held it (`switchboard fleet leases` lists them).
    #[arg(long)]
    pub instance: i64,
    /// The quota month, YYYY-MM (default: this month, UTC).
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<String>,
    /// Why (kept in the audit log).
    #[arg(long)]
    pub reason: String,
}

/// The first day of `YYYY-MM`.
pub fn parse_month(s: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{}-01", s.trim()), "%Y-%m-%d").with_context(|| format!("'{s}' is not a month; write YYYY-MM"))
}

pub fn leases(pg: PgStore, a: LeasesArgs) -> anyhow::Result<()> {
    let now = super::now();
    let rows = block_on_pg(async move { leases::stranded(&pg, now).await })?;
    if a.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|l| {
                serde_json::json!({"supplier": l.key.supplier.0, "month": l.key.month.format("%Y-%m").to_string(), "instance": l.key.instance,
                    "granted": l.granted, "folded": l.folded, "outstanding": l.outstanding(), "ended_at": l.expires_at})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("No ended lease holds quota: every instance's usage is folded or its lease is still live.");
        return Ok(());
    }
    println!("{:>8}  {:<7} {:>8}  {:>12}  {:<19}", "SUPPLIER", "MONTH", "INSTANCE", "OUTSTANDING", "ENDED (UTC)");
    for l in &rows {
        println!(
            "{:>8}  {:<7} {:>8}  {:>12}  {}",
            l.key.supplier.0,
            l.key.month.format("%Y-%m"),
            l.key.instance,
            l.outstanding(),
            l.expires_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
    println!(
        "Each still counts against its supplier's quota until that instance's journal is folded (restart it on its host) or it is written off: switchboard fleet write-off --supplier N --instance I --month YYYY-MM --reason TEXT"
    );
    Ok(())
}

pub fn write_off(pg: PgStore, a: WriteOffArgs) -> anyhow::Result<()> {
    if a.reason.trim().is_empty() {
        bail!("say why with --reason (it is kept in the audit log)");
    }
    let now = super::now();
    let month = match &a.month {
        Some(m) => parse_month(m)?,
        None => crate::engine::quota_lease::quota_month(now),
    };
    let key = LeaseKey { supplier: SupplierId(a.supplier), month, instance: a.instance };
    let actor = crate::store::audit_actor();
    let reason = a.reason.trim().to_string();
    let tokens = block_on_pg(async move { leases::write_off(&pg, key, &actor, &reason, now).await })?;
    println!(
        "wrote off {tokens} tokens of instance {}'s lease on supplier {} for {}: they no longer count against the quota (audited)",
        a.instance,
        a.supplier,
        month.format("%Y-%m")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn months_are_read_as_their_first_day() {
        assert_eq!(super::parse_month(" 2026-07 ").unwrap(), chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert!(super::parse_month("July").unwrap_err().to_string().contains("YYYY-MM"));
        assert!(super::parse_month("2026-13").is_err());
    }
}
