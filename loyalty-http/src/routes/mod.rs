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
use axum::extract::Request;
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
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
        .layer(middleware::from_fn(refuse_nul_in_url))
        // Bodies are read by `extract::read_body`, with our limits and problem answers.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// No id or filter contains a NUL character, and PostgreSQL's text cannot hold one, so an
/// encoded NUL (`%00`) is answered here, by every store alike: in the path, no such resource
/// exists (404); in an admin route's query, it is a bad filter (400). An ingestion query only
/// carries the token and the test flag, which answer for themselves (401, 422).
async fn refuse_nul_in_url(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let has_nul = |text: &str| text.contains("%00");
    if has_nul(uri.path()) {
        return ApiError::RouteNotFound.into_response();
    }
    if !uri.path().starts_with("/v1/incoming/") && uri.query().is_some_and(has_nul) {
        return ApiError::BadRequest("a NUL character (%00) is not allowed in the query".into())
            .into_response();
    }
    next.run(request).await
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    tracing::debug!(%method, path = uri.path(), "no route");
    ApiError::RouteNotFound
}

/// axum adds the `Allow` header to what this returns.
async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
