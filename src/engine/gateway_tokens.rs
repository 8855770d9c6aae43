//! Gateway tokens: the credential the WedSync platform presents to
//! Switchboard's gateway on one supplier's behalf. Owns issuing (random,
//! `sbk_`-prefixed, shown once; only its [`TokenHash`] is stored) and
//! revoking. Every issue and revoke is written to the audit log, with the
//! token's hint only. A presented token is resolved to its supplier by the
//! router's in-memory catalog (`engine::router`, `Router::authenticate`).

use crate::domain::Secret;
use crate::domain::SupplierId;
use crate::store::{GatewayToken, Store, StoreError, TokenHash, TokenId};
use chrono::{DateTime, Utc};

/// Every gateway token starts with this.
pub const TOKEN_PREFIX: &str = "sbk_";
/// Random bytes in a token (hex-encoded after the prefix).
const TOKEN_BYTES: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
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

/// Issues a new token for `supplier`. The value is returned once and never stored.
pub fn issue(store: &Store, supplier: SupplierId, now: DateTime<Utc>, actor: &str) -> Result<IssuedToken, TokenError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    let token = Secret::new(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)));
    let hint = token.fingerprint();
    let record = match store.insert_token(supplier, &TokenHash::of(token.expose()), &hint, now) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_hex_sha256_of_the_trimmed_token() {
        let h = TokenHash::of(" sbk_abc\n");
        assert_eq!(h.to_hex().len(), 64);
        assert_eq!(h, TokenHash::of("sbk_abc"));
        assert_ne!(h, TokenHash::of("sbk_abd"));
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(TokenHash::from_hex(&h.to_hex().to_ascii_uppercase()), Some(h));
        assert_eq!(TokenHash::from_hex("abc"), None);
    }
}
