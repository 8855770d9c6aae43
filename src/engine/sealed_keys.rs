//! Sealed keys on PostgreSQL (issue 25): joins the fleet vault
//! (`vault::sealed`) to its storage (`store::pg::sealed`), which as adapters
//! may not import each other, and carries out the fleet key operations that
//! need both: creating the fleet key pair, rotating it (every key re-sealed
//! in one transaction), and what `fleet status` shows.
//!
//! Owns [`PgSealedStore`] (the `SealedStore` of a `PgStore`), the vault
//! constructors for servers and consoles ([`server_vault`], [`console_vault`]),
//! and [`init`], [`rotate`], [`status`]. The private key is handled only
//! through `vault::sealed` (its places), never written to the database.

use crate::domain::Clock;
use crate::store::pg::sealed::PutSealed;
use crate::store::pg::{PgError, PgStore};
use crate::vault::sealed::{
    self, FleetKeyRecord, FleetPrivateKey, FleetPublicKey, FleetRole, FleetVault, FoundKey, KeyFinder, KeyPlace, PutOutcome, SealedRecord,
    SealedStore,
};
use crate::vault::{KeyRef, Vault};
use std::sync::Arc;

/// The sealed key store of a PostgreSQL database (blocking calls, bridged to
/// the PostgreSQL runtime; never call from a `pg-io` thread).
pub struct PgSealedStore {
    pg: PgStore,
    clock: Arc<dyn Clock>,
}

impl PgSealedStore {
    pub fn new(pg: PgStore, clock: Arc<dyn Clock>) -> Self {
        Self { pg, clock }
    }
}

impl SealedStore for PgSealedStore {
    fn current_fleet_key(&self) -> Result<Option<FleetKeyRecord>, String> {
        let row = self.pg.block(|pg| async move { pg.current_fleet_key().await }).map_err(|e| e.to_string())?;
        Ok(row.map(|r| FleetKeyRecord { id: r.id, public_key: r.public_key }))
    }

    fn put_sealed(&self, key_ref: &str, fleet_key_id: i64, ciphertext: &[u8], fingerprint: &str) -> Result<PutOutcome, String> {
        let (key_ref, ciphertext, fingerprint, now) = (key_ref.to_string(), ciphertext.to_vec(), fingerprint.to_string(), self.clock.now());
        let r = self
            .pg
            .block(|pg| async move { pg.put_sealed_key(&key_ref, fleet_key_id, &ciphertext, &fingerprint, now).await })
            .map_err(|e| e.to_string())?;
        Ok(match r {
            PutSealed::Stored => PutOutcome::Stored,
            PutSealed::StaleFleetKey => PutOutcome::StaleFleetKey,
        })
    }

    fn get_sealed(&self, key_ref: &str) -> Result<Option<SealedRecord>, String> {
        let key_ref = key_ref.to_string();
        let row = self.pg.block(|pg| async move { pg.get_sealed_key(&key_ref).await }).map_err(|e| e.to_string())?;
        Ok(row.map(|r| SealedRecord { fleet_key_id: r.fleet_key_id, ciphertext: r.ciphertext, fingerprint: r.fingerprint }))
    }

    fn delete_sealed(&self, key_ref: &str) -> Result<bool, String> {
        let key_ref = key_ref.to_string();
        self.pg.block(|pg| async move { pg.delete_sealed_key(&key_ref).await }).map_err(|e| e.to_string())
    }

    fn sealed_refs(&self) -> Result<Vec<String>, String> {
        self.pg.block(|pg| async move { pg.sealed_key_refs().await }).map_err(|e| e.to_string())
    }
}

/// A server's vault on `pg`: seals with the fleet's public key, opens with
/// the private key found in this host's places (see `vault::sealed`).
pub fn server_vault(pg: PgStore, clock: Arc<dyn Clock>) -> Vault {
    Vault::fleet(FleetVault::server(Arc::new(PgSealedStore::new(pg, clock))))
}

/// A server's vault whose private key is looked up by `finder` (tests: a
/// second server whose key is in a given file).
pub fn server_vault_with(pg: PgStore, clock: Arc<dyn Clock>, finder: KeyFinder) -> Vault {
    Vault::fleet(FleetVault::with_finder(Arc::new(PgSealedStore::new(pg, clock)), FleetRole::Server, finder))
}

/// A console's vault on `pg`: seals only; reading a key back is refused.
pub fn console_vault(pg: PgStore, clock: Arc<dyn Clock>) -> Vault {
    Vault::fleet(FleetVault::console(Arc::new(PgSealedStore::new(pg, clock))))
}

/// Where `init` and `import-key` put the private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDestination {
    /// The OS keychain (service `switchboard-fleet`).
    Keychain,
    /// A new file, created 0600.
    File(std::path::PathBuf),
}

/// Stores `key` at `dest` (blocking).
pub fn store_private_key(key: &FleetPrivateKey, dest: &KeyDestination) -> anyhow::Result<KeyPlace> {
    Ok(match dest {
        KeyDestination::Keychain => sealed::store_in_keychain(key).map_err(|e| {
            anyhow::anyhow!("{e}. On a server without a keychain, keep the fleet key in a file instead: --key-file PATH (created 0600)")
        })?,
        KeyDestination::File(p) => {
            sealed::write_key_file(p, key)?;
            KeyPlace::File(p.clone())
        }
    })
}

/// What `fleet init` made.
#[derive(Debug, Clone)]
pub struct Initialised {
    pub public: FleetPublicKey,
    pub place: KeyPlace,
}

/// Creates the fleet key pair: the private key goes to `dest` first, then the
/// public key into the database. Refused (nothing written) when the fleet has
/// a key already. Blocking.
pub fn init(pg: &PgStore, clock: &dyn Clock, dest: &KeyDestination) -> anyhow::Result<Initialised> {
    if let Some(existing) = pg.block(|pg| async move { pg.current_fleet_key().await })? {
        anyhow::bail!(
            "this fleet already has a key ({}, since {}); nothing was changed. To give this server the private key, run `switchboard fleet import-key`; to replace the pair, `switchboard fleet rotate`",
            existing.public_key,
            existing.created_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    let key = FleetPrivateKey::generate();
    let public = key.public();
    let place = store_private_key(&key, dest)?;
    let (text, now) = (public.to_string(), clock.now());
    match pg.block(|pg| async move { pg.init_fleet_key(&text, now).await })? {
        Ok(_) => Ok(Initialised { public, place }),
        Err(existing) => {
            // Another `init` won the race: our private key is useless; remove it.
            undo_place(&place);
            anyhow::bail!("another `fleet init` created the fleet key {} meanwhile; nothing was changed", existing.public_key)
        }
    }
}

fn undo_place(place: &KeyPlace) {
    match place {
        KeyPlace::Keychain(entry) => {
            let _ = sealed::remove_from_keychain(entry);
        }
        KeyPlace::File(p) => {
            let _ = std::fs::remove_file(p);
        }
        KeyPlace::Credential(_) => {}
    }
}

/// The fleet's current public key and this host's private key for it
/// (an error when this host has none, or another fleet key's). Blocking.
pub fn this_hosts_key(pg: &PgStore) -> anyhow::Result<(i64, FleetPublicKey, FoundKey)> {
    let Some(current) = pg.block(|pg| async move { pg.current_fleet_key().await })? else {
        anyhow::bail!("the fleet's database has no fleet key yet: run `switchboard fleet init` on a server first");
    };
    let public = FleetPublicKey::parse(&current.public_key)?;
    match sealed::find_private_key(&public)? {
        Some(found) if found.key.public() == public => Ok((current.id, public, found)),
        Some(found) => anyhow::bail!(
            "{} holds the private key of {}, not of the fleet's current key {public}. Import the current one with `switchboard fleet import-key`",
            found.place,
            found.key.public()
        ),
        None => anyhow::bail!(
            "this host holds no private key for the fleet key {public}: not in the file named by {} (unset), not in the systemd credential {}, not in the OS keychain. Import it with `switchboard fleet import-key`",
            sealed::KEY_FILE_ENV,
            sealed::CREDENTIAL_NAME
        ),
    }
}

/// What `fleet rotate` did.
#[derive(Debug, Clone)]
pub struct RotateReport {
    pub old_public: FleetPublicKey,
    pub new_public: FleetPublicKey,
    pub place: KeyPlace,
    pub resealed: usize,
}

/// Rotates the fleet key pair: a new pair; every sealed key opened with the
/// old private key and sealed to the new public key, the new key made
/// current and the old retired, all in ONE transaction; the new private key
/// stored where the old one was (for a systemd credential, which the service
/// cannot write, in `credential_out`, a new 0600 file to install as the
/// credential). Blocking.
pub fn rotate(pg: &PgStore, clock: &dyn Clock, credential_out: Option<&std::path::Path>) -> anyhow::Result<RotateReport> {
    let (old_id, old_public, old) = this_hosts_key(pg)?;
    let new_key = FleetPrivateKey::generate();
    let new_public = new_key.public();
    // The new private key is kept before the database changes, beside the old
    // one, so that no moment exists where the database has keys sealed to a
    // private key that is nowhere.
    let staged = match &old.place {
        KeyPlace::Keychain(_) => sealed::store_in_keychain(&new_key)?,
        KeyPlace::File(p) => {
            let mut staged = p.as_os_str().to_owned();
            staged.push(".next");
            let staged = std::path::PathBuf::from(staged);
            let _ = std::fs::remove_file(&staged);
            sealed::write_key_file(&staged, &new_key)?;
            KeyPlace::File(staged)
        }
        KeyPlace::Credential(_) => {
            let Some(out) = credential_out else {
                anyhow::bail!(
                    "this host's fleet key is {} which Switchboard cannot rewrite; pass --new-key-file PATH for the new private key, then install that file as the credential on every server",
                    old.place
                );
            };
            sealed::write_key_file(out, &new_key)?;
            KeyPlace::File(out.to_path_buf())
        }
    };
    let (old_key, new_pub_for_tx, now) = (old.key.clone(), new_public.clone(), clock.now());
    let new_text = new_public.to_string();
    let result = pg.block(move |pg| async move {
        pg.rotate_fleet_key(old_id, &new_text, now, |key_ref, ciphertext| {
            let r = KeyRef::from_stored(key_ref);
            let secret = sealed::open(&old_key, &r, ciphertext).map_err(|e| format!("the sealed key '{key_ref}' does not open: {e}"))?;
            sealed::seal(&new_pub_for_tx, &r, &secret).map_err(|e| e.to_string())
        })
        .await
    });
    let rotated = match result {
        Ok(r) => r,
        Err(e) => {
            if !matches!(old.place, KeyPlace::Credential(_)) {
                undo_place(&staged);
            }
            return Err(rotation_failed(e));
        }
    };
    // Committed: the new private key takes the old one's place.
    let place = match (&old.place, &staged) {
        (KeyPlace::Keychain(old_entry), _) => {
            if let Err(e) = sealed::remove_from_keychain(old_entry) {
                tracing::warn!(error = %e, "the old fleet key's keychain entry could not be removed");
            }
            staged
        }
        (KeyPlace::File(p), KeyPlace::File(staged_path)) => {
            std::fs::rename(staged_path, p).map_err(|e| {
                anyhow::anyhow!(
                    "the fleet key was rotated, but the new private key could not replace {} ({e}); it is in {}: move it there yourself",
                    p.display(),
                    staged_path.display()
                )
            })?;
            KeyPlace::File(p.clone())
        }
        _ => staged,
    };
    Ok(RotateReport { old_public, new_public, place, resealed: rotated.resealed })
}

fn rotation_failed(e: PgError) -> anyhow::Error {
    anyhow::anyhow!("the fleet key was not rotated (nothing in the database changed): {e}")
}

/// What `fleet status` shows.
#[derive(Debug, Clone)]
pub struct Status {
    pub public: Option<FleetPublicKey>,
    pub retired: usize,
    pub sealed_keys: i64,
    /// Whether this host can open the sealed keys, and why (not).
    pub can_open: bool,
    pub private_key: String,
}

/// The fleet key status, as seen from this host. Blocking.
pub fn status(pg: &PgStore) -> anyhow::Result<Status> {
    let keys = pg.block(|pg| async move { pg.fleet_keys().await })?;
    let sealed_keys = pg.block(|pg| async move { pg.count_sealed_keys().await })?;
    let retired = keys.iter().filter(|k| k.retired_at.is_some()).count();
    let Some(current) = keys.into_iter().find(|k| k.retired_at.is_none()) else {
        return Ok(Status {
            public: None,
            retired,
            sealed_keys,
            can_open: false,
            private_key: "none: the fleet has no key yet (run `switchboard fleet init`)".into(),
        });
    };
    let public = FleetPublicKey::parse(&current.public_key)?;
    let (can_open, private_key) = match sealed::find_private_key(&public) {
        Ok(Some(f)) if f.key.public() == public => (true, format!("in {}", f.place)),
        Ok(Some(f)) => (false, format!("{} holds another fleet key's ({}), not the current one", f.place, f.key.public())),
        Ok(None) => (false, "not on this host (a console holds only the public key)".into()),
        Err(e) => (false, format!("unreadable: {e}")),
    };
    Ok(Status { public: Some(public), retired, sealed_keys, can_open, private_key })
}
