//! The key service: adds, validates, rotates and removes the API keys of
//! provider accounts (WedSync's platform accounts and suppliers' own), and
//! hands the gateway the key of an account for one request.
//!
//! Owns: per-provider key format checks (before anything is stored), the
//! order of operations that keeps the keychain and the database consistent,
//! the rule that a rotated key is validated live before it replaces the old
//! one, the refusal to remove a supplier's active route, the in-memory
//! snapshots of keys ([`KeyService::key_for`] hands out an `Arc` per request,
//! so requests in flight finish with the key they started with), and the audit
//! log of every key action (OS user, action, account, result — never the key).
//!
//! Keys live only in the [`Vault`]; the database keeps the keychain reference
//! and a masked fingerprint. Removing a supplier removes its accounts' keys
//! ([`KeyService::remove_supplier_keys`], for the CLI and the console alike);
//! keychain entries of this database whose account no longer exists are found
//! with [`KeyService::orphan_keys`] (reported at start by `serve` and the
//! console) and removed with [`KeyService::prune_orphans`].

use crate::domain::Secret;
pub use crate::domain::provider::NewKey;
use crate::domain::{AccountId, AccountOwner, AiMode, AzureConfig, Clock, ProviderAccount, ProviderKind, SupplierId, ValidationStatus};
use crate::store::{NewAccount, Store, StoreError};
use crate::vault::{KeyRef, Vault, VaultError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

mod fleet;
pub use fleet::{FLEET_VALIDATION_POLL, FLEET_VALIDATION_WAIT};

/// A live check of a key: one cheap authenticated call to the provider,
/// classified into a [`ValidationStatus`] with the provider's own message.
/// Implemented by the provider-client layer (`providers::Providers`).
pub trait KeyValidator: Send + Sync {
    fn validate<'a>(&'a self, account: &'a ProviderAccount, key: &'a Secret) -> BoxFuture<'a, (ValidationStatus, String)>;
}

impl KeyValidator for crate::providers::Providers {
    fn validate<'a>(&'a self, account: &'a ProviderAccount, key: &'a Secret) -> BoxFuture<'a, (ValidationStatus, String)> {
        Box::pin(async move {
            let target = crate::providers::ProviderTarget::from_account(account, key.clone());
            self.validate_key(&target).await
        })
    }
}

/// Why a key cannot be accepted as typed. Never contains the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Format(#[from] FormatError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("account {0} has no key yet; set one with `switchboard key rotate {0}`")]
    NoKey(AccountId),
    #[error(
        "the new key for account {account} was not accepted by {provider} ({status}: {message}); the old key is still in use. Check the key and try again"
    )]
    RotationRefused { account: AccountId, provider: &'static str, status: ValidationStatus, message: String },
    #[error(
        "account {account} is the active route of supplier {supplier} '{name}' (its only enabled account in client mode); removing it would leave the supplier without a provider. Add another account or switch the supplier to platform mode first, or pass --force"
    )]
    ActiveRoute { account: AccountId, supplier: SupplierId, name: String },
    #[error(
        "no instance of the fleet validated account {account}'s key within {secs} s: is a `switchboard serve` running on this database? The request stays filed; the first instance to start validates it"
    )]
    FleetSilent { account: AccountId, secs: u64 },
}

/// The result of one live validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub status: ValidationStatus,
    /// The provider's own message (never the key).
    pub message: String,
    pub at: DateTime<Utc>,
}

/// An account after `add` or `rotate`, with the live validation if one ran.
#[derive(Debug, Clone)]
pub struct KeyOutcome {
    pub account: ProviderAccount,
    pub validation: Option<Validation>,
}

const API_VERSION_WORDS: [&str; 3] = ["v1", "latest", "preview"];

/// Checks a key's shape for its provider before anything is stored. The
/// message says what was expected and never repeats the key.
pub fn check_key_format(provider: ProviderKind, key: &Secret) -> Result<(), FormatError> {
    let k = key.expose();
    let name = provider.display_name();
    if k.is_empty() {
        return Err(FormatError(format!("no {name} key was given; paste the key on standard input")));
    }
    if k.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FormatError(format!("the {name} key contains spaces or line breaks inside it; paste exactly one key on one line")));
    }
    match provider {
        ProviderKind::OpenAi => {
            if k.starts_with("sk-ant-") {
                return Err(FormatError("this looks like an Anthropic key (sk-ant-…); use --provider anthropic".into()));
            }
            check_prefixed(name, "sk-", " (e.g. sk-proj-…)", k)?;
        }
        ProviderKind::Anthropic => check_prefixed(name, "sk-ant-", "", k)?,
        ProviderKind::AzureOpenAi => {
            let hex32 = k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit());
            // Keys of resources created since 2024 are 84 letters and digits.
            let new_style = k.len() == 84 && k.bytes().all(|b| b.is_ascii_alphanumeric());
            if !hex32 && !new_style {
                return Err(FormatError(format!(
                    "this is not an Azure OpenAI key: expected 32 hexadecimal characters (or an 84-character key of a newer resource), got {} characters; copy KEY 1 or KEY 2 from the resource's 'Keys and Endpoint' page",
                    k.len()
                )));
            }
        }
    }
    Ok(())
}

/// An OpenAI or Anthropic key: the prefix, then letters, digits, '-' or '_'.
fn check_prefixed(name: &str, prefix: &str, example: &str, k: &str) -> Result<(), FormatError> {
    if !k.starts_with(prefix) {
        return Err(FormatError(format!("an {name} key starts with '{prefix}'{example}; check that the whole key was copied")));
    }
    if k.len() < 20 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(FormatError(format!(
            "this is not an {name} key: expected '{prefix}' followed by letters, digits, '-' or '_' (at least 20 characters in all; got {})",
            k.len()
        )));
    }
    Ok(())
}

/// Checks the endpoint, deployment and api-version of a new account.
pub fn check_account_settings(new: &NewKey) -> Result<(), FormatError> {
    if let Some(url) = &new.base_url {
        let u = url.trim();
        if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() < "http://x".len() || u.contains(char::is_whitespace) {
            return Err(FormatError(format!("'{u}' is not a URL; write it like https://myresource.openai.azure.com")));
        }
    }
    match new.provider {
        ProviderKind::AzureOpenAi => {
            if new.base_url.as_deref().is_none_or(|u| u.trim().is_empty()) {
                return Err(FormatError(
                    "an Azure OpenAI account needs its resource endpoint: --base-url https://RESOURCE.openai.azure.com".into(),
                ));
            }
            let Some(az) = &new.azure else {
                return Err(FormatError(
                    "an Azure OpenAI account needs a deployment and an api-version: --deployment NAME --api-version 2024-10-21".into(),
                ));
            };
            let d = az.deployment.trim();
            if d.is_empty() || d.contains(['/', '?', '#', ' ']) {
                return Err(FormatError(format!(
                    "'{d}' is not a deployment name; give the name shown under Deployments in Azure AI Foundry"
                )));
            }
            let v = az.api_version.trim();
            if !(is_dated_api_version(v) || API_VERSION_WORDS.contains(&v)) {
                return Err(FormatError(format!(
                    "'{v}' is not an Azure OpenAI api-version; write a date such as 2024-10-21 (or 2025-04-01-preview), or v1"
                )));
            }
        }
        _ => {
            if new.azure.is_some() {
                return Err(FormatError("--deployment and --api-version are for Azure OpenAI accounts only".into()));
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` or `YYYY-MM-DD-preview`.
fn is_dated_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok() && date.len() == 10
}

fn default_model(provider: ProviderKind, azure: Option<&AzureConfig>) -> String {
    match provider {
        ProviderKind::OpenAi => "gpt-4o-mini".into(),
        ProviderKind::Anthropic => "claude-haiku-4-5".into(),
        ProviderKind::AzureOpenAi => azure.map(|a| a.deployment.clone()).unwrap_or_default(),
    }
}

/// A keychain entry whose account no longer exists: its name, never its key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrphanKey {
    pub key_ref: String,
    pub account: AccountId,
    /// Named before entries carried their database's tag: it may belong to
    /// another Switchboard database on this machine.
    pub untagged: bool,
}

/// The key service. Share it behind an `Arc`; every method takes `&self`.
pub struct KeyService {
    store: Arc<Store>,
    vault: Vault,
    validator: Arc<dyn KeyValidator>,
    clock: Arc<dyn Clock>,
    actor: String,
    /// Key snapshots handed to requests, with the keychain entry they came
    /// from; replaced (never mutated) on rotate.
    live: RwLock<HashMap<AccountId, (String, Secret)>>,
    /// Serialises add / rotate / remove.
    ops: tokio::sync::Mutex<()>,
    /// How long a console waits for the fleet to validate a key ([`fleet`]).
    fleet_wait: std::time::Duration,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService").field("vault", &self.vault).field("actor", &self.actor).finish_non_exhaustive()
    }
}

impl KeyService {
    /// The audit actor is the OS user running the process.
    pub fn new(store: Arc<Store>, vault: Vault, validator: Arc<dyn KeyValidator>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            vault,
            validator,
            clock,
            actor: crate::store::audit_actor(),
            live: RwLock::new(HashMap::new()),
            ops: tokio::sync::Mutex::new(()),
            fleet_wait: fleet::FLEET_VALIDATION_WAIT,
        }
    }

    /// Overrides the audit actor (e.g. `runtime` for automatic actions).
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// All accounts (or one owner's): fingerprints and validation state, never keys.
    pub fn list(&self, owner: Option<AccountOwner>) -> Result<Vec<ProviderAccount>, KeyError> {
        Ok(self.store.list_accounts(owner)?)
    }

    fn audit(&self, action: &str, account: Option<&ProviderAccount>, supplier: Option<SupplierId>, result: &str, detail: &str) {
        let supplier = supplier.or_else(|| account.and_then(|a| a.owner.supplier()));
        if let Err(e) = self.store.audit(self.clock.now(), &self.actor, action, supplier, account.map(|a| a.id), result, detail) {
            tracing::error!(action, error = %e, "cannot write the audit log");
        }
    }

    fn audit_err(&self, action: &str, account: Option<&ProviderAccount>, supplier: Option<SupplierId>, e: &KeyError) {
        let result = match e {
            KeyError::Format(_) | KeyError::RotationRefused { .. } | KeyError::ActiveRoute { .. } => "refused",
            _ => "error",
        };
        self.audit(action, account, supplier, result, &e.to_string());
    }

    /// The account, or the error (written to the audit log under `action`).
    fn account_or_audit(&self, action: &str, id: AccountId) -> Result<ProviderAccount, KeyError> {
        self.store.account(id).map_err(|e| {
            let e = KeyError::from(e);
            self.audit_err(action, None, None, &e);
            e
        })
    }

    /// Adds an account with its key: format checks first, then the account row,
    /// then the keychain entry (the row is removed again if the keychain fails),
    /// then, when `validate` is set, a live validation whose result is stored.
    pub async fn add(&self, new: NewKey, key: Secret, validate: bool) -> Result<KeyOutcome, KeyError> {
        let _guard = self.ops.lock().await;
        let supplier = new.owner.supplier();
        let r = self.add_inner(new, key, validate).await;
        match &r {
            Ok(o) => {
                let detail = format!(
                    "{} key {}{}",
                    o.account.provider.display_name(),
                    o.account.key_fingerprint.as_deref().unwrap_or(""),
                    o.validation.as_ref().map(|v| format!("; validation: {}", v.status)).unwrap_or_default()
                );
                self.audit("key.add", Some(&o.account), None, "ok", &detail);
            }
            Err(e) => self.audit_err("key.add", None, supplier, e),
        }
        r
    }

    async fn add_inner(&self, new: NewKey, key: Secret, validate: bool) -> Result<KeyOutcome, KeyError> {
        check_key_format(new.provider, &key)?;
        check_account_settings(&new)?;
        // Reach the keychain before creating anything, so a missing keychain
        // leaves no half-made account behind.
        self.vault.check().await?;
        let label = match new.label.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            Some(l) => l.to_string(),
            None => format!("{} ({})", new.provider.display_name(), new.owner),
        };
        let base_url = match new.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) => u.to_string(),
            None => new.provider.default_base_url().unwrap_or_default().to_string(),
        };
        let model =
            new.default_model.clone().filter(|m| !m.trim().is_empty()).unwrap_or_else(|| default_model(new.provider, new.azure.as_ref()));
        let now = self.clock.now();
        let account = self.store.insert_account(
            &NewAccount { owner: new.owner, provider: new.provider, label, base_url, azure: new.azure.clone(), default_model: model },
            now,
        )?;
        let key_ref = KeyRef::new_tagged(account.id, &self.store.instance_tag()?);
        let fp = key.fingerprint();
        if let Err(e) = self.vault.set(&key_ref, &key).await {
            let _ = self.store.delete_account(account.id);
            return Err(e.into());
        }
        if let Err(e) = self.store.set_account_key(account.id, Some(key_ref.as_str()), Some(&fp)) {
            let _ = self.vault.delete(&key_ref).await;
            let _ = self.store.delete_account(account.id);
            return Err(e.into());
        }
        tracing::info!(account = %account.id, fingerprint = %fp, "key added");
        self.put_live(account.id, &key_ref, key.clone());
        let validation = match validate {
            false => None,
            // A console on PostgreSQL cannot open what it sealed: the fleet validates it.
            // If no instance answers in time the key stays added and the request filed.
            true if self.validates_through_fleet() => match self.validate_by_fleet(account.id).await {
                Err(KeyError::FleetSilent { .. }) => None,
                r => Some(r?),
            },
            true => Some(self.run_validation(&account, &key).await?),
        };
        Ok(KeyOutcome { account: self.store.account(account.id)?, validation })
    }

    /// Validates the account's stored key live and records the result. A
    /// console on PostgreSQL asks the fleet instead ([`fleet`]).
    pub async fn validate(&self, id: AccountId) -> Result<Validation, KeyError> {
        if self.validates_through_fleet() {
            return self.validate_by_fleet(id).await;
        }
        self.validate_as(id, "").await
    }

    /// [`KeyService::validate`] here, with `why` added to the audit detail.
    async fn validate_as(&self, id: AccountId, why: &str) -> Result<Validation, KeyError> {
        let r = async {
            let account = self.store.account(id)?;
            let key = self.key_for(id).await?;
            let v = self.run_validation(&account, &key).await?;
            Ok::<_, KeyError>((account, v))
        }
        .await;
        match r {
            Ok((account, v)) => {
                self.audit("key.validate", Some(&account), None, v.status.as_str(), &format!("{}{why}", v.message));
                Ok(v)
            }
            Err(e) => {
                let account = self.store.find_account(id).ok().flatten();
                self.audit_err("key.validate", account.as_ref(), None, &e);
                Err(e)
            }
        }
    }

    async fn run_validation(&self, account: &ProviderAccount, key: &Secret) -> Result<Validation, KeyError> {
        let (status, message) = self.validator.validate(account, key).await;
        // Belt and braces: a provider message never carries the key.
        let message = if key.is_empty() { message } else { message.replace(key.expose(), &key.fingerprint()) };
        let at = self.clock.now();
        self.store.set_account_validation(account.id, status, &message, at)?;
        tracing::info!(account = %account.id, status = %status, "key validated");
        Ok(Validation { status, message, at })
    }

    /// Replaces an account's key. The new key is checked (format, then live)
    /// before anything changes; it is stored under a new keychain entry, the
    /// database switches to it, requests that already hold the old key finish
    /// with it, and the old entry is removed from the keychain last.
    pub async fn rotate(&self, id: AccountId, key: Secret) -> Result<KeyOutcome, KeyError> {
        let _guard = self.ops.lock().await;
        let account = self.account_or_audit("key.rotate", id)?;
        match self.rotate_inner(&account, key).await {
            Ok((o, old_cleanup)) => {
                let detail = format!(
                    "{} replaced by {}{}",
                    account.key_fingerprint.as_deref().unwrap_or("(no key)"),
                    o.account.key_fingerprint.as_deref().unwrap_or(""),
                    old_cleanup.map(|e| format!("; the old keychain entry could not be removed: {e}")).unwrap_or_default()
                );
                self.audit("key.rotate", Some(&o.account), None, "ok", &detail);
                Ok(o)
            }
            Err(e) => {
                self.audit_err("key.rotate", Some(&account), None, &e);
                Err(e)
            }
        }
    }

    async fn rotate_inner(&self, account: &ProviderAccount, key: Secret) -> Result<(KeyOutcome, Option<VaultError>), KeyError> {
        check_key_format(account.provider, &key)?;
        self.vault.check().await?;
        let (status, message) = self.validator.validate(account, &key).await;
        let message = message.replace(key.expose(), &key.fingerprint());
        if status != ValidationStatus::Valid {
            return Err(KeyError::RotationRefused { account: account.id, provider: account.provider.display_name(), status, message });
        }
        let new_ref = KeyRef::new_tagged(account.id, &self.store.instance_tag()?);
        let fp = key.fingerprint();
        self.vault.set(&new_ref, &key).await?;
        if let Err(e) = self.store.set_account_key(account.id, Some(new_ref.as_str()), Some(&fp)) {
            let _ = self.vault.delete(&new_ref).await;
            return Err(e.into());
        }
        let at = self.clock.now();
        self.store.set_account_validation(account.id, status, &message, at)?;
        // New requests get the new key from here on; requests in flight keep
        // the Arc of the old one until they finish.
        self.put_live(account.id, &new_ref, key);
        let cleanup = match &account.key_ref {
            Some(old) => self.vault.delete(&KeyRef::from_stored(old.clone())).await.err(),
            None => None,
        };
        if let Some(e) = &cleanup {
            tracing::warn!(account = %account.id, error = %e, "the old key's keychain entry could not be removed");
        }
        tracing::info!(account = %account.id, fingerprint = %fp, "key rotated");
        Ok((KeyOutcome { account: self.store.account(account.id)?, validation: Some(Validation { status, message, at }) }, cleanup))
    }

    /// The supplier whose active route this account is, if any: a client-mode
    /// supplier's only enabled account.
    pub fn active_route_of(&self, account: &ProviderAccount) -> Result<Option<(SupplierId, String)>, KeyError> {
        let Some(s) = account.owner.supplier() else { return Ok(None) };
        if !account.enabled {
            return Ok(None);
        }
        let supplier = self.store.supplier(s)?;
        if supplier.ai_mode != AiMode::Client {
            return Ok(None);
        }
        let others = self.store.list_accounts(Some(account.owner))?.into_iter().filter(|a| a.id != account.id && a.enabled).count();
        Ok((others == 0).then(|| (s, supplier.name.clone())))
    }

    /// Removes an account's key from the keychain and the account from the
    /// database. Refused while the account is a supplier's active route,
    /// unless `force`.
    pub async fn remove(&self, id: AccountId, force: bool) -> Result<ProviderAccount, KeyError> {
        let _guard = self.ops.lock().await;
        let account = self.account_or_audit("key.remove", id)?;
        let r = async {
            if let Some((supplier, name)) = self.active_route_of(&account)?
                && !force
            {
                return Err(KeyError::ActiveRoute { account: id, supplier, name });
            }
            if let Some(r) = &account.key_ref {
                // A missing entry is fine (already gone); any other keychain
                // failure stops here so the key is not left behind unseen.
                self.vault.delete(&KeyRef::from_stored(r.clone())).await?;
            }
            self.drop_live(id);
            self.store.delete_account(id)?;
            Ok(())
        }
        .await;
        match r {
            Ok(()) => {
                let detail = format!(
                    "{} key {}{}",
                    account.provider.display_name(),
                    account.key_fingerprint.as_deref().unwrap_or("(no key)"),
                    if force { " (forced)" } else { "" }
                );
                self.audit("key.remove", Some(&account), None, "ok", &detail);
                tracing::info!(account = %id, "key and account removed");
                Ok(account)
            }
            Err(e) => {
                self.audit_err("key.remove", Some(&account), None, &e);
                Err(e)
            }
        }
    }

    /// Removes the accounts of a supplier with their keys (before the supplier
    /// itself is deleted, which would cascade to the accounts and leave their
    /// keys behind in the keychain). Returns how many accounts were removed.
    pub async fn remove_supplier_keys(&self, supplier: SupplierId) -> Result<usize, KeyError> {
        let accounts = self.store.list_accounts(Some(AccountOwner::Supplier(supplier)))?;
        for a in &accounts {
            self.remove(a.id, true).await?;
        }
        Ok(accounts.len())
    }

    /// Keychain entries of this database whose account no longer exists
    /// (names only, never a key). Entries named by a version without database
    /// tags are listed with `untagged` set: they may belong to another database
    /// on this machine. Entries tagged for another database are never listed.
    pub async fn orphan_keys(&self) -> Result<Vec<OrphanKey>, KeyError> {
        let refs = self.vault.list_refs().await?;
        let tag = self.store.instance_tag()?;
        let mut out = Vec::new();
        for r in refs {
            let Some((account, entry_tag)) = r.parse() else { continue };
            if entry_tag.is_some_and(|t| t != tag) || self.store.account_exists(account)? {
                continue;
            }
            out.push(OrphanKey { key_ref: r.as_str().to_string(), account, untagged: entry_tag.is_none() });
        }
        Ok(out)
    }

    /// Removes the orphaned entries [`KeyService::orphan_keys`] finds (the
    /// untagged ones only with `include_untagged`), each written to the audit
    /// log. Returns the entries removed.
    pub async fn prune_orphans(&self, include_untagged: bool) -> Result<Vec<OrphanKey>, KeyError> {
        let _guard = self.ops.lock().await;
        let mut removed = Vec::new();
        for o in self.orphan_keys().await? {
            if o.untagged && !include_untagged {
                continue;
            }
            // Checked again under the lock: the account may have come back meanwhile (it cannot: ids are never reused).
            if self.store.account_exists(o.account)? {
                continue;
            }
            match self.vault.delete(&KeyRef::from_stored(o.key_ref.clone())).await {
                Ok(_) => {
                    self.audit(
                        "key.prune_orphan",
                        None,
                        None,
                        "ok",
                        &format!("keychain entry {} of removed account {}", o.key_ref, o.account),
                    );
                    removed.push(o);
                }
                Err(e) => {
                    let e = KeyError::from(e);
                    self.audit_err("key.prune_orphan", None, None, &e);
                    return Err(e);
                }
            }
        }
        Ok(removed)
    }

    /// Logs the orphaned keychain entries (at start of `serve` and the console);
    /// returns them for a notice. A keychain that cannot be read is logged too.
    pub async fn report_orphans(&self) -> Vec<OrphanKey> {
        match self.orphan_keys().await {
            Ok(list) => {
                if !list.is_empty() {
                    let names: Vec<&str> = list.iter().map(|o| o.key_ref.as_str()).collect();
                    tracing::warn!(
                        count = list.len(),
                        entries = %names.join(", "),
                        "keychain entries of provider accounts that no longer exist; remove them with `switchboard key prune-orphans`"
                    );
                }
                list
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for orphaned keychain entries");
                Vec::new()
            }
        }
    }

    /// Demo mode only: puts a simulator key for an existing account into the
    /// in-memory demo store, without format checks (the simulator's keys are
    /// not real keys). Refused on the OS keychain.
    pub async fn set_demo_key(&self, id: AccountId, key: Secret) -> Result<(), KeyError> {
        if !self.vault.is_demo() {
            return Err(KeyError::Format(FormatError("internal: demo keys go only into the in-memory demo store".into())));
        }
        let key_ref = KeyRef::new_tagged(id, &self.store.instance_tag()?);
        self.vault.set(&key_ref, &key).await?;
        self.store.set_account_key(id, Some(key_ref.as_str()), Some(&key.fingerprint()))?;
        self.put_live(id, &key_ref, key);
        Ok(())
    }

    /// The account's key for one request: a shared snapshot (read from the
    /// keychain once per keychain entry, then kept in memory). Hold it for the
    /// whole request; a rotation meanwhile does not change it. Reads the
    /// account row, so a rotation or removal done by another process (the
    /// CLI) is seen by the next request.
    pub async fn key_for(&self, id: AccountId) -> Result<Secret, KeyError> {
        let account = self.store.account(id)?;
        self.key_for_account(&account).await
    }

    /// Like [`KeyService::key_for`] for an account the caller already holds
    /// (e.g. the router's snapshot): no database read when the key of that
    /// keychain entry is already in memory.
    pub async fn key_for_account(&self, account: &ProviderAccount) -> Result<Secret, KeyError> {
        let key_ref = account.key_ref.as_deref().ok_or(KeyError::NoKey(account.id))?;
        if let Some((r, k)) = self.live.read().get(&account.id)
            && r == key_ref
        {
            return Ok(k.clone());
        }
        let key = self.vault.get(&KeyRef::from_stored(key_ref)).await?;
        self.live.write().insert(account.id, (key_ref.to_string(), key.clone()));
        Ok(key)
    }

    /// Forgets the in-memory snapshots (the next request reads the keychain).
    pub fn forget_cached_keys(&self) {
        self.live.write().clear();
    }

    fn put_live(&self, id: AccountId, key_ref: &KeyRef, key: Secret) {
        self.live.write().insert(id, (key_ref.as_str().to_string(), key));
    }

    fn drop_live(&self, id: AccountId) {
        self.live.write().remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(k: &str) -> Secret {
        Secret::new(k)
    }

    #[test]
    fn openai_keys() {
        assert!(check_key_format(ProviderKind::OpenAi, &s("sk-proj-abcdefghijklmnop_qrstu-vwx")).is_ok());
        assert!(check_key_format(ProviderKind::OpenAi, &s("sk-abcdefghijklmnopqrstuvwxyz012345")).is_ok());
        for bad in ["", "abc", "pk-abcdefghijklmnopqrstuvwxyz", "sk-short", "sk-abcdefghij klmnopqrstuv", "sk-abcdefghijklmnopq$rstuv"] {
            assert!(check_key_format(ProviderKind::OpenAi, &s(bad)).is_err(), "{bad}");
        }
        let e = check_key_format(ProviderKind::OpenAi, &s("sk-ant-api03-abcdefghijklmnopqrstuv")).unwrap_err();
        assert!(e.0.contains("Anthropic"), "{e}");
    }

    #[test]
    fn anthropic_keys() {
        assert!(check_key_format(ProviderKind::Anthropic, &s("sk-ant-api03-abcdefghijklmnopqrstuvwxyz-AA")).is_ok());
        for bad in ["sk-abcdefghijklmnopqrstuvwxyz", "sk-ant-x", "sk-ant-abcdefghijklmnop\nqrstuv"] {
            assert!(check_key_format(ProviderKind::Anthropic, &s(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn azure_keys() {
        assert!(check_key_format(ProviderKind::AzureOpenAi, &s("0123456789abcdef0123456789ABCDEF")).is_ok());
        assert!(check_key_format(ProviderKind::AzureOpenAi, &s(&"A1b2".repeat(21))).is_ok());
        for bad in ["0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcdeg", "sk-abcdefghijklmnopqrstuvwxyz"] {
            assert!(check_key_format(ProviderKind::AzureOpenAi, &s(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_errors_never_repeat_the_key() {
        for (p, k) in [
            (ProviderKind::OpenAi, "sk-DISTINCTIVE$$$VALUE-1234567890"),
            (ProviderKind::Anthropic, "sk-DISTINCTIVEVALUE-1234567890"),
            (ProviderKind::AzureOpenAi, "DISTINCTIVEVALUE1234567890"),
            (ProviderKind::OpenAi, "sk-ant-DISTINCTIVEVALUE1234567890"),
        ] {
            let e = check_key_format(p, &s(k)).unwrap_err();
            assert!(!e.to_string().contains("DISTINCTIVE"), "{e}");
        }
    }

    fn azure(url: Option<&str>, d: &str, v: &str) -> NewKey {
        NewKey {
            owner: AccountOwner::Platform,
            provider: ProviderKind::AzureOpenAi,
            label: None,
            base_url: url.map(String::from),
            default_model: None,
            azure: Some(AzureConfig { deployment: d.into(), api_version: v.into() }),
        }
    }

    #[test]
    fn azure_settings() {
        assert!(check_account_settings(&azure(Some("https://r.openai.azure.com"), "gpt4o", "2024-10-21")).is_ok());
        assert!(check_account_settings(&azure(Some("https://r.openai.azure.com"), "gpt4o", "2025-04-01-preview")).is_ok());
        assert!(check_account_settings(&azure(Some("https://r.openai.azure.com"), "gpt4o", "v1")).is_ok());
        assert!(check_account_settings(&azure(None, "gpt4o", "2024-10-21")).is_err());
        assert!(check_account_settings(&azure(Some("r.openai.azure.com"), "gpt4o", "2024-10-21")).is_err());
        assert!(check_account_settings(&azure(Some("https://r.openai.azure.com"), "", "2024-10-21")).is_err());
        assert!(check_account_settings(&azure(Some("https://r.openai.azure.com"), "a/b", "2024-10-21")).is_err());
        assert!(check_account_settings(&azure(Some("https://r.openai.azure.com"), "gpt4o", "2024-13-01")).is_err());
        assert!(check_account_settings(&azure(Some("https://r.openai.azure.com"), "gpt4o", "yesterday")).is_err());
        let mut no_cfg = azure(Some("https://r.openai.azure.com"), "x", "v1");
        no_cfg.azure = None;
        assert!(check_account_settings(&no_cfg).is_err());
        let mut openai = azure(None, "x", "v1");
        openai.provider = ProviderKind::OpenAi;
        assert!(check_account_settings(&openai).is_err());
        openai.azure = None;
        assert!(check_account_settings(&openai).is_ok());
    }
}
