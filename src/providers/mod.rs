//! Outbound provider clients: OpenAI, Anthropic and Azure OpenAI behind one
//! interface ([`Providers`], enum dispatch over [`Provider`]), sharing pooled
//! HTTP clients: plain calls go through hyper directly (the `transport` module),
//! streams (and everything when a proxy is configured) through `reqwest`. Owns the OpenAI-format wire types the gateway
//! speaks, Anthropic translation, usage normalisation, token estimation, the
//! typed error taxonomy and retries. Keys are passed in per call as
//! [`Secret`] (a shared snapshot: cloning it copies no key) and never stored,
//! logged or put in an error.
#![deny(clippy::unwrap_used, clippy::expect_used)] // the request path: no panics on what clients or providers send

pub mod anthropic;
pub mod azure;
pub mod error;
pub mod openai;
pub mod passthrough;
pub mod retry;
pub mod sse;
pub mod stream;
pub mod token_count;
pub mod translate;
mod transport;
pub mod wire;

pub use error::ProviderError;
pub use retry::RetryPolicy;
pub use stream::{ChatStream, StreamEvent, StreamSummary};
pub use wire::{ChatMessage, ChatRequest, EmbeddingsRequest, ModelInfo, OpenAiUsage};

use crate::domain::{
    AzureConfig, Micros, PricingTable, ProviderAccount, ProviderKind, Secret, TokenUsage, TranslationTables, ValidationStatus,
};
use azure::AzureRoute;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// Where a call goes: a provider account's endpoint and its key.
#[derive(Debug, Clone)]
pub struct ProviderTarget {
    pub kind: ProviderKind,
    /// API base, e.g. `https://api.openai.com` (a trailing `/v1` is accepted),
    /// or the Azure resource endpoint.
    pub base_url: String,
    pub azure: Option<AzureConfig>,
    pub key: Secret,
    /// Overrides the client's default whole-request timeout (plain calls) or
    /// time-to-first-byte (streams).
    pub timeout: Option<Duration>,
    /// Overrides the client's retry policy: the router sends
    /// [`RetryPolicy::before_failover`] when another route can take the
    /// request, since a long backoff or retry-after wait would only delay the
    /// failover.
    pub retry: Option<RetryPolicy>,
    /// Sees the headers of every answer to this target (success or error),
    /// before its body is read: the router learns the rate limits the
    /// provider reports from them (`domain::keypool::headers`).
    pub observe: Option<HeaderObserver>,
}

/// A callback given each answer's headers (see [`ProviderTarget::observe`]).
#[derive(Clone)]
pub struct HeaderObserver(pub Arc<dyn Fn(&HeaderMap) + Send + Sync>);

impl std::fmt::Debug for HeaderObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderObserver")
    }
}

impl HeaderObserver {
    fn see(o: Option<&HeaderObserver>, h: &HeaderMap) {
        if let Some(o) = o {
            (o.0)(h);
        }
    }
}

impl ProviderTarget {
    pub fn new(kind: ProviderKind, base_url: impl Into<String>, key: Secret) -> Self {
        Self { kind, base_url: base_url.into(), azure: None, key, timeout: None, retry: None, observe: None }
    }

    pub fn azure(base_url: impl Into<String>, deployment: &str, api_version: &str, key: Secret) -> Self {
        Self {
            kind: ProviderKind::AzureOpenAi,
            base_url: base_url.into(),
            azure: Some(AzureConfig { deployment: deployment.to_string(), api_version: api_version.to_string() }),
            key,
            timeout: None,
            retry: None,
            observe: None,
        }
    }

    /// The target for a stored account and the key read from the keychain.
    pub fn from_account(account: &ProviderAccount, key: Secret) -> Self {
        let base = if account.base_url.trim().is_empty() {
            account.provider.default_base_url().unwrap_or_default().to_string()
        } else {
            account.base_url.clone()
        };
        Self { kind: account.provider, base_url: base, azure: account.azure.clone(), key, timeout: None, retry: None, observe: None }
    }

    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// See [`ProviderTarget::observe`].
    pub fn with_observer(mut self, o: HeaderObserver) -> Self {
        self.observe = Some(o);
        self
    }

    /// See [`ProviderTarget::retry`].
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
}

/// One provider, resolved from a target: enum dispatch over the three APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    OpenAi { base: String },
    Anthropic { base: String },
    Azure(AzureRoute),
}

/// `url` parsed, from a per-thread cache ([`transport::cached`]). `None`
/// when it does not parse.
fn parsed_url(url: &str) -> Option<reqwest::Url> {
    thread_local! {
        static URLS: transport::UrlCache<reqwest::Url> = transport::UrlCache::default();
    }
    transport::cached(&URLS, url, |u| reqwest::Url::parse(u).ok())
}

/// `https://host` or `https://host/v1` → `https://host/v1/{path}`.
fn v1_url(base: &str, path: &str) -> String {
    let b = base.trim_end_matches('/');
    let b = b.strip_suffix("/v1").unwrap_or(b);
    // Pieces pushed, not `format!`: built on every request, and the
    // formatting machinery cost ~650 instructions for these three.
    let mut url = String::with_capacity(b.len() + 4 + path.len());
    url.push_str(b);
    url.push_str("/v1/");
    url.push_str(path);
    url
}

impl Provider {
    pub fn for_target(t: &ProviderTarget) -> Self {
        match t.kind {
            ProviderKind::OpenAi => Provider::OpenAi { base: t.base_url.clone() },
            ProviderKind::Anthropic => Provider::Anthropic { base: t.base_url.clone() },
            ProviderKind::AzureOpenAi => Provider::Azure(AzureRoute::new(&t.base_url, t.azure.as_ref())),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Provider::OpenAi { .. } => openai::NAME,
            Provider::Anthropic { .. } => anthropic::NAME,
            Provider::Azure(_) => azure::NAME,
        }
    }

    fn auth_headers(&self, key: &Secret) -> Result<HeaderMap, ProviderError> {
        let mut h = HeaderMap::new();
        let bad = || ProviderError::Auth {
            provider: self.name(),
            status: 401,
            message: "the key contains characters not allowed in a header".into(),
        };
        match self {
            Provider::OpenAi { .. } => {
                // Built in place (one allocation: this runs on every call).
                let k = key.expose();
                if !k.is_ascii() {
                    return Err(bad());
                }
                let mut b = bytes::BytesMut::with_capacity(7 + k.len());
                b.extend_from_slice(b"Bearer ");
                b.extend_from_slice(k.as_bytes());
                let mut v = HeaderValue::from_maybe_shared(b.freeze()).map_err(|_| bad())?;
                v.set_sensitive(true);
                h.insert(reqwest::header::AUTHORIZATION, v);
            }
            Provider::Anthropic { .. } => {
                let mut v = HeaderValue::from_str(key.expose()).map_err(|_| bad())?;
                v.set_sensitive(true);
                h.insert(HeaderName::from_static("x-api-key"), v);
                h.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(anthropic::API_VERSION));
            }
            Provider::Azure(_) => {
                let mut v = HeaderValue::from_str(key.expose()).map_err(|_| bad())?;
                v.set_sensitive(true);
                h.insert(HeaderName::from_static("api-key"), v);
            }
        }
        Ok(h)
    }

    /// URL and JSON body of a chat call; an error when the request cannot be
    /// translated exactly for this provider (see [`untranslatable`]).
    pub fn chat_request(&self, req: &ChatRequest, stream: bool, tables: &TranslationTables) -> Result<(String, Bytes), ProviderError> {
        Ok(match self {
            Provider::Anthropic { base } => {
                let mut a = anthropic::to_messages_request(req, tables)
                    .map_err(|e| ProviderError::Untranslatable { provider: anthropic::NAME, message: e.0 })?;
                a.stream = stream;
                (v1_url(base, "messages"), Bytes::from(serde_json::to_vec(&a).unwrap_or_default()))
            }
            Provider::OpenAi { base } => (v1_url(base, "chat/completions"), openai_body(req, stream, None)),
            Provider::Azure(route) => {
                let model = route.model_in_body().then(|| route.deployment());
                (route.op_url("chat/completions"), openai_body(req, stream, model))
            }
        })
    }

    fn models_url(&self) -> String {
        match self {
            Provider::OpenAi { base } | Provider::Anthropic { base } => v1_url(base, "models"),
            Provider::Azure(route) => route.models_url(),
        }
    }
}

/// Why `req` cannot be sent to a provider of `kind` exactly, if it cannot:
/// the router skips such a route (OpenAI and Azure take every OpenAI request).
pub fn untranslatable(kind: ProviderKind, req: &ChatRequest, tables: &TranslationTables) -> Option<String> {
    match kind {
        ProviderKind::Anthropic => anthropic::to_messages_request(req, tables).err().map(|e| e.0),
        ProviderKind::OpenAi | ProviderKind::AzureOpenAi => None,
    }
}

/// The OpenAI body to send: the client's request (lossless), with
/// `stream_options.include_usage` forced on for streams, the model replaced
/// for Azure's v1 form, and the gateway's Anthropic-only fields
/// ([`ChatRequest::has_gateway_extensions`]) taken out. The client's own bytes
/// when they say that already or need only those edits
/// ([`passthrough::forward_body`]), else serialised.
fn openai_body(req: &ChatRequest, stream: bool, model: Option<&str>) -> Bytes {
    if !req.has_gateway_extensions()
        && let Some(b) = passthrough::forward_body(req, stream, model)
    {
        return b;
    }
    Bytes::from(serialised_openai_body(req, stream, model))
}

fn serialised_openai_body(req: &ChatRequest, stream: bool, model: Option<&str>) -> Vec<u8> {
    let already = req.is_stream() == stream
        && if stream { req.wants_stream_usage() } else { req.stream_options.is_none() }
        && model.is_none()
        && !req.has_gateway_extensions();
    if already {
        return serde_json::to_vec(req).unwrap_or_default();
    }
    let mut r = req.clone();
    r.strip_gateway_extensions();
    r.stream = if stream {
        Some(true)
    } else if req.stream.is_some() {
        Some(false)
    } else {
        None
    };
    if stream {
        let mut opts = match r.stream_options.take() {
            Some(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        opts.insert("include_usage".into(), serde_json::Value::Bool(true));
        r.stream_options = Some(serde_json::Value::Object(opts));
    } else {
        r.stream_options = None;
    }
    if let Some(m) = model {
        r.model = m.to_string();
    }
    serde_json::to_vec(&r).unwrap_or_default()
}

/// A plain chat answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The OpenAI-format `chat.completion` JSON to return to the client
    /// (OpenAI/Azure: the provider's bytes unchanged; Anthropic: translated).
    pub body: Bytes,
    /// The model the provider reports (for pricing).
    pub model: String,
    /// Normalised usage.
    pub usage: TokenUsage,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
}

impl ChatResponse {
    /// The answer's text (its first choice's; read from [`ChatResponse::body`]).
    pub fn content(&self) -> String {
        openai::first_choice(&self.body).0
    }

    /// Why the answer ended (its first choice's `finish_reason`).
    pub fn finish_reason(&self) -> Option<String> {
        openai::first_choice(&self.body).1
    }

    /// Cost from the pricing table (the reported model first, then the requested one).
    pub fn cost(&self, pricing: &PricingTable, provider: ProviderKind, requested_model: &str) -> Option<Micros> {
        pricing.cost(provider, &self.model, &self.usage).or_else(|| pricing.cost(provider, requested_model, &self.usage))
    }
}

/// An embeddings answer.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsResponse {
    /// The OpenAI-format JSON to return to the client, unchanged.
    pub body: Bytes,
    pub model: String,
    pub usage: TokenUsage,
    pub attempts: u32,
}

/// Timeouts, limits and retries of the shared client.
#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    pub connect_timeout: Duration,
    /// Whole plain request (headers and body).
    pub request_timeout: Duration,
    /// Streams: time to the response headers.
    pub stream_first_byte_timeout: Duration,
    /// Streams: longest silence between two chunks.
    pub stream_idle_timeout: Duration,
    /// Key validation call.
    pub validate_timeout: Duration,
    /// Largest plain answer we read.
    pub max_body_bytes: usize,
    /// The reasoning-effort budgets (and model equivalents) of the translation.
    pub translation: TranslationTables,
    pub retry: RetryPolicy,
    pub pool_max_idle_per_host: usize,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            stream_first_byte_timeout: Duration::from_secs(60),
            stream_idle_timeout: Duration::from_secs(60),
            validate_timeout: Duration::from_secs(15),
            max_body_bytes: 32 * 1024 * 1024,
            translation: TranslationTables::builtin(),
            retry: RetryPolicy::default(),
            pool_max_idle_per_host: 64,
        }
    }
}

/// Upper bound on gateway lanes with a connection pool of their own.
const LANES: usize = 9;

thread_local! {
    static LANE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as gateway lane `n` (1-based; 0 is everything
/// else). Each lane is a single-threaded runtime, and upstream connections are
/// driven by the runtime that opened them, so a lane calls providers through a
/// pool of its own: a request and its upstream call stay on one thread.
pub fn set_lane(n: usize) {
    LANE.with(|l| l.set(n.min(LANES - 1)));
}

/// The provider layer: pooled HTTP clients (one per gateway lane, see
/// [`set_lane`]) shared by every call. Cheap to clone.
#[derive(Clone)]
pub struct Providers {
    http: Arc<[std::sync::OnceLock<reqwest::Client>; LANES]>,
    /// The direct transport's clients, per lane as `http`; `None` when a
    /// proxy is configured (reqwest then carries every call).
    direct: Option<Arc<[std::sync::OnceLock<transport::Client>; LANES]>>,
    cfg: Arc<ProvidersConfig>,
    jitter: Arc<Mutex<crate::domain::rng::DetRng>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers").field("cfg", &self.cfg).finish()
    }
}

impl Providers {
    pub fn new(cfg: ProvidersConfig) -> Result<Self, ProviderError> {
        let http: Arc<[std::sync::OnceLock<reqwest::Client>; LANES]> = Arc::new(Default::default());
        // The shared client is built now, so a broken TLS setup is reported here.
        let _ = http[0].set(Self::build_client(&cfg)?);
        let direct = if transport::proxy_configured() {
            None
        } else {
            let d: Arc<[std::sync::OnceLock<transport::Client>; LANES]> = Arc::new(Default::default());
            let _ = d[0].set(transport::build(&cfg)?);
            Some(d)
        };
        let seed = getrandom::u64().unwrap_or(0x5eed);
        Ok(Self { http, direct, cfg: Arc::new(cfg), jitter: Arc::new(Mutex::new(crate::domain::rng::DetRng::new(seed))) })
    }

    fn build_client(cfg: &ProvidersConfig) -> Result<reqwest::Client, ProviderError> {
        reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // Provider APIs answer where they are asked; a redirect means a
            // wrong base URL, and following it would carry the key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Connect { provider: "HTTP client", message: e.to_string() })
    }

    /// The current thread's client: its lane's own, or the shared one.
    fn client(&self) -> &reqwest::Client {
        let shared = || self.http[0].get_or_init(|| Self::build_client(&self.cfg).unwrap_or_default());
        match LANE.with(|l| l.get()) {
            0 => shared(),
            n => match self.http[n].get() {
                Some(c) => c,
                None => match Self::build_client(&self.cfg) {
                    Ok(c) => self.http[n].get_or_init(|| c),
                    Err(_) => shared(),
                },
            },
        }
    }

    /// The current thread's direct client, as [`Providers::client`].
    fn direct_client(&self) -> Option<&transport::Client> {
        let direct = self.direct.as_ref()?;
        let n = LANE.with(|l| l.get());
        if let Some(c) = direct[n].get() {
            return Some(c);
        }
        match transport::build(&self.cfg) {
            Ok(c) => Some(direct[n].get_or_init(|| c)),
            Err(_) => direct[0].get(),
        }
    }

    pub fn config(&self) -> &ProvidersConfig {
        &self.cfg
    }

    fn random(&self) -> u64 {
        self.jitter.lock().next_u64()
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy gives up.
    async fn with_retry<T, F, Fut>(&self, t: &ProviderTarget, mut attempt: F) -> Result<(T, u32), ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let mut n = 0;
        loop {
            n += 1;
            match attempt().await {
                Ok(v) => return Ok((v, n)),
                Err(e) => match t.retry.as_ref().unwrap_or(&self.cfg.retry).delay(n, &e, self.random()) {
                    Some(d) => {
                        tracing::debug!(class = e.class(), attempt = n, delay_ms = d.as_millis() as u64, "retrying provider call");
                        tokio::time::sleep(d).await;
                    }
                    None => return Err(e),
                },
            }
        }
    }

    /// Sends one request; a non-2xx answer becomes a classified error.
    async fn send(
        &self,
        p: &Provider,
        t: &ProviderTarget,
        method: reqwest::Method,
        url: &str,
        body: Option<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ProviderError> {
        let rb = match parsed_url(url) {
            Some(u) => self.client().request(method, u),
            // reqwest reports what is wrong with it.
            None => self.client().request(method, url),
        };
        let mut rb = rb.headers(p.auth_headers(&t.key)?);
        if let Some(b) = body {
            rb = rb.header(reqwest::header::CONTENT_TYPE, "application/json").body(b);
        }
        if let Some(to) = timeout {
            rb = rb.timeout(to);
        }
        let resp = rb.send().await.map_err(|e| ProviderError::from_transport(p.name(), &e, t.key.expose()))?;
        let status = resp.status().as_u16();
        HeaderObserver::see(t.observe.as_ref(), resp.headers());
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let headers = resp.headers().clone();
        let body = read_capped(p.name(), resp, 64 * 1024, &t.key).await.unwrap_or_default();
        Err(ProviderError::from_response(p.name(), status, &headers, &body, t.key.expose()))
    }

    async fn send_read(
        &self,
        p: &Provider,
        t: &ProviderTarget,
        method: reqwest::Method,
        url: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, ProviderError> {
        if let Some(client) = self.direct_client()
            && let Some(uri) = transport::uri(url)
        {
            let headers = p.auth_headers(&t.key)?;
            return transport::send_read(
                client,
                p.name(),
                method,
                uri,
                headers,
                body,
                timeout,
                self.cfg.max_body_bytes,
                &t.key,
                t.observe.as_ref(),
            )
            .await;
        }
        let resp = self.send(p, t, method, url, body, Some(timeout)).await?;
        read_capped(p.name(), resp, self.cfg.max_body_bytes, &t.key).await
    }

    /// A plain (non-streamed) chat completion, with retries.
    pub async fn chat(&self, t: &ProviderTarget, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let p = Provider::for_target(t);
        let (url, body) = p.chat_request(req, false, &self.cfg.translation)?;
        let timeout = t.timeout.unwrap_or(self.cfg.request_timeout);
        let (resp, attempts) = self
            .with_retry(t, || {
                let (p, url, body) = (&p, &url, body.clone());
                async move {
                    let bytes = self.send_read(p, t, reqwest::Method::POST, url, Some(body), timeout).await?;
                    parse_chat_answer(p, req, bytes)
                }
            })
            .await?;
        Ok(ChatResponse { attempts, ..resp })
    }

    /// A streamed chat completion. Opening the stream is retried (nothing has
    /// been forwarded yet); once this returns, nothing is retried.
    pub async fn chat_stream(&self, t: &ProviderTarget, req: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let p = Provider::for_target(t);
        let (url, body) = p.chat_request(req, true, &self.cfg.translation)?;
        let first_byte = t.timeout.unwrap_or(self.cfg.stream_first_byte_timeout);
        let (resp, attempts) = self
            .with_retry(t, || {
                let (p, url, body) = (&p, &url, body.clone());
                async move {
                    match tokio::time::timeout(first_byte, self.send(p, t, reqwest::Method::POST, url, Some(body), None)).await {
                        Ok(r) => r,
                        Err(_) => Err(ProviderError::Timeout { provider: p.name() }),
                    }
                }
            })
            .await?;
        let created = unix_now();
        let translator: Box<dyn translate::StreamTranslator> = match &p {
            Provider::Anthropic { .. } => Box::new(
                anthropic::AnthropicTranslator::new(&req.model, created, req.wants_stream_usage())
                    .structured(req.wants_structured_output()),
            ),
            other => Box::new(openai::OpenAiTranslator::new(other.name(), &req.model, req.wants_stream_usage())),
        };
        let prompt_estimate = token_count::estimate_chat_prompt(req);
        Ok(ChatStream::new(resp.bytes_stream().boxed(), translator, self.cfg.stream_idle_timeout, prompt_estimate, t.key.clone(), attempts))
    }

    /// Embeddings (OpenAI and Azure; Anthropic has none).
    pub async fn embeddings(&self, t: &ProviderTarget, req: &EmbeddingsRequest) -> Result<EmbeddingsResponse, ProviderError> {
        let p = Provider::for_target(t);
        let (url, body) = match &p {
            Provider::Anthropic { .. } => return Err(ProviderError::Unsupported { provider: anthropic::NAME, what: "embeddings" }),
            Provider::OpenAi { base } => (v1_url(base, "embeddings"), serde_json::to_vec(req).unwrap_or_default()),
            Provider::Azure(route) => {
                let mut r = req.clone();
                if route.model_in_body() {
                    r.model = route.deployment().to_string();
                }
                (route.op_url("embeddings"), serde_json::to_vec(&r).unwrap_or_default())
            }
        };
        let body = Bytes::from(body);
        let timeout = t.timeout.unwrap_or(self.cfg.request_timeout);
        let ((bytes, parsed), attempts) = self
            .with_retry(t, || {
                let (p, url, body) = (&p, &url, body.clone());
                async move {
                    let bytes = self.send_read(p, t, reqwest::Method::POST, url, Some(body), timeout).await?;
                    #[derive(serde::Deserialize)]
                    struct Peek {
                        #[serde(default)]
                        model: String,
                        #[serde(default)]
                        usage: Option<OpenAiUsage>,
                    }
                    let parsed: Peek = serde_json::from_slice(&bytes).map_err(|e| ProviderError::InvalidResponse {
                        provider: p.name(),
                        message: format!("not an embeddings answer: {e}"),
                    })?;
                    Ok((bytes, parsed))
                }
            })
            .await?;
        // Embeddings report only prompt tokens: that figure is the usage.
        let usage = match parsed.usage {
            Some(u) if u.prompt_tokens.is_some() => u.normalise(),
            _ => TokenUsage { input: token_count::estimate_embeddings(req), estimated: true, ..TokenUsage::default() },
        };
        let model = if parsed.model.is_empty() { req.model.clone() } else { parsed.model };
        Ok(EmbeddingsResponse { body: bytes, model, usage, attempts })
    }

    /// The models the account offers (`GET /v1/models`; Azure: the resource's model list).
    pub async fn list_models(&self, t: &ProviderTarget) -> Result<Vec<ModelInfo>, ProviderError> {
        let p = Provider::for_target(t);
        let timeout = t.timeout.unwrap_or(self.cfg.validate_timeout);
        let bytes = self.send_read(&p, t, reqwest::Method::GET, &p.models_url(), None, timeout).await?;
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            data: Vec<ModelInfo>,
        }
        let list: List = serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::InvalidResponse { provider: p.name(), message: format!("not a model list: {e}") })?;
        Ok(list.data)
    }

    /// Checks a key with one cheap authenticated call (the model list), without
    /// retries. Returns the status and the provider's own message (never the key).
    ///
    /// For Azure the model list belongs to the resource, not the deployment,
    /// so a mistyped deployment would pass: a second call then asks the
    /// deployment for a chat completion with no messages. An existing
    /// deployment refuses it as a bad request (no tokens are used); a missing
    /// one answers 404 (`DeploymentNotFound`).
    pub async fn validate_key(&self, t: &ProviderTarget) -> (ValidationStatus, String) {
        let models = match self.list_models(t).await {
            Ok(m) => m,
            Err(e) => return (e.validation_status(), e.provider_message()),
        };
        let p = Provider::for_target(t);
        let Provider::Azure(route) = &p else {
            return (ValidationStatus::Valid, format!("key accepted; {} models available", models.len()));
        };
        let deployment = route.deployment();
        if deployment.is_empty() {
            return (ValidationStatus::Valid, format!("key accepted; {} models on the resource", models.len()));
        }
        let mut probe = serde_json::json!({"messages": [], "max_tokens": 1});
        if route.model_in_body() {
            probe["model"] = deployment.into();
        }
        let body = Bytes::from(serde_json::to_vec(&probe).unwrap_or_default());
        let timeout = t.timeout.unwrap_or(self.cfg.validate_timeout);
        match self.send_read(&p, t, reqwest::Method::POST, &route.op_url("chat/completions"), Some(body), timeout).await {
            Ok(_) | Err(ProviderError::BadRequest { status: 400 | 422, .. }) => {
                (ValidationStatus::Valid, format!("key accepted; deployment '{deployment}' found; {} models on the resource", models.len()))
            }
            Err(ProviderError::Server { status: 404, .. } | ProviderError::BadRequest { status: 404, .. }) => (
                ValidationStatus::NoPermission,
                format!(
                    "the key works, but the resource has no deployment named '{deployment}': check the deployment name in Azure AI Foundry"
                ),
            ),
            Err(e) => (e.validation_status(), e.provider_message()),
        }
    }
}

fn parse_chat_answer(p: &Provider, req: &ChatRequest, bytes: Bytes) -> Result<ChatResponse, ProviderError> {
    match p {
        Provider::Anthropic { .. } => {
            anthropic::from_messages_response(&bytes, unix_now(), req.wants_structured_output(), || token_count::estimate_chat_prompt(req))
        }
        _ => {
            let parsed = openai::parse_chat(p.name(), &bytes)?;
            let usage = parsed
                .usage
                .unwrap_or_default()
                .normalise_or(|| token_count::estimate_chat_prompt(req), || token_count::count_text(&openai::first_choice(&bytes).0));
            let model = if parsed.model.is_empty() { req.model.clone() } else { parsed.model };
            Ok(ChatResponse { body: bytes, model, usage, attempts: 1 })
        }
    }
}

/// Reads a body, refusing more than `cap` bytes.
async fn read_capped(provider: &'static str, mut resp: reqwest::Response, cap: usize, key: &Secret) -> Result<Bytes, ProviderError> {
    if resp.content_length().is_some_and(|n| n as usize > cap) {
        return Err(ProviderError::InvalidResponse { provider, message: format!("answer larger than {cap} bytes") });
    }
    let mut buf = bytes::BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if buf.len() + c.len() > cap {
                    return Err(ProviderError::InvalidResponse { provider, message: format!("answer larger than {cap} bytes") });
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => return Err(ProviderError::from_transport(provider, &e, key.expose())),
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_never_prints_its_key() {
        let k = Secret::new("sk-proj-abcdefghijklmnopqrstuvwxyz9f3c");
        assert_eq!(format!("{k}"), "sk-proj-…9f3c");
        assert_eq!(format!("{k:?}"), "Secret(sk-proj-…9f3c)");
        let t = ProviderTarget::new(ProviderKind::OpenAi, "http://x", k);
        assert!(!format!("{t:?}").contains("abcdefgh"));
    }

    #[test]
    fn an_answer_missing_a_usage_figure_has_that_figure_estimated() {
        let req = ChatRequest::simple("gpt-4o", "Plan the seating for ninety guests at the barn");
        let target = |kind| ProviderTarget::new(kind, "http://x", Secret::new("sk-test-00000000a1b2"));
        let text = "Seat the families first, then the friends by the dance floor.";
        let (prompt, output) = (token_count::estimate_chat_prompt(&req), token_count::count_text(text));
        assert!(prompt > 0 && output > 0);
        let openai = Provider::for_target(&target(ProviderKind::OpenAi));
        let answer = |usage: &str| {
            Bytes::from(format!(
                r#"{{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}"}},"finish_reason":"stop"}}]{usage}}}"#
            ))
        };
        for (usage, want) in [
            (r#","usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}"#, (9, 4, false)),
            ("", (prompt, output, true)),
            (r#","usage":null"#, (prompt, output, true)),
            (r#","usage":{}"#, (prompt, output, true)),
            (r#","usage":{"prompt_tokens":"nine","completion_tokens":4}"#, (prompt, 4, true)),
            (r#","usage":{"prompt_tokens":9}"#, (9, output, true)),
            (r#","usage":{"prompt_tokens":9,"completion_tokens":{"n":4}}"#, (9, output, true)),
            (r#","usage":{"prompt_tokens":-3,"completion_tokens":4}"#, (0, 4, false)),
        ] {
            let u = parse_chat_answer(&openai, &req, answer(usage)).unwrap().usage;
            assert_eq!((u.input, u.output, u.estimated), want, "OpenAI usage {usage:?}");
        }
        let anthropic = Provider::for_target(&target(ProviderKind::Anthropic));
        let message = |usage: &str| {
            Bytes::from(format!(
                r#"{{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{{"type":"text","text":"{text}"}}],"stop_reason":"end_turn"{usage}}}"#
            ))
        };
        for (usage, want) in [
            (r#","usage":{"input_tokens":10,"output_tokens":3}"#, (10, 3, false)),
            ("", (prompt, output, true)),
            (r#","usage":{"input_tokens":10}"#, (10, output, true)),
            (r#","usage":{"input_tokens":"ten","output_tokens":3}"#, (prompt, 3, true)),
            (r#","usage":null"#, (prompt, output, true)),
        ] {
            let u = parse_chat_answer(&anthropic, &req, message(usage)).unwrap().usage;
            assert_eq!((u.input, u.output, u.estimated), want, "Anthropic usage {usage:?}");
        }
    }

    #[test]
    fn openai_body_forces_include_usage_for_streams() {
        let r = ChatRequest::simple("gpt-4o", "hi");
        let v: serde_json::Value = serde_json::from_slice(&openai_body(&r, true, None)).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream"], true);
        let v: serde_json::Value = serde_json::from_slice(&openai_body(&r, false, Some("dep"))).unwrap();
        assert_eq!(v["model"], "dep");
        assert!(v.get("stream").is_none());
        assert_eq!(v1_url("https://api.openai.com/v1/", "models"), "https://api.openai.com/v1/models");
    }

    #[test]
    fn anthropic_only_fields_go_to_anthropic_and_never_to_openai() {
        let mut r = ChatRequest::simple("claude-haiku-4-5", "hi");
        r.extra.insert("top_k".into(), serde_json::json!(40));
        r.extra.insert("thinking".into(), serde_json::json!({"type": "enabled", "budget_tokens": 3000}));
        r.extra.insert("reasoning_effort".into(), serde_json::json!("medium"));
        let v: serde_json::Value = serde_json::from_slice(&openai_body(&r, false, None)).unwrap();
        assert!(v.get("top_k").is_none() && v.get("thinking").is_none(), "{v}");
        assert_eq!(v["reasoning_effort"], "medium");
        let a = anthropic::to_messages_request(&r, &crate::domain::translation::TranslationTables::builtin()).unwrap();
        assert_eq!(a.top_k, Some(40));
        assert_eq!(a.thinking, Some(serde_json::json!({"type": "enabled", "budget_tokens": 3000})), "the exact budget, not the effort's");
    }
}
