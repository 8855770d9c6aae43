//! The simulator's tool calling, structured output, images and thinking —
//! a contract other tests rely on (README, "The simulator"):
//!
//! - **Tool call.** A chat with tools whose last message is from the user
//!   (OpenAI: role `user`; Anthropic: a user turn without `tool_result`
//!   blocks) is answered with one call of the tool that `tool_choice` forces
//!   (OpenAI `{"type":"function","function":{"name":…}}`, Anthropic
//!   `{"type":"tool","name":…}`), else of the first tool, unless
//!   `tool_choice` is `none`. Its arguments fill every `required` property
//!   of the tool's JSON schema: string → `"sample <name>"`, integer/number →
//!   `1`, boolean → `true`, array → `[]`, object → `{}` (anything else:
//!   `null`). Finish reason `tool_calls` / stop reason `tool_use`. Ids are
//!   `call_sim…` (OpenAI, Azure) and `toolu_sim…` (Anthropic).
//! - **Tool result.** A request whose last message is a tool result (OpenAI:
//!   role `tool`; Anthropic: a user turn with `tool_result` blocks) is
//!   answered with text quoting the result: `Simulated <model> reply: the
//!   tool said: <result>`.
//! - **Ids are checked** as the providers check them: an Anthropic
//!   `tool_result` must answer a `tool_use` of the previous assistant turn,
//!   an OpenAI `tool` message a `tool_calls` entry of an earlier assistant
//!   message; otherwise a 400 in the provider's words.
//! - **Streams** deliver a call's arguments in at least two deltas
//!   (`tool_calls[].function.arguments` / `input_json_delta`).
//! - **Structured output** (OpenAI, Azure): `response_format` `json_schema`
//!   is answered with content that is the schema's sample object as above;
//!   `json_object` with `{"reply": "<the echo>"}`.
//! - **Images**: image parts count 85 tokens each; a malformed one (no URL,
//!   an Anthropic source without `data`/`media_type` or `url`, an OpenAI
//!   `detail` other than `auto`/`low`/`high`) is a 400.
//! - **Thinking** (Anthropic, `thinking.type` = `enabled`): the answer starts
//!   with a signed `thinking` block; with thinking on, an assistant turn that
//!   used tools must start with a thinking block (Anthropic's 400 otherwise).

use super::reply::SimMessage;
use serde_json::{Map, Value, json};

/// What the simulator answers a chat with, before the words are planned.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// The ordinary echo of the last user message.
    Echo,
    /// A call of the tool `name` with `arguments` (a JSON object).
    Call { name: String, arguments: Value },
    /// Text quoting the last tool result.
    Quote(String),
    /// Structured output: the JSON content.
    Json(Value),
}

/// A tool call the simulator makes.
#[derive(Debug, Clone, PartialEq)]
pub struct SimToolCall {
    pub id: String,
    pub name: String,
    /// The arguments, as compact JSON text.
    pub arguments: String,
}

/// The sample object for a JSON schema: every `required` property filled.
pub fn sample_args(schema: &Value) -> Value {
    let mut out = Map::new();
    let props = schema.get("properties");
    for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        let kind = props.and_then(|p| p.get(name)).and_then(|p| p.get("type"));
        let kind = match kind {
            Some(Value::String(s)) => s.as_str(),
            // ["string", "null"]: the first non-null type.
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or(""),
            _ => "",
        };
        let v = match kind {
            "string" => json!(format!("sample {name}")),
            "integer" | "number" => json!(1),
            "boolean" => json!(true),
            "array" => json!([]),
            "object" => json!({}),
            _ => Value::Null,
        };
        out.insert(name.to_string(), v);
    }
    Value::Object(out)
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// OpenAI and Azure: the turn for a request.
pub fn openai_turn(messages: &[SimMessage], tools: Option<&Value>, tool_choice: Option<&Value>, response_format: Option<&Value>) -> Turn {
    let Some(last) = messages.last() else { return Turn::Echo };
    if last.role == "tool" {
        return Turn::Quote(text_of(&last.content));
    }
    let tools: &[Value] = tools.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if last.role == "user" && !tools.is_empty() && tool_choice.and_then(Value::as_str) != Some("none") {
        let forced = tool_choice.and_then(|c| c.get("function")).and_then(|f| f.get("name")).and_then(Value::as_str);
        let tool = forced
            .and_then(|n| tools.iter().find(|t| t.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) == Some(n)))
            .or(tools.first());
        if let Some(f) = tool.and_then(|t| t.get("function")) {
            let name = f.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let arguments = f.get("parameters").map(sample_args).unwrap_or_else(|| json!({}));
            return Turn::Call { name, arguments };
        }
    }
    match response_format.and_then(|r| r.get("type")).and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = response_format.and_then(|r| r.get("json_schema")).and_then(|j| j.get("schema")).cloned().unwrap_or_default();
            Turn::Json(sample_args(&schema))
        }
        Some("json_object") => Turn::Json(json!({"reply": text_of(&last.content)})),
        _ => Turn::Echo,
    }
}

/// Anthropic: the turn for a request.
pub fn anthropic_turn(messages: &[SimMessage], tools: Option<&Value>, tool_choice: Option<&Value>) -> Turn {
    let Some(last) = messages.last() else { return Turn::Echo };
    let results: Vec<String> = match &last.content {
        Value::Array(blocks) if last.role == "user" => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            .map(|b| text_of(b.get("content").unwrap_or(&Value::Null)))
            .collect(),
        _ => Vec::new(),
    };
    if !results.is_empty() {
        return Turn::Quote(results.join(" "));
    }
    let tools: &[Value] = tools.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let choice = tool_choice.and_then(|c| c.get("type")).and_then(Value::as_str);
    if last.role == "user" && !tools.is_empty() && choice != Some("none") {
        let forced = if choice == Some("tool") { tool_choice.and_then(|c| c.get("name")).and_then(Value::as_str) } else { None };
        let tool = forced.and_then(|n| tools.iter().find(|t| t.get("name").and_then(Value::as_str) == Some(n))).or(tools.first());
        if let Some(t) = tool {
            let name = t.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let arguments = t.get("input_schema").map(sample_args).unwrap_or_else(|| json!({}));
            return Turn::Call { name, arguments };
        }
    }
    Turn::Echo
}

/// OpenAI's checks of tool messages and image parts: the 400's message, if any.
pub fn openai_problem(messages: &[SimMessage]) -> Option<String> {
    let mut ids: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if let Some(calls) = m.tool_calls.as_ref().and_then(Value::as_array) {
            ids.extend(calls.iter().filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_string)));
        }
        if m.role == "tool" {
            let id = m.tool_call_id.as_deref().unwrap_or_default();
            if !ids.iter().any(|k| k == id) {
                return Some(format!(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'. (messages[{i}], tool_call_id '{id}')"
                ));
            }
        }
        if let Value::Array(parts) = &m.content {
            for p in parts.iter().filter(|p| p.get("type").and_then(Value::as_str) == Some("image_url")) {
                let img = p.get("image_url");
                if img.and_then(|i| i.get("url")).and_then(Value::as_str).is_none_or(str::is_empty) {
                    return Some(format!("Invalid 'messages[{i}].content': an image_url part needs image_url.url."));
                }
                if let Some(d) = img.and_then(|i| i.get("detail")).and_then(Value::as_str)
                    && !matches!(d, "auto" | "low" | "high")
                {
                    return Some(format!("Invalid value: '{d}'. Supported values are: 'auto', 'low', and 'high'."));
                }
            }
        }
    }
    None
}

/// Anthropic's checks of tool results, thinking and image blocks: the 400's message, if any.
pub fn anthropic_problem(messages: &[SimMessage], thinking: bool) -> Option<String> {
    let mut previous_uses: Vec<String> = Vec::new();
    let blocks_of = |m: &SimMessage| -> Vec<Value> { m.content.as_array().cloned().unwrap_or_default() };
    for (i, m) in messages.iter().enumerate() {
        let blocks = blocks_of(m);
        if m.role == "user" {
            for b in blocks.iter().filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result")) {
                let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or_default();
                if !previous_uses.iter().any(|u| u == id) {
                    return Some(format!(
                        "messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                    ));
                }
            }
        }
        for (j, b) in blocks.iter().enumerate().filter(|(_, b)| b.get("type").and_then(Value::as_str) == Some("image")) {
            let src = b.get("source");
            let ok = match src.and_then(|s| s.get("type")).and_then(Value::as_str) {
                Some("base64") => src.and_then(|s| s.get("data")).is_some() && src.and_then(|s| s.get("media_type")).is_some(),
                Some("url") => src.and_then(|s| s.get("url")).and_then(Value::as_str).is_some(),
                _ => false,
            };
            if !ok {
                return Some(format!("messages.{i}.content.{j}.image.source: invalid image source"));
            }
        }
        previous_uses.clear();
        if m.role == "assistant" {
            let uses: Vec<&Value> = blocks.iter().filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use")).collect();
            let first = blocks.first().and_then(|b| b.get("type")).and_then(Value::as_str);
            let is_last_assistant = !messages[i + 1..].iter().any(|n| n.role == "assistant");
            if thinking && is_last_assistant && !uses.is_empty() && !matches!(first, Some("thinking" | "redacted_thinking")) {
                return Some(format!(
                    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks).",
                    first.unwrap_or("text")
                ));
            }
            for b in blocks.iter().filter(|b| matches!(b.get("type").and_then(Value::as_str), Some("thinking"))) {
                if b.get("signature").and_then(Value::as_str).is_none_or(str::is_empty) {
                    return Some(format!("messages.{i}: a thinking block needs its signature"));
                }
            }
            // Ids are kept for the next message's results.
            for u in uses {
                if let Some(id) = u.get("id").and_then(Value::as_str) {
                    previous_uses.push(id.to_string());
                }
            }
        }
    }
    None
}

/// `text` in two or more pieces (a stream's deltas), split at character boundaries.
pub fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 2 {
        return vec![text.to_string(), String::new()];
    }
    let mid = chars.len() / 2;
    vec![chars[..mid].iter().collect(), chars[mid..].iter().collect()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(v: Value) -> Vec<SimMessage> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn arguments_fill_every_required_property_by_type() {
        let schema = json!({"type": "object", "properties": {
            "couple": {"type": "string"}, "guests": {"type": "integer"}, "budget": {"type": "number"},
            "confirmed": {"type": "boolean"}, "extras": {"type": "array"}, "venue": {"type": "object"},
            "note": {"type": ["string", "null"]}, "optional": {"type": "string"}},
            "required": ["couple", "guests", "budget", "confirmed", "extras", "venue", "note"]});
        assert_eq!(
            sample_args(&schema),
            json!({"couple": "sample couple", "guests": 1, "budget": 1, "confirmed": true, "extras": [], "venue": {}, "note": "sample note"})
        );
    }

    #[test]
    fn turns_follow_the_contract() {
        let tools = json!([{"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
                           {"type": "function", "function": {"name": "b", "parameters": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}}]);
        let user = msgs(json!([{"role": "user", "content": "hi"}]));
        assert_eq!(openai_turn(&user, Some(&tools), None, None), Turn::Call { name: "a".into(), arguments: json!({}) });
        let forced = json!({"type": "function", "function": {"name": "b"}});
        assert_eq!(
            openai_turn(&user, Some(&tools), Some(&forced), None),
            Turn::Call { name: "b".into(), arguments: json!({"x": "sample x"}) }
        );
        assert_eq!(openai_turn(&user, Some(&tools), Some(&json!("none")), None), Turn::Echo);
        let after = msgs(json!([{"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42 guests"}]));
        assert_eq!(openai_turn(&after, Some(&tools), None, None), Turn::Quote("42 guests".into()));
        assert_eq!(openai_problem(&after), None);
        let orphan = msgs(json!([{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "nope", "content": "x"}]));
        assert!(openai_problem(&orphan).unwrap().contains("preceeding message with 'tool_calls'"));

        let an_tools = json!([{"name": "a", "input_schema": {"type": "object"}}, {"name": "b", "input_schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}]);
        assert_eq!(
            anthropic_turn(&user, Some(&an_tools), Some(&json!({"type": "tool", "name": "b"}))),
            Turn::Call { name: "b".into(), arguments: json!({"n": 1}) }
        );
        let an_after = msgs(json!([{"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "a", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]}]));
        assert_eq!(anthropic_turn(&an_after, Some(&an_tools), None), Turn::Quote("done".into()));
        assert_eq!(anthropic_problem(&an_after, false), None);
        assert!(anthropic_problem(&an_after, true).unwrap().contains("Expected `thinking`"));
        let wrong = msgs(json!([{"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "a", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "done"}]}]));
        assert!(anthropic_problem(&wrong, false).unwrap().contains("unexpected `tool_use_id`"));
        assert_eq!(pieces("{}"), vec!["{", "}"]);
    }
}
