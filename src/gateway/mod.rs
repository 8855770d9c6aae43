//! The inbound HTTP edge: a local OpenAI-compatible endpoint (axum) in front
//! of the router. It parses requests, authenticates the supplier's gateway
//! token, hands the request to `engine::router`, and writes answers and
//! errors in OpenAI's shapes (`error`). Connections are served on lanes, one
//! thread and runtime each (`lanes`); a request carries its lane's runtime
//! handle to the router. No routing logic lives here.
//!
//! Endpoints: `POST /v1/chat/completions` (plain and SSE), `POST /v1/embeddings`,
//! `GET /v1/models`, `GET /healthz`, `GET /metrics` (Prometheus text).
#![deny(clippy::unwrap_used, clippy::expect_used)] // the request path: no panics on what clients or providers send

use crate::domain::idempotency::Endpoint;
use crate::engine::router::{Caller, Router};
use crate::providers::{ChatRequest, EmbeddingsRequest};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;

mod error;
mod idempotency;
mod lanes;
pub use error::ApiError;
pub use idempotency::{IdemRefusal, REPLAYED};
pub use lanes::default_lanes;

/// Largest request body accepted (images as data URLs make bodies big).
pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// Shared by a lane's requests behind one `Arc` (axum clones the state per
/// request: one reference count, as when it held the router alone).
struct AppState {
    router: Arc<Router>,
    max_body: usize,
    /// The runtime serving this application (a lane's), passed with each request.
    lane: Option<tokio::runtime::Handle>,
}

impl AppState {
    fn caller(&self, supplier: crate::domain::SupplierId) -> Caller<'_> {
        let c = Caller::supplier(supplier);
        match &self.lane {
            Some(h) => c.on_lane(h),
            None => c,
        }
    }
}

/// The axum application for `router`, served on the runtime `lane` (`None`:
/// the router's own runtime runs the requests' background work).
pub fn app(router: Arc<Router>, lane: Option<tokio::runtime::Handle>) -> axum::Router {
    app_with_limit(router, MAX_BODY_BYTES, lane)
}

pub fn app_with_limit(router: Arc<Router>, max_body: usize, lane: Option<tokio::runtime::Handle>) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(Arc::new(AppState { router, max_body, lane }))
}

/// A running gateway; stops when dropped or on [`GatewayHandle::shutdown`].
pub struct GatewayHandle {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
    lanes: Vec<std::thread::JoinHandle<()>>,
}

impl GatewayHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://ADDR/v1`, what OpenAI SDKs take as `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
    /// Stops accepting, lets requests in progress finish (up to 10 s), and
    /// waits for the lanes to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let lanes = std::mem::take(&mut self.lanes);
        let joined = tokio::task::spawn_blocking(move || {
            for l in lanes {
                let _ = l.join();
            }
        });
        if tokio::time::timeout(std::time::Duration::from_secs(10), joined).await.is_err() {
            tracing::warn!("gateway lanes still busy 10 s after shutdown; leaving them");
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        // The lanes end on their own once their connections close.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Binds `addr` and serves the gateway in the background, on one lane per core.
pub async fn start(router: Arc<Router>, addr: SocketAddr) -> anyhow::Result<GatewayHandle> {
    start_with_lanes(router, addr, lanes::default_lanes()).await
}

/// Binds `addr` and serves the gateway on `lanes` threads (see the `lanes` module).
/// The accept loop runs on the caller's runtime.
pub async fn start_with_lanes(router: Arc<Router>, addr: SocketAddr, lanes: usize) -> anyhow::Result<GatewayHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e}. Is another Switchboard running? Choose another address with --listen.")
    })?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        tracing::warn!(%local, "the gateway listens beyond loopback: anyone who can reach this address can try tokens");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut dispatcher = lanes::Dispatcher::new();
    let mut threads = Vec::new();
    for lane in 0..lanes.max(1) {
        let listener = dispatcher.add_lane(local);
        let mut stop = stop_rx.clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let app = app(router.clone(), Some(rt.handle().clone()));
        let thread = std::thread::Builder::new().name(format!("gateway-{lane}")).spawn(move || {
            crate::providers::set_lane(lane + 1);
            rt.block_on(async move {
                let r = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, lane, "gateway lane stopped");
                }
            });
            // Dropping the runtime waits for its blocking work (audit writes).
            drop(rt);
        })?;
        threads.push(thread);
    }
    let mut stop = stop_rx;
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    // No Nagle delay: a response written in two pieces (head,
                    // then body) must not wait for the client's delayed ACK.
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY on a gateway connection");
                    }
                    match tcp.into_std() {
                        Ok(std) => {
                            if dispatcher.dispatch(std, peer).is_err() {
                                tracing::error!("every gateway lane has stopped; no longer accepting");
                                break;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, %peer, "could not hand a gateway connection to a lane"),
                    }
                }
                Err(e) if lanes::is_resource_error(&e) => {
                    tracing::error!(error = %e, "gateway cannot accept connections; retrying in 1 s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => tracing::debug!(error = %e, "a gateway connection failed while being accepted"),
            }
        }
    });
    Ok(GatewayHandle { addr: local, shutdown: Some(stop_tx), task: Some(task), lanes: threads })
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let v = v.trim();
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim)
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn body_bytes(body: Result<Bytes, BytesRejection>, max: usize) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge { limit: max }
        } else {
            ApiError::BadRequest(format!("could not read the request body: {e}"))
        }
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest(format!("the request body is empty; send a JSON {what} request")));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let msg = e.to_string();
        if e.is_data() {
            ApiError::BadRequest(format!("the {what} request is missing a field or has a wrong type: {msg}"))
        } else {
            ApiError::BadRequest(format!("the request body is not valid JSON: {msg}"))
        }
    })
}

fn with_route(mut resp: Response, route: crate::domain::Route, request_id: &str) -> Response {
    let h = resp.headers_mut();
    h.insert("x-switchboard-route", HeaderValue::from_static(route.as_str()));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
    resp
}

async fn chat(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let supplier = st.router.authenticate(bearer(&headers))?;
        let bytes = body_bytes(body, st.max_body)?;
        let req: ChatRequest = parse_json(&bytes, "chat completion")?;
        if req.messages.is_empty() {
            return Err(ApiError::BadRequest("\"messages\" is empty; send at least one message".into()));
        }
        let ticket = match idempotency::begin(&st.router, supplier, &headers, Endpoint::ChatCompletions, &bytes).await? {
            idempotency::Begun::Replay(resp) => return Ok(resp),
            idempotency::Begun::Run(ticket) => ticket,
        };
        let (auth, rt) = (st.caller(supplier), header_str(&headers, "x-switchboard-request-type"));
        // X-Request-Id is a tracing id; only Idempotency-Key deduplicates (see `idempotency`).
        let rid = header_str(&headers, "x-request-id");
        Ok(idempotency::run(ticket, async {
            if req.is_stream() {
                let s = st.router.chat_stream(auth, rt, rid, req).await?;
                let resp = Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(Body::from_stream(s.body))
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
                Ok(with_route(resp, s.route, &s.request_id))
            } else {
                let a = st.router.chat(auth, rt, rid, req).await?;
                let resp = ([(header::CONTENT_TYPE, "application/json")], a.body).into_response();
                Ok(with_route(resp, a.route, &a.request_id))
            }
        })
        .await)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn embeddings(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let supplier = st.router.authenticate(bearer(&headers))?;
        let bytes = body_bytes(body, st.max_body)?;
        let req: EmbeddingsRequest = parse_json(&bytes, "embeddings")?;
        let ticket = match idempotency::begin(&st.router, supplier, &headers, Endpoint::Embeddings, &bytes).await? {
            idempotency::Begun::Replay(resp) => return Ok(resp),
            idempotency::Begun::Run(ticket) => ticket,
        };
        let (auth, rid) = (st.caller(supplier), header_str(&headers, "x-request-id"));
        Ok::<_, ApiError>(
            idempotency::run(ticket, async {
                let a = st.router.embeddings(auth, header_str(&headers, "x-switchboard-request-type"), rid, req).await?;
                let resp = ([(header::CONTENT_TYPE, "application/json")], a.body).into_response();
                Ok(with_route(resp, a.route, &a.request_id))
            })
            .await,
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn models(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = st.router.authenticate(bearer(&headers)) {
        return ApiError::from(e).into_response();
    }
    let data: Vec<serde_json::Value> = st
        .router
        .models()
        .into_iter()
        .map(|(id, p)| serde_json::json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": p.as_str()}))
        .collect();
    ([(header::CONTENT_TYPE, "application/json")], serde_json::json!({"object": "list", "data": data}).to_string()).into_response()
}

async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let failures = st.router.ledger().stats().failures.load(std::sync::atomic::Ordering::Relaxed);
    let body = serde_json::json!({"status": "ok", "ledger_failures": failures});
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let text = st.router.metrics().render(&st.router.breaker_states(), st.router.ledger().stats(), st.router.in_flight());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found() -> Response {
    ApiError::NoSuchEndpoint.into_response()
}
