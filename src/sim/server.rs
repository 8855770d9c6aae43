//! The simulator's HTTP routes: OpenAI (`/v1/chat/completions`,
//! `/v1/embeddings`, `/v1/models`), Anthropic (`/v1/messages`, `/v1/models`
//! with `x-api-key`), Azure OpenAI (`/openai/deployments/{d}/…?api-version=`,
//! `/openai/models`, `/openai/v1/…`) and the admin endpoints under `/_sim/`.

use super::reply::{self, Dialect, ErrorAnswer, Plan, Prompt};
use super::tools;
use super::{Account, Faults, Outcome, SimState};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;

type St = State<Arc<SimState>>;

pub(crate) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/models", get(models))
        .route("/v1/messages", post(anthropic_messages))
        .route("/openai/deployments/{deployment}/chat/completions", post(azure_chat))
        .route("/openai/deployments/{deployment}/embeddings", post(azure_embeddings))
        .route("/openai/deployments/{deployment}", get(azure_deployment))
        .route("/openai/models", get(azure_models))
        .route("/openai/v1/chat/completions", post(azure_v1_chat))
        .route("/openai/v1/embeddings", post(azure_v1_embeddings))
        .route("/openai/v1/models", get(azure_v1_models))
        .route("/_sim/accounts", get(admin_list))
        .route("/_sim/accounts/{name}/faults", post(admin_faults))
        // Per-key rate limits and their headers (`sim::limits`).
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::limits::enforce))
        // Real APIs take large bodies (base64 images); axum's default is 2 MB.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(state)
}

fn json_response(status: u16, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: ErrorAnswer) -> Response {
    let mut r = json_response(e.status, e.body);
    for (k, v) in e.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The key a request presents, the way its provider expects it.
fn presented_key(d: Dialect, h: &HeaderMap) -> Option<&str> {
    let bearer = || header_str(h, "authorization").and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    match d {
        Dialect::OpenAi => bearer(),
        Dialect::Anthropic => header_str(h, "x-api-key"),
        Dialect::Azure => header_str(h, "api-key").or_else(bearer),
    }
}

/// Authenticates, counts, applies latency and faults. `Err` is the answer to send.
async fn admit(s: &SimState, d: Dialect, h: &HeaderMap, model: &str) -> Result<(Arc<Account>, super::Decision), Response> {
    let key = presented_key(d, h);
    let account = match key.and_then(|k| s.account_by_key(k)) {
        Some(a) if a.provider == d.provider() => a,
        _ => return Err(error_response(reply::unauthorized(d, key, s.next_id()))),
    };
    account.requests.fetch_add(1, Ordering::Relaxed);
    let decision = account.decide();
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if decision.outcome != Outcome::Ok {
        return Err(error_response(reply::fault(d, decision.outcome, model, s.next_id())));
    }
    Ok((account, decision))
}

/// Parses the body (once), then authenticates and applies faults: an auth or
/// fault answer wins over a parse error, as at the real APIs.
async fn admit_json<T: serde::de::DeserializeOwned>(
    s: &SimState,
    d: Dialect,
    h: &HeaderMap,
    body: &[u8],
    model: fn(&T) -> &str,
) -> Result<(Arc<Account>, super::Decision, T), Response> {
    let parsed = serde_json::from_slice::<T>(body);
    let model_name = parsed.as_ref().map(model).unwrap_or("");
    let (account, decision) = admit(s, d, h, model_name).await?;
    account.generations.fetch_add(1, Ordering::Relaxed);
    match parsed {
        Ok(r) => Ok((account, decision, r)),
        Err(e) => {
            Err(error_response(reply::bad_request(d, &format!("We could not parse the JSON body of your request. ({e})"), s.next_id())))
        }
    }
}

fn sse_response(events: Vec<Bytes>, decision: &super::Decision) -> Response {
    let body = if decision.slow_stream.is_zero() && decision.cut_after.is_none() {
        let total: usize = events.iter().map(|b| b.len()).sum();
        let mut all = Vec::with_capacity(total);
        for e in &events {
            all.extend_from_slice(e);
        }
        Body::from(all)
    } else {
        let delay = decision.slow_stream;
        let cut = decision.cut_after.map(|n| n as usize);
        let stream = futures::stream::unfold((events.into_iter(), 0usize), move |(mut it, i)| async move {
            if cut == Some(i) {
                // Let what was sent reach the wire first, as a real mid-stream cut would.
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                return Some((Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "simulated stream cut")), (it, i + 1)));
            }
            if cut.is_some_and(|c| i > c) {
                return None;
            }
            let next = it.next()?;
            if !delay.is_zero() && i > 0 {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<Bytes, std::io::Error>(next), (it, i + 1)))
        });
        Body::from_stream(stream)
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// Fills the cache figures of a plan: OpenAI caches a repeated prompt of at
/// least 1,024 tokens in 128-token steps; Anthropic caches up to the last
/// `cache_control` block (written the first time, read afterwards).
fn apply_cache(d: Dialect, account: &Account, prompt: &Prompt<'_>, plan: &mut Plan) {
    match d {
        Dialect::Anthropic => {
            if let Some((tokens, hash)) = prompt.cache_prefix
                && tokens >= reply::ANTHROPIC_CACHE_MIN
            {
                if account.seen_before(hash) {
                    plan.cached_read = tokens;
                } else {
                    plan.cache_write = tokens;
                }
                plan.input = prompt.tokens - tokens;
            }
        }
        _ => {
            if prompt.tokens >= reply::OPENAI_CACHE_MIN && account.seen_before(prompt.hash) {
                let cached = (prompt.tokens / 128 * 128).min(prompt.tokens);
                plan.cached_read = cached;
                plan.input = prompt.tokens - cached;
            }
        }
    }
}

/// OpenAI and Azure chat. `deployment`: Azure's deployment name (path or v1 body).
async fn openai_like_chat(s: &SimState, d: Dialect, h: &HeaderMap, body: &[u8], deployment: Option<&str>) -> Response {
    let (account, decision, req) = match admit_json(s, d, h, body, |r: &reply::OpenAiChatIn| &r.model).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // The model that answers: Azure maps the deployment, OpenAI checks the name.
    let model: String = match d {
        Dialect::Azure => {
            let dep = deployment.unwrap_or(&req.model);
            match account.deployments.get(dep) {
                Some(m) => m.clone(),
                None => return error_response(reply::not_found_model(d, dep, s.next_id())),
            }
        }
        _ => {
            if req.model.is_empty() {
                return error_response(reply::bad_request(d, "you must provide a model parameter", s.next_id()));
            }
            if !reply::offers(&account.models, &req.model) {
                return error_response(reply::not_found_model(d, &req.model, s.next_id()));
            }
            req.model.clone()
        }
    };
    if req.messages.is_empty() {
        // As OpenAI and Azure answer it (Switchboard's Azure validation relies on it).
        return error_response(reply::bad_request(
            d,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            s.next_id(),
        ));
    }
    let prompt = Prompt::openai(&req.messages);
    if prompt.context_marker || prompt.tokens > reply::max_context(d) {
        let tokens = prompt.tokens.max(reply::max_context(d) + 1);
        return error_response(reply::context_length(d, tokens, reply::max_context(d), s.next_id()));
    }
    if prompt.filter_marker && d == Dialect::Azure {
        return error_response(reply::azure_content_filter());
    }
    if let Some(problem) = tools::openai_problem(&req.messages) {
        return error_response(reply::bad_request(d, &problem, s.next_id()));
    }
    let turn = tools::openai_turn(&req.messages, req.tools.as_ref(), req.tool_choice.as_ref(), req.response_format.as_ref());
    let max = req.max_completion_tokens.or(req.max_tokens);
    let mut plan = reply::plan_turn(&model, &prompt, max, prompt.filter_marker, reply::is_reasoning_model(&model), &turn, s.next_id());
    // OpenAI's reasoning models think without showing it.
    plan.thinking = None;
    apply_cache(d, &account, &prompt, &mut plan);
    let id = format!("chatcmpl-sim{:016x}", s.next_id());
    if req.stream == Some(true) {
        let include_usage = req.stream_options.and_then(|o| o.include_usage).unwrap_or(false);
        sse_response(reply::openai_stream(d, &id, &model, &plan, include_usage), &decision)
    } else {
        let body = reply::openai_completion(d, &id, &model, &plan);
        json_response(200, if account.faults().absurd_usage { reply::with_absurd_usage(body) } else { body })
    }
}

async fn openai_chat(State(s): St, h: HeaderMap, body: Bytes) -> Response {
    openai_like_chat(&s, Dialect::OpenAi, &h, &body, None).await
}

#[derive(Deserialize)]
struct ApiVersion {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

fn azure_resource_not_found() -> Response {
    json_response(404, br#"{"error":{"code":"404","message": "Resource not found"}}"#.to_vec())
}

async fn azure_chat(State(s): St, Path(deployment): Path<String>, Query(q): Query<ApiVersion>, h: HeaderMap, body: Bytes) -> Response {
    if q.api_version.is_none() {
        return azure_resource_not_found();
    }
    openai_like_chat(&s, Dialect::Azure, &h, &body, Some(&deployment)).await
}

async fn azure_v1_chat(State(s): St, h: HeaderMap, body: Bytes) -> Response {
    openai_like_chat(&s, Dialect::Azure, &h, &body, None).await
}

async fn anthropic_messages(State(s): St, h: HeaderMap, body: Bytes) -> Response {
    let d = Dialect::Anthropic;
    let (account, decision, req) = match admit_json(&s, d, &h, &body, |r: &reply::AnthropicIn| &r.model).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if header_str(&h, "anthropic-version").is_none() {
        return error_response(reply::bad_request(d, "anthropic-version: header is required", s.next_id()));
    }
    if req.messages.is_empty() {
        return error_response(reply::bad_request(d, "messages: at least one message is required", s.next_id()));
    }
    if !reply::offers(&account.models, &req.model) {
        return error_response(reply::not_found_model(d, &req.model, s.next_id()));
    }
    let thinking = req.thinking.as_ref().and_then(|t| t.get("type")).and_then(|t| t.as_str()) == Some("enabled");
    let prompt = Prompt::anthropic(&req.system, &req.messages);
    if prompt.context_marker || prompt.tokens > reply::max_context(d) {
        let tokens = prompt.tokens.max(reply::max_context(d) + 1);
        return error_response(reply::context_length(d, tokens, reply::max_context(d), s.next_id()));
    }
    if let Some(problem) = tools::anthropic_problem(&req.messages, thinking) {
        return error_response(reply::bad_request(d, &problem, s.next_id()));
    }
    let turn = tools::anthropic_turn(&req.messages, req.tools.as_ref(), req.tool_choice.as_ref());
    let mut plan = reply::plan_turn(&req.model, &prompt, Some(req.max_tokens), prompt.filter_marker, thinking, &turn, s.next_id());
    apply_cache(d, &account, &prompt, &mut plan);
    let id = format!("msg_sim{:016x}", s.next_id());
    if req.stream == Some(true) {
        sse_response(reply::anthropic_stream(&id, &req.model, &plan), &decision)
    } else {
        json_response(200, reply::anthropic_message(&id, &req.model, &plan))
    }
}

#[derive(Deserialize)]
struct EmbeddingsIn {
    #[serde(default)]
    model: String,
    input: serde_json::Value,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    encoding_format: Option<String>,
}

async fn embeddings(s: &SimState, d: Dialect, h: &HeaderMap, body: &[u8], deployment: Option<&str>) -> Response {
    let (account, _, req) = match admit_json(s, d, h, body, |r: &EmbeddingsIn| &r.model).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let model = match d {
        Dialect::Azure => match account.deployments.get(deployment.unwrap_or(&req.model)) {
            Some(m) => m.clone(),
            None => return error_response(reply::not_found_model(d, deployment.unwrap_or(&req.model), s.next_id())),
        },
        _ => req.model.clone(),
    };
    if !model.starts_with("text-embedding") || !reply::offers(&account.models, &model) {
        return error_response(reply::not_found_model(d, &model, s.next_id()));
    }
    let texts: Vec<&str> = match &req.input {
        serde_json::Value::String(t) => vec![t.as_str()],
        serde_json::Value::Array(a) if !a.is_empty() => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => return error_response(reply::bad_request(d, "'input' must be a string or a non-empty array of strings", s.next_id())),
    };
    if texts.iter().any(|t| t.contains("[sim:content_filter]")) {
        return error_response(reply::azure_content_filter());
    }
    let default_dims = if model.contains("large") { 3072 } else { 1536 };
    let dims = req.dimensions.unwrap_or(default_dims).clamp(1, default_dims);
    let base64 = req.encoding_format.as_deref() == Some("base64");
    let mut tokens = 0;
    let data: Vec<serde_json::Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            tokens += reply::sim_tokens(t);
            let v = reply::embedding(t, dims);
            let emb = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                serde_json::Value::String(reply::base64(&bytes))
            } else {
                serde_json::json!(v)
            };
            serde_json::json!({"object": "embedding", "index": i, "embedding": emb})
        })
        .collect();
    let out =
        serde_json::json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
    json_response(200, serde_json::to_vec(&out).unwrap_or_default())
}

async fn openai_embeddings(State(s): St, h: HeaderMap, body: Bytes) -> Response {
    embeddings(&s, Dialect::OpenAi, &h, &body, None).await
}

async fn azure_embeddings(
    State(s): St,
    Path(deployment): Path<String>,
    Query(q): Query<ApiVersion>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if q.api_version.is_none() {
        return azure_resource_not_found();
    }
    embeddings(&s, Dialect::Azure, &h, &body, Some(&deployment)).await
}

async fn azure_v1_embeddings(State(s): St, h: HeaderMap, body: Bytes) -> Response {
    embeddings(&s, Dialect::Azure, &h, &body, None).await
}

async fn list_models(s: &SimState, d: Dialect, h: &HeaderMap) -> Response {
    match admit(s, d, h, "").await {
        Ok((account, _)) => json_response(200, reply::model_list(&account, d)),
        Err(r) => r,
    }
}

/// `GET /v1/models` is both OpenAI's and Anthropic's: the auth header decides.
async fn models(State(s): St, h: HeaderMap) -> Response {
    let d = if h.contains_key("x-api-key") || h.contains_key("anthropic-version") { Dialect::Anthropic } else { Dialect::OpenAi };
    list_models(&s, d, &h).await
}

async fn azure_models(State(s): St, RawQuery(q): RawQuery, h: HeaderMap) -> Response {
    if !q.unwrap_or_default().contains("api-version=") {
        return azure_resource_not_found();
    }
    list_models(&s, Dialect::Azure, &h).await
}

async fn azure_v1_models(State(s): St, h: HeaderMap) -> Response {
    list_models(&s, Dialect::Azure, &h).await
}

async fn azure_deployment(State(s): St, Path(deployment): Path<String>, Query(q): Query<ApiVersion>, h: HeaderMap) -> Response {
    if q.api_version.is_none() {
        return azure_resource_not_found();
    }
    let (account, _) = match admit(&s, Dialect::Azure, &h, "").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match account.deployments.get(&deployment) {
        Some(model) => {
            let v = serde_json::json!({"id": deployment, "model": model, "owner": "organization-owner", "status": "succeeded", "object": "deployment", "scale_settings": {"scale_type": "standard"}});
            json_response(200, serde_json::to_vec(&v).unwrap_or_default())
        }
        None => error_response(reply::not_found_model(Dialect::Azure, &deployment, s.next_id())),
    }
}

async fn admin_list(State(s): St) -> Response {
    let list: Vec<serde_json::Value> = s
        .accounts()
        .iter()
        .map(|a| {
            serde_json::json!({"name": a.name, "provider": a.provider, "key_fingerprint": crate::domain::provider::fingerprint(&a.key),
                "requests": a.requests.load(Ordering::Relaxed), "generations": a.generations.load(Ordering::Relaxed), "faults": a.faults()})
        })
        .collect();
    json_response(200, serde_json::to_vec(&list).unwrap_or_default())
}

/// Merges the posted fields into the account's faults (`{"outage": true}` changes only the outage).
async fn admin_faults(State(s): St, Path(name): Path<String>, body: Bytes) -> Response {
    let Some(account) = s.account_by_name(&name) else {
        return json_response(
            404,
            serde_json::to_vec(&serde_json::json!({"error": format!("no simulator account named '{name}'")})).unwrap_or_default(),
        );
    };
    let patch: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Object(m)) => serde_json::Value::Object(m),
        _ => return json_response(400, br#"{"error":"the body must be a JSON object of fault fields"}"#.to_vec()),
    };
    let mut current = serde_json::to_value(account.faults()).unwrap_or_default();
    if let (Some(cur), Some(p)) = (current.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            cur.insert(k.clone(), v.clone());
        }
    }
    match serde_json::from_value::<Faults>(current) {
        Ok(f) => {
            account.set_faults(f);
            json_response(200, serde_json::to_vec(&f).unwrap_or_default())
        }
        Err(e) => json_response(400, serde_json::to_vec(&serde_json::json!({"error": e.to_string()})).unwrap_or_default()),
    }
}
