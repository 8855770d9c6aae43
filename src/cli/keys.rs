//! `switchboard key add|list|validate|rotate|remove|prune-orphans`: provider API keys for
//! platform and supplier accounts. Keys are read from standard input (or a
//! no-echo prompt on a terminal), never from the command line; output shows
//! only masked fingerprints.

use crate::domain::Secret;
use crate::domain::{AccountId, AccountOwner, AzureConfig, ProviderAccount, ProviderKind, SupplierId, SystemClock};
use crate::engine::keys::{KeyOutcome, KeyService, NewKey, OrphanKey, Validation};
use crate::providers::{Providers, ProvidersConfig};
use crate::store::Store;
use crate::vault::Vault;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Read};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add a provider account with its key (read from standard input, never from the command line).
    Add(AddArgs),
    /// List provider accounts with masked key fingerprints and validation state.
    List {
        /// Only this owner's accounts: platform or a supplier ID.
        #[arg(long, value_parser = parse_owner)]
        owner: Option<AccountOwner>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check an account's key live against its provider and record the result.
    Validate {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Replace an account's key (new key on standard input); the new key is validated first.
    Rotate {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Remove an account and its key from the keychain.
    Remove {
        id: i64,
        /// Remove even if the account is a client-mode supplier's only enabled account.
        #[arg(long)]
        force: bool,
    },
    /// Show or set a platform key's pool settings: weight, its own requests and
    /// tokens per minute, and a monthly budget in dollars (`none` unsets one).
    Pool(super::pools::PoolArgs),
    /// Remove keychain entries of this database whose provider account no longer exists.
    PruneOrphans {
        /// Only list them; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove entries named by an earlier Switchboard (without a database tag);
        /// only when no other Switchboard database on this machine may own them.
        #[arg(long)]
        include_untagged: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// platform (WedSync's own account) or the ID of the supplier that owns the account.
    #[arg(long, value_parser = parse_owner)]
    owner: AccountOwner,
    /// openai, anthropic or azure-openai.
    #[arg(long, value_parser = parse_provider)]
    provider: ProviderKind,
    /// A name for the account (default: provider and owner).
    #[arg(long)]
    label: Option<String>,
    /// API base URL (default: the provider's public API); for Azure, the resource endpoint.
    #[arg(long)]
    base_url: Option<String>,
    /// Model used when a request's model is not offered here.
    #[arg(long)]
    model: Option<String>,
    /// Azure OpenAI deployment name.
    #[arg(long, requires = "api_version")]
    deployment: Option<String>,
    /// Azure OpenAI api-version, e.g. 2024-10-21.
    #[arg(long, requires = "deployment")]
    api_version: Option<String>,
    /// Store the key without checking it live (e.g. offline); run `key validate ID` later.
    #[arg(long)]
    no_validate: bool,
    #[arg(long)]
    json: bool,
}

fn parse_owner(s: &str) -> Result<AccountOwner, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("platform") {
        return Ok(AccountOwner::Platform);
    }
    t.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| AccountOwner::Supplier(SupplierId(n)))
        .ok_or_else(|| format!("'{s}' is not an owner; write 'platform' or a supplier ID (see `switchboard supplier list`)"))
}

fn parse_provider(s: &str) -> Result<ProviderKind, String> {
    s.parse().map_err(|e: crate::domain::ParseEnumError| e.to_string())
}

/// Reads one key: a no-echo prompt on a terminal, otherwise standard input.
pub(crate) fn read_secret(prompt: &str) -> anyhow::Result<Secret> {
    let stdin = std::io::stdin();
    let raw = if stdin.is_terminal() {
        rpassword::prompt_password(prompt).context("cannot read the key from the terminal")?
    } else {
        let mut buf = String::new();
        stdin.lock().take(64 * 1024).read_to_string(&mut buf).context("cannot read the key from standard input (it must be text)")?;
        buf
    };
    let key = Secret::new(raw);
    if key.is_empty() {
        anyhow::bail!("no key was given on standard input; pipe it in, e.g. `pass show openai | switchboard key add …`");
    }
    Ok(key)
}

pub(super) fn service(store: Arc<Store>) -> anyhow::Result<KeyService> {
    let providers = Providers::new(ProvidersConfig::default()).map_err(|e| anyhow::anyhow!("cannot start the HTTP client: {e}"))?;
    // On PostgreSQL keys are sealed to the fleet's public key (`switchboard fleet init`).
    let vault = match store.postgres() {
        Some(pg) => crate::engine::sealed_keys::server_vault(pg.clone(), Arc::new(SystemClock)),
        None => Vault::os(),
    };
    Ok(KeyService::new(store, vault, Arc::new(providers), Arc::new(SystemClock)))
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

pub fn run(store: Store, cmd: KeyCommand) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let rt = runtime()?;
    match cmd {
        KeyCommand::Add(a) => {
            let azure = match (a.deployment, a.api_version) {
                (Some(deployment), Some(api_version)) => Some(AzureConfig { deployment, api_version }),
                _ => None,
            };
            let new = NewKey { owner: a.owner, provider: a.provider, label: a.label, base_url: a.base_url, default_model: a.model, azure };
            // Check the owner before asking for the key.
            if let AccountOwner::Supplier(s) = new.owner {
                store.supplier(s)?;
            }
            let key = read_secret(&format!("{} key (input hidden): ", new.provider.display_name()))?;
            let svc = service(store)?;
            let out = rt.block_on(svc.add(new, key, !a.no_validate))?;
            print_outcome("Added", &out, a.json)?;
        }
        KeyCommand::List { owner, json } => {
            let list = store.list_accounts(owner)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!(
                    "No provider accounts. Add one with `switchboard key add --owner platform --provider openai` (key on standard input)."
                );
            } else {
                print_table(&list);
            }
        }
        KeyCommand::Validate { id, json } => {
            let svc = service(store)?;
            let v = rt.block_on(svc.validate(AccountId(id)))?;
            if json {
                println!("{}", validation_json(&v));
            } else {
                println!("Account {id}: {} — {}", v.status, v.message);
            }
            if v.status != crate::domain::ValidationStatus::Valid {
                anyhow::bail!("the key of account {id} did not validate ({}); see the message above", v.status);
            }
        }
        KeyCommand::Rotate { id, json } => {
            let account = store.account(AccountId(id))?;
            let key = read_secret(&format!("new {} key for account {id} (input hidden): ", account.provider.display_name()))?;
            let svc = service(store)?;
            let out = rt.block_on(svc.rotate(AccountId(id), key))?;
            print_outcome("Rotated the key of", &out, json)?;
        }
        KeyCommand::Remove { id, force } => {
            let svc = service(store)?;
            let a = rt.block_on(svc.remove(AccountId(id), force))?;
            println!("Removed account {} '{}' and its key from the keychain.", a.id, a.label);
        }
        KeyCommand::Pool(a) => super::pools::run(&store, a)?,
        KeyCommand::PruneOrphans { dry_run, include_untagged, json } => {
            let svc = service(store)?;
            let found = rt.block_on(svc.orphan_keys())?;
            let removed = if dry_run { Vec::new() } else { rt.block_on(svc.prune_orphans(include_untagged))? };
            print_orphans(&found, &removed, dry_run, include_untagged, json)?;
        }
    }
    Ok(())
}

fn print_orphans(found: &[OrphanKey], removed: &[OrphanKey], dry_run: bool, include_untagged: bool, json: bool) -> anyhow::Result<()> {
    if json {
        let v = serde_json::json!({"found": found, "removed": removed, "dry_run": dry_run});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if found.is_empty() {
        println!("No orphaned keychain entries: every entry of this database belongs to an existing account.");
        return Ok(());
    }
    for o in found {
        let done = removed.iter().any(|r| r.key_ref == o.key_ref);
        let state = match (dry_run, done, o.untagged) {
            (true, _, _) => "would be removed",
            (false, true, _) => "removed",
            (false, false, true) => "kept (untagged: may belong to another database; pass --include-untagged)",
            (false, false, false) => "kept",
        };
        println!("  {}  account {}  {}", o.key_ref, o.account, state);
    }
    let untagged = found.iter().filter(|o| o.untagged).count();
    if dry_run {
        println!("{} orphaned keychain entr{} (dry run: nothing removed).", found.len(), if found.len() == 1 { "y" } else { "ies" });
        if untagged > 0 && !include_untagged {
            println!("{untagged} of them are untagged and would be kept unless --include-untagged is given.");
        }
    } else {
        println!("Removed {} orphaned keychain entr{}.", removed.len(), if removed.len() == 1 { "y" } else { "ies" });
    }
    Ok(())
}

/// Removes the keys of a supplier's accounts from the keychain (before the
/// supplier and, by cascade, its accounts are deleted), so no key is left
/// behind in the keychain. Returns how many accounts were removed.
pub(crate) fn remove_supplier_keys(store: &Store, supplier: SupplierId) -> anyhow::Result<usize> {
    let accounts = store.list_accounts(Some(AccountOwner::Supplier(supplier)))?;
    if accounts.is_empty() {
        return Ok(0);
    }
    let svc = service(Arc::new(store.reopen()?))?;
    let rt = runtime()?;
    rt.block_on(svc.remove_supplier_keys(supplier))
        .context("cannot remove the supplier's keys from the keychain; the supplier was not removed")?;
    Ok(accounts.len())
}

fn validation_json(v: &Validation) -> serde_json::Value {
    serde_json::json!({"status": v.status, "message": v.message, "at": v.at})
}

fn print_outcome(verb: &str, o: &KeyOutcome, json: bool) -> anyhow::Result<()> {
    let a = &o.account;
    if json {
        let mut v = serde_json::to_value(a)?;
        if let (Some(obj), Some(val)) = (v.as_object_mut(), &o.validation) {
            obj.insert("validation".into(), validation_json(val));
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{verb} account {} '{}' ({}, {}), key {}.",
        a.id,
        a.label,
        a.provider.display_name(),
        a.owner,
        a.key_fingerprint.as_deref().unwrap_or("-")
    );
    match &o.validation {
        Some(v) if v.status == crate::domain::ValidationStatus::Valid => println!("Validated live: {}.", v.message),
        Some(v) => eprintln!(
            "warning: the key was stored but did not validate ({}: {}). Fix it with `switchboard key rotate {}` or check again with `switchboard key validate {}`.",
            v.status, v.message, a.id, a.id
        ),
        None => println!("Not validated yet; run `switchboard key validate {}`.", a.id),
    }
    Ok(())
}

fn print_table(list: &[ProviderAccount]) {
    let label_w = list.iter().map(|a| a.label.chars().count()).max().unwrap_or(5).clamp(5, 32);
    println!(
        "{:>4}  {:<12}  {:<12}  {:<label_w$}  {:<14}  {:<15}  {:<16}  ENABLED",
        "ID", "OWNER", "PROVIDER", "LABEL", "KEY", "VALIDATION", "VALIDATED"
    );
    for a in list {
        let owner = match a.owner {
            AccountOwner::Platform => "platform".to_string(),
            AccountOwner::Supplier(s) => format!("supplier {s}"),
        };
        let label: String = a.label.chars().take(label_w).collect();
        println!(
            "{:>4}  {:<12}  {:<12}  {:<label_w$}  {:<14}  {:<15}  {:<16}  {}",
            a.id.0,
            owner,
            a.provider.as_str(),
            label,
            a.key_fingerprint.as_deref().unwrap_or("(no key)"),
            a.last_validation.map(|v| v.as_str()).unwrap_or("never"),
            a.last_validated_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into()),
            if a.enabled { "yes" } else { "no" }
        );
    }
    println!("{} account(s)", list.len());
}
