//! Anthropic Messages requests (`POST /v1/messages`, `/v1/messages/count_tokens`)
//! turned into the OpenAI-shaped [`ChatRequest`] the router takes: `system`
//! becomes a system message; user text and image blocks become content
//! parts; `tool_result` blocks become `tool` messages (ids kept) placed
//! before the rest of their turn; assistant `tool_use` blocks become
//! `tool_calls`, `thinking` blocks `reasoning_content` plus the signed blocks
//! in `thinking_blocks`; `tools` / `tool_choice` /
//! `disable_parallel_tool_use` become OpenAI's `tools` / `tool_choice` /
//! `parallel_tool_calls`; `stop_sequences` → `stop`; `metadata.user_id` →
//! `user`; `thinking.budget_tokens` → `reasoning_effort` (the nearest; an
//! Anthropic route gets the exact `thinking` as sent,
//! effort; [`effort_for_budget`]); `top_k` is kept as is (only Anthropic has
//! it). What has no OpenAI-shaped equivalent here (documents, server tools,
//! MCP servers, containers) is refused with a clear 400 rather than dropped.

use crate::gateway::ApiError;
use crate::providers::{ChatMessage, ChatRequest};
use serde_json::{Map, Value, json};

/// Fields refused: features with no OpenAI-shaped equivalent here. Any other
/// unknown field is ignored, as Anthropic's optional settings that change
/// nothing here (`service_tier`).
const REFUSED_FIELDS: [&str; 3] = ["mcp_servers", "container", "context_management"];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// A Messages request body, parsed loosely (the fields are checked one by
/// one below, so that errors name them as Anthropic's do).
pub(super) fn parse(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match crate::gateway::ingress::parse_json::<Value>(bytes, "messages")? {
        Value::Object(m) => Ok(m),
        _ => Err(bad("the request body must be a JSON object")),
    }
}

/// The OpenAI-shaped chat request for an Anthropic Messages request.
/// `need_max_tokens`: `/v1/messages` requires `max_tokens` (as Anthropic
/// does); `count_tokens` does not take it.
pub(super) fn to_chat(body: &Map<String, Value>, need_max_tokens: bool) -> Result<ChatRequest, ApiError> {
    for f in REFUSED_FIELDS {
        if body.contains_key(f) {
            return Err(bad(format!("{f}: not supported by Switchboard's Messages endpoint; send the request without it")));
        }
    }
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(_) => return Err(bad("model: must be a non-empty string")),
        None => return Err(bad("model: Field required")),
    };
    let mut req = ChatRequest::simple(&model, "");
    req.messages.clear();
    if let Some(system) = body.get("system") {
        let text = system_text(system)?;
        if !text.is_empty() {
            req.messages.push(ChatMessage::text("system", &text));
        }
    }
    let Some(Value::Array(messages)) = body.get("messages") else {
        return Err(bad(if body.contains_key("messages") { "messages: must be an array" } else { "messages: Field required" }));
    };
    if messages.is_empty() {
        return Err(bad("messages: at least one message is required"));
    }
    for (i, m) in messages.iter().enumerate() {
        convert_message(m, i, &mut req.messages)?;
    }
    match body.get("max_tokens") {
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => req.max_tokens = Some(n),
            _ => return Err(bad("max_tokens: must be a positive integer")),
        },
        None if need_max_tokens => return Err(bad("max_tokens: Field required")),
        None => {}
    }
    for (name, max) in [("temperature", 1.0), ("top_p", 1.0)] {
        if let Some(v) = body.get(name).filter(|v| !v.is_null()) {
            let Some(x) = v.as_f64().filter(|x| (0.0..=max).contains(x)) else {
                return Err(bad(format!("{name}: must be a number from 0 to {max}")));
            };
            if name == "temperature" {
                req.temperature = Some(x);
            } else {
                req.top_p = Some(x);
            }
        }
    }
    if let Some(v) = body.get("top_k").filter(|v| !v.is_null()) {
        if v.as_u64().is_none() {
            return Err(bad("top_k: must be a non-negative integer"));
        }
        req.extra.insert("top_k".into(), v.clone());
    }
    if let Some(v) = body.get("stop_sequences").filter(|v| !v.is_null()) {
        let Some(seqs) = v.as_array().filter(|a| a.iter().all(Value::is_string)) else {
            return Err(bad("stop_sequences: must be an array of strings"));
        };
        if !seqs.is_empty() {
            req.stop = Some(Value::Array(seqs.clone()));
        }
    }
    if let Some(user) = body.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        req.user = Some(user.to_string());
    }
    if let Some(t) = body.get("thinking").filter(|v| !v.is_null()) {
        thinking(t, &mut req)?;
    }
    tools(body, &mut req)?;
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        req.stream = Some(true);
        // The usage is needed for `message_delta`, whatever the client asked.
        req.stream_options = Some(json!({"include_usage": true}));
    }
    Ok(req)
}

/// `system`: a string, or an array of text blocks (joined by blank lines).
fn system_text(system: &Value) -> Result<String, ApiError> {
    match system {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(blocks) => {
            let mut parts = Vec::new();
            for b in blocks {
                match (b.get("type").and_then(Value::as_str), b.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => parts.push(t),
                    _ => return Err(bad("system: must be a string or an array of text blocks")),
                }
            }
            Ok(parts.join("\n\n"))
        }
        _ => Err(bad("system: must be a string or an array of text blocks")),
    }
}

/// Appends the OpenAI messages for Anthropic message `i`.
fn convert_message(m: &Value, i: usize, out: &mut Vec<ChatMessage>) -> Result<(), ApiError> {
    let role = m.get("role").and_then(Value::as_str).ok_or_else(|| bad(format!("messages.{i}.role: Field required")))?;
    if role != "user" && role != "assistant" {
        return Err(bad(format!(
            "messages.{i}.role: must be \"user\" or \"assistant\" (the system prompt goes in the top-level \"system\")"
        )));
    }
    let content = m.get("content").ok_or_else(|| bad(format!("messages.{i}.content: Field required")))?;
    let blocks = match content {
        Value::String(s) => {
            out.push(ChatMessage::text(role, s));
            return Ok(());
        }
        Value::Array(b) => b,
        _ => return Err(bad(format!("messages.{i}.content: must be a string or an array of content blocks"))),
    };
    if role == "user" { user_blocks(blocks, i, out) } else { assistant_blocks(blocks, i, out) }
}

fn block_type(b: &Value, i: usize, j: usize) -> Result<&str, ApiError> {
    b.get("type").and_then(Value::as_str).ok_or_else(|| bad(format!("messages.{i}.content.{j}.type: Field required")))
}

fn str_field<'a>(b: &'a Value, name: &str, i: usize, j: usize) -> Result<&'a str, ApiError> {
    b.get(name).and_then(Value::as_str).ok_or_else(|| bad(format!("messages.{i}.content.{j}.{name}: Field required (a string)")))
}

/// A user turn: `tool_result` blocks first, as `tool` messages (OpenAI wants
/// them right after the assistant's `tool_calls`), then one user message
/// with the text and image parts, if any.
fn user_blocks(blocks: &[Value], i: usize, out: &mut Vec<ChatMessage>) -> Result<(), ApiError> {
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match block_type(b, i, j)? {
            "text" => parts.push(json!({"type": "text", "text": str_field(b, "text", i, j)?})),
            "image" => parts.push(image_part(b, i, j)?),
            "tool_result" => {
                let id = str_field(b, "tool_use_id", i, j)?;
                let mut text = tool_result_text(b.get("content"), i, j)?;
                if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text = format!("Error: {text}");
                }
                let mut msg = ChatMessage::text("tool", &text);
                msg.extra.insert("tool_call_id".into(), Value::String(id.to_string()));
                out.push(msg);
            }
            other => return Err(unsupported_block(other, i, j)),
        }
    }
    if !parts.is_empty() {
        let content = match parts.as_slice() {
            // A lone text block reads as plain content, as most clients send it.
            [p] if p["type"] == "text" => p["text"].clone(),
            _ => Value::Array(parts),
        };
        out.push(ChatMessage { role: "user".into(), content, extra: Map::new() });
    }
    Ok(())
}

fn unsupported_block(kind: &str, i: usize, j: usize) -> ApiError {
    bad(format!(
        "messages.{i}.content.{j}: content blocks of type \"{kind}\" are not supported by Switchboard's Messages endpoint (it takes text, image, tool_use, tool_result, thinking and redacted_thinking)"
    ))
}

/// An image block's source as an OpenAI `image_url` part: base64 data → a
/// data URL, a URL as is.
fn image_part(b: &Value, i: usize, j: usize) -> Result<Value, ApiError> {
    let src = b.get("source").ok_or_else(|| bad(format!("messages.{i}.content.{j}.source: Field required")))?;
    let url = match src.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = src.get("media_type").and_then(Value::as_str).unwrap_or("");
            if !["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&media) {
                return Err(bad(format!(
                    "messages.{i}.content.{j}.source.media_type: must be image/jpeg, image/png, image/gif or image/webp"
                )));
            }
            let data = src
                .get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("messages.{i}.content.{j}.source.data: Field required")))?;
            format!("data:{media};base64,{data}")
        }
        Some("url") => src
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("messages.{i}.content.{j}.source.url: Field required")))?
            .to_string(),
        _ => return Err(bad(format!("messages.{i}.content.{j}.source.type: must be \"base64\" or \"url\""))),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `tool_result`'s content (a string, or text blocks) as text.
fn tool_result_text(content: Option<&Value>, i: usize, j: usize) -> Result<String, ApiError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for b in blocks {
                match (b.get("type").and_then(Value::as_str), b.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => texts.push(t),
                    _ => {
                        return Err(bad(format!(
                            "messages.{i}.content.{j}.content: tool results may hold text blocks only on Switchboard's Messages endpoint"
                        )));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(bad(format!("messages.{i}.content.{j}.content: must be a string or an array of text blocks"))),
    }
}

/// An assistant turn: text joined into `content`, `tool_use` blocks as
/// `tool_calls` (arguments: the input as JSON text), thinking text in
/// `reasoning_content` and every thinking block, signature included, in
/// `thinking_blocks` (to go back to Anthropic on the next turn).
fn assistant_blocks(blocks: &[Value], i: usize, out: &mut Vec<ChatMessage>) -> Result<(), ApiError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut reasoning = String::new();
    let mut thinking = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match block_type(b, i, j)? {
            "text" => text.push_str(str_field(b, "text", i, j)?),
            "tool_use" => {
                let id = str_field(b, "id", i, j)?;
                let name = str_field(b, "name", i, j)?;
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}}));
            }
            "thinking" => {
                reasoning.push_str(str_field(b, "thinking", i, j)?);
                thinking.push(b.clone());
            }
            "redacted_thinking" => thinking.push(b.clone()),
            other => return Err(unsupported_block(other, i, j)),
        }
    }
    let content = if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
    let mut msg = ChatMessage { role: "assistant".into(), content, extra: Map::new() };
    if !calls.is_empty() {
        msg.extra.insert("tool_calls".into(), Value::Array(calls));
    }
    if !reasoning.is_empty() {
        msg.extra.insert("reasoning_content".into(), Value::String(reasoning));
    }
    if !thinking.is_empty() {
        msg.extra.insert("thinking_blocks".into(), Value::Array(thinking));
    }
    out.push(msg);
    Ok(())
}

/// The OpenAI `reasoning_effort` nearest to an Anthropic thinking budget:
/// up to 2,048 tokens `low`, up to 8,192 `medium`, above `high`.
pub fn effort_for_budget(budget: u64) -> &'static str {
    match budget {
        0..=2_048 => "low",
        2_049..=8_192 => "medium",
        _ => "high",
    }
}

fn thinking(t: &Value, req: &mut ChatRequest) -> Result<(), ApiError> {
    match t.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let Some(budget) = t.get("budget_tokens").and_then(Value::as_u64).filter(|b| *b >= 1024) else {
                return Err(bad("thinking.budget_tokens: must be an integer of at least 1024"));
            };
            if req.max_tokens.is_some_and(|m| budget >= m) {
                return Err(bad("thinking.budget_tokens: must be less than max_tokens"));
            }
            req.extra.insert("reasoning_effort".into(), Value::String(effort_for_budget(budget).into()));
            // The exact budget too, for an Anthropic route (OpenAI and Azure are not sent it).
            req.extra.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": budget}));
            Ok(())
        }
        Some("disabled") => Ok(()),
        _ => Err(bad("thinking.type: must be \"enabled\" or \"disabled\"")),
    }
}

/// `tools` and `tool_choice`, in OpenAI's shapes.
fn tools(body: &Map<String, Value>, req: &mut ChatRequest) -> Result<(), ApiError> {
    let list = match body.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => t.clone(),
        Some(_) => return Err(bad("tools: must be an array")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (k, t) in list.iter().enumerate() {
        if let Some(kind) = t.get("type").and_then(Value::as_str).filter(|k| *k != "custom") {
            return Err(bad(format!(
                "tools.{k}: server tools (\"{kind}\") are not supported by Switchboard's Messages endpoint; send client tools (name, description, input_schema)"
            )));
        }
        let name = t.get("name").and_then(Value::as_str).ok_or_else(|| bad(format!("tools.{k}.name: Field required")))?;
        let schema = t
            .get("input_schema")
            .filter(|s| s.is_object())
            .ok_or_else(|| bad(format!("tools.{k}.input_schema: Field required (an object)")))?;
        let mut f = Map::new();
        f.insert("name".into(), Value::String(name.into()));
        if let Some(d) = t.get("description").and_then(Value::as_str) {
            f.insert("description".into(), Value::String(d.into()));
        }
        f.insert("parameters".into(), schema.clone());
        out.push(json!({"type": "function", "function": f}));
    }
    let choice = body.get("tool_choice").filter(|c| !c.is_null());
    if let Some(c) = choice {
        let mapped = match c.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                let name = c.get("name").and_then(Value::as_str).ok_or_else(|| bad("tool_choice.name: Field required"))?;
                if !list.iter().any(|t| t.get("name").and_then(Value::as_str) == Some(name)) {
                    return Err(bad(format!("tool_choice.name: no tool named \"{name}\" in tools")));
                }
                json!({"type": "function", "function": {"name": name}})
            }
            _ => return Err(bad("tool_choice.type: must be \"auto\", \"any\", \"tool\" or \"none\"")),
        };
        if out.is_empty() && mapped != json!("none") {
            return Err(bad("tool_choice: needs tools"));
        }
        if !out.is_empty() {
            req.extra.insert("tool_choice".into(), mapped);
            if c.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
                req.extra.insert("parallel_tool_calls".into(), Value::Bool(false));
            }
        }
    }
    if !out.is_empty() {
        req.extra.insert("tools".into(), Value::Array(out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(v: Value) -> Result<ChatRequest, ApiError> {
        let Value::Object(m) = v else { panic!("not an object") };
        to_chat(&m, true)
    }

    fn as_json(r: &ChatRequest) -> Value {
        serde_json::to_value(r).unwrap()
    }

    #[test]
    fn a_plain_request_maps_every_setting() {
        let r = chat(json!({
            "model": "claude-haiku-4-5", "max_tokens": 300, "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
            "messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}, {"role": "user", "content": [{"type": "text", "text": "Plan a toast."}]}],
            "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"], "metadata": {"user_id": "supplier-7"}, "stream": true, "service_tier": "auto"
        }))
        .unwrap();
        assert_eq!(
            as_json(&r),
            json!({
                "model": "claude-haiku-4-5", "max_tokens": 300, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop": ["END"], "user": "supplier-7",
                "stream": true, "stream_options": {"include_usage": true},
                "messages": [
                    {"role": "system", "content": "Be brief.\n\nBe kind."},
                    {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "Plan a toast."}
                ]
            })
        );
    }

    #[test]
    fn images_become_image_url_parts() {
        let r = chat(json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/venue.jpg"}},
            {"type": "text", "text": "Which is brighter?"}
        ]}]}))
        .unwrap();
        assert_eq!(
            as_json(&r)["messages"][0]["content"],
            json!([
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/venue.jpg"}},
                {"type": "text", "text": "Which is brighter?"}
            ])
        );
        assert_eq!(r.messages[0].image_count(), 2, "typed image_analysis by the router");
        let e = chat(json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "application/pdf", "data": "x"}}]}]}))
        .unwrap_err();
        assert!(e.to_string().contains("media_type"), "{e}");
    }

    #[test]
    fn tools_tool_use_and_tool_results_map_with_their_ids() {
        let r = chat(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 500,
            "tools": [{"name": "get_booking", "description": "Reads a booking", "input_schema": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}}],
            "tool_choice": {"type": "tool", "name": "get_booking", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "Extract the booking."},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Need the tool.", "signature": "sig-1"},
                    {"type": "text", "text": "Looking it up."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_booking", "input": {"email": "a@b.c"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "June 12, 80 guests"}]},
                    {"type": "text", "text": "Summarise it."}
                ]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_02", "name": "get_booking", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_02", "content": "not found", "is_error": true}]}
            ]
        }))
        .unwrap();
        let v = as_json(&r);
        assert_eq!(
            v["tools"],
            json!([{"type": "function", "function": {"name": "get_booking", "description": "Reads a booking",
                "parameters": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}}}])
        );
        assert_eq!(v["tool_choice"], json!({"type": "function", "function": {"name": "get_booking"}}));
        assert_eq!(v["parallel_tool_calls"], false);
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m.len(), 6);
        assert_eq!(m[1]["content"], "Looking it up.");
        assert_eq!(
            m[1]["tool_calls"],
            json!([{"id": "toolu_01", "type": "function", "function": {"name": "get_booking", "arguments": "{\"email\":\"a@b.c\"}"}}])
        );
        assert_eq!(m[1]["reasoning_content"], "Need the tool.");
        assert_eq!(m[1]["thinking_blocks"][0]["signature"], "sig-1");
        assert_eq!(m[2], json!({"role": "tool", "tool_call_id": "toolu_01", "content": "June 12, 80 guests"}), "the result first");
        assert_eq!(m[3], json!({"role": "user", "content": "Summarise it."}));
        assert_eq!(m[4]["content"], Value::Null, "a tool call alone has null content, as OpenAI's");
        assert_eq!(m[5], json!({"role": "tool", "tool_call_id": "toolu_02", "content": "Error: not found"}));
    }

    #[test]
    fn tool_choice_kinds() {
        let base = |choice: Value| {
            chat(json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "t", "input_schema": {"type": "object"}}], "tool_choice": choice}))
        };
        assert_eq!(as_json(&base(json!({"type": "auto"})).unwrap())["tool_choice"], "auto");
        assert_eq!(as_json(&base(json!({"type": "any"})).unwrap())["tool_choice"], "required");
        assert_eq!(as_json(&base(json!({"type": "none"})).unwrap())["tool_choice"], "none");
        assert!(as_json(&base(json!({"type": "auto"})).unwrap()).get("parallel_tool_calls").is_none());
        assert!(base(json!({"type": "tool", "name": "other"})).unwrap_err().to_string().contains("no tool named"));
        assert!(base(json!({"type": "sometimes"})).is_err());
        let server = chat(json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
        assert!(server.unwrap_err().to_string().contains("server tools"));
    }

    #[test]
    fn thinking_maps_to_the_nearest_effort() {
        let r = chat(json!({"model": "m", "max_tokens": 20000, "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "enabled", "budget_tokens": 16000}}))
        .unwrap();
        assert_eq!(r.extra["reasoning_effort"], "high");
        assert_eq!(
            (effort_for_budget(1024), effort_for_budget(2048), effort_for_budget(2049), effort_for_budget(8192)),
            ("low", "low", "medium", "medium")
        );
        let too_big = chat(json!({"model": "m", "max_tokens": 2000, "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "enabled", "budget_tokens": 4000}}));
        assert!(too_big.unwrap_err().to_string().contains("less than max_tokens"));
        let off =
            chat(json!({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "disabled"}}));
        assert!(off.unwrap().extra.get("reasoning_effort").is_none());
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases = [
            (json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}), "model: Field required"),
            (json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}), "max_tokens: Field required"),
            (json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}), "max_tokens: must be"),
            (json!({"model": "m", "max_tokens": 5}), "messages: Field required"),
            (json!({"model": "m", "max_tokens": 5, "messages": []}), "at least one message"),
            (json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}), "messages.0.role"),
            (json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document"}]}]}), "\"document\""),
            (
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
                "messages.0.content.0.text",
            ),
            (json!({"model": "m", "max_tokens": 5, "temperature": 3, "messages": [{"role": "user", "content": "x"}]}), "temperature"),
            (json!({"model": "m", "max_tokens": 5, "mcp_servers": [], "messages": [{"role": "user", "content": "x"}]}), "mcp_servers"),
        ];
        for (body, want) in cases {
            let e = chat(body.clone()).unwrap_err();
            assert!(e.to_string().contains(want), "{body}: {e}");
            assert_eq!(e.status_code(), 400);
        }
        let Value::Object(m) = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}) else { unreachable!() };
        assert!(to_chat(&m, false).is_ok(), "count_tokens takes no max_tokens");
        assert!(parse(b"[1]").is_err() && parse(b"{oops").is_err());
    }
}
