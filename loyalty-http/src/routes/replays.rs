//! `/v1/programs/{pid}/replays`: replays and backtests of logged events, as background jobs.

use crate::error::ApiResult;
use crate::extract::{JsonBody, PathIds, ProgramAdmin, RequestBody};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use loyalty_core::ids::ReplayId;
use loyalty_core::replay::{ReplayRecord, ReplaySpec, ReplayState};
use serde::Deserialize;

impl RequestBody for ReplaySpec {}

#[derive(Deserialize)]
pub(crate) struct ReplayPath {
    replay_id: String,
}

/// A record as answered: a replay this process runs shows its live progress.
fn live(state: &AppState, mut record: ReplayRecord) -> ReplayRecord {
    if record.state == ReplayState::Running {
        if let Some(progress) = state.replays.progress(&record.id) {
            record.processed = progress.processed();
            record.total = progress.total();
        }
    }
    record
}

/// 202: the replay is recorded and runs in the background.
pub(crate) async fn create(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    JsonBody(spec): JsonBody<ReplaySpec>,
) -> ApiResult<(StatusCode, Json<ReplayRecord>)> {
    let record = state.engine.create_replay(&program_id, spec).await?;
    state.replays.start(state.engine.clone(), record.clone());
    Ok((StatusCode::ACCEPTED, Json(record)))
}

pub(crate) async fn read(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<ReplayPath>,
) -> ApiResult<Json<ReplayRecord>> {
    let record = state
        .engine
        .get_replay(&program_id, &ReplayId::new(path.replay_id))
        .await?;
    Ok(Json(live(&state, record)))
}

/// Cancels a running replay (it stops at its next page; an applied replay keeps what it
/// applied so far, each change whole); one that ended is answered as it is.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    ProgramAdmin(program_id): ProgramAdmin,
    PathIds(path): PathIds<ReplayPath>,
) -> ApiResult<Json<ReplayRecord>> {
    let id = ReplayId::new(path.replay_id);
    let record = state.engine.cancel_replay(&program_id, &id).await?;
    if let Some(progress) = state.replays.progress(&id) {
        progress.cancel();
    }
    Ok(Json(live(&state, record)))
}
