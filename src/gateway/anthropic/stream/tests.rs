//! The stream converter against streams recorded in Anthropic's Python SDK
//! tests (`tests/fixtures/anthropic/`), and by hand for thinking, parallel
//! tool calls, stop sequences and failures.

use super::*;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/anthropic").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (event name, data) of each event of an Anthropic SSE text.
fn events(sse: &str) -> Vec<(String, Value)> {
    sse.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_string();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_default();
            (name, serde_json::from_str(data).unwrap_or_else(|err| panic!("{data}: {err}")))
        })
        .collect()
}

/// The OpenAI chunks that carry what a recorded Anthropic stream carries
/// (one chunk per content delta), as the router sends them.
fn openai_chunks_for(anthropic: &[(String, Value)], prompt_tokens: u64) -> String {
    let mut out = String::new();
    let mut chunk = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        out.push_str(&format!("data: {c}\n\n"));
    };
    let mut tool = -1i64;
    let mut finish = Value::Null;
    let mut output = 0;
    chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    for (_, d) in anthropic {
        match d["type"].as_str().unwrap() {
            "content_block_start" if d["content_block"]["type"] == "tool_use" => {
                tool += 1;
                let b = &d["content_block"];
                chunk(
                    json!({"tool_calls": [{"index": tool, "id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": ""}}]}),
                    Value::Null,
                );
            }
            "content_block_delta" => match d["delta"]["type"].as_str().unwrap() {
                "text_delta" => chunk(json!({"content": d["delta"]["text"]}), Value::Null),
                "input_json_delta" => {
                    chunk(json!({"tool_calls": [{"index": tool, "function": {"arguments": d["delta"]["partial_json"]}}]}), Value::Null)
                }
                other => panic!("{other}"),
            },
            "message_delta" => {
                finish = json!(match d["delta"]["stop_reason"].as_str().unwrap() {
                    "tool_use" => "tool_calls",
                    "max_tokens" => "length",
                    _ => "stop",
                });
                output = d["usage"]["output_tokens"].as_u64().unwrap();
            }
            _ => {}
        }
    }
    chunk(json!({}), finish);
    let usage = json!({"id": "chatcmpl-x", "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": output, "total_tokens": prompt_tokens + output}});
    out.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    out
}

/// What two Anthropic streams must agree on: the events in order, without
/// pings and empty deltas; content blocks without fields Switchboard does
/// not make (`caller`); `message_start` only by name (ids and models differ).
fn comparable(evs: &[(String, Value)]) -> Vec<(String, Value)> {
    evs.iter()
        .filter(|(n, d)| n != "ping" && d["delta"]["partial_json"] != "")
        .map(|(n, d)| {
            let mut d = d.clone();
            match n.as_str() {
                "message_start" => d = json!("start"),
                "content_block_start" => {
                    d["content_block"].as_object_mut().unwrap().remove("caller");
                }
                "message_delta" => d["usage"] = json!({"output_tokens": d["usage"]["output_tokens"]}),
                _ => {}
            }
            (n.clone(), d)
        })
        .collect()
}

fn convert_all(openai: &str) -> String {
    let mut c = Converter::new("asked-model");
    let mut out = Vec::new();
    c.push(openai.as_bytes(), &mut out);
    c.end(&mut out);
    assert!(c.finished());
    String::from_utf8(out).unwrap()
}

#[test]
fn the_recorded_streams_come_out_event_for_event() {
    for (name, prompt) in [("basic_response.txt", 11), ("tool_use_response.txt", 377)] {
        let recorded = events(&fixture(name));
        let ours = events(&convert_all(&openai_chunks_for(&recorded, prompt)));
        assert_eq!(comparable(&ours), comparable(&recorded), "{name}");
        // And the parts compared loosely above are right too.
        assert_eq!(ours[0].1["message"]["id"], "msg_x");
        assert_eq!(ours[0].1["message"]["model"], "m");
        assert_eq!(ours[1].0, "ping");
        let delta = &ours[ours.len() - 2].1;
        assert_eq!(delta["usage"]["input_tokens"], prompt, "{name}: the input tokens arrive with message_delta");
        assert_eq!(ours.last().unwrap().0, "message_stop");
    }
}

#[test]
fn any_split_of_the_bytes_gives_the_same_events() {
    let recorded = events(&fixture("tool_use_response.txt"));
    let openai = openai_chunks_for(&recorded, 377);
    let whole = convert_all(&openai);
    for size in [1, 2, 7, 64] {
        let mut c = Converter::new("asked-model");
        let mut out = Vec::new();
        for piece in openai.as_bytes().chunks(size) {
            c.push(piece, &mut out);
        }
        c.end(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), whole, "split into {size}-byte pieces");
    }
    // CRLF-separated events read the same.
    assert_eq!(convert_all(&openai.replace("\n\n", "\r\n\r\n")), whole);
}

#[test]
fn thinking_text_and_parallel_tool_calls_get_blocks_in_order() {
    let chunks = [
        json!({"id": "chatcmpl-t", "model": "claude-sonnet-4-5", "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Two lookups."}}]}),
        json!({"choices": [{"index": 0, "delta": {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "EqQB"}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "Checking both."}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "venue", "arguments": "{\"ci"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\":\"Leeds\"}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "florist", "arguments": "{}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    ];
    let mut sse: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    sse.push_str("data: [DONE]\n\n");
    let evs = events(&convert_all(&sse));
    let seq: Vec<String> = evs
        .iter()
        .map(|(n, d)| match n.as_str() {
            "content_block_start" => format!("start {} {}", d["index"], d["content_block"]["type"].as_str().unwrap()),
            "content_block_delta" => format!("delta {} {}", d["index"], d["delta"]["type"].as_str().unwrap()),
            "content_block_stop" => format!("stop {}", d["index"]),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        seq,
        [
            "message_start",
            "ping",
            "start 0 thinking",
            "delta 0 thinking_delta",
            "delta 0 signature_delta",
            "stop 0",
            "start 1 text",
            "delta 1 text_delta",
            "stop 1",
            "start 2 tool_use",
            "delta 2 input_json_delta",
            "delta 2 input_json_delta",
            "stop 2",
            "start 3 tool_use",
            "delta 3 input_json_delta",
            "stop 3",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(evs[9].1["content_block"], json!({"type": "tool_use", "id": "call_a", "name": "venue", "input": {}}));
    assert_eq!(evs[4].1["delta"]["signature"], "EqQB");
    let delta = &evs[evs.len() - 2].1;
    assert_eq!(delta["delta"], json!({"stop_reason": "tool_use", "stop_sequence": null}));
    assert_eq!(delta["usage"]["output_tokens"], 0, "no usage chunk: zero, never made up");
}

#[test]
fn finish_reasons_become_stop_reasons_in_streams() {
    let reason = |finish: &str, extra: Value| {
        let mut choice = json!({"index": 0, "delta": {"content": "x"}, "finish_reason": finish});
        if let (Some(c), Some(e)) = (choice.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let sse = format!("data: {}\n\ndata: [DONE]\n\n", json!({"choices": [choice]}));
        let evs = events(&convert_all(&sse));
        evs[evs.len() - 2].1["delta"].clone()
    };
    assert_eq!(reason("stop", json!({})), json!({"stop_reason": "end_turn", "stop_sequence": null}));
    assert_eq!(reason("length", json!({})), json!({"stop_reason": "max_tokens", "stop_sequence": null}));
    assert_eq!(reason("tool_calls", json!({})), json!({"stop_reason": "tool_use", "stop_sequence": null}));
    assert_eq!(reason("content_filter", json!({})), json!({"stop_reason": "refusal", "stop_sequence": null}));
    assert_eq!(reason("stop", json!({"stop_sequence": "END"})), json!({"stop_reason": "stop_sequence", "stop_sequence": "END"}));
}

#[test]
fn failures_end_with_an_error_event_and_no_message_stop() {
    // A provider's error chunk mid-stream.
    let sse = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded\"}}\n\n";
    let evs = events(&convert_all(sse));
    let last = evs.last().unwrap();
    assert_eq!(last.0, "error");
    assert_eq!(last.1, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
    assert!(!evs.iter().any(|(n, _)| n == "message_stop"));
    // A stream cut before its end marker.
    let evs = events(&convert_all("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"));
    assert_eq!(evs.last().unwrap().1["error"]["type"], "api_error");
    assert!(evs.last().unwrap().1["error"]["message"].as_str().unwrap().contains("cut"));
    // An unreadable chunk; nothing after the end is converted.
    let evs = events(&convert_all("data: {oops\n\ndata: [DONE]\n\n"));
    assert_eq!(evs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["error"]);
    // Nothing at all but the end marker: still a whole, empty message.
    let evs = events(&convert_all("data: [DONE]\n\n"));
    assert_eq!(evs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["message_start", "ping", "message_delta", "message_stop"]);
    assert_eq!(evs[0].1["message"]["model"], "asked-model");
}

#[tokio::test]
async fn the_byte_stream_ends_with_message_stop_after_the_inner_stream_ends() {
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(
            b"data: {\"id\":\"chatcmpl-q\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        )),
        Ok(Bytes::from_static(b"data: [DONE]\n\n")),
    ];
    let polled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = polled.clone();
    let inner = futures::stream::iter(parts).chain(futures::stream::poll_fn(move |_| {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        std::task::Poll::Ready(None)
    }));
    let out: Vec<Bytes> = convert(Box::pin(inner), "m").map(|b| b.unwrap()).collect().await;
    let all: Vec<u8> = out.concat();
    assert!(all.ends_with(MESSAGE_STOP));
    assert!(polled.load(std::sync::atomic::Ordering::SeqCst), "the inner stream (the usage guard) was read to its end");
}
