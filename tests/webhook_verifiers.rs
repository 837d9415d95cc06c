//! Outbound webhooks as a receiver sees them: real deliveries of the example server (on the
//! memory store and on PostgreSQL), captured by a receiver on 127.0.0.1, verified by the
//! Standard Webhooks project's own libraries, exactly as a receiver would call them: Python's
//! `standardwebhooks` (PyPI) and JavaScript's `standardwebhooks` (npm). First attempts and
//! their retries, both message types, a non-ASCII body, and, after a secret rotation, requests
//! signed with two secrets, each of which must verify; an altered body must not.
//!
//! Needs the two libraries: `scripts/standardwebhooks.sh` installs them, pinned, under the
//! cargo target directory, where this test looks (or set `STANDARDWEBHOOKS_PYTHON` to a
//! Python that has the library, and `STANDARDWEBHOOKS_NODE_PATH` to a `node_modules` that has
//! the npm package). The PostgreSQL case needs PostgreSQL, as tests/postgres_processes.rs.

mod common;

use common::{
    article, fresh_database, ingest, post, setup, wait_for_deliveries, webhook_receiver, Inbox,
    Server,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where scripts/standardwebhooks.sh installs the verifiers: `standardwebhooks/` in the cargo
/// target directory.
fn install_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("standardwebhooks")
}

const HOW_TO_INSTALL: &str = "run `scripts/standardwebhooks.sh` (it installs Python's \
    standardwebhooks 1.1.0 and npm's standardwebhooks 1.1.1 under the cargo target directory), \
    or set STANDARDWEBHOOKS_PYTHON / STANDARDWEBHOOKS_NODE_PATH";

/// Runs one verifier script on the captured deliveries; panics with its output unless every
/// check passed.
fn run_verifier(mut command: Command, what: &str, count: usize) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what} could not be started ({e}): {HOW_TO_INSTALL}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        // The script says how to get the library.
        Some(2) => {
            panic!("{what}: {stderr}(or set STANDARDWEBHOOKS_PYTHON / STANDARDWEBHOOKS_NODE_PATH)")
        }
        _ => panic!("{what} rejected deliveries:\n{stdout}{stderr}"),
    }
    assert_eq!(
        stdout.trim(),
        format!("{count} passed, 0 failed"),
        "{what}: {stderr}"
    );
}

/// Verifies with both libraries; `deliveries` as the scripts read them.
fn verify_with_both_libraries(deliveries: &Value, name: &str) {
    let count: usize = deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["secrets"].as_array().unwrap().len())
        .sum();
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "webhook-deliveries-{name}-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, deliveries.to_string()).unwrap();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/standardwebhooks");

    let python = std::env::var_os("STANDARDWEBHOOKS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| install_dir().join("venv/bin/python"));
    let mut command = Command::new(&python);
    command.arg(scripts.join("verify.py")).arg(&file);
    run_verifier(command, "Python's standardwebhooks", count);

    let node_path = std::env::var_os("STANDARDWEBHOOKS_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| install_dir().join("node/node_modules"));
    let mut command = Command::new("node");
    command
        .env("NODE_PATH", node_path)
        .arg(scripts.join("verify.js"))
        .arg(&file);
    run_verifier(command, "npm's standardwebhooks", count);
    let _ = std::fs::remove_file(&file);
}

/// The requests `inbox` got from `from` on, as the verifiers read them, each to be verified
/// with every one of `secrets`.
fn captured(inbox: &Inbox, from: usize, secrets: &[&str]) -> Vec<Value> {
    inbox.lock().unwrap()[from..]
        .iter()
        .map(|r| {
            assert_eq!(
                r.header("webhook-signature").split(' ').count(),
                secrets.len(),
                "one signature per secret"
            );
            json!({
                "secrets": secrets,
                "headers": r.headers,
                "body": String::from_utf8(r.body.clone()).expect("a UTF-8 body"),
            })
        })
        .collect()
}

/// Deliveries from `server`: before and after a rotation, first attempts and retries.
async fn deliveries_verify_with_the_specifications_libraries(server: Server, name: &str) {
    let client = reqwest::Client::new();
    let base = &server.base;
    let (pid, token, cid) = setup(&client, base, json!([])).await;
    let (target, inbox) = webhook_receiver().await;
    let hooks = format!("/v1/programs/{pid}/webhooks");
    let body = json!({"url": target, "events": ["member.points_changed", "event.logged"]});
    let created = post(&client, base, &token, &hooks, body).await;
    let first_secret = created["secret"].as_str().unwrap().to_owned();
    let wid = created["id"].as_str().unwrap();

    // A non-ASCII identifier: the signed bytes are UTF-8, and receivers must agree on them.
    let bulk = json!([
        article("v-1", "ann@example.com"),
        article("v-2", "zoë@example.com"),
        article("v-3", "ann@example.com"),
    ]);
    ingest(&client, base, &cid, bulk.to_string()).await;
    // Three events logged, three awards: six messages, each refused once and then accepted.
    assert_eq!(wait_for_deliveries(&inbox, 6).await, 6, "six messages");
    let before_rotation = inbox.lock().unwrap().len();
    assert_eq!(before_rotation, 12, "each message twice");
    let mut deliveries = captured(&inbox, 0, &[&first_secret]);
    assert!(
        deliveries
            .iter()
            .any(|d| d["body"].as_str().unwrap().contains("zoë")),
        "a body with non-ASCII text"
    );

    // Rotated: the old secret signs beside the new one for the grace period.
    let rotated = post(
        &client,
        base,
        &token,
        &format!("{hooks}/{wid}/rotate-secret"),
        json!({}),
    )
    .await;
    let second_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(first_secret, second_secret);
    ingest(
        &client,
        base,
        &cid,
        article("v-4", "bob@example.com").to_string(),
    )
    .await;
    assert_eq!(wait_for_deliveries(&inbox, 8).await, 8, "two more messages");
    deliveries.extend(captured(
        &inbox,
        before_rotation,
        &[&first_secret, &second_secret],
    ));
    assert_eq!(deliveries.len(), 16);
    let types: std::collections::BTreeSet<String> = deliveries
        .iter()
        .map(|d| {
            let body: Value = serde_json::from_str(d["body"].as_str().unwrap()).unwrap();
            body["type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["event.logged", "member.points_changed"]
    );
    verify_with_both_libraries(&Value::Array(deliveries), name);
}

fn server_flags() -> [&'static str; 3] {
    // Retries after about 5 ms: each message's refused first attempt is retried at once.
    [
        "--allow-private-webhook-targets",
        "--webhook-retry-scale",
        "0.001",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_deliveries_verify_with_the_specifications_libraries() {
    let server = Server::start_with(&server_flags());
    deliveries_verify_with_the_specifications_libraries(server, "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_deliveries_verify_with_the_specifications_libraries() {
    let url = fresh_database("webhook_verifiers").await;
    let flags = [&["--database-url", url.as_str()][..], &server_flags()[..]].concat();
    let server = Server::start_with(&flags);
    deliveries_verify_with_the_specifications_libraries(server, "postgres").await;
}
