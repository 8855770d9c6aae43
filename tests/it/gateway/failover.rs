//! Failover: a client account's outage fails over to platform AI and comes
//! back by itself (breaker, audit log), a missing Azure deployment fails over
//! instead of failing the request, a half-open trial whose client went away
//! still closes the breaker, and a client supplier's own other accounts come
//! first (platform failover may be forbidden).

use super::*;

#[tokio::test]
async fn client_outage_fails_over_to_platform_and_returns_by_itself() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Grand Ballroom", Tier::Scale, AiMode::Client, &[]);
    let acc = e.client_account(s, "Ballroom OpenAI", DEMO_CLIENT_OPENAI_KEY);
    let t = e.token(s, false);
    assert_eq!(e.chat(&t, "gpt-4o-mini", "before").await.headers()["x-switchboard-route"], "client");

    e.sim.set_outage("openai-client", true);
    let mut routes = Vec::new();
    for i in 0..20 {
        let r = e.chat(&t, "gpt-4o-mini", &format!("during outage {i}")).await;
        assert_eq!(r.status(), 200, "no client request fails during the switch");
        routes.push(r.headers()["x-switchboard-route"].to_str().unwrap().to_string());
        e.clock.advance(Duration::seconds(1));
    }
    assert!(routes.iter().all(|r| r == "failover"), "{routes:?}");
    let states = e.router.breaker_states();
    let (_, st) = states.iter().find(|(a, _)| a.id == acc).unwrap();
    assert_eq!(st.name(), "open");
    // The open breaker keeps traffic off the dead account (no more requests to it).
    let before = e.sim.requests("openai-client");
    e.chat(&t, "gpt-4o-mini", "still out").await;
    assert_eq!(e.sim.requests("openai-client"), before);

    // The provider recovers; after the open period a trial goes through and traffic returns.
    e.sim.set_outage("openai-client", false);
    e.clock.advance(Duration::seconds(31));
    let r = e.chat(&t, "gpt-4o-mini", "after").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchboard-route"], "client");
    assert_eq!(e.chat(&t, "gpt-4o-mini", "after 2").await.headers()["x-switchboard-route"], "client");

    // Every step is in the audit log.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let actions: Vec<String> = e.store.audit_entries(&Default::default()).unwrap().into_iter().map(|a| a.action).rev().collect();
    let pos = |a: &str| actions.iter().position(|x| x == a).unwrap_or_else(|| panic!("{a} missing from {actions:?}"));
    assert!(pos("failover.start") < pos("breaker.open") || pos("breaker.open") < pos("failover.end"));
    assert!(pos("breaker.close") <= pos("failover.end"));
    // Failover usage is recorded as such, and counts against the platform quota.
    let rows = e.usage_rows(s);
    assert!(rows.iter().filter(|r| r.1 == 2).count() >= 20, "failover rows");
    assert!(e.router.quota_snapshot(s).unwrap().0 > 0);
}

#[tokio::test]
async fn a_missing_azure_deployment_fails_over_instead_of_failing_the_request() {
    // The deployment is the account's setting: a 404 DeploymentNotFound means
    // the account is misconfigured, not that the client asked for something wrong.
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Azure Typo Bakery", Tier::Scale, AiMode::Client, &[]);
    let acc = e
        .store
        .insert_account(
            &NewAccount {
                owner: AccountOwner::Supplier(s),
                provider: ProviderKind::AzureOpenAi,
                label: "Bakery Azure".into(),
                base_url: e.sim.base_url().to_string(),
                azure: Some(switchboard::domain::AzureConfig { deployment: "gpt-4o-mini-typo".into(), api_version: "2024-10-21".into() }),
                default_model: "gpt-4o-mini".into(),
            },
            june(),
        )
        .unwrap()
        .id;
    e.router.set_key(acc, Some(Secret::new(switchboard::sim::DEMO_AZURE_KEY)));
    e.router.reload().unwrap();
    let t = e.token(s, false);
    let r = e.chat(&t, "gpt-4o-mini", "a cake for 120 guests").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["x-switchboard-route"], "failover");
    assert_eq!(e.sim.requests("azure-platform"), 1, "asked once, not retried");
    let rows = e.usage_rows(s);
    assert_eq!(rows.last().unwrap().1, 2, "recorded as failover usage");
}

#[tokio::test]
async fn a_half_open_trial_whose_client_went_away_completes_and_closes_the_breaker() {
    // After the open period one trial request may reach the account. If its
    // client gives up mid-call, the request still runs to completion on its
    // own task: the trial reports its outcome (the breaker closes) and the
    // call is recorded as `client_gone`. (A trial whose request future is
    // dropped gives the trial back: see accounting::dropped_requests_leak_nothing.)
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Trial Studio", Tier::Scale, AiMode::Platform, &[]);
    let t = e.token(s, false);
    let state = |e: &Env| {
        let states = e.router.breaker_states();
        states.iter().find(|(a, _)| a.id == e.platform_openai).unwrap().1.name()
    };
    e.sim.set_outage("openai-platform", true);
    for i in 0..6 {
        // Served by the Anthropic platform account meanwhile.
        assert_eq!(e.chat(&t, "gpt-4o-mini", &format!("outage {i}")).await.status(), 200);
    }
    assert_eq!(state(&e), "open");
    e.sim.set_faults(
        "openai-platform",
        switchboard::sim::Faults {
            latency: switchboard::sim::Latency { median_ms: 3_000, sigma: 0.0, min_ms: 3_000 },
            ..Default::default()
        },
    );
    e.clock.advance(Duration::seconds(31));
    let gave_up = e
        .http
        .post(format!("{}/chat/completions", e.gw.base_url()))
        .bearer_auth(&t)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "the trial"}], "max_tokens": 20}))
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client gave up");
    e.sim.set_faults("openai-platform", switchboard::sim::Faults::default());
    // The gateway notices the closed connection and drops the request.
    let mut served_by = 0;
    for _ in 0..80 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = e.chat(&t, "gpt-4o-mini", "after the trial").await;
        assert_eq!(r.status(), 200);
        served_by = e.usage_rows(s).last().unwrap().5;
        if served_by == e.platform_openai.0 {
            break;
        }
    }
    assert_eq!(served_by, e.platform_openai.0, "once the trial answered, the recovered account serves again");
    assert_eq!(state(&e), "closed");
    let gone: Vec<_> = e.usage_rows(s).into_iter().filter(|r| r.2 == UsageStatus::ClientGone.code()).collect();
    assert_eq!(gone.len(), 1, "the trial the client gave up on is recorded once, as client_gone");
    assert_eq!(gone[0].5, e.platform_openai.0);
    assert!(gone[0].3 > 0, "with the provider's usage");
}

#[tokio::test]
async fn a_client_supplier_may_forbid_platform_failover_and_uses_its_other_accounts_first() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Two Keys Venue", Tier::Scale, AiMode::Client, &[]);
    let _a1 = e.client_account(s, "Primary", DEMO_CLIENT_OPENAI_KEY);
    let a2 = e.client_account(s, "Backup", CLIENT2_KEY);
    let t = e.token(s, false);
    // The primary key is rate limited for 5 s. With another route left, that
    // wait is not worth it (the test's policy would wait up to 20 s).
    e.sim.set_faults("openai-client", switchboard::sim::Faults { rate_limit_rate: 1.0, retry_after_ms: 5_000, ..Default::default() });
    let started = std::time::Instant::now();
    let r = e.chat(&t, "gpt-4o-mini", "hi").await;
    assert_eq!(r.headers()["x-switchboard-route"], "client", "the supplier's other account first");
    assert_eq!(e.usage_rows(s).last().unwrap().5, a2.0);
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "failed over without waiting: {:?}", started.elapsed());
    assert_eq!(e.sim.requests("openai-client"), 1, "asked once");
    // The primary cools down for the 5 s its 429 said (tried last until
    // then); once they are over it is first again.
    assert!(matches!(
        e.router.pool_snapshot().iter().find(|k| k.label == "Primary").and_then(|k| k.blocked),
        Some(switchboard::domain::keypool::Blocked::CoolingDown(_))
    ));
    e.clock.advance(Duration::seconds(6));
    // Forbid platform failover, take the backup down too: the request fails with reasons.
    e.store
        .update_supplier(s, &switchboard::store::SupplierPatch { allow_platform_failover: Some(false), ..Default::default() }, june())
        .unwrap();
    e.router.reload().unwrap();
    e.sim.set_outage("openai-client-2", true);
    let before = (e.sim.requests("openai-client"), e.sim.requests("openai-client-2"));
    let (st, b) = json_of(e.chat(&t, "gpt-4o-mini", "hi").await).await;
    assert!(st >= 502, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("failover to platform AI is off"), "{b}");
    assert_eq!(e.sim.requests("openai-platform"), 0, "never onto platform AI");
    // The first account had a route after it (no retry-after wait); the last route was retried.
    assert_eq!((e.sim.requests("openai-client") - before.0, e.sim.requests("openai-client-2") - before.1), (1, 2));
}
