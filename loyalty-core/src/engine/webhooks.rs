//! Outbound webhooks: endpoints (create, read, delete, rotate their secret), their
//! deliveries (list, retry by hand, a test message), and what a delivery worker calls: claim
//! due deliveries and record each attempt. Turning the change feed into deliveries is in
//! `dispatch.rs`.

use super::Engine;
use crate::error::{Error, Result};
use crate::ids::{MessageId, ProgramId, WebhookId};
use crate::ledger::{decode_cursor, Page, PageRequest, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::secret::Secret;
use crate::webhooks::{
    message_id, AttemptOutcome, ClaimedDelivery, Delivery, DeliveryState, NewDelivery,
    RetrySchedule, RotationSpec, TargetPolicy, WebhookSpec, WebhookView, TEST_MESSAGE_TYPE,
};
use chrono::{DateTime, Duration, Utc};

impl Engine {
    /// Creates an endpoint that gets the program's changes committed from now on; returns it
    /// and its secret if one was generated (shown only now). The URL's own host is checked
    /// against `policy`; a name is the caller's to resolve and check (it can do I/O).
    pub async fn create_webhook(
        &self,
        program: &ProgramId,
        spec: WebhookSpec,
        policy: TargetPolicy,
    ) -> Result<(WebhookView, Option<Secret>)> {
        self.get_program(program).await?;
        let now = self.now();
        let cursor = self.webhook_start_cursor(program).await?;
        let (webhook, generated) = spec.into_webhook(program, policy.allow_private, now, cursor)?;
        self.store.put_webhook(&webhook).await?;
        self.notify_webhook_workers();
        Ok((webhook.view(now), generated))
    }

    pub async fn list_webhooks(&self, program: &ProgramId) -> Result<Vec<WebhookView>> {
        self.get_program(program).await?;
        let now = self.now();
        Ok(self
            .store
            .list_webhooks(Some(program))
            .await?
            .iter()
            .map(|webhook| webhook.view(now))
            .collect())
    }

    pub async fn get_webhook(&self, program: &ProgramId, id: &WebhookId) -> Result<WebhookView> {
        let webhook = self.stored_webhook(program, id).await?;
        Ok(webhook.view(self.now()))
    }

    /// Deletes the endpoint and its deliveries: nothing more is sent to it.
    pub async fn delete_webhook(&self, program: &ProgramId, id: &WebhookId) -> Result<()> {
        if self.store.delete_webhook(program, id).await? {
            Ok(())
        } else {
            Err(Error::NotFound { what: "webhook" })
        }
    }

    /// A new signing secret; the current one goes on signing beside it for the grace period
    /// (both signatures in `webhook-signature`). Returns the new secret if generated.
    pub async fn rotate_webhook_secret(
        &self,
        program: &ProgramId,
        id: &WebhookId,
        spec: RotationSpec,
    ) -> Result<(WebhookView, Option<Secret>)> {
        let mut webhook = self.stored_webhook(program, id).await?;
        let now = self.now();
        let generated = webhook.rotate(spec, now)?;
        self.store.put_webhook(&webhook).await?;
        Ok((webhook.view(now), generated))
    }

    /// Queues a `webhook.test` message to the endpoint, due at once.
    pub async fn send_test_message(&self, program: &ProgramId, id: &WebhookId) -> Result<Delivery> {
        let webhook = self.stored_webhook(program, id).await?;
        let now = self.now();
        let message_id = message_id(
            &webhook.id,
            &format!("test:{}", uuid::Uuid::new_v4().simple()),
        );
        let body = serde_json::json!({
            "type": TEST_MESSAGE_TYPE,
            "timestamp": now,
            "data": {"webhookId": webhook.id, "programId": program},
        });
        let message = NewDelivery {
            ordering_key: message_id.as_str().to_owned(),
            id: message_id,
            webhook_id: webhook.id.clone(),
            program_id: program.clone(),
            message_type: TEST_MESSAGE_TYPE.into(),
            member_id: None,
            order: 0,
            body: body.to_string(),
            created_at: now,
        };
        self.store
            .enqueue_deliveries(&webhook.id, None, std::slice::from_ref(&message))
            .await?;
        self.notify_webhook_workers();
        Ok(Delivery {
            message,
            state: DeliveryState::Pending,
            next_attempt_at: Some(now),
            attempts: Vec::new(),
            seq: 0,
        })
    }

    /// The endpoint's deliveries with their attempts, newest first.
    pub async fn list_deliveries(
        &self,
        program: &ProgramId,
        id: &WebhookId,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<Delivery>> {
        self.stored_webhook(program, id).await?;
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(Error::invalid(
                "/limit",
                format!("limit must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let before = match cursor {
            None => None,
            Some(text) => Some(
                decode_cursor(text).ok_or_else(|| Error::invalid("/cursor", "unknown cursor"))?,
            ),
        };
        Ok(self
            .store
            .list_deliveries(program, id, PageRequest { limit, before })
            .await?)
    }

    /// Sends a delivery again, whatever its state: it is due at once (after the messages of
    /// its member that come before it).
    pub async fn retry_delivery(
        &self,
        program: &ProgramId,
        id: &WebhookId,
        message: &MessageId,
    ) -> Result<Delivery> {
        self.stored_webhook(program, id).await?;
        let delivery = self
            .store
            .retry_delivery(program, id, message, self.now())
            .await?
            .ok_or(Error::NotFound { what: "delivery" })?;
        self.notify_webhook_workers();
        Ok(delivery)
    }

    /// Leases up to `limit` due deliveries for `lease` (longer than an attempt can take).
    pub async fn claim_deliveries(
        &self,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>> {
        let now = self.now();
        let lease = Duration::from_std(lease).unwrap_or(Duration::minutes(5));
        Ok(self.store.claim_deliveries(now, now + lease, limit).await?)
    }

    /// Records an attempt made at `at` and what follows it (delivered, the next retry, or
    /// given up): `false` when the lease had run out and another worker holds the delivery.
    pub async fn record_attempt(
        &self,
        claimed: &ClaimedDelivery,
        outcome: AttemptOutcome,
        at: DateTime<Utc>,
        duration: std::time::Duration,
        schedule: &RetrySchedule,
    ) -> Result<bool> {
        let attempts = claimed.delivery.attempts.len() as u32 + 1;
        let now = self.now();
        let (state, next_attempt_at) = Delivery::after_attempt(attempts, &outcome, now, schedule);
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let attempt = outcome.into_attempt(at, duration_ms);
        Ok(self
            .store
            .record_attempt(
                &claimed.delivery.message.id,
                &claimed.lease,
                &attempt,
                state,
                next_attempt_at,
            )
            .await?)
    }

    async fn stored_webhook(
        &self,
        program: &ProgramId,
        id: &WebhookId,
    ) -> Result<crate::webhooks::Webhook> {
        self.store
            .get_webhook(program, id)
            .await?
            .ok_or(Error::NotFound { what: "webhook" })
    }
}
