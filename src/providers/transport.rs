//! The direct transport for plain (non-streamed) provider calls: hyper's
//! pooled HTTP/1 client over rustls, trusting what the platform trusts (as
//! reqwest does), with upstream URIs parsed once per thread. It skips
//! reqwest's per-request layers (its redirect and retry services, URL
//! re-parsing, client cloning, header merging), which cost 20–40 µs of CPU per
//! request in the gateway's load benchmark. Streams, and every call when the
//! environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`), go
//! through reqwest, which honours proxies. Redirects are not followed here
//! either.

use super::{ProviderError, ProvidersConfig};
use crate::domain::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use std::time::Duration;

/// A pooled HTTP/1 client for `http` and `https` upstreams.
pub(super) type Client = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Whether the environment names a proxy (then reqwest carries every call).
pub(super) fn proxy_configured() -> bool {
    ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// A client with the same timeouts and pool settings as the reqwest one.
pub(super) fn build(cfg: &ProvidersConfig) -> Result<Client, ProviderError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| ProviderError::Connect { provider: "HTTP client", message: format!("TLS set-up failed: {e}") })?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
        .build(https))
}

/// Per-thread caches of parsed URLs (for [`uri`] and reqwest's `Url`s).
pub(super) type UrlCache<T> = std::cell::RefCell<crate::domain::FastMap<String, T>>;

/// `url` parsed by `parse`, from the per-thread `cache`: parsing costs more
/// than the rest of building a request, and a gateway sends to the same few
/// URLs all day. At most 256 entries; beyond that the cache starts over.
pub(super) fn cached<T: Clone + 'static>(
    cache: &'static std::thread::LocalKey<UrlCache<T>>,
    url: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Option<T> {
    const CAP: usize = 256;
    cache.with(|c| {
        if let Some(u) = c.borrow().get(url) {
            return Some(u.clone());
        }
        let u = parse(url)?;
        let mut c = c.borrow_mut();
        if c.len() >= CAP {
            c.clear();
        }
        c.insert(url.to_string(), u.clone());
        Some(u)
    })
}

/// `url` as a request URI, from a per-thread cache. `None` when it is not one
/// this transport takes (not `http`/`https`, or not ASCII: reqwest applies
/// IDNA rules to such hosts).
pub(super) fn uri(url: &str) -> Option<hyper::Uri> {
    thread_local! {
        static URIS: UrlCache<hyper::Uri> = UrlCache::default();
    }
    cached(&URIS, url, |url| {
        if !url.is_ascii() {
            return None;
        }
        let u: hyper::Uri = url.parse().ok()?;
        let web = matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty());
        web.then_some(u)
    })
}

/// One call: a non-2xx answer becomes a classified error, a 2xx answer's body
/// is read up to `cap` bytes. `timeout` bounds the whole call, body included.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_read(
    client: &Client,
    provider: &'static str,
    method: reqwest::Method,
    uri: hyper::Uri,
    mut headers: HeaderMap,
    body: Option<Bytes>,
    timeout: Duration,
    cap: usize,
    key: &Secret,
    observe: Option<&super::HeaderObserver>,
) -> Result<Bytes, ProviderError> {
    headers.insert(USER_AGENT, HeaderValue::from_static(concat!("switchboard/", env!("CARGO_PKG_VERSION"))));
    if body.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let mut req = hyper::Request::new(Full::new(body.unwrap_or_default()));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    let call = async {
        let resp = client.request(req).await.map_err(|e| ProviderError::from_hyper(provider, &e, true, key.expose()))?;
        let status = resp.status().as_u16();
        super::HeaderObserver::see(observe, resp.headers());
        if (200..300).contains(&status) {
            read_limited(provider, resp, cap, key).await
        } else {
            let headers = resp.headers().clone();
            let body = read_limited(provider, resp, 64 * 1024, key).await.unwrap_or_default();
            Err(ProviderError::from_response(provider, status, &headers, &body, key.expose()))
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::Timeout { provider }),
    }
}

/// Reads a body, refusing more than `cap` bytes.
async fn read_limited(
    provider: &'static str,
    resp: hyper::Response<hyper::body::Incoming>,
    cap: usize,
    key: &Secret,
) -> Result<Bytes, ProviderError> {
    let too_big = || ProviderError::InvalidResponse { provider, message: format!("answer larger than {cap} bytes") };
    let declared = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(too_big());
    }
    match Limited::new(resp.into_body(), cap).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_big()),
        Err(e) => Err(ProviderError::from_hyper(provider, e.as_ref(), false, key.expose())),
    }
}
