//! Suppliers (the wedding businesses we run AI for), their tiers and AI mode.

use super::string_enum;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SupplierId(pub i64);

impl std::fmt::Display for SupplierId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VendorType {
    Photographer,
    Venue,
    Planner,
    Florist,
    Caterer,
    Other,
}
string_enum!(VendorType, "vendor type", {
    Photographer => "photographer",
    Venue => "venue",
    Planner => "planner",
    Florist => "florist",
    Caterer => "caterer",
    Other => "other",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Starter,
    Professional,
    Scale,
    Enterprise,
}
string_enum!(Tier, "tier", {
    Starter => "starter",
    Professional => "professional",
    Scale => "scale",
    Enterprise => "enterprise",
});

impl Tier {
    /// Default monthly platform-AI token quota (before the seasonal multiplier).
    pub fn default_monthly_tokens(self) -> u64 {
        match self {
            Tier::Starter => 50_000,
            Tier::Professional => 200_000,
            Tier::Scale => 500_000,
            Tier::Enterprise => 2_000_000,
        }
    }

    /// Default request rate limit per minute (before the seasonal multiplier).
    pub fn default_requests_per_minute(self) -> u32 {
        match self {
            Tier::Starter => 60,
            Tier::Professional => 300,
            Tier::Scale => 1_200,
            Tier::Enterprise => 6_000,
        }
    }
}

/// Whose provider account serves the supplier's requests by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AiMode {
    /// WedSync's own accounts; usage counts against the tier quota.
    Platform,
    /// The supplier's own account; the supplier's provider bills it directly.
    Client,
}
string_enum!(AiMode, "AI mode", {
    Platform => "platform",
    Client => "client",
});

/// A supplier as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supplier {
    pub id: SupplierId,
    pub name: String,
    pub vendor_type: VendorType,
    pub tier: Tier,
    pub ai_mode: AiMode,
    /// Whether a client-AI supplier may fail over onto platform AI when all of
    /// its own accounts are down (default yes).
    pub allow_platform_failover: bool,
    /// Wedding dates in the supplier's calendar, sorted, without duplicates.
    pub weddings: Vec<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Supplier {
    pub fn has_wedding_on(&self, day: NaiveDate) -> bool {
        self.weddings.binary_search(&day).is_ok()
    }

    pub fn next_wedding(&self, from: NaiveDate) -> Option<NaiveDate> {
        let i = self.weddings.partition_point(|d| *d < from);
        self.weddings.get(i).copied()
    }
}

/// What is needed to create a supplier; validated before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSupplier {
    pub name: String,
    pub vendor_type: VendorType,
    pub tier: Tier,
    pub ai_mode: AiMode,
    pub allow_platform_failover: bool,
    pub weddings: Vec<NaiveDate>,
}

impl NewSupplier {
    pub fn new(name: impl Into<String>, vendor_type: VendorType, tier: Tier, ai_mode: AiMode) -> Self {
        Self { name: name.into(), vendor_type, tier, ai_mode, allow_platform_failover: true, weddings: Vec::new() }
    }

    /// Trims the name, sorts and de-duplicates weddings, and rejects what cannot be stored.
    pub fn normalized(mut self) -> Result<Self, String> {
        self.name = validate_name(&self.name)?;
        normalize_weddings(&mut self.weddings);
        Ok(self)
    }
}

pub fn validate_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a supplier needs a name (use --name \"Studio Name\")".into());
    }
    if name.chars().count() > 200 {
        return Err(format!("the supplier name is {} characters long; 200 is the limit", name.chars().count()));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("the supplier name contains control characters; use plain text".into());
    }
    Ok(name.to_string())
}

pub fn normalize_weddings(w: &mut Vec<NaiveDate>) {
    w.sort_unstable();
    w.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_case_and_dash_insensitively() {
        assert_eq!("Photographer".parse::<VendorType>().unwrap(), VendorType::Photographer);
        assert_eq!("ENTERPRISE".parse::<Tier>().unwrap(), Tier::Enterprise);
        let err = "gold".parse::<Tier>().unwrap_err().to_string();
        assert!(err.contains("'gold' is not a valid tier") && err.contains("professional"), "{err}");
    }

    #[test]
    fn new_supplier_is_normalized() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let mut n = NewSupplier::new("  Capture Moments ", VendorType::Photographer, Tier::Professional, AiMode::Platform);
        n.weddings = vec![d("2026-06-20"), d("2026-05-02"), d("2026-06-20")];
        let n = n.normalized().unwrap();
        assert_eq!(n.name, "Capture Moments");
        assert_eq!(n.weddings, vec![d("2026-05-02"), d("2026-06-20")]);
        assert!(NewSupplier::new(" ", VendorType::Other, Tier::Starter, AiMode::Client).normalized().is_err());
    }

    #[test]
    fn next_wedding_and_wedding_day() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let s = Supplier {
            id: SupplierId(1),
            name: "x".into(),
            vendor_type: VendorType::Venue,
            tier: Tier::Scale,
            ai_mode: AiMode::Client,
            allow_platform_failover: true,
            weddings: vec![d("2026-05-02"), d("2026-06-20")],
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        assert!(s.has_wedding_on(d("2026-06-20")));
        assert!(!s.has_wedding_on(d("2026-06-21")));
        assert_eq!(s.next_wedding(d("2026-05-03")), Some(d("2026-06-20")));
        assert_eq!(s.next_wedding(d("2026-06-21")), None);
    }
}
