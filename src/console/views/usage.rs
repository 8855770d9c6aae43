//! The Usage & cost view's charts: one series per group (the largest eight)
//! by day, week or month, monthly bars and peak against off-season daily
//! averages, and the suppliers' spend over the range (the top twenty).

use crate::console::service::{Res, Service, msg};
use crate::console::*;
use chrono::Duration;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub key: String,
    pub points: Vec<[f64; 2]>,
    pub total: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MonthBar {
    /// Day number of the month's first day.
    pub x: f64,
    pub label: String,
    pub value: f64,
    pub peak: bool,
}

/// One supplier's spend over the view's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierSpendRow {
    pub id: crate::domain::SupplierId,
    pub name: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost_micros: i64,
}

/// How many suppliers the top table lists.
pub const TOP_SUPPLIERS: usize = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct UsageView {
    pub query: UsageQuery,
    /// One daily series per group (the largest eight, the rest summed as "other").
    pub series: Vec<Series>,
    pub monthly: Vec<MonthBar>,
    pub total: f64,
    /// Averages per day over the days from the first usage in the range on.
    pub peak_daily_avg: f64,
    pub off_daily_avg: f64,
    pub peak_days: usize,
    pub off_days: usize,
    /// The most expensive suppliers over the range, most expensive first.
    pub top_suppliers: Vec<SupplierSpendRow>,
    /// Suppliers with any usage in the range.
    pub suppliers_with_usage: usize,
    /// Cost of all suppliers over the range (the top table's shares are of it).
    pub suppliers_cost_micros: i64,
    /// The response cache over the range: hit rate and dollars saved per day
    /// and supplier, per supplier, model and request type.
    pub cache: crate::engine::analytics::cache::CacheReport,
}

impl Service {
    pub(in crate::console) fn usage(&self, q: UsageQuery) -> Res<UsageView> {
        if q.to < q.from {
            return Err(format!("the range ends ({}) before it starts ({}); swap the dates", q.to, q.from));
        }
        if (q.to - q.from).num_days() > 3 * 366 {
            return Err("choose at most three years at a time".into());
        }
        let cells = self.store.usage_breakdown(q.dimension, q.from, q.to + Duration::days(1)).map_err(msg)?;
        let value = |requests: i64, tokens: i64, cost: i64| -> f64 {
            match q.metric {
                UsageMetric::Cost => cost as f64 / 1e6,
                UsageMetric::Requests => requests as f64,
                UsageMetric::Tokens => tokens as f64,
            }
        };
        let n_days = (q.to - q.from).num_days() as usize + 1;
        let mut by_key: HashMap<String, Vec<f64>> = HashMap::new();
        let mut per_day = vec![0.0; n_days];
        for c in &cells {
            let i = (c.day - q.from).num_days() as usize;
            if i >= n_days {
                continue;
            }
            let v = value(c.requests, c.tokens, c.cost_micros);
            by_key.entry(c.key.clone()).or_insert_with(|| vec![0.0; n_days])[i] += v;
            per_day[i] += v;
        }
        let mut keyed: Vec<(String, Vec<f64>, f64)> = by_key
            .into_iter()
            .map(|(k, v)| {
                let t = v.iter().sum();
                (k, v, t)
            })
            .collect();
        keyed.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        if keyed.len() > 8 {
            let rest = keyed.split_off(7);
            let mut other = vec![0.0; n_days];
            for (_, v, _) in &rest {
                for (o, x) in other.iter_mut().zip(v) {
                    *o += x;
                }
            }
            let t = other.iter().sum();
            keyed.push((format!("other ({})", rest.len()), other, t));
        }
        let series = keyed
            .into_iter()
            .map(|(key, v, total)| {
                let pts = bucketed(&v, q.from, q.granularity);
                Series { key, points: decimate(&pts, q.max_points), total }
            })
            .collect();
        let spend = self.store.supplier_spend(q.from, q.to + Duration::days(1)).map_err(msg)?;
        let suppliers_cost_micros = spend.iter().fold(0i64, |a, s| a.saturating_add(s.cost_micros));
        let suppliers_with_usage = spend.len();
        let top_suppliers = spend
            .into_iter()
            .take(TOP_SUPPLIERS)
            .map(|s| SupplierSpendRow { id: s.id, name: s.name, requests: s.requests, tokens: s.tokens, cost_micros: s.cost_micros })
            .collect();
        let cache = crate::engine::analytics::cache::cache_report(&self.store, q.from, q.to).map_err(msg)?;
        let season = &self.policy.season;
        let mut monthly: Vec<MonthBar> = Vec::new();
        let (mut peak_sum, mut off_sum, mut peak_days, mut off_days) = (0.0, 0.0, 0, 0);
        // Days before the first usage in the range are not history yet: counting
        // them would dilute one season's average more than the other's.
        let first_used = per_day.iter().position(|v| *v != 0.0).unwrap_or(per_day.len());
        for (i, v) in per_day.iter().enumerate() {
            let d = q.from + Duration::days(i as i64);
            let peak = season.is_peak(d);
            if i >= first_used && peak {
                peak_sum += v;
                peak_days += 1;
            } else if i >= first_used {
                off_sum += v;
                off_days += 1;
            }
            let m = crate::domain::calendar::first_of_month(d);
            match monthly.last_mut() {
                Some(b) if b.x == day_number(m) => b.value += v,
                _ => monthly.push(MonthBar { x: day_number(m), label: m.format("%b %Y").to_string(), value: *v, peak }),
            }
        }
        Ok(UsageView {
            query: q,
            series,
            monthly,
            total: per_day.iter().sum(),
            peak_daily_avg: if peak_days > 0 { peak_sum / peak_days as f64 } else { 0.0 },
            off_daily_avg: if off_days > 0 { off_sum / off_days as f64 } else { 0.0 },
            peak_days,
            off_days,
            top_suppliers,
            suppliers_with_usage,
            suppliers_cost_micros,
            cache,
        })
    }
}

/// Daily values from `from` on, summed into buckets of `g`: one point per
/// bucket at its first day (a partial first or last bucket holds only its days in the range).
pub fn bucketed(daily: &[f64], from: chrono::NaiveDate, g: UsageGranularity) -> Vec<[f64; 2]> {
    let mut out: Vec<[f64; 2]> = Vec::new();
    for (i, y) in daily.iter().enumerate() {
        let x = day_number(g.bucket(from + Duration::days(i as i64)));
        match out.last_mut() {
            Some(p) if p[0] == x => p[1] += y,
            _ => out.push([x, *y]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_values_are_summed_into_weeks_from_monday_and_months() {
        // Thu 2026-01-29 … Tue 2026-02-03: 6 days of 1.0.
        let from: chrono::NaiveDate = "2026-01-29".parse().unwrap();
        let days = vec![1.0; 6];
        assert_eq!(bucketed(&days, from, UsageGranularity::Day).len(), 6);
        let weeks = bucketed(&days, from, UsageGranularity::Week);
        assert_eq!(weeks, vec![[day_number("2026-01-26".parse().unwrap()), 4.0], [day_number("2026-02-02".parse().unwrap()), 2.0]]);
        let months = bucketed(&days, from, UsageGranularity::Month);
        assert_eq!(months, vec![[day_number("2026-01-01".parse().unwrap()), 3.0], [day_number("2026-02-01".parse().unwrap()), 3.0]]);
    }
}
