//! The wedding season: peak months (March–October by default) raise platform
//! quotas and rate limits by a multiplier (×1.5 by default).

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeasonConfig {
    /// First peak month, 1–12 (inclusive).
    pub peak_start_month: u32,
    /// Last peak month, 1–12 (inclusive). May be before the start (a season
    /// that wraps around the new year).
    pub peak_end_month: u32,
    /// Multiplier in per-mille: 1500 = ×1.5. Integer so quotas stay exact.
    pub peak_multiplier_permille: u32,
}

impl Default for SeasonConfig {
    fn default() -> Self {
        Self { peak_start_month: 3, peak_end_month: 10, peak_multiplier_permille: 1500 }
    }
}

impl SeasonConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=12).contains(&self.peak_start_month) || !(1..=12).contains(&self.peak_end_month) {
            return Err("peak season months must be between 1 and 12".into());
        }
        if self.peak_multiplier_permille == 0 {
            return Err("the peak multiplier must be above zero (1500 means ×1.5)".into());
        }
        Ok(())
    }

    pub fn is_peak_month(&self, month: u32) -> bool {
        let (s, e) = (self.peak_start_month, self.peak_end_month);
        if s <= e { (s..=e).contains(&month) } else { month >= s || month <= e }
    }

    pub fn is_peak(&self, day: NaiveDate) -> bool {
        self.is_peak_month(day.month())
    }

    /// Applies the seasonal multiplier to an integer amount for the given month
    /// (rounding down, so a quota never grows by a fraction of a token).
    pub fn scale(&self, amount: u64, month: u32) -> u64 {
        if self.is_peak_month(month) { ((amount as u128 * self.peak_multiplier_permille as u128) / 1000) as u64 } else { amount }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn march_to_october_is_peak_by_default() {
        let s = SeasonConfig::default();
        let peak: Vec<u32> = (1..=12).filter(|m| s.is_peak_month(*m)).collect();
        assert_eq!(peak, vec![3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(s.scale(200_000, 6), 300_000);
        assert_eq!(s.scale(200_000, 12), 200_000);
    }

    #[test]
    fn wrapping_season() {
        let s = SeasonConfig { peak_start_month: 11, peak_end_month: 2, peak_multiplier_permille: 2000 };
        assert!(s.is_peak_month(12) && s.is_peak_month(1) && !s.is_peak_month(3));
        assert_eq!(s.scale(10, 1), 20);
    }
}
