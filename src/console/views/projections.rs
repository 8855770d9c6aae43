//! The Usage & cost view's projections: month-end and next-three-months
//! projections through the analytics service (a newer request cancels the
//! running one), summed into the view; flagged suppliers.

use crate::console::service::{Outbox, Service};
use crate::console::*;
use crate::domain::calendar::add_months;
use crate::domain::{SupplierId, Tier};
use crate::engine::analytics::{
    AnalyticsAnswer, AnalyticsError, AnalyticsQuery, AnalyticsResult, Dimension, Granularity, ProjectionMethod, ProjectionReport,
    SeriesQuery, TimeSeries,
};
use chrono::NaiveDate;
use std::collections::HashMap;
use std::sync::Arc;

/// One month's usage, all suppliers together (actual or projected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthUsage {
    /// The first of the month.
    pub month: NaiveDate,
    pub tokens: u64,
    pub cost_micros: i64,
}

/// A supplier projected to exceed its platform quota before the month ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaggedSupplier {
    pub id: SupplierId,
    pub name: String,
    pub tier: Tier,
    /// Platform-quota tokens used so far this month.
    pub used: u64,
    /// Platform-quota tokens projected by the end of the month.
    pub projected: u64,
    /// This month's quota (seasonal).
    pub quota: u64,
    /// When the quota runs (or ran) out.
    pub runs_out: Option<NaiveDate>,
    /// How its rest of the month was projected, in words.
    pub method: String,
    pub history_months: u32,
}

/// The projections section of the Usage & cost view.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionsView {
    /// The last day of data used.
    pub as_of: NaiveDate,
    /// The complete months before `as_of`'s month (up to twelve), actual.
    pub history: Vec<MonthUsage>,
    /// `as_of`'s month so far, actual.
    pub to_date: MonthUsage,
    /// `as_of`'s month projected to its end, then the next three months.
    pub projected: Vec<MonthUsage>,
    /// How many suppliers were projected with each method, most used first.
    pub methods: Vec<(String, usize)>,
    /// The longest history any supplier has, in whole months.
    pub max_history_months: u32,
    pub flagged: Vec<FlaggedSupplier>,
    /// Every supplier (id, name) by name, for the export's supplier choice.
    pub suppliers: Vec<(SupplierId, String)>,
}

/// A projection method in words.
pub fn method_label(m: &ProjectionMethod) -> String {
    match m {
        ProjectionMethod::SeasonalTrend { token_trend, .. } => format!("same month last year × trend {token_trend:.2}"),
        ProjectionMethod::RecentAverage { months: 1 } => "last month's daily average, adjusted for the season".into(),
        ProjectionMethod::RecentAverage { months } => format!("daily average of the last {months} months, adjusted for the season"),
        ProjectionMethod::MonthToDate => "this month's daily rate so far".into(),
        ProjectionMethod::NoHistory => "no usage yet".into(),
    }
}

pub(in crate::console) fn method_kind(m: &ProjectionMethod) -> &'static str {
    match m {
        ProjectionMethod::SeasonalTrend { .. } => "seasonal trend",
        ProjectionMethod::RecentAverage { .. } => "recent average",
        ProjectionMethod::MonthToDate => "month to date",
        ProjectionMethod::NoHistory => "no history",
    }
}

/// Sums the per-supplier report into the view (money stays integer micro-dollars).
pub(in crate::console) fn projections_view(r: ProjectionReport, history: TimeSeries) -> ProjectionsView {
    let this_month = crate::domain::calendar::first_of_month(r.as_of);
    let total = history.series.first();
    let month_of = |i: usize, m: NaiveDate| MonthUsage {
        month: m,
        tokens: total.and_then(|s| s.tokens.get(i)).copied().unwrap_or(0),
        cost_micros: total.and_then(|s| s.cost.get(i)).map(|c| c.0).unwrap_or(0),
    };
    let history_months: Vec<MonthUsage> =
        history.buckets.iter().enumerate().filter(|(_, m)| **m < this_month).map(|(i, m)| month_of(i, *m)).collect();
    let mut to_date = MonthUsage { month: this_month, tokens: 0, cost_micros: 0 };
    let mut projected: Vec<MonthUsage> =
        (0..4).map(|i| MonthUsage { month: add_months(this_month, i), tokens: 0, cost_micros: 0 }).collect();
    let mut methods: HashMap<&'static str, usize> = HashMap::new();
    let mut flagged = Vec::new();
    for s in &r.suppliers {
        let e = &s.month_end;
        to_date.tokens += e.to_date_tokens;
        to_date.cost_micros += e.to_date_cost.0;
        projected[0].tokens += e.month.tokens;
        projected[0].cost_micros += e.month.cost.0;
        for (p, m) in projected[1..].iter_mut().zip(&s.next_months) {
            p.tokens += m.tokens;
            p.cost_micros += m.cost.0;
        }
        *methods.entry(method_kind(&s.method)).or_default() += 1;
        if s.exceeds_quota_this_month {
            flagged.push(FlaggedSupplier {
                id: s.supplier_id,
                name: s.name.clone(),
                tier: s.tier,
                used: e.to_date_quota_tokens,
                projected: e.month.quota_tokens,
                quota: e.month.quota,
                runs_out: e.quota_exhausted_on,
                method: if e.rest_of_month.starts_with("month-to-date") { e.rest_of_month.clone() } else { method_label(&s.method) },
                history_months: s.history_months,
            });
        }
    }
    flagged.sort_by(|a, b| a.runs_out.cmp(&b.runs_out).then_with(|| b.projected.cmp(&a.projected)).then_with(|| a.name.cmp(&b.name)));
    let mut methods: Vec<(String, usize)> = methods.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
    methods.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut suppliers: Vec<(SupplierId, String)> = r.suppliers.iter().map(|s| (s.supplier_id, s.name.clone())).collect();
    suppliers.sort_by(|a, b| a.1.to_lowercase().cmp(&b.1.to_lowercase()).then(a.0.cmp(&b.0)));
    ProjectionsView {
        as_of: r.as_of,
        history: history_months,
        to_date,
        projected,
        methods,
        max_history_months: r.suppliers.iter().map(|s| s.history_months).max().unwrap_or(0),
        flagged,
        suppliers,
    }
}

impl Service {
    /// Cancels the projection still running, then runs the projections and
    /// twelve months of monthly totals (the chart's history) side by side.
    pub(in crate::console) fn start_projections(self: &Arc<Self>, as_of: NaiveDate, ticket: Ticket, out: Outbox) {
        let this_month = crate::domain::calendar::first_of_month(as_of);
        let report = self.analytics.spawn(AnalyticsQuery::Projections { as_of });
        let history = self.analytics.spawn(AnalyticsQuery::Series(SeriesQuery::new(
            add_months(this_month, -12),
            as_of,
            Granularity::Month,
            Dimension::Total,
        )));
        {
            let mut running = self.projections.lock();
            for c in running.drain(..) {
                c.cancel();
            }
            running.extend([report.cancel.clone(), history.cancel.clone()]);
        }
        let joined = |r: Result<AnalyticsResult<AnalyticsAnswer>, tokio::task::JoinError>| {
            r.unwrap_or_else(|e| Err(AnalyticsError::Invalid(format!("the projection failed unexpectedly ({e}); try again"))))
        };
        tokio::spawn(async move {
            let (r, h) = (joined(report.result.await), joined(history.result.await));
            let ev = match (r, h) {
                (Err(AnalyticsError::Cancelled), _) | (_, Err(AnalyticsError::Cancelled)) => return,
                (Ok(AnalyticsAnswer::Projections(r)), Ok(AnalyticsAnswer::Series(h))) => {
                    ConsoleEvent::Projections(Arc::new(projections_view(r, h)))
                }
                (Err(e), _) | (_, Err(e)) => {
                    ConsoleEvent::Failed { channel: Channel::Projections, message: format!("the projections could not be computed: {e}") }
                }
                _ => ConsoleEvent::Failed { channel: Channel::Projections, message: "internal: unexpected analytics answer".into() },
            };
            out.send(ticket, ev);
        });
    }
}
