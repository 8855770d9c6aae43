//! `switchboard health` (one probe round over every account, with keys from
//! the keychain, printed as a status table with uptime from the history) and
//! `switchboard alerts` (list; acknowledge and resolve, written to the audit log).

use crate::domain::Secret;
use crate::domain::health::AlertRules;
use crate::domain::health::Verdict;
use crate::domain::{AccountId, SystemClock};
use crate::engine::alerts::AlertService;
use crate::engine::health::{HealthMonitor, HealthSnapshot, MonitorConfig};
use crate::providers::{Providers, ProvidersConfig};
use crate::store::{Alert, Store, audit_actor};
use clap::{Args, Subcommand};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Probe timeout in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    cmd: Option<AlertsCommand>,
    /// Only alerts that are not resolved.
    #[arg(long)]
    open: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Acknowledge an alert (stops its escalation).
    Ack { id: i64 },
    /// Resolve an alert by hand.
    Resolve { id: i64 },
}

pub fn run_health(store: Store, args: HealthArgs) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let rt = super::keys::runtime()?;
    let snap: HealthSnapshot = rt.block_on(async {
        let providers = Providers::new(ProvidersConfig::default()).map_err(|e| anyhow::anyhow!("cannot start the HTTP client: {e}"))?;
        // On PostgreSQL the keys are sealed: a server with the fleet's private key opens them.
        let keys = super::keys::service(store.clone())?;
        let mut found: HashMap<AccountId, Secret> = HashMap::new();
        for a in keys.list(None)? {
            if a.key_ref.is_none() || !a.enabled {
                continue;
            }
            match keys.key_for_account(&a).await {
                Ok(k) => {
                    found.insert(a.id, k);
                }
                Err(e) => eprintln!("account {} ({}): key unavailable: {e}", a.id.0, a.label),
            }
        }
        let found = Arc::new(found);
        let cfg = MonitorConfig {
            act: false,
            jitter: false,
            probe_timeout: std::time::Duration::from_secs(args.timeout.max(1)),
            ..Default::default()
        };
        let m =
            HealthMonitor::standalone(store.clone(), providers, Arc::new(SystemClock), Arc::new(move |id| found.get(&id).cloned()), cfg);
        m.probe_all().await?;
        let snap = {
            let m = m.clone();
            tokio::task::spawn_blocking(move || m.snapshot()).await??
        };
        // The keychain client blocks when dropped: not on an async worker.
        let _ = tokio::task::spawn_blocking(move || drop(keys)).await;
        Ok::<_, anyhow::Error>(snap)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&snap)?);
        return Ok(());
    }
    if snap.accounts.is_empty() {
        println!("No provider accounts yet; add one with `switchboard key add`.");
        return Ok(());
    }
    println!(
        "{:>4}  {:<28} {:<12} {:<9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8}  last probe",
        "id", "account", "provider", "health", "p50 ms", "p95 ms", "err %", "up 1h", "up 24h", "up 30d"
    );
    for a in &snap.accounts {
        let pct = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into());
        let ms = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "–".into());
        let verdict = if a.wedding_day { format!("{}*", a.verdict) } else { a.verdict.to_string() };
        let last = match &a.last_probe {
            _ if !a.has_key => "no usable key".to_string(),
            Some(p) if p.ok => format!("ok in {} ms", p.latency_ms),
            Some(p) => format!("{}: {}", p.error_class.as_deref().unwrap_or("failed"), p.message),
            None => "not probed".into(),
        };
        println!(
            "{:>4}  {:<28} {:<12} {:<9} {:>8} {:>8} {:>7.1} {:>8} {:>8} {:>8}  {}",
            a.account.0,
            truncate(&a.label, 28),
            a.provider.as_str(),
            verdict,
            ms(a.window.p50_ms),
            ms(a.window.p95_ms),
            a.window.error_percent,
            pct(a.uptime_1h),
            pct(a.uptime_24h),
            pct(a.uptime_30d),
            last
        );
    }
    if snap.accounts.iter().any(|a| a.wedding_day) {
        println!("* serves a supplier with a wedding today: judged with the wedding-day thresholds");
    }
    let down = snap.accounts.iter().filter(|a| a.verdict == Verdict::Down).count();
    if down > 0 {
        println!("{down} account(s) down. Open alerts: {}", snap.open_alerts.len());
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

pub fn run_alerts(store: Store, args: AlertsArgs) -> anyhow::Result<()> {
    let store = Arc::new(store);
    // The same service (and audit entry) as the console's Acknowledge and Resolve buttons.
    let alerts = AlertService::new(store.clone(), Arc::new(SystemClock), AlertRules::default(), None);
    match args.cmd {
        Some(AlertsCommand::Ack { id }) => {
            let a = alerts.acknowledge_by(id, &audit_actor())?;
            println!("Alert {} acknowledged: {}", a.id, a.message);
        }
        Some(AlertsCommand::Resolve { id }) => {
            let a = alerts.resolve_by(id, &audit_actor())?;
            println!("Alert {} resolved: {}", a.id, a.message);
        }
        None => {
            let alerts = store.list_alerts(args.open, 1_000)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&alerts)?);
            } else {
                print_alerts(&alerts);
            }
        }
    }
    Ok(())
}

fn print_alerts(alerts: &[Alert]) {
    if alerts.is_empty() {
        println!("No alerts.");
        return;
    }
    println!("{:>5}  {:<8} {:<22} {:<20} {:<12}  message", "id", "severity", "kind", "raised (UTC)", "state");
    for a in alerts {
        let state = if a.resolved_at.is_some() {
            "resolved"
        } else if a.acknowledged_at.is_some() {
            "acknowledged"
        } else {
            "open"
        };
        println!(
            "{:>5}  {:<8} {:<22} {:<20} {:<12}  {}",
            a.id,
            a.severity.as_str(),
            a.kind.as_str(),
            a.raised_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            state,
            a.message
        );
    }
}
