//! OpenAI chat-completions dialect, shared by OpenAI and Azure OpenAI: reading
//! plain answers and passing `chat.completion.chunk` streams through while
//! collecting content, finish reason and usage.

use super::error::ProviderError;
use super::token_count;
use super::translate::{Step, StreamProgress, StreamTranslator};
use super::wire::OpenAiUsage;
use bytes::Bytes;
use serde::Deserialize;

pub const NAME: &str = "OpenAI";

/// A choice's message (or a chunk's delta); `S` is `String` where the text
/// is kept, [`AnyStr`] where it is only checked.
#[derive(Debug, Deserialize)]
struct MessagePeek<S> {
    #[serde(default)]
    content: Option<S>,
}

/// One choice of an answer or a chunk (`S` as in [`MessagePeek`]).
#[derive(Debug, Deserialize)]
struct ChoicePeek<S> {
    #[serde(default)]
    message: Option<MessagePeek<S>>,
    #[serde(default)]
    delta: Option<MessagePeek<S>>,
    #[serde(default)]
    finish_reason: Option<S>,
}

#[derive(Debug, Deserialize)]
struct CompletionPeek {
    #[serde(default)]
    #[allow(dead_code)] // checked, not kept
    id: Option<AnyStr>,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<ChoicePeek<String>>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// What the router needs from a plain `chat.completion` answer: the model
/// it reports (for pricing) and its usage. The answer's text is read only
/// when asked for ([`first_choice`]): the body goes to the client unchanged.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub model: String,
    pub usage: Option<OpenAiUsage>,
}

/// A plain answer as [`parse_chat`] reads it: the model borrowed from the
/// body, the usage, and the shape of the rest checked without keeping it
/// (the id and every choice's message and finish reason must be what a
/// `chat.completion` has, so that a malformed answer is a provider error,
/// not a client's surprise).
#[derive(Deserialize)]
struct AnswerPeek<'a> {
    #[serde(default)]
    #[allow(dead_code)] // checked, not kept
    id: Option<AnyStr>,
    #[serde(default, borrow)]
    model: std::borrow::Cow<'a, str>,
    #[serde(default)]
    #[allow(dead_code)] // checked, not kept
    choices: Checked<ChoicePeek<AnyStr>>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

/// A JSON string, checked and not kept (no allocation).
#[derive(Debug, Default)]
struct AnyStr;

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = AnyStr;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<AnyStr, E> {
                Ok(AnyStr)
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON array whose every element reads as a `T`, checked and not kept
/// (no allocation).
struct Checked<T>(std::marker::PhantomData<T>);

impl<T> Default for Checked<T> {
    fn default() -> Self {
        Checked(std::marker::PhantomData)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Checked<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Checked<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked<T>, A::Error> {
                while seq.next_element::<T>()?.is_some() {}
                Ok(Checked::default())
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// Reads a plain `chat.completion` answer (see [`Parsed`]); an answer that is
/// not one is the provider's [`ProviderError::InvalidResponse`].
pub fn parse_chat(provider: &'static str, body: &[u8]) -> Result<Parsed, ProviderError> {
    let c: AnswerPeek<'_> = crate::domain::json_from_bytes(body)
        .map_err(|e| ProviderError::InvalidResponse { provider, message: format!("not a chat completion: {e}") })?;
    Ok(Parsed { model: c.model.into_owned(), usage: c.usage })
}

/// The first choice's text and finish reason of an OpenAI-format
/// `chat.completion` (empty and `None` where it has none).
pub fn first_choice(body: &[u8]) -> (String, Option<String>) {
    let first = serde_json::from_slice::<CompletionPeek>(body).ok().and_then(|c| c.choices.into_iter().next());
    match first {
        Some(ch) => (ch.message.and_then(|m| m.content).unwrap_or_default(), ch.finish_reason),
        None => (String::new(), None),
    }
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
        let usage = self.usage.unwrap_or_default().normalise_or(|| prompt_estimate, || token_count::count_text(&self.content));
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
    fn a_plain_answer_is_read_for_its_model_and_usage_and_its_shape_checked() {
        let ok = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Line one\nline \"two\""},"finish_reason":"stop"},
                       {"index":1,"message":{"role":"assistant","content":null},"finish_reason":null}],
            "usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#;
        let p = parse_chat(NAME, ok).unwrap();
        assert_eq!(p.model, "gpt-4o-2024-08-06");
        assert_eq!(p.usage.unwrap().normalise().output, 4);
        assert_eq!(first_choice(ok), ("Line one\nline \"two\"".to_string(), Some("stop".to_string())));
        // Only what is there: no model, no usage, no choices.
        let bare = parse_chat(NAME, br#"{"choices":[]}"#).unwrap();
        assert_eq!((bare.model.as_str(), bare.usage.is_none()), ("", true));
        assert_eq!(first_choice(br#"{"choices":[]}"#), (String::new(), None));
        assert_eq!(first_choice(b"not json"), (String::new(), None));
        // Not a chat completion: the provider's error, whichever part is wrong.
        for bad in [
            &b"not json"[..],
            br#"{"choices":5}"#,
            br#"{"choices":[{"message":{"content":7}}]}"#,
            br#"{"choices":[{"message":"hi"}]}"#,
            br#"{"choices":[{"finish_reason":1}]}"#,
            br#"{"choices":[{"delta":{"content":[]}}]}"#,
            br#"{"id":12,"choices":[]}"#,
            br#"{"model":null,"choices":[]}"#,
        ] {
            let e = parse_chat(NAME, bad).unwrap_err();
            assert!(matches!(e, ProviderError::InvalidResponse { .. }), "{}: {e:?}", String::from_utf8_lossy(bad));
        }
    }

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
        // A usage chunk without a readable completion count: the text stands in for it.
        let mut t = OpenAiTranslator::new(NAME, "gpt-4o", false);
        t.on_event(r#"{"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello there"}}]}"#, "k", &mut out);
        t.on_event(r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":"two"}}"#, "k", &mut out);
        let odd = t.progress(42);
        assert!(odd.usage.estimated);
        assert_eq!((odd.usage.input, odd.usage.output), (9, token_count::count_text("Hello there")));
    }
}
