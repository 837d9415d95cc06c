//! Database URLs with several hosts and `target_session_attrs`, against the real server of
//! `DATABASE_URL`: the store skips hosts that do not answer or are not what the URL asks for,
//! and says which it tried when none is. (Failover between two real servers, a primary and
//! its standby, is tested by the root package's `tests/postgres_failover.rs`.)

mod common;

use loyalty_store_postgres::{PostgresOptions, PostgresStore};
use std::time::Duration;

/// A URL of the fresh database with `hosts` in place of the host and `query` appended.
fn url_with(options: &sqlx::postgres::PgConnectOptions, hosts: &str, query: &str) -> String {
    format!(
        "postgres://{}@{hosts}/{}?{query}",
        options.get_username(),
        options.get_database().unwrap()
    )
}

fn quick() -> PostgresOptions {
    PostgresOptions {
        acquire_timeout: Duration::from_secs(2),
        ..PostgresOptions::default()
    }
}

/// A port with nothing listening: bound, then released.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_first_read_write_host_that_answers_is_used() {
    let options = common::fresh_database().await;
    let live = format!("{}:{}", options.get_host(), options.get_port());
    let url = url_with(
        &options,
        &format!("127.0.0.1:{},{live}", dead_port()),
        "target_session_attrs=read-write",
    );
    let store = PostgresStore::connect(&url, quick()).await.unwrap();
    assert_eq!(store.primary_host(), live);
    let (read_only,): (String,) = sqlx::query_as("SHOW transaction_read_only")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(read_only, "off");
}

#[tokio::test]
async fn a_read_only_server_is_never_written_to() {
    let options = common::fresh_database().await;
    let live = format!("{}:{}", options.get_host(), options.get_port());
    // The server is made read-only for these sessions, as a demoted primary's are.
    let url = url_with(
        &options,
        &format!("127.0.0.1:{},{live}", dead_port()),
        "options=-c%20default_transaction_read_only%3Don&target_session_attrs=read-write",
    );
    let error = PostgresStore::connect(&url, quick()).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("read-write"), "{message}");
    assert!(message.contains("read-only primary"), "{message}");
    assert!(message.contains(&live), "{message}");
}

#[tokio::test]
async fn a_write_url_must_ask_for_a_writable_server() {
    let options = common::fresh_database().await;
    let live = format!("{}:{}", options.get_host(), options.get_port());
    for attrs in ["any", "standby", "read-only", "prefer-standby"] {
        let url = url_with(
            &options,
            &format!("{live},{live}"),
            &format!("target_session_attrs={attrs}"),
        );
        let error = PostgresStore::connect(&url, quick()).await.unwrap_err();
        assert!(
            error.to_string().contains("must say read-write"),
            "{attrs}: {error}"
        );
    }
}

#[tokio::test]
async fn replica_reads_fall_back_to_any_server_with_prefer_standby() {
    let options = common::fresh_database().await;
    let live = format!("{}:{}", options.get_host(), options.get_port());
    let url = url_with(&options, &live, "");
    // No standby answers, so prefer-standby settles on the primary.
    let read_url = url_with(
        &options,
        &format!("127.0.0.1:{},{live}", dead_port()),
        "target_session_attrs=prefer-standby",
    );
    let store = PostgresStore::connect_with_replica(&url, &read_url, quick())
        .await
        .unwrap();
    assert!(store.reads_from_replica());
}
