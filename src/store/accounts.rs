//! Provider accounts: everything about an account except its key, which lives
//! only in the OS keychain (the row keeps the entry's reference and a masked
//! fingerprint). Account ids are never reused (`AUTOINCREMENT` since schema
//! v8). Also the database's instance tag, which names its keychain entries.

use super::pg::accounts as pga;
use super::{Store, StoreError, StoreResult, parse_ts, ts};
use crate::domain::{AccountId, AccountOwner, AzureConfig, ProviderAccount, ProviderKind, SupplierId, ValidationStatus};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

/// What is needed to create an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub owner: AccountOwner,
    pub provider: ProviderKind,
    pub label: String,
    pub base_url: String,
    pub azure: Option<AzureConfig>,
    pub default_model: String,
}

const SELECT: &str = "SELECT id, owner_supplier_id, provider, label, base_url, azure_deployment, azure_api_version, default_model,
    key_ref, key_fingerprint, last_validated_at, last_validation, last_validation_message, enabled, created_at FROM provider_accounts";

fn row_to_account(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProviderAccount> {
    let provider: String = r.get(2)?;
    let provider = provider
        .parse::<ProviderKind>()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.to_string().into()))?;
    let deployment: Option<String> = r.get(5)?;
    let api_version: Option<String> = r.get(6)?;
    Ok(ProviderAccount {
        id: AccountId(r.get(0)?),
        owner: match r.get::<_, Option<i64>>(1)? {
            Some(s) => AccountOwner::Supplier(SupplierId(s)),
            None => AccountOwner::Platform,
        },
        provider,
        label: r.get(3)?,
        base_url: r.get(4)?,
        azure: match (deployment, api_version) {
            (Some(deployment), Some(api_version)) => Some(AzureConfig { deployment, api_version }),
            _ => None,
        },
        default_model: r.get(7)?,
        key_ref: r.get(8)?,
        key_fingerprint: r.get(9)?,
        last_validated_at: r.get::<_, Option<String>>(10)?.map(|s| parse_ts(&s)),
        last_validation: r.get::<_, Option<String>>(11)?.and_then(|s| s.parse::<ValidationStatus>().ok()),
        last_validation_message: r.get(12)?,
        enabled: r.get(13)?,
        created_at: parse_ts(&r.get::<_, String>(14)?),
    })
}

fn not_found(id: AccountId) -> StoreError {
    StoreError::NotFound { what: "provider account", id: id.to_string(), hint: " (see `switchboard key list`)" }
}

impl Store {
    pub fn insert_account(&self, new: &NewAccount, now: DateTime<Utc>) -> StoreResult<ProviderAccount> {
        if new.label.trim().is_empty() {
            return Err(StoreError::Invalid("an account needs a label".into()));
        }
        if new.provider == ProviderKind::AzureOpenAi && new.azure.is_none() {
            return Err(StoreError::Invalid(
                "an Azure OpenAI account needs a deployment and an api-version (--deployment D --api-version V)".into(),
            ));
        }
        if let AccountOwner::Supplier(s) = new.owner {
            self.supplier(s)?;
        }
        if let Some(pg) = self.postgres() {
            let new = new.clone();
            let id = pg.block(move |pg| async move { pga::insert_account(&pg, new, now).await })?;
            return self.account(id);
        }
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO provider_accounts (owner_supplier_id, provider, label, base_url, azure_deployment, azure_api_version, default_model, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    new.owner.supplier().map(|s| s.0),
                    new.provider.as_str(),
                    new.label.trim(),
                    new.base_url.trim_end_matches('/'),
                    new.azure.as_ref().map(|a| a.deployment.as_str()),
                    new.azure.as_ref().map(|a| a.api_version.as_str()),
                    new.default_model,
                    ts(now)
                ],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.account(AccountId(id))
    }

    pub fn find_account(&self, id: AccountId) -> StoreResult<Option<ProviderAccount>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pga::find_account(&pg, id).await });
        }
        self.with_conn(|c| c.query_row(&format!("{SELECT} WHERE id = ?1"), [id.0], row_to_account).optional())
    }

    pub fn account(&self, id: AccountId) -> StoreResult<ProviderAccount> {
        self.find_account(id)?.ok_or_else(|| not_found(id))
    }

    /// All accounts (platform first, then by supplier), or one owner's.
    pub fn list_accounts(&self, owner: Option<AccountOwner>) -> StoreResult<Vec<ProviderAccount>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pga::list_accounts(&pg, owner).await });
        }
        self.with_conn(|c| {
            let (sql, arg): (String, Option<i64>) = match owner {
                None => (format!("{SELECT} ORDER BY owner_supplier_id IS NOT NULL, owner_supplier_id, id"), None),
                Some(AccountOwner::Platform) => (format!("{SELECT} WHERE owner_supplier_id IS NULL ORDER BY id"), None),
                Some(AccountOwner::Supplier(s)) => (format!("{SELECT} WHERE owner_supplier_id = ?1 ORDER BY id"), Some(s.0)),
            };
            let mut st = c.prepare(&sql)?;
            let rows = match arg {
                Some(a) => st.query_map([a], row_to_account)?.collect::<Result<Vec<_>, _>>()?,
                None => st.query_map([], row_to_account)?.collect::<Result<Vec<_>, _>>()?,
            };
            Ok(rows)
        })
    }

    /// Records which keychain entry holds the account's key and its fingerprint.
    pub fn set_account_key(&self, id: AccountId, key_ref: Option<&str>, fingerprint: Option<&str>) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let (key_ref, fingerprint) = (key_ref.map(str::to_string), fingerprint.map(str::to_string));
            let n = pg.block(move |pg| async move { pga::set_account_key(&pg, id, key_ref, fingerprint).await })?;
            return if n == 0 { Err(not_found(id)) } else { Ok(()) };
        }
        let n = self.with_conn(|c| {
            c.execute("UPDATE provider_accounts SET key_ref = ?2, key_fingerprint = ?3 WHERE id = ?1", params![id.0, key_ref, fingerprint])
        })?;
        if n == 0 { Err(not_found(id)) } else { Ok(()) }
    }

    pub fn set_account_validation(&self, id: AccountId, status: ValidationStatus, message: &str, at: DateTime<Utc>) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let message = message.to_string();
            let n = pg.block(move |pg| async move { pga::set_account_validation(&pg, id, status, message, at).await })?;
            return if n == 0 { Err(not_found(id)) } else { Ok(()) };
        }
        let n = self.with_conn(|c| {
            c.execute(
                "UPDATE provider_accounts SET last_validated_at = ?2, last_validation = ?3, last_validation_message = ?4 WHERE id = ?1",
                params![id.0, ts(at), status.as_str(), message],
            )
        })?;
        if n == 0 { Err(not_found(id)) } else { Ok(()) }
    }

    /// PostgreSQL: asks the fleet to validate `id`'s key (a console cannot
    /// open keys; an instance claims the request with
    /// [`Store::claim_key_validations`] and records the result with
    /// [`Store::set_account_validation`]). SQLite: refused (whoever holds the
    /// database file validates keys itself).
    pub fn request_key_validation(&self, id: AccountId, by: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let Some(pg) = self.postgres() else {
            return Err(StoreError::Invalid(
                "the fleet validates keys only on PostgreSQL; on a SQLite file the key is validated where it is opened".into(),
            ));
        };
        self.account(id)?;
        let by = by.to_string();
        pg.block(move |pg| async move { crate::store::pg::key_checks::request(&pg, id, by, at).await })
    }

    /// PostgreSQL: takes up to `limit` pending key validation requests (each
    /// goes to one caller only); the accounts and who asked. SQLite: none.
    pub fn claim_key_validations(&self, limit: i64) -> StoreResult<Vec<(AccountId, String)>> {
        let Some(pg) = self.postgres() else { return Ok(Vec::new()) };
        pg.block(move |pg| async move { crate::store::pg::key_checks::claim(&pg, limit).await })
    }

    pub fn set_account_enabled(&self, id: AccountId, enabled: bool) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let n = pg.block(move |pg| async move { pga::set_account_enabled(&pg, id, enabled).await })?;
            return if n == 0 { Err(not_found(id)) } else { Ok(()) };
        }
        let n = self.with_conn(|c| c.execute("UPDATE provider_accounts SET enabled = ?2 WHERE id = ?1", params![id.0, enabled]))?;
        if n == 0 { Err(not_found(id)) } else { Ok(()) }
    }

    pub fn delete_account(&self, id: AccountId) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let n = pg.block(move |pg| async move { pga::delete_account(&pg, id).await })?;
            return if n == 0 { Err(not_found(id)) } else { Ok(()) };
        }
        let n = self.with_conn(|c| c.execute("DELETE FROM provider_accounts WHERE id = ?1", [id.0]))?;
        if n == 0 { Err(not_found(id)) } else { Ok(()) }
    }

    /// This database's random tag (made once by schema v8), put into the names
    /// of the keychain entries it creates so they can be told from another
    /// database's entries in the same keychain.
    pub fn instance_tag(&self) -> StoreResult<String> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { super::pg::catalog::instance_tag(&pg).await });
        }
        self.with_conn(|c| c.query_row("SELECT tag FROM store_instance WHERE id = 1", [], |r| r.get(0)))
    }

    /// Whether an account with this id exists.
    pub fn account_exists(&self, id: AccountId) -> StoreResult<bool> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pga::account_exists(&pg, id).await });
        }
        self.with_conn(|c| c.query_row("SELECT EXISTS (SELECT 1 FROM provider_accounts WHERE id = ?1)", [id.0], |r| r.get(0)))
    }
}
