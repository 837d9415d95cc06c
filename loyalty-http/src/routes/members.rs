//! `/v1/programs/{pid}/members`: lookup by identifier, profile, activity.

use crate::error::{ApiError, ApiResult};
use crate::extract::{admin_query_pairs, program_access, query_value};
use crate::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use loyalty_core::ids::MemberId;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/programs/{program_id}/members", get(find))
        .route("/v1/programs/{program_id}/members/{member_id}", get(read))
        .route(
            "/v1/programs/{program_id}/members/{member_id}/activity",
            get(activity),
        )
}

async fn find(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(program_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let pairs = admin_query_pairs(query.as_deref())?;
    let kind = query_value(&pairs, "kind")?.unwrap_or("default");
    let value = query_value(&pairs, "value")?.ok_or_else(|| ApiError::InvalidField {
        path: "value".into(),
        message: "give the identifier as ?kind=K&value=V".into(),
    })?;
    let member = state.engine.find_member(&program_id, kind, value).await?;
    Ok(Json(serde_json::to_value(member).unwrap_or_default()))
}

async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, member_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let member = state
        .engine
        .get_member(&program_id, &MemberId::new(member_id))
        .await?;
    Ok(Json(serde_json::to_value(member).unwrap_or_default()))
}

pub(crate) fn limit_of(pairs: &[(String, String)]) -> ApiResult<Option<usize>> {
    query_value(pairs, "limit")?
        .map(|l| {
            l.parse::<usize>().map_err(|_| ApiError::InvalidField {
                path: "limit".into(),
                message: "limit must be a positive integer".into(),
            })
        })
        .transpose()
}

async fn activity(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, member_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let pairs = admin_query_pairs(query.as_deref())?;
    let page = state
        .engine
        .member_activity(
            &program_id,
            &MemberId::new(member_id),
            limit_of(&pairs)?,
            query_value(&pairs, "cursor")?,
        )
        .await?;
    Ok(Json(serde_json::to_value(page).unwrap_or_default()))
}
