//! Request types, routes, token usage and the usage event: one row per request
//! in the ledger.

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
}
string_enum!(Route, "route", {
    Platform => "platform",
    Client => "client",
    Failover => "failover",
    Migration => "migration",
    Shadow => "shadow",
});

impl Route {
    /// Stable small integer used in the ledger's compact columns.
    pub fn code(self) -> i64 {
        self as i64
    }
    pub fn from_code(c: i64) -> Option<Route> {
        Route::ALL.get(usize::try_from(c).ok()?).copied()
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
    /// The client went away before the answer was complete.
    Cancelled,
}
string_enum!(UsageStatus, "usage status", {
    Ok => "ok",
    Error => "error",
    Cancelled => "cancelled",
});

impl UsageStatus {
    pub fn code(self) -> i64 {
        self as i64
    }
    pub fn from_code(c: i64) -> Option<UsageStatus> {
        UsageStatus::ALL.get(usize::try_from(c).ok()?).copied()
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

/// One request's record in the usage ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// Unique per request: makes the ledger write idempotent.
    pub request_id: String,
    pub ts: DateTime<Utc>,
    pub supplier_id: SupplierId,
    pub account_id: Option<AccountId>,
    pub provider: ProviderKind,
    pub model: String,
    pub request_type: RequestType,
    pub route: Route,
    pub usage: TokenUsage,
    pub cost: Micros,
    pub latency_ms: u32,
    pub status: UsageStatus,
    pub error_class: Option<String>,
}

impl UsageEvent {
    /// Whether this event counts against the supplier's platform quota.
    pub fn counts_against_quota(&self) -> bool {
        // Failover always lands on platform AI (failover between a supplier's
        // own accounts is recorded as Client by the router).
        matches!(self.route, Route::Platform | Route::Failover)
    }
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
    fn totals() {
        let u = TokenUsage { input: 10, output: 5, cached_read: 3, cache_write: 2, reasoning: 4, estimated: false };
        assert_eq!(u.total(), 20);
        assert_eq!(u.prompt_total(), 15);
        let huge = TokenUsage { input: u64::MAX, output: u64::MAX, cached_read: 1, cache_write: 1, reasoning: 0, estimated: false };
        assert_eq!((huge.total(), huge.prompt_total()), (u64::MAX, u64::MAX));
    }
}
