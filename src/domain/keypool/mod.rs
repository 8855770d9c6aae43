//! Key pools: the platform accounts of one provider family (OpenAI and
//! Azure serve the same models) form a pool, and the router picks a key
//! within it for every request. This module owns the pure part: each key's
//! [`PoolSettings`] (weight, requests and tokens per minute, monthly budget),
//! its live [`KeyState`] (sliding one-minute usage, in-flight calls, the
//! limits the provider last reported, a cool-down after a 429, the month's
//! spend, 429 statistics), its [`Headroom`], and the [`Strategy`] that orders
//! a pool's keys ([`order_pool`]). No IO: the router feeds it the clock.
//! Header parsing is `headers`.

pub mod headers;

pub use headers::{LimitWindow, RateLimitHeaders, ReportedLimits, parse_go_duration, parse_rate_limit_headers};

use super::Micros;
use super::provider::AccountId;
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

/// One key's pool settings (all optional; stored with the account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolSettings {
    /// Relative share under the weighted strategy (and the tie-break of the
    /// others); `None` = 1.
    pub weight: Option<u32>,
    /// Requests per minute this key may be sent (the operator's own limit).
    pub rpm: Option<u32>,
    /// Tokens per minute this key may be sent.
    pub tpm: Option<u64>,
    /// The key takes no more traffic once its spend this calendar month
    /// (UTC) reaches this.
    pub monthly_budget: Option<Micros>,
}

impl PoolSettings {
    pub fn weight(&self) -> u32 {
        self.weight.unwrap_or(1)
    }
    pub fn is_default(&self) -> bool {
        *self == PoolSettings::default()
    }
}

/// How the router picks a key within a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Smooth weighted round robin over the keys with headroom (nginx's):
    /// traffic follows the weights exactly, whatever the keys' load.
    Weighted,
    /// Fewest calls in flight, then fewest tokens in the last minute.
    LeastBusy,
    /// The largest share of its limits left (the tightest of requests and
    /// tokens, configured or reported); ties by weighted round robin. The
    /// default: it fills every key to the same fraction of its own limits, so
    /// no key reaches its limit while another has room (see README).
    #[default]
    Headroom,
}

crate::domain::string_enum!(Strategy, "pool strategy", {
    Weighted => "weighted",
    LeastBusy => "least_busy",
    Headroom => "headroom",
});

/// Why a key takes no request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocked {
    /// A 429 cooled it down until then.
    CoolingDown(DateTime<Utc>),
    /// Its configured requests or tokens per minute are used up.
    OwnLimit,
    /// The provider reported a window used up (until its reset).
    ProviderLimit,
    /// Its monthly budget is spent.
    Budget,
}

impl Blocked {
    /// Why, in words (for the console and error messages).
    pub fn describe(self) -> &'static str {
        match self {
            Blocked::CoolingDown(_) => "cooling down after a 429",
            Blocked::OwnLimit => "at its requests or tokens per minute",
            Blocked::ProviderLimit => "at the provider's reported limit",
            Blocked::Budget => "monthly budget spent",
        }
    }
}

/// A key's room right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Headroom {
    /// The share of its tightest limit left, 0–1 (1 when no limit is known).
    pub fraction: f64,
    pub blocked: Option<Blocked>,
}

const WINDOW_SECS: usize = 60;
/// 429 statistics and traffic share are over the last five minutes, in 10 s buckets.
const STATS_BUCKETS: usize = 30;
const STATS_BUCKET_SECS: i64 = 10;

/// Per-second request and token counts over a sliding minute.
#[derive(Debug, Clone, Default)]
struct MinuteWindow {
    /// (second since epoch, requests, tokens) per slot.
    slots: Vec<(i64, u64, u64)>,
}

impl MinuteWindow {
    fn slot(&mut self, sec: i64) -> &mut (i64, u64, u64) {
        if self.slots.is_empty() {
            self.slots = vec![(i64::MIN, 0, 0); WINDOW_SECS];
        }
        let i = sec.rem_euclid(WINDOW_SECS as i64) as usize;
        let s = &mut self.slots[i];
        if s.0 != sec {
            *s = (sec, 0, 0);
        }
        s
    }
    fn add(&mut self, now: DateTime<Utc>, requests: u64, tokens: i64) {
        let s = self.slot(now.timestamp());
        s.1 = s.1.saturating_add(requests);
        s.2 = if tokens >= 0 { s.2.saturating_add(tokens as u64) } else { s.2.saturating_sub(tokens.unsigned_abs()) };
    }
    /// (requests, tokens) in the minute up to `now`.
    fn sum(&self, now: DateTime<Utc>) -> (u64, u64) {
        let t = now.timestamp();
        self.slots
            .iter()
            .filter(|s| s.0 <= t && t.saturating_sub(s.0) < WINDOW_SECS as i64)
            .fold((0u64, 0u64), |(r, k), s| (r.saturating_add(s.1), k.saturating_add(s.2)))
    }
}

/// A key's live state (one per account, kept across catalog reloads).
#[derive(Debug, Clone, Default)]
pub struct KeyState {
    minute: MinuteWindow,
    pub in_flight: u32,
    /// The limits the provider last reported, and when.
    pub reported: Option<(DateTime<Utc>, ReportedLimits)>,
    /// Requests and tokens sent since that report (it does not know them yet).
    since_report: (u64, u64),
    pub cooling_until: Option<DateTime<Utc>>,
    /// (year, month) of `spent`.
    month: (i32, u32),
    pub spent: Micros,
    /// Whether `spent` was loaded for `month` (the router loads it from the ledger).
    pub spent_loaded: bool,
    /// (bucket, calls, 429s) per 10 s over five minutes.
    stats: Vec<(i64, u64, u64)>,
    /// Smooth weighted round robin's running score.
    swrr: i64,
    pub total_calls: u64,
    pub total_429: u64,
}

impl KeyState {
    /// Rolls the month over: the spend starts again (and must be reloaded).
    pub fn roll_month(&mut self, now: DateTime<Utc>) -> bool {
        let m = (now.year(), now.month());
        if self.month != m {
            self.month = m;
            self.spent = Micros::ZERO;
            self.spent_loaded = false;
            return true;
        }
        false
    }

    /// (requests, tokens) sent in the last minute.
    pub fn last_minute(&self, now: DateTime<Utc>) -> (u64, u64) {
        self.minute.sum(now)
    }

    /// The key's room for a request of about `tokens` tokens.
    pub fn headroom(&self, s: &PoolSettings, now: DateTime<Utc>, tokens: u64) -> Headroom {
        let mut fraction = 1f64;
        let mut blocked = None;
        if let Some(until) = self.cooling_until.filter(|u| *u > now) {
            blocked = Some(Blocked::CoolingDown(until));
        }
        if let Some(b) = s.monthly_budget
            && self.spent >= b
        {
            blocked = blocked.or(Some(Blocked::Budget));
        }
        // The minute's window is summed only for the limits that read it.
        let (req, tok) = if s.rpm.is_some() || s.tpm.is_some() { self.last_minute(now) } else { (0, 0) };
        let mut limit = |left: u64, of: u64, need: u64, why: Blocked| {
            if of == 0 {
                return;
            }
            fraction = fraction.min(left as f64 / of as f64);
            if left < need.max(1) {
                blocked = blocked.or(Some(why));
            }
        };
        if let Some(rpm) = s.rpm {
            limit((rpm as u64).saturating_sub(req), rpm as u64, 1, Blocked::OwnLimit);
        }
        if let Some(tpm) = s.tpm {
            limit(tpm.saturating_sub(tok), tpm, tokens.min(tpm), Blocked::OwnLimit);
        }
        if let Some((_, r)) = &self.reported {
            for (name, w) in r.windows() {
                let Some(left) = w.remaining_at(now) else { continue };
                // The requests and tokens sent since the report are not in it.
                let (sent, need) = if name == "requests" { (self.since_report.0, 1) } else { (self.since_report.1, tokens) };
                let left = if now >= w.reset_at { left } else { left.saturating_sub(sent) };
                let of = w.limit.unwrap_or(left.max(w.remaining)).max(1);
                let need = if name == "requests" || name == "tokens" { need.min(of) } else { 0 };
                limit(left, of, need, Blocked::ProviderLimit);
            }
        }
        Headroom { fraction: fraction.clamp(0.0, 1.0), blocked }
    }

    /// A call of about `tokens` tokens starts on this key.
    pub fn begin(&mut self, now: DateTime<Utc>, tokens: u64) {
        self.in_flight = self.in_flight.saturating_add(1);
        self.minute.add(now, 1, tokens.min(i64::MAX as u64) as i64);
        self.since_report = (self.since_report.0.saturating_add(1), self.since_report.1.saturating_add(tokens));
    }

    /// The call begun with `estimated` tokens ended having used `actual`
    /// (`None`: unknown, the estimate stands); `rate_limited`: it was a 429.
    pub fn end(&mut self, now: DateTime<Utc>, estimated: u64, actual: Option<u64>, rate_limited: bool) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(a) = actual {
            let delta = (a.min(i64::MAX as u64) as i64).saturating_sub(estimated.min(i64::MAX as u64) as i64);
            self.minute.add(now, 0, delta);
        }
        self.total_calls = self.total_calls.saturating_add(1);
        self.total_429 = self.total_429.saturating_add(rate_limited as u64);
        let b = now.timestamp().div_euclid(STATS_BUCKET_SECS);
        if self.stats.is_empty() {
            self.stats = vec![(i64::MIN, 0, 0); STATS_BUCKETS];
        }
        let slot = &mut self.stats[b.rem_euclid(STATS_BUCKETS as i64) as usize];
        if slot.0 != b {
            *slot = (b, 0, 0);
        }
        slot.1 += 1;
        slot.2 += rate_limited as u64;
    }

    /// A call counted with `estimated` tokens used `actual`.
    pub fn correct_tokens(&mut self, now: DateTime<Utc>, estimated: u64, actual: u64) {
        let delta = (actual.min(i64::MAX as u64) as i64).saturating_sub(estimated.min(i64::MAX as u64) as i64);
        self.minute.add(now, 0, delta);
    }

    /// The provider reported its limits on an answer at `now`.
    pub fn observe(&mut self, now: DateTime<Utc>, r: ReportedLimits) {
        if r.windows().next().is_some() {
            self.reported = Some((now, r));
            self.since_report = (0, 0);
        }
    }

    /// A 429 answer: cool down until the provider's reset (`until`).
    pub fn cool_down(&mut self, until: DateTime<Utc>) {
        self.cooling_until = Some(self.cooling_until.map_or(until, |u| u.max(until)));
    }

    /// Adds spend (the month must have been rolled to `now`).
    pub fn spend(&mut self, now: DateTime<Utc>, cost: Micros) {
        self.roll_month(now);
        self.spent = Micros(self.spent.0.saturating_add(cost.0.max(0)));
    }

    /// (calls, 429s) in the last five minutes.
    pub fn recent(&self, now: DateTime<Utc>) -> (u64, u64) {
        let b = now.timestamp().div_euclid(STATS_BUCKET_SECS);
        self.stats.iter().filter(|s| s.0 <= b && b.saturating_sub(s.0) < STATS_BUCKETS as i64).fold((0, 0), |(c, r), s| (c + s.1, r + s.2))
    }
}

/// One key as the console and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeySnapshot {
    pub account: AccountId,
    pub label: String,
    /// The provider's name (`openai`, `anthropic`, `azure_openai`).
    pub provider: String,
    /// The pool: the provider family (`openai` for OpenAI and Azure, `anthropic`).
    pub pool: &'static str,
    pub platform: bool,
    pub settings: PoolSettings,
    /// Share of its pool's calls in the last five minutes, 0–1.
    pub share: f64,
    /// Its headroom now (0–1; 1 when no limit is known).
    pub headroom: f64,
    pub blocked: Option<Blocked>,
    pub in_flight: u32,
    /// Requests and tokens sent in the last minute.
    pub last_minute: (u64, u64),
    /// Calls and 429s in the last five minutes.
    pub recent_calls: u64,
    pub recent_429: u64,
    /// Calls and 429s since the process started.
    pub total_calls: u64,
    pub total_429: u64,
    /// Spend this month (as far as the router knows it).
    pub spent: Micros,
    /// What the provider last reported: (remaining, limit) of requests and tokens.
    pub reported_requests: Option<(u64, Option<u64>)>,
    pub reported_tokens: Option<(u64, Option<u64>)>,
}

impl KeySnapshot {
    /// The share of its calls in the last five minutes that got a 429, 0–1.
    pub fn rate_429(&self) -> f64 {
        if self.recent_calls == 0 { 0.0 } else { self.recent_429 as f64 / self.recent_calls as f64 }
    }
}

/// One key of a pool as [`order_pool`] sees it.
pub struct PoolKey<'a> {
    pub account: AccountId,
    pub settings: PoolSettings,
    pub state: &'a mut KeyState,
}

/// Orders a pool's keys for one request of about `tokens` tokens: the keys
/// with room by `strategy` (the first is the one called; the others take
/// the request in turn if it is refused, so retries spread across the
/// pool), and the blocked keys apart, with why.
pub fn order_pool(
    strategy: Strategy,
    keys: &mut [PoolKey<'_>],
    now: DateTime<Utc>,
    tokens: u64,
) -> (Vec<AccountId>, Vec<(AccountId, Blocked)>) {
    if let [k] = keys {
        // A pool of one key (every request of such a pool comes here): what
        // `order_many` decides for it, without its five working vectors.
        return match k.state.headroom(&k.settings, now, tokens).blocked {
            Some(why) => (Vec::new(), vec![(k.account, why)]),
            None => {
                // Its round-robin credit gains its weight and, chosen, gives
                // up the pool's total: its weight again.
                let w = k.settings.weight() as i64;
                k.state.swrr = k.state.swrr.saturating_add(w).saturating_sub(w);
                (vec![k.account], Vec::new())
            }
        };
    }
    order_many(strategy, keys, now, tokens)
}

/// [`order_pool`] for any number of keys.
fn order_many(
    strategy: Strategy,
    keys: &mut [PoolKey<'_>],
    now: DateTime<Utc>,
    tokens: u64,
) -> (Vec<AccountId>, Vec<(AccountId, Blocked)>) {
    let rooms: Vec<Headroom> = keys.iter().map(|k| k.state.headroom(&k.settings, now, tokens)).collect();
    let open: Vec<usize> = (0..keys.len()).filter(|i| rooms[*i].blocked.is_none()).collect();
    let blocked = (0..keys.len()).filter_map(|i| Some((keys[i].account, rooms[i].blocked?))).collect();
    // Smooth weighted round robin over the open keys: every key gains its
    // weight, the chosen one gives up the total.
    let total: i64 = open.iter().map(|i| keys[*i].settings.weight() as i64).sum();
    for i in &open {
        let w = keys[*i].settings.weight() as i64;
        keys[*i].state.swrr = keys[*i].state.swrr.saturating_add(w);
    }
    let mut by_swrr = open.clone();
    by_swrr.sort_by_key(|i| (std::cmp::Reverse(keys[*i].state.swrr), keys[*i].account));
    let rank = |i: usize| by_swrr.iter().position(|j| *j == i).unwrap_or(usize::MAX);
    let mut order = open.clone();
    match strategy {
        Strategy::Weighted => order = by_swrr.clone(),
        Strategy::LeastBusy => order.sort_by_key(|i| (keys[*i].state.in_flight, keys[*i].state.last_minute(now).1, rank(*i))),
        Strategy::Headroom => order.sort_by_key(|i| (std::cmp::Reverse((rooms[*i].fraction * 1000.0) as i64), rank(*i))),
    }
    if let Some(first) = order.first() {
        keys[*first].state.swrr = keys[*first].state.swrr.saturating_sub(total);
    }
    (order.into_iter().map(|i| keys[i].account).collect(), blocked)
}

#[cfg(test)]
mod tests;
