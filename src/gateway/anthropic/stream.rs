//! The router's OpenAI-shaped SSE stream (`chat.completion.chunk` events,
//! `data: [DONE]`) turned into Anthropic's event stream: `message_start` and
//! a `ping` first; then content blocks in order — `thinking` (from
//! `reasoning_content`, `thinking_delta`), `text` (`text_delta`), one
//! `tool_use` per tool call (`input_json_delta` per argument fragment) —
//! each opened with `content_block_start` and closed with
//! `content_block_stop`; at the end `message_delta` (stop reason, usage) and
//! `message_stop`. An error chunk, or a stream that ends without its end
//! marker, becomes an `error` event (as Anthropic ends a failed stream), and
//! no `message_stop` follows: the client knows the answer is incomplete.
//! [`Converter`] is the pure state machine; [`convert`] wraps a byte stream.

use super::errors::error_type_for_provider;
use super::response::{message_id, stop_reason, usage};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

/// The last event of a complete Anthropic stream (what the idempotency
/// capture looks for).
pub const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// The block open now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Thinking,
    Text,
    /// The tool call with this OpenAI index.
    Tool(u64),
}

/// Turns OpenAI chunk events into Anthropic events; see the module docs.
#[derive(Debug)]
pub struct Converter {
    requested_model: String,
    started: bool,
    finished: bool,
    open: Open,
    /// The index of the next content block.
    next_index: u64,
    /// (OpenAI tool-call index, its block index).
    tools: Vec<(u64, u64)>,
    finish: Option<String>,
    stop_sequence: Option<String>,
    usage: Option<Value>,
    /// Bytes of an event not complete yet.
    buf: Vec<u8>,
}

/// One Anthropic SSE event.
fn event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl Converter {
    pub fn new(requested_model: &str) -> Self {
        Converter {
            requested_model: requested_model.to_string(),
            started: false,
            finished: false,
            open: Open::None,
            next_index: 0,
            tools: Vec::new(),
            finish: None,
            stop_sequence: None,
            usage: None,
            buf: Vec::new(),
        }
    }

    /// Whether the stream has ended (with `message_stop` or an error event).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Feeds raw SSE bytes (any split); appends the Anthropic events they complete.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.finished {
            // Whatever follows the end (nothing, normally) is not kept.
            return;
        }
        self.buf.extend_from_slice(bytes);
        while !self.finished {
            let Some(end) = find_event_end(&self.buf) else { break };
            let raw: Vec<u8> = self.buf.drain(..end.1).collect();
            let text = String::from_utf8_lossy(&raw[..end.0]);
            let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
            if !data.is_empty() {
                self.on_data(&data.join("\n"), out);
            }
        }
    }

    /// The upstream stream ended (or failed): an error event unless the
    /// stream already ended properly.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        if !self.finished {
            self.fail("api_error", "the provider's stream was cut before it ended; the answer is incomplete (its usage was recorded)", out);
        }
    }

    fn fail(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        event(out, "error", &json!({"type": "error", "error": {"type": kind, "message": message}}));
        self.finished = true;
    }

    fn start(&mut self, chunk: Option<&Value>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let model = chunk.and_then(|c| c.get("model")).and_then(Value::as_str).filter(|m| !m.is_empty());
        let id = message_id(chunk.and_then(|c| c.get("id")).and_then(Value::as_str));
        let message = json!({
            "id": id, "type": "message", "role": "assistant", "model": model.unwrap_or(&self.requested_model),
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        });
        event(out, "message_start", &json!({"type": "message_start", "message": message}));
        event(out, "ping", &json!({"type": "ping"}));
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open != Open::None {
            let index = self.next_index.saturating_sub(1);
            event(out, "content_block_stop", &json!({"type": "content_block_stop", "index": index}));
            self.open = Open::None;
        }
    }

    /// Opens a block of kind `open` (closing the one before) unless it is open.
    fn open(&mut self, open: Open, block: Value, out: &mut Vec<u8>) -> u64 {
        if self.open == open {
            return self.next_index.saturating_sub(1);
        }
        self.close(out);
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        self.open = open;
        event(out, "content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": block}));
        index
    }

    fn delta(out: &mut Vec<u8>, index: u64, delta: Value) {
        event(out, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": delta}));
    }

    fn on_data(&mut self, data: &str, out: &mut Vec<u8>) {
        if data.trim() == "[DONE]" {
            self.start(None, out);
            self.close(out);
            let reason = stop_reason(self.finish.as_deref(), self.stop_sequence.as_deref());
            let seq = if reason == "stop_sequence" { json!(self.stop_sequence) } else { Value::Null };
            event(
                out,
                "message_delta",
                &json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": seq}, "usage": usage(self.usage.as_ref())}),
            );
            out.extend_from_slice(MESSAGE_STOP);
            self.finished = true;
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return self.fail("api_error", "the provider sent an unreadable stream event; the answer is incomplete", out);
        };
        if let Some(err) = chunk.get("error") {
            let message = err.get("message").and_then(Value::as_str).unwrap_or("the provider failed during the stream");
            let kind = error_type_for_provider(err.get("type").and_then(Value::as_str));
            return self.fail(kind, message, out);
        }
        self.start(Some(&chunk), out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        for choice in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
            if let Some(d) = choice.get("delta") {
                self.on_delta(d, out);
            }
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(f.to_string());
                if let Some(s) = choice.get("stop_sequence").and_then(Value::as_str) {
                    self.stop_sequence = Some(s.to_string());
                }
                self.close(out);
            }
        }
    }

    fn on_delta(&mut self, d: &Value, out: &mut Vec<u8>) {
        if let Some(r) = d.get("reasoning_content").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            let i = self.open(Open::Thinking, json!({"type": "thinking", "thinking": "", "signature": ""}), out);
            Self::delta(out, i, json!({"type": "thinking_delta", "thinking": r}));
        }
        for b in d.get("thinking_blocks").and_then(Value::as_array).into_iter().flatten() {
            if let Some(sig) = b.get("signature").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                let i = self.open(Open::Thinking, json!({"type": "thinking", "thinking": "", "signature": ""}), out);
                Self::delta(out, i, json!({"type": "signature_delta", "signature": sig}));
            }
        }
        if let Some(t) = d.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            let i = self.open(Open::Text, json!({"type": "text", "text": ""}), out);
            Self::delta(out, i, json!({"type": "text_delta", "text": t}));
        }
        for call in d.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let tool = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let f = call.get("function");
            let index = match self.tools.iter().find(|(t, _)| *t == tool) {
                Some((_, b)) => *b,
                None => {
                    let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
                    let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default();
                    let b = self.open(Open::Tool(tool), json!({"type": "tool_use", "id": id, "name": name, "input": {}}), out);
                    self.tools.push((tool, b));
                    b
                }
            };
            if let Some(args) = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).filter(|a| !a.is_empty()) {
                Self::delta(out, index, json!({"type": "input_json_delta", "partial_json": args}));
            }
        }
    }
}

/// Where the first complete event in `buf` ends: (end of its text, end of its separator).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Converts the router's stream body into Anthropic's events. The inner
/// stream (the router's guard, which records the usage) is polled to its
/// end, so that its usage is committed before the body ends.
pub fn convert<S>(inner: S, requested_model: &str) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + use<S>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
{
    let conv = Converter::new(requested_model);
    futures::stream::unfold(Some((inner, conv)), |state| async move {
        let (mut inner, mut conv) = state?;
        loop {
            let mut out = Vec::new();
            match inner.next().await {
                Some(Ok(b)) => conv.push(&b, &mut out),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "a stream failed while it was converted to Anthropic events");
                    conv.end(&mut out);
                }
                None => {
                    conv.end(&mut out);
                    return if out.is_empty() { None } else { Some((Ok(Bytes::from(out)), None)) };
                }
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), Some((inner, conv))));
            }
        }
    })
}

#[cfg(test)]
mod tests;
