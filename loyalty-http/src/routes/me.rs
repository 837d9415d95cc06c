//! `/v1/me`: whom an admin token belongs to, so that a client holding only a program's token
//! (the console, a script) can find its program without being told.

use crate::extract::{AnyAdmin, Caller};
use axum::Json;
use loyalty_core::ids::ProgramId;
use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Me {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    program_id: Option<ProgramId>,
}

pub(crate) async fn read(AnyAdmin(caller): AnyAdmin) -> Json<Me> {
    Json(match caller {
        Caller::Root => Me {
            role: "root",
            program_id: None,
        },
        Caller::Program(id) => Me {
            role: "program",
            program_id: Some(id),
        },
    })
}
