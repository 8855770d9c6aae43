//! `switchboard report …`: the console's analytics as JSON (for scripts and
//! for checking figures), and `--bench N` to time each dashboard query.

use crate::domain::calendar::add_months;
use crate::domain::{PricingTable, QuotaPolicy, SupplierId};
use crate::engine::analytics::{AnalyticsQuery, AnalyticsService, Dimension, Granularity, SeriesQuery};
use crate::store::Store;
use anyhow::bail;
use chrono::NaiveDate;
use clap::{Args, ValueEnum};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportKind {
    /// Cost and tokens over time (--granularity, --by).
    Series,
    /// Platform-quota use per supplier and month.
    Quota,
    /// Top suppliers by cost and by growth.
    Top,
    /// Peak against off-season, weekend against weekday.
    Seasonal,
    /// Month-end and next-three-months projections per supplier.
    Projections,
    /// What each supplier would have cost on the other side.
    Compare,
    /// The response cache: hits, hit rate and dollars saved per day and
    /// supplier, and per supplier, model and request type.
    Cache,
    /// Every dashboard query (use with --bench).
    All,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    kind: ReportKind,
    /// First day, YYYY-MM-DD (default: the first of the month eleven months before --to).
    #[arg(long, value_parser = super::parse_date)]
    from: Option<NaiveDate>,
    /// Last day, YYYY-MM-DD (default: today, UTC).
    #[arg(long, value_parser = super::parse_date)]
    to: Option<NaiveDate>,
    /// Last day of complete data for projections (default: --to).
    #[arg(long, value_parser = super::parse_date)]
    as_of: Option<NaiveDate>,
    /// Breakdown of a series: total, supplier, provider, model, route, request-type or vendor-type.
    #[arg(long, default_value = "total")]
    by: Dimension,
    /// Bucket size of a series: day, week or month.
    #[arg(long, default_value = "day")]
    granularity: Granularity,
    /// Only this supplier (series and quota).
    #[arg(long, value_name = "ID")]
    supplier: Option<i64>,
    /// How many suppliers in rankings and supplier series.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Time each query over N runs instead of printing results.
    #[arg(long, value_name = "N")]
    bench: Option<u32>,
}

fn queries(a: &ReportArgs, from: NaiveDate, to: NaiveDate, as_of: NaiveDate) -> Vec<(String, AnalyticsQuery)> {
    let supplier = a.supplier.map(SupplierId);
    let series = |g: Granularity, d: Dimension| {
        let mut q = SeriesQuery::new(from, to, g, d);
        q.supplier = supplier;
        q.top = a.top;
        AnalyticsQuery::Series(q)
    };
    let quota = AnalyticsQuery::QuotaUse { from_month: from, to_month: to, supplier };
    let top = AnalyticsQuery::TopSuppliers { from_month: from, to_month: to, limit: a.top };
    let seasonal = AnalyticsQuery::Seasonal { from_month: from, to_month: to };
    let proj = AnalyticsQuery::Projections { as_of };
    let compare = AnalyticsQuery::CostComparison { from_month: from, to_month: to };
    let (g, d) = (a.granularity, a.by);
    match a.kind {
        ReportKind::Series => vec![(format!("series {:?} by {:?}", a.granularity, a.by).to_lowercase(), series(g, d))],
        ReportKind::Quota => vec![("quota use".into(), quota)],
        ReportKind::Top => vec![("top suppliers".into(), top)],
        ReportKind::Seasonal => vec![("seasonal".into(), seasonal)],
        ReportKind::Projections => vec![("projections".into(), proj)],
        ReportKind::Compare => vec![("cost comparison".into(), compare)],
        // Read straight from the rollup by `run` (no analytics session).
        ReportKind::Cache => Vec::new(),
        ReportKind::All => {
            let mut v = Vec::new();
            for (gn, g) in [("day", Granularity::Day), ("week", Granularity::Week), ("month", Granularity::Month)] {
                for (dn, d) in [
                    ("total", Dimension::Total),
                    ("supplier", Dimension::Supplier),
                    ("provider", Dimension::Provider),
                    ("model", Dimension::Model),
                    ("route", Dimension::Route),
                    ("request type", Dimension::RequestType),
                    ("vendor type", Dimension::VendorType),
                ] {
                    v.push((format!("series by {gn}, {dn}"), series(g, d)));
                }
            }
            v.extend([
                ("quota use".to_string(), quota),
                ("top suppliers".into(), top),
                ("seasonal".into(), seasonal),
                ("projections".into(), proj),
                ("cost comparison".into(), compare),
            ]);
            v
        }
    }
}

pub fn run(store: Store, a: ReportArgs) -> anyhow::Result<()> {
    let to = a.to.unwrap_or_else(|| super::now().date_naive());
    let from = a.from.unwrap_or_else(|| add_months(to, -11));
    if from > to {
        bail!("--from {from} is after --to {to}; give the first day, then the last");
    }
    let as_of = a.as_of.unwrap_or(to);
    if let Some(id) = a.supplier
        && store.find_supplier(SupplierId(id))?.is_none()
    {
        bail!("supplier {id} does not exist; `switchboard supplier list` shows the suppliers and their ids");
    }
    if a.kind == ReportKind::Cache {
        let report = crate::engine::analytics::cache::cache_report(&store, from, to)?;
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"cache": report}))?);
        return Ok(());
    }
    let service = AnalyticsService::new(Arc::new(store), PricingTable::builtin(), QuotaPolicy::default());
    let session = service.session()?;
    let qs = queries(&a, from, to, as_of);
    match a.bench {
        None => {
            let mut out = serde_json::Map::new();
            for (name, q) in &qs {
                out.insert(name.clone(), serde_json::to_value(session.run(q)?)?);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Some(runs) => {
            let runs = runs.max(1);
            println!("{:<40} {:>9} {:>9} {:>9}", "QUERY", "MEDIAN", "MAX", "FIRST");
            for (name, q) in &qs {
                let mut times = Vec::new();
                for _ in 0..runs {
                    let t = Instant::now();
                    session.run(q)?;
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                let first = times[0];
                times.sort_by(|x, y| x.total_cmp(y));
                println!("{name:<40} {:>7.1}ms {:>7.1}ms {:>7.1}ms", times[times.len() / 2], times[times.len() - 1], first);
            }
        }
    }
    Ok(())
}
