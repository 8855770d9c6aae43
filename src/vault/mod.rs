//! The keychain adapter: the only place provider API keys are kept. One OS
//! keychain entry per provider account (service [`SERVICE`], user
//! `account-<id>-<random>`), through `keyring-core` with the platform's native
//! store — Secret Service (D-Bus) on Linux, Keychain on macOS, Credential
//! Manager on Windows.
//!
//! Owns: keychain references ([`KeyRef`]), typed errors that say what
//! is wrong with the keychain and how to fix it ([`VaultError`]), and the
//! explicit in-memory store for demo mode ([`Vault::demo_in_memory`]), which is
//! never chosen silently. When no keychain is usable nothing falls back to
//! storing a key anywhere else.
//!
//! Entry names carry the tag of the database that made them
//! (`account-<id>-<random>.<tag>`), so the entries of one database can be told
//! from another's in the same keychain; [`Vault::list_refs`] enumerates the
//! entry names under the service (a Secret Service search by attribute; names
//! only, never a secret), for finding entries whose account is gone.
//!
//! In PostgreSQL (fleet) mode the backend is [`sealed::FleetVault`] instead:
//! keys are kept in the database only sealed to the fleet's public key, and
//! opened on servers with the fleet's private key (see [`sealed`]).
//!
//! Every keychain call is blocking (D-Bus, Security framework, Win32), so the
//! async methods run it with `tokio::task::spawn_blocking`: never on the UI
//! thread, never on an async worker.

pub mod sealed;

use crate::domain::{AccountId, Secret};
use keyring_core::{CredentialStore, Entry, Error as KeyringError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// The keychain service name under which every Switchboard key is stored.
pub const SERVICE: &str = "switchboard";

/// The name of a keychain entry (its "user" under [`SERVICE`]); this, never the
/// key, is what the database keeps in `provider_accounts.key_ref`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRef(String);

impl KeyRef {
    /// A fresh, unique reference for an account's key: `account-<id>-<random>`.
    /// The random part keeps a rotated key's entry apart from the old one.
    pub fn new_for(account: AccountId) -> Self {
        let mut b = [0u8; 6];
        // getrandom only fails without an OS random source; a clock-based
        // suffix is still unique enough for a reference (it is not a secret).
        let suffix = match getrandom::fill(&mut b) {
            Ok(()) => hex::encode(b),
            Err(_) => format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()),
        };
        Self(format!("account-{}-{suffix}", account.0))
    }
    /// Like [`KeyRef::new_for`], tagged with the database that owns the
    /// account (`account-<id>-<random>.<tag>`, see `Store::instance_tag`).
    pub fn new_tagged(account: AccountId, tag: &str) -> Self {
        let KeyRef(base) = Self::new_for(account);
        Self(format!("{base}.{tag}"))
    }

    /// The account and database tag the name was made for: `Some((id, Some(tag)))`
    /// for `account-<id>-<random>.<tag>`, `Some((id, None))` for an untagged
    /// name of an earlier version, `None` for a name Switchboard did not make.
    pub fn parse(&self) -> Option<(AccountId, Option<&str>)> {
        let rest = self.0.strip_prefix("account-")?;
        let (id, rest) = rest.split_once('-')?;
        let id: i64 = id.parse().ok().filter(|n| *n > 0)?;
        let (random, tag) = match rest.split_once('.') {
            Some((r, t)) => (r, Some(t)),
            None => (rest, None),
        };
        let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(random) || tag.is_some_and(|t| !hex(t)) {
            return None;
        }
        Some((AccountId(id), tag))
    }

    /// A reference read back from the database.
    pub fn from_stored(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const FIX_LINUX: &str =
    "start gnome-keyring (or KeePassXC, KWallet, or another Secret Service provider) in your desktop session and unlock it, then try again";
const FIX_OTHER: &str = "make sure the OS keychain is available and unlocked, then try again";

fn fix() -> &'static str {
    if cfg!(target_os = "linux") { FIX_LINUX } else { FIX_OTHER }
}

/// What went wrong with the keychain. Messages never contain a key; each says
/// what to do. None of these ever leads to storing a key elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// No keychain service could be reached (no D-Bus session, no Secret Service provider).
    #[error(
        "no OS keychain is available ({detail}). Switchboard keeps API keys only in the OS keychain and never stores them anywhere else: {fix}",
        fix = fix()
    )]
    Unavailable { detail: String },
    /// The keychain is locked, or the user refused the unlock prompt.
    #[error(
        "the OS keychain is locked, has no unlocked default collection, or access was refused ({detail}). Unlock it (accept the unlock prompt{hint}), then try again; Switchboard never stores keys anywhere else",
        hint = if cfg!(target_os = "linux") { ", or run `gnome-keyring-daemon --unlock` and type the keyring password" } else { "" }
    )]
    Locked { detail: String },
    /// The account's entry is not in the keychain.
    #[error(
        "the OS keychain has no entry '{key_ref}' (it was removed outside Switchboard, or the keychain was reset); set the key again with `switchboard key rotate ACCOUNT_ID`"
    )]
    Missing { key_ref: String },
    /// The entry exists but does not hold readable text.
    #[error("the OS keychain entry '{key_ref}' does not hold a readable key; set the key again with `switchboard key rotate ACCOUNT_ID`")]
    Unreadable { key_ref: String },
    /// Anything else the keychain reported.
    #[error("the OS keychain failed: {detail}. Check that it is running and unlocked, then try again")]
    Failed { detail: String },
    /// Fleet mode, on a console: keys can be sealed here but never opened.
    #[error(
        "this desktop holds only the fleet's public key; the fleet validates and uses the key (keys added here are sealed to the fleet and cannot be read back on this machine)"
    )]
    PublicKeyOnly,
    /// Fleet mode: the database has no fleet key pair yet.
    #[error("the fleet's database has no fleet key yet: run `switchboard fleet init --database URL` on a server first")]
    NoFleetKey,
    /// Fleet mode, on a server: no private key for the fleet's current key.
    #[error(
        "this server has no private key for the fleet key {public} ({detail}). Import it with `switchboard fleet import-key`; Switchboard looks in the file named by SWITCHBOARD_FLEET_KEY_FILE, then the systemd credential switchboard-fleet-key, then the OS keychain"
    )]
    NoPrivateKey { public: String, detail: String },
    /// Fleet mode: a sealed key that does not open.
    #[error("the sealed key '{key_ref}' cannot be opened: {detail}")]
    Sealed { key_ref: String, detail: String },
    /// Fleet mode: the database or the sealing failed.
    #[error("the fleet's sealed key store failed: {detail}")]
    Fleet { detail: String },
}

#[derive(Clone)]
enum Backend {
    /// The platform's native keychain, connected on first use.
    Os(Arc<OsSlot>),
    /// Demo mode only: keys of the provider simulator, in memory.
    DemoMemory(Arc<Mutex<HashMap<String, Secret>>>),
    /// PostgreSQL (fleet) mode: keys sealed to the fleet's public key.
    Fleet(Arc<sealed::FleetVault>),
}

/// The native store's connection, made on first use. The Secret Service client
/// blocks when it is dropped, which panics on an async worker: when the last
/// handle goes away inside a tokio runtime, the connection is dropped on a
/// plain thread instead. (`Handle::try_current` here only asks whether the
/// drop happens on a runtime; nothing is spawned on one, so this is not a
/// hidden runtime dependency: without a runtime the drop simply blocks here.)
struct OsSlot(Mutex<Option<Arc<CredentialStore>>>);

impl Drop for OsSlot {
    fn drop(&mut self) {
        let store = lock(&self.0).take();
        // Not a hidden runtime: nothing is spawned on it. zbus panics when a
        // Secret Service client is dropped on a tokio runtime thread, so the
        // drop is moved to a plain thread when this runs on one.
        #[allow(clippy::disallowed_methods)]
        let on_runtime = tokio::runtime::Handle::try_current().is_ok();
        if let Some(store) = store
            && on_runtime
        {
            let _ = std::thread::Builder::new().name("keychain-drop".into()).spawn(move || drop(store));
        }
    }
}

/// Handle on the keychain. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Vault {
    backend: Backend,
    service: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.backend {
            Backend::Os(_) => "os-keychain",
            Backend::DemoMemory(_) => "demo-in-memory",
            Backend::Fleet(f) if f.role() == sealed::FleetRole::Console => "fleet-sealed (public key only)",
            Backend::Fleet(_) => "fleet-sealed",
        };
        f.debug_struct("Vault").field("backend", &kind).field("service", &self.service).finish()
    }
}

impl Vault {
    /// The OS keychain. Cheap and infallible: the keychain is reached on the
    /// first call, so a keychain started (or unlocked) later is picked up.
    pub fn os() -> Self {
        Self { backend: Backend::Os(Arc::new(OsSlot(Mutex::new(None)))), service: SERVICE.to_string() }
    }

    /// The OS keychain under another service name (the fleet private key's).
    pub fn os_for_service(service: &str) -> Self {
        Self { backend: Backend::Os(Arc::new(OsSlot(Mutex::new(None)))), service: service.to_string() }
    }

    /// PostgreSQL (fleet) mode: keys sealed to the fleet's public key.
    pub fn fleet(vault: sealed::FleetVault) -> Self {
        Self { backend: Backend::Fleet(Arc::new(vault)), service: SERVICE.to_string() }
    }

    /// Whether keys can be stored here but never read back (a fleet console).
    pub fn is_public_key_only(&self) -> bool {
        matches!(&self.backend, Backend::Fleet(f) if f.role() == sealed::FleetRole::Console)
    }

    /// Demo mode only: an in-memory store for the provider simulator's keys.
    /// Keys put here are lost when the process ends. Never use it for real keys.
    pub fn demo_in_memory() -> Self {
        tracing::warn!("using the in-memory demo key store: keys are not persisted (demo mode only)");
        Self { backend: Backend::DemoMemory(Arc::new(Mutex::new(HashMap::new()))), service: SERVICE.to_string() }
    }

    /// Whether this is the demo in-memory store.
    pub fn is_demo(&self) -> bool {
        matches!(self.backend, Backend::DemoMemory(_))
    }

    /// Checks that the keychain can be reached (connects if needed).
    pub async fn check(&self) -> Result<(), VaultError> {
        let v = self.clone();
        run_blocking(move || v.check_blocking()).await
    }

    /// Stores (or replaces) the secret under `key_ref`.
    pub async fn set(&self, key_ref: &KeyRef, secret: &Secret) -> Result<(), VaultError> {
        let (v, r, s) = (self.clone(), key_ref.clone(), secret.clone());
        run_blocking(move || v.set_blocking(&r, &s)).await
    }

    /// Reads the secret stored under `key_ref`.
    pub async fn get(&self, key_ref: &KeyRef) -> Result<Secret, VaultError> {
        let (v, r) = (self.clone(), key_ref.clone());
        run_blocking(move || v.get_blocking(&r)).await
    }

    /// Deletes the entry; `Ok(false)` when there was none.
    pub async fn delete(&self, key_ref: &KeyRef) -> Result<bool, VaultError> {
        let (v, r) = (self.clone(), key_ref.clone());
        run_blocking(move || v.delete_blocking(&r)).await
    }

    /// The names of every entry under this vault's service (references only,
    /// never a secret), sorted. Entries whose account is gone are found with it.
    pub async fn list_refs(&self) -> Result<Vec<KeyRef>, VaultError> {
        let v = self.clone();
        run_blocking(move || v.list_refs_blocking()).await
    }

    fn list_refs_blocking(&self) -> Result<Vec<KeyRef>, VaultError> {
        let mut out: Vec<KeyRef> = match &self.backend {
            Backend::DemoMemory(m) => lock(m).keys().cloned().map(KeyRef).collect(),
            Backend::Fleet(f) => f.list_refs()?,
            Backend::Os(_) => {
                // An entry deleted between the search and the read of its
                // attributes (another process or console removing a key)
                // fails the read with the platform's own error, not always
                // `NoEntry` (Secret Service: "Object does not exist at path");
                // the listing is then taken again, up to three times.
                let mut tries = 0;
                loop {
                    tries += 1;
                    match self.list_os_once() {
                        Err(e) if tries < 3 => tracing::debug!(error = %e, "the keychain changed while it was listed; listing again"),
                        other => break other?,
                    }
                }
            }
        };
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup();
        Ok(out)
    }

    /// One listing of the OS keychain's entries under this service.
    fn list_os_once(&self) -> Result<Vec<KeyRef>, VaultError> {
        let store = self.store()?;
        let spec = HashMap::from([("service", self.service.as_str())]);
        let entries = Entry::search_in_store(&store, &spec).map_err(|e| map_error(e, &self.service))?;
        let mut names = Vec::with_capacity(entries.len());
        for e in entries {
            // Attributes only: reading them does not unlock or read the secret.
            match e.get_attributes() {
                Ok(attrs) => names.extend(attrs.get("username").or_else(|| attrs.get("user")).cloned().map(KeyRef)),
                Err(KeyringError::NoEntry) => {}
                Err(err) => return Err(map_error(err, &self.service)),
            }
        }
        Ok(names)
    }

    fn check_blocking(&self) -> Result<(), VaultError> {
        match &self.backend {
            Backend::DemoMemory(_) => Ok(()),
            Backend::Fleet(f) => f.check(),
            Backend::Os(_) => {
                // Reading an entry that does not exist proves the keychain answers.
                match self.entry(&KeyRef::from_stored("connectivity-check"))?.get_password() {
                    Ok(_) | Err(KeyringError::NoEntry) => Ok(()),
                    Err(e) => Err(map_error(e, "connectivity-check")),
                }
            }
        }
    }

    fn set_blocking(&self, key_ref: &KeyRef, secret: &Secret) -> Result<(), VaultError> {
        match &self.backend {
            Backend::DemoMemory(m) => {
                lock(m).insert(key_ref.0.clone(), secret.clone());
                Ok(())
            }
            Backend::Fleet(f) => f.set(key_ref, secret),
            Backend::Os(_) => {
                self.entry(key_ref)?.set_password(secret.expose()).map_err(|e| map_error(e, key_ref.as_str()))?;
                tracing::debug!(key_ref = %key_ref, fingerprint = %secret.fingerprint(), "key stored in the OS keychain");
                Ok(())
            }
        }
    }

    fn get_blocking(&self, key_ref: &KeyRef) -> Result<Secret, VaultError> {
        match &self.backend {
            Backend::DemoMemory(m) => lock(m).get(&key_ref.0).cloned().ok_or_else(|| VaultError::Missing { key_ref: key_ref.0.clone() }),
            Backend::Fleet(f) => f.get(key_ref),
            Backend::Os(_) => {
                let pw = self.entry(key_ref)?.get_password().map_err(|e| map_error(e, key_ref.as_str()))?;
                Ok(Secret::new(pw))
            }
        }
    }

    fn delete_blocking(&self, key_ref: &KeyRef) -> Result<bool, VaultError> {
        match &self.backend {
            Backend::DemoMemory(m) => Ok(lock(m).remove(&key_ref.0).is_some()),
            Backend::Fleet(f) => f.delete(key_ref),
            Backend::Os(_) => match self.entry(key_ref)?.delete_credential() {
                Ok(()) => {
                    tracing::debug!(key_ref = %key_ref, "key removed from the OS keychain");
                    Ok(true)
                }
                Err(KeyringError::NoEntry) => Ok(false),
                Err(e) => Err(map_error(e, key_ref.as_str())),
            },
        }
    }

    fn entry(&self, key_ref: &KeyRef) -> Result<Entry, VaultError> {
        let store = self.store()?;
        Entry::new_in_store(&store, &self.service, key_ref.as_str()).map_err(|e| map_error(e, key_ref.as_str()))
    }

    /// The native store, connecting on first use (and again after a failure).
    fn store(&self) -> Result<Arc<CredentialStore>, VaultError> {
        let Backend::Os(slot) = &self.backend else {
            return Err(VaultError::Failed { detail: "internal: the demo and fleet stores have no native keychain".into() });
        };
        let mut slot = lock(&slot.0);
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let store = native_store()?;
        *slot = Some(store.clone());
        Ok(store)
    }
}

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, VaultError> + Send + 'static) -> Result<T, VaultError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(VaultError::Failed { detail: format!("the keychain call did not complete ({e})") }))
}

#[cfg(target_os = "linux")]
fn native_store() -> Result<Arc<CredentialStore>, VaultError> {
    // The Secret Service store panics on a poisoned internal mutex only; a
    // missing session bus or provider is an error, mapped to Unavailable.
    match zbus_secret_service_keyring_store::Store::new() {
        Ok(s) => Ok(s as Arc<CredentialStore>),
        Err(e) => Err(VaultError::Unavailable { detail: describe(&e) }),
    }
}

#[cfg(target_os = "macos")]
fn native_store() -> Result<Arc<CredentialStore>, VaultError> {
    match apple_native_keyring_store::keychain::Store::new() {
        Ok(s) => Ok(s as Arc<CredentialStore>),
        Err(e) => Err(VaultError::Unavailable { detail: describe(&e) }),
    }
}

#[cfg(target_os = "windows")]
fn native_store() -> Result<Arc<CredentialStore>, VaultError> {
    match windows_native_keyring_store::Store::new() {
        Ok(s) => Ok(s as Arc<CredentialStore>),
        Err(e) => Err(VaultError::Unavailable { detail: describe(&e) }),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn native_store() -> Result<Arc<CredentialStore>, VaultError> {
    Err(VaultError::Unavailable { detail: "this operating system has no supported keychain".into() })
}

/// A description of a keychain error that never includes secret bytes (the
/// `BadEncoding` / `BadDataFormat` variants carry the raw secret).
fn describe(e: &KeyringError) -> String {
    match e {
        KeyringError::PlatformFailure(p) | KeyringError::NoStorageAccess(p) => p.to_string(),
        KeyringError::NoEntry => "no entry".into(),
        KeyringError::BadEncoding(_) | KeyringError::BadDataFormat(_, _) => "the stored value is not readable text".into(),
        KeyringError::BadStoreFormat(s) => format!("the keychain is not in the expected format: {s}"),
        KeyringError::TooLong(what, max) => format!("{what} is longer than the keychain allows ({max})"),
        KeyringError::Invalid(what, why) => format!("{what} {why}"),
        KeyringError::Ambiguous(_) => "several keychain entries match".into(),
        KeyringError::NoDefaultStore => "no keychain store configured".into(),
        KeyringError::NotSupportedByStore(s) => format!("not supported by this keychain: {s}"),
        _ => "unknown keychain error".into(),
    }
}

fn map_error(e: KeyringError, key_ref: &str) -> VaultError {
    let detail = describe(&e);
    match e {
        KeyringError::NoEntry => VaultError::Missing { key_ref: key_ref.to_string() },
        KeyringError::BadEncoding(_) | KeyringError::BadDataFormat(_, _) => VaultError::Unreadable { key_ref: key_ref.to_string() },
        KeyringError::NoStorageAccess(_) => VaultError::Locked { detail },
        KeyringError::PlatformFailure(_) if looks_unavailable(&detail) => VaultError::Unavailable { detail },
        _ => VaultError::Failed { detail },
    }
}

/// Whether a platform failure means "there is no keychain service at all".
fn looks_unavailable(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    ["no secret service", "serviceunknown", "not provided by any", "dbus session", "no such file", "connection refused", "address"]
        .iter()
        .any(|p| d.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_refs_are_unique_per_call() {
        let a = KeyRef::new_for(AccountId(7));
        let b = KeyRef::new_for(AccountId(7));
        assert!(a.as_str().starts_with("account-7-"));
        assert_ne!(a, b);
    }

    #[test]
    fn tagged_refs_name_their_account_and_database() {
        let r = KeyRef::new_tagged(AccountId(42), "0a1b2c3d4e5f");
        assert!(r.as_str().starts_with("account-42-") && r.as_str().ends_with(".0a1b2c3d4e5f"), "{r}");
        assert_eq!(r.parse(), Some((AccountId(42), Some("0a1b2c3d4e5f"))));
        assert_eq!(KeyRef::from_stored("account-7-feedfacecafe").parse(), Some((AccountId(7), None)));
        for foreign in ["connectivity-check", "account-x-ab", "account-7-", "account-0-ab", "account-7-zz", "account-7-ab.q!"] {
            assert_eq!(KeyRef::from_stored(foreign).parse(), None, "{foreign}");
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = VaultError::Unavailable { detail: "no secret service provider or dbus session found".into() };
        let m = e.to_string();
        assert!(m.contains("no OS keychain is available"), "{m}");
        assert!(m.contains("never stores them anywhere else"), "{m}");
        let e = map_error(KeyringError::BadEncoding(b"sk-LEAKED".to_vec()), "account-1-x");
        assert!(!format!("{e} {e:?}").contains("LEAKED"));
    }

    #[tokio::test]
    async fn demo_store_round_trips_in_memory() {
        let v = Vault::demo_in_memory();
        assert!(v.is_demo());
        let r = KeyRef::new_for(AccountId(1));
        v.set(&r, &Secret::new("sk-sim-1")).await.unwrap();
        assert_eq!(v.get(&r).await.unwrap().expose(), "sk-sim-1");
        assert!(v.delete(&r).await.unwrap());
        assert!(matches!(v.get(&r).await, Err(VaultError::Missing { .. })));
        assert!(!v.delete(&r).await.unwrap());
        let kept = KeyRef::new_tagged(AccountId(2), "abc");
        v.set(&kept, &Secret::new("sk-sim-2")).await.unwrap();
        assert_eq!(v.list_refs().await.unwrap(), vec![kept]);
    }
}
