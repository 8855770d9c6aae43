//! What the simulator answers: prompt analysis (token figures, cache prefixes,
//! markers), the reply text, and the provider-exact JSON bodies and SSE
//! events, errors included.

use super::Account;
pub use super::errors::{ErrorAnswer, azure_content_filter, bad_request, context_length, fault, not_found_model, unauthorized};
use super::tools::{self, SimToolCall, Turn};
use crate::domain::ProviderKind;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Which provider's wire format an answer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Azure,
    Anthropic,
}

impl Dialect {
    pub fn provider(self) -> ProviderKind {
        match self {
            Dialect::OpenAi => ProviderKind::OpenAi,
            Dialect::Azure => ProviderKind::AzureOpenAi,
            Dialect::Anthropic => ProviderKind::Anthropic,
        }
    }
}

pub fn default_models(p: ProviderKind) -> Vec<String> {
    let m: &[&str] = match p {
        ProviderKind::OpenAi | ProviderKind::AzureOpenAi => {
            &["gpt-4o", "gpt-4o-mini", "o4-mini", "text-embedding-3-small", "text-embedding-3-large"]
        }
        ProviderKind::Anthropic => &["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"],
    };
    m.iter().map(|s| s.to_string()).collect()
}

/// Whether `model` is offered: exactly, or as a dated snapshot of an offered model.
pub fn offers(models: &[String], model: &str) -> bool {
    models.iter().any(|m| model == m || (model.starts_with(m.as_str()) && model[m.len()..].starts_with("-20")))
}

/// The simulator's tokenizer: about four bytes per token. Cheap and
/// deterministic; real providers' counts differ, which is fine for a simulator.
pub fn sim_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

pub const OPENAI_CACHE_MIN: u64 = 1024;
pub const ANTHROPIC_CACHE_MIN: u64 = 1024;

/// What the simulator derives from a prompt.
#[derive(Debug, Default)]
pub struct Prompt<'a> {
    pub tokens: u64,
    /// Tokens and hash of the prefix up to the last `cache_control` block (Anthropic).
    pub cache_prefix: Option<(u64, u64)>,
    pub hash: u64,
    pub last_user: &'a str,
    pub context_marker: bool,
    pub filter_marker: bool,
}

impl<'a> Prompt<'a> {
    fn block(&mut self, h: &mut DefaultHasher, block: &'a Value, role_is_user: bool) {
        match block {
            Value::String(s) => self.text(h, s, role_is_user),
            Value::Array(parts) => {
                for p in parts {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        self.text(h, t, role_is_user);
                    } else if let Some(c) = p.get("content").filter(|_| p.get("type").and_then(Value::as_str) == Some("tool_result")) {
                        self.block(h, c, role_is_user);
                    } else if let Some(input) = p.get("input") {
                        // A tool_use block's input, as the JSON it was written as.
                        self.tokens += sim_tokens(&input.to_string());
                    } else if p.get("type").and_then(Value::as_str).is_some_and(|t| t == "image" || t == "image_url") {
                        self.tokens += 85;
                        "img".hash(h);
                    }
                    if p.get("cache_control").is_some() {
                        self.cache_prefix = Some((self.tokens, h.finish()));
                    }
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, h: &mut DefaultHasher, t: &'a str, role_is_user: bool) {
        self.tokens += sim_tokens(t);
        t.hash(h);
        if role_is_user {
            self.last_user = t;
        }
    }

    fn finish_markers(&mut self) {
        if self.last_user.contains("[sim:") {
            self.context_marker = self.last_user.contains("[sim:context_length]");
            self.filter_marker = self.last_user.contains("[sim:content_filter]");
        }
    }

    pub fn openai(messages: &'a [SimMessage]) -> Self {
        let mut p = Prompt { tokens: 3, ..Default::default() };
        let mut h = DefaultHasher::new();
        for m in messages {
            p.tokens += 4;
            m.role.hash(&mut h);
            p.block(&mut h, &m.content, m.role == "user" || m.role == "tool");
            if let Some(calls) = &m.tool_calls {
                p.tokens += sim_tokens(&calls.to_string());
            }
        }
        p.hash = h.finish();
        p.finish_markers();
        p
    }

    pub fn anthropic(system: &'a Value, messages: &'a [SimMessage]) -> Self {
        let mut p = Prompt { tokens: 0, ..Default::default() };
        let mut h = DefaultHasher::new();
        p.block(&mut h, system, false);
        for m in messages {
            p.tokens += 4;
            m.role.hash(&mut h);
            p.block(&mut h, &m.content, m.role == "user");
        }
        p.hash = h.finish();
        p.finish_markers();
        p
    }
}

#[derive(Debug, Deserialize)]
pub struct SimMessage {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub content: Value,
    /// OpenAI: an assistant message's tool calls.
    #[serde(default)]
    pub tool_calls: Option<Value>,
    /// OpenAI: the call a `tool` message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// The fields of an OpenAI chat request the simulator reads.
#[derive(Debug, Deserialize)]
pub struct OpenAiChatIn {
    /// Optional on Azure's deployment form (the path names the deployment).
    #[serde(default)]
    pub model: String,
    pub messages: Vec<SimMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub tools: Option<Value>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub response_format: Option<Value>,
}

/// The fields of an Anthropic Messages request the simulator reads.
#[derive(Debug, Deserialize)]
pub struct AnthropicIn {
    pub model: String,
    pub max_tokens: u64,
    pub messages: Vec<SimMessage>,
    #[serde(default)]
    pub system: Value,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub thinking: Option<Value>,
    #[serde(default)]
    pub tools: Option<Value>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
}

/// A planned answer: the words to send and the usage to report.
#[derive(Debug, Clone)]
pub struct Plan {
    pub words: Vec<String>,
    pub finish: &'static str,
    pub input: u64,
    pub cached_read: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
    /// The tool call the answer makes (see [`super::tools`]).
    pub tool_call: Option<SimToolCall>,
    /// Anthropic extended thinking: the thinking text of the answer's signed thinking block.
    pub thinking: Option<String>,
}

impl Plan {
    pub fn content(&self) -> String {
        self.words.concat()
    }
}

pub fn is_reasoning_model(model: &str) -> bool {
    let b = model.as_bytes();
    (b.len() >= 2 && b[0] == b'o' && b[1].is_ascii_digit()) || model.starts_with("gpt-5")
}

/// Plans the reply: an echo of the start of the last user message, cut at
/// `max_tokens` (finish `length`); reasoning tokens when `reasoning` (o-series
/// models, Anthropic extended thinking): 64 + prompt tokens mod 64.
#[cfg(test)]
pub fn plan(model: &str, prompt: &Prompt<'_>, max_tokens: Option<u64>, refusal: bool, reasoning: bool) -> Plan {
    plan_turn(model, prompt, max_tokens, refusal, reasoning, &Turn::Echo, 0)
}

/// [`plan`] for a [`Turn`] of [`super::tools`]; `id` numbers a tool call.
pub fn plan_turn(model: &str, prompt: &Prompt<'_>, max_tokens: Option<u64>, refusal: bool, reasoning: bool, turn: &Turn, id: u64) -> Plan {
    let mut words: Vec<String> = Vec::with_capacity(16);
    let mut tool_call = None;
    if !refusal {
        match turn {
            Turn::Echo | Turn::Quote(_) => {
                words.push("Simulated".into());
                words.push(format!(" {model}"));
                words.push(" reply:".into());
            }
            _ => {}
        }
        match turn {
            Turn::Echo => {
                for w in prompt.last_user.split_whitespace().take(8) {
                    words.push(format!(" {w}"));
                }
            }
            Turn::Quote(result) => {
                words.push(" the tool said:".into());
                for w in result.split_whitespace().take(64) {
                    words.push(format!(" {w}"));
                }
            }
            Turn::Json(v) => words.extend(tools::pieces(&v.to_string()).into_iter().filter(|p| !p.is_empty())),
            Turn::Call { name, arguments } => {
                tool_call = Some(SimToolCall { id: format!("{id:016x}"), name: name.clone(), arguments: arguments.to_string() })
            }
        }
    }
    let reasoning = if reasoning { 64 + prompt.tokens % 64 } else { 0 };
    let mut finish = if refusal {
        "content_filter"
    } else if tool_call.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    let mut visible: u64 = words.iter().map(|w| sim_tokens(w)).sum();
    if let Some(c) = &tool_call {
        visible += sim_tokens(&c.name) + sim_tokens(&c.arguments);
    }
    let thinking = (reasoning > 0).then(|| {
        let about: Vec<&str> = prompt.last_user.split_whitespace().take(8).collect();
        format!("Simulated thinking about: {}", about.join(" "))
    });
    if let Some(max) = max_tokens {
        let budget = max.saturating_sub(reasoning);
        while visible > budget && !words.is_empty() {
            let w = words.pop().unwrap_or_default();
            visible -= sim_tokens(&w);
            finish = "length";
        }
    }
    Plan {
        words,
        finish,
        input: prompt.tokens,
        cached_read: 0,
        cache_write: 0,
        output: visible + reasoning,
        reasoning,
        tool_call,
        thinking,
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

#[derive(Serialize)]
pub struct OaUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

/// OpenAI usage: prompt tokens include cached ones; completion tokens include reasoning.
pub fn openai_usage(p: &Plan) -> OaUsage {
    let prompt = p.input + p.cached_read;
    OaUsage {
        prompt_tokens: prompt,
        completion_tokens: p.output,
        total_tokens: prompt + p.output,
        prompt_tokens_details: PromptDetails { cached_tokens: p.cached_read, audio_tokens: 0 },
        completion_tokens_details: CompletionDetails {
            reasoning_tokens: p.reasoning,
            audio_tokens: 0,
            accepted_prediction_tokens: 0,
            rejected_prediction_tokens: 0,
        },
    }
}

#[derive(Serialize)]
struct OaMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
    annotations: [(); 0],
}

/// An OpenAI `tool_calls` entry of a simulated call.
fn oa_tool_call(c: &SimToolCall, arguments: &str) -> Value {
    serde_json::json!({"id": format!("call_sim{}", c.id), "type": "function", "function": {"name": c.name, "arguments": arguments}})
}

#[derive(Serialize)]
struct OaChoice<'a> {
    index: u32,
    message: OaMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_filter_results: Option<&'static Value>,
}

#[derive(Serialize)]
struct OaCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [OaChoice<'a>; 1],
    usage: OaUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_filter_results: Option<&'static Value>,
}

/// Azure's content-filter annotations (built once).
fn azure_filters() -> &'static Value {
    static FILTERS: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
        let safe = serde_json::json!({"filtered": false, "severity": "safe"});
        serde_json::json!({"hate": safe, "self_harm": safe, "sexual": safe, "violence": safe})
    });
    &FILTERS
}

fn azure_prompt_filters() -> &'static Value {
    static PROMPT: std::sync::LazyLock<Value> =
        std::sync::LazyLock::new(|| serde_json::json!([{"prompt_index": 0, "content_filter_results": azure_filters()}]));
    &PROMPT
}

/// An OpenAI completion body whose usage figures are out of any range (see
/// `Faults::absurd_usage`).
pub fn with_absurd_usage(body: Vec<u8>) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else { return body };
    v["usage"] = serde_json::json!({
        "prompt_tokens": u64::MAX,
        "completion_tokens": -5,
        "total_tokens": 1e300,
        "prompt_tokens_details": {"cached_tokens": "lots"},
        "completion_tokens_details": {"reasoning_tokens": -1}
    });
    serde_json::to_vec(&v).unwrap_or(body)
}

pub fn openai_completion(d: Dialect, id: &str, model: &str, p: &Plan) -> Vec<u8> {
    let content = p.content();
    let azure = d == Dialect::Azure;
    let body = OaCompletion {
        id,
        object: "chat.completion",
        created: now_secs(),
        model,
        choices: [OaChoice {
            index: 0,
            message: OaMessage {
                role: "assistant",
                content: if p.tool_call.is_some() && content.is_empty() { None } else { Some(&content) },
                refusal: None,
                tool_calls: p.tool_call.as_ref().map(|c| Value::Array(vec![oa_tool_call(c, &c.arguments)])),
                annotations: [],
            },
            logprobs: None,
            finish_reason: p.finish,
            content_filter_results: azure.then(azure_filters),
        }],
        usage: openai_usage(p),
        system_fingerprint: Some("fp_sim0001"),
        prompt_filter_results: azure.then(azure_prompt_filters),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

fn sse_data(v: &impl Serialize) -> Bytes {
    let mut out = b"data: ".to_vec();
    let _ = serde_json::to_writer(&mut out, v);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn sse_named(event: &str, v: &Value) -> Bytes {
    let mut out = format!("event: {event}\ndata: ").into_bytes();
    let _ = serde_json::to_writer(&mut out, v);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    /// `Some(None)` prints `"refusal": null` (first chunk only).
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<()>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent unless the client asked for usage; then `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a OaUsage>>,
}

/// The OpenAI chunk sequence: role chunk, one chunk per word, finish chunk,
/// usage chunk (when asked), `[DONE]`. Azure adds its prompt-filter chunk first.
pub fn openai_stream(d: Dialect, id: &str, model: &str, p: &Plan, include_usage: bool) -> Vec<Bytes> {
    let created = now_secs();
    let null_usage = if include_usage { Some(None) } else { None };
    let chunk = |delta: Delta<'_>, finish: Option<&str>| {
        let choices = [ChunkChoice { index: 0, delta, logprobs: None, finish_reason: finish }];
        sse_data(&Chunk {
            id,
            object: "chat.completion.chunk",
            created,
            model,
            system_fingerprint: "fp_sim0001",
            choices: &choices,
            usage: null_usage,
        })
    };
    let mut out = Vec::with_capacity(p.words.len() + 5);
    if d == Dialect::Azure {
        out.push(sse_data(&serde_json::json!({"id": "", "object": "", "created": 0, "model": "", "choices": [],
            "prompt_filter_results": azure_prompt_filters()})));
    }
    let first_content = if p.tool_call.is_some() && p.words.is_empty() { None } else { Some("") };
    out.push(chunk(Delta { role: Some("assistant"), content: first_content, refusal: Some(None), tool_calls: None }, None));
    for w in &p.words {
        out.push(chunk(Delta { role: None, content: Some(w), refusal: None, tool_calls: None }, None));
    }
    if let Some(c) = &p.tool_call {
        // The call's id and name first, then its arguments in (at least) two deltas, as OpenAI streams them.
        let mut first = oa_tool_call(c, "");
        first["index"] = Value::from(0);
        out.push(chunk(Delta { role: None, content: None, refusal: None, tool_calls: Some(Value::Array(vec![first])) }, None));
        for piece in tools::pieces(&c.arguments) {
            let d = serde_json::json!([{"index": 0, "function": {"arguments": piece}}]);
            out.push(chunk(Delta { role: None, content: None, refusal: None, tool_calls: Some(d) }, None));
        }
    }
    out.push(chunk(Delta { role: None, content: None, refusal: None, tool_calls: None }, Some(p.finish)));
    if include_usage {
        let usage = openai_usage(p);
        out.push(sse_data(&Chunk {
            id,
            object: "chat.completion.chunk",
            created,
            model,
            system_fingerprint: "fp_sim0001",
            choices: &[],
            usage: Some(Some(&usage)),
        }));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

fn anthropic_stop(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "content_filter" => "refusal",
        "tool_calls" => "tool_use",
        _ => "end_turn",
    }
}

fn anthropic_usage(p: &Plan) -> Value {
    serde_json::json!({"input_tokens": p.input, "cache_creation_input_tokens": p.cache_write, "cache_read_input_tokens": p.cached_read, "output_tokens": p.output})
}

/// The signature of a simulated thinking block: deterministic, opaque, and
/// checked for presence when it comes back.
fn thinking_signature(thinking: &str) -> String {
    let mut h = DefaultHasher::new();
    thinking.hash(&mut h);
    base64(format!("simsig:{:016x}", h.finish()).as_bytes())
}

/// An Anthropic `tool_use` block of a simulated call.
fn an_tool_use(c: &SimToolCall) -> Value {
    let input: Value = serde_json::from_str(&c.arguments).unwrap_or_default();
    serde_json::json!({"type": "tool_use", "id": format!("toolu_sim{}", c.id), "name": c.name, "input": input})
}

pub fn anthropic_message(id: &str, model: &str, p: &Plan) -> Vec<u8> {
    let content = p.content();
    let mut blocks = Vec::new();
    if let Some(t) = &p.thinking {
        blocks.push(serde_json::json!({"type": "thinking", "thinking": t, "signature": thinking_signature(t)}));
    }
    if !content.is_empty() {
        blocks.push(serde_json::json!({"type": "text", "text": content}));
    }
    if let Some(c) = &p.tool_call {
        blocks.push(an_tool_use(c));
    }
    serde_json::to_vec(&serde_json::json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": blocks,
        "stop_reason": anthropic_stop(p.finish), "stop_sequence": null, "usage": anthropic_usage(p)
    }))
    .unwrap_or_default()
}

/// The real Messages event sequence.
pub fn anthropic_stream(id: &str, model: &str, p: &Plan) -> Vec<Bytes> {
    let mut start_usage = anthropic_usage(p);
    start_usage["output_tokens"] = Value::from(1);
    let mut out = Vec::with_capacity(p.words.len() + 6);
    out.push(sse_named(
        "message_start",
        &serde_json::json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
    ));
    let mut index = 0;
    let start = |i: usize, block: Value| {
        sse_named("content_block_start", &serde_json::json!({"type": "content_block_start", "index": i, "content_block": block}))
    };
    let delta =
        |i: usize, d: Value| sse_named("content_block_delta", &serde_json::json!({"type": "content_block_delta", "index": i, "delta": d}));
    let stop = |i: usize| sse_named("content_block_stop", &serde_json::json!({"type": "content_block_stop", "index": i}));
    if let Some(t) = &p.thinking {
        out.push(start(index, serde_json::json!({"type": "thinking", "thinking": "", "signature": ""})));
        for piece in tools::pieces(t) {
            out.push(delta(index, serde_json::json!({"type": "thinking_delta", "thinking": piece})));
        }
        out.push(delta(index, serde_json::json!({"type": "signature_delta", "signature": thinking_signature(t)})));
        out.push(stop(index));
        index += 1;
    }
    if !p.words.is_empty() || p.tool_call.is_none() {
        out.push(start(index, serde_json::json!({"type": "text", "text": ""})));
        out.push(sse_named("ping", &serde_json::json!({"type": "ping"})));
        for w in &p.words {
            out.push(delta(index, serde_json::json!({"type": "text_delta", "text": w})));
        }
        out.push(stop(index));
        index += 1;
    }
    if let Some(c) = &p.tool_call {
        let mut block = an_tool_use(c);
        block["input"] = serde_json::json!({});
        out.push(start(index, block));
        for piece in tools::pieces(&c.arguments) {
            out.push(delta(index, serde_json::json!({"type": "input_json_delta", "partial_json": piece})));
        }
        out.push(stop(index));
    }
    out.push(sse_named(
        "message_delta",
        &serde_json::json!({"type": "message_delta", "delta": {"stop_reason": anthropic_stop(p.finish), "stop_sequence": null}, "usage": anthropic_usage(p)}),
    ));
    out.push(sse_named("message_stop", &serde_json::json!({"type": "message_stop"})));
    out
}

pub fn max_context(d: Dialect) -> u64 {
    match d {
        Dialect::Anthropic => 200_000,
        _ => 128_000,
    }
}

pub fn model_list(account: &Account, d: Dialect) -> Vec<u8> {
    let v = match d {
        Dialect::Anthropic => {
            let data: Vec<Value> = account
                .models
                .iter()
                .map(|m| serde_json::json!({"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"}))
                .collect();
            serde_json::json!({"data": data, "has_more": false, "first_id": account.models.first(), "last_id": account.models.last()})
        }
        _ => {
            let mut models: Vec<&String> = account.models.iter().chain(account.deployments.values()).collect();
            models.sort();
            models.dedup();
            let data: Vec<Value> = models
                .iter()
                .map(|m| serde_json::json!({"id": m, "object": "model", "created": 1_715_367_049u64, "owned_by": "system"}))
                .collect();
            serde_json::json!({"object": "list", "data": data})
        }
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// A deterministic unit-ish vector for a text.
pub fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let mut rng = crate::domain::rng::DetRng::new(h.finish());
    (0..dims).map(|_| (rng.next_f64() * 2.0 - 1.0) as f32 / (dims as f32).sqrt()).collect()
}

pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn plan_cuts_at_max_tokens_and_adds_reasoning() {
        let msgs: Vec<SimMessage> =
            serde_json::from_str(r#"[{"role":"user","content":"one two three four five six seven eight nine ten"}]"#).unwrap();
        let p = Prompt::openai(&msgs);
        let full = plan("gpt-4o", &p, None, false, false);
        assert_eq!(full.finish, "stop");
        assert_eq!(full.reasoning, 0);
        let cut = plan("gpt-4o", &p, Some(3), false, false);
        assert_eq!(cut.finish, "length");
        assert!(cut.output <= 3);
        let o = plan("o4-mini", &p, None, false, is_reasoning_model("o4-mini"));
        assert!(o.reasoning >= 64 && o.output > o.reasoning);
        assert!(offers(&default_models(ProviderKind::OpenAi), "gpt-4o-2024-08-06"));
        assert!(!offers(&default_models(ProviderKind::OpenAi), "gpt-4o-turbo"));
    }
}
