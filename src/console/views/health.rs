//! The Health view's data: a status board of every provider account (verdict,
//! breaker, latency, error rate, uptime, last probe), one account's latency
//! and error-rate series for a chart range, and the alert list; plus the
//! hand-made alert actions (acknowledge, resolve — both audited). With a
//! running [`HealthMonitor`] the board is its live snapshot; without one (a
//! console opened on a database file) it is read from the stored history.

use crate::console::decimate;
use crate::console::service::{Res, Service, msg};
use crate::console::{BreakerView, ConsoleEvent};
use crate::domain::health::{AlertRules, Verdict, bucket_start};
use crate::domain::{AccountId, AccountOwner, ProviderKind};
use crate::engine::alerts::AlertService;
use crate::engine::health::ChartRange;
use crate::store::{Alert, SeriesPoint, audit_actor};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// What the Health view asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthQuery {
    /// The account whose charts to show; `None` picks the worst one.
    pub account: Option<AccountId>,
    pub range: ChartRange,
    /// Only alerts that are not resolved.
    pub open_only: bool,
    /// Width of the charts in pixels: series are decimated to it.
    pub max_points: usize,
}

/// The last probe of an account.
#[derive(Debug, Clone, PartialEq)]
pub struct LastProbe {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub latency_ms: u32,
    /// Why it failed (`unreachable`, `timeout`, …), or the provider's message.
    pub message: String,
}

/// One provider account on the status board.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRow {
    pub id: AccountId,
    pub label: String,
    pub provider: ProviderKind,
    pub owner: AccountOwner,
    /// "WedSync platform" or the supplier's name.
    pub owner_name: String,
    pub verdict: Verdict,
    /// Serves a supplier with a wedding today (stricter thresholds).
    pub wedding_day: bool,
    /// `None` when this console does not route.
    pub breaker: Option<BreakerView>,
    pub p50_ms: Option<u32>,
    pub p95_ms: Option<u32>,
    /// Over the monitor's window (live) or the last hour (stored history).
    pub error_percent: Option<f64>,
    pub uptime_24h: Option<f64>,
    pub last_probe: Option<LastProbe>,
    pub has_key: bool,
    pub enabled: bool,
}

/// One account's latency and error rate over the chosen range; x is Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChart {
    pub account: AccountId,
    pub label: String,
    pub range: ChartRange,
    /// The range's start and end (Unix seconds), so an empty stretch still shows.
    pub from: f64,
    pub to: f64,
    pub latency_avg: Vec<[f64; 2]>,
    pub latency_max: Vec<[f64; 2]>,
    pub error_percent: Vec<[f64; 2]>,
    /// Samples behind the series.
    pub samples: u64,
}

/// An alert with the names of what it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub alert: Alert,
    /// The account's label and owner, or the supplier's name; empty when neither applies.
    pub subject: String,
}

/// Everything the Health view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthView {
    pub query: HealthQuery,
    /// A health monitor runs in this console (live verdicts); otherwise stored history only.
    pub monitored: bool,
    pub probe_interval_secs: i64,
    /// Down first, then degraded, then the rest; platform accounts before suppliers'.
    pub rows: Vec<HealthRow>,
    pub chart: Option<HealthChart>,
    /// Newest first (open ones only when the query says so).
    pub alerts: Vec<AlertRow>,
    pub open_alerts: usize,
    /// Every key's pool state (share of traffic, headroom, 429 rate) when a router runs here.
    pub pools: Vec<crate::domain::keypool::KeySnapshot>,
}

pub(in crate::console) const ALERTS_SHOWN: u32 = 300;

pub(in crate::console) fn verdict_rank(v: Verdict) -> u8 {
    match v {
        Verdict::Down => 0,
        Verdict::Degraded => 1,
        Verdict::Unknown => 2,
        Verdict::Healthy => 3,
    }
}

pub(in crate::console) fn to_xy(points: &[SeriesPoint], f: impl Fn(&SeriesPoint) -> Option<f64>) -> Vec<[f64; 2]> {
    points.iter().filter_map(|p| f(p).map(|y| [p.bucket_start.timestamp() as f64, y])).collect()
}

impl Service {
    pub(in crate::console) fn health_view(&self, q: &HealthQuery) -> Res<HealthView> {
        let now = self.clock.now();
        let live = self.live();
        let monitor = live.as_ref().and_then(|l| l.services.health.clone());
        let router = live.as_ref().and_then(|l| l.services.router.clone());
        let cat = self.supplier_cache()?;
        let names: HashMap<_, &str> = cat.suppliers.iter().map(|s| (s.id, s.name.as_str())).collect();
        let owner_name = |o: AccountOwner| match o {
            AccountOwner::Platform => "WedSync platform".to_string(),
            AccountOwner::Supplier(s) => names.get(&s).map(|n| n.to_string()).unwrap_or_else(|| format!("supplier {s}")),
        };
        let breakers: HashMap<AccountId, BreakerView> = router
            .as_ref()
            .map(|r| r.breaker_states().into_iter().map(|(a, st)| (a.id, BreakerView::of(st, now))).collect())
            .unwrap_or_default();
        let accounts = self.store.list_accounts(None).map_err(msg)?;
        let enabled: HashMap<AccountId, bool> = accounts.iter().map(|a| (a.id, a.enabled)).collect();
        let mut rows: Vec<HealthRow> = match &monitor {
            Some(m) => m
                .snapshot()
                .map_err(msg)?
                .accounts
                .into_iter()
                .map(|a| HealthRow {
                    owner_name: owner_name(a.owner),
                    id: a.account,
                    label: a.label,
                    provider: a.provider,
                    owner: a.owner,
                    verdict: a.verdict,
                    wedding_day: a.wedding_day,
                    breaker: breakers.get(&a.account).copied(),
                    p50_ms: a.window.p50_ms,
                    p95_ms: a.window.p95_ms,
                    error_percent: (a.window.samples > 0).then_some(a.window.error_percent),
                    uptime_24h: a.uptime_24h,
                    last_probe: a.last_probe.map(|p| LastProbe {
                        at: p.at,
                        ok: p.ok,
                        latency_ms: p.latency_ms,
                        message: match p.error_class {
                            Some(c) if p.message.is_empty() => c,
                            Some(c) => format!("{c}: {}", p.message),
                            None => p.message,
                        },
                    }),
                    has_key: a.has_key,
                    enabled: enabled.get(&a.account).copied().unwrap_or(true),
                })
                .collect(),
            None => {
                let last: HashMap<AccountId, LastProbe> = self
                    .store
                    .health_last_probes()
                    .map_err(msg)?
                    .into_iter()
                    .map(|s| {
                        let message = s.error_class.clone().unwrap_or_default();
                        (s.account, LastProbe { at: s.at, ok: s.ok, latency_ms: s.latency_ms, message })
                    })
                    .collect();
                // Two queries for every account at once: the board is refreshed every second.
                let end = now + Duration::milliseconds(1);
                let hours = self.store.health_counts_all(now - Duration::hours(1), end).map_err(msg)?;
                let days = self.store.health_counts_all(now - Duration::hours(24), end).map_err(msg)?;
                let mut rows = Vec::with_capacity(accounts.len());
                for a in &accounts {
                    let (hour, day) = (hours.get(&a.id).copied().unwrap_or_default(), days.get(&a.id).copied().unwrap_or_default());
                    rows.push(HealthRow {
                        id: a.id,
                        label: a.label.clone(),
                        provider: a.provider,
                        owner: a.owner,
                        owner_name: owner_name(a.owner),
                        verdict: Verdict::Unknown,
                        wedding_day: false,
                        breaker: breakers.get(&a.id).copied(),
                        p50_ms: None,
                        p95_ms: None,
                        error_percent: hour.uptime_percent().map(|u| 100.0 - u),
                        uptime_24h: day.uptime_percent(),
                        last_probe: last.get(&a.id).cloned(),
                        has_key: a.key_ref.is_some(),
                        enabled: a.enabled,
                    });
                }
                rows
            }
        };
        rows.sort_by(|a, b| {
            (verdict_rank(a.verdict), a.owner != AccountOwner::Platform, &a.owner_name, a.id).cmp(&(
                verdict_rank(b.verdict),
                b.owner != AccountOwner::Platform,
                &b.owner_name,
                b.id,
            ))
        });
        let chosen = match q.account {
            // An account removed since it was chosen: show the worst one instead.
            Some(id) => rows.iter().find(|r| r.id == id).or(rows.first()),
            None => rows.first(),
        };
        let chart = match chosen {
            Some(r) => {
                let (span, bucket) = q.range.span_and_bucket();
                let points = match &monitor {
                    Some(m) => m.series(r.id, q.range).map_err(msg)?,
                    None => {
                        let from =
                            DateTime::from_timestamp_millis(bucket_start((now - span).timestamp_millis(), bucket)).unwrap_or(now - span);
                        self.store.health_series(r.id, from, now + Duration::milliseconds(1), bucket).map_err(msg)?
                    }
                };
                let max = q.max_points.max(50);
                Some(HealthChart {
                    account: r.id,
                    label: r.label.clone(),
                    range: q.range,
                    from: (now - span).timestamp() as f64,
                    to: now.timestamp() as f64,
                    latency_avg: decimate(&to_xy(&points, |p| p.avg_latency_ms.map(|v| v as f64)), max),
                    latency_max: decimate(&to_xy(&points, |p| (p.samples > p.failures).then_some(p.max_latency_ms as f64)), max),
                    error_percent: decimate(&to_xy(&points, |p| Some(p.error_percent)), max),
                    samples: points.iter().map(|p| p.samples).sum(),
                })
            }
            None => None,
        };
        let open = self.store.list_alerts(true, 10_000).map_err(msg)?;
        let open_alerts = open.len();
        let mut alerts = if q.open_only { open } else { self.store.list_alerts(false, ALERTS_SHOWN).map_err(msg)? };
        alerts.truncate(ALERTS_SHOWN as usize);
        let labels: HashMap<AccountId, (&str, AccountOwner)> = accounts.iter().map(|a| (a.id, (a.label.as_str(), a.owner))).collect();
        let alerts = alerts
            .into_iter()
            .map(|alert| {
                let subject = match (alert.account_id.and_then(|a| labels.get(&a)), alert.supplier_id) {
                    (Some((label, owner)), _) => format!("{label} ({})", owner_name(*owner)),
                    (None, Some(s)) => owner_name(AccountOwner::Supplier(s)),
                    (None, None) => String::new(),
                };
                AlertRow { alert, subject }
            })
            .collect();
        Ok(HealthView {
            query: *q,
            monitored: monitor.is_some(),
            probe_interval_secs: monitor.as_ref().map(|m| m.config().probe_interval_secs).unwrap_or(30),
            rows,
            chart,
            alerts,
            open_alerts,
            pools: self.live().and_then(|l| l.services.router.clone()).map(|r| r.pool_snapshot()).unwrap_or_default(),
        })
    }

    /// The running monitor's alert service, or one over the store (same rules, no webhook).
    pub(in crate::console) fn alert_service(&self) -> Arc<AlertService> {
        match self.live().and_then(|l| l.services.health.clone()) {
            Some(m) => m.alerts().clone(),
            None => Arc::new(AlertService::new(self.store.clone(), self.clock.clone(), AlertRules::default(), None)),
        }
    }

    pub(in crate::console) fn alert_action(&self, id: i64, resolve: bool) -> Res<ConsoleEvent> {
        let alerts = self.alert_service();
        let actor = audit_actor();
        let alert = if resolve { alerts.resolve_by(id, &actor) } else { alerts.acknowledge_by(id, &actor) }.map_err(msg)?;
        Ok(ConsoleEvent::AlertUpdated { alert, resolved: resolve })
    }
}
