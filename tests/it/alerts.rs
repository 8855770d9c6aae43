//! Alerts a person can live with during an incident, on a real SQLite file
//! and the injected clock: the demo's incident (a supplier's own account
//! flapping for ten minutes, its requests failing over to platform AI for
//! 4–15 s at a time, about 28 times) becomes one incident with few alerts;
//! a lasting failover is alerted after 60 s, naming the supplier first and
//! then the fallback; on a wedding day every failover is alerted at once, one
//! level higher; bulk acknowledge of an incident is audited per alert.

use chrono::Duration;
use std::sync::Arc;
use switchboard::domain::health::{AlertKind, AlertRules, Severity, Thresholds, Verdict};
use switchboard::domain::{AccountId, AccountOwner, AiMode, Clock, ManualClock, NewSupplier, ProviderKind, SupplierId, Tier, VendorType};
use switchboard::engine::alerts::AlertService;
use switchboard::engine::router::RouterEvent;
use switchboard::store::{AuditFilter, Store};

use crate::support::{june, sim_account};

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    clock: ManualClock,
    alerts: AlertService,
    platform: AccountId,
    supplier: SupplierId,
    own: AccountId,
}

fn env(wedding_today: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("alerts.db")).unwrap());
    let clock = ManualClock::new(june());
    let url = "http://127.0.0.1:9";
    let platform = sim_account(&store, AccountOwner::Platform, ProviderKind::OpenAi, "WedSync OpenAI", "gpt-4o-mini", url);
    let mut n = NewSupplier::new("Willow Promise Catering", VendorType::Caterer, Tier::Professional, AiMode::Client);
    if wedding_today {
        n.weddings = vec![june().date_naive()];
    }
    let supplier = store.insert_supplier(&n, june()).unwrap().id;
    let own = sim_account(&store, AccountOwner::Supplier(supplier), ProviderKind::OpenAi, "Willow OpenAI", "gpt-4o-mini", url);
    let alerts = AlertService::new(store.clone(), Arc::new(clock.clone()), AlertRules::default(), None);
    Env { _dir: dir, store, clock, alerts, platform, supplier, own }
}

impl Env {
    /// What the health monitor does each second: verdict changes, router events, tick.
    fn second(&self, verdict: Option<Verdict>, events: &[RouterEvent], wedding: bool) {
        if let Some(v) = verdict {
            let a = self.store.account(self.own).unwrap();
            self.alerts.on_verdict(self.own, Some(&a), v, None, wedding, Thresholds::NORMAL).unwrap();
        }
        for ev in events {
            self.alerts.on_router_event(ev, wedding).unwrap();
        }
        self.alerts.tick(|_| wedding).unwrap();
        self.clock.advance(Duration::seconds(1));
    }

    fn all_alerts(&self) -> Vec<switchboard::store::Alert> {
        self.store.list_alerts(false, 10_000).unwrap()
    }
}

/// The demo's incident, second by second: the breaker opens every 30 s, the
/// supplier fails over for 4–15 s about every 21 s, the monitor says degraded
/// then down, and the account recovers after ten minutes.
fn demo_incident(e: &Env, wedding: bool) -> (usize, chrono::DateTime<chrono::Utc>) {
    let start = e.clock.now();
    let lengths = [4, 9, 15, 6, 12, 7, 11, 5, 14, 8, 10, 13, 4, 9];
    let mut failovers = 0;
    let mut next_start = 0i64;
    let mut end_at: Option<i64> = None;
    for t in 0..600i64 {
        let mut events = Vec::new();
        if t % 30 == 0 {
            events.push(RouterEvent::BreakerOpened { account: e.own });
        }
        if t % 30 == 25 {
            events.push(RouterEvent::BreakerClosed { account: e.own });
        }
        if end_at == Some(t) {
            events.push(RouterEvent::FailoverEnded { supplier: e.supplier });
            end_at = None;
        }
        if end_at.is_none() && t >= next_start && t < 570 {
            events.push(RouterEvent::FailoverStarted { supplier: e.supplier, account: e.platform });
            end_at = Some(t + lengths[failovers % lengths.len()]);
            next_start = t + 21;
            failovers += 1;
        }
        let verdict = match t {
            40 => Some(Verdict::Degraded),
            95 => Some(Verdict::Down),
            580 => Some(Verdict::Healthy),
            _ => None,
        };
        e.second(verdict, &events, wedding);
    }
    (failovers, start)
}

#[test]
fn the_demo_incident_becomes_one_incident_with_few_alerts() {
    let e = env(false);
    let (failovers, start) = demo_incident(&e, false);
    assert!((25..=30).contains(&failovers), "the demo's ~28 failovers: {failovers}");

    let alerts = e.all_alerts();
    assert!(alerts.len() <= 2, "few alerts, not one per failover: {alerts:#?}");
    assert!(alerts.iter().all(|a| a.kind != AlertKind::FailoverStarted && a.kind != AlertKind::FailoverEnded), "{alerts:#?}");
    let incidents: std::collections::BTreeSet<i64> = alerts.iter().map(|a| a.incident_id.expect("every alert in the incident")).collect();
    assert_eq!(incidents.len(), 1, "one incident: {alerts:#?}");
    let incident = e.store.find_incident(*incidents.iter().next().unwrap()).unwrap().unwrap();
    assert_eq!(incident.account_id, e.own);
    assert_eq!(incident.started_at, start, "from the account's first failure (the breaker's opening)");
    // Down on one supplier's own account is a warning, and so is degraded.
    assert!(alerts.iter().all(|a| a.severity == Severity::Warning), "{alerts:#?}");
    let down = alerts.iter().find(|a| a.kind == AlertKind::ProviderDown).unwrap();
    assert!(down.message.starts_with("Willow Promise Catering (supplier"), "{}", down.message);

    // Still open until the account has stayed healthy for the grace time; then
    // it closes with its last alert.
    assert!(incident.resolved_at.is_none());
    for _ in 0..130 {
        e.second(None, &[], false);
    }
    let incident = e.store.find_incident(incident.id).unwrap().unwrap();
    assert!(incident.resolved_at.is_some(), "recovered: {incident:?}");
    assert!(e.all_alerts().iter().all(|a| !a.is_open()));

    // The next trouble of the same account is a new incident.
    e.second(Some(Verdict::Down), &[], false);
    let newest = e.all_alerts().into_iter().next().unwrap();
    assert_ne!(newest.incident_id, Some(incident.id));
}

#[test]
fn a_lasting_failover_is_alerted_after_a_minute_naming_the_supplier_then_the_fallback() {
    let e = env(false);
    e.second(None, &[RouterEvent::FailoverStarted { supplier: e.supplier, account: e.platform }], false);
    for _ in 0..59 {
        e.second(None, &[], false);
    }
    assert!(e.all_alerts().is_empty(), "59 s: not yet");
    e.second(None, &[], false);
    let a = e.all_alerts();
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].kind, AlertKind::FailoverStarted);
    assert_eq!(a[0].severity, Severity::Warning);
    let m = &a[0].message;
    let supplier_at = m.find("Willow Promise Catering").unwrap();
    let failed_at = m.find("Willow OpenAI").unwrap();
    let fallback_at = m.find("WedSync OpenAI").unwrap();
    assert!(supplier_at < failed_at && failed_at < fallback_at, "supplier, its failed provider, then the fallback: {m}");
    assert_eq!(a[0].account_id, Some(e.own), "about the supplier's failed account");
    let incident = e.store.find_incident(a[0].incident_id.unwrap()).unwrap().unwrap();
    assert_eq!(incident.account_id, e.own);
    assert_eq!(incident.started_at, june(), "since the failover started");
    // It ends: the alert resolves after the grace time, and the incident with it.
    e.second(None, &[RouterEvent::FailoverEnded { supplier: e.supplier }], false);
    for _ in 0..121 {
        e.second(None, &[], false);
    }
    assert!(!e.all_alerts()[0].is_open());
    assert!(e.store.find_incident(incident.id).unwrap().unwrap().resolved_at.is_some());
    assert!(e.store.open_incidents().unwrap().is_empty());
}

#[test]
fn on_a_wedding_day_every_failover_is_alerted_at_once_one_level_higher_in_one_incident() {
    let e = env(true);
    let (failovers, _) = demo_incident(&e, true);
    assert!(failovers > 20);
    let alerts = e.all_alerts();
    let fo: Vec<_> = alerts.iter().filter(|a| a.kind == AlertKind::FailoverStarted).collect();
    assert!(!fo.is_empty(), "a wedding-day failover is alerted at once");
    assert!(fo.iter().all(|a| a.severity == Severity::Critical), "warning + wedding day = critical: {fo:#?}");
    // One open alert per condition: a flapping failover stays one alert while it keeps coming back.
    assert!(fo.len() <= 3, "{fo:#?}");
    let down = alerts.iter().find(|a| a.kind == AlertKind::ProviderDown).unwrap();
    assert_eq!(down.severity, Severity::Critical, "a supplier's own account down on its wedding day");
    let incidents: std::collections::BTreeSet<_> = alerts.iter().map(|a| a.incident_id).collect();
    assert_eq!(incidents.len(), 1, "{alerts:#?}");
}

#[test]
fn platform_account_down_is_critical_and_bulk_acknowledge_is_audited_per_alert() {
    let e = env(false);
    let p = e.store.account(e.platform).unwrap();
    e.alerts.on_verdict(e.platform, Some(&p), Verdict::Degraded, None, false, Thresholds::NORMAL).unwrap();
    e.clock.advance(Duration::seconds(30));
    e.alerts.on_verdict(e.platform, Some(&p), Verdict::Down, None, false, Thresholds::NORMAL).unwrap();
    let a = e.all_alerts();
    assert_eq!(a.len(), 2);
    let down = a.iter().find(|a| a.kind == AlertKind::ProviderDown).unwrap();
    assert_eq!(down.severity, Severity::Critical);
    assert!(down.message.starts_with("platform account WedSync OpenAI"), "{}", down.message);
    assert_eq!(a[0].incident_id, a[1].incident_id);

    let ids: Vec<i64> = a.iter().map(|a| a.id).collect();
    let done = e.alerts.acknowledge_many_by(&ids, "alice").unwrap();
    assert!(done.iter().all(|a| a.acknowledged_at.is_some()));
    let audit = e.store.audit_entries(&AuditFilter { action_prefix: Some("alert.acknowledge".into()), ..Default::default() }).unwrap();
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|x| x.actor == "alice"));
    // An unknown id refuses the whole batch.
    assert!(e.alerts.acknowledge_many_by(&[ids[0], 999_999], "alice").is_err());
}
