//! Quota leases on PostgreSQL (issue 25): how several instances share one
//! supplier's monthly platform quota without a round trip per request.
//!
//! An instance leases a slice of the supplier's remaining quota
//! ([`lease`]), serves from it locally (`engine::quota_lease::LocalLease`),
//! and asks for more when it runs low. The database keeps, per supplier and
//! UTC quota month:
//! - `quota_months.used_folded`: platform tokens folded into the ledger (the
//!   fold adds them, [`super::ledger`]); its row is the lock every grant,
//!   return and write-off takes (`SELECT … FOR UPDATE`), and the fold takes
//!   it too before it shrinks a lease;
//! - `quota_leases`, one row per instance, cumulative: `granted` in all, and
//!   `folded`, that instance's platform tokens folded since. Its outstanding
//!   part is `max(granted − folded, 0)`; `granted − folded` may go negative
//!   (wedding-day usage served past the grant is debited too).
//!
//! Counted against the quota: `used_folded + Σ outstanding`. A grant is
//! `min(want, quota − that)`, maybe 0, so the grants never exceed the quota.
//! A lease that is not returned stays counted until the instance's journal
//! is folded (each fold shrinks it, in the fold's transaction) and
//! [`close_instance`] releases what is left, or until an account manager
//! writes it off ([`write_off`], audited in the same transaction).
//!
//! Lock order, everywhere: `quota_months` rows (by supplier, month), then
//! `quota_leases` rows. Times come from the caller (its `Clock`).

use super::{PgError, PgStore};
use crate::domain::SupplierId;
use chrono::{DateTime, NaiveDate, Utc};

/// One instance's lease on one supplier's quota month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    pub supplier: SupplierId,
    /// The first day of the UTC quota month (`domain::calendar::month_start`).
    pub month: NaiveDate,
    /// The fleet instance id (also its usage journal's id).
    pub instance: i64,
}

/// What [`lease`] answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Tokens granted by this call (0: the quota has no room).
    pub granted_now: u64,
    /// The lease's cumulative grant after this call.
    pub granted: i64,
    /// The instance's platform tokens folded against this lease so far.
    pub folded: i64,
    pub expires_at: DateTime<Utc>,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub key: LeaseKey,
    pub granted: i64,
    pub folded: i64,
    pub expires_at: DateTime<Utc>,
    /// `active` or `written_off`.
    pub state: String,
}

impl LeaseRow {
    /// What of the grant is not folded usage yet, and still counts against the quota.
    pub fn outstanding(&self) -> i64 {
        self.granted.saturating_sub(self.folded).max(0)
    }

    /// `granted − folded`: negative when more was folded than granted (wedding-day debit).
    pub fn remaining(&self) -> i64 {
        self.granted.saturating_sub(self.folded)
    }

    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }
}

/// What counts against a supplier's quota month in the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonthFigures {
    /// Platform tokens folded into the ledger.
    pub used_folded: i64,
    /// Σ outstanding parts of the leases.
    pub outstanding: i64,
}

impl MonthFigures {
    pub fn counted(&self) -> i64 {
        self.used_folded.saturating_add(self.outstanding)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error("instance {instance} holds no quota lease of supplier {supplier} for {month}")]
    NoLease { supplier: i64, month: NaiveDate, instance: i64 },
    #[error(
        "the quota lease of instance {instance} on supplier {supplier} for {month} runs until {expires_at}: only a lease whose instance is gone (expired) can be written off"
    )]
    NotExpired { supplier: i64, month: NaiveDate, instance: i64, expires_at: DateTime<Utc> },
}

pub type LeaseResult<T> = Result<T, LeaseError>;

/// The size of a grant: `want`, or what the quota has left after the folded
/// usage and the outstanding leases (the asking lease's own included),
/// whichever is smaller; never negative. Saturating: nothing overflows.
pub fn grant_size(want: u64, quota: u64, used_folded: i64, outstanding: i64) -> u64 {
    let left = i128::from(quota) - i128::from(used_folded.max(0)) - i128::from(outstanding.max(0));
    let left = u64::try_from(left.max(0)).unwrap_or(u64::MAX);
    want.min(left)
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Creates the month's lock row if missing (its folded usage from the
/// rollup) and locks it; returns `used_folded`.
async fn lock_month(tx: &deadpool_postgres::Transaction<'_>, supplier: SupplierId, month: NaiveDate) -> Result<i64, tokio_postgres::Error> {
    let ins = tx
        .prepare_cached(
            "INSERT INTO quota_months (supplier_id, month, used_folded)
             VALUES ($1, $2, coalesce((SELECT quota_tokens FROM usage_supplier_month WHERE month = $2 AND supplier_id = $1), 0))
             ON CONFLICT (supplier_id, month) DO NOTHING",
        )
        .await?;
    tx.execute(&ins, &[&supplier.0, &month]).await?;
    let sel = tx.prepare_cached("SELECT used_folded FROM quota_months WHERE supplier_id = $1 AND month = $2 FOR UPDATE").await?;
    Ok(tx.query_one(&sel, &[&supplier.0, &month]).await?.get(0))
}

async fn lock_lease(tx: &deadpool_postgres::Transaction<'_>, key: LeaseKey) -> Result<Option<LeaseRow>, tokio_postgres::Error> {
    let st = tx
        .prepare_cached(
            "SELECT granted, folded, expires_at, state FROM quota_leases
             WHERE supplier_id = $1 AND month = $2 AND instance_id = $3 FOR UPDATE",
        )
        .await?;
    Ok(tx.query_opt(&st, &[&key.supplier.0, &key.month, &key.instance]).await?.map(|r| LeaseRow {
        key,
        granted: r.get(0),
        folded: r.get(1),
        expires_at: r.get(2),
        state: r.get(3),
    }))
}

async fn outstanding_of(
    tx: &deadpool_postgres::Transaction<'_>,
    supplier: SupplierId,
    month: NaiveDate,
) -> Result<i64, tokio_postgres::Error> {
    let st = tx
        .prepare_cached(
            "SELECT coalesce(sum(greatest(granted - folded, 0)), 0)::int8 FROM quota_leases WHERE supplier_id = $1 AND month = $2",
        )
        .await?;
    Ok(tx.query_one(&st, &[&supplier.0, &month]).await?.get(0))
}

/// Grants instance `key.instance` up to `want` more tokens of the supplier's
/// `quota` for the month, in one transaction under the month's row lock, and
/// renews the lease until `expires_at` (`engine::quota_lease::lease_end`:
/// never past the month's end or the supplier's next local midnight). With
/// `want` 0 it only renews. A grant on a lease whose folded usage passed
/// its grant (wedding-day debit) starts from the folded figure: what is
/// already folded is counted once, in `used_folded`.
pub async fn lease(
    store: &PgStore,
    key: LeaseKey,
    want: u64,
    quota: u64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> LeaseResult<Grant> {
    lease_inner(store, key, want, quota, now, expires_at, None).await
}

/// A request's own ask ([`lease`] for a request the lease has no room for):
/// grants `want` or what is left, but only if that is at least `at_least`
/// (what the request lacks). Otherwise nothing is granted and, in the same
/// transaction, the lease gives back everything past `keep` (the instance's
/// spending and reservations): the decision "no room for this request" and
/// the release of what this instance cannot use happen under one lock, so
/// two instances refusing at once never leave a request's worth unused
/// between them. The answer's `granted_now` is 0 when refused.
#[allow(clippy::too_many_arguments)]
pub async fn lease_for_request(
    store: &PgStore,
    key: LeaseKey,
    want: u64,
    at_least: u64,
    keep: u64,
    quota: u64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> LeaseResult<Grant> {
    lease_inner(store, key, want.max(at_least), quota, now, expires_at, Some((at_least, keep))).await
}

async fn lease_inner(
    store: &PgStore,
    key: LeaseKey,
    want: u64,
    quota: u64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    short: Option<(u64, u64)>,
) -> LeaseResult<Grant> {
    let mut client = store.client().await?;
    let db = |e: tokio_postgres::Error| LeaseError::Pg(store.db_err(&e));
    let tx = client.transaction().await.map_err(db)?;
    let used = lock_month(&tx, key.supplier, key.month).await.map_err(db)?;
    let outstanding = outstanding_of(&tx, key.supplier, key.month).await.map_err(db)?;
    let own = lock_lease(&tx, key).await.map_err(db)?;
    let mut g = grant_size(want, quota, used, outstanding);
    let (mut granted, folded) = match &own {
        Some(l) => (l.granted.max(l.folded).saturating_add(big(g)), l.folded),
        None => (big(g), 0),
    };
    if let Some((at_least, keep)) = short
        && g < at_least
    {
        // No room for the request: nothing granted, the unused part given back.
        g = 0;
        granted = match &own {
            Some(l) => l.granted.min(big(keep).max(l.folded)),
            None => 0,
        };
    }
    let up = tx
        .prepare_cached(
            "INSERT INTO quota_leases (supplier_id, month, instance_id, granted, folded, expires_at, state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 0, $5, 'active', $6, $6)
             ON CONFLICT (supplier_id, month, instance_id) DO UPDATE
             SET granted = excluded.granted, expires_at = excluded.expires_at, state = 'active', updated_at = excluded.updated_at",
        )
        .await
        .map_err(db)?;
    tx.execute(&up, &[&key.supplier.0, &key.month, &key.instance, &granted, &expires_at, &now]).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(Grant { granted_now: g, granted, folded, expires_at })
}

/// Gives back what the instance will not use: the lease keeps `keep`
/// (what the instance spent on it in all, plus its reservations in flight),
/// and never less than what is folded. Returns the tokens given back.
pub async fn return_unused(store: &PgStore, key: LeaseKey, keep: u64, now: DateTime<Utc>) -> LeaseResult<u64> {
    let mut client = store.client().await?;
    let db = |e: tokio_postgres::Error| LeaseError::Pg(store.db_err(&e));
    let tx = client.transaction().await.map_err(db)?;
    lock_month(&tx, key.supplier, key.month).await.map_err(db)?;
    let Some(l) = lock_lease(&tx, key).await.map_err(db)? else {
        return Err(LeaseError::NoLease { supplier: key.supplier.0, month: key.month, instance: key.instance });
    };
    let kept = l.granted.min(big(keep).max(l.folded));
    let back = l.granted.saturating_sub(kept).max(0);
    if back > 0 {
        let st = tx
            .prepare_cached(
                "UPDATE quota_leases SET granted = $4, updated_at = $5 WHERE supplier_id = $1 AND month = $2 AND instance_id = $3",
            )
            .await
            .map_err(db)?;
        tx.execute(&st, &[&key.supplier.0, &key.month, &key.instance, &kept, &now]).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(back as u64)
}

/// An account manager writes off the outstanding part of a lease whose
/// instance is gone (expired, not renewed): it stops counting against the
/// quota. One transaction with its `audit_log` row. Returns the tokens
/// written off. Usage of that instance folded later still counts (once).
pub async fn write_off(store: &PgStore, key: LeaseKey, actor: &str, reason: &str, now: DateTime<Utc>) -> LeaseResult<u64> {
    let mut client = store.client().await?;
    let db = |e: tokio_postgres::Error| LeaseError::Pg(store.db_err(&e));
    let tx = client.transaction().await.map_err(db)?;
    lock_month(&tx, key.supplier, key.month).await.map_err(db)?;
    let Some(l) = lock_lease(&tx, key).await.map_err(db)? else {
        return Err(LeaseError::NoLease { supplier: key.supplier.0, month: key.month, instance: key.instance });
    };
    if !l.expired(now) {
        return Err(LeaseError::NotExpired {
            supplier: key.supplier.0,
            month: key.month,
            instance: key.instance,
            expires_at: l.expires_at,
        });
    }
    let amount = l.outstanding();
    tx.execute(
        "UPDATE quota_leases SET granted = least(granted, folded), state = 'written_off', updated_at = $4
         WHERE supplier_id = $1 AND month = $2 AND instance_id = $3",
        &[&key.supplier.0, &key.month, &key.instance, &now],
    )
    .await
    .map_err(db)?;
    let detail = format!(
        "quota lease of instance {} for {} written off: {amount} tokens granted and not folded no longer count against the quota. Reason: {reason}",
        key.instance,
        key.month.format("%Y-%m"),
    );
    tx.execute(
        "INSERT INTO audit_log (ts, actor, action, supplier_id, account_id, result, detail) VALUES ($1, $2, 'quota.lease_write_off', $3, NULL, 'ok', $4)",
        &[&now, &actor, &key.supplier.0, &detail],
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(amount as u64)
}

/// Releases every lease of an instance whose usage journal has been folded
/// to its end (the instance stopped, or its leftovers were folded at its
/// next start): what is folded is all it used, so the outstanding parts go.
/// Returns the tokens released. Call it only after that final fold.
pub async fn close_instance(store: &PgStore, instance: i64, now: DateTime<Utc>) -> LeaseResult<u64> {
    let mut client = store.client().await?;
    let db = |e: tokio_postgres::Error| LeaseError::Pg(store.db_err(&e));
    let tx = client.transaction().await.map_err(db)?;
    let months = tx
        .query(
            "SELECT DISTINCT supplier_id, month FROM quota_leases WHERE instance_id = $1 AND granted > folded ORDER BY 1, 2",
            &[&instance],
        )
        .await
        .map_err(db)?;
    let mut released = 0i64;
    for m in months {
        let (supplier, month): (i64, NaiveDate) = (m.get(0), m.get(1));
        lock_month(&tx, SupplierId(supplier), month).await.map_err(db)?;
        let key = LeaseKey { supplier: SupplierId(supplier), month, instance };
        let Some(l) = lock_lease(&tx, key).await.map_err(db)? else { continue };
        if l.outstanding() == 0 {
            continue;
        }
        tx.execute(
            "UPDATE quota_leases SET granted = folded, updated_at = $4 WHERE supplier_id = $1 AND month = $2 AND instance_id = $3",
            &[&supplier, &month, &instance, &now],
        )
        .await
        .map_err(db)?;
        released = released.saturating_add(l.outstanding());
    }
    tx.commit().await.map_err(db)?;
    Ok(released.max(0) as u64)
}

/// Leases that ended (not renewed: their instance is gone or cut off) while
/// part of their grant is not folded usage: that part still counts against
/// the quota until the instance's journal is folded or an account manager
/// writes it off ([`write_off`]). Oldest end first.
pub async fn stranded(store: &PgStore, now: DateTime<Utc>) -> LeaseResult<Vec<LeaseRow>> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT supplier_id, month, instance_id, granted, folded, expires_at, state FROM quota_leases
             WHERE granted > folded AND expires_at <= $1 AND state = 'active' ORDER BY expires_at, supplier_id, instance_id",
            &[&now],
        )
        .await
        .map_err(|e| store.db_err(&e))?;
    Ok(rows
        .iter()
        .map(|r| LeaseRow {
            key: LeaseKey { supplier: SupplierId(r.get(0)), month: r.get(1), instance: r.get(2) },
            granted: r.get(3),
            folded: r.get(4),
            expires_at: r.get(5),
            state: r.get(6),
        })
        .collect())
}

/// A lease as stored (`None`: the instance never leased that month).
pub async fn lease_row(store: &PgStore, key: LeaseKey) -> LeaseResult<Option<LeaseRow>> {
    let client = store.client().await?;
    let r = client
        .query_opt(
            "SELECT granted, folded, expires_at, state FROM quota_leases WHERE supplier_id = $1 AND month = $2 AND instance_id = $3",
            &[&key.supplier.0, &key.month, &key.instance],
        )
        .await
        .map_err(|e| store.db_err(&e))?;
    Ok(r.map(|r| LeaseRow { key, granted: r.get(0), folded: r.get(1), expires_at: r.get(2), state: r.get(3) }))
}

/// What counts against a supplier's quota month, read in one snapshot.
pub async fn month_figures(store: &PgStore, supplier: SupplierId, month: NaiveDate) -> LeaseResult<MonthFigures> {
    let client = store.client().await?;
    let r = client
        .query_one(
            "SELECT coalesce((SELECT used_folded FROM quota_months WHERE supplier_id = $1 AND month = $2), 0),
                    (SELECT coalesce(sum(greatest(granted - folded, 0)), 0)::int8 FROM quota_leases WHERE supplier_id = $1 AND month = $2)",
            &[&supplier.0, &month],
        )
        .await
        .map_err(|e| store.db_err(&e))?;
    Ok(MonthFigures { used_folded: r.get(0), outstanding: r.get(1) })
}

#[cfg(test)]
mod tests {
    use super::grant_size;

    #[test]
    fn grants_never_exceed_what_is_left() {
        assert_eq!(grant_size(100, 1_000, 0, 0), 100);
        assert_eq!(grant_size(100, 1_000, 850, 0), 100);
        assert_eq!(grant_size(100, 1_000, 850, 100), 50);
        assert_eq!(grant_size(100, 1_000, 900, 100), 0);
        // Over the quota (wedding-day usage): nothing, never negative.
        assert_eq!(grant_size(100, 1_000, 1_500, 0), 0);
        // Garbage figures do not overflow or grant.
        assert_eq!(grant_size(u64::MAX, u64::MAX, i64::MAX, i64::MAX), u64::MAX - (i64::MAX as u64) * 2);
        assert_eq!(grant_size(u64::MAX, 0, -5, -5), 0);
    }
}
