//! The idempotency records' statements, on a connection given by the
//! caller: each change's common case in one statement (`claim_new`,
//! `complete_fitting`, `fail_on`: no transaction needed), and the full
//! forms that run inside a transaction (`claim_on`, `complete_on`,
//! `purge_on`); `pipelined` sends a batch's changes together.

use super::{COLUMNS, Client, Holder, code, ms, read};
use crate::domain::SupplierId;
use crate::domain::idempotency::{BodyState, Decision, Endpoint, Fingerprint, IdempotencyKey, KeyState, decide};
use crate::store::pg::PgStore;
use crate::store::pg::catalog::PgQ;
use crate::store::{AttemptTimes, Change, Changed, Claim, StoreResult, StoredAnswer};
use chrono::{DateTime, Utc};

/// A claim's first statement: the key's in-flight record when the key is
/// new (true), nothing when it exists. One statement: needs no transaction.
#[allow(clippy::too_many_arguments)]
pub(super) async fn claim_new(
    pg: &PgStore,
    c: &Client,
    holder: Holder,
    supplier: SupplierId,
    key: &IdempotencyKey,
    endpoint: Endpoint,
    fingerprint: &Fingerprint,
    times: AttemptTimes,
) -> StoreResult<bool> {
    let (s, k, e, fp) = (supplier.0, key.as_str(), code(endpoint.code()), &fingerprint.0[..]);
    let (now, lease, exp) = (ms(times.now), ms(times.lease_until), ms(times.expires_at));
    let ins = c
        .prepare_cached(
            "INSERT INTO idempotency_keys (supplier_id, key, endpoint, fingerprint, state, created_ms, lease_until_ms, expires_ms, instance_id)
             VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8) ON CONFLICT (supplier_id, key) DO NOTHING",
        )
        .await
        .db(pg)?;
    Ok(c.execute(&ins, &[&s, &k, &e, &fp, &now, &lease, &exp, &holder.instance]).await.db(pg)? == 1)
}

/// A claim's statements, inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub(super) async fn claim_on(
    pg: &PgStore,
    c: &Client,
    holder: Holder,
    supplier: SupplierId,
    key: &IdempotencyKey,
    endpoint: Endpoint,
    fingerprint: &Fingerprint,
    times: AttemptTimes,
) -> StoreResult<Claim> {
    let (s, k, e, fp) = (supplier.0, key.as_str(), code(endpoint.code()), &fingerprint.0[..]);
    let (now, lease, exp) = (ms(times.now), ms(times.lease_until), ms(times.expires_at));
    let me = holder.instance;
    if claim_new(pg, c, holder, supplier, key, endpoint, fingerprint, times).await? {
        return Ok(Claim { decision: Decision::Run, record: None, answer: None });
    }
    // Whether the key's holder is another instance still heartbeating (the database's clock).
    let sel = format!(
        "SELECT {COLUMNS}, body_len, (k.instance_id IS DISTINCT FROM $3 AND EXISTS (
                SELECT 1 FROM instances i WHERE i.id = k.instance_id AND i.stopped_at IS NULL
                   AND i.last_seen > now() - make_interval(secs => $4::BIGINT / 1000.0)))
         FROM idempotency_keys k WHERE supplier_id = $1 AND key = $2 FOR UPDATE OF k"
    );
    let sel = c.prepare_cached(&sel).await.db(pg)?;
    let row = c.query_opt(&sel, &[&s, &k, &me, &holder.gone_after_ms]).await.db(pg)?;
    let old_len: i64 = row.as_ref().map_or(0, |r| if r.get::<_, Option<Vec<u8>>>(10).is_some() { r.get(11) } else { 0 });
    let holder_live = row.as_ref().is_some_and(|r| r.get::<_, bool>(12));
    let found = row.as_ref().and_then(read);
    // Live only for an attempt still in flight: a finished record decides by its state.
    let live = holder_live && found.as_ref().is_some_and(|f| f.0.state == KeyState::InFlight && times.now < f.0.lease_until);
    let decision = decide(found.as_ref().map(|f| &f.0), live, endpoint, fingerprint, times.now);
    match decision {
        Decision::Run => {
            let up = c
                .prepare_cached(
                    "INSERT INTO idempotency_keys (supplier_id, key, endpoint, fingerprint, state, created_ms, lease_until_ms, expires_ms, instance_id)
                     VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8)
                     ON CONFLICT (supplier_id, key) DO UPDATE SET endpoint = excluded.endpoint, fingerprint = excluded.fingerprint,
                        instance_id = excluded.instance_id,
                        state = 0, status = NULL, request_id = NULL, headers = '[]', body = NULL, body_state = 0, body_len = 0,
                        created_ms = excluded.created_ms, lease_until_ms = excluded.lease_until_ms,
                        expires_ms = excluded.expires_ms, completed_ms = NULL",
                )
                .await
                .db(pg)?;
            c.execute(&up, &[&s, &k, &e, &fp, &now, &lease, &exp, &me]).await.db(pg)?;
            if old_len > 0 {
                // An expired record's body goes with it (the counter after the row: the lock order).
                c.execute("UPDATE idempotency_kept SET bytes = greatest(bytes - $1, 0) WHERE id = 1", &[&old_len]).await.db(pg)?;
            }
            Ok(Claim { decision, record: found.map(|f| f.0), answer: None })
        }
        Decision::Replay => {
            let (record, answer) = found.map_or((None, None), |(r, a)| (Some(r), a));
            Ok(Claim { decision, record, answer })
        }
        _ => Ok(Claim { decision, record: found.map(|f| f.0), answer: None }),
    }
}

/// What [`complete_fitting`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fitted {
    /// The key has no in-flight attempt with this body (nothing to do).
    NotOurs,
    /// Completed (its body kept, or not to be kept).
    Done,
    /// The body is to be kept but does not fit under the cap: nothing was
    /// changed (in a transaction, the key's row stays locked).
    NoRoom,
}

/// A completion in one statement, when its body is not kept or fits under
/// the cap as it is (the common case): the key's own row locked first, then
/// the counter (the lock order). Needs no transaction.
#[allow(clippy::too_many_arguments)]
pub(super) async fn complete_fitting(
    pg: &PgStore,
    c: &Client,
    supplier: SupplierId,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    answer: &StoredAnswer,
    keep_under: Option<u64>,
    now: DateTime<Utc>,
) -> StoreResult<Fitted> {
    let len = i64::try_from(answer.body.len()).unwrap_or(i64::MAX);
    let max_total = keep_under.map_or(0, |m| i64::try_from(m).unwrap_or(i64::MAX));
    let keep = keep_under.is_some() && len <= max_total;
    let (s, k, fp) = (supplier.0, key.as_str(), &fingerprint.0[..]);
    let headers = serde_json::to_string(&answer.headers).unwrap_or_else(|_| "[]".into());
    let (body, body_state, body_len) = if keep { (Some(&answer.body[..]), BodyState::Kept, len) } else { (None, BodyState::TooLarge, 0) };
    let (status, state) = (i32::from(answer.status), code(body_state.code()));
    // Prepared once per connection: one round trip.
    let st = c
        .prepare_cached(
            "WITH own AS (
                SELECT supplier_id, key FROM idempotency_keys
                 WHERE supplier_id = $1 AND key = $2 AND fingerprint = $3 AND state = 0 FOR UPDATE),
             fits AS (
                UPDATE idempotency_kept SET bytes = bytes + $9
                 WHERE id = 1 AND $11 AND bytes + $9 <= $12 AND EXISTS (SELECT 1 FROM own) RETURNING 1),
             done AS (
                UPDATE idempotency_keys k SET state = 1, status = $4, request_id = $5, headers = $6, body = $7,
                       body_state = $8, body_len = $9, completed_ms = $10
                  FROM own WHERE k.supplier_id = own.supplier_id AND k.key = own.key
                   AND (NOT $11 OR EXISTS (SELECT 1 FROM fits))
                RETURNING 1)
             SELECT EXISTS (SELECT 1 FROM own), EXISTS (SELECT 1 FROM done)",
        )
        .await
        .db(pg)?;
    let row = c
        .query_one(&st, &[&s, &k, &fp, &status, &answer.request_id, &headers, &body, &state, &body_len, &ms(now), &keep, &max_total])
        .await
        .db(pg)?;
    Ok(match (row.get::<_, bool>(0), row.get::<_, bool>(1)) {
        (false, _) => Fitted::NotOurs,
        (true, true) => Fitted::Done,
        (true, false) => Fitted::NoRoom,
    })
}

/// A completion's statements, inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub(super) async fn complete_on(
    pg: &PgStore,
    c: &Client,
    supplier: SupplierId,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    answer: &StoredAnswer,
    keep_under: Option<u64>,
    now: DateTime<Utc>,
) -> StoreResult<Vec<(SupplierId, IdempotencyKey)>> {
    match complete_fitting(pg, c, supplier, key, fingerprint, answer, keep_under, now).await? {
        // Not our attempt in flight, or completed in the one statement.
        Fitted::NotOurs | Fitted::Done => return Ok(Vec::new()),
        Fitted::NoRoom => {}
    }
    // The body does not fit under the cap as it is: the oldest kept bodies
    // that no one is changing now are dropped to make room (the key's own row
    // is locked already: the lock order).
    let len = i64::try_from(answer.body.len()).unwrap_or(i64::MAX);
    let max_total = keep_under.map_or(0, |m| i64::try_from(m).unwrap_or(i64::MAX));
    let mut keep = true;
    let (s, k, fp) = (supplier.0, key.as_str(), &fingerprint.0[..]);
    let mut evicted = Vec::new();
    let mut kept: i64 = c.query_one("SELECT bytes FROM idempotency_kept WHERE id = 1 FOR UPDATE", &[]).await.db(pg)?.get(0);
    let mut freed = 0i64;
    while kept.saturating_add(len) > max_total {
        let oldest = c
            .query(
                "SELECT supplier_id, key, body_len FROM idempotency_keys WHERE body IS NOT NULL
                 ORDER BY completed_ms, supplier_id, key LIMIT 64 FOR UPDATE SKIP LOCKED",
                &[],
            )
            .await
            .db(pg)?;
        if oldest.is_empty() {
            // What is kept is being changed by others: this body is not kept.
            keep = false;
            break;
        }
        for r in oldest {
            if kept.saturating_add(len) <= max_total {
                break;
            }
            let (os, ok): (i64, String) = (r.get(0), r.get(1));
            // Only a body still there counts (another change of the same
            // batch, pipelined beside this one, may have dropped it).
            let dropped = c
                .query_opt(
                    "UPDATE idempotency_keys SET body = NULL, body_state = 3, body_len = 0
                     WHERE supplier_id = $1 AND key = $2 AND body IS NOT NULL RETURNING $3::BIGINT",
                    &[&os, &ok, &r.get::<_, i64>(2)],
                )
                .await
                .db(pg)?;
            let Some(n) = dropped.map(|d| d.get::<_, i64>(0)) else { continue };
            kept = kept.saturating_sub(n.max(0)).max(0);
            freed = freed.saturating_add(n.max(0));
            if let Ok(ok) = IdempotencyKey::parse(ok.as_bytes()) {
                evicted.push((SupplierId(os), ok));
            }
        }
    }
    // Relative to the stored total: other changes pipelined in the same
    // batch may have counted their bodies meanwhile.
    let added = if keep { len } else { 0 };
    c.execute("UPDATE idempotency_kept SET bytes = greatest(bytes - $1, 0) + $2 WHERE id = 1", &[&freed, &added]).await.db(pg)?;
    let headers = serde_json::to_string(&answer.headers).unwrap_or_else(|_| "[]".into());
    let (body, body_state, body_len) = if keep { (Some(&answer.body[..]), BodyState::Kept, len) } else { (None, BodyState::TooLarge, 0) };
    let done = c
        .prepare_cached(
            "UPDATE idempotency_keys SET state = 1, status = $4, request_id = $5, headers = $6, body = $7, body_state = $8,
                body_len = $9, completed_ms = $10
             WHERE supplier_id = $1 AND key = $2 AND fingerprint = $3 AND state = 0",
        )
        .await
        .db(pg)?;
    c.execute(
        &done,
        &[&s, &k, &fp, &i32::from(answer.status), &answer.request_id, &headers, &body, &code(body_state.code()), &body_len, &ms(now)],
    )
    .await
    .db(pg)?;
    Ok(evicted)
}

/// A failed attempt's one statement.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fail_on(
    pg: &PgStore,
    c: &Client,
    supplier: SupplierId,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    status: Option<u16>,
    request_id: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let failed = c
        .prepare_cached(
            "UPDATE idempotency_keys SET state = 2, status = $4, request_id = $5, completed_ms = $6
             WHERE supplier_id = $1 AND key = $2 AND fingerprint = $3 AND state = 0",
        )
        .await
        .db(pg)?;
    c.execute(&failed, &[&supplier.0, &key.as_str(), &&fingerprint.0[..], &status.map(i32::from), &request_id, &ms(now)]).await.db(pg)?;
    Ok(())
}

/// The purge's statements, inside the caller's transaction.
pub(super) async fn purge_on(pg: &PgStore, c: &Client, now: DateTime<Utc>) -> StoreResult<usize> {
    let rows = c
        .query(
            "DELETE FROM idempotency_keys WHERE (supplier_id, key) IN (
                SELECT supplier_id, key FROM idempotency_keys WHERE expires_ms <= $1 FOR UPDATE SKIP LOCKED)
             RETURNING CASE WHEN body IS NULL THEN 0 ELSE body_len END",
            &[&ms(now)],
        )
        .await
        .db(pg)?;
    let freed = rows.iter().fold(0i64, |a, r| a.saturating_add(r.get::<_, i64>(0).max(0)));
    if freed > 0 {
        c.execute("UPDATE idempotency_kept SET bytes = greatest(bytes - $1, 0) WHERE id = 1", &[&freed]).await.db(pg)?;
    }
    Ok(rows.len())
}

/// Runs `changes` on `c` (inside its transaction): one chain per key, the
/// chains polled together, so their statements are pipelined; purges after.
/// Changes grouped as they may run: one chain per key (in order), the
/// chains independent of each other; purges apart (after the chains).
pub(super) type Indexed<'a> = Vec<(usize, &'a Change)>;
pub(super) fn chains_of(changes: &[Change]) -> (Vec<Indexed<'_>>, Indexed<'_>) {
    let mut chains: Vec<Indexed<'_>> = Vec::new();
    let mut by_key: std::collections::HashMap<(i64, &str), usize> = std::collections::HashMap::new();
    let mut purges = Vec::new();
    for (i, ch) in changes.iter().enumerate() {
        match ch.key().map(|(s, k)| (s.0, k.as_str())) {
            Some(id) => {
                let at = *by_key.entry(id).or_insert_with(|| {
                    chains.push(Vec::new());
                    chains.len() - 1
                });
                chains[at].push((i, ch));
            }
            None => purges.push((i, ch)),
        }
    }
    (chains, purges)
}

pub(super) async fn pipelined(pg: &PgStore, c: &Client, holder: Holder, changes: &[Change]) -> Vec<Changed> {
    let (chains, purges) = chains_of(changes);
    let runs = chains.into_iter().map(|chain| async move {
        let mut out = Vec::with_capacity(chain.len());
        for (i, ch) in chain {
            out.push((i, run_change(pg, c, holder, ch).await));
        }
        out
    });
    let mut done: Vec<(usize, Changed)> = futures::future::join_all(runs).await.into_iter().flatten().collect();
    for (i, ch) in purges {
        done.push((i, run_change(pg, c, holder, ch).await));
    }
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// One change's statements on `c`, inside its transaction.
pub(super) async fn run_change(pg: &PgStore, c: &Client, holder: Holder, ch: &Change) -> Changed {
    match ch {
        Change::Claim { supplier, key, endpoint, fingerprint, times } => {
            Changed::Claim(claim_on(pg, c, holder, *supplier, key, *endpoint, fingerprint, *times).await)
        }
        Change::Complete { supplier, key, fingerprint, answer, keep_under, now } => {
            Changed::Complete(complete_on(pg, c, *supplier, key, fingerprint, answer, *keep_under, *now).await)
        }
        Change::Fail { supplier, key, fingerprint, status, request_id, now } => {
            Changed::Fail(fail_on(pg, c, *supplier, key, fingerprint, *status, request_id.as_deref(), *now).await)
        }
        Change::Purge { now } => Changed::Purge(purge_on(pg, c, *now).await),
    }
}

/// One claim of a batch's, for [`claims_new`].
pub(super) struct NewClaim<'a> {
    pub supplier: SupplierId,
    pub key: &'a IdempotencyKey,
    pub endpoint: Endpoint,
    pub fingerprint: &'a Fingerprint,
    pub times: AttemptTimes,
}

/// [`claim_new`] for several keys (each at most once) in one statement:
/// whether each was new (its in-flight record inserted) or exists.
pub(super) async fn claims_new(pg: &PgStore, c: &Client, holder: Holder, claims: &[NewClaim<'_>]) -> StoreResult<Vec<bool>> {
    let n = claims.len();
    let (mut s, mut k, mut e, mut fp) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut now, mut lease, mut exp) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for cl in claims {
        s.push(cl.supplier.0);
        k.push(cl.key.as_str());
        e.push(code(cl.endpoint.code()));
        fp.push(&cl.fingerprint.0[..]);
        now.push(ms(cl.times.now));
        lease.push(ms(cl.times.lease_until));
        exp.push(ms(cl.times.expires_at));
    }
    let ins = c
        .prepare_cached(
            "INSERT INTO idempotency_keys (supplier_id, key, endpoint, fingerprint, state, created_ms, lease_until_ms, expires_ms, instance_id)
             SELECT s, k, e, fp, 0, now, lease, exp, $8
               FROM unnest($1::BIGINT[], $2::TEXT[], $3::SMALLINT[], $4::BYTEA[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[])
                    AS u(s, k, e, fp, now, lease, exp)
             ON CONFLICT (supplier_id, key) DO NOTHING RETURNING supplier_id, key",
        )
        .await
        .db(pg)?;
    let rows = c.query(&ins, &[&s, &k, &e, &fp, &now, &lease, &exp, &holder.instance]).await.db(pg)?;
    let new: std::collections::HashSet<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(claims.iter().map(|cl| new.contains(&(cl.supplier.0, cl.key.as_str().to_owned()))).collect())
}

/// One completion of a batch's, for [`completes_fitting`].
pub(super) struct NewAnswer<'a> {
    pub supplier: SupplierId,
    pub key: &'a IdempotencyKey,
    pub fingerprint: &'a Fingerprint,
    pub answer: &'a StoredAnswer,
    pub keep_under: Option<u64>,
    pub now: DateTime<Utc>,
}

/// [`complete_fitting`] for several keys (each at most once) in one
/// statement: the keys' own rows locked first, then the counter, once for
/// the lot (the lock order). The bodies to keep are kept together when
/// their sum fits under the cap as it is (the smallest `keep_under` of the
/// batch), otherwise none of them is changed ([`Fitted::NoRoom`]: each goes
/// through [`complete_on`], which makes room); the bodies not kept complete
/// either way.
pub(super) async fn completes_fitting(pg: &PgStore, c: &Client, answers: &[NewAnswer<'_>]) -> StoreResult<Vec<Fitted>> {
    let n = answers.len();
    let mut cols = Cols::with_capacity(n);
    let mut max_total = i64::MAX;
    for (i, a) in answers.iter().enumerate() {
        let len = i64::try_from(a.answer.body.len()).unwrap_or(i64::MAX);
        let cap = a.keep_under.map(|m| i64::try_from(m).unwrap_or(i64::MAX));
        let keep = cap.is_some_and(|m| len <= m);
        if keep {
            max_total = max_total.min(cap.unwrap_or(i64::MAX));
        }
        let (body, body_state, body_len) =
            if keep { (Some(&a.answer.body[..]), BodyState::Kept, len) } else { (None, BodyState::TooLarge, 0) };
        cols.i.push(i64::try_from(i).unwrap_or(i64::MAX));
        cols.s.push(a.supplier.0);
        cols.k.push(a.key.as_str());
        cols.fp.push(&a.fingerprint.0[..]);
        cols.status.push(i32::from(a.answer.status));
        cols.rid.push(a.answer.request_id.as_deref());
        cols.headers.push(serde_json::to_string(&a.answer.headers).unwrap_or_else(|_| "[]".into()));
        cols.body.push(body);
        cols.state.push(code(body_state.code()));
        cols.len.push(body_len);
        cols.at.push(ms(a.now));
        cols.keep.push(keep);
    }
    let st = c
        .prepare_cached(
            "WITH v AS (
                SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BYTEA[], $5::INTEGER[], $6::TEXT[], $7::TEXT[],
                                     $8::BYTEA[], $9::SMALLINT[], $10::BIGINT[], $11::BIGINT[], $12::BOOLEAN[])
                    AS u(i, s, k, fp, status, rid, headers, body, bstate, blen, at, keep)),
             own AS (
                SELECT v.* FROM idempotency_keys k JOIN v ON k.supplier_id = v.s AND k.key = v.k AND k.fingerprint = v.fp
                 WHERE k.state = 0 FOR UPDATE OF k),
             fits AS (
                UPDATE idempotency_kept SET bytes = bytes + (SELECT sum(blen) FROM own WHERE keep)::BIGINT
                 WHERE id = 1 AND EXISTS (SELECT 1 FROM own WHERE keep)
                   AND bytes + (SELECT sum(blen) FROM own WHERE keep)::BIGINT <= $13::BIGINT RETURNING 1),
             done AS (
                UPDATE idempotency_keys k SET state = 1, status = own.status, request_id = own.rid, headers = own.headers,
                       body = own.body, body_state = own.bstate, body_len = own.blen, completed_ms = own.at
                  FROM own WHERE k.supplier_id = own.s AND k.key = own.k
                   AND (NOT own.keep OR EXISTS (SELECT 1 FROM fits))
                RETURNING own.i)
             SELECT own.i, EXISTS (SELECT 1 FROM done WHERE done.i = own.i) FROM own",
        )
        .await
        .db(pg)?;
    let rows = c
        .query(
            &st,
            &[
                &cols.i,
                &cols.s,
                &cols.k,
                &cols.fp,
                &cols.status,
                &cols.rid,
                &cols.headers,
                &cols.body,
                &cols.state,
                &cols.len,
                &cols.at,
                &cols.keep,
                &max_total,
            ],
        )
        .await
        .db(pg)?;
    let mut out = vec![Fitted::NotOurs; n];
    for r in rows {
        let at = usize::try_from(r.get::<_, i64>(0)).unwrap_or(usize::MAX);
        if let Some(slot) = out.get_mut(at) {
            *slot = if r.get::<_, bool>(1) { Fitted::Done } else { Fitted::NoRoom };
        }
    }
    Ok(out)
}

/// [`completes_fitting`]'s parameters, one array per column.
struct Cols<'a> {
    i: Vec<i64>,
    s: Vec<i64>,
    k: Vec<&'a str>,
    fp: Vec<&'a [u8]>,
    status: Vec<i32>,
    rid: Vec<Option<&'a str>>,
    headers: Vec<String>,
    body: Vec<Option<&'a [u8]>>,
    state: Vec<i16>,
    len: Vec<i64>,
    at: Vec<i64>,
    keep: Vec<bool>,
}

impl Cols<'_> {
    fn with_capacity(n: usize) -> Self {
        Self {
            i: Vec::with_capacity(n),
            s: Vec::with_capacity(n),
            k: Vec::with_capacity(n),
            fp: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            rid: Vec::with_capacity(n),
            headers: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
            state: Vec::with_capacity(n),
            len: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            keep: Vec::with_capacity(n),
        }
    }
}
