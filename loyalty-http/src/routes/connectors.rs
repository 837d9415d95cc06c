//! `/v1/programs/{pid}/connectors`: CRUD, simulation, purge.

use crate::error::ApiResult;
use crate::extract::{
    program_access, program_access_with_body, program_access_with_transient_body,
};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use loyalty_core::auth::GeneratedCredentials;
use loyalty_core::connector::ConnectorSpec;
use loyalty_core::ids::ConnectorId;
use serde::Deserialize;
use serde_json::{json, Value};

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

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(program_id): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (program_id, spec): (_, ConnectorSpec) =
        program_access_with_body(&state, &headers, program_id, body).await?;
    let view = state.engine.create_connector(&program_id, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(view).unwrap_or_default()),
    ))
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(program_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let none = GeneratedCredentials::default();
    let items: Vec<_> = state
        .engine
        .list_connectors(&program_id)
        .await?
        .iter()
        .map(|c| c.view(&none))
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, connector_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let connector = state
        .engine
        .get_connector(&program_id, &ConnectorId::new(connector_id))
        .await?;
    Ok(Json(
        serde_json::to_value(connector.view(&GeneratedCredentials::default())).unwrap_or_default(),
    ))
}

async fn replace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, connector_id)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (program_id, spec): (_, ConnectorSpec) =
        program_access_with_body(&state, &headers, program_id, body).await?;
    let view = state
        .engine
        .replace_connector(&program_id, &ConnectorId::new(connector_id), spec)
        .await?;
    Ok(Json(serde_json::to_value(view).unwrap_or_default()))
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, connector_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let program_id = program_access(&state, &headers, program_id).await?;
    state
        .engine
        .delete_connector(&program_id, &ConnectorId::new(connector_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateBody {
    payload: Value,
    mapping: Option<String>,
    test: Option<bool>,
}

async fn simulate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, connector_id)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (program_id, request): (_, SimulateBody) =
        program_access_with_transient_body(&state, &headers, program_id, body).await?;
    let response = state
        .engine
        .simulate(
            &program_id,
            &ConnectorId::new(connector_id),
            request.payload,
            request.mapping.as_deref(),
            request.test,
        )
        .await?;
    Ok(Json(serde_json::to_value(response).unwrap_or_default()))
}

async fn purge(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, connector_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let counts = state
        .engine
        .purge_test_data(&program_id, &ConnectorId::new(connector_id))
        .await?;
    Ok(Json(serde_json::to_value(counts).unwrap_or_default()))
}
