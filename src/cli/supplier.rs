//! `switchboard supplier add|list|show|edit|remove`.

use super::{now, parse_date};
use crate::domain::supplier::{Tz, parse_time_zone};
use crate::domain::{AiMode, NewSupplier, Supplier, SupplierId, Tier, VendorType};
use crate::store::audit_actor;
use crate::store::{Store, SupplierFilter, SupplierPatch};
use chrono::NaiveDate;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum SupplierCommand {
    /// Add a supplier.
    Add(AddArgs),
    /// List suppliers (filter with --search, --tier, --vendor-type, --mode).
    List(ListArgs),
    /// Show one supplier with its weddings.
    Show {
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change a supplier's name, tier, vendor type, AI mode, time zone or weddings.
    Edit(EditArgs),
    /// Remove a supplier with its weddings, accounts and tokens (its usage history is kept).
    Remove { id: i64 },
    /// Import suppliers from a CSV file with the columns name, vendor_type,
    /// tier, mode, time_zone, weddings (dates separated by `;`). Every row is
    /// checked first; valid rows are imported, the others reported by line.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file (or, with --template, where to write the template).
    file: std::path::PathBuf,
    /// Write a template file with the columns and two example rows, and import nothing.
    #[arg(long)]
    template: bool,
    /// Check every row and print the report, but import nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the rejected rows (line, name, reason) to this CSV file.
    #[arg(long, value_name = "PATH")]
    rejected: Option<std::path::PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The business name, e.g. "Capture Moments".
    #[arg(long)]
    name: String,
    /// photographer, venue, planner, florist, caterer or other.
    #[arg(long, value_parser = parse_vendor)]
    vendor_type: VendorType,
    /// starter, professional, scale or enterprise.
    #[arg(long, value_parser = parse_tier)]
    tier: Tier,
    /// platform (WedSync's accounts, counted against the tier quota) or client (the supplier's own account).
    #[arg(long, value_parser = parse_mode, default_value = "platform")]
    mode: AiMode,
    /// A wedding date (YYYY-MM-DD); repeat for several.
    #[arg(long = "wedding", value_parser = parse_date)]
    weddings: Vec<NaiveDate>,
    /// Never fail over onto platform AI when the supplier's own accounts are down.
    #[arg(long)]
    no_platform_failover: bool,
    /// The supplier's time zone (IANA name, e.g. America/Los_Angeles): its wedding
    /// days are local days there. Default: SWITCHBOARD_TIME_ZONE, else UTC.
    #[arg(long, value_parser = parse_tz)]
    time_zone: Option<Tz>,
    /// Print the new supplier as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only suppliers whose name contains this text (case-insensitive).
    #[arg(long)]
    search: Option<String>,
    #[arg(long, value_parser = parse_tier)]
    tier: Option<Tier>,
    #[arg(long, value_parser = parse_vendor)]
    vendor_type: Option<VendorType>,
    #[arg(long, value_parser = parse_mode)]
    mode: Option<AiMode>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    id: i64,
    #[arg(long)]
    name: Option<String>,
    #[arg(long, value_parser = parse_vendor)]
    vendor_type: Option<VendorType>,
    #[arg(long, value_parser = parse_tier)]
    tier: Option<Tier>,
    #[arg(long, value_parser = parse_mode)]
    mode: Option<AiMode>,
    /// Allow (true) or forbid (false) failover onto platform AI.
    #[arg(long)]
    platform_failover: Option<bool>,
    /// The supplier's time zone (IANA name, e.g. Europe/London).
    #[arg(long, value_parser = parse_tz)]
    time_zone: Option<Tz>,
    /// Add a wedding date (YYYY-MM-DD); repeat for several.
    #[arg(long = "add-wedding", value_parser = parse_date)]
    add_weddings: Vec<NaiveDate>,
    /// Remove a wedding date (YYYY-MM-DD); repeat for several.
    #[arg(long = "remove-wedding", value_parser = parse_date)]
    remove_weddings: Vec<NaiveDate>,
    #[arg(long)]
    json: bool,
}

fn parse_vendor(s: &str) -> Result<VendorType, String> {
    s.parse().map_err(|e: crate::domain::ParseEnumError| e.to_string())
}
fn parse_tier(s: &str) -> Result<Tier, String> {
    s.parse().map_err(|e: crate::domain::ParseEnumError| e.to_string())
}
fn parse_tz(s: &str) -> Result<Tz, String> {
    parse_time_zone(s)
}
fn parse_mode(s: &str) -> Result<AiMode, String> {
    s.parse().map_err(|e: crate::domain::ParseEnumError| e.to_string())
}

pub fn run(store: &Store, cmd: SupplierCommand) -> anyhow::Result<()> {
    let actor = audit_actor();
    match cmd {
        SupplierCommand::Add(a) => {
            let mut new = NewSupplier::new(a.name, a.vendor_type, a.tier, a.mode);
            new.weddings = a.weddings;
            new.allow_platform_failover = !a.no_platform_failover;
            new.time_zone = a.time_zone.unwrap_or_else(crate::console::views::suppliers::platform_time_zone);
            let s = store.insert_supplier(&new, now())?;
            store.audit(
                now(),
                &actor,
                "supplier.add",
                Some(s.id),
                None,
                "ok",
                &format!("{} ({}, {}, {}, {})", s.name, s.vendor_type, s.tier, s.ai_mode, s.time_zone.name()),
            )?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("Added supplier {} '{}'.", s.id, s.name);
            }
        }
        SupplierCommand::List(a) => {
            let list =
                store.list_suppliers(&SupplierFilter { search: a.search, tier: a.tier, vendor_type: a.vendor_type, ai_mode: a.mode })?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!(
                    "No suppliers match. Add one with `switchboard supplier add --name NAME --vendor-type photographer --tier professional`."
                );
            } else {
                print_table(&list);
            }
        }
        SupplierCommand::Show { id, json } => {
            let s = store.supplier(SupplierId(id))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_supplier(&s);
            }
        }
        SupplierCommand::Edit(a) => {
            let patch = SupplierPatch {
                name: a.name,
                vendor_type: a.vendor_type,
                tier: a.tier,
                ai_mode: a.mode,
                allow_platform_failover: a.platform_failover,
                time_zone: a.time_zone,
                add_weddings: a.add_weddings,
                remove_weddings: a.remove_weddings,
                set_weddings: None,
            };
            let before = store.supplier(SupplierId(a.id))?;
            let s = store.update_supplier(SupplierId(a.id), &patch, now())?;
            if let Some(change) = crate::domain::supplier_query::describe_change(&before, &s) {
                store.audit(now(), &actor, "supplier.edit", Some(s.id), None, "ok", &change)?;
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("Updated supplier {} '{}'.", s.id, s.name);
            }
        }
        SupplierCommand::Remove { id } => {
            let s = store.supplier(SupplierId(id))?;
            // Keys first: the accounts go with the supplier, their keys must not stay in the keychain.
            let removed = super::keys::remove_supplier_keys(store, s.id)?;
            if removed > 0 {
                println!("Removed {removed} provider account(s) of supplier {} and their keys from the keychain.", s.id);
            }
            store.delete_supplier(s.id)?;
            store.audit(now(), &actor, "supplier.remove", Some(s.id), None, "ok", &s.name)?;
            println!("Removed supplier {} '{}' (its usage history is kept).", s.id, s.name);
        }
        SupplierCommand::Import(a) => run_import(store, &actor, a)?,
    }
    Ok(())
}

fn run_import(store: &Store, actor: &str, a: ImportArgs) -> anyhow::Result<()> {
    use crate::engine::supplier_import as imp;
    use std::io::Write;
    if a.template {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&a.file)
            .map_err(|e| anyhow::anyhow!("cannot write the template to {}: {e}", a.file.display()))?;
        f.write_all(crate::domain::supplier_import::template().as_bytes())?;
        println!("Wrote the import template to {}.", a.file.display());
        return Ok(());
    }
    let preview = imp::preview_file(&a.file, store, crate::console::views::suppliers::platform_time_zone())?;
    let valid = preview.valid.len();
    let report = if a.dry_run {
        crate::domain::supplier_import::ImportReport { total: preview.total, imported: 0, rejected: preview.rejected, cancelled: false }
    } else {
        let cancel = crate::engine::analytics::CancelHandle::new();
        let interactive = !a.json;
        imp::import(store, preview, now(), actor, &cancel, |p| {
            if interactive && p.total >= 500 {
                eprint!("\r  imported {} of {} rows…", p.done, p.total);
            }
        })?
    };
    if !a.json && report.total >= 500 && !a.dry_run {
        eprintln!();
    }
    if let Some(path) = &a.rejected {
        std::fs::write(path, imp::rejected_csv(&report.rejected))
            .map_err(|e| anyhow::anyhow!("cannot write the rejected rows to {}: {e}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if a.dry_run {
            println!(
                "Checked {} rows: {valid} can be imported, {} would be rejected (nothing imported).",
                report.total,
                report.rejected.len()
            );
        } else {
            println!("Imported {} of {} suppliers; {} rows rejected.", report.imported, report.total, report.rejected.len());
        }
        for r in report.rejected.iter().take(20) {
            println!("  line {:>6}  {:<30}  {}", r.line, r.name, r.reason);
        }
        if report.rejected.len() > 20 {
            match &a.rejected {
                Some(p) => println!("  … and {} more in {}", report.rejected.len() - 20, p.display()),
                None => println!("  … and {} more; write them all with --rejected FILE.csv", report.rejected.len() - 20),
            }
        }
    }
    Ok(())
}

fn print_table(list: &[Supplier]) {
    let now_utc = super::now();
    let name_w = list.iter().map(|s| s.name.chars().count()).max().unwrap_or(4).clamp(4, 40);
    println!(
        "{:>5}  {:<name_w$}  {:<12}  {:<12}  {:<8}  {:<12}  {:>8}",
        "ID", "NAME", "VENDOR", "TIER", "MODE", "NEXT WEDDING", "WEDDINGS"
    );
    for s in list {
        let name: String = s.name.chars().take(name_w).collect();
        let next = s.next_wedding(s.local_date(now_utc)).map(|d| d.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:>5}  {:<name_w$}  {:<12}  {:<12}  {:<8}  {:<12}  {:>8}",
            s.id.0,
            name,
            s.vendor_type.as_str(),
            s.tier.as_str(),
            s.ai_mode.as_str(),
            next,
            s.weddings.len()
        );
    }
    println!("{} supplier(s)", list.len());
}

fn print_supplier(s: &Supplier) {
    println!("Supplier {}: {}", s.id, s.name);
    println!("  vendor type        {}", s.vendor_type);
    println!("  tier               {}", s.tier);
    println!("  AI mode            {}", s.ai_mode);
    println!("  platform failover  {}", if s.allow_platform_failover { "allowed" } else { "forbidden" });
    println!("  time zone          {} (wedding days are local days there)", s.time_zone.name());
    println!("  created            {}", s.created_at.format("%Y-%m-%d %H:%M UTC"));
    if s.weddings.is_empty() {
        println!("  weddings           none (add with `switchboard supplier edit {} --add-wedding YYYY-MM-DD`)", s.id);
    } else {
        let shown: Vec<String> = s.weddings.iter().map(|d| d.to_string()).collect();
        println!("  weddings ({})      {}", s.weddings.len(), shown.join(", "));
    }
}
