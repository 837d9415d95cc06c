//! The storage contract. Every store (memory, PostgreSQL) implements [`Store`] and passes the
//! same conformance suite (`loyalty_core::testing`, feature `testing`).
//!
//! The engine does everything that needs no shared state (authentication, mapping, validation,
//! identifier normalisation) before it calls [`Store::commit`]. A store then, for each item
//! and atomically with respect to every other commit, from this process or another:
//! 1. looks up the idempotency key `(connector, clientEventId, test)`: taken means `duplicate`;
//! 2. finds or enrols the member (or ignores the item with `unknown_member`);
//! 3. reads the member's usage for the keys the rules name, calls [`RuleSet::evaluate`] (pure),
//!    and writes the log entry, the ledger entries, the usage and the balance.
//!
//! [`decide`] holds that order and [`settle_accepted`] and friends what each outcome writes into
//! the log entry, so that stores (and simulation) only look things up and store.

use crate::connector::Connector;
use crate::error::StoreError;
use crate::event::{CanonicalEvent, Refund};
use crate::feed::{ChangePage, FeedPosition, FeedSignal};
use crate::ids::{
    ConnectorId, EventId, MemberId, MessageId, ProgramId, ReplayId, RuleId, WebhookId,
};
use crate::ledger::{
    ActivityItem, ErrorGroup, EventFilter, LedgerEntry, LogEntry, Page, PageRequest, PurgeCounts,
};
use crate::member::{Identifier, Member};
use crate::program::{PointsExpiry, Program};
use crate::replay::{ReplayApplied, ReplayChange, ReplayReader, ReplayRecord, ReplayScope};
use crate::rules::{Rule, RuleSet, Usage, UsageKey};
use crate::webhooks::{Attempt, ClaimedDelivery, Delivery, DeliveryState, NewDelivery, Webhook};
use async_trait::async_trait;

mod decision;
use chrono::{DateTime, Utc};
pub use decision::{
    decide, decide_refund, new_member, settle_accepted, settle_duplicate, settle_refund,
    settle_unknown_member, settle_unknown_order, Decision, Prior, RefundDecision,
};
use std::fmt::Debug;
use std::sync::Arc;

pub type StoreResult<T> = Result<T, StoreError>;

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

/// An admin's adjustment, ready to store: its entry (kind `adjustment`, its points and reason)
/// and the key that makes sending it again harmless.
#[derive(Clone, Debug)]
pub struct Adjustment {
    pub entry: LedgerEntry,
    pub idempotency_key: Option<String>,
}

/// What storing an adjustment did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adjusted {
    /// Stored; the member's balance after it.
    Created {
        entry: LedgerEntry,
        balance: i64,
    },
    /// The key was used before by this very adjustment (same member, points and reason): the
    /// stored entry, unchanged.
    Existing {
        entry: LedgerEntry,
        balance: i64,
    },
    /// The key was used before by another adjustment.
    KeyConflict,
    UnknownMember,
}

/// An admin's reversal of an event's awards.
#[derive(Clone, Debug)]
pub struct EventReversal {
    pub program: ProgramId,
    pub event: EventId,
    /// All that is left when `None`.
    pub points: Option<i64>,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// What a reversal did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reversed {
    /// The `reversal` entries written (one per award that gave some back) and the member's
    /// balance after them.
    Done {
        entries: Vec<LedgerEntry>,
        balance: i64,
    },
    /// The event's awards have nothing left to give back (or it awarded nothing).
    NothingLeft,
    /// No accepted event with this id in the program.
    UnknownEvent,
}

/// An accepted purchase, as a refund finds it.
#[derive(Clone, Debug, PartialEq)]
pub struct PurchaseFound {
    pub event: EventId,
    pub member: MemberId,
    /// The purchase's amount, in major units.
    pub amount: f64,
}

/// The storage behind the engine.
#[async_trait]
pub trait Store: Send + Sync + Debug {
    async fn insert_program(&self, program: &Program) -> StoreResult<()>;
    async fn get_program(&self, id: &ProgramId) -> StoreResult<Option<Program>>;
    async fn list_programs(&self) -> StoreResult<Vec<Program>>;

    /// Inserts or replaces (by id).
    async fn put_connector(&self, connector: &Connector) -> StoreResult<()>;
    /// Any connector by id, deleted ones included (the caller checks the program).
    async fn get_connector(&self, id: &ConnectorId) -> StoreResult<Option<Connector>>;
    /// The program's connectors that are not deleted, oldest first.
    async fn list_connectors(&self, program: &ProgramId) -> StoreResult<Vec<Connector>>;

    /// Inserts or replaces (by id).
    async fn put_rule(&self, rule: &Rule) -> StoreResult<()>;
    async fn get_rule(&self, program: &ProgramId, id: &RuleId) -> StoreResult<Option<Rule>>;
    /// The program's rules, of one connector if given, oldest first.
    async fn list_rules(
        &self,
        program: &ProgramId,
        connector: Option<&ConnectorId>,
    ) -> StoreResult<Vec<Rule>>;
    async fn delete_rule(&self, program: &ProgramId, id: &RuleId) -> StoreResult<bool>;

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

    /// Members of the program who may have points past their expiry: at least every member
    /// with an award that happened at or before `cutoff` and still has points left.
    async fn members_to_expire(
        &self,
        program: &ProgramId,
        cutoff: DateTime<Utc>,
    ) -> StoreResult<Vec<MemberId>>;

    /// Under the member's lock: reads its ledger, and writes an `expiry` entry for each lot
    /// [`crate::lots::points_view`] says has expired at `now` (at most one per award, also
    /// when several processes sweep at once). Returns the entries written.
    async fn write_expiry(
        &self,
        program: &ProgramId,
        member: &MemberId,
        now: DateTime<Utc>,
        policy: PointsExpiry,
    ) -> StoreResult<Vec<LedgerEntry>>;

    /// Stores an adjustment, atomically with the member's balance; an idempotency key is
    /// claimed at most once per program, also under concurrency.
    async fn adjust(&self, adjustment: Adjustment) -> StoreResult<Adjusted>;

    /// Reverses an accepted event's awards as [`crate::reversal::admin_shares`] says, on what
    /// is left of them at that moment (concurrent reversals never take more than was given),
    /// freeing the usage [`crate::reversal::usage_freed`] says.
    async fn reverse_event(&self, reversal: EventReversal) -> StoreResult<Reversed>;

    async fn list_events(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
        page: PageRequest,
    ) -> StoreResult<Page<LogEntry>>;
    async fn get_event(&self, program: &ProgramId, id: &EventId) -> StoreResult<Option<LogEntry>>;
    async fn member_activity(
        &self,
        program: &ProgramId,
        member: &MemberId,
        page: PageRequest,
    ) -> StoreResult<Page<ActivityItem>>;
    async fn ledger_entries(
        &self,
        program: &ProgramId,
        member: &MemberId,
    ) -> StoreResult<Vec<LedgerEntry>>;

    /// Deletes the connector's test events, their ledger entries and usage, and the test
    /// members left with no events; balances become as if the test events never happened.
    async fn purge_test_data(
        &self,
        program: &ProgramId,
        connector: &ConnectorId,
    ) -> StoreResult<PurgeCounts>;

    /// The rejected and ignored items the filter keeps (its connector, time and test flag;
    /// not its status or member), grouped as [`ErrorGroup::group`] says, largest first.
    async fn event_errors(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
    ) -> StoreResult<Vec<ErrorGroup>>;

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

    // ---- outbound webhooks ------------------------------------------------------------------

    /// Inserts an endpoint, or replaces its URL, events and secrets (by id). Its dispatch
    /// cursor is written only on insert: afterwards only [`Store::enqueue_deliveries`] moves it.
    async fn put_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    async fn get_webhook(
        &self,
        program: &ProgramId,
        id: &WebhookId,
    ) -> StoreResult<Option<Webhook>>;
    /// The program's endpoints (every program's when `None`), oldest first.
    async fn list_webhooks(&self, program: Option<&ProgramId>) -> StoreResult<Vec<Webhook>>;
    /// Deletes the endpoint and its deliveries.
    async fn delete_webhook(&self, program: &ProgramId, id: &WebhookId) -> StoreResult<bool>;

    /// Stores deliveries, each `pending` and due at once (one whose id is stored already is
    /// left as it is). With `cursor: Some((from, to))`, atomically with them, moves the
    /// endpoint's dispatch cursor from `from` to `to`; if it is no longer at `from` (another
    /// dispatcher moved it first) nothing is stored and the answer is `false`. So a change is
    /// turned into a delivery once, and never lost between the feed and the deliveries.
    async fn enqueue_deliveries(
        &self,
        webhook: &WebhookId,
        cursor: Option<(i64, i64)>,
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool>;

    /// Leases up to `limit` pending deliveries due at `now` until `lease_until`, each the
    /// oldest pending one of its endpoint and ordering key (a member's next message waits
    /// for the one before it), none leased by another worker whose lease runs: two workers,
    /// in one process or several, never hold the same delivery at once.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedDelivery>>;

    /// Appends an attempt to a claimed delivery and sets its state and next attempt, ending
    /// the lease; `false` (and nothing written) if the lease is no longer the caller's.
    async fn record_attempt(
        &self,
        delivery: &MessageId,
        lease: &str,
        attempt: &Attempt,
        state: DeliveryState,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> StoreResult<bool>;

    /// The endpoint's deliveries, newest first.
    async fn list_deliveries(
        &self,
        program: &ProgramId,
        webhook: &WebhookId,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>>;

    /// Puts a delivery back to `pending`, due at `now`, whatever its state (a manual retry).
    async fn retry_delivery(
        &self,
        program: &ProgramId,
        webhook: &WebhookId,
        id: &MessageId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Delivery>>;
}
