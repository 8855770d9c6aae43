//! Errors in Anthropic's shape for the Messages endpoints:
//! `{"type":"error","error":{"type":…,"message":…}}` with the same HTTP
//! status, `retry-after` header and words as the OpenAI-shaped error the
//! gateway gives elsewhere ([`ApiError`]), and the type Anthropic's SDKs
//! expect for the status: 400 `invalid_request_error`, 401
//! `authentication_error`, 403 `permission_error`, 404 `not_found_error`,
//! 413 `request_too_large`, 429 `rate_limit_error`, 503/529
//! `overloaded_error` when a provider or the gateway is overloaded, other 5xx
//! `api_error`. Anthropic's SDKs choose their exception class by status.

use crate::engine::router::{FailureKind, RouteError};
use crate::gateway::ApiError;
use crate::providers::ProviderError;
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Anthropic's `error.type` for a gateway error.
pub fn error_type(e: &ApiError) -> &'static str {
    match e {
        ApiError::Busy => return "overloaded_error",
        ApiError::Route(RouteError::Upstream(ProviderError::Overloaded { .. })) => return "overloaded_error",
        ApiError::Route(RouteError::AllRoutesFailed { failures, .. })
            if !failures.0.is_empty()
                && failures.0.iter().all(|f| {
                    matches!(
                        f.kind,
                        FailureKind::Provider(ProviderError::Overloaded { .. }) | FailureKind::BreakerOpen | FailureKind::Unavailable
                    )
                }) =>
        {
            return "overloaded_error";
        }
        _ => {}
    }
    match e.status_code() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic's `error.type` for an error a provider reported in a stream
/// (its OpenAI-shaped `error.type`, or the provider error's class).
pub fn error_type_for_provider(kind: Option<&str>) -> &'static str {
    match kind {
        Some("overloaded" | "overloaded_error") => "overloaded_error",
        Some("rate_limited" | "rate_limit_error" | "rate_limit_exceeded") => "rate_limit_error",
        Some("invalid_request_error" | "bad_request") => "invalid_request_error",
        Some("authentication_error" | "auth") => "authentication_error",
        _ => "api_error",
    }
}

/// The JSON body of an Anthropic error.
pub fn body(kind: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
}

/// The response for `e` on a Messages endpoint: the gateway's usual
/// response for it (status, `retry-after`, what it logs and audits),
/// with an Anthropic-shaped body.
pub fn into_response(e: ApiError) -> Response {
    let json = body(error_type(&e), &e.to_string());
    let resp = e.into_response();
    let (mut parts, _) = resp.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccountId;
    use crate::engine::router::{Failures, RouteFailure};

    #[test]
    fn statuses_map_to_anthropic_types() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::BadRequest("x".into()), 400, "invalid_request_error"),
            (RouteError::UnknownToken.into(), 401, "authentication_error"),
            (RouteError::RevokedToken.into(), 403, "permission_error"),
            (RouteError::UnknownModel("gpt-9".into()).into(), 404, "not_found_error"),
            (ApiError::TooLarge { limit: 10 }, 413, "request_too_large"),
            (ApiError::Timeout { secs: 5 }, 408, "invalid_request_error"),
            (RouteError::QuotaExceeded { quota: 1, used: 2, reset: "r".into(), retry_after_secs: 9 }.into(), 429, "rate_limit_error"),
            (ApiError::TooManyConnections, 429, "rate_limit_error"),
            (ApiError::Internal, 500, "api_error"),
            (ApiError::Busy, 503, "overloaded_error"),
            (RouteError::LedgerUnavailable.into(), 503, "api_error"),
        ];
        for (e, status, kind) in cases {
            assert_eq!((e.status_code(), error_type(&e)), (status, kind), "{e}");
        }
    }

    #[test]
    fn overloaded_providers_read_as_overloaded() {
        let over = |id| {
            RouteFailure::new(
                AccountId(id),
                "a",
                FailureKind::Provider(ProviderError::Overloaded {
                    provider: "Anthropic",
                    status: 529,
                    retry_after: None,
                    message: "busy".into(),
                }),
            )
        };
        let e = ApiError::from(RouteError::AllRoutesFailed { status: 503, failures: Failures(vec![over(1), over(2)]) });
        assert_eq!(error_type(&e), "overloaded_error");
        let timeout = RouteFailure::new(AccountId(3), "b", FailureKind::Provider(ProviderError::Timeout { provider: "OpenAI" }));
        let e = ApiError::from(RouteError::AllRoutesFailed { failures: Failures(vec![over(1), timeout]), status: 504 });
        assert_eq!(error_type(&e), "api_error");
        assert_eq!(error_type_for_provider(Some("overloaded")), "overloaded_error");
        assert_eq!(error_type_for_provider(None), "api_error");
    }

    #[tokio::test]
    async fn the_response_keeps_status_and_retry_after_with_anthropics_body() {
        let e = ApiError::from(RouteError::QuotaExceeded { quota: 1, used: 2, reset: "July".into(), retry_after_secs: 9 });
        let words = e.to_string();
        let resp = into_response(e);
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "9");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v, serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": words}}));
    }
}
