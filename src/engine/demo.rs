//! Deterministic demo history: suppliers with a realistic vendor-type and tier
//! mix, weddings concentrated on Saturdays in peak season, platform and client
//! accounts, and a year of usage that swells March–October and around wedding
//! weekends, with a few provider incidents (errors and failover), and platform
//! requests over a supplier's monthly quota refused as the gateway refuses
//! them. The same seed and end date always give the same database content.

use crate::domain::calendar::day_start;
pub use crate::domain::demo::{DemoConfig, DemoSummary};
use crate::domain::rng::DetRng;
use crate::domain::{
    AccountId, AccountOwner, AiMode, AzureConfig, NewSupplier, PricingTable, ProviderAccount, ProviderKind, RequestType, Route, SupplierId,
    Tier, TokenUsage, UsageEvent, UsageStatus, VendorType,
};
use crate::store::{NewAccount, Store, StoreResult};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use std::collections::HashSet;

const ADJECTIVES: &[&str] = &[
    "Golden",
    "Silver",
    "Ivory",
    "Blush",
    "Evergreen",
    "Willow",
    "Rosewood",
    "Moonlit",
    "Sunlit",
    "Velvet",
    "Wildflower",
    "Harbor",
    "Meadow",
    "Amber",
    "Lavender",
    "Crystal",
    "Maple",
    "Juniper",
    "Coastal",
    "Highland",
    "Orchard",
    "Starlight",
    "Cedar",
    "Magnolia",
];
const NOUNS: &[&str] = &[
    "Hour", "Lane", "Grove", "Bloom", "Vow", "Petal", "Ridge", "Garden", "Lantern", "Ribbon", "Manor", "Knot", "Bell", "Arch", "Veil",
    "Promise", "Dune", "Brook", "Hollow", "Field",
];

fn vendor_word(v: VendorType) -> &'static str {
    match v {
        VendorType::Photographer => "Photography",
        VendorType::Venue => "Estate",
        VendorType::Planner => "Planning",
        VendorType::Florist => "Florals",
        VendorType::Caterer => "Catering",
        VendorType::Other => "Events",
    }
}

fn pick_weighted<T: Copy>(rng: &mut DetRng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = (rng.next_u64() % total as u64) as u32;
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

struct DemoSupplier {
    id: SupplierId,
    tier: Tier,
    vendor: VendorType,
    mode: AiMode,
    weddings: HashSet<NaiveDate>,
    client_account: Option<ProviderAccount>,
    /// Per-supplier activity level around its tier's base.
    activity: f64,
}

/// Base requests per day by tier, before season, weekday, wedding and growth
/// factors. Sized with [`token_shape`] so that a supplier of average activity
/// uses about 60–75 % of its tier's platform quota in peak months at the end
/// of the history, and a busy minority reaches 90 % and the quota.
fn base_daily_requests(tier: Tier) -> f64 {
    match tier {
        Tier::Starter => 3.0,
        Tier::Professional => 9.0,
        Tier::Scale => 22.0,
        Tier::Enterprise => 70.0,
    }
}

fn request_mix(v: VendorType) -> &'static [(RequestType, u32)] {
    use RequestType::*;
    match v {
        VendorType::Photographer => &[(ImageAnalysis, 40), (EmailTemplate, 25), (WeddingContent, 20), (Embedding, 15)],
        VendorType::Venue => &[(EmailTemplate, 35), (WeddingContent, 35), (Embedding, 20), (ImageAnalysis, 10)],
        VendorType::Planner => &[(EmailTemplate, 40), (WeddingContent, 35), (Embedding, 20), (ImageAnalysis, 5)],
        VendorType::Florist => &[(ImageAnalysis, 30), (WeddingContent, 35), (EmailTemplate, 25), (Embedding, 10)],
        VendorType::Caterer => &[(EmailTemplate, 40), (WeddingContent, 40), (Embedding, 15), (ImageAnalysis, 5)],
        VendorType::Other => &[(EmailTemplate, 35), (WeddingContent, 35), (Embedding, 15), (ImageAnalysis, 15)],
    }
}

fn weddings_per_year(v: VendorType, rng: &mut DetRng) -> u64 {
    match v {
        VendorType::Photographer => rng.range(20, 40),
        VendorType::Venue => rng.range(50, 110),
        VendorType::Planner => rng.range(12, 30),
        VendorType::Florist => rng.range(30, 70),
        VendorType::Caterer => rng.range(30, 80),
        VendorType::Other => rng.range(10, 40),
    }
}

/// Share of a month in the year's weddings (peak season carries most).
fn month_weight(m: u32) -> u32 {
    match m {
        6 | 9 => 14,
        5 | 7 | 8 | 10 => 11,
        3 | 4 => 7,
        12 => 4,
        _ => 3,
    }
}

fn random_wedding_day(rng: &mut DetRng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    // Choose a month by weight among the months in range, then a weekday by weight.
    let span = (to - from).num_days().max(1) as u64;
    for _ in 0..64 {
        let d = from + Duration::days(rng.range(0, span - 1) as i64);
        let month_ok = rng.range(0, 13) < month_weight(d.month()) as u64;
        let wd_ok = match d.weekday() {
            Weekday::Sat => true,
            Weekday::Fri => rng.chance(0.25),
            Weekday::Sun => rng.chance(0.18),
            _ => rng.chance(0.03),
        };
        if month_ok && wd_ok {
            return d;
        }
    }
    from
}

fn token_shape(rt: RequestType, rng: &mut DetRng) -> (u64, u64) {
    match rt {
        // About 500 tokens a request on average (see base_daily_requests).
        RequestType::EmailTemplate => (rng.lognormal(210.0, 0.4) as u64 + 20, rng.lognormal(130.0, 0.4) as u64 + 10),
        RequestType::ImageAnalysis => (rng.lognormal(420.0, 0.3) as u64 + 85, rng.lognormal(70.0, 0.5) as u64 + 5),
        RequestType::Embedding => (rng.lognormal(110.0, 0.6) as u64 + 5, 0),
        RequestType::WeddingContent => (rng.lognormal(300.0, 0.5) as u64 + 30, rng.lognormal(250.0, 0.5) as u64 + 15),
    }
}

fn model_for(provider: ProviderKind, rt: RequestType, default_model: &str) -> String {
    match (provider, rt) {
        (ProviderKind::Anthropic, RequestType::Embedding) => "text-embedding-3-small".into(),
        (_, RequestType::Embedding) => "text-embedding-3-small".into(),
        _ => default_model.to_string(),
    }
}

/// A provider incident: an account failing for a few hours.
#[derive(Debug, Clone)]
struct Incident {
    account: AccountId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    error_rate: f64,
}

/// A progress callback for [`generate`] that calls `f` once per stage (for
/// a log line per stage rather than per generated day).
pub fn once_per_stage(mut f: impl FnMut(&str)) -> impl FnMut(&str, f32) {
    let mut last = String::new();
    move |stage, _| {
        if stage != last {
            f(stage);
            last = stage.to_string();
        }
    }
}

/// Days of generated health history: what the Health view's longest range shows.
const HEALTH_DAYS: i64 = 30;

/// Generated health history of `accounts` over `[from, until)`: hourly buckets
/// up to the last 24 hours, 5-minute buckets for them (the levels compaction
/// would have left). Each bucket holds the probes (every 30 s) and a few
/// sampled live requests; latency follows the provider's usual answer time
/// (slower in the busy afternoon and evening, UTC) and errors are rare except
/// during the account's incidents, when they follow the incident's error rate.
fn health_history(
    accounts: &[ProviderAccount],
    incidents: &[Incident],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    rng: &mut DetRng,
) -> Vec<crate::store::HealthAggregateRow> {
    let floor = |t: DateTime<Utc>, secs: i64| DateTime::from_timestamp(t.timestamp().div_euclid(secs) * secs, 0).unwrap_or(t);
    let fine_from = floor(until - Duration::hours(24), 3600);
    let mut rows = Vec::new();
    for a in accounts {
        let median = crate::engine::demo_traffic::demo_latency(a.provider).latency.median_ms as f64;
        for (secs, start, end, probes) in [(3600_i64, floor(from, 3600), fine_from, 120_u64), (300, fine_from, until, 10)] {
            let mut t = start;
            while t < end {
                let next = t + Duration::seconds(secs);
                let samples = probes + rng.range(0, probes / 2);
                let busy = (14..22).contains(&chrono::Timelike::hour(&t));
                let incident = incidents.iter().find(|i| i.account == a.id && i.start < next && i.end > t);
                let failures = match incident {
                    Some(i) => {
                        let overlap = (i.end.min(next) - i.start.max(t)).num_seconds() as f64 / secs as f64;
                        (samples as f64 * i.error_rate * overlap).round() as u64
                    }
                    // Otherwise a stray failure now and then (0.3 %).
                    None => (0..samples).filter(|_| rng.chance(0.003)).count() as u64,
                };
                let slow = if incident.is_some() {
                    1.8
                } else if busy {
                    1.2
                } else {
                    1.0
                };
                let avg = rng.lognormal(median * slow, 0.08).max(1.0) as u64;
                let ok = samples.saturating_sub(failures);
                rows.push(crate::store::HealthAggregateRow {
                    account: a.id,
                    bucket_secs: secs,
                    bucket_start: t,
                    samples,
                    failures: failures.min(samples),
                    latency_ms_sum: avg * ok,
                    latency_ms_max: if ok == 0 { 0 } else { avg + avg * rng.range(50, 120) / 100 },
                });
                t = next;
            }
        }
    }
    rows
}

/// Writes the demo history into `store`. `progress` hears each stage's name
/// and the share of the whole work done so far (0–1; the usage history, most
/// of the time, reports every generated day). (which should be empty of suppliers).
pub fn generate(store: &Store, cfg: &DemoConfig, mut progress: impl FnMut(&str, f32)) -> StoreResult<DemoSummary> {
    let root = DetRng::new(cfg.seed);
    let pricing = PricingTable::builtin();
    let created = Utc.from_utc_datetime(&(cfg.until - Duration::days(cfg.days as i64)).and_hms_opt(9, 0, 0).unwrap_or_default());
    let first_day = cfg.until - Duration::days(cfg.days.saturating_sub(1) as i64);
    let wedding_to = cfg.until + Duration::days(180);
    let mut summary = DemoSummary::default();

    // Platform accounts.
    let platform_openai = store.insert_account(
        &NewAccount {
            owner: AccountOwner::Platform,
            provider: ProviderKind::OpenAi,
            label: "WedSync OpenAI".into(),
            base_url: cfg.sim_base_url.clone(),
            azure: None,
            default_model: "gpt-4o-mini".into(),
        },
        created,
    )?;
    let platform_anthropic = store.insert_account(
        &NewAccount {
            owner: AccountOwner::Platform,
            provider: ProviderKind::Anthropic,
            label: "WedSync Anthropic".into(),
            base_url: cfg.sim_base_url.clone(),
            azure: None,
            default_model: "claude-haiku-4-5".into(),
        },
        created,
    )?;
    summary.accounts += 2;

    progress("suppliers and weddings", 0.0);
    let mut rng = root.fork(1);
    let mut used_names = HashSet::new();
    let mut suppliers = Vec::with_capacity(cfg.suppliers as usize);
    for i in 0..cfg.suppliers {
        let vendor = pick_weighted(
            &mut rng,
            &[
                (VendorType::Photographer, 30),
                (VendorType::Venue, 20),
                (VendorType::Planner, 15),
                (VendorType::Florist, 15),
                (VendorType::Caterer, 12),
                (VendorType::Other, 8),
            ],
        );
        let tier = pick_weighted(&mut rng, &[(Tier::Starter, 40), (Tier::Professional, 35), (Tier::Scale, 18), (Tier::Enterprise, 7)]);
        let client_share = match tier {
            Tier::Starter => 0.10,
            Tier::Professional => 0.22,
            Tier::Scale => 0.35,
            Tier::Enterprise => 0.5,
        };
        let mode = if rng.chance(client_share) { AiMode::Client } else { AiMode::Platform };
        let mut name = format!("{} {} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS), vendor_word(vendor));
        if !used_names.insert(name.to_lowercase()) {
            name = format!("{name} {}", i + 1);
            used_names.insert(name.to_lowercase());
        }
        let n_weddings = weddings_per_year(vendor, &mut rng) * (cfg.days as u64 + 180) / 365;
        let mut weddings = HashSet::new();
        for _ in 0..n_weddings {
            weddings.insert(random_wedding_day(&mut rng, first_day, wedding_to));
        }
        let mut new = NewSupplier::new(name, vendor, tier, mode);
        new.weddings = weddings.iter().copied().collect();
        let s = store.insert_supplier(&new, created)?;
        summary.suppliers += 1;
        summary.weddings += s.weddings.len() as u32;
        let client_account = if mode == AiMode::Client {
            let provider =
                pick_weighted(&mut rng, &[(ProviderKind::OpenAi, 60), (ProviderKind::Anthropic, 25), (ProviderKind::AzureOpenAi, 15)]);
            let (default_model, azure) = match provider {
                ProviderKind::OpenAi => ("gpt-4o-mini", None),
                ProviderKind::Anthropic => ("claude-haiku-4-5", None),
                ProviderKind::AzureOpenAi => {
                    ("gpt-4o-mini", Some(AzureConfig { deployment: "gpt-4o-mini".into(), api_version: "2024-10-21".into() }))
                }
            };
            let a = store.insert_account(
                &NewAccount {
                    owner: AccountOwner::Supplier(s.id),
                    provider,
                    label: format!("{} {}", s.name, provider.display_name()),
                    base_url: cfg.sim_base_url.clone(),
                    azure,
                    default_model: default_model.into(),
                },
                created,
            )?;
            summary.accounts += 1;
            Some(a)
        } else {
            None
        };
        suppliers.push(DemoSupplier { id: s.id, tier, vendor, mode, weddings, client_account, activity: rng.lognormal(1.0, 0.35) });
    }

    // A few incidents: mostly client accounts, sometimes a platform account.
    let mut irng = root.fork(2);
    let mut incidents = Vec::new();
    let n_incidents = (cfg.days / 60).max(1) + cfg.suppliers / 100;
    let client_accounts: Vec<AccountId> = suppliers.iter().filter_map(|s| s.client_account.as_ref().map(|a| a.id)).collect();
    for _ in 0..n_incidents {
        let account = if client_accounts.is_empty() || irng.chance(0.25) {
            if irng.chance(0.6) { platform_openai.id } else { platform_anthropic.id }
        } else {
            *irng.pick(&client_accounts)
        };
        let day = first_day + Duration::days(irng.range(0, cfg.days.saturating_sub(1) as u64) as i64);
        let start = Utc.from_utc_datetime(&day.and_hms_opt(irng.range(8, 18) as u32, irng.range(0, 59) as u32, 0).unwrap_or_default());
        let end = start + Duration::minutes(irng.range(20, 300) as i64);
        incidents.push(Incident { account, start, end, error_rate: 0.3 + irng.next_f64() * 0.7 });
    }
    summary.incidents = incidents.len() as u32;

    progress("usage history", 0.01);
    let season = crate::domain::SeasonConfig::default();
    // Normalise the season factors so that peak/off = peak_factor and the yearly mean is ~1.
    let off = 12.0 / (8.0 * cfg.peak_factor + 4.0);
    let peak = off * cfg.peak_factor;
    let mut counter: u64 = 0;
    let seed = cfg.seed;
    let policy = crate::domain::QuotaPolicy::default();
    // Platform tokens each supplier used in the month so far: (year, month, tokens).
    let mut quota_used: Vec<(i32, u32, u64)> = vec![(0, 0, 0); suppliers.len()];
    let events = (0..cfg.days).flat_map(|day_idx| {
        // Shares from a release run of the default demo: usage history 58 %,
        // the rollups (one statement, no progress of their own) 40 %.
        progress("usage history", 0.01 + 0.56 * day_idx as f32 / cfg.days.max(1) as f32);
        let day = first_day + Duration::days(day_idx as i64);
        let mut drng = root.fork(1_000 + day_idx as u64);
        let season_f = if season.is_peak(day) { peak } else { off };
        let growth = 1.0 + cfg.yearly_growth * (day_idx as f64 / cfg.days.max(1) as f64);
        let weekday_f = match day.weekday() {
            Weekday::Sat | Weekday::Sun => 0.8,
            Weekday::Mon | Weekday::Tue => 1.15,
            _ => 1.0,
        };
        let midnight = day_start(day);
        let mut out = Vec::new();
        for (si, s) in suppliers.iter().enumerate() {
            // Busy in the days before a wedding and on the day itself.
            let wedding_f = if (0..=2).any(|k| s.weddings.contains(&(day + Duration::days(k)))) { cfg.wedding_boost } else { 1.0 };
            let lambda = base_daily_requests(s.tier) * s.activity * season_f * growth * weekday_f * wedding_f;
            let n = drng.poisson(lambda);
            // The day's request times first, in order, so that the quota is
            // used up in the order the requests came.
            let mut times: Vec<DateTime<Utc>> = (0..n)
                .map(|_| {
                    // Office hours carry most traffic.
                    let secs = if drng.chance(0.8) { drng.range(8 * 3600, 19 * 3600) } else { drng.range(0, 86_399) };
                    midnight + Duration::seconds(secs as i64) + Duration::milliseconds(drng.range(0, 999) as i64)
                })
                .collect();
            times.sort();
            // Nothing after the moment the history ends (the demo's start):
            // drawn all the same, so that the days before stay as they were.
            if let Some(end) = cfg.history_until {
                times.retain(|t| *t < end);
            }
            let wedding_day = s.weddings.contains(&day);
            let quota = policy.monthly_tokens(s.tier, day);
            let used = &mut quota_used[si];
            if (used.0, used.1) != (day.year(), day.month()) {
                *used = (day.year(), day.month(), 0);
            }
            for ts in times {
                let rt = pick_weighted(&mut drng, request_mix(s.vendor));
                let (mut account, mut route) = match (&s.mode, &s.client_account) {
                    (AiMode::Client, Some(a)) => (a.clone(), Route::Client),
                    _ => {
                        if drng.chance(0.75) {
                            (platform_openai.clone(), Route::Platform)
                        } else {
                            (platform_anthropic.clone(), Route::Platform)
                        }
                    }
                };
                let mut status = if drng.chance(0.012) { UsageStatus::Error } else { UsageStatus::Ok };
                let mut error_class = None;
                if let Some(inc) = incidents.iter().find(|i| i.account == account.id && ts >= i.start && ts < i.end)
                    && drng.chance(inc.error_rate)
                {
                    if route == Route::Client {
                        // The router failed over to platform AI.
                        account = platform_openai.clone();
                        route = Route::Failover;
                    } else {
                        status = UsageStatus::Error;
                    }
                }
                if status == UsageStatus::Error {
                    error_class = Some(if drng.chance(0.5) { "server_error" } else { "timeout" }.to_string());
                }
                let model = model_for(account.provider, rt, &account.default_model);
                let provider = if rt == RequestType::Embedding && account.provider == ProviderKind::Anthropic {
                    ProviderKind::OpenAi
                } else {
                    account.provider
                };
                let (prompt, output) = token_shape(rt, &mut drng);
                let mut usage = if status == UsageStatus::Ok {
                    let cached = if rt != RequestType::Embedding && drng.chance(0.25) { prompt * drng.range(30, 80) / 100 } else { 0 };
                    TokenUsage { input: prompt - cached, output, cached_read: cached, cache_write: 0, reasoning: 0, estimated: false }
                } else {
                    TokenUsage::default()
                };
                let median = if rt == RequestType::Embedding { 140.0 } else { 700.0 + output as f64 * 2.0 };
                let mut latency_ms = drng.lognormal(median, 0.35).min(60_000.0) as u32;
                if route != Route::Client && usage.total() > 0 {
                    if cfg.enforce_quotas && !wedding_day && used.2 + usage.total() > quota {
                        // The gateway refuses it at once: 429, quota_exceeded.
                        status = UsageStatus::Error;
                        error_class = Some("quota_exceeded".to_string());
                        usage = TokenUsage::default();
                        latency_ms = 1;
                    } else {
                        used.2 += usage.total();
                    }
                }
                let cost = pricing.cost(provider, &model, &usage).unwrap_or_default();
                counter += 1;
                out.push(UsageEvent {
                    saved: crate::domain::Micros::ZERO,
                    event_id: format!("demo-{seed}-{counter:09}"),
                    request_id: format!("demo-{seed}-{counter:09}"),
                    idempotency_key: None,
                    ts,
                    supplier_id: s.id,
                    account_id: Some(account.id),
                    provider,
                    model,
                    request_type: rt,
                    route,
                    usage,
                    cost,
                    latency_ms,
                    status,
                    error_class,
                });
            }
        }
        out.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.event_id.cmp(&b.event_id)));
        out
    });
    summary.usage_events = store.append_usage_stream(events)? as u64;
    if let Some(until) = cfg.history_until {
        progress("health history", 0.58);
        let mut accounts = vec![platform_openai.clone(), platform_anthropic.clone()];
        accounts.extend(suppliers.iter().filter_map(|s| s.client_account.clone()));
        let rows = health_history(&accounts, &incidents, created.max(until - Duration::days(HEALTH_DAYS)), until, &mut root.fork(4));
        store.insert_health_aggregates(&rows)?;
    }
    progress("daily rollups", 0.6);
    store.rebuild_daily_rollups()?;
    store.audit(
        created,
        "demo-data",
        "demo.generate",
        None,
        None,
        "ok",
        &format!("seed {} · {} suppliers · {} days", cfg.seed, cfg.suppliers, cfg.days),
    )?;
    Ok(summary)
}
