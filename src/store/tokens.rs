//! Gateway tokens as stored: the SHA-256 hash of each token ([`TokenHash`],
//! kept as lowercase hex), a short non-secret hint for display, the supplier
//! it belongs to, and its created / last-used / revoked times. The token
//! itself is never stored.

use super::pg::accounts as pga;
use super::{Store, StoreError, StoreResult, parse_ts, ts};
use crate::domain::SupplierId;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

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

/// The SHA-256 of a gateway token (of the token with surrounding white space
/// trimmed): the only form in which a token is stored or looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a presented token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.trim().as_bytes()).into())
    }

    /// Lowercase hex, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the stored hex form (either case); `None` when it is not 32 bytes of hex.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut h = [0u8; 32];
        hex::decode_to_slice(s, &mut h).ok()?;
        Some(Self(h))
    }
}

impl std::fmt::Debug for TokenHash {
    /// A prefix only: enough to tell two apart in a log, not to search for one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// A token as routing needs it: what a hash look-up finds and what the
/// router's in-memory catalog holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: TokenId,
    pub supplier_id: SupplierId,
    pub hash: TokenHash,
    pub revoked: bool,
}

const ROW_SELECT: &str = "SELECT id, supplier_id, token_hash, revoked_at IS NOT NULL FROM gateway_tokens";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<TokenRow>> {
    let (id, supplier, hex, revoked): (i64, i64, String, bool) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
    // A hash that is not hex never matches a presented token: skipped.
    Ok(TokenHash::from_hex(&hex).map(|hash| TokenRow { id: TokenId(id), supplier_id: SupplierId(supplier), hash, revoked }))
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
    /// Stores a new token's hash for `supplier` (never the token).
    pub fn insert_token(&self, supplier: SupplierId, hash: &TokenHash, hint: &str, now: DateTime<Utc>) -> StoreResult<GatewayToken> {
        self.supplier(supplier)?;
        if let Some(pg) = self.postgres() {
            let (hash, hint) = (*hash, hint.to_string());
            let id = pg.block(move |pg| async move { pga::insert_token(&pg, supplier, hash, hint, now).await })?;
            return self.token(id);
        }
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO gateway_tokens (supplier_id, token_hash, hint, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![supplier.0, hash.to_hex(), hint, ts(now)],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.token(TokenId(id))
    }

    pub fn token(&self, id: TokenId) -> StoreResult<GatewayToken> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pga::find_token(&pg, id).await })?.ok_or_else(|| not_found(id));
        }
        self.with_conn(|c| c.query_row(&format!("{SELECT} WHERE id = ?1"), [id.0], row_to_token).optional())?.ok_or_else(|| not_found(id))
    }

    /// All tokens (or one supplier's), newest first.
    pub fn list_tokens(&self, supplier: Option<SupplierId>) -> StoreResult<Vec<GatewayToken>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pga::list_tokens(&pg, supplier).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!("{SELECT} WHERE (?1 IS NULL OR supplier_id = ?1) ORDER BY id DESC"))?;
            let rows = st.query_map([supplier.map(|s| s.0)], row_to_token)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Finds a token by its hash (an indexed, exact lookup).
    pub fn find_token_by_hash(&self, hash: &TokenHash) -> StoreResult<Option<TokenRow>> {
        if let Some(pg) = self.postgres() {
            let hash = *hash;
            return pg.block(move |pg| async move { pga::find_token_by_hash(&pg, hash).await });
        }
        self.with_conn(|c| {
            c.query_row(&format!("{ROW_SELECT} WHERE token_hash = ?1"), [hash.to_hex()], token_row).optional().map(Option::flatten)
        })
    }

    /// Every gateway token, revoked ones included (the router's catalog
    /// answers a revoked token with its own error), by id.
    pub fn token_rows(&self) -> StoreResult<Vec<TokenRow>> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { pga::token_rows(&pg).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(&format!("{ROW_SELECT} ORDER BY id"))?;
            let rows = st.query_map([], token_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows.into_iter().flatten().collect())
        })
    }

    /// Records that the token was used (the gateway may call this at most
    /// once in a while per token; it is one small UPDATE).
    pub fn touch_token_used(&self, id: TokenId, now: DateTime<Utc>) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pga::touch_token_used(&pg, id, now).await });
        }
        self.with_conn(|c| c.execute("UPDATE gateway_tokens SET last_used_at = ?2 WHERE id = ?1", params![id.0, ts(now)]))?;
        Ok(())
    }

    /// Revokes a token; revoking an already revoked token keeps its first time.
    pub fn revoke_token(&self, id: TokenId, now: DateTime<Utc>) -> StoreResult<GatewayToken> {
        if let Some(pg) = self.postgres() {
            let n = pg.block(move |pg| async move { pga::revoke_token(&pg, id, now).await })?;
            if n == 0 {
                return Err(not_found(id));
            }
            return self.token(id);
        }
        let n = self.with_conn(|c| {
            c.execute("UPDATE gateway_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1", params![id.0, ts(now)])
        })?;
        if n == 0 {
            return Err(not_found(id));
        }
        self.token(id)
    }
}
