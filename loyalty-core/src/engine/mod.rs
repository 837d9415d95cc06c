//! The engine: the operations an embedding program (or the HTTP layer) calls, one file a
//! concern: administration (`admin`), the cache of loaded connectors (`cache`), ingestion
//! (`ingest`, with derived client ids in `client_id`), simulation (`simulate`) and reads
//! (`queries`).

mod admin;
mod allowance;
mod cache;
mod client_id;
mod dispatch;
mod expiry;
mod feed;
mod ingest;
mod points;
mod queries;
mod replay;
mod results;
mod simulate;
mod webhooks;

pub use allowance::{LimitAllowance, RuleAllowance};
pub use dispatch::DispatchReport;
pub use expiry::MemberView;
pub use ingest::{AuthenticatedRequest, IncomingRequest, IngestTarget};
pub use points::{AdjustmentDone, ReversalDone};
pub use results::{IngestResponse, ItemOutcome, ItemResult};
pub use simulate::{SimulatedItem, SimulatedMember, SimulationResponse};

use crate::clock::{stored_precision, Clock};
use crate::mapping::MappingLimits;
use crate::store::Store;
use cache::ConnectorCache;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

/// Limits of the engine (the defaults are the documented ones: see `docs/http-api.md`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch_items: usize,
    pub mapping: MappingLimits,
    /// The raw item kept in the log, in bytes; longer ones are truncated and flagged.
    pub max_raw_bytes: usize,
    /// Mapping time for a whole request: past it, the remaining items are rejected, so that
    /// one hostile mapping cannot hold a worker for `max_batch_items` × the per-item timeout.
    pub max_request_mapping_time: std::time::Duration,
    /// How long a loaded connector (with its compiled mapping and rules) is reused before it
    /// is read again from the store. Changes made through this engine apply at once; this
    /// bounds how long another process's changes take to be seen.
    pub connector_cache_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch_items: 1000,
            mapping: MappingLimits::default(),
            max_raw_bytes: 16 * 1024,
            max_request_mapping_time: std::time::Duration::from_secs(2),
            connector_cache_ttl: Duration::seconds(1),
        }
    }
}

/// The loyalty engine. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    connectors: ConnectorCache,
    /// Scheme, host and prefix under which senders reach this server, for schemes that sign
    /// the URL; a connector's own `publicBaseUrl` wins.
    public_base_url: Option<Arc<str>>,
    /// Raised when a delivery becomes due outside the feed (a test message, a manual retry).
    webhook_signal: crate::feed::FeedSignal,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self::with_limits(store, clock, Limits::default())
    }

    pub fn with_limits(store: Arc<dyn Store>, clock: Arc<dyn Clock>, limits: Limits) -> Self {
        Self {
            store,
            clock,
            limits,
            connectors: ConnectorCache::default(),
            public_base_url: None,
            webhook_signal: crate::feed::FeedSignal::new(),
        }
    }

    /// Sets the URL senders reach this server under (`https://loyalty.example`, without the
    /// `/v1/incoming/…` path), for schemes that sign the URL they post to (HubSpot's).
    pub fn with_public_base_url(mut self, url: impl Into<String>) -> Self {
        self.public_base_url = Some(url.into().trim_end_matches('/').into());
        self
    }

    pub fn public_base_url(&self) -> Option<&str> {
        self.public_base_url.as_deref()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock's time at the precision stores keep, whatever the clock.
    pub fn now(&self) -> DateTime<Utc> {
        stored_precision(self.clock.now())
    }

    /// Wakes delivery workers waiting for work (a new endpoint, a test message, a retry).
    pub(crate) fn notify_webhook_workers(&self) {
        self.webhook_signal.notify();
    }

    /// What a delivery worker waits on besides the store's feed signal: deliveries that
    /// became due without a commit (a test message, a manual retry).
    pub fn webhook_signal(&self) -> &crate::feed::FeedSignal {
        &self.webhook_signal
    }
}
