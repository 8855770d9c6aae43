//! The provider simulator: an axum server that speaks the OpenAI, Anthropic and
//! Azure OpenAI wire formats (plain and streamed chat, embeddings, model
//! lists), accepts only configured keys (others get the provider's real 401
//! body) and derives realistic usage from the input. Faults are set per
//! account — by the scenario file, the admin endpoint
//! `POST /_sim/accounts/{name}/faults` or [`SimHandle`] — and are
//! deterministic for a seed. Used by tests, demo mode and benchmarks.
//!
//! Magic markers in the last user message trigger request-level outcomes:
//! `[sim:context_length]` (400 context length) and `[sim:content_filter]`
//! (finish reason `content_filter`; Azure: its 400 content-filter error).
//! In an embeddings input, `[sim:content_filter]` gets the 400
//! content-filter error from every dialect.

mod errors;
mod limits;
mod reply;
mod server;
mod tools;

use crate::domain::ProviderKind;
use crate::domain::rng::DetRng;
pub use limits::SimLimits;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency added before answering: log-normal around `median_ms` with shape
/// `sigma` (0 = fixed), never below `min_ms`. All zero = no sleep at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Latency {
    pub median_ms: u64,
    pub sigma: f64,
    pub min_ms: u64,
}

/// Per-account fault settings. Rates are probabilities per request (0..=1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    pub latency: Latency,
    /// 500 server errors.
    pub error_rate: f64,
    /// 429 rate-limit answers, with `retry_after_ms` in the headers.
    pub rate_limit_rate: f64,
    pub retry_after_ms: u64,
    /// Overloaded answers: Anthropic 529 `overloaded_error`, OpenAI/Azure 503.
    pub overloaded_rate: f64,
    /// Full outage: every request gets a 503 from the "edge".
    pub outage: bool,
    /// Delay between two stream events.
    pub slow_stream_ms: u64,
    /// Probability that a stream is cut (connection dropped) mid-way …
    pub stream_cut_rate: f64,
    /// … after this many events.
    pub stream_cut_after: u32,
    /// Spend limit / billing quota reached: every request is refused (not retryable).
    pub spend_limit: bool,
    /// Plain OpenAI/Azure chat answers report absurd usage figures (u64::MAX
    /// prompt tokens, negative completion tokens, 1e300 in total, a string
    /// for cached tokens), as a broken or hostile upstream might.
    pub absurd_usage: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency: Latency::default(),
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_ms: 1000,
            overloaded_rate: 0.0,
            outage: false,
            slow_stream_ms: 0,
            stream_cut_rate: 0.0,
            stream_cut_after: 2,
            spend_limit: false,
            absurd_usage: false,
        }
    }
}

impl Faults {
    fn is_quiet(&self) -> bool {
        self.latency.median_ms == 0
            && self.latency.min_ms == 0
            && self.error_rate <= 0.0
            && self.rate_limit_rate <= 0.0
            && self.overloaded_rate <= 0.0
            && self.stream_cut_rate <= 0.0
            && !self.outage
            && !self.spend_limit
    }
}

/// One simulated provider account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimAccountConfig {
    pub name: String,
    pub provider: ProviderKind,
    /// The only key this account accepts.
    pub key: String,
    /// Azure: deployment name → model. Empty = one deployment per known model, named like it.
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
    /// Models offered; empty = the provider's usual models.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub faults: Faults,
}

impl SimAccountConfig {
    pub fn new(name: &str, provider: ProviderKind, key: &str) -> Self {
        Self { name: name.into(), provider, key: key.into(), deployments: BTreeMap::new(), models: Vec::new(), faults: Faults::default() }
    }
}

/// A scenario: the seed and the accounts (the `--scenario` JSON file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    #[serde(default)]
    pub seed: u64,
    pub accounts: Vec<SimAccountConfig>,
}

/// Keys of the demo scenario (simulator-only, not secrets).
pub const DEMO_OPENAI_KEY: &str = "sk-sim-openai-platform-000000000001";
pub const DEMO_ANTHROPIC_KEY: &str = "sk-ant-sim-anthropic-platform-0000001";
pub const DEMO_AZURE_KEY: &str = "sim-azure-platform-00000000000000000001";
pub const DEMO_CLIENT_OPENAI_KEY: &str = "sk-sim-openai-client-000000000001";

impl SimConfig {
    /// A scenario with a platform account for each provider and one client OpenAI account.
    pub fn demo() -> Self {
        Self {
            seed: 42,
            accounts: vec![
                SimAccountConfig::new("openai-platform", ProviderKind::OpenAi, DEMO_OPENAI_KEY),
                SimAccountConfig::new("anthropic-platform", ProviderKind::Anthropic, DEMO_ANTHROPIC_KEY),
                SimAccountConfig::new("azure-platform", ProviderKind::AzureOpenAi, DEMO_AZURE_KEY),
                SimAccountConfig::new("openai-client", ProviderKind::OpenAi, DEMO_CLIENT_OPENAI_KEY),
            ],
        }
    }

    pub fn from_json(json: &str) -> anyhow::Result<Self> {
        Ok(serde_json::from_str(json)?)
    }
}

pub(crate) struct Account {
    pub name: String,
    pub provider: ProviderKind,
    pub key: String,
    pub deployments: BTreeMap<String, String>,
    pub models: Vec<String>,
    faults: RwLock<Faults>,
    rng: Mutex<DetRng>,
    /// Hashes of prompt prefixes seen (for cached-token figures).
    cache: Mutex<HashSet<u64>>,
    pub requests: AtomicU64,
    /// Of those, chat completions and embeddings (the calls that are paid for; not model lists).
    pub generations: AtomicU64,
}

/// What the fault dice decided for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome {
    Ok,
    Outage,
    SpendLimit,
    RateLimited { retry_after_ms: u64 },
    Overloaded,
    ServerError,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision {
    pub latency: Duration,
    pub outcome: Outcome,
    pub slow_stream: Duration,
    pub cut_after: Option<u32>,
}

impl Account {
    fn new(cfg: &SimAccountConfig, seed: &DetRng) -> Self {
        let stream = cfg.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let models = if cfg.models.is_empty() { reply::default_models(cfg.provider) } else { cfg.models.clone() };
        let deployments = if cfg.deployments.is_empty() && cfg.provider == ProviderKind::AzureOpenAi {
            models.iter().map(|m| (m.clone(), m.clone())).collect()
        } else {
            cfg.deployments.clone()
        };
        Self {
            name: cfg.name.clone(),
            provider: cfg.provider,
            key: cfg.key.clone(),
            deployments,
            models,
            faults: RwLock::new(cfg.faults),
            rng: Mutex::new(seed.fork(stream)),
            cache: Mutex::new(HashSet::new()),
            requests: AtomicU64::new(0),
            generations: AtomicU64::new(0),
        }
    }

    pub fn faults(&self) -> Faults {
        *self.faults.read()
    }

    fn set_faults(&self, f: Faults) {
        *self.faults.write() = f;
    }

    /// Rolls the dice for one request (locks held only for the draw).
    pub fn decide(&self) -> Decision {
        let f = self.faults();
        let slow_stream = Duration::from_millis(f.slow_stream_ms);
        if f.is_quiet() {
            return Decision { latency: Duration::ZERO, outcome: Outcome::Ok, slow_stream, cut_after: None };
        }
        let mut rng = self.rng.lock();
        let mut latency_ms = if f.latency.median_ms > 0 {
            if f.latency.sigma > 0.0 {
                rng.lognormal(f.latency.median_ms as f64, f.latency.sigma).min(600_000.0) as u64
            } else {
                f.latency.median_ms
            }
        } else {
            0
        };
        latency_ms = latency_ms.max(f.latency.min_ms);
        let outcome = if f.outage {
            Outcome::Outage
        } else if f.spend_limit {
            Outcome::SpendLimit
        } else if rng.chance(f.rate_limit_rate) {
            Outcome::RateLimited { retry_after_ms: f.retry_after_ms }
        } else if rng.chance(f.overloaded_rate) {
            Outcome::Overloaded
        } else if rng.chance(f.error_rate) {
            Outcome::ServerError
        } else {
            Outcome::Ok
        };
        let cut_after = rng.chance(f.stream_cut_rate).then_some(f.stream_cut_after);
        Decision { latency: Duration::from_millis(latency_ms), outcome, slow_stream, cut_after }
    }

    /// Whether this prompt prefix was seen before (and remembers it).
    pub fn seen_before(&self, hash: u64) -> bool {
        let mut c = self.cache.lock();
        if c.len() > 100_000 {
            c.clear();
        }
        !c.insert(hash)
    }
}

pub(crate) struct SimState {
    by_key: RwLock<HashMap<String, Arc<Account>>>,
    pub counter: AtomicU64,
    /// Per-key rate limits (`limits`).
    pub(crate) limits: limits::Limits,
}

impl SimState {
    pub fn account_by_key(&self, key: &str) -> Option<Arc<Account>> {
        self.by_key.read().get(key).cloned()
    }

    pub fn account_by_name(&self, name: &str) -> Option<Arc<Account>> {
        self.by_key.read().values().find(|a| a.name == name).cloned()
    }

    pub fn accounts(&self) -> Vec<Arc<Account>> {
        let mut v: Vec<_> = self.by_key.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// The simulator entry point.
pub struct Simulator;

impl Simulator {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<SimHandle> {
        Self::start_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(cfg: SimConfig, addr: SocketAddr) -> anyhow::Result<SimHandle> {
        let seed = DetRng::new(cfg.seed);
        let mut by_key = HashMap::new();
        for a in &cfg.accounts {
            if by_key.insert(a.key.clone(), Arc::new(Account::new(a, &seed))).is_some() {
                anyhow::bail!("two simulator accounts share one key (account '{}')", a.name);
            }
        }
        let state = Arc::new(SimState { by_key: RwLock::new(by_key), counter: AtomicU64::new(1), limits: limits::Limits::default() });
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e} (is another simulator running?)"))?;
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(SimHandle { addr: local, base_url: format!("http://{local}"), state, shutdown: Some(tx), task: Some(task) })
    }
}

/// Turns accounts' outages on and off in a running simulator (see [`SimHandle::switch`]).
#[derive(Clone)]
pub struct SimSwitch {
    state: Arc<SimState>,
}

impl SimSwitch {
    /// False if there is no such account.
    pub fn set_outage(&self, account: &str, on: bool) -> bool {
        match self.state.account_by_name(account) {
            Some(a) => {
                let mut faults = a.faults();
                faults.outage = on;
                a.set_faults(faults);
                true
            }
            None => false,
        }
    }
}

/// A running simulator; shuts down when dropped.
pub struct SimHandle {
    addr: SocketAddr,
    base_url: String,
    state: Arc<SimState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (OpenAI clients add `/v1`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn faults(&self, account: &str) -> Option<Faults> {
        self.state.account_by_name(account).map(|a| a.faults())
    }

    /// Replaces an account's faults; false if there is no such account.
    pub fn set_faults(&self, account: &str, faults: Faults) -> bool {
        self.state.account_by_name(account).map(|a| a.set_faults(faults)).is_some()
    }

    pub fn update_faults(&self, account: &str, f: impl FnOnce(&mut Faults)) -> bool {
        match self.state.account_by_name(account) {
            Some(a) => {
                let mut faults = a.faults();
                f(&mut faults);
                a.set_faults(faults);
                true
            }
            None => false,
        }
    }

    pub fn set_outage(&self, account: &str, on: bool) -> bool {
        self.update_faults(account, |f| f.outage = on)
    }

    /// A cloneable outage switch for tasks that outlive a borrow of this handle.
    pub fn switch(&self) -> SimSwitch {
        SimSwitch { state: self.state.clone() }
    }

    /// Requests the account has received (authenticated ones).
    pub fn requests(&self, account: &str) -> u64 {
        self.state.account_by_name(account).map(|a| a.requests.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Stops accepting and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            // Open keep-alive connections would hold a graceful shutdown; end it now.
            t.abort();
        }
    }
}

/// `switchboard simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4490")]
    pub listen: SocketAddr,
    /// Scenario file (JSON: `{"seed": 1, "accounts": [{"name", "provider", "key", "faults"}]}`);
    /// without it, a demo scenario with one account per provider.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Seed for the fault dice (overrides the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Runs the simulator until Ctrl-C.
pub async fn run_simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let mut cfg = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read scenario {}: {e}", path.display()))?;
            SimConfig::from_json(&text).map_err(|e| anyhow::anyhow!("scenario {} is not valid: {e}", path.display()))?
        }
        None => SimConfig::demo(),
    };
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    let handle = Simulator::start_on(cfg.clone(), args.listen).await?;
    println!("provider simulator listening on {}", handle.base_url());
    for a in &cfg.accounts {
        println!("  {:<24} {:<13} key {}", a.name, a.provider.as_str(), crate::domain::provider::fingerprint(&a.key));
    }
    println!("admin: GET {0}/_sim/accounts, POST {0}/_sim/accounts/NAME/faults", handle.base_url());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_scenario_parses_and_unknown_fields_are_refused() {
        let cfg = SimConfig::from_json(include_str!("../../examples/sim_scenario.json")).unwrap();
        assert_eq!(cfg.accounts.len(), 4);
        assert_eq!(cfg.accounts[3].faults.retry_after_ms, 2000);
        assert_eq!(cfg.accounts[0].faults, Faults::default());
        assert!(
            SimConfig::from_json(r#"{"accounts": [{"name": "x", "provider": "openai", "key": "k", "faults": {"eror_rate": 1}}]}"#).is_err()
        );
    }

    #[test]
    fn same_seed_same_dice() {
        let cfg = SimAccountConfig {
            faults: Faults { error_rate: 0.5, latency: Latency { median_ms: 100, sigma: 0.5, min_ms: 0 }, ..Faults::default() },
            ..SimAccountConfig::new("a", ProviderKind::OpenAi, "k")
        };
        let draw = || {
            let a = Account::new(&cfg, &DetRng::new(9));
            (0..50).map(|_| a.decide()).map(|d| (d.latency, d.outcome)).collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }
}
