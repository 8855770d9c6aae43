//! Suppliers (the wedding businesses we run AI for), their tiers and AI mode,
//! and their time zone: a supplier's wedding day is its own local calendar
//! day ([`Supplier::local_date`], [`Supplier::is_wedding_day`]), so a
//! Saturday-evening wedding in California is protected until local midnight
//! even though UTC is already Sunday.

use super::string_enum;
use chrono::{DateTime, NaiveDate, Utc};
pub use chrono_tz::Tz;
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
    /// Each is a local day in [`Supplier::time_zone`].
    pub weddings: Vec<NaiveDate>,
    /// The supplier's time zone (IANA name, e.g. `America/Los_Angeles`).
    pub time_zone: Tz,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Supplier {
    /// Whether `day` (a date of the supplier's own calendar) is a wedding day.
    pub fn has_wedding_on(&self, day: NaiveDate) -> bool {
        self.weddings.binary_search(&day).is_ok()
    }

    /// The supplier's local calendar date at the instant `now`.
    pub fn local_date(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.time_zone).date_naive()
    }

    /// Whether it is a wedding day where the supplier is, at the instant `now`.
    pub fn is_wedding_day(&self, now: DateTime<Utc>) -> bool {
        self.has_wedding_on(self.local_date(now))
    }

    /// The supplier's weddings with the time zone their days are in.
    pub fn wedding_calendar(&self) -> WeddingCalendar<'_> {
        WeddingCalendar { days: &self.weddings, tz: self.time_zone }
    }

    pub fn next_wedding(&self, from: NaiveDate) -> Option<NaiveDate> {
        let i = self.weddings.partition_point(|d| *d < from);
        self.weddings.get(i).copied()
    }
}

/// Wedding days (sorted local dates) and the time zone they are days of: what
/// the migration guard measures its 48 h against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeddingCalendar<'a> {
    pub days: &'a [NaiveDate],
    pub tz: Tz,
}

impl<'a> WeddingCalendar<'a> {
    /// Days of the UTC calendar.
    pub fn utc(days: &'a [NaiveDate]) -> Self {
        Self { days, tz: Tz::UTC }
    }

    /// The instants `[start, end)` of wedding day `day`: local midnight to local midnight.
    pub fn day_range(&self, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        super::calendar::local_day_range(day, self.tz)
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
    pub time_zone: Tz,
}

impl NewSupplier {
    /// A new supplier in UTC; set `time_zone` to the platform's or the supplier's.
    pub fn new(name: impl Into<String>, vendor_type: VendorType, tier: Tier, ai_mode: AiMode) -> Self {
        Self { name: name.into(), vendor_type, tier, ai_mode, allow_platform_failover: true, weddings: Vec::new(), time_zone: Tz::UTC }
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

/// Parses an IANA time zone name (`America/Los_Angeles`), ignoring case and
/// accepting spaces for underscores. The error names close matches.
pub fn parse_time_zone(name: &str) -> Result<Tz, String> {
    let wanted = name.trim().replace(' ', "_");
    if wanted.is_empty() {
        return Err("a time zone is needed: an IANA name such as America/Los_Angeles, Europe/London or UTC".into());
    }
    if let Some(tz) = chrono_tz::TZ_VARIANTS.iter().find(|tz| tz.name().eq_ignore_ascii_case(&wanted)) {
        return Ok(*tz);
    }
    let close = time_zone_suggestions(&wanted, 5);
    let hint = if close.is_empty() {
        "e.g. America/Los_Angeles, Europe/London or UTC".to_string()
    } else {
        format!("did you mean {}?", close.join(", "))
    };
    Err(format!("'{}' is not an IANA time zone name; {hint}", name.trim()))
}

/// Up to `limit` IANA zone names containing `query` (ignoring case; spaces
/// match underscores), those starting with it or its last part first.
pub fn time_zone_suggestions(query: &str, limit: usize) -> Vec<&'static str> {
    let q = query.trim().replace(' ', "_").to_ascii_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    let mut hits: Vec<(u8, &'static str)> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .filter_map(|n| {
            let l = n.to_ascii_lowercase();
            let city = l.rsplit('/').next().unwrap_or(&l);
            if l.starts_with(&q) || city.starts_with(&q) {
                Some((0, n))
            } else if l.contains(&q) {
                Some((1, n))
            } else {
                None
            }
        })
        .collect();
    hits.sort();
    hits.into_iter().take(limit).map(|(_, n)| n).collect()
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
            time_zone: Tz::UTC,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        assert!(s.has_wedding_on(d("2026-06-20")));
        assert!(!s.has_wedding_on(d("2026-06-21")));
        assert_eq!(s.next_wedding(d("2026-05-03")), Some(d("2026-06-20")));
        assert_eq!(s.next_wedding(d("2026-06-21")), None);
    }

    fn supplier_in(tz: Tz, weddings: &[&str]) -> Supplier {
        Supplier {
            id: SupplierId(7),
            name: "Golden Hour".into(),
            vendor_type: VendorType::Photographer,
            tier: Tier::Starter,
            ai_mode: AiMode::Platform,
            allow_platform_failover: true,
            weddings: weddings.iter().map(|s| s.parse().unwrap()).collect(),
            time_zone: tz,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_saturday_evening_in_california_is_the_wedding_day_although_utc_is_sunday() {
        let s = supplier_in(chrono_tz::America::Los_Angeles, &["2026-06-20"]);
        // Saturday 20:00 PDT (UTC-7) is Sunday 03:00 UTC.
        let evening = utc("2026-06-21T03:00:00Z");
        assert_eq!(s.local_date(evening), "2026-06-20".parse::<NaiveDate>().unwrap());
        assert!(s.is_wedding_day(evening));
        // Protected until local midnight (07:00 UTC), not after.
        assert!(s.is_wedding_day(utc("2026-06-21T06:59:59Z")));
        assert!(!s.is_wedding_day(utc("2026-06-21T07:00:00Z")));
        // Saturday morning UTC is still Friday night in California.
        assert!(!s.is_wedding_day(utc("2026-06-20T06:59:59Z")));
        assert!(s.is_wedding_day(utc("2026-06-20T07:00:00Z")));
        // The same calendar in UTC ends at UTC midnight.
        let u = supplier_in(Tz::UTC, &["2026-06-20"]);
        assert!(!u.is_wedding_day(evening));
    }

    #[test]
    fn wedding_days_across_daylight_saving_changes() {
        // Spring forward in Los Angeles on Sunday 2026-03-08 (a 23-hour day):
        // local midnight is 08:00 UTC (PST), the next midnight 07:00 UTC (PDT).
        let s = supplier_in(chrono_tz::America::Los_Angeles, &["2026-03-08"]);
        assert!(!s.is_wedding_day(utc("2026-03-08T07:59:59Z")));
        assert!(s.is_wedding_day(utc("2026-03-08T08:00:00Z")));
        assert!(s.is_wedding_day(utc("2026-03-09T06:59:59Z")));
        assert!(!s.is_wedding_day(utc("2026-03-09T07:00:00Z")));
        // Fall back on Sunday 2026-11-01 (a 25-hour day): 07:00 UTC to 08:00 UTC next day.
        let s = supplier_in(chrono_tz::America::Los_Angeles, &["2026-11-01"]);
        assert!(!s.is_wedding_day(utc("2026-11-01T06:59:59Z")));
        assert!(s.is_wedding_day(utc("2026-11-01T07:00:00Z")));
        assert!(s.is_wedding_day(utc("2026-11-02T07:59:59Z")));
        assert!(!s.is_wedding_day(utc("2026-11-02T08:00:00Z")));
        // A day whose midnight does not exist (Brazil's DST began at 00:00 on
        // 2018-11-04): the day starts at the first local time that exists.
        let d: NaiveDate = "2018-11-04".parse().unwrap();
        let (start, end) = super::super::calendar::local_day_range(d, chrono_tz::America::Sao_Paulo);
        assert_eq!(start, utc("2018-11-04T03:00:00Z"));
        assert_eq!(end, utc("2018-11-05T02:00:00Z"));
    }

    #[test]
    fn time_zone_names_are_validated_with_suggestions() {
        assert_eq!(parse_time_zone("America/Los_Angeles").unwrap(), chrono_tz::America::Los_Angeles);
        assert_eq!(parse_time_zone(" europe/london ").unwrap(), chrono_tz::Europe::London);
        assert_eq!(parse_time_zone("America/New York").unwrap(), chrono_tz::America::New_York);
        let err = parse_time_zone("Los Angeles").unwrap_err();
        assert!(err.contains("America/Los_Angeles"), "{err}");
        assert!(parse_time_zone("Mars/Olympus").unwrap_err().contains("not an IANA time zone"));
        assert!(parse_time_zone("").is_err());
        assert_eq!(time_zone_suggestions("london", 3), vec!["Europe/London"]);
        assert!(time_zone_suggestions("", 3).is_empty());
    }
}
