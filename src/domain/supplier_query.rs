//! What the console and the CLI ask of the supplier catalog: which suppliers
//! to list ([`SupplierFilter`]) and a change to one ([`SupplierPatch`]).

use crate::domain::supplier::Tz;
use crate::domain::{AiMode, Tier, VendorType};
use chrono::NaiveDate;

/// Which suppliers to list. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct SupplierFilter {
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub tier: Option<Tier>,
    pub vendor_type: Option<VendorType>,
    pub ai_mode: Option<AiMode>,
}

/// Changes to a supplier; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SupplierPatch {
    pub name: Option<String>,
    pub vendor_type: Option<VendorType>,
    pub tier: Option<Tier>,
    pub ai_mode: Option<AiMode>,
    pub allow_platform_failover: Option<bool>,
    /// The supplier's time zone (its wedding days are local days there).
    pub time_zone: Option<Tz>,
    pub add_weddings: Vec<NaiveDate>,
    pub remove_weddings: Vec<NaiveDate>,
    /// Replaces the whole calendar when set (applied before add/remove).
    pub set_weddings: Option<Vec<NaiveDate>>,
}

impl SupplierPatch {
    /// A short description of the change for the audit log, e.g. `tier=scale, +wedding 2026-06-20`.
    pub fn describe(&self) -> String {
        let p = self;
        let mut parts = Vec::new();
        if let Some(n) = &p.name {
            parts.push(format!("name={n}"));
        }
        if let Some(v) = p.vendor_type {
            parts.push(format!("vendor_type={v}"));
        }
        if let Some(t) = p.tier {
            parts.push(format!("tier={t}"));
        }
        if let Some(m) = p.ai_mode {
            parts.push(format!("mode={m}"));
        }
        if let Some(f) = p.allow_platform_failover {
            parts.push(format!("platform_failover={f}"));
        }
        if let Some(tz) = p.time_zone {
            parts.push(format!("time_zone={}", tz.name()));
        }
        if let Some(set) = &p.set_weddings {
            parts.push(format!("weddings={}", set.len()));
        }
        for d in &p.add_weddings {
            parts.push(format!("+wedding {d}"));
        }
        for d in &p.remove_weddings {
            parts.push(format!("-wedding {d}"));
        }
        parts.join(", ")
    }
}
