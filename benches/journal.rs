//! The usage journal's append on the request path: one event recorded with
//! process durability (a positioned write into the preallocated segment) and
//! with power durability (the write plus the group fdatasync that covers it,
//! one request at a time: every append waits for its own sync). And one
//! record encoded (on the request path) and decoded (on the fold thread) in
//! the journal's format 2 (binary) against format 1 (JSON, read for old
//! journals). And the fold's transaction on SQLite: a batch of events
//! inserted, the rollups updated and the watermark moved (the fold thread's
//! share of the CPU under load).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchboard::domain::JournalPos;
use switchboard::domain::{Micros, ProviderKind, RequestType, Route, SupplierId, TokenUsage, UsageEvent, UsageStatus};
use switchboard::engine::ledger::journal::record::{self, Decoded};
use switchboard::engine::ledger::{Ledger, LedgerOptions};
use switchboard::store::{LedgerSync, SqliteLedger, Store, UsageLedger};

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

fn formats(c: &mut Criterion) {
    let e = UsageEvent {
        event_id: "019a8f3c-5b2e-7d41-9c3a-0f6e2b1d4a77".into(),
        request_id: "req-019a8f3c5b2e7d419c3a".into(),
        account_id: Some(switchboard::domain::AccountId(2)),
        ts: chrono::DateTime::from_timestamp(1_780_000_000, 123_456_789).unwrap_or_default(),
        ..event(1)
    };
    let mut g = c.benchmark_group("journal record");
    let mut buf = Vec::with_capacity(1024);
    g.bench_function("encode, format 2 (binary)", |b| {
        b.iter(|| {
            buf.clear();
            record::encode_record(std::hint::black_box(&e), &mut buf)
        })
    });
    g.bench_function("encode, format 1 (JSON)", |b| {
        b.iter(|| {
            buf.clear();
            record::encode_record_json(std::hint::black_box(&e), &mut buf).unwrap()
        })
    });
    let (mut v2, mut v1) = (Vec::new(), Vec::new());
    record::encode_record(&e, &mut v2);
    record::encode_record_json(&e, &mut v1).unwrap();
    for (name, bytes, version) in
        [("decode, format 2 (binary)", &v2, record::VERSION), ("decode, format 1 (JSON)", &v1, record::VERSION_JSON)]
    {
        assert!(matches!(record::decode_record(bytes, version), Decoded::Record { ref event, .. } if *event == e));
        g.bench_function(name, |b| b.iter(|| record::decode_record(std::hint::black_box(bytes), version)));
    }
    g.finish();
}

/// One fold of `BATCH` new events into a SQLite ledger that grows as the
/// bench runs (as a serving instance's does): ids like the router's (UUIDv7
/// text), times a millisecond apart, fifty suppliers and two models, so that
/// the rollups see a realistic spread of keys.
fn fold(c: &mut Criterion) {
    const BATCH: u64 = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("fold.db")).unwrap();
    let mut ledger = SqliteLedger::open(&store).unwrap();
    let mut n = 0u64;
    let mut g = c.benchmark_group("fold");
    g.sample_size(30).throughput(Throughput::Elements(BATCH));
    g.bench_function("1,000 events into SQLite", |b| {
        b.iter_batched(
            || {
                let batch: Vec<UsageEvent> = (0..BATCH)
                    .map(|_| {
                        n += 1;
                        UsageEvent {
                            event_id: format!("019a8f3c-5b2e-7d41-9c3a-{n:012x}"),
                            ts: chrono::DateTime::from_timestamp_millis(1_780_000_000_000 + n as i64).unwrap_or_default(),
                            supplier_id: SupplierId(1 + (n % 50) as i64),
                            model: if n.is_multiple_of(3) { "claude-haiku-4-5".into() } else { "gpt-4o-mini".into() },
                            ..event(n)
                        }
                    })
                    .collect();
                (batch, JournalPos { segment: 1, offset: n })
            },
            |(batch, to)| assert_eq!(ledger.fold_batch(1, &batch, to).unwrap(), BATCH as usize),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, formats, bench, fold);
criterion_main!(benches);
