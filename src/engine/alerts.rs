//! The alert service: raises alerts for provider health (verdicts), invalid
//! keys, quota (90 % and 100 %), lasting failovers and migration rollbacks,
//! with the severity rules of `domain::health` (README, "Alerts"); keeps one
//! open alert per condition; groups the alerts one account's trouble causes
//! (down, degraded, key refused, the failovers of the suppliers it serves)
//! into one incident, from the account's first failure to its recovery;
//! raises a failover alert only once the failover has lasted
//! `failover_alert_after_secs` (at once on the supplier's wedding day);
//! resolves an alert once its condition has stayed clear for a while (so a
//! flapping provider does not flood) and closes an incident with its last
//! alert; escalates an unacknowledged alert one level after 15 minutes; and
//! posts every change as JSON to an optional webhook from a background task
//! with retries, so a slow or failing webhook never slows the caller.

use crate::domain::health::{AlertKind, AlertRules, AlertSubject, Thresholds, Verdict, escalation_due, failover_alert_due};
use crate::domain::{AccountId, AccountOwner, Clock, ProviderAccount, SupplierId};
use crate::engine::router::RouterEvent;
use crate::store::{Alert, NewAlert, Raised, Store, StoreResult};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Where alert changes are posted, and the runtime their sender task runs on.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub attempts: u32,
    pub timeout: Duration,
    pub backoff: Duration,
    /// The runtime that runs the sender task (passed in, never guessed from
    /// the calling thread).
    pub runtime: tokio::runtime::Handle,
}

impl WebhookConfig {
    pub fn new(url: impl Into<String>, runtime: tokio::runtime::Handle) -> Self {
        Self { url: url.into(), attempts: 4, timeout: Duration::from_secs(5), backoff: Duration::from_millis(500), runtime }
    }
}

/// What happened to an alert (the webhook's `event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    Raised,
    Escalated,
    Resolved,
}

/// The webhook's JSON body.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookPayload {
    pub event: AlertEvent,
    pub alert: Alert,
}

pub struct AlertService {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    rules: AlertRules,
    /// Condition key → since when its condition has been clear.
    clearing: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Condition keys with an open alert (loaded on first use), so clearing a
    /// condition that has no alert costs no query.
    open_keys: Mutex<Option<HashSet<String>>>,
    webhook: Option<tokio::sync::mpsc::Sender<WebhookPayload>>,
    /// Failovers under way, by supplier, until they end or are alerted.
    failovers: Mutex<HashMap<SupplierId, Failover>>,
    /// Accounts in trouble: their first and latest failure (breaker opened,
    /// a failover away from them, a bad verdict); the first is their
    /// incident's start. Forgotten once quiet for `resolve_after_secs`.
    trouble: Mutex<HashMap<AccountId, Trouble>>,
}

/// An account's first and latest failure.
type Trouble = (DateTime<Utc>, DateTime<Utc>);

/// A supplier's failover under way.
#[derive(Debug, Clone)]
struct Failover {
    /// The supplier's own account that failed (its incident's account).
    failed: Option<AccountId>,
    /// The platform account that serves it meanwhile.
    fallback: AccountId,
    since: DateTime<Utc>,
    wedding_day: bool,
    alerted: bool,
}

impl std::fmt::Debug for AlertService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertService").field("rules", &self.rules).field("webhook", &self.webhook.is_some()).finish()
    }
}

/// Condition keys (one open alert per key).
pub mod keys {
    use crate::domain::{AccountId, SupplierId};
    pub fn down(a: AccountId) -> String {
        format!("down:account:{}", a.0)
    }
    pub fn degraded(a: AccountId) -> String {
        format!("degraded:account:{}", a.0)
    }
    pub fn key_invalid(a: AccountId) -> String {
        format!("key_invalid:account:{}", a.0)
    }
    pub fn failover(s: SupplierId) -> String {
        format!("failover:supplier:{}", s.0)
    }
    pub fn failover_ended(s: SupplierId) -> String {
        format!("failover_ended:supplier:{}", s.0)
    }
    pub fn quota(s: SupplierId, percent: u32, month: &str) -> String {
        format!("quota{percent}:supplier:{}:{month}", s.0)
    }
    pub fn migration_rolled_back(migration_id: i64) -> String {
        format!("migration_rolled_back:{migration_id}")
    }
}

impl AlertService {
    /// Creates the service; with a webhook, starts its sender task on the
    /// webhook's runtime ([`WebhookConfig::runtime`]).
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock>, rules: AlertRules, webhook: Option<WebhookConfig>) -> Self {
        let webhook = webhook.map(|cfg| {
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            let runtime = cfg.runtime.clone();
            runtime.spawn(webhook_task(cfg, rx));
            tx
        });
        Self {
            store,
            clock,
            rules,
            clearing: Mutex::new(HashMap::new()),
            open_keys: Mutex::new(None),
            webhook,
            failovers: Mutex::new(HashMap::new()),
            trouble: Mutex::new(HashMap::new()),
        }
    }

    pub fn rules(&self) -> &AlertRules {
        &self.rules
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn notify(&self, event: AlertEvent, alert: &Alert) {
        if let Some(tx) = &self.webhook
            && tx.try_send(WebhookPayload { event, alert: alert.clone() }).is_err()
        {
            tracing::warn!(alert = alert.id, "alert webhook queue full or closed; notification dropped");
        }
    }

    /// Raises an alert for a condition (no-op when one is open: it stays, and
    /// stops clearing). `wedding_day`: a supplier on a wedding day is affected,
    /// so it is raised one level higher. An alert about an account's health
    /// (down, degraded, key refused) joins that account's incident; its
    /// severity follows the account's owner: `supplier` is the owner of
    /// `account` (`None` for a platform account).
    pub fn raise(
        &self,
        kind: AlertKind,
        condition_key: String,
        supplier: Option<SupplierId>,
        account: Option<AccountId>,
        message: String,
        wedding_day: bool,
    ) -> StoreResult<Raised> {
        let account_health = matches!(kind, AlertKind::ProviderDown | AlertKind::ProviderDegraded | AlertKind::KeyInvalid);
        let (subject, incident) = match account {
            Some(a) if account_health => {
                (if supplier.is_some() { AlertSubject::SupplierAccount } else { AlertSubject::PlatformAccount }, Some(a))
            }
            _ => (AlertSubject::Other, None),
        };
        self.raise_in(kind, condition_key, supplier, account, incident, subject, message, wedding_day)
    }

    /// Raises an alert, in the open incident of `incident_account` (opened if
    /// there is none, started at the account's first failure).
    #[allow(clippy::too_many_arguments)]
    fn raise_in(
        &self,
        kind: AlertKind,
        condition_key: String,
        supplier: Option<SupplierId>,
        account: Option<AccountId>,
        incident_account: Option<AccountId>,
        subject: AlertSubject,
        message: String,
        wedding_day: bool,
    ) -> StoreResult<Raised> {
        self.clearing.lock().remove(&condition_key);
        let now = self.clock.now();
        let incident_id = match incident_account {
            Some(a) => {
                let since = self.trouble.lock().entry(a).or_insert((now, now)).0.min(now);
                Some(self.store.open_incident(a, since)?.id)
            }
            None => None,
        };
        let new = NewAlert {
            kind,
            severity: kind.severity_for(subject, wedding_day),
            escalated: wedding_day,
            condition_key,
            supplier_id: supplier,
            account_id: account,
            message,
            incident_id,
        };
        let r = self.store.raise_alert(&new, now)?;
        self.note_open(&new.condition_key, true);
        if let Raised::New(a) = &r {
            tracing::warn!(alert = a.id, kind = %a.kind, severity = %a.severity, "{}", a.message);
            self.notify(AlertEvent::Raised, a);
        }
        Ok(r)
    }

    /// Notes that an account failed at `at` (its incident, if one opens, starts
    /// at its first failure).
    fn note_trouble(&self, account: AccountId, at: DateTime<Utc>) {
        let mut t = self.trouble.lock();
        let e = t.entry(account).or_insert((at, at));
        e.1 = e.1.max(at);
    }

    /// Forgets the trouble of accounts quiet for `resolve_after_secs`, with no
    /// failover away from them and no open incident.
    fn forget_quiet_trouble(&self, now: DateTime<Utc>, open_incident_accounts: &HashSet<AccountId>) {
        let failing: HashSet<AccountId> = self.failovers.lock().values().filter_map(|f| f.failed).collect();
        let grace = chrono::Duration::seconds(self.rules.resolve_after_secs);
        self.trouble.lock().retain(|a, (_, last)| now - *last < grace || failing.contains(a) || open_incident_accounts.contains(a));
    }

    /// Turns one account's new health verdict into alerts (the health
    /// monitor calls it on every verdict change): down (or its key refused),
    /// degraded, and clearing them when it is healthy again. `wedding_day`:
    /// the account serves a supplier with a wedding today, and was judged
    /// with `thresholds`.
    pub fn on_verdict(
        &self,
        id: AccountId,
        account: Option<&ProviderAccount>,
        verdict: Verdict,
        key_problem: Option<&str>,
        wedding_day: bool,
        thresholds: Thresholds,
    ) -> StoreResult<()> {
        let name =
            account.map(|a| format!("{} ({}, account {})", a.label, a.provider.display_name(), id.0)).unwrap_or_else(|| id.to_string());
        let supplier = account.and_then(|a| a.owner.supplier());
        let whose = match (account.map(|a| a.owner), supplier) {
            (Some(AccountOwner::Platform), _) => "platform account ".to_string(),
            (_, Some(s)) => format!("{}'s own account ", self.supplier_name(s)),
            _ => String::new(),
        };
        match verdict {
            Verdict::Down => {
                self.note_trouble(id, self.clock.now());
                self.clear(&keys::degraded(id));
                if let Some(msg) = key_problem {
                    self.raise(
                        AlertKind::KeyInvalid,
                        keys::key_invalid(id),
                        supplier,
                        Some(id),
                        format!("{whose}{name}: the provider refused the key ({msg}); rotate it with `switchboard key rotate`"),
                        wedding_day,
                    )?;
                } else {
                    self.clear(&keys::key_invalid(id));
                    self.raise(
                        AlertKind::ProviderDown,
                        keys::down(id),
                        supplier,
                        Some(id),
                        format!("{whose}{name} is down; it is out of routing until probes see it working"),
                        wedding_day,
                    )?;
                }
            }
            Verdict::Degraded => {
                self.note_trouble(id, self.clock.now());
                self.clear(&keys::down(id));
                self.clear(&keys::key_invalid(id));
                self.raise(
                    AlertKind::ProviderDegraded,
                    keys::degraded(id),
                    supplier,
                    Some(id),
                    format!(
                        "{whose}{name} is degraded: above {} ms p95 or {} % errors{}",
                        thresholds.max_latency_ms,
                        thresholds.max_error_percent,
                        if wedding_day { " (wedding-day thresholds)" } else { "" }
                    ),
                    wedding_day,
                )?;
            }
            Verdict::Healthy => {
                self.clear(&keys::down(id));
                self.clear(&keys::degraded(id));
                self.clear(&keys::key_invalid(id));
            }
            Verdict::Unknown => {}
        }
        Ok(())
    }

    fn note_open(&self, condition_key: &str, open: bool) {
        let mut k = self.open_keys.lock();
        if let Some(k) = k.as_mut() {
            if open {
                k.insert(condition_key.to_string());
            } else {
                k.remove(condition_key);
            }
        }
    }

    fn is_open(&self, condition_key: &str) -> bool {
        let mut k = self.open_keys.lock();
        if k.is_none() {
            match self.store.list_alerts(true, u32::MAX) {
                Ok(v) => *k = Some(v.into_iter().map(|a| a.condition_key).collect()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read open alerts");
                    return true;
                }
            }
        }
        k.as_ref().is_some_and(|k| k.contains(condition_key))
    }

    /// The condition behind `condition_key` is clear: its open alert resolves
    /// once it has stayed clear for `resolve_after_secs` (see [`AlertService::tick`]).
    pub fn clear(&self, condition_key: &str) {
        if !self.is_open(condition_key) {
            return;
        }
        let mut c = self.clearing.lock();
        if !c.contains_key(condition_key) {
            c.insert(condition_key.to_string(), self.clock.now());
        }
    }

    /// Resolves cleared conditions whose grace time is over and escalates
    /// alerts that are due. `wedding_day(alert)` says whether an open alert
    /// affects a supplier on a wedding day now (escalated at once if so).
    pub fn tick(&self, wedding_day: impl Fn(&Alert) -> bool) -> StoreResult<Vec<(AlertEvent, Alert)>> {
        let now = self.clock.now();
        let mut changed = Vec::new();
        let due: Vec<(SupplierId, Failover)> = self
            .failovers
            .lock()
            .iter()
            .filter(|(_, f)| !f.alerted && failover_alert_due(f.since, now, f.wedding_day, &self.rules))
            .map(|(s, f)| (*s, f.clone()))
            .collect();
        for (supplier, f) in due {
            if let Raised::New(a) = self.raise_failover(supplier, &f)? {
                changed.push((AlertEvent::Raised, a));
            }
        }
        let due: Vec<String> = {
            let mut c = self.clearing.lock();
            let due: Vec<String> = c
                .iter()
                .filter(|(_, since)| now - **since >= chrono::Duration::seconds(self.rules.resolve_after_secs))
                .map(|(k, _)| k.clone())
                .collect();
            for k in &due {
                c.remove(k);
            }
            due
        };
        for key in due {
            self.note_open(&key, false);
            if let Some(a) = self.store.open_alert_for(&key)? {
                let a = self.store.resolve_alert(a.id, now)?;
                self.notify(AlertEvent::Resolved, &a);
                changed.push((AlertEvent::Resolved, a));
            }
        }
        for a in self.store.list_alerts(true, 10_000)? {
            let by_time = escalation_due(a.raised_at, a.acknowledged_at.is_some(), a.escalated_at.is_some(), now, &self.rules);
            let by_wedding = a.acknowledged_at.is_none() && a.escalated_at.is_none() && wedding_day(&a);
            if by_time || by_wedding {
                let a = self.store.escalate_alert(a.id, a.severity.escalated(), now)?;
                tracing::warn!(alert = a.id, severity = %a.severity, "alert escalated: {}", a.message);
                self.notify(AlertEvent::Escalated, &a);
                changed.push((AlertEvent::Escalated, a));
            }
        }
        self.close_recovered_incidents(now)?;
        Ok(changed)
    }

    /// Closes every open incident whose alerts are all resolved and whose
    /// account no supplier is failing over from any more: the account recovered.
    fn close_recovered_incidents(&self, now: DateTime<Utc>) -> StoreResult<()> {
        let mut still_open = HashSet::new();
        for i in self.store.open_incidents()? {
            let failing_over = self.failovers.lock().values().any(|f| f.failed == Some(i.account_id));
            if failing_over || self.store.incident_alerts(i.id)?.iter().any(Alert::is_open) {
                still_open.insert(i.account_id);
                continue;
            }
            self.store.resolve_incident(i.id, now)?;
            self.trouble.lock().remove(&i.account_id);
            tracing::info!(incident = i.id, account = i.account_id.0, "incident over: the account recovered");
        }
        self.forget_quiet_trouble(now, &still_open);
        Ok(())
    }

    /// Raises the alert of a failover that lasted (or hit a wedding day), in
    /// its failed account's incident, and marks it alerted.
    fn raise_failover(&self, supplier: SupplierId, f: &Failover) -> StoreResult<Raised> {
        if let Some(x) = self.failovers.lock().get_mut(&supplier) {
            x.alerted = true;
        }
        let failed = match f.failed {
            Some(a) => format!("its own provider account {} failed", self.account_name(a)),
            None => "its own provider failed".to_string(),
        };
        let message = format!(
            "{}: {failed}; its requests fall back to platform AI, {}, since {}",
            self.supplier_name(supplier),
            self.account_name(f.fallback),
            f.since.format("%H:%M:%S UTC")
        );
        self.raise_in(
            AlertKind::FailoverStarted,
            keys::failover(supplier),
            Some(supplier),
            f.failed,
            f.failed,
            AlertSubject::Other,
            message,
            f.wedding_day,
        )
    }

    /// The supplier's own account a failover left: the one already in
    /// trouble, else its first enabled account.
    fn failed_account(&self, supplier: SupplierId) -> StoreResult<Option<AccountId>> {
        let own = self.store.list_accounts(Some(AccountOwner::Supplier(supplier)))?;
        let trouble = self.trouble.lock();
        Ok(own.iter().find(|a| trouble.contains_key(&a.id)).or_else(|| own.iter().find(|a| a.enabled)).or(own.first()).map(|a| a.id))
    }

    pub fn acknowledge(&self, id: i64) -> StoreResult<Alert> {
        self.store.acknowledge_alert(id, self.clock.now())
    }

    /// Resolves an alert by hand.
    pub fn resolve(&self, id: i64) -> StoreResult<Alert> {
        let a = self.store.resolve_alert(id, self.clock.now())?;
        self.clearing.lock().remove(&a.condition_key);
        self.note_open(&a.condition_key, false);
        self.notify(AlertEvent::Resolved, &a);
        Ok(a)
    }

    /// Acknowledges an alert by hand and records who did it in the audit log
    /// (the console's Acknowledge button and `switchboard alerts ack`).
    pub fn acknowledge_by(&self, id: i64, actor: &str) -> StoreResult<Alert> {
        let a = self.acknowledge(id)?;
        self.audit_by_hand(&a, actor, "alert.acknowledge")?;
        Ok(a)
    }

    /// Acknowledges several alerts at once (bulk acknowledge, e.g. a whole
    /// incident), in one transaction, each recorded in the audit log.
    pub fn acknowledge_many_by(&self, ids: &[i64], actor: &str) -> StoreResult<Vec<Alert>> {
        let done = self.store.acknowledge_alerts(ids, self.clock.now())?;
        for a in &done {
            self.audit_by_hand(a, actor, "alert.acknowledge")?;
        }
        Ok(done)
    }

    /// Resolves an alert by hand and records who did it in the audit log.
    pub fn resolve_by(&self, id: i64, actor: &str) -> StoreResult<Alert> {
        let a = self.resolve(id)?;
        self.audit_by_hand(&a, actor, "alert.resolve")?;
        Ok(a)
    }

    fn audit_by_hand(&self, a: &Alert, actor: &str, action: &str) -> StoreResult<()> {
        self.store.audit(
            self.clock.now(),
            actor,
            action,
            a.supplier_id,
            a.account_id,
            "ok",
            &format!("alert {} ({}, {}): {}", a.id, a.kind.as_str(), a.severity.as_str(), a.message),
        )?;
        Ok(())
    }

    pub fn list(&self, open_only: bool) -> StoreResult<Vec<Alert>> {
        self.store.list_alerts(open_only, 1_000)
    }

    /// "Name (supplier N)", or "supplier N" when it is not in the store (any more).
    fn supplier_name(&self, id: SupplierId) -> String {
        match self.store.supplier(id) {
            Ok(s) => format!("{} (supplier {})", s.name, id.0),
            Err(_) => format!("supplier {}", id.0),
        }
    }

    /// "Label (account N)", or "account N" when it is not in the store (any more).
    fn account_name(&self, id: crate::domain::AccountId) -> String {
        match self.store.account(id) {
            Ok(a) => format!("{} (account {})", a.label, id.0),
            Err(_) => format!("account {}", id.0),
        }
    }

    /// For the migration engine: a migration was rolled back.
    pub fn migration_rolled_back(&self, supplier: SupplierId, migration_id: i64, reason: &str, wedding_day: bool) -> StoreResult<Raised> {
        self.raise(
            AlertKind::MigrationRolledBack,
            keys::migration_rolled_back(migration_id),
            Some(supplier),
            None,
            format!("migration {migration_id} of {} was rolled back: {reason}", self.supplier_name(supplier)),
            wedding_day,
        )
    }

    /// Turns a router event into alerts. `wedding_day`: the event's supplier has a wedding today.
    pub fn on_router_event(&self, ev: &RouterEvent, wedding_day: bool) -> StoreResult<()> {
        let month = crate::domain::calendar::month_key(self.clock.now().date_naive());
        match ev {
            RouterEvent::QuotaWarning { supplier, used, quota } => {
                self.raise(
                    AlertKind::QuotaWarning,
                    keys::quota(*supplier, 90, &month),
                    Some(*supplier),
                    None,
                    format!(
                        "{} used {used} of {quota} platform tokens this month (90 % or more); consider moving it to client AI",
                        self.supplier_name(*supplier)
                    ),
                    wedding_day,
                )?;
            }
            RouterEvent::QuotaExceeded { supplier, used, quota, wedding_day: w } => {
                self.raise(
                    AlertKind::QuotaExceeded,
                    keys::quota(*supplier, 100, &month),
                    Some(*supplier),
                    None,
                    format!("{} reached its monthly platform quota ({used} of {quota} tokens)", self.supplier_name(*supplier)),
                    wedding_day || *w,
                )?;
            }
            RouterEvent::FailoverStarted { supplier, account } => {
                let now = self.clock.now();
                let failed = self.failed_account(*supplier)?;
                if let Some(a) = failed {
                    self.note_trouble(a, now);
                }
                let f = {
                    let mut fo = self.failovers.lock();
                    let f = fo.entry(*supplier).or_insert(Failover { failed, fallback: *account, since: now, wedding_day, alerted: false });
                    f.wedding_day |= wedding_day;
                    f.clone()
                };
                if !f.alerted && failover_alert_due(f.since, now, f.wedding_day, &self.rules) {
                    self.raise_failover(*supplier, &f)?;
                }
            }
            RouterEvent::FailoverEnded { supplier } => {
                // A short failover ends without an alert; a lasting one's alert
                // resolves once its supplier stayed back on its route.
                let ended = self.failovers.lock().remove(supplier);
                if ended.is_some_and(|f| f.alerted) {
                    self.clear(&keys::failover(*supplier));
                }
            }
            RouterEvent::BreakerOpened { account } => self.note_trouble(*account, self.clock.now()),
            RouterEvent::BreakerClosed { .. } => {}
        }
        Ok(())
    }
}

async fn webhook_task(cfg: WebhookConfig, mut rx: tokio::sync::mpsc::Receiver<WebhookPayload>) {
    let http = match reqwest::Client::builder().timeout(cfg.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "alert webhook disabled: cannot build an HTTP client");
            return;
        }
    };
    while let Some(p) = rx.recv().await {
        let mut delay = cfg.backoff;
        for attempt in 1..=cfg.attempts.max(1) {
            match http.post(&cfg.url).json(&p).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => tracing::warn!(status = r.status().as_u16(), attempt, "alert webhook refused the notification"),
                Err(e) => tracing::warn!(error = %e, attempt, "alert webhook unreachable"),
            }
            if attempt < cfg.attempts {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
}
