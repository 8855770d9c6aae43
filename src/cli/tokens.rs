//! `switchboard token issue|list|revoke`: the gateway tokens the WedSync
//! platform presents on a supplier's behalf. A token is printed once, at
//! issue; afterwards only its hint (`sbk_…77aa`) is shown.

use super::now;
use crate::domain::SupplierId;
use crate::engine::gateway_tokens as tokens;
use crate::store::{GatewayToken, Store, TokenId, audit_actor};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a gateway token for a supplier (printed once, never shown again).
    Issue {
        #[arg(long)]
        supplier: i64,
        /// Print JSON ({"id", "supplier_id", "token", "hint"}).
        #[arg(long)]
        json: bool,
    },
    /// List gateway tokens (hints only) with created, last-used and revoked times.
    List {
        #[arg(long)]
        supplier: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a gateway token: requests with it are refused from then on.
    Revoke { id: i64 },
}

pub fn run(store: &Store, cmd: TokenCommand) -> anyhow::Result<()> {
    let actor = audit_actor();
    match cmd {
        TokenCommand::Issue { supplier, json } => {
            let s = store.supplier(SupplierId(supplier))?;
            let t = tokens::issue(store, s.id, now(), &actor)?;
            eprintln!("Copy this token now: it is shown only once and cannot be recovered (Switchboard keeps only its hash).");
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": t.record.id, "supplier_id": t.record.supplier_id, "token": t.token.expose(), "hint": t.record.hint})
                );
            } else {
                println!("{}", t.token.expose());
                eprintln!("Issued token {} ({}) for supplier {} '{}'.", t.record.id, t.record.hint, s.id, s.name);
            }
        }
        TokenCommand::List { supplier, json } => {
            let list = store.list_tokens(supplier.map(SupplierId))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("No gateway tokens. Issue one with `switchboard token issue --supplier ID`.");
            } else {
                print_table(&list);
            }
        }
        TokenCommand::Revoke { id } => {
            let t = tokens::revoke(store, TokenId(id), now(), &actor)?;
            println!("Revoked token {} ({}) of supplier {}.", t.id, t.hint, t.supplier_id);
        }
    }
    Ok(())
}

fn print_table(list: &[GatewayToken]) {
    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into());
    println!("{:>4}  {:>8}  {:<12}  {:<16}  {:<16}  {:<16}", "ID", "SUPPLIER", "HINT", "CREATED", "LAST USED", "REVOKED");
    for t in list {
        println!(
            "{:>4}  {:>8}  {:<12}  {:<16}  {:<16}  {:<16}",
            t.id.0,
            t.supplier_id.0,
            t.hint,
            fmt(Some(t.created_at)),
            fmt(t.last_used_at),
            fmt(t.revoked_at)
        );
    }
    println!("{} token(s)", list.len());
}
