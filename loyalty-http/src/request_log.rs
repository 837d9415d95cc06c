//! One structured log line per request: request id, method, route, status, latency, and for
//! ingestion the connector and the item counts. Never the query string (it may carry a
//! token), never a header value, never a body.

use crate::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// What the ingestion handler adds to its response for the log line.
#[derive(Clone, Debug, Default)]
pub struct IngestSummary {
    pub connector: String,
    pub accepted: usize,
    pub duplicates: usize,
    pub ignored: usize,
    pub rejected: usize,
    pub auth_failure: Option<&'static str>,
}

pub async fn log_requests(
    State(state): State<AppState>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut response = next.run(request).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .record_request(&method, &route, status, latency.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let latency_ms = latency.as_secs_f64() * 1000.0;
    match response.extensions().get::<IngestSummary>() {
        Some(s) => tracing::info!(
            request_id = %request_id,
            method = %method,
            route = %route,
            status,
            latency_ms,
            connector = %s.connector,
            accepted = s.accepted,
            duplicates = s.duplicates,
            ignored = s.ignored,
            rejected = s.rejected,
            auth_failure = s.auth_failure.unwrap_or(""),
            "request"
        ),
        None => {
            tracing::info!(request_id = %request_id, method = %method, route = %route, status, latency_ms, "request")
        }
    }
    response
}
