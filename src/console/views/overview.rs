//! The Overview's data: today's and this month's totals, weddings this week,
//! platform and client accounts, the suppliers nearest their quota and the
//! last 30 days of requests.

use crate::console::service::{Res, Service, msg};
use crate::console::*;
use crate::domain::{AccountOwner, AiMode, ProviderAccount, ProviderKind, ValidationStatus};
use crate::domain::{UsageDimension, UsageTotals};
use crate::store::WeddingRow;
use chrono::{Duration, NaiveDate};
use std::collections::HashMap;

/// A provider account as the console shows it: never a key, only its masked fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub label: String,
    pub provider: ProviderKind,
    pub owner: AccountOwner,
    pub default_model: String,
    /// `sk-…a1b2`, or `None` when no key is stored yet.
    pub fingerprint: Option<String>,
    pub validation: Option<ValidationStatus>,
    pub enabled: bool,
}

impl From<&ProviderAccount> for AccountSummary {
    fn from(a: &ProviderAccount) -> Self {
        AccountSummary {
            label: a.label.clone(),
            provider: a.provider,
            owner: a.owner,
            default_model: a.default_model.clone(),
            fingerprint: a.key_fingerprint.clone(),
            validation: a.last_validation,
            enabled: a.enabled,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeddingDay {
    pub day: NaiveDate,
    pub suppliers: Vec<WeddingRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub today: NaiveDate,
    pub today_totals: UsageTotals,
    pub month_totals: UsageTotals,
    pub suppliers: usize,
    pub client_mode: usize,
    pub weddings_this_week: Vec<WeddingDay>,
    pub platform_accounts: Vec<AccountSummary>,
    pub client_accounts_by_provider: Vec<(ProviderKind, usize)>,
    pub near_quota: Vec<SupplierRow>,
    /// Requests per day over the last 30 days: `[day number, requests]`.
    pub last_30_days: Vec<[f64; 2]>,
    /// The first-run checklist, each step from what the database holds.
    pub getting_started: super::getting_started::GettingStarted,
}

impl Service {
    pub(in crate::console) fn overview(&self) -> Res<Overview> {
        let today = self.today();
        let tomorrow = today + Duration::days(1);
        let month = crate::domain::calendar::first_of_month(today);
        let cat = self.supplier_cache()?;
        let mut rows: Vec<SupplierRow> =
            cat.suppliers.iter().filter(|s| s.ai_mode == AiMode::Platform).map(|s| self.row(s, &cat, today)).collect();
        sort_rows(&mut rows, SupplierSort::QuotaUsed, true);
        rows.truncate(8);
        let weddings = self.store.weddings_between(today, today + Duration::days(7)).map_err(msg)?;
        let mut weddings_this_week: Vec<WeddingDay> = Vec::new();
        for w in weddings {
            match weddings_this_week.last_mut() {
                Some(d) if d.day == w.day => d.suppliers.push(w),
                _ => weddings_this_week.push(WeddingDay { day: w.day, suppliers: vec![w] }),
            }
        }
        let accounts = self.store.list_accounts(None).map_err(msg)?;
        let mut by_provider: HashMap<ProviderKind, usize> = HashMap::new();
        for a in accounts.iter().filter(|a| a.owner != AccountOwner::Platform) {
            *by_provider.entry(a.provider).or_default() += 1;
        }
        let mut client_accounts_by_provider: Vec<(ProviderKind, usize)> = by_provider.into_iter().collect();
        client_accounts_by_provider.sort();
        let trend = self.store.usage_breakdown(UsageDimension::Route, today - Duration::days(29), tomorrow).map_err(msg)?;
        let mut per_day: std::collections::BTreeMap<NaiveDate, i64> = std::collections::BTreeMap::new();
        for c in trend {
            *per_day.entry(c.day).or_default() += c.requests;
        }
        Ok(Overview {
            today,
            today_totals: self.store.usage_totals(today, tomorrow).map_err(msg)?,
            month_totals: self.store.usage_totals(month, tomorrow).map_err(msg)?,
            suppliers: cat.suppliers.len(),
            client_mode: cat.suppliers.iter().filter(|s| s.ai_mode == AiMode::Client).count(),
            weddings_this_week,
            platform_accounts: accounts.iter().filter(|a| a.owner == AccountOwner::Platform).map(AccountSummary::from).collect(),
            client_accounts_by_provider,
            near_quota: rows.into_iter().filter(|r| r.quota.used > 0).collect(),
            last_30_days: per_day.into_iter().map(|(d, n)| [day_number(d), n as f64]).collect(),
            getting_started: self.getting_started(&accounts, cat.suppliers.len())?,
        })
    }
}
