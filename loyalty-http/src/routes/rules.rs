//! `/v1/programs/{pid}/rules`: CRUD of earning rules.

use crate::error::ApiResult;
use crate::extract::{admin_query_pairs, program_access, program_access_with_body, query_value};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use loyalty_core::ids::{ConnectorId, RuleId};
use loyalty_core::rules::RuleSpec;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/programs/{program_id}/rules", get(list).post(create))
        .route(
            "/v1/programs/{program_id}/rules/{rule_id}",
            get(read).put(replace).delete(remove),
        )
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(program_id): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (program_id, spec): (_, RuleSpec) =
        program_access_with_body(&state, &headers, program_id, body).await?;
    let rule = state.engine.create_rule(&program_id, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(rule).unwrap_or_default()),
    ))
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(program_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let pairs = admin_query_pairs(query.as_deref())?;
    let connector = query_value(&pairs, "connectorId")?.map(ConnectorId::new);
    let rules = state
        .engine
        .list_rules(&program_id, connector.as_ref())
        .await?;
    Ok(Json(json!({ "items": rules })))
}

async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, rule_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let rule = state
        .engine
        .get_rule(&program_id, &RuleId::new(rule_id))
        .await?;
    Ok(Json(serde_json::to_value(rule).unwrap_or_default()))
}

async fn replace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, rule_id)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (program_id, spec): (_, RuleSpec) =
        program_access_with_body(&state, &headers, program_id, body).await?;
    let rule = state
        .engine
        .replace_rule(&program_id, &RuleId::new(rule_id), spec)
        .await?;
    Ok(Json(serde_json::to_value(rule).unwrap_or_default()))
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, rule_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let program_id = program_access(&state, &headers, program_id).await?;
    state
        .engine
        .delete_rule(&program_id, &RuleId::new(rule_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
