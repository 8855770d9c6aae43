//! Streamed chat answers: [`ChatStream`] reads the provider's SSE stream,
//! has the provider's [`StreamTranslator`] turn it into OpenAI
//! `chat.completion.chunk` events (bytes ready to forward) and ends with a
//! [`StreamSummary`] carrying the normalised usage — estimated by the
//! translator's own rule, and marked so, when the stream was cut before the
//! provider reported it. Depends on the translator trait only, never on a
//! provider module.

use super::error::ProviderError;
use super::sse::SseParser;
use super::translate::{Step, StreamProgress, StreamTranslator};
use crate::domain::{Secret, TokenUsage};
use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// An item of a [`ChatStream`].
#[derive(Debug)]
pub enum StreamEvent {
    /// One SSE event (`data: {…}\n\n`, or `data: [DONE]\n\n`) to forward as is.
    Data(Bytes),
    /// Always the last item.
    End(StreamSummary),
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    pub model: String,
    pub content: String,
    pub finish_reason: Option<String>,
    /// Normalised; `estimated` when the provider's figures never arrived.
    pub usage: TokenUsage,
    /// Set when the stream failed or was cut (after `Data` may have been sent).
    pub error: Option<ProviderError>,
    /// True when the provider's end marker arrived.
    pub completed: bool,
    /// Attempts made to open the stream (1 = no retry).
    pub attempts: u32,
}

/// A translated chat stream; see the module docs.
pub struct ChatStream {
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: SseParser,
    translator: Box<dyn StreamTranslator>,
    pending: VecDeque<Bytes>,
    scratch: Vec<Bytes>,
    idle_timeout: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    prompt_estimate: u64,
    key: Secret,
    attempts: u32,
    end: Option<StreamSummary>,
    finished: bool,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream").field("provider", &self.translator.provider()).field("key", &self.key).finish()
    }
}

impl ChatStream {
    pub(crate) fn new(
        inner: BoxStream<'static, reqwest::Result<Bytes>>,
        translator: Box<dyn StreamTranslator>,
        idle_timeout: Duration,
        prompt_estimate: u64,
        key: Secret,
        attempts: u32,
    ) -> Self {
        Self {
            inner,
            parser: SseParser::new(),
            translator,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            prompt_estimate,
            key,
            attempts,
            end: None,
            finished: false,
        }
    }

    /// The summary as of now. Call it if you stop reading early (the client
    /// went away): usage not yet reported by the provider is estimated.
    pub fn summary(&self, completed: bool, error: Option<ProviderError>) -> StreamSummary {
        let StreamProgress { model, content, finish_reason, usage } = self.translator.progress(self.prompt_estimate);
        StreamSummary { model, content, finish_reason, usage, error, completed, attempts: self.attempts }
    }

    fn finish_with(&mut self, completed: bool, error: Option<ProviderError>) {
        if self.end.is_none() {
            self.end = Some(self.summary(completed, error));
        }
    }

    /// Translates the events already buffered; true if anything changed.
    fn drain_parser(&mut self) {
        while self.end.is_none() {
            let Some(ev) = self.parser.next_event() else { break };
            let mut out = std::mem::take(&mut self.scratch);
            let step = self.translator.on_event(&ev.data, self.key.expose(), &mut out);
            self.pending.extend(out.drain(..));
            self.scratch = out;
            match step {
                Step::Continue => {}
                Step::Done => self.finish_with(true, None),
                Step::Error(e) => self.finish_with(false, Some(e)),
            }
        }
    }
}

impl Stream for ChatStream {
    type Item = StreamEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = self.get_mut();
        loop {
            if let Some(b) = this.pending.pop_front() {
                return Poll::Ready(Some(StreamEvent::Data(b)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            if let Some(end) = this.end.take() {
                this.finished = true;
                return Poll::Ready(Some(StreamEvent::End(end)));
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    let deadline = tokio::time::Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                    if this.parser.push(&bytes).is_err() {
                        let provider = this.translator.provider();
                        this.finish_with(
                            false,
                            Some(ProviderError::InvalidResponse { provider, message: "stream event too large".into() }),
                        );
                    } else {
                        this.drain_parser();
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let err = ProviderError::from_transport(this.translator.provider(), &e, this.key.expose());
                    let err = match err {
                        ProviderError::Timeout { .. } => err,
                        other => ProviderError::StreamCut { provider: this.translator.provider(), message: other.provider_message() },
                    };
                    this.finish_with(false, Some(err));
                }
                Poll::Ready(None) => {
                    let provider = this.translator.provider();
                    this.finish_with(
                        false,
                        Some(ProviderError::StreamCut { provider, message: "the stream ended before its end marker".into() }),
                    );
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let provider = this.translator.provider();
                        this.finish_with(false, Some(ProviderError::Timeout { provider }));
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
