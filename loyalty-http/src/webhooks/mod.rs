//! Outbound webhooks over HTTP: the worker that dispatches the change feed into deliveries,
//! claims due deliveries (several processes on one database share the work: a claim is a
//! lease) and sends them, signed, through a client whose resolver refuses private targets.
//! What to send and when is decided by the engine (`loyalty_core::webhooks`).

mod guard;
mod send;

pub(crate) use guard::check_at_creation;

use futures::FutureExt;
use loyalty_core::webhooks::{RetrySchedule, TargetPolicy};
use loyalty_core::Engine;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Settings of the delivery worker.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Send to loopback, private and link-local addresses (tests, receivers on the same
    /// network). Off by default.
    pub allow_private_targets: bool,
    pub retry: RetrySchedule,
    /// Attempts in flight at once.
    pub concurrency: usize,
    pub connect_timeout: Duration,
    /// For a whole attempt, the answer included.
    pub request_timeout: Duration,
    /// The most of an answer read (the rest is not waited for).
    pub max_response_bytes: usize,
    /// How long a claim holds a delivery: longer than an attempt can take.
    pub lease: Duration,
    /// How often the worker looks for due retries and other processes' work when nothing
    /// wakes it.
    pub poll_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            retry: RetrySchedule::standard(),
            concurrency: 32,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            max_response_bytes: 64 * 1024,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
        }
    }
}

impl WebhookConfig {
    pub fn policy(&self) -> TargetPolicy {
        TargetPolicy {
            allow_private: self.allow_private_targets,
        }
    }
}

/// Runs the delivery worker until `shutdown` completes; attempts in flight are finished
/// (an attempt cut short would only be sent again once its lease ran out).
pub async fn run_webhook_worker(
    engine: Arc<Engine>,
    config: WebhookConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let client = send::client(&config);
    let config = Arc::new(config);
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    let mut shutdown = Box::pin(shutdown.fuse());
    loop {
        // Listen before reading: a commit between the read and the wait still wakes us.
        let committed = engine.store().feed_signal().listen();
        let queued = engine.webhook_signal().listen();
        let mut busy = false;
        match engine.dispatch_webhooks().await {
            Ok(report) => {
                busy |= report.more;
                if report.missed {
                    tracing::warn!("webhook dispatch found changes older than the feed keeps: some were not sent");
                }
            }
            Err(error) => tracing::warn!(%error, "webhook dispatch failed; trying again"),
        }
        let free = permits.available_permits();
        if free > 0 {
            match engine.claim_deliveries(config.lease, free).await {
                Ok(claimed) => {
                    busy |= claimed.len() == free;
                    for claimed in claimed {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        let (engine, config, client) =
                            (engine.clone(), config.clone(), client.clone());
                        in_flight.spawn(async move {
                            let _permit = permit;
                            let at = engine.now();
                            let started = std::time::Instant::now();
                            let outcome = send::attempt(&client, &config, &claimed, at).await;
                            let took = started.elapsed();
                            if !outcome.succeeded() {
                                tracing::info!(webhook = %claimed.webhook.id, message = %claimed.delivery.message.id, outcome = ?outcome, "webhook attempt failed");
                            }
                            match engine
                                .record_attempt(&claimed, outcome, at, took, &config.retry)
                                .await
                            {
                                Ok(true) => {}
                                Ok(false) => tracing::warn!(message = %claimed.delivery.message.id, "a webhook attempt outlived its lease; another worker has the delivery"),
                                Err(error) => tracing::warn!(%error, "recording a webhook attempt failed; it is sent again when its lease ends"),
                            }
                            // The member's next message may be due now.
                            engine.webhook_signal().notify();
                        });
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming webhook deliveries failed"),
            }
        }
        while in_flight.try_join_next().is_some() {}
        if busy {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = committed => {}
            _ = queued => {}
            _ = tokio::time::sleep(config.poll_interval) => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}
