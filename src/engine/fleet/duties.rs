//! The fleet's duties acting on shared state under their lease: the writes a
//! leader makes are fenced by its lease's epoch
//! ([`LeaderElector::fenced`]), so an instance that was paused (or cut off)
//! past its lease cannot overwrite what the next leader stored.
//!
//! Today: the migration service's saves of the migrations it drives
//! ([`fenced_migration_save`]). The state a migration is judged and resumed
//! from is that row, so it is the write that must never come from an old
//! leader. And what the migrations leader judges a phase on: the traffic
//! every instance served, read from the shared ledger
//! ([`ledger_phase_figures`]).

use super::Duty;
use super::leader::LeaderElector;
use crate::domain::SupplierId;
use crate::domain::migration::PhaseStats;
use crate::engine::migrations::{MigrationError, MigrationSave, PhaseFigures};
use crate::store::StoreError;
use crate::store::pg::fleet::FenceError;
use crate::store::pg::{PgError, PgStore, block_on_pg, mask_url};
use std::sync::Arc;

/// A save for [`crate::engine::migrations::MigrationService::set_fenced_save`]:
/// the migration's row and phases written in one transaction that first
/// checks that `elector` still holds the `migrations` lease (same holder,
/// same epoch, not expired). Refused, nothing is written and the result is
/// [`MigrationError::Fenced`]. Called from blocking threads (the service's
/// tick runs on one), never from a `pg-io` thread.
pub fn fenced_migration_save(elector: Arc<LeaderElector>, pg: PgStore) -> MigrationSave {
    Arc::new(move |m, before| {
        let (e, pg, m) = (elector.clone(), pg.clone(), m.clone());
        let id = m.id;
        let res = block_on_pg(async move {
            e.fenced(Duty::Migrations, move |tx| {
                Box::pin(async move {
                    crate::store::pg::migrations::save_if_in(&pg, tx, &m, before)
                        .await
                        .map_err(|err| PgError::Db { url: mask_url(pg.url()), detail: err.to_string() })
                })
            })
            .await
        });
        match res {
            Ok(None) => Ok(()),
            Ok(Some(now)) => Err(MigrationError::Superseded(format!(
                "migration {id} was changed by another process (it is {now} now, not {}): the leader's step is not saved",
                before.as_str()
            ))),
            Err(f @ (FenceError::Fenced { .. } | FenceError::NotLeader { .. })) => Err(MigrationError::Fenced(f.to_string())),
            Err(FenceError::Store(err)) => Err(MigrationError::Store(StoreError::from(err))),
        }
    })
}

/// Phase figures for [`crate::engine::migrations::MigrationService::set_phase_figures`]:
/// the supplier's `migration`-route events since the phase began, from every
/// instance, as folded into PostgreSQL so far (a journal batch behind the
/// live traffic). Called from blocking threads, never from a `pg-io` thread.
pub fn ledger_phase_figures(pg: PgStore) -> PhaseFigures {
    Arc::new(move |supplier: SupplierId, since| -> Result<PhaseStats, MigrationError> {
        let pg = pg.clone();
        Ok(block_on_pg(async move { crate::store::pg::migrations::phase_stats_from_ledger(&pg, supplier, since).await })?)
    })
}
