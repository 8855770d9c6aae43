//! `Idempotency-Key` on `/v1/messages`: one provider call and one usage row
//! for a retried message, plain or streamed; refusals in Anthropic's shape;
//! a key bound to its endpoint.

use super::{Env, env, json_of};
use serde_json::{Value, json};
use switchboard::domain::ProviderKind;

async fn keyed(e: &Env, path: &str, body: &Value, key: &str) -> reqwest::Response {
    e.request(path, body).header("idempotency-key", key).send().await.unwrap()
}

fn replayed(r: &reqwest::Response) -> bool {
    r.headers().get("idempotent-replayed").is_some_and(|v| v == "true")
}

#[tokio::test]
async fn a_retried_message_is_replayed_not_sent_again() {
    let e = env(ProviderKind::Anthropic).await;
    for stream in [false, true] {
        let key = format!("booking-{stream}");
        let body = json!({"model": "claude-haiku-4-5", "max_tokens": 60, "stream": stream, "messages": [{"role": "user", "content": "Confirm the booking."}]});
        let first = keyed(&e, "/v1/messages", &body, &key).await;
        assert_eq!((first.status().as_u16(), replayed(&first)), (200, false));
        let first = first.text().await.unwrap();
        let again = keyed(&e, "/v1/messages", &body, &key).await;
        assert_eq!((again.status().as_u16(), replayed(&again)), (200, true), "stream={stream}");
        assert_eq!(again.headers()["content-type"], if stream { "text/event-stream" } else { "application/json" });
        assert_eq!(again.text().await.unwrap(), first, "stream={stream}: the same answer, byte for byte");
    }
    assert_eq!(e.sim.requests("anthropic-platform"), 2, "one provider call per key");
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows().len(), 2, "one usage row per key");
}

#[tokio::test]
async fn a_reused_key_is_refused_in_anthropics_shape_and_bound_to_its_endpoint() {
    let e = env(ProviderKind::OpenAi).await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 30, "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(keyed(&e, "/v1/messages", &body, "k-1").await.status(), 200);
    // The same key with another body.
    let other = json!({"model": "gpt-4o-mini", "max_tokens": 30, "messages": [{"role": "user", "content": "Hello"}]});
    let (status, b) = json_of(keyed(&e, "/v1/messages", &other, "k-1").await).await;
    assert_eq!((status, b["type"].as_str(), b["error"]["type"].as_str()), (422, Some("error"), Some("invalid_request_error")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("different request"), "{b}");
    // The same key and bytes on the chat endpoint: another endpoint, refused (in OpenAI's shape there).
    let chat =
        e.http.post(e.url("/v1/chat/completions")).bearer_auth(&e.token).header("idempotency-key", "k-1").json(&body).send().await.unwrap();
    let (status, b) = json_of(chat).await;
    assert_eq!((status, b["error"]["code"].as_str()), (422, Some("idempotency_key_reused")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("/v1/messages"), "{b}");
    // A malformed key (longer than 255 characters).
    let (status, b) = json_of(keyed(&e, "/v1/messages", &body, &"k".repeat(300)).await).await;
    assert_eq!((status, b["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{b}");
    e.router.ledger().flush().await;
    assert_eq!(e.usage_rows().len(), 1, "only the first request reached a provider");
}
