//! The HTTP front end of the loyalty engine, with axum: the ingestion endpoint and the admin
//! API (described by the OpenAPI document at `/openapi.json`, committed as `openapi.json`),
//! problem details for every error, structured request logs and Prometheus metrics. Handlers
//! are thin: extractors authorise the caller and read the body, the handler calls one
//! [`Engine`] operation and returns a typed answer.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use loyalty_core::{clock::SystemClock, Engine};
//! use loyalty_http::{serve, AppState, HttpConfig};
//! use loyalty_store_memory::MemoryStore;
//!
//! let engine = Arc::new(Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock)));
//! let state = AppState::new(engine, HttpConfig::new("root-token-of-at-least-16-chars"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, state, std::future::pending()).await
//! # }
//! ```

// The OpenAPI schemas are large `json!` literals.
#![recursion_limit = "256"]

pub mod console;
pub mod error;
mod extract;
pub mod metrics;
mod offload;
pub mod openapi;
mod replays;
mod request_log;
mod routes;
pub mod stream;
pub mod webhooks;

use axum::Router;
use loyalty_core::secret::TokenHash;
use loyalty_core::Engine;
use std::future::Future;
use std::sync::Arc;

pub use error::ApiError;
pub use metrics::Metrics;
pub use replays::{resume_replays, ReplayJobs};

/// Settings of the HTTP layer. The engine's own limits (body, batch, mapping) live in
/// [`loyalty_core::Limits`].
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// The root admin token, only as a hash.
    pub root_token_hash: TokenHash,
    /// Largest admin request body (simulation payloads included).
    pub max_admin_body_bytes: usize,
    /// Requests a second each connector may send (with a burst of twice that), so that one
    /// noisy sender cannot starve the others; `None` for no limit. Excess requests get 429
    /// with `Retry-After`.
    pub connector_rate_limit: Option<u32>,
    /// Whether the store reads the event log and members' activity from a replica: those
    /// answers then say `Loyalty-Read-From: replica` (they may lag the primary).
    pub reads_from_replica: bool,
    /// Webhook targets on loopback, private and link-local addresses are accepted (they are
    /// refused with 422 otherwise). The delivery worker has its own setting
    /// ([`webhooks::WebhookConfig`]); a server sets both from one flag.
    pub allow_private_webhook_targets: bool,
}

impl HttpConfig {
    pub fn new(root_token: &str) -> Self {
        Self {
            root_token_hash: TokenHash::of(root_token),
            max_admin_body_bytes: 2 * 1024 * 1024,
            connector_rate_limit: None,
            reads_from_replica: false,
            allow_private_webhook_targets: false,
        }
    }
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: Arc<HttpConfig>,
    pub metrics: Arc<Metrics>,
    /// The replays this process runs.
    pub replays: Arc<ReplayJobs>,
    /// The live stream's hubs (one per program with clients).
    pub streams: Arc<stream::StreamHubs>,
    rate_limiter: Option<Arc<governor::DefaultKeyedRateLimiter<String>>>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, config: HttpConfig) -> Self {
        let rate_limiter = config
            .connector_rate_limit
            .and_then(std::num::NonZeroU32::new)
            .map(|per_second| {
                let burst = per_second.saturating_mul(std::num::NonZeroU32::MIN.saturating_add(1));
                Arc::new(governor::RateLimiter::keyed(
                    governor::Quota::per_second(per_second).allow_burst(burst),
                ))
            });
        Self {
            engine,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            replays: Arc::new(ReplayJobs::default()),
            streams: Arc::new(stream::StreamHubs::default()),
            rate_limiter,
        }
    }
}

impl AppState {
    /// Takes one request from the connector's allowance; Err(seconds to wait) when spent.
    /// Keys are ids of existing connectors only, so the limiter's memory stays bounded.
    pub(crate) fn check_rate(&self, connector: &str) -> Result<(), u64> {
        let Some(limiter) = &self.rate_limiter else {
            return Ok(());
        };
        limiter
            .check_key(&connector.to_owned())
            .map_err(|not_until| {
                use governor::clock::Clock;
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            })
    }
}

/// The whole API as one router.
///
/// Run it on a tokio runtime, multi-threaded (bulks are then mapped with
/// `tokio::task::block_in_place`) or current-thread (on the blocking pool), but not inside a
/// `tokio::task::LocalSet` on a multi-threaded runtime, where tokio refuses `block_in_place`.
pub fn router(state: AppState) -> Router {
    routes::router(state)
}

/// Serves the API on `listener` until `shutdown` completes, then ends the live streams and
/// lets other requests in flight finish. The runtime it runs on: see [`router`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let streams = Arc::clone(&state.streams);
    let shutdown = async move {
        shutdown.await;
        streams.close_all();
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
