//! Outbound webhooks against a real receiver on 127.0.0.1 (the servers here allow private
//! targets, except where the guard itself is tested): signatures checked by an independent
//! implementation, errors answered to force retries, the delivery log, a member's messages in
//! commit order, test messages, secret rotation, manual retries, and private targets refused
//! at creation and at delivery.

use crate::harness::{article, TestServer, ROOT};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use loyalty_core::webhooks::{RetrySchedule, TargetPolicy, WebhookSpec};
use loyalty_http::webhooks::{run_webhook_worker, WebhookConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Value,
    raw: Bytes,
    answered: u16,
}

/// A webhook receiver: records every request, and answers 500 to the first `failures`
/// attempts of each message, 204 after.
#[derive(Clone)]
struct Receiver {
    url: String,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(failures: usize) -> Self {
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let recorded = log.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let log = recorded.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let id = header("webhook-id");
                    let mut log = log.lock().unwrap();
                    let seen = log.iter().filter(|r| r.id == id).count();
                    let answered = if seen < failures { 500 } else { 204 };
                    log.push(Received {
                        id,
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        raw: body,
                        answered,
                    });
                    AxumStatus::from_u16(answered).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, log }
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was received (failing after a minute: the worker is
    /// stuck, not slow).
    async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..1200 {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the receiver never got {what}: {:#?}", self.received());
    }
}

/// Standard Webhooks verification written from the specification, independently of the
/// server's code: HMAC-SHA256 of `id.timestamp.body` under the base64 key after `whsec_`,
/// any `v1,` entry of the space-separated header matching.
fn verifies(secret: &str, received: &Received) -> bool {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", received.id, received.timestamp).as_bytes());
    mac.update(&received.raw);
    let expected = BASE64.encode(mac.finalize().into_bytes());
    received
        .signature
        .split(' ')
        .any(|entry| entry.strip_prefix("v1,") == Some(expected.as_str()))
}

fn fast_worker(allow_private: bool) -> WebhookConfig {
    WebhookConfig {
        allow_private_targets: allow_private,
        retry: RetrySchedule::scaled(0.001),
        poll_interval: Duration::from_millis(20),
        ..WebhookConfig::default()
    }
}

async fn webhook(server: &TestServer, program: &str, token: &str, url: &str) -> Value {
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/programs/{program}/webhooks"),
            Some(token),
            Some(json!({"url": url, "events": ["member.points_changed", "event.logged"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_delivered_signed_retried_in_member_order_and_logged() {
    let (server, _) = TestServer::start_with_webhooks(fast_worker(true)).await;
    let receiver = Receiver::start(2).await;
    let (program, token, connector) = server.program_with_query_connector().await;
    server
        .seed_rule(&program, &token, &connector, json!([]))
        .await;
    let created = webhook(&server, &program, &token, &receiver.url).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let wid = created["id"].as_str().unwrap();
    // Never shown again.
    let read = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/webhooks/{wid}"),
            &token,
            None,
        )
        .await;
    assert!(read.get("secret").is_none(), "{read}");
    assert!(!read.to_string().contains(&secret));

    for (n, email) in [
        "ann@example.com",
        "ann@example.com",
        "bob@example.com",
        "ann@example.com",
    ]
    .iter()
    .enumerate()
    {
        let body = article(&format!("e-{n}"), email, "sport", 5).to_string();
        let (status, _) = server
            .send(&connector, "?token=s3cret-token", &[], body)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // Four events logged and four awards: eight messages, each answered 500, 500, then 204.
    let received = receiver
        .wait_for("eight delivered messages", |received| {
            received.iter().filter(|r| r.answered == 204).count() >= 8
        })
        .await;
    for message in &received {
        assert!(verifies(&secret, message), "a bad signature: {message:?}");
        assert!(message.id.starts_with("msg_"));
        let timestamp: i64 = message.timestamp.parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 300);
    }
    // Every message was tried three times under one webhook-id, with the same body.
    let mut by_id: HashMap<&str, Vec<&Received>> = HashMap::new();
    for message in &received {
        by_id.entry(&message.id).or_default().push(message);
    }
    assert_eq!(by_id.len(), 8);
    for attempts in by_id.values() {
        let answers: Vec<u16> = attempts.iter().map(|a| a.answered).collect();
        assert_eq!(answers, vec![500, 500, 204]);
        assert!(attempts.iter().all(|a| a.raw == attempts[0].raw));
    }
    // A member's messages in commit order: none arrives before the one before it was
    // delivered, and ann's balances come 10, 20, 30.
    let mut open: HashMap<String, String> = HashMap::new();
    let mut balances = Vec::new();
    for message in &received {
        let member = message.body["data"]["memberId"]
            .as_str()
            .unwrap()
            .to_owned();
        if let Some(waiting) = open.get(&member) {
            assert_eq!(
                waiting, &message.id,
                "a member's next message came before the last was delivered"
            );
        }
        if message.answered == 204 {
            open.remove(&member);
            if message.body["type"] == "member.points_changed" {
                balances.push((
                    member.clone(),
                    message.body["data"]["balance"].as_i64().unwrap(),
                ));
            }
        } else {
            open.insert(member, message.id.clone());
        }
    }
    let ann = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/members?kind=email&value=ann@example.com"),
            &token,
            None,
        )
        .await["id"]
        .clone();
    let ann_balances: Vec<i64> = balances
        .iter()
        .filter(|(m, _)| json!(m) == ann)
        .map(|(_, b)| *b)
        .collect();
    assert_eq!(ann_balances, vec![10, 20, 30]);
    let logged = received
        .iter()
        .find(|m| m.body["type"] == "event.logged")
        .unwrap();
    assert_eq!(logged.body["data"]["status"], "accepted");
    assert!(logged.body["data"].get("raw").is_none());
    assert!(logged.body["timestamp"].is_string());

    // The delivery log: every message with its three attempts.
    let log = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/webhooks/{wid}/deliveries"),
            &token,
            None,
        )
        .await;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 8);
    for item in items {
        assert_eq!(item["state"], "delivered", "{item}");
        let statuses: Vec<&Value> = item["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["status"])
            .collect();
        assert_eq!(statuses, vec![&json!(500), &json!(500), &json!(204)]);
        assert!(by_id.contains_key(item["webhookId"].as_str().unwrap()));
        assert_eq!(item["endpointId"], *wid);
    }
}

#[tokio::test]
async fn test_messages_rotation_and_manual_retries() {
    let (server, _) = TestServer::start_with_webhooks(fast_worker(true)).await;
    let receiver = Receiver::start(0).await;
    let (program, token) = server.program().await;
    let created = webhook(&server, &program, &token, &receiver.url).await;
    let old = created["secret"].as_str().unwrap().to_owned();
    let wid = created["id"].as_str().unwrap();
    let base = format!("/v1/programs/{program}/webhooks/{wid}");

    let rotated = server
        .ok(
            Method::POST,
            &format!("{base}/rotate-secret"),
            &token,
            Some(json!({"graceSeconds": 3600})),
        )
        .await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previousSecretExpiresAt"].is_string());

    let (status, queued) = server
        .call(Method::POST, &format!("{base}/test"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["type"], "webhook.test");
    let received = receiver
        .wait_for("the test message", |r| !r.is_empty())
        .await;
    let test = &received[0];
    assert_eq!(test.id, queued["webhookId"].as_str().unwrap());
    assert_eq!(test.body["type"], "webhook.test");
    // Both secrets sign during the grace: receivers with either accept it.
    assert_eq!(test.signature.split(' ').count(), 2);
    assert!(verifies(&old, test) && verifies(&new, test));

    // A manual retry sends the same message again, under the same webhook-id.
    let (status, retried) = server
        .call(
            Method::POST,
            &format!("{base}/deliveries/{}/retry", test.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    let received = receiver
        .wait_for("the message again", |r| r.len() >= 2)
        .await;
    assert_eq!(received[1].id, test.id);
    assert_eq!(received[1].raw, test.raw);
    let (status, _) = server
        .call(
            Method::POST,
            &format!("{base}/deliveries/msg_nope/retry"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Rotating with no grace drops the old secret at once.
    let rotated = server
        .ok(
            Method::POST,
            &format!("{base}/rotate-secret"),
            &token,
            Some(json!({"graceSeconds": 0})),
        )
        .await;
    assert!(rotated["previousSecretExpiresAt"].is_null());
    let newest = rotated["secret"].as_str().unwrap().to_owned();
    server
        .ok(Method::POST, &format!("{base}/test"), &token, None)
        .await;
    let received = receiver.wait_for("a third message", |r| r.len() >= 3).await;
    assert!(verifies(&newest, &received[2]) && !verifies(&new, &received[2]));

    // Deleted: gone, with its deliveries.
    server.ok(Method::DELETE, &base, &token, None).await;
    let (status, _) = server
        .call(
            Method::GET,
            &format!("{base}/deliveries"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing of it shows the secret in the logs.
    let logs =
        String::from_utf8_lossy(&crate::harness::captured_logs().lock().unwrap()).into_owned();
    for secret in [&old, &new, &newest] {
        assert!(!logs.contains(secret.as_str()));
    }
}

#[tokio::test]
async fn private_targets_are_refused_at_creation() {
    let server = TestServer::start().await;
    let (program, token) = server.program().await;
    for url in [
        "http://127.0.0.1:9/hooks",
        "http://localhost:9/hooks",
        "http://10.1.2.3/hooks",
        "http://192.168.0.10/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://2130706433/hooks",
        // `vm` is in this machine's hosts file: a name that resolves to loopback.
        "http://vm/hooks",
    ] {
        let (status, body) = server
            .call(
                Method::POST,
                &format!("/v1/programs/{program}/webhooks"),
                Some(&token),
                Some(json!({"url": url, "events": ["event.logged"]})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["path"], "/url");
    }
    for (body, path) in [
        (
            json!({"url": "ftp://example.com/", "events": ["event.logged"]}),
            "/url",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": []}),
            "/events",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": ["member.created"]}),
            "/events/0",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": ["event.logged"], "secret": "whsec_c2hvcnQ="}),
            "/secret",
        ),
    ] {
        let (status, problem) = server
            .call(
                Method::POST,
                &format!("/v1/programs/{program}/webhooks"),
                Some(&token),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["path"], path, "{problem}");
    }
    // A body is an object (serde would take a struct's fields from an array).
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/v1/programs/{program}/webhooks"),
            Some(&token),
            Some(json!(["https://93.184.216.34/", ["event.logged"]])),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A public address is accepted (this server runs no worker: nothing is sent).
    let secret = format!("whsec_{}", BASE64.encode([7u8; 32]));
    let (status, created) = server
        .call(
            Method::POST,
            &format!("/v1/programs/{program}/webhooks"),
            Some(&token),
            Some(json!({"url": "https://93.184.216.34/hooks", "events": ["event.logged"], "secret": secret})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(
        created.get("secret").is_none(),
        "a given secret is not shown back"
    );
    let list = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/webhooks"),
            ROOT,
            None,
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("whsec_"));
}

/// A target that passed creation but resolves to a private address when sent to (DNS
/// rebinding, or a server that allowed private targets then stopped): the worker refuses it.
#[tokio::test]
async fn private_targets_are_refused_at_delivery() {
    let receiver = Receiver::start(0).await;
    let engine = Arc::new(loyalty_core::Engine::new(
        Arc::new(loyalty_store_memory::MemoryStore::new()),
        Arc::new(loyalty_core::clock::SystemClock),
    ));
    let (program, _) = engine
        .create_program(loyalty_core::program::ProgramSpec {
            name: "Readers".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let mut endpoints = Vec::new();
    for url in [by_name, receiver.url.clone()] {
        let spec = WebhookSpec {
            url,
            events: vec!["event.logged".into()],
            secret: None,
        };
        let allowed = TargetPolicy {
            allow_private: true,
        };
        let (view, _) = engine
            .create_webhook(&program.id, spec, allowed)
            .await
            .unwrap();
        engine
            .send_test_message(&program.id, &view.id)
            .await
            .unwrap();
        endpoints.push(view.id);
    }
    tokio::spawn(run_webhook_worker(
        engine.clone(),
        fast_worker(false),
        std::future::pending(),
    ));
    for endpoint in &endpoints {
        let mut attempts = Vec::new();
        for _ in 0..1200 {
            let page = engine
                .list_deliveries(&program.id, endpoint, None, None)
                .await
                .unwrap();
            attempts = page.items[0].attempts.clone();
            if !attempts.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let error = attempts[0].error.as_deref().unwrap_or_default();
        assert!(error.starts_with("refused"), "{attempts:?}");
        assert_eq!(attempts[0].status, None);
    }
    assert!(receiver.received().is_empty());
}
