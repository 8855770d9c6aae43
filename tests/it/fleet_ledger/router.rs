//! The router in fleet mode: platform tokens reserved from this
//! instance's lease (no database on the request path), leases topped up
//! by the background task, the unused part returned at a clean stop.
//! Real SQLite for the catalog and journal, the simulator over HTTP, PostgreSQL for the leases.

use super::{base_url, fresh_db};
use crate::support::{fast_providers, sim_account};
use chrono::{TimeZone, Utc};
use std::sync::Arc;
use std::time::Duration;
use switchboard::domain::{
    AccountOwner, AiMode, ManualClock, NewSupplier, PricingTable, ProviderKind, QuotaPolicy, Secret, Tier, VendorType,
};
use switchboard::engine::ledger::Ledger;
use switchboard::engine::quota_lease::{self, LeaseSettings, PgQuotaSource, QuotaSource};
use switchboard::engine::router::{Caller, RouteError, Router, RouterConfig};
use switchboard::providers::ChatRequest;
use switchboard::sim::{DEMO_OPENAI_KEY, SimConfig, Simulator};
use switchboard::store::Store;
use switchboard::store::pg::{PgStore, leases};

fn chat(text: &str) -> ChatRequest {
    serde_json::from_value(serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 40,
    }))
    .unwrap()
}

/// Serves requests until the quota refuses one; returns how many were served.
async fn serve_until_refused(router: &Router, s: switchboard::domain::SupplierId) -> usize {
    let mut served = 0;
    loop {
        match router.chat(Caller::supplier(s), None, None, chat(&format!("a note for the florist, number {served}"))).await {
            Ok(_) => served += 1,
            Err(RouteError::QuotaExceeded { .. }) => return served,
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_router_serves_from_its_lease_and_tops_it_up_in_the_background() {
    let Some(base) = base_url("fleet_ledger::router::a_fleet_router_serves_from_its_lease_and_tops_it_up_in_the_background") else {
        return;
    };
    let pg = PgStore::open(&fresh_db(&base, "sbt_fl_router").await).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("fleet.db")).unwrap());
    let sim = Simulator::start(SimConfig::demo()).await.unwrap();
    // November: off-peak, the Starter quota is its base figure.
    let now = Utc.with_ymd_and_hms(2026, 11, 11, 12, 0, 0).unwrap();
    let clock = ManualClock::new(now);
    let account = sim_account(&store, AccountOwner::Platform, ProviderKind::OpenAi, "WedSync OpenAI", "gpt-4o-mini", sim.base_url());
    let settings = LeaseSettings {
        slice_tokens: 1_500,
        refill_below: 400,
        ttl: Duration::from_secs(60),
        renew_before: Duration::from_secs(10),
        check_every: Duration::from_millis(20),
    };
    const QUOTA: u64 = 4_000;
    let cfg = RouterConfig {
        quota: QuotaPolicy { starter_tokens: QUOTA, starter_rpm: 1_000_000, ..QuotaPolicy::default() },
        quota_leases: Some(settings),
        ..RouterConfig::default()
    };
    let router = Router::new(
        store.clone(),
        fast_providers(1),
        Arc::new(PricingTable::builtin()),
        Arc::new(clock.clone()),
        Ledger::start(&store).unwrap(),
        cfg,
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    router.set_key(account, Some(Secret::new(DEMO_OPENAI_KEY)));
    let s =
        store.insert_supplier(&NewSupplier::new("Fleet Florals", VendorType::Florist, Tier::Starter, AiMode::Platform), now).unwrap().id;
    router.reload().unwrap();
    let source = PgQuotaSource { store: pg.clone(), instance: 21 };
    let key = leases::LeaseKey { supplier: s, month: quota_lease::quota_month(now), instance: 21 };

    // No lease yet: nothing is served unseen.
    assert_eq!(serve_until_refused(&router, s).await, 0);
    assert_eq!(router.top_up_quota_leases(&source).await.unwrap(), 1);
    assert_eq!(router.quota_lease(s).unwrap().granted, 1_500);
    assert_eq!(router.top_up_quota_leases(&source).await.unwrap(), 0, "nothing due: no round trip");
    // Served from the lease alone (the router holds no database handle).
    let first = serve_until_refused(&router, s).await;
    assert!(first > 0);
    let l = router.quota_lease(s).unwrap();
    assert!(l.spent as u64 <= 1_500 && l.remaining() >= 0 && l.reserved == 0, "{l:?}");
    assert_eq!(leases::month_figures(&pg, s, key.month).await.unwrap().counted(), 1_500, "the lease counts in the database");
    // Topped up until the database has nothing left to grant.
    let mut served = first;
    loop {
        let before = router.quota_lease(s).unwrap().granted;
        router.top_up_quota_leases(&source).await.unwrap();
        if router.quota_lease(s).unwrap().granted == before {
            break;
        }
        served += serve_until_refused(&router, s).await;
    }
    let l = router.quota_lease(s).unwrap();
    assert_eq!(l.granted as u64, QUOTA, "granted up to the quota, never past it");
    assert!(l.spent as u64 <= QUOTA, "reservations are upper bounds: within the quota ({l:?})");
    let (used, reserved, quota) = router.quota_snapshot(s).unwrap();
    assert_eq!((used, reserved, quota), (l.spent as u64, 0, QUOTA));
    assert!(served >= 3);

    // The background task at a clean stop returns what the lease holds unused.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(quota_lease::run(router.clone(), Arc::new(source.clone()) as Arc<dyn QuotaSource>, settings, async {
        let _ = stop_rx.await;
    }));
    stop_tx.send(()).unwrap();
    task.await.unwrap();
    let row = leases::lease_row(&pg, key).await.unwrap().unwrap();
    assert_eq!(row.granted, l.spent, "the unused {} tokens went back", QUOTA as i64 - l.spent);
    assert_eq!(router.quota_lease(s).unwrap().granted, l.spent);
}
