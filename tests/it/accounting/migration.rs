//! The usage-event-id migration on an existing ledger: old rows keep their
//! request id as their event id (so retried writes and old mirror pairs
//! still match), and new rows may share a client request id.

use switchboard::domain::{Micros, ProviderKind, RequestType, Route, SupplierId, TokenUsage, UsageEvent, UsageStatus};
use switchboard::store::{Store, schema};

/// The schema version just before the event-id migration (found by its
/// text: migrations are renumbered when branches merge).
fn before_event_ids() -> i64 {
    schema::MIGRATIONS.iter().position(|m| m.contains("RENAME COLUMN request_id TO event_id")).expect("the event-id migration") as i64
}

fn event(event_id: &str, request_id: &str, route: Route) -> UsageEvent {
    UsageEvent {
        saved: switchboard::domain::Micros::ZERO,
        event_id: event_id.into(),
        request_id: request_id.into(),
        idempotency_key: None,
        ts: super::november(),
        supplier_id: SupplierId(1),
        account_id: None,
        provider: ProviderKind::OpenAi,
        model: "gpt-4o-mini".into(),
        request_type: RequestType::EmailTemplate,
        route,
        usage: TokenUsage { input: 10, output: 5, ..TokenUsage::default() },
        cost: Micros(3),
        latency_ms: 100,
        status: UsageStatus::Ok,
        error_class: None,
    }
}

#[test]
fn old_rows_get_their_request_id_as_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let old = Store::open_at_version(&path, before_event_ids()).unwrap();
        old.with_conn(|c| {
            let ins = "INSERT INTO usage_events (request_id, ts, supplier_id, provider, model, request_type, route, input_tokens,
                output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms, status)
                VALUES (?1, 1, 1, 'openai', 'gpt-4o-mini', 0, ?2, 10, 5, 0, 0, 0, 3, 100, 0)";
            c.execute(ins, rusqlite::params!["1:client-trace", Route::Platform.code()])?;
            c.execute(ins, rusqlite::params!["m4~1:client-trace", Route::Shadow.code()])
        })
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let rows: Vec<(String, Option<String>, Option<String>)> = store
        .with_conn(|c| {
            let mut st = c.prepare("SELECT event_id, request_id, idempotency_key FROM usage_events ORDER BY id")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
        .unwrap();
    assert_eq!(rows, [("1:client-trace".into(), None, None), ("m4~1:client-trace".into(), None, None)]);
    // The old mirror copy still pairs with its original.
    assert_eq!(store.mirror_pairs(4).unwrap().len(), 1);
    assert_eq!(store.mirror_copies(4).unwrap(), 1);
    // A retried write of an old event is still recognised; two new events
    // with one client request id are both kept.
    assert_eq!(store.append_usage(&[event("1:client-trace", "client-trace", Route::Platform)]).unwrap(), 0);
    let n = store.append_usage(&[event("e-1", "client-trace", Route::Platform), event("e-2", "client-trace", Route::Platform)]).unwrap();
    assert_eq!(n, 2);
    // The export shows an old row's event id as its request id.
    let reader = store.analytics_reader().unwrap();
    let mut seen = Vec::new();
    reader
        .for_each_event::<switchboard::store::StoreError>(0, i64::MAX, None, |r| {
            seen.push((r.event_id.to_string(), r.request_id.to_string()));
            Ok(())
        })
        .unwrap();
    assert_eq!(seen[0], ("1:client-trace".to_string(), "1:client-trace".to_string()));
    assert!(seen.contains(&("e-2".to_string(), "client-trace".to_string())));
    assert_eq!(
        store.quota_tokens_used(SupplierId(1), chrono::DateTime::UNIX_EPOCH, super::november() + chrono::Duration::days(1)).unwrap(),
        45
    );
}
