//! The store's tests on both backends: the same test body runs on a fresh
//! SQLite file and on a fresh PostgreSQL database (the private cluster
//! scripts/test starts, SWITCHBOARD_TEST_POSTGRES), and writes a transcript
//! of everything it observed; the two transcripts must be equal. Covered:
//! suppliers and weddings, provider accounts, gateway tokens (revocation
//! included), key pool and cache settings and the audit log
//! (`store_backends::catalog`), health history (with compaction), alerts and
//! incidents (`store_backends::health_and_alerts`), migrations, parallel
//! tests, recommendations, mirrors, schedules and settings
//! (`store_backends::migrations`), the usage ledger's writes and summaries
//! (`store_backends::usage`), the analytics reader, request search and export
//! (`store_backends::analytics`), and the catalog version moving on every
//! routing change (and only then). On PostgreSQL also
//! (`store_backends::postgres_only`): a change made through one pool is seen
//! by another as a new catalog version and as a `switchboard_catalog`
//! notification on a raw LISTEN connection, a method not ported yet answers a
//! clear error, no error shows a URL's password, the catalog commands run on
//! it, and two instances racing for one row.
//!
//! This module holds what its submodules share (`on_both`, the catalog
//! version, a supplier and an account to insert).

mod analytics;
mod catalog;
mod health_and_alerts;
mod migrations;
mod postgres_only;
mod usage;

use crate::support::pg::{base_url, fresh_db, rt};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use switchboard::domain::{AccountOwner, AiMode, NewSupplier, ProviderKind, Tier, VendorType};
use switchboard::store::{NewAccount, Store};

fn now() -> DateTime<Utc> {
    // Sub-millisecond digits on purpose: both backends keep milliseconds.
    Utc.with_ymd_and_hms(2026, 6, 10, 12, 0, 0).unwrap() + Duration::microseconds(123_456)
}

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).unwrap()
}

/// Runs `body` on a fresh SQLite file and (when the test cluster is there)
/// on a fresh PostgreSQL database; asserts that both wrote the same transcript.
fn on_both(test: &str, body: fn(&Store, &mut String)) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path().join("sb.db")).unwrap();
    let mut on_sqlite = String::new();
    body(&sqlite, &mut on_sqlite);
    assert!(!on_sqlite.is_empty());
    let Some(base) = base_url(test) else { return };
    let url = rt().block_on(fresh_db(&base, &format!("sbt_sb_{}", test.rsplit(':').next().unwrap())));
    let pg = Store::open_location(&url).unwrap();
    assert!(pg.is_postgres() && pg.sqlite_path().is_none());
    let mut on_pg = String::new();
    body(&pg, &mut on_pg);
    if on_sqlite != on_pg {
        let first = on_sqlite.lines().zip(on_pg.lines()).position(|(a, b)| a != b);
        panic!("the backends differ (first at line {first:?})\n--- SQLite\n{on_sqlite}\n--- PostgreSQL\n{on_pg}");
    }
}

/// Records whether the catalog version moved since the last call.
struct Version(i64);

impl Version {
    fn start(store: &Store) -> Self {
        Version(store.catalog_version().unwrap())
    }

    fn moved(&mut self, store: &Store) -> bool {
        let v = store.catalog_version().unwrap();
        assert!(v >= self.0, "the catalog version went back from {} to {v}", self.0);
        let moved = v > self.0;
        self.0 = v;
        moved
    }
}

fn supplier(name: &str, tier: Tier, weddings: &[NaiveDate]) -> NewSupplier {
    let mut s = NewSupplier::new(name, VendorType::Photographer, tier, AiMode::Platform);
    s.weddings = weddings.to_vec();
    s
}

fn account(owner: AccountOwner, label: &str) -> NewAccount {
    NewAccount {
        owner,
        provider: ProviderKind::OpenAi,
        label: label.into(),
        base_url: "https://api.openai.example/v1/".into(),
        azure: None,
        default_model: "gpt-4o-mini".into(),
    }
}
