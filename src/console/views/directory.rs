//! The directory the console's pickers choose from: every supplier (ID, name,
//! vendor type, tier, AI mode) and every provider account (ID, label,
//! provider, owner), plus where the gateway listens. One snapshot, built from
//! the supplier cache and the store, reloaded after every write; the UI
//! filters it in memory as the user types, so it never opens the database.

use crate::console::service::{Res, Service, msg};
use crate::domain::{AccountId, AccountOwner, AiMode, ProviderKind, SupplierId, Tier, VendorType};
use std::collections::HashMap;

/// Where `switchboard serve` listens unless told otherwise (its `--listen` default).
pub const SERVE_DEFAULT_URL: &str = "http://127.0.0.1:4480";

/// A supplier as a picker shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySupplier {
    pub id: SupplierId,
    pub name: String,
    pub vendor_type: VendorType,
    pub tier: Tier,
    pub ai_mode: AiMode,
    pub allow_platform_failover: bool,
}

/// A provider account as a picker shows it (never its key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryAccount {
    pub id: AccountId,
    pub label: String,
    pub provider: ProviderKind,
    pub owner: AccountOwner,
    /// "WedSync platform" or the owning supplier's name.
    pub owner_name: String,
    pub enabled: bool,
}

/// Everything a picker can offer, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directory {
    /// By name (case-insensitive), then ID.
    pub suppliers: Vec<DirectorySupplier>,
    /// Platform accounts first, then suppliers' accounts by supplier.
    pub accounts: Vec<DirectoryAccount>,
    /// The gateway this console runs, when it runs one.
    pub gateway_url: Option<String>,
}

impl Directory {
    pub fn supplier(&self, id: SupplierId) -> Option<&DirectorySupplier> {
        self.suppliers.iter().find(|s| s.id == id)
    }

    pub fn account(&self, id: AccountId) -> Option<&DirectoryAccount> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// Where WedSync sends requests: this console's gateway, or `switchboard serve`'s default.
    pub fn send_requests_to(&self) -> (String, bool) {
        match &self.gateway_url {
            Some(u) => (format!("{}/v1", u.trim_end_matches('/')), true),
            None => (format!("{SERVE_DEFAULT_URL}/v1"), false),
        }
    }
}

impl Service {
    pub(in crate::console) fn directory(&self) -> Res<Directory> {
        let cat = self.supplier_cache()?;
        let mut suppliers: Vec<DirectorySupplier> = cat
            .suppliers
            .iter()
            .map(|s| DirectorySupplier {
                id: s.id,
                name: s.name.clone(),
                vendor_type: s.vendor_type,
                tier: s.tier,
                ai_mode: s.ai_mode,
                allow_platform_failover: s.allow_platform_failover,
            })
            .collect();
        suppliers.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.0.cmp(&b.id.0)));
        let names: HashMap<SupplierId, &str> = suppliers.iter().map(|s| (s.id, s.name.as_str())).collect();
        let accounts = self
            .store
            .list_accounts(None)
            .map_err(msg)?
            .into_iter()
            .map(|a| DirectoryAccount {
                owner_name: match a.owner {
                    AccountOwner::Platform => "WedSync platform".to_string(),
                    AccountOwner::Supplier(s) => names.get(&s).map(|n| n.to_string()).unwrap_or_else(|| format!("supplier #{}", s.0)),
                },
                id: a.id,
                label: a.label,
                provider: a.provider,
                owner: a.owner,
                enabled: a.enabled,
            })
            .collect();
        let gateway_url = self.live().and_then(|l| l.services.gateway_url.clone());
        Ok(Directory { suppliers, accounts, gateway_url })
    }
}
