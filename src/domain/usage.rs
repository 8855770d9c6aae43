//! Request types, routes, token usage and the usage event: one row per
//! provider attempt in the ledger, keyed by its own event id
//! ([`new_event_id`]), with the client's tracing id and idempotency key
//! carried beside it.

use super::money::Micros;
use super::provider::{AccountId, ProviderKind};
use super::string_enum;
use super::supplier::SupplierId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestType {
    EmailTemplate,
    ImageAnalysis,
    Embedding,
    WeddingContent,
}
string_enum!(RequestType, "request type", {
    EmailTemplate => "email_template",
    ImageAnalysis => "image_analysis",
    Embedding => "embedding",
    WeddingContent => "wedding_content",
});

/// Which side served a request, as recorded on its usage event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    /// WedSync's accounts; counts against the tier quota.
    Platform,
    /// The supplier's own account; billed by the supplier's provider.
    Client,
    /// Served by a fallback account because the normal route was down.
    Failover,
    /// Served by the new route of a running migration.
    Migration,
    /// A mirrored copy for a parallel test; never billed to the supplier's quota.
    Shadow,
    /// Answered from Switchboard's response cache (`engine::cache`): no
    /// provider call, no provider cost; the row's `saved` is what the
    /// original call cost. Counts against the platform quota only if
    /// [`crate::domain::cache::HITS_COUNT_AGAINST_QUOTA`] says so (it does not).
    Cache,
}
string_enum!(Route, "route", {
    Platform => "platform",
    Client => "client",
    Failover => "failover",
    Migration => "migration",
    Shadow => "shadow",
    Cache => "cache",
});

impl Route {
    /// Stable small integer used in the ledger's compact columns.
    pub fn code(self) -> i64 {
        self as i64
    }
    pub fn from_code(c: i64) -> Option<Route> {
        Route::ALL.get(usize::try_from(c).ok()?).copied()
    }
    /// Whether a row on this route counts against the supplier's platform
    /// quota: platform and failover (failover always lands on platform AI),
    /// and cache hits only under [`crate::domain::cache::HITS_COUNT_AGAINST_QUOTA`].
    pub fn counts_against_quota(self) -> bool {
        match self {
            Route::Platform | Route::Failover => true,
            Route::Cache => super::cache::HITS_COUNT_AGAINST_QUOTA,
            Route::Client | Route::Migration | Route::Shadow => false,
        }
    }
}

impl RequestType {
    pub fn code(self) -> i64 {
        self as i64
    }
    pub fn from_code(c: i64) -> Option<RequestType> {
        RequestType::ALL.get(usize::try_from(c).ok()?).copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageStatus {
    Ok,
    Error,
    /// The client went away before the answer was complete (a stream cut
    /// upstream when its client hung up).
    Cancelled,
    /// The provider answered in full, but the client had gone away before
    /// the answer could be sent (a plain request runs to completion on its
    /// own task whatever the client does). Billed and counted like `Ok`.
    ClientGone,
}
string_enum!(UsageStatus, "usage status", {
    Ok => "ok",
    Error => "error",
    Cancelled => "cancelled",
    ClientGone => "client_gone",
});

impl UsageStatus {
    pub fn code(self) -> i64 {
        self as i64
    }
    pub fn from_code(c: i64) -> Option<UsageStatus> {
        UsageStatus::ALL.get(usize::try_from(c).ok()?).copied()
    }
    /// Whether the provider answered in full (`Ok`, or `ClientGone`: the
    /// client was no longer there to take it). The others count as errors
    /// in the rollups.
    pub fn answered(self) -> bool {
        matches!(self, UsageStatus::Ok | UsageStatus::ClientGone)
    }
}

/// Token counts normalised across providers:
/// - `input` is every prompt token *not* read from or written to the cache,
/// - `cached_read` and `cache_write` are the prompt tokens served from / written to the cache,
/// - `output` includes `reasoning` (reasoning tokens are priced as output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub cached_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
    /// True when counted by our tokenizer because the provider's figure never arrived.
    pub estimated: bool,
}

impl TokenUsage {
    /// Every token that counts against a platform quota.
    /// Saturating: the figures come from providers.
    pub fn total(&self) -> u64 {
        self.prompt_total().saturating_add(self.output)
    }
    pub fn prompt_total(&self) -> u64 {
        self.input.saturating_add(self.cached_read).saturating_add(self.cache_write)
    }
}

/// One provider attempt's record in the usage ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// Unique per usage row, across processes ([`new_event_id`]; rows
    /// written before schema v8 keep their old request id here): the
    /// ledger's deduplication key, so a retried write never counts twice.
    /// A live-traffic mirror's copy has `m<mirror>~<original event id>`.
    pub event_id: String,
    /// The client's tracing id (`X-Request-Id`), or one the router made up:
    /// echoed and logged, never used to deduplicate.
    pub request_id: String,
    /// The `Idempotency-Key` header's value, if the client sent one (per supplier).
    pub idempotency_key: Option<String>,
    pub ts: DateTime<Utc>,
    pub supplier_id: SupplierId,
    pub account_id: Option<AccountId>,
    pub provider: ProviderKind,
    pub model: String,
    pub request_type: RequestType,
    pub route: Route,
    pub usage: TokenUsage,
    pub cost: Micros,
    /// What this row saved: on a cache hit ([`Route::Cache`]), the provider
    /// cost of the call whose answer was replayed; zero otherwise.
    #[serde(default)]
    pub saved: Micros,
    pub latency_ms: u32,
    pub status: UsageStatus,
    pub error_class: Option<String>,
}

impl UsageEvent {
    /// Whether this event counts against the supplier's platform quota.
    pub fn counts_against_quota(&self) -> bool {
        // Failover always lands on platform AI (failover between a supplier's
        // own accounts is recorded as Client by the router).
        self.route.counts_against_quota()
    }
}

/// A place in a usage journal (see `engine::ledger::journal`): a segment's
/// number and a byte offset in it, ordered by segment, then offset. The fold's
/// watermark is one: every record before it is in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct JournalPos {
    pub segment: u64,
    pub offset: u64,
}

/// A new event id: a UUIDv7 in its usual text form, from Unix milliseconds
/// `unix_ms` (48 bits, so ids sort by time) and 74 random bits from
/// `random` — unique across processes and machines without coordination.
pub fn new_event_id(unix_ms: i64, random: [u8; 10]) -> String {
    let ms = (unix_ms.max(0) as u64) & 0xFFFF_FFFF_FFFF;
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..].copy_from_slice(&random);
    b[6] = 0x70 | (b[6] & 0x0F); // version 7
    b[8] = 0x80 | (b[8] & 0x3F); // RFC 9562 variant
    // One allocation (this runs once per provider call).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 0x0F)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for r in Route::ALL {
            assert_eq!(Route::from_code(r.code()), Some(*r));
        }
        for r in RequestType::ALL {
            assert_eq!(RequestType::from_code(r.code()), Some(*r));
        }
        for s in UsageStatus::ALL {
            assert_eq!(UsageStatus::from_code(s.code()), Some(*s));
        }
        assert_eq!(Route::from_code(99), None);
        assert_eq!(Route::from_code(-1), None);
    }

    #[test]
    fn event_ids_are_uuid_v7_ordered_by_time() {
        let a = new_event_id(1_700_000_000_000, [0xFF; 10]);
        let b = new_event_id(1_700_000_000_001, [0x00; 10]);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7", "version nibble: {a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "variant: {a}");
        assert!(a < b, "later milliseconds sort later: {a} {b}");
        assert_eq!(&a[..13], "018bcfe5-6800");
        assert_ne!(new_event_id(5, [1; 10]), new_event_id(5, [2; 10]));
        let every_nibble = new_event_id(0x0123_4567_89AB, [0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]);
        assert_eq!(every_nibble, "01234567-89ab-7def-8123-456789abcdef");
        // Negative times (a broken clock) do not panic.
        assert!(new_event_id(-1, [0; 10]).starts_with("00000000-0000-7"));
    }

    #[test]
    fn totals() {
        let u = TokenUsage { input: 10, output: 5, cached_read: 3, cache_write: 2, reasoning: 4, estimated: false };
        assert_eq!(u.total(), 20);
        assert_eq!(u.prompt_total(), 15);
        let huge = TokenUsage { input: u64::MAX, output: u64::MAX, cached_read: 1, cache_write: 1, reasoning: 0, estimated: false };
        assert_eq!((huge.total(), huge.prompt_total()), (u64::MAX, u64::MAX));
    }
}
