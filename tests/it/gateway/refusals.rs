//! Refusals: every refusal with its status and OpenAI error shape (bad JSON,
//! no token, a revoked one, an unknown model, a body too large, the rate
//! limit, all routes down), a provider's refusal counted in `/metrics` for
//! every kind of request, and embeddings stopped by a content filter as chat
//! is.

use super::*;

/// Errors counted in `/metrics`, over every route and provider.
fn metric_errors(e: &Env) -> u64 {
    e.router.metrics().requests_by_route().iter().map(|(_, _, errors)| errors).sum()
}

#[tokio::test]
async fn a_providers_refusal_of_the_request_is_counted_in_metrics_for_every_kind_of_request() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Lantern Florals", Tier::Scale, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let refused = |body: Value| {
        let e = &e;
        let t = &t;
        async move {
            let path = if body.get("messages").is_some() { "/chat/completions" } else { "/embeddings" };
            json_of(e.post(path, t, body).await).await
        }
    };
    // Plain chat: the provider's 400 is passed through and counted.
    let (st, b) = refused(json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "[sim:context_length] a brief"}]})).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("context_length")), "{b}");
    assert_eq!(metric_errors(&e), 1);
    // A stream refused before its first byte: the same.
    let (st, b) =
        refused(json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "[sim:context_length] a brief"}]}))
            .await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("context_length")), "{b}");
    assert_eq!(metric_errors(&e), 2, "a stream's refusal is counted");
    // Embeddings the provider finds malformed: the same.
    let (st, b) = refused(json!({"model": "text-embedding-3-small", "input": []})).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("bad_request")), "{b}");
    assert_eq!(metric_errors(&e), 3, "an embeddings refusal is counted");
    assert_eq!(e.router.metrics().refused.load(std::sync::atomic::Ordering::Relaxed), 0, "not counted as unrouted");
    let rows = e.usage_rows(s);
    assert_eq!(rows.len(), 3, "each recorded once");
}

#[tokio::test]
async fn embeddings_stop_on_a_content_filter_refusal_as_chat_does() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Two Keys Studio", Tier::Scale, AiMode::Client, &[]);
    let _a1 = e.client_account(s, "Primary", DEMO_CLIENT_OPENAI_KEY);
    let _a2 = e.client_account(s, "Backup", CLIENT2_KEY);
    let t = e.token(s, false);
    let r = e.post("/embeddings", &t, json!({"model": "text-embedding-3-small", "input": ["[sim:content_filter] the guest list"]})).await;
    let (st, b) = json_of(r).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("content_filtered")), "{b}");
    assert_eq!(b["error"]["type"], "invalid_request_error");
    // Another route would say the same: neither the backup nor platform AI is asked.
    assert_eq!(e.sim.requests("openai-client"), 1);
    assert_eq!(e.sim.requests("openai-client-2"), 0, "no failover on a content-filter refusal");
    assert_eq!(e.sim.requests("openai-platform"), 0);
    assert_eq!(metric_errors(&e), 1);
    // A clean input is served by the primary as usual.
    let r = e.post("/embeddings", &t, json!({"model": "text-embedding-3-small", "input": "a clean one"})).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn every_refusal_has_its_status_and_openai_error_shape() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Velvet Vow Events", Tier::Starter, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let revoked = e.token(s, true);
    let url = format!("{}/chat/completions", e.gw.base_url());

    let check = |status: u16, body: &Value, want_status: u16, want_code: &str| {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["error"]["code"], want_code, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10);
        assert!(body["error"]["type"].is_string());
    };
    let r = e.http.post(&url).bearer_auth(&t).body("{not json").send().await.unwrap();
    let (st, b) = json_of(r).await;
    check(st, &b, 400, "invalid_request");
    let (st, b) = json_of(e.post("/chat/completions", &t, json!({"model": "gpt-4o-mini"})).await).await;
    check(st, &b, 400, "invalid_request");
    assert!(b["error"]["message"].as_str().unwrap().contains("messages"), "{b}");
    let (st, b) = json_of(e.chat("sbk_nope", "gpt-4o-mini", "hi").await).await;
    check(st, &b, 401, "invalid_api_key");
    let (st, b) = json_of(e.http.post(&url).json(&json!({})).send().await.unwrap()).await;
    check(st, &b, 401, "invalid_api_key");
    let (st, b) = json_of(e.chat(&revoked, "gpt-4o-mini", "hi").await).await;
    check(st, &b, 403, "token_revoked");
    let (st, b) = json_of(e.chat(&t, "gpt-7-ultra", "hi").await).await;
    check(st, &b, 404, "model_not_found");
    let big = "x".repeat(gateway::MAX_BODY_BYTES + 10);
    let (st, b) = json_of(e.http.post(&url).bearer_auth(&t).body(big).send().await.unwrap()).await;
    check(st, &b, 413, "request_too_large");
    let r = e
        .http
        .post(&url)
        .bearer_auth(&t)
        .header("X-Switchboard-Request-Type", "poetry")
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let (st, b) = json_of(r).await;
    check(st, &b, 400, "invalid_request");
    assert!(b["error"]["message"].as_str().unwrap().contains("email_template"));

    // Rate limit: Starter is 60/min ×1.5 in June = 90/min with a burst of 22; the clock stands still.
    let mut limited = None;
    for i in 0..40 {
        let r = e.chat(&t, "gpt-4o-mini", "hi").await;
        if r.status() == 429 {
            let ra: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(ra >= 1);
            limited = Some((i, json_of(r).await.1));
            break;
        }
    }
    let (i, b) = limited.expect("the rate limit must refuse a burst");
    assert_eq!(i, 22);
    assert_eq!(b["error"]["code"], "rate_limit_exceeded");
    e.clock.advance(Duration::seconds(60));

    // All routes down: 502/503 with the kinds of failure, not the platform's account labels.
    e.sim.set_outage("openai-platform", true);
    e.sim.set_outage("anthropic-platform", true);
    let (st, b) = json_of(e.chat(&t, "gpt-4o-mini", "hi").await).await;
    assert!(st == 502 || st == 503, "{st} {b}");
    assert_eq!(b["error"]["code"], "all_routes_failed");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("provider overloaded (2 accounts)") && !msg.contains("WedSync"), "{msg}");
    // 404 for unknown endpoints, in the same shape.
    let r = e.http.get(format!("{}/nope", e.gw.base_url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
