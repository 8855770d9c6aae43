//! The contract between a provider's stream dialect and [`super::ChatStream`]:
//! the [`Step`] one upstream event means, the [`StreamTranslator`] trait each
//! dialect implements (OpenAI and Azure in `openai`, Anthropic in
//! `anthropic`), and the [`StreamProgress`] a translator reports.
//!
//! A leaf module: it imports no provider module and not `stream`, so the
//! dialects and the stream reader both depend on it and not on each other.

use super::error::ProviderError;
use crate::domain::TokenUsage;
use bytes::Bytes;

/// What one upstream event meant to a translator.
#[derive(Debug, PartialEq)]
pub enum Step {
    Continue,
    Done,
    Error(ProviderError),
}

/// What a stream has carried so far.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamProgress {
    pub model: String,
    pub content: String,
    pub finish_reason: Option<String>,
    /// Normalised; `estimated` when the provider's own figures have not
    /// (all) arrived.
    pub usage: TokenUsage,
}

/// One provider's stream dialect: reads its SSE events, writes OpenAI
/// `chat.completion.chunk` events to forward, and owns its rule for the usage
/// of a stream cut before the provider reported it.
pub trait StreamTranslator: Send {
    /// The provider's display name, for errors.
    fn provider(&self) -> &'static str;

    /// Handles one SSE event's data; pushes the bytes to forward into `out`.
    /// `key` is the request's key, only to scrub it from error messages.
    fn on_event(&mut self, data: &str, key: &str, out: &mut Vec<Bytes>) -> Step;

    /// The model, content, finish reason and usage as of now. Usage the
    /// provider has not reported yet is estimated (from `prompt_estimate` for
    /// the input and the tokenizer for the output) and marked `estimated`.
    fn progress(&self, prompt_estimate: u64) -> StreamProgress;
}
