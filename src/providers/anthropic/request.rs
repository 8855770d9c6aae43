//! OpenAI chat request → Anthropic Messages request: messages and system
//! prompts, image parts, tools and `tool_choice`, assistant `tool_calls` and
//! `tool` results (ids kept), `response_format` as a forced tool, and
//! `reasoning_effort` as a thinking budget (from the editable table in
//! `assets/translation.json`), with the signed thinking blocks of earlier
//! turns carried back. A request with a feature Anthropic has no equivalent
//! for is refused as [`Untranslatable`], so that the router skips the route.

use super::super::wire::ChatRequest;
use crate::domain::TranslationTables;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Anthropic requires `max_tokens`; used when the client set none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The name of the tool that carries a `response_format` answer.
pub const STRUCTURED_TOOL: &str = "json_response";

/// The extension field of an OpenAI-shaped assistant message (answers and
/// later turns) carrying Anthropic's signed thinking blocks unchanged.
pub const THINKING_BLOCKS: &str = "thinking_blocks";
/// The extension field carrying the thinking text (as DeepSeek and LiteLLM name it).
pub const REASONING_CONTENT: &str = "reasoning_content";

/// Why a request cannot be sent to Anthropic exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Untranslatable(pub String);

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
    /// Anthropic's own sampling setting, as a client of the
    /// Anthropic-compatible endpoint sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Extended thinking (from OpenAI's `reasoning_effort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicMessage {
    pub role: String,
    pub content: Vec<Value>,
}

/// OpenAI parameters that change the shape of the answer and have no
/// Anthropic equivalent: a request using them is not sent to Anthropic.
/// (Sampling hints without an equivalent — `seed`, `presence_penalty`,
/// `frequency_penalty`, `logit_bias`-free `service_tier`, `store` — are dropped.)
fn refuse_extras(req: &ChatRequest) -> Result<(), Untranslatable> {
    let e = &req.extra;
    if e.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(Untranslatable("Anthropic returns one choice per request (n > 1)".into()));
    }
    if e.get("logprobs").and_then(Value::as_bool) == Some(true) || e.get("top_logprobs").is_some_and(|v| !v.is_null()) {
        return Err(Untranslatable("Anthropic returns no log probabilities".into()));
    }
    if e.get("logit_bias").is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty())) {
        return Err(Untranslatable("Anthropic has no logit_bias".into()));
    }
    if e.get("audio").is_some_and(|v| !v.is_null())
        || e.get("modalities").and_then(Value::as_array).is_some_and(|m| m.iter().any(|x| x != "text"))
    {
        return Err(Untranslatable("Anthropic answers in text only (audio output was asked for)".into()));
    }
    if e.get("prediction").is_some_and(|v| !v.is_null()) {
        return Err(Untranslatable("Anthropic has no predicted outputs".into()));
    }
    if e.get("functions").is_some() || e.get("function_call").is_some() {
        return Err(Untranslatable("the legacy functions / function_call parameters are not translated; use tools".into()));
    }
    Ok(())
}

/// Translates an OpenAI chat request. System (and developer) messages become
/// `system` blocks; consecutive messages of one role are merged (a `tool`
/// message is a user turn of `tool_result` blocks); image parts become base64
/// (data URLs) or URL image sources; `cache_control` on a part is kept.
pub fn to_messages_request(req: &ChatRequest, tables: &TranslationTables) -> Result<MessagesRequest, Untranslatable> {
    refuse_extras(req)?;
    let mut system = Vec::new();
    let mut messages: Vec<AnthropicMessage> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let (role, blocks) = match m.role.as_str() {
            "system" | "developer" => {
                system.extend(content_blocks(&m.content, i)?);
                continue;
            }
            "assistant" => ("assistant", assistant_blocks(m, i)?),
            "tool" => ("user", vec![tool_result(m, i)?]),
            "user" => ("user", content_blocks(&m.content, i)?),
            "function" => return Err(Untranslatable("legacy `function` messages are not translated; use tools".into())),
            other => return Err(Untranslatable(format!("messages[{i}]: unknown role '{other}'"))),
        };
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(AnthropicMessage { role: role.to_string(), content: blocks }),
        }
    }
    let (mut tools, mut tool_choice) = tools_of(req)?;
    let structured = structured_tool(req)?;
    if let Some(tool) = structured {
        if !tools.is_empty() {
            return Err(Untranslatable(
                "response_format together with tools: Anthropic's forced-tool form of structured output would stop the model calling the client's tools".into(),
            ));
        }
        tools.push(tool);
        tool_choice = Some(json!({"type": "tool", "name": STRUCTURED_TOOL}));
    }
    // Thinking: Anthropic's own `thinking` if the client sent it, else the
    // table's budget for `reasoning_effort`.
    let mut thinking = match req.extra.get("thinking") {
        Some(t) if t.is_object() => Some(t.clone()),
        _ => match req.extra.get("reasoning_effort").and_then(Value::as_str) {
            Some(effort) => match tables.budget(effort) {
                Some(b) => Some(json!({"type": "enabled", "budget_tokens": b})),
                None if effort == "none" => None,
                None => return Err(Untranslatable(format!("reasoning_effort '{effort}' has no thinking budget in the translation table"))),
            },
            None => None,
        },
    };
    // With thinking on, Anthropic wants an assistant turn that used tools to
    // start with its signed thinking block. A conversation begun elsewhere
    // (a failover from OpenAI) has none: that turn is answered without thinking.
    if thinking.is_some() && last_tool_turn_lacks_thinking(&messages) {
        thinking = None;
    }
    // Thinking also forbids a forced tool choice.
    if thinking.is_some()
        && tool_choice.as_ref().and_then(|c| c.get("type")).and_then(Value::as_str).is_some_and(|t| t == "any" || t == "tool")
    {
        thinking = None;
    }
    let budget = thinking.as_ref().and_then(|t| t.get("budget_tokens")).and_then(Value::as_u64);
    let mut max_tokens = req.max_output().unwrap_or(DEFAULT_MAX_TOKENS);
    if let Some(b) = budget {
        // The budget counts within max_tokens and must stay below it.
        max_tokens = max_tokens.max(b.saturating_add(DEFAULT_MAX_TOKENS));
    }
    Ok(MessagesRequest {
        model: req.model.clone(),
        max_tokens,
        messages,
        system,
        // OpenAI allows 0..2, Anthropic 0..1; thinking requires the default temperature.
        temperature: if thinking.is_some() { None } else { req.temperature.map(|t| t.clamp(0.0, 1.0)) },
        thinking,
        top_p: req.top_p,
        top_k: req.extra.get("top_k").and_then(Value::as_u64),
        stop_sequences: req.stop_sequences(),
        stream: req.is_stream(),
        metadata: req.user.as_ref().map(|u| json!({ "user_id": u })),
        tools,
        tool_choice,
    })
}

fn last_tool_turn_lacks_thinking(messages: &[AnthropicMessage]) -> bool {
    let Some(last_assistant) = messages.iter().rev().find(|m| m.role == "assistant") else { return false };
    let used_tools = last_assistant.content.iter().any(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"));
    let starts_thinking = last_assistant
        .content
        .first()
        .and_then(|b| b.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "thinking" || t == "redacted_thinking");
    used_tools && !starts_thinking
}

/// OpenAI `tools` / `tool_choice` / `parallel_tool_calls` → Anthropic's.
fn tools_of(req: &ChatRequest) -> Result<(Vec<Value>, Option<Value>), Untranslatable> {
    let mut tools = Vec::new();
    if let Some(list) = req.extra.get("tools").filter(|v| !v.is_null()) {
        let Some(list) = list.as_array() else { return Err(Untranslatable("tools must be an array".into())) };
        for (i, t) in list.iter().enumerate() {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(Untranslatable(format!("tools[{i}]: only function tools have an Anthropic equivalent")));
            }
            let f = t.get("function").ok_or_else(|| Untranslatable(format!("tools[{i}] has no function")))?;
            let name = f.get("name").and_then(Value::as_str).ok_or_else(|| Untranslatable(format!("tools[{i}].function has no name")))?;
            let mut tool = Map::new();
            tool.insert("name".into(), json!(name));
            if let Some(d) = f.get("description").and_then(Value::as_str) {
                tool.insert("description".into(), json!(d));
            }
            let schema = f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            tool.insert("input_schema".into(), schema);
            if let Some(cc) = t.get("cache_control") {
                tool.insert("cache_control".into(), cc.clone());
            }
            tools.push(Value::Object(tool));
        }
    }
    let mut choice = match req.extra.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "none" => Some(json!({"type": "none"})),
            "required" => Some(json!({"type": "any"})),
            other => return Err(Untranslatable(format!("tool_choice '{other}' has no Anthropic equivalent"))),
        },
        Some(obj) => match obj.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => Some(json!({"type": "tool", "name": name})),
            None => return Err(Untranslatable("tool_choice names no function".into())),
        },
    };
    if tools.is_empty() {
        // Anthropic refuses a tool_choice without tools; "none" without tools is the default.
        return Ok((tools, None));
    }
    if req.extra.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c.get("type").and_then(Value::as_str) != Some("none")
            && let Some(o) = c.as_object_mut()
        {
            o.insert("disable_parallel_tool_use".into(), json!(true));
        }
    }
    Ok((tools, choice))
}

/// `response_format` → the forced tool that carries the answer.
fn structured_tool(req: &ChatRequest) -> Result<Option<Value>, Untranslatable> {
    let Some(rf) = req.extra.get("response_format").filter(|v| !v.is_null()) else { return Ok(None) };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({
            "name": STRUCTURED_TOOL,
            "description": "Answer with a JSON object.",
            "input_schema": {"type": "object", "additionalProperties": true}
        }))),
        Some("json_schema") => {
            let js = rf.get("json_schema").ok_or_else(|| Untranslatable("response_format json_schema without json_schema".into()))?;
            let schema = js.get("schema").cloned().unwrap_or_else(|| json!({"type": "object"}));
            if schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(Untranslatable("a response_format schema whose root is not an object has no Anthropic equivalent".into()));
            }
            let name = js.get("name").and_then(Value::as_str).unwrap_or("response");
            let description = js.get("description").and_then(Value::as_str).unwrap_or("");
            Ok(Some(json!({
                "name": STRUCTURED_TOOL,
                "description": format!("Answer with the JSON object '{name}'. {description}").trim_end().to_string(),
                "input_schema": schema
            })))
        }
        other => Err(Untranslatable(format!("response_format {other:?} has no Anthropic equivalent"))),
    }
}

fn assistant_blocks(m: &super::super::ChatMessage, i: usize) -> Result<Vec<Value>, Untranslatable> {
    let mut blocks = Vec::new();
    // The signed thinking blocks of an earlier Anthropic answer go back first, unchanged.
    if let Some(tb) = m.extra.get(THINKING_BLOCKS).and_then(Value::as_array) {
        for b in tb {
            match b.get("type").and_then(Value::as_str) {
                Some("thinking") | Some("redacted_thinking") => blocks.push(b.clone()),
                _ => return Err(Untranslatable(format!("messages[{i}].{THINKING_BLOCKS}: not an Anthropic thinking block"))),
            }
        }
    }
    blocks.extend(content_blocks(&m.content, i)?);
    if let Some(calls) = m.extra.get("tool_calls").filter(|v| !v.is_null()) {
        let Some(calls) = calls.as_array() else { return Err(Untranslatable(format!("messages[{i}].tool_calls must be an array"))) };
        for (j, c) in calls.iter().enumerate() {
            let id =
                c.get("id").and_then(Value::as_str).ok_or_else(|| Untranslatable(format!("messages[{i}].tool_calls[{j}] has no id")))?;
            let f = c.get("function").ok_or_else(|| Untranslatable(format!("messages[{i}].tool_calls[{j}] is not a function call")))?;
            let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
            let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
            let input: Value = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args).map_err(|_| {
                    Untranslatable(format!("messages[{i}].tool_calls[{j}].function.arguments is not JSON; Anthropic needs an object"))
                })?
            };
            if !input.is_object() {
                return Err(Untranslatable(format!("messages[{i}].tool_calls[{j}].function.arguments is not a JSON object")));
            }
            blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
    }
    Ok(blocks)
}

fn tool_result(m: &super::super::ChatMessage, i: usize) -> Result<Value, Untranslatable> {
    let id = m
        .extra
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| Untranslatable(format!("messages[{i}]: a tool message needs tool_call_id")))?;
    let content = match &m.content {
        Value::String(s) => json!(s),
        Value::Array(_) => Value::Array(content_blocks(&m.content, i)?),
        Value::Null => json!(""),
        other => json!(other.to_string()),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

fn content_blocks(content: &Value, i: usize) -> Result<Vec<Value>, Untranslatable> {
    match content {
        Value::String(s) if !s.is_empty() => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts.iter().map(|p| part_to_block(p, i)).collect(),
        _ => Ok(Vec::new()),
    }
}

fn part_to_block(p: &Value, i: usize) -> Result<Value, Untranslatable> {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut block = match kind {
        "text" => json!({"type": "text", "text": p.get("text").and_then(Value::as_str).unwrap_or_default()}),
        "image_url" => {
            let url = p
                .get("image_url")
                .and_then(|i| i.get("url").or(Some(i)))
                .and_then(Value::as_str)
                .ok_or_else(|| Untranslatable(format!("messages[{i}]: an image_url part has no url")))?;
            image_source(url).ok_or_else(|| Untranslatable(format!("messages[{i}]: a data URL image that is not base64")))?
        }
        // Anthropic reads PDFs too, but OpenAI's file parts refer to uploaded file ids.
        other => return Err(Untranslatable(format!("messages[{i}]: content parts of type '{other}' have no Anthropic equivalent"))),
    };
    if let (Some(cc), Some(obj)) = (p.get("cache_control"), block.as_object_mut()) {
        obj.insert("cache_control".into(), cc.clone());
    }
    Ok(block)
}

/// An image part's URL as an Anthropic image block. OpenAI's `detail` has no
/// Anthropic counterpart (Anthropic always reads the image at the resolution
/// it needs) and is dropped.
fn image_source(url: &str) -> Option<Value> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,")?;
        return Some(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}));
    }
    Some(json!({"type": "image", "source": {"type": "url", "url": url}}))
}
