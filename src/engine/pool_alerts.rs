//! Key pools' alerts and `/metrics` lines. [`PoolWatch`] runs on the health
//! monitor's tick: it raises `pool_low_headroom` when a pool of platform
//! keys stays below 20 % headroom for 10 minutes (recommending another key,
//! and naming the pool's key with the most room), and `key_budget_reached`
//! when a platform key's monthly budget is spent (the rest of the pool
//! carries on; the router already skips the key). Both clear through the
//! alert service's resolve-after-clear. [`render_metrics`] writes each
//! key's share, headroom, calls and 429s per account for `/metrics`.

use crate::domain::health::AlertKind;
use crate::domain::keypool::{Blocked, KeySnapshot};
use crate::engine::alerts::AlertService;
use crate::engine::metrics::escape_label;
use crate::engine::router::Router;
use crate::store::StoreResult;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt::Write;

/// A pool is low below this headroom…
pub const LOW_HEADROOM: f64 = 0.20;
/// …when it stays there this long.
pub const LOW_FOR_SECS: i64 = 10 * 60;

/// When each pool went below [`LOW_HEADROOM`] (and has stayed there since).
#[derive(Debug, Default)]
pub struct PoolWatch {
    low_since: Mutex<HashMap<&'static str, DateTime<Utc>>>,
}

/// A pool's headroom: the mean of its keys' (a blocked key counts as none).
pub fn pool_headroom(keys: &[&KeySnapshot]) -> f64 {
    if keys.is_empty() {
        return 1.0;
    }
    keys.iter().map(|k| if k.blocked.is_some() { 0.0 } else { k.headroom }).sum::<f64>() / keys.len() as f64
}

fn alert_key_low(pool: &str) -> String {
    format!("pool_low:{pool}")
}

fn alert_key_budget(account: i64, month: &str) -> String {
    format!("key_budget:{account}:{month}")
}

impl PoolWatch {
    /// Checks the router's pools at `now` and raises or clears their alerts.
    pub fn tick(&self, router: &Router, alerts: &AlertService, now: DateTime<Utc>) -> StoreResult<()> {
        let snap = router.pool_snapshot();
        let platform: Vec<&KeySnapshot> = snap.iter().filter(|k| k.platform).collect();
        let month = crate::domain::calendar::month_key(now.date_naive());
        for pool in ["openai", "anthropic"] {
            let keys: Vec<&KeySnapshot> = platform.iter().copied().filter(|k| k.pool == pool).collect();
            let h = pool_headroom(&keys);
            let since = {
                let mut low = self.low_since.lock();
                if keys.is_empty() || h >= LOW_HEADROOM {
                    low.remove(pool);
                    None
                } else {
                    Some(*low.entry(pool).or_insert(now))
                }
            };
            match since {
                Some(t) if (now - t).num_seconds() >= LOW_FOR_SECS => {
                    let best = keys.iter().filter(|k| k.blocked.is_none()).max_by(|a, b| a.headroom.total_cmp(&b.headroom));
                    let best = match best {
                        Some(k) => format!("; the key with the most room is '{}' ({:.0} %)", k.label, k.headroom * 100.0),
                        None => "; every key is out of room".to_string(),
                    };
                    alerts.raise(
                        AlertKind::PoolLowHeadroom,
                        alert_key_low(pool),
                        None,
                        None,
                        format!(
                            "the {pool} key pool has run below {:.0} % headroom for {} minutes (now {:.0} % over {} key(s)): add another {pool} key to the pool or raise its keys' limits{best}",
                            LOW_HEADROOM * 100.0,
                            LOW_FOR_SECS / 60,
                            h * 100.0,
                            keys.len()
                        ),
                        false,
                    )?;
                }
                Some(_) => {}
                None => alerts.clear(&alert_key_low(pool)),
            }
        }
        for k in &platform {
            let key = alert_key_budget(k.account.0, &month);
            if k.blocked == Some(Blocked::Budget) {
                let budget = k.settings.monthly_budget.unwrap_or_default();
                alerts.raise(
                    AlertKind::KeyBudgetReached,
                    key,
                    None,
                    Some(k.account),
                    format!(
                        "platform key '{}' reached its monthly budget of {} (spent {}); it takes no traffic until next month, the rest of the {} pool carries on",
                        k.label,
                        budget,
                        k.spent,
                        k.pool
                    ),
                    false,
                )?;
            } else if k.settings.monthly_budget.is_some() {
                alerts.clear(&key);
            }
        }
        Ok(())
    }
}

/// The keys' `/metrics` lines (Prometheus text), per account.
pub fn render_metrics(keys: &[KeySnapshot]) -> String {
    let mut out = String::new();
    let labels = |k: &KeySnapshot| {
        format!(
            "account=\"{}\",label=\"{}\",provider=\"{}\",pool=\"{}\",owner=\"{}\"",
            k.account.0,
            escape_label(&k.label),
            escape_label(&k.provider),
            k.pool,
            if k.platform { "platform" } else { "supplier" }
        )
    };
    type Series = (&'static str, &'static str, &'static str, fn(&KeySnapshot) -> f64);
    let series: [Series; 7] = [
        ("switchboard_key_share", "gauge", "Share of its pool's calls in the last five minutes (0-1).", |k| k.share),
        ("switchboard_key_headroom", "gauge", "Share of the key's tightest limit left (0-1; 0 when blocked).", |k| {
            if k.blocked.is_some() { 0.0 } else { k.headroom }
        }),
        ("switchboard_key_rate_limited_ratio", "gauge", "Share of the key's calls in the last five minutes that got a 429.", |k| {
            k.rate_429()
        }),
        ("switchboard_key_in_flight", "gauge", "Calls on the key now.", |k| k.in_flight as f64),
        ("switchboard_key_calls_total", "counter", "Provider calls on the key since start.", |k| k.total_calls as f64),
        ("switchboard_key_rate_limited_total", "counter", "429 answers on the key since start.", |k| k.total_429 as f64),
        ("switchboard_key_spend_micros", "gauge", "The key's spend this month, micro-dollars.", |k| k.spent.0 as f64),
    ];
    for (name, kind, help, f) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for k in keys {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(k), f(k));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccountId;

    fn key(label: &str, headroom: f64, blocked: Option<Blocked>) -> KeySnapshot {
        KeySnapshot {
            account: AccountId(7),
            label: label.into(),
            provider: "openai".into(),
            pool: "openai",
            platform: true,
            settings: Default::default(),
            share: 0.5,
            headroom,
            blocked,
            in_flight: 1,
            last_minute: (3, 300),
            recent_calls: 10,
            recent_429: 2,
            total_calls: 10,
            total_429: 2,
            spent: crate::domain::Micros(1_500),
            reported_requests: None,
            reported_tokens: None,
        }
    }

    #[test]
    fn pool_headroom_counts_blocked_keys_as_empty() {
        let a = key("a", 0.5, None);
        let b = key("b", 0.9, Some(Blocked::Budget));
        assert_eq!(pool_headroom(&[&a, &b]), 0.25);
        assert_eq!(pool_headroom(&[]), 1.0);
    }

    #[test]
    fn metrics_lines_escape_labels() {
        let text = render_metrics(&[key("Wed\"Sync\nkey", 0.25, None)]);
        assert!(text.contains(
            "switchboard_key_headroom{account=\"7\",label=\"Wed\\\"Sync\\nkey\",provider=\"openai\",pool=\"openai\",owner=\"platform\"} 0.25"
        ));
        assert!(text.contains("switchboard_key_rate_limited_ratio{") && text.contains("} 0.2\n"));
        assert!(text.contains("# TYPE switchboard_key_calls_total counter"));
    }
}
