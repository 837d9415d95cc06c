//! Prometheus metrics, served at `/metrics` in the text exposition format. Labels take only
//! bounded values (route templates, statuses, ids of existing connectors), so that a sender
//! cannot grow the registry.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::fmt;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthFailureLabels {
    connector: String,
    reason: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    items: Family<ItemLabels, Counter>,
    auth_failures: Family<AuthFailureLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("loyalty");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let items = Family::<ItemLabels, Counter>::default();
        registry.register("ingest_items", "Ingested items by status", items.clone());
        let auth_failures = Family::<AuthFailureLabels, Counter>::default();
        registry.register(
            "ingest_auth_failures",
            "Failed authentications at ingestion, by connector and reason",
            auth_failures.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            items,
            auth_failures,
        }
    }

    pub fn record_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    pub fn record_items(&self, status: &str, count: usize) {
        if count > 0 {
            self.items
                .get_or_create(&ItemLabels {
                    status: status.to_owned(),
                })
                .inc_by(count as u64);
        }
    }

    pub fn record_auth_failure(&self, connector: &str, reason: &str) {
        self.auth_failures
            .get_or_create(&AuthFailureLabels {
                connector: connector.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
