//! Provider health rules, pure: thresholds (normal day and wedding day), the
//! bounded sliding window of samples kept per account, the verdict
//! (healthy / degraded / down) it yields, alert kinds and severities with the
//! escalation rule, and the history buckets and uptime arithmetic.
//!
//! Verdict rules (all thresholds configurable, defaults below):
//! - **down**: the last `down_after_probe_failures` probes failed (default 1,
//!   so an outage is noticed at the first probe after it starts), or at least
//!   `down_error_percent` (50 %) of the window's samples failed (with at least
//!   `min_samples`). A down account returns only after
//!   `up_after_probe_successes` probes in a row succeed; the window then starts
//!   afresh, so old failures do not keep a recovered account down.
//! - **degraded**: not down, and the window's error rate is above the
//!   threshold in force or its p95 latency is above the response threshold.
//! - **healthy**: otherwise; **unknown** before any sample.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Response and error-rate limits an account is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// p95 response time above this is degraded.
    pub max_latency_ms: u32,
    /// Error rate above this (percent) is degraded.
    pub max_error_percent: f64,
}

impl Thresholds {
    pub const NORMAL: Thresholds = Thresholds { max_latency_ms: 5_000, max_error_percent: 5.0 };
    pub const WEDDING_DAY: Thresholds = Thresholds { max_latency_ms: 2_000, max_error_percent: 2.0 };
}

/// Health rules; `Default` is the numbers listed in the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthRules {
    pub normal: Thresholds,
    pub wedding_day: Thresholds,
    /// Sliding window the error rate and percentiles are computed over.
    pub window_secs: i64,
    /// Most samples kept per account (memory bound, whatever the traffic).
    pub window_capacity: usize,
    /// Fewer samples than this: rate-based rules do not apply yet.
    pub min_samples: usize,
    pub down_error_percent: f64,
    pub down_after_probe_failures: u32,
    pub up_after_probe_successes: u32,
}

impl Default for HealthRules {
    fn default() -> Self {
        Self {
            normal: Thresholds::NORMAL,
            wedding_day: Thresholds::WEDDING_DAY,
            window_secs: 300,
            window_capacity: 256,
            min_samples: 5,
            down_error_percent: 50.0,
            down_after_probe_failures: 1,
            up_after_probe_successes: 1,
        }
    }
}

impl HealthRules {
    pub fn thresholds(&self, wedding_day: bool) -> Thresholds {
        if wedding_day { self.wedding_day } else { self.normal }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Unknown,
    Healthy,
    Degraded,
    Down,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Unknown => "unknown",
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::Down => "down",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleSource {
    Probe,
    Traffic,
}

impl SampleSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SampleSource::Probe => "probe",
            SampleSource::Traffic => "traffic",
        }
    }
}

/// One observation of an account: a probe or a live request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub latency_ms: u32,
    pub source: SampleSource,
}

/// Statistics of a window.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct WindowStats {
    pub samples: u32,
    pub failures: u32,
    pub error_percent: f64,
    pub p50_ms: Option<u32>,
    pub p95_ms: Option<u32>,
}

/// The bounded sliding window and the probe streak state of one account.
#[derive(Debug, Clone)]
pub struct AccountWindow {
    samples: VecDeque<Sample>,
    consecutive_probe_failures: u32,
    consecutive_probe_successes: u32,
    verdict: Verdict,
}

impl Default for AccountWindow {
    fn default() -> Self {
        Self { samples: VecDeque::new(), consecutive_probe_failures: 0, consecutive_probe_successes: 0, verdict: Verdict::Unknown }
    }
}

impl AccountWindow {
    /// Adds a sample, dropping what is outside the window or above capacity.
    pub fn push(&mut self, s: Sample, rules: &HealthRules) {
        if s.source == SampleSource::Probe {
            if s.ok {
                self.consecutive_probe_failures = 0;
                self.consecutive_probe_successes = self.consecutive_probe_successes.saturating_add(1);
            } else {
                self.consecutive_probe_successes = 0;
                self.consecutive_probe_failures = self.consecutive_probe_failures.saturating_add(1);
            }
        }
        let cap = rules.window_capacity.max(1);
        while self.samples.len() >= cap {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
        self.expire(s.at, rules);
    }

    /// Drops samples older than the window as of `now`.
    pub fn expire(&mut self, now: DateTime<Utc>, rules: &HealthRules) {
        let from = now - Duration::seconds(rules.window_secs);
        while self.samples.front().is_some_and(|s| s.at < from) {
            self.samples.pop_front();
        }
        if self.samples.capacity() > rules.window_capacity.max(1) * 2 {
            self.samples.shrink_to(rules.window_capacity.max(1));
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Approximate bytes held by this window (for the memory benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.samples.capacity() * std::mem::size_of::<Sample>()
    }

    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    pub fn consecutive_probe_failures(&self) -> u32 {
        self.consecutive_probe_failures
    }

    pub fn stats(&self) -> WindowStats {
        let samples = self.samples.len() as u32;
        let failures = self.samples.iter().filter(|s| !s.ok).count() as u32;
        let mut lat: Vec<u32> = self.samples.iter().filter(|s| s.ok).map(|s| s.latency_ms).collect();
        lat.sort_unstable();
        WindowStats {
            samples,
            failures,
            error_percent: if samples == 0 { 0.0 } else { failures as f64 * 100.0 / samples as f64 },
            p50_ms: percentile(&lat, 50),
            p95_ms: percentile(&lat, 95),
        }
    }

    /// Evaluates the verdict at `now` and remembers it. Returns (old, new).
    pub fn evaluate(&mut self, now: DateTime<Utc>, rules: &HealthRules, wedding_day: bool) -> (Verdict, Verdict) {
        self.expire(now, rules);
        let old = self.verdict;
        let st = self.stats();
        let t = rules.thresholds(wedding_day);
        let enough = st.samples as usize >= rules.min_samples.max(1);
        let probe_down = self.consecutive_probe_failures >= rules.down_after_probe_failures.max(1);
        let rate_down = enough && st.error_percent >= rules.down_error_percent;
        let new = if old == Verdict::Down && self.consecutive_probe_successes < rules.up_after_probe_successes.max(1) {
            // Stays down until probes see it working again.
            Verdict::Down
        } else if old == Verdict::Down {
            // Recovered: judge it on what it does from now on.
            let last = self.samples.back().copied();
            self.samples.clear();
            if let Some(s) = last.filter(|s| s.ok) {
                self.samples.push_back(s);
            }
            let st = self.stats();
            if st.p95_ms.is_some_and(|p| p > t.max_latency_ms) { Verdict::Degraded } else { Verdict::Healthy }
        } else if probe_down || rate_down {
            Verdict::Down
        } else if st.samples == 0 {
            Verdict::Unknown
        } else if (enough && st.error_percent > t.max_error_percent) || st.p95_ms.is_some_and(|p| p > t.max_latency_ms) {
            Verdict::Degraded
        } else {
            Verdict::Healthy
        };
        if new == Verdict::Down && old != Verdict::Down {
            // Only probes seen after the account went down count towards its return.
            self.consecutive_probe_successes = 0;
        }
        self.verdict = new;
        (old, new)
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u32], pct: u32) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct.min(100) as usize * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

// ---------------------------------------------------------------- alerts

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}
crate::domain::string_enum!(Severity, "alert severity", {
    Info => "info",
    Warning => "warning",
    Critical => "critical",
});

impl Severity {
    /// One level up (critical stays critical).
    pub fn escalated(self) -> Severity {
        match self {
            Severity::Info => Severity::Warning,
            Severity::Warning | Severity::Critical => Severity::Critical,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    ProviderDegraded,
    ProviderDown,
    KeyInvalid,
    QuotaWarning,
    QuotaExceeded,
    FailoverStarted,
    FailoverEnded,
    MigrationRolledBack,
    /// A pool of platform keys below 20 % headroom for 10 minutes.
    PoolLowHeadroom,
    /// A platform key's monthly budget is spent.
    KeyBudgetReached,
}
crate::domain::string_enum!(AlertKind, "alert kind", {
    ProviderDegraded => "provider_degraded",
    ProviderDown => "provider_down",
    KeyInvalid => "key_invalid",
    QuotaWarning => "quota_warning",
    QuotaExceeded => "quota_exceeded",
    FailoverStarted => "failover_started",
    FailoverEnded => "failover_ended",
    MigrationRolledBack => "migration_rolled_back",
    PoolLowHeadroom => "pool_low_headroom",
    KeyBudgetReached => "key_budget_reached",
});

/// Whose account an alert is about: the severity of a provider's trouble
/// depends on how many suppliers it strands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSubject {
    /// A platform account (serves every platform-mode supplier and every failover).
    PlatformAccount,
    /// One supplier's own account.
    SupplierAccount,
    /// Not about an account (quota, migration).
    Other,
}

impl AlertKind {
    /// The severity rules (README, "Alerts"), before the wedding-day step:
    /// provider down (or its key refused) is critical for a platform account
    /// and a warning for one supplier's own account; degraded is a warning; a
    /// lasting failover and a rolled-back migration are warnings; platform
    /// quota at 90 % is a warning and at 100 % (the supplier is refused)
    /// critical; a failover's end is information.
    pub fn base_severity(self, subject: AlertSubject) -> Severity {
        match self {
            AlertKind::ProviderDown | AlertKind::KeyInvalid => {
                if subject == AlertSubject::SupplierAccount {
                    Severity::Warning
                } else {
                    Severity::Critical
                }
            }
            AlertKind::QuotaExceeded => Severity::Critical,
            AlertKind::ProviderDegraded
            | AlertKind::QuotaWarning
            | AlertKind::FailoverStarted
            | AlertKind::MigrationRolledBack
            | AlertKind::PoolLowHeadroom
            | AlertKind::KeyBudgetReached => Severity::Warning,
            AlertKind::FailoverEnded => Severity::Info,
        }
    }

    /// Severity at raise time: every alert about a supplier with a wedding
    /// that day (its local date) is one level higher.
    pub fn severity_for(self, subject: AlertSubject, wedding_day: bool) -> Severity {
        let s = self.base_severity(subject);
        if wedding_day { s.escalated() } else { s }
    }
}

/// Alert timing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRules {
    /// An unacknowledged alert escalates one level after this long.
    pub escalate_after_secs: i64,
    /// A condition must stay clear this long before its alert resolves (no flapping floods).
    pub resolve_after_secs: i64,
    /// A supplier's failover is alerted only once it has lasted this long
    /// (at once on the supplier's wedding day).
    #[serde(default = "default_failover_alert_after")]
    pub failover_alert_after_secs: i64,
}

fn default_failover_alert_after() -> i64 {
    60
}

impl Default for AlertRules {
    fn default() -> Self {
        Self { escalate_after_secs: 15 * 60, resolve_after_secs: 120, failover_alert_after_secs: default_failover_alert_after() }
    }
}

/// Whether a failover that started at `since` is worth an alert `now`: it has
/// lasted `failover_alert_after_secs`, or its supplier has a wedding today.
pub fn failover_alert_due(since: DateTime<Utc>, now: DateTime<Utc>, wedding_day: bool, rules: &AlertRules) -> bool {
    wedding_day || now - since >= Duration::seconds(rules.failover_alert_after_secs)
}

/// Whether an open alert escalates now: unacknowledged, not yet escalated, and
/// raised at least `escalate_after_secs` ago.
pub fn escalation_due(
    raised_at: DateTime<Utc>,
    acknowledged: bool,
    already_escalated: bool,
    now: DateTime<Utc>,
    rules: &AlertRules,
) -> bool {
    !acknowledged && !already_escalated && now - raised_at >= Duration::seconds(rules.escalate_after_secs)
}

// ---------------------------------------------------------------- history

/// History retention: raw samples, 5-minute and hourly aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub raw_secs: i64,
    pub fine_bucket_secs: i64,
    pub fine_keep_secs: i64,
    pub coarse_bucket_secs: i64,
    pub coarse_keep_secs: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            raw_secs: 24 * 3600,
            fine_bucket_secs: 300,
            fine_keep_secs: 30 * 24 * 3600,
            coarse_bucket_secs: 3600,
            coarse_keep_secs: 365 * 24 * 3600,
        }
    }
}

/// Start (Unix ms) of the bucket of `bucket_secs` holding `ts_ms`.
pub fn bucket_start(ts_ms: i64, bucket_secs: i64) -> i64 {
    let b = bucket_secs.max(1) * 1000;
    ts_ms.div_euclid(b) * b
}

/// Counts of one history bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BucketCounts {
    pub samples: u64,
    pub failures: u64,
    pub latency_ms_sum: u64,
    pub latency_ms_max: u64,
}

impl BucketCounts {
    /// Uptime percent (successful samples over samples); None without samples.
    pub fn uptime_percent(&self) -> Option<f64> {
        (self.samples > 0).then(|| (self.samples - self.failures.min(self.samples)) as f64 * 100.0 / self.samples as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 20, 14, 0, 0).unwrap()
    }

    fn probe(w: &mut AccountWindow, r: &HealthRules, secs: i64, ok: bool, ms: u32) {
        w.push(Sample { at: t0() + Duration::seconds(secs), ok, latency_ms: ms, source: SampleSource::Probe }, r);
    }

    #[test]
    fn one_failed_probe_is_down_and_one_success_brings_it_back() {
        let r = HealthRules::default();
        let mut w = AccountWindow::default();
        assert_eq!(w.evaluate(t0(), &r, false).1, Verdict::Unknown);
        probe(&mut w, &r, 0, true, 100);
        assert_eq!(w.evaluate(t0(), &r, false).1, Verdict::Healthy);
        probe(&mut w, &r, 30, false, 0);
        assert_eq!(w.evaluate(t0() + Duration::seconds(30), &r, false), (Verdict::Healthy, Verdict::Down));
        probe(&mut w, &r, 60, true, 100);
        assert_eq!(w.evaluate(t0() + Duration::seconds(60), &r, false), (Verdict::Down, Verdict::Healthy));
        assert_eq!(w.len(), 1, "the window restarts at recovery");
    }

    #[test]
    fn wedding_day_thresholds_are_stricter() {
        let r = HealthRules::default();
        let mut w = AccountWindow::default();
        for i in 0..10 {
            probe(&mut w, &r, i * 30, true, 3_000);
        }
        let now = t0() + Duration::seconds(270);
        assert_eq!(w.evaluate(now, &r, false).1, Verdict::Healthy);
        assert_eq!(w.evaluate(now, &r, true).1, Verdict::Degraded);
    }

    #[test]
    fn error_rate_between_threshold_and_half_is_degraded() {
        let r = HealthRules::default();
        let mut w = AccountWindow::default();
        // 3 % errors: healthy on a normal day, degraded on a wedding day.
        for i in 0..100 {
            let ok = i % 33 != 5;
            w.push(Sample { at: t0() + Duration::seconds(i), ok, latency_ms: 200, source: SampleSource::Traffic }, &r);
        }
        let now = t0() + Duration::seconds(100);
        assert_eq!(w.evaluate(now, &r, false).1, Verdict::Healthy);
        assert_eq!(w.evaluate(now, &r, true).1, Verdict::Degraded);
        // 60 % traffic errors: down even while probes pass.
        let later = now + Duration::seconds(r.window_secs);
        for i in 0..100 {
            w.push(Sample { at: later + Duration::seconds(i), ok: i % 5 < 2, latency_ms: 200, source: SampleSource::Traffic }, &r);
        }
        assert_eq!(w.evaluate(later + Duration::seconds(100), &r, false).1, Verdict::Down);
    }

    #[test]
    fn window_is_bounded_by_time_and_capacity() {
        let r = HealthRules { window_capacity: 16, ..HealthRules::default() };
        let mut w = AccountWindow::default();
        for i in 0..1000 {
            w.push(Sample { at: t0() + Duration::milliseconds(i), ok: true, latency_ms: 1, source: SampleSource::Traffic }, &r);
        }
        assert_eq!(w.len(), 16);
        w.expire(t0() + Duration::seconds(3600), &r);
        assert!(w.is_empty());
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn severities_escalate_one_level_and_wedding_day_raises_higher() {
        assert_eq!(Severity::Info.escalated(), Severity::Warning);
        assert_eq!(Severity::Critical.escalated(), Severity::Critical);
        use AlertSubject::*;
        assert_eq!(AlertKind::ProviderDegraded.severity_for(SupplierAccount, true), Severity::Critical);
        assert_eq!(AlertKind::ProviderDegraded.severity_for(PlatformAccount, false), Severity::Warning);
        assert_eq!(AlertKind::FailoverEnded.severity_for(Other, false), Severity::Info);
        // Down: critical for a platform account, a warning for a supplier's own one.
        assert_eq!(AlertKind::ProviderDown.severity_for(PlatformAccount, false), Severity::Critical);
        assert_eq!(AlertKind::ProviderDown.severity_for(SupplierAccount, false), Severity::Warning);
        assert_eq!(AlertKind::ProviderDown.severity_for(SupplierAccount, true), Severity::Critical);
        assert_eq!(AlertKind::QuotaWarning.severity_for(Other, false), Severity::Warning);
        assert_eq!(AlertKind::QuotaExceeded.severity_for(Other, false), Severity::Critical);
        assert_eq!(AlertKind::QuotaWarning.severity_for(Other, true), Severity::Critical);
        let rules = AlertRules::default();
        assert!(!failover_alert_due(t0(), t0() + Duration::seconds(15), false, &rules));
        assert!(failover_alert_due(t0(), t0() + Duration::seconds(60), false, &rules));
        assert!(failover_alert_due(t0(), t0() + Duration::seconds(4), true, &rules));
        assert!(!escalation_due(t0(), false, false, t0() + Duration::minutes(14), &rules));
        assert!(escalation_due(t0(), false, false, t0() + Duration::minutes(15), &rules));
        assert!(!escalation_due(t0(), true, false, t0() + Duration::minutes(15), &rules));
        assert!(!escalation_due(t0(), false, true, t0() + Duration::hours(2), &rules));
        assert_eq!("Key-Invalid".parse::<AlertKind>().unwrap(), AlertKind::KeyInvalid);
    }

    #[test]
    fn buckets_and_uptime() {
        assert_eq!(bucket_start(299_999, 300), 0);
        assert_eq!(bucket_start(300_000, 300), 300_000);
        assert_eq!(bucket_start(-1, 300), -300_000);
        let b = BucketCounts { samples: 200, failures: 1, ..Default::default() };
        assert_eq!(b.uptime_percent(), Some(99.5));
        assert_eq!(BucketCounts::default().uptime_percent(), None);
    }
}

/// Chart ranges and their bucket sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartRange {
    /// Last hour in 1-minute buckets.
    Hour,
    /// Last 24 h in 5-minute buckets.
    Day,
    /// Last 30 days in hourly buckets.
    Month,
}

impl ChartRange {
    pub const ALL: [ChartRange; 3] = [ChartRange::Hour, ChartRange::Day, ChartRange::Month];

    pub fn label(self) -> &'static str {
        match self {
            ChartRange::Hour => "1 h",
            ChartRange::Day => "24 h",
            ChartRange::Month => "30 d",
        }
    }

    pub fn span_and_bucket(self) -> (Duration, i64) {
        match self {
            ChartRange::Hour => (Duration::hours(1), 60),
            ChartRange::Day => (Duration::hours(24), 300),
            ChartRange::Month => (Duration::days(30), 3600),
        }
    }
}
