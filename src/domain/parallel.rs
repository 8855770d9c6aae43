//! Parallel tests' pure data: the progress of a running test and one side of
//! its report (the engine runs the test, `engine::parallel`).

use crate::domain::{AccountId, Micros, ProviderKind, SupplierId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SideReport {
    pub label: String,
    pub account_id: AccountId,
    pub provider: ProviderKind,
    pub model: String,
    pub requests: u32,
    pub successes: u32,
    pub p50_ms: u32,
    pub p95_ms: u32,
    pub avg_input_tokens: u64,
    pub avg_output_tokens: u64,
    pub cost_per_request: Micros,
    /// The supplier's last 30 days of tokens priced on this route's model.
    pub projected_monthly_cost: Micros,
    pub errors: Vec<String>,
}

impl SideReport {
    pub fn success_percent(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.successes as f64 * 100.0 / self.requests as f64 }
    }
}

/// How far a running parallel test is: prompts answered by both routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParallelProgress {
    pub supplier: SupplierId,
    pub done: u32,
    pub total: u32,
}
