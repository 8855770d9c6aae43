//! Live snapshots: the installed live services (router, health monitor,
//! migration service), the router events collected for the Overview, the
//! once-a-second ticker that refreshes the watched view and sends it only when
//! it changed, and the [`LiveSnapshot`] of the Overview's live strip.

use crate::console::service::{Outbox, Res, Service, lock, msg};
use crate::console::*;
use crate::domain::UsageTotals;
use crate::domain::breaker::BreakerState;
use crate::domain::{AccountId, RequestType, Route, UsageStatus};
use crate::domain::{AccountOwner, ProviderKind, SupplierId};
use crate::engine::router::RouterEvent;
use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A breaker as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerView {
    Closed,
    /// Refusing traffic for this many more seconds.
    Open {
        secs_left: i64,
        /// Held open by the health monitor until the account answers again.
        held: bool,
    },
    HalfOpen,
}

impl BreakerView {
    pub(in crate::console) fn of(state: BreakerState, now: DateTime<Utc>) -> Self {
        match state {
            BreakerState::Closed => BreakerView::Closed,
            BreakerState::Open { until, held } => BreakerView::Open { secs_left: (until - now).num_seconds().max(0), held },
            BreakerState::HalfOpen { .. } => BreakerView::HalfOpen,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            BreakerView::Closed => "closed",
            BreakerView::Open { .. } => "open",
            BreakerView::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveAccount {
    pub id: AccountId,
    pub label: String,
    pub provider: ProviderKind,
    pub owner: AccountOwner,
    pub breaker: BreakerView,
}

/// One of the last requests the router committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRequest {
    pub at: DateTime<Utc>,
    pub supplier: String,
    pub model: String,
    pub request_type: RequestType,
    pub route: Route,
    pub ok: bool,
    /// `ok`, `error`, `cancelled` (a stream whose client hung up) or
    /// `client_gone` (answered after the client had gone).
    pub status: UsageStatus,
    /// Token counts estimated by the tokenizer (the provider never sent them).
    pub estimated: bool,
    pub latency_ms: u32,
    pub cost_micros: i64,
}

/// A breaker, failover or quota event, as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    pub at: DateTime<Utc>,
    pub text: String,
    /// Something went wrong (breaker opened, failover started, quota).
    pub bad: bool,
}

/// What the live parts of the Overview show; pushed about once a second while watched.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSnapshot {
    pub gateway_url: Option<String>,
    /// Demo mode: simulator keys in memory, synthetic traffic.
    pub demo: bool,
    pub today: UsageTotals,
    /// Every provider account's breaker: open ones first, then platform accounts.
    pub accounts: Vec<LiveAccount>,
    /// The newest requests first.
    pub recent: Vec<RecentRequest>,
    /// The newest events first.
    pub events: Vec<LiveEvent>,
}

/// How often live snapshots are taken while watched.
pub(in crate::console) const LIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The installed live services and the router events collected so far.
pub(in crate::console) struct Live {
    pub(in crate::console) services: LiveServices,
    pub(in crate::console) events: Mutex<VecDeque<(DateTime<Utc>, RouterEvent)>>,
}

pub(in crate::console) const LIVE_EVENTS: usize = 40;
pub(in crate::console) const LIVE_RECENT: usize = 14;

impl Service {
    pub(in crate::console) fn install_live(self: &Arc<Self>, services: LiveServices, rt: &tokio::runtime::Handle) {
        let router = services.router.clone();
        let live = Arc::new(Live { services, events: Mutex::new(VecDeque::new()) });
        *self.live.write() = Some(live.clone());
        if let Some(router) = router {
            let mut rx = router.subscribe_events();
            let clock = self.clock.clone();
            let weak = Arc::downgrade(&live);
            rt.spawn(async move {
                loop {
                    let ev = match rx.recv().await {
                        Ok(ev) => ev,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    };
                    let Some(live) = weak.upgrade() else { return };
                    let mut q = live.events.lock();
                    q.push_front((clock.now(), ev));
                    q.truncate(LIVE_EVENTS);
                }
            });
        }
    }

    pub(in crate::console) fn live(&self) -> Option<Arc<Live>> {
        self.live.read().clone()
    }

    /// Refreshes the watched view every second; sends it only when it changed.
    pub(in crate::console) async fn live_ticker(self: Arc<Self>, out: Outbox) {
        let mut tick = tokio::time::interval(LIVE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last: Option<Arc<LiveSnapshot>> = None;
        let mut last_health: Option<Arc<HealthView>> = None;
        let mut last_migrations: Option<Arc<MigrationsView>> = None;
        let mut last_instances: Option<Arc<crate::console::InstancesView>> = None;
        loop {
            tick.tick().await;
            let watch = *lock(&self.watch);
            match watch {
                Watch::Nothing => {}
                Watch::Overview => {
                    let Some(live) = self.live() else { continue };
                    if live.services.router.is_none() {
                        continue;
                    }
                    let svc = self.clone();
                    let snap = match tokio::task::spawn_blocking(move || svc.live_snapshot(&live)).await {
                        Ok(Ok(s)) => Arc::new(s),
                        Ok(Err(message)) => {
                            out.send(out.live_ticket(), ConsoleEvent::Failed { channel: Channel::Live, message });
                            continue;
                        }
                        Err(_) => continue,
                    };
                    let fresh = self.fresh.swap(false, Ordering::SeqCst);
                    if fresh || last.as_deref() != Some(&*snap) {
                        last = Some(snap.clone());
                        out.send(out.live_ticket(), ConsoleEvent::Live(snap));
                    }
                }
                Watch::Health => {
                    let Some((generation, q)) = *lock(&self.health_query) else { continue };
                    let svc = self.clone();
                    // Failures are shown by the view's own load; a refresh just waits for the next second.
                    let Ok(Ok(v)) = tokio::task::spawn_blocking(move || svc.health_view(&q)).await else { continue };
                    let fresh = self.fresh.swap(false, Ordering::SeqCst);
                    if fresh || last_health.as_deref() != Some(&v) {
                        let v = Arc::new(v);
                        last_health = Some(v.clone());
                        out.send(Ticket { channel: Channel::Health, generation }, ConsoleEvent::Health(v));
                    }
                }
                Watch::Migrations => {
                    let Some((generation, q)) = *lock(&self.migrations_query) else { continue };
                    let svc = self.clone();
                    let Ok(Ok(v)) = tokio::task::spawn_blocking(move || svc.migrations_view(&q)).await else { continue };
                    let fresh = self.fresh.swap(false, Ordering::SeqCst);
                    if fresh || last_migrations.as_deref() != Some(&v) {
                        let v = Arc::new(v);
                        last_migrations = Some(v.clone());
                        out.send(Ticket { channel: Channel::Migrations, generation }, ConsoleEvent::Migrations(v));
                    }
                }
                Watch::Instances => {
                    let Some((generation, all)) = *lock(&self.instances_query) else { continue };
                    let svc = self.clone();
                    let Ok(Ok(v)) = tokio::task::spawn_blocking(move || svc.instances_view(all)).await else { continue };
                    let fresh = self.fresh.swap(false, Ordering::SeqCst);
                    // Sent when something but the time of reading changed.
                    let same = last_instances.as_deref().is_some_and(|p| crate::console::InstancesView { at: p.at, ..v.clone() } == *p);
                    if !fresh && same {
                        continue;
                    }
                    let v = Arc::new(v);
                    last_instances = Some(v.clone());
                    out.send(Ticket { channel: Channel::Instances, generation }, ConsoleEvent::Instances(v));
                }
            }
        }
    }

    pub(in crate::console) fn live_snapshot(&self, live: &Live) -> Res<LiveSnapshot> {
        let Some(router) = &live.services.router else { return Err("no routing runtime in this console".into()) };
        let now = self.clock.now();
        let today = now.date_naive();
        let cat = self.supplier_cache()?;
        let name_of =
            |id: SupplierId| cat.suppliers.iter().find(|s| s.id == id).map(|s| s.name.clone()).unwrap_or_else(|| format!("supplier {id}"));
        let mut accounts: Vec<LiveAccount> = router
            .breaker_states()
            .into_iter()
            .map(|(a, st)| LiveAccount {
                id: a.id,
                label: a.label,
                provider: a.provider,
                owner: a.owner,
                breaker: BreakerView::of(st, now),
            })
            .collect();
        accounts.sort_by_key(|a| (a.breaker == BreakerView::Closed, a.owner != AccountOwner::Platform, a.id));
        let label_of =
            |id: AccountId| accounts.iter().find(|a| a.id == id).map(|a| a.label.clone()).unwrap_or_else(|| format!("account {id}"));
        let mut recent = router.ledger().recent(LIVE_RECENT);
        recent.sort_by_key(|e| std::cmp::Reverse(e.ts));
        let recent = recent
            .into_iter()
            .map(|e| RecentRequest {
                at: e.ts,
                supplier: name_of(e.supplier_id),
                model: e.model,
                request_type: e.request_type,
                route: e.route,
                ok: e.status.answered(),
                status: e.status,
                estimated: e.usage.estimated,
                latency_ms: e.latency_ms,
                cost_micros: e.cost.0,
            })
            .collect();
        let events = live
            .events
            .lock()
            .iter()
            .map(|(at, ev)| {
                let (text, bad) = match ev {
                    RouterEvent::BreakerOpened { account } => (format!("Breaker opened on {}", label_of(*account)), true),
                    RouterEvent::BreakerClosed { account } => (format!("Breaker closed on {}", label_of(*account)), false),
                    RouterEvent::FailoverStarted { supplier, account } => (
                        format!(
                            "Failover: {}'s own provider is failing; {} (platform AI) serves it",
                            name_of(*supplier),
                            label_of(*account)
                        ),
                        true,
                    ),
                    RouterEvent::FailoverEnded { supplier } => {
                        (format!("Failover over: {} is back on its own provider", name_of(*supplier)), false)
                    }
                    RouterEvent::QuotaWarning { supplier, used, quota } => {
                        (format!("{} used {} % of its platform quota", name_of(*supplier), used * 100 / (*quota).max(1)), true)
                    }
                    RouterEvent::QuotaExceeded { supplier, .. } => (format!("{} is over its platform quota", name_of(*supplier)), true),
                };
                LiveEvent { at: *at, text, bad }
            })
            .collect();
        Ok(LiveSnapshot {
            gateway_url: live.services.gateway_url.clone(),
            demo: live.services.demo,
            today: self.store.usage_totals(today, today + Duration::days(1)).map_err(msg)?,
            accounts,
            recent,
            events,
        })
    }
}
