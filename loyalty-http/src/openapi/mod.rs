//! The OpenAPI 3.1 document, generated from [`ROUTES`], the one table of every route: the
//! router is built from the same table (`routes::router`), so the two cannot disagree. A test
//! checks that the committed `openapi.json` is this document, and `scripts/schemathesis.sh`
//! that the server does what it says.

mod schemas;

use crate::AppState;
use axum::routing::{MethodFilter, MethodRouter};
use serde_json::{json, Map, Value};

pub use crate::routes::ROUTES;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Any admin token: the root's or a program's.
    Admin,
    Root,
    /// The root token or the program's own token.
    Program,
    /// The connector's own authentication scheme.
    Connector,
}

/// A query parameter of a route.
#[derive(Clone, Copy, Debug)]
pub struct QueryParam {
    pub name: &'static str,
    pub required: bool,
    /// Its JSON Schema, as JSON text.
    pub schema: &'static str,
    pub description: &'static str,
}

/// One route of the API: what the document says of it, and its handler.
#[derive(Clone, Copy)]
pub struct RouteDoc {
    /// Lower case, as in the document.
    pub method: &'static str,
    /// With the document's parameter names (`{programId}`); the router's are in snake case.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub query: &'static [QueryParam],
    /// The request body's schema.
    pub request: Option<&'static str>,
    pub success: u16,
    /// The success answer's schema and media type.
    pub response: Option<(&'static str, &'static str)>,
    pub(crate) handler: fn(MethodFilter) -> MethodRouter<AppState>,
}

impl std::fmt::Debug for RouteDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl RouteDoc {
    /// The route's path as the router matches it: `{programId}` becomes `{program_id}`.
    pub fn router_path(&self) -> String {
        let mut path = String::with_capacity(self.path.len() + 8);
        let mut in_parameter = false;
        for c in self.path.chars() {
            match c {
                '{' => in_parameter = true,
                '}' => in_parameter = false,
                c if in_parameter && c.is_ascii_uppercase() => {
                    path.push('_');
                    path.push(c.to_ascii_lowercase());
                    continue;
                }
                _ => {}
            }
            path.push(c);
        }
        path
    }

    pub(crate) fn method_filter(&self) -> MethodFilter {
        match self.method {
            "get" => MethodFilter::GET,
            "post" => MethodFilter::POST,
            "put" => MethodFilter::PUT,
            "delete" => MethodFilter::DELETE,
            "options" => MethodFilter::OPTIONS,
            other => panic!("no method filter for {other}"),
        }
    }

    fn path_parameters(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }

    /// The error answers the route can give.
    fn failures(&self) -> Vec<Failure> {
        let mut failures = match self.access {
            Access::Public => vec![],
            Access::Admin => vec![UNAUTHORIZED],
            Access::Root => vec![UNAUTHORIZED, NOT_ROOT],
            Access::Program => vec![UNAUTHORIZED, OTHER_PROGRAM, NOT_FOUND],
            // The ingestion endpoint's own answers: all of them are here.
            Access::Connector => {
                return vec![
                    INGEST_BAD_REQUEST,
                    INGEST_UNAUTHORIZED,
                    UNKNOWN_CONNECTOR,
                    INGEST_TOO_LARGE,
                    INGEST_UNSUPPORTED,
                    INGEST_INVALID_QUERY,
                    RATE_LIMITED,
                ]
            }
        };
        if self.request.is_some() {
            failures.extend([INVALID_JSON, BODY_TOO_LARGE, INVALID_BODY]);
        }
        if !self.query.is_empty() {
            failures.extend([NUL_IN_QUERY, INVALID_QUERY]);
        }
        if let Some(conflict) = conflict_of(self.operation_id) {
            failures.push(conflict);
        }
        failures.sort_by_key(|failure| failure.status);
        failures
    }

    fn operation(&self) -> Value {
        let mut operation = Map::new();
        operation.insert("operationId".into(), json!(self.operation_id));
        operation.insert("summary".into(), json!(self.summary));
        let mut parameters: Vec<Value> = self
            .path_parameters()
            .map(|name| json!({"$ref": format!("#/components/parameters/{name}")}))
            .collect();
        for param in self.query {
            let schema: Value = serde_json::from_str(param.schema).expect("a query schema is JSON");
            parameters.push(
                json!({"name": param.name, "in": "query", "required": param.required,
                "description": param.description, "schema": schema}),
            );
        }
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        match self.access {
            Access::Public => {
                operation.insert("security".into(), json!([]));
            }
            Access::Admin | Access::Root | Access::Program => {
                operation.insert("security".into(), json!([{"bearer": []}]));
            }
            Access::Connector => {
                operation.insert("security".into(), json!([]));
                operation.insert(
                    "description".into(),
                    json!("Authenticated by the connector's scheme (a token, an HMAC of the raw body, or a sender's own signature). The body is JSON (application/json, application/*+json, text/plain or no content type) or an HTML form (application/x-www-form-urlencoded, read as one object of strings); any other content type is 415."),
                );
            }
        }
        if let Some(request) = self.request {
            let schema = json!({"$ref": format!("#/components/schemas/{request}")});
            // The ingestion endpoint also reads text/plain as JSON and HTML forms as one object
            // (its description says so): JSON Schema cannot state "this text is JSON", so
            // the document lists the one media type a generator can fill exactly.
            let content = json!({"application/json": {"schema": schema}});
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": content}),
            );
        }
        let mut responses = Map::new();
        let success = match self.response {
            Some((schema, media_type)) => {
                json!({"description": "Success", "content": {media_type: {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
            }
            None => json!({"description": "Success"}),
        };
        if self.operation_id == "adjustPoints" {
            let mut again = success.clone();
            again["description"] =
                json!("The same idempotency key again: the first adjustment, unchanged");
            responses.insert("200".into(), again);
        }
        responses.insert(self.success.to_string(), success);
        for failure in self.failures() {
            responses.insert(
                failure.status.to_string(),
                json!({"$ref": format!("#/components/responses/{}", failure.name)}),
            );
        }
        operation.insert("responses".into(), Value::Object(responses));
        Value::Object(operation)
    }
}

/// An error answer, shared by the routes that can give it.
#[derive(Clone, Copy, Debug)]
struct Failure {
    name: &'static str,
    status: u16,
    description: &'static str,
}

const fn failure(name: &'static str, status: u16, description: &'static str) -> Failure {
    Failure {
        name,
        status,
        description,
    }
}

const UNAUTHORIZED: Failure = failure("Unauthorized", 401, "Missing or wrong token (unauthorized)");
const NOT_ROOT: Failure = failure("NotRoot", 403, "Not the root token (forbidden)");
const OTHER_PROGRAM: Failure = failure("OtherProgram", 403, "Another program's token (forbidden)");
const NOT_FOUND: Failure = failure(
    "NotFound",
    404,
    "No such program or resource in it (not_found)",
);
const INVALID_JSON: Failure = failure(
    "InvalidJson",
    400,
    "Body is not JSON (invalid_json, with line and column)",
);
const BODY_TOO_LARGE: Failure = failure(
    "BodyTooLarge",
    413,
    "Body over the admin limit (payload_too_large)",
);
const INVALID_BODY: Failure = failure(
    "InvalidBody",
    422,
    "Invalid field (validation_failed, with path) or mapping (invalid_mapping, with position)",
);
const NUL_IN_QUERY: Failure = failure(
    "NulInQuery",
    400,
    "A NUL character in the query (bad_request)",
);
const INVALID_QUERY: Failure = failure(
    "InvalidQuery",
    422,
    "Invalid or repeated query parameter (validation_failed, with path)",
);
const INGEST_BAD_REQUEST: Failure = failure(
    "IngestBadRequest",
    400,
    "Body is not JSON (invalid_json, with line and column), or cannot be mapped (bad_request)",
);
const INGEST_UNAUTHORIZED: Failure = failure(
    "IngestUnauthorized",
    401,
    "Authentication failed (unauthorized)",
);
const UNKNOWN_CONNECTOR: Failure =
    failure("UnknownConnector", 404, "Unknown connector (not_found)");
const INGEST_TOO_LARGE: Failure = failure(
    "IngestTooLarge",
    413,
    "Body or batch over the limit (payload_too_large, batch_too_large)",
);
const INGEST_UNSUPPORTED: Failure = failure(
    "IngestUnsupportedMediaType",
    415,
    "A content type other than JSON, text/plain or a form (unsupported_media_type)",
);
const INGEST_INVALID_QUERY: Failure = failure(
    "IngestInvalidQuery",
    422,
    "A query parameter is invalid (validation_failed)",
);
const IDEMPOTENCY_CONFLICT: Failure = failure(
    "IdempotencyConflict",
    409,
    "The idempotency key was used for another adjustment (idempotency_conflict)",
);
const NOTHING_TO_REVERSE: Failure = failure(
    "NothingToReverse",
    409,
    "The event has no points left to reverse (nothing_to_reverse)",
);

/// The routes whose request can contradict what is stored, and how.
fn conflict_of(operation_id: &str) -> Option<Failure> {
    match operation_id {
        "adjustPoints" => Some(IDEMPOTENCY_CONFLICT),
        "reverseEvent" => Some(NOTHING_TO_REVERSE),
        _ => None,
    }
}

const RATE_LIMITED: Failure = failure(
    "RateLimited",
    429,
    "Rate limited (rate_limited), with Retry-After",
);

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    let mut responses = Map::new();
    let mut parameters = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method] = route.operation();
        for failure in route.failures() {
            responses.insert(
                failure.name.to_owned(),
                json!({"description": failure.description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
            );
        }
        for name in route.path_parameters() {
            parameters.insert(
                name.to_owned(),
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}),
            );
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "loyalty",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Turns actions outside a loyalty program into points. Errors are RFC 9457 problem details with a stable machine code."
        },
        "paths": paths,
        "components": {
            "schemas": schemas::schemas(),
            "responses": responses,
            "parameters": parameters,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_gives_each_status_for_one_documented_reason() {
        for route in ROUTES {
            let failures = route.failures();
            for pair in failures.windows(2) {
                assert_ne!(pair[0].status, pair[1].status, "{route:?}: {pair:?}");
            }
            assert!(failures.iter().all(|f| f.status != route.success));
        }
    }

    #[test]
    fn router_paths_name_parameters_in_snake_case() {
        let route = ROUTES
            .iter()
            .find(|r| r.operation_id == "memberActivity")
            .unwrap();
        assert_eq!(
            route.router_path(),
            "/v1/programs/{program_id}/members/{member_id}/activity"
        );
    }
}
