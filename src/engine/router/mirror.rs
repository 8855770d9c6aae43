//! Live-traffic mirrors on the request path: a running mirror (a parallel
//! test whose prompts are a sample of the supplier's live requests, see
//! `engine::parallel`) gets a copy of each sampled request sent to its
//! candidate account in the background, recorded as shadow usage.

use super::Router;
use super::attempt::{Prepared, millis_since, request_hash};
use crate::domain::{AccountId, Micros, Route, TokenUsage, UsageEvent, UsageStatus};
use crate::providers::{ChatRequest, ProviderTarget};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// A running live-traffic mirror.
pub(super) struct MirrorEntry {
    pub(super) record: crate::store::MirrorRecord,
    /// Copies sent so far (restored from the ledger when adopted).
    pub(super) dispatched: AtomicU32,
    /// Copies whose usage is recorded.
    pub(super) recorded: Arc<AtomicU32>,
}

impl Router {
    /// A plain (not streamed) copy of a streamed request for a live-traffic
    /// mirror, only while one runs (the common path clones nothing).
    pub(super) fn mirror_copy(&self, req: &ChatRequest) -> Option<ChatRequest> {
        if !self.mirroring.load(Ordering::Relaxed) {
            return None;
        }
        let mut copy = req.clone();
        copy.stream = None;
        copy.stream_options = None;
        Some(copy)
    }

    /// Sends a copy of a served request to the candidate account of the
    /// supplier's running mirror, if the request is in the mirror's sample,
    /// in the background (on the request's lane, else on the router's
    /// runtime): the caller's answer never waits for it. The copy's usage is
    /// recorded as shadow usage with the event id `m<mirror id>~<original
    /// event id>`, which pairs it with the original's row (`original`), and
    /// the original's tracing request id. The sample is drawn on the
    /// original's event id (random), not on the client's request id (which a
    /// client may send the same on every request). `served_by`: the account that
    /// answered (`None`: every route failed, and the copy shows whether the
    /// candidate would have answered). A streamed request is copied as a
    /// plain one once its stream has completed (see [`Router::mirror_copy`]);
    /// one the client abandoned is not.
    pub(super) fn mirror(&self, p: &Prepared, original: &str, served_by: Option<AccountId>, req: &ChatRequest, requested_model: &str) {
        // No copy (a paid call) while the ledger cannot record it.
        if !self.mirroring.load(Ordering::Relaxed) || !self.ledger.is_up() {
            return;
        }
        let cat = self.catalog();
        let Some(m) = cat.mirrors.get(&p.supplier.supplier.id).cloned() else { return };
        let r = &m.record;
        if served_by == Some(r.account_id) || p.now >= r.ends_at {
            return;
        }
        if request_hash(original) % 100 >= u64::from(r.sample_percent) {
            return;
        }
        if m.dispatched.fetch_add(1, Ordering::Relaxed) >= r.target_requests {
            m.dispatched.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let key = self.keys.read().get(&r.account_id).cloned();
        let (Some(acc), Some(key), Some(rt)) = (cat.accounts.get(&r.account_id), key, p.lane.as_ref().or(self.rt.as_ref())) else {
            m.dispatched.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        let account = acc.account.clone();
        let mut copy = req.clone();
        self.set_model_for(&account, requested_model, &mut copy.model);
        let target = ProviderTarget::from_account(&account, key);
        let (providers, ledger, pricing, recorded) =
            (self.providers.clone(), self.ledger.clone(), self.pricing.clone(), m.recorded.clone());
        let (event_id, request_id, now, supplier, request_type) =
            (format!("{}{original}", r.prefix()), p.request_id.clone(), p.now, p.supplier.supplier.id, p.request_type);
        rt.spawn(async move {
            let t0 = Instant::now();
            let res = providers.chat(&target, &copy).await;
            let latency_ms = millis_since(t0);
            let (usage, status, error_class) = match res {
                Ok(r) => (r.usage, UsageStatus::Ok, None),
                Err(e) => (TokenUsage::default(), UsageStatus::Error, Some(e.class().to_string())),
            };
            let cost = pricing.cost(account.provider, &copy.model, &usage).unwrap_or(Micros::ZERO);
            let ev = UsageEvent {
                saved: crate::domain::Micros::ZERO,
                event_id,
                request_id,
                // Not the client's keyed request itself: never found by its key.
                idempotency_key: None,
                ts: now,
                supplier_id: supplier,
                account_id: Some(account.id),
                provider: account.provider,
                model: copy.model,
                request_type,
                route: Route::Shadow,
                usage,
                cost,
                latency_ms,
                status,
                error_class,
            };
            match ledger.record(ev).await {
                Ok(_) => {
                    recorded.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "a mirrored request's usage was not recorded"),
            }
        });
    }

    /// Running mirrors that are due for their report: enough copies recorded,
    /// or past their deadline. (id, why).
    pub fn mirrors_due(&self, now: DateTime<Utc>) -> Vec<(i64, &'static str)> {
        self.catalog()
            .mirrors
            .values()
            .filter_map(|m| {
                if m.recorded.load(Ordering::Relaxed) >= m.record.target_requests {
                    Some((m.record.id, "enough requests compared"))
                } else if now >= m.record.ends_at {
                    Some((m.record.id, "the mirror's time ran out"))
                } else {
                    None
                }
            })
            .collect()
    }
}
