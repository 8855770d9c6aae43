//! Editing a key's pool settings (weight, requests and tokens per minute,
//! monthly budget) for the CLI and the console: checked, stored, and written
//! to the audit log. The serving runtime adopts a change with its next
//! catalog reload (the settings table bumps the catalog version).

use crate::domain::keypool::PoolSettings;
use crate::domain::{AccountId, Micros};
use crate::store::Store;
use chrono::{DateTime, Utc};

/// The largest weight (weights are relative; 1,000 to 1 is plenty).
pub const MAX_WEIGHT: u32 = 1_000;

/// Why settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum PoolSettingsError {
    #[error("weight {0} is out of range: use 1 to {MAX_WEIGHT}")]
    Weight(u32),
    #[error("{0} must be at least 1 (leave it unset for no limit)")]
    Zero(&'static str),
    #[error("a monthly budget cannot be negative")]
    NegativeBudget,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Checks settings without storing them.
pub fn check(s: &PoolSettings) -> Result<(), PoolSettingsError> {
    if let Some(w) = s.weight
        && !(1..=MAX_WEIGHT).contains(&w)
    {
        return Err(PoolSettingsError::Weight(w));
    }
    if s.rpm == Some(0) {
        return Err(PoolSettingsError::Zero("requests per minute"));
    }
    if s.tpm == Some(0) {
        return Err(PoolSettingsError::Zero("tokens per minute"));
    }
    if s.monthly_budget.is_some_and(|b| b < Micros::ZERO) {
        return Err(PoolSettingsError::NegativeBudget);
    }
    Ok(())
}

/// A one-line description (`weight 2, 60 rpm, 150000 tpm, budget $50.00`).
pub fn describe(s: &PoolSettings) -> String {
    let mut parts = Vec::new();
    parts.push(format!("weight {}", s.weight()));
    if let Some(r) = s.rpm {
        parts.push(format!("{r} rpm"));
    }
    if let Some(t) = s.tpm {
        parts.push(format!("{t} tpm"));
    }
    if let Some(b) = s.monthly_budget {
        parts.push(format!("budget {b}"));
    }
    parts.join(", ")
}

/// Stores an account's settings and audits the change (`actor`: who).
pub fn set(store: &Store, account: AccountId, s: PoolSettings, actor: &str, now: DateTime<Utc>) -> Result<PoolSettings, PoolSettingsError> {
    check(&s)?;
    let before = store.account_pool_settings(account)?;
    store.set_account_pool_settings(account, &s)?;
    let detail = format!("{} → {}", describe(&before), describe(&s));
    let _ = store.audit(now, actor, "key.pool_settings", None, Some(account), "ok", &detail);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_described() {
        let ok = PoolSettings { weight: Some(3), rpm: Some(60), tpm: Some(150_000), monthly_budget: Some(Micros(50_000_000)) };
        assert!(check(&ok).is_ok());
        assert_eq!(describe(&ok), "weight 3, 60 rpm, 150000 tpm, budget $50.00");
        assert!(matches!(check(&PoolSettings { weight: Some(0), ..ok }), Err(PoolSettingsError::Weight(0))));
        assert!(matches!(check(&PoolSettings { weight: Some(1001), ..ok }), Err(PoolSettingsError::Weight(_))));
        assert!(matches!(check(&PoolSettings { rpm: Some(0), ..ok }), Err(PoolSettingsError::Zero(_))));
        assert!(matches!(check(&PoolSettings { monthly_budget: Some(Micros(-1)), ..ok }), Err(PoolSettingsError::NegativeBudget)));
        assert_eq!(describe(&PoolSettings::default()), "weight 1");
    }
}
