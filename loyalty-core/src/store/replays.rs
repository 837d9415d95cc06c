//! Replay jobs: reading the log in event-time order and applying changes once.

use super::StoreResult;
use crate::ids::{ProgramId, ReplayId};
use crate::replay::{ReplayApplied, ReplayChange, ReplayReader, ReplayRecord, ReplayScope};
use async_trait::async_trait;

/// Replays: the logged items they read, the changes they apply, their job records.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// How many logged items a replay of `scope` reads.
    async fn replay_count(&self, scope: &ReplayScope) -> StoreResult<u64>;

    /// The logged items of `scope` in event-time order ([`ReplayScope::order_key`]), pages of
    /// at most `page_size`: a replay never holds the log whole.
    async fn replay_reader(
        &self,
        scope: &ReplayScope,
        page_size: usize,
    ) -> StoreResult<Box<dyn ReplayReader>>;

    /// Under the member's lock, at most once per (replay, event), also under concurrency and
    /// across processes: reverses what is left of the event's awards and awards
    /// `change.awards`, both with the replay's reason, with their usage and the balance.
    async fn apply_replay_change(&self, change: ReplayChange) -> StoreResult<ReplayApplied>;

    /// Inserts or replaces a replay job's record (by program and id).
    async fn put_replay(&self, record: &ReplayRecord) -> StoreResult<()>;
    async fn get_replay(
        &self,
        program: &ProgramId,
        id: &ReplayId,
    ) -> StoreResult<Option<ReplayRecord>>;
    /// Every program's replays still `running` (after a restart: to resume).
    async fn running_replays(&self) -> StoreResult<Vec<ReplayRecord>>;
}
