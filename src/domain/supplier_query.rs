//! What the console and the CLI ask of the supplier catalog: which suppliers
//! to list ([`SupplierFilter`]), a change to one ([`SupplierPatch`]), and what
//! a saved change did, before→after, for the audit log ([`describe_change`]).

use crate::domain::supplier::Tz;
use crate::domain::{AiMode, Supplier, Tier, VendorType};
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

/// What changed between two versions of a supplier, for the audit log:
/// `tier: starter -> scale; weddings: +2026-06-20, -2026-07-04` (ASCII
/// arrows: every font the console may use draws them); `None` when
/// nothing did (a save that changed nothing leaves no entry).
pub fn describe_change(before: &Supplier, after: &Supplier) -> Option<String> {
    let mut parts = Vec::new();
    let mut field = |name: &str, b: String, a: String| {
        if b != a {
            parts.push(format!("{name}: {b} -> {a}"));
        }
    };
    field("name", format!("'{}'", before.name), format!("'{}'", after.name));
    field("vendor_type", before.vendor_type.to_string(), after.vendor_type.to_string());
    field("tier", before.tier.to_string(), after.tier.to_string());
    field("mode", before.ai_mode.to_string(), after.ai_mode.to_string());
    field("platform_failover", before.allow_platform_failover.to_string(), after.allow_platform_failover.to_string());
    field("time_zone", before.time_zone.name().to_string(), after.time_zone.name().to_string());
    let added: Vec<String> = after.weddings.iter().filter(|d| !before.weddings.contains(d)).map(|d| format!("+{d}")).collect();
    let removed: Vec<String> = before.weddings.iter().filter(|d| !after.weddings.contains(d)).map(|d| format!("-{d}")).collect();
    if !added.is_empty() || !removed.is_empty() {
        parts.push(format!("weddings: {}", added.into_iter().chain(removed).collect::<Vec<_>>().join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NewSupplier;
    use chrono::TimeZone;

    fn supplier() -> Supplier {
        let t = chrono::Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let n = NewSupplier::new("Old Barn", VendorType::Venue, Tier::Starter, AiMode::Client);
        Supplier {
            id: crate::domain::SupplierId(1),
            name: n.name,
            vendor_type: n.vendor_type,
            tier: n.tier,
            ai_mode: n.ai_mode,
            allow_platform_failover: true,
            weddings: vec!["2026-07-04".parse().unwrap()],
            time_zone: n.time_zone,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn changes_are_described_before_to_after_and_no_change_is_none() {
        let before = supplier();
        let mut same = before.clone();
        same.updated_at += chrono::Duration::hours(1);
        assert_eq!(describe_change(&before, &same), None);
        let mut after = before.clone();
        after.tier = Tier::Scale;
        after.name = "Old Barn Venue".into();
        after.weddings = vec!["2026-06-20".parse().unwrap()];
        assert_eq!(
            describe_change(&before, &after).unwrap(),
            "name: 'Old Barn' -> 'Old Barn Venue'; tier: starter -> scale; weddings: +2026-06-20, -2026-07-04"
        );
    }
}
