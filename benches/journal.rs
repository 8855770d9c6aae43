//! The usage journal's append on the request path: one event recorded with
//! process durability (a positioned write into the preallocated segment) and
//! with power durability (the write plus the group fdatasync that covers it,
//! one request at a time: every append waits for its own sync).

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchboard::domain::{Micros, ProviderKind, RequestType, Route, SupplierId, TokenUsage, UsageEvent, UsageStatus};
use switchboard::engine::ledger::{Ledger, LedgerOptions};
use switchboard::store::{LedgerSync, Store};

fn event(n: u64) -> UsageEvent {
    UsageEvent {
        saved: switchboard::domain::Micros::ZERO,
        event_id: format!("bench-{n}"),
        request_id: format!("req-{n}"),
        idempotency_key: None,
        ts: chrono::DateTime::from_timestamp_millis(1_780_000_000_000).unwrap_or_default(),
        supplier_id: SupplierId(1),
        account_id: None,
        provider: ProviderKind::OpenAi,
        model: "gpt-4o-mini".into(),
        request_type: RequestType::EmailTemplate,
        route: Route::Client,
        usage: TokenUsage { input: 120, output: 40, ..Default::default() },
        cost: Micros(30),
        latency_ms: 180,
        status: UsageStatus::Ok,
        error_class: None,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let n = AtomicU64::new(0);
    for (name, sync) in [("journal append, process durability", LedgerSync::Normal), ("journal append, power durability", LedgerSync::Full)]
    {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("bench.db")).unwrap();
        let ledger = Ledger::start_opts(&store, LedgerOptions { sync, ..LedgerOptions::default() }).unwrap();
        let mut g = c.benchmark_group("journal");
        if sync == LedgerSync::Full {
            g.sample_size(20).measurement_time(Duration::from_secs(5));
        }
        g.bench_function(name, |b| b.iter(|| rt.block_on(ledger.record(event(n.fetch_add(1, Ordering::Relaxed)))).unwrap()));
        g.finish();
        rt.block_on(ledger.flush());
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
