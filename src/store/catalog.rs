//! What the router loads into memory: the catalog version (bumped by triggers
//! whenever suppliers, weddings, accounts or tokens change) and gateway token hashes.

use super::{Store, StoreResult};
use crate::domain::SupplierId;

impl Store {
    /// A number that changes whenever the routing catalog changes.
    pub fn catalog_version(&self) -> StoreResult<i64> {
        self.with_conn(|c| c.query_row("SELECT version FROM catalog_version WHERE id = 1", [], |r| r.get(0)))
    }

    /// Every gateway token as (SHA-256 hex, supplier, revoked).
    pub fn gateway_token_hashes(&self) -> StoreResult<Vec<(String, SupplierId, bool, super::TokenId)>> {
        self.with_conn(|c| {
            let mut st = c.prepare("SELECT token_hash, supplier_id, revoked_at IS NOT NULL, id FROM gateway_tokens")?;
            let rows =
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, SupplierId(r.get(1)?), r.get::<_, bool>(2)?, super::TokenId(r.get(3)?))))?;
            rows.collect()
        })
    }
}
