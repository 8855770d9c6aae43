//! Per-key rate limits in the simulator, as the providers enforce them:
//! requests and tokens per minute as token buckets that refill continuously
//! (OpenAI's model: a bucket is full again a minute after it was emptied),
//! on the simulator's clock (the system clock, or the test's
//! [`SimHandle::set_clock`]). Every answer to a limited key carries the
//! provider's rate-limit headers (OpenAI and Azure `x-ratelimit-*` with Go
//! durations; Anthropic `anthropic-ratelimit-*` with RFC 3339 instants); a
//! request over a limit is answered 429 with the provider's body and
//! `retry-after`. A request's tokens are counted when it is admitted, as
//! OpenAI does: its body's bytes / 4 (the prompt's estimate). Applied as a
//! layer in front of the generation routes (`server::router`), so the
//! handlers know nothing of it.

use super::{SimHandle, SimState};
use crate::domain::{Clock, SystemClock};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One simulated key's limits (none: unlimited, and no headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SimLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
}

struct Bucket {
    cap: f64,
    level: f64,
}

impl Bucket {
    fn new(cap: u64) -> Self {
        Self { cap: cap.max(1) as f64, level: cap.max(1) as f64 }
    }
    fn refill(&mut self, secs: f64) {
        self.level = (self.level + self.cap * secs / 60.0).min(self.cap);
    }
    /// Seconds until `n` are available.
    fn wait_for(&self, n: f64) -> f64 {
        ((n.min(self.cap) - self.level).max(0.0)) * 60.0 / self.cap
    }
    /// Seconds until full.
    fn until_full(&self) -> f64 {
        (self.cap - self.level).max(0.0) * 60.0 / self.cap
    }
}

struct KeyBuckets {
    at: DateTime<Utc>,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    refused: Arc<AtomicU64>,
}

/// The simulator's limits, by account name.
pub(crate) struct Limits {
    clock: RwLock<Arc<dyn Clock>>,
    keys: Mutex<HashMap<String, KeyBuckets>>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { clock: RwLock::new(Arc::new(SystemClock)), keys: Mutex::default() }
    }
}

/// What one admitted or refused request saw.
struct Seen {
    rpm: Option<(u64, u64, f64)>,
    tpm: Option<(u64, u64, f64)>,
    /// Refused: seconds until it would fit, and which limit.
    refused: Option<(f64, &'static str, u64, u64)>,
}

impl Limits {
    fn check(&self, account: &str, tokens: u64) -> Option<Seen> {
        let now = self.clock.read().now();
        let mut keys = self.keys.lock();
        let k = keys.get_mut(account)?;
        let secs = ((now - k.at).num_milliseconds().max(0) as f64) / 1000.0;
        k.at = k.at.max(now);
        for b in [&mut k.requests, &mut k.tokens].into_iter().flatten() {
            b.refill(secs);
        }
        let need_tok = tokens as f64;
        let mut refused = None;
        if let Some(r) = &k.requests
            && r.level < 1.0
        {
            refused = Some((r.wait_for(1.0), "requests", r.cap as u64, 1));
        }
        if refused.is_none()
            && let Some(t) = &k.tokens
            && t.level < need_tok.min(t.cap)
        {
            refused = Some((t.wait_for(need_tok), "tokens", t.cap as u64, tokens));
        }
        if refused.is_none() {
            if let Some(r) = &mut k.requests {
                r.level -= 1.0;
            }
            if let Some(t) = &mut k.tokens {
                t.level = (t.level - need_tok).max(0.0);
            }
        } else {
            k.refused.fetch_add(1, Ordering::Relaxed);
        }
        let fig = |b: &Option<Bucket>| b.as_ref().map(|b| (b.cap as u64, b.level.max(0.0) as u64, b.until_full()));
        Some(Seen { rpm: fig(&k.requests), tpm: fig(&k.tokens), refused })
    }
}

/// A Go duration as OpenAI writes it: `20ms`, `1.5s`, `6m0s`.
fn go_duration(secs: f64) -> String {
    let ms = (secs * 1000.0).ceil() as u64;
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = format!("{:.3}", ms as f64 / 1000.0);
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

fn anthropic_path(path: &str) -> bool {
    path.ends_with("/messages")
}

fn headers_for(seen: &Seen, anthropic: bool, now: DateTime<Utc>, h: &mut axum::http::HeaderMap) {
    let mut put = |k: String, v: String| {
        if let (Ok(k), Ok(v)) = (axum::http::HeaderName::try_from(k), HeaderValue::from_str(&v)) {
            h.insert(k, v);
        }
    };
    for (kind, fig) in [("requests", seen.rpm), ("tokens", seen.tpm)] {
        let Some((limit, remaining, full_in)) = fig else { continue };
        if anthropic {
            let reset = now + chrono::Duration::milliseconds((full_in * 1000.0).ceil() as i64);
            put(format!("anthropic-ratelimit-{kind}-limit"), limit.to_string());
            put(format!("anthropic-ratelimit-{kind}-remaining"), remaining.to_string());
            put(format!("anthropic-ratelimit-{kind}-reset"), reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        } else {
            put(format!("x-ratelimit-limit-{kind}"), limit.to_string());
            put(format!("x-ratelimit-remaining-{kind}"), remaining.to_string());
            put(format!("x-ratelimit-reset-{kind}"), go_duration(full_in));
        }
    }
}

/// The layer: counts a generation request against its key's limits, refuses
/// it with a 429 when over, and adds the rate-limit headers to the answer.
pub(crate) async fn enforce(State(s): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let generation = req.method() == axum::http::Method::POST
        && (path.ends_with("/chat/completions") || path.ends_with("/embeddings") || anthropic_path(&path));
    let h = req.headers();
    let key = h
        .get("x-api-key")
        .or_else(|| h.get("api-key"))
        .and_then(|v| v.to_str().ok())
        .or_else(|| h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")))
        .map(str::trim);
    let account = key.and_then(|k| s.account_by_key(k)).map(|a| a.name.clone());
    let limited = generation && account.as_ref().is_some_and(|a| s.limits.keys.lock().contains_key(a));
    let Some(account) = account.filter(|_| limited) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return Response::builder().status(StatusCode::BAD_REQUEST).body(Body::empty()).unwrap_or_default(),
    };
    let tokens = (bytes.len() as u64 / 4).max(1);
    let Some(seen) = s.limits.check(&account, tokens) else {
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    };
    let now = s.limits.clock.read().now();
    let anthropic = anthropic_path(&path);
    if let Some((wait, kind, limit, requested)) = seen.refused {
        let secs = wait.max(0.001);
        let body = if anthropic {
            serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": format!(
                "This request would exceed the rate limit for your organization of {limit} {kind} per minute. Please try again later.")}})
        } else {
            serde_json::json!({"error": {"message": format!(
                "Rate limit reached for {kind} per min (RPM/TPM) on this organization: Limit {limit}, Requested {requested}. Please try again in {}.",
                go_duration(secs)), "type": kind, "param": null, "code": "rate_limit_exceeded"}})
        };
        let mut r = Response::new(Body::from(body.to_string()));
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let hm = r.headers_mut();
        hm.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers_for(&seen, anthropic, now, hm);
        if let Ok(v) = HeaderValue::from_str(&(secs.ceil() as u64).max(1).to_string()) {
            hm.insert(header::RETRY_AFTER, v);
        }
        if !anthropic && let Ok(v) = HeaderValue::from_str(&((secs * 1000.0).ceil() as u64).to_string()) {
            hm.insert("retry-after-ms", v);
        }
        return r;
    }
    let mut r = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    headers_for(&seen, anthropic, now, r.headers_mut());
    r
}

impl SimHandle {
    /// Sets an account's per-key limits (all `None`: unlimited); false if
    /// there is no such account. The buckets start full.
    pub fn set_limits(&self, account: &str, limits: SimLimits) -> bool {
        if self.state.account_by_name(account).is_none() {
            return false;
        }
        let now = self.state.limits.clock.read().now();
        let mut keys = self.state.limits.keys.lock();
        if limits == SimLimits::default() {
            keys.remove(account);
        } else {
            let refused = keys.get(account).map(|k| k.refused.clone()).unwrap_or_default();
            keys.insert(
                account.to_string(),
                KeyBuckets { at: now, requests: limits.rpm.map(|n| Bucket::new(n as u64)), tokens: limits.tpm.map(Bucket::new), refused },
            );
        }
        true
    }

    /// The clock the limits refill on (the system clock unless set).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        let now = clock.now();
        *self.state.limits.clock.write() = clock;
        for k in self.state.limits.keys.lock().values_mut() {
            k.at = now;
        }
    }

    /// Requests an account's limits refused (429) so far.
    pub fn rate_limited(&self, account: &str) -> u64 {
        self.state.limits.keys.lock().get(account).map(|k| k.refused.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_as_openai_writes_them() {
        assert_eq!(go_duration(0.02), "20ms");
        assert_eq!(go_duration(1.5), "1.5s");
        assert_eq!(go_duration(1.0), "1s");
        assert_eq!(go_duration(360.0), "6m0s");
        // And read back by the router's parser.
        for s in [0.02, 1.5, 17.25, 360.0] {
            let d = crate::domain::keypool::parse_go_duration(&go_duration(s)).unwrap().as_secs_f64();
            assert!((d - s).abs() < 0.002, "{s} → {d}");
        }
    }

    #[test]
    fn a_bucket_refills_over_a_minute() {
        let mut b = Bucket::new(60);
        b.level = 0.0;
        assert_eq!(b.wait_for(1.0), 1.0);
        b.refill(30.0);
        assert_eq!(b.level, 30.0);
        assert_eq!(b.until_full(), 30.0);
        b.refill(120.0);
        assert_eq!(b.level, 60.0);
    }
}
