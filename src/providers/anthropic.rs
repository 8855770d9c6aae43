//! Anthropic Messages API: translation of OpenAI chat requests into Messages
//! requests, and of Messages answers (plain and streamed) back into OpenAI chat
//! completions and `chat.completion.chunk` events.

use super::ChatResponse;
use super::error::ProviderError;
use super::token_count;
use super::translate::{Step, StreamProgress, StreamTranslator};
use super::wire::{AnthropicUsage, ChatRequest, OpenAiUsage};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub const NAME: &str = "Anthropic";
pub const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when the client set none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// A Messages API request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u64,
    pub messages: Vec<AnthropicMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Extended thinking (from OpenAI's `reasoning_effort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicMessage {
    pub role: String,
    pub content: Vec<Value>,
}

/// Translates an OpenAI chat request. System (and developer) messages become
/// `system` blocks; consecutive messages of one role are merged; image parts
/// become base64 (data URLs) or URL image sources; `cache_control` on a part is
/// kept. Tool calls are not translated (sent as text).
pub fn to_messages_request(req: &ChatRequest) -> MessagesRequest {
    let mut system = Vec::new();
    let mut messages: Vec<AnthropicMessage> = Vec::new();
    for m in &req.messages {
        let blocks = content_blocks(&m.content);
        match m.role.as_str() {
            "system" | "developer" => system.extend(blocks),
            other => {
                let role = if other == "assistant" { "assistant" } else { "user" };
                if blocks.is_empty() {
                    continue;
                }
                match messages.last_mut() {
                    Some(last) if last.role == role => last.content.extend(blocks),
                    _ => messages.push(AnthropicMessage { role: role.to_string(), content: blocks }),
                }
            }
        }
    }
    // OpenAI's reasoning_effort becomes a thinking budget (which must stay below max_tokens).
    let budget = match req.extra.get("reasoning_effort").and_then(Value::as_str) {
        Some("minimal" | "low") => Some(1024),
        Some("medium") => Some(4096),
        Some("high") => Some(16384),
        _ => None,
    };
    let mut max_tokens = req.max_output().unwrap_or(DEFAULT_MAX_TOKENS);
    if let Some(b) = budget {
        max_tokens = max_tokens.max(b + DEFAULT_MAX_TOKENS);
    }
    MessagesRequest {
        model: req.model.clone(),
        max_tokens,
        messages,
        system,
        // OpenAI allows 0..2, Anthropic 0..1; thinking requires the default temperature.
        temperature: if budget.is_some() { None } else { req.temperature.map(|t| t.clamp(0.0, 1.0)) },
        thinking: budget.map(|b| json!({"type": "enabled", "budget_tokens": b})),
        top_p: req.top_p,
        stop_sequences: req.stop_sequences(),
        stream: req.is_stream(),
        metadata: req.user.as_ref().map(|u| json!({ "user_id": u })),
    }
}

fn content_blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) if !s.is_empty() => vec![json!({"type": "text", "text": s})],
        Value::Array(parts) => parts.iter().filter_map(part_to_block).collect(),
        _ => Vec::new(),
    }
}

fn part_to_block(p: &Value) -> Option<Value> {
    let mut block = match p.get("type").and_then(Value::as_str)? {
        "text" => json!({"type": "text", "text": p.get("text")?.as_str()?}),
        "image_url" => {
            let url = p.get("image_url").and_then(|i| i.get("url").or(Some(i))).and_then(Value::as_str)?;
            image_source(url)
        }
        _ => return None,
    };
    if let (Some(cc), Some(obj)) = (p.get("cache_control"), block.as_object_mut()) {
        obj.insert("cache_control".into(), cc.clone());
    }
    Some(block)
}

fn image_source(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((media_type, data)) = rest.split_once(";base64,")
    {
        return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

/// OpenAI's finish reason for an Anthropic stop reason.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

#[derive(Debug, Deserialize)]
struct Block {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// Translates a Messages answer into an OpenAI `chat.completion` body.
pub fn from_messages_response(body: &[u8], created: u64) -> Result<ChatResponse, ProviderError> {
    let r: MessagesResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::InvalidResponse { provider: NAME, message: format!("not a Messages answer: {e}") })?;
    let mut content = String::new();
    for b in r.content.iter().filter(|b| b.kind == "text") {
        content.push_str(b.text.as_deref().unwrap_or(""));
    }
    let finish = r.stop_reason.as_deref().map(finish_reason);
    let usage = r.usage.normalise();
    let id = format!("chatcmpl-{}", r.id);
    let out = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": r.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": OpenAiUsage::from_normalised(&usage),
    });
    Ok(ChatResponse {
        body: Bytes::from(serde_json::to_vec(&out).unwrap_or_default()),
        id,
        model: r.model,
        content,
        finish_reason: finish.map(str::to_string),
        usage,
        attempts: 1,
    })
}

/// One OpenAI `chat.completion.chunk` as an SSE event.
pub fn chunk_event(id: &str, created: u64, model: &str, delta: Value, finish: Option<&str>, usage: Option<&OpenAiUsage>) -> Bytes {
    let choices = if usage.is_some() && delta.is_null() {
        json!([])
    } else {
        json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}])
    };
    let mut obj = Map::new();
    obj.insert("id".into(), json!(id));
    obj.insert("object".into(), json!("chat.completion.chunk"));
    obj.insert("created".into(), json!(created));
    obj.insert("model".into(), json!(model));
    obj.insert("choices".into(), choices);
    if let Some(u) = usage {
        obj.insert("usage".into(), json!(u));
    }
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&serde_json::to_vec(&obj).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[derive(Debug, Deserialize)]
struct StreamEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: Option<MessageStart>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Debug, Deserialize)]
struct MessageStart {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Translates a Messages event stream into OpenAI chunks, keeping the latest
/// (cumulative) usage.
///
/// A cut stream's usage: Anthropic reports input tokens at the start and
/// output tokens as it goes, so its figures are kept where they arrived; a
/// missing input count is the prompt estimate, and the output is at least the
/// tokenizer's count of the content received.
#[derive(Debug)]
pub struct AnthropicTranslator {
    pub id: String,
    pub model: String,
    pub created: u64,
    pub usage: AnthropicUsage,
    pub saw_usage: bool,
    /// A `message_delta` with usage arrived: the figures are the provider's final ones.
    pub final_usage: bool,
    pub finish: Option<String>,
    pub content: String,
    include_usage: bool,
}

impl AnthropicTranslator {
    pub fn new(model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            id: String::new(),
            model: model.to_string(),
            created,
            usage: AnthropicUsage::default(),
            saw_usage: false,
            final_usage: false,
            finish: None,
            content: String::new(),
            include_usage,
        }
    }

    pub fn saw_final_usage(&self) -> bool {
        self.final_usage
    }
}

impl StreamTranslator for AnthropicTranslator {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn progress(&self, prompt_estimate: u64) -> StreamProgress {
        let mut usage = self.usage.normalise();
        if !self.saw_final_usage() {
            if self.usage.input_tokens.is_none() {
                usage.input = prompt_estimate;
            }
            usage.output = usage.output.max(token_count::count_text(&self.content));
            usage.estimated = true;
        }
        StreamProgress { model: self.model.clone(), content: self.content.clone(), finish_reason: self.finish.clone(), usage }
    }

    /// Handles one SSE event's data; pushes chunks to forward into `out`.
    fn on_event(&mut self, data: &str, key: &str, out: &mut Vec<Bytes>) -> Step {
        let Ok(ev) = serde_json::from_str::<StreamEvent>(data) else {
            return Step::Error(ProviderError::InvalidResponse { provider: NAME, message: "unreadable stream event".into() });
        };
        match ev.kind.as_str() {
            "message_start" => {
                if let Some(m) = ev.message {
                    self.id = format!("chatcmpl-{}", m.id);
                    if !m.model.is_empty() {
                        self.model = m.model;
                    }
                    if let Some(u) = m.usage {
                        self.usage.update(&u);
                        self.saw_usage = true;
                    }
                }
                out.push(chunk_event(&self.id, self.created, &self.model, json!({"role": "assistant", "content": ""}), None, None));
            }
            "content_block_delta" => {
                if let Some(text) = ev.delta.and_then(|d| d.text) {
                    self.content.push_str(&text);
                    out.push(chunk_event(&self.id, self.created, &self.model, json!({"content": text}), None, None));
                }
            }
            "message_delta" => {
                if let Some(reason) = ev.delta.and_then(|d| d.stop_reason) {
                    self.finish = Some(finish_reason(&reason).to_string());
                }
                if let Some(u) = ev.usage {
                    // Cumulative: keep the latest figures, never add.
                    self.usage.update(&u);
                    self.final_usage = true;
                }
            }
            "message_stop" => {
                let finish = self.finish.clone().unwrap_or_else(|| "stop".into());
                out.push(chunk_event(&self.id, self.created, &self.model, json!({}), Some(&finish), None));
                if self.include_usage {
                    let u = OpenAiUsage::from_normalised(&self.usage.normalise());
                    out.push(chunk_event(&self.id, self.created, &self.model, Value::Null, None, Some(&u)));
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                return Step::Done;
            }
            "error" => {
                let e = ProviderError::from_stream_error(NAME, data.as_bytes(), key);
                let body = json!({"error": {"message": e.provider_message(), "type": e.class(), "code": null}});
                out.push(Bytes::from(format!("data: {body}\n\n")));
                return Step::Error(e);
            }
            // ping, content_block_start, content_block_stop and unknown future events.
            _ => {}
        }
        Step::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_translation() {
        let req: ChatRequest = serde_json::from_value(json!({
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this photo?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/venue.jpg"}}
                ]},
                {"role": "user", "content": "Second part"},
                {"role": "assistant", "content": "A venue."}
            ],
            "max_tokens": 100, "temperature": 1.5, "stop": "END", "stream": true
        }))
        .unwrap();
        let a = to_messages_request(&req);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["system"], json!([{"type": "text", "text": "Be brief."}]));
        assert_eq!(v["messages"].as_array().unwrap().len(), 2, "consecutive user messages merge");
        assert_eq!(v["messages"][0]["content"][1]["source"], json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}));
        assert_eq!(v["messages"][0]["content"][2]["source"], json!({"type": "url", "url": "https://example.com/venue.jpg"}));
        assert_eq!(v["messages"][0]["content"][3]["text"], "Second part");
        assert_eq!(v["max_tokens"], 100);
        assert_eq!(v["temperature"], 1.0);
        assert_eq!(v["stop_sequences"], json!(["END"]));
        assert_eq!(v["stream"], true);
    }

    #[test]
    fn response_translation() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"Hi"},{"type":"text","text":" there"}],"stop_reason":"max_tokens","usage":{"input_tokens":10,"output_tokens":2,"cache_read_input_tokens":100,"cache_creation_input_tokens":0}}"#;
        let t = from_messages_response(body, 1).unwrap();
        assert_eq!(t.content, "Hi there");
        assert_eq!(t.finish_reason.as_deref(), Some("length"));
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["usage"]["prompt_tokens"], 110);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
        assert_eq!(v["choices"][0]["message"]["content"], "Hi there");
        assert!(from_messages_response(b"{not json", 1).is_err());
    }

    #[test]
    fn stream_translation_keeps_latest_usage_and_maps_errors() {
        let mut t = AnthropicTranslator::new("claude-haiku-4-5", 1, true);
        let mut out = Vec::new();
        let events = [
            r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-haiku-4-5","usage":{"input_tokens":25,"cache_read_input_tokens":100,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":10}}"#,
            r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":15}}"#,
        ];
        for e in events {
            assert_eq!(t.on_event(e, "k", &mut out), Step::Continue);
        }
        assert_eq!(t.on_event(r#"{"type":"message_stop"}"#, "k", &mut out), Step::Done);
        let u = t.usage.normalise();
        assert_eq!((u.input, u.cached_read, u.output), (25, 100, 15), "latest cumulative figure, not a sum");
        // role chunk, "Hello", finish chunk, usage chunk, [DONE]
        assert_eq!(out.len(), 5);
        let last_json: Value = serde_json::from_slice(&out[3][6..out[3].len() - 2]).unwrap();
        assert_eq!(last_json["usage"]["prompt_tokens"], 125);
        assert_eq!(last_json["usage"]["completion_tokens"], 15);
        assert_eq!(&out[4][..], b"data: [DONE]\n\n");

        let mut t = AnthropicTranslator::new("claude-haiku-4-5", 1, false);
        let step = t.on_event(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#, "k", &mut out);
        match step {
            Step::Error(e) => assert_eq!((e.class(), e.is_retryable()), ("overloaded", true)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(t.on_event("{truncated", "k", &mut out), Step::Error(_)));
    }

    #[test]
    fn a_cut_stream_keeps_anthropics_figures_and_estimates_only_the_rest() {
        let mut t = AnthropicTranslator::new("claude-haiku-4-5", 1, false);
        assert_eq!(t.provider(), NAME);
        let mut out = Vec::new();
        // Nothing yet: all estimated.
        let none = t.progress(30);
        assert!(none.usage.estimated);
        assert_eq!((none.usage.input, none.usage.output), (30, 0));
        t.on_event(
            r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-haiku-4-5","usage":{"input_tokens":25,"output_tokens":1}}}"#,
            "k",
            &mut out,
        );
        t.on_event(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello there, friends"}}"#,
            "k",
            &mut out,
        );
        let cut = t.progress(30);
        assert!(cut.usage.estimated);
        assert_eq!(cut.usage.input, 25, "the provider's input count is kept");
        assert_eq!(cut.usage.output, token_count::count_text("Hello there, friends").max(1));
        assert_eq!(cut.content, "Hello there, friends");
        t.on_event(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#, "k", &mut out);
        let done = t.progress(30);
        assert!(!done.usage.estimated);
        assert_eq!((done.usage.input, done.usage.output, done.finish_reason.as_deref()), (25, 7, Some("stop")));
    }
}
