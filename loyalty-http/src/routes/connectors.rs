//! `/v1/programs/{pid}/connectors`: CRUD, simulation, purge.

use super::Items;
use crate::error::ApiResult;
use crate::extract::{deserialize, AnyAdmin, JsonBody, PathIds, ProgramAdmin, RequestBody};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use loyalty_core::auth::GeneratedCredentials;
use loyalty_core::connector::{ConnectorSpec, ConnectorView};
use loyalty_core::engine::SimulationResponse;
use loyalty_core::ids::ConnectorId;
use loyalty_core::ledger::PurgeCounts;
use loyalty_core::templates::{ConnectorFromTemplate, TemplateView};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A connector as answered: what the engine shows of it, and the URL path senders post to
/// (an HTTP notion, so the HTTP layer's to add).
#[derive(Debug, Serialize)]
pub(crate) struct ConnectorAnswer {
    #[serde(flatten)]
    view: ConnectorView,
    endpoint: String,
}

impl From<ConnectorView> for ConnectorAnswer {
    fn from(view: ConnectorView) -> Self {
        let endpoint = format!("/v1/incoming/{}", view.id);
        Self { view, endpoint }
    }
}

#[derive(Deserialize)]
pub(crate) struct ConnectorPath {
    connector_id: String,
}

impl ConnectorPath {
    fn id(self) -> ConnectorId {
        ConnectorId::new(self.connector_id)
    }
}

/// A connector body: a whole spec, or a template's id with the fields that replace the
/// template's (told apart by `template`).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct ConnectorBody(Value);

impl RequestBody for ConnectorBody {}

pub(crate) async fn create(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    JsonBody(ConnectorBody(body)): JsonBody<ConnectorBody>,
) -> ApiResult<(StatusCode, Json<ConnectorAnswer>)> {
    let view = if body.get("template").is_some() {
        let request: ConnectorFromTemplate = deserialize(body)?;
        state
            .engine
            .create_connector_from_template(&program_id, request)
            .await?
    } else {
        let spec: ConnectorSpec = deserialize(body)?;
        state.engine.create_connector(&program_id, spec).await?
    };
    Ok((StatusCode::CREATED, Json(view.into())))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
) -> ApiResult<Json<Items<ConnectorAnswer>>> {
    let none = GeneratedCredentials::default();
    let items = state
        .engine
        .list_connectors(&program_id)
        .await?
        .iter()
        .map(|c| c.view(&none).into())
        .collect();
    Ok(Json(Items::new(items)))
}

pub(crate) async fn read(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<ConnectorPath>,
) -> ApiResult<Json<ConnectorAnswer>> {
    let connector = state.engine.get_connector(&program_id, &path.id()).await?;
    Ok(Json(
        connector.view(&GeneratedCredentials::default()).into(),
    ))
}

pub(crate) async fn replace(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<ConnectorPath>,
    JsonBody(spec): JsonBody<ConnectorSpec>,
) -> ApiResult<Json<ConnectorAnswer>> {
    let view = state
        .engine
        .replace_connector(&program_id, &path.id(), spec)
        .await?;
    Ok(Json(view.into()))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<ConnectorPath>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .delete_connector(&program_id, &path.id())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimulateBody {
    payload: Payload,
    /// A mapping to try instead of the connector's: a string when given (`null` is no mapping
    /// to try, so it is refused rather than taken for the connector's).
    #[serde(default, deserialize_with = "present_string")]
    mapping: Option<String>,
    test: Option<bool>,
}

/// What a sender may post: one event (an object) or a bulk (an array).
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "an object (one event) or an array (a bulk)")]
enum Payload {
    One(serde_json::Map<String, Value>),
    Bulk(Vec<Value>),
}

impl From<Payload> for Value {
    fn from(payload: Payload) -> Self {
        match payload {
            Payload::One(object) => Value::Object(object),
            Payload::Bulk(items) => Value::Array(items),
        }
    }
}

fn present_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    String::deserialize(deserializer).map(Some)
}

impl RequestBody for SimulateBody {
    const STORED: bool = false;
}

pub(crate) async fn simulate(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<ConnectorPath>,
    JsonBody(request): JsonBody<SimulateBody>,
) -> ApiResult<Json<SimulationResponse>> {
    let response = state
        .engine
        .simulate(
            &program_id,
            &path.id(),
            request.payload.into(),
            request.mapping.as_deref(),
            request.test,
        )
        .await?;
    Ok(Json(response))
}

pub(crate) async fn purge(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<ConnectorPath>,
) -> ApiResult<Json<PurgeCounts>> {
    let counts = state
        .engine
        .purge_test_data(&program_id, &path.id())
        .await?;
    Ok(Json(counts))
}

/// The senders' events ready to use: their mapping, auth scheme and a sample payload.
pub(crate) async fn templates(
    State(state): State<AppState>,
    AnyAdmin(_): AnyAdmin,
) -> Json<Items<TemplateView>> {
    Json(Items::new(
        state.engine.templates().iter().map(|t| t.view()).collect(),
    ))
}
