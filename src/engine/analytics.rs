//! Usage analytics for the console's charts and the `report` command: cost and
//! tokens over time broken down by any dimension, quota use per supplier and
//! month, top suppliers by cost and by growth, seasonal analysis (peak against
//! off-season, weekend against weekday), projections with the method and the
//! history they used, and a platform-vs-client cost comparison from the
//! pricing table.
//!
//! Every query reads the rollups through a [`crate::store::AnalyticsReader`]
//! (never the ten million raw events), so each answers in milliseconds. Money
//! is summed as integer [`Micros`], tokens as `u64`; floats appear only in
//! averages, ratios and projections.
//!
//! Queries are synchronous on an [`AnalyticsSession`] (tests, CLI, benches);
//! the console runs them on the tokio blocking pool with
//! [`AnalyticsService::spawn`] and cancels a running one with
//! [`CancelHandle::cancel`] when the user changes a filter: that sets a flag
//! checked between steps and interrupts the statement in flight (SQLite's
//! interrupt, or PostgreSQL's cancel request).

use crate::domain::UsageTotals;
use crate::domain::calendar::{add_months, first_of_month, is_weekend, month_key, months_between, next_month, parse_month, week_start};
use crate::domain::{Micros, PricingTable, QuotaPolicy, RequestType, Route, SupplierId, Tier, VendorType};
use crate::store::analytics::{DimColumn, Interrupter, is_interrupted};
use crate::store::{AnalyticsReader, DimFilter, Store, StoreError, SupplierInfo};
use chrono::{Duration, NaiveDate};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub mod cache;
mod cost;
mod projection;

pub use cost::{CostComparison, PriceRefs};
pub use projection::{MonthEndProjection, ProjectedMonth, ProjectionMethod, ProjectionReport, SupplierProjection};

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("the query was cancelled")]
    Cancelled,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type AnalyticsResult<T> = Result<T, AnalyticsError>;

/// Cancels a running query: sets a flag checked between steps and interrupts
/// the SQLite statement in flight. Cheap to clone; cancelling twice is harmless.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle {
    flag: Arc<AtomicBool>,
    interrupter: Arc<Mutex<Option<Interrupter>>>,
}

impl CancelHandle {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Some(i) = self.interrupter.lock().as_ref() {
            i.interrupt();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn attach(&self, i: Interrupter) {
        *self.interrupter.lock() = Some(i);
    }

    /// `Err(Cancelled)` once cancelled; call between steps.
    pub fn check(&self) -> AnalyticsResult<()> {
        if self.is_cancelled() { Err(AnalyticsError::Cancelled) } else { Ok(()) }
    }
}

/// Chart bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Day,
    /// ISO weeks, starting on Monday.
    Week,
    Month,
}

/// What a time series is broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// One series: the total.
    Total,
    /// The top suppliers by cost (ranked over the whole months overlapping the
    /// range), plus one "other" series with everyone else.
    Supplier,
    Provider,
    Model,
    Route,
    RequestType,
    VendorType,
}

impl std::str::FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" => Ok(Granularity::Day),
            "week" => Ok(Granularity::Week),
            "month" => Ok(Granularity::Month),
            _ => Err(format!("'{s}' is not a granularity; use day, week or month")),
        }
    }
}

impl std::str::FromStr for Dimension {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "total" => Dimension::Total,
            "supplier" => Dimension::Supplier,
            "provider" => Dimension::Provider,
            "model" => Dimension::Model,
            "route" => Dimension::Route,
            "request_type" => Dimension::RequestType,
            "vendor_type" => Dimension::VendorType,
            _ => {
                return Err(format!("'{s}' is not a breakdown; use total, supplier, provider, model, route, request-type or vendor-type"));
            }
        })
    }
}

/// A time-series query: the days `from..=to` (UTC), bucketed and broken down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub granularity: Granularity,
    pub dimension: Dimension,
    /// Only this supplier's usage.
    pub supplier: Option<SupplierId>,
    pub filter: DimFilter,
    /// For [`Dimension::Supplier`]: how many suppliers get their own series.
    pub top: usize,
}

impl SeriesQuery {
    pub fn new(from: NaiveDate, to: NaiveDate, granularity: Granularity, dimension: Dimension) -> Self {
        Self { from, to, granularity, dimension, supplier: None, filter: DimFilter::default(), top: 10 }
    }
}

/// One line of a chart: per-bucket values aligned with [`TimeSeries::buckets`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// Stable key (`openai`, `platform`, a supplier id, or `other`).
    pub key: String,
    /// What to show in the legend.
    pub label: String,
    pub cost: Vec<Micros>,
    pub tokens: Vec<u64>,
    pub requests: Vec<u64>,
    /// The series over the whole range.
    pub total: UsageTotals,
}

/// Chart-ready usage over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSeries {
    /// First day of each bucket (every bucket of the range, empty ones too).
    pub buckets: Vec<NaiveDate>,
    pub series: Vec<Series>,
    /// Everything in the range and filter; the series always add up to it.
    pub total: UsageTotals,
}

/// A supplier's platform-quota use in one month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaUse {
    pub supplier_id: SupplierId,
    pub name: String,
    pub tier: Tier,
    /// First day of the month.
    pub month: NaiveDate,
    /// Tokens on the platform and failover routes.
    pub used_tokens: u64,
    /// The month's quota, seasonal multiplier applied.
    pub quota_tokens: u64,
    pub percent: f64,
    /// At or above the warning threshold (90 % by default).
    pub warning: bool,
    pub exceeded: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupplierCost {
    pub supplier_id: SupplierId,
    pub name: String,
    pub vendor_type: VendorType,
    pub tier: Tier,
    pub totals: UsageTotals,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupplierGrowth {
    pub supplier_id: SupplierId,
    pub name: String,
    pub vendor_type: VendorType,
    /// Cost in the range and in the equally long period just before it.
    pub cost: Micros,
    pub previous_cost: Micros,
    pub cost_change: Micros,
    pub tokens: u64,
    pub previous_tokens: u64,
    /// `cost / previous_cost` (None without a previous period).
    pub growth_ratio: Option<f64>,
}

/// Top suppliers over whole months `from..=to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopSuppliers {
    pub from_month: NaiveDate,
    pub to_month: NaiveDate,
    pub by_cost: Vec<SupplierCost>,
    /// Ranked by the increase in cost over the previous period of the same length.
    pub by_growth: Vec<SupplierGrowth>,
}

/// Average per calendar day (days with no usage count as zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DailyAverage {
    pub days: u32,
    pub requests: f64,
    pub tokens: f64,
    /// Micro-dollars per day.
    pub cost_micros: f64,
    pub total_cost: Micros,
    pub total_tokens: u64,
}

/// Two day-sets compared (peak against off-season, or weekend against weekday).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRow {
    pub key: String,
    pub label: String,
    /// Peak season, or weekend days.
    pub first: DailyAverage,
    /// Off-season, or weekdays.
    pub second: DailyAverage,
    /// `first / second` of the daily averages (None when `second` is zero).
    pub requests_ratio: Option<f64>,
    pub tokens_ratio: Option<f64>,
    pub cost_ratio: Option<f64>,
}

/// Seasonal analysis over whole months.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeasonalReport {
    pub from_month: NaiveDate,
    pub to_month: NaiveDate,
    /// Peak (first) against off-season (second).
    pub overall: SplitRow,
    pub by_vendor_type: Vec<SplitRow>,
    pub by_request_type: Vec<SplitRow>,
    pub by_supplier: Vec<SplitRow>,
    /// Weekend (Saturday, Sunday: first) against weekdays (second).
    pub weekend_overall: SplitRow,
    pub weekend_by_vendor_type: Vec<SplitRow>,
    pub weekend_by_request_type: Vec<SplitRow>,
}

/// A query for [`AnalyticsService::spawn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnalyticsQuery {
    Series(SeriesQuery),
    QuotaUse { from_month: NaiveDate, to_month: NaiveDate, supplier: Option<SupplierId> },
    TopSuppliers { from_month: NaiveDate, to_month: NaiveDate, limit: usize },
    Seasonal { from_month: NaiveDate, to_month: NaiveDate },
    Projections { as_of: NaiveDate },
    CostComparison { from_month: NaiveDate, to_month: NaiveDate },
}

/// The answer to an [`AnalyticsQuery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnalyticsAnswer {
    Series(TimeSeries),
    QuotaUse(Vec<QuotaUse>),
    TopSuppliers(TopSuppliers),
    Seasonal(Box<SeasonalReport>),
    Projections(ProjectionReport),
    CostComparison(Vec<CostComparison>),
}

/// Runs analytics queries off the UI thread.
#[derive(Debug, Clone)]
pub struct AnalyticsService {
    store: Arc<Store>,
    pricing: Arc<PricingTable>,
    policy: Arc<QuotaPolicy>,
}

/// A query running on the blocking pool.
#[derive(Debug)]
pub struct RunningQuery {
    pub cancel: CancelHandle,
    pub result: tokio::task::JoinHandle<AnalyticsResult<AnalyticsAnswer>>,
}

impl AnalyticsService {
    pub fn new(store: Arc<Store>, pricing: PricingTable, policy: QuotaPolicy) -> Self {
        Self { store, pricing: Arc::new(pricing), policy: Arc::new(policy) }
    }

    /// Opens a session (its own connection) for synchronous use.
    pub fn session(&self) -> AnalyticsResult<AnalyticsSession> {
        AnalyticsSession::open(&self.store, &self.pricing, &self.policy, CancelHandle::new())
    }

    /// Runs `query` on the tokio blocking pool (must be called inside a tokio
    /// runtime). Cancel with `running.cancel.cancel()`; the task then ends
    /// with [`AnalyticsError::Cancelled`].
    pub fn spawn(&self, query: AnalyticsQuery) -> RunningQuery {
        self.spawn_with(query, CancelHandle::new())
    }

    /// As [`AnalyticsService::spawn`], with a cancel handle made beforehand
    /// (one already cancelled ends the query before it starts).
    pub fn spawn_with(&self, query: AnalyticsQuery, cancel: CancelHandle) -> RunningQuery {
        let (c, me) = (cancel.clone(), self.clone());
        let result = tokio::task::spawn_blocking(move || {
            c.check()?;
            let s = AnalyticsSession::open(&me.store, &me.pricing, &me.policy, c)?;
            s.run(&query)
        });
        RunningQuery { cancel, result }
    }
}

/// Analytics on one connection; every method checks for cancellation between steps.
pub struct AnalyticsSession {
    reader: AnalyticsReader,
    cancel: CancelHandle,
    pricing: Arc<PricingTable>,
    policy: Arc<QuotaPolicy>,
}

fn bucket_of(d: NaiveDate, g: Granularity) -> NaiveDate {
    match g {
        Granularity::Day => d,
        Granularity::Week => week_start(d),
        Granularity::Month => first_of_month(d),
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    if b > 0.0 { Some(a / b) } else { None }
}

fn label_for(dim: DimColumn, key: &str) -> String {
    match dim {
        DimColumn::RequestType => key.parse().ok().and_then(RequestType::from_code).map(|t| t.as_str().to_string()),
        DimColumn::Route => key.parse().ok().and_then(Route::from_code).map(|r| r.as_str().to_string()),
        DimColumn::None => Some("total".to_string()),
        _ => None,
    }
    .unwrap_or_else(|| key.to_string())
}

impl AnalyticsSession {
    pub fn open(store: &Store, pricing: &Arc<PricingTable>, policy: &Arc<QuotaPolicy>, cancel: CancelHandle) -> AnalyticsResult<Self> {
        let reader = store.analytics_reader()?;
        cancel.attach(reader.interrupter());
        Ok(Self { reader, cancel, pricing: pricing.clone(), policy: policy.clone() })
    }

    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Maps an interrupted statement to `Cancelled`.
    fn db<T>(&self, r: Result<T, StoreError>) -> AnalyticsResult<T> {
        match r {
            Ok(v) => {
                self.cancel.check()?;
                Ok(v)
            }
            Err(e) if self.cancel.is_cancelled() || is_interrupted(&e) => Err(AnalyticsError::Cancelled),
            Err(e) => Err(e.into()),
        }
    }

    pub fn run(&self, q: &AnalyticsQuery) -> AnalyticsResult<AnalyticsAnswer> {
        Ok(match q {
            AnalyticsQuery::Series(s) => AnalyticsAnswer::Series(self.time_series(s)?),
            AnalyticsQuery::QuotaUse { from_month, to_month, supplier } => {
                AnalyticsAnswer::QuotaUse(self.quota_use(*from_month, *to_month, *supplier)?)
            }
            AnalyticsQuery::TopSuppliers { from_month, to_month, limit } => {
                AnalyticsAnswer::TopSuppliers(self.top_suppliers(*from_month, *to_month, *limit)?)
            }
            AnalyticsQuery::Seasonal { from_month, to_month } => {
                AnalyticsAnswer::Seasonal(Box::new(self.seasonal(*from_month, *to_month)?))
            }
            AnalyticsQuery::Projections { as_of } => AnalyticsAnswer::Projections(self.projections(*as_of)?),
            AnalyticsQuery::CostComparison { from_month, to_month } => {
                AnalyticsAnswer::CostComparison(self.cost_comparison(*from_month, *to_month, &PriceRefs::default())?)
            }
        })
    }

    fn check_range(from: NaiveDate, to: NaiveDate) -> AnalyticsResult<()> {
        if from > to {
            return Err(AnalyticsError::Invalid(format!("the range starts ({from}) after it ends ({to}); swap the dates")));
        }
        Ok(())
    }

    fn suppliers(&self) -> AnalyticsResult<HashMap<SupplierId, SupplierInfo>> {
        Ok(self.db(self.reader.suppliers())?.into_iter().map(|s| (s.id, s)).collect())
    }

    /// Cost, tokens and requests per bucket, broken down by `q.dimension`.
    pub fn time_series(&self, q: &SeriesQuery) -> AnalyticsResult<TimeSeries> {
        Self::check_range(q.from, q.to)?;
        let mut buckets = Vec::new();
        let mut b = bucket_of(q.from, q.granularity);
        while b <= q.to {
            buckets.push(b);
            b = match q.granularity {
                Granularity::Day => b + Duration::days(1),
                Granularity::Week => b + Duration::days(7),
                Granularity::Month => next_month(b),
            };
        }
        let index: HashMap<NaiveDate, usize> = buckets.iter().enumerate().map(|(i, b)| (*b, i)).collect();
        let (from, to) = (q.from.to_string(), q.to.to_string());
        let new_series = |key: String, label: String| Series {
            key,
            label,
            cost: vec![Micros::ZERO; buckets.len()],
            tokens: vec![0; buckets.len()],
            requests: vec![0; buckets.len()],
            total: UsageTotals::default(),
        };
        let add = |s: &mut Series, i: usize, t: &UsageTotals| {
            s.cost[i] += t.cost;
            s.tokens[i] += t.tokens();
            s.requests[i] += t.requests;
            s.total.add(t);
        };
        let bucket_index = |day: &str| -> Option<usize> {
            let d: NaiveDate = day.parse().ok()?;
            index.get(&bucket_of(d, q.granularity)).copied()
        };
        let mut total = UsageTotals::default();
        let mut series: Vec<Series> = Vec::new();
        if q.dimension == Dimension::Supplier && q.supplier.is_none() {
            let suppliers = self.suppliers()?;
            // Bucket totals (for the "other" series), then the top suppliers' daily rows.
            let mut rest = new_series("other".into(), "other suppliers".into());
            for (day, _, t) in self.db(self.reader.daily_by(&from, &to, DimColumn::None, None, &q.filter))? {
                if let Some(i) = bucket_index(&day) {
                    add(&mut rest, i, &t);
                    total.add(&t);
                }
            }
            let top = self.top_by_cost(q.from, q.to, q.top)?;
            let rows = if q.filter == DimFilter::default() {
                self.db(self.reader.supplier_days(&from, &to, &top))?
            } else {
                self.db(self.reader.daily_for_suppliers(&from, &to, &top, &q.filter))?
            };
            let mut by_id: BTreeMap<SupplierId, Series> = BTreeMap::new();
            for (day, id, t) in rows {
                if let Some(i) = bucket_index(&day) {
                    let s = by_id.entry(id).or_insert_with(|| {
                        new_series(id.to_string(), suppliers.get(&id).map(|s| s.name.clone()).unwrap_or_else(|| format!("supplier {id}")))
                    });
                    add(s, i, &t);
                }
            }
            for id in &top {
                if let Some(s) = by_id.remove(id) {
                    for i in 0..buckets.len() {
                        rest.cost[i] = rest.cost[i] - s.cost[i];
                        rest.tokens[i] = rest.tokens[i].saturating_sub(s.tokens[i]);
                        rest.requests[i] = rest.requests[i].saturating_sub(s.requests[i]);
                    }
                    rest.total = rest.total.minus(&s.total);
                    series.push(s);
                }
            }
            if rest.total != UsageTotals::default() {
                series.push(rest);
            }
        } else {
            let dim = match q.dimension {
                Dimension::Total | Dimension::Supplier => DimColumn::None,
                Dimension::Provider => DimColumn::Provider,
                Dimension::Model => DimColumn::Model,
                Dimension::Route => DimColumn::Route,
                Dimension::RequestType => DimColumn::RequestType,
                Dimension::VendorType => DimColumn::VendorType,
            };
            let mut by_key: BTreeMap<String, Series> = BTreeMap::new();
            for (day, key, t) in self.db(self.reader.daily_by(&from, &to, dim, q.supplier, &q.filter))? {
                if let Some(i) = bucket_index(&day) {
                    let label = if q.dimension == Dimension::Supplier { "this supplier".to_string() } else { label_for(dim, &key) };
                    let s = by_key.entry(key.clone()).or_insert_with(|| new_series(key, label));
                    add(s, i, &t);
                    total.add(&t);
                }
            }
            series = by_key.into_values().collect();
            series.sort_by(|a, b| b.total.cost.cmp(&a.total.cost).then_with(|| a.key.cmp(&b.key)));
        }
        Ok(TimeSeries { buckets, series, total })
    }

    /// The `n` suppliers with the highest cost in the months overlapping `from..=to`.
    fn top_by_cost(&self, from: NaiveDate, to: NaiveDate, n: usize) -> AnalyticsResult<Vec<SupplierId>> {
        let rows = self.db(self.reader.supplier_months(&month_key(from), &month_key(to), None))?;
        let mut cost: HashMap<SupplierId, Micros> = HashMap::new();
        for r in rows {
            *cost.entry(r.supplier_id).or_default() += r.totals.cost;
        }
        let mut v: Vec<(SupplierId, Micros)> = cost.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(v.into_iter().take(n).map(|(id, _)| id).collect())
    }

    /// Platform-quota use per supplier and month (months `from..=to`; any day of a month names it).
    pub fn quota_use(&self, from: NaiveDate, to: NaiveDate, supplier: Option<SupplierId>) -> AnalyticsResult<Vec<QuotaUse>> {
        Self::check_range(first_of_month(from), first_of_month(to))?;
        let suppliers = self.suppliers()?;
        let rows = self.db(self.reader.supplier_months(&month_key(from), &month_key(to), supplier))?;
        let mut used: HashMap<(SupplierId, NaiveDate), u64> = HashMap::new();
        for r in rows {
            if let Some(m) = parse_month(&r.month) {
                *used.entry((r.supplier_id, m)).or_default() += r.quota_tokens;
            }
        }
        let mut out = Vec::new();
        let mut ids: Vec<&SupplierInfo> = suppliers.values().filter(|s| supplier.is_none_or(|id| id == s.id)).collect();
        ids.sort_by_key(|s| s.id);
        let mut m = first_of_month(from);
        while m <= to {
            for s in &ids {
                let used_tokens = used.get(&(s.id, m)).copied().unwrap_or(0);
                let st = self.policy.status(s.tier, m, used_tokens);
                out.push(QuotaUse {
                    supplier_id: s.id,
                    name: s.name.clone(),
                    tier: s.tier,
                    month: m,
                    used_tokens,
                    quota_tokens: st.quota,
                    percent: st.percent(),
                    warning: st.is_warning(),
                    exceeded: st.is_exhausted(),
                });
            }
            m = next_month(m);
        }
        Ok(out)
    }

    /// Top suppliers by cost in the months `from..=to`, and by growth against
    /// the same number of months just before.
    pub fn top_suppliers(&self, from: NaiveDate, to: NaiveDate, limit: usize) -> AnalyticsResult<TopSuppliers> {
        let (from, to) = (first_of_month(from), first_of_month(to));
        Self::check_range(from, to)?;
        let months = months_between(from, to) + 1;
        let prev_from = add_months(from, -months);
        let suppliers = self.suppliers()?;
        let rows = self.db(self.reader.supplier_months(&month_key(prev_from), &month_key(to), None))?;
        let (from_key, mut cur, mut prev) = (month_key(from), HashMap::new(), HashMap::new());
        for r in rows {
            let target = if r.month >= from_key { &mut cur } else { &mut prev };
            target.entry(r.supplier_id).or_insert_with(UsageTotals::default).add(&r.totals);
        }
        let info = |id: SupplierId| suppliers.get(&id);
        let mut by_cost: Vec<SupplierCost> = cur
            .iter()
            .filter_map(|(id, t)| {
                let s = info(*id)?;
                Some(SupplierCost { supplier_id: *id, name: s.name.clone(), vendor_type: s.vendor_type, tier: s.tier, totals: *t })
            })
            .collect();
        by_cost.sort_by(|a, b| b.totals.cost.cmp(&a.totals.cost).then(a.supplier_id.cmp(&b.supplier_id)));
        by_cost.truncate(limit);
        let mut by_growth: Vec<SupplierGrowth> = suppliers
            .values()
            .map(|s| {
                let c = cur.get(&s.id).copied().unwrap_or_default();
                let p = prev.get(&s.id).copied().unwrap_or_default();
                SupplierGrowth {
                    supplier_id: s.id,
                    name: s.name.clone(),
                    vendor_type: s.vendor_type,
                    cost: c.cost,
                    previous_cost: p.cost,
                    cost_change: c.cost - p.cost,
                    tokens: c.tokens(),
                    previous_tokens: p.tokens(),
                    growth_ratio: ratio(c.cost.0 as f64, p.cost.0 as f64),
                }
            })
            .filter(|g| g.cost > Micros::ZERO || g.previous_cost > Micros::ZERO)
            .collect();
        by_growth.sort_by(|a, b| b.cost_change.cmp(&a.cost_change).then(a.supplier_id.cmp(&b.supplier_id)));
        by_growth.truncate(limit);
        Ok(TopSuppliers { from_month: from, to_month: to, by_cost, by_growth })
    }

    /// Peak against off-season (and weekend against weekday) over whole months `from..=to`.
    pub fn seasonal(&self, from: NaiveDate, to: NaiveDate) -> AnalyticsResult<SeasonalReport> {
        let (from_m, to_m) = (first_of_month(from), first_of_month(to));
        Self::check_range(from_m, to_m)?;
        let last_day = next_month(to_m) - Duration::days(1);
        let season = &self.policy.season;
        // Calendar days in each class.
        let (mut peak_days, mut off_days, mut weekend_days, mut week_days) = (0u32, 0u32, 0u32, 0u32);
        let mut d = from_m;
        while d <= last_day {
            if season.is_peak(d) {
                peak_days += 1
            } else {
                off_days += 1
            }
            if is_weekend(d) {
                weekend_days += 1
            } else {
                week_days += 1
            }
            d += Duration::days(1);
        }
        type Pair = (UsageTotals, UsageTotals);
        fn put(p: &mut Pair, first: bool, t: &UsageTotals) {
            if first { p.0.add(t) } else { p.1.add(t) }
        }
        type Acc = BTreeMap<String, Pair>;
        let (mut season_vendor, mut season_rt, mut week_vendor, mut week_rt): (Acc, Acc, Acc, Acc) = Default::default();
        let (mut season_all, mut week_all) = (Pair::default(), Pair::default());
        let (from_day, to_day) = (from_m.to_string(), last_day.to_string());
        for (day, key, t) in
            self.db(self.reader.daily_by(&from_day, &to_day, DimColumn::VendorAndRequestType, None, &DimFilter::default()))?
        {
            let Ok(d) = day.parse::<NaiveDate>() else { continue };
            let (vendor, rt) = key.split_once('|').unwrap_or((key.as_str(), ""));
            let rt = label_for(DimColumn::RequestType, rt);
            let (peak, weekend) = (season.is_peak(d), is_weekend(d));
            put(season_vendor.entry(vendor.to_string()).or_default(), peak, &t);
            put(week_vendor.entry(vendor.to_string()).or_default(), weekend, &t);
            put(season_rt.entry(rt.clone()).or_default(), peak, &t);
            put(week_rt.entry(rt).or_default(), weekend, &t);
            put(&mut season_all, peak, &t);
            put(&mut week_all, weekend, &t);
        }
        let suppliers = self.suppliers()?;
        let mut season_supplier: BTreeMap<SupplierId, (UsageTotals, UsageTotals)> = BTreeMap::new();
        for r in self.db(self.reader.supplier_months(&month_key(from_m), &month_key(to_m), None))? {
            let Some(m) = parse_month(&r.month) else { continue };
            put(season_supplier.entry(r.supplier_id).or_default(), season.is_peak(m), &r.totals);
        }
        let split = |key: String, label: String, a: &UsageTotals, b: &UsageTotals, ad: u32, bd: u32| {
            let avg = |t: &UsageTotals, days: u32| {
                let n = days.max(1) as f64;
                DailyAverage {
                    days,
                    requests: t.requests as f64 / n,
                    tokens: t.tokens() as f64 / n,
                    cost_micros: t.cost.0 as f64 / n,
                    total_cost: t.cost,
                    total_tokens: t.tokens(),
                }
            };
            let (first, second) = (avg(a, ad), avg(b, bd));
            SplitRow {
                key,
                label,
                requests_ratio: ratio(first.requests, second.requests),
                tokens_ratio: ratio(first.tokens, second.tokens),
                cost_ratio: ratio(first.cost_micros, second.cost_micros),
                first,
                second,
            }
        };
        let rows = |acc: &Acc, ad: u32, bd: u32| -> Vec<SplitRow> {
            acc.iter().map(|(k, (a, b))| split(k.clone(), k.clone(), a, b, ad, bd)).collect()
        };
        Ok(SeasonalReport {
            from_month: from_m,
            to_month: to_m,
            overall: split("all".into(), "all suppliers".into(), &season_all.0, &season_all.1, peak_days, off_days),
            by_vendor_type: rows(&season_vendor, peak_days, off_days),
            by_request_type: rows(&season_rt, peak_days, off_days),
            by_supplier: season_supplier
                .iter()
                .map(|(id, (a, b))| {
                    let name = suppliers.get(id).map(|s| s.name.clone()).unwrap_or_else(|| format!("supplier {id}"));
                    split(id.to_string(), name, a, b, peak_days, off_days)
                })
                .collect(),
            weekend_overall: split("all".into(), "all suppliers".into(), &week_all.0, &week_all.1, weekend_days, week_days),
            weekend_by_vendor_type: rows(&week_vendor, weekend_days, week_days),
            weekend_by_request_type: rows(&week_rt, weekend_days, week_days),
        })
    }
}
