//! Health history and alerts on both backends (same transcript on SQLite and
//! PostgreSQL): samples and aggregates, counts and series, compaction that
//! rolls levels without changing any figure; alerts raised, escalated,
//! acknowledged and resolved, and the incidents they belong to.

use super::{now, on_both};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::fmt::Write as _;
use switchboard::domain::health::{AlertKind, Retention, SampleSource, Severity};
use switchboard::domain::{AccountId, SupplierId};
use switchboard::store::{HealthAggregateRow, HealthSampleRow, NewAlert, Raised, Store};

fn sample(account: i64, at: DateTime<Utc>, ok: bool, latency_ms: u32, source: SampleSource) -> HealthSampleRow {
    HealthSampleRow { account: AccountId(account), at, ok, latency_ms, error_class: (!ok).then(|| "timeout".to_string()), source }
}

#[test]
fn health_history_and_compaction() {
    on_both("store_backends::health_and_alerts::health_history_and_compaction", |store, t| {
        let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let mut rows = Vec::new();
        // Three days of samples every 7 minutes for two accounts, some failing.
        for i in 0..(3 * 24 * 60 / 7) {
            let at = t0 + Duration::minutes(7 * i) + Duration::microseconds(1_500);
            rows.push(sample(1, at, i % 5 != 0, 100 + (i % 13) as u32, SampleSource::Probe));
            rows.push(sample(2, at + Duration::seconds(30), i % 17 != 0, 250, SampleSource::Traffic));
        }
        store.insert_health_samples(&rows).unwrap();
        store.insert_health_samples(&[]).unwrap();
        let generated = HealthAggregateRow {
            account: AccountId(1),
            bucket_secs: 3600,
            bucket_start: t0 - Duration::days(2),
            samples: 12,
            failures: 20, // more than samples: clamped
            latency_ms_sum: 1_200,
            latency_ms_max: 180,
        };
        store.insert_health_aggregates(&[generated, generated]).unwrap();
        let end = t0 + Duration::days(3);
        let report = |store: &Store, t: &mut String, label: &str| {
            writeln!(t, "{label} counts 1: {:?}", store.health_counts(AccountId(1), t0 - Duration::days(3), end).unwrap()).unwrap();
            writeln!(
                t,
                "{label} counts 1 day 2: {:?}",
                store.health_counts(AccountId(1), t0 + Duration::days(1), t0 + Duration::days(2)).unwrap()
            )
            .unwrap();
            let mut all: Vec<_> = store.health_counts_all(t0 - Duration::days(3), end).unwrap().into_iter().collect();
            all.sort_by_key(|(a, _)| a.0);
            writeln!(t, "{label} counts all: {all:?}").unwrap();
            let series = store.health_series(AccountId(1), t0 - Duration::days(3), end, 6 * 3600).unwrap();
            writeln!(t, "{label} series: {series:?}").unwrap();
            writeln!(t, "{label} sizes: {:?}", store.health_history_sizes(&Retention::default()).unwrap()).unwrap();
        };
        report(store, t, "before");
        writeln!(t, "last probes: {:?}", store.health_last_probes().unwrap()).unwrap();
        // Compaction rolls levels without changing any figure.
        let r = Retention {
            raw_secs: 24 * 3600,
            fine_bucket_secs: 300,
            fine_keep_secs: 36 * 3600,
            coarse_bucket_secs: 3600,
            coarse_keep_secs: 60 * 3600,
        };
        let c = store.compact_health(end, &r).unwrap();
        writeln!(t, "compaction: {c:?}").unwrap();
        assert!(c.raw_rolled > 0 && c.fine_rolled > 0 && c.coarse_deleted > 0, "{c:?}");
        report(store, t, "after");
        writeln!(t, "compaction again: {:?}", store.compact_health(end, &r).unwrap()).unwrap();
    });
}

#[test]
fn alerts_and_incidents() {
    on_both("store_backends::health_and_alerts::alerts_and_incidents", |store, t| {
        let incident = store.open_incident(AccountId(3), now()).unwrap();
        writeln!(t, "incident: {incident:?} again: {:?}", store.open_incident(AccountId(3), now() + Duration::minutes(1)).unwrap())
            .unwrap();
        let new = |key: &str, kind: AlertKind, escalated: bool, incident_id: Option<i64>| NewAlert {
            kind,
            condition_key: key.into(),
            severity: Severity::Warning,
            supplier_id: Some(SupplierId(1)),
            account_id: Some(AccountId(3)),
            message: format!("{key} happened"),
            escalated,
            incident_id,
        };
        let a = store.raise_alert(&new("down:account:3", AlertKind::ProviderDown, false, Some(incident.id)), now()).unwrap();
        writeln!(t, "raised: {a:?}").unwrap();
        let again = store.raise_alert(&new("down:account:3", AlertKind::ProviderDown, true, None), now()).unwrap();
        writeln!(t, "raised again: {again:?}").unwrap();
        let b = match store.raise_alert(&new("quota:1", AlertKind::QuotaWarning, true, None), now()).unwrap() {
            Raised::New(b) => b,
            other => panic!("{other:?}"),
        };
        let later = now() + Duration::minutes(10);
        writeln!(t, "escalated: {:?}", store.escalate_alert(b.id, Severity::Critical, later).unwrap()).unwrap();
        writeln!(t, "acknowledged: {:?}", store.acknowledge_alert(b.id, later).unwrap()).unwrap();
        writeln!(
            t,
            "acknowledged again keeps the time: {:?}",
            store.acknowledge_alert(b.id, later + Duration::hours(1)).unwrap().acknowledged_at
        )
        .unwrap();
        writeln!(t, "bulk with unknown: {}", store.acknowledge_alerts(&[1, 99], later).unwrap_err()).unwrap();
        writeln!(t, "first untouched: {:?}", store.find_alert(1).unwrap().unwrap().acknowledged_at).unwrap();
        writeln!(t, "bulk: {:?}", store.acknowledge_alerts(&[1, b.id], later).unwrap()).unwrap();
        writeln!(t, "open for: {:?}", store.open_alert_for("down:account:3").unwrap().map(|a| a.id)).unwrap();
        writeln!(t, "resolved: {:?}", store.resolve_alert(1, later).unwrap()).unwrap();
        writeln!(
            t,
            "escalating a resolved alert changes nothing: {:?}",
            store.escalate_alert(1, Severity::Critical, later).unwrap().severity
        )
        .unwrap();
        writeln!(t, "open for after: {:?}", store.open_alert_for("down:account:3").unwrap()).unwrap();
        let c = store.raise_alert(&new("down:account:3", AlertKind::ProviderDown, false, Some(incident.id)), later).unwrap();
        writeln!(t, "raised after resolve: {c:?}").unwrap();
        writeln!(t, "list all: {:?}", store.list_alerts(false, 10).unwrap().iter().map(|a| a.id).collect::<Vec<_>>()).unwrap();
        writeln!(t, "list open: {:?}", store.list_alerts(true, 1).unwrap().iter().map(|a| a.id).collect::<Vec<_>>()).unwrap();
        writeln!(t, "missing: {} / {:?}", store.resolve_alert(99, later).unwrap_err(), store.find_alert(99).unwrap()).unwrap();
        writeln!(t, "incident alerts: {:?}", store.incident_alerts(incident.id).unwrap().iter().map(|a| a.id).collect::<Vec<_>>()).unwrap();
        writeln!(t, "open incidents: {:?}", store.open_incidents().unwrap()).unwrap();
        store.resolve_incident(incident.id, later).unwrap();
        store.resolve_incident(incident.id, later + Duration::hours(1)).unwrap();
        writeln!(t, "resolved incident: {:?}", store.find_incident(incident.id).unwrap()).unwrap();
        let next = store.open_incident(AccountId(3), later).unwrap();
        writeln!(t, "next incident: {next:?} by id: {:?}", store.incidents_by_id(&[next.id, 99, incident.id]).unwrap()).unwrap();
        writeln!(t, "open incidents: {:?} missing: {:?}", store.open_incidents().unwrap(), store.find_incident(99).unwrap()).unwrap();
    });
}
