//! The decision for one item, in the one order every store and simulation follow: a key
//! already taken makes a duplicate (whoever the member is), then an unknown member is ignored
//! when the program does not enrol, else the item is accepted and the rules evaluated.
//!
//! Stores differ in how they learn the facts (a map under a lock, a read at one snapshot then
//! checked under row locks, reads without writes for simulation); what they do with the facts
//! is decided here once.

use super::{Candidate, PurchaseFound};
use crate::ids::{EventId, LedgerEntryId, MemberId, ProgramId};
use crate::ledger::{EntryKind, ItemStatus, LedgerEntry, LogEntry};
use crate::member::{Identifier, IgnoredReason, Member};
use crate::rules::{Award, Evaluation, RuleSet, Usage};
use chrono::{DateTime, Utc};

/// What holds an item's idempotency key already, if anything: an accepted event (stored, or
/// earlier in the same batch; a simulation's earlier item has no id yet), and its member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prior {
    pub event: Option<EventId>,
    pub member: Option<MemberId>,
}

/// How one item is settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The key is taken: nothing is awarded, the log entry points at the original.
    Duplicate(Prior),
    /// No member has the identifier and the program does not enrol unknown members.
    UnknownMember,
    /// Accepted: the rules are evaluated for `member`, or for a member enrolled now (`None`).
    Accept { member: Option<MemberId> },
}

/// Decides one item from what is known of its key and its identifier's member.
pub fn decide(
    prior: Option<Prior>,
    member: Option<MemberId>,
    enroll_unknown_members: bool,
) -> Decision {
    match (prior, member) {
        (Some(prior), _) => Decision::Duplicate(prior),
        (None, None) if !enroll_unknown_members => Decision::UnknownMember,
        (None, member) => Decision::Accept { member },
    }
}

/// How a refund is settled, in the one order every store and simulation follow.
#[derive(Clone, Debug, PartialEq)]
pub enum RefundDecision {
    /// The refund's own key is taken: it was settled before.
    Duplicate(Prior),
    /// No accepted purchase with its `orderId` (for the member its profile names, if any).
    UnknownOrder,
    /// Take back from this purchase's awards.
    Reverse(PurchaseFound),
}

/// Decides a refund from what holds its key, the purchase found by its `orderId`, and the
/// member its profile names (when it names one; `Some(None)`: a member nobody has).
pub fn decide_refund(
    prior: Option<Prior>,
    purchase: Option<PurchaseFound>,
    named_member: Option<Option<MemberId>>,
) -> RefundDecision {
    match (prior, purchase) {
        (Some(prior), _) => RefundDecision::Duplicate(prior),
        (None, Some(purchase))
            if named_member.is_none_or(|named| named.as_ref() == Some(&purchase.member)) =>
        {
            RefundDecision::Reverse(purchase)
        }
        (None, _) => RefundDecision::UnknownOrder,
    }
}

/// Fills an accepted refund's entry: the purchase it refers to, its member, and what it took
/// back (negative points, and per rule in `awards`).
pub fn settle_refund(entry: &mut LogEntry, purchase: &PurchaseFound, reversals: &[LedgerEntry]) {
    entry.status = ItemStatus::Accepted;
    entry.original_event_id = Some(purchase.event.clone());
    entry.member_id = Some(purchase.member.clone());
    entry.points = reversals.iter().map(|r| r.points).sum();
    entry.awards = reversals
        .iter()
        .filter_map(|r| {
            Some(Award {
                rule_id: r.rule_id.clone()?,
                points: r.points,
            })
        })
        .collect();
}

/// Marks a refund ignored: it refers to no purchase it could take from.
pub fn settle_unknown_order(entry: &mut LogEntry) {
    entry.status = ItemStatus::Ignored;
    entry.reason = Some(IgnoredReason::UnknownOrder.as_str().into());
}

/// Marks `entry` a duplicate of what holds its key.
pub fn settle_duplicate(entry: &mut LogEntry, prior: Prior) {
    entry.status = ItemStatus::Duplicate;
    entry.original_event_id = prior.event;
    entry.member_id = prior.member;
    entry.points = 0;
    entry.awards.clear();
}

/// Marks `entry` ignored: the program does not enrol unknown members.
pub fn settle_unknown_member(entry: &mut LogEntry) {
    entry.status = ItemStatus::Ignored;
    entry.reason = Some(IgnoredReason::UnknownMember.as_str().into());
}

/// Evaluates the rules for an accepted item and fills its entry; returns the evaluation
/// (whose usage increments the store adds) and the ledger entries to append.
pub fn settle_accepted(
    entry: &mut LogEntry,
    candidate: &Candidate,
    member: &MemberId,
    rules: &RuleSet,
    usage: &Usage,
) -> (Evaluation, Vec<LedgerEntry>) {
    let evaluation = rules.evaluate(&candidate.event, candidate.occurred_at, usage);
    entry.status = ItemStatus::Accepted;
    entry.member_id = Some(member.clone());
    entry.points = evaluation.points();
    entry.awards = evaluation.awards.clone();
    entry.trace = Some(evaluation.trace.clone());
    let ledger = evaluation
        .awards
        .iter()
        .map(|award| LedgerEntry {
            id: LedgerEntryId::generate(),
            program_id: entry.program_id.clone(),
            member_id: member.clone(),
            kind: EntryKind::Award,
            event_id: Some(entry.id.clone()),
            connector_id: Some(entry.connector_id.clone()),
            rule_id: Some(award.rule_id.clone()),
            points: award.points,
            reverses: None,
            reason: None,
            available_at: rules
                .pending_days(&award.rule_id)
                .map(|days| candidate.occurred_at + chrono::Duration::days(i64::from(days))),
            test: entry.test,
            created_at: entry.received_at,
            occurred_at: candidate.occurred_at,
            seq: 0,
        })
        .collect();
    (evaluation, ledger)
}

/// A member enrolled by an item.
pub fn new_member(
    program: &ProgramId,
    identifier: &Identifier,
    test: bool,
    at: DateTime<Utc>,
) -> Member {
    Member {
        id: MemberId::generate(),
        program_id: program.clone(),
        identifiers: vec![identifier.clone()],
        balance: 0,
        test,
        created_at: at,
    }
}
