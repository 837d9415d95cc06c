//! The routes: one module per resource for the handlers, and here the one table of every
//! route, from which the router and the OpenAPI document are built.

mod connectors;
mod events;
mod ingest;
mod me;
mod members;
mod ops;
mod points;
mod programs;
mod replays;
mod rules;
mod stream;
mod webhooks;

use crate::error::ApiError;
use crate::openapi::{Access, QueryParam, RouteDoc};
use crate::request_log::log_requests;
use crate::AppState;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::on;
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

/// The JSON Schemas of the query parameters. No value may hold a NUL character (400).
const STRING: &str = r#"{"type": "string", "not": {"pattern": "\\u0000"}}"#;
const LIMIT: &str = r#"{"type": "integer", "minimum": 1, "maximum": 500, "default": 50}"#;
const CURSOR: &str =
    r#"{"type": "string", "pattern": "^c[0-9]{1,18}$", "not": {"pattern": "\\n"}}"#;
const FLAG: &str = r#"{"type": "string", "enum": ["true", "false", "1", "0", ""]}"#;
const DATE_TIME: &str = r#"{"type": "string", "format": "date-time"}"#;
const FEED_CURSOR: &str = r#"{"type": "string", "pattern": "^[0-9]{1,18}$"}"#;
const STATUS: &str =
    r#"{"type": "string", "enum": ["accepted", "duplicate", "ignored", "rejected"]}"#;

const fn query(name: &'static str, schema: &'static str, description: &'static str) -> QueryParam {
    QueryParam {
        name,
        required: false,
        schema,
        description,
    }
}

const fn required_query(
    name: &'static str,
    schema: &'static str,
    description: &'static str,
) -> QueryParam {
    QueryParam {
        required: true,
        ..query(name, schema, description)
    }
}

const PAGE: [QueryParam; 2] = [
    query("limit", LIMIT, "items per page"),
    query("cursor", CURSOR, "the nextCursor of the previous page"),
];

/// Builds one table row: `route!(method path, operationId, summary, access, query, request,
/// success status, response schema and media type, handler)`. The handler is a function, or
/// `with |filter| method router` for a route that needs more than a handler.
macro_rules! route {
    ($method:literal $path:literal, $id:literal, $summary:literal, $access:ident, $query:expr,
     $request:expr, $success:literal, $response:expr, with $handler:expr) => {
        RouteDoc {
            method: $method,
            path: $path,
            operation_id: $id,
            summary: $summary,
            access: Access::$access,
            query: $query,
            request: $request,
            success: $success,
            response: $response,
            handler: $handler,
        }
    };
    ($method:literal $path:literal, $id:literal, $summary:literal, $access:ident, $query:expr,
     $request:expr, $success:literal, $response:expr, $handler:path) => {
        route!($method $path, $id, $summary, $access, $query, $request, $success, $response,
            with |filter| on(filter, $handler))
    };
}

const JSON: &str = "application/json";

/// Every route of the API, once: the router and the OpenAPI document are both built from it.
#[rustfmt::skip]
pub static ROUTES: &[RouteDoc] = &[
    route!("get" "/v1/templates", "listTemplates", "The senders' events ready to use: mapping, auth scheme, sample payload", Admin, &[], None, 200, Some(("TemplateList", JSON)), connectors::templates),
    route!("get" "/v1/me", "me", "Whom the admin token belongs to: the root, or a program (with its id)", Admin, &[], None, 200, Some(("Me", JSON)), me::read),
    route!("post" "/v1/programs", "createProgram", "Create a program (root token only); the admin token is shown once", Root, &[], Some("ProgramSpec"), 201, Some(("ProgramCreated", JSON)), programs::create),
    route!("get" "/v1/programs", "listPrograms", "List programs (root token only)", Root, &[], None, 200, Some(("ProgramList", JSON)), programs::list),
    route!("get" "/v1/programs/{programId}", "getProgram", "Read a program and its settings", Program, &[], None, 200, Some(("Program", JSON)), programs::read),
    route!("post" "/v1/programs/{programId}/connectors", "createConnector", "Create a connector; generated tokens or secrets are shown once", Program, &[], Some("ConnectorCreation"), 201, Some(("Connector", JSON)), connectors::create),
    route!("get" "/v1/programs/{programId}/connectors", "listConnectors", "List connectors", Program, &[], None, 200, Some(("ConnectorList", JSON)), connectors::list),
    route!("get" "/v1/programs/{programId}/connectors/{connectorId}", "getConnector", "Read a connector (never its secrets)", Program, &[], None, 200, Some(("Connector", JSON)), connectors::read),
    route!("put" "/v1/programs/{programId}/connectors/{connectorId}", "replaceConnector", "Replace a connector; left-out tokens and secrets are kept", Program, &[], Some("ConnectorSpec"), 200, Some(("Connector", JSON)), connectors::replace),
    route!("delete" "/v1/programs/{programId}/connectors/{connectorId}", "deleteConnector", "Delete a connector and its rules (its events stay in the log)", Program, &[], None, 204, None, connectors::remove),
    route!("post" "/v1/programs/{programId}/connectors/{connectorId}/simulate", "simulate", "What would happen to a payload; stores nothing", Program, &[], Some("SimulateRequest"), 200, Some(("SimulationResponse", JSON)), connectors::simulate),
    route!("post" "/v1/programs/{programId}/connectors/{connectorId}/purge", "purgeTestData", "Delete the connector's test data", Program, &[], None, 200, Some(("PurgeCounts", JSON)), connectors::purge),
    route!("post" "/v1/programs/{programId}/rules", "createRule", "Create an earning rule", Program, &[], Some("RuleSpec"), 201, Some(("Rule", JSON)), rules::create),
    route!("get" "/v1/programs/{programId}/rules", "listRules", "List earning rules", Program, &[query("connectorId", STRING, "only this connector's rules")], None, 200, Some(("RuleList", JSON)), rules::list),
    route!("get" "/v1/programs/{programId}/rules/{ruleId}", "getRule", "Read an earning rule", Program, &[], None, 200, Some(("Rule", JSON)), rules::read),
    route!("put" "/v1/programs/{programId}/rules/{ruleId}", "replaceRule", "Replace an earning rule", Program, &[], Some("RuleSpec"), 200, Some(("Rule", JSON)), rules::replace),
    route!("delete" "/v1/programs/{programId}/rules/{ruleId}", "deleteRule", "Delete an earning rule", Program, &[], None, 204, None, rules::remove),
    route!("get" "/v1/programs/{programId}/members", "findMember", "The member with an identifier", Program, &[query("kind", STRING, "the identifier's kind (default: the program's)"), required_query("value", STRING, "the identifier, normalised as events' are")], None, 200, Some(("Member", JSON)), members::find),
    route!("get" "/v1/programs/{programId}/members/{memberId}", "getMember", "A member with its balance", Program, &[], None, 200, Some(("Member", JSON)), members::read),
    route!("get" "/v1/programs/{programId}/members/{memberId}/activity", "memberActivity", "A member's events and ledger entries, newest first", Program, &PAGE, None, 200, Some(("ActivityPage", JSON)), members::activity),
    route!("get" "/v1/programs/{programId}/members/{memberId}/allowance", "memberAllowance", "What is left of each limit of each rule for the member, now", Program, &[], None, 200, Some(("Allowance", JSON)), members::allowance),
    route!("post" "/v1/programs/{programId}/members/{memberId}/adjustments", "adjustPoints", "Add or remove points by hand, with a reason; an idempotency key makes a retry harmless", Program, &[], Some("AdjustmentSpec"), 201, Some(("Adjustment", JSON)), points::adjust),
    route!("post" "/v1/programs/{programId}/events/{eventId}/reverse", "reverseEvent", "Take back an accepted event's awards: all that is left, or some points in proportion", Program, &[], Some("ReversalSpec"), 200, Some(("Reversal", JSON)), points::reverse),
    route!("get" "/v1/programs/{programId}/events", "listEvents", "The event log, newest first", Program, &[query("connectorId", STRING, "only this connector's events"), query("status", STATUS, "only items of this status"), query("memberId", STRING, "only this member's events"), query("since", DATE_TIME, "received at or after"), query("until", DATE_TIME, "received before"), query("test", FLAG, "only test (true) or live (false) events"), PAGE[0], PAGE[1]], None, 200, Some(("EventPage", JSON)), events::list),
    route!("get" "/v1/programs/{programId}/events/errors", "eventErrors", "The rejected and ignored items grouped by status, code and path, largest first: what to fix before a replay", Program, &[query("connectorId", STRING, "only this connector's items"), query("from", DATE_TIME, "received at or after"), query("to", DATE_TIME, "received before"), query("test", FLAG, "only test (true) or live (false) items")], None, 200, Some(("EventErrors", JSON)), events::errors),
    route!("get" "/v1/programs/{programId}/events/{eventId}", "getEvent", "One logged event with its trace", Program, &[], None, 200, Some(("Event", JSON)), events::read),
    route!("post" "/v1/programs/{programId}/replays", "createReplay", "Replay a connector's logged items through the current or a draft mapping and rules: a dry run, or applied exactly once; runs in the background", Program, &[], Some("ReplaySpec"), 202, Some(("Replay", JSON)), replays::create),
    route!("get" "/v1/programs/{programId}/replays/{replayId}", "getReplay", "A replay's state, progress and report", Program, &[], None, 200, Some(("Replay", JSON)), replays::read),
    route!("delete" "/v1/programs/{programId}/replays/{replayId}", "cancelReplay", "Cancel a running replay (what an applied one changed so far stays, each change whole)", Program, &[], None, 200, Some(("Replay", JSON)), replays::cancel),
    route!("get" "/v1/programs/{programId}/stream", "streamChanges", "Server-sent events: every committed ledger change and logged event, live, resumable with Last-Event-ID", Program, &[query("memberId", STRING, "only this member's changes"), query("after", FEED_CURSOR, "resume after this message id (for clients that cannot send Last-Event-ID; the header wins)")], None, 200, Some(("ChangeStream", "text/event-stream")), stream::stream),
    route!("post" "/v1/programs/{programId}/webhooks", "createWebhook", "Create an outbound webhook endpoint; a generated whsec_ secret is shown once", Program, &[], Some("WebhookSpec"), 201, Some(("Webhook", JSON)), webhooks::create),
    route!("get" "/v1/programs/{programId}/webhooks", "listWebhooks", "List webhook endpoints (never their secrets)", Program, &[], None, 200, Some(("WebhookList", JSON)), webhooks::list),
    route!("get" "/v1/programs/{programId}/webhooks/{webhookId}", "getWebhook", "Read a webhook endpoint (never its secrets)", Program, &[], None, 200, Some(("Webhook", JSON)), webhooks::read),
    route!("delete" "/v1/programs/{programId}/webhooks/{webhookId}", "deleteWebhook", "Delete a webhook endpoint and its deliveries", Program, &[], None, 204, None, webhooks::remove),
    route!("get" "/v1/programs/{programId}/webhooks/{webhookId}/deliveries", "listWebhookDeliveries", "The endpoint's deliveries with every attempt, newest first", Program, &PAGE, None, 200, Some(("DeliveryPage", JSON)), webhooks::deliveries),
    route!("post" "/v1/programs/{programId}/webhooks/{webhookId}/test", "sendTestWebhook", "Queue a webhook.test message to the endpoint, due at once", Program, &[], None, 202, Some(("Delivery", JSON)), webhooks::test),
    route!("post" "/v1/programs/{programId}/webhooks/{webhookId}/rotate-secret", "rotateWebhookSecret", "A new signing secret; the old one signs beside it for the grace period", Program, &[], Some("RotationSpec"), 200, Some(("Webhook", JSON)), webhooks::rotate),
    route!("post" "/v1/programs/{programId}/webhooks/{webhookId}/deliveries/{messageId}/retry", "retryWebhookDelivery", "Send a delivery again, due at once, whatever its state", Program, &[], None, 202, Some(("Delivery", JSON)), webhooks::retry),
    route!("post" "/v1/incoming/{connectorId}", "ingest", "Send one event (an object) or a bulk (an array)", Connector, &[query("test", FLAG, "store the events as test data")], Some("IngestBody"), 200, Some(("IngestResponse", JSON)), with |filter| on(filter, ingest::ingest).layer(ingest::cors())),
    route!("options" "/v1/incoming/{connectorId}", "ingestPreflight", "CORS preflight for browsers (any origin), answered by the CORS layer", Public, &[], None, 200, None, with |filter| on(filter, ingest::preflight).layer(ingest::cors())),
    route!("get" "/healthz", "health", "Liveness", Public, &[], None, 200, Some(("Health", JSON)), ops::health),
    route!("get" "/metrics", "metrics", "Prometheus metrics (OpenMetrics text)", Public, &[], None, 200, Some(("Metrics", "application/openmetrics-text")), ops::metrics),
    route!("get" "/openapi.json", "openapi", "This document", Public, &[], None, 200, Some(("OpenApiDocument", JSON)), ops::openapi),
];

/// The whole API, every route of [`ROUTES`], and the admin console that uses it.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        router = router.route(&route.router_path(), (route.handler)(route.method_filter()));
    }
    router
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(refuse_nul_in_path))
        // Outermost: every answer, the 404s and 405s included, has its request id and its log
        // line (a route that matched is named by its pattern, anything else "unmatched").
        .layer(middleware::from_fn_with_state(state.clone(), log_requests))
        // Bodies are read by `extract::JsonBody` and `extract::read_body`, with our limits and
        // problem answers.
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
