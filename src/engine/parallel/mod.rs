//! The parallel test ("try before you move"): the same prompts sent to a
//! supplier's current route and to a candidate account side by side, with
//! success rate, latency p50/p95, tokens and cost per request, the projected
//! monthly cost of each route on the supplier's last 30 days of usage, and a
//! suggested migration start that avoids its weddings. Both copies are
//! recorded as `shadow` usage: never billed to the supplier's quota.
//!
//! The same comparison on live traffic: [`start_mirror`] records a mirror that
//! the routing runtime adopts (a sample of the supplier's served requests is
//! copied to the candidate, see `Router::mirror`), and [`finish_mirror`] writes
//! the report from the ledger, pairing each copy with its original.

pub use crate::domain::MirrorPlan;
use crate::domain::PricingTable;
use crate::domain::migration::{default_plan, suggest_start};
pub use crate::domain::parallel::{ParallelProgress, SideReport};
use crate::domain::{AccountId, AccountOwner, AiMode, Micros, ProviderKind, Route, SupplierId, TokenUsage, UsageEvent, UsageStatus};
use crate::engine::analytics::CancelHandle;
use crate::engine::router::Router;
use crate::providers::{ChatRequest, ProviderTarget};
use crate::store::{LedgerSide, MirrorRecord, Store};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

pub mod fleet;

/// Prompts used when none are given: a wedding supplier's everyday requests.
pub const DEFAULT_PROMPTS: &[&str] = &[
    "Write a warm thank-you email to a couple after their wedding at our venue.",
    "Draft a reply to an enquiry asking about availability on 14 June next year.",
    "Summarise this timeline for the bridal party: 14:00 ceremony, 15:00 photos, 17:30 dinner, 21:00 first dance.",
    "Suggest five spring flowers for a pastel bouquet and explain why.",
    "Write a short Instagram caption for a rainy but joyful outdoor wedding.",
    "List the questions a planner should ask a caterer about dietary needs.",
    "Turn these notes into a polished proposal paragraph: rustic barn, 120 guests, string lights, late September.",
    "Write a reminder email about the final payment due two weeks before the wedding.",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParallelReport {
    pub id: i64,
    pub supplier: SupplierId,
    pub created_at: DateTime<Utc>,
    pub current: SideReport,
    pub candidate: SideReport,
    /// The usage the projection is based on (last 30 days, all served routes).
    pub basis_days: u32,
    pub basis_requests: u64,
    pub basis_input_tokens: u64,
    pub basis_cached_tokens: u64,
    pub basis_output_tokens: u64,
    /// current − candidate, per month (positive: the candidate is cheaper).
    pub projected_monthly_saving: Micros,
    pub suggested_start: DateTime<Utc>,
    pub recommendation: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParallelError {
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Refused(String),
    #[error(
        "the parallel test was cancelled after {done} of {total} prompts; no report was stored (the usage of the prompts sent is recorded as shadow usage)"
    )]
    Cancelled { done: u32, total: u32 },
}

fn percentile(sorted: &[u32], p: u32) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as u64 * p as u64).div_ceil(100)).max(1) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Last-30-days token totals of a supplier: (requests, input, cached, output).
fn basis(store: &Store, supplier: SupplierId, now: DateTime<Utc>) -> Result<(u64, u64, u64, u64), ParallelError> {
    Ok(store.usage_basis(supplier, (now - Duration::days(30)).date_naive(), now.date_naive())?)
}

/// Refuses a candidate that is another supplier's or disabled.
pub(crate) fn check_candidate(store: &Store, supplier: SupplierId, candidate: AccountId) -> Result<(), ParallelError> {
    store.supplier(supplier)?;
    let cand = store.account(candidate)?;
    if cand.owner != AccountOwner::Supplier(supplier) && cand.owner != AccountOwner::Platform {
        return Err(ParallelError::Refused(format!("account {candidate} belongs to another supplier")));
    }
    if !cand.enabled {
        return Err(ParallelError::Refused(format!("account {candidate} ({}) is disabled; enable it in Keys to test it", cand.label)));
    }
    Ok(())
}

/// The prompts a test sends: the given ones, or [`DEFAULT_PROMPTS`].
pub(crate) fn prompts_or_default(prompts: &[String]) -> Vec<String> {
    if prompts.is_empty() { DEFAULT_PROMPTS.iter().map(|p| p.to_string()).collect() } else { prompts.to_vec() }
}

/// Runs a parallel test and stores its report.
pub async fn run(
    router: &Arc<Router>,
    supplier: SupplierId,
    candidate: AccountId,
    prompts: &[String],
) -> Result<ParallelReport, ParallelError> {
    run_with(router, supplier, candidate, prompts, &CancelHandle::new(), |_| {}).await
}

/// The platform account a parallel test of "platform AI" for `supplier`
/// compares against: an enabled one of the supplier's provider family when it
/// has one (the router serves a model on its own family first), else the first.
pub fn platform_candidate(store: &Store, supplier: SupplierId) -> Result<AccountId, ParallelError> {
    let own = store.list_accounts(Some(AccountOwner::Supplier(supplier)))?;
    let family = own.iter().find(|a| a.enabled).map(|a| a.provider == ProviderKind::Anthropic);
    let platform: Vec<_> = store.list_accounts(Some(AccountOwner::Platform))?.into_iter().filter(|a| a.enabled).collect();
    platform
        .iter()
        .find(|a| family.is_none_or(|f| (a.provider == ProviderKind::Anthropic) == f))
        .or(platform.first())
        .map(|a| a.id)
        .ok_or_else(|| ParallelError::Refused("there is no enabled platform account to test; add WedSync's key in Keys first".into()))
}

/// [`run`], reporting progress after each prompt and stopping between prompts
/// once `cancel` is set (the usage of prompts already sent stays recorded).
/// Each prompt goes to both routes at the same time, so that both sides see
/// the same moment's network and provider conditions.
pub async fn run_with(
    router: &Arc<Router>,
    supplier: SupplierId,
    candidate: AccountId,
    prompts: &[String],
    cancel: &CancelHandle,
    progress: impl Fn(ParallelProgress) + Send + Sync,
) -> Result<ParallelReport, ParallelError> {
    let store = router.store().clone();
    check_candidate(&store, supplier, candidate)?;
    let s = store.supplier(supplier)?;
    let cand = store.account(candidate)?;
    let current_id = match s.ai_mode {
        AiMode::Platform => router.platform_accounts().into_iter().find(|a| *a != candidate),
        AiMode::Client => store
            .list_accounts(Some(AccountOwner::Supplier(supplier)))?
            .into_iter()
            .find(|a| a.enabled && a.id != candidate)
            .map(|a| a.id)
            .or_else(|| router.platform_accounts().into_iter().next()),
    }
    .ok_or_else(|| ParallelError::Refused(format!("{} has no current route to compare with", s.name)))?;
    let current = store.account(current_id)?;
    let prompts = prompts_or_default(prompts);
    let now = router.clock().now();
    let (basis_requests, b_in, b_cached, b_out) = basis(&store, supplier, now)?;
    // Unique even when two tests start at the same instant (a manual clock).
    let test_id = format!("pt-{}-{}", supplier.0, router.next_request_id());

    let basis_usage = TokenUsage { input: b_in, cached_read: b_cached, output: b_out, ..TokenUsage::default() };
    let mut cur = Side::new(router, &current, "current")?;
    let mut can = Side::new(router, &cand, "candidate")?;
    let total = prompts.len() as u32;
    for (i, p) in prompts.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(ParallelError::Cancelled { done: i as u32, total });
        }
        let (a, b) = tokio::join!(cur.ask(router, p), can.ask(router, p));
        cur.record(router, a, &test_id, i, supplier, now).await;
        can.record(router, b, &test_id, i, supplier, now).await;
        progress(ParallelProgress { supplier, done: i as u32 + 1, total });
    }
    let current_side = cur.report(router, &basis_usage);
    let candidate_side = can.report(router, &basis_usage);
    conclude(&store, &s, candidate, current_side, candidate_side, (basis_requests, b_in, b_cached, b_out), now, "parallel_test.run")
}

/// Compares the two sides, stores the report, replaces the supplier's older
/// parallel-test recommendation, and audits `action`.
#[allow(clippy::too_many_arguments)]
fn conclude(
    store: &Store,
    s: &crate::domain::Supplier,
    candidate: AccountId,
    current_side: SideReport,
    candidate_side: SideReport,
    (basis_requests, b_in, b_cached, b_out): (u64, u64, u64, u64),
    now: DateTime<Utc>,
    action: &str,
) -> Result<ParallelReport, ParallelError> {
    let supplier = s.id;
    let saving = current_side.projected_monthly_cost - candidate_side.projected_monthly_cost;
    let suggested_start = suggest_start(now, s.wedding_calendar(), &default_plan());
    let cheaper = saving.0 > 0;
    // Faster only against answers: a side with none has no latency to beat.
    let faster = current_side.successes > 0 && candidate_side.p95_ms < current_side.p95_ms;
    let healthy = candidate_side.successes == candidate_side.requests;
    // More of its requests answered (rates compared in integers).
    let more_reliable = u64::from(candidate_side.successes) * u64::from(current_side.requests.max(1))
        > u64::from(current_side.successes) * u64::from(candidate_side.requests.max(1));
    let qualities: Vec<&str> = [(cheaper, "cheaper"), (faster, "faster"), (more_reliable, "more reliable")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, q)| *q)
        .collect();
    let recommendation = (healthy && !qualities.is_empty()).then(|| {
        let mut extra = String::new();
        if faster {
            extra.push_str(&format!(", p95 {} ms vs {} ms", candidate_side.p95_ms, current_side.p95_ms));
        }
        if more_reliable {
            extra.push_str(&format!(
                ", {} of {} answered vs {} of {}",
                candidate_side.successes, candidate_side.requests, current_side.successes, current_side.requests
            ));
        }
        format!(
            "{} looks {}: projected {} per month{extra}. Suggested migration start: {}.",
            candidate_side.label,
            qualities.join(" and "),
            if cheaper {
                format!("saving {saving}")
            } else if saving.0 < 0 {
                format!("extra cost {}", -saving)
            } else {
                "the same cost".to_string()
            },
            suggested_start.format("%Y-%m-%d %H:%M UTC")
        )
    });
    let mut report = ParallelReport {
        id: 0,
        supplier,
        created_at: now,
        current: current_side,
        candidate: candidate_side,
        basis_days: 30,
        basis_requests,
        basis_input_tokens: b_in,
        basis_cached_tokens: b_cached,
        basis_output_tokens: b_out,
        projected_monthly_saving: saving,
        suggested_start,
        recommendation,
    };
    report.id = store.insert_parallel_test(supplier, candidate.0, now, &serde_json::to_string(&report).unwrap_or_default())?;
    // The latest test speaks for the supplier: an older test's recommendation goes.
    let _ = store.dismiss_recommendations(supplier, "parallel_test", now);
    if let Some(r) = &report.recommendation {
        let _ = store.recommend(supplier, "parallel_test", &format!("Parallel test {}: {r}", report.id), now);
    }
    let _ = store.audit(
        now,
        &crate::store::audit_actor(),
        action,
        Some(supplier),
        Some(candidate),
        "ok",
        &format!("report {}: projected monthly saving {}", report.id, report.projected_monthly_saving),
    );
    Ok(report)
}

/// One route of a parallel test: what it was asked and what came back.
struct Side {
    acc: crate::domain::ProviderAccount,
    target: ProviderTarget,
    model: String,
    tag: &'static str,
    lat: Vec<u32>,
    ok: u32,
    input: u64,
    output: u64,
    cost: Micros,
    errors: Vec<String>,
}

/// One answer: its usage (zero on failure), latency, and the error if any.
struct Answer {
    usage: TokenUsage,
    ms: u32,
    error: Option<(String, String)>,
}

impl Side {
    fn new(router: &Router, acc: &crate::domain::ProviderAccount, tag: &'static str) -> Result<Self, ParallelError> {
        let key =
            router.key(acc.id).ok_or_else(|| ParallelError::Refused(format!("account {} ({}) has no usable key", acc.id, acc.label)))?;
        Ok(Side {
            acc: acc.clone(),
            target: ProviderTarget::from_account(acc, key),
            model: acc.default_model.clone(),
            tag,
            lat: Vec::new(),
            ok: 0,
            input: 0,
            output: 0,
            cost: Micros::ZERO,
            errors: Vec::new(),
        })
    }

    async fn ask(&self, router: &Router, prompt: &str) -> Answer {
        let req = ChatRequest::simple(&self.model, prompt);
        let t0 = Instant::now();
        let res = router.providers().chat(&self.target, &req).await;
        let ms = t0.elapsed().as_millis().min(u32::MAX as u128) as u32;
        match res {
            Ok(r) => Answer { usage: r.usage, ms, error: None },
            Err(e) => Answer { usage: TokenUsage::default(), ms, error: Some((e.to_string(), e.class().to_string())) },
        }
    }

    /// Adds an answer to the side's figures and records it as shadow usage.
    async fn record(&mut self, router: &Router, a: Answer, test_id: &str, i: usize, supplier: SupplierId, now: DateTime<Utc>) {
        let c = router.pricing().cost(self.acc.provider, &self.model, &a.usage).unwrap_or_default();
        self.lat.push(a.ms);
        self.input += a.usage.prompt_total();
        self.output += a.usage.output;
        self.cost += c;
        let (status, class) = match a.error {
            None => {
                self.ok += 1;
                (UsageStatus::Ok, None)
            }
            Some((message, class)) => {
                self.errors.push(message);
                (UsageStatus::Error, Some(class))
            }
        };
        let ev = UsageEvent {
            saved: crate::domain::Micros::ZERO,
            event_id: format!("{test_id}-{}-{i}", self.tag),
            request_id: test_id.to_string(),
            idempotency_key: None,
            ts: now,
            supplier_id: supplier,
            account_id: Some(self.acc.id),
            provider: self.acc.provider,
            model: self.model.clone(),
            request_type: crate::domain::RequestType::WeddingContent,
            route: Route::Shadow,
            usage: a.usage,
            cost: c,
            latency_ms: a.ms,
            status,
            error_class: class,
        };
        if let Err(e) = router.ledger().record(ev).await {
            tracing::warn!(error = %e, "parallel test usage not recorded");
        }
    }

    fn report(mut self, router: &Router, basis_usage: &TokenUsage) -> SideReport {
        self.lat.sort_unstable();
        let n = self.lat.len().max(1) as u64;
        SideReport {
            label: self.acc.label.clone(),
            account_id: self.acc.id,
            provider: self.acc.provider,
            requests: self.lat.len() as u32,
            successes: self.ok,
            p50_ms: percentile(&self.lat, 50),
            p95_ms: percentile(&self.lat, 95),
            avg_input_tokens: self.input / n,
            avg_output_tokens: self.output / n,
            cost_per_request: Micros(self.cost.0 / n as i64),
            projected_monthly_cost: router.pricing().cost(self.acc.provider, &self.model, basis_usage).unwrap_or_default(),
            model: self.model,
            errors: self.errors,
        }
    }
}

/// Starts a parallel test on live traffic: a running routing runtime (the
/// console in demo mode, or `switchboard serve`) copies a sample of the
/// supplier's chat requests (streamed ones as plain requests, once their
/// stream has completed) to `candidate` in the background,
/// records each copy as shadow usage (never billed to the quota), and writes
/// the side-by-side report when enough are compared or the time is up.
pub fn start_mirror(
    store: &Store,
    supplier: SupplierId,
    candidate: AccountId,
    plan: MirrorPlan,
    now: DateTime<Utc>,
) -> Result<MirrorRecord, ParallelError> {
    plan.validate().map_err(|e| ParallelError::Refused(e.to_string()))?;
    let s = store.supplier(supplier)?;
    let cand = store.account(candidate)?;
    if cand.owner != AccountOwner::Supplier(supplier) && cand.owner != AccountOwner::Platform {
        return Err(ParallelError::Refused(format!("account {candidate} belongs to another supplier")));
    }
    let serves_now = match s.ai_mode {
        AiMode::Platform => cand.owner == AccountOwner::Platform,
        AiMode::Client => {
            store.list_accounts(Some(AccountOwner::Supplier(supplier)))?.into_iter().find(|a| a.enabled).map(|a| a.id) == Some(candidate)
        }
    };
    if serves_now {
        return Err(ParallelError::Refused(format!("{} already serves {}'s requests; mirror to another route", cand.label, s.name)));
    }
    if !cand.enabled || cand.key_ref.is_none() {
        return Err(ParallelError::Refused(format!(
            "account {candidate} ({}) is disabled or has no key; fix it in Keys before mirroring to it",
            cand.label
        )));
    }
    let m = store.insert_mirror(supplier, candidate, plan.sample_percent, plan.requests, now, now + plan.duration)?;
    let _ = store.audit(
        now,
        &crate::store::audit_actor(),
        "parallel_test.mirror_start",
        Some(supplier),
        Some(candidate),
        "ok",
        &format!(
            "mirror {}: {} % of live requests to {} until {} are compared or {}",
            m.id,
            plan.sample_percent,
            cand.label,
            plan.requests,
            m.ends_at.format("%Y-%m-%d %H:%M UTC")
        ),
    );
    Ok(m)
}

/// Ends a running mirror and writes its report from the ledger (every
/// original request paired with its shadow copy). `stopped`: ended by hand
/// rather than by its target or deadline. Returns the report, or `None` when
/// nothing had been compared (the mirror ends without one) or another process
/// is already ending it.
pub fn finish_mirror(
    store: &Store,
    pricing: &PricingTable,
    id: i64,
    now: DateTime<Utc>,
    why: &str,
    stopped: bool,
) -> Result<Option<ParallelReport>, ParallelError> {
    if !store.claim_mirror(id, now)? {
        return Ok(None);
    }
    match mirror_report(store, pricing, id, now, why) {
        Ok(Some(report)) => {
            store.end_mirror(id, "done", Some(report.id), why, now)?;
            Ok(Some(report))
        }
        Ok(None) => {
            let state = if stopped { "stopped" } else { "expired" };
            store.end_mirror(id, state, None, &format!("{why}; no live request had been mirrored"), now)?;
            Ok(None)
        }
        Err(e) => {
            let _ = store.end_mirror(id, "expired", None, &format!("the report could not be written: {e}"), now);
            Err(e)
        }
    }
}

fn mirror_report(
    store: &Store,
    pricing: &PricingTable,
    id: i64,
    now: DateTime<Utc>,
    why: &str,
) -> Result<Option<ParallelReport>, ParallelError> {
    let m = store.mirror(id)?.ok_or_else(|| ParallelError::Refused(format!("mirror {id} does not exist")))?;
    let pairs = store.mirror_pairs(id)?;
    if pairs.is_empty() {
        return Ok(None);
    }
    let s = store.supplier(m.supplier_id)?;
    let (basis_requests, b_in, b_cached, b_out) = basis(store, m.supplier_id, now)?;
    let basis_usage = TokenUsage { input: b_in, cached_read: b_cached, output: b_out, ..TokenUsage::default() };
    let (originals, copies): (Vec<LedgerSide>, Vec<LedgerSide>) = pairs.into_iter().unzip();
    // The current side is the account that served most of the originals.
    let current_id = most_common(originals.iter().filter_map(|o| o.account_id)).unwrap_or(m.account_id);
    let current = store.account(current_id)?;
    let cand = store.account(m.account_id)?;
    let current_side = ledger_side(&current, &originals, pricing, &basis_usage);
    let candidate_side = ledger_side(&cand, &copies, pricing, &basis_usage);
    let report = conclude(
        store,
        &s,
        m.account_id,
        current_side,
        candidate_side,
        (basis_requests, b_in, b_cached, b_out),
        now,
        "parallel_test.mirror_done",
    )?;
    tracing::info!(mirror = id, report = report.id, why, "live-traffic mirror reported");
    Ok(Some(report))
}

fn most_common<T: Eq + std::hash::Hash + Copy + Ord>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: std::collections::HashMap<T, usize> = std::collections::HashMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(k, n)| (*n, std::cmp::Reverse(*k))).map(|(k, _)| k)
}

/// One side's figures from what the ledger recorded for it.
fn ledger_side(acc: &crate::domain::ProviderAccount, rows: &[LedgerSide], pricing: &PricingTable, basis_usage: &TokenUsage) -> SideReport {
    let model = most_common(rows.iter().map(|r| r.model.as_str())).unwrap_or(&acc.default_model).to_string();
    // Latency of answers: a request that failed on every route has none.
    let mut lat: Vec<u32> = rows.iter().filter(|r| r.ok).map(|r| r.latency_ms).collect();
    lat.sort_unstable();
    let n = rows.len().max(1) as u64;
    let mut errors: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| !r.ok) {
        let class = r.error_class.clone().unwrap_or_else(|| "error".into());
        if !errors.contains(&class) {
            errors.push(class);
        }
    }
    let cost: i64 = rows.iter().map(|r| r.cost_micros).sum();
    SideReport {
        label: acc.label.clone(),
        account_id: acc.id,
        provider: acc.provider,
        requests: rows.len() as u32,
        successes: rows.iter().filter(|r| r.ok).count() as u32,
        p50_ms: percentile(&lat, 50),
        p95_ms: percentile(&lat, 95),
        avg_input_tokens: rows.iter().map(|r| r.usage.prompt_total()).sum::<u64>() / n,
        avg_output_tokens: rows.iter().map(|r| r.usage.output).sum::<u64>() / n,
        cost_per_request: Micros(cost / n as i64),
        projected_monthly_cost: pricing.cost(acc.provider, &model, basis_usage).unwrap_or_default(),
        model,
        errors,
    }
}
