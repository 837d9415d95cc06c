//! What the tests that run the example server as a process share: the process, the admin
//! calls, a program with the seed connector and rule, and the checks of the log and ledger.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub const ROOT: &str = "root-token-for-process-tests";

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

/// A program, the seed connector, and the seed rule with `limits`: (program, token, connector).
pub async fn setup(
    client: &reqwest::Client,
    base: &str,
    limits: Value,
) -> (String, String, String) {
    let program = admin(
        client,
        base,
        ROOT,
        reqwest::Method::POST,
        "/v1/programs",
        Some(json!({"name": "Readers"})),
    )
    .await;
    let (pid, token) = (
        program["id"].as_str().unwrap().to_owned(),
        program["adminToken"].as_str().unwrap().to_owned(),
    );
    let mapping = r#"{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead}]} }"#;
    let connector = admin(
        client,
        base,
        &token,
        reqwest::Method::POST,
        &format!("/v1/programs/{pid}/connectors"),
        Some(json!({"name": "Article Read", "eventType": "custom.basic", "auth": {"type": "queryToken", "token": "s3cret-token"}, "mapping": mapping})),
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
