//! The official and hand-written fixtures of `tests/fixtures` (README there
//! names their sources) through Switchboard's translation, and the Anthropic
//! ones validated with the Anthropic SDK's own types.

use crate::support::python;
use serde_json::{Value, json};
use std::path::PathBuf;
use switchboard::domain::TranslationTables;
use switchboard::providers::anthropic::{self, AnthropicTranslator};
use switchboard::providers::openai::{self, OpenAiTranslator};
use switchboard::providers::translate::{Step, StreamTranslator};
use switchboard::providers::{ChatRequest, untranslatable};

fn fixture(path: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures", path].iter().collect();
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs an SSE text's `data:` lines through a translator; the OpenAI chunks it wrote, parsed.
fn translate(t: &mut dyn StreamTranslator, sse: &str) -> (Vec<Value>, bool) {
    let mut out = Vec::new();
    let mut done = false;
    for data in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
        match t.on_event(data, "k", &mut out) {
            Step::Continue => {}
            Step::Done => done = true,
            Step::Error(e) => panic!("{e}"),
        }
    }
    let chunks = out
        .iter()
        .filter_map(|b| std::str::from_utf8(b).unwrap().strip_prefix("data: ").map(|s| s.trim_end().to_string()))
        .filter(|s| s != "[DONE]")
        .map(|s| serde_json::from_str(&s).unwrap())
        .collect();
    (chunks, done)
}

/// (id, name, arguments) of a reassembled tool call.
type Call = (String, String, String);

/// Content, tool calls, finish reason and reasoning reassembled from OpenAI
/// chunk deltas, as the OpenAI SDK does.
fn reassemble(chunks: &[Value]) -> (String, Vec<Call>, Option<String>, String) {
    let (mut content, mut reasoning, mut finish) = (String::new(), String::new(), None);
    let mut calls: Vec<Call> = Vec::new();
    for c in chunks {
        let Some(ch) = c["choices"].get(0) else { continue };
        content.push_str(ch["delta"]["content"].as_str().unwrap_or_default());
        reasoning.push_str(ch["delta"]["reasoning_content"].as_str().unwrap_or_default());
        for tc in ch["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let i = tc["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.push(Default::default());
            }
            if let Some(id) = tc["id"].as_str() {
                calls[i].0 = id.into();
            }
            if let Some(n) = tc["function"]["name"].as_str() {
                calls[i].1 = n.into();
            }
            calls[i].2.push_str(tc["function"]["arguments"].as_str().unwrap_or_default());
        }
        if let Some(f) = ch["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    (content, calls, finish, reasoning)
}

#[test]
fn the_anthropic_sdks_recorded_tool_use_stream_becomes_openai_tool_call_chunks() {
    let mut t = AnthropicTranslator::new("claude-sonnet-4-5", 1, true);
    let (chunks, done) = translate(&mut t, &fixture("anthropic/tool_use_response.txt"));
    assert!(done);
    let (content, calls, finish, _) = reassemble(&chunks);
    assert_eq!(content, "I'll check the current weather in Paris for you.");
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].0.as_str(), calls[0].1.as_str()), ("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather"));
    assert_eq!(serde_json::from_str::<Value>(&calls[0].2).unwrap(), json!({"location": "Paris"}));
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(377), Some(65)));
    assert_eq!(t.progress(0).model, "claude-sonnet-4-20250514");
}

#[test]
fn a_handwritten_thinking_and_tool_use_stream_and_message_translate_with_signatures_kept() {
    let mut t = AnthropicTranslator::new("claude-sonnet-4-5", 1, false);
    let (chunks, _) = translate(&mut t, &fixture("handwritten/thinking_tool_use_stream.txt"));
    let (_, calls, finish, reasoning) = reassemble(&chunks);
    assert_eq!(reasoning, "The couple asks about 14 June. I should check availability.");
    let blocks: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"].get("thinking_blocks")).collect();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0][0]["signature"], "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds2mJ");
    assert_eq!(serde_json::from_str::<Value>(&calls[0].2).unwrap(), json!({"venue": "The Old Barn", "date": "2027-06-14"}));
    assert_eq!(finish.as_deref(), Some("tool_calls"));

    let r = anthropic::from_messages_response(fixture("handwritten/thinking_tool_use_message.json").as_bytes(), 1, false, || 0).unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], "Let me check the barn's calendar.");
    assert_eq!(msg["tool_calls"][0]["id"], "toolu_01HandWrittenCheckDate01");
    assert_eq!(msg["thinking_blocks"].as_array().unwrap().len(), 2);
    // The answer, sent back as the next turn's assistant message, gives Anthropic the same blocks.
    let next: ChatRequest = serde_json::from_value(json!({"model": "claude-sonnet-4-5", "reasoning_effort": "medium", "messages": [
        {"role": "user", "content": "Is the barn free on 14 June 2027?"}, msg,
        {"role": "tool", "tool_call_id": "toolu_01HandWrittenCheckDate01", "content": "free"}]}))
    .unwrap();
    let a = anthropic::to_messages_request(&next, &TranslationTables::builtin()).unwrap();
    let original: Value = serde_json::from_str(&fixture("handwritten/thinking_tool_use_message.json")).unwrap();
    let mut sent = a.messages[1].content.clone();
    sent.retain(|b| b["type"] != "text");
    let mut expected = original["content"].as_array().unwrap().clone();
    expected.retain(|b| b["type"] != "text");
    assert_eq!(sent, expected, "thinking, redacted thinking and tool_use go back unchanged");
    assert_eq!(a.thinking, Some(json!({"type": "enabled", "budget_tokens": 8192})));
}

#[test]
fn the_anthropic_fixtures_are_valid_for_the_anthropic_sdks_own_types() {
    let out = std::process::Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/validate_fixtures.py"))
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("message ok") && stdout.contains("anthropic/tool_use_response.txt ok"), "{stdout}");
}

#[test]
fn openais_openapi_stream_example_passes_through_and_its_legacy_functions_example_skips_anthropic() {
    let mut t = OpenAiTranslator::new(openai::NAME, "gpt-3.5-turbo", false);
    let text = fixture("openai/chat_completion_chunk_example.txt");
    // The example's lines are bare JSON (its "...." elides chunks): sent as SSE data.
    let sse: String = text.lines().filter(|l| l.starts_with('{')).map(|l| format!("data: {l}\n\n")).collect();
    let (chunks, _) = translate(&mut t, &sse);
    assert_eq!(chunks.len(), 6, "every chunk forwarded");
    let (content, _, finish, _) = reassemble(&chunks);
    assert_eq!((content.as_str(), finish.as_deref()), ("Hello! today?", Some("stop")));
    assert_eq!(t.progress(0).model, "gpt-3.5-turbo-0613");

    let req: ChatRequest = serde_json::from_str(&fixture("openai/function_calling_request.json")).unwrap();
    let tables = TranslationTables::builtin();
    use switchboard::domain::ProviderKind::{Anthropic, AzureOpenAi, OpenAi};
    assert_eq!(untranslatable(OpenAi, &req, &tables), None);
    assert_eq!(untranslatable(AzureOpenAi, &req, &tables), None);
    assert!(untranslatable(Anthropic, &req, &tables).unwrap().contains("legacy functions"));
}

#[test]
fn azures_2024_10_21_example_reads_as_an_openai_answer_and_its_request_translates() {
    let ex: Value = serde_json::from_str(&fixture("azure/chat_completions.json")).unwrap();
    let body = serde_json::to_vec(&ex["responses"]["200"]["body"]).unwrap();
    let parsed = openai::parse_chat("Azure OpenAI", &body).unwrap();
    let (content, finish) = openai::first_choice(&body);
    assert!(content.starts_with("Ahoy matey!"));
    assert_eq!(finish.as_deref(), Some("stop"));
    let u = parsed.usage.unwrap().normalise();
    assert_eq!((u.input, u.output), (33, 557));
    let mut req = ex["parameters"]["body"].clone();
    req["model"] = json!("gpt-4o");
    let req: ChatRequest = serde_json::from_value(req).unwrap();
    let a = anthropic::to_messages_request(&req, &TranslationTables::builtin()).unwrap();
    assert_eq!(a.system, vec![json!({"type": "text", "text": "you are a helpful assistant that talks like a pirate"})]);
    assert_eq!(a.messages.len(), 1);
}
