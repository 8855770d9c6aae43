//! Pure types and rules of Switchboard: suppliers, tiers, seasons, pricing, quotas,
//! usage, calendar arithmetic, clocks, the secret type and the deterministic random source. No IO, no tokio: everything
//! here is plain data and arithmetic, unit-tested on its own.

pub mod breaker;
pub mod cache;
pub mod calendar;
pub mod clock;
pub mod demo;
pub mod gateway_token;
pub mod health;
pub mod idempotency;
pub mod keypool;
pub mod migration;
pub mod mirror;
pub mod money;
pub mod parallel;
pub mod pricing;
pub mod provider;
pub mod quota;
pub mod ratelimit;
pub mod reporting;
pub mod rng;
pub mod routing;
pub mod schedule;
pub mod season;
pub mod secret;
pub mod supplier;
pub mod supplier_import;
pub mod supplier_query;
pub mod translation;
pub mod usage;

pub use clock::{Clock, ManualClock, SystemClock};
pub use gateway_token::TokenId;
pub use mirror::{MirrorPlan, MirrorPlanError};
pub use money::Micros;
pub use pricing::{ModelPrice, PricingError, PricingTable};
pub use provider::{AccountId, AccountOwner, AzureConfig, ProviderAccount, ProviderKind, ValidationStatus};
pub use quota::{QuotaPolicy, QuotaStatus};
pub use reporting::{AuditQuery, UsageDimension, UsageTotals};
pub use season::SeasonConfig;
pub use secret::Secret;
pub use supplier::{AiMode, NewSupplier, Supplier, SupplierId, Tier, VendorType};
pub use supplier_query::{SupplierFilter, SupplierPatch};
pub use translation::TranslationTables;
pub use usage::{JournalPos, RequestType, Route, TokenUsage, UsageEvent, UsageStatus, new_event_id};

/// A hash map with a fixed fast hash (foldhash) for the small in-memory
/// tables a request reads several times, keyed by the project's own ids and
/// names (never by a client's choice of key, so no flooding attack applies):
/// SipHash, the standard map's, cost ~150 instructions a lookup of an id.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// Reads JSON from bytes as `serde_json::from_slice` does, with the same
/// result and the same error, in fewer instructions for text: valid UTF-8
/// (what clients and providers send) is checked once for the whole body and
/// then read as a `str`, where `from_slice` checks each string it reads on
/// its own (~2,900 instructions for a small chat request and its answer, by
/// callgrind; BENCHMARKS.md). Bytes that are not UTF-8 go to `from_slice`.
pub fn json_from_bytes<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// Error for a value that does not parse into one of the domain's enums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {what}; expected one of: {expected}")]
pub struct ParseEnumError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Implements `as_str`, `Display`, `FromStr` and `ALL` for a fieldless enum whose
/// variants map one-to-one onto stable lowercase names (used in the database,
/// the CLI and the CSV export).
macro_rules! string_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
            /// The variant whose [`Self::as_str`] is exactly `s` (no
            /// normalising, no allocation: for names this build wrote).
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $($name => Some($ty::$variant),)+ _ => None }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = $crate::domain::ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let norm = s.trim().to_ascii_lowercase().replace('-', "_");
                match norm.as_str() {
                    $($name => Ok($ty::$variant),)+
                    _ => Err($crate::domain::ParseEnumError {
                        what: $what,
                        value: s.to_string(),
                        expected: concat!($($name, " "),+),
                    }),
                }
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    use super::json_from_bytes;

    #[test]
    fn json_from_bytes_gives_what_from_slice_gives() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Peek<'a> {
            #[serde(borrow, default)]
            model: std::borrow::Cow<'a, str>,
        }
        let inputs: Vec<&[u8]> = vec![
            br#"{"model":"gpt-4o-mini","usage":{"prompt_tokens":14}}"#,
            br#"{"model":"caf\u00e9 \"quoted\"","x":[1,2.5,null,true]}"#,
            "{\"model\":\"café ☕\"}".as_bytes(),
            br#"{"model":"\ud800"}"#,
            br#"{"model":"gpt-4o-mini","#,
            br#"{"model":17}"#,
            b"",
            b"  ",
            b"{\"model\":\"ok\",\"skipped\":\"\xff\xfe\"}",
            b"{\"model\":\"\xc3\x28\"}",
            b"\xef\xbb\xbf{\"model\":\"bom\"}",
            br#"[1,2,3]"#,
        ];
        for bytes in inputs {
            let ours = json_from_bytes::<serde_json::Value>(bytes).map_err(|e| e.to_string());
            let theirs = serde_json::from_slice::<serde_json::Value>(bytes).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "as a value: {:?}", String::from_utf8_lossy(bytes));
            let ours = json_from_bytes::<Peek<'_>>(bytes).map_err(|e| e.to_string());
            let theirs = serde_json::from_slice::<Peek<'_>>(bytes).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "as a struct: {:?}", String::from_utf8_lossy(bytes));
        }
        // A skipped string that is not UTF-8 does not stop either.
        assert!(json_from_bytes::<Peek<'_>>(b"{\"model\":\"ok\",\"skipped\":\"\xff\"}").is_ok());
    }
}
