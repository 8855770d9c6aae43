//! The Anthropic-compatible ingress: `POST /v1/messages` (plain and
//! streamed) and `POST /v1/messages/count_tokens` (estimated), for clients
//! written against Anthropic's SDKs. The supplier's gateway token comes in
//! `x-api-key` (what Anthropic's SDKs send) or `Authorization: Bearer`.
//!
//! A Messages request gets past the same ingress as a chat completion (the
//! token before the body, the body cap and read timeout, the model's limits),
//! takes an `Idempotency-Key` the same way (its own endpoint in the key's
//! fingerprint), and is then converted ([`request`]) into the OpenAI-shaped
//! [`crate::providers::ChatRequest`] the router takes: so it is routed,
//! limited, failed over, migrated and recorded exactly as one sent to
//! `/v1/chat/completions`, to whichever provider serves the supplier. The
//! router's answer is converted back ([`response`], [`stream`]); every error
//! is in Anthropic's shape ([`errors`]). The conversions are pure functions
//! (unit-tested against recorded streams of Anthropic's SDK tests); this
//! module only wires them to the gateway.
#![deny(clippy::unwrap_used, clippy::expect_used)] // the request path

use super::{AppState, RequestMeta, cache_request, idempotency, ingress, run_to_completion, with_cache, with_route};
use crate::domain::SupplierId;
use crate::domain::idempotency::Endpoint;
use crate::engine::router::ClientWatch;
use crate::gateway::ApiError;
use crate::providers::{ChatRequest, token_count};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub mod errors;
pub mod request;
pub mod response;
pub mod stream;

pub use stream::MESSAGE_STOP;

/// The gateway token of a Messages request: `x-api-key`, else `Authorization: Bearer`.
pub(super) fn token(h: &HeaderMap) -> Option<&str> {
    match h.get("x-api-key").and_then(|v| v.to_str().ok()) {
        Some(k) => Some(k.trim()),
        None => super::bearer(h),
    }
}

/// `POST /v1/messages`.
pub(super) async fn messages(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    // The token before the body: an unauthenticated body is never read.
    let auth = || Ok(st.router.authenticate(token(&headers))?);
    let (supplier, bytes) = match ingress::authenticated(auth, body, &headers, st.body, errors::into_response).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let result = async {
        let req = request::to_chat(&request::parse(&bytes)?, true)?;
        let req = ingress::check_chat(st.router.pricing(), req).await?;
        let cache = cache_request(&headers, Endpoint::Messages, &bytes)?;
        let ticket = match idempotency::begin(&st.router, supplier, &headers, Endpoint::Messages, &bytes).await? {
            idempotency::Begun::Replay(resp) => return Ok(resp),
            idempotency::Begun::Run(ticket) => ticket,
        };
        let meta = RequestMeta { cache: Some(cache), ..RequestMeta::of(&headers) };
        run_to_completion(&st, move |st, client| async move {
            let answer = Box::pin(async { Ok(serve(st, supplier, meta, req, client).await.unwrap_or_else(errors::into_response)) });
            Ok(idempotency::run(ticket, answer).await)
        })
        .await
    }
    .await;
    result.unwrap_or_else(errors::into_response)
}

/// A Messages request routed as a chat completion, on its own task (see
/// [`run_to_completion`]); the answer converted to Anthropic's shape.
async fn serve(
    st: Arc<AppState>,
    supplier: SupplierId,
    meta: RequestMeta,
    req: ChatRequest,
    client: ClientWatch,
) -> Result<Response, ApiError> {
    let caller = st.caller(supplier).with_idempotency_key(meta.idempotency_key.as_deref()).with_cache(meta.cache.as_ref());
    let (rt, rid) = (meta.request_type.as_deref(), meta.request_id.as_deref());
    let model = req.model.clone();
    if req.is_stream() {
        let s = st.router.chat_stream(caller, rt, rid, req).await?;
        let resp = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(stream::convert(s.body, &model)))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        return Ok(with_cache(with_route(resp, s.route, s.request_id, s.event_id), s.cache));
    }
    let a = st.router.chat(caller.watched_by(&client), rt, rid, req).await?;
    let Some(body) = response::to_message(&a.body, &model) else {
        // Recorded and billed already; the client is told, and may retry.
        tracing::error!(event_id = %a.event_id, "a chat answer could not be converted to an Anthropic message");
        return Err(ApiError::Internal);
    };
    let resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    Ok(with_cache(with_route(resp, a.route, a.request_id, a.event_id), a.cache))
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as Switchboard's
/// tokenizer estimates them (system, messages, images, tool calls and tool
/// definitions), without calling a provider or recording usage.
pub(super) async fn count_tokens(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let auth = || Ok(st.router.authenticate(token(&headers))?);
    let (_, bytes) = match ingress::authenticated(auth, body, &headers, st.body, errors::into_response).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let result = async {
        let req = request::to_chat(&request::parse(&bytes)?, false)?;
        let n = tokio::task::spawn_blocking(move || estimate(&req)).await.map_err(|e| {
            tracing::error!(error = %e, "counting a prompt's tokens failed");
            ApiError::Internal
        })?;
        let body = serde_json::json!({"input_tokens": n}).to_string();
        Ok::<_, ApiError>(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    }
    .await;
    result.unwrap_or_else(errors::into_response)
}

/// The prompt estimate of a converted request: the chat estimate plus the
/// tool definitions and the assistants' tool calls (JSON text the chat
/// estimate does not see).
pub fn estimate(req: &ChatRequest) -> u64 {
    let mut n = token_count::estimate_chat_prompt(req);
    if let Some(tools) = req.extra.get("tools") {
        n = n.saturating_add(token_count::count_text(&tools.to_string()));
    }
    for m in &req.messages {
        if let Some(calls) = m.extra.get("tool_calls") {
            n = n.saturating_add(token_count::count_text(&calls.to_string()));
        }
    }
    n
}
