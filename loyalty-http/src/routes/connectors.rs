//! `/v1/programs/{pid}/connectors`: CRUD, simulation, purge.

use super::Items;
use crate::error::ApiResult;
use crate::extract::{JsonBody, PathIds, ProgramAdmin, RequestBody};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use loyalty_core::auth::GeneratedCredentials;
use loyalty_core::connector::{ConnectorSpec, ConnectorView};
use loyalty_core::engine::SimulationResponse;
use loyalty_core::ids::ConnectorId;
use loyalty_core::ledger::PurgeCounts;
use serde::Deserialize;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/programs/{program_id}/connectors",
            get(list).post(create),
        )
        .route(
            "/v1/programs/{program_id}/connectors/{connector_id}",
            get(read).put(replace).delete(remove),
        )
        .route(
            "/v1/programs/{program_id}/connectors/{connector_id}/simulate",
            post(simulate),
        )
        .route(
            "/v1/programs/{program_id}/connectors/{connector_id}/purge",
            post(purge),
        )
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

pub(crate) async fn create(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    JsonBody(spec): JsonBody<ConnectorSpec>,
) -> ApiResult<(StatusCode, Json<ConnectorView>)> {
    let view = state.engine.create_connector(&program_id, spec).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
) -> ApiResult<Json<Items<ConnectorView>>> {
    let none = GeneratedCredentials::default();
    let items = state
        .engine
        .list_connectors(&program_id)
        .await?
        .iter()
        .map(|c| c.view(&none))
        .collect();
    Ok(Json(Items::new(items)))
}

pub(crate) async fn read(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<ConnectorPath>,
) -> ApiResult<Json<ConnectorView>> {
    let connector = state.engine.get_connector(&program_id, &path.id()).await?;
    Ok(Json(connector.view(&GeneratedCredentials::default())))
}

pub(crate) async fn replace(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<ConnectorPath>,
    JsonBody(spec): JsonBody<ConnectorSpec>,
) -> ApiResult<Json<ConnectorView>> {
    let view = state
        .engine
        .replace_connector(&program_id, &path.id(), spec)
        .await?;
    Ok(Json(view))
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
    payload: Value,
    mapping: Option<String>,
    test: Option<bool>,
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
            request.payload,
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
