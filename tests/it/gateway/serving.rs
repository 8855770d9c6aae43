//! Each route end to end: platform and client routes answered and recorded
//! (a token's last use too), Claude models translated to the OpenAI format,
//! streams forwarded and recorded when they end, embeddings and the model
//! list, `/metrics` and `/healthz`, the OpenAI Python SDK through the
//! gateway, and the router's background work (inline without a runtime).

use super::*;

#[tokio::test]
async fn platform_route_answers_and_records_usage() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Capture Moments", Tier::Professional, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let r = e.chat(&t, "gpt-4o-mini", "Write a thank-you note for the Hendersons.").await;
    assert_eq!(r.headers()["x-switchboard-route"], "platform");
    let (status, body) = json_of(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(!body["choices"][0]["message"]["content"].as_str().unwrap().is_empty());
    let total = body["usage"]["total_tokens"].as_i64().unwrap();
    let rows = e.usage_rows(s);
    assert_eq!(rows.len(), 1, "exactly one usage row");
    assert_eq!(rows[0].1, 0, "route platform");
    assert_eq!(rows[0].2, 0, "status ok");
    assert_eq!(rows[0].3, total, "ledger tokens equal the answer's usage");
    assert!(rows[0].4 > 0, "cost recorded");
    assert_eq!(rows[0].5, e.platform_openai.0);
    // The quota counter moved by exactly that.
    assert_eq!(e.router.quota_snapshot(s).unwrap().0, total as u64);
}

#[tokio::test]
async fn a_tokens_last_use_is_recorded_at_most_once_a_minute() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Capture Moments", Tier::Professional, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let last_used = || e.store.list_tokens(Some(s)).unwrap()[0].last_used_at;
    assert_eq!(last_used(), None);
    let wait_for = |want: chrono::DateTime<Utc>| async move {
        for _ in 0..200 {
            if last_used() == Some(want) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("last use is {:?}, expected {want}", last_used());
    };
    assert_eq!(e.chat(&t, "gpt-4o-mini", "Hello").await.status(), 200);
    wait_for(june()).await;
    // Within the minute: not written again.
    e.clock.advance(Duration::seconds(30));
    assert_eq!(e.chat(&t, "gpt-4o-mini", "Hello again").await.status(), 200);
    e.clock.advance(Duration::seconds(40));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(last_used(), Some(june()));
    // A minute later: written with the new time.
    assert_eq!(e.chat(&t, "gpt-4o-mini", "And again").await.status(), 200);
    wait_for(june() + Duration::seconds(70)).await;
}

#[tokio::test]
async fn client_route_uses_the_suppliers_own_account_and_not_the_quota() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Grand Ballroom", Tier::Scale, AiMode::Client, &[]);
    let acc = e.client_account(s, "Ballroom OpenAI", DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    let r = e.chat(&t, "gpt-4o-mini", "Describe the ballroom for a brochure.").await;
    assert_eq!(r.headers()["x-switchboard-route"], "client");
    assert_eq!(r.status(), 200);
    assert_eq!(e.sim.requests("openai-client"), 1);
    let rows = e.usage_rows(s);
    assert_eq!((rows[0].1, rows[0].5), (1, acc.0), "route client on its own account");
    assert_eq!(e.router.quota_snapshot(s).unwrap().0, 0, "client AI does not use the platform quota");
}

#[tokio::test]
async fn claude_models_are_translated_to_openai_format() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Perfect Day Planning", Tier::Professional, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let r = e
        .post(
            "/chat/completions",
            &t,
            json!({"model": "claude-haiku-4-5", "messages": [{"role": "system", "content": "You are a wedding planner."}, {"role": "user", "content": "Plan a timeline."}], "max_tokens": 80}),
        )
        .await;
    let (status, body) = json_of(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["usage"]["prompt_tokens"].as_i64().unwrap() > 0);
    assert_eq!(e.sim.requests("anthropic-platform"), 1);
}

#[tokio::test]
async fn streams_are_forwarded_and_recorded_when_they_end() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Bloom Florals", Tier::Starter, AiMode::Platform, &[]);
    let t = e.token(s, false);
    for model in ["gpt-4o-mini", "claude-haiku-4-5"] {
        let r = e
            .post(
                "/chat/completions",
                &t,
                json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "Name three flowers for June."}]}),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let mut body = String::new();
        let mut s2 = r.bytes_stream();
        while let Some(chunk) = s2.next().await {
            body.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
        assert!(body.contains("chat.completion.chunk"), "{body}");
        assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    }
    e.router.ledger().flush().await;
    let rows = e.usage_rows(s);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.2 == 0 && r.3 > 0), "{rows:?}");
    assert_eq!(e.router.in_flight(), 0, "ended streams are no longer in flight");
    // An open stream counts as in flight (for /metrics) until its client goes away.
    // Two seconds between chunks: the stream outlasts the plain request below.
    e.sim.update_faults("openai-platform", |f| f.slow_stream_ms = 2_000);
    let r = e
        .post(
            "/chat/completions",
            &t,
            json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Slowly, please."}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let metrics = e.http.get(format!("http://{}/metrics", e.gw.addr())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchboard_requests_in_flight 1"), "{metrics}");
    // A plain request beside an open stream is answered at once: its usage
    // does not wait for the stream's.
    assert_eq!(e.router.writers_soon(), 0);
    let plain = tokio::time::timeout(std::time::Duration::from_secs(10), e.chat(&t, "gpt-4o-mini", "Quick one beside the stream."))
        .await
        .expect("a plain request beside an open stream waited for the stream's usage");
    assert_eq!(plain.status(), 200);
    drop(r);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while e.router.in_flight() != 0 {
        assert!(std::time::Instant::now() < deadline, "a stream whose client went away stays in flight");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows(s).len(), 4, "the abandoned stream's usage is recorded too");
}

#[tokio::test]
async fn embeddings_and_models() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Harbor Catering", Tier::Scale, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let r = e.post("/embeddings", &t, json!({"model": "text-embedding-3-small", "input": ["menu tasting notes"]})).await;
    let (status, body) = json_of(r).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"][0]["embedding"].as_array().unwrap().len() > 10);
    let rows = e.usage_rows(s);
    assert_eq!(rows.len(), 1);
    let models = e.http.get(format!("{}/models", e.gw.base_url())).bearer_auth(&t).send().await.unwrap();
    let (status, body) = json_of(models).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"gpt-4o") && ids.contains(&"claude-sonnet-4-5"), "{ids:?}");
}

#[tokio::test]
async fn a_router_given_no_runtime_does_its_background_work_inline_and_one_given_a_runtime_uses_it() {
    let e = env(RouterConfig::default()).await;
    let breaker_audits = |e: &Env| {
        e.store
            .audit_entries(&switchboard::store::AuditFilter { action_prefix: Some("breaker.".into()), ..Default::default() })
            .unwrap()
            .len()
    };
    // As the CLI's bookkeeping builds one: no runtime given, so its audit
    // line is written before `force_breaker` returns.
    let offline = Router::new(
        e.store.clone(),
        Providers::new(ProvidersConfig::default()).unwrap(),
        Arc::new(PricingTable::builtin()),
        Arc::new(e.clock.clone()),
        Ledger::start(&e.store).unwrap(),
        RouterConfig::default(),
        None,
    )
    .unwrap();
    offline.force_breaker(e.platform_openai, true);
    assert_eq!(breaker_audits(&e), 1, "written inline");
    // The gateway's router was given this test's runtime: its write runs there.
    e.router.force_breaker(e.platform_openai, true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while breaker_audits(&e) < 2 {
        assert!(std::time::Instant::now() < deadline, "the background audit write never ran");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn metrics_and_health_endpoints() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Metrics Studio", Tier::Scale, AiMode::Platform, &[]);
    let t = e.token(s, false);
    e.chat(&t, "gpt-4o-mini", "hi").await;
    let m = e.http.get(format!("http://{}/metrics", e.gw.addr())).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("switchboard_requests_total{route=\"platform\",provider=\"openai\"} 1"), "{m}");
    assert!(m.contains("switchboard_request_duration_seconds_bucket"));
    assert!(m.contains("switchboard_breaker_state{account="));
    assert!(m.contains("switchboard_cost_micro_usd_total"));
    let h = e.http.get(format!("http://{}/healthz", e.gw.addr())).send().await.unwrap();
    assert_eq!(h.status(), 200);
}

#[tokio::test]
async fn the_openai_python_sdk_works_through_the_gateway() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("SDK Studio", Tier::Scale, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let stdout =
        crate::support::run_python_script("gateway_sdk.py", &[], &[("GATEWAY_BASE_URL", &e.gw.base_url()), ("GATEWAY_TOKEN", &t)]).await;
    assert!(stdout.contains("plain ok") && stdout.contains("stream ok") && stdout.contains("errors ok"), "{stdout}");
    e.router.ledger().flush().await;
    assert!(e.usage_rows(s).len() >= 3);
}
