//! The routing gateway end to end: real HTTP over loopback into the gateway,
//! real HTTP from the router to the provider simulator, a real SQLite ledger,
//! and a manual clock for breakers, rate limits and quotas.
//!
//! This module holds what its submodules share (a gateway on the simulator,
//! its helpers); the tests are by topic: `serving` (each route answered and
//! recorded, streams, embeddings, models, metrics, the OpenAI SDK),
//! `refusals` (statuses and error shapes, refusals counted), `quotas`
//! (quotas, wedding days, time zones, concurrent clients), `failover`
//! (outages, breakers, Azure deployments, a client's own accounts),
//! `migrations`, `idempotency` and `front` (a lane's direct path).

use crate::support::{fast_providers, june, sb, sim_account};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::domain::Clock;
use switchboard::domain::Secret;
use switchboard::domain::migration::{Criteria, MigrationState, RouteTarget, Step};
use switchboard::domain::{
    AccountId, AccountOwner, AiMode, ManualClock, NewSupplier, PricingTable, ProviderKind, Route, SupplierId, Tier, UsageStatus, VendorType,
};
use switchboard::engine::gateway_tokens as tokens;
use switchboard::engine::ledger::Ledger;
use switchboard::engine::migrations::MigrationService;
use switchboard::engine::router::{Router, RouterConfig};
use switchboard::gateway::{self, GatewayHandle};
use switchboard::providers::{Providers, ProvidersConfig};
use switchboard::sim::{DEMO_ANTHROPIC_KEY, DEMO_CLIENT_OPENAI_KEY, DEMO_OPENAI_KEY, SimAccountConfig, SimConfig, SimHandle, Simulator};
use switchboard::store::{NewAccount, Store};

mod failover;
mod front;
mod idempotency;
mod migrations;
mod quotas;
mod refusals;
mod serving;

const CLIENT2_KEY: &str = "sk-sim-openai-client-000000000002";

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    sim: SimHandle,
    router: Arc<Router>,
    gw: GatewayHandle,
    clock: ManualClock,
    http: reqwest::Client,
    platform_openai: AccountId,
}

async fn env(cfg: RouterConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("gw.db")).unwrap());
    let mut sim_cfg = SimConfig::demo();
    sim_cfg.accounts.push(SimAccountConfig::new("openai-client-2", ProviderKind::OpenAi, CLIENT2_KEY));
    let sim = Simulator::start(sim_cfg).await.unwrap();
    let clock = ManualClock::new(june());
    let mk = |owner, provider, label: &str, model: &str| sim_account(&store, owner, provider, label, model, sim.base_url());
    let platform_openai = mk(AccountOwner::Platform, ProviderKind::OpenAi, "WedSync OpenAI", "gpt-4o-mini");
    let platform_anthropic = mk(AccountOwner::Platform, ProviderKind::Anthropic, "WedSync Anthropic", "claude-haiku-4-5");
    let ledger = Ledger::start(&store).unwrap();
    let providers = fast_providers(2);
    let router = Router::new(
        store.clone(),
        providers,
        Arc::new(PricingTable::builtin()),
        Arc::new(clock.clone()),
        ledger,
        cfg,
        Some(tokio::runtime::Handle::current()),
    )
    .unwrap();
    router.set_key(platform_openai, Some(Secret::new(DEMO_OPENAI_KEY)));
    router.set_key(platform_anthropic, Some(Secret::new(DEMO_ANTHROPIC_KEY)));
    let gw = gateway::start(router.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Env { _dir: dir, store, sim, router, gw, clock, http: reqwest::Client::new(), platform_openai }
}

impl Env {
    fn supplier(&self, name: &str, tier: Tier, mode: AiMode, weddings: &[NaiveDate]) -> SupplierId {
        let mut n = NewSupplier::new(name, VendorType::Photographer, tier, mode);
        n.weddings = weddings.to_vec();
        self.store.insert_supplier(&n, june()).unwrap().id
    }

    /// A client account on the simulator for `supplier`, with its key set.
    fn client_account(&self, supplier: SupplierId, label: &str, key: &str) -> AccountId {
        let id =
            sim_account(&self.store, AccountOwner::Supplier(supplier), ProviderKind::OpenAi, label, "gpt-4o-mini", self.sim.base_url());
        self.router.set_key(id, Some(Secret::new(key)));
        id
    }

    fn token(&self, supplier: SupplierId, revoked: bool) -> String {
        let issued = tokens::issue(&self.store, supplier, june(), "test").unwrap();
        if revoked {
            tokens::revoke(&self.store, issued.record.id, june(), "test").unwrap();
        }
        self.router.reload().unwrap();
        issued.token.expose().to_string()
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.gw.base_url())).bearer_auth(token).json(&body).send().await.unwrap()
    }

    async fn chat(&self, token: &str, model: &str, text: &str) -> reqwest::Response {
        self.post("/chat/completions", token, json!({"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 50}))
            .await
    }

    /// (event id, route, status, tokens, cost, account) of the supplier's rows.
    fn usage_rows(&self, supplier: SupplierId) -> Vec<(String, i64, i64, i64, i64, i64)> {
        // What was answered is in the journal; the database has it once folded.
        futures::executor::block_on(self.router.ledger().flush());
        self.store
            .with_conn(|c| {
                let mut st = c.prepare(
                    "SELECT event_id, route, status, input_tokens + cached_tokens + output_tokens, cost_micros, account_id FROM usage_events WHERE supplier_id = ?1 ORDER BY id",
                )?;
                let rows = st.query_map([supplier.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, Option<i64>>(5)?.unwrap_or(0))))?;
                rows.collect()
            })
            .unwrap()
    }
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

// ---- Migrations and parallel tests (issue 7); `supplier_in` for quotas too ----

impl Env {
    /// A client account ready to migrate to: key set and validated.
    fn validated_account(&self, supplier: SupplierId, key: &str) -> AccountId {
        let id = self.client_account(supplier, "Own OpenAI", key);
        self.store.set_account_key(id, Some("test-entry"), Some("sk-…0001")).unwrap();
        self.store.set_account_validation(id, switchboard::domain::ValidationStatus::Valid, "ok", june()).unwrap();
        self.router.reload().unwrap();
        id
    }

    /// Sends `n` requests; returns how many the new route served. Fails the
    /// test on any failed client request.
    async fn traffic(
        &self,
        token: &str,
        svc: &MigrationService,
        rx: &mut tokio::sync::broadcast::Receiver<switchboard::engine::router::AttemptOutcome>,
        n: usize,
    ) -> usize {
        let mut migrated = 0;
        for i in 0..n {
            let r = self.chat(token, "gpt-4o-mini", &format!("migration traffic {i}")).await;
            assert_eq!(r.status(), 200, "no client request fails during a migration");
            if r.headers()["x-switchboard-route"] == "migration" {
                migrated += 1;
            }
        }
        while let Ok(o) = rx.try_recv() {
            svc.observe(&o);
        }
        migrated
    }
}

/// A database file for CLI tests: a Scale platform-AI planner with one account
/// of its own on an address nothing listens on.
fn cli_db(
    name: &str,
    label: &str,
) -> (tempfile::TempDir, std::path::PathBuf, Store, switchboard::domain::Supplier, switchboard::domain::ProviderAccount) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let store = Store::open(&db).unwrap();
    let s = store.insert_supplier(&NewSupplier::new(name, VendorType::Planner, Tier::Scale, AiMode::Platform), Utc::now()).unwrap();
    let n = NewAccount {
        owner: AccountOwner::Supplier(s.id),
        provider: ProviderKind::OpenAi,
        label: label.into(),
        base_url: "http://127.0.0.1:9".into(),
        azure: None,
        default_model: "gpt-4o-mini".into(),
    };
    let acc = store.insert_account(&n, Utc::now()).unwrap();
    (dir, db, store, s, acc)
}

/// A supplier in `tz` with one wedding day.
fn supplier_in(e: &Env, name: &str, tz: &str, wedding: NaiveDate) -> SupplierId {
    let mut n = NewSupplier::new(name, VendorType::Photographer, Tier::Starter, AiMode::Platform);
    n.weddings = vec![wedding];
    n.time_zone = switchboard::domain::supplier::parse_time_zone(tz).unwrap();
    e.store.insert_supplier(&n, june()).unwrap().id
}
