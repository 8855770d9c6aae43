//! Key validations the fleet carries out for consoles (issue 25). A
//! console on PostgreSQL holds only the fleet's public key, so it cannot
//! open a key to validate it: it files a request here, one of the fleet's
//! instances claims it (once: `FOR UPDATE SKIP LOCKED`), validates the key
//! it can open and writes the result on the account, where the console reads it.

use super::PgStore;
use super::catalog::{PgQ, ms};
use crate::domain::AccountId;
use crate::store::StoreResult;
use chrono::{DateTime, Utc};

/// Schema v9: pending validation requests, one per account at most.
pub const KEY_CHECKS_MIGRATION: &str = "
CREATE TABLE key_validation_requests (
    account_id BIGINT PRIMARY KEY REFERENCES provider_accounts(id) ON DELETE CASCADE,
    requested_at TIMESTAMPTZ NOT NULL,
    requested_by TEXT NOT NULL
);
";

/// Asks the fleet to validate `id`'s key (a newer request replaces an older one).
pub async fn request(pg: &PgStore, id: AccountId, by: String, at: DateTime<Utc>) -> StoreResult<()> {
    let c = pg.client().await?;
    c.execute(
        "INSERT INTO key_validation_requests (account_id, requested_at, requested_by) VALUES ($1, $2, $3)
         ON CONFLICT (account_id) DO UPDATE SET requested_at = excluded.requested_at, requested_by = excluded.requested_by",
        &[&id.0, &ms(at), &by],
    )
    .await
    .db(pg)?;
    Ok(())
}

/// Takes up to `limit` pending requests, oldest first, for this instance to
/// carry out: each is handed to one claimer only. Returns the accounts and who asked.
pub async fn claim(pg: &PgStore, limit: i64) -> StoreResult<Vec<(AccountId, String)>> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "DELETE FROM key_validation_requests WHERE account_id IN (
                SELECT account_id FROM key_validation_requests ORDER BY requested_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING account_id, requested_by",
            &[&limit],
        )
        .await
        .db(pg)?;
    Ok(rows.iter().map(|r| (AccountId(r.get(0)), r.get(1))).collect())
}
