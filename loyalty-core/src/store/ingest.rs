//! What ingestion reads and commits.

use super::StoreResult;
use crate::event::{CanonicalEvent, Refund};
use crate::ids::{ConnectorId, EventId, MemberId, ProgramId};
use crate::ledger::LogEntry;
use crate::member::{Identifier, Member};
use crate::rules::{RuleSet, Usage, UsageKey};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A batch of items from one request, committed together.
#[derive(Clone, Debug)]
pub struct CommitBatch {
    pub program_id: ProgramId,
    pub connector_id: ConnectorId,
    pub test: bool,
    pub enroll_unknown_members: bool,
    pub rules: Arc<RuleSet>,
    pub received_at: DateTime<Utc>,
    pub items: Vec<PendingItem>,
}

/// One item on its way into the store: its log entry (already final if the item was rejected
/// or ignored before reaching the store) and, if it may be accepted, what the store needs.
#[derive(Clone, Debug)]
pub struct PendingItem {
    pub entry: LogEntry,
    pub candidate: Option<Candidate>,
    /// A refund to settle against its purchase (then `candidate` is `None`).
    pub refund: Option<RefundCandidate>,
}

/// A valid refund: the store finds its purchase and takes back the purchase's awards.
#[derive(Clone, Debug)]
pub struct RefundCandidate {
    pub client_event_id: String,
    pub refund: Refund,
    /// The member a profile named, if the refund has one: it must be the purchase's.
    pub identifier: Option<Identifier>,
    pub occurred_at: DateTime<Utc>,
}

/// An item that passed validation and names a member.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub identifier: Identifier,
    pub client_event_id: String,
    pub event: CanonicalEvent,
    /// When it happened (the received time if the event had no timestamp).
    pub occurred_at: DateTime<Utc>,
}

/// An accepted purchase, as a refund finds it.
#[derive(Clone, Debug, PartialEq)]
pub struct PurchaseFound {
    pub event: EventId,
    pub member: MemberId,
    /// The purchase's amount, in major units.
    pub amount: f64,
}

/// What ingestion reads before it decides, and the atomic commit of a batch.
#[async_trait]
pub trait IngestStore: Send + Sync {
    async fn find_member(
        &self,
        program: &ProgramId,
        identifier: &Identifier,
    ) -> StoreResult<Option<Member>>;
    async fn get_member(&self, program: &ProgramId, id: &MemberId) -> StoreResult<Option<Member>>;
    /// The member's usage for these keys (missing keys are zero).
    async fn usage(
        &self,
        program: &ProgramId,
        member: &MemberId,
        keys: &[UsageKey],
    ) -> StoreResult<Usage>;
    /// The accepted event holding an idempotency key, if any.
    async fn find_accepted(
        &self,
        connector: &ConnectorId,
        client_event_id: &str,
        test: bool,
    ) -> StoreResult<Option<EventId>>;

    /// Commits a batch: each item atomically, as the module documentation says. Returns the
    /// final log entries, in order.
    async fn commit(&self, batch: CommitBatch) -> StoreResult<Vec<LogEntry>>;

    /// The newest accepted purchase of the program with this `orderId`, live or test.
    async fn find_purchase(
        &self,
        program: &ProgramId,
        order_id: &str,
        test: bool,
    ) -> StoreResult<Option<PurchaseFound>>;
}
