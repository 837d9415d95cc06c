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

    /// The error answers the route can give, with what they mean.
    fn errors(&self) -> Vec<(u16, String)> {
        let mut errors = match self.access {
            Access::Public => vec![],
            Access::Root => vec![
                (401, "Missing or wrong token (unauthorized)"),
                (403, "Not the root token (forbidden)"),
            ],
            Access::Program => vec![
                (401, "Missing or wrong token (unauthorized)"),
                (403, "Another program's token (forbidden)"),
                (404, "No such program or resource in it (not_found)"),
            ],
            Access::Connector => vec![
                (
                    400,
                    "Body is not JSON (invalid_json, with line and column), or cannot be mapped (bad_request)",
                ),
                (401, "Authentication failed (unauthorized)"),
                (404, "Unknown connector (not_found)"),
                (
                    413,
                    "Body or batch over the limit (payload_too_large, batch_too_large)",
                ),
                (422, "A query parameter is invalid (validation_failed)"),
                (429, "Rate limited (rate_limited), with Retry-After"),
            ],
        };
        // The ingestion endpoint's own answers are all listed above.
        let admin = self.access != Access::Connector;
        if admin && self.request.is_some() {
            errors.push((400, "Body is not JSON (invalid_json, with line and column)"));
            errors.push((413, "Body over the admin limit (payload_too_large)"));
            errors.push((
                422,
                "Invalid field (validation_failed, with path) or mapping (invalid_mapping, with position)",
            ));
        }
        if admin && !self.query.is_empty() {
            errors.push((400, "A NUL character in the query (bad_request)"));
            errors.push((
                422,
                "Invalid query parameter (validation_failed, with path)",
            ));
        }
        errors.sort_by_key(|(status, _)| *status);
        // A status reached two ways is listed once, with both meanings.
        let mut merged: Vec<(u16, String)> = Vec::new();
        for (status, description) in errors {
            match merged.last_mut() {
                Some((last, text)) if *last == status => {
                    text.push_str("; ");
                    text.push_str(description);
                }
                _ => merged.push((status, description.to_owned())),
            }
        }
        merged
    }

    fn operation(&self) -> Value {
        let mut operation = Map::new();
        operation.insert("operationId".into(), json!(self.operation_id));
        operation.insert("summary".into(), json!(self.summary));
        let mut parameters: Vec<Value> = self
            .path_parameters()
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
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
            Access::Root | Access::Program => {
                operation.insert("security".into(), json!([{"bearer": []}]));
            }
            Access::Connector => {
                operation.insert("security".into(), json!([]));
                operation.insert(
                    "description".into(),
                    json!("Authenticated by the connector's scheme: queryToken, headerToken, hubSignature (HMAC-SHA256 of the raw body) or standardWebhooks."),
                );
            }
        }
        if let Some(request) = self.request {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{request}")}}}}),
            );
        }
        let mut responses = Map::new();
        let success = match self.response {
            Some((schema, media_type)) => {
                json!({"description": "Success", "content": {media_type: {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
            }
            None => json!({"description": "Success"}),
        };
        responses.insert(self.success.to_string(), success);
        for (status, description) in self.errors() {
            responses.insert(
                status.to_string(),
                json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
            );
        }
        operation.insert("responses".into(), Value::Object(responses));
        Value::Object(operation)
    }
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method] = route.operation();
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
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}
