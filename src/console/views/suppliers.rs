//! The Suppliers view's data: the supplier cache (suppliers and this month's
//! quota use, kept for 30 s so that typing in the search field stays instant),
//! the filtered and sorted table, one supplier's detail, the platform's default
//! time zone for new suppliers, and removing a supplier with its keys.

use crate::console::service::{Res, Service, msg};
use crate::console::*;
use crate::domain::SupplierFilter;
use crate::domain::{AccountOwner, AiMode, QuotaStatus, Supplier, SupplierId, Tier, VendorType};
use chrono::{Duration, NaiveDate};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// One row of the supplier table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierRow {
    pub id: SupplierId,
    pub name: String,
    pub vendor_type: VendorType,
    pub tier: Tier,
    pub ai_mode: AiMode,
    /// This month's platform-quota usage against this month's (seasonal) quota.
    pub quota: QuotaStatus,
    pub next_wedding: Option<NaiveDate>,
    pub weddings: usize,
}

impl SupplierRow {
    pub fn quota_percent(&self) -> f64 {
        self.quota.percent()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SupplierList {
    pub rows: Vec<SupplierRow>,
    /// Suppliers in the database, before filtering.
    pub total: usize,
    pub query_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SupplierDetail {
    pub supplier: Supplier,
    pub accounts: Vec<AccountSummary>,
    pub quota: QuotaStatus,
    pub month_cost_micros: i64,
    pub month_requests: i64,
    /// Tokens per day over the last 90 days: `[day number, tokens]` (see [`day_number`]).
    pub daily_tokens: Vec<[f64; 2]>,
    /// The supplier's response cache settings and what it holds now.
    pub cache: crate::domain::cache::CacheSettings,
    pub cache_usage: crate::store::CacheUsage,
}

/// Orders supplier rows (stable, by name as the tie-breaker).
pub fn sort_rows(rows: &mut [SupplierRow], sort: SupplierSort, descending: bool) {
    use std::cmp::Ordering as O;
    let key = |a: &SupplierRow, b: &SupplierRow| -> O {
        match sort {
            SupplierSort::Name => O::Equal,
            SupplierSort::Tier => a.tier.cmp(&b.tier),
            SupplierSort::VendorType => a.vendor_type.cmp(&b.vendor_type),
            SupplierSort::Mode => a.ai_mode.as_str().cmp(b.ai_mode.as_str()),
            SupplierSort::QuotaUsed => a.quota.used_bp().cmp(&b.quota.used_bp()),
            // Suppliers without a coming wedding go last.
            SupplierSort::NextWedding => match (a.next_wedding, b.next_wedding) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => O::Less,
                (None, Some(_)) => O::Greater,
                (None, None) => O::Equal,
            },
        }
    };
    rows.sort_by(|a, b| {
        let o = key(a, b).then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()));
        if descending { o.reverse() } else { o }
    });
}

/// Suppliers and this month's quota use, cached between queries so that typing
/// in the search field stays instant with thousands of suppliers.
pub(in crate::console) struct SupplierCache {
    pub(in crate::console) loaded: Instant,
    pub(in crate::console) month: NaiveDate,
    pub(in crate::console) suppliers: Arc<Vec<Supplier>>,
    pub(in crate::console) quota_used: HashMap<SupplierId, u64>,
}

pub(in crate::console) const SUPPLIER_CACHE_TTL_SECS: u64 = 30;

impl Service {
    pub(in crate::console) fn invalidate(&self) {
        *self.cache.lock() = None;
    }

    pub(in crate::console) fn supplier_cache(&self) -> Res<Arc<SupplierCache>> {
        let today = self.today();
        let month = crate::domain::calendar::first_of_month(today);
        if let Some(c) = self.cache.lock().as_ref()
            && c.month == month
            && c.loaded.elapsed().as_secs() < SUPPLIER_CACHE_TTL_SECS
        {
            return Ok(c.clone());
        }
        let suppliers = self.store.list_suppliers(&SupplierFilter::default()).map_err(msg)?;
        let quota_used = self.store.quota_tokens_by_supplier(month, today + Duration::days(1)).map_err(msg)?;
        let c = Arc::new(SupplierCache { loaded: Instant::now(), month, suppliers: Arc::new(suppliers), quota_used });
        *self.cache.lock() = Some(c.clone());
        Ok(c)
    }

    pub(in crate::console) fn row(&self, s: &Supplier, cat: &SupplierCache, today: NaiveDate) -> SupplierRow {
        let used = cat.quota_used.get(&s.id).copied().unwrap_or(0);
        SupplierRow {
            id: s.id,
            name: s.name.clone(),
            vendor_type: s.vendor_type,
            tier: s.tier,
            ai_mode: s.ai_mode,
            quota: self.policy.status(s.tier, today, used),
            next_wedding: s.next_wedding(s.local_date(self.clock.now())),
            weddings: s.weddings.len(),
        }
    }

    pub(in crate::console) fn suppliers(&self, q: &SupplierQuery) -> Res<SupplierList> {
        let started = Instant::now();
        let cat = self.supplier_cache()?;
        let today = self.today();
        let needle = q.filter.search.as_deref().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
        let f = &q.filter;
        let mut rows: Vec<SupplierRow> = cat
            .suppliers
            .iter()
            .filter(|s| needle.as_ref().is_none_or(|n| s.name.to_lowercase().contains(n.as_str())))
            .filter(|s| f.tier.is_none_or(|t| s.tier == t))
            .filter(|s| f.vendor_type.is_none_or(|v| s.vendor_type == v))
            .filter(|s| f.ai_mode.is_none_or(|m| s.ai_mode == m))
            .map(|s| self.row(s, &cat, today))
            .collect();
        sort_rows(&mut rows, q.sort, q.descending);
        Ok(SupplierList { rows, total: cat.suppliers.len(), query_ms: started.elapsed().as_secs_f64() * 1000.0 })
    }

    pub(in crate::console) fn detail(&self, id: SupplierId) -> Res<SupplierDetail> {
        let supplier = self.store.supplier(id).map_err(msg)?;
        let today = self.today();
        let month = crate::domain::calendar::first_of_month(today);
        let accounts = self.store.list_accounts(Some(AccountOwner::Supplier(id))).map_err(msg)?;
        let days = self.store.supplier_daily_usage(id, today - Duration::days(89), today + Duration::days(1)).map_err(msg)?;
        let this_month = days.iter().filter(|d| d.day >= month);
        let (mut used, mut cost, mut requests) = (0i64, 0i64, 0i64);
        for d in this_month {
            used += d.quota_tokens;
            cost += d.cost_micros;
            requests += d.requests;
        }
        Ok(SupplierDetail {
            quota: self.policy.status(supplier.tier, today, used.max(0) as u64),
            supplier,
            accounts: accounts.iter().map(AccountSummary::from).collect(),
            month_cost_micros: cost,
            month_requests: requests,
            daily_tokens: days.iter().map(|d| [day_number(d.day), d.tokens as f64]).collect(),
            cache: self.store.cache_settings(id).map_err(msg)?,
            cache_usage: self.store.response_cache_usage().map_err(msg)?.into_iter().find(|u| u.0 == id).map(|u| u.1).unwrap_or_default(),
        })
    }

    /// Removes a supplier: first its accounts' keys from the keychain (as the
    /// CLI does), then the supplier with its accounts, weddings and tokens.
    /// When the keys cannot be removed, the supplier is kept and the error says why.
    pub(in crate::console) async fn remove_supplier(self: Arc<Self>, id: SupplierId) -> Res<ConsoleEvent> {
        let svc = self.clone();
        let accounts = tokio::task::spawn_blocking(move || svc.store.list_accounts(Some(AccountOwner::Supplier(id))))
            .await
            .map_err(|e| format!("the console service failed unexpectedly ({e}); try again"))?
            .map_err(msg)?;
        if !accounts.is_empty() {
            let keys = self
                .keys()
                .map_err(|e| format!("the supplier's keys cannot be removed from the keychain ({e}); the supplier was not removed"))?;
            keys.remove_supplier_keys(id)
                .await
                .map_err(|e| format!("the supplier's keys could not be removed from the keychain: {e}. The supplier was not removed"))?;
        }
        let svc = self.clone();
        tokio::task::spawn_blocking(move || svc.delete_supplier(id))
            .await
            .map_err(|e| format!("the console service failed unexpectedly ({e}); try again"))?
    }

    pub(in crate::console) fn delete_supplier(&self, id: SupplierId) -> Res<ConsoleEvent> {
        let s = self.store.supplier(id).map_err(msg)?;
        self.store.delete_supplier(id).map_err(msg)?;
        self.invalidate();
        self.store.audit(self.clock.now(), &crate::store::audit_actor(), "supplier.remove", Some(id), None, "ok", &s.name).map_err(msg)?;
        Ok(ConsoleEvent::SupplierRemoved { id, name: s.name })
    }
}

/// The platform's default time zone for new suppliers: `SWITCHBOARD_TIME_ZONE`
/// (an IANA name) when set and valid, otherwise UTC.
pub fn platform_time_zone() -> crate::domain::supplier::Tz {
    std::env::var("SWITCHBOARD_TIME_ZONE")
        .ok()
        .and_then(|v| crate::domain::supplier::parse_time_zone(&v).ok())
        .unwrap_or(crate::domain::supplier::Tz::UTC)
}
