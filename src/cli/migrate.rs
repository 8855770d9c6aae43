//! `switchboard migrate plan|start|status|pause|resume|rollback|abort` and
//! `switchboard parallel-test`. A running `switchboard serve` (or console)
//! picks up what these commands change within a second.

use crate::domain::migration::{Migration, PhasePlan, RouteTarget};
use crate::domain::{AccountId, SupplierId, SystemClock};
use crate::engine::keys::KeyService;
use crate::engine::migrations::MigrationService;
use crate::engine::router::Router;
use crate::providers::{Providers, ProvidersConfig};
use crate::store::Store;
use crate::vault::Vault;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Check a migration and show its phases and the earliest start clear of weddings.
    Plan(Target),
    /// Start a migration now, or schedule it with --at (refused within 48 h of
    /// one of the supplier's weddings; a scheduled start is checked again then).
    Start(StartArgs),
    /// Cancel a scheduled start that has not happened yet.
    Unschedule { id: i64 },
    /// List scheduled starts (waiting, started, refused, cancelled).
    Scheduled {
        #[arg(long)]
        supplier: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Show migrations with their phases and figures.
    Status {
        #[arg(long)]
        supplier: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Pause a running migration (its traffic share stays; the phase clock stops).
    Pause { id: i64 },
    /// Resume a paused migration.
    Resume { id: i64 },
    /// Send all traffic back to the old route at once.
    Rollback {
        id: i64,
        #[arg(long, default_value = "rolled back by the account manager")]
        reason: String,
    },
    /// Stop a migration; traffic stays on the old route.
    Abort { id: i64 },
}

#[derive(Debug, Args)]
pub struct Target {
    #[arg(long)]
    supplier: i64,
    /// `platform`, or `account:ID` for one of the supplier's own accounts.
    #[arg(long, value_parser = parse_target)]
    to: RouteTarget,
    /// Phases as PERCENT:DURATION, e.g. `5:10m,25:20m,75:30m,100:15m` (the default).
    #[arg(long, value_parser = parse_plan)]
    plan: Option<PlanArg>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    target: Target,
    /// Start at this time instead of now: RFC 3339 with its offset, e.g.
    /// 2026-06-02T09:00:00+02:00. The routing runtime (`switchboard serve`, or
    /// a console that routes) starts it then, checking the wedding guard again.
    #[arg(long, value_parser = parse_at, value_name = "TIME")]
    at: Option<chrono::DateTime<chrono::Utc>>,
}

fn parse_at(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::domain::schedule::parse_start_time(s)
}

fn print_schedule(store: &Store, s: &crate::store::MigrationSchedule) {
    use crate::domain::schedule::format_local;
    let tz = store.supplier(s.supplier).map(|x| x.time_zone).unwrap_or(chrono_tz::Tz::UTC);
    let runtime = crate::engine::migration_schedule::router_of(store);
    let wait = crate::engine::migration_schedule::waiting_reason(s, super::now(), runtime.as_ref(), store.is_postgres());
    println!(
        "Scheduled {} · supplier {} → {} · at {} ({} UTC) · {}{}{}",
        s.id,
        s.supplier,
        s.to,
        format_local(s.start_at, tz),
        s.start_at.format("%Y-%m-%d %H:%M"),
        s.state.as_str(),
        s.migration_id.map(|m| format!(" as migration {m}")).unwrap_or_default(),
        s.reason.as_deref().or(wait.as_deref()).map(|r| format!(" — {r}")).unwrap_or_default()
    );
}

#[derive(Debug, Args)]
pub struct RecommendationsArgs {
    #[command(subcommand)]
    cmd: Option<RecommendationsCommand>,
    /// Print JSON instead of a list.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RecommendationsCommand {
    /// Dismiss an open recommendation (audited).
    Dismiss { id: i64 },
}

pub fn run_recommendations(store: Store, args: RecommendationsArgs) -> anyhow::Result<()> {
    let now = super::now();
    match args.cmd {
        Some(RecommendationsCommand::Dismiss { id }) => {
            let r = store
                .dismiss_recommendation(id, now)?
                .ok_or_else(|| anyhow::anyhow!("there is no open recommendation {id}; list them with `switchboard recommendations`"))?;
            store.audit(now, &crate::store::audit_actor(), "recommendation.dismiss", Some(r.supplier_id), None, "ok", &r.message)?;
            println!("Recommendation {id} dismissed: {}", r.message);
        }
        None => {
            let recs = store.open_recommendations()?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&recs)?);
            } else if recs.is_empty() {
                println!("No open recommendations.");
            } else {
                for r in &recs {
                    println!(
                        "{:>4}  {}  supplier {:<5} {:<22} {}",
                        r.id,
                        r.created_at.format("%Y-%m-%d %H:%M"),
                        r.supplier_id,
                        r.kind,
                        r.message
                    );
                }
                println!(
                    "Plan a migration with `switchboard migrate plan --supplier ID --to ...`; dismiss with `switchboard recommendations dismiss ID`."
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ParallelArgs {
    #[arg(long, required_unless_present = "stop_mirror")]
    supplier: Option<i64>,
    /// The candidate account (usually the supplier's own).
    #[arg(long, required_unless_present = "stop_mirror")]
    account: Option<i64>,
    /// A file with one prompt per line (default: eight typical wedding-supplier prompts).
    #[arg(long, conflicts_with = "mirror")]
    prompts: Option<std::path::PathBuf>,
    /// Instead of fixed prompts, compare on a sample of the supplier's live
    /// requests: a running `switchboard serve` (or demo console) copies them
    /// to the account in the background and writes the report when done.
    #[arg(long)]
    mirror: bool,
    /// With --mirror: the share of the supplier's requests copied, in percent.
    #[arg(long, default_value_t = 25, value_name = "PERCENT")]
    sample: u32,
    /// With --mirror: write the report once this many requests are compared.
    #[arg(long, default_value_t = 50)]
    requests: u32,
    /// With --mirror: … or after this many days, with what was compared by then.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Stop a live-traffic mirror now and write its report from what it compared.
    #[arg(long, value_name = "MIRROR_ID", conflicts_with_all = ["supplier", "account", "mirror", "prompts"])]
    stop_mirror: Option<i64>,
    #[arg(long)]
    json: bool,
    /// On PostgreSQL (the test is run by an instance of the fleet): how long
    /// to wait for an instance to take it before withdrawing it.
    #[arg(long, default_value_t = 20, value_name = "SECONDS")]
    wait: u64,
}

fn parse_target(s: &str) -> Result<RouteTarget, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "platform" {
        return Ok(RouteTarget::Platform);
    }
    t.strip_prefix("account:")
        .and_then(|n| n.parse::<i64>().ok())
        .map(|n| RouteTarget::Account(AccountId(n)))
        .ok_or_else(|| format!("'{s}' is not a route; write `platform` or `account:ID` (see `switchboard key list`)"))
}

/// A phase plan given on the command line.
#[derive(Debug, Clone)]
pub struct PlanArg(Vec<PhasePlan>);

fn parse_plan(s: &str) -> Result<PlanArg, String> {
    crate::domain::migration::parse_plan(s).map(PlanArg)
}

/// A router over the store with the accounts' keys from the keychain (for the parallel test).
fn router(store: Arc<Store>) -> anyhow::Result<(tokio::runtime::Runtime, Arc<Router>)> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let router = rt.block_on(async {
        let keys =
            KeyService::new(store.clone(), Vault::os(), Arc::new(Providers::new(ProvidersConfig::default())?), Arc::new(SystemClock));
        let router = crate::engine::runtime::offline_router(store, Arc::new(SystemClock), &keys).await?;
        tokio::task::spawn_blocking(move || drop(keys)).await?;
        Ok::<_, anyhow::Error>(router)
    })?;
    Ok((rt, router))
}

fn print_migration(m: &Migration) {
    println!(
        "Migration {} · supplier {} · {} → {} · {}{}",
        m.id,
        m.supplier,
        m.from,
        m.to,
        m.state.as_str(),
        m.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    );
    for (i, p) in m.phases.iter().enumerate() {
        let mark = if i == m.phase && m.state.is_active() { "▶" } else { " " };
        let p95 = p.stats.p95_ms().map(|v| format!("{v} ms")).unwrap_or_else(|| "-".into());
        println!(
            "  {mark} phase {}  {:>3} %  min {:>4} min  {:<11}  {:>5} requests  {:>5.1} % errors  p95 {:>8}  {}",
            i + 1,
            p.percent,
            p.min_secs / 60,
            p.outcome.as_deref().unwrap_or(if p.started_at.is_some() { "running" } else { "planned" }),
            p.stats.requests,
            p.stats.error_bp() as f64 / 100.0,
            p95,
            p.started_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()
        );
    }
}

pub fn run(store: Store, cmd: MigrateCommand) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let svc = MigrationService::offline(store.clone(), Arc::new(SystemClock))?;
    match cmd {
        MigrateCommand::Plan(t) => {
            let p = svc.plan(SupplierId(t.supplier), t.to, t.plan.map(|p| p.0))?;
            println!("Supplier {} · {} → {}", p.supplier, p.from, p.to);
            for (i, ph) in p.phases.iter().enumerate() {
                println!("  phase {}: {:>3} % of traffic for at least {} min", i + 1, ph.percent, ph.min_secs / 60);
            }
            println!(
                "  checks in every phase: error rate ≤ {:.0} %, p95 < {} ms, at least {} requests on the new route",
                p.criteria.max_error_bp as f64 / 100.0,
                p.criteria.max_p95_ms,
                p.criteria.min_requests
            );
            match p.blocked_by {
                Some(d) => {
                    println!("  a wedding on {d} blocks starting now; earliest start: {}", p.earliest_start.format("%Y-%m-%d %H:%M UTC"))
                }
                None => println!(
                    "  may start now (earliest start clear of weddings for the whole plan: {})",
                    p.earliest_start.format("%Y-%m-%d %H:%M UTC")
                ),
            }
        }
        MigrateCommand::Start(StartArgs { target, at: Some(at) }) => {
            let sched =
                crate::engine::migration_schedule::schedule(&svc, SupplierId(target.supplier), target.to, target.plan.map(|p| p.0), at)?;
            print_schedule(&store, &sched);
            match crate::engine::migration_schedule::router_of(&store) {
                Some(h) => println!("{h} routes this database and will start it on time."),
                None if store.is_postgres() => println!(
                    "The fleet's migrations leader starts it on time (`switchboard fleet instances` shows which instance leads). Cancel with `switchboard migrate unschedule {}`.",
                    sched.id
                ),
                None => println!(
                    "No runtime routes this database now: the start waits until `switchboard serve` runs (or a console that routes). Cancel with `switchboard migrate unschedule {}`.",
                    sched.id
                ),
            }
        }
        MigrateCommand::Scheduled { supplier, json } => {
            let schedules = store.schedules(supplier.map(SupplierId))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&schedules)?);
            } else if schedules.is_empty() {
                println!("No scheduled migrations. Schedule one with `switchboard migrate start --supplier ID --to TARGET --at TIME`.");
            } else {
                for s in &schedules {
                    print_schedule(&store, s);
                }
            }
        }
        MigrateCommand::Unschedule { id } => print_schedule(&store, &crate::engine::migration_schedule::cancel(&svc, id)?),
        MigrateCommand::Start(a) => {
            let m = svc.start(SupplierId(a.target.supplier), a.target.to, a.target.plan.map(|p| p.0), None)?;
            println!("Started migration {}: {} % of supplier {}'s traffic now goes to {}.", m.id, m.current_percent(), m.supplier, m.to);
        }
        MigrateCommand::Status { supplier, json } => {
            let list = store.list_migrations(supplier.map(SupplierId))?;
            let schedules = store.schedules(supplier.map(SupplierId))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() && schedules.is_empty() {
                println!("No migrations. Plan one with `switchboard migrate plan --supplier ID --to account:ID`.");
            } else {
                for s in &schedules {
                    print_schedule(&store, s);
                }
                for m in &list {
                    print_migration(m);
                }
            }
        }
        MigrateCommand::Pause { id } => print_migration(&svc.pause(id)?),
        MigrateCommand::Resume { id } => print_migration(&svc.resume(id)?),
        MigrateCommand::Rollback { id, reason } => print_migration(&svc.rollback(id, &reason)?),
        MigrateCommand::Abort { id } => print_migration(&svc.abort(id)?),
    }
    Ok(())
}

pub fn run_parallel(store: Store, a: ParallelArgs) -> anyhow::Result<()> {
    let now = super::now();
    if let Some(id) = a.stop_mirror {
        let m = store.mirror(id)?.ok_or_else(|| anyhow::anyhow!("there is no mirror {id}"))?;
        if !m.is_running() {
            anyhow::bail!("mirror {id} is not running (it is {}); nothing to stop", m.state);
        }
        let report =
            crate::engine::parallel::finish_mirror(&store, &crate::domain::PricingTable::builtin(), id, now, "stopped by hand", true)?;
        match report {
            Some(r) => println!("Mirror {id} stopped: report {} written ({} requests compared).", r.id, r.candidate.requests),
            None => println!("Mirror {id} stopped: no live request had been mirrored, so there is no report."),
        }
        return Ok(());
    }
    let (Some(supplier), Some(account)) = (a.supplier, a.account) else {
        anyhow::bail!("--supplier and --account are required");
    };
    if a.mirror {
        let plan = crate::engine::parallel::MirrorPlan {
            sample_percent: a.sample,
            requests: a.requests,
            duration: chrono::Duration::days(a.days.into()),
        };
        let m = crate::engine::parallel::start_mirror(&store, SupplierId(supplier), AccountId(account), plan, now)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&m)?);
        } else {
            println!(
                "Mirror {} started: {} % of supplier {supplier}'s live requests are copied to account {account} until {} are compared or {}.",
                m.id,
                m.sample_percent,
                m.target_requests,
                m.ends_at.format("%Y-%m-%d %H:%M UTC")
            );
            println!(
                "A running `switchboard serve` does the mirroring; stop early with `switchboard parallel-test --stop-mirror {}`.",
                m.id
            );
        }
        return Ok(());
    }
    let prompts: Vec<String> = match &a.prompts {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the prompts file {}", p.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    let store = Arc::new(store);
    let cancel = crate::engine::analytics::CancelHandle::new();
    let progress = |p: crate::engine::parallel::ParallelProgress| eprintln!("  {} of {} prompts answered by both routes", p.done, p.total);
    let report = if store.is_postgres() {
        // Only the fleet's servers can open keys: an instance runs the test.
        eprintln!("Filed for the fleet: an instance of `switchboard serve` runs the test.");
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let clock: Arc<dyn crate::domain::Clock> = Arc::new(SystemClock);
        let wait = std::time::Duration::from_secs(a.wait);
        let actor = crate::store::audit_actor();
        let (s, a) = (SupplierId(supplier), AccountId(account));
        rt.block_on(crate::engine::parallel::fleet::run_by_fleet(&store, &clock, &actor, s, a, &prompts, &cancel, wait, progress))?
    } else {
        let (rt, router) = router(store)?;
        let report =
            rt.block_on(crate::engine::parallel::run_with(&router, SupplierId(supplier), AccountId(account), &prompts, &cancel, progress));
        rt.block_on(router.ledger().flush());
        report?
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("Parallel test {} for supplier {} ({} prompts)", report.id, report.supplier, report.current.requests);
    println!("{:<28} {:>28} {:>28}", "", "current", "candidate");
    let row = |k: &str, a: String, b: String| println!("{k:<28} {a:>28} {b:>28}");
    let (c, d) = (&report.current, &report.candidate);
    row("account", format!("{} ({})", c.label, c.model), format!("{} ({})", d.label, d.model));
    row("success", format!("{:.0} %", c.success_percent()), format!("{:.0} %", d.success_percent()));
    row("latency p50 / p95", format!("{} / {} ms", c.p50_ms, c.p95_ms), format!("{} / {} ms", d.p50_ms, d.p95_ms));
    row(
        "tokens in / out per request",
        format!("{} / {}", c.avg_input_tokens, c.avg_output_tokens),
        format!("{} / {}", d.avg_input_tokens, d.avg_output_tokens),
    );
    row("cost per request", c.cost_per_request.to_string(), d.cost_per_request.to_string());
    row("projected cost per month", c.projected_monthly_cost.to_string(), d.projected_monthly_cost.to_string());
    println!(
        "Projected monthly saving: {} (from the last {} days: {} requests, {} input, {} cached, {} output tokens).",
        report.projected_monthly_saving,
        report.basis_days,
        report.basis_requests,
        report.basis_input_tokens,
        report.basis_cached_tokens,
        report.basis_output_tokens
    );
    println!("Suggested migration start (clear of weddings): {}", report.suggested_start.format("%Y-%m-%d %H:%M UTC"));
    if let Some(r) = &report.recommendation {
        println!("Recommendation: {r}");
    }
    Ok(())
}
