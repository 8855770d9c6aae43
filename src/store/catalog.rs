//! What the router loads into memory: the catalog version (bumped by triggers
//! whenever suppliers, weddings, accounts or tokens change); the tokens
//! themselves come from `Store::token_rows` (see `tokens`).

use super::{Store, StoreResult};

impl Store {
    /// A number that changes whenever the routing catalog changes.
    pub fn catalog_version(&self) -> StoreResult<i64> {
        self.with_conn(|c| c.query_row("SELECT version FROM catalog_version WHERE id = 1", [], |r| r.get(0)))
    }
}
