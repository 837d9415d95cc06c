//! The example server on PostgreSQL, as separate processes: exactly once across two servers
//! sharing one database, and after a SIGKILL in the middle of a stream of bulk requests.
//!
//! Needs PostgreSQL: `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`.
//! Start the local one with
//! `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`.

use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROOT: &str = "root-token-for-process-tests";

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database for one test; its URL.
async fn fresh_database(name: &str) -> String {
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

/// The example server binary that `cargo test` built beside this test.
fn server_binary() -> std::path::PathBuf {
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

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(database_url: &str) -> Self {
        Self::start_with(database_url, &[])
    }

    fn start_with(database_url: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(server_binary())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-token",
                ROOT,
                "--database-url",
                database_url,
                // Generous: these tests are about commits, and CI machines are busy.
                "--mapping-timeout-ms",
                "2000",
            ])
            .args(extra)
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
        std::thread::spawn(move || for _ in lines {});
        Self { child, base }
    }

    fn kill(mut self) {
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

async fn admin(
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
async fn setup(client: &reqwest::Client, base: &str, limits: Value) -> (String, String, String) {
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

fn article(id: &str, email: &str) -> Value {
    json!({"eventId": id, "timestamp": chrono::Utc::now().to_rfc3339(), "profile": {"email": email}, "article": {"theme": "sport"}, "totalArticlesRead": 5})
}

/// Every event of the log, oldest last.
async fn all_events(client: &reqwest::Client, base: &str, token: &str, pid: &str) -> Vec<Value> {
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
async fn check_balances(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_database_accept_each_event_once() {
    let url = fresh_database("two_servers").await;
    let one = Server::start(&url);
    let two = Server::start(&url);
    let client = reqwest::Client::new();
    let (pid, token, cid) = setup(&client, &one.base, json!([{"count": 7, "per": "day"}])).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let distinct = 300;
    let mut tasks = Vec::new();
    for task in 0..16 {
        let client = client.clone();
        let base = if task % 2 == 0 {
            one.base.clone()
        } else {
            two.base.clone()
        };
        let cid = cid.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut ids: Vec<usize> = (0..distinct).collect();
            ids.rotate_left(task * 19 % distinct);
            // Each task delivers every event: 16 deliveries of each, from two processes.
            for chunk in ids.chunks(if task % 4 < 2 { 1 } else { 10 }) {
                let items: Vec<Value> = chunk
                    .iter()
                    .map(|i| {
                        article(
                            &format!("e-{i}"),
                            &if i % 2 == 0 {
                                "hot@example.com".to_owned()
                            } else {
                                format!("m{}@example.com", i % 20)
                            },
                        )
                    })
                    .collect();
                let body = if items.len() == 1 {
                    items[0].to_string()
                } else {
                    Value::Array(items).to_string()
                };
                let response: Value = client
                    .post(format!("{base}/v1/incoming/{cid}?token=s3cret-token"))
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for r in response["results"].as_array().unwrap() {
                    seen.push((
                        r["clientEventId"].as_str().unwrap().to_owned(),
                        r["status"].as_str().unwrap().to_owned(),
                    ));
                }
            }
            seen
        }));
    }
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut answered = 0;
    for task in tasks {
        for (id, status) in task.await.unwrap() {
            answered += 1;
            match status.as_str() {
                "accepted" => *accepted.entry(id).or_default() += 1,
                "duplicate" => {}
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert_eq!(answered, distinct * 16);
    assert_eq!(accepted.len(), distinct);
    assert!(
        accepted.values().all(|n| *n == 1),
        "exactly one acceptance per event id"
    );
    let events = all_events(&client, &two.base, &token, &pid).await;
    assert_eq!(
        events.iter().filter(|e| e["status"] == "accepted").count(),
        distinct
    );
    let balances = check_balances(&client, &two.base, &token, &pid, &events).await;
    let hot = events
        .iter()
        .find(|e| e["status"] == "accepted" && e["raw"]["profile"]["email"] == "hot@example.com")
        .unwrap();
    assert_eq!(
        balances[hot["memberId"].as_str().unwrap()],
        70,
        "the limit of 7 a day holds across processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_server_loses_and_doubles_nothing() {
    let url = fresh_database("crash").await;
    let server = Server::start(&url);
    let client = reqwest::Client::new();
    let (pid, token, cid) = setup(&client, &server.base, json!([])).await;
    let bulks: Vec<String> = (0..40)
        .map(|b| {
            Value::Array(
                (0..100)
                    .map(|i| article(&format!("b{b}-{i}"), &format!("m{}@example.com", i % 50)))
                    .collect(),
            )
            .to_string()
        })
        .collect();
    // A stream of bulk requests, 4 at a time; the server is killed in the middle of it.
    let base = server.base.clone();
    let stream = {
        let client = client.clone();
        let bulks = bulks.clone();
        let cid = cid.clone();
        tokio::spawn(async move {
            let mut answered = 0;
            for group in bulks.chunks(4) {
                let sends = group.iter().map(|body| {
                    client
                        .post(format!("{base}/v1/incoming/{cid}?token=s3cret-token"))
                        .body(body.clone())
                        .send()
                });
                for result in futures::future::join_all(sends).await {
                    if result.is_ok_and(|r| r.status().is_success()) {
                        answered += 1;
                    }
                }
            }
            answered
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill();
    let answered_before_kill = stream.await.unwrap();
    assert!(
        answered_before_kill < bulks.len(),
        "the kill came in the middle of the stream"
    );
    let server = Server::start(&url);
    for body in &bulks {
        let response = client
            .post(format!(
                "{}/v1/incoming/{cid}?token=s3cret-token",
                server.base
            ))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let response: Value = response.json().await.unwrap();
        let settled =
            response["accepted"].as_u64().unwrap() + response["duplicates"].as_u64().unwrap();
        let rejected: Vec<&Value> = response["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "rejected")
            .collect();
        assert_eq!(settled, 100, "{rejected:?}");
    }
    let events = all_events(&client, &server.base, &token, &pid).await;
    let accepted: Vec<&Value> = events
        .iter()
        .filter(|e| e["status"] == "accepted")
        .collect();
    assert_eq!(
        accepted.len(),
        4000,
        "every event accepted once: nothing lost, nothing doubled"
    );
    let ids: std::collections::HashSet<&str> = accepted
        .iter()
        .map(|e| e["clientEventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4000);
    assert!(
        accepted
            .iter()
            .all(|e| e["points"] == 10 && e["awards"].as_array().unwrap().len() == 1),
        "no half-committed item"
    );
    let balances = check_balances(&client, &server.base, &token, &pid, &events).await;
    assert_eq!(balances.values().sum::<i64>(), 40_000);
    assert_eq!(balances.len(), 50);
}

/// Refunds delivered through two server processes at once, on one database: one refund sent
/// sixteen times is accepted once, and sixteen partial refunds whose sum is four times the
/// order take back exactly what the purchase earned, not a point more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_through_two_servers_never_reverse_more_than_was_earned() {
    let url = fresh_database("two_servers_refunds").await;
    let one = Server::start(&url);
    let two = Server::start(&url);
    let client = reqwest::Client::new();
    let program = admin(
        &client,
        &one.base,
        ROOT,
        reqwest::Method::POST,
        "/v1/programs",
        Some(json!({"name": "Shop"})),
    )
    .await;
    let (pid, token) = (
        program["id"].as_str().unwrap().to_owned(),
        program["adminToken"].as_str().unwrap().to_owned(),
    );
    let connector = |event_type: &str, mapping: &str| {
        json!({"name": event_type, "eventType": event_type,
               "auth": {"type": "queryToken", "token": "s3cret-token"}, "mapping": mapping})
    };
    let path = format!("/v1/programs/{pid}/connectors");
    let orders = admin(&client, &one.base, &token, reqwest::Method::POST, &path, Some(connector(
        "ecommerce.purchase",
        r#"{"profile": {"kind": "email", "value": email}, "payload": {"orderId": order, "amount": total, "currency": "EUR"}}"#,
    )))
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refunds = admin(
        &client,
        &one.base,
        &token,
        reqwest::Method::POST,
        &path,
        Some(connector(
            "ecommerce.refund",
            r#"{"clientEventId": id, "payload": {"orderId": order, "amount": amount}}"#,
        )),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (name, points) in [
        ("Per euro", json!({"perAmount": {"points": 1, "per": 1}})),
        ("Bonus", json!({"fixed": 10})),
    ] {
        admin(
            &client,
            &one.base,
            &token,
            reqwest::Method::POST,
            &format!("/v1/programs/{pid}/rules"),
            Some(json!({"name": name, "connectorId": orders, "points": points})),
        )
        .await;
    }
    // Past the engines' connector caches: both servers see the rules.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let bought: Value = client
        .post(format!(
            "{}/v1/incoming/{orders}?token=s3cret-token",
            two.base
        ))
        .body(json!({"email": "ann@example.com", "order": "o-1", "total": 20}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bought["results"][0]["points"], 30, "{bought}");

    let mut tasks = Vec::new();
    for task in 0..32 {
        let client = client.clone();
        let base = if task % 2 == 0 { &one.base } else { &two.base }.clone();
        let refunds = refunds.clone();
        tasks.push(tokio::spawn(async move {
            // Even tasks: one refund, sent again and again; odd ones: partial refunds of 5.
            let id = if task % 4 < 2 {
                "same".to_owned()
            } else {
                format!("part-{task}")
            };
            let response: Value = client
                .post(format!("{base}/v1/incoming/{refunds}?token=s3cret-token"))
                .body(json!({"id": id, "order": "o-1", "amount": 5}).to_string())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (id, response["results"][0].clone())
        }));
    }
    let mut taken = 0;
    let mut same_accepted = 0;
    for task in tasks {
        let (id, result) = task.await.unwrap();
        let points = result["points"].as_i64().unwrap();
        assert!(points <= 0, "{result}");
        taken -= points;
        if id == "same" && result["status"] == "accepted" {
            same_accepted += 1;
        }
    }
    assert_eq!(
        same_accepted, 1,
        "one refund is accepted once, whichever server"
    );
    assert_eq!(taken, 30, "all that was earned, and not a point more");
    let member = admin(
        &client,
        &two.base,
        &token,
        reqwest::Method::GET,
        &format!("/v1/programs/{pid}/members?kind=email&value=ann@example.com"),
        None,
    )
    .await;
    assert_eq!(member["balance"], 0);
}

/// One request a webhook receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    member: String,
    body: Vec<u8>,
    signed: bool,
    answered: u16,
}

/// A webhook receiver on 127.0.0.1 that checks each signature (Standard Webhooks, written here
/// from the specification) and answers 500 to the first attempt of every message.
async fn webhook_receiver(
    secret: std::sync::Arc<std::sync::Mutex<String>>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use hmac::Mac;
    let log: std::sync::Arc<std::sync::Mutex<Vec<Received>>> = Default::default();
    let recorded = log.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let log = recorded.clone();
                let secret = secret.lock().unwrap().clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let id = header("webhook-id");
                    let key = base64_decode(secret.strip_prefix("whsec_").unwrap_or_default());
                    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
                    mac.update(format!("{id}.{}.", header("webhook-timestamp")).as_bytes());
                    mac.update(&body);
                    let expected = base64_encode(&mac.finalize().into_bytes());
                    let signed = header("webhook-signature")
                        .split(' ')
                        .any(|entry| entry.strip_prefix("v1,") == Some(expected.as_str()));
                    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let member = json["data"]["memberId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let mut log = log.lock().unwrap();
                    let answered = if log.iter().any(|r| r.id == id) {
                        204
                    } else {
                        500
                    };
                    log.push(Received {
                        id,
                        member,
                        body: body.to_vec(),
                        signed,
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
    (url, log)
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default()
}

/// Webhooks through a SIGKILL and two processes: one server is killed with deliveries
/// pending (dispatched or not, first attempts refused); two servers on the same database then
/// deliver every expected message, signed, in order per member, and never send one message's
/// attempt from both processes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_survive_a_sigkill_and_two_servers_share_them() {
    let url = fresh_database("webhooks").await;
    // Retries after about 1 s and 3 s: the kill finds them pending.
    let flags = [
        "--allow-private-webhook-targets",
        "--webhook-retry-scale",
        "0.2",
    ];
    let server = Server::start_with(&url, &flags);
    let client = reqwest::Client::new();
    let (pid, token, cid) = setup(&client, &server.base, json!([])).await;
    let secret = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (target, received) = webhook_receiver(secret.clone()).await;
    let created = admin(
        &client,
        &server.base,
        &token,
        reqwest::Method::POST,
        &format!("/v1/programs/{pid}/webhooks"),
        Some(json!({"url": target, "events": ["member.points_changed", "event.logged"]})),
    )
    .await;
    *secret.lock().unwrap() = created["secret"].as_str().unwrap().to_owned();
    let wid = created["id"].as_str().unwrap().to_owned();
    let send = |base: String, from: usize, to: usize| {
        let client = client.clone();
        let cid = cid.clone();
        async move {
            let bulk: Vec<Value> = (from..to)
                .map(|i| article(&format!("w-{i}"), &format!("m{}@example.com", i % 4)))
                .collect();
            let response = client
                .post(format!("{base}/v1/incoming/{cid}?token=s3cret-token"))
                .json(&bulk)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
    };
    send(server.base.clone(), 0, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    let before_kill = received.lock().unwrap().len();
    // A first attempt is refused, and its retry comes a second later: none was delivered.
    assert!(
        received.lock().unwrap().iter().all(|r| r.answered == 500),
        "the kill found deliveries pending"
    );

    let first = Server::start_with(&url, &flags);
    let second = Server::start_with(&url, &flags);
    send(second.base.clone(), 20, 30).await;
    // 30 events logged and 30 awards: 60 messages, each answered 500 first, then 204.
    let mut delivered = 0;
    for _ in 0..1800 {
        delivered = {
            let log = received.lock().unwrap();
            let ids: std::collections::HashSet<&str> = log
                .iter()
                .filter(|r| r.answered == 204)
                .map(|r| r.id.as_str())
                .collect();
            ids.len()
        };
        if delivered >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, 60, "every expected message arrives");
    let log = received.lock().unwrap().clone();
    assert!(
        log.iter().all(|r| r.signed),
        "every request is signed with the endpoint's secret"
    );
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    let mut delivered_after_kill: HashMap<&str, usize> = HashMap::new();
    for (n, r) in log.iter().enumerate() {
        let body = *bodies.entry(&r.id).or_insert(&r.body);
        assert_eq!(body, &r.body[..], "one webhook-id, one body");
        if r.answered == 204 && n >= before_kill {
            *delivered_after_kill.entry(&r.id).or_default() += 1;
        }
    }
    // Two processes never both send a message: more than one delivery after the kill only
    // for a message the killed server had sent (its outcome lost with it).
    for (id, times) in &delivered_after_kill {
        let sent_before = log[..before_kill]
            .iter()
            .any(|r| r.id == *id && r.answered == 204);
        assert!(
            *times == 1 || sent_before,
            "{id} delivered {times} times after the kill"
        );
    }
    // A member's next message only after the one before it was delivered.
    let mut open: HashMap<&str, &str> = HashMap::new();
    for r in &log {
        if let Some(waiting) = open.get(r.member.as_str()) {
            assert_eq!(
                *waiting, r.id,
                "a member's next message came before the last was delivered"
            );
        }
        if r.answered == 204 {
            open.remove(r.member.as_str());
        } else {
            open.insert(&r.member, &r.id);
        }
    }
    let deliveries = admin(
        &client,
        &first.base,
        &token,
        reqwest::Method::GET,
        &format!("/v1/programs/{pid}/webhooks/{wid}/deliveries?limit=500"),
        None,
    )
    .await;
    let items = deliveries["items"].as_array().unwrap();
    assert_eq!(items.len(), 60);
    for item in items {
        assert_eq!(item["state"], "delivered", "{item}");
        assert_eq!(item["attempts"][0]["status"], 500);
    }
}
