//! Parallel tests on PostgreSQL (issue 25). A console on the fleet's
//! database holds only the fleet's public key and never routes, so it
//! cannot call providers: it files the test ([`run_by_fleet`]) and follows
//! it, and one `serve` instance claims and runs it ([`run_requested`]) with
//! its own router, so the prompts' shadow usage goes through its journal
//! into the shared ledger like any other call. Progress and cancellation
//! travel through the request's row (`store::pg::fleet_actions`).

use super::{ParallelError, ParallelProgress, ParallelReport};
use crate::domain::{AccountId, Clock, SupplierId};
use crate::engine::analytics::CancelHandle;
use crate::engine::router::Router;
use crate::store::{ParallelTestRequest, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a console waits for an instance to take a filed test before it
/// withdraws it.
pub const CLAIM_WAIT: Duration = Duration::from_secs(20);

/// How often a console reads the request, and an instance looks for one and
/// writes its progress.
pub const POLL: Duration = Duration::from_millis(250);

async fn blocking<R: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> crate::store::StoreResult<R> + Send + 'static,
) -> Result<R, ParallelError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(ParallelError::Refused(format!("the database task failed: {e}"))),
    }
}

/// Files a parallel test of `candidate` for `supplier` for the fleet, waits
/// up to `claim_wait` for an instance to take it (withdrawing it otherwise,
/// so it never runs unseen later), then follows its progress to the report.
/// `cancel` is passed on to the instance, which stops after the prompt it is on.
#[allow(clippy::too_many_arguments)]
pub async fn run_by_fleet(
    store: &Arc<Store>,
    clock: &Arc<dyn Clock>,
    actor: &str,
    supplier: SupplierId,
    candidate: AccountId,
    prompts: &[String],
    cancel: &CancelHandle,
    claim_wait: Duration,
    progress: impl Fn(ParallelProgress) + Send + Sync,
) -> Result<ParallelReport, ParallelError> {
    {
        let store = store.clone();
        tokio::task::spawn_blocking(move || super::check_candidate(&store, supplier, candidate))
            .await
            .map_err(|e| ParallelError::Refused(format!("the database task failed: {e}")))??;
    }
    let (prompts, by, now) = (prompts.to_vec(), actor.to_string(), clock.now());
    let id = {
        let by = by.clone();
        blocking(store, move |s| s.file_parallel_test(supplier, candidate, &prompts, &by, now)).await?
    };
    let detail = format!("asked the fleet to run parallel test request {id} (account {candidate})");
    let _ = blocking(store, move |s| s.audit(now, &by, "parallel_test.request", Some(supplier), Some(candidate), "ok", &detail)).await;
    let filed = Instant::now();
    let mut cancel_sent = false;
    let mut shown = (0, 0);
    loop {
        tokio::time::sleep(POLL).await;
        let Some(r) = blocking(store, move |s| s.parallel_test_request(id)).await? else {
            return Err(ParallelError::Refused(format!("parallel test request {id} is gone from the database")));
        };
        if (r.done, r.total) != shown && r.total > 0 {
            shown = (r.done, r.total);
            progress(ParallelProgress { supplier, done: r.done, total: r.total });
        }
        if r.is_finished() {
            return outcome(store, r).await;
        }
        if cancel.is_cancelled() && !cancel_sent {
            let at = clock.now();
            if r.state == "filed" && blocking(store, move |s| s.withdraw_parallel_test(id, at)).await? {
                return Err(ParallelError::Cancelled { done: 0, total: r.total });
            }
            blocking(store, move |s| s.cancel_parallel_test(id)).await?;
            cancel_sent = true;
        }
        if r.state == "filed" && filed.elapsed() >= claim_wait {
            let at = clock.now();
            if blocking(store, move |s| s.withdraw_parallel_test(id, at)).await? {
                return Err(ParallelError::Refused(format!(
                    "no instance of the fleet took the parallel test within {} s, so it was withdrawn: is a `switchboard serve` with the fleet's private key running on this database?",
                    claim_wait.as_secs()
                )));
            }
        }
    }
}

/// What a finished request comes to: its report, or why there is none.
async fn outcome(store: &Arc<Store>, r: ParallelTestRequest) -> Result<ParallelReport, ParallelError> {
    match (r.state.as_str(), r.report_id) {
        ("done", Some(report_id)) => {
            let supplier = r.supplier;
            let reports = blocking(store, move |s| s.parallel_tests(Some(supplier))).await?;
            let json = reports
                .into_iter()
                .find(|(id, _)| *id == report_id)
                .map(|(_, j)| j)
                .ok_or_else(|| ParallelError::Refused(format!("the fleet wrote report {report_id}, but it is not in the database")))?;
            serde_json::from_str(&json).map_err(|e| ParallelError::Refused(format!("report {report_id} cannot be read: {e}")))
        }
        ("cancelled", _) => Err(ParallelError::Cancelled { done: r.done, total: r.total }),
        _ => Err(ParallelError::Refused(r.error.unwrap_or_else(|| format!("the fleet ended the parallel test as {}", r.state)))),
    }
}

/// On a fleet instance: runs the oldest filed parallel test, if any (one
/// instance per request); answers whether there was one. Progress is written
/// to the request every [`POLL`], and a console's cancel is read back then.
pub async fn run_requested(router: &Arc<Router>, instance: i64, gone_after: Duration) -> Result<bool, ParallelError> {
    let store = router.store().clone();
    let now = router.clock().now();
    let Some(req) = blocking(&store, move |s| s.claim_parallel_test(instance, gone_after, now)).await? else {
        return Ok(false);
    };
    let id = req.id;
    tracing::info!(request = id, supplier = %req.supplier, account = %req.account, requested_by = %req.requested_by, "running a parallel test a console filed");
    let cancel = CancelHandle::new();
    let total = u32::try_from(super::prompts_or_default(&req.prompts).len()).unwrap_or(u32::MAX);
    // done << 32 | total, written by the test and read by the follower.
    let latest = Arc::new(AtomicU64::new(u64::from(total)));
    let follower = {
        let (store, cancel, latest) = (store.clone(), cancel.clone(), latest.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                let now = latest.load(Ordering::Relaxed);
                let (done, total) = ((now >> 32) as u32, now as u32);
                match blocking(&store, move |s| s.parallel_test_progress(id, done, total)).await {
                    Ok(true) => cancel.cancel(),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(request = id, error = %e, "cannot write a parallel test's progress"),
                }
            }
        })
    };
    let res = super::run_with(router, req.supplier, req.account, &req.prompts, &cancel, |p| {
        latest.store((u64::from(p.done) << 32) | u64::from(p.total), Ordering::Relaxed);
    })
    .await;
    follower.abort();
    // The report's shadow usage is folded with the instance's journal; the
    // console reads the report itself.
    let (state, report_id, error) = match &res {
        Ok(r) => ("done", Some(r.id), None),
        Err(ParallelError::Cancelled { .. }) => ("cancelled", None, None),
        Err(e) => ("failed", None, Some(format!("the parallel test failed on the fleet: {e}"))),
    };
    // The last progress the test reported (the follower may not have written it yet).
    let last = latest.load(Ordering::Relaxed);
    let (done, total) = ((last >> 32) as u32, last as u32);
    let at = router.clock().now();
    blocking(&store, move |s| {
        s.parallel_test_progress(id, done, total)?;
        s.finish_parallel_test(id, state, report_id, error, at)
    })
    .await?;
    Ok(true)
}
