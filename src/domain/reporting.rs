//! What the usage reports and the audit log search work with, shared by the
//! store's queries, the analytics engine, the console layer and its views:
//! summed usage measures ([`UsageTotals`], money as [`Micros`]), the
//! dimension a usage breakdown groups by, and an audit log search.

use crate::domain::{Micros, SupplierId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Summed usage measures. Money is integer micro-dollars, tokens integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost: Micros,
    pub latency_ms_sum: u64,
}

impl UsageTotals {
    /// Every token that counts against a quota (prompt incl. cache reads and
    /// writes, plus output; the same definition as `TokenUsage::total`).
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.cached_tokens).saturating_add(self.cache_write_tokens).saturating_add(self.output_tokens)
    }

    pub fn add(&mut self, o: &UsageTotals) {
        self.requests = self.requests.saturating_add(o.requests);
        self.errors = self.errors.saturating_add(o.errors);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(o.cached_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(o.reasoning_tokens);
        self.cost += o.cost;
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(o.latency_ms_sum);
    }

    /// `self - o`, saturating at zero (used for "other" series).
    pub fn minus(&self, o: &UsageTotals) -> UsageTotals {
        UsageTotals {
            requests: self.requests.saturating_sub(o.requests),
            errors: self.errors.saturating_sub(o.errors),
            input_tokens: self.input_tokens.saturating_sub(o.input_tokens),
            output_tokens: self.output_tokens.saturating_sub(o.output_tokens),
            cached_tokens: self.cached_tokens.saturating_sub(o.cached_tokens),
            cache_write_tokens: self.cache_write_tokens.saturating_sub(o.cache_write_tokens),
            reasoning_tokens: self.reasoning_tokens.saturating_sub(o.reasoning_tokens),
            cost: self.cost - o.cost,
            latency_ms_sum: self.latency_ms_sum.saturating_sub(o.latency_ms_sum),
        }
    }
}

/// What a usage breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum UsageDimension {
    Provider,
    Model,
    Route,
    RequestType,
    VendorType,
    /// One supplier (its name now).
    Supplier,
}

impl UsageDimension {
    pub const ALL: [UsageDimension; 6] = [
        UsageDimension::Provider,
        UsageDimension::Model,
        UsageDimension::Route,
        UsageDimension::RequestType,
        UsageDimension::VendorType,
        UsageDimension::Supplier,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UsageDimension::Provider => "Provider",
            UsageDimension::Model => "Model",
            UsageDimension::Route => "Route",
            UsageDimension::RequestType => "Request type",
            UsageDimension::VendorType => "Vendor type",
            UsageDimension::Supplier => "Supplier",
        }
    }
}

/// Which audit entries to show. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// A supplier id, or a case-insensitive part of a supplier's name.
    pub supplier: Option<String>,
    /// Prefix of the action, e.g. `supplier.` or `supplier.edit`.
    pub action_prefix: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: u32,
}

/// Group rows instead of one row per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Day,
    Month,
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" => Ok(GroupBy::Day),
            "month" => Ok(GroupBy::Month),
            _ => Err(format!("'{s}' is not a grouping; use day or month")),
        }
    }
}

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportOptions {
    /// First UTC day, inclusive.
    pub from: NaiveDate,
    /// Last UTC day, inclusive.
    pub to: NaiveDate,
    pub supplier: Option<SupplierId>,
    pub group_by: Option<GroupBy>,
    pub out: PathBuf,
    /// Replace an existing file.
    pub force: bool,
}
