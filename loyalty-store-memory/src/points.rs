//! Expiry, adjustments and reversals in memory.

use crate::MemoryStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loyalty_core::ids::{MemberId, ProgramId};
use loyalty_core::ledger::{EntryKind, ItemStatus, LedgerEntry};
use loyalty_core::lots::expiry_entries;
use loyalty_core::program::PointsExpiry;
use loyalty_core::reversal::{admin_shares, reversal_entries, AwardState, ReversalCause};
use loyalty_core::rules::apply_usage;
use loyalty_core::store::{
    Adjusted, Adjustment, EventReversal, PointsStore, Reversed, StoreResult,
};
use std::sync::Arc;

#[async_trait]
impl PointsStore for MemoryStore {
    async fn members_to_expire(
        &self,
        program: &ProgramId,
        cutoff: DateTime<Utc>,
    ) -> StoreResult<Vec<MemberId>> {
        let state = self.lock();
        let mut members: Vec<MemberId> = state
            .ledger
            .values()
            .filter(|l| {
                l.program_id == *program && l.kind == EntryKind::Award && l.occurred_at <= cutoff
            })
            .map(|l| l.member_id.clone())
            .collect();
        members.sort();
        members.dedup();
        Ok(members)
    }

    async fn write_expiry(
        &self,
        program: &ProgramId,
        member: &MemberId,
        now: DateTime<Utc>,
        policy: PointsExpiry,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let mut state = self.lock();
        let known = state
            .members
            .get(member)
            .is_some_and(|m| m.program_id == *program);
        if !known {
            return Ok(Vec::new());
        }
        let expired = expiry_entries(&state.member_entries(member), now, policy);
        let written: Vec<LedgerEntry> = expired.into_iter().map(|e| state.append(e)).collect();
        drop(state);
        if !written.is_empty() {
            self.feed.notify();
        }
        Ok(written)
    }

    async fn adjust(&self, adjustment: Adjustment) -> StoreResult<Adjusted> {
        let mut state = self.lock();
        let entry = adjustment.entry;
        let member_known = state
            .members
            .get(&entry.member_id)
            .is_some_and(|m| m.program_id == entry.program_id);
        if !member_known {
            return Ok(Adjusted::UnknownMember);
        }
        let key = adjustment
            .idempotency_key
            .map(|key| (entry.program_id.clone(), key));
        if let Some(position) = key.as_ref().and_then(|k| state.adjustment_keys.get(k)) {
            let first = state.ledger[position].clone();
            let same = first.member_id == entry.member_id
                && first.points == entry.points
                && first.reason == entry.reason;
            if !same {
                return Ok(Adjusted::KeyConflict);
            }
            let balance = state.balance(&first.member_id);
            return Ok(Adjusted::Existing {
                entry: first,
                balance,
            });
        }
        let entry = state.append(entry);
        if let Some(key) = key {
            state.adjustment_keys.insert(key, entry.seq);
        }
        let balance = state.balance(&entry.member_id);
        drop(state);
        self.feed.notify();
        Ok(Adjusted::Created { entry, balance })
    }

    async fn reverse_event(&self, reversal: EventReversal) -> StoreResult<Reversed> {
        let mut state = self.lock();
        let event = state
            .event_positions
            .get(&reversal.event)
            .and_then(|p| state.events.get(p))
            .filter(|e| e.program_id == reversal.program && e.status == ItemStatus::Accepted)
            .map(Arc::clone);
        let Some((event, member)) =
            event.and_then(|e| e.member_id.clone().map(|member| (e, member)))
        else {
            return Ok(Reversed::UnknownEvent);
        };
        let awards = AwardState::of_event(&state.member_entries(&member), &event.id);
        let shares = admin_shares(&awards, reversal.points);
        let cause = ReversalCause {
            event: None,
            connector: Some(event.connector_id.clone()),
            reason: Some(reversal.reason),
        };
        let (entries, freed) =
            reversal_entries(&reversal.program, &awards, &shares, &cause, reversal.at);
        if entries.is_empty() {
            return Ok(Reversed::NothingLeft);
        }
        apply_usage(state.usage.entry(member.clone()).or_default(), &freed);
        let entries: Vec<LedgerEntry> = entries.into_iter().map(|e| state.append(e)).collect();
        let balance = state.balance(&member);
        drop(state);
        self.feed.notify();
        Ok(Reversed::Done { entries, balance })
    }
}
