//! Provider accounts and gateway tokens on PostgreSQL (no key material: the
//! account row keeps a key reference and a masked fingerprint; a token row
//! keeps the token's SHA-256 hash and a hint). The `Store` facade checks the
//! inputs and the "not found" cases; these run the statements and answer
//! what the SQLite versions answer for the same data.

use super::PgStore;
use super::catalog::{PgQ, bad_value, ms};
use crate::domain::{AccountId, AccountOwner, AzureConfig, ProviderAccount, ProviderKind, SupplierId, TokenId, ValidationStatus};
use crate::store::{GatewayToken, NewAccount, StoreResult, TokenHash, TokenRow};
use chrono::{DateTime, Utc};

const SELECT: &str = "SELECT id, owner_supplier_id, provider, label, base_url, azure_deployment, azure_api_version, default_model,
    key_ref, key_fingerprint, last_validated_at, last_validation, last_validation_message, enabled, created_at FROM provider_accounts";

fn row_to_account(pg: &PgStore, r: &tokio_postgres::Row) -> StoreResult<ProviderAccount> {
    let provider = r.get::<_, String>(2).parse::<ProviderKind>().map_err(|e| bad_value(pg, "provider", e))?;
    let deployment: Option<String> = r.get(5);
    let api_version: Option<String> = r.get(6);
    Ok(ProviderAccount {
        id: AccountId(r.get(0)),
        owner: match r.get::<_, Option<i64>>(1) {
            Some(s) => AccountOwner::Supplier(SupplierId(s)),
            None => AccountOwner::Platform,
        },
        provider,
        label: r.get(3),
        base_url: r.get(4),
        azure: match (deployment, api_version) {
            (Some(deployment), Some(api_version)) => Some(AzureConfig { deployment, api_version }),
            _ => None,
        },
        default_model: r.get(7),
        key_ref: r.get(8),
        key_fingerprint: r.get(9),
        last_validated_at: r.get(10),
        last_validation: r.get::<_, Option<String>>(11).and_then(|s| s.parse::<ValidationStatus>().ok()),
        last_validation_message: r.get(12),
        enabled: r.get(13),
        created_at: r.get(14),
    })
}

/// Inserts a checked new account; returns its id.
pub async fn insert_account(pg: &PgStore, new: NewAccount, now: DateTime<Utc>) -> StoreResult<AccountId> {
    let c = pg.client().await?;
    let row = c
        .query_one(
            "INSERT INTO provider_accounts (owner_supplier_id, provider, label, base_url, azure_deployment, azure_api_version, default_model, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &new.owner.supplier().map(|s| s.0),
                &new.provider.as_str(),
                &new.label.trim(),
                &new.base_url.trim_end_matches('/'),
                &new.azure.as_ref().map(|a| a.deployment.as_str()),
                &new.azure.as_ref().map(|a| a.api_version.as_str()),
                &new.default_model,
                &ms(now),
            ],
        )
        .await
        .db(pg)?;
    Ok(AccountId(row.get(0)))
}

pub async fn find_account(pg: &PgStore, id: AccountId) -> StoreResult<Option<ProviderAccount>> {
    let c = pg.client().await?;
    c.query_opt(&format!("{SELECT} WHERE id = $1"), &[&id.0]).await.db(pg)?.map(|r| row_to_account(pg, &r)).transpose()
}

/// All accounts (platform first, then by supplier), or one owner's.
pub async fn list_accounts(pg: &PgStore, owner: Option<AccountOwner>) -> StoreResult<Vec<ProviderAccount>> {
    let c = pg.client().await?;
    let rows = match owner {
        None => c.query(&format!("{SELECT} ORDER BY owner_supplier_id IS NOT NULL, owner_supplier_id, id"), &[]).await,
        Some(AccountOwner::Platform) => c.query(&format!("{SELECT} WHERE owner_supplier_id IS NULL ORDER BY id"), &[]).await,
        Some(AccountOwner::Supplier(s)) => c.query(&format!("{SELECT} WHERE owner_supplier_id = $1 ORDER BY id"), &[&s.0]).await,
    }
    .db(pg)?;
    rows.iter().map(|r| row_to_account(pg, r)).collect()
}

pub async fn account_exists(pg: &PgStore, id: AccountId) -> StoreResult<bool> {
    let c = pg.client().await?;
    Ok(c.query_one("SELECT EXISTS (SELECT 1 FROM provider_accounts WHERE id = $1)", &[&id.0]).await.db(pg)?.get(0))
}

/// The number of accounts changed (0: no such account).
pub async fn set_account_key(pg: &PgStore, id: AccountId, key_ref: Option<String>, fingerprint: Option<String>) -> StoreResult<u64> {
    let c = pg.client().await?;
    Ok(c.execute("UPDATE provider_accounts SET key_ref = $2, key_fingerprint = $3 WHERE id = $1", &[&id.0, &key_ref, &fingerprint])
        .await
        .db(pg)?)
}

pub async fn set_account_validation(
    pg: &PgStore,
    id: AccountId,
    status: ValidationStatus,
    message: String,
    at: DateTime<Utc>,
) -> StoreResult<u64> {
    let c = pg.client().await?;
    Ok(c.execute(
        "UPDATE provider_accounts SET last_validated_at = $2, last_validation = $3, last_validation_message = $4 WHERE id = $1",
        &[&id.0, &ms(at), &status.as_str(), &message],
    )
    .await
    .db(pg)?)
}

pub async fn set_account_enabled(pg: &PgStore, id: AccountId, enabled: bool) -> StoreResult<u64> {
    let c = pg.client().await?;
    Ok(c.execute("UPDATE provider_accounts SET enabled = $2 WHERE id = $1", &[&id.0, &enabled]).await.db(pg)?)
}

pub async fn delete_account(pg: &PgStore, id: AccountId) -> StoreResult<u64> {
    let c = pg.client().await?;
    Ok(c.execute("DELETE FROM provider_accounts WHERE id = $1", &[&id.0]).await.db(pg)?)
}

const TOKEN_SELECT: &str = "SELECT id, supplier_id, hint, created_at, last_used_at, revoked_at FROM gateway_tokens";
const ROW_SELECT: &str = "SELECT id, supplier_id, token_hash, revoked_at IS NOT NULL FROM gateway_tokens";

fn row_to_token(r: &tokio_postgres::Row) -> GatewayToken {
    GatewayToken {
        id: TokenId(r.get(0)),
        supplier_id: SupplierId(r.get(1)),
        hint: r.get(2),
        created_at: r.get(3),
        last_used_at: r.get(4),
        revoked_at: r.get(5),
    }
}

fn token_row(r: &tokio_postgres::Row) -> Option<TokenRow> {
    let hex: String = r.get(2);
    // A hash that is not hex never matches a presented token: skipped.
    TokenHash::from_hex(&hex).map(|hash| TokenRow { id: TokenId(r.get(0)), supplier_id: SupplierId(r.get(1)), hash, revoked: r.get(3) })
}

/// Stores a token's hash (never the token); returns its id.
pub async fn insert_token(pg: &PgStore, supplier: SupplierId, hash: TokenHash, hint: String, now: DateTime<Utc>) -> StoreResult<TokenId> {
    let c = pg.client().await?;
    let row = c
        .query_one(
            "INSERT INTO gateway_tokens (supplier_id, token_hash, hint, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&supplier.0, &hash.to_hex(), &hint, &ms(now)],
        )
        .await
        .db(pg)?;
    Ok(TokenId(row.get(0)))
}

pub async fn find_token(pg: &PgStore, id: TokenId) -> StoreResult<Option<GatewayToken>> {
    let c = pg.client().await?;
    Ok(c.query_opt(&format!("{TOKEN_SELECT} WHERE id = $1"), &[&id.0]).await.db(pg)?.map(|r| row_to_token(&r)))
}

/// All tokens (or one supplier's), newest first.
pub async fn list_tokens(pg: &PgStore, supplier: Option<SupplierId>) -> StoreResult<Vec<GatewayToken>> {
    let c = pg.client().await?;
    let rows = c
        .query(&format!("{TOKEN_SELECT} WHERE ($1::BIGINT IS NULL OR supplier_id = $1) ORDER BY id DESC"), &[&supplier.map(|s| s.0)])
        .await
        .db(pg)?;
    Ok(rows.iter().map(row_to_token).collect())
}

pub async fn find_token_by_hash(pg: &PgStore, hash: TokenHash) -> StoreResult<Option<TokenRow>> {
    let c = pg.client().await?;
    Ok(c.query_opt(&format!("{ROW_SELECT} WHERE token_hash = $1"), &[&hash.to_hex()]).await.db(pg)?.as_ref().and_then(token_row))
}

/// Every token, revoked ones included, by id.
pub async fn token_rows(pg: &PgStore) -> StoreResult<Vec<TokenRow>> {
    let c = pg.client().await?;
    Ok(c.query(&format!("{ROW_SELECT} ORDER BY id"), &[]).await.db(pg)?.iter().filter_map(token_row).collect())
}

pub async fn touch_token_used(pg: &PgStore, id: TokenId, now: DateTime<Utc>) -> StoreResult<()> {
    let c = pg.client().await?;
    c.execute("UPDATE gateway_tokens SET last_used_at = $2 WHERE id = $1", &[&id.0, &ms(now)]).await.db(pg)?;
    Ok(())
}

/// Revokes a token (keeping the first revocation time); the number of rows
/// found (0: no such token).
pub async fn revoke_token(pg: &PgStore, id: TokenId, now: DateTime<Utc>) -> StoreResult<u64> {
    let c = pg.client().await?;
    Ok(c.execute("UPDATE gateway_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1", &[&id.0, &ms(now)]).await.db(pg)?)
}
