//! Sealed keys (issue 25): provider keys shared by a fleet of servers on one
//! PostgreSQL database without any desktop keychain having to replicate.
//!
//! Owns:
//! - the fleet key pair ([`FleetPublicKey`] shown as `age1…`, and
//!   [`FleetPrivateKey`], which zeroizes on drop and never prints), made and
//!   used with the `age` crate (X25519 recipients, ChaCha20-Poly1305);
//! - [`seal`] / [`open`]: a provider key sealed to the fleet's public key,
//!   bound to its key reference (the reference is inside the sealed payload
//!   and checked on open, so a ciphertext copied to another account's row is
//!   refused);
//! - where a server's private key lives ([`find_private_key`]), in this
//!   order: the file named by `SWITCHBOARD_FLEET_KEY_FILE`; the systemd
//!   credential `$CREDENTIALS_DIRECTORY/switchboard-fleet-key`; the OS
//!   keychain entry of the fleet's current public key (service
//!   `switchboard-fleet`). A key file readable by group or others is refused.
//!   The private key never enters the database;
//! - the fleet vault backend ([`FleetVault`]): `set` seals with the public key
//!   (a console holding only the public key can add and rotate keys), `get`
//!   opens with the private key (servers only), through a narrow blocking
//!   storage trait ([`SealedStore`]) that the PostgreSQL adapter implements
//!   via `engine::sealed_keys` (adapters never import each other).

use super::{KeyRef, Vault, VaultError};
use crate::domain::Secret;
use age::secrecy::ExposeSecret;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Environment variable naming the file that holds this server's fleet private key.
pub const KEY_FILE_ENV: &str = "SWITCHBOARD_FLEET_KEY_FILE";
/// Name of the systemd credential (`LoadCredential=switchboard-fleet-key:…`).
pub const CREDENTIAL_NAME: &str = "switchboard-fleet-key";
/// Keychain service under which a server keeps the fleet private key.
pub const KEYCHAIN_SERVICE: &str = "switchboard-fleet";

/// Marks a sealed payload (before the key reference and the key).
const PAYLOAD_MAGIC: &[u8] = b"switchboard-sealed-key/v1\0";

/// The fleet's public key (`age1…`): all a console needs to seal keys.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetPublicKey(String);

impl FleetPublicKey {
    /// Parses an `age1…` X25519 public key.
    pub fn parse(s: &str) -> Result<Self, SealError> {
        let s = s.trim();
        age::x25519::Recipient::from_str(s).map_err(|_| SealError::BadPublicKey)?;
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// A short, stable id of this key (12 hex digits of its SHA-256), for
    /// keychain entry names and messages.
    pub fn short_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..6])
    }
    fn recipient(&self) -> Result<age::x25519::Recipient, SealError> {
        age::x25519::Recipient::from_str(&self.0).map_err(|_| SealError::BadPublicKey)
    }
}

impl fmt::Display for FleetPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FleetPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FleetPublicKey({})", self.0)
    }
}

/// The fleet's private key. Zeroized when dropped (x25519-dalek's
/// `StaticSecret`); Debug shows only the public half, and there is no Display.
#[derive(Clone)]
pub struct FleetPrivateKey(age::x25519::Identity);

impl FleetPrivateKey {
    /// A new random key pair.
    pub fn generate() -> Self {
        Self(age::x25519::Identity::generate())
    }
    /// Parses `AGE-SECRET-KEY-1…` (surrounding whitespace ignored). The error
    /// never repeats the input.
    pub fn parse(s: &str) -> Result<Self, SealError> {
        age::x25519::Identity::from_str(s.trim()).map(Self).map_err(|_| SealError::BadPrivateKey)
    }
    pub fn public(&self) -> FleetPublicKey {
        FleetPublicKey(self.0.to_public().to_string())
    }
    /// The key as text, for writing it to its file or keychain entry only.
    pub fn expose_text(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.to_string().expose_secret().to_string())
    }
}

impl fmt::Debug for FleetPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FleetPrivateKey(for {})", self.public())
    }
}

/// What went wrong sealing or opening. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("not a fleet public key (expected age1…)")]
    BadPublicKey,
    #[error("not a fleet private key (expected AGE-SECRET-KEY-1…)")]
    BadPrivateKey,
    #[error("the key reference contains a NUL character")]
    BadKeyRef,
    #[error("sealing failed: {0}")]
    Encrypt(String),
    #[error("the ciphertext is not sealed to this fleet key (it was sealed to another fleet key, or is damaged)")]
    NotForThisKey,
    #[error("the ciphertext was sealed for '{sealed_for}', not for '{key_ref}': a sealed key copied to another account is refused")]
    WrongKeyRef { key_ref: String, sealed_for: String },
    #[error("the sealed payload is malformed")]
    Malformed,
}

/// Seals `secret` to the fleet's `public` key, bound to `key_ref`.
pub fn seal(public: &FleetPublicKey, key_ref: &KeyRef, secret: &Secret) -> Result<Vec<u8>, SealError> {
    if key_ref.as_str().as_bytes().contains(&0) {
        return Err(SealError::BadKeyRef);
    }
    let mut payload = Zeroizing::new(Vec::with_capacity(PAYLOAD_MAGIC.len() + key_ref.as_str().len() + 1 + secret.expose().len()));
    payload.extend_from_slice(PAYLOAD_MAGIC);
    payload.extend_from_slice(key_ref.as_str().as_bytes());
    payload.push(0);
    payload.extend_from_slice(secret.expose().as_bytes());
    let recipient = public.recipient()?;
    age::encrypt(&recipient, &payload).map_err(|e| SealError::Encrypt(e.to_string()))
}

/// Opens a ciphertext made by [`seal`] for `key_ref`.
pub fn open(private: &FleetPrivateKey, key_ref: &KeyRef, ciphertext: &[u8]) -> Result<Secret, SealError> {
    let plain = Zeroizing::new(age::decrypt(&private.0, ciphertext).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => SealError::NotForThisKey,
        _ => SealError::Malformed,
    })?);
    let rest = plain.strip_prefix(PAYLOAD_MAGIC).ok_or(SealError::Malformed)?;
    let nul = rest.iter().position(|b| *b == 0).ok_or(SealError::Malformed)?;
    let (sealed_for, key) = (&rest[..nul], &rest[nul + 1..]);
    if sealed_for != key_ref.as_str().as_bytes() {
        return Err(SealError::WrongKeyRef { key_ref: key_ref.to_string(), sealed_for: String::from_utf8_lossy(sealed_for).into_owned() });
    }
    let text = std::str::from_utf8(key).map_err(|_| SealError::Malformed)?;
    Ok(Secret::new(text))
}

// ---------------------------------------------------------------------------
// Where a server's private key lives.

/// A place that holds (or will hold) a fleet private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlace {
    /// A file readable only by the service user (`--key-file`, `SWITCHBOARD_FLEET_KEY_FILE`).
    File(PathBuf),
    /// A systemd credential (read-only to the service).
    Credential(PathBuf),
    /// The OS keychain, entry `fleet-key-<id>` under service `switchboard-fleet`.
    Keychain(String),
}

impl fmt::Display for KeyPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPlace::File(p) => write!(f, "the key file {}", p.display()),
            KeyPlace::Credential(p) => write!(f, "the systemd credential {}", p.display()),
            KeyPlace::Keychain(e) => write!(f, "the OS keychain (service {KEYCHAIN_SERVICE}, entry {e})"),
        }
    }
}

/// What went wrong with a private key's place. Never contains the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetKeyError {
    #[error(
        "{path} can be read by group or others (mode {mode:04o}); the fleet's private key must be readable only by the service user. Run `chmod 600 {path}` (and make the service user its owner), then try again"
    )]
    TooOpen { path: String, mode: u32 },
    #[error("cannot read the fleet key file {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{path} already exists; Switchboard does not overwrite a key file. Choose another path, or move the old file away first")]
    Exists { path: String },
    #[error("cannot write the fleet key file {path}: {detail}")]
    Write { path: String, detail: String },
    #[error("{place} does not hold a fleet private key (expected AGE-SECRET-KEY-1…)")]
    NotAKey { place: String },
    #[error("{0}")]
    Keychain(VaultError),
}

/// A private key and where it was found.
#[derive(Debug, Clone)]
pub struct FoundKey {
    pub key: FleetPrivateKey,
    pub place: KeyPlace,
}

/// The keychain entry name for the private key of `public`.
pub fn keychain_entry(public: &FleetPublicKey) -> String {
    format!("fleet-key-{}", public.short_id())
}

fn fleet_keychain() -> Vault {
    Vault::os_for_service(KEYCHAIN_SERVICE)
}

/// Reads a private key file, refusing one that group or others can read.
pub fn read_key_file(path: &Path, place: KeyPlace) -> Result<FleetPrivateKey, FleetKeyError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| FleetKeyError::Read { path: shown.clone(), detail: e.to_string() })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(FleetKeyError::TooOpen { path: shown, mode });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| FleetKeyError::Read { path: shown.clone(), detail: e.to_string() })?;
    FleetPrivateKey::parse(&text).map_err(|_| FleetKeyError::NotAKey { place: place.to_string() })
}

/// Writes `key` to a new file `path`, created readable only by this user
/// (0600). An existing file is never overwritten.
pub fn write_key_file(path: &Path, key: &FleetPrivateKey) -> Result<(), FleetKeyError> {
    let shown = path.display().to_string();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => FleetKeyError::Exists { path: shown.clone() },
        _ => FleetKeyError::Write { path: shown.clone(), detail: e.to_string() },
    })?;
    let text = key.expose_text();
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| FleetKeyError::Write { path: shown, detail: e.to_string() })
}

/// Replaces the key file at `path` with `key` (a new 0600 file renamed over
/// it), for rotation.
pub fn replace_key_file(path: &Path, key: &FleetPrivateKey) -> Result<(), FleetKeyError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    write_key_file(&tmp, key)?;
    std::fs::rename(&tmp, path).map_err(|e| FleetKeyError::Write { path: path.display().to_string(), detail: e.to_string() })
}

/// Stores `key` in the OS keychain under the entry of its public key (blocking).
pub fn store_in_keychain(key: &FleetPrivateKey) -> Result<KeyPlace, FleetKeyError> {
    let entry = keychain_entry(&key.public());
    let text = key.expose_text();
    fleet_keychain().set_blocking(&KeyRef::from_stored(entry.clone()), &Secret::new(text.as_str())).map_err(FleetKeyError::Keychain)?;
    Ok(KeyPlace::Keychain(entry))
}

/// Removes a keychain entry of a (retired) fleet key; `false` when there was none.
pub fn remove_from_keychain(entry: &str) -> Result<bool, FleetKeyError> {
    fleet_keychain().delete_blocking(&KeyRef::from_stored(entry)).map_err(FleetKeyError::Keychain)
}

/// Finds this host's private key for the fleet key `fleet`, in the order of
/// the module docs: the file of `SWITCHBOARD_FLEET_KEY_FILE`, the systemd
/// credential, the OS keychain. The first place that holds a key wins (its key
/// may still be another fleet key's: compare `found.key.public()`). `Ok(None)`:
/// no place holds one (a console, or a server not given the key yet). Blocking.
pub fn find_private_key(fleet: &FleetPublicKey) -> Result<Option<FoundKey>, FleetKeyError> {
    if let Some(path) = std::env::var_os(KEY_FILE_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let place = KeyPlace::File(path.clone());
        return read_key_file(&path, place.clone()).map(|key| Some(FoundKey { key, place }));
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|p| !p.is_empty()) {
        let path = Path::new(&dir).join(CREDENTIAL_NAME);
        if path.exists() {
            let place = KeyPlace::Credential(path.clone());
            return read_key_file(&path, place.clone()).map(|key| Some(FoundKey { key, place }));
        }
    }
    let entry = keychain_entry(fleet);
    match fleet_keychain().get_blocking(&KeyRef::from_stored(entry.clone())) {
        Ok(text) => {
            let place = KeyPlace::Keychain(entry);
            let key = FleetPrivateKey::parse(text.expose()).map_err(|_| FleetKeyError::NotAKey { place: place.to_string() })?;
            Ok(Some(FoundKey { key, place }))
        }
        // A headless server has no keychain at all: nothing there.
        Err(VaultError::Missing { .. } | VaultError::Unavailable { .. }) => Ok(None),
        Err(e) => Err(FleetKeyError::Keychain(e)),
    }
}

// ---------------------------------------------------------------------------
// The fleet vault backend.

/// The fleet's current public key as stored in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetKeyRecord {
    pub id: i64,
    pub public_key: String,
}

/// One sealed key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    pub fleet_key_id: i64,
    pub ciphertext: Vec<u8>,
    pub fingerprint: String,
}

/// Outcome of storing a sealed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    /// The fleet key it was sealed to was retired meanwhile (a rotation):
    /// seal again with the current key.
    StaleFleetKey,
}

/// Where sealed keys are kept (the fleet's database). Blocking calls; errors
/// are messages without key material or passwords.
pub trait SealedStore: Send + Sync {
    fn current_fleet_key(&self) -> Result<Option<FleetKeyRecord>, String>;
    fn put_sealed(&self, key_ref: &str, fleet_key_id: i64, ciphertext: &[u8], fingerprint: &str) -> Result<PutOutcome, String>;
    fn get_sealed(&self, key_ref: &str) -> Result<Option<SealedRecord>, String>;
    fn delete_sealed(&self, key_ref: &str) -> Result<bool, String>;
    fn sealed_refs(&self) -> Result<Vec<String>, String>;
}

/// Whether this process may open sealed keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetRole {
    /// A server: opens keys with the private key found by [`find_private_key`].
    Server,
    /// An account manager's console: seals only, never opens.
    Console,
}

/// Private key lookup for a server: given the fleet key to open for.
pub type KeyFinder = Arc<dyn Fn(&FleetPublicKey) -> Result<Option<FoundKey>, FleetKeyError> + Send + Sync>;

/// The fleet vault: see the module docs.
pub struct FleetVault {
    store: Arc<dyn SealedStore>,
    role: FleetRole,
    finder: KeyFinder,
    /// The private key last found, with the id of the fleet key it opens.
    opened: Mutex<Option<(i64, FleetPrivateKey)>>,
}

impl FleetVault {
    /// A server's vault: private keys are looked up with [`find_private_key`].
    pub fn server(store: Arc<dyn SealedStore>) -> Self {
        Self::with_finder(store, FleetRole::Server, Arc::new(find_private_key))
    }
    /// A console's vault: seals with the public key, never opens.
    pub fn console(store: Arc<dyn SealedStore>) -> Self {
        Self::with_finder(store, FleetRole::Console, Arc::new(|_: &FleetPublicKey| Ok(None)))
    }
    /// A vault with its own private key lookup (tests: a "server" whose key is a given file).
    pub fn with_finder(store: Arc<dyn SealedStore>, role: FleetRole, finder: KeyFinder) -> Self {
        Self { store, role, finder, opened: Mutex::new(None) }
    }
    pub fn role(&self) -> FleetRole {
        self.role
    }

    fn current(&self) -> Result<(i64, FleetPublicKey), VaultError> {
        let rec = self.store.current_fleet_key().map_err(|detail| VaultError::Fleet { detail })?.ok_or(VaultError::NoFleetKey)?;
        let public = FleetPublicKey::parse(&rec.public_key)
            .map_err(|_| VaultError::Fleet { detail: format!("the fleet key {} in the database is not an age1… public key", rec.id) })?;
        Ok((rec.id, public))
    }

    pub(super) fn check(&self) -> Result<(), VaultError> {
        self.current().map(|_| ())
    }

    pub(super) fn set(&self, key_ref: &KeyRef, secret: &Secret) -> Result<(), VaultError> {
        // A rotation between reading the public key and storing retires it:
        // seal again with the new one (twice is plenty; a third race is reported).
        for _ in 0..3 {
            let (id, public) = self.current()?;
            let ciphertext = seal(&public, key_ref, secret).map_err(|e| VaultError::Fleet { detail: e.to_string() })?;
            match self.store.put_sealed(key_ref.as_str(), id, &ciphertext, &secret.fingerprint()) {
                Ok(PutOutcome::Stored) => {
                    tracing::debug!(key_ref = %key_ref, fingerprint = %secret.fingerprint(), "key sealed to the fleet key");
                    return Ok(());
                }
                Ok(PutOutcome::StaleFleetKey) => continue,
                Err(detail) => return Err(VaultError::Fleet { detail }),
            }
        }
        Err(VaultError::Fleet { detail: "the fleet key kept changing while the key was sealed; try again".into() })
    }

    pub(super) fn get(&self, key_ref: &KeyRef) -> Result<Secret, VaultError> {
        if self.role == FleetRole::Console {
            // Not even a database read: a console never holds an opened key.
            return Err(VaultError::PublicKeyOnly);
        }
        let rec = self
            .store
            .get_sealed(key_ref.as_str())
            .map_err(|detail| VaultError::Fleet { detail })?
            .ok_or_else(|| VaultError::Missing { key_ref: key_ref.to_string() })?;
        let key = self.private_for(key_ref, rec.fleet_key_id)?;
        open(&key, key_ref, &rec.ciphertext).map_err(|e| VaultError::Sealed { key_ref: key_ref.to_string(), detail: e.to_string() })
    }

    /// The private key for fleet key `id`: the cached one, or found anew (after a rotation).
    fn private_for(&self, key_ref: &KeyRef, id: i64) -> Result<FleetPrivateKey, VaultError> {
        if let Some((cached, key)) = self.opened.lock().as_ref()
            && *cached == id
        {
            return Ok(key.clone());
        }
        let (current, public) = self.current()?;
        if current != id {
            return Err(VaultError::Sealed {
                key_ref: key_ref.to_string(),
                detail: format!("it is sealed to fleet key {id}, which is not the fleet's current key {current}; set the key again"),
            });
        }
        let found = (self.finder)(&public).map_err(|e| VaultError::Fleet { detail: e.to_string() })?;
        match found {
            Some(f) if f.key.public() == public => {
                *self.opened.lock() = Some((id, f.key.clone()));
                Ok(f.key)
            }
            Some(f) => Err(VaultError::NoPrivateKey {
                public: public.to_string(),
                detail: format!("{} holds the private key of {}, another fleet key (an older one?)", f.place, f.key.public()),
            }),
            None => Err(VaultError::NoPrivateKey { public: public.to_string(), detail: "no place holds it".into() }),
        }
    }

    pub(super) fn delete(&self, key_ref: &KeyRef) -> Result<bool, VaultError> {
        self.store.delete_sealed(key_ref.as_str()).map_err(|detail| VaultError::Fleet { detail })
    }

    pub(super) fn list_refs(&self) -> Result<Vec<KeyRef>, VaultError> {
        Ok(self.store.sealed_refs().map_err(|detail| VaultError::Fleet { detail })?.into_iter().map(KeyRef::from_stored).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-SEALEDUNITTEST0123456789abcd";

    #[test]
    fn sealed_round_trip() {
        let pk = FleetPrivateKey::generate();
        let r = KeyRef::from_stored("account-3-abcdef");
        let ct = seal(&pk.public(), &r, &Secret::new(KEY)).unwrap();
        assert!(!ct.windows(8).any(|w| KEY.as_bytes().windows(8).any(|k| k == w)), "plaintext in the ciphertext");
        assert_eq!(open(&pk, &r, &ct).unwrap().expose(), KEY);
        // Two seals of the same key differ (fresh ephemeral key each time).
        assert_ne!(ct, seal(&pk.public(), &r, &Secret::new(KEY)).unwrap());
    }

    #[test]
    fn sealed_to_another_key_ref_or_fleet_key_is_refused() {
        let pk = FleetPrivateKey::generate();
        let r = KeyRef::from_stored("account-3-abcdef");
        let ct = seal(&pk.public(), &r, &Secret::new(KEY)).unwrap();
        let e = open(&pk, &KeyRef::from_stored("account-4-abcdef"), &ct).unwrap_err();
        assert!(matches!(e, SealError::WrongKeyRef { .. }), "{e}");
        assert_eq!(open(&FleetPrivateKey::generate(), &r, &ct).unwrap_err(), SealError::NotForThisKey);
        let mut damaged = ct.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(open(&pk, &r, &damaged).is_err());
        assert!(open(&pk, &r, b"not age").is_err());
    }

    #[test]
    fn sealed_keys_parse_and_never_print_the_private_key() {
        let pk = FleetPrivateKey::generate();
        let text = pk.expose_text();
        assert!(text.starts_with("AGE-SECRET-KEY-1"));
        let back = FleetPrivateKey::parse(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(back.public(), pk.public());
        assert!(pk.public().as_str().starts_with("age1"));
        assert_eq!(FleetPublicKey::parse(pk.public().as_str()).unwrap(), pk.public());
        let shown = format!("{pk:?} {:?}", Some(pk.clone()));
        assert!(!shown.contains(&text[16..28]), "{shown}");
        assert!(!FleetPrivateKey::parse("AGE-SECRET-KEY-1NOTAKEY").unwrap_err().to_string().contains("NOTAKEY"));
        assert!(FleetPublicKey::parse("age1nope").is_err());
        assert_eq!(pk.public().short_id().len(), 12);
    }

    #[cfg(unix)]
    #[test]
    fn sealed_key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.key");
        let pk = FleetPrivateKey::generate();
        write_key_file(&path, &pk).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_key_file(&path, KeyPlace::File(path.clone())).unwrap().public(), pk.public());
        assert!(matches!(write_key_file(&path, &pk), Err(FleetKeyError::Exists { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key_file(&path, KeyPlace::File(path.clone())).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        let other = FleetPrivateKey::generate();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        replace_key_file(&path, &other).unwrap();
        assert_eq!(read_key_file(&path, KeyPlace::File(path.clone())).unwrap().public(), other.public());
    }
}
