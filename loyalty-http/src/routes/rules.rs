//! `/v1/programs/{pid}/rules`: CRUD of earning rules.

use super::Items;
use crate::error::ApiResult;
use crate::extract::{query_value, AdminQuery, JsonBody, PathIds, ProgramAdmin};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use loyalty_core::ids::{ConnectorId, RuleId};
use loyalty_core::rules::{Rule, RuleSpec};
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct RulePath {
    rule_id: String,
}

impl RulePath {
    fn id(self) -> RuleId {
        RuleId::new(self.rule_id)
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    JsonBody(spec): JsonBody<RuleSpec>,
) -> ApiResult<(StatusCode, Json<Rule>)> {
    let rule = state.engine.create_rule(&program_id, spec).await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    AdminQuery(pairs): AdminQuery,
) -> ApiResult<Json<Items<Rule>>> {
    let connector = query_value(&pairs, "connectorId")?.map(ConnectorId::new);
    let rules = state
        .engine
        .list_rules(&program_id, connector.as_ref())
        .await?;
    Ok(Json(Items::new(rules)))
}

pub(crate) async fn read(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<RulePath>,
) -> ApiResult<Json<Rule>> {
    Ok(Json(state.engine.get_rule(&program_id, &path.id()).await?))
}

pub(crate) async fn replace(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<RulePath>,
    JsonBody(spec): JsonBody<RuleSpec>,
) -> ApiResult<Json<Rule>> {
    let rule = state
        .engine
        .replace_rule(&program_id, &path.id(), spec)
        .await?;
    Ok(Json(rule))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<RulePath>,
) -> ApiResult<StatusCode> {
    state.engine.delete_rule(&program_id, &path.id()).await?;
    Ok(StatusCode::NO_CONTENT)
}
