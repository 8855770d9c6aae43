//! The pool benchmark (BENCHMARKS.md): one key against a pool of three
//! under a load above one key's limit, on simulated time (a manual clock
//! shared with the simulator's limits), so the figures do not depend on the
//! machine's load. Run: `scripts/test -- --test it pools::bench -- --ignored --nocapture`.

use super::{NAMES, pool};
use std::time::Instant;
use switchboard::domain::keypool::Strategy;
use switchboard::sim::SimLimits;

/// Offered load: requests per simulated second (900 a minute).
const PER_SECOND: usize = 15;
const SECONDS: i64 = 180;

struct Row {
    what: String,
    sent: usize,
    ok: usize,
    calls: u64,
    rate_limited: u64,
    wall_ms: u128,
}

async fn run(what: &str, strategy: Strategy, rpm: [u32; 3], keys: usize) -> Row {
    let p = pool(strategy, rpm.map(|r| SimLimits { rpm: Some(r), tpm: None }), false).await;
    for i in keys..3 {
        p.store.set_account_enabled(p.keys[i], false).unwrap();
    }
    p.router.reload().unwrap();
    let t0 = Instant::now();
    let mut failures = 0;
    for _ in 0..SECONDS {
        failures += p.send(PER_SECOND, 5).await.len();
        p.clock.advance(chrono::Duration::seconds(1));
    }
    let sent = PER_SECOND * SECONDS as usize;
    let rate_limited: u64 = NAMES.iter().map(|n| p.sim.rate_limited(n)).sum();
    let calls = p.served().iter().sum::<u64>() + rate_limited;
    Row { what: what.into(), sent, ok: sent - failures, calls, rate_limited, wall_ms: t0.elapsed().as_millis() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it on purpose (BENCHMARKS.md)"]
async fn one_key_against_a_pool_of_three() {
    let rows = vec![
        run("1 key (500 rpm)", Strategy::Headroom, [500, 300, 200], 1).await,
        run("3 keys (500/300/200 rpm), headroom (default)", Strategy::Headroom, [500, 300, 200], 3).await,
        run("3 keys (500/300/200 rpm), weighted 1:1:1", Strategy::Weighted, [500, 300, 200], 3).await,
        run("3 keys (500/300/200 rpm), least-busy", Strategy::LeastBusy, [500, 300, 200], 3).await,
    ];
    println!("load: {} requests per simulated second ({} a minute) for {SECONDS} s, 5 in flight", PER_SECOND, PER_SECOND * 60);
    println!("| setup | sent | answered | throughput (req/min) | provider calls | 429s | 429 rate | wall time |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.1} % | {:.1} s |",
            r.what,
            r.sent,
            r.ok,
            r.ok as f64 / (SECONDS as f64 / 60.0),
            r.calls,
            r.rate_limited,
            100.0 * r.rate_limited as f64 / r.calls.max(1) as f64,
            r.wall_ms as f64 / 1000.0
        );
    }
    // The pool answers everything one key cannot.
    assert!(rows[1].ok == rows[1].sent && rows[0].ok < rows[0].sent);
}
