//! The SQLite store: one database file (WAL, foreign keys on) holding suppliers,
//! weddings, provider accounts (never key material), gateway token hashes, the
//! usage ledger and its daily rollups, health history, alerts, migrations and
//! the append-only audit log.
//!
//! All SQL lives in this module. The engine talks to it through the methods of
//! [`Store`] and the [`UsageLedger`] trait, so that a second backend (PostgreSQL,
//! for several gateway instances sharing one ledger) can be added without
//! touching the engine.
//!
//! Opening is careful: a file that is not a SQLite database, belongs to another
//! application, comes from a newer Switchboard, or is locked is refused with an
//! error naming the file and what to do, and is left byte-for-byte untouched.

mod accounts;
mod alerts;
pub mod analytics;
mod audit;
mod cache;
mod catalog;
mod console;
mod fleet_actions;
mod health;
mod idempotency;
mod migrations;
pub mod pg;
mod pools;
pub mod requests;
pub mod routing_lock;
mod schedules;
pub mod schema;
mod suppliers;
mod tokens;
mod usage;

pub use accounts::NewAccount;
pub use alerts::{Alert, Incident, NewAlert, Raised};
pub use analytics::{AnalyticsReader, DimFilter, SupplierInfo};
pub use audit::{AuditEntry, AuditFilter, os_user as audit_actor};
pub use cache::{CacheCell, CacheUsage, CachedAnswer, PurgeRecord, ResponseCacheStore, SqliteCacheStore};
pub use console::{AuditRow, BreakdownCell, SupplierDay, SupplierSpend, WeddingRow};
pub use fleet_actions::{FleetPurge, ParallelTestRequest, UsageBasis};
pub use health::{CompactionReport, HealthAggregateRow, HealthSampleRow, SeriesPoint};
pub use idempotency::{
    AttemptTimes, Change, Changed, Claim, IdempotencyBackend, IdempotencyDb, StoredAnswer, sidecar_path as idempotency_path,
};
pub use migrations::{LedgerSide, MirrorRecord, Recommendation, mirror_prefix};
pub use requests::{RequestFilter, RequestRow, StatusFilter};
pub use routing_lock::{LockHolder, RoutingLock, RoutingLockError, host_name};
pub use schedules::{MigrationSchedule, ScheduleState};
pub use suppliers::{SupplierFilter, SupplierPatch};
pub use tokens::{GatewayToken, TokenHash, TokenId, TokenRow};
pub use usage::{LedgerSync, SqliteLedger, UsageLedger, WalCheckpointer};

use parking_lot::{Mutex, MutexGuard};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path} is not a SQLite database (it may be damaged, or another kind of file). Switchboard left it untouched. Restore it from a backup, or choose another file with --db PATH."
    )]
    NotADatabase { path: PathBuf },
    #[error(
        "{path} is damaged ({detail}). Switchboard left it untouched. Restore it from a backup, or choose another file with --db PATH."
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} is a SQLite database of another application, not a Switchboard database. Switchboard left it untouched. Choose another file with --db PATH."
    )]
    Foreign { path: PathBuf },
    #[error(
        "{path} was written by a newer Switchboard (schema version {found}; this build knows up to {supported}). Switchboard left it untouched. Install the newer Switchboard, or choose another file with --db PATH."
    )]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },
    #[error(
        "{path} is locked by another program (is another Switchboard running on it?). Close that program and try again, or choose another file with --db PATH."
    )]
    Locked { path: PathBuf },
    #[error(
        "cannot open {path}: {source}. Check that the folder exists and that you may write to it, or choose another file with --db PATH."
    )]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{what} {id} does not exist{hint}")]
    NotFound { what: &'static str, id: String, hint: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error("database error on {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error(
        "{path} could not be upgraded from schema version {from} to {to}: {detail}. Nothing in it was changed (each upgrade step is one transaction). If a development build of Switchboard wrote this file, make a new one (`switchboard demo-data`), or choose another file with --db PATH."
    )]
    Upgrade { path: PathBuf, from: i64, to: i64, detail: String },
    /// A PostgreSQL error (its message masks the URL's password).
    #[error(transparent)]
    Postgres(#[from] pg::PgError),
    /// A store method that has no PostgreSQL version yet.
    #[error("not available on PostgreSQL yet: {0}. Run this on a SQLite database (--db FILE.db) for now.")]
    NotOnPostgres(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A handle on the database: a SQLite file or a PostgreSQL database behind
/// one API. Cheap to share behind an `Arc`. On SQLite, one connection behind
/// a mutex for catalog work (the usage ledger's writer and heavy analytics
/// open their own connections with [`Store::open_connection`]); on
/// PostgreSQL, a pool ([`pg::PgStore`]) whose queries run on the PostgreSQL
/// runtime while the calling thread waits, as it waits for the SQLite mutex.
/// Methods without a PostgreSQL version yet answer
/// [`StoreError::NotOnPostgres`] there.
pub struct Store {
    backend: Backend,
}

enum Backend {
    Sqlite { path: PathBuf, conn: Mutex<Connection> },
    Postgres(pg::PgStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("location", &self.location()).finish()
    }
}

/// What a SQLite-only store method covers, named after the file it lives in
/// (for [`StoreError::NotOnPostgres`]).
fn area_of(file: &str) -> &'static str {
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    match name {
        "alerts.rs" => "alerts and incidents",
        "analytics.rs" => "analytics reports",
        "cache.rs" => "the response cache",
        "console.rs" => "the console's usage and audit views",
        "health.rs" => "health history",
        "idempotency.rs" => "idempotency keys",
        "migrations.rs" => "migrations and parallel mirrors",
        "pools.rs" => "key pool settings",
        "requests.rs" => "request search",
        "schedules.rs" => "migration schedules",
        "usage.rs" => "the usage ledger",
        _ => "this operation",
    }
}

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

impl Store {
    /// Opens (creating if missing) the database at `path` and brings its schema
    /// up to date.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Store> {
        Self::open_at_version(path, schema::LATEST_VERSION)
    }

    /// Like [`Store::open`] but migrates only up to `version`. For tests of
    /// schema migration; an existing newer file is still refused.
    #[doc(hidden)]
    pub fn open_at_version(path: impl AsRef<Path>, version: i64) -> StoreResult<Store> {
        let path = path.as_ref().to_path_buf();
        precheck_file(&path)?;
        let conn = connect(&path)?;
        let store = Store { backend: Backend::Sqlite { path, conn: Mutex::new(conn) } };
        store.prepare(version)?;
        Ok(store)
    }

    /// Connects to the PostgreSQL database at `url` and brings its schema up
    /// to date (refusing another application's or a newer Switchboard's
    /// database, see [`pg::PgStore::open`]). Synchronous: the work runs on
    /// the PostgreSQL runtime.
    pub fn open_postgres(url: &str) -> StoreResult<Store> {
        let url = url.to_string();
        let pg = pg::block_on_pg(async move { pg::PgStore::open(&url).await })?;
        Ok(Store { backend: Backend::Postgres(pg) })
    }

    /// A store on an already opened PostgreSQL pool.
    pub fn from_postgres(pg: pg::PgStore) -> Store {
        Store { backend: Backend::Postgres(pg) }
    }

    /// Opens `location`: a PostgreSQL URL (`postgres://…`, see
    /// [`pg::is_postgres_url`]) or else the path of a SQLite file.
    pub fn open_location(location: &str) -> StoreResult<Store> {
        if pg::is_postgres_url(location) { Self::open_postgres(location) } else { Self::open(location) }
    }

    /// The SQLite file, or `None` on PostgreSQL.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Some(path),
            Backend::Postgres(_) => None,
        }
    }

    /// The SQLite file, or [`StoreError::NotOnPostgres`] naming `what` needs it.
    pub fn sqlite_path_for(&self, what: &str) -> StoreResult<&Path> {
        self.sqlite_path().ok_or_else(|| StoreError::NotOnPostgres(what.to_string()))
    }

    /// Another handle on the same database: a new SQLite connection, or a
    /// clone of the PostgreSQL pool.
    pub fn reopen(&self) -> StoreResult<Store> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Store::open(path),
            Backend::Postgres(pg) => Ok(Store::from_postgres(pg.clone())),
        }
    }

    /// The PostgreSQL pool, or `None` on SQLite.
    pub fn postgres(&self) -> Option<&pg::PgStore> {
        match &self.backend {
            Backend::Sqlite { .. } => None,
            Backend::Postgres(pg) => Some(pg),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres().is_some()
    }

    /// Where the data lives, for messages: the file's path, or the URL with
    /// its password masked.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite { path, .. } => path.display().to_string(),
            Backend::Postgres(pg) => pg.url().to_string(),
        }
    }

    /// The path that SQLite errors name (on PostgreSQL, the masked URL; no
    /// SQLite error arises there).
    pub(crate) fn error_path(&self) -> PathBuf {
        match &self.backend {
            Backend::Sqlite { path, .. } => path.clone(),
            Backend::Postgres(pg) => PathBuf::from(pg.url()),
        }
    }

    /// The error of a SQLite-only method called on PostgreSQL.
    #[track_caller]
    pub(crate) fn not_on_postgres(&self) -> StoreError {
        StoreError::NotOnPostgres(area_of(std::panic::Location::caller().file()).to_string())
    }

    /// Opens another connection on the same (already opened and migrated)
    /// file. SQLite only.
    #[track_caller]
    pub fn open_connection(&self) -> StoreResult<Connection> {
        match &self.backend {
            Backend::Sqlite { path, .. } => connect(path),
            Backend::Postgres(_) => Err(self.not_on_postgres()),
        }
    }

    /// The catalog connection (SQLite only).
    #[track_caller]
    pub(crate) fn conn(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        match &self.backend {
            Backend::Sqlite { conn, .. } => Ok(conn.lock()),
            Backend::Postgres(_) => Err(self.not_on_postgres()),
        }
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> StoreError {
        map_err(&self.error_path(), e)
    }

    /// Runs `f` on the catalog connection, mapping SQLite errors to clear
    /// ones. SQLite only (on PostgreSQL: [`StoreError::NotOnPostgres`]).
    #[track_caller]
    pub fn with_conn<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> StoreResult<R> {
        let conn = self.conn()?;
        f(&conn).map_err(|e| self.err(e))
    }

    /// The schema version: SQLite's `user_version`, or PostgreSQL's own
    /// (numbered separately, see [`pg::schema`]).
    pub fn schema_version(&self) -> StoreResult<i64> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { pg.schema_version().await }).map_err(StoreError::from);
        }
        self.with_conn(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
    }

    /// `PRAGMA integrity_check`; `Ok("ok")` on a healthy file.
    pub fn integrity_check(&self) -> StoreResult<String> {
        self.with_conn(|c| {
            let mut st = c.prepare("PRAGMA integrity_check")?;
            let rows: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(rows.join("; "))
        })
    }

    fn prepare(&self, target: i64) -> StoreResult<()> {
        let path = self.error_path();
        let mut conn = self.conn()?;
        // Reads only, until we know the file is ours and not from the future.
        let app_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(|e| map_err(&path, e))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| map_err(&path, e))?;
        let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(|e| map_err(&path, e))?;
        if app_id != schema::APPLICATION_ID && (app_id != 0 || objects > 0) {
            return Err(StoreError::Foreign { path });
        }
        if version > schema::LATEST_VERSION {
            return Err(StoreError::NewerSchema { path, found: version, supported: schema::LATEST_VERSION });
        }
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(())).map_err(|e| map_err(&path, e))?;
        conn.execute_batch("PRAGMA synchronous=NORMAL;").map_err(|e| map_err(&path, e))?;
        // Foreign keys are off while a step runs (a step may rebuild a parent
        // table, whose DROP would otherwise cascade into its children; SQLite
        // ignores the pragma inside a transaction) and checked before it commits.
        conn.execute_batch("PRAGMA foreign_keys=OFF;").map_err(|e| map_err(&path, e))?;
        let migrated = self.migrate(&mut conn, version, target);
        conn.execute_batch("PRAGMA foreign_keys=ON;").map_err(|e| map_err(&path, e))?;
        migrated
    }

    fn migrate(&self, conn: &mut Connection, version: i64, target: i64) -> StoreResult<()> {
        let path = self.error_path();
        for v in version..target.min(schema::LATEST_VERSION) {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| map_err(&path, e))?;
            tx.execute_batch(schema::MIGRATIONS[v as usize]).map_err(|e| upgrade_err(&path, v, e))?;
            let dangling: Option<String> =
                tx.query_row("PRAGMA foreign_key_check", [], |r| r.get(0)).optional().map_err(|e| upgrade_err(&path, v, e))?;
            if let Some(table) = dangling {
                let detail = format!("a row of {table} would refer to a missing row");
                return Err(StoreError::Upgrade { path, from: v, to: v + 1, detail });
            }
            tx.execute_batch(&format!("PRAGMA user_version = {}; PRAGMA application_id = {};", v + 1, schema::APPLICATION_ID))
                .map_err(|e| map_err(&path, e))?;
            tx.commit().map_err(|e| map_err(&path, e))?;
            tracing::info!(db = %path.display(), version = v + 1, "schema migrated");
        }
        Ok(())
    }
}

/// A failed schema upgrade: SQLite's own message without the migration's SQL
/// text (which rusqlite puts into its error), and what the user can do.
fn upgrade_err(path: &Path, from: i64, e: rusqlite::Error) -> StoreError {
    let detail = match &e {
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    };
    match map_err(path, e) {
        StoreError::Sqlite { .. } => StoreError::Upgrade { path: path.to_path_buf(), from, to: from + 1, detail },
        other => other,
    }
}

/// Refuses a file that is not SQLite before SQLite ever touches it.
fn precheck_file(path: &Path) -> StoreResult<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            Err(StoreError::Io { path: path.to_path_buf(), source: std::io::Error::other("it is a folder, not a file") })
        }
        Ok(m) if m.len() == 0 => Ok(()),
        Ok(_) => {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| StoreError::Io { path: path.to_path_buf(), source: e })?;
            let mut header = [0u8; 16];
            let n = f.read(&mut header).map_err(|e| StoreError::Io { path: path.to_path_buf(), source: e })?;
            if n < 16 || &header != SQLITE_HEADER {
                return Err(StoreError::NotADatabase { path: path.to_path_buf() });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                && !parent.exists()
            {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, format!("the folder {} does not exist", parent.display())),
                });
            }
            Ok(())
        }
        Err(e) => Err(StoreError::Io { path: path.to_path_buf(), source: e }),
    }
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| map_err(path, e))?;
    conn.busy_handler(Some(busy_wait())).map_err(|e| map_err(path, e))?;
    // WAL with synchronous=NORMAL on every connection: a commit is durable
    // against a crash of the process (kill -9 included) without an fsync per
    // commit; the WAL is synced at checkpoints. (A connection left at the
    // default FULL syncs the WAL on every commit.)
    conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;").map_err(|e| map_err(path, e))?;
    Ok(conn)
}

/// How long a connection waits for another's write lock before it reports
/// the database busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(3);

/// The wait for another connection's write lock: polled every 100 µs for
/// the first 10 ms, then every millisecond, up to [`BUSY_TIMEOUT`].
/// SQLite's own busy timeout sleeps 1, 2, 5, 10, … 100 ms between tries, so
/// a write that finds the usage fold's transaction open (a few ms) used to
/// wait up to 10 ms longer than the fold took — an `Idempotency-Key`'s
/// claim or completion on the request path among them.
fn busy_wait() -> impl FnMut(i32) -> bool + Send + 'static {
    let mut since = std::time::Instant::now();
    move |tries| {
        if tries == 0 {
            since = std::time::Instant::now();
        }
        if since.elapsed() >= BUSY_TIMEOUT {
            return false;
        }
        std::thread::sleep(if tries < 100 { Duration::from_micros(100) } else { Duration::from_millis(1) });
        true
    }
}

pub(crate) fn map_err(path: &Path, e: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked { path },
        Some(ErrorCode::NotADatabase) => StoreError::NotADatabase { path },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt { path, detail: e.to_string() },
        Some(ErrorCode::CannotOpen) => StoreError::Io { path, source: std::io::Error::other(e.to_string()) },
        _ => StoreError::Sqlite { path, source: e },
    }
}

/// Formats a timestamp the way the catalog tables store it.
pub(crate) fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn parse_ts(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&chrono::Utc)).unwrap_or_default()
}
