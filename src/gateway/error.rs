//! Errors in OpenAI's shape: the gateway's own refusals (a body too large or
//! unreadable, an unknown endpoint) and the router's [`RouteError`], mapped
//! to an HTTP status, OpenAI's `error.type` and `error.code`, a JSON body and
//! a `retry-after` header where one applies.

use crate::engine::router::RouteError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why the gateway answers with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The router refused or failed the request.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The request could not be read or parsed.
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(
        "no such endpoint; Switchboard serves POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models, GET /healthz and GET /metrics"
    )]
    NoSuchEndpoint,
    /// A bad `Idempotency-Key`, or one whose record refuses the request.
    #[error(transparent)]
    Idempotency(#[from] super::idempotency::IdemRefusal),
}

impl ApiError {
    pub fn status_code(&self) -> u16 {
        match self {
            ApiError::Route(e) => e.status_code(),
            ApiError::BadRequest(_) => 400,
            ApiError::TooLarge { .. } => 413,
            ApiError::NoSuchEndpoint => 404,
            ApiError::Idempotency(e) => e.status_code(),
        }
    }

    /// OpenAI's `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) | ApiError::TooLarge { .. } | ApiError::NoSuchEndpoint => "invalid_request_error",
            ApiError::Idempotency(e) => e.kind(),
            ApiError::Route(e) => match e {
                RouteError::BadRequest(_) | RouteError::UnknownModel(_) | RouteError::Upstream(_) => "invalid_request_error",
                RouteError::UnknownToken | RouteError::RevokedToken => "authentication_error",
                RouteError::RateLimited { .. } | RouteError::QuotaExceeded { .. } => "rate_limit_error",
                RouteError::AllRoutesFailed { .. } | RouteError::Ledger(_) => "api_error",
            },
        }
    }

    /// OpenAI's `error.code` (for the router's errors, the class it records).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Route(e) => e.class(),
            ApiError::BadRequest(_) | ApiError::NoSuchEndpoint => "invalid_request",
            ApiError::TooLarge { .. } => "request_too_large",
            ApiError::Idempotency(e) => e.code(),
        }
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::Route(e) => e.retry_after_secs(),
            ApiError::Idempotency(e) => e.retry_after_secs(),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status_code()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = serde_json::json!({
            "error": { "message": self.to_string(), "type": self.kind(), "code": self.code(), "param": null }
        });
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
        if let Some(secs) = self.retry_after_secs() {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
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
    }
}
