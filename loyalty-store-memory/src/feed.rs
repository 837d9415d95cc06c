//! The feed in memory: the log itself, read by position.

use crate::{HashMap, MemoryStore, State};
use async_trait::async_trait;
use loyalty_core::feed::{
    Change, ChangeBody, ChangePage, FeedPosition, FeedSignal, LedgerChange, LoggedEvent,
};
use loyalty_core::ids::{MemberId, ProgramId};
use loyalty_core::store::{FeedStore, StoreResult};
use std::sync::Arc;

impl State {
    /// The feed after `after`: the log's events and ledger entries of the program (or of the
    /// member) by position, each ledger entry with the member's points just after it.
    fn changes_after(
        &self,
        program: &ProgramId,
        after: FeedPosition,
        member: Option<&MemberId>,
        limit: usize,
    ) -> Vec<Change> {
        let positions: Vec<i64> = match member {
            Some(member) => {
                let ours = self
                    .members
                    .get(member)
                    .is_some_and(|m| m.program_id == *program);
                let positions = self.activity.get(member).filter(|_| ours);
                positions.map_or_else(Vec::new, |positions| {
                    let start = positions.partition_point(|p| *p <= after);
                    positions[start..].iter().take(limit).copied().collect()
                })
            }
            None => {
                let mut events = self
                    .events
                    .range(after + 1..)
                    .filter(|(_, e)| e.program_id == *program)
                    .map(|(p, _)| *p)
                    .peekable();
                let mut ledger = self
                    .ledger
                    .range(after + 1..)
                    .filter(|(_, l)| l.program_id == *program)
                    .map(|(p, _)| *p)
                    .peekable();
                let mut merged = Vec::new();
                while merged.len() < limit {
                    let next = match (events.peek(), ledger.peek()) {
                        (Some(e), Some(l)) if e < l => events.next(),
                        (Some(_), Some(_)) | (None, Some(_)) => ledger.next(),
                        (Some(_), None) => events.next(),
                        (None, None) => None,
                    };
                    let Some(next) = next else { break };
                    merged.push(next);
                }
                merged
            }
        };
        let expiry = self.programs.get(program).and_then(|p| p.points_expiry);
        // Each member's ledger positions on the page, in order; each member's ledger is then
        // read once for all of them.
        let mut wanted: HashMap<&MemberId, Vec<i64>> = HashMap::default();
        for position in &positions {
            if let Some(line) = self.ledger.get(position) {
                wanted.entry(&line.member_id).or_default().push(*position);
            }
        }
        let mut ledger_changes: HashMap<i64, LedgerChange> = HashMap::default();
        for (member, wanted) in wanted {
            let ledger = self
                .activity
                .get(member)
                .into_iter()
                .flatten()
                .filter_map(|p| self.ledger.get(p));
            ledger_changes.extend(LedgerChange::of_entries(ledger, &wanted, expiry));
        }
        let mut changes = Vec::with_capacity(positions.len());
        for position in positions {
            let (test, body) = if let Some(event) = self.events.get(&position) {
                (
                    event.test,
                    ChangeBody::Event(LoggedEvent(Arc::clone(event))),
                )
            } else if let Some(change) = ledger_changes.remove(&position) {
                (change.entry.test, ChangeBody::Ledger(Arc::new(change)))
            } else {
                continue;
            };
            changes.push(Change {
                position,
                program_id: program.clone(),
                test,
                body,
            });
        }
        changes
    }
}

#[async_trait]
impl FeedStore for MemoryStore {
    async fn feed_head(&self, _program: &ProgramId) -> StoreResult<FeedPosition> {
        // Positions are shared by all programs: the last one handed out is a valid head.
        Ok(self.lock().next_position)
    }

    async fn changes_after(
        &self,
        program: &ProgramId,
        after: FeedPosition,
        member: Option<&MemberId>,
        limit: usize,
    ) -> StoreResult<ChangePage> {
        let state = self.lock();
        // A cursor this store never handed out (past the head) is as good as lost.
        let missed = after > state.next_position;
        let after = after.min(state.next_position);
        Ok(ChangePage {
            changes: state.changes_after(program, after, member, limit),
            missed,
        })
    }

    fn feed_signal(&self) -> FeedSignal {
        self.feed.clone()
    }
}
