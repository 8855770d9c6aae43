//! The rollups folded from the usage events: every event past the rollup
//! watermark (`usage_rollup_watermark`) summed per `usage_daily` key in
//! memory ([`Sums`]) and added to `usage_daily` and the analytics rollups
//! with one upsert per row, the watermark moved in the same transaction.
//! A fold whose events are exactly the ones past the watermark sums them
//! from memory ([`insert_and_fold`]); otherwise they are read back
//! ([`fold_rollups`]).

use super::{append_in, day_key};
use crate::domain::{Route, UsageEvent, UsageStatus};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction};

/// One upsert per rollup: (target and its key columns, key values, whether the
/// rollup keeps quota tokens). Every statement takes the same parameters: ?1
/// day, ?2 supplier, ?3 provider, ?4 model, ?5 request type, ?6 route, ?7..?15
/// the request count and the eight measures, ?16 the quota tokens.
const FOLD_TARGETS: [(&str, &str, bool); 5] = [
    ("usage_daily (day, supplier_id, provider, model, request_type, route", "?1, ?2, ?3, ?4, ?5, ?6", false),
    (
        "usage_daily_dims (day, vendor_type, provider, model, request_type, route",
        "?1, coalesce((SELECT vendor_type FROM suppliers WHERE id = ?2), 'unknown'), ?3, ?4, ?5, ?6",
        false,
    ),
    ("usage_monthly_supplier (month, supplier_id, provider, model, route", "substr(?1, 1, 7), ?2, ?3, ?4, ?6", false),
    ("usage_supplier_month (month, supplier_id", "substr(?1, 1, 7), ?2", true),
    ("usage_supplier_day (supplier_id, day", "?2, ?1", true),
];

fn fold_sql() -> &'static [String; 5] {
    static SQL: std::sync::OnceLock<[String; 5]> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        FOLD_TARGETS.map(|(target, keys, with_quota)| {
            let conflict = &target[target.find('(').unwrap_or(0) + 1..];
            let (quota_col, quota_value, quota_update) = if with_quota {
                (", quota_tokens", ", ?16", ", quota_tokens = quota_tokens + excluded.quota_tokens")
            } else {
                ("", "", "")
            };
            format!(
                "INSERT INTO {target}, requests, errors, input_tokens, output_tokens, cached_tokens, cache_write_tokens,
                    reasoning_tokens, cost_micros, latency_ms_sum{quota_col})
                 VALUES ({keys}, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15{quota_value})
                 ON CONFLICT ({conflict}) DO UPDATE SET {}{quota_update}",
                crate::store::analytics::MEASURE_UPDATE
            )
        })
    })
}

/// The key of one `usage_daily` row: the UTC day's start (Unix ms),
/// supplier, provider and model (as [`Sums`] numbers their names), request
/// type, route.
type DailyKey = (i64, i64, u32, u32, i64, i64);

/// Events summed per [`DailyKey`]: requests, errors, input, output, cached
/// read, cache write, reasoning tokens, cost, latency sum, quota tokens, and
/// what cache hits saved (`usage_daily` only; schema v16).
type DailySum = [i64; 11];

/// One event as the rollups count it: the columns [`fold_rollups`] reads
/// back, or the same figures of an event the fold has just inserted
/// ([`Counted::of`], as [`super::bind_event`] stores them).
struct Counted<'a> {
    ts: i64,
    supplier: i64,
    provider: &'a str,
    model: &'a str,
    request_type: i64,
    route: i64,
    status: i64,
    /// Input, output, cached read, cache write, reasoning.
    tokens: [i64; 5],
    cost: i64,
    latency: i64,
    saved: i64,
}

impl<'a> Counted<'a> {
    fn of(e: &'a UsageEvent) -> Self {
        let u = &e.usage;
        Counted {
            ts: e.ts.timestamp_millis(),
            supplier: e.supplier_id.0,
            provider: e.provider.as_str(),
            model: &e.model,
            request_type: e.request_type.code(),
            route: e.route.code(),
            status: e.status.code(),
            tokens: [u.input as i64, u.output as i64, u.cached_read as i64, u.cache_write as i64, u.reasoning as i64],
            cost: e.cost.0,
            latency: i64::from(e.latency_ms),
            saved: e.saved.0,
        }
    }
}

/// Events summed per `usage_daily` key in memory, so that each rollup row
/// gets one upsert however many events it sums. Provider and model names
/// are numbered as they first appear: adding an event allocates nothing.
#[derive(Default)]
struct Sums {
    numbers: std::collections::HashMap<String, u32>,
    names: Vec<String>,
    sums: std::collections::HashMap<DailyKey, DailySum>,
    events: usize,
}

impl Sums {
    fn number(&mut self, name: &str) -> u32 {
        if let Some(&n) = self.numbers.get(name) {
            return n;
        }
        let n = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_string());
        self.numbers.insert(name.to_string(), n);
        n
    }

    /// Adds one event (saturating: the figures come from clients and providers).
    fn add(&mut self, c: &Counted<'_>) {
        let day = c.ts.div_euclid(86_400_000).saturating_mul(86_400_000);
        let key: DailyKey = (day, c.supplier, self.number(c.provider), self.number(c.model), c.request_type, c.route);
        let t = c.tokens;
        let errors = i64::from(UsageStatus::from_code(c.status).is_none_or(|s| !s.answered()));
        // input + output + cached read + cache write, as the quota counts them.
        let quota = if Route::from_code(c.route).is_some_and(Route::counts_against_quota) {
            t[..4].iter().fold(0i64, |a, v| a.saturating_add(*v))
        } else {
            0
        };
        let sum = self.sums.entry(key).or_default();
        let added = [1, errors, t[0], t[1], t[2], t[3], t[4], c.cost, c.latency, quota, c.saved];
        for (s, v) in sum.iter_mut().zip(added) {
            *s = s.saturating_add(v);
        }
        self.events += 1;
    }

    /// Adds the sums to every rollup and moves the rollup watermark to `to`
    /// (the newest event summed), inside `tx`. Returns how many events that was.
    fn write(self, tx: &Connection, to: i64) -> rusqlite::Result<usize> {
        if self.events == 0 {
            return Ok(0);
        }
        let sql = fold_sql();
        let mut statements = Vec::with_capacity(sql.len());
        for s in sql {
            statements.push(tx.prepare_cached(s)?);
        }
        let name = |n: u32| self.names.get(n as usize).map_or("", String::as_str);
        for (k, m) in &self.sums {
            let day = day_key(DateTime::<Utc>::from_timestamp_millis(k.0).unwrap_or_default());
            let (provider, model) = (name(k.2), name(k.3));
            let keys: [&dyn rusqlite::ToSql; 6] = [&day, &k.1, &provider, &model, &k.4, &k.5];
            let params: Vec<&dyn rusqlite::ToSql> = keys.into_iter().chain(m[..10].iter().map(|v| v as &dyn rusqlite::ToSql)).collect();
            for st in &mut statements {
                // Statements without the quota column take one parameter fewer.
                let k = st.parameter_count().min(params.len());
                st.execute(&params[..k])?;
            }
            if m[10] != 0 {
                // What cache hits saved: kept in the finest rollup only.
                tx.prepare_cached(
                    "UPDATE usage_daily SET saved_micros = saved_micros + ?7
                     WHERE day = ?1 AND supplier_id = ?2 AND provider = ?3 AND model = ?4 AND request_type = ?5 AND route = ?6",
                )?
                .execute(rusqlite::params![day, k.1, provider, model, k.4, k.5, m[10]])?;
            }
        }
        tx.prepare_cached("UPDATE usage_rollup_watermark SET last_event_id = ?1 WHERE id = 1")?.execute([to])?;
        Ok(self.events)
    }
}

/// Column `i` of `r` as text, borrowed from the row.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    r.get_ref(i)?.as_str().map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

/// Adds every event past the watermark to every rollup and moves the
/// watermark to the newest event, inside `tx` (which must hold the write lock
/// from its start: begin it IMMEDIATE). Returns how many events were folded.
///
/// The new events are read once, in id order, and summed per `usage_daily`
/// key in memory ([`Sums`]).
pub(crate) fn fold_rollups(tx: &Transaction<'_>) -> rusqlite::Result<usize> {
    let from: i64 = tx.prepare_cached("SELECT last_event_id FROM usage_rollup_watermark WHERE id = 1")?.query_row([], |r| r.get(0))?;
    let mut sums = Sums::default();
    let mut to = from;
    let mut st = tx.prepare_cached(
        "SELECT id, ts, supplier_id, provider, model, request_type, route, status, input_tokens, output_tokens, cached_tokens,
            cache_write_tokens, reasoning_tokens, cost_micros, latency_ms, saved_micros
         FROM usage_events WHERE id > ?1 ORDER BY id",
    )?;
    let mut rows = st.query([from])?;
    while let Some(r) = rows.next()? {
        sums.add(&Counted {
            ts: r.get(1)?,
            supplier: r.get(2)?,
            provider: text(r, 3)?,
            model: text(r, 4)?,
            request_type: r.get(5)?,
            route: r.get(6)?,
            status: r.get(7)?,
            tokens: [r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?],
            cost: r.get(13)?,
            latency: r.get(14)?,
            saved: r.get(15)?,
        });
        to = r.get(0)?;
    }
    drop(rows);
    drop(st);
    sums.write(tx, to)
}

/// The newest event id if every event is in the rollups (the rollup
/// watermark is the table's last id), so that the rows past the watermark
/// after an insert are exactly the inserted ones.
fn rollups_complete(tx: &Connection) -> rusqlite::Result<Option<i64>> {
    let (watermark, last): (i64, i64) = tx
        .prepare_cached(
            "SELECT (SELECT last_event_id FROM usage_rollup_watermark WHERE id = 1), coalesce((SELECT max(id) FROM usage_events), 0)",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((watermark == last).then_some(last))
}

/// A fold's inserts and rollups inside `tx`: `events` are inserted
/// ([`append_in`]) and every event past the rollup watermark is added to the
/// rollups. When the rollups were complete before and every event was new,
/// the events past the watermark are exactly `events` (numbered after the
/// last id, in their order: the insert's last row id says so), and they are
/// summed from memory instead of read back; otherwise [`fold_rollups`] reads
/// them. Returns how many events were new.
pub(super) fn insert_and_fold(tx: &Transaction<'_>, events: &[UsageEvent]) -> rusqlite::Result<usize> {
    let last = if events.is_empty() { None } else { rollups_complete(tx)? };
    let n = append_in(tx, events)?;
    let newest = last.and_then(|l| l.checked_add(i64::try_from(n).ok()?));
    match newest {
        Some(to) if n == events.len() && tx.last_insert_rowid() == to => {
            #[cfg(test)]
            tests::FROM_MEMORY.with(|c| c.set(c.get() + 1));
            let mut sums = Sums::default();
            for e in events {
                sums.add(&Counted::of(e));
            }
            sums.write(tx, to)?;
        }
        _ => {
            fold_rollups(tx)?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::tests::event;
    use super::*;
    use crate::domain::JournalPos;
    use crate::store::{SqliteLedger, Store, UsageLedger};
    use rusqlite::TransactionBehavior;

    thread_local! {
        /// Folds whose events this thread summed from memory.
        pub(super) static FROM_MEMORY: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// The rollup tables' rows (sorted) and the rollup watermark.
    fn rollups(store: &Store) -> Vec<String> {
        let tables = [
            "usage_daily",
            "usage_daily_dims",
            "usage_monthly_supplier",
            "usage_supplier_month",
            "usage_supplier_day",
            "usage_rollup_watermark",
        ];
        store
            .with_conn(|c| {
                let mut out = Vec::new();
                for t in tables {
                    let mut st = c.prepare(&format!("SELECT * FROM {t}"))?;
                    let n = st.column_count();
                    let rows = st.query_map([], |r| {
                        (0..n).map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}"))).collect::<Result<Vec<_>, _>>()
                    })?;
                    let mut rows: Vec<String> =
                        rows.map(|r| r.map(|cols| format!("{t}: {}", cols.join(" | ")))).collect::<Result<_, _>>()?;
                    rows.sort();
                    out.extend(rows);
                }
                Ok(out)
            })
            .unwrap()
    }

    /// Events over several days, suppliers, providers, models, routes
    /// (cache hits with what they saved among them) and statuses.
    fn varied(ids: std::ops::Range<usize>) -> Vec<UsageEvent> {
        ids.map(|i| {
            let mut e = event(i);
            e.ts = DateTime::from_timestamp_millis(1_780_000_000_000 + i as i64 * 7_000_000).unwrap_or_default();
            e.route = [Route::Platform, Route::Client, Route::Failover, Route::Cache][i % 4];
            e.usage.cache_write = i as u64 % 5;
            e
        })
        .collect()
    }

    #[test]
    fn a_fold_sums_its_new_events_from_memory_as_reading_them_back_does() {
        let tmp = tempfile::tempdir().unwrap();
        let (memory, read) = (Store::open(tmp.path().join("memory.db")).unwrap(), Store::open(tmp.path().join("read.db")).unwrap());
        let at = |offset| JournalPos { segment: 1, offset };
        // The read-back path, as every fold took it before.
        let read_back = |events: &[UsageEvent]| {
            read.with_conn(|c| {
                let tx = rusqlite::Transaction::new_unchecked(c, TransactionBehavior::Immediate)?;
                let n = append_in(&tx, events)?;
                fold_rollups(&tx)?;
                tx.commit()?;
                Ok(n)
            })
            .unwrap()
        };
        let mut ledger = SqliteLedger::open(&memory).unwrap();
        let folds = || FROM_MEMORY.with(std::cell::Cell::get);

        // A first batch, then a larger one: both summed from memory.
        let (first, second) = (varied(0..20), varied(20..260));
        assert_eq!(ledger.fold_batch(0, &first, at(1)).unwrap(), 20);
        assert_eq!(ledger.fold_batch(0, &second, at(2)).unwrap(), 240);
        assert_eq!(folds(), 2, "both batches were summed from memory");
        assert_eq!((read_back(&first), read_back(&second)), (20, 240));
        assert_eq!(rollups(&memory), rollups(&read), "the same rollups and watermark");

        // A batch with a replayed event (already folded): read back, counted once.
        let replayed = [varied(5..6), varied(260..270)].concat();
        assert_eq!(ledger.fold_batch(0, &replayed, at(3)).unwrap(), 10);
        assert_eq!(folds(), 2, "a batch with a replayed event is read back");
        assert_eq!(read_back(&replayed), 10);
        assert_eq!(rollups(&memory), rollups(&read));

        // Events another writer left unfolded: read back with the batch's own.
        let left = varied(270..280);
        assert_eq!(memory.with_conn(|c| append_in(c, &left)).unwrap(), 10);
        assert_eq!(ledger.fold_batch(0, &varied(280..300), at(4)).unwrap(), 20);
        assert_eq!(folds(), 2, "rollups behind the table are caught up by reading back");
        assert_eq!(read_back(&varied(270..300)), 30);
        assert_eq!(rollups(&memory), rollups(&read));

        // And from memory again once they are complete; equal to a rebuild from the events.
        assert_eq!(memory.append_usage(&varied(300..340)).unwrap(), 40);
        assert_eq!(folds(), 3);
        assert_eq!(read_back(&varied(300..340)), 40);
        let folded = rollups(&memory);
        assert_eq!(folded, rollups(&read));
        memory.rebuild_daily_rollups().unwrap();
        assert_eq!(folded, rollups(&memory), "the folded rollups equal a rebuild from the events");
    }
}
