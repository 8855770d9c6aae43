//! The Request log's data: a search of the usage ledger within a bounded time
//! window (one UTC day by default, at most [`MAX_DAYS`]), by supplier, model,
//! route and status, newest first, a page at a time, with each request's
//! details. It runs on the blocking pool on a read connection of its own (the
//! store's main connection stays free); a newer search on the same channel
//! makes an older one stale, so it is skipped if it has not started and its
//! answer dropped if it has.

use crate::console::service::{Res, Service, msg};
use crate::domain::calendar::{day_start, next_day_start};
use crate::domain::{Route, SupplierId};
use crate::store::requests::{models_between, search_requests};
use crate::store::{RequestFilter, RequestRow, StatusFilter};
use chrono::NaiveDate;
use std::collections::HashMap;

/// The widest window a search may cover.
pub const MAX_DAYS: i64 = 31;
/// Rows per page.
pub const PAGE: u32 = 500;

/// What the Request log asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestQuery {
    /// First and last UTC day of the window (inclusive).
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub supplier: Option<SupplierId>,
    pub model: Option<String>,
    pub route: Option<Route>,
    pub status: Option<StatusFilter>,
    /// Rows wanted (a page, or more pages after "Show more").
    pub limit: u32,
}

impl RequestQuery {
    /// The default: one day, everything, one page.
    pub fn day(day: NaiveDate) -> Self {
        RequestQuery { from: day, to: day, supplier: None, model: None, route: None, status: None, limit: PAGE }
    }
}

/// One request with the names of its supplier and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    pub row: RequestRow,
    pub supplier_name: String,
    pub account_label: Option<String>,
}

/// A search's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLogView {
    pub query: RequestQuery,
    /// Newest first.
    pub rows: Vec<RequestLine>,
    /// More rows match than were returned.
    pub more: bool,
    /// How long the search took.
    pub elapsed_ms: u64,
    /// Every supplier, by name (the supplier filter).
    pub suppliers: Vec<(SupplierId, String)>,
    /// The models seen in the window (the model filter).
    pub models: Vec<String>,
}

/// Checks a query's window: ordered and at most [`MAX_DAYS`] long.
pub fn check_window(from: NaiveDate, to: NaiveDate) -> Result<(), String> {
    if to < from {
        return Err(format!("the window ends ({to}) before it starts ({from}); pick a last day on or after the first"));
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_DAYS {
        return Err(format!("the window is {days} days; search at most {MAX_DAYS} days at a time"));
    }
    Ok(())
}

impl Service {
    pub(in crate::console) fn requests(&self, q: &RequestQuery) -> Res<RequestLogView> {
        check_window(q.from, q.to)?;
        // The console's clock (a test's manual clock shows 0 ms, so snapshots do not depend on the machine's speed).
        let started = self.clock.now();
        let limit = q.limit.clamp(1, 20 * PAGE);
        let f = RequestFilter {
            from_ms: day_start(q.from).timestamp_millis(),
            to_ms: next_day_start(q.to).timestamp_millis(),
            supplier: q.supplier,
            model: q.model.clone().filter(|m| !m.trim().is_empty()),
            route: q.route,
            status: q.status,
            limit: limit + 1,
        };
        let conn = self.store.request_log_connection().map_err(msg)?;
        let mut rows = search_requests(&conn, &f).map_err(|e| format!("the request log could not be searched: {e}"))?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let models = models_between(&conn, &q.from.to_string(), &q.to.to_string())
            .map_err(|e| format!("the request log could not list models: {e}"))?;
        let elapsed_ms = u64::try_from((self.clock.now() - started).num_milliseconds()).unwrap_or(0);
        let cat = self.supplier_cache()?;
        let names: HashMap<SupplierId, &str> = cat.suppliers.iter().map(|s| (s.id, s.name.as_str())).collect();
        let labels: HashMap<i64, String> = self.store.list_accounts(None).map_err(msg)?.into_iter().map(|a| (a.id.0, a.label)).collect();
        let rows = rows
            .into_iter()
            .map(|row| RequestLine {
                supplier_name: names
                    .get(&row.supplier_id)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| format!("supplier {}", row.supplier_id)),
                account_label: row.account_id.and_then(|a| labels.get(&a).cloned()),
                row,
            })
            .collect();
        let mut suppliers: Vec<(SupplierId, String)> = cat.suppliers.iter().map(|s| (s.id, s.name.clone())).collect();
        suppliers.sort_by_key(|a| a.1.to_lowercase());
        Ok(RequestLogView { query: RequestQuery { limit, ..q.clone() }, rows, more, elapsed_ms, suppliers, models })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_ordered_and_bounded() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert!(check_window(d("2026-06-10"), d("2026-06-10")).is_ok());
        assert!(check_window(d("2026-06-01"), d("2026-07-01")).is_ok(), "31 days");
        assert!(check_window(d("2026-06-01"), d("2026-07-02")).unwrap_err().contains("at most 31"));
        assert!(check_window(d("2026-06-10"), d("2026-06-09")).unwrap_err().contains("before it starts"));
    }
}
