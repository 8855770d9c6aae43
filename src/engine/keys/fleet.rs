//! Key validation across the fleet (issue 25). A console on PostgreSQL
//! holds only the fleet's public key: it seals keys but cannot open one to
//! validate it. So it files a request ([`crate::store::Store::request_key_validation`])
//! and waits for the result; one of the fleet's `serve` instances claims the
//! request, opens the key, validates it against the provider and records the
//! result on the account (audited as `key.validate`, naming who asked).
//!
//! A key being added is validated the same way once it is sealed. (A new
//! key for rotation is still checked from the console, with the key the
//! account manager just typed: it must be accepted before it replaces the old one.)

use super::{KeyError, KeyService, Validation};
use crate::domain::AccountId;
use std::time::{Duration, Instant};

/// How long a console waits for the fleet to validate a key.
pub const FLEET_VALIDATION_WAIT: Duration = Duration::from_secs(20);

/// How often a console looks for the result, and an instance for requests.
pub const FLEET_VALIDATION_POLL: Duration = Duration::from_millis(250);

impl KeyService {
    /// Whether keys are validated by the fleet (this process holds only the
    /// fleet's public key and can open none).
    pub fn validates_through_fleet(&self) -> bool {
        self.vault.is_public_key_only()
    }

    /// Asks the fleet to validate `id`'s key and waits for the answer (up to
    /// `self.fleet_wait`). The request is audited as `key.validate.request`.
    pub(super) async fn validate_by_fleet(&self, id: AccountId) -> Result<Validation, KeyError> {
        let account = self.account_or_audit("key.validate.request", id)?;
        let before = (account.last_validated_at, account.last_validation);
        if let Err(e) = self.store.request_key_validation(id, &self.actor, self.clock.now()) {
            let e = KeyError::from(e);
            self.audit_err("key.validate.request", Some(&account), None, &e);
            return Err(e);
        }
        self.audit("key.validate.request", Some(&account), None, "ok", "asked the fleet to validate the key");
        let deadline = Instant::now() + self.fleet_wait;
        loop {
            tokio::time::sleep(FLEET_VALIDATION_POLL.min(self.fleet_wait)).await;
            let a = self.store.account(id)?;
            // A new result (compared with the one before the request, not by
            // clock: the instance's clock may differ from this one's).
            if let (Some(at), Some(status)) = (a.last_validated_at, a.last_validation)
                && (Some(at), Some(status)) != before
            {
                return Ok(Validation { status, message: a.last_validation_message.unwrap_or_default(), at });
            }
            if Instant::now() >= deadline {
                return Err(KeyError::FleetSilent { account: id, secs: self.fleet_wait.as_secs() });
            }
        }
    }

    /// On a fleet instance: validates the keys consoles asked about, each
    /// claimed by this instance only; returns how many were validated.
    /// Blocking store calls: run it off the request path (the fleet's task does).
    pub async fn validate_requested(&self) -> Result<usize, KeyError> {
        if self.validates_through_fleet() {
            return Ok(0); // a console cannot open keys
        }
        let claimed = self.store.claim_key_validations(8)?;
        let n = claimed.len();
        for (id, by) in claimed {
            match self.validate_as(id, &format!("; requested by {by}")).await {
                Ok(v) => tracing::info!(account = %id, status = %v.status, requested_by = %by, "key validated for a console"),
                Err(e) => tracing::warn!(account = %id, error = %e, "cannot validate a key a console asked about"),
            }
        }
        Ok(n)
    }

    /// Sets how long [`KeyService::validate`] waits for the fleet (tests).
    pub fn with_fleet_wait(mut self, wait: Duration) -> Self {
        self.fleet_wait = wait;
        self
    }
}
