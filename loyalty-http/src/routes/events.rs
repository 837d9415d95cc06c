//! `/v1/programs/{pid}/events`: the event log.

use super::members::limit_of;
use super::Items;
use crate::error::{ApiError, ApiResult};
use crate::extract::{query_flag, query_value, AdminQuery, PathIds, ProgramAdmin};
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::Json;
use chrono::{DateTime, Utc};
use loyalty_core::ids::{ConnectorId, EventId, MemberId};
use loyalty_core::ledger::{ErrorGroup, EventFilter, ItemStatus, LogEntry, Page};
use serde::Deserialize;

/// Says where an admin read that may be a little stale came from: `replica` (it may lag the
/// primary by the replica's replication delay) or `primary` (current).
pub(crate) type ReadFrom = [(HeaderName, HeaderValue); 1];

pub(crate) fn read_from(state: &AppState) -> ReadFrom {
    let source = if state.config.reads_from_replica {
        "replica"
    } else {
        "primary"
    };
    [(
        HeaderName::from_static("loyalty-read-from"),
        HeaderValue::from_static(source),
    )]
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

pub(crate) async fn list(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    AdminQuery(pairs): AdminQuery,
) -> ApiResult<(ReadFrom, Json<Page<LogEntry>>)> {
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
    Ok((read_from(&state), Json(page)))
}

/// `GET …/events/errors`: the quarantine, grouped.
pub(crate) async fn errors(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    AdminQuery(pairs): AdminQuery,
) -> ApiResult<Json<Items<ErrorGroup>>> {
    let filter = EventFilter {
        connector_id: query_value(&pairs, "connectorId")?.map(ConnectorId::new),
        since: time_of(&pairs, "from")?,
        until: time_of(&pairs, "to")?,
        test: query_flag(&pairs, "test")?,
        ..Default::default()
    };
    let groups = state.engine.event_errors(&program_id, &filter).await?;
    Ok(Json(Items::new(groups)))
}

#[derive(Deserialize)]
pub(crate) struct EventPath {
    pub(crate) event_id: String,
}

pub(crate) async fn read(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<EventPath>,
) -> ApiResult<(ReadFrom, Json<LogEntry>)> {
    let event = state
        .engine
        .get_event(&program_id, &EventId::new(path.event_id))
        .await?;
    Ok((read_from(&state), Json(event)))
}
