//! The PostgreSQL adapter (issue 25's foundation): a connection pool
//! (`tokio-postgres` + `deadpool-postgres`, TLS through rustls with the
//! platform's certificate verifier, used when the URL's `sslmode` asks for
//! it), the versioned PostgreSQL schema ([`schema`]), and `store copy`
//! between a SQLite file and a PostgreSQL database ([`copy`]).
//!
//! It is also the PostgreSQL backend of the `Store` facade: `catalog`,
//! `accounts`, `audit`, `health`, `migrations`, `ledger` (writes),
//! `usage_reads` (the console's and `serve`'s usage summaries),
//! `analytics` (the analytics reader behind reports, exports and the
//! console's charts; `requests`: the request log's search) and `idempotency` (the
//! keys, shared by the fleet) hold the PostgreSQL halves of the store's
//! methods (see ARCHITECTURE.md, "One `Store`, two backends"). The response
//! cache is not here yet.
//!
//! All PostgreSQL I/O runs on one runtime of its own (`pg-io` threads, see
//! [`on_pg`] and [`block_on_pg`]): its connections outlive whichever runtime
//! asked for them, and synchronous callers (the engine's store methods, the
//! usage fold's thread) wait for a result without starting a runtime inside
//! another. Never call [`block_on_pg`] from a `pg-io` thread.
//!
//! Opening is careful, like the SQLite store's: a database that holds tables
//! but no Switchboard schema table (another application's), or whose schema
//! table says a newer version than this build knows, is refused with a clear
//! message before anything is written. Passwords never appear in a message:
//! every URL shown goes through [`mask_url`].

pub mod accounts;
pub mod analytics;
pub mod audit;
pub mod cache_stats;
pub mod catalog;
pub mod copy;
pub mod fleet;
pub mod fleet_actions;
pub mod health;
pub mod idempotency;
pub mod key_checks;
pub mod leases;
pub mod ledger;
pub mod migrations;
pub mod requests;
pub mod schema;
pub mod sealed;
pub mod usage_reads;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The runtime every PostgreSQL connection and query runs on.
fn pg_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pg-io")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the PostgreSQL I/O runtime: {e}"))
    })
}

/// Runs `fut` on the PostgreSQL runtime and awaits it from any runtime.
pub async fn on_pg<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match pg_runtime().spawn(fut).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("PostgreSQL task cancelled: {e}"),
    }
}

/// Starts `fut` on the PostgreSQL runtime without waiting for it (from any
/// thread, inside a runtime or not).
pub(crate) fn spawn_on_pg<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    drop(pg_runtime().spawn(fut));
}

/// Runs `fut` on the PostgreSQL runtime and blocks this thread until it
/// ends: for synchronous code (inside or outside another tokio runtime;
/// never on a `pg-io` thread itself).
pub fn block_on_pg<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    pg_runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    match rx.recv() {
        Ok(v) => v,
        Err(_) => panic!("a PostgreSQL task panicked"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{url} is not a PostgreSQL URL ({detail}). Write it as postgres://USER@HOST:PORT/DATABASE")]
    BadUrl { url: String, detail: String },
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error(
        "{url} holds tables of another application ({tables}), not a Switchboard database. Switchboard left it untouched. Choose an empty database, or a Switchboard one."
    )]
    Foreign { url: String, tables: String },
    #[error(
        "{url} was written by a newer Switchboard (PostgreSQL schema version {found}; this build knows up to {supported}). Switchboard left it untouched. Install the newer Switchboard, or choose another database."
    )]
    NewerSchema { url: String, found: i64, supported: i64 },
    #[error(
        "{url} could not be upgraded from PostgreSQL schema version {from} to {to}: {detail}. Nothing in it was changed (each upgrade step is one transaction)."
    )]
    Upgrade { url: String, from: i64, to: i64, detail: String },
    #[error("database error on {url}: {detail}")]
    Db { url: String, detail: String },
    /// A read stopped by its reader's interrupter (`store::analytics::Interrupter`).
    #[error("the query on {url} was cancelled")]
    Cancelled { url: String },
}

pub type PgResult<T> = Result<T, PgError>;

/// Whether `s` names a PostgreSQL database rather than a file.
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// `url` with its password (in the user part, or a `password=` parameter)
/// replaced by `***`: the only form of a URL that Switchboard ever prints.
pub fn mask_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..].find(['/', '?']).map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let user = userinfo[..colon].to_string();
                out = format!("{}{user}:***{}", &out[..rest_start], &out[rest_start + at..]);
            }
        }
    }
    // `password=` as a query parameter or a key=value connection string.
    let lower = out.to_ascii_lowercase();
    if let Some(p) = lower.find("password=") {
        let start = p + "password=".len();
        let end = out[start..].find(['&', ' ']).map_or(out.len(), |i| start + i);
        out = format!("{}***{}", &out[..start], &out[end..]);
    }
    out
}

/// A pool of connections on one PostgreSQL database whose schema is this
/// build's (created or upgraded by [`PgStore::open`]). Cheap to clone (the
/// pool is shared), so that a clone can move into a task on the `pg-io` runtime.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// The parsed URL (password included: never printed), for connections
    /// outside the pool (the fleet's LISTEN connection).
    cfg: tokio_postgres::Config,
    url: String,
    password: Option<String>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish()
    }
}

impl PgStore {
    /// Connects to `url` and brings its schema up to date; refuses (writing
    /// nothing) another application's database or a newer Switchboard's.
    pub async fn open(url: &str) -> PgResult<PgStore> {
        Self::open_at_version(url, schema::LATEST_VERSION).await
    }

    /// Like [`PgStore::open`] but migrates only up to `version` (for tests of
    /// schema upgrades); a newer database is still refused.
    #[doc(hidden)]
    pub async fn open_at_version(url: &str, version: i64) -> PgResult<PgStore> {
        let store = Self::connect(url)?;
        let s = store.clone();
        on_pg(async move { s.prepare(version).await }).await?;
        Ok(store)
    }

    /// Runs `f` with a clone of this store on the PostgreSQL runtime and
    /// blocks until it ends (see [`block_on_pg`]): the bridge for synchronous callers.
    pub fn block<R, F, Fut>(&self, f: F) -> R
    where
        F: FnOnce(PgStore) -> Fut,
        Fut: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        block_on_pg(f(self.clone()))
    }

    fn connect(url: &str) -> PgResult<PgStore> {
        let masked = mask_url(url);
        let mut cfg: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| PgError::BadUrl { url: masked.clone(), detail: e.to_string() })?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(10));
        }
        cfg.application_name("switchboard");
        let password = cfg.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        let tls = tls_connector().map_err(|detail| PgError::Connect { url: masked.clone(), detail })?;
        let manager = Manager::from_config(cfg.clone(), tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool =
            Pool::builder(manager).max_size(8).build().map_err(|e| PgError::Connect { url: masked.clone(), detail: e.to_string() })?;
        Ok(PgStore { pool, cfg, url: masked, password })
    }

    /// The URL, password masked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection settings (with the password: never print them).
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.cfg
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A connection from the pool, with a clear error when there is none.
    /// New connections are made on the PostgreSQL runtime, so that they
    /// outlive the caller's runtime.
    pub async fn client(&self) -> PgResult<deadpool_postgres::Object> {
        let pool = self.pool.clone();
        on_pg(async move { pool.get().await }).await.map_err(|e| {
            let detail = match e {
                deadpool_postgres::PoolError::Backend(e) => self.detail(&e),
                other => other.to_string(),
            };
            PgError::Connect { url: self.url.clone(), detail: self.scrub(detail) }
        })
    }

    /// A driver error as a message (the server's own text for database
    /// errors), with the password scrubbed out.
    pub fn detail(&self, e: &tokio_postgres::Error) -> String {
        let text = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(e);
                while let Some(cause) = src {
                    s.push_str(": ");
                    s.push_str(&cause.to_string());
                    src = cause.source();
                }
                s
            }
        };
        self.scrub(text)
    }

    fn scrub(&self, text: String) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
            _ => mask_url(&text),
        }
    }

    pub(crate) fn db_err(&self, e: &tokio_postgres::Error) -> PgError {
        PgError::Db { url: self.url.clone(), detail: self.detail(e) }
    }

    /// The schema version in the database (0: none yet).
    pub async fn schema_version(&self) -> PgResult<i64> {
        let client = self.client().await?;
        let row = client.query_one("SELECT to_regclass('switchboard_schema') IS NOT NULL", &[]).await.map_err(|e| self.db_err(&e))?;
        if !row.get::<_, bool>(0) {
            return Ok(0);
        }
        let row = client.query_one("SELECT version FROM switchboard_schema WHERE id = 1", &[]).await.map_err(|e| self.db_err(&e))?;
        Ok(i64::from(row.get::<_, i32>(0)))
    }

    async fn prepare(&self, target: i64) -> PgResult<()> {
        let mut client = self.client().await?;
        // Reads only, until we know the database is ours and not from the future.
        let tables: Vec<String> = client
            .query("SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1", &[])
            .await
            .map_err(|e| self.db_err(&e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !tables.is_empty() && !tables.iter().any(|t| t == "switchboard_schema") {
            let mut shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
            if tables.len() > 5 {
                shown.push("…");
            }
            return Err(PgError::Foreign { url: self.url.clone(), tables: shown.join(", ") });
        }
        let found = self.schema_version().await?;
        if found > schema::LATEST_VERSION {
            return Err(PgError::NewerSchema { url: self.url.clone(), found, supported: schema::LATEST_VERSION });
        }
        for v in found..target.min(schema::LATEST_VERSION) {
            let tx = client.transaction().await.map_err(|e| self.db_err(&e))?;
            // One migrating process at a time; another may have done this step.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::MIGRATION_LOCK]).await.map_err(|e| self.db_err(&e))?;
            let exists: bool =
                tx.query_one("SELECT to_regclass('switchboard_schema') IS NOT NULL", &[]).await.map_err(|e| self.db_err(&e))?.get(0);
            let now: i64 = if exists {
                let r = tx.query_one("SELECT version FROM switchboard_schema WHERE id = 1", &[]).await.map_err(|e| self.db_err(&e))?;
                i64::from(r.get::<_, i32>(0))
            } else {
                0
            };
            if now > v {
                continue;
            }
            let upgrade =
                |e: tokio_postgres::Error| PgError::Upgrade { url: self.url.clone(), from: v, to: v + 1, detail: self.detail(&e) };
            tx.batch_execute(schema::MIGRATIONS[v as usize]).await.map_err(upgrade)?;
            let next = i32::try_from(v + 1).unwrap_or(i32::MAX);
            tx.execute(
                "INSERT INTO switchboard_schema (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                &[&next],
            )
            .await
            .map_err(upgrade)?;
            tx.commit().await.map_err(|e| self.db_err(&e))?;
            tracing::info!(db = %self.url, version = v + 1, "PostgreSQL schema migrated");
        }
        Ok(())
    }
}

/// rustls with the platform's verifier, for URLs whose `sslmode` is
/// `prefer` (the default: TLS when the server offers it) or `require`.
pub(crate) fn tls_connector() -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_platform_verifier()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(mask_url("postgres://sb:s3cret@db.example:5432/sb"), "postgres://sb:***@db.example:5432/sb");
        assert_eq!(mask_url("postgres://sb@db.example/sb"), "postgres://sb@db.example/sb");
        assert_eq!(mask_url("postgresql://sb:p%40ss@h/d?sslmode=require"), "postgresql://sb:***@h/d?sslmode=require");
        assert_eq!(mask_url("postgres://sb@h/d?password=s3cret&sslmode=require"), "postgres://sb@h/d?password=***&sslmode=require");
        assert_eq!(mask_url("host=h user=sb password=s3cret dbname=d"), "host=h user=sb password=*** dbname=d");
    }
}
