//! The pricing table: per-token prices for the models we route, in the shape of
//! LiteLLM's `model_prices_and_context_window.json` (`assets/pricing.json`,
//! with a user override merged over it), and exact cost computation in
//! integer micro-dollars.
//!
//! Prices are converted once, at load, from the file's dollars-per-token into
//! integer pico-dollars per token (1e-12 USD); all sums are integer.

use super::money::Micros;
use super::provider::ProviderKind;
use super::usage::TokenUsage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The table shipped with Switchboard.
pub const BUILTIN_PRICING_JSON: &str = include_str!("../../assets/pricing.json");

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("the pricing file is not valid JSON: {0}. Fix the file or remove it to use the built-in prices.")]
    Json(#[from] serde_json::Error),
    #[error("model '{model}' in the pricing file: {problem}")]
    BadEntry { model: String, problem: String },
}

/// One model's price, in pico-dollars per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    pub input_pico: u64,
    pub output_pico: u64,
    /// Price of a prompt token read from the cache (falls back to input price).
    pub cache_read_pico: u64,
    /// Price of a prompt token written to the cache (falls back to input price).
    pub cache_write_pico: u64,
    pub provider: Option<ProviderKind>,
    pub embedding: bool,
    pub max_input_tokens: Option<u64>,
}

impl ModelPrice {
    /// Exact cost of `usage`, rounded half-up to the micro-dollar.
    pub fn cost(&self, u: &TokenUsage) -> Micros {
        let pico: u128 = u.input as u128 * self.input_pico as u128
            + u.output as u128 * self.output_pico as u128
            + u.cached_read as u128 * self.cache_read_pico as u128
            + u.cache_write as u128 * self.cache_write_pico as u128;
        let micros = (pico + 500_000) / 1_000_000;
        Micros(micros.min(i64::MAX as u128) as i64)
    }
}

#[derive(Debug, Deserialize)]
struct RawEntry {
    input_cost_per_token: Option<f64>,
    output_cost_per_token: Option<f64>,
    cache_read_input_token_cost: Option<f64>,
    cache_creation_input_token_cost: Option<f64>,
    litellm_provider: Option<String>,
    mode: Option<String>,
    max_input_tokens: Option<u64>,
}

fn to_pico(model: &str, field: &str, v: Option<f64>) -> Result<Option<u64>, PricingError> {
    match v {
        None => Ok(None),
        Some(x) if (0.0..1.0).contains(&x) => Ok(Some((x * 1e12).round() as u64)),
        Some(x) => Err(PricingError::BadEntry {
            model: model.to_string(),
            problem: format!("{field} = {x} is not a per-token price in dollars (expected a number from 0 to 1)"),
        }),
    }
}

fn provider_of(s: &str) -> Option<ProviderKind> {
    match s {
        "openai" | "text-completion-openai" => Some(ProviderKind::OpenAi),
        "anthropic" => Some(ProviderKind::Anthropic),
        "azure" | "azure_ai" => Some(ProviderKind::AzureOpenAi),
        _ => None,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PricingTable {
    models: BTreeMap<String, ModelPrice>,
}

impl PricingTable {
    /// The built-in table.
    pub fn builtin() -> Self {
        Self::from_json(BUILTIN_PRICING_JSON).expect("assets/pricing.json is checked by tests")
    }

    /// Parses a LiteLLM-shaped JSON object. Entries that are not model prices
    /// (`sample_spec`, keys starting with `_`) are skipped.
    pub fn from_json(json: &str) -> Result<Self, PricingError> {
        let mut t = Self::default();
        t.merge_json(json)?;
        Ok(t)
    }

    /// Merges a LiteLLM-shaped JSON object over this table, model by model.
    /// A partial entry in the override keeps the fields it does not name.
    pub fn merge_json(&mut self, json: &str) -> Result<(), PricingError> {
        let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)?;
        for (model, value) in raw {
            if model == "sample_spec" || model.starts_with('_') {
                continue;
            }
            let e: RawEntry =
                serde_json::from_value(value).map_err(|e| PricingError::BadEntry { model: model.clone(), problem: e.to_string() })?;
            let old = self.models.get(&model).copied();
            let input = to_pico(&model, "input_cost_per_token", e.input_cost_per_token)?
                .or(old.map(|o| o.input_pico))
                .ok_or_else(|| PricingError::BadEntry { model: model.clone(), problem: "input_cost_per_token is missing".into() })?;
            let output = to_pico(&model, "output_cost_per_token", e.output_cost_per_token)?.or(old.map(|o| o.output_pico)).unwrap_or(0);
            let cache_read = to_pico(&model, "cache_read_input_token_cost", e.cache_read_input_token_cost)?
                .or(old.map(|o| o.cache_read_pico))
                .unwrap_or(input);
            let cache_write = to_pico(&model, "cache_creation_input_token_cost", e.cache_creation_input_token_cost)?
                .or(old.map(|o| o.cache_write_pico))
                .unwrap_or(input);
            let provider = e.litellm_provider.as_deref().and_then(provider_of).or(old.and_then(|o| o.provider));
            let embedding = e.mode.as_deref().map(|m| m == "embedding").or(old.map(|o| o.embedding)).unwrap_or(false);
            let max_input_tokens = e.max_input_tokens.or(old.and_then(|o| o.max_input_tokens));
            self.models.insert(
                model,
                ModelPrice {
                    input_pico: input,
                    output_pico: output,
                    cache_read_pico: cache_read,
                    cache_write_pico: cache_write,
                    provider,
                    embedding,
                    max_input_tokens,
                },
            );
        }
        Ok(())
    }

    /// Looks a model up: the exact name, the name with a provider prefix
    /// (`azure/gpt-4o`), then without one, then the longest known name that a
    /// dated variant starts with (`gpt-4o-2024-08-06` → `gpt-4o`).
    pub fn price(&self, provider: ProviderKind, model: &str) -> Option<&ModelPrice> {
        let bare = model.split_once('/').map(|(_, m)| m).unwrap_or(model);
        if provider == ProviderKind::AzureOpenAi
            && let Some(p) = self.lookup(&format!("azure/{bare}"))
        {
            return Some(p);
        }
        self.lookup(model).or_else(|| self.lookup(bare))
    }

    /// The exact name, else the longest known name that a dated snapshot of it
    /// starts with (`gpt-4o-2024-08-06` → `gpt-4o`).
    fn lookup(&self, name: &str) -> Option<&ModelPrice> {
        if let Some(p) = self.models.get(name) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(known, _)| {
                name.len() > known.len() + 1
                    && name.starts_with(known.as_str())
                    && name[known.len()..].starts_with('-')
                    && name[known.len() + 1..].starts_with(|c: char| c.is_ascii_digit())
            })
            .max_by_key(|(known, _)| known.len())
            .map(|(_, p)| p)
    }

    pub fn cost(&self, provider: ProviderKind, model: &str, usage: &TokenUsage) -> Option<Micros> {
        self.price(provider, model).map(|p| p.cost(usage))
    }

    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.models.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Models offered by a provider (without the `azure/` prefix).
    pub fn models_for(&self, provider: ProviderKind) -> Vec<String> {
        self.models
            .iter()
            .filter(|(_, p)| p.provider == Some(provider))
            .map(|(k, _)| k.split_once('/').map(|(_, m)| m).unwrap_or(k).to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, cached_read: u64, cache_write: u64) -> TokenUsage {
        TokenUsage { input, output, cached_read, cache_write, reasoning: 0, estimated: false }
    }

    #[test]
    fn builtin_table_loads_with_required_models() {
        let t = PricingTable::builtin();
        for m in ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small", "claude-sonnet-4-5", "claude-haiku-4-5"] {
            assert!(t.models().any(|(k, _)| k == m), "{m} missing");
        }
        let p = t.price(ProviderKind::OpenAi, "gpt-4o").unwrap();
        assert_eq!(p.input_pico, 2_500_000);
        assert_eq!(p.output_pico, 10_000_000);
        assert_eq!(p.cache_read_pico, 1_250_000);
        assert_eq!(p.cache_write_pico, 2_500_000);
    }

    #[test]
    fn hand_computed_costs() {
        let t = PricingTable::builtin();
        // gpt-4o: 1000 in × $2.50/M + 500 out × $10/M = 2500 + 5000 µ$
        assert_eq!(t.cost(ProviderKind::OpenAi, "gpt-4o", &usage(1000, 500, 0, 0)), Some(Micros(7_500)));
        // cached: 200 fresh + 800 cached × $1.25/M = 500 + 1000, plus 100 out = 1000
        assert_eq!(t.cost(ProviderKind::OpenAi, "gpt-4o", &usage(200, 100, 800, 0)), Some(Micros(2_500)));
        // claude-sonnet-4-5: 100 in ×3 + 1000 cache write ×3.75 + 2000 read ×0.3 + 50 out ×15
        // = 300 + 3750 + 600 + 750 = 5400 µ$
        assert_eq!(t.cost(ProviderKind::Anthropic, "claude-sonnet-4-5", &usage(100, 50, 2000, 1000)), Some(Micros(5_400)));
        // Half-up rounding: 1 token of gpt-4o-mini input = 0.15 µ$ → 0; 4 tokens = 0.6 → 1.
        assert_eq!(t.cost(ProviderKind::OpenAi, "gpt-4o-mini", &usage(1, 0, 0, 0)), Some(Micros(0)));
        assert_eq!(t.cost(ProviderKind::OpenAi, "gpt-4o-mini", &usage(4, 0, 0, 0)), Some(Micros(1)));
    }

    #[test]
    fn lookup_handles_azure_prefix_and_dated_snapshots() {
        let t = PricingTable::builtin();
        let az = t.price(ProviderKind::AzureOpenAi, "gpt-4o-mini").unwrap();
        assert_eq!(az.input_pico, 165_000);
        assert_eq!(t.price(ProviderKind::OpenAi, "gpt-4o-2024-08-06").unwrap().input_pico, 2_500_000);
        assert_eq!(t.price(ProviderKind::OpenAi, "gpt-4o-mini-2024-07-18").unwrap().input_pico, 150_000);
        // Azure reports dated names too; they keep Azure's price.
        assert_eq!(t.price(ProviderKind::AzureOpenAi, "gpt-4o-mini-2024-07-18").unwrap().input_pico, 165_000);
        assert!(t.price(ProviderKind::OpenAi, "gpt-4o-turbo").is_none());
        assert!(t.price(ProviderKind::OpenAi, "nope").is_none());
    }

    #[test]
    fn override_merges_model_by_model() {
        let mut t = PricingTable::builtin();
        t.merge_json(r#"{"gpt-4o": {"input_cost_per_token": 2e-06}, "my-model": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "litellm_provider": "openai"}}"#)
            .unwrap();
        let p = t.price(ProviderKind::OpenAi, "gpt-4o").unwrap();
        assert_eq!(p.input_pico, 2_000_000);
        assert_eq!(p.output_pico, 10_000_000, "fields not named keep their value");
        assert!(t.price(ProviderKind::OpenAi, "my-model").is_some());
    }

    #[test]
    fn bad_override_says_what_is_wrong() {
        let mut t = PricingTable::builtin();
        let e = t.merge_json(r#"{"x": {"input_cost_per_token": 5}}"#).unwrap_err().to_string();
        assert!(e.contains("model 'x'") && e.contains("input_cost_per_token"), "{e}");
        assert!(PricingTable::from_json("{").is_err());
    }
}
