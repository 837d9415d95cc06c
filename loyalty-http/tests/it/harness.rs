//! Starts the real server in-process on a random port and talks to it with reqwest.

use loyalty_core::clock::SystemClock;
use loyalty_core::{Engine, Limits};
use loyalty_http::webhooks::{run_webhook_worker, WebhookConfig};
use loyalty_http::{serve, AppState, HttpConfig};
use loyalty_store_memory::MemoryStore;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

pub const ROOT: &str = "root-token-for-tests";

/// Everything every test server logs, to check what is never written.
pub fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_writer(move || SharedWriter(writer.clone()))
            .try_init();
        buffer
    })
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> Self {
        Self::start_with_config(limits, HttpConfig::new(ROOT)).await
    }

    pub async fn start_with_config(limits: Limits, config: HttpConfig) -> Self {
        let engine = Arc::new(Engine::with_limits(
            Arc::new(MemoryStore::new()),
            Arc::new(SystemClock),
            limits,
        ));
        Self::start_engine(engine, config).await
    }

    /// A server whose engine also runs the webhook worker with `webhooks` (until the test's
    /// runtime ends).
    pub async fn start_with_webhooks(webhooks: WebhookConfig) -> (Self, Arc<Engine>) {
        let engine = Arc::new(Engine::new(
            Arc::new(MemoryStore::new()),
            Arc::new(SystemClock),
        ));
        let mut config = HttpConfig::new(ROOT);
        config.allow_private_webhook_targets = webhooks.allow_private_targets;
        tokio::spawn(run_webhook_worker(
            engine.clone(),
            webhooks,
            std::future::pending(),
        ));
        (Self::start_engine(engine.clone(), config).await, engine)
    }

    pub async fn start_engine(engine: Arc<Engine>, config: HttpConfig) -> Self {
        captured_logs();
        let state = AppState::new(engine, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            base,
            client: reqwest::Client::new(),
            _shutdown: tx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The body of a GET without a token, as text (metrics, the console's files).
    pub async fn text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    /// An admin call: status and JSON body (or Null).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn ok(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method.clone(), path, Some(token), body).await;
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    /// A new program: (id, its admin token).
    pub async fn program(&self) -> (String, String) {
        let body = self
            .ok(
                Method::POST,
                "/v1/programs",
                ROOT,
                Some(json!({"name": "Readers"})),
            )
            .await;
        (
            body["id"].as_str().unwrap().to_owned(),
            body["adminToken"].as_str().unwrap().to_owned(),
        )
    }

    /// A new program with the seed connector authenticated by the query token `s3cret-token`:
    /// (program id, its admin token, connector id).
    pub async fn program_with_query_connector(&self) -> (String, String, String) {
        let (program, token) = self.program().await;
        let connector = self
            .connector(
                &program,
                &token,
                json!({"type": "queryToken", "token": "s3cret-token"}),
            )
            .await;
        let connector = connector["id"].as_str().unwrap().to_owned();
        (program, token, connector)
    }

    /// The seed "Article Read" connector with the given auth; returns its creation response.
    pub async fn connector(&self, program: &str, token: &str, auth: Value) -> Value {
        self.ok(
            Method::POST,
            &format!("/v1/programs/{program}/connectors"),
            token,
            Some(json!({"name": "Article Read", "eventType": "custom.basic", "auth": auth, "mapping": SEED_MAPPING})),
        )
        .await
    }

    /// The seed rule on a connector.
    pub async fn seed_rule(
        &self,
        program: &str,
        token: &str,
        connector: &str,
        limits: Value,
    ) -> Value {
        self.ok(
            Method::POST,
            &format!("/v1/programs/{program}/rules"),
            token,
            Some(json!({
                "name": "Sport readers",
                "connectorId": connector,
                "conditions": {"all": [{"tag": "theme", "op": "eq", "value": "sport"}, {"counter": "total", "op": "gte", "value": 5}]},
                "points": {"fixed": 10},
                "limits": limits
            })),
        )
        .await
    }

    /// Posts raw bytes to a connector's endpoint with extra headers.
    pub async fn send(
        &self,
        connector: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(self.url(&format!("/v1/incoming/{connector}{query}")))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/problem+json")
            );
        }
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn balance(&self, program: &str, token: &str, email: &str) -> Option<i64> {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/v1/programs/{program}/members?kind=email&value={email}"),
                Some(token),
                None,
            )
            .await;
        (status == StatusCode::OK).then(|| body["balance"].as_i64().unwrap())
    }

    /// The event log's entry of an event.
    pub async fn logged_event(&self, program: &str, token: &str, event_id: &str) -> Value {
        self.ok(
            Method::GET,
            &format!("/v1/programs/{program}/events/{event_id}"),
            token,
            None,
        )
        .await
    }

    /// Purges a connector's test data; answers the counts purged.
    pub async fn purge(&self, program: &str, token: &str, connector: &str) -> Value {
        self.ok(
            Method::POST,
            &format!("/v1/programs/{program}/connectors/{connector}/purge"),
            token,
            None,
        )
        .await
    }
}

pub const SEED_MAPPING: &str = r#"{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead}]} }"#;

/// An "Article Read" payload, timestamped now.
pub fn article(event_id: &str, email: &str, theme: &str, total: i64) -> Value {
    json!({
        "eventId": event_id,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "profile": {"email": email},
        "article": {"theme": theme, "title": "A match"},
        "totalArticlesRead": total
    })
}

pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    loyalty_core::auth::hub_signature(secret, body)
}
