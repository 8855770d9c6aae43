//! The platform-vs-client cost comparison: what each supplier's month cost
//! and what the same tokens would have cost on the other side, repriced with
//! the pricing table.

use super::{AnalyticsResult, AnalyticsSession, UsageTotals};
use crate::domain::calendar::{first_of_month, month_key, parse_month};
use crate::domain::{Micros, ModelPrice, ProviderKind, SupplierId, TokenUsage};
use crate::store::SupplierInfo;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The models that price the "other side" in a cost comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRefs {
    pub platform_provider: ProviderKind,
    pub platform_chat_model: String,
    pub platform_embedding_model: String,
    /// For platform suppliers without a client account of their own.
    pub client_provider: ProviderKind,
    pub client_chat_model: String,
    pub client_embedding_model: String,
}

impl Default for PriceRefs {
    fn default() -> Self {
        Self {
            platform_provider: ProviderKind::OpenAi,
            platform_chat_model: "gpt-4o-mini".into(),
            platform_embedding_model: "text-embedding-3-small".into(),
            client_provider: ProviderKind::OpenAi,
            client_chat_model: "gpt-4o-mini".into(),
            client_embedding_model: "text-embedding-3-small".into(),
        }
    }
}

/// What one supplier's month cost and what it would have cost on the other side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostComparison {
    pub supplier_id: SupplierId,
    pub name: String,
    /// `platform` or `client`: the supplier's current AI mode.
    pub ai_mode: String,
    pub month: NaiveDate,
    pub actual_cost: Micros,
    /// `platform` for client-AI suppliers, `client` for platform-AI suppliers.
    pub alternative: String,
    pub alternative_provider: ProviderKind,
    pub alternative_chat_model: String,
    pub alternative_cost: Micros,
    /// `alternative_cost - actual_cost` (positive: the current side is cheaper).
    pub difference: Micros,
    /// Tokens of models the pricing table does not know (left out of both costs' repricing).
    pub unpriced_tokens: u64,
}

impl AnalyticsSession {
    /// Per supplier and month: actual cost and what the same tokens would have
    /// cost on the other side (client-AI suppliers on platform AI, platform-AI
    /// suppliers on their own client account, or `refs.client_*` without one).
    /// Shadow traffic is left out.
    pub fn cost_comparison(&self, from: NaiveDate, to: NaiveDate, refs: &PriceRefs) -> AnalyticsResult<Vec<CostComparison>> {
        let (from_m, to_m) = (first_of_month(from), first_of_month(to));
        Self::check_range(from_m, to_m)?;
        let suppliers = self.suppliers()?;
        let mut own: HashMap<SupplierId, (ProviderKind, String)> = HashMap::new();
        for (id, provider, model) in self.db(self.reader.client_accounts())? {
            if let Ok(p) = provider.parse::<ProviderKind>() {
                own.entry(id).or_insert((p, model));
            }
        }
        let rows = self.db(self.reader.supplier_model_months(&month_key(from_m), &month_key(to_m), None))?;
        let alternatives: HashMap<SupplierId, (ProviderKind, String, String)> =
            suppliers.values().map(|s| (s.id, self.alternative(s, &own, refs))).collect();
        let mut acc: BTreeMap<(SupplierId, &str), (Micros, Micros, u64)> = BTreeMap::new();
        // Lookups are cached: a few distinct models, tens of thousands of rows.
        let mut embedding_cache: Vec<(&str, &str, Option<bool>)> = Vec::new();
        let mut price_cache: Vec<(ProviderKind, &str, Option<ModelPrice>)> = Vec::new();
        for r in &rows {
            let Some((alt_provider, chat, emb)) = alternatives.get(&r.supplier_id) else { continue };
            let e = acc.entry((r.supplier_id, r.month.as_str())).or_default();
            e.0 += r.totals.cost;
            let embedding = match embedding_cache.iter().find(|c| c.0 == r.provider && c.1 == r.model) {
                Some(c) => c.2,
                None => {
                    let v = r.provider.parse().ok().and_then(|p| self.pricing.price(p, &r.model)).map(|p| p.embedding);
                    embedding_cache.push((&r.provider, &r.model, v));
                    v
                }
            };
            let Some(is_emb) = embedding else {
                e.2 += r.totals.tokens();
                continue;
            };
            let model = if is_emb { emb.as_str() } else { chat.as_str() };
            let price = match price_cache.iter().find(|c| c.0 == *alt_provider && c.1 == model) {
                Some(c) => c.2,
                None => {
                    // Embeddings on Anthropic fall back to OpenAI's (Anthropic has none).
                    let v = self.pricing.price(*alt_provider, model).or_else(|| self.pricing.price(ProviderKind::OpenAi, model)).copied();
                    price_cache.push((*alt_provider, model, v));
                    v
                }
            };
            match price {
                Some(p) => e.1 += p.cost(&usage_of(&r.totals)),
                None => e.2 += r.totals.tokens(),
            }
        }
        self.cancel.check()?;
        Ok(acc
            .into_iter()
            .filter_map(|((id, month), (actual, alt, unpriced))| {
                let s = suppliers.get(&id)?;
                let (p, chat, _) = alternatives.get(&id)?.clone();
                Some(CostComparison {
                    supplier_id: id,
                    name: s.name.clone(),
                    ai_mode: s.ai_mode.as_str().into(),
                    month: parse_month(month)?,
                    actual_cost: actual,
                    alternative: if s.ai_mode == crate::domain::AiMode::Client { "platform" } else { "client" }.into(),
                    alternative_provider: p,
                    alternative_chat_model: chat,
                    alternative_cost: alt,
                    difference: alt - actual,
                    unpriced_tokens: unpriced,
                })
            })
            .collect())
    }

    fn alternative(
        &self,
        s: &SupplierInfo,
        own: &HashMap<SupplierId, (ProviderKind, String)>,
        refs: &PriceRefs,
    ) -> (ProviderKind, String, String) {
        if s.ai_mode == crate::domain::AiMode::Client {
            return (refs.platform_provider, refs.platform_chat_model.clone(), refs.platform_embedding_model.clone());
        }
        match own.get(&s.id) {
            Some((p, m)) => (*p, m.clone(), refs.client_embedding_model.clone()),
            None => (refs.client_provider, refs.client_chat_model.clone(), refs.client_embedding_model.clone()),
        }
    }
}

/// Token counts of summed usage, for pricing.
fn usage_of(t: &UsageTotals) -> TokenUsage {
    TokenUsage {
        input: t.input_tokens,
        output: t.output_tokens,
        cached_read: t.cached_tokens,
        cache_write: t.cache_write_tokens,
        reasoning: t.reasoning_tokens,
        estimated: false,
    }
}
