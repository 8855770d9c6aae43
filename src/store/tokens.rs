//! Gateway tokens as stored: the SHA-256 hash of each token (hex), a short
//! non-secret hint for display, the supplier it belongs to, and its created /
//! last-used / revoked times. The token itself is never stored.

use super::{Store, StoreError, StoreResult, parse_ts, ts};
use crate::domain::SupplierId;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

pub use crate::domain::TokenId;

/// A gateway token's record (no secret: the hash stays inside the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayToken {
    pub id: TokenId,
    pub supplier_id: SupplierId,
    /// Non-secret hint such as `sbk_…77aa`.
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl GatewayToken {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// One active token as the gateway's in-memory index needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveTokenHash {
    pub id: TokenId,
    pub supplier_id: SupplierId,
    /// Lowercase hex SHA-256 of the token.
    pub token_hash: String,
}

/// What a hash lookup finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLookup {
    pub id: TokenId,
    pub supplier_id: SupplierId,
    pub revoked: bool,
}

const SELECT: &str = "SELECT id, supplier_id, hint, created_at, last_used_at, revoked_at FROM gateway_tokens";

fn row_to_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<GatewayToken> {
    Ok(GatewayToken {
        id: TokenId(r.get(0)?),
        supplier_id: SupplierId(r.get(1)?),
        hint: r.get(2)?,
        created_at: parse_ts(&r.get::<_, String>(3)?),
        last_used_at: r.get::<_, Option<String>>(4)?.map(|s| parse_ts(&s)),
        revoked_at: r.get::<_, Option<String>>(5)?.map(|s| parse_ts(&s)),
    })
}

fn not_found(id: TokenId) -> StoreError {
    StoreError::NotFound { what: "gateway token", id: id.to_string(), hint: " (see `switchboard token list`)" }
}

impl Store {
    /// Stores a new token's hash for `supplier`. `token_hash` must be the hex
    /// SHA-256 of the token, never the token.
    pub fn insert_token(&self, supplier: SupplierId, token_hash: &str, hint: &str, now: DateTime<Utc>) -> StoreResult<GatewayToken> {
        if token_hash.len() != 64 || !token_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid("internal: a gateway token is stored only as its SHA-256 hash".into()));
        }
        self.supplier(supplier)?;
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO gateway_tokens (supplier_id, token_hash, hint, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![supplier.0, token_hash.to_ascii_lowercase(), hint, ts(now)],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.token(TokenId(id))
    }

    pub fn token(&self, id: TokenId) -> StoreResult<GatewayToken> {
        self.with_conn(|c| c.query_row(&format!("{SELECT} WHERE id = ?1"), [id.0], row_to_token).optional())?.ok_or_else(|| not_found(id))
    }

    /// All tokens (or one supplier's), newest first.
    pub fn list_tokens(&self, supplier: Option<SupplierId>) -> StoreResult<Vec<GatewayToken>> {
        self.with_conn(|c| {
            let mut st = c.prepare(&format!("{SELECT} WHERE (?1 IS NULL OR supplier_id = ?1) ORDER BY id DESC"))?;
            let rows = st.query_map([supplier.map(|s| s.0)], row_to_token)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Finds a token by the hex SHA-256 of its value (an indexed, exact lookup).
    pub fn find_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<TokenLookup>> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT id, supplier_id, revoked_at IS NOT NULL FROM gateway_tokens WHERE token_hash = ?1",
                [token_hash.to_ascii_lowercase()],
                |r| Ok(TokenLookup { id: TokenId(r.get(0)?), supplier_id: SupplierId(r.get(1)?), revoked: r.get(2)? }),
            )
            .optional()
        })
    }

    /// Every active (not revoked) token's hash and supplier, for the gateway's
    /// in-memory index.
    pub fn active_token_hashes(&self) -> StoreResult<Vec<ActiveTokenHash>> {
        self.with_conn(|c| {
            let mut st = c.prepare("SELECT id, supplier_id, token_hash FROM gateway_tokens WHERE revoked_at IS NULL ORDER BY id")?;
            let rows = st
                .query_map([], |r| {
                    Ok(ActiveTokenHash { id: TokenId(r.get(0)?), supplier_id: SupplierId(r.get(1)?), token_hash: r.get(2)? })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Records that the token was used (the gateway may call this at most
    /// once in a while per token; it is one small UPDATE).
    pub fn touch_token_used(&self, id: TokenId, now: DateTime<Utc>) -> StoreResult<()> {
        self.with_conn(|c| c.execute("UPDATE gateway_tokens SET last_used_at = ?2 WHERE id = ?1", params![id.0, ts(now)]))?;
        Ok(())
    }

    /// Revokes a token; revoking an already revoked token keeps its first time.
    pub fn revoke_token(&self, id: TokenId, now: DateTime<Utc>) -> StoreResult<GatewayToken> {
        let n = self.with_conn(|c| {
            c.execute("UPDATE gateway_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1", params![id.0, ts(now)])
        })?;
        if n == 0 {
            return Err(not_found(id));
        }
        self.token(id)
    }
}
