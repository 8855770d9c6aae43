//! The Quotas view's data: suppliers per tier and band of quota use, the
//! suppliers nearest their quota, and one supplier's cumulative quota chart.

use crate::console::present::band;
use crate::console::service::{Res, Service, msg};
use crate::console::*;
use crate::domain::calendar::month_start;
use crate::domain::{AiMode, Tier};
use chrono::{Datelike, Duration, NaiveDate};
use std::collections::HashMap;

/// How many suppliers of a tier sit in each band of quota use this month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierQuota {
    pub tier: Tier,
    /// Under 50 %, 50–75 %, 75–90 %, 90–100 %, over 100 %.
    pub bands: [usize; 5],
    pub quota_tokens: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SupplierQuotaChart {
    pub row: SupplierRow,
    /// Cumulative platform-quota tokens within each month: `[day number, tokens]`.
    pub cumulative: Vec<[f64; 2]>,
    /// The monthly quota as a step line over the same months.
    pub quota_line: Vec<[f64; 2]>,
    /// Platform-quota tokens per day.
    pub daily: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuotaView {
    pub today: NaiveDate,
    pub chart: Option<SupplierQuotaChart>,
    pub tiers: Vec<TierQuota>,
    /// Platform-mode suppliers at 75 % or more, highest first.
    pub near: Vec<SupplierRow>,
}

impl Service {
    pub(in crate::console) fn quota(&self, q: QuotaQuery) -> Res<QuotaView> {
        let today = self.today();
        let cat = self.supplier_cache()?;
        let platform: Vec<SupplierRow> =
            cat.suppliers.iter().filter(|s| s.ai_mode == AiMode::Platform).map(|s| self.row(s, &cat, today)).collect();
        let tiers = Tier::ALL
            .iter()
            .map(|&tier| {
                let mut bands = [0usize; 5];
                for r in platform.iter().filter(|r| r.tier == tier) {
                    bands[band(r.quota_percent())] += 1;
                }
                TierQuota { tier, bands, quota_tokens: self.policy.monthly_tokens(tier, today) }
            })
            .collect();
        let mut near: Vec<SupplierRow> = platform.iter().filter(|r| r.quota_percent() >= 75.0).cloned().collect();
        sort_rows(&mut near, SupplierSort::QuotaUsed, true);
        let chosen = match q.supplier {
            Some(id) => cat.suppliers.iter().find(|s| s.id == id).map(|s| self.row(s, &cat, today)),
            None => near.first().cloned().or_else(|| {
                let mut all = platform.clone();
                sort_rows(&mut all, SupplierSort::QuotaUsed, true);
                all.into_iter().next()
            }),
        };
        if let Some(id) = q.supplier
            && chosen.is_none()
        {
            return Err(format!("supplier {id} no longer exists; pick another one"));
        }
        let chart = match chosen {
            Some(row) => Some(self.quota_chart(row, q, today)?),
            None => None,
        };
        Ok(QuotaView { today, chart, tiers, near })
    }

    pub(in crate::console) fn quota_chart(&self, row: SupplierRow, q: QuotaQuery, today: NaiveDate) -> Res<SupplierQuotaChart> {
        let months = q.months.clamp(1, 36);
        let mut first = crate::domain::calendar::first_of_month(today);
        for _ in 1..months {
            first = crate::domain::calendar::first_of_month(first - Duration::days(1));
        }
        let days = self.store.supplier_daily_usage(row.id, first, today + Duration::days(1)).map_err(msg)?;
        let by_day: HashMap<NaiveDate, i64> = days.iter().map(|d| (d.day, d.quota_tokens)).collect();
        let (mut cumulative, mut daily, mut quota_line) = (Vec::new(), Vec::new(), Vec::new());
        let mut running = 0i64;
        let mut d = first;
        while d <= today {
            if d.day() == 1 {
                running = 0;
                let start = month_start(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()).date_naive();
                let next = crate::domain::calendar::next_month(start);
                let quota = self.policy.monthly_tokens(row.tier, start) as f64;
                quota_line.push([day_number(start), quota]);
                quota_line.push([day_number(next) - 0.001, quota]);
            }
            let tokens = by_day.get(&d).copied().unwrap_or(0);
            running += tokens;
            cumulative.push([day_number(d), running as f64]);
            daily.push([day_number(d), tokens as f64]);
            d += Duration::days(1);
        }
        Ok(SupplierQuotaChart { row, cumulative: decimate(&cumulative, q.max_points), quota_line, daily })
    }
}
