//! The providers' APIs translated end to end (issue 23): real HTTP over
//! loopback into the gateway, the router's real HTTP to the simulator on an
//! OpenAI, an Anthropic and an Azure route, a real SQLite ledger. Tools,
//! structured output, images and thinking, plain and streamed; routes that
//! cannot serve a request skipped; model equivalents; a tool conversation
//! surviving a failover; the official OpenAI SDK against an Anthropic route.

use crate::support::{fast_providers, june, sim_account};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::domain::{
    AccountId, AccountOwner, AiMode, AzureConfig, ManualClock, NewSupplier, PricingTable, ProviderKind, RequestType, Secret, SupplierId,
    Tier, TokenUsage, TranslationTables, VendorType,
};
use switchboard::engine::gateway_tokens as tokens;
use switchboard::engine::ledger::Ledger;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::gateway::{self, GatewayHandle};
use switchboard::providers::{Providers, ProvidersConfig};
use switchboard::sim::{DEMO_ANTHROPIC_KEY, DEMO_AZURE_KEY, DEMO_CLIENT_OPENAI_KEY, DEMO_OPENAI_KEY, SimConfig, SimHandle, Simulator};
use switchboard::store::{NewAccount, Store};

mod conversation;
mod fixtures;

/// The three routes a supplier's own account may be on.
pub(crate) const ROUTES: [ProviderKind; 3] = [ProviderKind::OpenAi, ProviderKind::Anthropic, ProviderKind::AzureOpenAi];

pub(crate) struct Env {
    _dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub sim: SimHandle,
    pub router: Arc<Router>,
    pub gw: GatewayHandle,
    pub http: reqwest::Client,
}

pub(crate) async fn env_with(tables: TranslationTables) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("tr.db")).unwrap());
    let sim = Simulator::start(SimConfig::demo()).await.unwrap();
    let ledger = Ledger::start(&store).unwrap();
    let fast = fast_providers(1);
    let providers = Providers::new(ProvidersConfig { translation: tables, ..fast.config().clone() }).unwrap();
    let platform = sim_account(&store, AccountOwner::Platform, ProviderKind::OpenAi, "WedSync OpenAI", "gpt-4o-mini", sim.base_url());
    let router = Router::new(
        store.clone(),
        providers,
        Arc::new(PricingTable::builtin()),
        Arc::new(ManualClock::new(june())),
        ledger,
        RouterConfig::default(),
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    router.set_key(platform, Some(Secret::new(DEMO_OPENAI_KEY)));
    let gw = gateway::start(router.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Env { _dir: dir, store, sim, router, gw, http: reqwest::Client::new() }
}

pub(crate) async fn env() -> Env {
    env_with(TranslationTables::builtin()).await
}

/// The default model of a route's account.
pub(crate) fn model_of(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Anthropic => "claude-haiku-4-5",
        _ => "gpt-4o-mini",
    }
}

impl Env {
    /// A client-mode supplier whose own account is on `kind`; its gateway token.
    pub(crate) fn supplier_on(&self, kind: ProviderKind, failover: bool) -> (SupplierId, AccountId, String) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut n = NewSupplier::new(format!("Studio {n} on {kind}"), VendorType::Photographer, Tier::Scale, AiMode::Client);
        n.allow_platform_failover = failover;
        let s = self.store.insert_supplier(&n, june()).unwrap().id;
        let (azure, key) = match kind {
            ProviderKind::OpenAi => (None, DEMO_CLIENT_OPENAI_KEY),
            ProviderKind::Anthropic => (None, DEMO_ANTHROPIC_KEY),
            ProviderKind::AzureOpenAi => {
                (Some(AzureConfig { deployment: "gpt-4o-mini".into(), api_version: "2024-10-21".into() }), DEMO_AZURE_KEY)
            }
        };
        let acc = NewAccount {
            owner: AccountOwner::Supplier(s),
            provider: kind,
            label: format!("own {kind}"),
            base_url: self.sim.base_url().to_string(),
            azure,
            default_model: model_of(kind).into(),
        };
        let id = self.store.insert_account(&acc, june()).unwrap().id;
        self.router.reload().unwrap();
        self.router.set_key(id, Some(Secret::new(key)));
        let token = tokens::issue(&self.store, s, june(), "test").unwrap().token.expose().to_string();
        self.router.reload().unwrap();
        (s, id, token)
    }

    pub(crate) async fn post(&self, token: &str, body: &Value) -> reqwest::Response {
        self.http.post(format!("{}/chat/completions", self.gw.base_url())).bearer_auth(token).json(body).send().await.unwrap()
    }

    /// A plain chat: (status, body, route header).
    pub(crate) async fn chat(&self, token: &str, body: Value) -> (u16, Value, String) {
        let r = self.post(token, &body).await;
        let status = r.status().as_u16();
        let route = r.headers().get("x-switchboard-route").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")), route)
    }

    /// A streamed chat, reassembled as a plain answer would read: (message,
    /// finish reason, number of tool-argument deltas, usage chunk).
    pub(crate) async fn stream(&self, token: &str, mut body: Value) -> (Value, String, usize, Value) {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let r = self.post(token, &body).await;
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
        let mut raw = Vec::new();
        let mut s = r.bytes_stream();
        while let Some(b) = s.next().await {
            raw.extend_from_slice(&b.unwrap());
        }
        let text = String::from_utf8(raw).unwrap();
        let (mut content, mut reasoning) = (String::new(), String::new());
        let mut calls: Vec<Value> = Vec::new();
        let mut blocks: Vec<Value> = Vec::new();
        let (mut finish, mut arg_deltas, mut usage, mut model) = (String::new(), 0, Value::Null, String::new());
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        for line in text.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|l| *l != "[DONE]") {
            let c: Value = serde_json::from_str(line).unwrap();
            assert!(c.get("error").is_none(), "{c}");
            if let Some(m) = c["model"].as_str().filter(|m| !m.is_empty()) {
                model = m.to_string();
            }
            if !c["usage"].is_null() && c.get("usage").is_some() {
                usage = c["usage"].clone();
            }
            let Some(ch) = c["choices"].get(0) else { continue };
            let d = &ch["delta"];
            content.push_str(d["content"].as_str().unwrap_or_default());
            reasoning.push_str(d["reasoning_content"].as_str().unwrap_or_default());
            if let Some(tb) = d["thinking_blocks"].as_array() {
                blocks.extend(tb.iter().cloned());
            }
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                let i = tc["index"].as_u64().unwrap() as usize;
                if calls.len() <= i {
                    calls.resize(i + 1, json!({"type": "function", "function": {"name": "", "arguments": ""}}));
                }
                if let Some(id) = tc["id"].as_str() {
                    calls[i]["id"] = json!(id);
                }
                if let Some(n) = tc["function"]["name"].as_str() {
                    calls[i]["function"]["name"] = json!(n);
                }
                if let Some(a) = tc["function"]["arguments"].as_str().filter(|a| !a.is_empty()) {
                    arg_deltas += 1;
                    let old = calls[i]["function"]["arguments"].as_str().unwrap_or_default().to_string();
                    calls[i]["function"]["arguments"] = json!(old + a);
                }
            }
            if let Some(f) = ch["finish_reason"].as_str() {
                finish = f.to_string();
            }
        }
        let mut message =
            json!({"role": "assistant", "content": if content.is_empty() && !calls.is_empty() { Value::Null } else { json!(content) }});
        if !calls.is_empty() {
            message["tool_calls"] = json!(calls);
        }
        if !blocks.is_empty() {
            message["reasoning_content"] = json!(reasoning);
            message["thinking_blocks"] = json!(blocks);
        }
        usage["model"] = json!(model);
        (message, finish, arg_deltas, usage)
    }

    /// (route, status, model, input + cached, output, reasoning, cost) of the supplier's rows.
    pub(crate) async fn rows(&self, s: SupplierId) -> Vec<(i64, i64, String, i64, i64, i64, i64)> {
        self.router.ledger().flush().await;
        self.store
            .with_conn(|c| {
                let mut st = c.prepare(
                    "SELECT route, status, model, input_tokens + cached_tokens, output_tokens, reasoning_tokens, cost_micros FROM usage_events WHERE supplier_id = ?1 ORDER BY id",
                )?;
                let rows = st.query_map([s.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?;
                rows.collect()
            })
            .unwrap()
    }
}

/// A tool whose every required property has another type.
pub(crate) fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "check_availability", "description": "Is the venue free on a date?",
            "parameters": {"type": "object", "properties": {
                "venue": {"type": "string"}, "guests": {"type": "integer"}, "outdoor": {"type": "boolean"},
                "extras": {"type": "array", "items": {"type": "string"}}, "contact": {"type": "object"}, "note": {"type": "string"}},
                "required": ["venue", "guests", "outdoor", "extras", "contact"]}}},
        {"type": "function", "function": {"name": "save_booking", "parameters": {"type": "object",
            "properties": {"couple": {"type": "string"}, "budget": {"type": "number"}}, "required": ["couple", "budget"]}}}
    ])
}

pub(crate) fn first_call_args() -> Value {
    json!({"venue": "sample venue", "guests": 1, "outdoor": true, "extras": [], "contact": {}})
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

#[tokio::test]
async fn tool_calls_and_results_on_every_route_plain_and_streamed() {
    let e = env().await;
    for kind in ROUTES {
        let (s, _, t) = e.supplier_on(kind, false);
        let ask = vec![user("Is Hever Castle free for 120 guests on 14 June?")];
        for streamed in [false, true] {
            let body = json!({"model": model_of(kind), "messages": ask, "tools": tools(), "max_tokens": 200});
            let (msg, finish) = if streamed {
                let (m, f, deltas, _) = e.stream(&t, body).await;
                assert!(deltas >= 2, "{kind}: arguments stream in {deltas} deltas");
                (m, f)
            } else {
                let (status, b, _) = e.chat(&t, body).await;
                assert_eq!(status, 200, "{kind}: {b}");
                (b["choices"][0]["message"].clone(), b["choices"][0]["finish_reason"].as_str().unwrap().to_string())
            };
            assert_eq!(finish, "tool_calls", "{kind} streamed={streamed}");
            let call = &msg["tool_calls"][0];
            assert_eq!(call["function"]["name"], "check_availability", "{kind}");
            let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
            assert_eq!(args, first_call_args(), "{kind}");
            let id = call["id"].as_str().unwrap().to_string();
            let prefix = if kind == ProviderKind::Anthropic { "toolu_sim" } else { "call_sim" };
            assert!(id.starts_with(prefix), "{kind}: {id}");

            // The result goes back under the same id; the answer quotes it.
            let mut history = ask.clone();
            history.push(msg.clone());
            history.push(json!({"role": "tool", "tool_call_id": id, "content": "Hever Castle is free that day"}));
            let body = json!({"model": model_of(kind), "messages": history, "tools": tools()});
            let (content, finish) = if streamed {
                let (m, f, _, _) = e.stream(&t, body).await;
                (m["content"].as_str().unwrap().to_string(), f)
            } else {
                let (status, b, _) = e.chat(&t, body).await;
                assert_eq!(status, 200, "{kind}: {b}");
                (b["choices"][0]["message"]["content"].as_str().unwrap().to_string(), b["choices"][0]["finish_reason"].to_string())
            };
            assert!(content.ends_with("the tool said: Hever Castle is free that day"), "{kind}: {content}");
            assert!(finish.contains("stop"), "{kind}: {finish}");

            // A result under an id the provider never issued is the provider's 400.
            let mut wrong = ask.clone();
            wrong.push(msg.clone());
            wrong.push(json!({"role": "tool", "tool_call_id": "call_unknown", "content": "x"}));
            let (status, b, _) = e.chat(&t, json!({"model": model_of(kind), "messages": wrong, "tools": tools()})).await;
            assert_eq!(status, 400, "{kind}: {b}");
        }
        // A forced tool, one call at a time.
        let body = json!({"model": model_of(kind), "messages": ask, "tools": tools(), "parallel_tool_calls": false,
            "tool_choice": {"type": "function", "function": {"name": "save_booking"}}});
        let (status, b, _) = e.chat(&t, body.clone()).await;
        assert_eq!(status, 200, "{kind}: {b}");
        let args: Value =
            serde_json::from_str(b["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"couple": "sample couple", "budget": 1}), "{kind}");
        let (m, _, _, _) = e.stream(&t, body).await;
        assert_eq!(m["tool_calls"][0]["function"]["name"], "save_booking", "{kind}");
        // Every provider call is one usage row: 2 × (call, result, refused) + 2 forced.
        let rows = e.rows(s).await;
        assert_eq!(rows.len(), 8, "{kind}: {rows:?}");
        assert!(rows.iter().filter(|r| r.1 == 0).all(|r| r.4 > 0 && r.6 > 0), "{kind}: {rows:?}");
    }
}

#[tokio::test]
async fn structured_output_on_every_route_plain_and_streamed() {
    let e = env().await;
    let schema = json!({"type": "object", "properties": {"couple": {"type": "string"}, "guests": {"type": "integer"},
        "date": {"type": "string"}}, "required": ["couple", "guests", "date"], "additionalProperties": false});
    let expected = json!({"couple": "sample couple", "guests": 1, "date": "sample date"});
    for kind in ROUTES {
        let (_, _, t) = e.supplier_on(kind, false);
        let body = json!({"model": model_of(kind), "messages": [user("Booking: Sam & Alex, 120 guests, 14 June 2027")],
            "response_format": {"type": "json_schema", "json_schema": {"name": "booking", "strict": true, "schema": schema}}});
        let (status, b, _) = e.chat(&t, body.clone()).await;
        assert_eq!(status, 200, "{kind}: {b}");
        let msg = &b["choices"][0]["message"];
        assert_eq!(serde_json::from_str::<Value>(msg["content"].as_str().unwrap()).unwrap(), expected, "{kind}");
        assert_eq!(b["choices"][0]["finish_reason"], "stop", "{kind}");
        assert!(msg.get("tool_calls").is_none_or(Value::is_null), "{kind}: {msg}");
        let (m, finish, _, _) = e.stream(&t, body).await;
        assert_eq!(serde_json::from_str::<Value>(m["content"].as_str().unwrap()).unwrap(), expected, "{kind}");
        assert_eq!(finish, "stop", "{kind}");
        // json_object: some JSON object.
        let body = json!({"model": model_of(kind), "messages": [user("Reply as JSON")], "response_format": {"type": "json_object"}});
        let (status, b, _) = e.chat(&t, body).await;
        assert_eq!(status, 200, "{kind}: {b}");
        assert!(serde_json::from_str::<Value>(b["choices"][0]["message"]["content"].as_str().unwrap()).unwrap().is_object(), "{kind}");
    }
}

#[tokio::test]
async fn images_as_url_and_data_url_with_detail_on_every_route() {
    let e = env().await;
    for kind in ROUTES {
        let (s, _, t) = e.supplier_on(kind, false);
        let parts = json!([
            {"type": "text", "text": "Describe the venue"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/barn.jpg", "detail": "high"}}
        ]);
        let body = json!({"model": model_of(kind), "messages": [{"role": "user", "content": parts}]});
        let (status, b, _) = e.chat(&t, body.clone()).await;
        assert_eq!(status, 200, "{kind}: {b}");
        // Two images at 85 tokens each are in the prompt the provider counted.
        assert!(b["usage"]["prompt_tokens"].as_u64().unwrap() > 170, "{kind}: {b}");
        let (m, _, _, usage) = e.stream(&t, body).await;
        assert!(m["content"].as_str().unwrap().contains("Describe"), "{kind}");
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 170, "{kind}");
        e.router.ledger().flush().await;
        let types: Vec<i64> = e
            .store
            .with_conn(|c| {
                let mut st = c.prepare("SELECT request_type FROM usage_events WHERE supplier_id = ?1")?;
                let rows = st.query_map([s.0], |r| r.get::<_, i64>(0))?;
                rows.collect()
            })
            .unwrap();
        assert_eq!(types, vec![RequestType::ImageAnalysis.code(); 2], "{kind}");
    }
}

#[tokio::test]
async fn routes_that_cannot_serve_a_request_exactly_are_skipped_and_only_none_is_a_400() {
    let e = env().await;
    // Anthropic has no n > 1: with failover allowed, platform OpenAI serves it.
    let (s, _, t) = e.supplier_on(ProviderKind::Anthropic, true);
    let body = json!({"model": "claude-haiku-4-5", "n": 2, "messages": [user("Two taglines for a florist")]});
    let (status, b, route) = e.chat(&t, body.clone()).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(route, "failover", "served by platform AI as a failover");
    assert_eq!(b["model"], "gpt-4o-mini", "the equivalent model served it");
    let rows = e.rows(s).await;
    assert_eq!(rows.len(), 1, "the skipped route made no call and no row: {rows:?}");
    // Without another route: a clear 400 naming the feature, no provider call.
    let (s2, _, t2) = e.supplier_on(ProviderKind::Anthropic, false);
    let before = e.sim.requests("anthropic-platform");
    let (status, b, _) = e.chat(&t2, body).await;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"]["code"], "unsupported_feature");
    assert!(b["error"]["message"].as_str().unwrap().contains("n > 1"), "{b}");
    assert_eq!(e.sim.requests("anthropic-platform"), before);
    let rows = e.rows(s2).await;
    assert_eq!(rows.len(), 1, "the refusal is recorded as a failed request");
    assert_eq!(rows[0].1, 1, "status error");
    // The same request on an OpenAI route is served.
    let (_, _, t3) = e.supplier_on(ProviderKind::OpenAi, false);
    let (status, _, _) = e.chat(&t3, json!({"model": "gpt-4o-mini", "n": 2, "messages": [user("Two taglines")]})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn models_of_the_other_provider_map_to_their_equivalent_or_404_with_what_the_route_offers() {
    let e = env().await;
    let (s, _, t) = e.supplier_on(ProviderKind::Anthropic, false);
    let (status, b, _) = e.chat(&t, json!({"model": "gpt-4o-mini", "messages": [user("Hello")]})).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["model"], "claude-haiku-4-5", "the answer says which model served it");
    let (m, _, _, usage) = e.stream(&t, json!({"model": "gpt-4o", "messages": [user("Hello")]})).await;
    assert!(m["content"].as_str().unwrap().starts_with("Simulated claude-sonnet-4-5"), "{m}");
    assert_eq!(usage["model"], "claude-sonnet-4-5");
    let rows = e.rows(s).await;
    assert_eq!(rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(), vec!["claude-haiku-4-5", "claude-sonnet-4-5"]);
    // And the other way: an OpenAI route asked for a Claude model.
    let (_, _, t2) = e.supplier_on(ProviderKind::OpenAi, false);
    let (status, b, _) = e.chat(&t2, json!({"model": "claude-haiku-4-5", "messages": [user("Hello")]})).await;
    assert_eq!((status, b["model"].as_str()), (200, Some("gpt-4o-mini")), "{b}");

    // An edited table without gpt-4o-mini: a 404 that lists what the route offers.
    let edited = TranslationTables::from_json(
        r#"{"model_equivalents":[{"openai":"gpt-4o","anthropic":"claude-sonnet-4-5"}],"reasoning_budgets":{"low":1024}}"#,
    )
    .unwrap();
    let e = env_with(edited).await;
    let (_, _, t) = e.supplier_on(ProviderKind::Anthropic, false);
    let (status, b, _) = e.chat(&t, json!({"model": "gpt-4o-mini", "messages": [user("Hello")]})).await;
    assert_eq!(status, 404, "{b}");
    assert_eq!(b["error"]["code"], "model_not_found");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("'gpt-4o-mini'") && msg.contains("claude-haiku-4-5") && msg.contains("claude-sonnet-4-5"), "{msg}");
}

#[tokio::test]
async fn thinking_comes_back_signed_goes_back_next_turn_and_is_priced_as_output() {
    let e = env().await;
    let (s, _, t) = e.supplier_on(ProviderKind::Anthropic, false);
    let pricing = PricingTable::builtin();
    for streamed in [false, true] {
        let ask = vec![user("Is the barn free on 14 June?")];
        let body = json!({"model": "claude-haiku-4-5", "messages": ask, "tools": tools(), "reasoning_effort": "low"});
        let (msg, usage) = if streamed {
            let (m, f, _, u) = e.stream(&t, body).await;
            assert_eq!(f, "tool_calls");
            (m, u)
        } else {
            let (status, b, _) = e.chat(&t, body).await;
            assert_eq!(status, 200, "{b}");
            (b["choices"][0]["message"].clone(), b["usage"].clone())
        };
        assert!(msg["reasoning_content"].as_str().unwrap().starts_with("Simulated thinking about"), "{msg}");
        let block = &msg["thinking_blocks"][0];
        assert_eq!(block["type"], "thinking");
        assert!(!block["signature"].as_str().unwrap().is_empty());
        let reasoning = usage["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap();
        assert!(reasoning > 0 && reasoning <= usage["completion_tokens"].as_u64().unwrap(), "{usage}");
        // Next turn: the signed blocks go back with the tool_use (Anthropic refuses the turn without them).
        let id = msg["tool_calls"][0]["id"].as_str().unwrap().to_string();
        let mut history = ask.clone();
        history.push(msg.clone());
        history.push(json!({"role": "tool", "tool_call_id": id, "content": "free"}));
        let body = json!({"model": "claude-haiku-4-5", "messages": history, "tools": tools(), "reasoning_effort": "low"});
        let (status, b, _) = e.chat(&t, body).await;
        assert_eq!(status, 200, "{b}");
        assert!(b["choices"][0]["message"]["content"].as_str().unwrap().ends_with("the tool said: free"));
    }
    // Cost: output tokens (thinking included) at the output price, to the micro-dollar.
    for (route, status, model, input, output, reasoning, cost) in e.rows(s).await {
        assert_eq!((route, status), (1, 0));
        let u = TokenUsage { input: input as u64, output: output as u64, reasoning: reasoning as u64, ..TokenUsage::default() };
        assert_eq!(Some(cost), pricing.cost(ProviderKind::Anthropic, &model, &u).map(|m| m.0), "{model} {u:?}");
        assert!(output >= 64, "the budgeted thinking is billed as output");
    }
    // OpenAI reasoning models: reasoning_effort passes through; reasoning tokens are priced as output.
    let (s2, _, t2) = e.supplier_on(ProviderKind::OpenAi, false);
    let (status, b, _) =
        e.chat(&t2, json!({"model": "o4-mini", "reasoning_effort": "high", "max_completion_tokens": 500, "messages": [user("Plan a seating chart")]})).await;
    assert_eq!(status, 200, "{b}");
    let reasoning = b["usage"]["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap();
    assert!(reasoning >= 64);
    let rows = e.rows(s2).await;
    let (_, _, model, input, output, r, cost) = rows[0].clone();
    assert_eq!(r as u64, reasoning);
    let u = TokenUsage { input: input as u64, output: output as u64, reasoning: r as u64, ..TokenUsage::default() };
    assert_eq!(Some(cost), pricing.cost(ProviderKind::OpenAi, &model, &u).map(|m| m.0));
    // $1.10 / M input and $4.40 / M output, reasoning included.
    assert_eq!(cost, (input * 1_100_000 + output * 4_400_000 + 500_000) / 1_000_000);
}

#[tokio::test]
async fn the_openai_python_sdk_uses_tools_and_response_format_on_an_anthropic_route() {
    let e = env().await;
    let (s, _, t) = e.supplier_on(ProviderKind::Anthropic, false);
    let stdout =
        crate::support::run_python_script("translate_sdk.py", &[], &[("GATEWAY_BASE_URL", &e.gw.base_url()), ("GATEWAY_TOKEN", &t)]).await;
    for step in ["tools ok", "tool stream ok", "tool result ok", "response_format ok", "parse ok"] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    let rows = e.rows(s).await;
    assert!(rows.len() >= 5 && rows.iter().all(|r| r.0 == 1 && r.1 == 0 && r.2 == "claude-haiku-4-5"), "{rows:?}");
}
