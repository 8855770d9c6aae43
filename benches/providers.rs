//! Request translation and cost computation: the per-request work the
//! provider layer adds on top of the network.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard::domain::{PricingTable, ProviderKind, Secret, TokenUsage};
use switchboard::providers::translate::StreamTranslator;
use switchboard::providers::{ChatRequest, OpenAiUsage, Provider, ProviderTarget, anthropic, token_count};

fn chat_request() -> ChatRequest {
    serde_json::from_value(serde_json::json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You write warm, concise emails for a wedding photographer."},
            {"role": "user", "content": [
                {"type": "text", "text": "Draft a reply to a couple asking about availability on 14 June 2027 at Hever Castle."},
                {"type": "image_url", "image_url": {"url": "https://example.com/venue.jpg"}}
            ]},
            {"role": "assistant", "content": "Happy to help. Shall I mention our summer packages?"},
            {"role": "user", "content": "Yes, and keep it under 120 words."}
        ],
        "max_tokens": 400, "temperature": 0.7, "stop": ["\n\n\n"], "seed": 7
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let req = chat_request();
    let tables = switchboard::domain::TranslationTables::builtin();
    let raw = serde_json::to_vec(&req).unwrap();
    c.bench_function("parse OpenAI chat request", |b| b.iter(|| serde_json::from_slice::<ChatRequest>(black_box(&raw)).unwrap()));
    c.bench_function("translate OpenAI request to Anthropic (incl. JSON)", |b| {
        b.iter(|| serde_json::to_vec(&anthropic::to_messages_request(black_box(&req), &tables).unwrap()).unwrap())
    });
    // The body of an OpenAI-to-OpenAI call: serialised from the parsed request
    // (as before issue 22), the client's bytes forwarded, and forwarded with the
    // model replaced in place (an account whose model differs).
    let openai = Provider::for_target(&ProviderTarget::new(ProviderKind::OpenAi, "http://127.0.0.1:9", Secret::new("sk-bench")));
    let mut kept = req.clone();
    kept.keep_original(bytes::Bytes::from(raw.clone()));
    let mut renamed = kept.clone();
    renamed.model = "gpt-4o-2024-08-06".into();
    c.bench_function("OpenAI upstream body: serialise the parsed request", |b| {
        b.iter(|| openai.chat_request(black_box(&req), false, &tables).unwrap())
    });
    c.bench_function("OpenAI upstream body: forward the client's bytes", |b| {
        b.iter(|| openai.chat_request(black_box(&kept), false, &tables).unwrap())
    });
    c.bench_function("OpenAI upstream body: forward, model replaced", |b| {
        b.iter(|| openai.chat_request(black_box(&renamed), false, &tables).unwrap())
    });
    let answer = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Dear Sam and Alex, thank you for thinking of us for your day at Hever Castle. We are free on 14 June 2027."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":120,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":40}}"#;
    c.bench_function("translate Anthropic answer to OpenAI", |b| {
        b.iter(|| anthropic::from_messages_response(black_box(answer), 1, false, || 0).unwrap())
    });
    let delta = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" Castle"}}"#;
    c.bench_function("translate one Anthropic stream event", |b| {
        let mut t = anthropic::AnthropicTranslator::new("claude-sonnet-4-5", 1, false);
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            out.clear();
            t.content.clear();
            t.on_event(black_box(delta), "k", &mut out)
        })
    });
    let pricing = PricingTable::builtin();
    let usage_json = br#"{"prompt_tokens":1031,"completion_tokens":300,"total_tokens":1331,"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":200}}"#;
    c.bench_function("normalise OpenAI usage + cost (gpt-4o)", |b| {
        b.iter(|| {
            let u: OpenAiUsage = serde_json::from_slice(black_box(usage_json)).unwrap();
            pricing.cost(ProviderKind::OpenAi, "gpt-4o", &u.normalise())
        })
    });
    let u = TokenUsage { input: 12, output: 96, cached_read: 1024, cache_write: 0, reasoning: 0, estimated: false };
    c.bench_function("cost only (dated Azure model lookup)", |b| {
        b.iter(|| pricing.cost(ProviderKind::AzureOpenAi, black_box("gpt-4o-2024-08-06"), &u))
    });
    token_count::count_text("warm up the tokenizer");
    c.bench_function("estimate prompt tokens (tiktoken o200k)", |b| b.iter(|| token_count::estimate_chat_prompt(black_box(&req))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
