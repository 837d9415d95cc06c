//! The routes, one module per resource, merged here.

mod connectors;
mod events;
mod ingest;
mod members;
mod ops;
mod programs;
mod rules;

use crate::error::ApiError;
use crate::request_log::log_requests;
use crate::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware;
use axum::Router;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(programs::router())
        .merge(connectors::router())
        .merge(rules::router())
        .merge(members::router())
        .merge(events::router())
        .merge(ingest::router())
        .merge(ops::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), log_requests))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read by `extract::read_body`, with our limits and problem answers.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    tracing::debug!(%method, path = uri.path(), "no route");
    ApiError::RouteNotFound
}

/// axum adds the `Allow` header to what this returns.
async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
