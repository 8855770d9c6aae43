//! Key validation against the simulator and a forbidding server: every
//! classification reached (valid, invalid key, rate limited, quota
//! exhausted, server error, unreachable, no permission) and audited without
//! the key; format errors refused before anything is stored.

use super::*;

/// A loopback server answering the model list the way a provider answers a
/// key that is valid but lacks permission (OpenAI's restricted-key 403 and
/// Anthropic's `permission_error`), which the simulator does not produce.
async fn forbidding_server() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/v1/models",
        get(|h: axum::http::HeaderMap| async move {
            let body = if h.contains_key("x-api-key") {
                r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."},"request_id":"req_011"}"#
            } else {
                r#"{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: api.model.read. Check that you have the correct role in your organization (Reader, Writer, Owner) and project (Member, Owner), and if you're using a restricted API key, that it has the necessary scopes.","type":"invalid_request_error","param":null,"code":null}}"#
            };
            (StatusCode::FORBIDDEN, [("content-type", "application/json")], body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[test]
fn validation_reaches_every_classification() {
    // Validation is about the provider's answers; the key lives in the
    // explicit in-memory demo store so this runs with or without a keyring.
    let rt = runtime();
    let sim = start_sim(&rt);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("v.db")).unwrap());
    let svc = service(store.clone(), Vault::demo_in_memory());
    let base = sim.base_url().to_string();
    let add = |provider: ProviderKind, key: &str, base_url: &str| {
        let azure = (provider == ProviderKind::AzureOpenAi)
            .then(|| switchboard::domain::AzureConfig { deployment: "gpt4o-prod".into(), api_version: "2024-10-21".into() });
        let new = NewKey {
            owner: AccountOwner::Platform,
            provider,
            label: None,
            base_url: Some(base_url.to_string()),
            default_model: None,
            azure,
        };
        rt.block_on(svc.add(new, Secret::new(key), false)).unwrap().account.id
    };
    let check = |id: AccountId, want: ValidationStatus, msg_part: &str| {
        let v = rt.block_on(svc.validate(id)).unwrap();
        assert_eq!(v.status, want, "{}", v.message);
        assert!(v.message.to_lowercase().contains(&msg_part.to_lowercase()), "{want}: {}", v.message);
        let a = store.account(id).unwrap();
        assert_eq!(a.last_validation, Some(want));
        assert_eq!(a.last_validation_message.as_deref(), Some(v.message.as_str()));
        assert!(a.last_validated_at.is_some());
    };

    let openai = add(ProviderKind::OpenAi, OPENAI_KEY_1, &base);
    let anthropic = add(ProviderKind::Anthropic, ANTHROPIC_KEY, &base);
    let azure = add(ProviderKind::AzureOpenAi, AZURE_KEY, &base);
    check(openai, ValidationStatus::Valid, "key accepted");
    check(anthropic, ValidationStatus::Valid, "key accepted");
    check(azure, ValidationStatus::Valid, "key accepted");

    // Invalid key: the provider's own 401 message.
    let wrong_openai = add(ProviderKind::OpenAi, "sk-proj-WrongKeyForTheSimulator00000000000000", &base);
    check(wrong_openai, ValidationStatus::InvalidKey, "Incorrect API key provided");
    let wrong_anthropic = add(ProviderKind::Anthropic, "sk-ant-api03-WrongKeyForTheSimulator000000", &base);
    check(wrong_anthropic, ValidationStatus::InvalidKey, "invalid x-api-key");
    let wrong_azure = add(ProviderKind::AzureOpenAi, "ffffffffffffffffffffffffffffffff", &base);
    check(wrong_azure, ValidationStatus::InvalidKey, "Access denied");

    // Rate limited, quota exhausted, a provider's own 503 (reached, so not
    // "unreachable"), and unreachable (a closed port).
    sim.set_faults("openai-a", Faults { rate_limit_rate: 1.0, ..Faults::default() });
    check(openai, ValidationStatus::RateLimited, "rate limit");
    sim.set_faults("openai-a", Faults { spend_limit: true, ..Faults::default() });
    check(openai, ValidationStatus::QuotaExhausted, "quota");
    sim.set_faults("anthropic-a", Faults { spend_limit: true, ..Faults::default() });
    check(anthropic, ValidationStatus::QuotaExhausted, "");
    sim.set_faults("openai-a", Faults { outage: true, ..Faults::default() });
    check(openai, ValidationStatus::ServerError, "");
    sim.set_faults("openai-a", Faults::default());
    check(openai, ValidationStatus::Valid, "key accepted");
    let closed = add(ProviderKind::OpenAi, OPENAI_KEY_2, "http://127.0.0.1:9");
    check(closed, ValidationStatus::Unreachable, "");

    // No permission: a 403 with the providers' real bodies.
    let (forbid_url, task) = rt.block_on(forbidding_server());
    let restricted = add(ProviderKind::OpenAi, OPENAI_KEY_2, &forbid_url);
    check(restricted, ValidationStatus::NoPermission, "insufficient permissions");
    let restricted_an = add(ProviderKind::Anthropic, ANTHROPIC_KEY, &forbid_url);
    check(restricted_an, ValidationStatus::NoPermission, "does not have permission");
    task.abort();

    // The audit log has each result, never a key.
    let audit = store.audit_entries(&AuditFilter { action_prefix: Some("key.validate".into()), ..Default::default() }).unwrap();
    // (A timeout needs a provider that never answers; the health probes' tests cover it.)
    for s in ValidationStatus::ALL.iter().filter(|s| **s != ValidationStatus::Timeout) {
        assert!(audit.iter().any(|e| e.result == s.as_str()), "no audit entry with {s}");
    }
    for e in &audit {
        assert!(!e.detail.contains("LEAKCANARY") && !e.detail.contains(AZURE_CANARY) && !e.detail.contains("WrongKey"), "{}", e.detail);
    }
}

#[test]
fn format_errors_come_before_anything_is_stored() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("f.db")).unwrap());
    let svc = service(store.clone(), Vault::demo_in_memory());
    let new = |provider, base_url: Option<&str>, azure| NewKey {
        owner: AccountOwner::Platform,
        provider,
        label: None,
        base_url: base_url.map(String::from),
        default_model: None,
        azure,
    };
    let cases: Vec<(NewKey, &str, &str)> = vec![
        (new(ProviderKind::OpenAi, None, None), "sk-ant-api03-LEAKCANARYxxxxxxxxxxxx", "Anthropic key"),
        (new(ProviderKind::Anthropic, None, None), "sk-proj-LEAKCANARYxxxxxxxxxxxxxxxx", "starts with 'sk-ant-'"),
        (new(ProviderKind::AzureOpenAi, Some("https://r.openai.azure.com"), None), AZURE_KEY, "deployment and an api-version"),
        (new(ProviderKind::AzureOpenAi, Some("https://r.openai.azure.com"), None), "LEAKCANARY", "32 hexadecimal"),
        (
            new(
                ProviderKind::AzureOpenAi,
                None,
                Some(switchboard::domain::AzureConfig { deployment: "d".into(), api_version: "2024-10-21".into() }),
            ),
            AZURE_KEY,
            "resource endpoint",
        ),
    ];
    for (n, key, want) in cases {
        let e = rt.block_on(svc.add(n, Secret::new(key), false)).unwrap_err();
        assert!(matches!(e, KeyError::Format(_)), "{e}");
        assert!(e.to_string().contains(want), "{e}");
        assert!(!e.to_string().contains("LEAKCANARY") && !e.to_string().contains(AZURE_CANARY), "{e}");
    }
    assert!(store.list_accounts(None).unwrap().is_empty());
    let audit = store.audit_entries(&AuditFilter { action_prefix: Some("key.add".into()), ..Default::default() }).unwrap();
    assert_eq!(audit.len(), 5);
    assert!(audit.iter().all(|e| e.result == "refused"));
}
