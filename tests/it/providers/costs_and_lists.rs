//! Costs per provider, embeddings and model lists, the simulator's admin endpoint, malformed requests, the OpenAI SDK and the providers' module structure.

use super::*;

#[tokio::test]
async fn cost_table_plain_and_streamed() {
    // Simulator figures: PROMPT = 8 tokens; OpenAI/Azure prompt = 3 + 4 + 8 = 15 (long: 3 + 4 + 1024 = 1031).
    // Reply tokens: "Simulated" 3 + " {model}" + " reply:" 2 + echoed words
    // (PROMPT's six words: 10; eight × " wedding": 16). Reasoning: 64 + prompt % 64.
    // Prices (µ$ per token): gpt-4o in 2.5 / cached 1.25 / out 10; o4-mini 1.1 / 4.4;
    // azure gpt-4o-mini 0.165 / cached 0.083 / out 0.66; claude-sonnet-4-5 in 3 / write 3.75 / read 0.3 / out 15.
    // Costs are rounded half-up to the micro-dollar.
    let cases = vec![
        // 15 × 2.5 + 17 × 10 = 37.5 + 170 = 207.5 → 208
        CostCase { kind: ProviderKind::OpenAi, deployment: "", model: "gpt-4o", case: "plain", usage: usage(15, 17, 0, 0, 0), micros: 208 },
        // OpenAI has no cache writes: the first long prompt is all input. 1031 × 2.5 + (3+2+2+16=23) × 10 = 2577.5 + 230 = 2807.5 → 2808
        CostCase {
            kind: ProviderKind::OpenAi,
            deployment: "",
            model: "gpt-4o",
            case: "cache-write",
            usage: usage(1031, 23, 0, 0, 0),
            micros: 2808,
        },
        // Repeat: cached = 1031 / 128 × 128 = 1024, input 7. 7 × 2.5 + 1024 × 1.25 + 23 × 10 = 17.5 + 1280 + 230 = 1527.5 → 1528
        CostCase {
            kind: ProviderKind::OpenAi,
            deployment: "",
            model: "gpt-4o",
            case: "cached-input",
            usage: usage(7, 23, 1024, 0, 0),
            micros: 1528,
        },
        // o4-mini: reasoning 64 + 15 = 79; visible 3 + 2 (" o4-mini") + 2 + 10 = 17; output 96.
        // 15 × 1.1 + 96 × 4.4 = 16.5 + 422.4 = 438.9 → 439
        CostCase {
            kind: ProviderKind::OpenAi,
            deployment: "",
            model: "o4-mini",
            case: "reasoning",
            usage: usage(15, 96, 0, 0, 79),
            micros: 439,
        },
        // Azure deployment "mini" = gpt-4o-mini (azure price): output 3 + 3 (" gpt-4o-mini") + 2 + 10 = 18.
        // 15 × 0.165 + 18 × 0.66 = 2.475 + 11.88 = 14.355 → 14
        CostCase {
            kind: ProviderKind::AzureOpenAi,
            deployment: "mini",
            model: "gpt-4o-mini",
            case: "plain",
            usage: usage(15, 18, 0, 0, 0),
            micros: 14,
        },
        // 1031 × 0.165 + (3+3+2+16=24) × 0.66 = 170.115 + 15.84 = 185.955 → 186
        CostCase {
            kind: ProviderKind::AzureOpenAi,
            deployment: "mini",
            model: "gpt-4o-mini",
            case: "cache-write",
            usage: usage(1031, 24, 0, 0, 0),
            micros: 186,
        },
        // 7 × 0.165 + 1024 × 0.083 + 24 × 0.66 = 1.155 + 84.992 + 15.84 = 101.987 → 102
        CostCase {
            kind: ProviderKind::AzureOpenAi,
            deployment: "mini",
            model: "gpt-4o-mini",
            case: "cached-input",
            usage: usage(7, 24, 1024, 0, 0),
            micros: 102,
        },
        // Deployment "o4" = o4-mini (no azure/ price: the OpenAI one): as the OpenAI reasoning case → 439
        CostCase {
            kind: ProviderKind::AzureOpenAi,
            deployment: "o4",
            model: "o4-mini",
            case: "reasoning",
            usage: usage(15, 96, 0, 0, 79),
            micros: 439,
        },
        // Anthropic: input 4 + 8 = 12; output 3 + 5 (" claude-sonnet-4-5") + 2 + 10 = 20.
        // 12 × 3 + 20 × 15 = 36 + 300 = 336
        CostCase {
            kind: ProviderKind::Anthropic,
            deployment: "",
            model: "claude-sonnet-4-5",
            case: "plain",
            usage: usage(12, 20, 0, 0, 0),
            micros: 336,
        },
        // System of 1024 tokens with cache_control, written the first time; user turn 12 tokens stays input.
        // 12 × 3 + 1024 × 3.75 + 20 × 15 = 36 + 3840 + 300 = 4176
        CostCase {
            kind: ProviderKind::Anthropic,
            deployment: "",
            model: "claude-sonnet-4-5",
            case: "cache-write",
            usage: usage(12, 20, 0, 1024, 0),
            micros: 4176,
        },
        // Read the second time: 12 × 3 + 1024 × 0.3 + 20 × 15 = 36 + 307.2 + 300 = 643.2 → 643
        CostCase {
            kind: ProviderKind::Anthropic,
            deployment: "",
            model: "claude-sonnet-4-5",
            case: "cached-input",
            usage: usage(12, 20, 1024, 0, 0),
            micros: 643,
        },
        // reasoning_effort → extended thinking: 64 + 12 = 76 thinking tokens inside output_tokens
        // (Anthropic does not report them apart): output 20 + 76 = 96. 12 × 3 + 96 × 15 = 36 + 1440 = 1476
        CostCase {
            kind: ProviderKind::Anthropic,
            deployment: "",
            model: "claude-sonnet-4-5",
            case: "reasoning",
            usage: usage(12, 96, 0, 0, 0),
            micros: 1476,
        },
    ];
    let pricing = PricingTable::builtin();
    let p = providers(RetryPolicy::none());
    for c in &cases {
        for stream in [false, true] {
            let s = sim().await; // fresh prompt cache per row
            let t = target_dep(&s, c.kind, c.deployment);
            let mut req = match (c.kind, c.case) {
                (ProviderKind::Anthropic, "cache-write" | "cached-input") => serde_json::from_value(json!({
                    "model": c.model,
                    "messages": [
                        {"role": "system", "content": [{"type": "text", "text": long_text(), "cache_control": {"type": "ephemeral"}}]},
                        {"role": "user", "content": PROMPT}
                    ]
                }))
                .unwrap(),
                (_, "cache-write" | "cached-input") => ChatRequest::simple(c.model, &long_text()),
                _ => ChatRequest::simple(c.model, PROMPT),
            };
            if c.kind == ProviderKind::Anthropic && c.case == "reasoning" {
                req.extra.insert("reasoning_effort".into(), json!("low"));
            }
            if c.case == "cached-input" {
                p.chat(&t, &req).await.unwrap(); // warm the cache
            }
            req.stream = Some(stream);
            let (got_usage, got_model) = if stream {
                let (_, sum) = drain(p.chat_stream(&t, &req).await.unwrap()).await;
                assert!(sum.completed);
                (sum.usage, sum.model)
            } else {
                let r = p.chat(&t, &req).await.unwrap();
                (r.usage, r.model)
            };
            let what = format!("{} {} {} stream={stream}", c.kind, c.model, c.case);
            // Anthropic reports no thinking figure: the thinking text's count is
            // the reasoning part of the output (priced as output all the same).
            let mut got_usage = got_usage;
            if c.kind == ProviderKind::Anthropic && c.case == "reasoning" {
                assert!(got_usage.reasoning > 0 && got_usage.reasoning < got_usage.output, "{what}: {got_usage:?}");
                got_usage.reasoning = 0;
            }
            assert_eq!(got_usage, c.usage, "{what}");
            assert_eq!(pricing.cost(c.kind, &got_model, &got_usage), Some(Micros(c.micros)), "{what}");
        }
    }
}

#[tokio::test]
async fn embeddings_and_model_lists() {
    let s = sim().await;
    let p = providers(RetryPolicy::none());
    let req: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "text-embedding-3-small", "input": ["first dance", "cake"]})).unwrap();
    // "first dance" 11 bytes = 3 tokens, "cake" = 1.
    let r = p.embeddings(&target(&s, ProviderKind::OpenAi), &req).await.unwrap();
    assert_eq!(r.usage, usage(4, 0, 0, 0, 0));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 1536);
    let r = p.embeddings(&target_dep(&s, ProviderKind::AzureOpenAi, "emb"), &req).await.unwrap();
    assert_eq!((r.usage.input, r.model.as_str()), (4, "text-embedding-3-small"));
    let e = p.embeddings(&target(&s, ProviderKind::Anthropic), &req).await.unwrap_err();
    assert_eq!(e.class(), "unsupported");
    assert_eq!(PricingTable::builtin().cost(ProviderKind::OpenAi, "text-embedding-3-small", &usage(4, 0, 0, 0, 0)), Some(Micros(0)));

    let oa = p.list_models(&target(&s, ProviderKind::OpenAi)).await.unwrap();
    assert!(oa.iter().any(|m| m.id == "gpt-4o"));
    let an = p.list_models(&target(&s, ProviderKind::Anthropic)).await.unwrap();
    assert!(an.iter().any(|m| m.id == "claude-sonnet-4-5"));
    let az = p.list_models(&target(&s, ProviderKind::AzureOpenAi)).await.unwrap();
    assert!(az.iter().any(|m| m.id == "gpt-4o-2024-08-06"));
    // Azure's v1 form: model in the body is the deployment.
    let v1 = ProviderTarget::azure(format!("{}/openai/v1", s.base_url()), "mini", "v1", Secret::new(AZ_KEY));
    let r = p.chat(&v1, &ChatRequest::simple("anything", PROMPT)).await.unwrap();
    assert_eq!(r.model, "gpt-4o-mini");
    assert_eq!(p.validate_key(&v1).await.0, ValidationStatus::Valid);
    // The model list belongs to the resource: validation also asks the
    // deployment (with an empty chat that uses no tokens), in both URL forms.
    let (status, msg) = p.validate_key(&target(&s, ProviderKind::AzureOpenAi)).await;
    assert_eq!(status, ValidationStatus::Valid, "{msg}");
    assert!(msg.contains("deployment 'prod-4o' found"), "{msg}");
    for t in [
        target_dep(&s, ProviderKind::AzureOpenAi, "prod-4o-typo"),
        ProviderTarget::azure(format!("{}/openai/v1", s.base_url()), "mini-typo", "v1", Secret::new(AZ_KEY)),
    ] {
        let (status, msg) = p.validate_key(&t).await;
        assert_eq!(status, ValidationStatus::NoPermission, "{msg}");
        assert!(msg.contains("no deployment named") && msg.contains("-typo'"), "{msg}");
        assert!(!msg.contains(AZ_KEY), "{msg}");
    }
}

#[tokio::test]
async fn admin_endpoint_and_determinism() {
    let s = sim().await;
    let p = providers(RetryPolicy::none());
    let http = reqwest::Client::new();
    let url = format!("{}/_sim/accounts/oa/faults", s.base_url());
    let r = http.post(&url).body(r#"{"outage": true}"#).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.faults("oa").unwrap().outage);
    let e = p.chat(&target(&s, ProviderKind::OpenAi), &ChatRequest::simple("gpt-4o", PROMPT)).await.unwrap_err();
    assert_eq!(e.class(), "overloaded");
    http.post(&url).body(r#"{"outage": false}"#).send().await.unwrap();
    p.chat(&target(&s, ProviderKind::OpenAi), &ChatRequest::simple("gpt-4o", PROMPT)).await.unwrap();
    assert_eq!(http.post(&url).body(r#"{"nonsense": 1}"#).send().await.unwrap().status(), 400);
    assert_eq!(http.post(format!("{}/_sim/accounts/nobody/faults", s.base_url())).body("{}").send().await.unwrap().status(), 404);
    let list: Value = http.get(format!("{}/_sim/accounts", s.base_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(!list.to_string().contains(OA_KEY), "the admin list shows fingerprints only");

    // Same seed, same faults → the same sequence of outcomes.
    let mut runs = Vec::new();
    for _ in 0..2 {
        let s = sim().await;
        s.set_faults("oa", Faults { error_rate: 0.3, rate_limit_rate: 0.2, ..Faults::default() });
        let mut seq = String::new();
        for _ in 0..40 {
            match p.chat(&target(&s, ProviderKind::OpenAi), &ChatRequest::simple("gpt-4o", PROMPT)).await {
                Ok(_) => seq.push('.'),
                Err(e) => seq.push(e.class().chars().next().unwrap()),
            }
        }
        runs.push(seq);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains('.') && runs[0].contains('s') && runs[0].contains('r'), "{}", runs[0]);
}

#[tokio::test]
async fn malformed_requests_get_provider_errors_not_panics() {
    let s = sim().await;
    let http = reqwest::Client::new();
    for (path, auth, body) in [
        ("/v1/chat/completions", ("authorization", format!("Bearer {OA_KEY}")), "{not json"),
        ("/v1/chat/completions", ("authorization", format!("Bearer {OA_KEY}")), r#"{"model": 5}"#),
        ("/v1/messages", ("x-api-key", AN_KEY.to_string()), r#"{"model":"claude-haiku-4-5"}"#),
    ] {
        let mut rb = http.post(format!("{}{path}", s.base_url())).header(auth.0, auth.1).body(body);
        if path == "/v1/messages" {
            rb = rb.header("anthropic-version", "2023-06-01");
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 400, "{path} {body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    // Azure's deployment form needs no model in the body; OpenAI's does.
    let r = http
        .post(format!("{}/openai/deployments/mini/chat/completions?api-version=2024-10-21", s.base_url()))
        .header("api-key", AZ_KEY)
        .body(r#"{"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{}/v1/chat/completions", s.base_url()))
        .bearer_auth(OA_KEY)
        .body(r#"{"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Anthropic requires its version header.
    let r = http.post(format!("{}/v1/messages", s.base_url())).header("x-api-key", AN_KEY).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // No key at all: OpenAI's real 401 body.
    let r = http.post(format!("{}/v1/chat/completions", s.base_url())).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().starts_with("You didn't provide an API key"));
}

#[tokio::test]
async fn openai_python_sdk_reads_the_simulator() {
    let s = sim().await;
    let base = s.base_url().to_string();
    let vars =
        [("SIM_BASE_URL", base.as_str()), ("SIM_OPENAI_KEY", OA_KEY), ("SIM_AZURE_KEY", AZ_KEY), ("SIM_AZURE_DEPLOYMENT", "prod-4o")];
    crate::support::run_python_script("sdk_check.py", &[], &vars).await;
}

#[test]
fn stream_reader_and_provider_dialects_do_not_import_each_other() {
    let dialects = ["openai", "anthropic", "azure"];
    let stream = provider_modules_named("stream.rs");
    for d in dialects {
        assert!(!stream.contains(d), "stream.rs imports the provider module {d}: {stream:?}");
    }
    assert!(stream.contains("translate"), "stream.rs reads through the StreamTranslator trait: {stream:?}");
    for d in dialects {
        let names = provider_modules_named(&format!("{d}.rs"));
        assert!(!names.contains("stream"), "{d}.rs imports stream.rs: {names:?}");
    }
    let leaf = provider_modules_named("translate.rs");
    for m in dialects.iter().chain(&["stream"]) {
        assert!(!leaf.contains(*m), "translate.rs must stay a leaf, but imports {m}: {leaf:?}");
    }
    // The check itself sees an import when there is one.
    let anthropic = provider_modules_named("anthropic.rs");
    assert!(anthropic.contains("translate") && anthropic.contains("token_count") && anthropic.contains("wire"), "{anthropic:?}");
}
