//! Typed failures of the request path: why one route could not serve a
//! request ([`RouteFailure`], collected per attempt and per skipped account)
//! and why the router refused or failed a request as a whole ([`RouteError`]).
//! The final status is decided by matching on these variants, never on text.
//! How an error is written to a client (OpenAI's `type`, the JSON body, the
//! `retry-after` header) is the gateway's business (`gateway::error`).

use crate::domain::AccountId;
use crate::domain::routing::SkipReason;
use crate::providers::ProviderError;

/// Why one account did not serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// Its breaker refused the attempt.
    BreakerOpen,
    /// The platform quota had no room for the request on this account.
    QuotaUsedUp,
    /// Left out of the plan: breaker open, disabled or no key.
    Unavailable,
    /// Left out of the plan: the supplier does not allow failover to platform AI.
    FailoverForbidden,
    /// The account's provider offers no embeddings (Anthropic).
    NoEmbeddings,
    /// The request uses a feature the account's provider has no exact
    /// equivalent for (why, in words); the route is skipped.
    Untranslatable(String),
    /// The model table has no equivalent of `model` for the account's
    /// provider family; `offered`: the models the route does offer.
    ModelNotOffered { model: String, offered: Vec<String> },
    /// The provider answered with an error that another route may not repeat.
    Provider(ProviderError),
    /// The supplier has no account to route to at all.
    NoAccount,
}

impl FailureKind {
    /// The kind for an account the plan left out.
    pub fn skipped(why: SkipReason) -> Self {
        match why {
            SkipReason::Unavailable => FailureKind::Unavailable,
            SkipReason::QuotaExceeded => FailureKind::QuotaUsedUp,
            SkipReason::FailoverForbidden => FailureKind::FailoverForbidden,
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKind::BreakerOpen => f.write_str("breaker open"),
            FailureKind::QuotaUsedUp => f.write_str("platform quota used up"),
            FailureKind::Unavailable => f.write_str("unavailable (breaker open, disabled or no key)"),
            FailureKind::FailoverForbidden => f.write_str("failover to platform AI is off for this supplier"),
            FailureKind::NoEmbeddings => f.write_str("Anthropic offers no embeddings"),
            FailureKind::Untranslatable(why) => write!(f, "cannot serve this request exactly: {why}"),
            FailureKind::ModelNotOffered { model, offered } => write!(f, "no equivalent of '{model}' (offers {})", offered.join(", ")),
            FailureKind::Provider(e) => write!(f, "{e}"),
            FailureKind::NoAccount => f.write_str("no provider account is configured for this supplier"),
        }
    }
}

/// One route's failure: the account (its id and label, none for
/// [`FailureKind::NoAccount`]) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFailure {
    pub account: Option<(AccountId, String)>,
    pub kind: FailureKind,
}

impl RouteFailure {
    pub fn new(account: AccountId, label: &str, kind: FailureKind) -> Self {
        Self { account: Some((account, label.to_string())), kind }
    }
}

impl std::fmt::Display for RouteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.account {
            Some((_, label)) => write!(f, "{label}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// The failures of every route tried or skipped, as one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failures(pub Vec<RouteFailure>);

impl std::fmt::Display for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Why the router refused or failed a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("{0}")]
    BadRequest(String),
    #[error("unknown gateway token; send `Authorization: Bearer sbk_…` with a token issued by `switchboard token issue`")]
    UnknownToken,
    #[error("this gateway token was revoked; issue a new one with `switchboard token issue --supplier ID`")]
    RevokedToken,
    #[error("the model '{0}' is not offered here; GET /v1/models lists the models you can use")]
    UnknownModel(String),
    /// No route of the supplier serves the model or an equivalent of it.
    #[error("the model '{model}' has no equivalent on your provider route; it offers: {}", offered.join(", "))]
    ModelNotOnRoute { model: String, offered: Vec<String> },
    /// Every route was skipped because the request uses a feature its
    /// provider cannot serve exactly.
    #[error("no route can serve this request exactly: {0}")]
    Untranslatable(String),
    #[error("rate limit of {rpm} requests per minute for the {tier} tier reached; retry in {retry_after_secs} s")]
    RateLimited { rpm: u32, tier: String, retry_after_secs: u64 },
    #[error(
        "the monthly platform AI quota of {quota} tokens is used up ({used} used); it resets at {reset}. Ask your account manager about client AI."
    )]
    QuotaExceeded { quota: u64, used: u64, reset: String, retry_after_secs: u64 },
    /// The provider said the request itself is wrong (a 400 or a content
    /// filter's refusal): passed through, as another route would say the same.
    #[error("{}", .0.provider_message())]
    Upstream(ProviderError),
    #[error("no route could serve the request: {failures}")]
    AllRoutesFailed { status: u16, failures: Failures },
    /// The ledger's error (path and SQLite's text) is in the log, not in the answer.
    #[error("the usage of this request could not be recorded; please retry in a few seconds")]
    Ledger(String),
    /// The ledger cannot write: refused before any provider call.
    #[error(
        "Switchboard cannot record usage at the moment, so it takes no requests; nothing was sent to a provider and nothing was billed. Please retry in a few seconds."
    )]
    LedgerUnavailable,
}

impl RouteError {
    /// The HTTP status that fits.
    pub fn status_code(&self) -> u16 {
        match self {
            RouteError::BadRequest(_) => 400,
            RouteError::UnknownToken => 401,
            RouteError::RevokedToken => 403,
            RouteError::UnknownModel(_) | RouteError::ModelNotOnRoute { .. } => 404,
            RouteError::Untranslatable(_) => 400,
            RouteError::RateLimited { .. } | RouteError::QuotaExceeded { .. } => 429,
            RouteError::Upstream(e) => e.status_code(),
            RouteError::AllRoutesFailed { status, .. } => *status,
            RouteError::Ledger(_) | RouteError::LedgerUnavailable => 503,
        }
    }

    /// A stable short name: the ledger's `error_class` for the failed
    /// request, and the `code` the gateway answers with.
    pub fn class(&self) -> &'static str {
        match self {
            RouteError::BadRequest(_) => "invalid_request",
            RouteError::UnknownToken => "invalid_api_key",
            RouteError::RevokedToken => "token_revoked",
            RouteError::UnknownModel(_) | RouteError::ModelNotOnRoute { .. } => "model_not_found",
            RouteError::Untranslatable(_) => "unsupported_feature",
            RouteError::RateLimited { .. } => "rate_limit_exceeded",
            RouteError::QuotaExceeded { .. } => "quota_exceeded",
            RouteError::Upstream(e) => e.class(),
            RouteError::AllRoutesFailed { .. } => "all_routes_failed",
            RouteError::Ledger(_) | RouteError::LedgerUnavailable => "ledger_unavailable",
        }
    }

    /// Seconds after which the same request may succeed, when that is known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            RouteError::RateLimited { retry_after_secs, .. } | RouteError::QuotaExceeded { retry_after_secs, .. } => {
                Some(*retry_after_secs)
            }
            RouteError::AllRoutesFailed { .. } => Some(1),
            RouteError::Ledger(_) | RouteError::LedgerUnavailable => Some(crate::engine::ledger::RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_before_and_decide_on_variants() {
        let f = Failures(vec![
            RouteFailure::new(AccountId(1), "Primary", FailureKind::BreakerOpen),
            RouteFailure::new(AccountId(2), "WedSync OpenAI", FailureKind::QuotaUsedUp),
            RouteFailure::new(AccountId(3), "WedSync Anthropic", FailureKind::skipped(SkipReason::FailoverForbidden)),
            RouteFailure { account: None, kind: FailureKind::NoAccount },
        ]);
        assert_eq!(
            f.to_string(),
            "Primary: breaker open; WedSync OpenAI: platform quota used up; \
             WedSync Anthropic: failover to platform AI is off for this supplier; \
             no provider account is configured for this supplier"
        );
        let e = RouteError::AllRoutesFailed { status: 502, failures: f };
        assert!(e.to_string().starts_with("no route could serve the request: Primary: breaker open; "));
        assert_eq!((e.status_code(), e.class(), e.retry_after_secs()), (502, "all_routes_failed", Some(1)));
        // A provider's refusal passes its own message, status and class through.
        let p = ProviderError::ContentFiltered { provider: "OpenAI", message: "filtered".into() };
        let e = RouteError::Upstream(p);
        assert_eq!((e.to_string().as_str(), e.status_code(), e.class()), ("filtered", 400, "content_filtered"));
        assert_eq!(FailureKind::skipped(SkipReason::QuotaExceeded), FailureKind::QuotaUsedUp);
    }
}
