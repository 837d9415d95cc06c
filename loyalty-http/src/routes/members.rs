//! `/v1/programs/{pid}/members`: lookup by identifier, profile, activity.

use super::Items;
use crate::error::{ApiError, ApiResult};
use crate::extract::{query_value, AdminQuery, PathIds, ProgramAdmin};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use loyalty_core::engine::{MemberView, RuleAllowance};
use loyalty_core::ids::MemberId;
use loyalty_core::ledger::{ActivityItem, Page};
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct MemberPath {
    member_id: String,
}

impl MemberPath {
    pub(crate) fn id(self) -> MemberId {
        MemberId::new(self.member_id)
    }
}

pub(crate) async fn find(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    AdminQuery(pairs): AdminQuery,
) -> ApiResult<Json<MemberView>> {
    let kind = query_value(&pairs, "kind")?.unwrap_or("default");
    let value = query_value(&pairs, "value")?.ok_or_else(|| ApiError::InvalidField {
        path: "value".into(),
        message: "give the identifier as ?kind=K&value=V".into(),
    })?;
    Ok(Json(
        state
            .engine
            .find_member_view(&program_id, kind, value)
            .await?,
    ))
}

pub(crate) async fn read(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<MemberPath>,
) -> ApiResult<Json<MemberView>> {
    Ok(Json(
        state.engine.member_view(&program_id, &path.id()).await?,
    ))
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

pub(crate) async fn activity(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<MemberPath>,
    AdminQuery(pairs): AdminQuery,
) -> ApiResult<(super::events::ReadFrom, Json<Page<ActivityItem>>)> {
    let page = state
        .engine
        .member_activity(
            &program_id,
            &path.id(),
            limit_of(&pairs)?,
            query_value(&pairs, "cursor")?,
        )
        .await?;
    Ok((super::events::read_from(&state), Json(page)))
}

/// What is left of each limit of each rule for the member, now.
pub(crate) async fn allowance(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<MemberPath>,
) -> ApiResult<Json<Items<RuleAllowance>>> {
    let rules = state.engine.allowance(&program_id, &path.id()).await?;
    Ok(Json(Items::new(rules)))
}
