//! The inbound HTTP edge: a local OpenAI-compatible endpoint (axum) in front
//! of the router. It parses requests, authenticates the supplier's gateway
//! token, hands the request to `engine::router`, and writes answers and
//! errors in OpenAI's shapes (`error`). Connections are served on lanes, one
//! thread and runtime each (`lanes`); a request carries its lane's runtime
//! handle to the router. No routing logic lives here.
//!
//! A plain request, once read, runs on a task of its lane that owns it
//! ([`run_to_completion`]): if the client hangs up, the handler is dropped but
//! the task finishes, so the provider call it made is recorded (as
//! `client_gone`) and settled against the quota. A stream is cut upstream when
//! its client hangs up, and its usage recorded by the router's stream guard.
//! Answers carry `x-request-id` (the tracing id), `x-switchboard-event-id`
//! (the usage row's id) and `x-switchboard-cache` (`hit`, `miss` or `skip`:
//! what the response cache did; a request may ask with the same header,
//! `use`, `skip` or `refresh`, see `domain::cache`).
//!
//! Endpoints: `POST /v1/chat/completions` (plain and SSE), `POST /v1/embeddings`,
//! `GET /v1/models`, `GET /healthz`, `GET /metrics` (Prometheus text), and the
//! Anthropic-compatible `POST /v1/messages` and `POST /v1/messages/count_tokens`
//! (`anthropic`: converted to and from the same router's chat completions).
//! What a request must get past first (token before body, timeouts, caps,
//! model limits) is `ingress`.
#![deny(clippy::unwrap_used, clippy::expect_used)] // the request path: no panics on what clients or providers send
#![deny(clippy::large_futures)] // a future over clippy.toml's threshold is copied whole wherever it moves: box its large parts

use crate::domain::cache::{CacheMode, CacheVerdict};
use crate::domain::idempotency::Endpoint;
use crate::engine::router::{Answer, CacheRequest, Caller, ClientWatch, Router};
use crate::providers::{ChatRequest, EmbeddingsRequest};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod anthropic;
mod busy;
mod error;
mod idempotency;
mod ingress;
mod lanes;
pub use error::ApiError;
pub use idempotency::{IdemRefusal, REPLAYED};
pub use ingress::{CONTEXT_MARGIN_PERCENT, GatewayConfig, MAX_BODY_BYTES, OPS_TOKEN_ENV, OpsToken};
pub use lanes::default_lanes;

/// Shared by a lane's requests behind one `Arc` (axum clones the state per
/// request: one reference count, as when it held the router alone).
struct AppState {
    router: Arc<Router>,
    body: ingress::BodyLimits,
    /// Required by `/metrics` and `/healthz` when set.
    ops_token: Option<OpsToken>,
    /// The runtime serving this application (a lane's), passed with each request.
    lane: Option<tokio::runtime::Handle>,
    /// Requests running on their own tasks ([`run_to_completion`]).
    tasks: Tasks,
}

/// Counts the tasks [`run_to_completion`] started, so that a lane that stops
/// lets them finish (and record their usage) before its runtime goes.
#[derive(Clone, Default)]
struct Tasks(Arc<(AtomicUsize, tokio::sync::Notify)>);

impl Tasks {
    fn enter(&self) -> TaskSlot {
        self.0.0.fetch_add(1, Ordering::AcqRel);
        TaskSlot(self.clone())
    }

    /// Waits until no task runs, or `limit` passed; false then.
    async fn drained(&self, limit: std::time::Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.0.1.notified();
                if self.0.0.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// A running task's place in [`Tasks`], given back when the task ends however it ends.
struct TaskSlot(Tasks);

impl Drop for TaskSlot {
    fn drop(&mut self) {
        if self.0.0.0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.0.1.notify_waiters();
        }
    }
}

/// How long a stopping lane waits for requests whose clients went away to
/// finish (each also ends by its provider timeout).
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

impl AppState {
    fn new(router: Arc<Router>, cfg: &GatewayConfig, lane: Option<tokio::runtime::Handle>, tasks: Tasks) -> Arc<Self> {
        Arc::new(AppState { router, body: cfg.into(), ops_token: cfg.ops_token.clone(), lane, tasks })
    }

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
    app_with(router, &GatewayConfig::default(), lane)
}

pub fn app_with_limit(router: Arc<Router>, max_body: usize, lane: Option<tokio::runtime::Handle>) -> axum::Router {
    app_with(router, &GatewayConfig { max_body_bytes: max_body, ..GatewayConfig::default() }, lane)
}

/// The axum application with the ingress settings of `cfg`.
pub fn app_with(router: Arc<Router>, cfg: &GatewayConfig, lane: Option<tokio::runtime::Handle>) -> axum::Router {
    app_with_tasks(router, cfg, lane, Tasks::default())
}

fn app_with_tasks(router: Arc<Router>, cfg: &GatewayConfig, lane: Option<tokio::runtime::Handle>, tasks: Tasks) -> axum::Router {
    app_of(AppState::new(router, cfg, lane, tasks))
}

fn app_of(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), ingress::audit_failures))
        .with_state(state)
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
    start_with(router, addr, GatewayConfig::default()).await
}

/// Binds `addr` and serves the gateway on `lanes` threads (see the `lanes` module).
pub async fn start_with_lanes(router: Arc<Router>, addr: SocketAddr, lanes: usize) -> anyhow::Result<GatewayHandle> {
    start_with(router, addr, GatewayConfig { lanes, ..GatewayConfig::default() }).await
}

/// Binds `addr` and serves the gateway with the settings of `cfg`.
/// The accept loop runs on the caller's runtime.
pub async fn start_with(router: Arc<Router>, addr: SocketAddr, cfg: GatewayConfig) -> anyhow::Result<GatewayHandle> {
    let lanes = cfg.lanes;
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
        let mut rt = tokio::runtime::Builder::new_current_thread();
        rt.enable_all();
        if !cfg.busy_poll.is_zero() {
            rt.on_thread_park(busy::before_park);
        }
        let rt = rt.build()?;
        let busy_poll = cfg.busy_poll;
        let tasks = Tasks::default();
        let state = AppState::new(router.clone(), &cfg, Some(rt.handle().clone()), tasks.clone());
        let app = lanes::Front::new(app_of(state.clone()), state);
        let header_timeout = cfg.header_read_timeout;
        let stop = stop_rx.clone();
        let thread = std::thread::Builder::new().name(format!("gateway-{lane}")).spawn(move || {
            crate::providers::set_lane(lane + 1);
            rt.block_on(async move {
                tokio::spawn(lanes::keep_a_timer_due());
                if !busy_poll.is_zero() {
                    busy::enable(busy_poll);
                    tokio::spawn(busy::spinner());
                }
                lanes::serve(listener, app, header_timeout, stop).await;
                // Requests whose clients went away still run: let them record their usage.
                if !tasks.drained(DRAIN_LIMIT).await {
                    tracing::warn!(lane, "requests still running {DRAIN_LIMIT:?} after the gateway stopped; their usage may be lost");
                }
            });
            // Dropping the runtime waits for its blocking work (audit writes).
            drop(rt);
        })?;
        threads.push(thread);
    }
    let mut stop = stop_rx;
    let limits = ingress::ConnLimits::new(&cfg);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let permit = match limits.admit(peer.ip()) {
                        Ok(p) => p,
                        Err(why) => {
                            tracing::debug!(%peer, ?why, "a gateway connection over the cap was turned away");
                            tokio::spawn(ingress::refuse_connection(tcp, why));
                            continue;
                        }
                    };
                    // No Nagle delay: a response written in two pieces (head,
                    // then body) must not wait for the client's delayed ACK.
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY on a gateway connection");
                    }
                    match tcp.into_std() {
                        Ok(std) => {
                            if dispatcher.dispatch(std, peer, Some(permit)).is_err() {
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

fn header_str<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Headers every request reads or every answer carries, named once, at
/// compile time: a lookup by `&str` parses and checks the name before hashing
/// it (~230 instructions more a lookup, by callgrind), and `from_static`
/// called at run time checks it on every call.
pub(super) const REQUEST_TYPE: HeaderName = HeaderName::from_static("x-switchboard-request-type");
pub(super) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(super) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const CACHE_MODE: HeaderName = HeaderName::from_static(crate::domain::cache::HEADER);
const ROUTE: HeaderName = HeaderName::from_static("x-switchboard-route");
const EVENT_ID: HeaderName = HeaderName::from_static("x-switchboard-event-id");

/// The request's `x-switchboard-cache` header and body, for the response cache.
fn cache_request(h: &HeaderMap, endpoint: Endpoint, body: &axum::body::Bytes) -> Result<CacheRequest, ApiError> {
    let mode = match h.get(CACHE_MODE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| "x-switchboard-cache: not text; send use, skip or refresh".to_string())
                .and_then(CacheMode::parse)
                .map_err(ApiError::BadRequest)?,
        ),
    };
    Ok(CacheRequest { endpoint, mode, body: body.clone() })
}

/// Marks an answer with what the response cache did.
fn with_cache(mut resp: Response, verdict: CacheVerdict) -> Response {
    resp.headers_mut().insert(crate::domain::cache::HEADER, HeaderValue::from_static(verdict.as_str()));
    resp
}

/// Marks an answer with its route, tracing id and usage row's id (the ids'
/// own bytes become the header values: no copies).
fn with_route(mut resp: Response, route: crate::domain::Route, request_id: String, event_id: String) -> Response {
    let h = resp.headers_mut();
    h.insert(ROUTE, HeaderValue::from_static(route.as_str()));
    // Visible ASCII only, as `HeaderValue::from_str` takes.
    let value = |s: String| s.is_ascii().then(|| HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).ok()).flatten();
    if let Some(v) = value(request_id) {
        h.insert(REQUEST_ID, v);
    }
    if let Some(v) = value(event_id) {
        h.insert(EVENT_ID, v);
    }
    resp
}

/// What a request's headers say about it, owned (a request run on its own
/// task outlives the handler's borrow of the headers).
struct RequestMeta {
    /// `X-Switchboard-Request-Type`.
    request_type: Option<String>,
    /// `X-Request-Id`: a tracing id only, echoed and recorded, never used to deduplicate.
    request_id: Option<String>,
    /// `Idempotency-Key`, per supplier.
    idempotency_key: Option<String>,
    /// What the response cache needs (set by the handler once the header is checked).
    cache: Option<CacheRequest>,
}

impl RequestMeta {
    fn of(h: &HeaderMap) -> Self {
        let get = |name| header_str(h, name).map(str::to_string);
        RequestMeta { request_type: get(&REQUEST_TYPE), request_id: get(&REQUEST_ID), idempotency_key: get(&IDEMPOTENCY_KEY), cache: None }
    }
}

/// Runs a request to completion on a task of this lane's runtime (the
/// lane's upstream pool), owned by the task, and waits for its answer. If the
/// client hangs up, the handler awaiting this is dropped, `ClientWatch`
/// says so, and the task still finishes: the provider call is recorded (a
/// plain one as `client_gone`; a stream that was being opened is dropped
/// with the task's output and recorded as cut) and settled against the quota.
/// `serve` is everything that must happen whatever the client does — the
/// router call and, for a request with an `Idempotency-Key`, keeping its
/// answer for the client's retry.
async fn run_to_completion<T, F, Fut>(st: &Arc<AppState>, serve: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(Arc<AppState>, ClientWatch) -> Fut,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
{
    let watch = ClientWatch::new();
    let presence = watch.presence();
    let slot = st.tasks.enter();
    // On the heap from the start, so that this future does not keep a
    // moved-from copy of it: moving the work into the task once cost several
    // copies a request (~6 % of the CPU when it was 14 KB; the callers now
    // box the router's ~6 KB future inside it, so it is ~1.4 KB).
    let work = Box::pin(serve(st.clone(), watch));
    let task = async move {
        let _slot = slot;
        busy::Active(work).await
    };
    let joined = match &st.lane {
        Some(lane) => lane.spawn(task).await,
        None => tokio::spawn(task).await,
    };
    presence.answered();
    joined.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a request's task failed");
        Err(ApiError::Internal)
    })
}

/// A chat completion, on its own task (see [`run_to_completion`]), as the
/// response to send: a plain answer once its usage is recorded; a stream once
/// it is open (a stream whose client left while it opened is dropped with the
/// task's output, cut, and recorded).
async fn serve_chat(
    st: Arc<AppState>,
    supplier: crate::domain::SupplierId,
    meta: RequestMeta,
    req: ChatRequest,
    client: ClientWatch,
) -> Result<Response, ApiError> {
    let caller = st.caller(supplier).with_idempotency_key(meta.idempotency_key.as_deref()).with_cache(meta.cache.as_ref());
    let (rt, rid) = (meta.request_type.as_deref(), meta.request_id.as_deref());
    if req.is_stream() {
        // A stream is cut upstream when its client hangs up; its guard records it.
        let s = st.router.chat_stream(caller, rt, rid, req).await?;
        let verdict = s.cache;
        let resp = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(s.body))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        Ok(with_cache(with_route(resp, s.route, s.request_id, s.event_id), verdict))
    } else {
        Ok(json_answer(st.router.chat(caller.watched_by(&client), rt, rid, req).await?))
    }
}

/// Embeddings, on their own task (see [`run_to_completion`]).
async fn serve_embeddings(
    st: Arc<AppState>,
    supplier: crate::domain::SupplierId,
    meta: RequestMeta,
    req: EmbeddingsRequest,
    client: ClientWatch,
) -> Result<Answer, ApiError> {
    let caller =
        st.caller(supplier).with_idempotency_key(meta.idempotency_key.as_deref()).with_cache(meta.cache.as_ref()).watched_by(&client);
    Ok(st.router.embeddings(caller, meta.request_type.as_deref(), meta.request_id.as_deref(), req).await?)
}

fn json_answer(a: Answer) -> Response {
    let resp = ([(header::CONTENT_TYPE, "application/json")], a.body).into_response();
    with_cache(with_route(resp, a.route, a.request_id, a.event_id), a.cache)
}

async fn chat(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    chat_with(st, &headers, body).await
}

/// `POST /v1/chat/completions`, from axum ([`chat`]) or straight from a
/// lane's front ([`lanes::Front`]).
async fn chat_with(st: Arc<AppState>, headers: &HeaderMap, body: Body) -> Response {
    // The token before the body: an unauthenticated body is never read.
    let auth = || Ok(st.router.authenticate(bearer(headers))?);
    let (supplier, bytes) = match ingress::authenticated(auth, body, headers, st.body, IntoResponse::into_response).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let result = async {
        let mut req: ChatRequest = ingress::parse_json(&bytes, "chat completion")?;
        // Forwarded as it came to an OpenAI-compatible upstream (a shared reference, no copy).
        req.keep_original(bytes.clone());
        if req.messages.is_empty() {
            return Err(ApiError::BadRequest("\"messages\" is empty; send at least one message".into()));
        }
        let req = ingress::check_chat(st.router.pricing(), req).await?;
        let cache = cache_request(headers, Endpoint::ChatCompletions, &bytes)?;
        // An accepted request with an `Idempotency-Key`: replayed, refused, or begun (before any provider call).
        let ticket = match idempotency::begin(&st.router, supplier, headers, Endpoint::ChatCompletions, &bytes).await? {
            idempotency::Begun::Replay(resp) => return Ok(resp),
            idempotency::Begun::Run(ticket) => ticket,
        };
        let meta = RequestMeta { cache: Some(cache), ..RequestMeta::of(headers) };
        run_to_completion(&st, move |st, client| async move {
            Ok(idempotency::run(ticket, Box::pin(serve_chat(st, supplier, meta, req, client))).await)
        })
        .await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn embeddings(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let auth = || Ok(st.router.authenticate(bearer(&headers))?);
    let (supplier, bytes) = match ingress::authenticated(auth, body, &headers, st.body, IntoResponse::into_response).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let result = async {
        let req: EmbeddingsRequest = ingress::parse_json(&bytes, "embeddings")?;
        let req = ingress::check_embeddings(st.router.pricing(), req).await?;
        let cache = cache_request(&headers, Endpoint::Embeddings, &bytes)?;
        let ticket = match idempotency::begin(&st.router, supplier, &headers, Endpoint::Embeddings, &bytes).await? {
            idempotency::Begun::Replay(resp) => return Ok(resp),
            idempotency::Begun::Run(ticket) => ticket,
        };
        let meta = RequestMeta { cache: Some(cache), ..RequestMeta::of(&headers) };
        run_to_completion(&st, move |st, client| async move {
            Ok(idempotency::run(ticket, Box::pin(async { serve_embeddings(st, supplier, meta, req, client).await.map(json_answer) })).await)
        })
        .await
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

/// 200 `ok`; 503 `degraded` (with the reason and since when) while the usage
/// ledger cannot write, so that a load balancer takes the instance out of rotation.
async fn healthz(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    use crate::engine::ledger::LedgerState;
    if let Err(e) = ingress::ops_allowed(st.ops_token.as_ref(), &headers) {
        return e.into_response();
    }
    let failures = st.router.ledger().stats().failures.load(std::sync::atomic::Ordering::Relaxed);
    let (status, body) = match st.router.ledger().state() {
        LedgerState::Up => (StatusCode::OK, serde_json::json!({"status": "ok", "ledger_failures": failures})),
        LedgerState::Down(d) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "degraded", "reason": format!("usage ledger cannot write: {}", d.reason), "since": d.since,
                "ledger_pending_events": d.pending, "ledger_failures": failures}),
        ),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn metrics(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = ingress::ops_allowed(st.ops_token.as_ref(), &headers) {
        return e.into_response();
    }
    let mut text = st.router.metrics().render(&st.router.breaker_states(), st.router.ledger().stats(), st.router.in_flight());
    text.push_str(&switchboard_pool_metrics(&st.router));
    text.push_str(&st.router.cache().render_metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Each key's share, headroom and 429s (`engine::pool_alerts`).
fn switchboard_pool_metrics(router: &Router) -> String {
    crate::engine::pool_alerts::render_metrics(&router.pool_snapshot())
}

async fn not_found() -> Response {
    ApiError::NoSuchEndpoint.into_response()
}
