//! Anthropic Messages API: translation of OpenAI chat requests into Messages
//! requests (`request`), and of Messages answers (here) and streams
//! (`stream`) back into OpenAI chat completions and `chat.completion.chunk`
//! events: text, `tool_use` blocks as `tool_calls`, the forced tool of a
//! `response_format` as the message content, and thinking blocks as
//! `reasoning_content` plus the signed `thinking_blocks` extension field.

mod request;
mod stream;

pub use request::{
    AnthropicMessage, DEFAULT_MAX_TOKENS, MessagesRequest, REASONING_CONTENT, STRUCTURED_TOOL, THINKING_BLOCKS, Untranslatable,
    to_messages_request,
};
pub use stream::AnthropicTranslator;

use super::ChatResponse;
use super::error::ProviderError;
use super::token_count;
use super::wire::{AnthropicUsage, OpenAiUsage};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub const NAME: &str = "Anthropic";
pub const API_VERSION: &str = "2023-06-01";

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
struct MessagesResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    /// `null` reads as absent (its figures estimated), not as a malformed
    /// answer: that would fail over, and the call was paid for.
    #[serde(default, deserialize_with = "super::wire::null_as_default")]
    usage: AnthropicUsage,
}

/// What an Anthropic answer's blocks become in OpenAI's message.
#[derive(Debug, Default)]
struct Translated {
    content: String,
    tool_calls: Vec<Value>,
    reasoning: String,
    thinking_blocks: Vec<Value>,
    /// The forced tool of a `response_format` answered: its input is the content.
    structured: bool,
}

impl Translated {
    /// The answer's output tokens counted from what it holds (for an answer
    /// that does not report them).
    fn output_estimate(&self) -> u64 {
        let calls = self.tool_calls.iter().map(|c| {
            let f = &c["function"];
            let text = |k: &str| f.get(k).and_then(Value::as_str).map_or(0, token_count::count_text);
            text("name").saturating_add(text("arguments"))
        });
        calls.fold(token_count::count_text(&self.content).saturating_add(token_count::count_text(&self.reasoning)), u64::saturating_add)
    }
}

fn translate_blocks(blocks: &[Value], structured: bool) -> Translated {
    let mut t = Translated::default();
    for b in blocks {
        match b.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => t.content.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            "tool_use" => {
                let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                if structured && name == STRUCTURED_TOOL {
                    t.structured = true;
                    t.content = input.to_string();
                    continue;
                }
                t.tool_calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()}
                }));
            }
            "thinking" => {
                t.reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or_default());
                t.thinking_blocks.push(b.clone());
            }
            "redacted_thinking" => t.thinking_blocks.push(b.clone()),
            _ => {}
        }
    }
    t
}

/// The usage of an answer with thinking: Anthropic counts thinking within
/// `output_tokens` and reports no separate figure, so the reasoning part is
/// the tokenizer's count of the thinking text, at most the output.
fn with_reasoning(mut usage: crate::domain::TokenUsage, reasoning_text: &str) -> crate::domain::TokenUsage {
    if !reasoning_text.is_empty() {
        usage.reasoning = token_count::count_text(reasoning_text).min(usage.output);
    }
    usage
}

/// Translates a Messages answer into an OpenAI `chat.completion` body.
/// `structured`: the request's `response_format` became the forced tool
/// [`STRUCTURED_TOOL`], whose input is the answer's content. A usage figure
/// the answer lacks is estimated: the input by `prompt_estimate`, the output
/// from the answer's text, thinking and tool calls.
pub fn from_messages_response(
    body: &[u8],
    created: u64,
    structured: bool,
    prompt_estimate: impl FnOnce() -> u64,
) -> Result<ChatResponse, ProviderError> {
    let r: MessagesResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::InvalidResponse { provider: NAME, message: format!("not a Messages answer: {e}") })?;
    let t = translate_blocks(&r.content, structured);
    let finish = match r.stop_reason.as_deref() {
        Some("tool_use") if t.structured && t.tool_calls.is_empty() => Some("stop"),
        Some(s) => Some(finish_reason(s)),
        None => None,
    };
    let usage = with_reasoning(r.usage.normalise_or(prompt_estimate, || t.output_estimate()), &t.reasoning);
    let id = format!("chatcmpl-{}", r.id);
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    // OpenAI sends null content beside tool calls when there is no text.
    let content = if t.content.is_empty() && !t.tool_calls.is_empty() { Value::Null } else { json!(t.content) };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    if !t.tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(t.tool_calls));
    }
    if !t.thinking_blocks.is_empty() {
        message.insert(REASONING_CONTENT.into(), json!(t.reasoning));
        message.insert(THINKING_BLOCKS.into(), Value::Array(t.thinking_blocks));
    }
    let out = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": r.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": OpenAiUsage::from_normalised(&usage),
    });
    Ok(ChatResponse { body: Bytes::from(serde_json::to_vec(&out).unwrap_or_default()), model: r.model, usage, attempts: 1 })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TranslationTables;
    use crate::providers::translate::{Step, StreamTranslator};
    use crate::providers::wire::{ChatMessage, ChatRequest};

    fn tables() -> TranslationTables {
        TranslationTables::builtin()
    }

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tools_tool_calls_and_results_translate_with_ids_kept() {
        let r = req(json!({
            "model": "claude-haiku-4-5",
            "messages": [
                {"role": "user", "content": "Extract the booking from: Sam & Alex, 14 June 2027"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "save_booking", "arguments": "{\"couple\":\"Sam & Alex\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "check_date", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "saved"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "free"}]},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "save_booking", "description": "Save it",
                       "parameters": {"type": "object", "properties": {"couple": {"type": "string"}}, "required": ["couple"]}}},
                      {"type": "function", "function": {"name": "check_date"}}],
            "tool_choice": "required",
            "parallel_tool_calls": false
        }));
        let v = serde_json::to_value(to_messages_request(&r, &tables()).unwrap()).unwrap();
        assert_eq!(
            v["tools"][0],
            json!({"name": "save_booking", "description": "Save it",
            "input_schema": {"type": "object", "properties": {"couple": {"type": "string"}}, "required": ["couple"]}})
        );
        assert_eq!(v["tools"][1]["input_schema"], json!({"type": "object", "properties": {}}));
        assert_eq!(v["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3, "user, assistant, user (both results and the text)");
        assert_eq!(
            m[1]["content"][0],
            json!({"type": "tool_use", "id": "call_1", "name": "save_booking", "input": {"couple": "Sam & Alex"}})
        );
        assert_eq!(m[1]["content"][1]["input"], json!({}));
        assert_eq!(m[2]["content"][0], json!({"type": "tool_result", "tool_use_id": "call_1", "content": "saved"}));
        assert_eq!(m[2]["content"][1]["content"], json!([{"type": "text", "text": "free"}]));
        assert_eq!(m[2]["content"][2], json!({"type": "text", "text": "Thanks"}));
        // tool_choice by name, and "none".
        let mut r2 = r.clone();
        r2.extra.insert("tool_choice".into(), json!({"type": "function", "function": {"name": "check_date"}}));
        r2.extra.remove("parallel_tool_calls");
        let v = serde_json::to_value(to_messages_request(&r2, &tables()).unwrap()).unwrap();
        assert_eq!(v["tool_choice"], json!({"type": "tool", "name": "check_date"}));
        // Arguments that are not a JSON object cannot become tool_use input.
        let mut bad = r.clone();
        bad.messages[1].extra["tool_calls"][0]["function"]["arguments"] = json!("{oops");
        assert!(to_messages_request(&bad, &tables()).unwrap_err().0.contains("not JSON"));
    }

    #[test]
    fn features_without_an_equivalent_are_refused_not_approximated() {
        for (field, value) in [
            ("n", json!(2)),
            ("logprobs", json!(true)),
            ("logit_bias", json!({"50256": -100})),
            ("modalities", json!(["text", "audio"])),
            ("prediction", json!({"type": "content", "content": "x"})),
            ("reasoning_effort", json!("ultra")),
        ] {
            let mut r = ChatRequest::simple("claude-haiku-4-5", "hi");
            r.extra.insert(field.into(), value);
            assert!(to_messages_request(&r, &tables()).is_err(), "{field}");
        }
        let mut r = ChatRequest::simple("claude-haiku-4-5", "hi");
        r.extra.insert("seed".into(), json!(7));
        r.extra.insert("n".into(), json!(1));
        assert!(to_messages_request(&r, &tables()).is_ok(), "seed is dropped, n = 1 is the default");
        // response_format with tools: the forced tool would hide the client's tools.
        let mut r = ChatRequest::simple("claude-haiku-4-5", "hi");
        r.extra.insert("response_format".into(), json!({"type": "json_object"}));
        r.extra.insert("tools".into(), json!([{"type": "function", "function": {"name": "f"}}]));
        assert!(to_messages_request(&r, &tables()).is_err());
    }

    #[test]
    fn response_format_becomes_a_forced_tool_and_its_input_the_content() {
        let mut r = ChatRequest::simple("claude-haiku-4-5", "Booking: Sam, 14 June");
        r.extra.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"name": "booking", "strict": true,
                "schema": {"type": "object", "properties": {"couple": {"type": "string"}}, "required": ["couple"]}}}),
        );
        let v = serde_json::to_value(to_messages_request(&r, &tables()).unwrap()).unwrap();
        assert_eq!(v["tools"][0]["name"], STRUCTURED_TOOL);
        assert_eq!(v["tools"][0]["input_schema"]["required"], json!(["couple"]));
        assert_eq!(v["tool_choice"], json!({"type": "tool", "name": STRUCTURED_TOOL}));
        let body = json!({"id": "msg_1", "model": "claude-haiku-4-5", "stop_reason": "tool_use",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": STRUCTURED_TOOL, "input": {"couple": "Sam"}}],
            "usage": {"input_tokens": 5, "output_tokens": 3}});
        let t = from_messages_response(&serde_json::to_vec(&body).unwrap(), 1, true, || 0).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            serde_json::from_str::<Value>(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap(),
            json!({"couple": "Sam"})
        );
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    }

    #[test]
    fn thinking_blocks_come_back_signed_and_go_out_again_on_the_next_turn() {
        let body = json!({"id": "msg_1", "model": "claude-sonnet-4-5", "stop_reason": "tool_use",
            "content": [
                {"type": "thinking", "thinking": "The couple wants a date check.", "signature": "EqQBCgIYAhIM"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_9", "name": "check_date", "input": {"date": "2027-06-14"}}
            ],
            "usage": {"input_tokens": 50, "output_tokens": 200}});
        let t = from_messages_response(&serde_json::to_vec(&body).unwrap(), 1, false, || 0).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let msg = &v["choices"][0]["message"];
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(msg["reasoning_content"], "The couple wants a date check.");
        assert_eq!(msg["thinking_blocks"].as_array().unwrap().len(), 2);
        assert_eq!(msg["tool_calls"][0]["id"], "toolu_9");
        assert_eq!(msg["tool_calls"][0]["function"]["arguments"], "{\"date\":\"2027-06-14\"}");
        assert!(t.usage.reasoning > 0 && t.usage.reasoning <= 200, "thinking is the reasoning part of the output");
        assert_eq!(v["usage"]["completion_tokens_details"]["reasoning_tokens"], t.usage.reasoning);
        // The client sends the assistant message back as it got it, plus the result.
        let mut assistant: ChatMessage = serde_json::from_value(msg.clone()).unwrap();
        assistant.extra.remove("refusal");
        let next = req(json!({"model": "claude-sonnet-4-5", "reasoning_effort": "low", "messages": [
            {"role": "user", "content": "Is 14 June free?"}, assistant,
            {"role": "tool", "tool_call_id": "toolu_9", "content": "free"}]}));
        let a = to_messages_request(&next, &tables()).unwrap();
        assert_eq!(a.thinking, Some(json!({"type": "enabled", "budget_tokens": 2048})));
        assert_eq!(a.messages[1].content[0]["signature"], "EqQBCgIYAhIM");
        assert_eq!(a.messages[1].content[1]["type"], "redacted_thinking");
        assert_eq!(a.messages[1].content[3]["type"], "tool_use");
        assert!(a.max_tokens > 2048);
        // The same turn without its thinking blocks (begun on OpenAI): no thinking.
        let mut bare = next.clone();
        bare.messages[1].extra.remove("thinking_blocks");
        assert_eq!(to_messages_request(&bare, &tables()).unwrap().thinking, None);
    }

    #[test]
    fn streamed_tool_calls_thinking_and_structured_output() {
        let events = [
            r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-sonnet-4-5","usage":{"input_tokens":25,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Need the date."}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig=="}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"check_date","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"date\": "}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"2027-06-14\"}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":60}}"#,
        ];
        let mut t = AnthropicTranslator::new("claude-sonnet-4-5", 1, false);
        let mut out = Vec::new();
        for e in events {
            assert_eq!(t.on_event(e, "k", &mut out), Step::Continue);
        }
        assert_eq!(t.on_event(r#"{"type":"message_stop"}"#, "k", &mut out), Step::Done);
        let chunks: Vec<Value> =
            out.iter().filter(|b| !b.starts_with(b"data: [DONE]")).map(|b| serde_json::from_slice(&b[6..b.len() - 2]).unwrap()).collect();
        let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(deltas[1]["reasoning_content"], "Need the date.");
        assert_eq!(deltas[2]["thinking_blocks"][0], json!({"type": "thinking", "thinking": "Need the date.", "signature": "sig=="}));
        assert_eq!(
            deltas[3]["tool_calls"][0],
            json!({"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "check_date", "arguments": ""}})
        );
        assert_eq!(deltas[4]["tool_calls"][0]["function"]["arguments"], "{\"date\": ");
        assert_eq!(deltas[5]["tool_calls"][0]["function"]["arguments"], "\"2027-06-14\"}");
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
        let p = t.progress(0);
        assert!(p.usage.reasoning > 0 && p.usage.reasoning <= 60);

        // Structured output streams as content and finishes with "stop".
        let mut t = AnthropicTranslator::new("claude-haiku-4-5", 1, false).structured(true);
        let mut out = Vec::new();
        for e in [
            r#"{"type":"message_start","message":{"id":"msg_2","model":"claude-haiku-4-5","usage":{"input_tokens":5,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_2","name":"json_response","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":6}}"#,
            r#"{"type":"message_stop"}"#,
        ] {
            t.on_event(e, "k", &mut out);
        }
        assert_eq!(t.content, "{\"a\":1}");
        assert_eq!(t.finish.as_deref(), Some("stop"));
    }

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
        let a = to_messages_request(&req, &TranslationTables::builtin()).unwrap();
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
        let t = from_messages_response(body, 1, false, || 0).unwrap();
        assert_eq!(t.content(), "Hi there");
        assert_eq!(t.finish_reason().as_deref(), Some("length"));
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["usage"]["prompt_tokens"], 110);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
        assert_eq!(v["choices"][0]["message"]["content"], "Hi there");
        assert!(from_messages_response(b"{not json", 1, false, || 0).is_err());
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
