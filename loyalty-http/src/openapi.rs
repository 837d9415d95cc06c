//! The OpenAPI 3.1 document, generated from [`ROUTES`], the table of every route the router
//! serves (a test checks that the two agree, and another that the committed `openapi.json`
//! is this document).

use serde_json::{json, Map, Value};

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

/// One route of the API.
#[derive(Clone, Copy, Debug)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub request: Option<&'static str>,
    pub success: u16,
    pub response: Option<&'static str>,
}

#[allow(clippy::too_many_arguments)] // a table row: positional reads best here
const fn route(
    method: &'static str,
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    access: Access,
    request: Option<&'static str>,
    success: u16,
    response: Option<&'static str>,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        operation_id,
        summary,
        access,
        request,
        success,
        response,
    }
}

use Access::*;

pub const ROUTES: &[RouteDoc] = &[
    route("post", "/v1/programs", "createProgram", "Create a program (root token only); the admin token is shown once", Root, Some("ProgramSpec"), 201, Some("ProgramCreated")),
    route("get", "/v1/programs", "listPrograms", "List programs (root token only)", Root, None, 200, Some("ProgramList")),
    route("get", "/v1/programs/{programId}", "getProgram", "Read a program and its settings", Program, None, 200, Some("Program")),
    route("post", "/v1/programs/{programId}/connectors", "createConnector", "Create a connector; generated tokens or secrets are shown once", Program, Some("ConnectorSpec"), 201, Some("Connector")),
    route("get", "/v1/programs/{programId}/connectors", "listConnectors", "List connectors", Program, None, 200, Some("ConnectorList")),
    route("get", "/v1/programs/{programId}/connectors/{connectorId}", "getConnector", "Read a connector (never its secrets)", Program, None, 200, Some("Connector")),
    route("put", "/v1/programs/{programId}/connectors/{connectorId}", "replaceConnector", "Replace a connector; left-out tokens and secrets are kept", Program, Some("ConnectorSpec"), 200, Some("Connector")),
    route("delete", "/v1/programs/{programId}/connectors/{connectorId}", "deleteConnector", "Delete a connector and its rules (its events stay in the log)", Program, None, 204, None),
    route("post", "/v1/programs/{programId}/connectors/{connectorId}/simulate", "simulate", "What would happen to a payload; stores nothing", Program, Some("SimulateRequest"), 200, Some("SimulationResponse")),
    route("post", "/v1/programs/{programId}/connectors/{connectorId}/purge", "purgeTestData", "Delete the connector's test data", Program, None, 200, Some("PurgeCounts")),
    route("post", "/v1/programs/{programId}/rules", "createRule", "Create an earning rule", Program, Some("RuleSpec"), 201, Some("Rule")),
    route("get", "/v1/programs/{programId}/rules", "listRules", "List earning rules (?connectorId= to filter)", Program, None, 200, Some("RuleList")),
    route("get", "/v1/programs/{programId}/rules/{ruleId}", "getRule", "Read an earning rule", Program, None, 200, Some("Rule")),
    route("put", "/v1/programs/{programId}/rules/{ruleId}", "replaceRule", "Replace an earning rule", Program, Some("RuleSpec"), 200, Some("Rule")),
    route("delete", "/v1/programs/{programId}/rules/{ruleId}", "deleteRule", "Delete an earning rule", Program, None, 204, None),
    route("get", "/v1/programs/{programId}/members", "findMember", "The member with an identifier (?kind=K&value=V)", Program, None, 200, Some("Member")),
    route("get", "/v1/programs/{programId}/members/{memberId}", "getMember", "A member with its balance", Program, None, 200, Some("Member")),
    route("get", "/v1/programs/{programId}/members/{memberId}/activity", "memberActivity", "A member's events and ledger entries, newest first", Program, None, 200, Some("ActivityPage")),
    route("get", "/v1/programs/{programId}/events", "listEvents", "The event log, newest first (?connectorId=&status=&memberId=&since=&until=&test=&limit=&cursor=)", Program, None, 200, Some("EventPage")),
    route("get", "/v1/programs/{programId}/events/{eventId}", "getEvent", "One logged event with its trace", Program, None, 200, Some("Event")),
    route("post", "/v1/incoming/{connectorId}", "ingest", "Send one event (an object) or a bulk (an array); ?test=true stores test data", Connector, Some("AnyJson"), 200, Some("IngestResponse")),
    route("get", "/healthz", "health", "Liveness", Public, None, 200, None),
    route("get", "/metrics", "metrics", "Prometheus metrics", Public, None, 200, None),
    route("get", "/openapi.json", "openapi", "This document", Public, None, 200, None),
];

fn schemas() -> Value {
    let object = |props: Value| json!({"type": "object", "properties": props});
    json!({
        "AnyJson": {"description": "Any JSON object, or an array of them (a bulk)."},
        "Problem": object(json!({
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "code": {"type": "string", "description": "Stable machine code: unauthorized, forbidden, not_found, method_not_allowed, bad_request, invalid_json, validation_failed, invalid_mapping, payload_too_large, batch_too_large, rate_limited, store_unavailable, internal_error"},
            "detail": {"type": "string"}, "path": {"type": "string"}, "line": {"type": "integer"}, "column": {"type": "integer"}, "position": {"type": "integer"}
        })),
        "ProgramSpec": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "defaultIdentifierKind": {"type": "string", "default": "email"}, "enrollUnknownMembers": {"type": "boolean", "default": true}}},
        "Program": object(json!({"id": {"type": "string"}, "name": {"type": "string"}, "defaultIdentifierKind": {"type": "string"}, "enrollUnknownMembers": {"type": "boolean"}, "createdAt": {"type": "string", "format": "date-time"}})),
        "ProgramCreated": {"allOf": [{"$ref": "#/components/schemas/Program"}, object(json!({"adminToken": {"type": "string"}}))]},
        "ProgramList": object(json!({"items": {"type": "array", "items": {"$ref": "#/components/schemas/Program"}}})),
        "ConnectorAuth": {"oneOf": [
            object(json!({"type": {"const": "queryToken"}, "param": {"type": "string", "default": "token"}, "token": {"type": "string"}})),
            object(json!({"type": {"const": "headerToken"}, "header": {"type": "string", "default": "X-Authorization"}, "token": {"type": "string"}})),
            object(json!({"type": {"const": "hubSignature"}, "header": {"type": "string", "default": "X-Hub-Signature-256"}, "algorithm": {"const": "sha256"}, "secrets": {"type": "array", "items": {"type": "string"}}})),
            object(json!({"type": {"const": "standardWebhooks"}, "secrets": {"type": "array", "items": {"type": "string"}}, "toleranceSeconds": {"type": "integer", "default": 300}}))
        ]},
        "ConnectorSpec": {"type": "object", "required": ["name", "eventType", "auth", "mapping"], "properties": {
            "name": {"type": "string"}, "eventType": {"enum": ["custom.basic", "ecommerce.purchase"]},
            "auth": {"$ref": "#/components/schemas/ConnectorAuth"}, "mapping": {"type": "string", "description": "JSONata expression"},
            "testMode": {"type": "boolean", "default": false}, "maxEventAgeDays": {"type": "integer", "default": 30}}},
        "Connector": object(json!({"id": {"type": "string"}, "programId": {"type": "string"}, "name": {"type": "string"}, "eventType": {"type": "string"},
            "auth": {"type": "object"}, "mapping": {"type": "string"}, "testMode": {"type": "boolean"}, "maxEventAgeDays": {"type": "integer"},
            "endpoint": {"type": "string"}, "revision": {"type": "integer"}, "createdAt": {"type": "string"}, "updatedAt": {"type": "string"}})),
        "ConnectorList": object(json!({"items": {"type": "array", "items": {"$ref": "#/components/schemas/Connector"}}})),
        "RuleSpec": {"type": "object", "required": ["name", "connectorId", "points"], "properties": {
            "name": {"type": "string"}, "connectorId": {"type": "string"}, "conditions": {"type": "object", "description": "{all:[...]} or {any:[...]}, nestable; leaves on tag, counter, field, item"},
            "points": {"type": "object", "description": "{fixed:N}, {perCounter:{counter,points,per}} or {perAmount:{points,per}}"},
            "limits": {"type": "array", "items": {"type": "object"}}, "priority": {"type": "integer"}, "stopOtherRules": {"type": "boolean"},
            "activeFrom": {"type": ["string", "null"], "format": "date-time"}, "activeUntil": {"type": ["string", "null"], "format": "date-time"}}},
        "Rule": {"allOf": [{"$ref": "#/components/schemas/RuleSpec"}, object(json!({"id": {"type": "string"}, "programId": {"type": "string"}, "createdAt": {"type": "string"}, "updatedAt": {"type": "string"}}))]},
        "RuleList": object(json!({"items": {"type": "array", "items": {"$ref": "#/components/schemas/Rule"}}})),
        "Member": object(json!({"id": {"type": "string"}, "identifiers": {"type": "array", "items": object(json!({"kind": {"type": "string"}, "value": {"type": "string"}}))},
            "balance": {"type": "integer"}, "test": {"type": "boolean"}, "createdAt": {"type": "string"}})),
        "ActivityPage": object(json!({"items": {"type": "array", "items": object(json!({"type": {"enum": ["event", "ledger"]}, "at": {"type": "string"}, "eventId": {"type": "string"},
            "clientEventId": {"type": "string"}, "status": {"type": "string"}, "points": {"type": "integer"}, "ruleId": {"type": "string"}, "test": {"type": "boolean"}}))},
            "nextCursor": {"type": ["string", "null"]}})),
        "Event": object(json!({"id": {"type": "string"}, "connectorId": {"type": "string"}, "status": {"enum": ["accepted", "duplicate", "ignored", "rejected"]},
            "reason": {"type": "string"}, "error": {"type": "object"}, "clientEventId": {"type": "string"}, "originalEventId": {"type": "string"}, "memberId": {"type": "string"},
            "test": {"type": "boolean"}, "receivedAt": {"type": "string"}, "occurredAt": {"type": "string"}, "points": {"type": "integer"}, "awards": {"type": "array"},
            "raw": {}, "rawTruncated": {"type": "boolean"}, "mapped": {}, "trace": {"type": "array"}})),
        "EventPage": object(json!({"items": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}, "nextCursor": {"type": ["string", "null"]}})),
        "SimulateRequest": {"type": "object", "required": ["payload"], "properties": {"payload": {}, "mapping": {"type": "string"}, "test": {"type": "boolean"}}},
        "SimulationResponse": object(json!({"results": {"type": "array", "items": object(json!({"index": {"type": "integer"}, "status": {"type": "string"}, "reason": {"type": "string"},
            "error": {"type": "object"}, "mapped": {}, "member": {"type": ["object", "null"]}, "points": {"type": "integer"}, "awards": {"type": "array"}, "trace": {"type": "array"}}))}})),
        "PurgeCounts": object(json!({"events": {"type": "integer"}, "ledgerEntries": {"type": "integer"}, "members": {"type": "integer"}})),
        "IngestResponse": object(json!({"results": {"type": "array", "items": object(json!({"index": {"type": "integer"}, "status": {"enum": ["accepted", "duplicate", "ignored", "rejected"]},
            "eventId": {"type": "string"}, "clientEventId": {"type": "string"}, "originalEventId": {"type": "string"}, "memberId": {"type": "string"}, "points": {"type": "integer"},
            "awards": {"type": "array"}, "reason": {"type": "string"}, "error": {"type": "object"}}))},
            "accepted": {"type": "integer"}, "duplicates": {"type": "integer"}, "ignored": {"type": "integer"}, "rejected": {"type": "integer"}}))
    })
}

fn errors_for(route: &RouteDoc) -> Vec<(u16, &'static str)> {
    let mut errors = match route.access {
        Public => vec![],
        Root => vec![(401, "Missing or wrong token"), (403, "Not the root token")],
        Program => vec![
            (401, "Missing or wrong token"),
            (403, "Another program's token"),
            (404, "Not found"),
        ],
        Connector => vec![
            (400, "Body is not JSON (invalid_json, with line and column)"),
            (401, "Authentication failed"),
            (404, "Unknown connector"),
            (
                413,
                "Body or batch over the limit (payload_too_large, batch_too_large)",
            ),
            (429, "Rate limited"),
        ],
    };
    if route.request.is_some() && route.access != Connector {
        errors.push((400, "Body is not JSON"));
        errors.push((
            422,
            "Invalid field (validation_failed with path) or mapping (invalid_mapping)",
        ));
    }
    errors
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut operation = Map::new();
        operation.insert("operationId".into(), json!(route.operation_id));
        operation.insert("summary".into(), json!(route.summary));
        let parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        match route.access {
            Public => {}
            Root | Program => {
                operation.insert("security".into(), json!([{"bearer": []}]));
            }
            Connector => {
                operation.insert("security".into(), json!([]));
                operation.insert(
                    "description".into(),
                    json!("Authenticated by the connector's scheme: queryToken, headerToken, hubSignature (HMAC-SHA256 of the raw body) or standardWebhooks."),
                );
            }
        }
        if let Some(request) = route.request {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{request}")}}}}),
            );
        }
        let mut responses = Map::new();
        let success = match route.response {
            Some(schema) => {
                json!({"description": "Success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
            }
            None => json!({"description": "Success"}),
        };
        responses.insert(route.success.to_string(), success);
        for (status, description) in errors_for(route) {
            responses.insert(
                status.to_string(),
                json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
            );
        }
        operation.insert("responses".into(), Value::Object(responses));
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method] = Value::Object(operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "loyalty",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Turns actions outside a loyalty program into points. See API.md for the meanings."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}
