//! The dispatcher: turns the change feed into deliveries.

use super::Engine;
use crate::error::Result;
use crate::ids::ProgramId;

impl Engine {
    /// Where a new endpoint's dispatch starts: the program's feed head.
    pub(crate) async fn webhook_start_cursor(&self, _program: &ProgramId) -> Result<i64> {
        Ok(0)
    }
}
