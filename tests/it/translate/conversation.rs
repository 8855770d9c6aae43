//! A tool-call conversation that changes provider in the middle: begun on
//! the supplier's own Anthropic account, carried on by platform OpenAI while
//! Anthropic is down, and finished on Anthropic again — every tool id kept
//! across both translations, one usage row per call.

use super::{env, first_call_args, tools};
use serde_json::{Value, json};
use switchboard::domain::ProviderKind;

#[tokio::test]
async fn a_three_turn_tool_conversation_survives_a_failover_from_anthropic_to_platform_openai() {
    let e = env().await;
    let (s, _, t) = e.supplier_on(ProviderKind::Anthropic, true);
    let mut history = vec![json!({"role": "user", "content": "Is the barn free for 120 guests on 14 June?"})];
    let call = |history: &Vec<Value>| json!({"model": "claude-haiku-4-5", "messages": history, "tools": tools(), "max_tokens": 300});

    // Turn 1 on Anthropic: a tool call (Anthropic's id).
    let (status, b, route) = e.chat(&t, call(&history)).await;
    assert_eq!((status, route.as_str()), (200, "client"), "{b}");
    let msg = b["choices"][0]["message"].clone();
    let first_id = msg["tool_calls"][0]["id"].as_str().unwrap().to_string();
    assert!(first_id.starts_with("toolu_sim"), "{first_id}");
    assert_eq!(serde_json::from_str::<Value>(msg["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap(), first_call_args());
    history.push(msg);
    history.push(json!({"role": "tool", "tool_call_id": first_id, "content": "the barn is free on 14 June"}));

    // Anthropic goes down: turn 2 is answered by platform OpenAI, which
    // checks that the result answers a call of the history (Anthropic's id, kept).
    e.sim.set_outage("anthropic-platform", true);
    let (status, b, route) = e.chat(&t, call(&history)).await;
    assert_eq!((status, route.as_str()), (200, "failover"), "{b}");
    assert_eq!(b["model"], "gpt-4o-mini", "the equivalent of claude-haiku-4-5");
    let text = b["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(text.ends_with("the tool said: the barn is free on 14 June"), "{text}");
    history.push(b["choices"][0]["message"].clone());
    history.push(json!({"role": "user", "content": "Book it for Sam and Alex."}));

    // Turn 3, still on OpenAI (streamed): another tool call, with OpenAI's id.
    let (msg, finish, deltas, _) = e.stream(&t, call(&history)).await;
    assert_eq!(finish, "tool_calls");
    assert!(deltas >= 2);
    let second_id = msg["tool_calls"][0]["id"].as_str().unwrap().to_string();
    assert!(second_id.starts_with("call_sim"), "{second_id}");
    history.push(msg);
    history.push(json!({"role": "tool", "tool_call_id": second_id, "content": "booking 42 saved"}));

    // Anthropic is back: it finishes the conversation, whose history now
    // holds both providers' tool ids as tool_use / tool_result pairs.
    e.sim.set_outage("anthropic-platform", false);
    let (msg, finish, _, _) = e.stream(&t, call(&history)).await;
    assert_eq!(finish, "stop");
    assert!(msg["content"].as_str().unwrap().ends_with("the tool said: booking 42 saved"), "{msg}");

    let rows = e.rows(s).await;
    // Route codes: 1 client, 2 failover (to platform AI).
    let routes: Vec<(i64, String)> = rows.iter().filter(|r| r.1 == 0).map(|r| (r.0, r.2.clone())).collect();
    assert_eq!(
        routes,
        vec![
            (1, "claude-haiku-4-5".to_string()),
            (2, "gpt-4o-mini".to_string()),
            (2, "gpt-4o-mini".to_string()),
            (1, "claude-haiku-4-5".to_string())
        ],
        "{rows:?}"
    );
}
