//! The typed provider error taxonomy: what went wrong upstream, whether to
//! retry, whether it counts against the account's health, what status the
//! gateway should answer, and a stable class string for the ledger. Messages
//! are redacted: they never contain an API key.

use crate::domain::ValidationStatus;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// Longest retry-after we believe; anything above is capped here.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// 401/403: the key is wrong, revoked or lacks permission.
    #[error("{provider} rejected the key ({status}): {message}")]
    Auth { provider: &'static str, status: u16, message: String },
    /// 429: slow down; `retry_after` is the provider's hint when it gave one.
    #[error("{provider} rate limited the request (retry after {retry_after:?}): {message}")]
    RateLimited { provider: &'static str, retry_after: Option<Duration>, message: String },
    /// Billing quota or spend limit reached: retrying will not help.
    #[error("{provider} quota or spend limit exhausted: {message}")]
    QuotaExhausted { provider: &'static str, message: String },
    /// 529/503: the provider is overloaded.
    #[error("{provider} is overloaded ({status}): {message}")]
    Overloaded { provider: &'static str, status: u16, retry_after: Option<Duration>, message: String },
    /// Other 5xx.
    #[error("{provider} server error ({status}): {message}")]
    Server { provider: &'static str, status: u16, message: String },
    #[error("{provider} did not answer in time")]
    Timeout { provider: &'static str },
    #[error("could not connect to {provider}: {message}")]
    Connect { provider: &'static str, message: String },
    /// 400/404/413/422: the request itself is wrong (incl. a too-long context).
    #[error("{provider} refused the request as invalid ({status}): {message}")]
    BadRequest { provider: &'static str, status: u16, context_length: bool, message: String },
    /// The provider's content filter refused the prompt.
    #[error("{provider} content filter refused the request: {message}")]
    ContentFiltered { provider: &'static str, message: String },
    /// The provider answered something we could not read.
    #[error("{provider} sent an unreadable answer: {message}")]
    InvalidResponse { provider: &'static str, message: String },
    /// A stream ended before its end marker.
    #[error("{provider} stream was cut: {message}")]
    StreamCut { provider: &'static str, message: String },
    /// The operation does not exist for this provider (e.g. Anthropic embeddings).
    #[error("{provider} does not support {what}")]
    Unsupported { provider: &'static str, what: &'static str },
    /// The request uses a feature this provider has no exact equivalent for
    /// (found before anything was sent; the router skips such routes).
    #[error("{provider} cannot serve this request exactly: {message}")]
    Untranslatable { provider: &'static str, message: String },
}

impl ProviderError {
    /// Whether trying the same request again (after a backoff) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A redirect or a missing deployment will answer the same again.
            Self::Server { status, .. } => *status >= 500,
            Self::RateLimited { .. } | Self::Overloaded { .. } | Self::Timeout { .. } | Self::Connect { .. } => true,
            _ => false,
        }
    }

    /// Whether this failure says something about the provider account's health
    /// (as opposed to the caller's request or a momentary rate limit).
    pub fn counts_against_health(&self) -> bool {
        matches!(
            self,
            Self::Auth { .. }
                | Self::QuotaExhausted { .. }
                | Self::Overloaded { .. }
                | Self::Server { .. }
                | Self::Timeout { .. }
                | Self::Connect { .. }
                | Self::InvalidResponse { .. }
                | Self::StreamCut { .. }
        )
    }

    /// The HTTP status the gateway should answer its own client with.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Auth { .. } => 502,
            Self::RateLimited { .. } | Self::QuotaExhausted { .. } => 429,
            Self::Overloaded { .. } => 503,
            Self::Server { .. } | Self::Connect { .. } | Self::InvalidResponse { .. } | Self::StreamCut { .. } => 502,
            Self::Timeout { .. } => 504,
            Self::BadRequest { status, .. } => {
                if (400..500).contains(status) && *status != 401 && *status != 403 && *status != 429 {
                    *status
                } else {
                    400
                }
            }
            Self::ContentFiltered { .. } => 400,
            Self::Unsupported { .. } | Self::Untranslatable { .. } => 400,
        }
    }

    /// A stable short name for the ledger's `error_class` column.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "auth",
            Self::RateLimited { .. } => "rate_limited",
            Self::QuotaExhausted { .. } => "quota_exhausted",
            Self::Overloaded { .. } => "overloaded",
            Self::Server { .. } => "server_error",
            Self::Timeout { .. } => "timeout",
            Self::Connect { .. } => "connect",
            Self::BadRequest { context_length: true, .. } => "context_length",
            // OpenAI's code for it; Anthropic's `not_found_error` means the same on its messages endpoint.
            Self::BadRequest { status: 404, .. } => "model_not_found",
            Self::BadRequest { .. } => "bad_request",
            Self::ContentFiltered { .. } => "content_filtered",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::StreamCut { .. } => "stream_cut",
            Self::Unsupported { .. } => "unsupported",
            Self::Untranslatable { .. } => "untranslatable",
        }
    }

    /// The provider's retry hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Overloaded { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What a key validation that failed with this error means.
    pub fn validation_status(&self) -> ValidationStatus {
        match self {
            Self::Auth { status: 403, .. } => ValidationStatus::NoPermission,
            Self::Auth { .. } => ValidationStatus::InvalidKey,
            Self::RateLimited { .. } => ValidationStatus::RateLimited,
            Self::QuotaExhausted { .. } => ValidationStatus::QuotaExhausted,
            Self::BadRequest { status: 404, .. } => ValidationStatus::NoPermission,
            // Only a failed connection is "unreachable": a provider that answers
            // with a 500 was reached (the console must not say otherwise).
            Self::Connect { .. } => ValidationStatus::Unreachable,
            Self::Timeout { .. } => ValidationStatus::Timeout,
            _ => ValidationStatus::ServerError,
        }
    }

    /// The provider's own message (redacted), without our prefix.
    pub fn provider_message(&self) -> String {
        match self {
            Self::Auth { message, .. }
            | Self::RateLimited { message, .. }
            | Self::QuotaExhausted { message, .. }
            | Self::Overloaded { message, .. }
            | Self::Server { message, .. }
            | Self::Connect { message, .. }
            | Self::BadRequest { message, .. }
            | Self::ContentFiltered { message, .. }
            | Self::InvalidResponse { message, .. }
            | Self::StreamCut { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// Builds the error from a transport failure (no HTTP answer).
    pub fn from_transport(provider: &'static str, e: &reqwest::Error, key: &str) -> Self {
        if e.is_timeout() {
            return Self::Timeout { provider };
        }
        // reqwest's messages carry the URL, never headers; redact anyway.
        let message = redact(&error_chain(e), key);
        if e.is_connect() {
            Self::Connect { provider, message }
        } else if e.is_decode() || e.is_body() {
            Self::StreamCut { provider, message }
        } else {
            Self::Connect { provider, message }
        }
    }

    /// Builds the error from a failure of the direct transport: before the
    /// answer's headers (no connection, or it closed), or while reading its body.
    pub fn from_hyper(provider: &'static str, e: &(dyn std::error::Error + 'static), before_answer: bool, key: &str) -> Self {
        // hyper's messages carry neither headers nor the URL; redact anyway.
        let message = redact(&error_chain(e), key);
        if before_answer { Self::Connect { provider, message } } else { Self::StreamCut { provider, message } }
    }

    /// Classifies a non-success HTTP answer from its status, headers and body.
    pub fn from_response(provider: &'static str, status: u16, headers: &HeaderMap, body: &[u8], key: &str) -> Self {
        let info = ErrorBody::parse(body);
        let message = redact(&info.message_or(status, body), key);
        classify(provider, status, &info, message, || retry_after(headers))
    }

    /// Classifies an error object that arrived inside a stream (`event: error`
    /// from Anthropic, `data: {"error": …}` from OpenAI).
    pub fn from_stream_error(provider: &'static str, body: &[u8], key: &str) -> Self {
        let info = ErrorBody::parse(body);
        let status = match info.kind.as_str() {
            "overloaded_error" => 529,
            "rate_limit_error" | "rate_limit_exceeded" => 429,
            "authentication_error" => 401,
            "permission_error" => 403,
            "invalid_request_error" => 400,
            _ => 500,
        };
        let message = redact(&info.message_or(status, body), key);
        classify(provider, status, &info, message, || None)
    }
}

fn classify(
    provider: &'static str,
    status: u16,
    info: &ErrorBody,
    message: String,
    retry_after: impl FnOnce() -> Option<Duration>,
) -> ProviderError {
    let lower_msg = message.to_ascii_lowercase();
    let is = |needle: &str| info.kind == needle || info.code == needle;
    let quota = is("insufficient_quota")
        || is("billing_error")
        || is("enforced_spend_limit_reached")
        || lower_msg.contains("spend limit")
        || lower_msg.contains("spend_limit")
        || lower_msg.contains("api usage limits")
        || lower_msg.contains("credit balance is too low")
        || lower_msg.contains("exceeded your current quota");
    if quota && matches!(status, 400 | 402 | 403 | 429) {
        return ProviderError::QuotaExhausted { provider, message };
    }
    let filtered = is("content_filter") || is("content_policy_violation") || lower_msg.contains("content management policy");
    if status == 404 && is("DeploymentNotFound") {
        // The deployment is the account's setting, not the client's choice:
        // the account is broken (fail over, count against its health).
        return ProviderError::Server { provider, status, message: format!("{message} (check the account's deployment name)") };
    }
    match status {
        401 | 403 => ProviderError::Auth { provider, status, message },
        429 => ProviderError::RateLimited { provider, retry_after: retry_after(), message },
        408 => ProviderError::Timeout { provider },
        503 | 529 => ProviderError::Overloaded { provider, status, retry_after: retry_after(), message },
        s if (500..600).contains(&s) => {
            if is("overloaded_error") {
                ProviderError::Overloaded { provider, status, retry_after: retry_after(), message }
            } else {
                ProviderError::Server { provider, status, message }
            }
        }
        // Redirects are not followed (see Providers::build_client).
        s if (300..400).contains(&s) => ProviderError::Server {
            provider,
            status,
            message: format!("the provider answered with a redirect ({s}); check the account's base URL"),
        },
        _ if filtered => ProviderError::ContentFiltered { provider, message },
        _ => {
            let context_length = is("context_length_exceeded")
                || lower_msg.contains("maximum context length")
                || lower_msg.contains("prompt is too long")
                || lower_msg.contains("context window");
            ProviderError::BadRequest { provider, status, context_length, message }
        }
    }
}

/// The useful parts of an OpenAI (`{"error":{"message","type","code"}}`) or
/// Anthropic (`{"type":"error","error":{"type","message"}}`) error body.
#[derive(Debug, Default)]
struct ErrorBody {
    message: Option<String>,
    kind: String,
    code: String,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::default();
        };
        let e = v.get("error").unwrap_or(&v);
        let s = |k: &str| match e.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        Self { message: e.get("message").and_then(|m| m.as_str()).map(str::to_string), kind: s("type"), code: s("code") }
    }

    fn message_or(&self, status: u16, body: &[u8]) -> String {
        match &self.message {
            Some(m) => m.clone(),
            None => {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_string();
                if text.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {text}") }
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Removes a key from a message: the exact key, and any word that looks like
/// a provider key (`sk-…`), even masked, is replaced by its fingerprint.
pub fn redact(message: &str, key: &str) -> String {
    let mut out = if key.len() >= 4 && message.contains(key) {
        message.replace(key, &crate::domain::provider::fingerprint(key))
    } else {
        message.to_string()
    };
    if out.contains("sk-") {
        out = out
            .split(' ')
            .map(|w| if w.starts_with("sk-") && w.len() > 8 { crate::domain::provider::fingerprint(w) } else { w.to_string() })
            .collect::<Vec<_>>()
            .join(" ");
    }
    out
}

/// The retry hint of a 429/503/529 answer, from (in order) `retry-after-ms`,
/// `retry-after` (seconds or an HTTP date), OpenAI's `x-ratelimit-reset-*`
/// (`1s`, `6m0s`, `20ms`) and Anthropic's `anthropic-ratelimit-*-reset`
/// (RFC 3339). For the reset headers, exhausted limits win; among those the
/// longest wait. Capped at an hour.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(Duration::from_millis(ms as u64).min(MAX_RETRY_AFTER));
    }
    if let Some(v) = get("retry-after") {
        if let Ok(secs) = v.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(Duration::from_millis((secs * 1000.0) as u64).min(MAX_RETRY_AFTER));
            }
        } else if let Ok(t) = chrono::DateTime::parse_from_rfc2822(v) {
            let ms = (t.with_timezone(&chrono::Utc) - crate::domain::Clock::now(&crate::domain::SystemClock)).num_milliseconds().max(0);
            return Some(Duration::from_millis(ms as u64).min(MAX_RETRY_AFTER));
        }
    }
    let mut exhausted: Vec<Duration> = Vec::new();
    let mut any: Vec<Duration> = Vec::new();
    for kind in ["requests", "tokens", "input-tokens", "output-tokens"] {
        let openai = get(&format!("x-ratelimit-reset-{kind}")).and_then(parse_go_duration);
        let remaining_oa = get(&format!("x-ratelimit-remaining-{kind}"));
        let anthropic = get(&format!("anthropic-ratelimit-{kind}-reset")).and_then(|v| {
            let t = chrono::DateTime::parse_from_rfc3339(v).ok()?;
            let ms = (t.with_timezone(&chrono::Utc) - crate::domain::Clock::now(&crate::domain::SystemClock)).num_milliseconds().max(0);
            Some(Duration::from_millis(ms as u64))
        });
        let remaining_an = get(&format!("anthropic-ratelimit-{kind}-remaining"));
        for (d, rem) in [(openai, remaining_oa), (anthropic, remaining_an)] {
            if let Some(d) = d {
                any.push(d);
                if rem == Some("0") {
                    exhausted.push(d);
                }
            }
        }
    }
    let pick = if exhausted.is_empty() { any.into_iter().min() } else { exhausted.into_iter().max() };
    pick.map(|d| d.min(MAX_RETRY_AFTER))
}

/// Parses OpenAI's Go-style durations: `1s`, `6m0s`, `1h2m3.5s`, `20ms`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total_ms: f64 = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut seen = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let value: f64 = num.parse().ok()?;
        num.clear();
        let unit_ms = match c {
            'h' => 3_600_000.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1.0
            }
            'm' => 60_000.0,
            's' => 1000.0,
            _ => return None,
        };
        total_ms += value * unit_ms;
        seen = true;
    }
    if !num.is_empty() {
        return None;
    }
    (seen && total_ms.is_finite()).then(|| Duration::from_millis(total_ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(parse_go_duration("12"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn retry_after_sources() {
        assert_eq!(retry_after(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")])), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&headers(&[("retry-after", "2")])), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&headers(&[("retry-after", "999999")])), Some(MAX_RETRY_AFTER));
        assert_eq!(
            retry_after(&headers(&[
                ("x-ratelimit-reset-requests", "1s"),
                ("x-ratelimit-remaining-requests", "5"),
                ("x-ratelimit-reset-tokens", "6m0s"),
                ("x-ratelimit-remaining-tokens", "0"),
            ])),
            Some(Duration::from_secs(360))
        );
        let soon = (crate::domain::Clock::now(&crate::domain::SystemClock) + chrono::Duration::seconds(30)).to_rfc3339();
        let d = retry_after(&headers(&[("anthropic-ratelimit-requests-reset", &soon), ("anthropic-ratelimit-requests-remaining", "0")]))
            .unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        assert_eq!(retry_after(&headers(&[("retry-after", "garbage")])), None);
    }

    #[test]
    fn classification_and_redaction() {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz123456";
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-proj-abc***************************3456. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let e = ProviderError::from_response("OpenAI", 401, &HeaderMap::new(), body, key);
        assert_eq!(e.class(), "auth");
        assert!(!e.to_string().contains("abc*"), "{e}");
        let e = ProviderError::from_response("OpenAI", 400, &HeaderMap::new(), format!("bad {key}").as_bytes(), key);
        assert!(!e.to_string().contains(key) && !format!("{e:?}").contains(key), "{e}");
        let q = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert_eq!(ProviderError::from_response("OpenAI", 429, &HeaderMap::new(), q, key).class(), "quota_exhausted");
        let o = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = ProviderError::from_response("Anthropic", 529, &HeaderMap::new(), o, key);
        assert_eq!((e.class(), e.is_retryable(), e.status_code()), ("overloaded", true, 503));
        let c = br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        let e = ProviderError::from_response("OpenAI", 400, &HeaderMap::new(), c, key);
        assert_eq!((e.class(), e.is_retryable(), e.counts_against_health()), ("context_length", false, false));
        let e = ProviderError::from_response("OpenAI", 502, &HeaderMap::new(), b"<html>bad gateway</html>", key);
        assert_eq!(e.class(), "server_error");
        assert!(e.to_string().contains("bad gateway"));
        assert_eq!(e.validation_status(), ValidationStatus::ServerError, "a provider that answers 502 was reached");
        let e = ProviderError::from_response("OpenAI", 500, &HeaderMap::new(), b"oops", key);
        assert_eq!(e.validation_status().as_str(), "server_error", "a 500 is not labelled unreachable");
    }
}
