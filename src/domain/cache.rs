//! The response cache's rules (the live cache is `engine::cache`, the
//! persistent table `store::cache`): the exact-match key (supplier, endpoint,
//! model and the request body in canonical JSON, hashed with SHA-256), what
//! is cached by default (deterministic requests: chat with `temperature` 0,
//! embeddings always), the per-request header `x-switchboard-cache:
//! use|skip|refresh`, the per-supplier settings (on/off and TTLs) and the
//! quota policy for hits.

use super::idempotency::Endpoint;
use super::supplier::SupplierId;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Whether a cache hit counts against the supplier's platform quota. It does
/// not: a hit costs WedSync nothing (README, "Response cache").
pub const HITS_COUNT_AGAINST_QUOTA: bool = false;

/// How long a chat answer is kept unless the supplier says otherwise.
pub const DEFAULT_CHAT_TTL_SECS: u64 = 24 * 3600;
/// How long an embeddings answer is kept unless the supplier says otherwise.
pub const DEFAULT_EMBEDDINGS_TTL_SECS: u64 = 30 * 24 * 3600;
/// The longest TTL a supplier may set.
pub const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

/// The request header that asks for (or against) the cache, and the answer
/// header that says what the cache did.
pub const HEADER: &str = "x-switchboard-cache";

/// What a request's `x-switchboard-cache` header asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Look up and store, even when the request is not deterministic.
    Use,
    /// Neither look up nor store.
    Skip,
    /// Do not look up; call the provider and store its answer in place of any cached one.
    Refresh,
}

impl CacheMode {
    pub fn parse(v: &str) -> Result<CacheMode, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "use" => Ok(CacheMode::Use),
            "skip" => Ok(CacheMode::Skip),
            "refresh" => Ok(CacheMode::Refresh),
            other => Err(format!("x-switchboard-cache: '{other}' is not one of use, skip, refresh")),
        }
    }
}

/// What the cache did for an answer (the `x-switchboard-cache` answer header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheVerdict {
    /// Answered from the cache.
    Hit,
    /// Looked up (or refreshed) and not found: the provider answered, and the answer is stored.
    Miss,
    /// The cache was not used.
    #[default]
    Skip,
}

impl CacheVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheVerdict::Hit => "hit",
            CacheVerdict::Miss => "miss",
            CacheVerdict::Skip => "skip",
        }
    }
}

/// A supplier's cache settings (schema v16, `supplier_cache_settings`; a
/// supplier without a row has the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub enabled: bool,
    pub chat_ttl_secs: u64,
    pub embeddings_ttl_secs: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { enabled: true, chat_ttl_secs: DEFAULT_CHAT_TTL_SECS, embeddings_ttl_secs: DEFAULT_EMBEDDINGS_TTL_SECS }
    }
}

impl CacheSettings {
    /// Refuses a TTL of zero or over [`MAX_TTL_SECS`].
    pub fn validate(&self) -> Result<(), String> {
        for (what, v) in [("chat", self.chat_ttl_secs), ("embeddings", self.embeddings_ttl_secs)] {
            if v == 0 || v > MAX_TTL_SECS {
                return Err(format!("the {what} cache TTL must be between 1 second and 365 days, not {v} s"));
            }
        }
        Ok(())
    }

    /// The TTL of an answer to a request on `endpoint`.
    pub fn ttl_secs(&self, endpoint: Endpoint) -> u64 {
        match endpoint {
            Endpoint::Embeddings => self.embeddings_ttl_secs,
            Endpoint::ChatCompletions | Endpoint::Messages => self.chat_ttl_secs,
        }
    }
}

/// What the cache does for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePlan {
    /// Look the answer up before calling a provider.
    pub lookup: bool,
    /// Store a successful answer.
    pub store: bool,
}

impl CachePlan {
    pub const OFF: CachePlan = CachePlan { lookup: false, store: false };

    /// The answer header when the provider answered (no hit).
    pub fn verdict_on_call(self) -> CacheVerdict {
        if self.store { CacheVerdict::Miss } else { CacheVerdict::Skip }
    }
}

/// The cache's decision: a supplier with the cache off never uses it;
/// otherwise the header decides, and without it only deterministic requests
/// are cached.
pub fn plan(settings: &CacheSettings, mode: Option<CacheMode>, deterministic: bool) -> CachePlan {
    if !settings.enabled {
        return CachePlan::OFF;
    }
    match mode {
        Some(CacheMode::Skip) => CachePlan::OFF,
        Some(CacheMode::Refresh) => CachePlan { lookup: false, store: true },
        Some(CacheMode::Use) => CachePlan { lookup: true, store: true },
        None if deterministic => CachePlan { lookup: true, store: true },
        None => CachePlan::OFF,
    }
}

/// Whether a chat request asks for a deterministic answer: `temperature` 0.
/// (An absent temperature is the provider's default, 1.)
pub fn deterministic_chat(temperature: Option<f64>) -> bool {
    temperature == Some(0.0)
}

/// The exact-match key: SHA-256 over the supplier, the endpoint, the model
/// and the canonical body, each length-prefixed so no two parts can run into
/// each other.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CacheKey({})", hex::encode(&self.0[..8]))
    }
}

impl CacheKey {
    /// The key of a request, or `None` when `body` is not JSON.
    pub fn of(supplier: SupplierId, endpoint: Endpoint, model: &str, body: &[u8]) -> Option<CacheKey> {
        let v: Value = serde_json::from_slice(body).ok()?;
        Some(Self::of_value(supplier, endpoint, model, &v))
    }

    pub fn of_value(supplier: SupplierId, endpoint: Endpoint, model: &str, body: &Value) -> CacheKey {
        let mut canon = Vec::with_capacity(256);
        canonical_json(body, &mut canon);
        let mut h = Sha256::new();
        h.update(b"switchboard-cache-v1\0");
        h.update(supplier.0.to_le_bytes());
        h.update(endpoint.code().to_le_bytes());
        h.update((model.len() as u64).to_le_bytes());
        h.update(model.as_bytes());
        h.update((canon.len() as u64).to_le_bytes());
        h.update(&canon);
        CacheKey(h.finalize().into())
    }
}

/// `v` as canonical JSON: object keys sorted (by their UTF-8 bytes), no
/// whitespace, strings and numbers as serde_json writes them. Two bodies that
/// differ only in key order or insignificant whitespace give the same bytes.
pub fn canonical_json(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                if let Some(x) = m.get(k) {
                    canonical_json(x, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(x, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        Value::Number(n) => match n.as_f64() {
            // One number, one form (as JSON's canonical form, RFC 8785, has it):
            // `0`, `0.0` and `0e0` are all `0`; other integers as integers.
            Some(f) if n.is_f64() && f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                out.extend_from_slice((f as i64).to_string().as_bytes())
            }
            _ => {
                let _ = serde_json::to_writer(&mut *out, n);
            }
        },
        other => {
            // Booleans and null: serde_json's compact form.
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        let mut out = Vec::new();
        canonical_json(&serde_json::from_str(s).unwrap(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn canonical_form_sorts_keys_at_every_depth_and_drops_whitespace() {
        assert_eq!(canon(r#" { "b" : 1, "a" : { "z": [ 1 , 2 ], "y": null } } "#), r#"{"a":{"y":null,"z":[1,2]},"b":1}"#);
        assert_eq!(canon(r#"{"s":"line\nbreak \"q\" é"}"#), r#"{"s":"line\nbreak \"q\" é"}"#);
        assert_eq!(canon("[true,false,0.5,-3]"), "[true,false,0.5,-3]");
        // One number, one form: `temperature: 0` and `temperature: 0.0` are the same request.
        assert_eq!(canon("[0.0,1.0,-2.0,0e0,1E2,0.25]"), "[0,1,-2,0,100,0.25]");
        assert_eq!(canon("-0.0"), "0");
        // Array order is significant.
        assert_ne!(canon("[1,2]"), canon("[2,1]"));
    }

    #[test]
    fn keys_ignore_key_order_and_whitespace_but_not_supplier_endpoint_model_or_content() {
        let s = SupplierId(7);
        let a = CacheKey::of(
            s,
            Endpoint::ChatCompletions,
            "m",
            br#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#,
        );
        let b = CacheKey::of(
            s,
            Endpoint::ChatCompletions,
            "m",
            b"{\n  \"messages\": [ {\"content\": \"hi\", \"role\": \"user\"} ],\n  \"temperature\": 0, \"model\": \"m\"\n}",
        );
        assert!(a.is_some());
        assert_eq!(a, b);
        let body = br#"{"model":"m","messages":[]}"#;
        let k = |s, e, m: &str| CacheKey::of(s, e, m, body).unwrap();
        let base = k(s, Endpoint::ChatCompletions, "m");
        assert_ne!(base, k(SupplierId(8), Endpoint::ChatCompletions, "m"), "never across suppliers");
        assert_ne!(base, k(s, Endpoint::Messages, "m"));
        assert_ne!(base, k(s, Endpoint::ChatCompletions, "m2"));
        assert_ne!(base, CacheKey::of(s, Endpoint::ChatCompletions, "m", br#"{"model":"m","messages":[1]}"#).unwrap());
        assert_eq!(CacheKey::of(s, Endpoint::ChatCompletions, "m", b"not json"), None);
    }

    #[test]
    fn the_plan_follows_the_supplier_the_header_and_determinism() {
        let on = CacheSettings::default();
        let off = CacheSettings { enabled: false, ..on };
        let both = CachePlan { lookup: true, store: true };
        assert_eq!(plan(&on, None, true), both);
        assert_eq!(plan(&on, None, false), CachePlan::OFF);
        assert_eq!(plan(&on, Some(CacheMode::Use), false), both);
        assert_eq!(plan(&on, Some(CacheMode::Skip), true), CachePlan::OFF);
        assert_eq!(plan(&on, Some(CacheMode::Refresh), true), CachePlan { lookup: false, store: true });
        assert_eq!(plan(&off, Some(CacheMode::Use), true), CachePlan::OFF, "a supplier's off is final");
        assert_eq!(plan(&on, Some(CacheMode::Refresh), false).verdict_on_call(), CacheVerdict::Miss);
        assert_eq!(CachePlan::OFF.verdict_on_call(), CacheVerdict::Skip);
        assert!(deterministic_chat(Some(0.0)) && !deterministic_chat(None) && !deterministic_chat(Some(0.7)));
        assert_eq!(CacheMode::parse(" Refresh "), Ok(CacheMode::Refresh));
        assert!(CacheMode::parse("always").is_err());
    }

    #[test]
    fn ttls_are_bounded_and_chosen_by_endpoint() {
        let s = CacheSettings::default();
        assert_eq!(s.ttl_secs(Endpoint::Embeddings), 30 * 86_400);
        assert_eq!(s.ttl_secs(Endpoint::Messages), 86_400);
        assert!(s.validate().is_ok());
        assert!(CacheSettings { chat_ttl_secs: 0, ..s }.validate().is_err());
        assert!(CacheSettings { embeddings_ttl_secs: MAX_TTL_SECS + 1, ..s }.validate().is_err());
    }
}
