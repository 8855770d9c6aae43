//! A streamed answer's guard: forwards the provider stream's SSE bytes and,
//! when the stream ends (or the client goes away and the guard drops, which
//! cuts the upstream stream), reports the attempt's outcome, settles the
//! quota, commits the usage event — the provider's figures if they arrived,
//! otherwise the tokenizer's estimate, flagged `estimated` — and sends a
//! mirror copy of a completed stream. [`OpenStream`] counts the stream in
//! flight for as long as it is open.

use super::Router;
use super::attempt::{Prepared, millis_since};
use super::cached::CacheUse;
use super::catalog::AccountEntry;
use super::quota::Reservation;
use crate::domain::{Route, UsageEvent, UsageStatus};
use crate::providers::ChatRequest;
use crate::providers::stream::{ChatStream, StreamEvent};
use bytes::Bytes;
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Instant;

/// What a stream's end needs of the attempt that opened it.
pub(super) struct StreamCtx {
    pub(super) p: Prepared,
    /// The id the stream's usage row will have (sent to the client up front).
    pub(super) event_id: String,
    pub(super) account: Arc<AccountEntry>,
    pub(super) route: Route,
    pub(super) model: String,
    /// The platform quota reservation, settled when the stream ends (given
    /// back if the context drops unsettled).
    pub(super) quota: Option<Reservation>,
    pub(super) t0: Instant,
    /// A plain copy of the request and the model asked for, kept only while
    /// a live-traffic mirror runs: a completed stream is mirrored as that.
    pub(super) mirror: Option<(ChatRequest, String)>,
    /// Where a completed stream's bytes are kept in the response cache.
    pub(super) cache: Option<CacheUse>,
}

/// An open stream's place in [`Router::in_flight`] and [`Router::streaming`],
/// held until it drops (however the stream ends).
pub(super) struct OpenStream(Arc<Router>);

impl OpenStream {
    pub(super) fn enter(router: &Arc<Router>) -> Self {
        router.in_flight.fetch_add(1, Ordering::Relaxed);
        router.streaming.fetch_add(1, Ordering::Relaxed);
        OpenStream(router.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.streaming.fetch_sub(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Forwards a provider stream's SSE bytes and commits its usage at the end
/// (awaited before the body completes) or, if the client goes away, on drop.
pub(super) struct StreamGuard {
    router: Arc<Router>,
    stream: ChatStream,
    ctx: Option<StreamCtx>,
    pending: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    done: bool,
    /// The stream's count in flight, until its usage is handed to the ledger.
    open: Option<OpenStream>,
    /// The bytes forwarded so far, while the stream is to be cached and no
    /// larger than the cache keeps (`None` otherwise).
    captured: Option<Vec<u8>>,
}

impl StreamGuard {
    pub(super) fn new(router: Arc<Router>, open: OpenStream, stream: ChatStream, ctx: StreamCtx) -> Self {
        let captured = ctx.cache.is_some().then(Vec::new);
        StreamGuard { router, stream, ctx: Some(ctx), pending: None, done: false, open: Some(open), captured }
    }

    /// Stops counting the stream in flight; returns how many events are due
    /// soon, this one included (for [`crate::engine::ledger::Ledger::record_among`]:
    /// alone, its usage is committed inline, as a lone plain request's is).
    fn leave(&mut self) -> usize {
        drop(self.open.take());
        self.router.writers_soon() + 1
    }

    fn finish(&mut self, summary: crate::providers::StreamSummary) -> Option<UsageEvent> {
        let ctx = self.ctx.take()?;
        let r = &self.router;
        r.record_outcome(&ctx.p, &ctx.account, ctx.route, ctx.t0, summary.error.as_ref());
        if let Some(q) = ctx.quota {
            r.settle(&ctx.p, q, summary.usage.total());
        }
        let status = if summary.completed && summary.error.is_none() {
            UsageStatus::Ok
        } else if summary.error.is_some() {
            UsageStatus::Error
        } else {
            UsageStatus::Cancelled
        };
        let model =
            if r.pricing.price(ctx.account.account.provider, &summary.model).is_some() { summary.model.clone() } else { ctx.model.clone() };
        let ev = r.usage_event(
            &ctx.p,
            ctx.event_id,
            &ctx.account.account,
            ctx.route,
            &model,
            summary.usage,
            millis_since(ctx.t0),
            status,
            summary
                .error
                .as_ref()
                .map(|e| e.class().to_string())
                .or_else(|| (status == UsageStatus::Cancelled).then(|| "client_disconnected".to_string())),
        );
        r.metrics.observe(ctx.route, ctx.account.account.provider, status == UsageStatus::Ok, ctx.p.started.elapsed(), &ev);
        // Only a stream that ended with its end marker is cached; a cut or failed one never.
        if status == UsageStatus::Ok
            && summary.completed
            && let (Some(cu), Some(bytes)) = (ctx.cache, self.captured.take())
        {
            let (provider, account) = (ctx.account.account.provider, ctx.account.account.id);
            r.cache_put(cu, &ctx.p, true, provider, &model, account, summary.usage, Bytes::from(bytes));
        }
        if status == UsageStatus::Ok
            && let Some((copy, requested_model)) = &ctx.mirror
        {
            r.mirror(&ctx.p, &ev.event_id, Some(ctx.account.account.id), copy, requested_model);
        }
        Some(ev)
    }
}

impl Stream for StreamGuard {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(fut) = this.pending.as_mut() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.pending = None;
                        this.done = true;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.stream).poll_next(cx) {
                Poll::Ready(Some(StreamEvent::Data(b))) => {
                    if let Some(buf) = &mut this.captured {
                        if buf.len().saturating_add(b.len()) > this.router.cache.config().max_entry_bytes {
                            this.captured = None;
                        } else {
                            buf.extend_from_slice(&b);
                        }
                    }
                    return Poll::Ready(Some(Ok(b)));
                }
                Poll::Ready(Some(StreamEvent::End(summary))) => {
                    if let Some(ev) = this.finish(summary) {
                        let ledger = this.router.ledger.clone();
                        let in_flight = this.leave();
                        this.pending = Some(Box::pin(async move {
                            if let Err(e) = ledger.record_among(ev, in_flight).await {
                                tracing::error!(error = %e, "stream usage not recorded");
                            }
                        }));
                    } else {
                        this.done = true;
                    }
                }
                Poll::Ready(None) => {
                    let summary = this.stream.summary(false, None);
                    if let Some(ev) = this.finish(summary) {
                        this.router.ledger.record_detached(ev);
                    }
                    this.leave();
                    this.done = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        // The client went away before the end: record what was used so far.
        if self.ctx.is_some() {
            let summary = self.stream.summary(false, None);
            if let Some(ev) = self.finish(summary) {
                self.router.ledger.record_detached(ev);
            }
        }
        self.leave();
    }
}
