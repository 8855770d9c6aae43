//! Errors in OpenAI's shape: the gateway's own refusals (a body too large,
//! too slow or unreadable, a prompt too long for its model, an unknown
//! endpoint, a full gateway) and the router's [`RouteError`], mapped to an
//! HTTP status, OpenAI's `error.type` and `error.code`, a JSON body and a
//! `retry-after` header where one applies.
//!
//! What a supplier's client reads never names WedSync's platform: when every
//! route failed it reads which kinds of failure happened and on which kind of
//! route (platform or its own), never account labels, provider organisation
//! ids or upstream error bodies; a ledger failure reads as a generic 503
//! (no database path). The details go to the log, and the gateway's audit
//! of failed requests ([`FailureDetail`]).

use crate::engine::router::{FailureKind, Failures, RouteError};
use crate::providers::ProviderError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

/// Why the gateway answers with an error. `Display` is what the client reads.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The router refused or failed the request.
    #[error("{}", client_message(.0))]
    Route(#[from] RouteError),
    /// The request could not be read or parsed.
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(
        "no such endpoint; Switchboard serves POST /v1/chat/completions, POST /v1/embeddings, POST /v1/messages, POST /v1/messages/count_tokens, GET /v1/models, GET /healthz and GET /metrics"
    )]
    NoSuchEndpoint,
    /// The task serving the request failed (a bug: it panicked); details go to the log.
    #[error("the gateway failed while serving this request; it was logged, and the request may be retried")]
    Internal,
    /// The body did not arrive within the body read timeout.
    #[error("the request body did not arrive within {secs} s; send it faster or in a smaller request")]
    Timeout { secs: u64 },
    /// The prompt (or one embeddings input) is clearly longer than the model takes.
    #[error(
        "this model's maximum context length is {context} tokens, but the request has about {counted} tokens ({model}); shorten the messages or the input"
    )]
    ContextLength { model: String, context: u64, counted: u64 },
    /// `max_tokens` / `max_completion_tokens` above the model's output cap.
    #[error("{param} is too large: {asked}. {model} supports at most {max} output tokens; lower {param}")]
    OutputTooLarge { model: String, asked: u64, max: u64, param: &'static str },
    /// Every connection the gateway allows is open.
    #[error("the gateway is at its connection limit; retry shortly")]
    Busy,
    /// This client address has as many connections open as it may.
    #[error("too many open connections from this address; reuse connections or retry shortly")]
    TooManyConnections,
    /// `/metrics` or `/healthz` without the operations token they require.
    #[error("this endpoint needs `Authorization: Bearer` with the metrics token (SWITCHBOARD_METRICS_TOKEN)")]
    OpsUnauthorized,
    /// A bad `Idempotency-Key`, or one whose record refuses the request.
    #[error(transparent)]
    Idempotency(#[from] super::idempotency::IdemRefusal),
}

/// The message a supplier's client reads for a router error: the router's
/// own words, except where they would name the platform's accounts, its
/// providers' organisations or the database.
fn client_message(e: &RouteError) -> String {
    match e {
        RouteError::AllRoutesFailed { failures, .. } => format!("no route could serve the request: {}", summarise(failures)),
        RouteError::Ledger(_) => {
            "the usage of this request could not be recorded, so it was not served or billed; please retry shortly".to_string()
        }
        RouteError::Upstream(p) => scrub(&p.provider_message()),
        other => other.to_string(),
    }
}

/// A kind of failure, as a client may read it.
fn kind_name(k: &FailureKind) -> &'static str {
    match k {
        FailureKind::BreakerOpen | FailureKind::Unavailable => "provider unavailable (circuit breaker open, disabled or no key)",
        FailureKind::QuotaUsedUp => "platform quota used up",
        FailureKind::FailoverForbidden => "failover to platform AI is off for this supplier",
        FailureKind::NoEmbeddings => "provider offers no embeddings",
        FailureKind::Untranslatable(_) => "provider cannot serve this request exactly",
        FailureKind::ModelNotOffered { .. } => "model not offered on this route",
        FailureKind::NoAccount => "no provider account is configured for this supplier",
        FailureKind::Provider(p) => match p {
            ProviderError::Auth { .. } => "provider rejected the account's key",
            ProviderError::RateLimited { .. } => "provider rate limit",
            ProviderError::QuotaExhausted { .. } => "provider quota or spend limit exhausted",
            ProviderError::Overloaded { .. } => "provider overloaded",
            ProviderError::Server { .. } => "provider server error",
            ProviderError::Timeout { .. } => "provider timeout",
            ProviderError::Connect { .. } => "provider unreachable",
            ProviderError::BadRequest { .. } => "provider refused the request",
            ProviderError::ContentFiltered { .. } => "provider content filter",
            ProviderError::InvalidResponse { .. } => "provider sent an unreadable answer",
            ProviderError::StreamCut { .. } => "provider stream cut",
            ProviderError::Unsupported { .. } => "provider does not support this request",
            ProviderError::Untranslatable { .. } => "provider cannot serve this request exactly",
        },
    }
}

/// "provider timeout (2 accounts), platform quota used up (1 account)": the
/// kinds of failure, counted, in the order first seen. No labels, no ids, no
/// upstream text.
pub fn summarise(failures: &Failures) -> String {
    let mut order: Vec<&'static str> = Vec::new();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for f in &failures.0 {
        let k = kind_name(&f.kind);
        if !counts.contains_key(k) {
            order.push(k);
        }
        let n = counts.entry(k).or_insert(0);
        *n = n.saturating_add(1);
    }
    let parts: Vec<String> = order
        .into_iter()
        .map(|k| {
            let n = counts.get(k).copied().unwrap_or(0);
            match (n, k) {
                (_, "no provider account is configured for this supplier") => k.to_string(),
                (1, _) => format!("{k} (1 account)"),
                (n, _) => format!("{k} ({n} accounts)"),
            }
        })
        .collect();
    if parts.is_empty() { "no provider account could be tried".to_string() } else { parts.join(", ") }
}

/// A provider's message with identifiers of its customer taken out:
/// organisation and project ids (`org-…`, `proj_…`), keys (`sk-…`) and
/// request ids (`req_…`) become their prefix and `…`.
pub fn scrub(message: &str) -> String {
    const PREFIXES: [&str; 5] = ["org-", "org_", "proj_", "sk-", "req_"];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while !rest.is_empty() {
        let hit = PREFIXES.iter().filter_map(|p| rest.find(p).map(|i| (i, *p))).min_by_key(|(i, _)| *i);
        let Some((i, p)) = hit else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..i + p.len()]);
        let after = &rest[i + p.len()..];
        if rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric()) {
            // Inside a word ("task-1"): not an id.
            rest = after;
            continue;
        }
        let id_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).unwrap_or(after.len());
        if id_len > 0 {
            out.push('…');
        }
        rest = &after[id_len..];
    }
    out
}

/// The full failure of a request, for the gateway's log and audit (never
/// the client): put in a response's extensions by [`ApiError`].
#[derive(Debug, Clone)]
pub struct FailureDetail(pub String);

impl ApiError {
    pub fn status_code(&self) -> u16 {
        match self {
            ApiError::Route(e) => e.status_code(),
            ApiError::BadRequest(_) | ApiError::ContextLength { .. } | ApiError::OutputTooLarge { .. } => 400,
            ApiError::TooLarge { .. } => 413,
            ApiError::NoSuchEndpoint => 404,
            ApiError::Internal => 500,
            ApiError::Timeout { .. } => 408,
            ApiError::Busy => 503,
            ApiError::TooManyConnections => 429,
            ApiError::OpsUnauthorized => 401,
            ApiError::Idempotency(e) => e.status_code(),
        }
    }

    /// OpenAI's `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_)
            | ApiError::TooLarge { .. }
            | ApiError::NoSuchEndpoint
            | ApiError::Timeout { .. }
            | ApiError::ContextLength { .. }
            | ApiError::OutputTooLarge { .. } => "invalid_request_error",
            ApiError::Busy | ApiError::Internal => "api_error",
            ApiError::TooManyConnections => "rate_limit_error",
            ApiError::OpsUnauthorized => "authentication_error",
            ApiError::Idempotency(e) => e.kind(),
            ApiError::Route(e) => match e {
                RouteError::BadRequest(_)
                | RouteError::UnknownModel(_)
                | RouteError::ModelNotOnRoute { .. }
                | RouteError::Untranslatable(_)
                | RouteError::Upstream(_) => "invalid_request_error",
                RouteError::UnknownToken | RouteError::RevokedToken => "authentication_error",
                RouteError::RateLimited { .. } | RouteError::QuotaExceeded { .. } => "rate_limit_error",
                RouteError::AllRoutesFailed { .. } | RouteError::Ledger(_) | RouteError::LedgerUnavailable => "api_error",
            },
        }
    }

    /// OpenAI's `error.code` (for the router's errors, the class it records).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Route(e) => e.class(),
            ApiError::BadRequest(_) | ApiError::NoSuchEndpoint => "invalid_request",
            ApiError::TooLarge { .. } => "request_too_large",
            ApiError::Internal => "internal_error",
            ApiError::Timeout { .. } => "request_timeout",
            ApiError::ContextLength { .. } => "context_length_exceeded",
            ApiError::OutputTooLarge { .. } => "invalid_value",
            ApiError::Busy => "server_busy",
            ApiError::TooManyConnections => "too_many_connections",
            ApiError::OpsUnauthorized => "invalid_api_key",
            ApiError::Idempotency(e) => e.code(),
        }
    }

    /// OpenAI's `error.param`: the request field at fault, when there is one.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::OutputTooLarge { param, .. } => Some(param),
            ApiError::ContextLength { .. } => Some("messages"),
            _ => None,
        }
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::Route(e) => e.retry_after_secs(),
            ApiError::Busy | ApiError::TooManyConnections => Some(1),
            ApiError::Idempotency(e) => e.retry_after_secs(),
            _ => None,
        }
    }

    /// The JSON body: `{"error": {"message", "type", "code", "param"}}`.
    pub fn json_body(&self) -> String {
        serde_json::json!({
            "error": { "message": self.to_string(), "type": self.kind(), "code": self.code(), "param": self.param() }
        })
        .to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status_code()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], self.json_body()).into_response();
        if let Some(secs) = self.retry_after_secs() {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::Route(e @ (RouteError::AllRoutesFailed { .. } | RouteError::Ledger(_) | RouteError::Upstream(_))) = &self {
            // The words the client did not get: for the log and the audit.
            let detail = e.to_string();
            tracing::warn!(status = status.as_u16(), class = e.class(), detail = %detail, "request failed");
            if matches!(e, RouteError::AllRoutesFailed { .. }) {
                resp.extensions_mut().insert(FailureDetail(detail));
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_errors_keep_their_openai_shape() {
        let e = ApiError::from(RouteError::UnknownToken);
        assert_eq!((e.status_code(), e.kind(), e.code()), (401, "authentication_error", "invalid_api_key"));
        let e = ApiError::from(RouteError::QuotaExceeded { quota: 1, used: 2, reset: "r".into(), retry_after_secs: 9 });
        assert_eq!((e.status_code(), e.kind(), e.code(), e.retry_after_secs()), (429, "rate_limit_error", "quota_exceeded", Some(9)));
        let e = ApiError::NoSuchEndpoint;
        assert_eq!((e.status_code(), e.kind(), e.code()), (404, "invalid_request_error", "invalid_request"));
        assert_eq!(ApiError::TooLarge { limit: 5 }.to_string(), "the request body is larger than 5 bytes");
        // The ledger's trouble: a generic 503 to retry, never the database's path or SQLite's text.
        for e in [RouteError::LedgerUnavailable, RouteError::Ledger("/srv/sb.db: database or disk is full".into())] {
            let e = ApiError::from(e);
            assert_eq!((e.status_code(), e.kind(), e.code(), e.retry_after_secs()), (503, "api_error", "ledger_unavailable", Some(2)));
            assert!(!e.to_string().contains("sb.db") && !e.to_string().contains("full"), "{e}");
        }
        let e = ApiError::OutputTooLarge { model: "gpt-4o".into(), asked: 20_000, max: 16_384, param: "max_tokens" };
        assert_eq!((e.status_code(), e.code(), e.param()), (400, "invalid_value", Some("max_tokens")));
        let e = ApiError::ContextLength { model: "gpt-4o".into(), context: 128_000, counted: 200_000 };
        assert_eq!((e.status_code(), e.code()), (400, "context_length_exceeded"));
        assert_eq!((ApiError::Timeout { secs: 1 }.status_code(), ApiError::Timeout { secs: 1 }.code()), (408, "request_timeout"));
    }

    #[test]
    fn all_routes_failed_names_kinds_never_labels_or_org_ids() {
        use crate::domain::AccountId;
        use crate::engine::router::RouteFailure;
        let timeout =
            |id, label: &str| RouteFailure::new(AccountId(id), label, FailureKind::Provider(ProviderError::Timeout { provider: "OpenAI" }));
        let quota =
            ProviderError::QuotaExhausted { provider: "OpenAI", message: "You exceeded your quota for organization org-AbC123xyz".into() };
        let f = Failures(vec![
            timeout(1, "WedSync OpenAI primary"),
            RouteFailure::new(AccountId(2), "WedSync Anthropic", FailureKind::BreakerOpen),
            timeout(3, "WedSync Azure EU"),
            RouteFailure::new(AccountId(4), "WedSync OpenAI billing", FailureKind::Provider(quota)),
        ]);
        let e = ApiError::from(RouteError::AllRoutesFailed { status: 504, failures: f });
        let msg = e.to_string();
        assert_eq!(
            msg,
            "no route could serve the request: provider timeout (2 accounts), provider unavailable (circuit breaker open, disabled or no key) (1 account), provider quota or spend limit exhausted (1 account)"
        );
        let body = e.json_body();
        for leak in ["WedSync", "org-", "AbC123", "Azure EU"] {
            assert!(!body.contains(leak), "{leak} in {body}");
        }
        let resp = e.into_response();
        let detail = resp.extensions().get::<FailureDetail>().unwrap();
        assert!(detail.0.contains("WedSync Azure EU") && detail.0.contains("org-AbC123xyz"), "the log keeps the details");
        let e = ApiError::from(RouteError::Ledger("database /home/wedsync/.local/share/switchboard.db is locked".into()));
        assert!(!e.to_string().contains("/home") && e.status_code() == 503, "{e}");
    }

    #[test]
    fn upstream_messages_lose_their_ids() {
        assert_eq!(
            scrub("Invalid value for org-9fXq2 in project proj_abc_DEF (request req_123); key sk-proj-1234567890abcdef"),
            "Invalid value for org-… in project proj_… (request req_…); key sk-…"
        );
        assert_eq!(scrub("plain words, org- alone, xorg-1 stays, org-2"), "plain words, org- alone, xorg-1 stays, org-…");
        assert_eq!(scrub("é org-ü"), "é org-ü");
        let e = ApiError::from(RouteError::Upstream(ProviderError::BadRequest {
            provider: "OpenAI",
            status: 400,
            context_length: false,
            message: "Bad 'temperature' for org-XYZ".into(),
        }));
        assert_eq!(e.to_string(), "Bad 'temperature' for org-…");
    }
}
