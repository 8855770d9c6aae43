//! Anthropic Messages event stream → OpenAI `chat.completion.chunk` events:
//! text deltas as `content`, a `tool_use` block as a `tool_calls` entry
//! (its id and name first, then each `input_json_delta` as an `arguments`
//! delta), the forced tool of a `response_format` as `content` deltas,
//! `thinking_delta` as `reasoning_content`, and each finished (signed)
//! thinking block as one `thinking_blocks` delta.

use super::super::error::ProviderError;
use super::super::token_count;
use super::super::translate::{Step, StreamProgress, StreamTranslator};
use super::super::wire::{AnthropicUsage, OpenAiUsage};
use super::{NAME, REASONING_CONTENT, STRUCTURED_TOOL, THINKING_BLOCKS, chunk_event, finish_reason};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
struct StreamEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    message: Option<MessageStart>,
    #[serde(default)]
    content_block: Option<Value>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Debug, Deserialize)]
struct MessageStart {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// What one content block of the stream is.
#[derive(Debug)]
enum Block {
    Text,
    /// A client tool call: its position in OpenAI's `tool_calls`.
    Tool(usize),
    /// The forced tool of a `response_format`.
    Structured,
    Thinking {
        text: String,
        signature: String,
    },
    Other,
}

/// Translates a Messages event stream into OpenAI chunks, keeping the latest
/// (cumulative) usage.
///
/// A cut stream's usage: Anthropic reports input tokens at the start and
/// output tokens as it goes, so its figures are kept where they arrived; a
/// missing input count is the prompt estimate, and the output is at least the
/// tokenizer's count of what was received (text, tool arguments, thinking).
#[derive(Debug)]
pub struct AnthropicTranslator {
    pub id: String,
    pub model: String,
    pub created: u64,
    pub usage: AnthropicUsage,
    pub saw_usage: bool,
    /// A `message_delta` with usage arrived: the figures are the provider's final ones.
    pub final_usage: bool,
    pub finish: Option<String>,
    pub content: String,
    /// Tool arguments and thinking received (output the client was sent beside `content`).
    other_output: String,
    /// Thinking text received (the reasoning part of the output).
    reasoning: String,
    include_usage: bool,
    structured: bool,
    blocks: Vec<(usize, Block)>,
    tool_calls: usize,
    structured_answered: bool,
}

impl AnthropicTranslator {
    pub fn new(model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            id: String::new(),
            model: model.to_string(),
            created,
            usage: AnthropicUsage::default(),
            saw_usage: false,
            final_usage: false,
            finish: None,
            content: String::new(),
            other_output: String::new(),
            reasoning: String::new(),
            include_usage,
            structured: false,
            blocks: Vec::new(),
            tool_calls: 0,
            structured_answered: false,
        }
    }

    /// The request's `response_format` became the forced tool
    /// [`STRUCTURED_TOOL`]: its input is streamed as the content.
    pub fn structured(mut self, yes: bool) -> Self {
        self.structured = yes;
        self
    }

    pub fn saw_final_usage(&self) -> bool {
        self.final_usage
    }

    fn emit(&self, out: &mut Vec<Bytes>, delta: Value) {
        out.push(chunk_event(&self.id, self.created, &self.model, delta, None, None));
    }

    fn on_block_start(&mut self, index: Option<usize>, block: Option<Value>, out: &mut Vec<Bytes>) {
        let Some(b) = block else { return };
        let kind = match b.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => {
                // A text block may start with text (rare; normally empty).
                if let Some(t) = b.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    self.content.push_str(t);
                    self.emit(out, json!({"content": t}));
                }
                Block::Text
            }
            "tool_use" => {
                let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
                if self.structured && name == STRUCTURED_TOOL {
                    self.structured_answered = true;
                    Block::Structured
                } else {
                    let k = self.tool_calls;
                    self.tool_calls += 1;
                    let id = b.get("id").cloned().unwrap_or(Value::Null);
                    self.emit(
                        out,
                        json!({"tool_calls": [{"index": k, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                    );
                    Block::Tool(k)
                }
            }
            "thinking" => Block::Thinking {
                text: b.get("thinking").and_then(Value::as_str).unwrap_or_default().to_string(),
                signature: b.get("signature").and_then(Value::as_str).unwrap_or_default().to_string(),
            },
            "redacted_thinking" => {
                self.emit(out, json!({ THINKING_BLOCKS: [b] }));
                Block::Other
            }
            _ => Block::Other,
        };
        if let Some(i) = index {
            self.blocks.push((i, kind));
        }
    }

    fn on_block_delta(&mut self, index: Option<usize>, d: Delta, out: &mut Vec<Bytes>) {
        let mut emit = None;
        let block = index.and_then(|i| self.blocks.iter_mut().find(|(j, _)| *j == i).map(|(_, b)| b));
        match block {
            Some(Block::Tool(k)) => {
                let k = *k;
                if let Some(p) = d.partial_json {
                    self.other_output.push_str(&p);
                    emit = Some(json!({"tool_calls": [{"index": k, "function": {"arguments": p}}]}));
                }
            }
            Some(Block::Structured) => {
                if let Some(p) = d.partial_json {
                    self.content.push_str(&p);
                    emit = Some(json!({"content": p}));
                }
            }
            Some(Block::Thinking { text, signature }) => {
                if let Some(t) = d.thinking {
                    text.push_str(&t);
                    self.reasoning.push_str(&t);
                    self.other_output.push_str(&t);
                    emit = Some(json!({ REASONING_CONTENT: t }));
                }
                if let Some(s) = d.signature {
                    signature.push_str(&s);
                }
            }
            // Text, or a block whose start we did not see.
            _ => {
                if let Some(text) = d.text {
                    self.content.push_str(&text);
                    emit = Some(json!({"content": text}));
                }
            }
        }
        if let Some(delta) = emit {
            self.emit(out, delta);
        }
    }

    fn on_block_stop(&mut self, index: Option<usize>, out: &mut Vec<Bytes>) {
        let block = index.and_then(|i| self.blocks.iter_mut().find(|(j, _)| *j == i).map(|(_, b)| b));
        if let Some(Block::Thinking { text, signature }) = block {
            let block = json!({"type": "thinking", "thinking": std::mem::take(text), "signature": std::mem::take(signature)});
            self.emit(out, json!({ THINKING_BLOCKS: [block] }));
        }
    }
}

impl StreamTranslator for AnthropicTranslator {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn progress(&self, prompt_estimate: u64) -> StreamProgress {
        let mut usage = self.usage.normalise();
        if !self.saw_final_usage() {
            if self.usage.input_tokens.is_none() {
                usage.input = prompt_estimate;
            }
            let received = token_count::count_text(&self.content).saturating_add(token_count::count_text(&self.other_output));
            usage.output = usage.output.max(received);
            usage.estimated = true;
        }
        if !self.reasoning.is_empty() {
            usage.reasoning = token_count::count_text(&self.reasoning).min(usage.output);
        }
        StreamProgress { model: self.model.clone(), content: self.content.clone(), finish_reason: self.finish.clone(), usage }
    }

    /// Handles one SSE event's data; pushes chunks to forward into `out`.
    fn on_event(&mut self, data: &str, key: &str, out: &mut Vec<Bytes>) -> Step {
        let Ok(ev) = serde_json::from_str::<StreamEvent>(data) else {
            return Step::Error(ProviderError::InvalidResponse { provider: NAME, message: "unreadable stream event".into() });
        };
        match ev.kind.as_str() {
            "message_start" => {
                if let Some(m) = ev.message {
                    self.id = format!("chatcmpl-{}", m.id);
                    if !m.model.is_empty() {
                        self.model = m.model;
                    }
                    if let Some(u) = m.usage {
                        self.usage.update(&u);
                        self.saw_usage = true;
                    }
                }
                self.emit(out, json!({"role": "assistant", "content": ""}));
            }
            "content_block_start" => self.on_block_start(ev.index, ev.content_block, out),
            "content_block_delta" => {
                if let Some(d) = ev.delta {
                    self.on_block_delta(ev.index, d, out);
                }
            }
            "content_block_stop" => self.on_block_stop(ev.index, out),
            "message_delta" => {
                if let Some(reason) = ev.delta.and_then(|d| d.stop_reason) {
                    let only_structured = reason == "tool_use" && self.structured_answered && self.tool_calls == 0;
                    self.finish = Some(if only_structured { "stop" } else { finish_reason(&reason) }.to_string());
                }
                if let Some(u) = ev.usage {
                    // Cumulative: keep the latest figures, never add.
                    self.usage.update(&u);
                    self.final_usage = true;
                }
            }
            "message_stop" => {
                let finish = self.finish.clone().unwrap_or_else(|| "stop".into());
                out.push(chunk_event(&self.id, self.created, &self.model, json!({}), Some(&finish), None));
                if self.include_usage {
                    let mut u = self.usage.normalise();
                    if !self.reasoning.is_empty() {
                        u.reasoning = token_count::count_text(&self.reasoning).min(u.output);
                    }
                    let u = OpenAiUsage::from_normalised(&u);
                    out.push(chunk_event(&self.id, self.created, &self.model, Value::Null, None, Some(&u)));
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                return Step::Done;
            }
            "error" => {
                let e = ProviderError::from_stream_error(NAME, data.as_bytes(), key);
                let body = json!({"error": {"message": e.provider_message(), "type": e.class(), "code": null}});
                out.push(Bytes::from(format!("data: {body}\n\n")));
                return Step::Error(e);
            }
            // ping and unknown future events.
            _ => {}
        }
        Step::Continue
    }
}
