//! Provider health history: raw probe samples (kept 24 h by default), 5-minute
//! aggregates (30 days) and hourly aggregates (a year), the compaction that
//! rolls each level into the next and deletes what is older, and the queries
//! for uptime and chart series, which read all three levels so figures stay
//! the same before and after compaction.

use super::pg::health as pgh;
use super::{Store, StoreResult};
use crate::domain::AccountId;
use crate::domain::health::{BucketCounts, Retention, SampleSource, bucket_start};
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

/// A sample to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSampleRow {
    pub account: AccountId,
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub latency_ms: u32,
    pub error_class: Option<String>,
    pub source: SampleSource,
}

/// A bucket of health history to store directly (the demo's generated
/// history; the monitor writes raw samples and compaction makes buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthAggregateRow {
    pub account: AccountId,
    pub bucket_secs: i64,
    pub bucket_start: DateTime<Utc>,
    pub samples: u64,
    pub failures: u64,
    /// Sum and maximum of the successful samples' latency.
    pub latency_ms_sum: u64,
    pub latency_ms_max: u64,
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CompactionReport {
    pub raw_rolled: u64,
    pub fine_rolled: u64,
    pub coarse_deleted: u64,
}

/// One point of a chart series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub bucket_start: DateTime<Utc>,
    pub samples: u64,
    pub failures: u64,
    pub error_percent: f64,
    pub avg_latency_ms: Option<u64>,
    pub max_latency_ms: u64,
}

/// Samples of all three levels in `[from, to)` as `(ts_ms, samples, failures,
/// latency_sum, latency_max)` rows. Aggregates are placed at their bucket start.
const UNION: &str = "
    SELECT ts, 1 AS n, 1 - ok AS f, CASE WHEN ok = 1 THEN latency_ms ELSE 0 END AS ls,
           CASE WHEN ok = 1 THEN latency_ms ELSE 0 END AS lm, CASE WHEN ok = 1 THEN 1 ELSE 0 END AS okn
      FROM health_samples WHERE account_id = ?1 AND ts >= ?2 AND ts < ?3
    UNION ALL
    SELECT bucket_start, samples, failures, latency_ms_sum, latency_ms_max, samples - failures
      FROM health_aggregates WHERE account_id = ?1 AND bucket_start >= ?2 AND bucket_start < ?3";

impl Store {
    /// Appends samples in one transaction.
    pub fn insert_health_samples(&self, rows: &[HealthSampleRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(pg) = self.postgres() {
            let rows = rows.to_vec();
            return pg.block(move |pg| async move { pgh::insert_samples(&pg, rows).await });
        }
        let mut conn = self.conn()?;
        let r = (|| {
            let tx = conn.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO health_samples (account_id, ts, ok, latency_ms, error_class, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for s in rows {
                    st.execute(params![s.account.0, s.at.timestamp_millis(), s.ok, s.latency_ms, s.error_class, s.source.as_str()])?;
                }
            }
            tx.commit()
        })();
        r.map_err(|e| self.err(e))
    }

    /// Adds buckets in one transaction (a bucket already there is added to,
    /// as compaction does).
    pub fn insert_health_aggregates(&self, rows: &[HealthAggregateRow]) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let rows = rows.to_vec();
            return pg.block(move |pg| async move { pgh::insert_aggregates(&pg, rows).await });
        }
        let mut conn = self.conn()?;
        let r = (|| {
            let tx = conn.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO health_aggregates (account_id, bucket_secs, bucket_start, samples, failures, latency_ms_sum, latency_ms_max)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (account_id, bucket_secs, bucket_start) DO UPDATE SET
                       samples = samples + excluded.samples, failures = failures + excluded.failures,
                       latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum,
                       latency_ms_max = MAX(latency_ms_max, excluded.latency_ms_max)",
                )?;
                for a in rows {
                    let failures = a.failures.min(a.samples);
                    st.execute(params![
                        a.account.0,
                        a.bucket_secs.max(1),
                        a.bucket_start.timestamp_millis(),
                        a.samples as i64,
                        failures as i64,
                        a.latency_ms_sum.min(i64::MAX as u64) as i64,
                        a.latency_ms_max.min(i64::MAX as u64) as i64
                    ])?;
                }
            }
            tx.commit()
        })();
        r.map_err(|e| self.err(e))
    }

    /// Sample, failure and latency counts of an account over `[from, to)`.
    pub fn health_counts(&self, account: AccountId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<BucketCounts> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgh::counts(&pg, account, from, to).await });
        }
        self.with_conn(|c| {
            c.query_row(
                &format!("SELECT COALESCE(SUM(n),0), COALESCE(SUM(f),0), COALESCE(SUM(ls),0), COALESCE(MAX(lm),0) FROM ({UNION})"),
                params![account.0, from.timestamp_millis(), to.timestamp_millis()],
                |r| {
                    Ok(BucketCounts {
                        samples: r.get::<_, i64>(0)? as u64,
                        failures: r.get::<_, i64>(1)? as u64,
                        latency_ms_sum: r.get::<_, i64>(2)? as u64,
                        latency_ms_max: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
        })
    }

    /// [`Self::health_counts`] of every account at once (accounts without samples are left out).
    pub fn health_counts_all(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<std::collections::HashMap<AccountId, BucketCounts>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgh::counts_all(&pg, from, to).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT account_id, SUM(n), SUM(f), SUM(ls), MAX(lm) FROM (
                    SELECT account_id, 1 AS n, 1 - ok AS f, CASE WHEN ok = 1 THEN latency_ms ELSE 0 END AS ls,
                           CASE WHEN ok = 1 THEN latency_ms ELSE 0 END AS lm
                      FROM health_samples WHERE ts >= ?1 AND ts < ?2
                    UNION ALL
                    SELECT account_id, samples, failures, latency_ms_sum, latency_ms_max
                      FROM health_aggregates WHERE bucket_start >= ?1 AND bucket_start < ?2)
                 GROUP BY account_id",
            )?;
            let rows = st.query_map(params![from.timestamp_millis(), to.timestamp_millis()], |r| {
                Ok((
                    AccountId(r.get(0)?),
                    BucketCounts {
                        samples: r.get::<_, i64>(1)? as u64,
                        failures: r.get::<_, i64>(2)? as u64,
                        latency_ms_sum: r.get::<_, i64>(3)? as u64,
                        latency_ms_max: r.get::<_, i64>(4)? as u64,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    /// Chart series of an account over `[from, to)` in buckets of `bucket_secs`
    /// (buckets without samples are left out).
    pub fn health_series(
        &self,
        account: AccountId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_secs: i64,
    ) -> StoreResult<Vec<SeriesPoint>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { pgh::series(&pg, account, from, to, bucket_secs).await });
        }
        let b = bucket_secs.max(1) * 1000;
        self.with_conn(|c| {
            let mut st = c.prepare(&format!(
                "SELECT (ts / {b}) * {b} AS bs, SUM(n), SUM(f), SUM(ls), MAX(lm), SUM(okn) FROM ({UNION}) GROUP BY bs ORDER BY bs"
            ))?;
            let rows = st.query_map(params![account.0, from.timestamp_millis(), to.timestamp_millis()], |r| {
                let samples = r.get::<_, i64>(1)? as u64;
                let failures = r.get::<_, i64>(2)? as u64;
                let ok = r.get::<_, i64>(5)? as u64;
                let sum = r.get::<_, i64>(3)? as u64;
                Ok(SeriesPoint {
                    bucket_start: DateTime::from_timestamp_millis(r.get(0)?).unwrap_or_default(),
                    samples,
                    failures,
                    error_percent: if samples == 0 { 0.0 } else { failures as f64 * 100.0 / samples as f64 },
                    avg_latency_ms: (ok > 0).then(|| sum / ok),
                    max_latency_ms: r.get::<_, i64>(4)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    /// The newest probe sample of every account that has one in the raw table
    /// (the last 24 h by default), for a console without a running monitor.
    pub fn health_last_probes(&self) -> StoreResult<Vec<HealthSampleRow>> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { pgh::last_probes(&pg).await });
        }
        self.with_conn(|c| {
            // SQLite takes the bare columns from the row holding MAX(ts).
            let mut st = c.prepare(
                "SELECT account_id, MAX(ts), ok, latency_ms, error_class FROM health_samples WHERE source = 'probe' GROUP BY account_id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(HealthSampleRow {
                    account: AccountId(r.get(0)?),
                    at: DateTime::from_timestamp_millis(r.get(1)?).unwrap_or_default(),
                    ok: r.get(2)?,
                    latency_ms: r.get::<_, i64>(3)?.clamp(0, u32::MAX as i64) as u32,
                    error_class: r.get(4)?,
                    source: SampleSource::Probe,
                })
            })?;
            rows.collect()
        })
    }

    /// Rolls raw samples older than the raw retention into fine buckets, fine
    /// buckets older than theirs into coarse buckets, and deletes coarse
    /// buckets older than a year; all in one transaction, so every sample is
    /// counted at exactly one level at any time.
    pub fn compact_health(&self, now: DateTime<Utc>, r: &Retention) -> StoreResult<CompactionReport> {
        if let Some(pg) = self.postgres() {
            let r = *r;
            return pg.block(move |pg| async move { pgh::compact(&pg, now, r).await });
        }
        let now_ms = now.timestamp_millis();
        // Cut-offs on bucket boundaries, so a bucket is never split between levels.
        let raw_cut = bucket_start(now_ms - r.raw_secs * 1000, r.fine_bucket_secs);
        let fine_cut = bucket_start(now_ms - r.fine_keep_secs * 1000, r.coarse_bucket_secs);
        let coarse_cut = now_ms - r.coarse_keep_secs * 1000;
        let (fb, cb) = (r.fine_bucket_secs.max(1) * 1000, r.coarse_bucket_secs.max(1) * 1000);
        let mut conn = self.conn()?;
        let res = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                &format!(
                    "INSERT INTO health_aggregates (account_id, bucket_secs, bucket_start, samples, failures, latency_ms_sum, latency_ms_max)
                     SELECT account_id, ?2, (ts / {fb}) * {fb}, COUNT(*), SUM(1 - ok),
                            SUM(CASE WHEN ok = 1 THEN latency_ms ELSE 0 END), MAX(CASE WHEN ok = 1 THEN latency_ms ELSE 0 END)
                       FROM health_samples WHERE ts < ?1 GROUP BY account_id, (ts / {fb}) * {fb}
                     ON CONFLICT (account_id, bucket_secs, bucket_start) DO UPDATE SET
                       samples = samples + excluded.samples, failures = failures + excluded.failures,
                       latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum,
                       latency_ms_max = MAX(latency_ms_max, excluded.latency_ms_max)"
                ),
                params![raw_cut, r.fine_bucket_secs],
            )?;
            let raw_rolled = tx.execute("DELETE FROM health_samples WHERE ts < ?1", params![raw_cut])? as u64;
            tx.execute(
                &format!(
                    "INSERT INTO health_aggregates (account_id, bucket_secs, bucket_start, samples, failures, latency_ms_sum, latency_ms_max)
                     SELECT account_id, ?3, (bucket_start / {cb}) * {cb}, SUM(samples), SUM(failures), SUM(latency_ms_sum), MAX(latency_ms_max)
                       FROM health_aggregates WHERE bucket_secs = ?2 AND bucket_start < ?1
                      GROUP BY account_id, (bucket_start / {cb}) * {cb}
                     ON CONFLICT (account_id, bucket_secs, bucket_start) DO UPDATE SET
                       samples = samples + excluded.samples, failures = failures + excluded.failures,
                       latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum,
                       latency_ms_max = MAX(latency_ms_max, excluded.latency_ms_max)"
                ),
                params![fine_cut, r.fine_bucket_secs, r.coarse_bucket_secs],
            )?;
            let fine_rolled = tx.execute(
                "DELETE FROM health_aggregates WHERE bucket_secs = ?2 AND bucket_start < ?1",
                params![fine_cut, r.fine_bucket_secs],
            )? as u64;
            let coarse_deleted = tx.execute(
                "DELETE FROM health_aggregates WHERE bucket_secs = ?2 AND bucket_start < ?1",
                params![coarse_cut, r.coarse_bucket_secs],
            )? as u64;
            tx.commit()?;
            Ok(CompactionReport { raw_rolled, fine_rolled, coarse_deleted })
        })();
        res.map_err(|e| self.err(e))
    }

    /// Rows held at each level: (raw samples, fine buckets, coarse buckets).
    pub fn health_history_sizes(&self, r: &Retention) -> StoreResult<(u64, u64, u64)> {
        if let Some(pg) = self.postgres() {
            let r = *r;
            return pg.block(move |pg| async move { pgh::history_sizes(&pg, r).await });
        }
        self.with_conn(|c| {
            let raw: i64 = c.query_row("SELECT COUNT(*) FROM health_samples", [], |x| x.get(0))?;
            let fine: i64 =
                c.query_row("SELECT COUNT(*) FROM health_aggregates WHERE bucket_secs = ?1", [r.fine_bucket_secs], |x| x.get(0))?;
            let coarse: i64 =
                c.query_row("SELECT COUNT(*) FROM health_aggregates WHERE bucket_secs = ?1", [r.coarse_bucket_secs], |x| x.get(0))?;
            Ok((raw as u64, fine as u64, coarse as u64))
        })
    }
}
