//! The response cache's part of the request path (the cache itself is
//! `engine::cache`, its rules `domain::cache`): after a request is prepared
//! (token, model, rate limit, the ledger's admission), [`Router::cache_begin`]
//! plans what the cache does for it and looks it up; a hit is answered here
//! — one usage row on route `cache`, no provider cost, the original call's
//! cost as `saved` — as a plain body or, for a stream, the cached SSE events
//! replayed in order. A call the plan says to store is handed a [`CacheUse`],
//! and its job keeps the answer once it succeeded ([`Router::cache_put`]).

use super::attempt::{Prepared, millis_since};
use super::failure::RouteError;
use super::{Answer, CacheRequest, ClientWatch, Router, StreamAnswer};
use crate::domain::cache::{self, CacheKey, CacheVerdict};
use crate::domain::idempotency::Endpoint;
use crate::domain::{AccountId, Micros, ProviderKind, Route, TokenUsage, UsageEvent, UsageStatus};
use crate::store::CachedAnswer;
use bytes::Bytes;
use std::sync::Arc;

/// Where a call's answer is kept once it succeeded.
#[derive(Debug, Clone, Copy)]
pub(super) struct CacheUse {
    key: CacheKey,
    endpoint: Endpoint,
    ttl_secs: u64,
}

/// What the cache decided for a request.
pub(super) enum CacheStart {
    Hit(Arc<CachedAnswer>),
    /// Call a provider; keep its answer when `store` says where.
    Call {
        store: Option<CacheUse>,
        verdict: CacheVerdict,
    },
}

impl CacheStart {
    const SKIP: CacheStart = CacheStart::Call { store: None, verdict: CacheVerdict::Skip };
}

impl Router {
    /// Plans the cache for a prepared request and looks it up.
    /// `deterministic`: the request asks for a deterministic answer;
    /// `stream`: it wants a stream (a plain answer never serves a stream).
    pub(super) async fn cache_begin(
        &self,
        p: &Prepared,
        req: Option<&CacheRequest>,
        deterministic: bool,
        model: &str,
        stream: bool,
    ) -> CacheStart {
        let Some(req) = req else { return CacheStart::SKIP };
        let settings = &p.supplier.cache;
        let plan = cache::plan(settings, req.mode, deterministic);
        if !plan.lookup && !plan.store {
            self.cache.note_skip();
            return CacheStart::SKIP;
        }
        let Some(key) = CacheKey::of(p.supplier.supplier.id, req.endpoint, model, &req.body) else {
            self.cache.note_skip();
            return CacheStart::SKIP;
        };
        if plan.lookup
            && let Some(a) = self.cache.get(key, p.supplier.supplier.id).await
            && a.stream == stream
            && a.endpoint == req.endpoint
        {
            return CacheStart::Hit(a);
        }
        self.cache.note_miss();
        let store = plan.store.then_some(CacheUse { key, endpoint: req.endpoint, ttl_secs: settings.ttl_secs(req.endpoint) });
        CacheStart::Call { store, verdict: plan.verdict_on_call() }
    }

    /// Commits a hit's usage row and returns its event id.
    async fn record_hit(&self, p: &Prepared, a: &CachedAnswer) -> Result<String, RouteError> {
        let gone = p.client.as_ref().is_some_and(ClientWatch::gone);
        let event_id = self.new_event_id();
        let ev = UsageEvent {
            event_id: event_id.clone(),
            request_id: p.request_id.clone(),
            idempotency_key: p.idempotency_key.clone(),
            ts: p.now,
            supplier_id: p.supplier.supplier.id,
            // No account was called.
            account_id: None,
            provider: a.provider,
            model: a.model.clone(),
            request_type: p.request_type,
            route: Route::Cache,
            usage: a.usage,
            cost: Micros::ZERO,
            saved: a.cost,
            latency_ms: millis_since(p.started),
            status: if gone { UsageStatus::ClientGone } else { UsageStatus::Ok },
            error_class: None,
        };
        if Route::Cache.counts_against_quota()
            && let Some(r) = self.reserve(p, 0)
        {
            self.settle(p, r, a.usage.total());
        }
        self.cache.note_hit(a.cost);
        self.metrics.observe(Route::Cache, a.provider, true, p.started.elapsed(), &ev);
        self.ledger.record_among(ev, self.writers_soon()).await.map_err(|e| RouteError::Ledger(e.to_string()))?;
        Ok(event_id)
    }

    /// A plain request answered from the cache.
    pub(super) async fn answer_hit(&self, p: Prepared, a: Arc<CachedAnswer>) -> Result<Answer, RouteError> {
        let event_id = self.record_hit(&p, &a).await?;
        Ok(Answer {
            body: a.body.clone(),
            route: Route::Cache,
            account: a.account.unwrap_or(AccountId(0)),
            request_id: p.request_id,
            event_id,
            cache: CacheVerdict::Hit,
        })
    }

    /// A streamed request answered from the cache: the cached SSE events, in order.
    pub(super) async fn stream_hit(&self, p: Prepared, a: Arc<CachedAnswer>) -> Result<StreamAnswer, RouteError> {
        let event_id = self.record_hit(&p, &a).await?;
        let events = sse_events(&a.body);
        Ok(StreamAnswer {
            route: Route::Cache,
            account: a.account.unwrap_or(AccountId(0)),
            request_id: p.request_id,
            event_id,
            cache: CacheVerdict::Hit,
            body: Box::pin(futures::stream::iter(events.into_iter().map(Ok))),
        })
    }

    /// Keeps a successful answer under `cu` (a plain body, or a stream's SSE
    /// bytes once it ended with its end marker).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cache_put(
        &self,
        cu: CacheUse,
        p: &Prepared,
        stream: bool,
        provider: ProviderKind,
        model: &str,
        account: AccountId,
        usage: TokenUsage,
        body: Bytes,
    ) {
        let cost = self.pricing.cost(provider, model, &usage).unwrap_or(Micros::ZERO);
        let now = self.clock.now();
        let ttl = chrono::Duration::seconds(i64::try_from(cu.ttl_secs).unwrap_or(i64::MAX / 1_000_000).min(cache::MAX_TTL_SECS as i64));
        let answer = CachedAnswer {
            supplier: p.supplier.supplier.id,
            endpoint: cu.endpoint,
            stream,
            provider,
            model: model.to_string(),
            account: Some(account),
            usage,
            cost,
            body,
            created_at: now,
            expires_at: now + ttl,
        };
        self.cache.put(cu.key, answer);
    }
}

/// A stream's SSE bytes as its events (each ending with its blank line), so
/// that a replay sends them as the provider's stream was forwarded.
fn sse_events(body: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = &body[..];
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\n' && b[i + 1] == b'\n' {
            out.push(body.slice(start..i + 2));
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    if start < b.len() {
        out.push(body.slice(start..));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_replayed_event_by_event_with_every_byte() {
        let body = Bytes::from_static(b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n");
        let ev = sse_events(&body);
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[2], Bytes::from_static(b"data: [DONE]\n\n"));
        assert_eq!(ev.concat(), body.to_vec());
        // A tail without its blank line is still sent.
        let odd = Bytes::from_static(b"data: x\n\ndata: y");
        assert_eq!(sse_events(&odd).concat(), odd.to_vec());
        assert!(sse_events(&Bytes::new()).is_empty());
    }
}
