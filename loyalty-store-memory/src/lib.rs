//! The in-memory store of the loyalty engine.
//!
//! All state sits behind one mutex, and [`Store::commit`] holds it for a whole batch: every
//! item is atomic and isolated by construction, which makes this store the reference the
//! PostgreSQL store is checked against (both pass `loyalty_core::testing`). Nothing survives a
//! restart.
//!
//! The change feed is the log itself: a change's position is its `seq` (one counter for
//! events and ledger entries, handed out under the lock, so in commit order), and the feed
//! keeps everything the log keeps (the process's life; a purge of test data removes its
//! changes from the feed as from the log).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loyalty_core::connector::Connector;
use loyalty_core::feed::{
    Change, ChangeBody, ChangePage, FeedPosition, FeedSignal, LedgerChange, LoggedEvent,
};
use loyalty_core::ids::{
    ConnectorId, EventId, LedgerEntryId, MemberId, MessageId, ProgramId, ReplayId, RuleId,
    WebhookId,
};
use loyalty_core::ledger::{
    ActivityItem, EntryKind, ErrorGroup, EventFilter, ItemStatus, LedgerEntry, LogEntry, Page,
    PageRequest, PurgeCounts,
};
use loyalty_core::lots::expiry_entries;
use loyalty_core::member::{Identifier, Member};
use loyalty_core::program::{PointsExpiry, Program};
use loyalty_core::replay::{
    ChangeEntries, ReplayApplied, ReplayChange, ReplayReader, ReplayRecord, ReplayScope,
    ReplayState,
};
use loyalty_core::reversal::{
    admin_shares, refund_shares, reversal_entries, usage_of, AwardState, ReversalCause,
};
use loyalty_core::rules::{apply_usage, Rule, Usage, UsageKey};
use loyalty_core::store::{
    decide, decide_refund, new_member, settle_accepted, settle_duplicate, settle_refund,
    settle_unknown_member, settle_unknown_order, Adjusted, Adjustment, CommitBatch, Decision,
    EventReversal, PendingItem, Prior, PurchaseFound, RefundCandidate, RefundDecision, Reversed,
    Store, StoreResult,
};
use loyalty_core::webhooks::{
    Attempt, ClaimedDelivery, Delivery, DeliveryState, NewDelivery, Webhook,
};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

/// foldhash, not SipHash: the maps are hashed several times for every event under the store's
/// lock. foldhash seeds every map at random, so keys a sender chooses (event ids) cannot be
/// made to collide on purpose.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use sharded::ShardedMap;
// parking_lot's mutex spins briefly before it sleeps: the commits hold it for microseconds,
// and std's went to the kernel (futex wait and wake) on most contended acquisitions.
use parking_lot::{Mutex, MutexGuard};

mod sharded;
mod webhooks;

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    webhooks: Mutex<webhooks::WebhookState>,
    /// Raised after every write, once the lock is released.
    feed: FeedSignal,
}

#[derive(Debug, Default)]
struct State {
    programs: BTreeMap<ProgramId, Program>,
    connectors: HashMap<ConnectorId, Connector>,
    rules: HashMap<RuleId, Rule>,
    members: HashMap<MemberId, Member>,
    identifiers: HashMap<(ProgramId, Identifier), MemberId>,
    /// Per member, then per (rule, period): the rules read a member's map as it is, no copy.
    usage: HashMap<MemberId, Usage>,
    /// The event log by position. Behind a pointer: a B-tree appended to at its right end
    /// leaves its nodes about half full, and a `LogEntry` is a few hundred bytes, so inline
    /// entries would keep about as much empty node space as entries. Shared, so that a commit
    /// copies its entries for the caller after it has let go of the lock.
    events: BTreeMap<i64, Arc<LogEntry>>,
    /// Sharded, as `accepted`: both grow with every event.
    event_positions: ShardedMap<EventId, i64>,
    ledger: BTreeMap<i64, LedgerEntry>,
    /// A member's events and ledger entries: positions in increasing order, as a commit hands
    /// them out in increasing order (a push, where a B-tree searched and split).
    activity: HashMap<MemberId, Vec<i64>>,
    /// The idempotency keys: (connector, clientEventId, test) → the accepted event.
    accepted: ShardedMap<(ConnectorId, String, bool), (EventId, Option<MemberId>)>,
    /// The accepted purchases of each order, oldest first: (program, orderId, test) → them.
    purchases: HashMap<(ProgramId, String, bool), Vec<PurchaseFound>>,
    /// Adjustments' idempotency keys: (program, key) → the adjustment's position.
    adjustment_keys: HashMap<(ProgramId, String), i64>,
    /// The accepted events each replay changed: (program, replay, event).
    replay_changes: HashSet<(ProgramId, ReplayId, EventId)>,
    replays: HashMap<(ProgramId, ReplayId), ReplayRecord>,
    next_position: i64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No poisoning: a panic while holding the lock cannot leave a half-written item, as
        // every commit writes after all its decisions are made.
        self.state.lock()
    }
}

impl State {
    fn position(&mut self) -> i64 {
        self.next_position += 1;
        self.next_position
    }

    /// One item of a batch, under the lock: decided, then written (see `Store::commit`).
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

    /// Appends a ledger entry (not an award: those come with their event) to the ledger, the
    /// member's activity and balance.
    fn append(&mut self, mut entry: LedgerEntry) -> LedgerEntry {
        entry.seq = self.position();
        self.activity
            .entry(entry.member_id.clone())
            .or_default()
            .push(entry.seq);
        if let Some(member) = self.members.get_mut(&entry.member_id) {
            member.balance += entry.points;
        }
        self.ledger.insert(entry.seq, entry.clone());
        entry
    }

    fn member_entries(&self, member: &MemberId) -> Vec<LedgerEntry> {
        self.activity
            .get(member)
            .map_or_else(Vec::new, |positions| {
                positions
                    .iter()
                    .filter_map(|p| self.ledger.get(p).cloned())
                    .collect()
            })
    }

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

    fn balance(&self, member: &MemberId) -> i64 {
        self.members.get(member).map_or(0, |m| m.balance)
    }

    fn member_usage(&self, member: &MemberId, keys: &[UsageKey]) -> Usage {
        let Some(usage) = self.usage.get(member) else {
            return Usage::default();
        };
        keys.iter()
            .filter_map(|key| usage.get(key).map(|count| (key.clone(), *count)))
            .collect()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert_program(&self, program: &Program) -> StoreResult<()> {
        self.lock()
            .programs
            .insert(program.id.clone(), program.clone());
        Ok(())
    }

    async fn get_program(&self, id: &ProgramId) -> StoreResult<Option<Program>> {
        Ok(self.lock().programs.get(id).cloned())
    }

    async fn list_programs(&self) -> StoreResult<Vec<Program>> {
        let mut programs: Vec<Program> = self.lock().programs.values().cloned().collect();
        programs.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(programs)
    }

    async fn put_connector(&self, connector: &Connector) -> StoreResult<()> {
        self.lock()
            .connectors
            .insert(connector.id.clone(), connector.clone());
        Ok(())
    }

    async fn get_connector(&self, id: &ConnectorId) -> StoreResult<Option<Connector>> {
        Ok(self.lock().connectors.get(id).cloned())
    }

    async fn list_connectors(&self, program: &ProgramId) -> StoreResult<Vec<Connector>> {
        let mut connectors: Vec<Connector> = self
            .lock()
            .connectors
            .values()
            .filter(|c| c.program_id == *program && !c.deleted)
            .cloned()
            .collect();
        connectors.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(connectors)
    }

    async fn put_rule(&self, rule: &Rule) -> StoreResult<()> {
        self.lock().rules.insert(rule.id.clone(), rule.clone());
        Ok(())
    }

    async fn get_rule(&self, program: &ProgramId, id: &RuleId) -> StoreResult<Option<Rule>> {
        Ok(self
            .lock()
            .rules
            .get(id)
            .filter(|r| r.program_id == *program)
            .cloned())
    }

    async fn list_rules(
        &self,
        program: &ProgramId,
        connector: Option<&ConnectorId>,
    ) -> StoreResult<Vec<Rule>> {
        let mut rules: Vec<Rule> = self
            .lock()
            .rules
            .values()
            .filter(|r| r.program_id == *program && connector.is_none_or(|c| *c == r.connector_id))
            .cloned()
            .collect();
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rules)
    }

    async fn delete_rule(&self, program: &ProgramId, id: &RuleId) -> StoreResult<bool> {
        let mut state = self.lock();
        if state
            .rules
            .get(id)
            .is_some_and(|r| r.program_id == *program)
        {
            state.rules.remove(id);
            Ok(true)
        } else {
            Ok(false)
        }
    }

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

    async fn put_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        self.webhooks.lock().put_webhook(webhook);
        Ok(())
    }

    async fn get_webhook(
        &self,
        program: &ProgramId,
        id: &WebhookId,
    ) -> StoreResult<Option<Webhook>> {
        Ok(self.webhooks.lock().get_webhook(program, id))
    }

    async fn list_webhooks(&self, program: Option<&ProgramId>) -> StoreResult<Vec<Webhook>> {
        Ok(self.webhooks.lock().list_webhooks(program))
    }

    async fn delete_webhook(&self, program: &ProgramId, id: &WebhookId) -> StoreResult<bool> {
        Ok(self.webhooks.lock().delete_webhook(program, id))
    }

    async fn enqueue_deliveries(
        &self,
        webhook: &WebhookId,
        cursor: Option<(i64, i64)>,
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool> {
        Ok(self.webhooks.lock().enqueue(webhook, cursor, deliveries))
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        Ok(self.webhooks.lock().claim(now, lease_until, limit))
    }

    async fn record_attempt(
        &self,
        delivery: &MessageId,
        lease: &str,
        attempt: &Attempt,
        state: DeliveryState,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        Ok(self
            .webhooks
            .lock()
            .record(delivery, lease, attempt, state, next_attempt_at))
    }

    async fn list_deliveries(
        &self,
        program: &ProgramId,
        webhook: &WebhookId,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        Ok(self.webhooks.lock().list(program, webhook, page))
    }

    async fn retry_delivery(
        &self,
        program: &ProgramId,
        webhook: &WebhookId,
        id: &MessageId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Delivery>> {
        Ok(self.webhooks.lock().retry(program, webhook, id, now))
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
