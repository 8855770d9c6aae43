//! Monthly platform-AI token quotas per tier, with the seasonal multiplier, and
//! the status of a supplier against its quota (warning at 90 %).

use super::season::SeasonConfig;
use super::supplier::Tier;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// Tier quotas, rate limits and season: all configurable; the defaults are the
/// tiers' own (`Tier::default_monthly_tokens`, `Tier::default_requests_per_minute`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaPolicy {
    pub starter_tokens: u64,
    pub professional_tokens: u64,
    pub scale_tokens: u64,
    pub enterprise_tokens: u64,
    pub starter_rpm: u32,
    pub professional_rpm: u32,
    pub scale_rpm: u32,
    pub enterprise_rpm: u32,
    /// Warning threshold in percent of the month's quota.
    pub warn_percent: u32,
    pub season: SeasonConfig,
}

impl Default for QuotaPolicy {
    fn default() -> Self {
        Self {
            starter_tokens: Tier::Starter.default_monthly_tokens(),
            professional_tokens: Tier::Professional.default_monthly_tokens(),
            scale_tokens: Tier::Scale.default_monthly_tokens(),
            enterprise_tokens: Tier::Enterprise.default_monthly_tokens(),
            starter_rpm: Tier::Starter.default_requests_per_minute(),
            professional_rpm: Tier::Professional.default_requests_per_minute(),
            scale_rpm: Tier::Scale.default_requests_per_minute(),
            enterprise_rpm: Tier::Enterprise.default_requests_per_minute(),
            warn_percent: 90,
            season: SeasonConfig::default(),
        }
    }
}

impl QuotaPolicy {
    pub fn base_tokens(&self, tier: Tier) -> u64 {
        match tier {
            Tier::Starter => self.starter_tokens,
            Tier::Professional => self.professional_tokens,
            Tier::Scale => self.scale_tokens,
            Tier::Enterprise => self.enterprise_tokens,
        }
    }

    pub fn base_rpm(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Starter => self.starter_rpm,
            Tier::Professional => self.professional_rpm,
            Tier::Scale => self.scale_rpm,
            Tier::Enterprise => self.enterprise_rpm,
        }
    }

    /// The platform token quota of `tier` for the calendar month (UTC) containing `day`.
    pub fn monthly_tokens(&self, tier: Tier, day: NaiveDate) -> u64 {
        self.season.scale(self.base_tokens(tier), day.month())
    }

    /// Requests per minute for `tier` on `day`, seasonally scaled.
    pub fn rpm(&self, tier: Tier, day: NaiveDate) -> u32 {
        self.season.scale(self.base_rpm(tier) as u64, day.month()).min(u32::MAX as u64) as u32
    }

    pub fn status(&self, tier: Tier, day: NaiveDate, used_tokens: u64) -> QuotaStatus {
        let quota = self.monthly_tokens(tier, day);
        QuotaStatus::new(used_tokens, quota, self.warn_percent)
    }
}

/// Where a supplier stands against its month's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaStatus {
    pub used: u64,
    pub quota: u64,
    pub warn_percent: u32,
}

impl QuotaStatus {
    pub fn new(used: u64, quota: u64, warn_percent: u32) -> Self {
        Self { used, quota, warn_percent }
    }
    /// Used share in basis points (10000 = 100 %), exact integer arithmetic.
    pub fn used_bp(&self) -> u64 {
        if self.quota == 0 {
            return if self.used == 0 { 0 } else { u64::MAX };
        }
        ((self.used as u128 * 10_000) / self.quota as u128).min(u64::MAX as u128) as u64
    }
    pub fn percent(&self) -> f64 {
        if self.quota == 0 { 0.0 } else { self.used as f64 * 100.0 / self.quota as f64 }
    }
    pub fn remaining(&self) -> u64 {
        self.quota.saturating_sub(self.used)
    }
    pub fn is_warning(&self) -> bool {
        self.used_bp() >= self.warn_percent as u64 * 100
    }
    pub fn is_exhausted(&self) -> bool {
        self.used >= self.quota
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn professional_in_june_has_300k_and_warns_at_90_percent() {
        let p = QuotaPolicy::default();
        let june = NaiveDate::from_ymd_opt(2026, 6, 15).unwrap();
        let jan = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
        assert_eq!(p.monthly_tokens(Tier::Professional, june), 300_000);
        assert_eq!(p.monthly_tokens(Tier::Professional, jan), 200_000);
        assert!(!p.status(Tier::Professional, june, 269_999).is_warning());
        assert!(p.status(Tier::Professional, june, 270_000).is_warning());
        assert!(!p.status(Tier::Professional, june, 299_999).is_exhausted());
        assert!(p.status(Tier::Professional, june, 300_000).is_exhausted());
        assert_eq!(p.rpm(Tier::Starter, june), 90);
    }
}
