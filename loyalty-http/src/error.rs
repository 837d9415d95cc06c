//! The one place where failures become HTTP: RFC 9457 problem details with a stable `code`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use loyalty_core::Error as CoreError;
use serde_json::{json, Map, Value};

/// How long a client should wait before retrying when the database is unavailable: a
/// failover takes a few seconds (docs/operations.md), and a retry is always safe (a
/// committed event comes back as a duplicate).
const DATABASE_RETRY_AFTER_SECONDS: u64 = 1;

/// A failure of an HTTP request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Engine(#[from] CoreError),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("this token may not use this resource")]
    Forbidden,
    #[error("no route for this path")]
    RouteNotFound,
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("{0}")]
    BadRequest(String),
    #[error("the body is not valid JSON: {message}")]
    InvalidBody {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("{message}")]
    InvalidField { path: String, message: String },
    #[error("too many requests for this connector")]
    TooManyRequests { retry_after_seconds: u64 },
    #[error("the body's content type is not one a connector reads: send JSON (application/json, text/plain or none) or a form (application/x-www-form-urlencoded)")]
    UnsupportedMediaType,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Engine(e) => match e {
                CoreError::NotFound { .. } => StatusCode::NOT_FOUND,
                CoreError::Invalid { .. } | CoreError::InvalidMapping(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                CoreError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                CoreError::InvalidJson { .. } => StatusCode::BAD_REQUEST,
                CoreError::BatchTooLarge { .. } | CoreError::PayloadTooLarge { .. } => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                CoreError::Conflict { .. } => StatusCode::CONFLICT,
                CoreError::Store(e) if e.unavailable => StatusCode::SERVICE_UNAVAILABLE,
                CoreError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadRequest(_) | ApiError::InvalidBody { .. } => StatusCode::BAD_REQUEST,
            ApiError::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Engine(e) => e.code(),
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::InvalidBody { .. } => "invalid_json",
            ApiError::InvalidField { .. } => "validation_failed",
            ApiError::TooManyRequests { .. } => "rate_limited",
        }
    }

    /// The problem document. Store failures say nothing of their cause to the client (it is
    /// logged instead).
    pub fn problem(&self) -> Value {
        let status = self.status();
        let mut problem = Map::new();
        problem.insert("type".into(), json!("about:blank"));
        problem.insert(
            "title".into(),
            json!(status.canonical_reason().unwrap_or("Error")),
        );
        problem.insert("status".into(), json!(status.as_u16()));
        problem.insert("code".into(), json!(self.code()));
        let detail = match self {
            ApiError::Engine(CoreError::Store(e)) if e.unavailable => {
                "the database is unavailable (unreachable, switching to a new primary, or \
                 overloaded); send the same request again later: events it committed after \
                 all come back as duplicates"
                    .to_owned()
            }
            ApiError::Engine(CoreError::Store(_)) => {
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        problem.insert("detail".into(), json!(detail));
        match self {
            ApiError::Engine(CoreError::Invalid { path, .. })
            | ApiError::InvalidField { path, .. } => {
                problem.insert("path".into(), json!(path));
            }
            ApiError::Engine(CoreError::InvalidMapping(e)) => {
                problem.insert("message".into(), json!(e.message));
                problem.insert("position".into(), json!(e.position));
                problem.insert("line".into(), json!(e.line));
                problem.insert("column".into(), json!(e.column));
            }
            ApiError::Engine(CoreError::InvalidJson { line, column, .. })
            | ApiError::InvalidBody { line, column, .. } => {
                problem.insert("line".into(), json!(line));
                problem.insert("column".into(), json!(column));
            }
            ApiError::Engine(CoreError::BatchTooLarge { items, limit }) => {
                problem.insert("items".into(), json!(items));
                problem.insert("limit".into(), json!(limit));
            }
            ApiError::Engine(CoreError::PayloadTooLarge { limit }) => {
                problem.insert("limit".into(), json!(limit));
            }
            _ => {}
        }
        Value::Object(problem)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Engine(CoreError::Store(e)) = &self {
            tracing::error!(error = %e, "store failure");
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            ApiError::TooManyRequests {
                retry_after_seconds,
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            }
            ApiError::Engine(CoreError::Store(e)) if e.unavailable => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(DATABASE_RETRY_AFTER_SECONDS),
                );
            }
            _ => {}
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_core::error::StoreError;

    #[tokio::test]
    async fn an_unavailable_database_is_a_503_to_retry_after_a_while() {
        let error = ApiError::Engine(CoreError::Store(StoreError::unavailable(
            "PostgreSQL: no server of h1:5432 accepts read-write sessions",
        )));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "database_unavailable");
        // The cause is logged, never answered.
        assert!(!problem["detail"].as_str().unwrap().contains("h1"));
    }

    #[test]
    fn a_broken_store_is_a_500_without_retry_after() {
        let error = ApiError::Engine(CoreError::Store(StoreError::new("corrupt row")));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
