//! Provider clients against the built-in simulator over real loopback HTTP:
//! every provider × {plain, streamed, each error class}, retries, cut streams,
//! Anthropic translation, exact costs, and the OpenAI Python SDK.

use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use switchboard::domain::{Micros, PricingTable, ProviderKind, Secret, TokenUsage, ValidationStatus};
use switchboard::providers::{
    ChatRequest, ChatStream, EmbeddingsRequest, ProviderError, ProviderTarget, Providers, ProvidersConfig, RetryPolicy, StreamEvent,
    StreamSummary,
};
use switchboard::sim::{Faults, SimAccountConfig, SimConfig, SimHandle, Simulator};

mod costs_and_lists;

const OA_KEY: &str = "sk-test-openai-aaaaaaaaaaaaaaaaaaaa1111";
const AN_KEY: &str = "sk-ant-test-anthropic-bbbbbbbbbbbbbbb2222";
const AZ_KEY: &str = "azuretestkeycccccccccccccccccccc3333";
const PROMPT: &str = "Plan a spring wedding in Kent";

const ALL: [ProviderKind; 3] = [ProviderKind::OpenAi, ProviderKind::Anthropic, ProviderKind::AzureOpenAi];

fn account(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "oa",
        ProviderKind::Anthropic => "an",
        ProviderKind::AzureOpenAi => "az",
    }
}

async fn sim() -> SimHandle {
    let mut az = SimAccountConfig::new("az", ProviderKind::AzureOpenAi, AZ_KEY);
    az.deployments = BTreeMap::from([
        ("prod-4o".to_string(), "gpt-4o-2024-08-06".to_string()),
        ("mini".to_string(), "gpt-4o-mini".to_string()),
        ("o4".to_string(), "o4-mini".to_string()),
        ("emb".to_string(), "text-embedding-3-small".to_string()),
    ]);
    let cfg = SimConfig {
        seed: 7,
        accounts: vec![
            SimAccountConfig::new("oa", ProviderKind::OpenAi, OA_KEY),
            SimAccountConfig::new("an", ProviderKind::Anthropic, AN_KEY),
            az,
        ],
    };
    Simulator::start(cfg).await.expect("simulator starts")
}

fn providers(retry: RetryPolicy) -> Providers {
    Providers::new(ProvidersConfig { retry, ..ProvidersConfig::default() }).unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    }
}

/// The target for a provider; Azure uses `deployment` (classic form).
fn target_dep(s: &SimHandle, kind: ProviderKind, deployment: &str) -> ProviderTarget {
    match kind {
        ProviderKind::OpenAi => ProviderTarget::new(kind, s.base_url(), Secret::new(OA_KEY)),
        ProviderKind::Anthropic => ProviderTarget::new(kind, s.base_url(), Secret::new(AN_KEY)),
        ProviderKind::AzureOpenAi => ProviderTarget::azure(s.base_url(), deployment, "2024-10-21", Secret::new(AZ_KEY)),
    }
}

fn target(s: &SimHandle, kind: ProviderKind) -> ProviderTarget {
    target_dep(s, kind, "prod-4o")
}

fn model(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Anthropic => "claude-haiku-4-5",
        _ => "gpt-4o",
    }
}

fn key_of(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => OA_KEY,
        ProviderKind::Anthropic => AN_KEY,
        ProviderKind::AzureOpenAi => AZ_KEY,
    }
}

fn usage(input: u64, output: u64, cached_read: u64, cache_write: u64, reasoning: u64) -> TokenUsage {
    TokenUsage { input, output, cached_read, cache_write, reasoning, estimated: false }
}

/// Reads a stream to its end: the forwarded SSE bytes and the summary.
async fn drain(mut s: ChatStream) -> (Vec<u8>, StreamSummary) {
    let mut bytes = Vec::new();
    let mut summary = None;
    while let Some(ev) = s.next().await {
        match ev {
            StreamEvent::Data(b) => bytes.extend_from_slice(&b),
            StreamEvent::End(sum) => summary = Some(sum),
        }
    }
    (bytes, summary.expect("a stream always ends with a summary"))
}

/// The `data:` payloads of forwarded SSE bytes.
fn sse_payloads(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec()).unwrap().split("\n\n").filter_map(|e| e.strip_prefix("data: ").map(str::to_string)).collect()
}

fn assert_no_key(e: &ProviderError, key: &str) {
    for text in [e.to_string(), format!("{e:?}"), e.provider_message()] {
        assert!(!text.contains(key), "key leaked: {text}");
        assert!(!text.contains(&key[..12]), "key prefix leaked: {text}");
    }
}

#[tokio::test]
async fn plain_chat_for_each_provider() {
    let s = sim().await;
    let p = providers(RetryPolicy::none());
    // Simulator token figures (4 bytes a token): PROMPT is 29 bytes = 8 tokens.
    // OpenAI/Azure prompt = 3 priming + 4 framing + 8 = 15; Anthropic = 4 + 8 = 12.
    // Reply "Simulated {model} reply: Plan a spring wedding in Kent":
    // words 3 + model + 2 + (2+1+2+2+1+2) = 15 + model tokens.
    for (kind, reported_model, want) in [
        (ProviderKind::OpenAi, "gpt-4o", usage(15, 17, 0, 0, 0)),
        (ProviderKind::Anthropic, "claude-haiku-4-5", usage(12, 20, 0, 0, 0)),
        (ProviderKind::AzureOpenAi, "gpt-4o-2024-08-06", usage(15, 20, 0, 0, 0)),
    ] {
        let r = p.chat(&target(&s, kind), &ChatRequest::simple(model(kind), PROMPT)).await.unwrap();
        assert_eq!(r.content(), format!("Simulated {reported_model} reply: {PROMPT}"), "{kind}");
        assert_eq!(r.finish_reason().as_deref(), Some("stop"), "{kind}");
        assert_eq!(r.model, reported_model);
        assert_eq!(r.usage, want, "{kind}");
        assert_eq!(r.attempts, 1);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["object"], "chat.completion", "{kind}");
        assert_eq!(body["choices"][0]["message"]["content"], r.content().as_str());
        assert_eq!(body["usage"]["prompt_tokens"], want.prompt_total());
    }
}

#[tokio::test]
async fn streamed_chat_for_each_provider_matches_plain() {
    let s = sim().await;
    let p = providers(RetryPolicy::none());
    for kind in ALL {
        let t = target(&s, kind);
        let plain = p.chat(&t, &ChatRequest::simple(model(kind), PROMPT)).await.unwrap();
        for client_wants_usage in [false, true] {
            let mut req = ChatRequest::simple(model(kind), PROMPT);
            req.stream = Some(true);
            if client_wants_usage {
                req.stream_options = Some(json!({"include_usage": true}));
            }
            let (bytes, sum) = drain(p.chat_stream(&t, &req).await.unwrap()).await;
            assert!(sum.completed && sum.error.is_none(), "{kind}: {sum:?}");
            assert_eq!(sum.content, plain.content(), "{kind}");
            assert_eq!(sum.finish_reason.as_deref(), Some("stop"));
            assert_eq!(sum.usage, plain.usage, "{kind}: streamed usage equals plain usage");
            let payloads = sse_payloads(&bytes);
            assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"), "{kind}");
            let chunks: Vec<Value> = payloads[..payloads.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
            let mut text = String::new();
            let mut usage_chunks = 0;
            for c in &chunks {
                if kind != ProviderKind::AzureOpenAi
                    || !c["choices"].as_array().unwrap().is_empty()
                    || c.get("usage").is_some_and(|u| !u.is_null())
                {
                    assert_eq!(c["object"], "chat.completion.chunk", "{kind}: {c}");
                }
                if let Some(t) = c["choices"].get(0).and_then(|ch| ch["delta"]["content"].as_str()) {
                    text.push_str(t);
                }
                if c.get("usage").is_some_and(|u| !u.is_null()) {
                    usage_chunks += 1;
                    assert_eq!(c["usage"]["completion_tokens"], plain.usage.output);
                }
            }
            assert_eq!(text, plain.content(), "{kind}: forwarded chunks carry the content");
            assert_eq!(usage_chunks, usize::from(client_wants_usage), "{kind}: usage chunk only when asked");
            let finish: Vec<_> = chunks.iter().filter_map(|c| c["choices"].get(0).and_then(|ch| ch["finish_reason"].as_str())).collect();
            assert_eq!(finish, vec!["stop"], "{kind}");
        }
    }
}

#[tokio::test]
async fn anthropic_translation_round_trip_with_images_stop_and_max_tokens() {
    let s = sim().await;
    let p = providers(RetryPolicy::none());
    let req: ChatRequest = serde_json::from_value(json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You help wedding photographers."},
            {"role": "user", "content": [
                {"type": "text", "text": "Describe this venue photo"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/barn.jpg"}}
            ]}
        ],
        "max_tokens": 5, "temperature": 1.7, "stop": ["\n\n"]
    }))
    .unwrap();
    let r = p.chat(&target(&s, ProviderKind::Anthropic), &req).await.unwrap();
    // System "You help wedding photographers." = 31 bytes = 8 tokens; user text 25 bytes = 7;
    // two images 85 each; framing 4: 8 + 4 + 7 + 170 = 189.
    assert_eq!(r.usage.input, 189);
    // max_tokens 5: "Simulated"(3) " claude-sonnet-4-5"(5) already exceeds, words are dropped until it fits.
    assert_eq!(r.finish_reason().as_deref(), Some("length"));
    assert!(r.usage.output <= 5);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-msg_"));
}

#[tokio::test]
async fn content_filter_outcomes() {
    let s = sim().await;
    let p = providers(RetryPolicy::none());
    let req = |kind| ChatRequest::simple(model(kind), "write something [sim:content_filter]");
    // OpenAI: a 200 with finish_reason content_filter; Anthropic: stop_reason refusal → content_filter.
    for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        let r = p.chat(&target(&s, kind), &req(kind)).await.unwrap();
        assert_eq!(r.finish_reason().as_deref(), Some("content_filter"), "{kind}");
        assert_eq!(r.content(), "");
    }
    // Azure: its 400 content-filter error.
    let e = p.chat(&target(&s, ProviderKind::AzureOpenAi), &req(ProviderKind::AzureOpenAi)).await.unwrap_err();
    assert_eq!((e.class(), e.status_code(), e.is_retryable(), e.counts_against_health()), ("content_filtered", 400, false, false));
}

/// One error class, set up on the simulator, with the expected classification.
struct Case {
    name: &'static str,
    faults: Faults,
    marker: &'static str,
    class: &'static str,
    retryable: bool,
    health: bool,
    status: u16,
}

fn error_cases(kind: ProviderKind) -> Vec<Case> {
    let f = |g: fn(&mut Faults)| {
        let mut x = Faults::default();
        g(&mut x);
        x
    };
    let overloaded_status = 503; // the gateway answers 503 for Anthropic's 529 and OpenAI's 503 alike
    let _ = kind;
    vec![
        Case {
            name: "rate limit",
            faults: f(|x| x.rate_limit_rate = 1.0),
            marker: "",
            class: "rate_limited",
            retryable: true,
            health: false,
            status: 429,
        },
        Case {
            name: "overloaded",
            faults: f(|x| x.overloaded_rate = 1.0),
            marker: "",
            class: "overloaded",
            retryable: true,
            health: true,
            status: overloaded_status,
        },
        Case {
            name: "server error",
            faults: f(|x| x.error_rate = 1.0),
            marker: "",
            class: "server_error",
            retryable: true,
            health: true,
            status: 502,
        },
        Case {
            name: "outage",
            faults: f(|x| x.outage = true),
            marker: "",
            class: "overloaded",
            retryable: true,
            health: true,
            status: 503,
        },
        Case {
            name: "spend limit",
            faults: f(|x| x.spend_limit = true),
            marker: "",
            class: "quota_exhausted",
            retryable: false,
            health: true,
            status: 429,
        },
        Case {
            name: "context length",
            faults: Faults::default(),
            marker: " [sim:context_length]",
            class: "context_length",
            retryable: false,
            health: false,
            status: 400,
        },
        Case {
            name: "timeout",
            faults: f(|x| x.latency.median_ms = 3_000),
            marker: "",
            class: "timeout",
            retryable: true,
            health: true,
            status: 504,
        },
    ]
}

#[tokio::test]
async fn error_classes_for_each_provider_plain_and_streamed() {
    let s = sim().await;
    let p = providers(RetryPolicy::none());
    for kind in ALL {
        for case in error_cases(kind) {
            for stream in [false, true] {
                assert!(s.set_faults(account(kind), case.faults));
                let t = target(&s, kind).with_timeout(Duration::from_millis(300));
                let mut req = ChatRequest::simple(model(kind), &format!("{PROMPT}{}", case.marker));
                req.stream = Some(stream);
                let e = if stream { p.chat_stream(&t, &req).await.unwrap_err() } else { p.chat(&t, &req).await.unwrap_err() };
                let what = format!("{kind} {} stream={stream}: {e}", case.name);
                assert_eq!(e.class(), case.class, "{what}");
                assert_eq!(e.is_retryable(), case.retryable, "{what}");
                assert_eq!(e.counts_against_health(), case.health, "{what}");
                assert_eq!(e.status_code(), case.status, "{what}");
                assert_no_key(&e, key_of(kind));
                if case.class == "rate_limited" {
                    // OpenAI/Azure send retry-after-ms 1000; Anthropic retry-after 1.
                    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)), "{what}");
                }
            }
        }
        s.set_faults(account(kind), Faults::default());
    }
}

#[tokio::test]
async fn auth_bad_model_and_connect_errors() {
    let s = sim().await;
    let p = providers(fast_retry());
    for kind in ALL {
        let mut t = target(&s, kind);
        let wrong = match kind {
            ProviderKind::OpenAi => "sk-proj-wrongwrongwrongwrongwrong9999",
            ProviderKind::Anthropic => "sk-ant-api03-wrongwrongwrongwrong9999",
            ProviderKind::AzureOpenAi => "0123456789abcdef0123456789abcdef",
        };
        t.key = Secret::new(wrong);
        let e = p.chat(&t, &ChatRequest::simple(model(kind), PROMPT)).await.unwrap_err();
        assert_eq!((e.class(), e.status_code(), e.is_retryable(), e.counts_against_health()), ("auth", 502, false, true), "{kind}: {e}");
        assert_no_key(&e, wrong);
        let (status, msg) = p.validate_key(&t).await;
        assert_eq!(status, ValidationStatus::InvalidKey, "{kind}: {msg}");
        assert!(!msg.contains(&wrong[..12]), "{msg}");
        let (status, msg) = p.validate_key(&target(&s, kind)).await;
        assert_eq!(status, ValidationStatus::Valid, "{kind}: {msg}");

        // An unknown model is a bad request (404, OpenAI's code `model_not_found`), not retried. An unknown
        // Azure deployment is the account's misconfiguration: a server error
        // that counts against its health (so the router fails over), not retried.
        let bad = if kind == ProviderKind::AzureOpenAi { target_dep(&s, kind, "nope") } else { target(&s, kind) };
        let e = p.chat(&bad, &ChatRequest::simple("no-such-model", PROMPT)).await.unwrap_err();
        let expected = if kind == ProviderKind::AzureOpenAi { ("server_error", 502, true) } else { ("model_not_found", 404, false) };
        assert_eq!((e.class(), e.status_code(), e.counts_against_health()), expected, "{kind}: {e}");
        assert!(!e.is_retryable(), "{kind}: {e}");
        if kind == ProviderKind::AzureOpenAi {
            assert!(e.to_string().contains("deployment name"), "{e}");
        }
    }
    // Nothing listens: connect error, retried then given up.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = ProviderTarget::new(ProviderKind::OpenAi, format!("http://127.0.0.1:{port}"), Secret::new(OA_KEY));
    let e = p.chat(&t, &ChatRequest::simple("gpt-4o", PROMPT)).await.unwrap_err();
    assert_eq!((e.class(), e.is_retryable(), e.status_code()), ("connect", true, 502), "{e}");
    let (status, _) = p.validate_key(&t).await;
    assert_eq!(status, ValidationStatus::Unreachable);
    // A base URL that redirects (here to the simulator, which would answer):
    // the redirect is not followed, so the key goes nowhere else, and it is a
    // server-side failure that counts against health, not the client's fault.
    let redirector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_port = redirector.local_addr().unwrap().port();
    let location = format!("{}/v1/chat/completions", s.base_url());
    let served = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut n = 0;
        while let Ok(Ok((mut c, _))) = tokio::time::timeout(std::time::Duration::from_millis(500), redirector.accept()).await {
            let mut buf = vec![0u8; 16 * 1024];
            let _ = c.read(&mut buf).await;
            let answer =
                format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            c.write_all(answer.as_bytes()).await.unwrap();
            n += 1;
        }
        n
    });
    let t = ProviderTarget::new(ProviderKind::OpenAi, format!("http://127.0.0.1:{redirect_port}"), Secret::new(OA_KEY));
    let e = p.chat(&t, &ChatRequest::simple("gpt-4o", PROMPT)).await.unwrap_err();
    assert_eq!((e.class(), e.status_code(), e.counts_against_health()), ("server_error", 502, true), "{e}");
    assert!(e.to_string().contains("redirect (307)") && e.to_string().contains("base URL"), "{e}");
    assert_no_key(&e, OA_KEY);
    assert!(served.await.unwrap() >= 1);
    // Validation reports rate limits and spend limits as such.
    s.set_faults("an", Faults { spend_limit: true, ..Faults::default() });
    assert_eq!(p.validate_key(&target(&s, ProviderKind::Anthropic)).await.0, ValidationStatus::QuotaExhausted);
    s.set_faults("oa", Faults { rate_limit_rate: 1.0, ..Faults::default() });
    assert_eq!(p.validate_key(&target(&s, ProviderKind::OpenAi)).await.0, ValidationStatus::RateLimited);
}

/// Plain calls to an `https` upstream go over TLS and check its certificate:
/// an upstream whose certificate no trusted authority signed is refused during
/// the handshake, before the request (and its key) is sent, with an error
/// that names the certificate. (The fixture is a self-signed certificate for
/// `localhost`, made for this test.)
#[tokio::test]
async fn an_https_upstream_with_an_untrusted_certificate_gets_no_request() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    let cert = CertificateDer::from(include_bytes!("../../fixtures/untrusted-localhost.cert.der").to_vec());
    let pkey = PrivateKeyDer::try_from(include_bytes!("../../fixtures/untrusted-localhost.key.der").to_vec()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], pkey)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (handshakes_tx, mut handshakes) = tokio::sync::mpsc::unbounded_channel::<usize>();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), handshakes_tx.clone());
            tokio::spawn(async move {
                // Reports how many request bytes arrived (none if the handshake failed).
                let mut buf = vec![0u8; 4096];
                let n = match acceptor.accept(tcp).await {
                    Ok(mut tls) => tls.read(&mut buf).await.unwrap_or(0),
                    Err(_) => 0,
                };
                let _ = tx.send(n);
            });
        }
    });
    let key = "sk-proj-tlstesttlstesttlstest0000a1b2";
    let t = ProviderTarget::new(ProviderKind::OpenAi, format!("https://localhost:{port}"), Secret::new(key));
    let p = providers(RetryPolicy::none());
    let e = p.chat(&t, &ChatRequest::simple("gpt-4o", PROMPT)).await.unwrap_err();
    assert_eq!(e.class(), "connect", "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "the error names the certificate: {e}");
    assert_no_key(&e, key);
    let got = tokio::time::timeout(Duration::from_secs(10), handshakes.recv()).await.unwrap().unwrap();
    assert_eq!(got, 0, "no request bytes reached the upstream");
}

#[tokio::test]
async fn retries_honour_retry_after_and_give_up_on_long_waits() {
    let s = sim().await;
    let p = providers(fast_retry());
    for (kind, retry_after_ms, min_wait) in [(ProviderKind::OpenAi, 600, 600), (ProviderKind::Anthropic, 1000, 1000)] {
        s.set_faults(account(kind), Faults { rate_limit_rate: 1.0, retry_after_ms, ..Faults::default() });
        let before = s.requests(account(kind));
        let started = Instant::now();
        let (t, req) = (target(&s, kind), ChatRequest::simple(model(kind), PROMPT));
        let (res, ()) = tokio::join!(p.chat(&t, &req), async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            s.set_faults(account(kind), Faults::default());
        });
        let r = res.unwrap();
        let waited = started.elapsed();
        assert_eq!(r.attempts, 2, "{kind}");
        assert!(waited >= Duration::from_millis(min_wait), "{kind}: waited only {waited:?}, the hint was {min_wait} ms");
        assert!(waited < Duration::from_millis(min_wait + 1500), "{kind}: {waited:?}");
        assert_eq!(s.requests(account(kind)) - before, 2);
    }
    // A hint longer than max_retry_after (5 s here): fail at once so the router can fail over.
    s.set_faults("oa", Faults { rate_limit_rate: 1.0, retry_after_ms: 60_000, ..Faults::default() });
    let started = Instant::now();
    let e = p.chat(&target(&s, ProviderKind::OpenAi), &ChatRequest::simple("gpt-4o", PROMPT)).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Server errors are retried with backoff up to max_attempts.
    s.set_faults("oa", Faults { error_rate: 1.0, ..Faults::default() });
    let before = s.requests("oa");
    let e = p.chat(&target(&s, ProviderKind::OpenAi), &ChatRequest::simple("gpt-4o", PROMPT)).await.unwrap_err();
    assert_eq!(e.class(), "server_error");
    assert_eq!(s.requests("oa") - before, 3);
    // Not retryable: one attempt only.
    s.set_faults("oa", Faults { spend_limit: true, ..Faults::default() });
    let before = s.requests("oa");
    p.chat(&target(&s, ProviderKind::OpenAi), &ChatRequest::simple("gpt-4o", PROMPT)).await.unwrap_err();
    assert_eq!(s.requests("oa") - before, 1);
}

#[tokio::test]
async fn cut_streams_end_with_estimated_usage_and_are_not_retried() {
    let s = sim().await;
    let p = providers(fast_retry());
    for kind in ALL {
        s.set_faults(account(kind), Faults { stream_cut_rate: 1.0, stream_cut_after: 5, ..Faults::default() });
        let before = s.requests(account(kind));
        let mut req = ChatRequest::simple(model(kind), PROMPT);
        req.stream = Some(true);
        let (bytes, sum) = drain(p.chat_stream(&target(&s, kind), &req).await.unwrap()).await;
        assert!(!sum.completed, "{kind}");
        let e = sum.error.clone().expect("cut stream has an error");
        assert_eq!(e.class(), "stream_cut", "{kind}: {e}");
        assert!(sum.usage.estimated, "{kind}: {:?}", sum.usage);
        assert!(
            !sum.content.is_empty() && sum.content.len() < "Simulated gpt-4o reply: Plan a spring wedding in Kent".len(),
            "{kind}: {}",
            sum.content
        );
        assert!(sum.usage.output >= 1, "{kind}");
        match kind {
            // Anthropic's message_start already reported the input (12).
            ProviderKind::Anthropic => assert_eq!(sum.usage.input, 12),
            // Our tokenizer's estimate of the prompt.
            _ => assert_eq!(sum.usage.input, switchboard::providers::token_count::estimate_chat_prompt(&req)),
        }
        assert!(!bytes.is_empty(), "{kind}: some bytes were forwarded before the cut");
        assert!(!String::from_utf8_lossy(&bytes).contains("[DONE]"));
        assert_eq!(s.requests(account(kind)) - before, 1, "{kind}: never retried after bytes were forwarded");
        s.set_faults(account(kind), Faults::default());
    }
}

#[tokio::test]
async fn slow_streams_hit_the_idle_timeout() {
    let s = sim().await;
    let p = Providers::new(ProvidersConfig {
        stream_idle_timeout: Duration::from_millis(150),
        retry: RetryPolicy::none(),
        ..ProvidersConfig::default()
    })
    .unwrap();
    s.set_faults("oa", Faults { slow_stream_ms: 400, ..Faults::default() });
    let mut req = ChatRequest::simple("gpt-4o", PROMPT);
    req.stream = Some(true);
    let (_, sum) = drain(p.chat_stream(&target(&s, ProviderKind::OpenAi), &req).await.unwrap()).await;
    assert_eq!(sum.error.map(|e| e.class()), Some("timeout"));
    assert!(sum.usage.estimated);
    // Slow but within the idle timeout: completes.
    s.set_faults("oa", Faults { slow_stream_ms: 20, ..Faults::default() });
    let (_, sum) = drain(p.chat_stream(&target(&s, ProviderKind::OpenAi), &req).await.unwrap()).await;
    assert!(sum.completed && !sum.usage.estimated);
}

/// A table row: provider, Azure deployment, model, what happens, expected usage and cost.
struct CostCase {
    kind: ProviderKind,
    deployment: &'static str,
    model: &'static str,
    case: &'static str,
    usage: TokenUsage,
    micros: i64,
}

fn long_text() -> String {
    // 512 × "wedding " = 4,096 bytes = 1,024 simulator tokens.
    "wedding ".repeat(512)
}

/// The provider modules a file of `src/providers/` names: in `use super::…`
/// and `use crate::providers::…` statements (also grouped, over several
/// lines) and in paths such as `super::openai::X`, outside its unit tests.
fn provider_modules_named(file: &str) -> std::collections::BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/providers");
    let path = dir.join(file);
    // A module that is a folder (`anthropic/`): its files' code, with the
    // providers-level paths written as `crate::providers::` (`super::` in
    // its mod.rs, `super::super::` in the others; their own `super::` names
    // a sibling in the folder, not a provider module).
    let code: String = if path.exists() {
        let src = std::fs::read_to_string(&path).unwrap();
        src.split("#[cfg(test)]").next().unwrap_or_default().to_string()
    } else {
        let folder = dir.join(file.trim_end_matches(".rs"));
        let mut all = String::new();
        for entry in std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display())) {
            let p = entry.unwrap().path();
            let src = std::fs::read_to_string(&p).unwrap();
            let code = src.split("#[cfg(test)]").next().unwrap_or_default();
            let code = if p.file_name().is_some_and(|n| n == "mod.rs") {
                code.replace("super::", "crate::providers::")
            } else {
                code.replace("super::super::", "crate::providers::").replace("super::", "sibling::")
            };
            all.push_str(&code);
        }
        all
    };
    let code = code.as_str();
    let mut names = std::collections::BTreeSet::new();
    for prefix in ["super::", "crate::providers::"] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find("};").or_else(|| group.find('}')).unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let head = item.trim().split("::").next().unwrap_or_default().trim();
                    if !head.is_empty() {
                        names.insert(head.to_string());
                    }
                }
            } else {
                let head: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                names.insert(head);
            }
        }
    }
    names
}
