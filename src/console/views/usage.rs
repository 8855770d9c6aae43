//! The Usage & cost view's charts: one daily series per group (the largest
//! eight), monthly bars and peak against off-season daily averages.

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
        let x0 = day_number(q.from);
        let series = keyed
            .into_iter()
            .map(|(key, v, total)| {
                let pts: Vec<[f64; 2]> = v.iter().enumerate().map(|(i, y)| [x0 + i as f64, *y]).collect();
                Series { key, points: decimate(&pts, q.max_points), total }
            })
            .collect();
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
        })
    }
}
