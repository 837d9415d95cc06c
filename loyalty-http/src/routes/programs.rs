//! `/v1/programs`: create (root), list (root), read.

use crate::error::ApiResult;
use crate::extract::{json_body, program_access, read_body, require_root};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use loyalty_core::program::ProgramSpec;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/programs", get(list).post(create))
        .route("/v1/programs/{program_id}", get(read))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    require_root(&state, &headers).await?;
    let bytes = read_body(&headers, body, state.config.max_admin_body_bytes).await?;
    let spec: ProgramSpec = json_body(&bytes)?;
    let (program, admin_token) = state.engine.create_program(spec).await?;
    let mut view = serde_json::to_value(&program).unwrap_or_default();
    view["adminToken"] = json!(admin_token);
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    require_root(&state, &headers).await?;
    let programs = state.engine.list_programs().await?;
    Ok(Json(json!({ "items": programs })))
}

async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(program_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let program = state.engine.get_program(&program_id).await?;
    Ok(Json(serde_json::to_value(&program).unwrap_or_default()))
}
