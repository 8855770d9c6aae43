//! The ingress end to end, over loopback into a real gateway on the provider
//! simulator with a real SQLite ledger: the token is checked before the body
//! is read, header and body read timeouts, connection caps, model limits
//! refused before any provider call, provider figures bounded, failures that
//! do not name the platform's accounts, the metrics token and label escaping.
//! `props` holds the property tests.

use crate::support::{fast_providers, june, sim_account};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::domain::{
    AccountOwner, AiMode, ManualClock, NewSupplier, PricingTable, ProviderKind, Secret, SupplierId, Tier, VendorType,
};
use switchboard::engine::gateway_tokens as tokens;
use switchboard::engine::ledger::Ledger;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::gateway::{self, GatewayConfig, GatewayHandle, OpsToken};
use switchboard::sim::{DEMO_ANTHROPIC_KEY, DEMO_OPENAI_KEY, SimConfig, SimHandle, Simulator};
use switchboard::store::{AuditFilter, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod props;

/// The platform accounts' labels: names a supplier's client must never read.
const OPENAI_LABEL: &str = "WedSync OpenAI org-PLATFORM42";
const ANTHROPIC_LABEL: &str = "WedSync \"Anthropic\"\nEU";

pub(crate) struct Env {
    _dir: tempfile::TempDir,
    pub(crate) store: Arc<Store>,
    pub(crate) sim: SimHandle,
    pub(crate) router: Arc<Router>,
    pub(crate) gw: GatewayHandle,
    pub(crate) http: reqwest::Client,
    pub(crate) supplier: SupplierId,
    pub(crate) token: String,
}

/// A gateway with `cfg` on the simulator; one supplier on platform AI with a
/// wedding today (no rate limit, no quota refusal: every request may reach a
/// provider) and its token.
pub(crate) async fn env(cfg: GatewayConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("ingress.db")).unwrap());
    let sim = Simulator::start(SimConfig::demo()).await.unwrap();
    let clock = ManualClock::new(june());
    let openai = sim_account(&store, AccountOwner::Platform, ProviderKind::OpenAi, OPENAI_LABEL, "gpt-4o-mini", sim.base_url());
    let anthropic =
        sim_account(&store, AccountOwner::Platform, ProviderKind::Anthropic, ANTHROPIC_LABEL, "claude-haiku-4-5", sim.base_url());
    let mut n = NewSupplier::new("Ingress Studio", VendorType::Photographer, Tier::Professional, AiMode::Platform);
    n.weddings = vec![june().date_naive()];
    let supplier = store.insert_supplier(&n, june()).unwrap().id;
    let ledger = Ledger::start(&store).unwrap();
    let router = Router::new(
        store.clone(),
        fast_providers(1),
        Arc::new(PricingTable::builtin()),
        Arc::new(clock),
        ledger,
        RouterConfig::default(),
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    router.set_key(openai, Some(Secret::new(DEMO_OPENAI_KEY)));
    router.set_key(anthropic, Some(Secret::new(DEMO_ANTHROPIC_KEY)));
    let token = tokens::issue(&store, supplier, june(), "test").unwrap().token.expose().to_string();
    router.reload().unwrap();
    let gw = gateway::start_with(router.clone(), "127.0.0.1:0".parse().unwrap(), GatewayConfig { lanes: 2, ..cfg }).await.unwrap();
    Env { _dir: dir, store, sim, router, gw, http: reqwest::Client::new(), supplier, token }
}

impl Env {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gw.addr())
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(self.url(path)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        json_of(r).await
    }

    /// A plain request that must succeed: the gateway still serves.
    pub(crate) async fn still_serves(&self) {
        let (st, b) = self
            .post(
                "/v1/chat/completions",
                json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "still there?"}], "max_tokens": 20}),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }

    fn usage_rows(&self) -> Vec<(i64, i64, i64, i64)> {
        self.store
            .with_conn(|c| {
                let mut st = c.prepare(
                    "SELECT input_tokens, cached_tokens, output_tokens, cost_micros FROM usage_events WHERE supplier_id = ?1 ORDER BY id",
                )?;
                let rows = st.query_map([self.supplier.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                rows.collect()
            })
            .unwrap()
    }

    fn provider_calls(&self) -> u64 {
        self.sim.requests("openai-platform") + self.sim.requests("anthropic-platform")
    }
}

pub(crate) async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

/// Whether `body` is an OpenAI-shaped error: `{"error": {"message", "type", "code"}}`.
pub(crate) fn is_openai_error(body: &Value) -> bool {
    let e = &body["error"];
    e["message"].as_str().is_some_and(|m| !m.is_empty()) && e["type"].as_str().is_some() && e["code"].as_str().is_some()
}

/// Reads what the server sends until it closes or `within` passes.
async fn read_answer(tcp: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if let Some(end) = find_body_end(&got) {
                    got.truncate(end);
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The end of a complete HTTP answer with a content-length, if it is all in.
fn find_body_end(b: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(b);
    let head_end = text.find("\r\n\r\n")? + 4;
    let len = text[..head_end]
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().ok()))??;
    (b.len() >= head_end + len).then_some(head_end + len)
}

fn body_of(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("no JSON body in {answer:?}"))
}

#[tokio::test]
async fn an_unauthenticated_30_mb_body_is_refused_before_it_is_read() {
    let e = env(GatewayConfig::default()).await;
    // 30 MB (over the cap) and 10 MB (under it): either way the body is not waited for.
    for (auth, mib) in [("", 30), ("Authorization: Bearer sbk_wrong\r\n", 30), ("", 10), ("Authorization: Basic eDp5\r\n", 10)] {
        let mut tcp = TcpStream::connect(e.gw.addr()).await.unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            mib * 1024 * 1024
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        // A first 64 KiB of the 30 MB; the rest never comes.
        tcp.write_all(&vec![b'x'; 64 * 1024]).await.unwrap();
        let t0 = Instant::now();
        let answer = read_answer(&mut tcp, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
        assert!(t0.elapsed() < Duration::from_secs(2), "answered while the client was still sending");
        assert_eq!(body_of(&answer)["error"]["code"], "invalid_api_key");
    }
    // Chunked, without a length: the same, before a byte of the body is read.
    let mut tcp = TcpStream::connect(e.gw.addr()).await.unwrap();
    tcp.write_all(b"POST /v1/embeddings HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n10000\r\n").await.unwrap();
    let answer = read_answer(&mut tcp, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    assert_eq!(e.provider_calls(), 0);
    e.still_serves().await;
}

/// Sends `head` (a request's head, without the blank line) and `body` on
/// `tcp`; returns the answer.
async fn exchange(tcp: &mut TcpStream, head: &str, body: &[u8]) -> String {
    tcp.write_all(format!("{head}content-length: {}\r\n\r\n", body.len()).as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    read_answer(tcp, Duration::from_secs(5)).await
}

/// Whether the server closed `tcp` (a read ends) within two seconds.
async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    matches!(tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test]
async fn a_request_refused_before_its_body_is_read_is_answered_with_connection_close() {
    let e = env(GatewayConfig { max_body_bytes: 8 * 1024, ..GatewayConfig::default() }).await;
    let big = vec![b'x'; 6 * 1024];
    // A wrong token on every endpoint that takes a body: the body is not read,
    // the answer says so, and the server closes the connection after it.
    for (path, auth, status) in [
        ("/v1/chat/completions", "authorization: Bearer sbk_wrong", "401"),
        ("/v1/embeddings", "authorization: Bearer sbk_wrong", "401"),
        ("/v1/messages", "x-api-key: sbk_wrong", "401"),
        ("/v1/messages/count_tokens", "x-api-key: sbk_wrong", "401"),
    ] {
        let mut tcp = TcpStream::connect(e.gw.addr()).await.unwrap();
        let answer =
            exchange(&mut tcp, &format!("POST {path} HTTP/1.1\r\nhost: x\r\n{auth}\r\ncontent-type: application/json\r\n"), &big).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{path}: {answer:?}");
        assert!(answer.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{path}: {answer:?}");
        assert!(closed_by_server(&mut tcp).await, "{path}: the connection is not reused");
    }
    // A body over the cap from a known sender: 413, and the same.
    let mut tcp = TcpStream::connect(e.gw.addr()).await.unwrap();
    let head =
        format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\n", e.token);
    let answer = exchange(&mut tcp, &head, &vec![b'x'; 20 * 1024]).await;
    assert!(answer.starts_with("HTTP/1.1 413") && answer.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{answer:?}");
    // A body that was read (a known sender, not JSON): 400, and the connection
    // stays open for the next request, as does one refused with no body.
    let mut tcp = TcpStream::connect(e.gw.addr()).await.unwrap();
    let answer = exchange(&mut tcp, &head, b"not json").await;
    assert!(answer.starts_with("HTTP/1.1 400") && !answer.to_ascii_lowercase().contains("connection: close"), "{answer:?}");
    tcp.write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sbk_wrong\r\n\r\n").await.unwrap();
    let answer = read_answer(&mut tcp, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 401") && !answer.to_ascii_lowercase().contains("connection: close"), "{answer:?}");
    let answer = exchange(&mut tcp, &head, b"{}").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "the same connection serves a third request: {answer:?}");
    // A client that pools its connections (as the SDKs do) gets an answer to
    // every request after such refusals, never a broken connection.
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/chat/completions", e.gw.addr());
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5});
    for i in 0..10 {
        let refused = http.post(&url).bearer_auth("sbk_wrong").body(big.clone()).send().await;
        assert_eq!(refused.map(|r| r.status().as_u16()).unwrap_or_else(|err| panic!("round {i}: {err}")), 401);
        let served = http.post(&url).bearer_auth(&e.token).json(&chat).send().await;
        assert_eq!(served.map(|r| r.status().as_u16()).unwrap_or_else(|err| panic!("round {i}: {err}")), 200);
    }
    assert_eq!(e.provider_calls(), 10);
}

#[tokio::test]
async fn slow_headers_are_cut_off_and_a_slow_body_gets_a_408() {
    let cfg = GatewayConfig {
        header_read_timeout: Duration::from_millis(600),
        body_read_timeout: Duration::from_millis(600),
        ..GatewayConfig::default()
    };
    let e = env(cfg).await;
    // Headers that never end: the connection is closed after the header timeout.
    let mut tcp = TcpStream::connect(e.gw.addr()).await.unwrap();
    tcp.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let t0 = Instant::now();
    let answer = read_answer(&mut tcp, Duration::from_secs(10)).await;
    let took = t0.elapsed();
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer:?}");
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(5), "closed after {took:?}");
    // A body that trickles: a 408 in OpenAI's shape once the body timeout passes.
    let mut tcp = TcpStream::connect(e.gw.addr()).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\":",
        e.token
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let t0 = Instant::now();
    let answer = read_answer(&mut tcp, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let b = body_of(&answer);
    assert!(is_openai_error(&b) && b["error"]["code"] == "request_timeout", "{b}");
    assert_eq!(e.provider_calls(), 0);
    e.still_serves().await;
}

/// Waits until the gateway has noticed closed connections (their permits are returned).
async fn until_served(e: &Env) {
    for _ in 0..100 {
        let r = e.http.get(e.url("/v1/models")).bearer_auth(&e.token).send().await;
        if r.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the gateway did not take connections again");
}

#[tokio::test]
async fn connections_over_the_total_cap_get_a_503() {
    let e = env(GatewayConfig { max_connections: 3, ..GatewayConfig::default() }).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(TcpStream::connect(e.gw.addr()).await.unwrap());
    }
    let mut over = TcpStream::connect(e.gw.addr()).await.unwrap();
    let answer = read_answer(&mut over, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"));
    let b = body_of(&answer);
    assert!(is_openai_error(&b) && b["error"]["code"] == "server_busy", "{b}");
    // The held connections still work; once they close, new ones are taken.
    let probe = format!("GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n", e.token);
    open[0].write_all(probe.as_bytes()).await.unwrap();
    assert!(read_answer(&mut open[0], Duration::from_secs(5)).await.starts_with("HTTP/1.1 200"));
    drop(open);
    until_served(&e).await;
}

#[tokio::test]
async fn connections_over_the_per_address_cap_get_a_429_and_other_addresses_do_not() {
    let e = env(GatewayConfig { max_connections_per_address: 2, ..GatewayConfig::default() }).await;
    let from = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        let addr = e.gw.addr();
        async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(std::net::SocketAddr::new(ip, 0)).unwrap();
            s.connect(addr).await.unwrap()
        }
    };
    let held = vec![from("127.0.0.1").await, from("127.0.0.1").await];
    let mut third = from("127.0.0.1").await;
    let answer = read_answer(&mut third, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
    assert_eq!(body_of(&answer)["error"]["code"], "too_many_connections");
    // Another address (all of 127/8 is loopback on Linux) is not affected.
    let mut other = from("127.0.0.2").await;
    let probe = format!("GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n", e.token);
    other.write_all(probe.as_bytes()).await.unwrap();
    assert!(read_answer(&mut other, Duration::from_secs(5)).await.starts_with("HTTP/1.1 200"));
    drop(held);
    until_served(&e).await;
}

#[tokio::test]
async fn prompts_longer_than_the_context_window_and_output_caps_above_the_models_are_refused_before_any_provider_call() {
    let e = env(GatewayConfig::default()).await;
    let chat = |content: String, extra: Value| {
        let mut b = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    // About 160,000 tokens for a 128,000-token window: refused, with OpenAI's code.
    let long = " wedding".repeat(160_000);
    let (st, b) = e.post("/v1/chat/completions", chat(long.clone(), json!({}))).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["code"], "context_length_exceeded", "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("128000"), "{b}");
    // Streams too.
    let (st, b) = e.post("/v1/chat/completions", chat(long, json!({"stream": true}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("context_length_exceeded")));
    // Within the margin, a long prompt is the provider's to judge (the simulator takes it).
    let (st, b) = e.post("/v1/chat/completions", chat(" wedding".repeat(20_000), json!({"max_tokens": 5}))).await;
    assert_eq!(st, 200, "{b}");
    let calls = e.provider_calls();
    // Output caps above the model's: a 400 naming the field.
    let (st, b) = e.post("/v1/chat/completions", chat("hi".into(), json!({"max_tokens": 20_000}))).await;
    assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (400, Some("invalid_value"), Some("max_tokens")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("16384"), "{b}");
    let (st, b) = e.post("/v1/chat/completions", chat("hi".into(), json!({"max_completion_tokens": u64::MAX}))).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("max_completion_tokens")), "{b}");
    let mut anthropic = chat("hi".into(), json!({"max_tokens": 64_001}));
    anthropic["model"] = json!("claude-haiku-4-5");
    let (st, b) = e.post("/v1/chat/completions", anthropic).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_value")), "{b}");
    // An embeddings input longer than the model takes.
    let (st, b) = e.post("/v1/embeddings", json!({"model": "text-embedding-3-small", "input": ["short", " wedding".repeat(10_000)]})).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("context_length_exceeded")), "{b}");
    let (st, b) = e.post("/v1/embeddings", json!({"model": "text-embedding-3-small", "input": [vec![1; 9_100]]})).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("context_length_exceeded")), "{b}");
    assert_eq!(e.provider_calls(), calls, "no refused request reached a provider");
    // The largest output the model allows is fine.
    let (st, b) = e.post("/v1/chat/completions", chat("hi".into(), json!({"max_completion_tokens": 16_384}))).await;
    assert_eq!(st, 200, "{b}");
}

#[tokio::test]
async fn absurd_usage_from_a_provider_is_bounded_and_recorded_once() {
    let e = env(GatewayConfig::default()).await;
    assert!(e.sim.update_faults("openai-platform", |f| f.absurd_usage = true));
    let (st, b) = e
        .post("/v1/chat/completions", json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
        .await;
    assert_eq!(st, 200, "{b}");
    e.router.ledger().flush().await;
    let rows = e.usage_rows();
    assert_eq!(rows.len(), 1, "one provider call, one usage row");
    let max = switchboard::providers::wire::MAX_REPORTED_TOKENS as i64;
    let (input, cached, output, cost) = rows[0];
    assert_eq!((input, cached, output), (max, 0, 0));
    assert!(cost > 0 && cost < i64::MAX / 1_000, "cost {cost}");
    // The quota counts the bounded figure, not a wrapped one.
    assert_eq!(e.router.quota_snapshot(e.supplier).unwrap().0, max as u64);
    e.sim.update_faults("openai-platform", |f| f.absurd_usage = false);
    e.still_serves().await;
}

#[tokio::test]
async fn when_every_route_fails_the_client_reads_kinds_of_failure_and_the_audit_keeps_the_accounts() {
    let e = env(GatewayConfig::default()).await;
    e.sim.set_outage("openai-platform", true);
    e.sim.set_outage("anthropic-platform", true);
    let (st, b) = e
        .post("/v1/chat/completions", json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
        .await;
    assert!(st >= 500, "{st} {b}");
    assert!(is_openai_error(&b), "{b}");
    let text = b.to_string();
    for leak in ["WedSync", "org-", "PLATFORM42", "Anthropic\\\"", "127.0.0.1", "sk-"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("no route could serve the request: "), "{msg}");
    assert!(msg.contains("(2 accounts)") || msg.contains("(1 account)"), "{msg}");
    // The details are in the audit log, under the supplier.
    let mut found = None;
    for _ in 0..100 {
        let f = AuditFilter { action_prefix: Some("request.all_routes_failed".into()), ..AuditFilter::default() };
        if let Some(a) = e.store.audit_entries(&f).unwrap().into_iter().next() {
            found = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = found.expect("an audit entry for the failed request");
    assert_eq!(a.supplier_id, Some(e.supplier));
    assert!(a.detail.contains(OPENAI_LABEL), "{}", a.detail);
    e.sim.set_outage("openai-platform", false);
    e.sim.set_outage("anthropic-platform", false);
}

#[tokio::test]
async fn metrics_and_healthz_need_the_token_when_one_is_set_and_labels_are_escaped() {
    let token = OpsToken::new(&Secret::new("metrics-s3cret")).unwrap();
    let e = env(GatewayConfig { ops_token: Some(token), ..GatewayConfig::default() }).await;
    for path in ["/metrics", "/healthz"] {
        let r = e.http.get(e.url(path)).send().await.unwrap();
        let (st, b) = json_of(r).await;
        assert_eq!(st, 401, "{path}");
        assert!(is_openai_error(&b), "{b}");
        let r = e.http.get(e.url(path)).bearer_auth("metrics-s3cre").send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}: a wrong token");
        let r = e.http.get(e.url(path)).bearer_auth(&e.token).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}: a supplier's token is not the metrics token");
        let r = e.http.get(e.url(path)).bearer_auth("metrics-s3cret").send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let text = e.http.get(e.url("/metrics")).bearer_auth("metrics-s3cret").send().await.unwrap().text().await.unwrap();
    // Every line is a comment or `name{labels} value`: the label with a quote and a newline did not break it.
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let value = line.rsplit_once(' ').map(|(_, v)| v).unwrap_or("");
        assert!(value.parse::<f64>().is_ok(), "broken line {line:?} in\n{text}");
        assert!(line.starts_with("switchboard_"), "broken line {line:?}");
    }
    assert!(text.contains(r#"label="WedSync \"Anthropic\"\nEU""#), "{text}");
    // From a file, trimmed; an empty file is an error; never a command-line flag.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics-token");
    std::fs::write(&file, "from-file\n").unwrap();
    assert!(OpsToken::load(Some(&file)).unwrap().is_some());
    std::fs::write(&file, "").unwrap();
    assert!(OpsToken::load(Some(&file)).is_err());
    let out = crate::support::bin().args(["serve", "--metrics-token", "x"]).output().unwrap();
    assert!(!out.status.success(), "the token is never taken from the command line");
}
