//! Ingestion's commit in memory: each item decided and written under the store's lock.

use crate::{MemoryStore, State};
use async_trait::async_trait;
use loyalty_core::ids::{ConnectorId, EventId, MemberId, ProgramId};
use loyalty_core::ledger::{LedgerEntry, LogEntry};
use loyalty_core::member::{Identifier, Member};
use loyalty_core::reversal::{refund_shares, reversal_entries, AwardState, ReversalCause};
use loyalty_core::rules::{apply_usage, Usage, UsageKey};
use loyalty_core::store::{
    decide, decide_refund, new_member, settle_accepted, settle_duplicate, settle_refund,
    settle_unknown_member, settle_unknown_order, CommitBatch, Decision, IngestStore, PendingItem,
    Prior, PurchaseFound, RefundCandidate, RefundDecision, StoreResult,
};
use std::sync::Arc;

impl State {
    /// One item of a batch, under the lock: decided, then written (see `IngestStore::commit`).
    fn commit_item(&mut self, batch: &CommitBatch, item: PendingItem) -> Arc<LogEntry> {
        let mut entry = item.entry;
        let mut ledger = Vec::new();
        if let Some(refund) = &item.refund {
            ledger = self.settle_refund(batch, refund, &mut entry);
        }
        if let Some(candidate) = &item.candidate {
            let key = (
                batch.connector_id.clone(),
                candidate.client_event_id.clone(),
                batch.test,
            );
            let identity = (batch.program_id.clone(), candidate.identifier.clone());
            let prior = self.accepted.get(&key).map(|(event, member)| Prior {
                event: Some(event.clone()),
                member: member.clone(),
            });
            let known = self.identifiers.get(&identity).cloned();
            match decide(prior, known, batch.enroll_unknown_members) {
                Decision::Duplicate(prior) => settle_duplicate(&mut entry, prior),
                Decision::UnknownMember => settle_unknown_member(&mut entry),
                Decision::Accept { member } => {
                    let member_id = match member {
                        Some(id) => id,
                        None => {
                            let member = new_member(
                                &batch.program_id,
                                &candidate.identifier,
                                batch.test,
                                batch.received_at,
                            );
                            let id = member.id.clone();
                            self.identifiers.insert(identity, id.clone());
                            self.members.insert(id.clone(), member);
                            id
                        }
                    };
                    let no_usage = Usage::default();
                    let usage = self.usage.get(&member_id).unwrap_or(&no_usage);
                    let (evaluation, entries_to_append) =
                        settle_accepted(&mut entry, candidate, &member_id, &batch.rules, usage);
                    if !evaluation.usage_increments.is_empty() {
                        let usage = self.usage.entry(member_id.clone()).or_default();
                        apply_usage(usage, &evaluation.usage_increments);
                    }
                    let member = self.members.get_mut(&member_id).expect("resolved above");
                    member.balance += entry.points;
                    if !batch.test {
                        member.test = false;
                    }
                    if let Some(purchase) = &candidate.event.purchase {
                        let order = (
                            batch.program_id.clone(),
                            purchase.order_id.clone(),
                            batch.test,
                        );
                        let found = PurchaseFound {
                            event: entry.id.clone(),
                            member: member_id.clone(),
                            amount: purchase.amount,
                        };
                        self.purchases.entry(order).or_default().push(found);
                    }
                    self.accepted
                        .insert(key, (entry.id.clone(), Some(member_id)));
                    ledger = entries_to_append;
                }
            }
        }
        entry.seq = self.position();
        if let Some(member) = &entry.member_id {
            let position = entry.seq;
            self.activity
                .entry(member.clone())
                .or_default()
                .push(position);
        }
        for mut line in ledger {
            line.seq = self.position();
            let position = line.seq;
            self.activity
                .entry(line.member_id.clone())
                .or_default()
                .push(position);
            self.ledger.insert(position, line);
        }
        self.event_positions.insert(entry.id.clone(), entry.seq);
        let entry = Arc::new(entry);
        self.events.insert(entry.seq, Arc::clone(&entry));
        entry
    }

    /// Decides a refund and, if it takes anything back, writes the usage and the balance;
    /// returns the reversal entries for the caller to append after the refund's own entry.
    fn settle_refund(
        &mut self,
        batch: &CommitBatch,
        refund: &RefundCandidate,
        entry: &mut LogEntry,
    ) -> Vec<LedgerEntry> {
        let key = (
            batch.connector_id.clone(),
            refund.client_event_id.clone(),
            batch.test,
        );
        let prior = self.accepted.get(&key).map(|(event, member)| Prior {
            event: Some(event.clone()),
            member: member.clone(),
        });
        let order = (
            batch.program_id.clone(),
            refund.refund.order_id.clone(),
            batch.test,
        );
        let purchase = self
            .purchases
            .get(&order)
            .and_then(|all| all.last())
            .cloned();
        let named = refund.identifier.as_ref().map(|identifier| {
            self.identifiers
                .get(&(batch.program_id.clone(), identifier.clone()))
                .cloned()
        });
        match decide_refund(prior, purchase, named) {
            RefundDecision::Duplicate(prior) => {
                settle_duplicate(entry, prior);
                Vec::new()
            }
            RefundDecision::UnknownOrder => {
                settle_unknown_order(entry);
                Vec::new()
            }
            RefundDecision::Reverse(purchase) => {
                let member = purchase.member.clone();
                let awards = AwardState::of_event(&self.member_entries(&member), &purchase.event);
                let shares = refund_shares(&awards, purchase.amount, refund.refund.amount);
                let cause = ReversalCause {
                    event: Some(entry.id.clone()),
                    connector: Some(batch.connector_id.clone()),
                    reason: refund.refund.reason.clone(),
                };
                let (reversals, freed) = reversal_entries(
                    &batch.program_id,
                    &awards,
                    &shares,
                    &cause,
                    batch.received_at,
                );
                settle_refund(entry, &purchase, &reversals);
                apply_usage(self.usage.entry(member.clone()).or_default(), &freed);
                if let Some(stored) = self.members.get_mut(&member) {
                    stored.balance += entry.points;
                }
                self.accepted.insert(key, (entry.id.clone(), Some(member)));
                reversals
            }
        }
    }
}

#[async_trait]
impl IngestStore for MemoryStore {
    async fn find_member(
        &self,
        program: &ProgramId,
        identifier: &Identifier,
    ) -> StoreResult<Option<Member>> {
        let state = self.lock();
        Ok(state
            .identifiers
            .get(&(program.clone(), identifier.clone()))
            .and_then(|id| state.members.get(id))
            .cloned())
    }

    async fn get_member(&self, program: &ProgramId, id: &MemberId) -> StoreResult<Option<Member>> {
        Ok(self
            .lock()
            .members
            .get(id)
            .filter(|m| m.program_id == *program)
            .cloned())
    }

    async fn usage(
        &self,
        program: &ProgramId,
        member: &MemberId,
        keys: &[UsageKey],
    ) -> StoreResult<Usage> {
        let state = self.lock();
        if state
            .members
            .get(member)
            .is_none_or(|m| m.program_id != *program)
        {
            return Ok(Usage::default());
        }
        Ok(state.member_usage(member, keys))
    }

    async fn find_accepted(
        &self,
        connector: &ConnectorId,
        client_event_id: &str,
        test: bool,
    ) -> StoreResult<Option<EventId>> {
        Ok(self
            .lock()
            .accepted
            .get(&(connector.clone(), client_event_id.to_owned(), test))
            .map(|(id, _)| id.clone()))
    }

    async fn commit(&self, mut batch: CommitBatch) -> StoreResult<Vec<LogEntry>> {
        let items = std::mem::take(&mut batch.items);
        let mut stored = Vec::with_capacity(items.len());
        {
            let mut state = self.lock();
            for item in items {
                stored.push(state.commit_item(&batch, item));
            }
        }
        self.feed.notify();
        // Copied for the caller outside the lock: the other requests' commits need not wait
        // for it.
        Ok(stored.iter().map(|entry| LogEntry::clone(entry)).collect())
    }

    async fn find_purchase(
        &self,
        program: &ProgramId,
        order_id: &str,
        test: bool,
    ) -> StoreResult<Option<PurchaseFound>> {
        let order = (program.clone(), order_id.to_owned(), test);
        Ok(self
            .lock()
            .purchases
            .get(&order)
            .and_then(|all| all.last())
            .cloned())
    }
}
