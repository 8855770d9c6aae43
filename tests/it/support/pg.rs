//! A private PostgreSQL for the tests (scripts/test starts a cluster and sets
//! SWITCHBOARD_TEST_POSTGRES): its URL, a fresh database per test, and a raw
//! driver connection for looking behind the store's back.

/// The test cluster's URL, or None (the test is skipped) outside CI.
pub fn base_url(test: &str) -> Option<String> {
    match std::env::var("SWITCHBOARD_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but SWITCHBOARD_TEST_POSTGRES is not: run the tests with scripts/test, which starts PostgreSQL"
            );
            eprintln!("SKIPPED {test}: SWITCHBOARD_TEST_POSTGRES is not set (scripts/test starts a private PostgreSQL and sets it)");
            None
        }
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A new, empty database `name` on the test cluster; its URL.
pub async fn fresh_db(base: &str, name: &str) -> String {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let name = format!("{name}_{}", std::process::id());
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    client.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0")).await.unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

/// A plain driver connection (its connection task on the current runtime).
pub async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}
