//! `switchboard cache purge [--supplier ID]`, `cache stats` and `cache set`:
//! the response cache of a database from the command line. A purge deletes
//! the persistent entries, logs the purge (a serving runtime drops its
//! memory entries within a second) and is audited. Stats read the
//! persistent table and the ledger's cache rows (hits and what they saved).

use crate::domain::cache::CacheSettings;
use crate::domain::{Clock, Micros, SupplierId, SystemClock};
use crate::engine::cache as engine_cache;
use crate::store::Store;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Delete cached answers: every supplier's, or one supplier's with --supplier.
    Purge(PurgeArgs),
    /// Entries, bytes, hits and dollars saved, per supplier.
    Stats(StatsArgs),
    /// Show or change a supplier's cache settings (on/off and TTLs).
    Set(SetArgs),
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Only this supplier's entries (`switchboard supplier list`).
    #[arg(long, value_name = "ID")]
    supplier: Option<i64>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The supplier's ID.
    supplier: i64,
    /// Turn the supplier's cache on or off.
    #[arg(long, value_parser = ["on", "off"])]
    cache: Option<String>,
    /// How long a chat answer is kept, in hours.
    #[arg(long, value_name = "HOURS", value_parser = clap::value_parser!(u64).range(1..=8760))]
    chat_ttl_hours: Option<u64>,
    /// How long an embeddings answer is kept, in days.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u64).range(1..=365))]
    embeddings_ttl_days: Option<u64>,
}

pub fn run(store: &Store, cmd: CacheCommand) -> anyhow::Result<()> {
    match cmd {
        CacheCommand::Purge(a) => {
            let supplier = match a.supplier {
                Some(id) => Some(store.supplier(SupplierId(id))?.id),
                None => None,
            };
            let n = engine_cache::purge_offline(store, supplier, SystemClock.now(), &crate::store::audit_actor())?;
            match (n, supplier) {
                (Some(n), Some(s)) => println!("Purged {n} cached answers of supplier {}.", s.0),
                (Some(n), None) => println!("Purged the whole response cache: {n} cached answers."),
                (None, Some(s)) => println!(
                    "Purge of supplier {}'s cached answers sent to the fleet: every instance purges its own cache within a second.",
                    s.0
                ),
                (None, None) => {
                    println!("Purge of the whole response cache sent to the fleet: every instance purges its own cache within a second.")
                }
            }
            Ok(())
        }
        CacheCommand::Stats(a) => stats(store, a.json),
        CacheCommand::Set(a) => {
            let id = store.supplier(SupplierId(a.supplier))?.id;
            let mut s = store.cache_settings(id)?;
            let before = s;
            if let Some(c) = &a.cache {
                s.enabled = c == "on";
            }
            if let Some(h) = a.chat_ttl_hours {
                s.chat_ttl_secs = h * 3600;
            }
            if let Some(d) = a.embeddings_ttl_days {
                s.embeddings_ttl_secs = d * 86_400;
            }
            if s != before {
                engine_cache::set_settings(store, id, s, &crate::store::audit_actor(), SystemClock.now())?;
            }
            println!("supplier {}: {}", id.0, describe(&s));
            Ok(())
        }
    }
}

/// "on, chat answers kept 24 h, embeddings 30 days".
pub fn describe(s: &CacheSettings) -> String {
    format!(
        "cache {}, chat answers kept {} h, embeddings {} days",
        if s.enabled { "on" } else { "off" },
        s.chat_ttl_secs / 3600,
        s.embeddings_ttl_secs / 86_400
    )
}

fn stats(store: &Store, json: bool) -> anyhow::Result<()> {
    let usage = store.response_cache_usage()?;
    let hits = store.cache_hits_by_supplier()?;
    let mut ids: Vec<SupplierId> = usage.iter().map(|u| u.0).chain(hits.iter().map(|h| h.0)).collect();
    ids.sort();
    ids.dedup();
    let rows: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let u = usage.iter().find(|u| u.0 == *id).map(|u| u.1.clone()).unwrap_or_default();
            let (h, saved) = hits.iter().find(|h| h.0 == *id).map(|h| (h.1, h.2)).unwrap_or((0, Micros::ZERO));
            serde_json::json!({"supplier": id.0, "entries": u.entries, "bytes": u.bytes, "hits": h, "saved_micro_usd": saved.0})
        })
        .collect();
    if json {
        println!("{}", serde_json::json!({"suppliers": rows}));
        return Ok(());
    }
    let total_entries: u64 = usage.iter().map(|u| u.1.entries).sum();
    let total_bytes: u64 = usage.iter().map(|u| u.1.bytes).sum();
    let total_hits: u64 = hits.iter().map(|h| h.1).sum();
    let total_saved = Micros(hits.iter().fold(0i64, |a, h| a.saturating_add(h.2.0)));
    println!("{total_entries} cached answers, {total_bytes} bytes; {total_hits} hits saved {total_saved}");
    println!("{:>9}  {:>8}  {:>12}  {:>8}  {:>12}", "supplier", "entries", "bytes", "hits", "saved");
    for r in rows {
        println!(
            "{:>9}  {:>8}  {:>12}  {:>8}  {:>12}",
            r["supplier"],
            r["entries"],
            r["bytes"],
            r["hits"],
            Micros(r["saved_micro_usd"].as_i64().unwrap_or(0)).to_string()
        );
    }
    Ok(())
}
