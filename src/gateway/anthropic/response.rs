//! The router's OpenAI-shaped `chat.completion` turned into an Anthropic
//! `Message`: thinking blocks (from `thinking_blocks`, or `reasoning_content`
//! unsigned), then the text, then one `tool_use` block per tool call (its
//! arguments parsed back into `input`); the finish reason as a stop reason
//! ([`stop_reason`]); OpenAI's usage as Anthropic's (input without the cached
//! tokens, which are `cache_read_input_tokens`).

use serde_json::{Map, Value, json};

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`: `stop` →
/// `end_turn` (or `stop_sequence` when the route said which sequence
/// matched), `length` → `max_tokens`, `tool_calls` / `function_call` →
/// `tool_use`, `content_filter` → `refusal`.
pub fn stop_reason(finish: Option<&str>, stop_sequence: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if stop_sequence.is_some() => "stop_sequence",
        _ => "end_turn",
    }
}

/// Anthropic's `usage` for an OpenAI `usage` object (absent figures are 0).
pub fn usage(u: Option<&Value>) -> Value {
    let n = |v: Option<&Value>| v.and_then(crate::providers::wire::bound_tokens).unwrap_or(0);
    let prompt = n(u.and_then(|u| u.get("prompt_tokens")));
    let cached = n(u.and_then(|u| u.pointer("/prompt_tokens_details/cached_tokens"))).min(prompt);
    let output = n(u.and_then(|u| u.get("completion_tokens")));
    json!({
        "input_tokens": prompt - cached,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

/// A message id in Anthropic's style for the router's completion id.
pub fn message_id(openai_id: Option<&str>) -> String {
    match openai_id.map(|s| s.strip_prefix("chatcmpl-").unwrap_or(s)).filter(|s| !s.is_empty()) {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) => format!("msg_{id}"),
        None => "msg_switchboard".to_string(),
    }
}

/// A tool call's `arguments` text as a `tool_use` block's `input` object
/// (arguments that are not a JSON object are kept whole under `_raw`, never dropped).
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"_raw": arguments}),
    }
}

/// Translates a `chat.completion` body into an Anthropic `Message` body;
/// `None` when it is not readable as one (the caller answers with an error).
pub fn to_message(body: &[u8], requested_model: &str) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let choice = v.get("choices")?.get(0)?;
    let msg = choice.get("message")?;
    let mut content = Vec::new();
    match msg.get("thinking_blocks").and_then(Value::as_array) {
        Some(blocks) if !blocks.is_empty() => content.extend(blocks.iter().filter(|b| b.is_object()).cloned()),
        _ => {
            if let Some(r) = msg.get("reasoning_content").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
            }
        }
    }
    if let Some(t) = msg.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    for call in msg.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let f = call.get("function");
        let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default();
        let args = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or_default();
        let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": tool_input(args)}));
    }
    let stop_seq = choice.get("stop_sequence").and_then(Value::as_str);
    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let reason = stop_reason(finish, stop_seq);
    let model = v.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()).unwrap_or(requested_model);
    let mut out = Map::new();
    out.insert("id".into(), Value::String(message_id(v.get("id").and_then(Value::as_str))));
    out.insert("type".into(), json!("message"));
    out.insert("role".into(), json!("assistant"));
    out.insert("model".into(), Value::String(model.to_string()));
    out.insert("content".into(), Value::Array(content));
    out.insert("stop_reason".into(), json!(reason));
    out.insert("stop_sequence".into(), if reason == "stop_sequence" { json!(stop_seq) } else { Value::Null });
    out.insert("usage".into(), usage(v.get("usage")));
    serde_json::to_vec(&Value::Object(out)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(v: Value) -> Value {
        serde_json::from_slice(&to_message(v.to_string().as_bytes(), "asked").unwrap()).unwrap()
    }

    #[test]
    fn a_text_answer_becomes_a_message() {
        let m = msg(json!({
            "id": "chatcmpl-abc", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Congratulations!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129, "prompt_tokens_details": {"cached_tokens": 100}}
        }));
        assert_eq!(
            m,
            json!({"id": "msg_abc", "type": "message", "role": "assistant", "model": "gpt-4o-mini-2024-07-18",
                "content": [{"type": "text", "text": "Congratulations!"}], "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 20, "output_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}})
        );
    }

    #[test]
    fn tool_calls_become_tool_use_blocks() {
        let m = msg(json!({
            "id": "chatcmpl-1", "model": "",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "reasoning_content": "The user wants the booking.",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_booking", "arguments": "{\"email\":\"a@b.c\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "noop", "arguments": ""}},
                    {"id": "call_3", "type": "function", "function": {"name": "broken", "arguments": "{\"a\":"}}
                ]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7}
        }));
        assert_eq!(m["model"], "asked", "an empty model reads as the one asked for");
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(
            m["content"],
            json!([
                {"type": "thinking", "thinking": "The user wants the booking.", "signature": ""},
                {"type": "tool_use", "id": "call_1", "name": "get_booking", "input": {"email": "a@b.c"}},
                {"type": "tool_use", "id": "call_2", "name": "noop", "input": {}},
                {"type": "tool_use", "id": "call_3", "name": "broken", "input": {"_raw": "{\"a\":"}}
            ])
        );
    }

    #[test]
    fn signed_thinking_blocks_are_kept_as_they_came() {
        let m = msg(json!({"choices": [{"finish_reason": "stop", "message": {"content": "4", "reasoning_content": "2+2",
            "thinking_blocks": [{"type": "thinking", "thinking": "2+2", "signature": "EqQB"}, {"type": "redacted_thinking", "data": "xyz"}]}}]}));
        assert_eq!(m["content"][0], json!({"type": "thinking", "thinking": "2+2", "signature": "EqQB"}));
        assert_eq!(m["content"][1], json!({"type": "redacted_thinking", "data": "xyz"}));
        assert_eq!(m["content"][2], json!({"type": "text", "text": "4"}));
        assert_eq!(m["id"], "msg_switchboard");
        assert_eq!(m["usage"]["input_tokens"], 0);
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        assert_eq!(stop_reason(Some("stop"), None), "end_turn");
        assert_eq!(stop_reason(None, None), "end_turn");
        assert_eq!(stop_reason(Some("length"), None), "max_tokens");
        assert_eq!(stop_reason(Some("tool_calls"), None), "tool_use");
        assert_eq!(stop_reason(Some("function_call"), None), "tool_use");
        assert_eq!(stop_reason(Some("content_filter"), None), "refusal");
        assert_eq!(stop_reason(Some("stop"), Some("END")), "stop_sequence");
        let m = msg(json!({"choices": [{"finish_reason": "stop", "stop_sequence": "END", "message": {"content": "a"}}]}));
        assert_eq!((m["stop_reason"].as_str(), m["stop_sequence"].as_str()), (Some("stop_sequence"), Some("END")));
        let m = msg(json!({"choices": [{"finish_reason": "length", "message": {"content": "a"}}]}));
        assert_eq!((m["stop_reason"].as_str(), &m["stop_sequence"]), (Some("max_tokens"), &Value::Null));
    }

    #[test]
    fn unreadable_answers_and_hostile_figures() {
        assert!(to_message(b"{oops", "m").is_none());
        assert!(to_message(br#"{"choices": []}"#, "m").is_none());
        let u = usage(Some(&json!({"prompt_tokens": 3, "completion_tokens": -4, "prompt_tokens_details": {"cached_tokens": 1e300}})));
        assert_eq!(u, json!({"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3}));
        assert_eq!(message_id(Some("msg_01")), "msg_01");
    }
}
