//! OpenAI chat-completions dialect, shared by OpenAI and Azure OpenAI: reading
//! plain answers and passing `chat.completion.chunk` streams through while
//! collecting content, finish reason and usage.

use super::error::ProviderError;
use super::token_count;
use super::translate::{Step, StreamProgress, StreamTranslator};
use super::wire::OpenAiUsage;
use crate::domain::TokenUsage;
use bytes::Bytes;
use serde::Deserialize;

pub const NAME: &str = "OpenAI";

#[derive(Debug, Deserialize)]
struct MessagePeek {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoicePeek {
    #[serde(default)]
    message: Option<MessagePeek>,
    #[serde(default)]
    delta: Option<MessagePeek>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CompletionPeek {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<ChoicePeek>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// The parts of a plain `chat.completion` answer we need.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub id: String,
    pub model: String,
    pub content: String,
    pub finish_reason: Option<String>,
    pub usage: Option<OpenAiUsage>,
}

pub fn parse_chat(provider: &'static str, body: &[u8]) -> Result<Parsed, ProviderError> {
    let c: CompletionPeek = serde_json::from_slice(body)
        .map_err(|e| ProviderError::InvalidResponse { provider, message: format!("not a chat completion: {e}") })?;
    let first = c.choices.into_iter().next();
    let (content, finish_reason) = match first {
        Some(ch) => (ch.message.and_then(|m| m.content).unwrap_or_default(), ch.finish_reason),
        None => (String::new(), None),
    };
    Ok(Parsed { id: c.id, model: c.model, content, finish_reason, usage: c.usage })
}

/// Passes an OpenAI chunk stream through, collecting what the ledger needs.
/// The final usage-only chunk is forwarded only when the client asked for it
/// (we always ask upstream, with `stream_options.include_usage`).
///
/// A cut stream's usage: the prompt estimate as input and the tokenizer's
/// count of the content received as output, unless the usage chunk arrived.
#[derive(Debug)]
pub struct OpenAiTranslator {
    pub provider: &'static str,
    pub model: String,
    pub content: String,
    pub finish: Option<String>,
    pub usage: Option<OpenAiUsage>,
    forward_usage: bool,
}

impl OpenAiTranslator {
    pub fn new(provider: &'static str, model: &str, forward_usage: bool) -> Self {
        Self { provider, model: model.to_string(), content: String::new(), finish: None, usage: None, forward_usage }
    }
}

impl StreamTranslator for OpenAiTranslator {
    fn provider(&self) -> &'static str {
        self.provider
    }

    fn progress(&self, prompt_estimate: u64) -> StreamProgress {
        let usage = match self.usage {
            Some(u) => u.normalise(),
            None => TokenUsage {
                input: prompt_estimate,
                output: token_count::count_text(&self.content),
                estimated: true,
                ..TokenUsage::default()
            },
        };
        StreamProgress { model: self.model.clone(), content: self.content.clone(), finish_reason: self.finish.clone(), usage }
    }

    fn on_event(&mut self, data: &str, key: &str, out: &mut Vec<Bytes>) -> Step {
        if data.trim() == "[DONE]" {
            out.push(Bytes::from_static(b"data: [DONE]\n\n"));
            return Step::Done;
        }
        let Ok(c) = serde_json::from_str::<CompletionPeek>(data) else {
            return Step::Error(ProviderError::InvalidResponse { provider: self.provider, message: "unreadable stream chunk".into() });
        };
        let forward = |out: &mut Vec<Bytes>| {
            let mut b = Vec::with_capacity(data.len() + 8);
            b.extend_from_slice(b"data: ");
            b.extend_from_slice(data.as_bytes());
            b.extend_from_slice(b"\n\n");
            out.push(Bytes::from(b));
        };
        if c.error.is_some() {
            let e = ProviderError::from_stream_error(self.provider, data.as_bytes(), key);
            forward(out);
            return Step::Error(e);
        }
        if !c.model.is_empty() {
            self.model = c.model;
        }
        let usage_only = c.choices.is_empty() && c.usage.is_some();
        for ch in c.choices {
            if let Some(t) = ch.delta.and_then(|d| d.content) {
                self.content.push_str(&t);
            }
            if ch.finish_reason.is_some() {
                self.finish = ch.finish_reason;
            }
        }
        if c.usage.is_some() {
            self.usage = c.usage;
        }
        if !usage_only || self.forward_usage {
            forward(out);
        }
        Step::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_passthrough_hides_usage_chunk_unless_asked() {
        let mut t = OpenAiTranslator::new(NAME, "gpt-4o", false);
        let mut out = Vec::new();
        t.on_event(
            r#"{"id":"c","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#,
            "k",
            &mut out,
        );
        t.on_event(r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#, "k", &mut out);
        t.on_event(r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}"#, "k", &mut out);
        assert_eq!(t.on_event("[DONE]", "k", &mut out), Step::Done);
        assert_eq!(out.len(), 3);
        assert_eq!((t.content.as_str(), t.finish.as_deref(), t.model.as_str()), ("Hi", Some("stop"), "gpt-4o-2024-08-06"));
        assert_eq!(t.usage.unwrap().normalise().input, 9);
        assert!(matches!(t.on_event("{oops", "k", &mut out), Step::Error(_)));
    }

    #[test]
    fn a_cut_stream_estimates_its_usage_and_a_finished_one_reports_the_providers() {
        let mut t = OpenAiTranslator::new("Azure OpenAI", "gpt-4o", false);
        assert_eq!(t.provider(), "Azure OpenAI");
        let mut out = Vec::new();
        t.on_event(r#"{"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello there"}}]}"#, "k", &mut out);
        let cut = t.progress(42);
        assert!(cut.usage.estimated);
        assert_eq!(cut.usage.input, 42, "the prompt estimate stands in for the input");
        assert_eq!(cut.usage.output, token_count::count_text("Hello there"));
        assert_eq!((cut.model.as_str(), cut.content.as_str(), cut.finish_reason), ("gpt-4o", "Hello there", None));
        t.on_event(r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#, "k", &mut out);
        let done = t.progress(42);
        assert!(!done.usage.estimated);
        assert_eq!((done.usage.input, done.usage.output), (9, 2));
    }
}
