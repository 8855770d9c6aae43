//! Idempotency keys' pure rules, after Stripe's idempotent requests: what an
//! `Idempotency-Key` may be ([`IdempotencyKey`]), the fingerprint of the
//! request it was first used with ([`Fingerprint`], SHA-256 of the body bytes,
//! and the endpoint), the small record kept per (supplier, key) for 24 hours
//! ([`KeyRecord`]), and what a request that brings a known key gets
//! ([`decide`]): a new attempt, the stored answer, or a refusal (in flight,
//! outcome unknown after a crash, a different body, an answer not kept).
//!
//! Which answers are kept is decided here too ([`keeps`]): only successful
//! (2xx) answers complete a key. Every error answer leaves the key retryable:
//! providers bill no error, so a retry can never pay twice for an answer the
//! client already has (Stripe also keeps its 4xx results, because a declined
//! charge is itself a side effect; here the only side effect is a paid answer).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Longest key accepted (Stripe's limit).
pub const MAX_KEY_LEN: usize = 255;

/// A validated `Idempotency-Key`: 1 to [`MAX_KEY_LEN`] printable ASCII
/// characters (space to `~`), not starting or ending with a space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

/// Why a header value is not a usable idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the Idempotency-Key header is empty; send a unique key (a UUID, for example) or leave the header out")]
    Empty,
    #[error("the Idempotency-Key header is {len} characters long; keys may have at most {MAX_KEY_LEN}")]
    TooLong { len: usize },
    #[error(
        "the Idempotency-Key header may contain only printable ASCII characters (letters, digits, punctuation, inner spaces); a UUID is a good key"
    )]
    NotPrintable,
    #[error("send one Idempotency-Key header, not several")]
    Repeated,
}

impl IdempotencyKey {
    /// Validates a header value's raw bytes.
    pub fn parse(raw: &[u8]) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong { len: raw.len() });
        }
        let printable = raw.iter().all(|b| (0x20..=0x7e).contains(b));
        if !printable || raw.first() == Some(&b' ') || raw.last() == Some(&b' ') {
            return Err(KeyError::NotPrintable);
        }
        // Printable ASCII is UTF-8.
        Ok(IdempotencyKey(raw.iter().map(|&b| b as char).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The endpoint a key was used on (a key used for chat cannot be replayed
/// for embeddings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Embeddings,
    /// Anthropic's Messages (`/v1/messages`).
    Messages,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Messages => "/v1/messages",
        }
    }
    /// The code stored in the database.
    pub fn code(self) -> i64 {
        match self {
            Endpoint::ChatCompletions => 0,
            Endpoint::Embeddings => 1,
            Endpoint::Messages => 2,
        }
    }
    pub fn from_code(c: i64) -> Option<Self> {
        match c {
            0 => Some(Endpoint::ChatCompletions),
            1 => Some(Endpoint::Embeddings),
            2 => Some(Endpoint::Messages),
            _ => None,
        }
    }
}

/// SHA-256 of a request body's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(body: &[u8]) -> Self {
        Fingerprint(Sha256::digest(body).into())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", hex::encode(&self.0[..8]))
    }
}

/// Where a key's first attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Sent on its way (the record is written before the provider is called).
    InFlight,
    /// Answered successfully; the answer is replayed.
    Completed,
    /// Answered with an error, or a stream was cut: the key may be retried.
    Failed,
}

impl KeyState {
    pub fn code(self) -> i64 {
        match self {
            KeyState::InFlight => 0,
            KeyState::Completed => 1,
            KeyState::Failed => 2,
        }
    }
    pub fn from_code(c: i64) -> Option<Self> {
        match c {
            0 => Some(KeyState::InFlight),
            1 => Some(KeyState::Completed),
            2 => Some(KeyState::Failed),
            _ => None,
        }
    }
}

/// Whether a completed key's answer body can still be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// No answer (in flight or failed).
    None,
    Kept,
    /// Larger than the cap per answer: never kept.
    TooLarge,
    /// Kept, then dropped to stay under the total cap (oldest first).
    Evicted,
}

impl BodyState {
    pub fn code(self) -> i64 {
        match self {
            BodyState::None => 0,
            BodyState::Kept => 1,
            BodyState::TooLarge => 2,
            BodyState::Evicted => 3,
        }
    }
    pub fn from_code(c: i64) -> Option<Self> {
        match c {
            0 => Some(BodyState::None),
            1 => Some(BodyState::Kept),
            2 => Some(BodyState::TooLarge),
            3 => Some(BodyState::Evicted),
            _ => None,
        }
    }
}

/// The small record kept per (supplier, key); the answer's bytes are kept
/// beside it while [`BodyState::Kept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub endpoint: Endpoint,
    pub fingerprint: Fingerprint,
    pub state: KeyState,
    /// The answer's HTTP status (completed or failed).
    pub status: Option<u16>,
    /// The answering request's id (what `x-request-id` said).
    pub request_id: Option<String>,
    pub body: BodyState,
    pub created_at: DateTime<Utc>,
    /// In flight: until when the attempt may still be running somewhere
    /// (its process crashed or stopped otherwise, see [`Decision::OutcomeUnknown`]).
    pub lease_until: DateTime<Utc>,
    /// The record is forgotten from then on (24 hours after the attempt began).
    pub expires_at: DateTime<Utc>,
}

/// What a request bringing a key gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A new attempt (a key not seen, expired, failed or abandoned).
    Run,
    /// The stored answer, without a provider call.
    Replay,
    /// 409: the first request with this key is still being served.
    InFlight,
    /// 409: a request with this key was in flight when its process stopped;
    /// it may still be running at the provider until `until`, after which the
    /// key may be retried.
    OutcomeUnknown { until: DateTime<Utc> },
    /// 422: the key was used with another body or on another endpoint.
    Mismatch { endpoint: Endpoint },
    /// 409: the first request was answered (and billed) but its answer is not
    /// kept any more (or was too large to keep).
    NotKept(BodyState),
}

/// What a request with `fingerprint` on `endpoint` gets, given the key's
/// record (if any) at `now`. `live`: whether this process is serving the
/// key's attempt right now.
pub fn decide(record: Option<&KeyRecord>, live: bool, endpoint: Endpoint, fingerprint: &Fingerprint, now: DateTime<Utc>) -> Decision {
    let Some(r) = record.filter(|r| now < r.expires_at) else {
        return if live { Decision::InFlight } else { Decision::Run };
    };
    if r.endpoint != endpoint || r.fingerprint != *fingerprint {
        return Decision::Mismatch { endpoint: r.endpoint };
    }
    if live {
        return Decision::InFlight;
    }
    match r.state {
        KeyState::InFlight if now < r.lease_until => Decision::OutcomeUnknown { until: r.lease_until },
        KeyState::InFlight | KeyState::Failed => Decision::Run,
        KeyState::Completed => match r.body {
            BodyState::Kept => Decision::Replay,
            other => Decision::NotKept(other),
        },
    }
}

/// Whether an answer with `status` completes its key (and is replayed); any
/// other answer leaves the key retryable (see the module docs).
pub fn keeps(status: u16) -> bool {
    (200..300).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 10, 12, 0, 0).unwrap()
    }

    fn rec(state: KeyState, body: BodyState) -> KeyRecord {
        KeyRecord {
            endpoint: Endpoint::ChatCompletions,
            fingerprint: Fingerprint::of(b"{\"a\":1}"),
            state,
            status: Some(200),
            request_id: Some("sb-1".into()),
            body,
            created_at: t0(),
            lease_until: t0() + Duration::minutes(10),
            expires_at: t0() + Duration::hours(24),
        }
    }

    #[test]
    fn keys_are_printable_ascii_up_to_255() {
        assert_eq!(IdempotencyKey::parse(b"order-42 retry#1").unwrap().as_str(), "order-42 retry#1");
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert_eq!(IdempotencyKey::parse(&[b'k'; 256]), Err(KeyError::TooLong { len: 256 }));
        assert_eq!(IdempotencyKey::parse(b""), Err(KeyError::Empty));
        for bad in [&b"tab\there"[..], b"caf\xc3\xa9", b"nul\0", b" lead", b"trail ", b"del\x7f"] {
            assert_eq!(IdempotencyKey::parse(bad), Err(KeyError::NotPrintable), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_are_the_bodys_sha256() {
        assert_eq!(hex::encode(Fingerprint::of(b"abc").0), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(Fingerprint::of(b"{\"a\":1}"), Fingerprint::of(b"{\"a\": 1}"));
    }

    #[test]
    fn a_new_or_expired_key_runs_and_a_live_one_is_in_flight() {
        let fp = Fingerprint::of(b"{\"a\":1}");
        let chat = Endpoint::ChatCompletions;
        assert_eq!(decide(None, false, chat, &fp, t0()), Decision::Run);
        assert_eq!(decide(None, true, chat, &fp, t0()), Decision::InFlight);
        let done = rec(KeyState::Completed, BodyState::Kept);
        assert_eq!(decide(Some(&done), false, chat, &fp, t0() + Duration::hours(23)), Decision::Replay);
        // 24 hours on, the record is forgotten: even another body runs.
        let later = t0() + Duration::hours(24);
        assert_eq!(decide(Some(&done), false, chat, &Fingerprint::of(b"other"), later), Decision::Run);
    }

    #[test]
    fn a_different_body_or_endpoint_is_a_mismatch_in_every_state() {
        let other = Fingerprint::of(b"{\"a\":2}");
        let same = Fingerprint::of(b"{\"a\":1}");
        for state in [KeyState::InFlight, KeyState::Completed, KeyState::Failed] {
            let r = rec(state, BodyState::Kept);
            for live in [false, true] {
                assert_eq!(
                    decide(Some(&r), live, Endpoint::ChatCompletions, &other, t0()),
                    Decision::Mismatch { endpoint: Endpoint::ChatCompletions }
                );
            }
            assert_eq!(
                decide(Some(&r), false, Endpoint::Embeddings, &same, t0()),
                Decision::Mismatch { endpoint: Endpoint::ChatCompletions }
            );
        }
    }

    #[test]
    fn completed_keys_replay_while_their_body_is_kept() {
        let fp = Fingerprint::of(b"{\"a\":1}");
        let chat = Endpoint::ChatCompletions;
        for (body, want) in [
            (BodyState::Kept, Decision::Replay),
            (BodyState::Evicted, Decision::NotKept(BodyState::Evicted)),
            (BodyState::TooLarge, Decision::NotKept(BodyState::TooLarge)),
        ] {
            assert_eq!(decide(Some(&rec(KeyState::Completed, body)), false, chat, &fp, t0()), want);
        }
    }

    #[test]
    fn failed_keys_retry_and_abandoned_ones_only_after_their_lease() {
        let fp = Fingerprint::of(b"{\"a\":1}");
        let chat = Endpoint::ChatCompletions;
        assert_eq!(decide(Some(&rec(KeyState::Failed, BodyState::None)), false, chat, &fp, t0()), Decision::Run);
        let orphan = rec(KeyState::InFlight, BodyState::None);
        let until = orphan.lease_until;
        assert_eq!(decide(Some(&orphan), false, chat, &fp, t0() + Duration::minutes(9)), Decision::OutcomeUnknown { until });
        assert_eq!(decide(Some(&orphan), false, chat, &fp, until), Decision::Run);
        assert_eq!(decide(Some(&orphan), true, chat, &fp, t0()), Decision::InFlight);
    }

    #[test]
    fn only_successful_answers_complete_a_key() {
        assert!(keeps(200) && keeps(201));
        for s in [400, 404, 409, 422, 429, 500, 502, 503, 504] {
            assert!(!keeps(s), "{s}");
        }
    }
}
