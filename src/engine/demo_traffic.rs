//! Live demo mode: after the demo history is written, starts the provider
//! simulator with one simulator account per demo provider account, puts the
//! simulator's keys into the in-memory demo vault (never the OS keychain),
//! starts the [`Runtime`], issues gateway tokens for a few dozen suppliers and
//! drives synthetic traffic through the router — a few requests per second
//! with a realistic mix of models, request types and streams — with a
//! provider incident on a supplier's own account every few minutes (an
//! outage of about a minute, so failover and the return to client AI show) —
//! email templates deterministic (temperature 0), so the response cache
//! answers their repeats — and one phased migration of a client-mode supplier to platform AI, so the
//! Migrations view has a timeline.
//!
//! The gateway (an edge) is started by the caller in front of `runtime.router`.

use crate::domain::Secret;
use crate::domain::migration::RouteTarget;
use crate::domain::rng::DetRng;
use crate::domain::{AccountId, AccountOwner, AiMode, Clock, ProviderAccount, ProviderKind, Supplier, SupplierId};
use crate::engine::runtime::{Runtime, RuntimeOptions, sync_keys};
use crate::engine::{gateway_tokens, migrations::MigrationService, router::Router};
use crate::providers::{ChatRequest, EmbeddingsRequest};
use crate::sim::{SimAccountConfig, SimConfig, SimHandle, Simulator};
use crate::store::{Store, SupplierFilter};
use crate::vault::Vault;
use futures::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How the synthetic traffic behaves.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Suppliers that get a gateway token (and so send traffic).
    pub suppliers_with_tokens: usize,
    /// Average requests per second.
    pub requests_per_sec: f64,
    /// Time from start to the first incident, and between incidents.
    pub first_incident_after: Duration,
    pub incident_every: Duration,
    pub incident_length: Duration,
    pub seed: u64,
    /// Simulated accounts answer after a provider-like delay (see
    /// [`demo_latency`]) instead of at once, so the Health view, the live
    /// strip and parallel tests show realistic latencies.
    pub upstream_latency: bool,
}

/// How long a demo account takes to answer: log-normal around a median per
/// provider (Anthropic slowest, Azure fastest), streams 15 ms per event.
pub fn demo_latency(provider: ProviderKind) -> crate::sim::Faults {
    let median_ms = match provider {
        ProviderKind::OpenAi => 450,
        ProviderKind::Anthropic => 650,
        ProviderKind::AzureOpenAi => 400,
    };
    crate::sim::Faults {
        latency: crate::sim::Latency { median_ms, sigma: 0.3, min_ms: 120 },
        slow_stream_ms: 15,
        ..crate::sim::Faults::default()
    }
}

impl Default for TrafficConfig {
    fn default() -> Self {
        Self {
            suppliers_with_tokens: 40,
            requests_per_sec: 3.0,
            first_incident_after: Duration::from_secs(20),
            incident_every: Duration::from_secs(180),
            incident_length: Duration::from_secs(60),
            seed: 7,
            upstream_latency: true,
        }
    }
}

/// The simulator account name of a provider account.
pub fn sim_account_name(id: AccountId) -> String {
    format!("account-{}", id.0)
}

/// The simulator-only key of a demo account, derived from its id (not a secret:
/// the simulator is the only thing that accepts it).
pub fn sim_key(account: &ProviderAccount) -> String {
    let id = account.id.0;
    match account.provider {
        ProviderKind::OpenAi => format!("sk-sim-demo-openai-{id:08}"),
        ProviderKind::Anthropic => format!("sk-ant-sim-demo-{id:08}"),
        ProviderKind::AzureOpenAi => format!("{:032x}", 0x5157_0000_0000_0000_u128 + id as u128),
    }
}

/// A free loopback port for the simulator (bound and released at once).
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}

/// The running live demo. Dropping it stops the traffic, the runtime's tasks
/// and the simulator.
pub struct LiveDemo {
    pub runtime: Runtime,
    pub sim: SimHandle,
    /// Suppliers with a gateway token, with whether each is in client mode.
    pub suppliers: Vec<(SupplierId, bool)>,
    traffic: tokio::task::JoinHandle<()>,
    /// Starts the demo migration (after its parallel test) and the mirror.
    setup: tokio::task::JoinHandle<()>,
}

impl LiveDemo {
    /// Whether the demo migration and mirror have been started (or given up).
    pub fn set_up(&self) -> bool {
        self.setup.is_finished()
    }
}

impl Drop for LiveDemo {
    fn drop(&mut self) {
        self.traffic.abort();
        self.setup.abort();
    }
}

struct Sender {
    supplier: SupplierId,
    token: Secret,
    /// The supplier's own accounts (simulator names) when it is in client mode, for incidents.
    own_accounts: Vec<String>,
}

/// The suppliers that get a gateway token and send traffic (at most `n`), with
/// whether each is in client mode: client-mode suppliers first (they show
/// failover; half of `n`), then platform ones. The demo migration moves a
/// client-mode sender other than the first (which incident tests watch): on
/// days when each of those has a wedding within 48 h of `now` (so none may
/// start), the last is swapped for a client-mode supplier that may, so every
/// day's demo shows a migration.
pub fn choose_senders(suppliers: &[Supplier], n: usize, now: chrono::DateTime<chrono::Utc>) -> Vec<(SupplierId, bool)> {
    let client: Vec<_> = suppliers.iter().filter(|s| s.ai_mode == AiMode::Client).collect();
    let mut chosen: Vec<_> = client.iter().take(n / 2).copied().collect();
    let may_start = |s: &&Supplier| crate::domain::migration::next_allowed(now, s.wedding_calendar()) <= now;
    if chosen.len() >= 2
        && !chosen.iter().skip(1).any(may_start)
        && let Some(free) = client.iter().skip(chosen.len()).find(|s| may_start(s))
    {
        chosen.pop();
        chosen.push(free);
    }
    let room = n.saturating_sub(chosen.len());
    chosen.extend(suppliers.iter().filter(|s| s.ai_mode == AiMode::Platform).take(room));
    chosen.iter().map(|s| (s.id, s.ai_mode == AiMode::Client)).collect()
}

/// Starts the simulator on `sim_addr` (the address the demo accounts' base URL
/// points at), the runtime with the in-memory demo vault, tokens and traffic.
pub async fn start(store: Arc<Store>, clock: Arc<dyn Clock>, sim_addr: SocketAddr, cfg: TrafficConfig) -> anyhow::Result<LiveDemo> {
    let (accounts, suppliers) = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || anyhow::Ok((s.list_accounts(None)?, s.list_suppliers(&SupplierFilter::default())?))).await??
    };
    let sim_cfg = SimConfig {
        seed: cfg.seed,
        accounts: accounts
            .iter()
            .map(|a| {
                let mut c = SimAccountConfig::new(&sim_account_name(a.id), a.provider, &sim_key(a));
                if cfg.upstream_latency {
                    c.faults = demo_latency(a.provider);
                }
                c
            })
            .collect(),
    };
    let sim = Simulator::start_on(sim_cfg, sim_addr).await?;
    let runtime = Runtime::start(
        store.clone(),
        Vault::demo_in_memory(),
        clock.clone(),
        RuntimeOptions { program: "the demo console".into(), ..RuntimeOptions::default() },
    )
    .await?;
    for a in &accounts {
        runtime.keys.set_demo_key(a.id, Secret::new(sim_key(a))).await?;
    }
    let ids = choose_senders(&suppliers, cfg.suppliers_with_tokens, clock.now());
    let senders = {
        let (s, now, ids, accounts) = (store.clone(), clock.now(), ids.clone(), accounts.clone());
        tokio::task::spawn_blocking(move || {
            ids.iter()
                .map(|(id, _)| {
                    let t = gateway_tokens::issue(&s, *id, now, "demo")?;
                    let own_accounts =
                        accounts.iter().filter(|a| a.owner == AccountOwner::Supplier(*id)).map(|a| sim_account_name(a.id)).collect();
                    anyhow::Ok(Sender { supplier: *id, token: t.token, own_accounts })
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await??
    };
    {
        let r = runtime.router.clone();
        tokio::task::spawn_blocking(move || r.reload()).await??;
    }
    sync_keys(&runtime.router, &runtime.keys).await;
    // Validate the accounts that carry traffic, in the background, so the Keys view has results to show.
    {
        let keys = runtime.keys.clone();
        let to_check: Vec<AccountId> = accounts
            .iter()
            .filter(|a| a.owner == AccountOwner::Platform || a.owner.supplier().is_some_and(|s| ids.iter().any(|(id, _)| *id == s)))
            .map(|a| a.id)
            .collect();
        tokio::spawn(async move {
            for id in to_check {
                if let Err(e) = keys.validate(id).await {
                    tracing::warn!(account = %id, error = %e, "demo key validation failed");
                }
            }
        });
    }
    // The migration waits for its parallel test (a few seconds of answers):
    // traffic starts at once, the migration and the mirror follow.
    let setup = {
        let (router, migrations, ids) = (runtime.router.clone(), runtime.migrations.clone(), ids.clone());
        tokio::spawn(async move {
            start_demo_migration(&router, &migrations, &ids).await;
            start_demo_mirror(router, &ids).await;
        })
    };
    let traffic = tokio::spawn(drive(runtime.router.clone(), sim.switch(), senders, cfg));
    tracing::info!(suppliers = ids.len(), "live demo started");
    Ok(LiveDemo { runtime, sim, suppliers: ids, traffic, setup })
}

/// Starts one live-traffic mirror, so the Migrations view shows one filling
/// up: half of the requests of a client-mode supplier that sends traffic (not
/// the first, which incident tests watch, and not one that is migrating) are
/// copied to platform AI until 100 are compared.
async fn start_demo_mirror(router: Arc<Router>, senders: &[(SupplierId, bool)]) {
    let candidates: Vec<SupplierId> = senders.iter().filter(|(_, client)| *client).map(|(id, _)| *id).skip(1).collect();
    let started = tokio::task::spawn_blocking(move || {
        let store = router.store();
        let migrating: Vec<SupplierId> =
            store.list_migrations(None).ok()?.iter().filter(|m| m.state.is_active()).map(|m| m.supplier).collect();
        let plan = crate::engine::parallel::MirrorPlan { sample_percent: 50, requests: 100, duration: chrono::Duration::days(1) };
        let m = candidates.into_iter().filter(|id| !migrating.contains(id)).find_map(|id| {
            let acc = crate::engine::parallel::platform_candidate(store, id).ok()?;
            crate::engine::parallel::start_mirror(store, id, acc, plan, router.clock().now()).ok()
        })?;
        if let Err(e) = router.reload() {
            tracing::warn!(error = %e, "catalog reload failed");
        }
        Some(m)
    })
    .await;
    match started {
        Ok(Some(m)) => tracing::info!(mirror = m.id, supplier = %m.supplier_id, "demo mirror started"),
        Ok(None) => tracing::info!("no demo mirror: no client-mode supplier could start one"),
        Err(e) => tracing::warn!(error = %e, "the demo mirror task failed"),
    }
}

/// Starts one phased migration, so the Migrations view has a timeline: the
/// last client-mode supplier that sends traffic (never the first, which
/// incident tests watch) moves from its own account to platform AI with the
/// default plan, after a parallel test of the two routes (try before you
/// move), whose report the view shows beside it. Suppliers with a wedding
/// within 48 h are skipped (the service refuses them); with fewer than two
/// client-mode senders nothing starts.
async fn start_demo_migration(router: &Arc<Router>, migrations: &Arc<MigrationService>, senders: &[(SupplierId, bool)]) {
    let candidates: Vec<SupplierId> = senders.iter().filter(|(_, client)| *client).map(|(id, _)| *id).skip(1).collect();
    for id in candidates.into_iter().rev() {
        let svc = migrations.clone();
        match tokio::task::spawn_blocking(move || svc.plan(id, RouteTarget::Platform, None)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(supplier = %id, error = %e, "no demo migration for this supplier");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the demo migration task failed");
                return;
            }
        }
        let tested = match crate::engine::parallel::platform_candidate(router.store(), id) {
            Ok(acc) => crate::engine::parallel::run(router, id, acc, &[]).await.map(|r| r.id),
            Err(e) => Err(e),
        };
        match tested {
            Ok(report) => tracing::info!(report, supplier = %id, "demo parallel test stored"),
            Err(e) => tracing::warn!(supplier = %id, error = %e, "the demo parallel test failed"),
        }
        let svc = migrations.clone();
        match tokio::task::spawn_blocking(move || svc.start(id, RouteTarget::Platform, None, None)).await {
            Ok(Ok(m)) => {
                tracing::info!(migration = m.id, supplier = %m.supplier, "demo migration started");
                return;
            }
            Ok(Err(e)) => tracing::debug!(supplier = %id, error = %e, "no demo migration for this supplier"),
            Err(e) => {
                tracing::warn!(error = %e, "the demo migration task failed");
                return;
            }
        }
    }
    tracing::info!("no demo migration: no client-mode supplier could start one");
}

/// What a request looks like: request type, model, streamed or not, a prompt.
fn pick_request(rng: &mut DetRng) -> (&'static str, &'static str, bool, &'static str) {
    const PROMPTS: [&str; 4] = [
        "Write a warm follow-up email to a couple after their venue tour on Saturday.",
        "Describe the lighting and mood in this golden-hour portrait for the gallery caption.",
        "Draft a short blog paragraph about autumn wedding flowers with dahlias and eucalyptus.",
        "Suggest a three-course seasonal menu for a June garden wedding of 120 guests.",
    ];
    let prompt = PROMPTS[(rng.next_u64() % 4) as usize];
    match rng.next_u64() % 100 {
        0..=34 => ("email_template", "gpt-4o-mini", rng.chance(0.2), prompt),
        35..=54 => ("image_analysis", "gpt-4o", false, prompt),
        55..=69 => ("wedding_content", "claude-haiku-4-5", rng.chance(0.4), prompt),
        70..=84 => ("wedding_content", "gpt-4o-mini", rng.chance(0.3), prompt),
        _ => ("embedding", "text-embedding-3-small", false, prompt),
    }
}

async fn one_request(router: Arc<Router>, token: String, rid: String, rng_seed: u64) {
    let mut rng = DetRng::new(rng_seed);
    let (rt, model, stream, prompt) = pick_request(&mut rng);
    let bearer = Some(token.as_str());
    use crate::domain::idempotency::Endpoint;
    use crate::engine::router::{CacheRequest, Caller};
    if rt == "embedding" {
        let body = serde_json::json!({"model": model, "input": prompt});
        let cache = CacheRequest { endpoint: Endpoint::Embeddings, mode: None, body: bytes::Bytes::from(body.to_string()) };
        let req = EmbeddingsRequest { model: model.into(), input: serde_json::json!(prompt), extra: Default::default() };
        let _ = router.embeddings(Caller::token(bearer).with_cache(Some(&cache)), Some(rt), Some(&rid), req).await;
        return;
    }
    // Email templates are deterministic (temperature 0, a fixed length), as a
    // supplier's template sender would make them: their repeats are answered
    // by the response cache.
    let template = rt == "email_template";
    let mut body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": if template { 300 } else { 200 + rng.range(0, 300) },
        "stream": stream,
    });
    if template {
        body["temperature"] = serde_json::json!(0);
    }
    let cache = CacheRequest { endpoint: Endpoint::ChatCompletions, mode: None, body: bytes::Bytes::from(body.to_string()) };
    let caller = Caller::token(bearer).with_cache(Some(&cache));
    let req: ChatRequest = match serde_json::from_value(body) {
        Ok(r) => r,
        Err(_) => return,
    };
    if stream {
        if let Ok(mut a) = router.chat_stream(caller, Some(rt), Some(&rid), req).await {
            while let Some(chunk) = a.body.next().await {
                if chunk.is_err() {
                    break;
                }
            }
        }
    } else {
        let _ = router.chat(caller, Some(rt), Some(&rid), req).await;
    }
}

/// The traffic loop: Poisson-ish arrivals, at most 16 requests in flight, and
/// the incident schedule.
async fn drive(router: Arc<Router>, sim: crate::sim::SimSwitch, senders: Vec<Sender>, cfg: TrafficConfig) {
    if senders.is_empty() {
        return;
    }
    let mut rng = DetRng::new(cfg.seed ^ 0xD3A0);
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    let started = tokio::time::Instant::now();
    let mut next_incident = started + cfg.first_incident_after;
    let mut incident: Option<(usize, tokio::time::Instant)> = None;
    let mean_gap_ms = (1000.0 / cfg.requests_per_sec.max(0.1)) as u64;
    let mut n: u64 = 0;
    loop {
        let now = tokio::time::Instant::now();
        if let Some((who, until)) = incident
            && now >= until
        {
            for a in &senders[who].own_accounts {
                sim.set_outage(a, false);
            }
            tracing::info!(supplier = %senders[who].supplier, "demo incident over");
            incident = None;
            next_incident = now + cfg.incident_every;
        }
        if incident.is_none() && now >= next_incident {
            let candidates: Vec<usize> = (0..senders.len()).filter(|i| !senders[*i].own_accounts.is_empty()).collect();
            if let Some(&who) = candidates.get((rng.next_u64() % candidates.len().max(1) as u64) as usize) {
                for a in &senders[who].own_accounts {
                    sim.set_outage(a, true);
                }
                tracing::info!(supplier = %senders[who].supplier, "demo incident: the supplier's own provider account is down");
                incident = Some((who, now + cfg.incident_length));
            } else {
                next_incident = now + cfg.incident_every;
            }
        }
        // During an incident, a third of the traffic comes from the affected supplier.
        let who = match incident {
            Some((w, _)) if rng.chance(0.35) => w,
            _ => (rng.next_u64() % senders.len() as u64) as usize,
        };
        n += 1;
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            let (router, token) = (router.clone(), senders[who].token.expose().to_string());
            let rid = format!("demo-{}-{n}", started.elapsed().as_millis());
            let seed = rng.next_u64();
            tokio::spawn(async move {
                one_request(router, token, rid, seed).await;
                drop(permit);
            });
        }
        let gap = mean_gap_ms / 2 + rng.range(0, mean_gap_ms);
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }
}
