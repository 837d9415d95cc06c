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
use serde::Serialize;

/// A list answer: `{"items": [...]}`, an object so that fields can be added beside the items.
#[derive(Debug, Serialize)]
pub(crate) struct Items<T> {
    items: Vec<T>,
}

impl<T> Items<T> {
    pub(crate) fn new(items: Vec<T>) -> Self {
        Self { items }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(programs::router())
        .merge(connectors::router())
        .merge(rules::router())
        .merge(members::router())
        .merge(events::router())
        .merge(ingest::router())
        .merge(ops::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(refuse_nul_in_path))
        // Outermost: every answer, the 404s and 405s included, has its request id and its log
        // line (a route that matched is named by its pattern, anything else "unmatched").
        .layer(middleware::from_fn_with_state(state.clone(), log_requests))
        // Bodies are read by `extract::JsonBody` and `extract::read_body`, with our limits and problem answers.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// No id contains a NUL character, and PostgreSQL's text cannot hold one, so a path with an
/// encoded NUL (`%00`) names nothing: 404 here, by every store alike, as for an unknown route.
/// (A NUL in an admin query is refused once the caller is authorised: `extract::AdminQuery`.)
async fn refuse_nul_in_path(request: Request, next: Next) -> Response {
    if request.uri().path().contains("%00") {
        return ApiError::RouteNotFound.into_response();
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
