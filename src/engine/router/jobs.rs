//! The three kinds of request the attempt loop serves, as [`Job`]s: a plain
//! chat completion, a streamed one and embeddings. Each says which model an
//! account is sent, how to call its provider, which accounts cannot serve it
//! (Anthropic has no embeddings) and what to do with a success.

use super::attempt::{Job, Prepared, Served};
use super::cached::CacheUse;
use super::failure::{FailureKind, RouteError};
use super::stream::{OpenStream, StreamCtx, StreamGuard};
use super::{Answer, ClientWatch, Router, StreamAnswer};
use crate::domain::cache::CacheVerdict;
use crate::domain::{ProviderAccount, ProviderKind, TokenUsage, UsageStatus};
use crate::providers::stream::ChatStream;
use crate::providers::{ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, ProviderError, ProviderTarget, token_count};
use std::sync::Arc;

/// Why an account cannot serve a chat request exactly: the model table has
/// no equivalent of the requested model for its provider family, or the
/// request uses a feature its provider has no equivalent for. The route is
/// skipped, not failed.
fn chat_refusal(router: &Router, account: &ProviderAccount, req: &ChatRequest, requested_model: &str) -> Option<FailureKind> {
    if router.model_for(account, requested_model).is_none() {
        return Some(FailureKind::ModelNotOffered { model: requested_model.to_string(), offered: router.models_offered(account) });
    }
    crate::providers::untranslatable(account.provider, req, &router.providers.config().translation).map(FailureKind::Untranslatable)
}

/// A plain chat completion.
pub(super) struct Chat {
    pub(super) req: ChatRequest,
    pub(super) requested_model: String,
    /// Output tokens reserved for it.
    output: u64,
    /// The cheap upper bound of its tokens (prompt and output).
    pub(super) bound: u64,
    /// Where its answer is kept once it succeeded (`None`: not cached).
    pub(super) cache: Option<CacheUse>,
    pub(super) verdict: CacheVerdict,
}

impl Chat {
    pub(super) fn new(router: &Router, req: ChatRequest) -> Self {
        let output = req.max_output().unwrap_or(router.cfg.default_output_allowance);
        let bound = token_count::chat_prompt_bound(&req).saturating_add(output);
        Chat { requested_model: req.model.clone(), req, output, bound, cache: None, verdict: CacheVerdict::Skip }
    }
}

impl Router {
    /// Commits a plain answer's usage (quota, breaker, route, ledger,
    /// metrics) under a new event id, which it returns. The row says
    /// `client_gone` when the client went away while the provider answered.
    async fn commit(&self, p: &Prepared, s: Served, model: &str, usage: TokenUsage) -> Result<String, RouteError> {
        self.record_outcome(p, &s.account, s.route, s.t0, None);
        s.trial.reported();
        if let Some(r) = s.quota {
            self.settle(p, r, usage.total());
        }
        self.note_route(p, s.route, s.account.account.id);
        let gone = p.client.as_ref().is_some_and(ClientWatch::gone);
        let status = if gone { UsageStatus::ClientGone } else { UsageStatus::Ok };
        let event_id = self.new_event_id();
        let ev = self.usage_event(p, event_id.clone(), &s.account.account, s.route, model, usage, s.latency_ms, status, None);
        self.metrics.observe(s.route, s.account.account.provider, true, p.started.elapsed(), &ev);
        self.ledger.record_among(ev, self.writers_soon()).await.map_err(|e| RouteError::Ledger(e.to_string()))?;
        Ok(event_id)
    }
}

impl Job for Chat {
    type Reply = ChatResponse;
    type Answer = Answer;

    fn exact_tokens(&self) -> u64 {
        token_count::estimate_chat_prompt(&self.req).saturating_add(self.output)
    }

    fn sent_model(&self) -> &str {
        &self.req.model
    }

    fn refuses(&self, router: &Router, account: &ProviderAccount) -> Option<FailureKind> {
        chat_refusal(router, account, &self.req, &self.requested_model)
    }

    async fn call(&mut self, router: &Router, account: &ProviderAccount, target: &ProviderTarget) -> Result<ChatResponse, ProviderError> {
        router.set_model_for(account, &self.requested_model, &mut self.req.model);
        router.providers.chat(target, &self.req).await
    }

    async fn served(self, router: &Router, p: Prepared, s: Served, resp: ChatResponse) -> Result<Answer, RouteError> {
        let provider = s.account.account.provider;
        let served_model: &str = if router.pricing.price(provider, &resp.model).is_some() { &resp.model } else { &self.req.model };
        let (route, account) = (s.route, s.account.account.id);
        let event_id = router.commit(&p, s, served_model, resp.usage).await?;
        if let Some(cu) = self.cache {
            router.cache_put(cu, &p, false, provider, served_model, account, resp.usage, resp.body.clone());
        }
        router.mirror(&p, &event_id, Some(account), &self.req, &self.requested_model);
        Ok(Answer { body: resp.body, route, account, request_id: p.request_id, event_id, cache: self.verdict })
    }

    fn all_failed(&self, router: &Router, p: &Prepared, event_id: &str) {
        router.mirror(p, event_id, None, &self.req, &self.requested_model);
    }
}

/// A streamed chat completion.
pub(super) struct StreamedChat {
    pub(super) chat: Chat,
    /// The stream's guard holds the router until the stream ends.
    router: Arc<Router>,
}

impl StreamedChat {
    pub(super) fn new(router: &Arc<Router>, req: ChatRequest) -> Self {
        StreamedChat { chat: Chat::new(router, req), router: router.clone() }
    }
}

impl Job for StreamedChat {
    type Reply = ChatStream;
    type Answer = StreamAnswer;

    fn exact_tokens(&self) -> u64 {
        self.chat.exact_tokens()
    }

    fn sent_model(&self) -> &str {
        &self.chat.req.model
    }

    fn refuses(&self, router: &Router, account: &ProviderAccount) -> Option<FailureKind> {
        chat_refusal(router, account, &self.chat.req, &self.chat.requested_model)
    }

    async fn call(&mut self, router: &Router, account: &ProviderAccount, target: &ProviderTarget) -> Result<ChatStream, ProviderError> {
        router.set_model_for(account, &self.chat.requested_model, &mut self.chat.req.model);
        router.providers.chat_stream(target, &self.chat.req).await
    }

    async fn served(self, router: &Router, p: Prepared, s: Served, stream: ChatStream) -> Result<StreamAnswer, RouteError> {
        router.note_route(&p, s.route, s.account.account.id);
        let (route, account) = (s.route, s.account.account.id);
        let request_id = p.request_id.clone();
        // The stream's row gets its id now: the client sees it in the headers.
        let event_id = router.new_event_id();
        // The stream reports its outcome when it ends, however it ends.
        s.trial.reported();
        // The stream counts as in flight until it ends (a guard the stream owns).
        let open = OpenStream::enter(&self.router);
        let mirror = router.mirror_copy(&self.chat.req).map(|c| (c, self.chat.requested_model));
        let ctx = StreamCtx {
            cache: self.chat.cache,
            mirror,
            p,
            event_id: event_id.clone(),
            account: s.account,
            route,
            model: self.chat.req.model,
            quota: s.quota,
            t0: s.t0,
        };
        let guard = StreamGuard::new(self.router, open, stream, ctx);
        Ok(StreamAnswer { route, account, request_id, event_id, cache: self.chat.verdict, body: Box::pin(guard) })
    }

    fn all_failed(&self, router: &Router, p: &Prepared, event_id: &str) {
        if let Some(copy) = router.mirror_copy(&self.chat.req) {
            router.mirror(p, event_id, None, &copy, &self.chat.requested_model);
        }
    }
}

/// Embeddings.
pub(super) struct Embeddings {
    pub(super) req: EmbeddingsRequest,
    /// The cheap upper bound of its tokens.
    pub(super) bound: u64,
    /// Where its answer is kept once it succeeded (`None`: not cached).
    pub(super) cache: Option<CacheUse>,
    pub(super) verdict: CacheVerdict,
}

impl Embeddings {
    pub(super) fn new(req: EmbeddingsRequest) -> Self {
        Embeddings { bound: token_count::embeddings_bound(&req), req, cache: None, verdict: CacheVerdict::Skip }
    }
}

impl Job for Embeddings {
    type Reply = EmbeddingsResponse;
    type Answer = Answer;

    fn exact_tokens(&self) -> u64 {
        token_count::estimate_embeddings(&self.req)
    }

    fn sent_model(&self) -> &str {
        &self.req.model
    }

    fn refuses(&self, _router: &Router, account: &ProviderAccount) -> Option<FailureKind> {
        (account.provider == ProviderKind::Anthropic).then_some(FailureKind::NoEmbeddings)
    }

    async fn call(
        &mut self,
        router: &Router,
        _account: &ProviderAccount,
        target: &ProviderTarget,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        router.providers.embeddings(target, &self.req).await
    }

    async fn served(self, router: &Router, p: Prepared, s: Served, resp: EmbeddingsResponse) -> Result<Answer, RouteError> {
        let (route, account, provider) = (s.route, s.account.account.id, s.account.account.provider);
        let event_id = router.commit(&p, s, &self.req.model, resp.usage).await?;
        if let Some(cu) = self.cache {
            router.cache_put(cu, &p, false, provider, &self.req.model, account, resp.usage, resp.body.clone());
        }
        Ok(Answer { body: resp.body, route, account, request_id: p.request_id, event_id, cache: self.verdict })
    }
}
