//! `switchboard fleet`: the fleet's key pair for sealed provider keys on
//! PostgreSQL (issue 25): `init` (create the pair), `export-key` /
//! `import-key` (move the private key to another server through a file or
//! standard input/output, never the command line), `rotate` (new pair, every
//! key re-sealed in one transaction) and `status`. The work is
//! `engine::sealed_keys`'; this prints it. The database URL comes from
//! `--database` or `SWITCHBOARD_DATABASE` and is only ever shown masked.

use crate::domain::SystemClock;
use crate::engine::sealed_keys::{self, KeyDestination};
use crate::store::pg::{self, PgStore};
use crate::vault::sealed::{self, FleetPrivateKey};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Create the fleet's key pair: the public key into the database, the private key
    /// into this server's OS keychain (or --key-file). Refused when the fleet has a key.
    Init(InitArgs),
    /// Write this server's fleet private key to a new 0600 file (--to FILE) or standard
    /// output, to import it on another server.
    ExportKey(ExportArgs),
    /// Read the fleet private key from a file (--from FILE) or standard input and keep it
    /// on this server (OS keychain, or --key-file). It must be the fleet's current key.
    ImportKey(ImportArgs),
    /// Replace the fleet's key pair and re-seal every key, in one transaction; the new
    /// private key goes where the old one was. Other servers then need `import-key`.
    Rotate(RotateArgs),
    /// The fleet's public key, the number of sealed keys, and whether this host can open them.
    Status(StatusArgs),
    /// The fleet's instances: host, version, started, last seen, requests per second,
    /// the duties each leads, and live / gone / stopped.
    Instances(InstancesArgs),
    /// Quota leases that ended with part of their grant not folded: instances that
    /// are gone (killed and never restarted on their host) still hold that quota.
    Leases(super::fleet_leases::LeasesArgs),
    /// Write off such a lease: its unfolded part stops counting against the quota
    /// (audited; usage of that instance folded later still counts, once).
    WriteOff(super::fleet_leases::WriteOffArgs),
}

#[derive(Debug, Args)]
pub struct InstancesArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// Also list instances that stopped or went silent more than a day ago.
    #[arg(long)]
    pub all: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct DatabaseArg {
    /// The fleet's PostgreSQL database, postgres://USER@HOST:PORT/DB (default: SWITCHBOARD_DATABASE).
    #[arg(long, env = "SWITCHBOARD_DATABASE", hide_env_values = true, value_name = "URL")]
    pub database: Option<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// Keep the private key in this new file (created 0600) instead of the OS keychain,
    /// for a headless server (then point SWITCHBOARD_FLEET_KEY_FILE at it).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// A new file to write the private key to (created 0600), or - for standard output (the default).
    #[arg(long, value_name = "FILE|-")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// The file to read the private key from, or - for standard input (the default).
    #[arg(long, value_name = "FILE|-")]
    pub from: Option<String>,
    /// Keep the private key in this new file (created 0600) instead of the OS keychain.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// Only when this server's key is a systemd credential (which Switchboard cannot
    /// rewrite): the new file (created 0600) for the new private key.
    #[arg(long, value_name = "PATH")]
    pub new_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DatabaseArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: FleetCommand) -> anyhow::Result<()> {
    // Keychain calls are blocking and want a runtime around them (as the
    // vault's own calls have): the command runs on a blocking thread of one.
    let rt = super::keys::runtime()?;
    rt.block_on(async move { tokio::task::spawn_blocking(move || run_blocking(cmd)).await.context("the fleet command did not complete")? })
}

fn run_blocking(cmd: FleetCommand) -> anyhow::Result<()> {
    match cmd {
        FleetCommand::Init(a) => init(a),
        FleetCommand::ExportKey(a) => export_key(a),
        FleetCommand::ImportKey(a) => import_key(a),
        FleetCommand::Rotate(a) => rotate(a),
        FleetCommand::Status(a) => status(a),
        FleetCommand::Instances(a) => instances(a),
        FleetCommand::Leases(a) => super::fleet_leases::leases(open(a.db.clone())?, a),
        FleetCommand::WriteOff(a) => super::fleet_leases::write_off(open(a.db.clone())?, a),
    }
}

/// The top-level `--database` / `--db postgres://…`, used when the
/// subcommand names none.
static TOP_LEVEL_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Remembers the top-level database URL for the fleet commands.
pub fn set_default_url(url: Option<String>) {
    if let Some(u) = url.filter(|u| !u.trim().is_empty()) {
        let _ = TOP_LEVEL_URL.set(u);
    }
}

fn open(db: DatabaseArg) -> anyhow::Result<PgStore> {
    let Some(url) = db.database.filter(|s| !s.trim().is_empty()).or_else(|| TOP_LEVEL_URL.get().cloned()) else {
        bail!("name the fleet's database: --database postgres://USER@HOST:PORT/DB, or set SWITCHBOARD_DATABASE");
    };
    if !pg::is_postgres_url(&url) {
        bail!("{} is not a PostgreSQL URL (postgres://…); fleet keys exist only on PostgreSQL", pg::mask_url(&url));
    }
    Ok(pg::block_on_pg(async move { PgStore::open(&url).await })?)
}

fn destination(key_file: Option<PathBuf>) -> KeyDestination {
    key_file.map_or(KeyDestination::Keychain, KeyDestination::File)
}

fn init(a: InitArgs) -> anyhow::Result<()> {
    let pg = open(a.db)?;
    let made = sealed_keys::init(&pg, &SystemClock, &destination(a.key_file))?;
    println!("fleet key created on {}", pg.url());
    println!("public key:  {}", made.public);
    println!("private key: kept in {} (never in the database)", made.place);
    if let sealed::KeyPlace::File(p) = &made.place {
        println!("serve reads it when {}={} is set", sealed::KEY_FILE_ENV, p.display());
    }
    println!("give other servers the private key with `switchboard fleet export-key` here and `switchboard fleet import-key` there");
    Ok(())
}

fn export_key(a: ExportArgs) -> anyhow::Result<()> {
    let pg = open(a.db)?;
    let (_, public, found) = sealed_keys::this_hosts_key(&pg)?;
    match a.to.as_deref() {
        None | Some("-") => {
            let text = found.key.expose_text();
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush())
                .context("cannot write to standard output")?;
            eprintln!("wrote the private key of fleet key {public} to standard output");
        }
        Some(path) => {
            let path = PathBuf::from(path);
            sealed::write_key_file(&path, &found.key)?;
            eprintln!(
                "wrote the private key of fleet key {public} to {} (mode 0600). Move it to the new server over a secure channel, run `switchboard fleet import-key --from FILE` there, then delete the file",
                path.display()
            );
        }
    }
    Ok(())
}

fn import_key(a: ImportArgs) -> anyhow::Result<()> {
    let mut text = zeroize::Zeroizing::new(String::new());
    match a.from.as_deref() {
        None | Some("-") => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                let typed = rpassword::prompt_password("fleet private key (AGE-SECRET-KEY-1…): ")
                    .context("cannot read the key from the terminal")?;
                text.push_str(&zeroize::Zeroizing::new(typed));
            } else {
                stdin
                    .lock()
                    .take(64 * 1024)
                    .read_to_string(&mut text)
                    .context("cannot read the key from standard input (it must be text)")?;
            }
        }
        Some(path) => {
            std::fs::File::open(path)
                .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
                .with_context(|| format!("cannot read {path}"))?;
        }
    }
    let key = FleetPrivateKey::parse(&text).map_err(|_| anyhow::anyhow!("that is not a fleet private key (expected AGE-SECRET-KEY-1…)"))?;
    let pg = open(a.db)?;
    let Some(current) = pg.block(|pg| async move { pg.current_fleet_key().await })? else {
        bail!("the fleet's database has no fleet key yet: run `switchboard fleet init` on a server first");
    };
    if key.public().as_str() != current.public_key {
        bail!(
            "that private key belongs to {}, not to the fleet's current key {}; nothing was stored. Export the current key from a server that can open the fleet's keys",
            key.public(),
            current.public_key
        );
    }
    let place = sealed_keys::store_private_key(&key, &destination(a.key_file))?;
    println!("imported the private key of fleet key {}: kept in {place}", key.public());
    if let sealed::KeyPlace::File(p) = &place {
        println!("serve reads it when {}={} is set", sealed::KEY_FILE_ENV, p.display());
    }
    Ok(())
}

fn rotate(a: RotateArgs) -> anyhow::Result<()> {
    let pg = open(a.db)?;
    let r = sealed_keys::rotate(&pg, &SystemClock, a.new_key_file.as_deref())?;
    println!("fleet key rotated on {}", pg.url());
    println!("old public key: {} (retired)", r.old_public);
    println!("new public key: {}", r.new_public);
    println!("re-sealed {} key(s) in one transaction", r.resealed);
    println!("new private key: kept in {}", r.place);
    println!(
        "other servers cannot open the keys until they import the new private key (`switchboard fleet export-key` here, `import-key` there)"
    );
    Ok(())
}

fn instances(a: InstancesArgs) -> anyhow::Result<()> {
    use crate::engine::fleet::roster::Roster;
    let pg = open(a.db)?;
    let roster = pg::block_on_pg(async move { Roster::load(&pg).await })?;
    let now = super::now();
    let shown: Vec<_> = roster.recent(now, a.all).collect();
    let leads = |id: i64| -> Vec<&'static str> { roster.leads(id, now).into_iter().map(|d| d.as_str()).collect() };
    if a.json {
        let v: Vec<serde_json::Value> = shown
            .iter()
            .map(|r| {
                serde_json::json!({"id": r.id, "host": r.host, "pid": r.pid, "version": r.version, "started_at": r.started_at,
                    "last_seen": r.last_seen, "requests_per_second": r.requests_per_second, "state": r.state.as_str(), "leads": leads(r.id)})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if shown.is_empty() {
        println!("No instances in the last day. Start one with `switchboard --database URL serve`.");
        return Ok(());
    }
    println!("{:>5}  {:<20} {:>7}  {:<9} {:<8} {:>8}  {:<20} LEADS", "ID", "HOST", "PID", "VERSION", "STATE", "REQ/S", "LAST SEEN");
    for r in shown {
        let l = leads(r.id);
        println!(
            "{:>5}  {:<20} {:>7}  {:<9} {:<8} {:>8.1}  {:<20} {}",
            r.id,
            r.host,
            r.pid,
            r.version,
            r.state.as_str(),
            r.requests_per_second,
            r.last_seen.format("%Y-%m-%d %H:%M:%S"),
            if l.is_empty() { "-".to_string() } else { l.join(", ") }
        );
    }
    Ok(())
}

fn status(a: StatusArgs) -> anyhow::Result<()> {
    let pg = open(a.db)?;
    let s = sealed_keys::status(&pg)?;
    if a.json {
        let v = serde_json::json!({
            "database": pg.url(),
            "public_key": s.public.as_ref().map(|p| p.to_string()),
            "retired_keys": s.retired,
            "sealed_keys": s.sealed_keys,
            "can_open": s.can_open,
            "private_key": s.private_key,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("database:     {}", pg.url());
    println!("public key:   {}", s.public.as_ref().map_or_else(|| "none (run `switchboard fleet init`)".to_string(), |p| p.to_string()));
    println!("retired keys: {}", s.retired);
    println!("sealed keys:  {}", s.sealed_keys);
    println!("this host:    {} ({})", if s.can_open { "can open them" } else { "cannot open them" }, s.private_key);
    Ok(())
}
