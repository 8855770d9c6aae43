//! Property tests of the ingress: malformed and adversarial chat and
//! embeddings bodies (wrong types, huge numbers, deep nesting, odd Unicode,
//! missing fields, invalid UTF-8) and headers (odd Authorization, long and
//! non-ASCII values, odd Idempotency-Key / X-Request-Id), sent over loopback
//! to one real gateway on the simulator. None may get a 5xx; every refusal is
//! an OpenAI-shaped 4xx; the gateway serves a normal request afterwards.
//! Valid-but-odd requests may reach the simulator and get a 200.
//!
//! Cases: `SWITCHBOARD_PROPTEST_CASES` (default 1,500 bodies and 500 header
//! sets); a separate test sends the 10 MB cases.

use super::{Env, env, is_openai_error};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use switchboard::gateway::GatewayConfig;

fn cases(default: u32) -> u32 {
    std::env::var("SWITCHBOARD_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Text with the odd corners of Unicode: controls, NUL, surrogate-free
/// astral characters, combining marks, right-to-left marks, BOMs.
fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[\\x00-\\x1f\"\\\\]{0,20}",
        Just("\u{FEFF}\u{202E}e\u{301}\u{1F470}\u{200D}\u{2640}\u{FE0F}".to_string()),
        Just("sbk_".to_string()),
        Just(String::new()),
        "[a-z ]{0,2000}",
    ]
}

/// Numbers a client may put where a count belongs.
fn odd_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(16_384)),
        Just(json!(16_385)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1e300)),
        Just(json!(-0.5)),
        Just(json!(1.5)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        Just(json!("100")),
        Just(Value::Null),
    ]
}

/// Any JSON value, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), odd_number(), odd_text().prop_map(Value::String),];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("model"),
        Just("messages"),
        Just("role"),
        Just("content"),
        Just("text"),
        Just("type"),
        Just("image_url"),
        Just("max_tokens"),
        Just("max_completion_tokens"),
        Just("stream"),
        Just("stream_options"),
        Just("include_usage"),
        Just("input"),
        Just("stop"),
        Just("temperature"),
        Just("user"),
        Just("n"),
        Just("tools"),
    ]
    .prop_map(str::to_string)
}

fn model() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(json!("gpt-4o-mini")),
        1 => Just(json!("claude-haiku-4-5")),
        1 => Just(json!("text-embedding-3-small")),
        1 => Just(json!("o4-mini")),
        1 => Just(json!("gpt-4o-2024-08-06")),
        1 => Just(json!("azure/gpt-4o")),
        1 => odd_text().prop_map(Value::String),
        1 => any_json(),
    ]
}

fn content() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => odd_text().prop_map(Value::String),
        1 => prop::collection::vec(
            prop_oneof![
                odd_text().prop_map(|t| json!({"type": "text", "text": t})),
                Just(json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}})),
                any_json(),
            ],
            0..4
        )
        .prop_map(Value::Array),
        1 => any_json(),
    ]
}

fn message() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (prop_oneof![Just(json!("user")), Just(json!("system")), Just(json!("assistant")), Just(json!("tool")), odd_text().prop_map(Value::String), any_json()], content())
            .prop_map(|(role, content)| json!({"role": role, "content": content})),
        1 => content().prop_map(|content| json!({"content": content})),
        1 => any_json(),
    ]
}

/// A chat body: mostly well-formed in outline, with odd values and fields
/// left out or of the wrong type.
fn chat_body() -> impl Strategy<Value = Value> {
    (
        prop::option::of(model()),
        prop::option::of(prop_oneof![4 => prop::collection::vec(message(), 0..4).prop_map(Value::Array), 1 => any_json()]),
        prop::option::of(odd_number()),
        prop::option::of(odd_number()),
        prop::option::of(prop_oneof![Just(json!(true)), Just(json!(false)), any_json()]),
        prop::option::of(any_json()),
    )
        .prop_map(|(model, messages, max_tokens, max_completion, stream, stop)| {
            let mut b = serde_json::Map::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    b.insert(k.to_string(), v);
                }
            };
            put("model", model);
            put("messages", messages);
            put("max_tokens", max_tokens);
            put("max_completion_tokens", max_completion);
            put("stream", stream);
            put("stop", stop);
            Value::Object(b)
        })
}

fn embeddings_body() -> impl Strategy<Value = Value> {
    (
        prop::option::of(model()),
        prop::option::of(prop_oneof![
            odd_text().prop_map(Value::String),
            prop::collection::vec(odd_text(), 0..5).prop_map(|v| json!(v)),
            prop::collection::vec(prop::collection::vec(any::<i64>(), 0..20), 0..3).prop_map(|v| json!(v)),
            any_json(),
        ]),
    )
        .prop_map(|(model, input)| {
            let mut b = json!({});
            if let Some(m) = model {
                b["model"] = m;
            }
            if let Some(i) = input {
                b["input"] = i;
            }
            b
        })
}

/// The bytes of a body: JSON, JSON cut short, nested deep, or not JSON at all.
fn body_bytes(json: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => json.clone().prop_map(|v| v.to_string().into_bytes()),
        1 => (json, any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let s = v.to_string().into_bytes();
            let cut = i.index(s.len().max(1));
            s[..cut.min(s.len())].to_vec()
        }),
        1 => (1usize..3000, any::<bool>()).prop_map(|(depth, arr)| {
            let (open, close) = if arr { ("[", "]") } else { ("{\"messages\":", "}") };
            format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => (any::<u8>().prop_filter("invalid UTF-8 start", |b| *b >= 0x80)).prop_map(|b| {
            let mut v = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""#.to_vec();
            v.push(b);
            v.extend_from_slice(br#""}]}"#);
            v
        }),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    embeddings: bool,
    body: Vec<u8>,
    /// `None`: the supplier's valid token.
    auth: Option<Vec<u8>>,
    idempotency_key: Option<Vec<u8>>,
    request_id: Option<Vec<u8>>,
    request_type: Option<Vec<u8>>,
    content_type: Option<Vec<u8>>,
}

/// A header value's bytes: visible ASCII, obs-text (0x80–0xFF), tabs, long ones.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..64),
        (1usize..60_000).prop_map(|n| vec![b'k'; n]),
        Just("Ünïcødé 🎉".as_bytes().to_vec()),
        Just(Vec::new()),
    ]
}

fn auth() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        6 => Just(None),
        1 => header_bytes().prop_map(Some),
        1 => header_bytes().prop_map(|b| Some([b"Bearer ".to_vec(), b].concat())),
        1 => Just(Some(b"Basic dXNlcjpwYXNz".to_vec())),
        1 => Just(Some(b"Bearer".to_vec())),
        1 => Just(Some(b"bearer   ".to_vec())),
    ]
}

fn case(body: impl Strategy<Value = Vec<u8>>, embeddings: bool) -> impl Strategy<Value = Case> {
    (
        body,
        auth(),
        prop::option::of(header_bytes()),
        prop::option::of(header_bytes()),
        prop::option::of(prop_oneof![Just(b"email_template".to_vec()), Just(b"poetry".to_vec()), header_bytes()]),
        prop::option::of(prop_oneof![Just(b"application/json".to_vec()), Just(b"text/plain".to_vec()), header_bytes()]),
    )
        .prop_map(move |(body, auth, idempotency_key, request_id, request_type, content_type)| Case {
            embeddings,
            body,
            auth,
            idempotency_key,
            request_id,
            request_type,
            content_type,
        })
}

/// Sends a case; the answer must not be a 5xx and a refusal must be OpenAI-shaped.
async fn check(e: &Env, c: &Case) -> Result<(), TestCaseError> {
    let path = if c.embeddings { "/v1/embeddings" } else { "/v1/chat/completions" };
    let mut r = e.http.post(e.url(path)).body(c.body.clone());
    let header = |name: &'static str, v: &[u8]| reqwest::header::HeaderValue::from_bytes(v).ok().map(|v| (name, v));
    let auth = match &c.auth {
        None => header("authorization", format!("Bearer {}", e.token).as_bytes()),
        Some(a) => header("authorization", a),
    };
    let headers = [
        auth,
        c.idempotency_key.as_deref().and_then(|v| header("idempotency-key", v)),
        c.request_id.as_deref().and_then(|v| header("x-request-id", v)),
        c.request_type.as_deref().and_then(|v| header("x-switchboard-request-type", v)),
        c.content_type.as_deref().and_then(|v| header("content-type", v)),
    ];
    for (name, v) in headers.into_iter().flatten() {
        r = r.header(name, v);
    }
    let resp = r.send().await.map_err(|err| TestCaseError::fail(format!("no answer: {err}")))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    prop_assert!(status < 500, "{status} for {c:?}: {text}");
    if status >= 400 {
        let body: Value = serde_json::from_str(&text).map_err(|_| TestCaseError::fail(format!("{status}, not JSON: {text}")))?;
        prop_assert!(is_openai_error(&body), "{status}, not OpenAI-shaped: {text}");
    }
    Ok(())
}

fn run(e: &Env, rt: &tokio::runtime::Runtime, n: u32, strategy: impl Strategy<Value = Case>) {
    let mut runner = TestRunner::new(Config { cases: n, failure_persistence: None, ..Config::default() });
    runner.run(&strategy, |c| rt.block_on(check(e, &c))).unwrap();
}

#[test]
fn malformed_and_adversarial_requests_get_openai_shaped_4xx_never_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let e = rt.block_on(env(GatewayConfig::default()));
    let n = cases(1_500);
    let t0 = std::time::Instant::now();
    run(&e, &rt, n / 2, case(body_bytes(chat_body().boxed()), false));
    run(&e, &rt, n / 4, case(body_bytes(embeddings_body().boxed()), true));
    run(&e, &rt, n / 4, case(body_bytes(any_json().boxed()), false));
    // Header sets on a valid body.
    let valid = Just(br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#.to_vec());
    run(&e, &rt, cases(500), case(valid, false));
    eprintln!("{} cases in {:?}", n + cases(500), t0.elapsed());
    rt.block_on(e.still_serves());
}

#[test]
fn ten_megabyte_values_anywhere_are_answered_with_a_4xx_or_served() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let e = rt.block_on(env(GatewayConfig::default()));
    let big = "é".repeat(5 * 1024 * 1024);
    let bodies = [
        (false, json!({"model": big, "messages": [{"role": "user", "content": "hi"}]})),
        (false, json!({"model": "gpt-4o-mini", "messages": [{"role": big, "content": "hi"}]})),
        (false, json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": big}]})),
        (
            false,
            json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": [{"type": "text", "text": big}]}], "stream": true}),
        ),
        (false, json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stop": [big]})),
        (true, json!({"model": "text-embedding-3-small", "input": big})),
        (true, json!({"model": "text-embedding-3-small", "input": [vec![7; 1_000_000]]})),
    ];
    for (embeddings, body) in bodies {
        let c = Case {
            embeddings,
            body: body.to_string().into_bytes(),
            auth: None,
            idempotency_key: Some(vec![b'k'; 10_000]),
            request_id: None,
            request_type: None,
            content_type: None,
        };
        rt.block_on(check(&e, &c)).unwrap();
    }
    let deep = format!("{}{}", "[".repeat(5_000_000), "]".repeat(5_000_000));
    let c = Case {
        embeddings: false,
        body: deep.into_bytes(),
        auth: None,
        idempotency_key: None,
        request_id: None,
        request_type: None,
        content_type: None,
    };
    rt.block_on(check(&e, &c)).unwrap();
    rt.block_on(e.still_serves());
}
