//! The Alerts view's data: alerts grouped by incident (one account's trouble
//! from its first failure to its recovery, with every alert it caused; an
//! alert outside any incident — quota, migration — is a group of its own),
//! filtered by open, severity and supplier; bulk acknowledge (audited per
//! alert); and the CSV export of the alerts and of the audit log into the
//! user's documents folder.

use crate::console::service::{Res, Service, msg};
use crate::console::{AlertRow, ConsoleEvent};
use crate::domain::health::{AlertKind, Severity};
use crate::domain::{AccountId, AccountOwner, AuditQuery, SupplierId};
use crate::engine::export::{csv_timestamp, write_csv};
use crate::store::{Alert, Incident, audit_actor};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// What the Alerts view asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertsQuery {
    /// Only groups with an alert that is not resolved.
    pub open_only: bool,
    /// Only groups at least this severe.
    pub min_severity: Option<Severity>,
    /// Only groups about this supplier (its alerts, or its own account's incident).
    pub supplier: Option<SupplierId>,
}

impl Default for AlertsQuery {
    fn default() -> Self {
        AlertsQuery { open_only: true, min_severity: None, supplier: None }
    }
}

/// One incident with its alerts, or one alert outside any incident.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertGroup {
    pub incident: Option<Incident>,
    /// "Willow OpenAI (Willow Promise Catering) — down, 2 suppliers failing over" or the lone alert's message.
    pub title: String,
    /// The highest severity of its alerts.
    pub severity: Severity,
    pub started_at: DateTime<Utc>,
    /// Resolved: the incident is over (or the lone alert resolved).
    pub resolved_at: Option<DateTime<Utc>>,
    /// Every open alert in it is acknowledged.
    pub acknowledged: bool,
    /// Oldest first.
    pub alerts: Vec<AlertRow>,
    /// The suppliers it is about, by name.
    pub suppliers: Vec<String>,
}

impl AlertGroup {
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }

    /// The open, unacknowledged alerts (what "Acknowledge" acts on).
    pub fn to_acknowledge(&self) -> Vec<i64> {
        self.alerts.iter().filter(|a| a.alert.is_open() && a.alert.acknowledged_at.is_none()).map(|a| a.alert.id).collect()
    }
}

/// Everything the Alerts view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsView {
    pub query: AlertsQuery,
    /// Newest activity first.
    pub groups: Vec<AlertGroup>,
    pub open_alerts: usize,
    pub open_incidents: usize,
    /// The suppliers that appear in the alerts in scope (for the supplier filter), by name.
    pub suppliers: Vec<(SupplierId, String)>,
}

/// Alerts read for the view when resolved ones are shown too.
const ALERTS_READ: u32 = 2_000;

fn kind_word(k: AlertKind) -> &'static str {
    match k {
        AlertKind::ProviderDown => "down",
        AlertKind::ProviderDegraded => "degraded",
        AlertKind::KeyInvalid => "key refused",
        AlertKind::QuotaWarning => "quota 90 %",
        AlertKind::QuotaExceeded => "quota used up",
        AlertKind::FailoverStarted => "failover",
        AlertKind::FailoverEnded => "failover ended",
        AlertKind::MigrationRolledBack => "migration rolled back",
        AlertKind::PoolLowHeadroom => "key pool low",
        AlertKind::KeyBudgetReached => "key budget reached",
    }
}

impl Service {
    pub(in crate::console) fn alerts_view(&self, q: &AlertsQuery) -> Res<AlertsView> {
        let open = self.store.list_alerts(true, 10_000).map_err(msg)?;
        let open_alerts = open.len();
        let alerts = if q.open_only { open } else { self.store.list_alerts(false, ALERTS_READ).map_err(msg)? };
        let cat = self.supplier_cache()?;
        let names: HashMap<SupplierId, &str> = cat.suppliers.iter().map(|s| (s.id, s.name.as_str())).collect();
        let supplier_name = |s: SupplierId| names.get(&s).map(|n| n.to_string()).unwrap_or_else(|| format!("supplier {s}"));
        let accounts: HashMap<AccountId, (String, AccountOwner)> =
            self.store.list_accounts(None).map_err(msg)?.into_iter().map(|a| (a.id, (a.label, a.owner))).collect();
        let account_name = |a: AccountId| match accounts.get(&a) {
            Some((label, AccountOwner::Platform)) => format!("{label} (platform)"),
            Some((label, AccountOwner::Supplier(s))) => format!("{label} ({})", supplier_name(*s)),
            None => format!("account {}", a.0),
        };

        // Group: by incident, else each alert alone; keyed so that newest activity sorts first.
        let mut by_incident: BTreeMap<i64, Vec<Alert>> = BTreeMap::new();
        let mut alone = Vec::new();
        for a in alerts {
            match a.incident_id {
                Some(i) => by_incident.entry(i).or_default().push(a),
                None => alone.push(a),
            }
        }
        let ids: Vec<i64> = by_incident.keys().copied().collect();
        let incidents: HashMap<i64, Incident> = self.store.incidents_by_id(&ids).map_err(msg)?.into_iter().map(|i| (i.id, i)).collect();
        let open_incidents = self.store.open_incidents().map_err(msg)?.len();

        let row = |alert: Alert| {
            let subject = match (alert.account_id, alert.supplier_id) {
                (Some(a), _) => account_name(a),
                (None, Some(s)) => supplier_name(s),
                (None, None) => String::new(),
            };
            AlertRow { alert, subject }
        };
        let mut groups: Vec<(i64, AlertGroup)> = Vec::new();
        for (id, mut list) in by_incident {
            list.sort_by_key(|a| a.id);
            let newest = list.iter().map(|a| a.id).max().unwrap_or(0);
            let incident = incidents.get(&id).cloned();
            let account = incident.as_ref().map(|i| i.account_id).or_else(|| list.first().and_then(|a| a.account_id));
            let mut kinds: Vec<&str> = Vec::new();
            for a in &list {
                let w = kind_word(a.kind);
                if a.kind != AlertKind::FailoverStarted && !kinds.contains(&w) {
                    kinds.push(w);
                }
            }
            let mut suppliers: Vec<String> = Vec::new();
            if let Some(AccountOwner::Supplier(s)) = account.and_then(|a| accounts.get(&a)).map(|x| x.1) {
                suppliers.push(supplier_name(s));
            }
            let failing_over: Vec<SupplierId> = {
                let mut v: Vec<SupplierId> =
                    list.iter().filter(|a| a.kind == AlertKind::FailoverStarted).filter_map(|a| a.supplier_id).collect();
                v.dedup();
                v
            };
            for s in list.iter().filter_map(|a| a.supplier_id) {
                let n = supplier_name(s);
                if !suppliers.contains(&n) {
                    suppliers.push(n);
                }
            }
            if !failing_over.is_empty() {
                kinds.push(if failing_over.len() == 1 { "1 supplier failing over" } else { "suppliers failing over" });
            }
            let title = format!(
                "{} — {}",
                account.map(account_name).unwrap_or_else(|| format!("incident {id}")),
                if kinds.is_empty() { "trouble".to_string() } else { kinds.join(", ") }
            );
            let started_at = incident.as_ref().map(|i| i.started_at).or_else(|| list.first().map(|a| a.raised_at)).unwrap_or_default();
            let resolved_at = match &incident {
                Some(i) => i.resolved_at,
                None => list.iter().all(|a| !a.is_open()).then(|| list.iter().filter_map(|a| a.resolved_at).max()).flatten(),
            };
            let open: Vec<&Alert> = list.iter().filter(|a| a.is_open()).collect();
            groups.push((
                newest,
                AlertGroup {
                    incident,
                    title,
                    severity: list.iter().map(|a| a.severity).max().unwrap_or(Severity::Info),
                    started_at,
                    resolved_at,
                    acknowledged: !open.is_empty() && open.iter().all(|a| a.acknowledged_at.is_some()),
                    suppliers,
                    alerts: list.into_iter().map(row).collect(),
                },
            ));
        }
        for a in alone {
            let suppliers = a.supplier_id.map(|s| vec![supplier_name(s)]).unwrap_or_default();
            groups.push((
                a.id,
                AlertGroup {
                    incident: None,
                    title: a.message.clone(),
                    severity: a.severity,
                    started_at: a.raised_at,
                    resolved_at: a.resolved_at,
                    acknowledged: a.is_open() && a.acknowledged_at.is_some(),
                    suppliers,
                    alerts: vec![row(a)],
                },
            ));
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.0));

        // The supplier filter offers the suppliers in scope before it is applied.
        let mut in_scope: Vec<(SupplierId, String)> = Vec::new();
        let about = |g: &AlertGroup| -> Vec<SupplierId> {
            let mut v: Vec<SupplierId> = g.alerts.iter().filter_map(|a| a.alert.supplier_id).collect();
            if let Some(AccountOwner::Supplier(s)) = g.incident.as_ref().and_then(|i| accounts.get(&i.account_id)).map(|x| x.1) {
                v.push(s);
            }
            v
        };
        for (_, g) in &groups {
            for s in about(g) {
                if !in_scope.iter().any(|(id, _)| *id == s) {
                    in_scope.push((s, supplier_name(s)));
                }
            }
        }
        in_scope.sort_by_key(|a| a.1.to_lowercase());
        let groups = groups
            .into_iter()
            .map(|(_, g)| g)
            .filter(|g| q.min_severity.is_none_or(|m| g.severity >= m))
            .filter(|g| q.supplier.is_none_or(|s| about(g).contains(&s)))
            .collect();
        Ok(AlertsView { query: *q, groups, open_alerts, open_incidents, suppliers: in_scope })
    }

    /// Acknowledges several alerts at once (each audited).
    pub(in crate::console) fn acknowledge_alerts(&self, ids: &[i64]) -> Res<ConsoleEvent> {
        if ids.is_empty() {
            return Err("select the alerts to acknowledge first".into());
        }
        let done = self.alert_service().acknowledge_many_by(ids, &audit_actor()).map_err(msg)?;
        Ok(ConsoleEvent::AlertsAcknowledged { count: done.len() })
    }

    /// Writes every alert (newest first, up to 100,000) as CSV into `dir`
    /// (the user's documents folder by default) under a new name.
    pub(in crate::console) fn export_alerts(&self, dir: PathBuf) -> Res<ConsoleEvent> {
        let alerts = self.store.list_alerts(false, 100_000).map_err(msg)?;
        let cat = self.supplier_cache()?;
        let names: HashMap<SupplierId, &str> = cat.suppliers.iter().map(|s| (s.id, s.name.as_str())).collect();
        let ts = |t: Option<DateTime<Utc>>| t.map(|t| csv_timestamp(t.timestamp_millis())).unwrap_or_default();
        let header = [
            "id",
            "incident_id",
            "raised_utc",
            "kind",
            "severity",
            "supplier_id",
            "supplier_name",
            "account_id",
            "message",
            "escalated_utc",
            "acknowledged_utc",
            "resolved_utc",
        ];
        let rows = alerts.iter().map(|a| {
            vec![
                a.id.to_string(),
                a.incident_id.map(|i| i.to_string()).unwrap_or_default(),
                ts(Some(a.raised_at)),
                a.kind.as_str().to_string(),
                a.severity.as_str().to_string(),
                a.supplier_id.map(|s| s.0.to_string()).unwrap_or_default(),
                a.supplier_id.and_then(|s| names.get(&s)).map(|n| n.to_string()).unwrap_or_default(),
                a.account_id.map(|x| x.0.to_string()).unwrap_or_default(),
                a.message.clone(),
                ts(a.escalated_at),
                ts(a.acknowledged_at),
                ts(a.resolved_at),
            ]
        });
        let out = self.export_name(&dir, "alerts");
        let summary = write_csv(&out, &header, rows, &[0, 1, 5, 7]).map_err(msg)?;
        Ok(ConsoleEvent::ListExported { what: "alerts", summary })
    }

    /// Writes the audit log matching `q` (newest first, up to 100,000 entries) as CSV into `dir`.
    pub(in crate::console) fn export_audit(&self, q: &AuditQuery, dir: PathBuf) -> Res<ConsoleEvent> {
        let mut q = q.clone();
        q.limit = 100_000;
        let rows = self.store.audit_search(&q).map_err(msg)?;
        let header = ["id", "time_utc", "actor", "action", "supplier_id", "supplier_name", "account_id", "result", "detail"];
        let cells = rows.iter().map(|r| {
            vec![
                r.id.to_string(),
                csv_timestamp(r.ts.timestamp_millis()),
                r.actor.clone(),
                r.action.clone(),
                r.supplier_id.map(|s| s.0.to_string()).unwrap_or_default(),
                r.supplier_name.clone().unwrap_or_default(),
                r.account_id.map(|a| a.0.to_string()).unwrap_or_default(),
                r.result.clone(),
                r.detail.clone(),
            ]
        });
        let out = self.export_name(&dir, "audit-log");
        let summary = write_csv(&out, &header, cells, &[0, 4, 6]).map_err(msg)?;
        Ok(ConsoleEvent::ListExported { what: "audit log", summary })
    }

    /// `dir/<what>-YYYY-MM-DD-HHMMSS.csv`, with `-2`, `-3`… when taken.
    fn export_name(&self, dir: &std::path::Path, what: &str) -> PathBuf {
        let stamp = self.clock.now().format("%Y-%m-%d-%H%M%S");
        let mut p = dir.join(format!("{what}-{stamp}.csv"));
        let mut n = 2;
        while p.exists() {
            p = dir.join(format!("{what}-{stamp}-{n}.csv"));
            n += 1;
        }
        p
    }
}
