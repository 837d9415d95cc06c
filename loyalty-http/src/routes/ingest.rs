//! `POST /v1/incoming/{connectorId}`: the endpoint senders call.

use crate::error::{ApiError, ApiResult};
use crate::extract::{query_flag, query_pairs, read_body};
use crate::offload::{Offload, Panicked};
use crate::request_log::IngestSummary;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use loyalty_core::engine::{IncomingRequest, IngestResponse};
use loyalty_core::ledger::ItemStatus;
use std::time::Duration;
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

/// The CORS policy of a connector's endpoint. Websites and tag managers post from browsers, so
/// it answers preflights for any origin: it authenticates with the connector's token or
/// signature, never a cookie, and a connector's token header is its own choice (mirrored). The
/// admin routes stay same-origin.
pub(crate) fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// The CORS layer answers every OPTIONS request itself (200), before any handler: this route
/// only makes the method reach it (axum would answer 405 first).
pub(crate) async fn preflight() -> StatusCode {
    StatusCode::OK
}

pub(crate) async fn ingest(
    State(state): State<AppState>,
    Path(connector_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut summary = IngestSummary {
        connector: connector_id.clone(),
        ..Default::default()
    };
    let outcome = handle(
        &state,
        &connector_id,
        query.as_deref(),
        &headers,
        body,
        &mut summary,
    )
    .await;
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            if let ApiError::Engine(loyalty_core::Error::Unauthorized(failure)) = &error {
                summary.auth_failure = Some(failure.kind());
                state
                    .metrics
                    .record_auth_failure(&connector_id, failure.kind());
            }
            error.into_response()
        }
    };
    response.extensions_mut().insert(summary);
    response
}

async fn handle(
    state: &AppState,
    connector_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    summary: &mut IngestSummary,
) -> ApiResult<Response> {
    // The connector is looked up once: an unknown one is 404 before anything is read.
    let target = state.engine.ingest_target(connector_id).await?;
    state
        .check_rate(connector_id)
        .map_err(|retry_after_seconds| ApiError::TooManyRequests {
            retry_after_seconds,
        })?;
    let format = BodyFormat::of(headers)?;
    let limit = state.engine.limits().max_body_bytes;
    let bytes = read_body(headers, body, limit).await?;
    let test = query_flag(&query_pairs(query), "test")?.unwrap_or(false);
    let header_pairs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    let request = IncomingRequest {
        connector_id,
        query: query.unwrap_or(""),
        headers: &header_pairs,
        body: &bytes,
        test,
    };
    let authenticated = state.engine.authenticate_for(target, &request)?;
    // Signatures are over the bytes as received; a form is read as the JSON object it means.
    let bytes = match format {
        BodyFormat::Json => bytes,
        BodyFormat::Form => axum::body::Bytes::from(loyalty_core::mapping::form_to_json(&bytes)),
    };
    let offload = Offload::for_body(&bytes, authenticated.mapping_is_slow());
    let engine = state.engine.clone();
    let batch = offload
        .run(move || engine.map_items(&authenticated, &bytes))
        .await
        .map_err(|Panicked| ApiError::BadRequest("the request could not be mapped".into()))??;
    let response = state.engine.commit(batch).await?;
    summary.accepted = response.accepted;
    summary.duplicates = response.duplicates;
    summary.ignored = response.ignored;
    summary.rejected = response.rejected;
    let metrics = &state.metrics;
    metrics.record_items(ItemStatus::Accepted.as_str(), response.accepted);
    metrics.record_items(ItemStatus::Duplicate.as_str(), response.duplicates);
    metrics.record_items(ItemStatus::Ignored.as_str(), response.ignored);
    metrics.record_items(ItemStatus::Rejected.as_str(), response.rejected);
    Ok(ingest_response(&response))
}

/// The answer's JSON, written into a buffer sized for its items: `Json` starts at 128 bytes
/// and doubles, which for a bulk of 100 (about 20 KB) is eight allocations and copies, on
/// fresh memory more often than not (4% of a bulk's CPU).
fn ingest_response(response: &IngestResponse) -> Response {
    let mut body = Vec::with_capacity(128 + 256 * response.results.len());
    match serde_json::to_writer(&mut body, response) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        // Not for this type (plain structs, string keys); `Json` answers 500 as it would.
        Err(_) => Json(response).into_response(),
    }
}

/// How a body is read, by its content type: JSON (also `text/plain`, which browsers'
/// `sendBeacon` sends, and none at all), or an HTML form; anything else is 415.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFormat {
    Json,
    Form,
}

impl BodyFormat {
    fn of(headers: &HeaderMap) -> ApiResult<Self> {
        let Some(value) = headers.get(header::CONTENT_TYPE) else {
            return Ok(BodyFormat::Json);
        };
        let media = value
            .to_str()
            .map_err(|_| ApiError::UnsupportedMediaType)?
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "" | "application/json" | "text/plain" => Ok(BodyFormat::Json),
            "application/x-www-form-urlencoded" => Ok(BodyFormat::Form),
            other if other.starts_with("application/") && other.ends_with("+json") => {
                Ok(BodyFormat::Json)
            }
            _ => Err(ApiError::UnsupportedMediaType),
        }
    }
}
