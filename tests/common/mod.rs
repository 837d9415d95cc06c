//! What the tests that run the example server as a process share: a fresh PostgreSQL
//! database, the process, the admin calls, a program with the seed connector and rule,
//! ingestion, a webhook receiver, and the checks of the log and ledger.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ROOT: &str = "root-token-for-process-tests";
/// The seed connector's query token.
pub const CONNECTOR_TOKEN: &str = "s3cret-token";

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database for one test (named after it and this process); its URL.
pub async fn fresh_database(name: &str) -> String {
    use sqlx::Connection;
    let admin = admin_url();
    let mut connection = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin} ({e}). Start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
             or set DATABASE_URL."
            )
        });
    let database = format!("loyalty_{name}_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut connection)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut connection)
        .await
        .unwrap();
    match admin.rfind('/') {
        Some(slash) => format!("{}/{database}", &admin[..slash]),
        None => panic!("DATABASE_URL has no database part: {admin}"),
    }
}

pub fn server_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let binary = dir.join("examples").join("server");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --examples`",
        binary.display()
    );
    binary
}

pub struct Server {
    child: Child,
    pub base: String,
    /// The warnings and errors the server logged.
    problems: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(database_url: &str) -> Self {
        Self::start_with(&["--database-url", database_url])
    }

    /// A server with these flags beside the listen address, the root token and a generous
    /// mapping timeout.
    pub fn start_with(flags: &[&str]) -> Self {
        let mut child = Command::new(server_binary())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-token",
                ROOT,
                // Generous: these tests are about commits, and CI machines are busy.
                "--mapping-timeout-ms",
                "2000",
            ])
            .args(flags)
            // The store is the flags' choice: without --database-url, the memory store.
            .env_remove("DATABASE_URL")
            .env_remove("DATABASE_READ_URL")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("the server exits before listening")
                .unwrap();
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on ".len()..];
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining the server's log so that it never blocks on a full pipe.
        let problems = Arc::new(Mutex::new(Vec::new()));
        let kept = problems.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("WARN") || line.contains("ERROR") {
                    kept.lock().unwrap().push(line);
                }
            }
        });
        Self {
            child,
            base,
            problems,
        }
    }

    /// The warnings and errors the server logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn admin(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// An admin GET answered with success; its JSON.
pub async fn get(client: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    admin(client, base, token, reqwest::Method::GET, path, None).await
}

/// An admin POST answered with success; its JSON.
pub async fn post(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: Value,
) -> Value {
    admin(client, base, token, reqwest::Method::POST, path, Some(body)).await
}

/// A new program: (id, its admin token).
pub async fn create_program(client: &reqwest::Client, base: &str, name: &str) -> (String, String) {
    let program = post(client, base, ROOT, "/v1/programs", json!({"name": name})).await;
    (
        program["id"].as_str().unwrap().to_owned(),
        program["adminToken"].as_str().unwrap().to_owned(),
    )
}

/// Posts `body` (one item or a bulk) to a connector with the seed token; asserts success and
/// returns the answer.
pub async fn ingest(client: &reqwest::Client, base: &str, connector: &str, body: String) -> Value {
    let response = client
        .post(format!(
            "{base}/v1/incoming/{connector}?token={CONNECTOR_TOKEN}"
        ))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "ingestion answered {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// A program, the seed connector, and the seed rule with `limits`: (program, token, connector).
pub async fn setup(
    client: &reqwest::Client,
    base: &str,
    limits: Value,
) -> (String, String, String) {
    let (pid, token) = create_program(client, base, "Readers").await;
    let mapping = r#"{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead}]} }"#;
    let connector = admin(
        client,
        base,
        &token,
        reqwest::Method::POST,
        &format!("/v1/programs/{pid}/connectors"),
        Some(json!({"name": "Article Read", "eventType": "custom.basic", "auth": {"type": "queryToken", "token": CONNECTOR_TOKEN}, "mapping": mapping})),
    )
    .await;
    let cid = connector["id"].as_str().unwrap().to_owned();
    admin(
        client,
        base,
        &token,
        reqwest::Method::POST,
        &format!("/v1/programs/{pid}/rules"),
        Some(json!({"name": "Sport readers", "connectorId": cid, "conditions": {"tag": "theme", "op": "eq", "value": "sport"}, "points": {"fixed": 10}, "limits": limits})),
    )
    .await;
    (pid, token, cid)
}

pub fn article(id: &str, email: &str) -> Value {
    json!({"eventId": id, "timestamp": chrono::Utc::now().to_rfc3339(), "profile": {"email": email}, "article": {"theme": "sport"}, "totalArticlesRead": 5})
}

/// Every event of the log, oldest last.
pub async fn all_events(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    pid: &str,
) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/programs/{pid}/events?limit=500&cursor={c}"),
            None => format!("/v1/programs/{pid}/events?limit=500"),
        };
        let page = admin(client, base, token, reqwest::Method::GET, &path, None).await;
        events.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return events,
        }
    }
}

/// Balance of every member seen in the log equals the sum of its ledger entries.
pub async fn check_balances(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    pid: &str,
    events: &[Value],
) -> HashMap<String, i64> {
    let mut balances = HashMap::new();
    let members: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["memberId"].as_str())
        .collect();
    for member in members {
        let profile = admin(
            client,
            base,
            token,
            reqwest::Method::GET,
            &format!("/v1/programs/{pid}/members/{member}"),
            None,
        )
        .await;
        let mut ledger = 0;
        let mut cursor = String::new();
        loop {
            let path = format!("/v1/programs/{pid}/members/{member}/activity?limit=500{cursor}");
            let activity = admin(client, base, token, reqwest::Method::GET, &path, None).await;
            ledger += activity["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["type"] == "ledger")
                .map(|a| a["points"].as_i64().unwrap())
                .sum::<i64>();
            match activity["nextCursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(
            profile["balance"].as_i64().unwrap(),
            ledger,
            "balance of {member} equals its ledger"
        );
        balances.insert(member.to_owned(), ledger);
    }
    balances
}

/// One request a webhook receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The status the receiver answered.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The message's `webhook-id`.
    pub fn id(&self) -> &str {
        self.header("webhook-id")
    }

    /// The member the message is about (empty if none).
    pub fn member(&self) -> String {
        let json: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        json["data"]["memberId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// What a webhook receiver got, in arrival order.
pub type Inbox = Arc<Mutex<Vec<Received>>>;

/// A webhook receiver on 127.0.0.1 (its URL, and what it got) that records every request and
/// answers 500 to the first attempt of each message (by `webhook-id`), 204 to the next: every
/// message is retried once.
pub async fn webhook_receiver() -> (String, Inbox) {
    let inbox = Inbox::default();
    let recorded = inbox.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let inbox = recorded.clone();
                async move {
                    let headers: BTreeMap<String, String> = headers
                        .iter()
                        .map(|(name, value)| {
                            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                            (name.as_str().to_owned(), value)
                        })
                        .collect();
                    let mut inbox = inbox.lock().unwrap();
                    let id = headers.get("webhook-id").cloned().unwrap_or_default();
                    let answered = if inbox.iter().any(|r| r.id() == id) {
                        204
                    } else {
                        500
                    };
                    inbox.push(Received {
                        headers,
                        body: body.to_vec(),
                        answered,
                    });
                    axum::http::StatusCode::from_u16(answered).unwrap()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, inbox)
}

/// Waits (up to a minute and a half) until `count` distinct messages were answered 204; how
/// many were.
pub async fn wait_for_deliveries(inbox: &Inbox, count: usize) -> usize {
    let mut delivered = 0;
    for _ in 0..1800 {
        delivered = {
            let log = inbox.lock().unwrap();
            let ids: std::collections::HashSet<&str> = log
                .iter()
                .filter(|r| r.answered == 204)
                .map(Received::id)
                .collect();
            ids.len()
        };
        if delivered >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    delivered
}
