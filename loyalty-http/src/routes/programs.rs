//! `/v1/programs`: create (root), list (root), read.

use super::Items;
use crate::error::ApiResult;
use crate::extract::{JsonBody, ProgramAdmin, RootAdmin};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use loyalty_core::program::{Program, ProgramSpec};
use serde::Serialize;

/// A program just created: the only answer that shows its admin token.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProgramCreated {
    #[serde(flatten)]
    program: Program,
    admin_token: String,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    _: RootAdmin,
    JsonBody(spec): JsonBody<ProgramSpec>,
) -> ApiResult<(StatusCode, Json<ProgramCreated>)> {
    let (program, admin_token) = state.engine.create_program(spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(ProgramCreated {
            program,
            admin_token,
        }),
    ))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    _: RootAdmin,
) -> ApiResult<Json<Items<Program>>> {
    let programs = state.engine.list_programs().await?;
    Ok(Json(Items::new(programs)))
}

pub(crate) async fn read(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
) -> ApiResult<Json<Program>> {
    Ok(Json(state.engine.get_program(&program_id).await?))
}
