//! Actions filed for the fleet to carry out (PostgreSQL only; the rows are
//! [`super::pg::fleet_actions`]'s): parallel tests a console cannot run
//! because it cannot open keys, and response cache purges that every
//! instance applies to its own cache. Also the parallel test's usage basis,
//! on both backends.

use super::pg::fleet_actions as pfa;
pub use super::pg::fleet_actions::{FleetPurge, ParallelTestRequest};
use super::{Store, StoreError, StoreResult};
use crate::domain::{AccountId, Route, SupplierId};
use chrono::{DateTime, NaiveDate, Utc};

/// A supplier's usage over some days, outside shadow traffic: (requests,
/// input incl. cache writes, cached, output) tokens.
pub type UsageBasis = (u64, u64, u64, u64);

fn only_on_postgres(what: &str) -> StoreError {
    StoreError::Invalid(format!("{what} is filed for the fleet only on PostgreSQL; on a SQLite file it runs where it is asked"))
}

impl Store {
    /// A supplier's served usage from `from` to `to` (both days included),
    /// shadow traffic left out: the basis of a parallel test's projection.
    pub fn usage_basis(&self, supplier: SupplierId, from: NaiveDate, to: NaiveDate) -> StoreResult<UsageBasis> {
        let shadow = Route::Shadow.code();
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move {
                use super::pg::catalog::PgQ;
                let c = pg.client().await?;
                let r = c
                    .query_one(
                        "SELECT coalesce(sum(requests),0)::BIGINT, coalesce(sum(input_tokens + cache_write_tokens),0)::BIGINT,
                                coalesce(sum(cached_tokens),0)::BIGINT, coalesce(sum(output_tokens),0)::BIGINT
                         FROM usage_daily WHERE supplier_id = $1 AND day >= $2 AND day <= $3 AND route != $4",
                        &[&supplier.0, &from, &to, &i16::try_from(shadow).unwrap_or(i16::MAX)],
                    )
                    .await
                    .db(&pg)?;
                let u = |i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
                Ok((u(0), u(1), u(2), u(3)))
            });
        }
        let (from, to) = (from.format("%Y-%m-%d").to_string(), to.format("%Y-%m-%d").to_string());
        self.with_conn(|c| {
            c.query_row(
                "SELECT coalesce(sum(requests),0), coalesce(sum(input_tokens + cache_write_tokens),0), coalesce(sum(cached_tokens),0), coalesce(sum(output_tokens),0)
                 FROM usage_daily WHERE supplier_id = ?1 AND day >= ?2 AND day <= ?3 AND route != ?4",
                rusqlite::params![supplier.0, from, to, shadow],
                |r| {
                    let u = |i: usize| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
                    Ok((u(0)?, u(1)?, u(2)?, u(3)?))
                },
            )
        })
    }

    /// Files a parallel test for the fleet to run; returns the request's id.
    pub fn file_parallel_test(
        &self,
        supplier: SupplierId,
        account: AccountId,
        prompts: &[String],
        by: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let pg = self.postgres().ok_or_else(|| only_on_postgres("a parallel test"))?;
        let (prompts, by) = (prompts.to_vec(), by.to_string());
        pg.block(move |pg| async move { pfa::file_parallel_test(&pg, supplier, account, prompts, by, at).await })
    }

    pub fn parallel_test_request(&self, id: i64) -> StoreResult<Option<ParallelTestRequest>> {
        let Some(pg) = self.postgres() else { return Ok(None) };
        pg.block(move |pg| async move { pfa::parallel_test_request(&pg, id).await })
    }

    /// Withdraws a request no instance has claimed; false when one has.
    pub fn withdraw_parallel_test(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        let Some(pg) = self.postgres() else { return Ok(false) };
        pg.block(move |pg| async move { pfa::withdraw_parallel_test(&pg, id, at).await })
    }

    /// Asks the instance running a filed parallel test to stop.
    pub fn cancel_parallel_test(&self, id: i64) -> StoreResult<()> {
        let Some(pg) = self.postgres() else { return Ok(()) };
        pg.block(move |pg| async move { pfa::cancel_parallel_test(&pg, id).await })
    }

    /// On a fleet instance: takes the oldest filed parallel test (see
    /// [`pfa::claim_parallel_test`]); `None` on SQLite or when none waits.
    pub fn claim_parallel_test(
        &self,
        instance: i64,
        gone_after: std::time::Duration,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<ParallelTestRequest>> {
        let Some(pg) = self.postgres() else { return Ok(None) };
        pg.block(move |pg| async move { pfa::claim_parallel_test(&pg, instance, gone_after, at).await })
    }

    /// Progress of a claimed request; answers whether a cancel was asked.
    pub fn parallel_test_progress(&self, id: i64, done: u32, total: u32) -> StoreResult<bool> {
        let Some(pg) = self.postgres() else { return Ok(false) };
        pg.block(move |pg| async move { pfa::parallel_test_progress(&pg, id, done, total).await })
    }

    /// Ends a claimed request: `done` with its report, or `failed` / `cancelled` with why.
    pub fn finish_parallel_test(
        &self,
        id: i64,
        state: &'static str,
        report_id: Option<i64>,
        error: Option<String>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let Some(pg) = self.postgres() else { return Ok(()) };
        pg.block(move |pg| async move { pfa::finish_parallel_test(&pg, id, state, report_id, error, at).await })
    }

    /// Logs a response cache purge for every instance of the fleet to apply.
    pub fn log_fleet_cache_purge(&self, supplier: Option<SupplierId>, reason: &str, at: DateTime<Utc>) -> StoreResult<i64> {
        let pg = self.postgres().ok_or_else(|| only_on_postgres("a cache purge"))?;
        let reason = reason.to_string();
        pg.block(move |pg| async move { pfa::log_cache_purge(&pg, supplier, reason, at).await })
    }

    /// The fleet's purges after `after` (by id), oldest first.
    pub fn fleet_cache_purges_since(&self, after: i64) -> StoreResult<Vec<FleetPurge>> {
        let Some(pg) = self.postgres() else { return Ok(Vec::new()) };
        pg.block(move |pg| async move { pfa::cache_purges_since(&pg, after).await })
    }

    /// The newest purge in the fleet's log (0: none).
    pub fn last_fleet_cache_purge(&self) -> StoreResult<i64> {
        let Some(pg) = self.postgres() else { return Ok(0) };
        pg.block(move |pg| async move { pfa::last_cache_purge(&pg).await })
    }
}
