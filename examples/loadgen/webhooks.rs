//! `--webhook-endpoints N`: a webhook receiver on 127.0.0.1, in the load generator's process,
//! and N endpoints of the load's program pointing at it (the server must run with
//! `--allow-private-webhook-targets`). Each delivery is answered 204 at once; its latency is
//! measured from the change's time in its body (`receivedAt` of an `event.logged`, the ledger
//! entry's `createdAt` of a `member.points_changed`: both stamped by the server just before
//! the commit) to its arrival here, so the commit, the dispatch, the worker's claim and the
//! HTTP request are all in it.

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the receiver saw.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub url: String,
    pub latency: Arc<Mutex<Histogram<u64>>>,
    pub deliveries: Arc<AtomicU64>,
}

impl Receiver {
    /// Starts the receiver on 127.0.0.1 (an ephemeral port).
    pub async fn start() -> anyhow::Result<Self> {
        let receiver = Self {
            url: String::new(),
            latency: Arc::new(Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?)),
            deliveries: Arc::new(AtomicU64::new(0)),
        };
        let seen = receiver.clone();
        let app = axum::Router::new().route(
            "/hooks/{endpoint}",
            axum::routing::post(move |body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    seen.record(&body);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the webhook receiver stopped: {error}");
            }
        });
        Ok(Self { url, ..receiver })
    }

    fn record(&self, body: &[u8]) {
        let now = Utc::now();
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        let Ok(message) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let data = &message["data"];
        let at = data["receivedAt"]
            .as_str()
            .or_else(|| data["entry"]["createdAt"].as_str())
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok());
        if let (Some(at), Ok(mut latency)) = (at, self.latency.lock()) {
            let micros = (now - at.with_timezone(&Utc)).num_microseconds();
            let _ = latency.record(micros.unwrap_or(1).max(1) as u64);
        }
    }

    /// Registers `count` endpoints of `program` (both message types) at this receiver.
    pub async fn register(
        &self,
        base: &str,
        token: &str,
        program: &str,
        count: usize,
    ) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        for endpoint in 0..count {
            let response = client
                .post(format!("{base}/v1/programs/{program}/webhooks"))
                .bearer_auth(token)
                .json(&json!({"url": format!("{}/hooks/{endpoint}", self.url),
                              "events": ["member.points_changed", "event.logged"]}))
                .send()
                .await
                .context("registering a webhook endpoint")?;
            if !response.status().is_success() {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                bail!(
                    "registering a webhook endpoint: {status} {text} (does the server run \
                     with --allow-private-webhook-targets?)"
                );
            }
        }
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.deliveries.load(Ordering::Relaxed)
    }

    /// The latency at `quantile`, in ms (None before any delivery).
    pub fn latency_ms(&self, quantile: f64) -> Option<f64> {
        let latency = self.latency.lock().ok()?;
        (!latency.is_empty()).then(|| latency.value_at_quantile(quantile) as f64 / 1000.0)
    }
}
