//! The feed of committed changes that streams and webhooks read.

use super::StoreResult;
use crate::feed::{ChangePage, FeedPosition, FeedSignal};
use crate::ids::{MemberId, ProgramId};
use async_trait::async_trait;

/// Every committed change of a program, in commit order, and a signal when there are more.
#[async_trait]
pub trait FeedStore: Send + Sync {
    /// The position of the program's newest change (0 if none): where a reader that wants
    /// only what comes next starts.
    async fn feed_head(&self, program: &ProgramId) -> StoreResult<FeedPosition>;

    /// Up to `limit` of the program's changes after position `after` (of one member if
    /// given), in position order: every committed ledger entry and logged event once, a
    /// member's in the order they were committed. Ledger changes carry the member's points
    /// just after the entry ([`crate::feed::LedgerChange::of_entry`]).
    async fn changes_after(
        &self,
        program: &ProgramId,
        after: FeedPosition,
        member: Option<&MemberId>,
        limit: usize,
    ) -> StoreResult<ChangePage>;

    /// Raised after changes are committed (by this process, and for a shared database by
    /// any process), so that feed readers can wait instead of polling.
    fn feed_signal(&self) -> FeedSignal;
}
