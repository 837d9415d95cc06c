//! A fresh database per test.

#![allow(dead_code)]

use loyalty_core::store::Store;
use loyalty_store_postgres::{PostgresOptions, PostgresStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, Row};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PREFIX: &str = "loyalty_test_";

/// The server of `DATABASE_URL` (default [`DEFAULT_URL`]). Panics if it cannot be reached: a
/// store test that cannot run must fail, not pass by skipping.
pub async fn admin() -> (PgConnection, PgConnectOptions) {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let options = PgConnectOptions::from_str(&url).expect("DATABASE_URL is not a PostgreSQL URL");
    match PgConnection::connect_with(&options).await {
        Ok(connection) => (connection, options),
        Err(error) => panic!(
            "PostgreSQL is not reachable ({error}). These tests need a server where they may \
             create databases: start the local one with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
             or set DATABASE_URL (default {DEFAULT_URL})."
        ),
    }
}

/// Creates an empty database and returns the options to connect to it.
pub async fn fresh_database() -> PgConnectOptions {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let (mut admin, options) = admin().await;
    drop_stale_databases(&mut admin).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "{PREFIX}{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect(
            "CREATE DATABASE failed: the DATABASE_URL user must be allowed to create databases",
        );
    let _ = admin.close().await;
    options.database(&name)
}

/// Drops the test databases of test processes that have exited (named by their pid), so that
/// runs do not pile them up. Best effort.
async fn drop_stale_databases(admin: &mut PgConnection) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(rows) =
        sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'loyalty\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let Some(pid) = name[PREFIX.len()..].split('_').next() else {
            continue;
        };
        let alive =
            pid.parse::<u32>().is_err() || std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    }
}

pub async fn connect(options: PgConnectOptions) -> PostgresStore {
    PostgresStore::connect_with(options, PostgresOptions::default())
        .await
        .expect("connecting the store failed")
}

pub async fn new_store() -> Arc<dyn Store> {
    Arc::new(connect(fresh_database().await).await)
}
