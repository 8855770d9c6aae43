//! What the demo-history generator is asked for and what it wrote (the
//! generator itself is `engine::demo`).

use chrono::{DateTime, NaiveDate, Utc};

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub suppliers: u32,
    pub days: u32,
    pub seed: u64,
    /// The last day of history (inclusive). Weddings extend 180 days beyond it.
    pub until: NaiveDate,
    /// Average daily usage in peak months relative to off-season months.
    pub peak_factor: f64,
    /// Growth of daily usage from the first to the last day of history (0.3 = +30 %).
    pub yearly_growth: f64,
    /// Usage multiplier on a wedding day and the two days before it (1.0 = no wedding effect).
    pub wedding_boost: f64,
    /// Base URL of the provider simulator the demo accounts point at.
    pub sim_base_url: String,
    /// Whether platform AI requests over a supplier's monthly quota are
    /// refused, as the gateway refuses them (recorded as `quota_exceeded`
    /// errors without tokens; on the supplier's wedding days they go
    /// through). Off, the history follows the generator's pattern alone.
    pub enforce_quotas: bool,
    /// When the generated history ends: the last day's usage stops here (no
    /// request is dated after it), and the health history (the charts of the
    /// Health view: latency and errors of every account, with the incidents
    /// below) runs up to it. The console's demo passes the moment it starts.
    /// `None`: the last day's usage is whole, and no health history is written.
    pub history_until: Option<DateTime<Utc>>,
}

impl DemoConfig {
    pub fn new(suppliers: u32, days: u32, seed: u64, until: NaiveDate) -> Self {
        Self {
            suppliers,
            days,
            seed,
            until,
            peak_factor: 2.2,
            yearly_growth: 0.3,
            wedding_boost: 1.8,
            sim_base_url: "http://127.0.0.1:4490".into(),
            enforce_quotas: true,
            history_until: None,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoSummary {
    pub suppliers: u32,
    pub weddings: u32,
    pub accounts: u32,
    pub usage_events: u64,
    pub incidents: u32,
}
