//! The storage contract. Every store (memory, PostgreSQL) implements [`Store`] and passes the
//! same conformance suite (`loyalty_core::testing`, feature `testing`).
//!
//! The engine does everything that needs no shared state (authentication, mapping, validation,
//! identifier normalisation) before it calls [`IngestStore::commit`]. A store then, for each item
//! and atomically with respect to every other commit, from this process or another:
//! 1. looks up the idempotency key `(connector, clientEventId, test)`: taken means `duplicate`;
//! 2. finds or enrols the member (or ignores the item with `unknown_member`);
//! 3. reads the member's usage for the keys the rules name, calls [`RuleSet::evaluate`] (pure),
//!    and writes the log entry, the ledger entries, the usage and the balance.
//!
//! [`decide`] holds that order and [`settle_accepted`] and friends what each outcome writes into
//! the log entry, so that stores (and simulation) only look things up and store.

mod catalog;
mod decision;
mod feed;
mod ingest;
mod log;
mod points;
mod replays;
mod webhooks;

use crate::error::StoreError;
use std::fmt::Debug;

pub use catalog::CatalogStore;
pub use decision::{
    decide, decide_refund, new_member, settle_accepted, settle_duplicate, settle_refund,
    settle_unknown_member, settle_unknown_order, Decision, Prior, RefundDecision,
};
pub use feed::FeedStore;
pub use ingest::{
    Candidate, CommitBatch, IngestStore, PendingItem, PurchaseFound, RefundCandidate,
};
pub use log::LogStore;
pub use points::{Adjusted, Adjustment, EventReversal, PointsStore, Reversed};
pub use replays::ReplayStore;
pub use webhooks::WebhookStore;

pub type StoreResult<T> = Result<T, StoreError>;

/// The storage behind the engine: every part of the contract, one trait a concern, so that a
/// store's implementation reads as one file a concern too. Anything implementing them all is
/// a `Store`.
pub trait Store:
    CatalogStore + IngestStore + PointsStore + LogStore + ReplayStore + FeedStore + WebhookStore + Debug
{
}

impl<T> Store for T where
    T: CatalogStore
        + IngestStore
        + PointsStore
        + LogStore
        + ReplayStore
        + FeedStore
        + WebhookStore
        + Debug
{
}
