//! The attempt loop, one for every kind of request: authenticate and rate
//! limit ([`Router::prepare`]), plan the route over live breaker state, the
//! quota and any migration split ([`Router::plan`]), then try the planned
//! accounts in order ([`Router::run`]): take the breaker's permission
//! ([`Trial`]) and the quota [`Reservation`] — owned guards that give back
//! what they hold when dropped, so a request future dropped at any await
//! point leaks neither — call the provider through the request's [`Job`], and
//! either hand the success to the job or record the failure and go on. A
//! provider's 400 or content-filter refusal ends the loop at once (another
//! route would say the same); when every route failed, the final status is
//! decided from the typed failures ([`Router::fail`]).

use super::catalog::{AccountEntry, SupplierEntry};
use super::failure::{FailureKind, Failures, RouteError, RouteFailure};
use super::quota::Reservation;
use super::{AttemptOutcome, Caller, ClientWatch, Credential, Router, RouterEvent};
use crate::domain::Secret;
use crate::domain::breaker::BreakerState;
use crate::domain::ratelimit::{RateDecision, RateLimit};
use crate::domain::routing::{Candidate, RoutePlan, RoutingInput, SkipReason, plan_route};
use crate::domain::{
    AccountId, AccountOwner, AiMode, Micros, ProviderAccount, ProviderKind, RequestType, Route, TokenUsage, UsageEvent, UsageStatus,
};
use crate::providers::{ProviderError, ProviderTarget};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::runtime::Handle;

/// A request that passed authentication and the rate limit: what its
/// attempts need.
pub(super) struct Prepared {
    pub(super) supplier: Arc<SupplierEntry>,
    pub(super) request_type: RequestType,
    pub(super) wedding_day: bool,
    /// The platform tokens this request may use, as reserved against the
    /// quota: an upper bound that needs no tokenizer at first, the
    /// tokenizer's count once the bound does not fit (see [`Prepared::refine`]).
    pub(super) estimate: u64,
    /// Whether `estimate` is the tokenizer's count.
    estimate_exact: bool,
    pub(super) now: DateTime<Utc>,
    /// The client's tracing id (`X-Request-Id`), or one made up: logged,
    /// echoed and recorded, never used to deduplicate.
    pub(super) request_id: String,
    /// The `Idempotency-Key` the client sent, if any: recorded on its rows.
    pub(super) idempotency_key: Option<String>,
    /// Whether the client is still there (`None`: the caller does not say).
    pub(super) client: Option<ClientWatch>,
    /// When the request arrived (for `/metrics`).
    pub(super) started: Instant,
    /// The caller's runtime, kept only while a live-traffic mirror runs.
    pub(super) lane: Option<Handle>,
}

impl Prepared {
    /// Replaces the bound with the tokenizer's count; false when it already is that.
    fn refine(&mut self, exact: impl FnOnce() -> u64) -> bool {
        if self.estimate_exact {
            return false;
        }
        self.estimate = exact().min(self.estimate);
        self.estimate_exact = true;
        true
    }
}

/// The half-open trial an attempt holds (if it holds one), given back when
/// the attempt ends without reporting an outcome: refused by the quota after
/// the breaker let it through, or dropped mid-call because the client went
/// away. Without it the breaker would wait for that trial, and refuse every
/// request to the account, for good.
pub(super) struct Trial {
    account: Arc<AccountEntry>,
    id: Option<u64>,
}

impl Trial {
    /// The outcome was recorded (or will be, by a stream's end).
    pub(super) fn reported(mut self) {
        self.id = None;
    }
}

impl Drop for Trial {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.account.breaker.lock().release_trial(id);
        }
    }
}

/// The attempt whose provider call succeeded, for the job to finish.
pub(super) struct Served {
    pub(super) account: Arc<AccountEntry>,
    pub(super) route: Route,
    /// The attempt's platform quota reservation (`None`: it does not count
    /// against the quota); settled by the job, given back if dropped.
    pub(super) quota: Option<Reservation>,
    pub(super) trial: Trial,
    /// When the provider call started, and how long it took.
    pub(super) t0: Instant,
    pub(super) latency_ms: u32,
}

/// What differs between the kinds of request the attempt loop serves.
pub(super) trait Job: Send {
    type Reply: Send;
    type Answer;
    /// The request's exact token count (the tokenizer's), asked for only
    /// when the cheap bound does not fit the quota.
    fn exact_tokens(&self) -> u64;
    /// The model the last [`Job::call`] sent (for a failed attempt's row).
    fn sent_model(&self) -> &str;
    /// Why this account cannot serve this kind of request at all, if it cannot.
    fn refuses(&self, _router: &Router, _account: &ProviderAccount) -> Option<FailureKind> {
        None
    }
    /// Sends the request to an account's provider.
    fn call(
        &mut self,
        router: &Router,
        account: &ProviderAccount,
        target: &ProviderTarget,
    ) -> impl Future<Output = Result<Self::Reply, ProviderError>> + Send;
    /// The provider answered: settle, record and answer.
    fn served(
        self,
        router: &Router,
        p: Prepared,
        s: Served,
        reply: Self::Reply,
    ) -> impl Future<Output = Result<Self::Answer, RouteError>> + Send;
    /// Every route failed (the failed request is recorded already, as
    /// `event_id`).
    fn all_failed(&self, _router: &Router, _p: &Prepared, _event_id: &str) {}
}

/// Milliseconds since `t0`, saturated.
pub(super) fn millis_since(t0: Instant) -> u32 {
    t0.elapsed().as_millis().min(u32::MAX as u128) as u32
}

impl Router {
    /// Checks auth, model, rate limit; returns what the attempts need.
    pub(super) fn prepare(
        &self,
        caller: Caller<'_>,
        model: &str,
        request_type: RequestType,
        estimate: u64,
        request_id: Option<&str>,
        started: Instant,
    ) -> Result<Prepared, RouteError> {
        let supplier_id = match caller.credential {
            Credential::Token(bearer) => self.authenticate(bearer)?,
            Credential::Supplier(s) => s,
        };
        if model.trim().is_empty() {
            return Err(RouteError::BadRequest("the request has no model; set \"model\", e.g. \"gpt-4o-mini\"".into()));
        }
        if self.model_provider(model).is_none() {
            return Err(RouteError::UnknownModel(model.to_string()));
        }
        let cat = self.catalog();
        let supplier = cat.suppliers.get(&supplier_id).cloned().ok_or(RouteError::UnknownToken)?;
        // No provider call while its usage could not be recorded.
        self.ledger.admit().map_err(|_| RouteError::LedgerUnavailable)?;
        let now = self.clock.now();
        let today = now.date_naive();
        let wedding_day = supplier.supplier.is_wedding_day(now);
        let rpm = self.cfg.quota.rpm(supplier.supplier.tier, today);
        {
            let mut g = supplier.gcra.lock();
            // In a fleet, this instance's share of the tier's limit.
            let share = self.rate_share.load(Ordering::Relaxed).max(1);
            let limit = RateLimit::per_minute((rpm / share).max(1));
            if wedding_day {
                g.force(limit, now);
            } else if let RateDecision::Deny { retry_after_ms } = g.check(limit, now) {
                self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Err(RouteError::RateLimited {
                    rpm,
                    tier: supplier.supplier.tier.to_string(),
                    retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
                });
            }
        }
        let request_id = match request_id.map(str::trim).filter(|r| !r.is_empty() && r.len() <= 128) {
            Some(r) => r.to_string(),
            None => self.next_request_id(),
        };
        let idempotency_key = match caller.idempotency_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) if k.len() > MAX_IDEMPOTENCY_KEY => {
                return Err(RouteError::BadRequest(format!(
                    "the Idempotency-Key header is {} bytes long; use at most {MAX_IDEMPOTENCY_KEY} (a UUID is a good key)",
                    k.len()
                )));
            }
            k => k.map(str::to_string),
        };
        // The lane's handle is needed only to send mirror copies.
        let lane = if self.mirroring.load(Ordering::Relaxed) { caller.lane.cloned() } else { None };
        let client = caller.client.cloned();
        Ok(Prepared {
            supplier,
            request_type,
            wedding_day,
            estimate,
            estimate_exact: false,
            now,
            request_id,
            idempotency_key,
            client,
            started,
            lane,
        })
    }

    /// Plans the route; returns the plan and whether the quota allows platform AI.
    /// `exact`: the request's token count, asked for only when the cheap
    /// bound does not fit the quota.
    fn plan(&self, p: &mut Prepared, model_provider: Option<ProviderKind>, exact: impl FnOnce() -> u64) -> (RoutePlan, bool) {
        let cat = self.catalog();
        let keys = self.keys.read();
        let now = p.now;
        let cand = |id: &AccountId| -> Option<Candidate> {
            let a = cat.accounts.get(id)?;
            let open = !matches!(a.breaker.lock().state_at(now), BreakerState::Closed | BreakerState::HalfOpen { trial_in_flight: false });
            Some(Candidate { account: *id, provider: a.account.provider, available: a.account.enabled && keys.contains_key(id) && !open })
        };
        let client: Vec<Candidate> = p.supplier.client_accounts.iter().filter_map(cand).collect();
        let platform: Vec<Candidate> = cat.platform.iter().filter_map(cand).collect();
        drop(keys);
        // The model's pool first (OpenAI and Azure serve the same models),
        // each pool's keys by the strategy, keys without headroom skipped.
        let (platform, client) = self.order_pools(platform, client, model_provider, p.estimate, now);
        let quota = self.quota_of(p);
        let (used, reserved) = self.counter(&p.supplier, now);
        let fits = |p: &Prepared| used.saturating_add(reserved).saturating_add(p.estimate) <= quota;
        let mut platform_allowed = p.wedding_day || fits(p);
        if !platform_allowed && p.refine(exact) {
            platform_allowed = fits(p);
        }
        let split = self.split(p.supplier.supplier.id);
        let input = RoutingInput {
            mode: p.supplier.supplier.ai_mode,
            client: &client,
            platform: &platform,
            platform_allowed,
            allow_platform_failover: p.supplier.supplier.allow_platform_failover,
            // Only a running split reads the hash (a SHA-256 of the id).
            request_hash: if split.is_some() { request_hash(&p.request_id) } else { 0 },
            split,
        };
        (plan_route(&input), platform_allowed)
    }

    /// Takes an attempt's account, its key, the breaker's permission and (on
    /// platform AI) the quota reservation. `Err(Some(failure))` when the
    /// account is skipped for a reason worth reporting, `Err(None)` when it
    /// is gone. Returns the quota reservation when the attempt counts
    /// against the platform quota.
    #[allow(clippy::type_complexity)]
    fn begin_attempt(
        &self,
        p: &mut Prepared,
        account: AccountId,
        job: &impl Job,
    ) -> Result<(Arc<AccountEntry>, Secret, Option<Reservation>, Trial), Option<RouteFailure>> {
        let acc = self.catalog().accounts.get(&account).cloned().ok_or(None)?;
        let failure = |kind| Some(RouteFailure::new(account, &acc.account.label, kind));
        if let Some(kind) = job.refuses(self, &acc.account) {
            return Err(failure(kind));
        }
        let key = self.keys.read().get(&account).cloned().ok_or(None)?;
        let trial = {
            let mut b = acc.breaker.lock();
            if !b.try_acquire(p.now).0 {
                return Err(failure(FailureKind::BreakerOpen));
            }
            Trial { account: acc.clone(), id: b.trial() }
        };
        let quota = if acc.account.owner == AccountOwner::Platform {
            let r = self.reserve(p, p.estimate);
            match r.or_else(|| if p.refine(|| job.exact_tokens()) { self.reserve(p, p.estimate) } else { None }) {
                Some(r) => Some(r),
                // `trial` is given back as it drops: the request was not sent.
                None => return Err(failure(FailureKind::QuotaUsedUp)),
            }
        } else {
            None
        };
        Ok((acc, key, quota, trial))
    }

    /// Where an attempt goes. With a route left after it, a failing call gets
    /// at most one quick retry and no long retry-after wait
    /// ([`crate::providers::RetryPolicy::before_failover`]): the next route
    /// answers sooner than a backoff would end.
    /// `pool_left`: the next attempt is another key of the same pool, so a
    /// rate limit's retry-after is not waited for at all: that key answers now.
    fn target(&self, account: &ProviderAccount, key: Secret, route_left: bool, pool_left: bool) -> ProviderTarget {
        let t = ProviderTarget::from_account(account, key).with_observer(self.pools.observer(account.id));
        if pool_left {
            let quick = self.providers.config().retry.before_failover();
            t.with_retry(crate::providers::RetryPolicy { max_retry_after: std::time::Duration::ZERO, ..quick })
        } else if route_left {
            t.with_retry(self.providers.config().retry.before_failover())
        } else {
            t
        }
    }

    /// The attempt loop every kind of request runs.
    pub(super) async fn run<J: Job>(
        &self,
        mut p: Prepared,
        model_provider: Option<ProviderKind>,
        mut job: J,
    ) -> Result<J::Answer, RouteError> {
        let (plan, platform_allowed) = self.plan(&mut p, model_provider, || job.exact_tokens());
        let mut failures = Vec::new();
        let mut last_status = 503;
        // The row of the last provider call that failed, if any was made.
        let mut last_attempt = None;
        for (i, attempt) in plan.attempts.iter().enumerate() {
            // From here until the attempt ends, `quota` and `trial` are
            // guards: if this future is dropped (the client went away, a
            // panic, shutdown), they give back what they hold.
            let mut begun = self.begin_attempt(&mut p, attempt.account, &job);
            // Fleet mode: a lease with no room asks the fleet's database
            // before the request is refused as over quota.
            if matches!(&begun, Err(Some(f)) if f.kind == FailureKind::QuotaUsedUp) && self.refill_lease(&p).await {
                begun = self.begin_attempt(&mut p, attempt.account, &job);
            }
            let (acc, key, quota, trial) = match begun {
                Ok(v) => v,
                Err(Some(failure)) => {
                    failures.push(failure);
                    continue;
                }
                Err(None) => continue,
            };
            let pool_left = plan.attempts[i + 1..].iter().any(|a| {
                self.catalog()
                    .accounts
                    .get(&a.account)
                    .is_some_and(|n| n.account.provider == acc.account.provider && n.account.owner == acc.account.owner)
            });
            let target = self.target(&acc.account, key, i + 1 < plan.attempts.len(), pool_left);
            let call = self.pools.begin(acc.account.id, p.estimate);
            let t0 = Instant::now();
            let res = job.call(self, &acc.account, &target).await;
            let latency_ms = millis_since(t0);
            call.end(res.as_ref().err());
            match res {
                Ok(reply) => {
                    let served = Served { account: acc, route: attempt.route, quota, trial, t0, latency_ms };
                    return job.served(self, p, served, reply).await;
                }
                Err(e) => {
                    self.record_outcome(&p, &acc, attempt.route, t0, Some(&e));
                    trial.reported();
                    if let Some(r) = quota {
                        self.settle(&p, r, 0);
                    }
                    // Every provider call is one usage row: a failed one too,
                    // against the account that was called.
                    last_attempt =
                        Some(self.record_failed_attempt(&p, &acc.account, attempt.route, job.sent_model(), latency_ms, &e).await);
                    if matches!(e, ProviderError::BadRequest { .. } | ProviderError::ContentFiltered { .. }) {
                        // The request itself is wrong: another route would say the same.
                        self.metrics.observe_error(attempt.route, acc.account.provider, p.started.elapsed());
                        return Err(RouteError::Upstream(e));
                    }
                    last_status = e.status_code();
                    failures.push(RouteFailure::new(acc.account.id, &acc.account.label, FailureKind::Provider(e)));
                }
            }
        }
        let (err, event_id) = self.fail(&p, &plan, platform_allowed, failures, last_status, last_attempt).await;
        job.all_failed(self, &p, &event_id);
        Err(err)
    }

    /// The error for a request no route served, from the typed failures of
    /// its attempts and the accounts its plan skipped, and the event id of
    /// its last row: the last failed provider call's (`last_attempt`), or,
    /// when no provider was called, the one error row recorded here for it.
    async fn fail(
        &self,
        p: &Prepared,
        plan: &RoutePlan,
        platform_allowed: bool,
        mut failures: Vec<RouteFailure>,
        last_status: u16,
        last_attempt: Option<String>,
    ) -> (RouteError, String) {
        let quota_only =
            plan.attempts.is_empty() && !plan.skipped.is_empty() && plan.skipped.iter().all(|(_, r)| *r == SkipReason::QuotaExceeded);
        let quota_blocked = !platform_allowed && p.supplier.supplier.ai_mode == AiMode::Platform;
        let attempts_quota_only = !failures.is_empty() && failures.iter().all(|f| f.kind == FailureKind::QuotaUsedUp);
        let err = if quota_only || (quota_blocked && plan.attempts.is_empty()) || attempts_quota_only {
            self.quota_error(p)
        } else if let Some(err) = Self::no_exact_route(plan, &failures) {
            err
        } else {
            let cat = self.catalog();
            for (id, why) in &plan.skipped {
                let label = cat.accounts.get(id).map(|a| a.account.label.clone()).unwrap_or_else(|| format!("account {id}"));
                failures.push(RouteFailure { account: Some((*id, label)), kind: FailureKind::skipped(*why) });
            }
            if failures.is_empty() {
                failures.push(RouteFailure { account: None, kind: FailureKind::NoAccount });
            }
            let status = match last_status {
                504 => 504,
                s if s >= 500 => 502,
                _ => 503,
            };
            RouteError::AllRoutesFailed { status, failures: Failures(failures) }
        };
        self.metrics.observe_refused(p.started.elapsed());
        let event_id = match last_attempt {
            Some(id) => id,
            None => self.record_failure(p, &err).await,
        };
        (err, event_id)
    }

    /// Commits the usage row of a provider call that failed (no tokens,
    /// no cost: providers report none on errors) and returns its event id.
    async fn record_failed_attempt(
        &self,
        p: &Prepared,
        account: &ProviderAccount,
        route: Route,
        model: &str,
        latency_ms: u32,
        e: &ProviderError,
    ) -> String {
        let event_id = self.new_event_id();
        let ev = self.usage_event(
            p,
            event_id.clone(),
            account,
            route,
            model,
            TokenUsage::default(),
            latency_ms,
            UsageStatus::Error,
            Some(e.class().to_string()),
        );
        let _ = self.ledger.record_among(ev, self.writers_soon()).await;
        event_id
    }

    /// When every route of the plan was skipped because it cannot serve the
    /// request exactly (no equivalent model, or a feature with no
    /// equivalent), the client's error: a 404 naming the models the routes
    /// offer when a model was the reason, else a 400 naming the features.
    fn no_exact_route(plan: &RoutePlan, failures: &[RouteFailure]) -> Option<RouteError> {
        let exact = |k: &FailureKind| matches!(k, FailureKind::Untranslatable(_) | FailureKind::ModelNotOffered { .. });
        // Accounts the supplier's own settings rule out (no failover to
        // platform AI) are not routes; any other skipped account might serve
        // the request in a moment.
        let others_skipped = plan.skipped.iter().any(|(_, why)| *why != SkipReason::FailoverForbidden);
        if failures.is_empty() || others_skipped || !failures.iter().all(|f| exact(&f.kind)) {
            return None;
        }
        let mut offered: Vec<String> = Vec::new();
        let mut model = None;
        let mut whys: Vec<&str> = Vec::new();
        for f in failures {
            match &f.kind {
                FailureKind::ModelNotOffered { model: m, offered: o } => {
                    model = Some(m.clone());
                    offered.extend(o.iter().cloned());
                }
                FailureKind::Untranslatable(why) if !whys.contains(&why.as_str()) => whys.push(why),
                _ => {}
            }
        }
        if let Some(model) = model
            && whys.is_empty()
        {
            offered.sort();
            offered.dedup();
            return Some(RouteError::ModelNotOnRoute { model, offered });
        }
        if whys.is_empty() {
            whys.push("a model with no equivalent on the route");
        }
        Some(RouteError::Untranslatable(whys.join("; ")))
    }

    /// Reports an attempt's outcome to its breaker and to the subscribers.
    pub(super) fn record_outcome(&self, p: &Prepared, account: &AccountEntry, route: Route, started: Instant, err: Option<&ProviderError>) {
        let counts = err.map(|e| e.counts_against_health()).unwrap_or(false);
        let ok = err.is_none() || !counts;
        let now = self.clock.now();
        let t = account.breaker.lock().record(ok, now);
        self.on_transition(account.account.id, t);
        let _ = self.outcomes.send(AttemptOutcome {
            at: now,
            supplier: p.supplier.supplier.id,
            account: account.account.id,
            route,
            ok: err.is_none(),
            latency_ms: millis_since(started),
            error_class: err.map(|e| e.class()),
            counts_against_health: counts,
        });
    }

    /// A usage row for `p` with the event id `event_id` (see
    /// [`Router::new_event_id`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn usage_event(
        &self,
        p: &Prepared,
        event_id: String,
        account: &ProviderAccount,
        route: Route,
        model: &str,
        usage: TokenUsage,
        latency_ms: u32,
        status: UsageStatus,
        error_class: Option<String>,
    ) -> UsageEvent {
        let provider = account.provider;
        let cost = self.pricing.cost(provider, model, &usage).unwrap_or(Micros::ZERO);
        // The key's monthly spend, and its minute's tokens corrected from the estimate.
        let tokens = (status != UsageStatus::Error).then(|| (p.estimate, usage.total()));
        self.pools.on_usage(account.id, p.now, cost, tokens);
        UsageEvent {
            saved: crate::domain::Micros::ZERO,
            event_id,
            request_id: p.request_id.clone(),
            idempotency_key: p.idempotency_key.clone(),
            ts: p.now,
            supplier_id: p.supplier.supplier.id,
            account_id: Some(account.id),
            provider,
            model: model.to_string(),
            request_type: p.request_type,
            route,
            usage,
            cost,
            latency_ms,
            status,
            error_class,
        }
    }

    /// Commits the usage row of a failed request that called no provider
    /// (every route was skipped or refused); returns its event id (made even when there is no account to
    /// record it against, so that a mirror copy still has an id).
    async fn record_failure(&self, p: &Prepared, err: &RouteError) -> String {
        let event_id = self.new_event_id();
        let cat = self.catalog();
        // A failed request is recorded against the first planned account, if any.
        let account =
            p.supplier.client_accounts.first().or(cat.platform.first()).and_then(|id| cat.accounts.get(id)).map(|a| a.account.clone());
        if let Some(a) = account {
            let route = if a.owner == AccountOwner::Platform { Route::Platform } else { Route::Client };
            let ev = self.usage_event(
                p,
                event_id.clone(),
                &a,
                route,
                "",
                TokenUsage::default(),
                0,
                UsageStatus::Error,
                Some(err.class().to_string()),
            );
            let _ = self.ledger.record_among(ev, self.writers_soon()).await;
        }
        event_id
    }

    /// Notes a client-mode supplier's failover to platform AI, or its return.
    pub(super) fn note_route(&self, p: &Prepared, route: Route, account: AccountId) {
        let s = &p.supplier;
        if s.supplier.ai_mode != AiMode::Client {
            return;
        }
        if route == Route::Failover {
            if !s.in_failover.swap(true, Ordering::Relaxed) {
                self.audit_async("failover.start", Some(s.supplier.id), Some(account), "client account down: served by platform AI".into());
                let _ = self.events.send(RouterEvent::FailoverStarted { supplier: s.supplier.id, account });
            }
        } else if route == Route::Client && s.in_failover.swap(false, Ordering::Relaxed) {
            self.audit_async("failover.end", Some(s.supplier.id), Some(account), "client account healthy again: traffic returned".into());
            let _ = self.events.send(RouterEvent::FailoverEnded { supplier: s.supplier.id });
        }
    }
}

/// The longest `Idempotency-Key` accepted (Stripe's limit).
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A stable 64-bit hash of a request id (for splits and mirror samples).
pub(super) fn request_hash(request_id: &str) -> u64 {
    u64::from_le_bytes(Sha256::digest(request_id.as_bytes())[..8].try_into().unwrap_or([0; 8]))
}
