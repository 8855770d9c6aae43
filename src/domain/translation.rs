//! The two editable tables of the translation between OpenAI's and
//! Anthropic's APIs (`assets/translation.json`): equivalent models across
//! provider families (a request naming a model of the other family is served
//! by the configured equivalent) and the Anthropic thinking budget each OpenAI
//! `reasoning_effort` becomes. Pure data and validation.

use super::provider::ProviderKind;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The tables shipped with Switchboard.
pub const BUILTIN_TRANSLATION_JSON: &str = include_str!("../../assets/translation.json");

/// Anthropic's smallest thinking budget.
pub const MIN_BUDGET_TOKENS: u64 = 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TranslationTableError {
    #[error("the translation table is not valid JSON: {0}")]
    Json(String),
    #[error("model_equivalents row {row}: {problem}")]
    BadRow { row: usize, problem: String },
    #[error("reasoning_budgets: '{effort}' = {budget} is below Anthropic's minimum of {MIN_BUDGET_TOKENS} tokens")]
    BudgetTooSmall { effort: String, budget: u64 },
}

/// One row of equivalent models: one per provider family.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Equivalence {
    /// The OpenAI family's model (OpenAI and Azure OpenAI).
    pub openai: String,
    pub anthropic: String,
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(default)]
    model_equivalents: Vec<Equivalence>,
    #[serde(default)]
    reasoning_budgets: BTreeMap<String, u64>,
}

/// The loaded tables.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslationTables {
    pub equivalents: Vec<Equivalence>,
    /// `reasoning_effort` → `budget_tokens`.
    pub budgets: BTreeMap<String, u64>,
}

impl Default for TranslationTables {
    fn default() -> Self {
        Self::builtin()
    }
}

/// Whether two providers speak for the same family of models (OpenAI and Azure do).
pub fn same_family(a: ProviderKind, b: ProviderKind) -> bool {
    (a == ProviderKind::Anthropic) == (b == ProviderKind::Anthropic)
}

impl TranslationTables {
    /// The built-in tables (checked by a unit test).
    pub fn builtin() -> Self {
        Self::from_json(BUILTIN_TRANSLATION_JSON).unwrap_or_else(|_| Self { equivalents: Vec::new(), budgets: BTreeMap::new() })
    }

    pub fn from_json(json: &str) -> Result<Self, TranslationTableError> {
        let raw: Raw = serde_json::from_str(json).map_err(|e| TranslationTableError::Json(e.to_string()))?;
        for (i, row) in raw.model_equivalents.iter().enumerate() {
            if row.openai.trim().is_empty() || row.anthropic.trim().is_empty() {
                return Err(TranslationTableError::BadRow {
                    row: i + 1,
                    problem: "both \"openai\" and \"anthropic\" must name a model".into(),
                });
            }
        }
        if let Some((effort, budget)) = raw.reasoning_budgets.iter().find(|(_, b)| **b < MIN_BUDGET_TOKENS) {
            return Err(TranslationTableError::BudgetTooSmall { effort: effort.clone(), budget: *budget });
        }
        Ok(Self { equivalents: raw.model_equivalents, budgets: raw.reasoning_budgets })
    }

    /// The model of `target`'s family equivalent to `model` (of the other
    /// family, or a dated snapshot of it): the first row naming it. `None`
    /// when no row does.
    pub fn equivalent(&self, model: &str, target: ProviderKind) -> Option<&str> {
        self.equivalents_of(model, target).into_iter().next()
    }

    /// Every model of `target`'s family that a row makes equivalent to `model`, in table order.
    pub fn equivalents_of(&self, model: &str, target: ProviderKind) -> Vec<&str> {
        let base = |m: &str, of: &str| m == of || (m.starts_with(of) && m[of.len()..].starts_with("-20"));
        self.equivalents
            .iter()
            .filter_map(|row| {
                if target == ProviderKind::Anthropic {
                    base(model, &row.openai).then_some(row.anthropic.as_str())
                } else {
                    base(model, &row.anthropic).then_some(row.openai.as_str())
                }
            })
            .collect()
    }

    /// The models of `family`'s side of the table (sorted, without repeats).
    pub fn models_of(&self, family: ProviderKind) -> Vec<String> {
        let mut v: Vec<String> = self
            .equivalents
            .iter()
            .map(|r| if family == ProviderKind::Anthropic { r.anthropic.clone() } else { r.openai.clone() })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The thinking budget for a `reasoning_effort`.
    pub fn budget(&self, effort: &str) -> Option<u64> {
        self.budgets.get(effort).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tables_load_and_map_both_ways() {
        let t = TranslationTables::from_json(BUILTIN_TRANSLATION_JSON).unwrap();
        assert_eq!(t.equivalent("gpt-4o-mini", ProviderKind::Anthropic), Some("claude-haiku-4-5"));
        assert_eq!(t.equivalent("gpt-4o-mini-2024-07-18", ProviderKind::Anthropic), Some("claude-haiku-4-5"));
        assert_eq!(t.equivalent("claude-sonnet-4-5", ProviderKind::OpenAi), Some("gpt-4o"));
        assert_eq!(t.equivalent("claude-opus-4-1", ProviderKind::AzureOpenAi), Some("gpt-4o"));
        assert_eq!(t.equivalent("gpt-3.5-turbo", ProviderKind::Anthropic), None);
        assert_eq!(t.budget("medium"), Some(8192));
        assert_eq!(t.budget("extreme"), None);
        assert!(t.models_of(ProviderKind::Anthropic).contains(&"claude-haiku-4-5".to_string()));
        assert!(same_family(ProviderKind::OpenAi, ProviderKind::AzureOpenAi));
        assert!(!same_family(ProviderKind::OpenAi, ProviderKind::Anthropic));
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        assert!(matches!(TranslationTables::from_json("{"), Err(TranslationTableError::Json(_))));
        let e = TranslationTables::from_json(r#"{"model_equivalents":[{"openai":"gpt-4o","anthropic":""}]}"#).unwrap_err();
        assert_eq!(e, TranslationTableError::BadRow { row: 1, problem: "both \"openai\" and \"anthropic\" must name a model".into() });
        let e = TranslationTables::from_json(r#"{"reasoning_budgets":{"low":10}}"#).unwrap_err();
        assert!(e.to_string().contains("below Anthropic's minimum"));
        let edited = TranslationTables::from_json(r#"{"reasoning_budgets":{"low":3000}}"#).unwrap();
        assert_eq!(edited.budget("low"), Some(3000));
    }
}
