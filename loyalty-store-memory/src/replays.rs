//! Replays in memory: their items in event-time order, their changes applied once.

use crate::MemoryStore;
use async_trait::async_trait;
use loyalty_core::ids::{ProgramId, ReplayId};
use loyalty_core::ledger::{ItemStatus, LogEntry};
use loyalty_core::replay::{
    ChangeEntries, ReplayApplied, ReplayChange, ReplayReader, ReplayRecord, ReplayScope,
    ReplayState,
};
use loyalty_core::reversal::AwardState;
use loyalty_core::rules::apply_usage;
use loyalty_core::store::{ReplayStore, StoreResult};
use std::sync::Arc;

#[async_trait]
impl ReplayStore for MemoryStore {
    async fn replay_count(&self, scope: &ReplayScope) -> StoreResult<u64> {
        let state = self.lock();
        Ok(state.events.values().filter(|e| scope.matches(e)).count() as u64)
    }

    async fn replay_reader(
        &self,
        scope: &ReplayScope,
        page_size: usize,
    ) -> StoreResult<Box<dyn ReplayReader>> {
        // The log is in memory already: the reader holds shared pointers to its items, in
        // order.
        let mut items: Vec<Arc<LogEntry>> = {
            let state = self.lock();
            state
                .events
                .values()
                .filter(|e| scope.matches(e))
                .map(Arc::clone)
                .collect()
        };
        items.sort_by_key(|e| ReplayScope::order_key(e));
        Ok(Box::new(MemoryReplayReader {
            items: items.into_iter(),
            page_size: page_size.max(1),
        }))
    }

    async fn apply_replay_change(&self, change: ReplayChange) -> StoreResult<ReplayApplied> {
        let mut state = self.lock();
        let event = state
            .event_positions
            .get(&change.event)
            .and_then(|p| state.events.get(p))
            .filter(|e| {
                e.program_id == change.program
                    && e.status == ItemStatus::Accepted
                    && e.member_id.as_ref() == Some(&change.member)
            })
            .map(Arc::clone);
        let Some(event) = event else {
            return Ok(ReplayApplied::UnknownEvent);
        };
        let key = (
            change.program.clone(),
            change.replay.clone(),
            change.event.clone(),
        );
        if !state.replay_changes.insert(key) {
            return Ok(ReplayApplied::AlreadyApplied);
        }
        let awards = AwardState::of_event(&state.member_entries(&change.member), &event.id);
        let entries = ChangeEntries::of(&change, &event.connector_id, &awards);
        let usage = state.usage.entry(change.member.clone()).or_default();
        apply_usage(usage, &entries.freed);
        apply_usage(usage, &entries.added);
        let points = entries.points();
        for entry in entries.reversals.into_iter().chain(entries.awards) {
            state.append(entry);
        }
        Ok(ReplayApplied::Done { points })
    }

    async fn put_replay(&self, record: &ReplayRecord) -> StoreResult<()> {
        self.lock().replays.insert(
            (record.program_id.clone(), record.id.clone()),
            record.clone(),
        );
        Ok(())
    }

    async fn get_replay(
        &self,
        program: &ProgramId,
        id: &ReplayId,
    ) -> StoreResult<Option<ReplayRecord>> {
        Ok(self
            .lock()
            .replays
            .get(&(program.clone(), id.clone()))
            .cloned())
    }

    async fn running_replays(&self) -> StoreResult<Vec<ReplayRecord>> {
        Ok(self
            .lock()
            .replays
            .values()
            .filter(|r| r.state == ReplayState::Running)
            .cloned()
            .collect())
    }
}

/// A replay's items, in order, a page at a time.
struct MemoryReplayReader {
    items: std::vec::IntoIter<Arc<LogEntry>>,
    page_size: usize,
}

#[async_trait]
impl ReplayReader for MemoryReplayReader {
    async fn next_page(&mut self) -> StoreResult<Vec<LogEntry>> {
        Ok(self
            .items
            .by_ref()
            .take(self.page_size)
            .map(|e| LogEntry::clone(&e))
            .collect())
    }
}
