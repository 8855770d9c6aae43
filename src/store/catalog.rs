//! What the router loads into memory: the catalog version (bumped by triggers
//! whenever suppliers, weddings, accounts or tokens change); the tokens
//! themselves come from `Store::token_rows` (see `tokens`). On PostgreSQL the
//! same counter, bumped by triggers that also `NOTIFY` (see `pg::catalog`).

use super::{Store, StoreResult};

impl Store {
    /// A number that changes whenever the routing catalog changes.
    /// On PostgreSQL every change is also announced on
    /// [`super::pg::catalog::CATALOG_CHANNEL`] with the new version.
    pub fn catalog_version(&self) -> StoreResult<i64> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { super::pg::catalog::catalog_version(&pg).await });
        }
        self.with_conn(|c| c.query_row("SELECT version FROM catalog_version WHERE id = 1", [], |r| r.get(0)))
    }
}
