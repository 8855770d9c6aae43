//! The pricing table: per-token prices for the models we route, in the shape of
//! LiteLLM's `model_prices_and_context_window.json` (`assets/pricing.json`,
//! with a user override merged over it), and exact cost computation in
//! integer micro-dollars.
//!
//! Prices are converted once, at load, from the file's dollars-per-token into
//! integer pico-dollars per token (1e-12 USD); all sums are integer and
//! saturate instead of wrapping, whatever token counts a provider reports.
//!
//! The table also knows each model's limits ([`ModelLimits`]: context window
//! and output cap), from the file's `max_input_tokens` / `max_output_tokens`
//! or, for models the file does not list, from the built-in families in
//! [`known_limits`]; the gateway refuses requests that cannot fit them.

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
    /// The most output tokens one request may ask for.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Price of a reasoning (thinking) token, when it differs from the output
    /// price (LiteLLM's `output_cost_per_reasoning_token`); `None`: the output price.
    #[serde(default)]
    pub reasoning_pico: Option<u64>,
}

impl ModelPrice {
    /// Exact cost of `usage`, rounded half-up to the micro-dollar.
    pub fn cost(&self, u: &TokenUsage) -> Micros {
        // u64 × u64 fits a u128; the sum of four of them may not: saturate.
        // Reasoning tokens are part of `output`; they are priced at their own
        // rate when the table gives one.
        let reasoning = u.reasoning.min(u.output);
        let (visible, reasoning_price) = match self.reasoning_pico {
            Some(r) => (u.output - reasoning, r),
            None => (u.output, 0),
        };
        let reasoning = if self.reasoning_pico.is_some() { reasoning } else { 0 };
        let pico: u128 = [
            (u.input, self.input_pico),
            (visible, self.output_pico),
            (reasoning, reasoning_price),
            (u.cached_read, self.cache_read_pico),
            (u.cache_write, self.cache_write_pico),
        ]
        .iter()
        .fold(0u128, |acc, (tokens, price)| acc.saturating_add(*tokens as u128 * *price as u128));
        let micros = pico.saturating_add(500_000) / 1_000_000;
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
    max_output_tokens: Option<u64>,
    output_cost_per_reasoning_token: Option<f64>,
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
    /// By name, hashed with a fixed fast hash: a request looks its model up
    /// about seven times (routing, limits, pricing), which a `BTreeMap`'s
    /// string comparisons made ~4,700 instructions a request (4 % of a lone
    /// request's path, by callgrind; BENCHMARKS.md), this map about half.
    /// The names are the table's own, so a client's model name only ever
    /// looks one up (no flooding).
    models: super::FastMap<String, ModelPrice>,
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
            let max_output_tokens = e.max_output_tokens.or(old.and_then(|o| o.max_output_tokens));
            let reasoning_pico = to_pico(&model, "output_cost_per_reasoning_token", e.output_cost_per_reasoning_token)?
                .or(old.and_then(|o| o.reasoning_pico));
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
                    max_output_tokens,
                    reasoning_pico,
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
        // The known names it may be a snapshot of are its prefixes that end
        // before a `-` and a digit: try them longest first (a few lookups per
        // name, where walking the table compared every entry's name).
        let b = name.as_bytes();
        (1..b.len().saturating_sub(1))
            .rev()
            .filter(|&i| b[i] == b'-' && b[i + 1].is_ascii_digit())
            .find_map(|i| self.models.get(&name[..i]))
    }

    pub fn cost(&self, provider: ProviderKind, model: &str, usage: &TokenUsage) -> Option<Micros> {
        self.price(provider, model).map(|p| p.cost(usage))
    }

    /// A model's limits: the table's figures where it has them, else the
    /// built-in family's ([`known_limits`]); unknown models have none.
    pub fn limits(&self, model: &str) -> ModelLimits {
        let bare = model.split_once('/').map(|(_, m)| m).unwrap_or(model);
        let known = known_limits(bare);
        let listed = self.lookup(model).or_else(|| self.lookup(bare));
        ModelLimits {
            context: listed.and_then(|p| p.max_input_tokens).or(known.context),
            max_output: listed.and_then(|p| p.max_output_tokens).or(known.max_output),
        }
    }

    /// Every model, by name.
    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        let mut all: Vec<(&str, &ModelPrice)> = self.models.iter().map(|(k, v)| (k.as_str(), v)).collect();
        all.sort_unstable_by_key(|(k, _)| *k);
        all.into_iter()
    }
}

/// What one request to a model may hold: its prompt (`context`, for
/// embeddings the tokens of one input) and the output it may ask for.
/// `None`: not known, not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelLimits {
    pub context: Option<u64>,
    pub max_output: Option<u64>,
}

/// Limits of the model families Switchboard routes, by name prefix (the
/// longest matching prefix wins, so dated snapshots such as
/// `claude-sonnet-4-5-20250929` find their family). From the providers'
/// model pages; the pricing file's own figures take precedence.
const KNOWN_LIMITS: [(&str, u64, Option<u64>); 16] = [
    ("gpt-4o", 128_000, Some(16_384)),
    ("gpt-4.1", 1_047_576, Some(32_768)),
    ("o1", 200_000, Some(100_000)),
    ("o1-mini", 128_000, Some(65_536)),
    ("o1-preview", 128_000, Some(32_768)),
    ("o3", 200_000, Some(100_000)),
    ("o4", 200_000, Some(100_000)),
    ("claude-3-5-sonnet", 200_000, Some(8_192)),
    ("claude-3-5-haiku", 200_000, Some(8_192)),
    ("claude-3-7-sonnet", 200_000, Some(64_000)),
    ("claude-sonnet-4", 200_000, Some(64_000)),
    ("claude-haiku-4", 200_000, Some(64_000)),
    ("claude-opus-4", 200_000, Some(32_000)),
    ("text-embedding-3", 8_191, None),
    ("text-embedding-ada-002", 8_191, None),
    ("gpt-4-turbo", 128_000, Some(4_096)),
];

/// The built-in limits of `model`'s family (see [`KNOWN_LIMITS`]).
pub fn known_limits(model: &str) -> ModelLimits {
    KNOWN_LIMITS
        .iter()
        .filter(|(prefix, _, _)| model.starts_with(prefix) && matches!(model.as_bytes().get(prefix.len()), None | Some(b'-') | Some(b'.')))
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map(|(_, context, max_output)| ModelLimits { context: Some(*context), max_output: *max_output })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_tokens_are_priced_as_output_or_at_their_own_rate() {
        let mut t = PricingTable::builtin();
        let u = TokenUsage { input: 1_000, output: 3_000, reasoning: 2_000, ..TokenUsage::default() };
        // o4-mini: $1.10 / M input, $4.40 / M output; reasoning is output.
        assert_eq!(t.cost(ProviderKind::OpenAi, "o4-mini", &u), Some(Micros(1_100 + 13_200)));
        // claude-sonnet-4-5 thinking: $15 / M output for thinking and text alike.
        assert_eq!(t.cost(ProviderKind::Anthropic, "claude-sonnet-4-5", &u), Some(Micros(3_000 + 45_000)));
        // An edited table with a reasoning rate of its own: 1,000 visible at $4.40/M, 2,000 at $1/M.
        t.merge_json(r#"{"o4-mini":{"output_cost_per_reasoning_token":1e-06}}"#).unwrap();
        assert_eq!(t.cost(ProviderKind::OpenAi, "o4-mini", &u), Some(Micros(1_100 + 4_400 + 2_000)));
        // A provider claiming more reasoning than output cannot make it negative.
        let odd = TokenUsage { output: 10, reasoning: 50, ..TokenUsage::default() };
        assert_eq!(t.cost(ProviderKind::OpenAi, "o4-mini", &odd), Some(Micros(10)));
    }

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
    fn a_snapshot_finds_the_longest_known_name_it_dates() {
        // What the lookup decides, written as the definition: every known
        // name the snapshot starts with, followed by `-` and a digit; the longest.
        let mut t = PricingTable::builtin();
        t.merge_json(r#"{"my-model": {"input_cost_per_token": 1e-06}, "my-model-2": {"input_cost_per_token": 2e-06}, "é-x": {"input_cost_per_token": 3e-06}}"#).unwrap();
        let by_definition = |name: &str| {
            t.models
                .iter()
                .filter(|(known, _)| {
                    name.len() > known.len() + 1
                        && name.starts_with(known.as_str())
                        && name[known.len()..].starts_with('-')
                        && name[known.len() + 1..].starts_with(|c: char| c.is_ascii_digit())
                })
                .max_by_key(|(known, _)| known.len())
                .map(|(_, p)| p)
        };
        let mut names: Vec<String> = vec![
            "".into(),
            "-".into(),
            "-1".into(),
            "a-1".into(),
            "my-model-2-3".into(),
            "my-model-23".into(),
            "é-x-9".into(),
            "é-9".into(),
        ];
        for known in t.models.keys() {
            for tail in ["", "-", "-2024-08-06", "-mini-2024-07-18", "-x", "2", "-0", "-9-", "-é"] {
                names.push(format!("{known}{tail}"));
            }
        }
        for name in &names {
            let expected = t.models.get(name.as_str()).or_else(|| by_definition(name));
            assert_eq!(t.lookup(name).map(|p| p as *const _), expected.map(|p| p as *const _), "{name}");
        }
        assert_eq!(t.lookup("my-model-2-3").unwrap().input_pico, 2_000_000, "the longest known name wins");
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
    fn limits_come_from_the_table_then_the_families() {
        let t = PricingTable::builtin();
        let l = |m: &str| t.limits(m);
        assert_eq!(l("gpt-4o"), ModelLimits { context: Some(128_000), max_output: Some(16_384) });
        assert_eq!(l("gpt-4o-mini-2024-07-18"), ModelLimits { context: Some(128_000), max_output: Some(16_384) });
        assert_eq!(l("azure/gpt-4o-mini").max_output, Some(16_384));
        assert_eq!(l("gpt-4.1-mini"), ModelLimits { context: Some(1_047_576), max_output: Some(32_768) });
        assert_eq!(l("o3-mini"), ModelLimits { context: Some(200_000), max_output: Some(100_000) });
        assert_eq!(l("o1-mini-2024-09-12").max_output, Some(65_536));
        assert_eq!(l("claude-3-5-sonnet-20241022").max_output, Some(8_192));
        assert_eq!(l("claude-3-7-sonnet-latest").max_output, Some(64_000));
        assert_eq!(l("claude-sonnet-4-5-20250929"), ModelLimits { context: Some(200_000), max_output: Some(64_000) });
        assert_eq!(l("claude-opus-4-1").max_output, Some(32_000));
        assert_eq!(l("text-embedding-3-large"), ModelLimits { context: Some(8_191), max_output: None });
        // Unknown models, and names that only share letters with a family, have no limits.
        assert_eq!(l("my-model"), ModelLimits::default());
        assert_eq!(l("o30"), ModelLimits::default());
        assert_eq!(l("gpt-4oo"), ModelLimits::default());
        // An override's figures win over the family's.
        let mut t = PricingTable::builtin();
        t.merge_json(r#"{"gpt-4.1": {"input_cost_per_token": 2e-06, "max_output_tokens": 1000}}"#).unwrap();
        assert_eq!(t.limits("gpt-4.1").max_output, Some(1000));
        assert_eq!(t.limits("gpt-4.1").context, Some(1_047_576));
    }

    #[test]
    fn costs_saturate_instead_of_wrapping() {
        let t = PricingTable::builtin();
        let huge = usage(u64::MAX, u64::MAX, u64::MAX, u64::MAX);
        assert_eq!(t.cost(ProviderKind::OpenAi, "gpt-4o", &huge), Some(Micros(i64::MAX)));
        let one = usage(u64::MAX, 0, 0, 0);
        assert!(t.cost(ProviderKind::OpenAi, "gpt-4o-mini", &one).unwrap().0 > 0);
    }

    #[test]
    fn bad_override_says_what_is_wrong() {
        let mut t = PricingTable::builtin();
        let e = t.merge_json(r#"{"x": {"input_cost_per_token": 5}}"#).unwrap_err().to_string();
        assert!(e.contains("model 'x'") && e.contains("input_cost_per_token"), "{e}");
        assert!(PricingTable::from_json("{").is_err());
    }
}
