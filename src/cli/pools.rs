//! `switchboard key pool ID [--weight N] [--rpm N] [--tpm N] [--budget DOLLARS]`:
//! shows or sets a key's pool settings (`none` unsets a field, `--clear` all).

use crate::domain::keypool::PoolSettings;
use crate::domain::{AccountId, Clock, Micros, SystemClock};
use crate::engine::pool_settings;
use crate::store::Store;
use clap::Args;

#[derive(Debug, Args)]
pub struct PoolArgs {
    /// The account's ID (`switchboard key list`).
    id: i64,
    /// Relative share under the weighted strategy, 1–1000 (`none`: 1).
    #[arg(long)]
    weight: Option<String>,
    /// The key's own requests per minute (`none`: no limit of ours).
    #[arg(long)]
    rpm: Option<String>,
    /// The key's own tokens per minute (`none`: no limit of ours).
    #[arg(long)]
    tpm: Option<String>,
    /// Monthly budget in dollars, e.g. 250 or 99.50 (`none`: no budget).
    #[arg(long)]
    budget: Option<String>,
    /// Remove all of the key's pool settings.
    #[arg(long)]
    clear: bool,
    #[arg(long)]
    json: bool,
}

/// `none` → `Some(None)`; a number → `Some(Some(n))`; absent → `None`.
fn field<T: std::str::FromStr>(v: &Option<String>, what: &str) -> anyhow::Result<Option<Option<T>>> {
    match v.as_deref().map(str::trim) {
        None => Ok(None),
        Some("none") => Ok(Some(None)),
        Some(s) => s.parse::<T>().map(|n| Some(Some(n))).map_err(|_| anyhow::anyhow!("--{what}: '{s}' is not a whole number (or `none`)")),
    }
}

pub fn run(store: &Store, a: PoolArgs) -> anyhow::Result<()> {
    let id = AccountId(a.id);
    let account = store.account(id)?;
    let mut s = if a.clear { PoolSettings::default() } else { store.account_pool_settings(id)? };
    let changed = a.clear || a.weight.is_some() || a.rpm.is_some() || a.tpm.is_some() || a.budget.is_some();
    if let Some(w) = field::<u32>(&a.weight, "weight")? {
        s.weight = w;
    }
    if let Some(r) = field::<u32>(&a.rpm, "rpm")? {
        s.rpm = r;
    }
    if let Some(t) = field::<u64>(&a.tpm, "tpm")? {
        s.tpm = t;
    }
    match a.budget.as_deref().map(str::trim) {
        None => {}
        Some("none") => s.monthly_budget = None,
        Some(b) => s.monthly_budget = Some(Micros::parse_decimal(b.trim_start_matches('$')).map_err(|e| anyhow::anyhow!("--budget: {e}"))?),
    }
    if changed {
        s = pool_settings::set(store, id, s, "cli", SystemClock.now())?;
    }
    if a.json {
        println!("{}", serde_json::json!({"account": id.0, "label": account.label, "settings": s}));
    } else {
        println!("{} (account {}): {}", account.label, id.0, pool_settings::describe(&s));
    }
    Ok(())
}
