//! Provider kinds and provider accounts. An account belongs to the platform or to
//! one supplier and refers to its key in the OS keychain; it never holds the key.

use super::string_enum;
use super::supplier::SupplierId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub i64);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    AzureOpenAi,
}
string_enum!(ProviderKind, "provider", {
    OpenAi => "openai",
    Anthropic => "anthropic",
    AzureOpenAi => "azure_openai",
});

impl ProviderKind {
    pub fn display_name(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "OpenAI",
            ProviderKind::Anthropic => "Anthropic",
            ProviderKind::AzureOpenAi => "Azure OpenAI",
        }
    }

    /// The public API base URL used when an account does not set its own.
    /// Azure has none: each resource has its own endpoint.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::AzureOpenAi => None,
        }
    }
}

/// Who owns (and pays for) a provider account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "supplier_id")]
pub enum AccountOwner {
    Platform,
    Supplier(SupplierId),
}

impl AccountOwner {
    pub fn supplier(self) -> Option<SupplierId> {
        match self {
            AccountOwner::Platform => None,
            AccountOwner::Supplier(s) => Some(s),
        }
    }
}

impl std::fmt::Display for AccountOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountOwner::Platform => f.write_str("platform"),
            AccountOwner::Supplier(s) => write!(f, "supplier {s}"),
        }
    }
}

/// Azure OpenAI needs a deployment name and an api-version on top of the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AzureConfig {
    pub deployment: String,
    pub api_version: String,
}

/// The last live validation of an account's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidationStatus {
    Valid,
    InvalidKey,
    NoPermission,
    RateLimited,
    QuotaExhausted,
    /// No connection could be made (DNS, refused, TLS).
    Unreachable,
    /// The provider answered, with an error of its own (a 5xx, an overload, an unreadable answer).
    ServerError,
    /// The provider did not answer in time.
    Timeout,
}
string_enum!(ValidationStatus, "validation status", {
    Valid => "valid",
    InvalidKey => "invalid_key",
    NoPermission => "no_permission",
    RateLimited => "rate_limited",
    QuotaExhausted => "quota_exhausted",
    Unreachable => "unreachable",
    ServerError => "server_error",
    Timeout => "timeout",
});

/// A provider account as stored: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAccount {
    pub id: AccountId,
    pub owner: AccountOwner,
    pub provider: ProviderKind,
    pub label: String,
    /// Base URL of the API (for Azure, the resource endpoint).
    pub base_url: String,
    pub azure: Option<AzureConfig>,
    /// The model requests are served with when the caller's model is not offered here.
    pub default_model: String,
    /// The keychain entry's name for this account's key (not the key).
    pub key_ref: Option<String>,
    /// Masked fingerprint such as `sk-…a1b2`.
    pub key_fingerprint: Option<String>,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub last_validation: Option<ValidationStatus>,
    pub last_validation_message: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A masked fingerprint of a secret: a recognisable prefix and the last four
/// characters, e.g. `sk-…a1b2`, `sk-ant-…9f3c`, `sbk_…77aa`. Never more than 4
/// characters of the secret's tail; short secrets show only the prefix.
pub fn fingerprint(secret: &str) -> String {
    let s = secret.trim();
    let prefix = ["sk-ant-", "sk-proj-", "sk-", "sbk_"].into_iter().find(|p| s.starts_with(p)).unwrap_or("");
    let tail: String = if s.chars().count() >= prefix.chars().count() + 12 {
        let chars: Vec<char> = s.chars().collect();
        chars[chars.len() - 4..].iter().collect()
    } else {
        String::new()
    };
    format!("{prefix}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_show_prefix_and_last_four_only() {
        assert_eq!(fingerprint("sk-abcdefghijklmnopqrstuvwxyza1b2"), "sk-…a1b2");
        assert_eq!(fingerprint("sk-ant-api03-xxxxxxxxxxxxxxxxxxx9f3c"), "sk-ant-…9f3c");
        assert_eq!(fingerprint("0123456789abcdef0123456789abcdef"), "…cdef");
        assert_eq!(fingerprint("sk-short"), "sk-…");
    }

    #[test]
    fn provider_names_round_trip() {
        for p in ProviderKind::ALL {
            assert_eq!(p.as_str().parse::<ProviderKind>().unwrap(), *p);
        }
        assert_eq!("azure-openai".parse::<ProviderKind>().unwrap(), ProviderKind::AzureOpenAi);
    }
}

/// What `key add` needs besides the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub owner: AccountOwner,
    pub provider: ProviderKind,
    /// Default: `"<Provider> (<owner>)"`.
    pub label: Option<String>,
    /// Default: the provider's public API; required for Azure (the resource endpoint).
    pub base_url: Option<String>,
    /// Default: a cheap model of the provider (Azure: the deployment's name).
    pub default_model: Option<String>,
    /// Azure only (required there).
    pub azure: Option<AzureConfig>,
}
