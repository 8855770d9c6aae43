//! The official Anthropic Python SDK (`tests/python/anthropic_sdk.py`)
//! against `/v1/messages` on each route.

use super::{ROUTES, env};
use switchboard::domain::ProviderKind;

/// Runs the SDK script with `args` and `env`; its stdout (the test fails on a non-zero exit).
pub(super) async fn run(args: &[&str], vars: &[(&str, &str)]) -> String {
    crate::support::run_python_script("anthropic_sdk.py", args, vars).await
}

#[tokio::test]
async fn the_anthropic_python_sdk_works_on_each_route() {
    for provider in ROUTES {
        let e = env(provider).await;
        let url = format!("http://{}", e.gw.addr());
        let out = run(&["basic"], &[("GATEWAY_URL", &url), ("GATEWAY_TOKEN", &e.token)]).await;
        for step in ["plain ok", "stream ok", "count_tokens ok", "errors ok"] {
            assert!(out.contains(step), "{provider:?}: {out}");
        }
        e.router.ledger().flush().await;
        let rows = e.usage_rows();
        assert_eq!(rows.len(), 2, "{provider:?}: the plain and the streamed message, nothing for counts and refusals");
        assert!(rows.iter().all(|r| r.0 == 0), "{provider:?}: {rows:?}");
    }
}

#[tokio::test]
async fn the_anthropic_python_sdk_uses_tools_on_each_route() {
    for provider in [ProviderKind::Anthropic, ProviderKind::OpenAi, ProviderKind::AzureOpenAi] {
        let e = env(provider).await;
        let url = format!("http://{}", e.gw.addr());
        let out = run(&["tools"], &[("GATEWAY_URL", &url), ("GATEWAY_TOKEN", &e.token)]).await;
        for step in ["tool call ok", "tool stream ok", "tool result ok"] {
            assert!(out.contains(step), "{provider:?}: {out}");
        }
        e.router.ledger().flush().await;
        assert_eq!(e.usage_rows().len(), 3, "{provider:?}");
    }
}
