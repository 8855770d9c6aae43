//! The gateway's ingress: what a request must get past before it can cost
//! anything. Its settings ([`GatewayConfig`]: header and body read timeouts,
//! body size, connection caps, the operations token); the connection caps
//! the accept loop applies ([`ConnLimits`]); reading a body only after the
//! bearer token was checked, with its size cap and deadline ([`read_body`];
//! [`authenticated`] does both, and closes the connection of a request
//! refused before its body was read);
//! the model limits checked before any provider call ([`check_chat`],
//! [`check_embeddings`]: context window, output cap); and the token that
//! `/metrics` and `/healthz` may require ([`OpsToken`]).

use super::ApiError;
use super::error::FailureDetail;
use crate::domain::PricingTable;
use crate::domain::Secret;
use crate::providers::{ChatRequest, EmbeddingsRequest, token_count};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest request body accepted (images as data URLs make bodies big).
pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// How much larger than a model's context window a prompt must look before
/// it is refused: the tokenizer is OpenAI's, and only approximates other
/// providers' counts, so a prompt is refused only when it is clearly too long.
pub const CONTEXT_MARGIN_PERCENT: u64 = 10;

/// The environment variable that holds the token `/metrics` and `/healthz` require.
pub const OPS_TOKEN_ENV: &str = "SWITCHBOARD_METRICS_TOKEN";

/// How the gateway protects itself; `switchboard serve` sets it from its flags.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Serving threads (see `lanes`).
    pub lanes: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Time a client has to send a request's headers (the first request of a
    /// connection, and each following one); then the connection is closed.
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body, once its headers are in;
    /// then it gets a 408.
    pub body_read_timeout: Duration,
    /// Open connections at most, all clients together; above it a new
    /// connection gets a 503 and is closed.
    pub max_connections: usize,
    /// Open connections at most from one client address (0: no cap; WedSync's
    /// load balancer is one address); above it a new connection gets a 429.
    pub max_connections_per_address: usize,
    /// When set, `/metrics` and `/healthz` need `Authorization: Bearer <it>`.
    pub ops_token: Option<OpsToken>,
    /// The ceiling of a lane's busy-polling window: after it has worked, a
    /// lane keeps polling its sockets up to this long before it sleeps, the
    /// window adapted to its idle spells (`super::busy`); zero is off.
    pub busy_poll: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            lanes: super::lanes::default_lanes(),
            max_body_bytes: MAX_BODY_BYTES,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_connections_per_address: 0,
            ops_token: None,
            busy_poll: super::busy::DEFAULT_CEILING,
        }
    }
}

/// The token that guards `/metrics` and `/healthz`. Only its SHA-256 is kept;
/// a presented token is hashed and compared in constant time.
#[derive(Clone)]
pub struct OpsToken([u8; 32]);

impl std::fmt::Debug for OpsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpsToken(…)")
    }
}

impl OpsToken {
    pub fn new(token: &Secret) -> Option<Self> {
        (!token.is_empty()).then(|| OpsToken(Sha256::digest(token.expose().as_bytes()).into()))
    }

    /// The token from `file` when given, else from [`OPS_TOKEN_ENV`]; `None`
    /// when neither is set (the endpoints stay open, as before). Never from
    /// the command line, where `ps` shows it.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Option<Self>> {
        let raw = match file {
            Some(path) => Some(
                std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read the metrics token file {}: {e}", path.display()))?,
            ),
            None => std::env::var(OPS_TOKEN_ENV).ok(),
        };
        let Some(raw) = raw else { return Ok(None) };
        let secret = Secret::new(raw);
        match Self::new(&secret) {
            Some(t) => Ok(Some(t)),
            None if file.is_some() => anyhow::bail!("the metrics token file is empty"),
            None => Ok(None),
        }
    }

    /// Whether `headers` carry this token as a bearer token.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = super::bearer(headers) else { return false };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.iter().zip(self.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Open connections, in total and per client address, against the caps.
pub(super) struct ConnLimits {
    max_total: usize,
    max_per_address: usize,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnRefusal {
    Total,
    PerAddress,
}

/// An admitted connection, counted until dropped.
pub(super) struct ConnPermit {
    limits: Arc<ConnLimits>,
    ip: Option<IpAddr>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.ip {
            let mut map = self.limits.per_address.lock();
            if let Some(n) = map.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

impl ConnLimits {
    pub(super) fn new(cfg: &GatewayConfig) -> Arc<Self> {
        Arc::new(ConnLimits {
            max_total: cfg.max_connections.max(1),
            max_per_address: cfg.max_connections_per_address,
            open: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new connection from `ip`, or says why it is over a cap.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, ConnRefusal> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(ConnRefusal::Total);
        }
        if self.max_per_address == 0 {
            return Ok(ConnPermit { limits: self.clone(), ip: None });
        }
        let mut map = self.per_address.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_address {
            drop(map);
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(ConnRefusal::PerAddress);
        }
        *n += 1;
        Ok(ConnPermit { limits: self.clone(), ip: Some(ip) })
    }
}

/// Answers a connection over a cap with an error both OpenAI's and
/// Anthropic's clients read, and closes it: 503 when the gateway is full, 429 when the address has too many.
/// Whatever the client sent meanwhile is read (a little, briefly) and
/// dropped, so that closing does not reset the connection under the answer.
pub(super) async fn refuse_connection(mut tcp: tokio::net::TcpStream, why: ConnRefusal) {
    let (status, err) = match why {
        ConnRefusal::Total => ("503 Service Unavailable", ApiError::Busy),
        ConnRefusal::PerAddress => ("429 Too Many Requests", ApiError::TooManyConnections),
    };
    // Sent before the request is read, so before its endpoint is known: an
    // OpenAI-shaped error with Anthropic's top-level `"type": "error"` too,
    // which both kinds of client read.
    let body = match serde_json::from_str::<serde_json::Value>(&err.json_body()) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert("type".into(), serde_json::Value::String("error".into()));
            serde_json::Value::Object(m).to_string()
        }
        _ => err.json_body(),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let work = async {
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body.as_bytes()).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 64 * 1024usize;
        while left > 0 {
            let n = tcp.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), work).await;
}

/// What a body read is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    pub(super) max: usize,
    pub(super) timeout: Duration,
}

impl From<&GatewayConfig> for BodyLimits {
    fn from(c: &GatewayConfig) -> Self {
        BodyLimits { max: c.max_body_bytes, timeout: c.body_read_timeout }
    }
}

/// The sender (`auth`: the token, checked before anything is read), then the
/// body ([`read_body`]). A request refused before its body was read whole (a
/// bad token, a body over the cap or too slow) is answered by `answer` (the
/// endpoint's error shape) with `Connection: close`: the rest of its body is
/// still on the connection, so the server closes it after the answer, and the
/// header tells a client that pools connections (the OpenAI and Anthropic
/// SDKs do) not to send its next request on it.
pub(super) async fn authenticated<T>(
    auth: impl FnOnce() -> Result<T, ApiError>,
    body: Body,
    headers: &HeaderMap,
    limits: BodyLimits,
    answer: fn(ApiError) -> axum::response::Response,
) -> Result<(T, Bytes), axum::response::Response> {
    let read = async {
        let who = auth()?;
        let bytes = read_body(body, headers, limits).await?;
        Ok((who, bytes))
    };
    read.await.map_err(|e| closing(answer(e), headers))
}

/// `resp` with `Connection: close` when its request came with a body.
fn closing(mut resp: axum::response::Response, headers: &HeaderMap) -> axum::response::Response {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::trim);
    if headers.contains_key(header::TRANSFER_ENCODING) || declared.is_some_and(|n| n != "0") {
        resp.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    resp
}

/// Reads a request body, after its sender was authenticated: refused (413)
/// when its declared length is over the cap (read up to the cap and dropped,
/// never buffered), cut off when the bytes sent go over it, and a 408 when it
/// does not arrive in time.
pub(super) async fn read_body(body: Body, headers: &HeaderMap, limits: BodyLimits) -> Result<Bytes, ApiError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max as u64) {
        // Dropped as it comes (never buffered) up to the cap, so that a client
        // that sends its whole body before it reads the answer gets its 413,
        // not a broken pipe. (An unauthenticated body never gets this far.)
        let drain = async {
            let mut body = body;
            let mut seen = 0usize;
            while seen <= limits.max {
                match body.frame().await {
                    Some(Ok(f)) => seen = seen.saturating_add(f.data_ref().map_or(0, |d| d.len())),
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(limits.timeout, drain).await;
        return Err(ApiError::TooLarge { limit: limits.max });
    }
    let limited = http_body_util::Limited::new(body, limits.max);
    match tokio::time::timeout(limits.timeout, limited.collect()).await {
        Err(_) => Err(ApiError::Timeout { secs: limits.timeout.as_secs() }),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(ApiError::TooLarge { limit: limits.max }),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "a request body could not be read");
            Err(ApiError::BadRequest("could not read the request body: the connection failed while sending it".into()))
        }
    }
}

/// Parses a JSON request body read by [`read_body`]; `what` names the
/// request in messages ("chat completion").
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest(format!("the request body is empty; send a JSON {what} request")));
    }
    crate::domain::json_from_bytes(bytes).map_err(|e| {
        let msg = e.to_string();
        if e.is_data() {
            ApiError::BadRequest(format!("the {what} request is missing a field or has a wrong type: {msg}"))
        } else {
            ApiError::BadRequest(format!("the request body is not valid JSON: {msg}"))
        }
    })
}

/// The most tokens a prompt may count before it is refused for a window of `context`.
fn allowed(context: u64) -> u64 {
    context.saturating_add(context.saturating_mul(CONTEXT_MARGIN_PERCENT) / 100)
}

/// Longest model name taken (real ones are under 100 bytes); a longer one
/// would only be echoed back in an error.
const MAX_MODEL_NAME: usize = 256;

fn check_model_name(model: &str) -> Result<(), ApiError> {
    if model.len() > MAX_MODEL_NAME {
        return Err(ApiError::BadRequest(format!("\"model\" is {} bytes long; model names are at most {MAX_MODEL_NAME}", model.len())));
    }
    Ok(())
}

/// Refuses a chat request that cannot fit its model: an output cap above
/// the model's (400, `max_tokens` or `max_completion_tokens`), or a prompt
/// clearly longer than its context window (400, `context_length_exceeded`).
/// Models without known limits are not checked. The prompt is counted only
/// when its cheap bound (one token per byte at most) does not fit, and then
/// on the blocking pool, never on the serving thread.
pub(super) async fn check_chat(pricing: &PricingTable, req: ChatRequest) -> Result<ChatRequest, ApiError> {
    check_model_name(&req.model)?;
    let limits = pricing.limits(&req.model);
    if let (Some(max), Some(asked)) = (limits.max_output, req.max_output())
        && asked > max
    {
        let param = if req.max_completion_tokens.is_some() { "max_completion_tokens" } else { "max_tokens" };
        return Err(ApiError::OutputTooLarge { model: req.model.clone(), asked, max, param });
    }
    let Some(context) = limits.context else { return Ok(req) };
    let limit = allowed(context);
    if token_count::chat_prompt_bound(&req) <= limit {
        return Ok(req);
    }
    let (req, counted) = tokio::task::spawn_blocking(move || {
        let n = token_count::count_chat_prompt_until(&req, limit);
        (req, n)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "counting a prompt's tokens failed");
        ApiError::BadRequest("the prompt could not be counted".into())
    })?;
    if counted > limit {
        return Err(ApiError::ContextLength { model: req.model.clone(), context, counted });
    }
    Ok(req)
}

/// Refuses an embeddings request one of whose inputs is clearly longer than
/// the model takes (400, `context_length_exceeded`); as [`check_chat`].
pub(super) async fn check_embeddings(pricing: &PricingTable, req: EmbeddingsRequest) -> Result<EmbeddingsRequest, ApiError> {
    check_model_name(&req.model)?;
    let Some(context) = pricing.limits(&req.model).context else { return Ok(req) };
    let limit = allowed(context);
    let mut longest = 0u64;
    req.for_each_text(|t| longest = longest.max(t.len() as u64));
    if let Some(items) = req.input.as_array() {
        // Pre-tokenised inputs: their length is their count.
        for item in items.iter().filter_map(|i| i.as_array()) {
            let n = item.len() as u64;
            if n > limit {
                return Err(ApiError::ContextLength { model: req.model.clone(), context, counted: n });
            }
        }
    }
    if longest <= limit {
        return Ok(req);
    }
    let (req, counted) = tokio::task::spawn_blocking(move || {
        let mut worst = 0u64;
        req.for_each_text(|t| {
            if worst <= limit && t.len() as u64 > limit {
                worst = worst.max(token_count::count_text_until(t, limit));
            }
        });
        (req, worst)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "counting an input's tokens failed");
        ApiError::BadRequest("the input could not be counted".into())
    })?;
    if counted > limit {
        return Err(ApiError::ContextLength { model: req.model.clone(), context, counted });
    }
    Ok(req)
}

/// Lets a request to `/metrics` or `/healthz` through: always without a
/// token configured, else only with it.
pub(super) fn ops_allowed(token: Option<&OpsToken>, headers: &HeaderMap) -> Result<(), ApiError> {
    match token {
        Some(t) if !t.allows(headers) => Err(ApiError::OpsUnauthorized),
        _ => Ok(()),
    }
}

/// Writes the full story of a request that no route could serve (which
/// accounts, which provider messages: what its client was not told, see
/// [`FailureDetail`]) to the audit log, under the supplier whose token
/// sent it, off the serving thread.
pub(super) async fn audit_failures(
    axum::extract::State(st): axum::extract::State<Arc<super::AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let auth = req.headers().get(header::AUTHORIZATION).cloned();
    let api_key = req.headers().get("x-api-key").cloned();
    let mut resp = next.run(req).await;
    if resp.extensions().get::<FailureDetail>().is_some() {
        let mut h = HeaderMap::new();
        if let Some(v) = auth {
            h.insert(header::AUTHORIZATION, v);
        }
        if let Some(v) = api_key {
            h.insert("x-api-key", v);
        }
        audit_response(&st, &h, &mut resp);
    }
    resp
}

/// [`audit_failures`] for a response whose request's headers are at hand
/// (a lane's direct path, `lanes::Front`).
pub(super) fn audit_response(st: &Arc<super::AppState>, headers: &HeaderMap, resp: &mut axum::response::Response) {
    if let Some(FailureDetail(detail)) = resp.extensions_mut().remove::<FailureDetail>() {
        let supplier = st.router.authenticate(super::anthropic::token(headers)).ok();
        let store = st.router.store().clone();
        let now = st.router.clock().now();
        let work = move || {
            if let Err(e) = store.audit(now, "gateway", "request.all_routes_failed", supplier, None, "error", &detail) {
                tracing::warn!(error = %e, "audit write failed");
            }
        };
        match &st.lane {
            Some(h) => drop(h.spawn_blocking(work)),
            None => drop(tokio::task::spawn_blocking(work)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_caps_count_and_release() {
        let cfg = GatewayConfig { max_connections: 3, max_connections_per_address: 2, ..GatewayConfig::default() };
        let l = ConnLimits::new(&cfg);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = l.admit(a).unwrap();
        let _a2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).err(), Some(ConnRefusal::PerAddress));
        let b1 = l.admit(b).unwrap();
        assert_eq!(l.admit(b).err(), Some(ConnRefusal::Total));
        drop(a1);
        let _a3 = l.admit(a).unwrap();
        drop(b1);
        assert_eq!(l.open.load(Ordering::Relaxed), 2);
        assert!(!l.per_address.lock().contains_key(&b), "an address with no connection is forgotten");
        // No per-address cap: one address may use them all.
        let l = ConnLimits::new(&GatewayConfig { max_connections: 2, ..GatewayConfig::default() });
        let _x = (l.admit(a).unwrap(), l.admit(a).unwrap());
        assert_eq!(l.admit(a).err(), Some(ConnRefusal::Total));
    }

    #[test]
    fn ops_token_compares_digests() {
        let t = OpsToken::new(&Secret::new("s3cret-metrics")).unwrap();
        let mut h = HeaderMap::new();
        assert!(!t.allows(&h));
        h.insert(header::AUTHORIZATION, "Bearer s3cret-metrics".parse().unwrap());
        assert!(t.allows(&h));
        h.insert(header::AUTHORIZATION, "Bearer s3cret-metric".parse().unwrap());
        assert!(!t.allows(&h));
        assert!(OpsToken::new(&Secret::new("  ")).is_none());
        assert_eq!(format!("{t:?}"), "OpsToken(…)");
    }

    #[test]
    fn the_margin_is_ten_percent() {
        assert_eq!(allowed(128_000), 140_800);
        assert_eq!(allowed(u64::MAX), u64::MAX);
    }
}
