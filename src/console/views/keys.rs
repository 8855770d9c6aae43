//! The Keys view's data and actions: provider accounts (masked fingerprints,
//! never keys) and gateway tokens (hints, never values); adding, validating,
//! rotating and removing keys and issuing and revoking tokens through the key service,
//! and the keychain entries whose account no longer exists (a notice).

use crate::console::service::{Res, Service, msg};
use crate::console::*;
use crate::domain::TokenId;
use crate::domain::keypool::{KeySnapshot, PoolSettings};
use crate::domain::{AccountId, AzureConfig};
use crate::domain::{AccountOwner, ProviderKind, SupplierId, ValidationStatus};
pub use crate::engine::keys::OrphanKey;
use crate::engine::keys::{KeyError, KeyService};
use crate::store::audit_actor;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// A provider account in the Keys view: masked fingerprint and validation, never the key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub id: AccountId,
    pub label: String,
    pub provider: ProviderKind,
    pub owner: AccountOwner,
    pub owner_name: String,
    pub base_url: String,
    pub default_model: String,
    pub azure: Option<AzureConfig>,
    pub fingerprint: Option<String>,
    pub validation: Option<ValidationStatus>,
    pub validated_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    pub enabled: bool,
    /// Its pool settings (weight, limits, budget).
    pub pool_settings: PoolSettings,
    /// Its live pool state (share of traffic, headroom, 429s) when a router runs here.
    pub pool: Option<KeySnapshot>,
}

/// A gateway token as the Keys view shows it: its hint, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: TokenId,
    pub supplier: SupplierId,
    pub supplier_name: String,
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeysView {
    /// Platform accounts first, then suppliers' accounts by supplier.
    pub accounts: Vec<KeyRow>,
    pub tokens: Vec<TokenRow>,
    /// Where keys live, in words.
    pub vault: String,
    /// Why the keychain cannot be used now (the vault's own sentence).
    pub vault_error: Option<String>,
    pub demo: bool,
    /// Keychain entries of this database whose account no longer exists
    /// (names only); removable with `switchboard key prune-orphans`.
    pub orphans: Vec<OrphanKey>,
}

impl Service {
    pub(in crate::console) fn keys(&self) -> Res<Arc<KeyService>> {
        match self.live() {
            Some(l) => Ok(l.services.keys.clone()),
            None if self.after_demo.is_some() => Err("keys are available once the demo runtime has started; wait for the demo data".into()),
            None => Err("the key service is not running in this console".into()),
        }
    }

    pub(in crate::console) async fn key_command(self: Arc<Self>, cmd: ConsoleCommand) -> Res<ConsoleEvent> {
        let keys = self.keys()?;
        let k = |e: KeyError| e.to_string();
        Ok(match cmd {
            ConsoleCommand::LoadKeys => {
                let vault_error = keys.vault().check().await.err().map(|e| e.to_string());
                let demo = keys.vault().is_demo();
                let svc = self.clone();
                let mut view = tokio::task::spawn_blocking(move || svc.keys_view())
                    .await
                    .map_err(|e| format!("the console service failed unexpectedly ({e}); try again"))??;
                view.orphans = if vault_error.is_none() { keys.orphan_keys().await.unwrap_or_default() } else { Vec::new() };
                view.vault_error = vault_error;
                view.demo = demo;
                view.vault = if demo { "Demo mode — simulator keys in memory".into() } else { "OS keychain".into() };
                ConsoleEvent::Keys(Arc::new(view))
            }
            ConsoleCommand::AddKey { new, key, validate } => {
                let o = keys.add(new, key, validate).await.map_err(k)?;
                ConsoleEvent::KeySaved {
                    label: o.account.label,
                    fingerprint: o.account.key_fingerprint.unwrap_or_default(),
                    created: true,
                    validation: o.validation,
                }
            }
            ConsoleCommand::ValidateKey(id) => {
                let validation = keys.validate(id).await.map_err(k)?;
                let label = self.store.account(id).map(|a| a.label).unwrap_or_else(|_| format!("account {id}"));
                ConsoleEvent::KeyValidated { id, label, validation }
            }
            ConsoleCommand::RotateKey { id, key } => {
                let o = keys.rotate(id, key).await.map_err(k)?;
                ConsoleEvent::KeySaved {
                    label: o.account.label,
                    fingerprint: o.account.key_fingerprint.unwrap_or_default(),
                    created: false,
                    validation: o.validation,
                }
            }
            ConsoleCommand::RemoveKey { id, force } => match keys.remove(id, force).await {
                Ok(a) => ConsoleEvent::KeyRemoved { id, label: a.label },
                Err(e @ KeyError::ActiveRoute { .. }) => ConsoleEvent::KeyRemoveNeedsForce { id, message: e.to_string() },
                Err(e) => return Err(e.to_string()),
            },
            ConsoleCommand::IssueToken(supplier) => {
                let svc = self.clone();
                tokio::task::spawn_blocking(move || {
                    let s = svc.store.supplier(supplier).map_err(msg)?;
                    let t = crate::engine::gateway_tokens::issue(&svc.store, supplier, svc.clock.now(), &audit_actor()).map_err(msg)?;
                    Ok::<_, String>(ConsoleEvent::TokenIssued {
                        supplier,
                        supplier_name: s.name,
                        hint: t.record.hint.clone(),
                        token: t.token,
                    })
                })
                .await
                .map_err(|e| format!("the console service failed unexpectedly ({e}); try again"))??
            }
            ConsoleCommand::RevokeToken(id) => {
                let svc = self.clone();
                tokio::task::spawn_blocking(move || {
                    let t = crate::engine::gateway_tokens::revoke(&svc.store, id, svc.clock.now(), &audit_actor()).map_err(msg)?;
                    Ok::<_, String>(ConsoleEvent::TokenRevoked { hint: t.hint })
                })
                .await
                .map_err(|e| format!("the console service failed unexpectedly ({e}); try again"))??
            }
            ConsoleCommand::SetPoolSettings { id, settings } => {
                let svc = self.clone();
                tokio::task::spawn_blocking(move || {
                    let label = svc.store.account(id).map_err(msg)?.label;
                    let s = crate::engine::pool_settings::set(&svc.store, id, settings, &audit_actor(), svc.clock.now()).map_err(msg)?;
                    Ok::<_, String>(ConsoleEvent::PoolSettingsSaved { id, label, summary: crate::engine::pool_settings::describe(&s) })
                })
                .await
                .map_err(|e| format!("the console service failed unexpectedly ({e}); try again"))??
            }
            other => return Err(format!("internal: {:?} is not a key command", other.channel())),
        })
    }

    pub(in crate::console) fn keys_view(&self) -> Res<KeysView> {
        let cat = self.supplier_cache()?;
        let names: HashMap<SupplierId, &str> = cat.suppliers.iter().map(|s| (s.id, s.name.as_str())).collect();
        let settings = self.store.pool_settings().map_err(msg)?;
        let live: HashMap<AccountId, KeySnapshot> = self
            .live()
            .and_then(|l| l.services.router.clone())
            .map(|r| r.pool_snapshot().into_iter().map(|k| (k.account, k)).collect())
            .unwrap_or_default();
        let name = |id: SupplierId| names.get(&id).map(|n| n.to_string()).unwrap_or_else(|| format!("supplier {id}"));
        let mut accounts: Vec<KeyRow> = self
            .store
            .list_accounts(None)
            .map_err(msg)?
            .into_iter()
            .map(|a| KeyRow {
                pool_settings: settings.get(&a.id).copied().unwrap_or_default(),
                pool: live.get(&a.id).cloned(),
                owner_name: match a.owner {
                    AccountOwner::Platform => "WedSync platform".into(),
                    AccountOwner::Supplier(s) => name(s),
                },
                id: a.id,
                label: a.label,
                provider: a.provider,
                owner: a.owner,
                base_url: a.base_url,
                default_model: a.default_model,
                azure: a.azure,
                fingerprint: a.key_fingerprint,
                validation: a.last_validation,
                validated_at: a.last_validated_at,
                message: a.last_validation_message,
                enabled: a.enabled,
            })
            .collect();
        accounts.sort_by(|a, b| {
            (a.owner != AccountOwner::Platform, &a.owner_name, a.id).cmp(&(b.owner != AccountOwner::Platform, &b.owner_name, b.id))
        });
        let tokens = self
            .store
            .list_tokens(None)
            .map_err(msg)?
            .into_iter()
            .map(|t| TokenRow {
                supplier_name: name(t.supplier_id),
                id: t.id,
                supplier: t.supplier_id,
                hint: t.hint,
                created_at: t.created_at,
                last_used_at: t.last_used_at,
                revoked_at: t.revoked_at,
            })
            .collect();
        Ok(KeysView { accounts, tokens, vault: String::new(), vault_error: None, demo: false, orphans: Vec::new() })
    }
}

/// A key's pool settings in words (`weight 2, 60 rpm, budget $50.00`).
pub fn pool_settings_text(s: &PoolSettings) -> String {
    crate::engine::pool_settings::describe(s)
}
