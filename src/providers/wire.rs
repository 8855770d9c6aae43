//! OpenAI-format wire types that the gateway speaks with its clients: chat and
//! embeddings requests (lossless: unknown fields are kept and forwarded), the
//! usage objects of OpenAI and Anthropic, and their normalisation into
//! [`TokenUsage`].

use super::passthrough::OriginalBody;
use crate::domain::TokenUsage;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The most tokens one figure of a provider's usage object may say. Far
/// above any real request (the largest context windows are about two
/// million tokens), far below what would overflow a sum of ten million
/// ledger rows in SQLite's 64-bit integers.
pub const MAX_REPORTED_TOKENS: u64 = 100_000_000;

/// A token figure as a provider reported it, bounded: negative numbers count
/// as 0, fractions are cut, anything above [`MAX_REPORTED_TOKENS`] (u64::MAX,
/// 1e30) counts as that maximum, and a value that is not a number (a string,
/// an object) as absent. A provider's nonsense never fails the parse of an
/// answer that was paid for, nor wraps a sum.
pub fn bound_tokens(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    let bounded = if let Some(u) = n.as_u64() {
        u.min(MAX_REPORTED_TOKENS)
    } else if n.as_i64().is_some() {
        0
    } else {
        match n.as_f64() {
            Some(f) if f.is_finite() && f > 0.0 => f.min(MAX_REPORTED_TOKENS as f64) as u64,
            _ => 0,
        }
    };
    if n.as_u64() != Some(bounded) {
        tracing::warn!(reported = %n, counted = bounded, "a provider reported an out-of-range token figure; bounded");
    }
    Some(bounded)
}

/// A usage figure the answer did not report (or not as a number) is
/// `estimate`d, and the usage marked estimated.
fn estimate_missing(figure: &mut u64, reported: Option<u64>, estimate: impl FnOnce() -> u64, estimated: &mut bool) {
    if reported.is_none() {
        *figure = estimate();
        *estimated = true;
    }
}

/// A field that may be `null`, read as its default.
pub fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn tokens<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(bound_tokens))
}

/// The extension fields of an OpenAI-shaped assistant message that carry an
/// Anthropic answer's thinking (README, "What is translated").
pub const GATEWAY_MESSAGE_EXTENSIONS: &[&str] = &["reasoning_content", "thinking_blocks"];

/// Request fields only Anthropic takes, which the Anthropic-compatible
/// endpoint keeps for an Anthropic route (`top_k`; `thinking` with its exact
/// budget, beside the nearest `reasoning_effort`): OpenAI and Azure, which
/// refuse unknown parameters, are not sent them.
pub const GATEWAY_REQUEST_EXTENSIONS: &[&str] = &["top_k", "thinking"];

/// An OpenAI `POST /v1/chat/completions` body. Fields we look at are typed;
/// everything else stays in `extra` and is forwarded unchanged to OpenAI/Azure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// A string or an array of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The client's bytes, when the request was read from a client, for
    /// forwarding them unchanged (`providers::passthrough`). Never serialised.
    #[serde(skip)]
    pub original: OriginalBody,
}

impl ChatRequest {
    /// A minimal request: one user message.
    pub fn simple(model: &str, user_text: &str) -> Self {
        Self {
            model: model.to_string(),
            messages: vec![ChatMessage::text("user", user_text)],
            stream: None,
            stream_options: None,
            max_tokens: None,
            max_completion_tokens: None,
            temperature: None,
            top_p: None,
            stop: None,
            user: None,
            extra: Map::new(),
            original: OriginalBody::default(),
        }
    }

    /// Keeps `bytes`, the body this request was parsed from, so that an
    /// OpenAI-compatible upstream gets them as they are.
    pub fn keep_original(&mut self, bytes: Bytes) {
        self.original = OriginalBody::of(self, bytes);
    }

    /// Drops the client's bytes: code that changes a field other than
    /// `model`, `stream` or `stream_options` calls this, so that the request
    /// is serialised from its fields.
    pub fn forget_original(&mut self) {
        self.original = OriginalBody::default();
    }

    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Whether the client asked for the final usage chunk of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true)
    }

    /// The output cap the client set (`max_completion_tokens` wins).
    pub fn max_output(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Whether the client asked for structured output (`response_format`
    /// `json_schema` or `json_object`).
    pub fn wants_structured_output(&self) -> bool {
        self.extra
            .get("response_format")
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "json_schema" || t == "json_object")
    }

    /// Whether the request has tools.
    pub fn has_tools(&self) -> bool {
        self.extra.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty())
    }

    /// Whether the request carries Anthropic-only fields
    /// ([`GATEWAY_REQUEST_EXTENSIONS`]) or an assistant message the gateway's
    /// extension fields of an earlier Anthropic answer (`reasoning_content`,
    /// `thinking_blocks`), which OpenAI and Azure are not sent.
    pub fn has_gateway_extensions(&self) -> bool {
        GATEWAY_REQUEST_EXTENSIONS.iter().any(|f| self.extra.contains_key(*f))
            || self.messages.iter().any(|m| GATEWAY_MESSAGE_EXTENSIONS.iter().any(|f| m.extra.contains_key(*f)))
    }

    /// Removes the fields [`ChatRequest::has_gateway_extensions`] looks for.
    pub fn strip_gateway_extensions(&mut self) {
        for f in GATEWAY_REQUEST_EXTENSIONS {
            self.extra.remove(*f);
        }
        for m in &mut self.messages {
            for f in GATEWAY_MESSAGE_EXTENSIONS {
                m.extra.remove(*f);
            }
        }
    }

    /// Stop sequences, whether given as a string or an array.
    pub fn stop_sequences(&self) -> Vec<String> {
        match &self.stop {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    }
}

/// One chat message. `content` is a string, an array of parts
/// (`{"type":"text"}`, `{"type":"image_url"}`, …) or null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatMessage {
    pub fn text(role: &str, text: &str) -> Self {
        Self { role: role.to_string(), content: Value::String(text.to_string()), extra: Map::new() }
    }

    /// Calls `f` with each piece of text of the message (string content or text parts).
    pub fn for_each_text(&self, mut f: impl FnMut(&str)) {
        match &self.content {
            Value::String(s) => f(s),
            Value::Array(parts) => {
                for p in parts {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        f(t);
                    }
                }
            }
            _ => {}
        }
    }

    /// Number of image parts.
    pub fn image_count(&self) -> u64 {
        match &self.content {
            Value::Array(parts) => parts.iter().filter(|p| p.get("type").and_then(Value::as_str) == Some("image_url")).count() as u64,
            _ => 0,
        }
    }
}

/// An OpenAI `POST /v1/embeddings` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    /// A string, an array of strings, or token arrays.
    pub input: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EmbeddingsRequest {
    pub fn for_each_text(&self, mut f: impl FnMut(&str)) {
        match &self.input {
            Value::String(s) => f(s),
            Value::Array(items) => {
                for i in items {
                    if let Some(s) = i.as_str() {
                        f(s)
                    }
                }
            }
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default, deserialize_with = "tokens")]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    #[serde(default, deserialize_with = "tokens")]
    pub reasoning_tokens: Option<u64>,
}

/// OpenAI's `usage` object: `prompt_tokens` INCLUDE the cached tokens and
/// `completion_tokens` include the reasoning tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAiUsage {
    #[serde(default, deserialize_with = "tokens")]
    pub prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "tokens")]
    pub completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "tokens")]
    pub total_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

impl OpenAiUsage {
    pub fn normalise(&self) -> TokenUsage {
        let prompt = self.prompt_tokens.unwrap_or(0);
        let cached = self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0).min(prompt);
        let output = self.completion_tokens.unwrap_or(0);
        let reasoning = self.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0).min(output);
        TokenUsage { input: prompt - cached, output, cached_read: cached, cache_write: 0, reasoning, estimated: false }
    }

    /// The usage as reported, with each of its two figures that the answer
    /// left out or sent as something other than a number (see
    /// [`bound_tokens`]) estimated instead, and the usage then marked
    /// estimated: a provider's gap never makes a paid call free. (No usage at
    /// all is `OpenAiUsage::default()`: both estimated.)
    pub fn normalise_or(&self, prompt: impl FnOnce() -> u64, completion: impl FnOnce() -> u64) -> TokenUsage {
        let mut u = self.normalise();
        estimate_missing(&mut u.input, self.prompt_tokens, prompt, &mut u.estimated);
        // (Reasoning is already 0 without a completion count: it is capped by it.)
        estimate_missing(&mut u.output, self.completion_tokens, completion, &mut u.estimated);
        u
    }

    /// The OpenAI usage object that describes a normalised usage (used when
    /// translating Anthropic answers).
    pub fn from_normalised(u: &TokenUsage) -> Self {
        let prompt = u.prompt_total();
        Self {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(u.output),
            total_tokens: Some(prompt.saturating_add(u.output)),
            prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: Some(u.cached_read) }),
            completion_tokens_details: Some(CompletionTokensDetails { reasoning_tokens: Some(u.reasoning) }),
        }
    }
}

/// Anthropic's `usage` object: `input_tokens` EXCLUDE cache reads and writes.
/// In a stream, `message_delta` carries cumulative figures: later values
/// replace earlier ones, field by field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default, deserialize_with = "tokens")]
    pub input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "tokens")]
    pub output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "tokens")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "tokens")]
    pub cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Keeps the latest value of every field present in `newer` (cumulative, not added).
    pub fn update(&mut self, newer: &AnthropicUsage) {
        self.input_tokens = newer.input_tokens.or(self.input_tokens);
        self.output_tokens = newer.output_tokens.or(self.output_tokens);
        self.cache_read_input_tokens = newer.cache_read_input_tokens.or(self.cache_read_input_tokens);
        self.cache_creation_input_tokens = newer.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
    }

    pub fn normalise(&self) -> TokenUsage {
        TokenUsage {
            input: self.input_tokens.unwrap_or(0),
            output: self.output_tokens.unwrap_or(0),
            cached_read: self.cache_read_input_tokens.unwrap_or(0),
            cache_write: self.cache_creation_input_tokens.unwrap_or(0),
            reasoning: 0,
            estimated: false,
        }
    }

    /// As [`OpenAiUsage::normalise_or`]: the input or output figure an answer
    /// left out, or sent as something other than a number, is estimated.
    pub fn normalise_or(&self, input: impl FnOnce() -> u64, output: impl FnOnce() -> u64) -> TokenUsage {
        let mut u = self.normalise();
        estimate_missing(&mut u.input, self.input_tokens, input, &mut u.estimated);
        estimate_missing(&mut u.output, self.output_tokens, output, &mut u.estimated);
        u
    }
}

/// One model offered by an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    #[serde(default)]
    pub owned_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_request_is_lossless() {
        let raw = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi","name":"ann"}],"seed":7,"response_format":{"type":"json_object"},"stop":["x","y"]}"#;
        let r: ChatRequest = serde_json::from_str(raw).unwrap();
        assert_eq!(r.extra["seed"], 7);
        assert_eq!(r.messages[0].extra["name"], "ann");
        assert_eq!(r.stop_sequences(), vec!["x", "y"]);
        let back: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(raw).unwrap());
    }

    #[test]
    fn usage_normalisation() {
        // OpenAI: 1000 prompt of which 800 cached; 300 completion of which 200 reasoning.
        let u: OpenAiUsage = serde_json::from_str(
            r#"{"prompt_tokens":1000,"completion_tokens":300,"total_tokens":1300,"prompt_tokens_details":{"cached_tokens":800},"completion_tokens_details":{"reasoning_tokens":200}}"#,
        )
        .unwrap();
        let n = u.normalise();
        assert_eq!((n.input, n.cached_read, n.output, n.reasoning), (200, 800, 300, 200));
        // Anthropic: input excludes cache reads and writes.
        let a = AnthropicUsage {
            input_tokens: Some(10),
            output_tokens: Some(5),
            cache_read_input_tokens: Some(100),
            cache_creation_input_tokens: Some(50),
        };
        let n = a.normalise();
        assert_eq!((n.input, n.cached_read, n.cache_write, n.prompt_total()), (10, 100, 50, 160));
        // Malformed: cached larger than prompt does not underflow.
        let bad = OpenAiUsage {
            prompt_tokens: Some(5),
            prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: Some(9) }),
            ..Default::default()
        };
        assert_eq!(bad.normalise().input, 0);
    }

    #[test]
    fn provider_figures_are_bounded_and_never_fail_the_parse() {
        let u: OpenAiUsage = serde_json::from_str(
            r#"{"prompt_tokens":18446744073709551615,"completion_tokens":-5,"total_tokens":1e300,"prompt_tokens_details":{"cached_tokens":"many"},"completion_tokens_details":{"reasoning_tokens":2.7}}"#,
        )
        .unwrap();
        assert_eq!(u.prompt_tokens, Some(MAX_REPORTED_TOKENS));
        assert_eq!(u.completion_tokens, Some(0));
        assert_eq!(u.total_tokens, Some(MAX_REPORTED_TOKENS));
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, None);
        assert_eq!(u.completion_tokens_details.unwrap().reasoning_tokens, Some(2));
        let n = u.normalise();
        assert_eq!((n.input, n.output, n.total()), (MAX_REPORTED_TOKENS, 0, MAX_REPORTED_TOKENS));
        let a: AnthropicUsage = serde_json::from_str(
            r#"{"input_tokens":-1,"output_tokens":99999999999999999999,"cache_read_input_tokens":null,"cache_creation_input_tokens":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(
            (a.input_tokens, a.output_tokens, a.cache_read_input_tokens, a.cache_creation_input_tokens),
            (Some(0), Some(MAX_REPORTED_TOKENS), None, None)
        );
        let max = TokenUsage { input: u64::MAX, output: u64::MAX, ..TokenUsage::default() };
        assert_eq!(OpenAiUsage::from_normalised(&max).total_tokens, Some(u64::MAX));
    }

    #[test]
    fn anthropic_stream_usage_is_cumulative() {
        let mut u = AnthropicUsage { input_tokens: Some(25), output_tokens: Some(1), ..Default::default() };
        u.update(&AnthropicUsage { output_tokens: Some(15), ..Default::default() });
        u.update(&AnthropicUsage { output_tokens: Some(40), ..Default::default() });
        assert_eq!(u.normalise().output, 40);
        assert_eq!(u.normalise().input, 25);
    }
}
