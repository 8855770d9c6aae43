//! Gateway metrics in memory (atomics, no locks on the request path), rendered
//! as Prometheus text: requests, errors, latency histograms, tokens and cost
//! by route and provider, refusals, and breaker states.

use crate::domain::breaker::BreakerState;
use crate::domain::{ProviderAccount, ProviderKind, Route, UsageEvent};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const ROUTES: usize = 6;
const PROVIDERS: usize = 3;
/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 14] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 2_500_000, 10_000_000];

#[derive(Default)]
struct Series {
    requests: AtomicU64,
    errors: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    cost_micros: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS_US.len()],
    latency_sum_us: AtomicU64,
}

/// A label value as the Prometheus text format wants it: backslash, double
/// quote and line feed escaped, so that a name with `"` or a newline cannot
/// end the label or the line early.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Default)]
pub struct Metrics {
    series: [[Series; PROVIDERS]; ROUTES],
    pub rate_limited: AtomicU64,
    pub quota_refused: AtomicU64,
    pub refused: AtomicU64,
    refused_latency_sum_us: AtomicU64,
}

fn provider_idx(p: ProviderKind) -> usize {
    match p {
        ProviderKind::OpenAi => 0,
        ProviderKind::Anthropic => 1,
        ProviderKind::AzureOpenAi => 2,
    }
}

impl Metrics {
    /// A request served (or failed) on `route` by `provider`, taking `total` end to end.
    pub fn observe(&self, route: Route, provider: ProviderKind, ok: bool, total: Duration, ev: &UsageEvent) {
        let s = &self.series[route.code() as usize][provider_idx(provider)];
        s.requests.fetch_add(1, Relaxed);
        if !ok {
            s.errors.fetch_add(1, Relaxed);
        }
        s.input_tokens.fetch_add(ev.usage.input, Relaxed);
        s.output_tokens.fetch_add(ev.usage.output, Relaxed);
        s.cached_tokens.fetch_add(ev.usage.cached_read, Relaxed);
        s.cost_micros.fetch_add(ev.cost.0.max(0) as u64, Relaxed);
        let us = total.as_micros().min(u64::MAX as u128) as u64;
        s.latency_sum_us.fetch_add(us, Relaxed);
        let i = BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(BUCKETS_US.len() - 1);
        s.latency_buckets[i].fetch_add(1, Relaxed);
    }

    /// A request that failed upstream with an error passed to the client.
    pub fn observe_error(&self, route: Route, provider: ProviderKind, total: Duration) {
        let s = &self.series[route.code() as usize][provider_idx(provider)];
        s.requests.fetch_add(1, Relaxed);
        s.errors.fetch_add(1, Relaxed);
        s.latency_sum_us.fetch_add(total.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// A request refused before any provider served it.
    pub fn observe_refused(&self, total: Duration) {
        self.refused.fetch_add(1, Relaxed);
        self.refused_latency_sum_us.fetch_add(total.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// Total requests served per route (for live views).
    pub fn requests_by_route(&self) -> [(Route, u64, u64); ROUTES] {
        let mut out = [(Route::Platform, 0, 0); ROUTES];
        for (i, r) in Route::ALL.iter().enumerate() {
            let (mut n, mut e) = (0, 0);
            for s in &self.series[i] {
                n += s.requests.load(Relaxed);
                e += s.errors.load(Relaxed);
            }
            out[i] = (*r, n, e);
        }
        out
    }

    /// Prometheus text exposition format.
    pub fn render(
        &self,
        breakers: &[(ProviderAccount, BreakerState)],
        ledger: &crate::engine::ledger::LedgerStats,
        in_flight: usize,
    ) -> String {
        let mut o = String::with_capacity(16 * 1024);
        let label = |r: usize, p: usize| format!("route=\"{}\",provider=\"{}\"", Route::ALL[r], ProviderKind::ALL[p]);
        let mut counter = |name: &str, help: &str, f: &dyn Fn(&Series) -> u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for r in 0..ROUTES {
                for p in 0..PROVIDERS {
                    let v = f(&self.series[r][p]);
                    if v > 0 {
                        let _ = writeln!(o, "{name}{{{}}} {v}", label(r, p));
                    }
                }
            }
        };
        counter("switchboard_requests_total", "Requests served, by route and provider.", &|s| s.requests.load(Relaxed));
        counter("switchboard_request_errors_total", "Requests that ended in an error.", &|s| s.errors.load(Relaxed));
        counter("switchboard_input_tokens_total", "Prompt tokens not read from cache.", &|s| s.input_tokens.load(Relaxed));
        counter("switchboard_cached_tokens_total", "Prompt tokens read from the provider's cache.", &|s| s.cached_tokens.load(Relaxed));
        counter("switchboard_output_tokens_total", "Output tokens (reasoning included).", &|s| s.output_tokens.load(Relaxed));
        counter("switchboard_cost_micro_usd_total", "Cost in micro-dollars.", &|s| s.cost_micros.load(Relaxed));
        let _ = writeln!(
            o,
            "# HELP switchboard_request_duration_seconds End-to-end request duration.\n# TYPE switchboard_request_duration_seconds histogram"
        );
        for r in 0..ROUTES {
            for p in 0..PROVIDERS {
                let s = &self.series[r][p];
                let count = s.requests.load(Relaxed);
                if count == 0 {
                    continue;
                }
                let mut cum = 0;
                for (i, b) in BUCKETS_US.iter().enumerate() {
                    cum += s.latency_buckets[i].load(Relaxed);
                    let _ = writeln!(o, "switchboard_request_duration_seconds_bucket{{{},le=\"{}\"}} {cum}", label(r, p), *b as f64 / 1e6);
                }
                let _ = writeln!(o, "switchboard_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {count}", label(r, p));
                let _ = writeln!(
                    o,
                    "switchboard_request_duration_seconds_sum{{{}}} {}",
                    label(r, p),
                    s.latency_sum_us.load(Relaxed) as f64 / 1e6
                );
                let _ = writeln!(o, "switchboard_request_duration_seconds_count{{{}}} {count}", label(r, p));
            }
        }
        let _ = writeln!(
            o,
            "# HELP switchboard_refused_total Requests refused before reaching a provider.\n# TYPE switchboard_refused_total counter"
        );
        let _ = writeln!(o, "switchboard_refused_total{{reason=\"rate_limit\"}} {}", self.rate_limited.load(Relaxed));
        let _ = writeln!(o, "switchboard_refused_total{{reason=\"quota\"}} {}", self.quota_refused.load(Relaxed));
        let _ = writeln!(o, "switchboard_refused_total{{reason=\"no_route\"}} {}", self.refused.load(Relaxed));
        let _ = writeln!(
            o,
            "# HELP switchboard_breaker_state Circuit breaker per account: 0 closed, 1 half-open, 2 open.\n# TYPE switchboard_breaker_state gauge"
        );
        for (a, st) in breakers {
            let v = match st {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen { .. } => 1,
                BreakerState::Open { .. } => 2,
            };
            let label = escape_label(&a.label);
            let _ = writeln!(o, "switchboard_breaker_state{{account=\"{}\",label=\"{label}\",provider=\"{}\"}} {v}", a.id, a.provider);
        }
        let _ = writeln!(
            o,
            "# HELP switchboard_ledger_events_total Usage events written to the usage journal.\n# TYPE switchboard_ledger_events_total counter"
        );
        let _ = writeln!(o, "switchboard_ledger_events_total {}", ledger.committed.load(Relaxed));
        let _ = writeln!(
            o,
            "# HELP switchboard_ledger_batches_total Fold transactions (journal records into the database).\n# TYPE switchboard_ledger_batches_total counter"
        );
        let _ = writeln!(o, "switchboard_ledger_batches_total {}", ledger.batches.load(Relaxed));
        let _ = writeln!(
            o,
            "# HELP switchboard_ledger_failures_total Failed usage journal writes and segment opens.\n# TYPE switchboard_ledger_failures_total counter"
        );
        let _ = writeln!(o, "switchboard_ledger_failures_total {}", ledger.failures.load(Relaxed));
        for (name, kind, help, v) in [
            (
                "switchboard_ledger_up",
                "gauge",
                "1 while the usage ledger writes, 0 while it cannot (requests are refused).",
                u64::from(!ledger.down.load(Relaxed)),
            ),
            (
                "switchboard_ledger_pending_events",
                "gauge",
                "Usage events held in memory until the ledger writes again.",
                ledger.pending.load(Relaxed),
            ),
            (
                "switchboard_ledger_refused_total",
                "counter",
                "Requests refused because the usage ledger could not write.",
                ledger.refused.load(Relaxed),
            ),
            (
                "switchboard_ledger_recovered_events_total",
                "counter",
                "Usage events written after waiting for the ledger.",
                ledger.recovered.load(Relaxed),
            ),
            (
                "switchboard_ledger_folded_events_total",
                "counter",
                "Usage journal records folded into the database.",
                ledger.folded.load(Relaxed),
            ),
            (
                "switchboard_ledger_duplicate_records_total",
                "counter",
                "Usage journal records folded that the database already had (a replay).",
                ledger.duplicates.load(Relaxed),
            ),
            (
                "switchboard_ledger_fold_failures_total",
                "counter",
                "Folds of the usage journal the database refused (retried; the journal keeps the events).",
                ledger.fold_failures.load(Relaxed),
            ),
            (
                "switchboard_ledger_journal_fdatasyncs_total",
                "counter",
                "Group fdatasyncs of the usage journal (power durability).",
                ledger.fdatasyncs.load(Relaxed),
            ),
            (
                "switchboard_ledger_dropped_events_total",
                "counter",
                "Usage events not recorded (logged in full) because too many waited.",
                ledger.dropped.load(Relaxed),
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP switchboard_requests_in_flight Requests being served, open streams included.\n# TYPE switchboard_requests_in_flight gauge"
        );
        let _ = writeln!(o, "switchboard_requests_in_flight {in_flight}");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("plain"), "plain");
        assert_eq!(escape_label(r#"a"b"#), r#"a\"b"#);
        assert_eq!(escape_label(r"a\b"), r"a\\b");
        assert_eq!(escape_label("line\nbreak"), r"line\nbreak");
        assert_eq!(escape_label("\r é"), "\r é");
    }
}
