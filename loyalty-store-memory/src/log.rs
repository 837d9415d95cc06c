//! The event log and ledger as admins read them, and the purge of test data.

use async_trait::async_trait;
use loyalty_core::ids::{ConnectorId, EventId, LedgerEntryId, MemberId, ProgramId};
use loyalty_core::ledger::{
    ActivityItem, ErrorGroup, EventFilter, LedgerEntry, LogEntry, Page, PageRequest, PurgeCounts,
};
use loyalty_core::reversal::usage_of;
use loyalty_core::store::{LogStore, StoreResult};
use std::collections::{BTreeSet, HashSet};

use crate::MemoryStore;

#[async_trait]
impl LogStore for MemoryStore {
    async fn list_events(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
        page: PageRequest,
    ) -> StoreResult<Page<LogEntry>> {
        let state = self.lock();
        let upper = page.before.unwrap_or(i64::MAX);
        let fetched: Vec<LogEntry> = state
            .events
            .range(..upper)
            .rev()
            .map(|(_, e)| &**e)
            .filter(|e| e.program_id == *program && filter.matches(e))
            .take(page.limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_fetched(fetched, page.limit, |e| e.seq))
    }

    async fn get_event(&self, program: &ProgramId, id: &EventId) -> StoreResult<Option<LogEntry>> {
        let state = self.lock();
        Ok(state
            .event_positions
            .get(id)
            .and_then(|p| state.events.get(p))
            .filter(|e| e.program_id == *program)
            .map(|e| LogEntry::clone(e)))
    }

    async fn member_activity(
        &self,
        program: &ProgramId,
        member: &MemberId,
        page: PageRequest,
    ) -> StoreResult<Page<ActivityItem>> {
        let state = self.lock();
        if state
            .members
            .get(member)
            .is_none_or(|m| m.program_id != *program)
        {
            return Ok(Page::from_fetched(
                Vec::new(),
                page.limit,
                |_: &ActivityItem| 0,
            ));
        }
        let upper = page.before.unwrap_or(i64::MAX);
        let fetched: Vec<ActivityItem> = state
            .activity
            .get(member)
            .map(|positions| {
                positions[..positions.partition_point(|p| *p < upper)]
                    .iter()
                    .rev()
                    .take(page.limit + 1)
                    .filter_map(|p| {
                        state
                            .events
                            .get(p)
                            .map(|e| ActivityItem::of_event(e))
                            .or_else(|| state.ledger.get(p).map(ActivityItem::of_ledger))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Page::from_fetched(fetched, page.limit, |a| a.seq))
    }

    async fn ledger_entries(
        &self,
        program: &ProgramId,
        member: &MemberId,
    ) -> StoreResult<Vec<LedgerEntry>> {
        Ok(self
            .lock()
            .ledger
            .values()
            .filter(|l| l.program_id == *program && l.member_id == *member)
            .cloned()
            .collect())
    }

    async fn purge_test_data(
        &self,
        program: &ProgramId,
        connector: &ConnectorId,
    ) -> StoreResult<PurgeCounts> {
        let mut state = self.lock();
        let state = &mut *state;
        let mut counts = PurgeCounts::default();
        let doomed: Vec<i64> = state
            .events
            .iter()
            .filter(|(_, e)| e.test && e.program_id == *program && e.connector_id == *connector)
            .map(|(p, _)| *p)
            .collect();
        let doomed_ids: std::collections::HashSet<EventId> =
            doomed.iter().map(|p| state.events[p].id.clone()).collect();
        // The entries of the doomed events (a purchase's awards, a refund's reversals), and
        // whatever reverses or expires their awards.
        let doomed_entries: HashSet<LedgerEntryId> = state
            .ledger
            .values()
            .filter(|l| l.test && l.event_id.as_ref().is_some_and(|e| doomed_ids.contains(e)))
            .map(|l| l.id.clone())
            .collect();
        let doomed_ledger: Vec<i64> = state
            .ledger
            .iter()
            .filter(|(_, l)| {
                doomed_entries.contains(&l.id)
                    || l.reverses
                        .as_ref()
                        .is_some_and(|a| doomed_entries.contains(a))
            })
            .map(|(p, _)| *p)
            .collect();
        // Members whose activity loses positions: filtered once each at the end, where
        // removing the positions one by one from the sorted lists would be quadratic.
        let mut touched = BTreeSet::new();
        let mut removed_positions = HashSet::new();
        for position in doomed_ledger {
            let line = state.ledger.remove(&position).expect("listed above");
            if let Some(member) = state.members.get_mut(&line.member_id) {
                member.balance -= line.points;
            }
            touched.insert(line.member_id.clone());
            removed_positions.insert(position);
            counts.ledger_entries += 1;
        }
        for purchases in state.purchases.values_mut() {
            purchases.retain(|purchase| !doomed_ids.contains(&purchase.event));
        }
        for position in doomed {
            let entry = state.events.remove(&position).expect("listed above");
            state.event_positions.remove(&entry.id);
            if let Some(member) = &entry.member_id {
                touched.insert(member.clone());
            }
            removed_positions.insert(position);
            if let Some(client_event_id) = &entry.client_event_id {
                let key = (connector.clone(), client_event_id.clone(), true);
                if state
                    .accepted
                    .get(&key)
                    .is_some_and(|(id, _)| *id == entry.id)
                {
                    state.accepted.remove(&key);
                }
            }
            counts.events += 1;
        }
        for member_id in touched {
            if let Some(activity) = state.activity.get_mut(&member_id) {
                activity.retain(|position| !removed_positions.contains(position));
                // What is left of the member's ledger says what is left of its usage.
                let entries: Vec<LedgerEntry> = activity
                    .iter()
                    .filter_map(|position| state.ledger.get(position).cloned())
                    .collect();
                state.usage.insert(member_id.clone(), usage_of(&entries));
            }
            let orphan = state.members.get(&member_id).is_some_and(|m| m.test)
                && state.activity.get(&member_id).is_none_or(Vec::is_empty);
            if orphan {
                let member = state.members.remove(&member_id).expect("checked above");
                for identifier in member.identifiers {
                    state
                        .identifiers
                        .remove(&(member.program_id.clone(), identifier));
                }
                state.usage.remove(&member_id);
                state.activity.remove(&member_id);
                counts.members += 1;
            }
        }
        Ok(counts)
    }

    async fn event_errors(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
    ) -> StoreResult<Vec<ErrorGroup>> {
        let state = self.lock();
        Ok(ErrorGroup::group(
            state
                .events
                .values()
                .rev()
                .map(|e| &**e)
                .filter(|e| e.program_id == *program && filter.matches(e)),
        ))
    }
}
