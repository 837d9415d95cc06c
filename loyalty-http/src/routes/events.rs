//! `/v1/programs/{pid}/events`: the event log.

use super::members::limit_of;
use crate::error::{ApiError, ApiResult};
use crate::extract::{admin_query_pairs, program_access, query_flag, query_value};
use crate::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use loyalty_core::ids::{ConnectorId, EventId, MemberId};
use loyalty_core::ledger::{EventFilter, ItemStatus};
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/programs/{program_id}/events", get(list))
        .route("/v1/programs/{program_id}/events/{event_id}", get(read))
}

fn time_of(pairs: &[(String, String)], name: &str) -> ApiResult<Option<DateTime<Utc>>> {
    query_value(pairs, name)?
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::InvalidField {
                    path: name.into(),
                    message: format!("{name} must be an RFC 3339 date-time"),
                })
        })
        .transpose()
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(program_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let pairs = admin_query_pairs(query.as_deref())?;
    let status = query_value(&pairs, "status")?
        .map(|s| {
            ItemStatus::parse(s).ok_or_else(|| ApiError::InvalidField {
                path: "status".into(),
                message: "status must be accepted, duplicate, ignored or rejected".into(),
            })
        })
        .transpose()?;
    let filter = EventFilter {
        connector_id: query_value(&pairs, "connectorId")?.map(ConnectorId::new),
        status,
        member_id: query_value(&pairs, "memberId")?.map(MemberId::new),
        since: time_of(&pairs, "since")?,
        until: time_of(&pairs, "until")?,
        test: query_flag(&pairs, "test")?,
    };
    let page = state
        .engine
        .list_events(
            &program_id,
            &filter,
            limit_of(&pairs)?,
            query_value(&pairs, "cursor")?,
        )
        .await?;
    Ok(Json(serde_json::to_value(page).unwrap_or_default()))
}

async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((program_id, event_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let program_id = program_access(&state, &headers, program_id).await?;
    let event = state
        .engine
        .get_event(&program_id, &EventId::new(event_id))
        .await?;
    Ok(Json(serde_json::to_value(event).unwrap_or_default()))
}
