//! The response cache's analytics: hits, hit rate and dollars saved per day
//! and supplier, and per supplier, model and request type over a range, from
//! the ledger's daily rollup (a hit is a usage row on route `cache` whose
//! `saved_micros` is what the replayed call cost). The hit rate is the share
//! of answered requests (shadow copies left out) that the cache answered.

use crate::domain::{Micros, SupplierId};
use crate::store::{CacheCell, Store, StoreError};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Hits and savings of one group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheGroup {
    pub key: String,
    pub hits: u64,
    pub answered: u64,
    pub saved: Micros,
}

impl CacheGroup {
    /// The share of answered requests the cache answered, 0–1.
    pub fn hit_rate(&self) -> f64 {
        if self.answered == 0 { 0.0 } else { self.hits as f64 / self.answered as f64 }
    }

    fn add(&mut self, hits: u64, answered: u64, saved: Micros) {
        self.hits = self.hits.saturating_add(hits);
        self.answered = self.answered.saturating_add(answered);
        self.saved = Micros(self.saved.0.saturating_add(saved.0));
    }
}

/// One supplier's day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheDay {
    pub day: NaiveDate,
    pub supplier: SupplierId,
    pub name: String,
    pub group: CacheGroup,
}

/// The cache over a range.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CacheReport {
    pub total: CacheGroup,
    /// All suppliers, per day (every day with answered requests).
    pub days: Vec<(NaiveDate, CacheGroup)>,
    /// Per day and supplier, the days with hits; newest first.
    pub supplier_days: Vec<CacheDay>,
    /// Per supplier (those with hits), most saved first.
    pub by_supplier: Vec<CacheGroup>,
    /// Per model and per request type (the groups with hits), most saved first.
    pub by_model: Vec<CacheGroup>,
    pub by_request_type: Vec<CacheGroup>,
}

/// The report for the UTC days `from..=to`; supplier groups are keyed by name.
pub fn cache_report(store: &Store, from: NaiveDate, to: NaiveDate) -> Result<CacheReport, StoreError> {
    let end = to.succ_opt().unwrap_or(to);
    let names: HashMap<SupplierId, String> = store.list_suppliers(&Default::default())?.into_iter().map(|s| (s.id, s.name)).collect();
    Ok(build(&store.cache_by_day_supplier(from, end)?, &store.cache_by_dims(from, end)?, &names))
}

fn name_of(names: &HashMap<SupplierId, String>, s: SupplierId) -> String {
    names.get(&s).cloned().unwrap_or_else(|| format!("supplier {} (removed)", s.0))
}

/// The report from the rollup's cells (pure: unit-tested).
pub fn build(per_day: &[CacheCell], per_dims: &[CacheCell], names: &HashMap<SupplierId, String>) -> CacheReport {
    let mut r = CacheReport::default();
    let mut days: BTreeMap<NaiveDate, CacheGroup> = BTreeMap::new();
    let mut suppliers: BTreeMap<SupplierId, CacheGroup> = BTreeMap::new();
    for c in per_day {
        let Some(day) = c.day else { continue };
        r.total.add(c.hits, c.answered, c.saved);
        days.entry(day).or_insert_with(|| CacheGroup { key: day.to_string(), ..CacheGroup::default() }).add(c.hits, c.answered, c.saved);
        let s = suppliers.entry(c.supplier).or_insert_with(|| CacheGroup { key: name_of(names, c.supplier), ..CacheGroup::default() });
        s.add(c.hits, c.answered, c.saved);
        if c.hits > 0 {
            let mut g = CacheGroup { key: day.to_string(), ..CacheGroup::default() };
            g.add(c.hits, c.answered, c.saved);
            r.supplier_days.push(CacheDay { day, supplier: c.supplier, name: name_of(names, c.supplier), group: g });
        }
    }
    r.supplier_days.sort_by(|a, b| b.day.cmp(&a.day).then(b.group.saved.cmp(&a.group.saved)).then(a.name.cmp(&b.name)));
    r.days = days.into_iter().collect();
    r.by_supplier = suppliers.into_values().filter(|g| g.hits > 0).collect();
    let mut models: BTreeMap<String, CacheGroup> = BTreeMap::new();
    let mut types: BTreeMap<String, CacheGroup> = BTreeMap::new();
    for c in per_dims {
        models
            .entry(c.model.clone())
            .or_insert_with(|| CacheGroup { key: c.model.clone(), ..CacheGroup::default() })
            .add(c.hits, c.answered, c.saved);
        let t = c.request_type.map_or_else(|| "unknown".to_string(), |t| t.to_string());
        types.entry(t.clone()).or_insert_with(|| CacheGroup { key: t, ..CacheGroup::default() }).add(c.hits, c.answered, c.saved);
    }
    r.by_model = models.into_values().collect();
    r.by_request_type = types.into_values().collect();
    for v in [&mut r.by_supplier, &mut r.by_model, &mut r.by_request_type] {
        v.sort_by(|a, b| b.saved.cmp(&a.saved).then(b.hits.cmp(&a.hits)).then(a.key.cmp(&b.key)));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RequestType;

    fn day(d: &str) -> NaiveDate {
        d.parse().unwrap()
    }

    fn cell(d: Option<&str>, s: i64, model: &str, t: Option<RequestType>, hits: u64, answered: u64, saved: i64) -> CacheCell {
        CacheCell { day: d.map(day), supplier: SupplierId(s), model: model.into(), request_type: t, hits, answered, saved: Micros(saved) }
    }

    #[test]
    fn hit_rates_and_savings_add_up_per_day_supplier_model_and_type() {
        let names: HashMap<SupplierId, String> = [(SupplierId(1), "Bloom".to_string())].into();
        let per_day = [
            cell(Some("2026-06-01"), 1, "", None, 2, 10, 200),
            cell(Some("2026-06-01"), 2, "", None, 0, 5, 0),
            cell(Some("2026-06-02"), 1, "", None, 1, 4, 50),
        ];
        let per_dims = [
            cell(None, 1, "gpt-4o-mini", Some(RequestType::EmailTemplate), 2, 8, 150),
            cell(None, 1, "text-embedding-3-small", Some(RequestType::Embedding), 1, 6, 100),
        ];
        let r = build(&per_day, &per_dims, &names);
        assert_eq!((r.total.hits, r.total.answered, r.total.saved), (3, 19, Micros(250)));
        assert_eq!(r.days.len(), 2);
        assert_eq!(r.days[0].1.hit_rate(), 2.0 / 15.0);
        assert_eq!(r.supplier_days.len(), 2, "days with hits only");
        assert_eq!(r.supplier_days[0].day, day("2026-06-02"), "newest first");
        assert_eq!(r.by_supplier.len(), 1, "suppliers with hits only");
        assert_eq!((r.by_supplier[0].key.as_str(), r.by_supplier[0].hits, r.by_supplier[0].answered), ("Bloom", 3, 14));
        assert_eq!(r.by_model[0].key, "gpt-4o-mini", "most saved first");
        assert_eq!(r.by_request_type.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(), ["email_template", "embedding"]);
        assert_eq!(CacheGroup::default().hit_rate(), 0.0);
    }
}
