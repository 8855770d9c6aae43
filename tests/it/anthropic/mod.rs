//! The Anthropic-compatible ingress (`/v1/messages`, `/v1/messages/count_tokens`)
//! end to end: real HTTP over loopback into the gateway, the router on the
//! provider simulator (OpenAI, Anthropic and Azure routes), a real SQLite
//! ledger, and the official Anthropic Python SDK. Tests that need the
//! simulator to answer tool calls (branch i23-translate) are ignored until
//! it merges.

use crate::support::{fast_providers, june, sim_account};
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::domain::{
    AccountOwner, AiMode, AzureConfig, ManualClock, NewSupplier, PricingTable, ProviderKind, Secret, SupplierId, Tier, VendorType,
};
use switchboard::engine::gateway_tokens as tokens;
use switchboard::engine::ledger::Ledger;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::gateway::{self, GatewayConfig, GatewayHandle};
use switchboard::sim::{DEMO_ANTHROPIC_KEY, DEMO_AZURE_KEY, DEMO_OPENAI_KEY, SimConfig, SimHandle, Simulator};
use switchboard::store::{NewAccount, Store};

mod idempotency;
mod sdk;

pub(crate) struct Env {
    _dir: tempfile::TempDir,
    pub(crate) store: Arc<Store>,
    pub(crate) sim: SimHandle,
    pub(crate) router: Arc<Router>,
    pub(crate) gw: GatewayHandle,
    pub(crate) http: reqwest::Client,
    pub(crate) supplier: SupplierId,
    pub(crate) token: String,
}

/// A gateway on the simulator whose only platform account is on `provider`;
/// one supplier of `tier` on platform AI, and its token.
pub(crate) async fn env_with(provider: ProviderKind, rcfg: RouterConfig, tier: Tier, gcfg: GatewayConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("anthropic.db")).unwrap());
    let sim = Simulator::start(SimConfig::demo()).await.unwrap();
    let (label, model, key) = match provider {
        ProviderKind::OpenAi => ("WedSync OpenAI", "gpt-4o-mini", DEMO_OPENAI_KEY),
        ProviderKind::Anthropic => ("WedSync Anthropic", "claude-haiku-4-5", DEMO_ANTHROPIC_KEY),
        ProviderKind::AzureOpenAi => ("WedSync Azure", "gpt-4o-mini", DEMO_AZURE_KEY),
    };
    let account = if provider == ProviderKind::AzureOpenAi {
        let n = NewAccount {
            owner: AccountOwner::Platform,
            provider,
            label: label.into(),
            base_url: sim.base_url().to_string(),
            azure: Some(AzureConfig { deployment: "gpt-4o-mini".into(), api_version: "2024-10-21".into() }),
            default_model: model.into(),
        };
        store.insert_account(&n, june()).unwrap().id
    } else {
        sim_account(&store, AccountOwner::Platform, provider, label, model, sim.base_url())
    };
    let supplier =
        store.insert_supplier(&NewSupplier::new("Messages Studio", VendorType::Planner, tier, AiMode::Platform), june()).unwrap().id;
    let router = Router::new(
        store.clone(),
        fast_providers(1),
        Arc::new(PricingTable::builtin()),
        Arc::new(ManualClock::new(june())),
        Ledger::start(&store).unwrap(),
        rcfg,
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    router.set_key(account, Some(Secret::new(key)));
    let token = tokens::issue(&store, supplier, june(), "test").unwrap().token.expose().to_string();
    router.reload().unwrap();
    let gw = gateway::start_with(router.clone(), "127.0.0.1:0".parse().unwrap(), GatewayConfig { lanes: 2, ..gcfg }).await.unwrap();
    Env { _dir: dir, store, sim, router, gw, http: reqwest::Client::new(), supplier, token }
}

pub(crate) async fn env(provider: ProviderKind) -> Env {
    env_with(provider, RouterConfig::default(), Tier::Professional, GatewayConfig::default()).await
}

const ROUTES: [ProviderKind; 3] = [ProviderKind::OpenAi, ProviderKind::Anthropic, ProviderKind::AzureOpenAi];

impl Env {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gw.addr())
    }

    /// POSTs with the token in `x-api-key`, as Anthropic's SDKs send it.
    pub(crate) fn request(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).header("x-api-key", &self.token).header("anthropic-version", "2023-06-01").json(body)
    }

    pub(crate) async fn messages(&self, body: Value) -> (u16, Value) {
        json_of(self.request("/v1/messages", &body).send().await.unwrap()).await
    }

    /// The supplier's usage rows: (status, request type, input + cached + output tokens).
    pub(crate) fn usage_rows(&self) -> Vec<(i64, i64, i64)> {
        self.store
            .with_conn(|c| {
                let mut st = c.prepare(
                    "SELECT status, request_type, input_tokens + cached_tokens + output_tokens FROM usage_events WHERE supplier_id = ?1 ORDER BY id",
                )?;
                let rows = st.query_map([self.supplier.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect()
            })
            .unwrap()
    }
}

pub(crate) async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

/// (event name, data) of an Anthropic SSE body.
pub(crate) fn events(sse: &str) -> Vec<(String, Value)> {
    sse.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_string();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_default();
            (name, serde_json::from_str(data).unwrap_or_else(|err| panic!("{data}: {err}")))
        })
        .collect()
}

fn total_tokens(usage: &Value) -> i64 {
    ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
        .iter()
        .map(|k| usage[k].as_i64().unwrap_or(0))
        .sum()
}

fn hello(stream: bool) -> Value {
    json!({"model": "claude-haiku-4-5", "max_tokens": 80, "stream": stream, "system": "You are a wedding planner.",
        "messages": [{"role": "user", "content": "Write a thank-you note for the Hendersons."}]})
}

#[tokio::test]
async fn a_plain_message_is_answered_and_recorded_on_each_route() {
    for provider in ROUTES {
        let e = env(provider).await;
        let r = e.request("/v1/messages", &hello(false)).send().await.unwrap();
        assert_eq!(r.headers()["x-switchboard-route"], "platform");
        assert!(r.headers().contains_key("x-switchboard-event-id"));
        let (status, m) = json_of(r).await;
        assert_eq!(status, 200, "{provider:?}: {m}");
        assert_eq!((m["type"].as_str(), m["role"].as_str()), (Some("message"), Some("assistant")), "{m}");
        assert!(m["id"].as_str().unwrap().starts_with("msg_"), "{m}");
        assert_eq!(m["content"][0]["type"], "text");
        assert!(!m["content"][0]["text"].as_str().unwrap().is_empty());
        assert_eq!(m["stop_reason"], "end_turn", "{provider:?}: {m}");
        assert!(m["usage"]["input_tokens"].as_i64().unwrap() > 0 && m["usage"]["output_tokens"].as_i64().unwrap() > 0, "{m}");
        e.router.ledger().flush().await;
        let rows = e.usage_rows();
        assert_eq!(rows.len(), 1, "{provider:?}: exactly one usage row");
        assert_eq!((rows[0].0, rows[0].2), (0, total_tokens(&m["usage"])), "{provider:?}: ok, and the answer's tokens");
        assert_eq!(e.router.quota_snapshot(e.supplier).unwrap().0, total_tokens(&m["usage"]) as u64, "{provider:?}: quota moved by that");
    }
}

#[tokio::test]
async fn a_streamed_message_has_anthropics_events_and_one_usage_row_on_each_route() {
    for provider in ROUTES {
        let e = env(provider).await;
        let r = e.request("/v1/messages", &hello(true)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let evs = events(&r.text().await.unwrap());
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[..3], ["message_start", "ping", "content_block_start"], "{provider:?}");
        assert_eq!(&names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"], "{provider:?}");
        for (n, d) in &evs {
            assert_eq!(d["type"], n.as_str(), "each event's data names its event");
        }
        let text: String = evs.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
        assert!(!text.is_empty(), "{provider:?}");
        let delta = &evs[evs.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn", "{provider:?}");
        e.router.ledger().flush().await;
        let rows = e.usage_rows();
        assert_eq!(rows.len(), 1, "{provider:?}: one usage row");
        assert_eq!((rows[0].0, rows[0].2), (0, total_tokens(&delta["usage"])), "{provider:?}: the streamed usage is the recorded one");
        assert!(delta["usage"]["input_tokens"].as_i64().unwrap() > 0, "{provider:?}: {delta}");
    }
}

#[tokio::test]
async fn images_are_translated_and_typed_as_image_analysis_on_each_route() {
    const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    for provider in ROUTES {
        let e = env(provider).await;
        for stream in [false, true] {
            let body = json!({"model": "claude-haiku-4-5", "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/venue.jpg"}},
                {"type": "text", "text": "Describe the venue."}]}]});
            let r = e.request("/v1/messages", &body).send().await.unwrap();
            assert_eq!(r.status(), 200, "{provider:?} stream={stream}");
            let text = r.text().await.unwrap();
            if stream {
                assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), "{text}");
            } else {
                assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["content"][0]["type"], "text");
            }
        }
        e.router.ledger().flush().await;
        let image_analysis = switchboard::domain::RequestType::ImageAnalysis.code();
        assert!(e.usage_rows().iter().all(|r| r.1 == image_analysis), "{provider:?}: {:?}", e.usage_rows());
        assert_eq!(e.usage_rows().len(), 2);
    }
}

#[tokio::test]
async fn the_token_comes_in_x_api_key_or_bearer_and_is_checked_before_the_body() {
    let e = env(ProviderKind::OpenAi).await;
    let body = hello(false);
    let post = || e.http.post(e.url("/v1/messages")).json(&body);
    assert_eq!(post().header("x-api-key", &e.token).send().await.unwrap().status(), 200);
    assert_eq!(post().bearer_auth(&e.token).send().await.unwrap().status(), 200);
    for r in [post().header("x-api-key", "sbk_wrong"), post().bearer_auth("sbk_wrong"), post()] {
        let (status, b) = json_of(r.send().await.unwrap()).await;
        assert_eq!(status, 401);
        assert_eq!(b["type"], "error");
        assert_eq!(b["error"]["type"], "authentication_error", "{b}");
        assert!(b["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A revoked token: 403 permission_error.
    let issued = tokens::issue(&e.store, e.supplier, june(), "test").unwrap();
    tokens::revoke(&e.store, issued.record.id, june(), "test").unwrap();
    e.router.reload().unwrap();
    let (status, b) = json_of(post().header("x-api-key", issued.token.expose()).send().await.unwrap()).await;
    assert_eq!((status, b["error"]["type"].as_str()), (403, Some("permission_error")));
    // The token before the body: an unauthenticated client that announces a
    // huge body and sends a little of it is answered at once.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(e.gw.addr()).await.unwrap();
    let head = "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: sbk_wrong\r\ncontent-type: application/json\r\ncontent-length: 900000000\r\n\r\n{\"model\":";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let read = async {
        let mut buf = vec![0u8; 4096];
        while !answer.contains("authentication_error") {
            let n = tcp.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read).await.expect("answered at once");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("authentication_error"), "{answer}");
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows().len(), 2, "only the two accepted requests reached a provider");
}

#[tokio::test]
async fn refusals_come_in_anthropics_error_shape() {
    let e = env_with(
        ProviderKind::OpenAi,
        RouterConfig::default(),
        Tier::Professional,
        GatewayConfig { max_body_bytes: 4096, ..GatewayConfig::default() },
    )
    .await;
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}), 400, "invalid_request_error", "max_tokens"),
        (json!({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": []}), 400, "invalid_request_error", "at least one message"),
        (
            json!({"model": "claude-9", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
            404,
            "not_found_error",
            "claude-9",
        ),
        (
            json!({"model": "claude-haiku-4-5", "max_tokens": 9_000_000, "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            json!({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x".repeat(5000)}]}),
            413,
            "request_too_large",
            "4096",
        ),
    ];
    for (body, status, kind, words) in cases {
        let (got, b) = e.messages(body.clone()).await;
        assert_eq!((got, b["type"].as_str(), b["error"]["type"].as_str()), (status, Some("error"), Some(kind)), "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains(words), "{words}: {b}");
        assert_eq!(b.as_object().unwrap().len(), 2, "only type and error: {b}");
    }
    let r = e.http.post(e.url("/v1/messages")).header("x-api-key", &e.token).body("{not json").send().await.unwrap();
    let (status, b) = json_of(r).await;
    assert_eq!((status, b["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("not valid JSON"));
    e.router.ledger().flush().await;
    assert!(e.usage_rows().is_empty(), "no refused request reached a provider");
}

#[tokio::test]
async fn a_used_up_quota_is_a_rate_limit_error_with_retry_after() {
    let mut cfg = RouterConfig::default();
    cfg.quota.starter_tokens = 200; // ×1.5 in June = 300
    let e = env_with(ProviderKind::Anthropic, cfg, Tier::Starter, GatewayConfig::default()).await;
    let mut refused = None;
    for _ in 0..30 {
        let r = e.request("/v1/messages", &hello(false)).send().await.unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            refused = Some(json_of(r).await.1);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let b = refused.expect("the quota must run out");
    assert_eq!((b["type"].as_str(), b["error"]["type"].as_str()), (Some("error"), Some("rate_limit_error")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("2026-07-01"), "{b}");
    let (used, _, quota) = e.router.quota_snapshot(e.supplier).unwrap();
    assert!(used <= quota, "never over the quota: {used} of {quota}");
}

#[tokio::test]
async fn count_tokens_estimates_without_calling_a_provider() {
    let e = env(ProviderKind::Anthropic).await;
    let e = &e;
    let count = |body: Value| async move {
        let (status, b) = json_of(e.request("/v1/messages/count_tokens", &body).send().await.unwrap()).await;
        assert_eq!(status, 200, "{b}");
        b["input_tokens"].as_u64().unwrap()
    };
    let short = count(json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hi"}]})).await;
    let long = count(json!({"model": "claude-haiku-4-5", "system": "You plan weddings for couples in Yorkshire.",
        "messages": [{"role": "user", "content": "Plan a three-day wedding for 120 guests with a rehearsal dinner."}]}))
    .await;
    let tools = count(json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hi"}],
        "tools": [{"name": "extract_booking", "description": "Reads the booking details in an email", "input_schema": {"type": "object", "properties": {"couple": {"type": "string"}}}}]}))
    .await;
    assert!(0 < short && short < long && short < tools, "{short} {long} {tools}");
    let (status, b) =
        json_of(e.http.post(e.url("/v1/messages/count_tokens")).header("x-api-key", "sbk_wrong").json(&json!({})).send().await.unwrap())
            .await;
    assert_eq!((status, b["error"]["type"].as_str()), (401, Some("authentication_error")));
    let (status, b) = json_of(e.request("/v1/messages/count_tokens", &json!({"model": "m"})).send().await.unwrap()).await;
    assert_eq!((status, b["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{b}");
    assert_eq!(e.sim.requests("anthropic-platform"), 0, "no provider call");
    e.router.ledger().flush().await;
    assert!(e.usage_rows().is_empty(), "no usage row");
}

/// A tool-use conversation of two turns, plain and streamed, on each route:
/// the simulator answers with a call to the first tool (arguments from its
/// schema), then with text quoting the tool's result.
#[tokio::test]
async fn tool_use_round_trips_on_each_route() {
    let tools = json!([{"name": "extract_booking", "description": "Extracts the booking from an email",
        "input_schema": {"type": "object", "properties": {"couple": {"type": "string"}, "guests": {"type": "integer"}, "vegan": {"type": "boolean"}},
            "required": ["couple", "guests", "vegan"]}}]);
    let want = json!({"couple": "sample couple", "guests": 1, "vegan": true});
    for provider in ROUTES {
        let e = env(provider).await;
        let ask = json!([{"role": "user", "content": "Ana and Ben, 80 guests, all vegan. Extract the booking."}]);
        let (status, m) = e.messages(json!({"model": "claude-sonnet-4-5", "max_tokens": 300, "tools": tools, "messages": ask})).await;
        assert_eq!(status, 200, "{provider:?}: {m}");
        assert_eq!(m["stop_reason"], "tool_use", "{provider:?}: {m}");
        let call = m["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").cloned().unwrap();
        assert_eq!((&call["name"], &call["input"]), (&json!("extract_booking"), &want), "{provider:?}");
        // Streamed: the arguments in at least two input_json_delta events.
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 300, "stream": true, "tools": tools,
            "tool_choice": {"type": "tool", "name": "extract_booking"}, "messages": ask});
        let evs = events(&e.request("/v1/messages", &body).send().await.unwrap().text().await.unwrap());
        let parts: Vec<&str> = evs.iter().filter_map(|(_, d)| d["delta"]["partial_json"].as_str()).collect();
        assert!(parts.len() >= 2, "{provider:?}: {parts:?}");
        assert_eq!(serde_json::from_str::<Value>(&parts.concat()).unwrap(), want);
        assert_eq!(evs[evs.len() - 2].1["delta"]["stop_reason"], "tool_use");
        // The second turn: the tool's result, quoted in the answer.
        let mut turn2 = ask.as_array().unwrap().clone();
        turn2.push(json!({"role": "assistant", "content": m["content"]}));
        turn2.push(
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "Ana & Ben, 80 guests"}]}),
        );
        let (status, m2) = e.messages(json!({"model": "claude-sonnet-4-5", "max_tokens": 300, "tools": tools, "messages": turn2})).await;
        assert_eq!((status, m2["stop_reason"].as_str()), (200, Some("end_turn")), "{provider:?}: {m2}");
        assert!(m2["content"][0]["text"].as_str().unwrap().contains("Ana & Ben, 80 guests"), "{m2}");
        e.router.ledger().flush().await;
        assert_eq!(e.usage_rows().len(), 3, "{provider:?}: one row per call");
    }
}

#[tokio::test]
async fn an_unknown_path_lists_the_messages_endpoints() {
    let e = env(ProviderKind::OpenAi).await;
    let (status, b) = json_of(e.request("/v1/messages/batches", &json!({})).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(b["error"]["message"].as_str().unwrap().contains("POST /v1/messages"), "{b}");
}

#[tokio::test]
async fn the_anthropic_python_sdk_fixtures_validate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/anthropic");
    let out = sdk::run(&["validate", dir.join("message_tool_use.json").to_str().unwrap()], &[]).await;
    assert!(out.contains("validate ok"), "{out}");
    // The hand-written answer is what the converter makes of its OpenAI counterpart.
    let openai = std::fs::read(dir.join("openai_tool_calls_answer.json")).unwrap();
    let ours: Value = serde_json::from_slice(&gateway::anthropic::response::to_message(&openai, "gpt-4o").unwrap()).unwrap();
    let expected: Value = serde_json::from_slice(&std::fs::read(dir.join("message_tool_use.json")).unwrap()).unwrap();
    assert_eq!(ours, expected);
}
