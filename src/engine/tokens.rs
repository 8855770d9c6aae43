//! Gateway tokens: the credential the WedSync platform presents to
//! Switchboard's gateway on one supplier's behalf. Owns issuing (random,
//! `sbk_`-prefixed, shown once), hashing (only the SHA-256 hash is stored),
//! resolving a presented token to exactly one supplier, revoking, and the
//! in-memory index the gateway keeps ([`TokenIndex`]). Every issue and revoke
//! is written to the audit log, with the token's hint only.

use crate::domain::Secret;
use crate::domain::SupplierId;
use crate::store::{GatewayToken, Store, StoreError, TokenId};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Every gateway token starts with this.
pub const TOKEN_PREFIX: &str = "sbk_";
/// Random bytes in a token (hex-encoded after the prefix).
const TOKEN_BYTES: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No such token (never issued, mistyped, or for another installation).
    #[error("unknown gateway token")]
    Unknown,
    /// The token was revoked.
    #[error("this gateway token was revoked; issue a new one with `switchboard token issue --supplier ID`")]
    Revoked,
    #[error("the system random source failed: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A freshly issued token: the value (shown once, never stored) and its record.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: Secret,
    pub record: GatewayToken,
}

/// Lowercase hex SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// Issues a new token for `supplier`. The value is returned once and never stored.
pub fn issue(store: &Store, supplier: SupplierId, now: DateTime<Utc>, actor: &str) -> Result<IssuedToken, TokenError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    let token = Secret::new(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)));
    let hint = token.fingerprint();
    let record = match store.insert_token(supplier, &hash_token(token.expose()), &hint, now) {
        Ok(r) => r,
        Err(e) => {
            let _ = store.audit(now, actor, "token.issue", Some(supplier), None, "error", &e.to_string());
            return Err(e.into());
        }
    };
    store.audit(now, actor, "token.issue", Some(supplier), None, "ok", &format!("token {} ({hint})", record.id))?;
    tracing::info!(supplier = %supplier, token_id = %record.id, hint = %hint, "gateway token issued");
    Ok(IssuedToken { token, record })
}

/// Resolves a presented token to its supplier (an indexed lookup of its hash)
/// and records its use.
pub fn resolve(store: &Store, token: &str, now: DateTime<Utc>) -> Result<SupplierId, TokenError> {
    let token = token.trim();
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(TokenError::Unknown);
    }
    match store.find_token_by_hash(&hash_token(token))? {
        None => Err(TokenError::Unknown),
        Some(t) if t.revoked => Err(TokenError::Revoked),
        Some(t) => {
            store.touch_token_used(t.id, now)?;
            Ok(t.supplier_id)
        }
    }
}

/// Revokes a token (idempotent) and writes the audit log.
pub fn revoke(store: &Store, id: TokenId, now: DateTime<Utc>, actor: &str) -> Result<GatewayToken, TokenError> {
    match store.revoke_token(id, now) {
        Ok(t) => {
            store.audit(now, actor, "token.revoke", Some(t.supplier_id), None, "ok", &format!("token {} ({})", t.id, t.hint))?;
            tracing::info!(token_id = %t.id, hint = %t.hint, "gateway token revoked");
            Ok(t)
        }
        Err(e) => {
            let _ = store.audit(now, actor, "token.revoke", None, None, "error", &e.to_string());
            Err(e.into())
        }
    }
}

/// The gateway's in-memory map of active token hashes → supplier. Load it at
/// start with [`TokenIndex::load`] and reload after an issue or revoke.
#[derive(Debug, Clone, Default)]
pub struct TokenIndex {
    by_hash: HashMap<[u8; 32], (TokenId, SupplierId)>,
}

impl TokenIndex {
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let mut by_hash = HashMap::new();
        for t in store.active_token_hashes()? {
            let mut h = [0u8; 32];
            if hex::decode_to_slice(&t.token_hash, &mut h).is_ok() {
                by_hash.insert(h, (t.id, t.supplier_id));
            }
        }
        Ok(Self { by_hash })
    }

    /// The token's id and supplier, if it is active. Revoked and unknown
    /// tokens are both absent (the gateway answers 401 either way).
    pub fn resolve(&self, token: &str) -> Option<(TokenId, SupplierId)> {
        let token = token.trim();
        if !token.starts_with(TOKEN_PREFIX) {
            return None;
        }
        let h: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash.get(&h).copied()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_hex_sha256_of_the_trimmed_token() {
        let h = hash_token(" sbk_abc\n");
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_token("sbk_abc"));
        assert_ne!(h, hash_token("sbk_abd"));
    }

    #[test]
    fn index_ignores_tokens_without_the_prefix() {
        assert!(TokenIndex::default().resolve("sk-abc").is_none());
    }
}
