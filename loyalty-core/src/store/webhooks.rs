//! Outbound webhook endpoints and their durable deliveries.

use super::StoreResult;
use crate::ids::{MessageId, ProgramId, WebhookId};
use crate::ledger::{Page, PageRequest};
use crate::webhooks::{Attempt, ClaimedDelivery, Delivery, DeliveryState, NewDelivery, Webhook};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Outbound webhook endpoints, and their deliveries leased to one worker at a time.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Inserts an endpoint, or replaces its URL, events and secrets (by id). Its dispatch
    /// cursor is written only on insert: afterwards only [`WebhookStore::enqueue_deliveries`] moves it.
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
