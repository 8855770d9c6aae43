//! Projections: each supplier's month end and next three months from its
//! monthly history, by the same month last year scaled by the trend, by the
//! season-adjusted recent average, or by the month-to-date run rate.

use super::{AnalyticsResult, AnalyticsSession};
use crate::domain::calendar::{add_months, days_in_month, first_of_month, month_key, months_between, parse_month};
use crate::domain::{Micros, QuotaPolicy, SupplierId, Tier};
use crate::store::SupplierInfo;
use chrono::{Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How a projection was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProjectionMethod {
    /// The same month last year, scaled by this year's trend: the last three
    /// complete months against the same three months a year before.
    SeasonalTrend {
        token_trend: f64,
        cost_trend: f64,
    },
    /// Average per day of the last (up to three) complete months; used when
    /// there are fewer than 15 months of history, so no seasonal pattern of
    /// the supplier's own. Adjusted for the season by the peak multiplier:
    /// each month's usage counts in off-peak terms, and a projected peak month
    /// gets the multiplier back.
    RecentAverage {
        months: u32,
    },
    /// No complete month yet: the current month's rate per day.
    MonthToDate,
    NoHistory,
}

/// One projected month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectedMonth {
    pub month: NaiveDate,
    pub tokens: u64,
    /// Projected tokens on platform and failover routes.
    pub quota_tokens: u64,
    pub cost: Micros,
    pub quota: u64,
    pub exceeds_quota: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthEndProjection {
    pub month: ProjectedMonth,
    /// Actual usage from the first of the month up to and including `as_of`.
    pub to_date_tokens: u64,
    pub to_date_quota_tokens: u64,
    pub to_date_cost: Micros,
    /// How the rest of the month was projected: the month-to-date run rate
    /// (from the 7th day on) or the supplier's [`SupplierProjection::method`].
    pub rest_of_month: String,
    /// When the quota is projected to run out this month (already out: the first of the month… as_of).
    pub quota_exhausted_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupplierProjection {
    pub supplier_id: SupplierId,
    pub name: String,
    pub tier: Tier,
    pub method: ProjectionMethod,
    /// Whole months of history before the current one, from the first month with usage.
    /// The seasonal method reads the last 15 of them, the recent average up to 3.
    pub history_months: u32,
    /// The first month with usage.
    pub first_month: Option<NaiveDate>,
    pub month_end: MonthEndProjection,
    /// The three months after the current one.
    pub next_months: Vec<ProjectedMonth>,
    /// Projected to exceed its platform quota before the end of the current month.
    pub exceeds_quota_this_month: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectionReport {
    /// Last day of complete data.
    pub as_of: NaiveDate,
    pub suppliers: Vec<SupplierProjection>,
}

impl AnalyticsSession {
    /// Month-end and next-three-months projections per supplier, as of the
    /// last day of complete data `as_of`.
    pub fn projections(&self, as_of: NaiveDate) -> AnalyticsResult<ProjectionReport> {
        let this_month = first_of_month(as_of);
        let history_from = add_months(this_month, -24);
        let suppliers = self.suppliers()?;
        // (tokens, quota tokens, cost) per supplier and month.
        let mut hist: HashMap<SupplierId, BTreeMap<NaiveDate, (u64, u64, i64)>> = HashMap::new();
        for r in self.db(self.reader.supplier_months(&month_key(history_from), &month_key(this_month), None))? {
            let Some(m) = parse_month(&r.month) else { continue };
            hist.entry(r.supplier_id).or_default().insert(m, (r.totals.tokens(), r.quota_tokens, r.totals.cost.0));
        }
        let first: HashMap<SupplierId, NaiveDate> =
            self.db(self.reader.first_months())?.into_iter().filter_map(|(id, m)| Some((id, parse_month(&m)?))).collect();
        let mut ids: Vec<&SupplierInfo> = suppliers.values().collect();
        ids.sort_by_key(|s| s.id);
        let empty = BTreeMap::new();
        let mut out = Vec::with_capacity(ids.len());
        for s in ids {
            let h = hist.get(&s.id).unwrap_or(&empty);
            out.push(project_supplier(s, h, first.get(&s.id).copied(), as_of, &self.policy));
        }
        self.cancel.check()?;
        Ok(ProjectionReport { as_of, suppliers: out })
    }
}

/// One supplier's projections from its monthly history (tokens, quota tokens, cost per month).
fn project_supplier(
    s: &SupplierInfo,
    h: &BTreeMap<NaiveDate, (u64, u64, i64)>,
    first_month: Option<NaiveDate>,
    as_of: NaiveDate,
    policy: &QuotaPolicy,
) -> SupplierProjection {
    let this_month = first_of_month(as_of);
    let history_months = first_month.filter(|f| *f < this_month).map(|f| months_between(f, this_month) as u32).unwrap_or(0);
    let get = |m: NaiveDate| h.get(&m).copied().unwrap_or((0, 0, 0));
    let sum3 =
        |start: NaiveDate| (0..3).map(|i| get(add_months(start, i))).fold((0u64, 0u64, 0i64), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    let recent_start = add_months(this_month, -3);
    let (recent, year_ago) = (sum3(recent_start), sum3(add_months(recent_start, -12)));
    let method = if history_months >= 15 && year_ago.0 > 0 && year_ago.2 > 0 {
        ProjectionMethod::SeasonalTrend {
            token_trend: recent.0 as f64 / year_ago.0 as f64,
            cost_trend: recent.2 as f64 / year_ago.2 as f64,
        }
    } else if history_months >= 1 {
        ProjectionMethod::RecentAverage { months: history_months.min(3) }
    } else if get(this_month) != (0, 0, 0) {
        ProjectionMethod::MonthToDate
    } else {
        ProjectionMethod::NoHistory
    };
    let elapsed = as_of.day().min(days_in_month(as_of));
    let to_date = get(this_month);
    // Daily rate (tokens, quota tokens, cost) for a future month `m` under the method.
    let daily = |m: NaiveDate| -> (f64, f64, f64) {
        match &method {
            ProjectionMethod::SeasonalTrend { token_trend, cost_trend } => {
                let last = get(add_months(m, -12));
                let n = days_in_month(add_months(m, -12)) as f64;
                let quota_trend = if year_ago.1 > 0 { recent.1 as f64 / year_ago.1 as f64 } else { *token_trend };
                (last.0 as f64 * token_trend / n, last.1 as f64 * quota_trend / n, last.2 as f64 * cost_trend / n)
            }
            ProjectionMethod::RecentAverage { months } => {
                // Adjusted for the season: demand in the peak months is taken
                // to be the peak multiplier's worth above the rest (quotas are
                // sized the same way), so August to October's average does not
                // carry peak demand into an off-peak November, and the reverse.
                let start = add_months(this_month, -(*months as i32));
                let weight = |d: NaiveDate| policy.season.scale(1_000, d.month()).max(1) as f64;
                let weighted_days: f64 =
                    (0..*months as i32).map(|i| add_months(start, i)).map(|d| days_in_month(d) as f64 * weight(d)).sum();
                let t = (0..*months as i32)
                    .map(|i| get(add_months(start, i)))
                    .fold((0u64, 0u64, 0i64), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
                let n = weighted_days.max(1.0) / weight(m);
                (t.0 as f64 / n, t.1 as f64 / n, t.2 as f64 / n)
            }
            ProjectionMethod::MonthToDate => {
                let n = elapsed.max(1) as f64;
                (to_date.0 as f64 / n, to_date.1 as f64 / n, to_date.2 as f64 / n)
            }
            ProjectionMethod::NoHistory => (0.0, 0.0, 0.0),
        }
    };
    let month = |m: NaiveDate, tokens: f64, quota_tokens: f64, cost: f64| {
        let quota = policy.monthly_tokens(s.tier, m);
        let quota_tokens = quota_tokens.round().max(0.0) as u64;
        ProjectedMonth {
            month: m,
            tokens: tokens.round().max(0.0) as u64,
            quota_tokens,
            cost: Micros(cost.round() as i64),
            quota,
            exceeds_quota: quota_tokens > quota,
        }
    };
    // The rest of this month: run rate once a week of it is known, else the method.
    let remaining = days_in_month(as_of).saturating_sub(elapsed) as f64;
    let (rate, rest_of_month) = if elapsed >= 7 || matches!(method, ProjectionMethod::NoHistory) {
        let n = elapsed.max(1) as f64;
        ((to_date.0 as f64 / n, to_date.1 as f64 / n, to_date.2 as f64 / n), "month-to-date run rate".to_string())
    } else {
        (daily(this_month), "the supplier's projection method".to_string())
    };
    let end = month(
        this_month,
        to_date.0 as f64 + rate.0 * remaining,
        to_date.1 as f64 + rate.1 * remaining,
        to_date.2 as f64 + rate.2 * remaining,
    );
    let quota_exhausted_on = if to_date.1 >= end.quota && end.quota > 0 {
        Some(as_of)
    } else if end.exceeds_quota && rate.1 > 0.0 {
        let days = ((end.quota - to_date.1) as f64 / rate.1).ceil() as i64;
        Some(as_of + Duration::days(days.max(1)))
    } else {
        None
    };
    let next_months = (1..=3)
        .map(|i| {
            let m = add_months(this_month, i);
            let n = days_in_month(m) as f64;
            let r = daily(m);
            month(m, r.0 * n, r.1 * n, r.2 * n)
        })
        .collect();
    let exceeds = end.exceeds_quota;
    SupplierProjection {
        supplier_id: s.id,
        name: s.name.clone(),
        tier: s.tier,
        method,
        history_months,
        first_month,
        month_end: MonthEndProjection {
            month: end,
            to_date_tokens: to_date.0,
            to_date_quota_tokens: to_date.1,
            to_date_cost: Micros(to_date.2),
            rest_of_month,
            quota_exhausted_on,
        },
        next_months,
        exceeds_quota_this_month: exceeds,
    }
}
