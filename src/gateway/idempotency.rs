//! The gateway's side of idempotency keys (the rules are
//! `domain::idempotency`'s, the records `engine::idempotency`'s): reading
//! and validating the `Idempotency-Key` header, answering a replay or a
//! refusal in OpenAI's error shape ([`IdemRefusal`]), and completing a new
//! attempt's ticket with the final response — a plain body as it is, a
//! stream's SSE bytes once the stream has ended with `data: [DONE]` (or, on
//! `/v1/messages`, Anthropic's `message_stop` event).
//!
//! A handler calls [`begin`] after the body is parsed (a body that does not
//! parse is refused without touching the key) and before routing, then wraps
//! the routing future in [`run`]. When the routing moves onto a task of its
//! own (so that it finishes when the client hangs up), `run(ticket, fut)` is
//! what that task runs: the completion is then written whatever the client does.

use super::ApiError;
use crate::domain::SupplierId;
use crate::domain::idempotency::{BodyState, Endpoint, IdempotencyKey, KeyError, keeps};
use crate::engine::idempotency::{Begin, Refusal, Ticket};
use crate::engine::router::Router;
use crate::store::StoredAnswer;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::pin::Pin;

/// The header a replayed answer carries (Stripe's name).
pub const REPLAYED: &str = "idempotent-replayed";

/// Headers kept with an answer and sent again with its replay.
const REPLAYED_HEADERS: [&str; 5] = ["content-type", "cache-control", "x-switchboard-route", "x-request-id", "x-switchboard-event-id"];

/// Why a request with an `Idempotency-Key` is refused.
#[derive(Debug, thiserror::Error)]
pub enum IdemRefusal {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "a request with this Idempotency-Key is still being served; retry when it has finished to get its answer (a new request needs a new key)"
    )]
    InFlight,
    #[error(
        "a request with this Idempotency-Key was in flight when Switchboard stopped, so its outcome is unknown (it may have reached the provider); the key may be retried in {retry_after_secs} s, or send a new key"
    )]
    OutcomeUnknown { retry_after_secs: u64 },
    #[error(
        "this Idempotency-Key was already used with a different request{}; keys are bound to their first request for 24 hours: send a new key for a new request",
        on_endpoint(*.endpoint)
    )]
    Mismatch { endpoint: Endpoint },
    #[error(
        "the request with this Idempotency-Key was answered (and billed once), but its answer {} so it cannot be sent again; send a new key to make a new request",
        match .0 { BodyState::TooLarge => "was larger than Switchboard keeps for replay,", _ => "is no longer kept (the oldest answers are dropped to bound storage),", }
    )]
    NotKept(BodyState),
    #[error("idempotency keys cannot be checked right now; the request was not sent to any provider: please retry")]
    Unavailable,
}

fn on_endpoint(e: Endpoint) -> String {
    format!(" body (on {})", e.path())
}

impl IdemRefusal {
    pub fn status_code(&self) -> u16 {
        match self {
            IdemRefusal::Key(_) => 400,
            IdemRefusal::InFlight | IdemRefusal::OutcomeUnknown { .. } | IdemRefusal::NotKept(_) => 409,
            IdemRefusal::Mismatch { .. } => 422,
            IdemRefusal::Unavailable => 503,
        }
    }
    /// OpenAI's `error.type` (Stripe's `idempotency_error` for key conflicts).
    pub fn kind(&self) -> &'static str {
        match self {
            IdemRefusal::Key(_) => "invalid_request_error",
            IdemRefusal::Unavailable => "api_error",
            _ => "idempotency_error",
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            IdemRefusal::Key(_) => "invalid_idempotency_key",
            IdemRefusal::InFlight => "idempotency_key_in_use",
            IdemRefusal::OutcomeUnknown { .. } => "idempotency_outcome_unknown",
            IdemRefusal::Mismatch { .. } => "idempotency_key_reused",
            IdemRefusal::NotKept(_) => "idempotent_answer_unavailable",
            IdemRefusal::Unavailable => "idempotency_unavailable",
        }
    }
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            IdemRefusal::InFlight | IdemRefusal::Unavailable => Some(1),
            IdemRefusal::OutcomeUnknown { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

impl From<Refusal> for IdemRefusal {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::InFlight => IdemRefusal::InFlight,
            Refusal::OutcomeUnknown { retry_after_secs } => IdemRefusal::OutcomeUnknown { retry_after_secs },
            Refusal::Mismatch { endpoint } => IdemRefusal::Mismatch { endpoint },
            Refusal::NotKept(b) => IdemRefusal::NotKept(b),
        }
    }
}

/// What [`begin`] decided.
pub(super) enum Begun {
    /// Serve the request (with a ticket when it carried a key).
    Run(Option<Ticket>),
    /// The stored answer, ready to send.
    Replay(Response),
}

/// Reads the request's `Idempotency-Key` (none: [`Begun::Run`] without a
/// ticket) and begins the key's attempt, or answers from its record.
pub(super) async fn begin(
    router: &Router,
    supplier: SupplierId,
    headers: &HeaderMap,
    endpoint: Endpoint,
    body: &[u8],
) -> Result<Begun, ApiError> {
    let mut values = headers.get_all(super::IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else { return Ok(Begun::Run(None)) };
    if values.next().is_some() {
        return Err(IdemRefusal::Key(KeyError::Repeated).into());
    }
    let key = IdempotencyKey::parse(value.as_bytes()).map_err(IdemRefusal::Key)?;
    match router.idempotency().begin(supplier, key, endpoint, body).await {
        Ok(Begin::Run(t)) => Ok(Begun::Run(Some(t))),
        Ok(Begin::Replay(answer)) => Ok(Begun::Replay(replay(&answer))),
        Ok(Begin::Refused(r)) => Err(IdemRefusal::from(r).into()),
        Err(e) => {
            tracing::error!(error = %e, "idempotency records unavailable; request refused before routing");
            Err(IdemRefusal::Unavailable.into())
        }
    }
}

/// Awaits `answer` (the routing and the response built from it) and settles
/// the ticket with it: a successful plain answer is recorded before it is
/// returned; a stream is recorded when it has ended completely; any error
/// answer leaves the key retryable.
///
/// `answer` comes boxed: an `async fn` keeps its argument and the future it
/// awaits as two slots of its own state, so an unboxed router future (~6 KB)
/// made this one and the request's task future around it twice that size,
/// copied whole on every move (`clippy::large_futures`; rust-lang/rust#62958).
pub(super) async fn run(ticket: Option<Ticket>, answer: Pin<Box<impl Future<Output = Result<Response, ApiError>>>>) -> Response {
    let resp = answer.await.unwrap_or_else(IntoResponse::into_response);
    let Some(ticket) = ticket else { return resp };
    let status = resp.status().as_u16();
    if !keeps(status) {
        ticket.fail(Some(status), request_id(resp.headers()));
        return resp;
    }
    let is_stream = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (parts, body) = resp.into_parts();
    if is_stream {
        let s = capture(ticket, request_id(&parts.headers), kept_headers(&parts.headers), status, body);
        return Response::from_parts(parts, Body::from_stream(s));
    }
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            let stored =
                StoredAnswer { status, request_id: request_id(&parts.headers), headers: kept_headers(&parts.headers), body: bytes.clone() };
            ticket.complete(stored).await;
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(e) => {
            tracing::error!(error = %e, "an answer's body could not be read");
            drop(ticket);
            ApiError::from(IdemRefusal::Unavailable).into_response()
        }
    }
}

fn request_id(h: &HeaderMap) -> Option<String> {
    super::header_str(h, &super::REQUEST_ID).map(str::to_string)
}

fn kept_headers(h: &HeaderMap) -> Vec<(String, String)> {
    REPLAYED_HEADERS
        .iter()
        .filter_map(|name| h.get(*name).and_then(|v| v.to_str().ok()).map(|v| (name.to_string(), v.to_string())))
        .collect()
}

/// The stored answer as a response, marked as a replay.
fn replay(a: &StoredAnswer) -> Response {
    let mut resp = Response::new(Body::from(a.body.clone()));
    *resp.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    for (name, value) in &a.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            h.insert(n, v);
        }
    }
    h.insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}

/// A stream's end marker: a stream that did not end with it was cut.
const DONE: &[u8] = b"data: [DONE]\n\n";
/// The end marker of an Anthropic-shaped stream (`/v1/messages`).
const MESSAGE_STOP: &[u8] = super::anthropic::MESSAGE_STOP;

struct Capture {
    inner: axum::body::BodyDataStream,
    ticket: Option<Ticket>,
    /// The bytes so far; `None` once they passed the cap per answer.
    buf: Option<Vec<u8>>,
    /// The last bytes seen, for the end marker.
    tail: Vec<u8>,
    status: u16,
    request_id: Option<String>,
    headers: Vec<(String, String)>,
}

impl Capture {
    fn push(&mut self, b: &Bytes) {
        let cap = self.ticket.as_ref().map_or(0, Ticket::max_answer_bytes);
        if let Some(buf) = &mut self.buf {
            if buf.len().saturating_add(b.len()) > cap {
                self.buf = None;
            } else {
                buf.extend_from_slice(b);
            }
        }
        self.tail.extend_from_slice(b);
        let extra = self.tail.len().saturating_sub(DONE.len().max(MESSAGE_STOP.len()));
        self.tail.drain(..extra);
    }

    async fn finish(&mut self) {
        let Some(ticket) = self.ticket.take() else { return };
        if !self.tail.ends_with(DONE) && !self.tail.ends_with(MESSAGE_STOP) {
            // Cut: the key may be retried.
            return drop(ticket);
        }
        match self.buf.take() {
            Some(body) => {
                let answer = StoredAnswer {
                    status: self.status,
                    request_id: self.request_id.take(),
                    headers: std::mem::take(&mut self.headers),
                    body: Bytes::from(body),
                };
                ticket.complete(answer).await;
            }
            None => ticket.complete_unkept(self.status, self.request_id.take()).await,
        }
    }
}

/// Forwards a stream's bytes, holding a copy; completes the ticket once the
/// stream has ended with its end marker (before the body's end reaches the
/// client). A stream cut upstream, failing, or dropped because the client
/// went away drops the ticket: the key may be retried.
fn capture(
    ticket: Ticket,
    request_id: Option<String>,
    headers: Vec<(String, String)>,
    status: u16,
    body: Body,
) -> impl futures::Stream<Item = Result<Bytes, axum::Error>> {
    let c = Capture {
        inner: body.into_data_stream(),
        ticket: Some(ticket),
        buf: Some(Vec::new()),
        tail: Vec::with_capacity(2 * MESSAGE_STOP.len()),
        status,
        request_id,
        headers,
    };
    futures::stream::unfold(Some(c), |c| async move {
        let mut c = c?;
        match c.inner.next().await {
            Some(Ok(b)) => {
                c.push(&b);
                Some((Ok(b), Some(c)))
            }
            // The ticket goes with the stream: failed.
            Some(Err(e)) => Some((Err(e), None)),
            None => {
                c.finish().await;
                None
            }
        }
    })
}
