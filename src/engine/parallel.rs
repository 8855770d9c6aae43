//! The parallel test ("try before you move"): the same prompts sent to a
//! supplier's current route and to a candidate account side by side, with
//! success rate, latency p50/p95, tokens and cost per request, the projected
//! monthly cost of each route on the supplier's last 30 days of usage, and a
//! suggested migration start that avoids its weddings. Both copies are
//! recorded as `shadow` usage: never billed to the supplier's quota.

use crate::domain::migration::{default_plan, suggest_start};
use crate::domain::{AccountId, AccountOwner, AiMode, Micros, ProviderKind, Route, SupplierId, TokenUsage, UsageEvent, UsageStatus};
use crate::engine::router::Router;
use crate::providers::{ChatRequest, ProviderTarget};
use crate::store::Store;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

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
pub struct SideReport {
    pub label: String,
    pub account_id: AccountId,
    pub provider: ProviderKind,
    pub model: String,
    pub requests: u32,
    pub successes: u32,
    pub p50_ms: u32,
    pub p95_ms: u32,
    pub avg_input_tokens: u64,
    pub avg_output_tokens: u64,
    pub cost_per_request: Micros,
    /// The supplier's last 30 days of tokens priced on this route's model.
    pub projected_monthly_cost: Micros,
    pub errors: Vec<String>,
}

impl SideReport {
    pub fn success_percent(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.successes as f64 * 100.0 / self.requests as f64 }
    }
}

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
    let from = (now - Duration::days(30)).format("%Y-%m-%d").to_string();
    let to = now.format("%Y-%m-%d").to_string();
    Ok(store.with_conn(|c| {
        c.query_row(
            "SELECT coalesce(sum(requests),0), coalesce(sum(input_tokens + cache_write_tokens),0), coalesce(sum(cached_tokens),0), coalesce(sum(output_tokens),0)
             FROM usage_daily WHERE supplier_id = ?1 AND day >= ?2 AND day <= ?3 AND route != ?4",
            rusqlite::params![supplier.0, from, to, Route::Shadow.code()],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64, r.get::<_, i64>(3)? as u64)),
        )
    })?)
}

/// Runs a parallel test and stores its report.
pub async fn run(
    router: &Arc<Router>,
    supplier: SupplierId,
    candidate: AccountId,
    prompts: &[String],
) -> Result<ParallelReport, ParallelError> {
    let store = router.store().clone();
    let s = store.supplier(supplier)?;
    let cand = store.account(candidate)?;
    if cand.owner != AccountOwner::Supplier(supplier) && cand.owner != AccountOwner::Platform {
        return Err(ParallelError::Refused(format!("account {candidate} belongs to another supplier")));
    }
    let current_id = match s.ai_mode {
        AiMode::Platform => router.platform_accounts().into_iter().find(|a| *a != candidate),
        AiMode::Client => store
            .list_accounts(Some(AccountOwner::Supplier(supplier)))?
            .into_iter()
            .find(|a| a.enabled && a.id != candidate)
            .map(|a| a.id)
            .or_else(|| router.platform_accounts().into_iter().next()),
    }
    .ok_or_else(|| ParallelError::Refused(format!("supplier {supplier} has no current route to compare with")))?;
    let current = store.account(current_id)?;
    let prompts: Vec<String> = if prompts.is_empty() { DEFAULT_PROMPTS.iter().map(|p| p.to_string()).collect() } else { prompts.to_vec() };
    let now = router.clock().now();
    let (basis_requests, b_in, b_cached, b_out) = basis(&store, supplier, now)?;
    let test_id = format!("pt-{}-{}", supplier.0, now.timestamp_millis());

    let basis_usage = TokenUsage { input: b_in, cached_read: b_cached, output: b_out, ..TokenUsage::default() };
    let current_side = measure(router, &current, "current", &test_id, supplier, &prompts, &basis_usage, now).await?;
    let candidate_side = measure(router, &cand, "candidate", &test_id, supplier, &prompts, &basis_usage, now).await?;
    let saving = current_side.projected_monthly_cost - candidate_side.projected_monthly_cost;
    let suggested_start = suggest_start(now, &s.weddings, &default_plan());
    let cheaper = saving.0 > 0;
    let faster = candidate_side.p95_ms < current_side.p95_ms;
    let healthy = candidate_side.successes == candidate_side.requests;
    let recommendation = (healthy && (cheaper || faster)).then(|| {
        format!(
            "{} looks {}: projected {} per month{}. Suggested migration start: {}.",
            candidate_side.label,
            match (cheaper, faster) {
                (true, true) => "cheaper and faster",
                (true, false) => "cheaper",
                _ => "faster",
            },
            if cheaper { format!("saving {saving}") } else { format!("extra cost {}", -saving) },
            if faster { format!(", p95 {} ms vs {} ms", candidate_side.p95_ms, current_side.p95_ms) } else { String::new() },
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
    if let Some(r) = &report.recommendation {
        let _ = store.recommend(supplier, "parallel_test", r, now);
    }
    let _ = store.audit(
        now,
        &crate::store::audit_actor(),
        "parallel_test.run",
        Some(supplier),
        Some(candidate),
        "ok",
        &format!("report {}: projected monthly saving {}", report.id, report.projected_monthly_saving),
    );
    Ok(report)
}

/// Sends every prompt to one account and sums up what came back; each request
/// is recorded as shadow usage.
#[allow(clippy::too_many_arguments)]
async fn measure(
    router: &Arc<Router>,
    acc: &crate::domain::ProviderAccount,
    tag: &str,
    test_id: &str,
    supplier: SupplierId,
    prompts: &[String],
    basis_usage: &TokenUsage,
    now: DateTime<Utc>,
) -> Result<SideReport, ParallelError> {
    let key = router.key(acc.id).ok_or_else(|| ParallelError::Refused(format!("account {} ({}) has no usable key", acc.id, acc.label)))?;
    let target = ProviderTarget::from_account(acc, key);
    let model = acc.default_model.clone();
    let mut lat = Vec::new();
    let (mut ok, mut tin, mut tout, mut cost) = (0u32, 0u64, 0u64, Micros::ZERO);
    let mut errors = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let req = ChatRequest::simple(&model, p);
        let t0 = Instant::now();
        let res = router.providers().chat(&target, &req).await;
        let ms = t0.elapsed().as_millis().min(u32::MAX as u128) as u32;
        lat.push(ms);
        let (usage, status, class) = match res {
            Ok(r) => {
                ok += 1;
                (r.usage, UsageStatus::Ok, None)
            }
            Err(e) => {
                errors.push(e.to_string());
                (TokenUsage::default(), UsageStatus::Error, Some(e.class().to_string()))
            }
        };
        let c = router.pricing().cost(acc.provider, &model, &usage).unwrap_or_default();
        tin += usage.prompt_total();
        tout += usage.output;
        cost += c;
        let ev = UsageEvent {
            request_id: format!("{test_id}-{tag}-{i}"),
            ts: now,
            supplier_id: supplier,
            account_id: Some(acc.id),
            provider: acc.provider,
            model: model.clone(),
            request_type: crate::domain::RequestType::WeddingContent,
            route: Route::Shadow,
            usage,
            cost: c,
            latency_ms: ms,
            status,
            error_class: class,
        };
        if let Err(e) = router.ledger().record(ev).await {
            tracing::warn!(error = %e, "parallel test usage not recorded");
        }
    }
    lat.sort_unstable();
    let n = prompts.len().max(1) as u64;
    Ok(SideReport {
        label: acc.label.clone(),
        account_id: acc.id,
        provider: acc.provider,
        model: model.clone(),
        requests: prompts.len() as u32,
        successes: ok,
        p50_ms: percentile(&lat, 50),
        p95_ms: percentile(&lat, 95),
        avg_input_tokens: tin / n,
        avg_output_tokens: tout / n,
        cost_per_request: Micros(cost.0 / n as i64),
        projected_monthly_cost: router.pricing().cost(acc.provider, &model, basis_usage).unwrap_or_default(),
        errors,
    })
}
