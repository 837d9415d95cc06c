//! The life of points from the admin's side: adjustments of a member's balance and the
//! reversal of an event's awards.

use super::events::EventPath;
use super::members::MemberPath;
use crate::error::ApiResult;
use crate::extract::{JsonBody, PathIds, ProgramAdmin, RequestBody};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use loyalty_core::ids::EventId;
use loyalty_core::ledger::LedgerEntry;
use loyalty_core::rules::Award;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AdjustmentBody {
    points: i64,
    reason: String,
    idempotency_key: Option<String>,
}

impl RequestBody for AdjustmentBody {}

/// An adjustment as answered: the entry, when it was made, and the member's balance after it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdjustmentAnswer {
    #[serde(flatten)]
    entry: LedgerEntry,
    at: DateTime<Utc>,
    balance: i64,
}

/// 201 with the new entry; 200 with the first one when its idempotency key comes again.
pub(crate) async fn adjust(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<MemberPath>,
    JsonBody(body): JsonBody<AdjustmentBody>,
) -> ApiResult<(StatusCode, Json<AdjustmentAnswer>)> {
    let done = state
        .engine
        .adjust_points(
            &program_id,
            &path.id(),
            body.points,
            &body.reason,
            body.idempotency_key.as_deref(),
        )
        .await?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let answer = AdjustmentAnswer {
        at: done.entry.created_at,
        entry: done.entry,
        balance: done.balance,
    };
    Ok((status, Json(answer)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReverseBody {
    reason: String,
    points: Option<i64>,
}

impl RequestBody for ReverseBody {}

/// What a reversal took back: in all (negative), per rule, and the member's balance after it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReversalAnswer {
    points: i64,
    reversed: Vec<Award>,
    balance: i64,
}

pub(crate) async fn reverse(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<EventPath>,
    JsonBody(body): JsonBody<ReverseBody>,
) -> ApiResult<Json<ReversalAnswer>> {
    let done = state
        .engine
        .reverse_event(
            &program_id,
            &EventId::new(path.event_id),
            body.points,
            &body.reason,
        )
        .await?;
    let reversed = done
        .entries
        .iter()
        .filter_map(|entry| {
            Some(Award {
                rule_id: entry.rule_id.clone()?,
                points: entry.points,
            })
        })
        .collect();
    Ok(Json(ReversalAnswer {
        points: done.points(),
        reversed,
        balance: done.balance,
    }))
}
