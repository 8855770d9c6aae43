//! A lane's direct path for `POST /v1/chat/completions` (`gateway::lanes::Front`,
//! which skips axum's router and middleware) against the axum application
//! serving the same router: every request answered alike.

use super::*;

/// What must agree between the two ways in: the status, the content type,
/// the Switchboard headers (values that are per request compared by presence),
/// the echoed tracing id, and the answer's or error's shape.
async fn seen(r: reqwest::Response) -> (u16, String, Vec<(String, String)>, Value) {
    let status = r.status().as_u16();
    let h = r.headers();
    let ct = h.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let mut ours: Vec<(String, String)> = h
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-switchboard-") || n.as_str() == "x-request-id" || n.as_str() == "allow")
        .map(|(n, v)| {
            let v = v.to_str().unwrap();
            let per_request = n.as_str() == "x-switchboard-event-id" || (n.as_str() == "x-request-id" && !v.starts_with("trace-"));
            (n.as_str().to_string(), if per_request { "…".to_string() } else { v.to_string() })
        })
        .collect();
    ours.sort();
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null);
    let shape = match &body {
        Value::Object(o) if o.contains_key("error") => json!({"error": {"type": body["error"]["type"], "code": body["error"]["code"]}}),
        Value::Object(o) => json!({"object": o.get("object"), "model": o.get("model"), "usage": o.get("usage").is_some()}),
        other => other.clone(),
    };
    (status, ct, ours, shape)
}

/// What is sent: (what it is, method, path, token, body, one more header).
type Case<'a> = (&'a str, reqwest::Method, &'a str, Option<&'a str>, Option<&'a [u8]>, Option<(&'a str, &'a str)>);

/// Stands for a good chat request in the cases below.
const CHAT: &[u8] = b"(a chat request)";

#[tokio::test]
async fn the_lanes_direct_chat_path_answers_as_the_axum_application_does() {
    let e = env(RouterConfig::default()).await;
    let s = e.supplier("Front Studio", Tier::Enterprise, AiMode::Platform, &[]);
    let token = e.token(s, false);
    // The same router behind axum's own server: every request through the application.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let via_axum = format!("http://{}/v1", listener.local_addr().unwrap());
    let app = gateway::app(e.router.clone(), None);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Each way asks its own question, so that no answer is the other's cache hit.
    let chat = |way: usize| {
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("hello from way {way}")}], "max_tokens": 20})
            .to_string()
            .into_bytes()
    };
    let cases: Vec<Case<'_>> = vec![
        ("an answer", reqwest::Method::POST, "/chat/completions", Some(&token), Some(CHAT), None),
        ("its tracing id echoed", reqwest::Method::POST, "/chat/completions", Some(&token), Some(CHAT), Some(("x-request-id", "trace-7"))),
        (
            "the cache asked to skip",
            reqwest::Method::POST,
            "/chat/completions",
            Some(&token),
            Some(CHAT),
            Some(("x-switchboard-cache", "skip")),
        ),
        (
            "a bad cache header",
            reqwest::Method::POST,
            "/chat/completions",
            Some(&token),
            Some(CHAT),
            Some(("x-switchboard-cache", "sometimes")),
        ),
        ("no token", reqwest::Method::POST, "/chat/completions", None, Some(CHAT), None),
        ("a wrong token", reqwest::Method::POST, "/chat/completions", Some("sb-not-a-token"), Some(CHAT), None),
        ("a body that is not JSON", reqwest::Method::POST, "/chat/completions", Some(&token), Some(b"{not json"), None),
        ("no messages", reqwest::Method::POST, "/chat/completions", Some(&token), Some(br#"{"model":"gpt-4o-mini","messages":[]}"#), None),
        (
            "an unknown model",
            reqwest::Method::POST,
            "/chat/completions",
            Some(&token),
            Some(br#"{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}"#),
            None,
        ),
        ("GET on the chat path (axum's 405 either way)", reqwest::Method::GET, "/chat/completions", Some(&token), None, None),
        ("a trailing slash (axum's 404 either way)", reqwest::Method::POST, "/chat/completions/", Some(&token), Some(CHAT), None),
    ];
    for (what, method, path, tok, body, extra) in cases {
        let mut answers = Vec::new();
        for (way, base) in [e.gw.base_url(), via_axum.clone()].into_iter().enumerate() {
            let mut rb = e.http.request(method.clone(), format!("{base}{path}"));
            if let Some(t) = tok {
                rb = rb.bearer_auth(t);
            }
            if let Some(b) = &body {
                let b = if *b == CHAT { chat(way) } else { b.to_vec() };
                rb = rb.header("content-type", "application/json").body(b);
            }
            if let Some((n, v)) = extra {
                rb = rb.header(n, v);
            }
            answers.push(seen(rb.send().await.unwrap()).await);
        }
        assert_eq!(answers[0], answers[1], "{what}: the lane's direct path (left) and the axum application (right) differ");
        if what == "an answer" {
            assert_eq!(answers[0].0, 200, "{what}: {:?}", answers[0]);
            let names: Vec<&str> = answers[0].2.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["x-request-id", "x-switchboard-cache", "x-switchboard-event-id", "x-switchboard-route"]);
        }
        if what == "its tracing id echoed" {
            assert!(answers[0].2.contains(&("x-request-id".into(), "trace-7".into())), "{:?}", answers[0]);
        }
    }
    // Both ways recorded their answers: two per answered case (the answer, the
    // echoed id, the skipped cache), one usage row each.
    let ok = e.usage_rows(s).iter().filter(|r| r.2 == UsageStatus::Ok.code()).count();
    assert_eq!(ok, 6);
}
