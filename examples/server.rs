//! The example server: the whole API of docs/http-api.md over HTTP.
//!
//! ```sh
//! cargo run --release --example server -- --listen 127.0.0.1:8080 --admin-token T [--database-url URL [--database-read-url URL]]
//! ```

use anyhow::Context;
use clap::Parser;
use loyalty::core::clock::SystemClock;
use loyalty::core::store::Store;
use loyalty::core::{Engine, Limits};
use loyalty::http::webhooks::{run_webhook_worker, WebhookConfig};
use loyalty::http::{serve, AppState, HttpConfig};
use loyalty::store_memory::MemoryStore;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "server", about = "The loyalty engine's example HTTP server")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "LOYALTY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// The root admin token. If absent, one is generated and printed once.
    #[arg(long, env = "LOYALTY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// PostgreSQL URL (migrations are applied at start-up). Without it, the in-memory store.
    /// Several hosts, as libpq's: `postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`
    /// (the server writes only to the read-write one, and finds it again after a failover).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// A replica's PostgreSQL URL (same syntax; `target_session_attrs=prefer-standby` falls
    /// back to the primary): the event log and members' activity are read there, and may lag
    /// the primary by its replication delay. Ingestion and every decision read the primary.
    #[arg(
        long,
        env = "DATABASE_READ_URL",
        hide_env_values = true,
        requires = "database_url"
    )]
    database_read_url: Option<String>,
    /// How long a request waits for a PostgreSQL connection (and, during a failover, for the
    /// new primary) before it is answered 503 `database_unavailable`.
    #[arg(long, env = "LOYALTY_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 5000)]
    db_acquire_timeout_ms: u64,
    /// Largest request body, in bytes.
    #[arg(long, env = "LOYALTY_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Most items in one bulk request.
    #[arg(long, env = "LOYALTY_MAX_BATCH_ITEMS", default_value_t = 1000)]
    max_batch_items: usize,
    /// Mapping time limit per item, in milliseconds.
    #[arg(long, env = "LOYALTY_MAPPING_TIMEOUT_MS", default_value_t = 50)]
    mapping_timeout_ms: u64,
    /// Largest PostgreSQL pool.
    #[arg(long, env = "LOYALTY_DB_MAX_CONNECTIONS", default_value_t = 16)]
    db_max_connections: u32,
    /// PostgreSQL committer tasks (each keeps one connection and runs one transaction at a
    /// time; see `PostgresOptions::committers`).
    #[arg(long, env = "LOYALTY_DB_COMMITTERS", default_value_t = 2)]
    db_committers: usize,
    /// Requests a second each connector may send (burst: twice that); 0 for no limit.
    #[arg(long, env = "LOYALTY_CONNECTOR_RATE_LIMIT", default_value_t = 0)]
    connector_rate_limit: u32,
    /// The URL senders post to, as they see it (`https://loyalty.example.com`): senders that sign
    /// the URL (HubSpot) are verified against it, unless a connector names its own.
    #[arg(long, env = "LOYALTY_PUBLIC_BASE_URL")]
    public_base_url: Option<String>,
    /// Accept and send to webhook targets on loopback, private and link-local addresses
    /// (refused otherwise, at creation and at every delivery).
    #[arg(long, env = "LOYALTY_ALLOW_PRIVATE_WEBHOOK_TARGETS")]
    allow_private_webhook_targets: bool,
    /// Whether this process sends webhooks (`false`: endpoints and deliveries are kept, and
    /// other processes on the same database send them).
    #[arg(long, env = "LOYALTY_WEBHOOK_DELIVERY", default_value_t = true, action = clap::ArgAction::Set)]
    webhook_delivery: bool,
    /// Multiplies every webhook retry delay (tests: 0.001 makes the first retries come after
    /// 5 and 15 ms).
    #[arg(
        long,
        env = "LOYALTY_WEBHOOK_RETRY_SCALE",
        default_value_t = 1.0,
        hide = true
    )]
    webhook_retry_scale: f64,
    /// Log lines as JSON (for log shippers) instead of text.
    #[arg(long, env = "LOYALTY_LOG_JSON")]
    log_json: bool,
}

// mimalloc: the engine allocates many small, short-lived values (JSON trees, strings), and
// glibc's malloc spent about a quarter of the pipeline's instructions on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // One log line a request, gathered in memory and written out by a thread of its own every
    // few milliseconds (see `PacedLog`): a request never waits on the terminal or a pipe, and
    // no line wakes another thread. The guard writes what is left when main returns.
    let (writer, _log_guard) = PacedLog::start(std::io::stdout());
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(writer)
            .init();
    } else {
        // Colours only for a terminal: a file or a pipe gets plain text (and the server saves
        // the escape codes' formatting on every line).
        use std::io::IsTerminal;
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(writer)
            .init();
    }

    let admin_token = match args.admin_token.clone() {
        Some(token) if token.len() >= 8 => token,
        Some(_) => anyhow::bail!("--admin-token must be at least 8 characters long"),
        None => {
            let token = loyalty::core::secret::generate_token("lrt_");
            // Printed once, to the terminal only: it is never logged.
            println!("Generated root admin token (shown once): {token}");
            token
        }
    };

    let (store, store_name): (Arc<dyn Store>, &str) = match &args.database_url {
        None => (Arc::new(MemoryStore::new()), "memory"),
        Some(url) => {
            let options = loyalty::store_postgres::PostgresOptions {
                max_connections: args.db_max_connections,
                committers: args.db_committers,
                acquire_timeout: Duration::from_millis(args.db_acquire_timeout_ms.max(1)),
                ..Default::default()
            };
            let store = match &args.database_read_url {
                None => loyalty::store_postgres::PostgresStore::connect(url, options).await,
                Some(read_url) => {
                    loyalty::store_postgres::PostgresStore::connect_with_replica(
                        url, read_url, options,
                    )
                    .await
                }
            }
            .context(
                "could not open the PostgreSQL store (is the server running and the URL right?)",
            )?;
            tracing::info!(
                primary = %store.primary_host(),
                reads_from_replica = store.reads_from_replica(),
                "PostgreSQL store open"
            );
            (Arc::new(store), "postgres")
        }
    };

    let defaults = Limits::default();
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_batch_items: args.max_batch_items,
        mapping: loyalty::core::mapping::MappingLimits {
            timeout: Duration::from_millis(args.mapping_timeout_ms),
            ..defaults.mapping
        },
        ..defaults
    };
    let mut engine = Engine::with_limits(store, Arc::new(SystemClock), limits);
    if let Some(url) = &args.public_base_url {
        engine = engine.with_public_base_url(url);
    }
    let engine = Arc::new(engine);
    tokio::spawn(sweep_expiry(engine.clone()));
    let mut config = HttpConfig::new(&admin_token);
    config.connector_rate_limit = Some(args.connector_rate_limit).filter(|n| *n > 0);
    config.reads_from_replica = args.database_read_url.is_some();
    config.allow_private_webhook_targets = args.allow_private_webhook_targets;
    let state = AppState::new(engine.clone(), config);
    // Replays a stopped process left running are resumed (applying again changes nothing).
    loyalty::http::resume_replays(&state)
        .await
        .context("could not read the replays left running")?;

    // The webhook worker stops with the server (attempts in flight are finished).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = args.webhook_delivery.then(|| {
        let retry = if args.webhook_retry_scale > 0.0 && args.webhook_retry_scale != 1.0 {
            loyalty::core::webhooks::RetrySchedule::scaled(args.webhook_retry_scale)
        } else {
            loyalty::core::webhooks::RetrySchedule::standard()
        };
        let config = WebhookConfig {
            allow_private_targets: args.allow_private_webhook_targets,
            retry,
            ..WebhookConfig::default()
        };
        let mut stopped = stopped.clone();
        tokio::spawn(run_webhook_worker(engine.clone(), config, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("could not listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, store = store_name, "loyalty server listening on http://{address} with the {store_name} store");
    serve(listener, state, async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    })
    .await?;
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    tracing::info!("loyalty server stopped");
    Ok(())
}

/// Writes the `expiry` entries of points past their program's expiry, every minute (so at most
/// a minute late; balances leave expired points out at once anyway). Safe beside other server
/// processes on the same database: each member's expiry is decided under its lock.
async fn sweep_expiry(engine: Arc<Engine>) {
    let mut every_minute = tokio::time::interval(Duration::from_secs(60));
    every_minute.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every_minute.tick().await;
        match engine.run_expiry(engine.now()).await {
            Ok(0) => {}
            Ok(written) => tracing::info!(written, "points expired"),
            Err(error) => {
                tracing::warn!(%error, "the expiry sweep failed; it runs again in a minute")
            }
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}

/// The log's writer: formatted lines are appended to a shared buffer, and one thread writes the
/// buffer out every [`PacedLog::EVERY`]. tracing-appender's non-blocking writer sent each line
/// through a channel whose reading thread slept between lines, so that nearly every line paid
/// a wake-up, the reader's spinning and `sched_yield`s: 12.6% of the server's CPU in single
/// events at 64 connections (perf, BENCHMARKS.md), four times the formatting's. Like it, this
/// writer is lossy rather than blocking: past [`PacedLog::MAX_BUFFERED`] bytes waiting (the
/// output stalled), lines are dropped and counted, and the count is logged once it drains.
#[derive(Clone, Debug)]
struct PacedLog {
    shared: Arc<PacedShared>,
}

#[derive(Debug, Default)]
struct PacedShared {
    buffer: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stop: AtomicBool,
}

/// Writes what is left and stops the writer thread when dropped.
#[derive(Debug)]
struct PacedLogGuard {
    shared: Arc<PacedShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PacedLog {
    const EVERY: Duration = Duration::from_millis(20);
    const MAX_BUFFERED: usize = 8 * 1024 * 1024;

    fn start(mut out: impl Write + Send + 'static) -> (Self, PacedLogGuard) {
        let shared = Arc::new(PacedShared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || {
                    let mut spare = Vec::with_capacity(64 * 1024);
                    loop {
                        let stopping = shared.stop.load(Ordering::Acquire);
                        std::mem::swap(&mut *shared.buffer.lock().unwrap(), &mut spare);
                        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
                        if dropped > 0 {
                            let _ = writeln!(
                                spare,
                                "WARN log: {dropped} lines dropped (the log's output could not keep up)"
                            );
                        }
                        if !spare.is_empty() {
                            // A log that cannot be written is not worth stopping the server for.
                            let _ = out.write_all(&spare).and_then(|()| out.flush());
                            spare.clear();
                        }
                        if stopping {
                            break;
                        }
                        std::thread::park_timeout(Self::EVERY);
                    }
                })
                .expect("a thread for the log writer")
        };
        (
            Self {
                shared: shared.clone(),
            },
            PacedLogGuard {
                shared,
                thread: Some(thread),
            },
        )
    }
}

/// One line's writer (tracing's formatter writes each line whole, in one `write`).
#[derive(Debug)]
struct PacedLine<'a>(&'a PacedShared);

impl Write for PacedLine<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.0.buffer.lock().unwrap();
        if buffer.len() + line.len() > PacedLog::MAX_BUFFERED {
            drop(buffer);
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            buffer.extend_from_slice(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for PacedLog {
    type Writer = PacedLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        PacedLine(&self.shared)
    }
}

impl Drop for PacedLogGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
