//! Outbound webhooks in memory: endpoints and their deliveries behind their own lock (apart
//! from the commits' state), kept for the process's life.

use crate::MemoryStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loyalty_core::ids::{MessageId, ProgramId, WebhookId};
use loyalty_core::ledger::{Page, PageRequest};
use loyalty_core::store::{StoreResult, WebhookStore};
use loyalty_core::webhooks::{
    Attempt, ClaimedDelivery, Delivery, DeliveryState, NewDelivery, Webhook,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Default)]
pub(crate) struct WebhookState {
    webhooks: BTreeMap<WebhookId, Webhook>,
    /// By position (creation order).
    deliveries: BTreeMap<i64, Stored>,
    positions: HashMap<MessageId, i64>,
    /// The pending deliveries of each endpoint and ordering key, by (order, position): the
    /// first of each is the only one that may be claimed.
    queues: HashMap<(WebhookId, String), BTreeSet<(i64, i64)>>,
    next_position: i64,
}

#[derive(Debug)]
struct Stored {
    delivery: Delivery,
    lease: Option<(String, DateTime<Utc>)>,
}

impl WebhookState {
    pub(crate) fn put_webhook(&mut self, webhook: &Webhook) {
        match self.webhooks.get_mut(&webhook.id) {
            Some(stored) => {
                stored.url = webhook.url.clone();
                stored.events = webhook.events.clone();
                stored.secrets = webhook.secrets.clone();
            }
            None => {
                self.webhooks.insert(webhook.id.clone(), webhook.clone());
            }
        }
    }

    pub(crate) fn get_webhook(&self, program: &ProgramId, id: &WebhookId) -> Option<Webhook> {
        self.webhooks
            .get(id)
            .filter(|webhook| webhook.program_id == *program)
            .cloned()
    }

    pub(crate) fn list_webhooks(&self, program: Option<&ProgramId>) -> Vec<Webhook> {
        let mut webhooks: Vec<Webhook> = self
            .webhooks
            .values()
            .filter(|webhook| program.is_none_or(|p| webhook.program_id == *p))
            .cloned()
            .collect();
        webhooks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        webhooks
    }

    pub(crate) fn delete_webhook(&mut self, program: &ProgramId, id: &WebhookId) -> bool {
        if self.get_webhook(program, id).is_none() {
            return false;
        }
        self.webhooks.remove(id);
        let gone: Vec<i64> = self
            .deliveries
            .iter()
            .filter(|(_, stored)| stored.delivery.message.webhook_id == *id)
            .map(|(position, _)| *position)
            .collect();
        for position in gone {
            if let Some(stored) = self.deliveries.remove(&position) {
                self.positions.remove(&stored.delivery.message.id);
            }
        }
        self.queues.retain(|(webhook, _), _| webhook != id);
        true
    }

    pub(crate) fn enqueue(
        &mut self,
        webhook: &WebhookId,
        cursor: Option<(i64, i64)>,
        deliveries: &[NewDelivery],
    ) -> bool {
        let Some(stored) = self.webhooks.get_mut(webhook) else {
            return false;
        };
        if let Some((from, to)) = cursor {
            if stored.dispatch_cursor != from {
                return false;
            }
            stored.dispatch_cursor = to;
        }
        for message in deliveries {
            if self.positions.contains_key(&message.id) {
                continue;
            }
            self.next_position += 1;
            let position = self.next_position;
            self.positions.insert(message.id.clone(), position);
            self.queues
                .entry((message.webhook_id.clone(), message.ordering_key.clone()))
                .or_default()
                .insert((message.order, position));
            self.deliveries.insert(
                position,
                Stored {
                    delivery: Delivery {
                        message: message.clone(),
                        state: DeliveryState::Pending,
                        next_attempt_at: Some(message.created_at),
                        attempts: Vec::new(),
                        seq: position,
                    },
                    lease: None,
                },
            );
        }
        true
    }

    pub(crate) fn claim(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<ClaimedDelivery> {
        let mut heads: Vec<(DateTime<Utc>, i64)> = Vec::new();
        for queue in self.queues.values() {
            let Some(&(_, position)) = queue.first() else {
                continue;
            };
            let Some(stored) = self.deliveries.get(&position) else {
                continue;
            };
            let due = stored.delivery.next_attempt_at.is_some_and(|at| at <= now);
            let free = stored.lease.as_ref().is_none_or(|(_, until)| *until <= now);
            if due && free {
                heads.push((stored.delivery.next_attempt_at.unwrap_or(now), position));
            }
        }
        heads.sort();
        heads.truncate(limit);
        let mut claimed = Vec::with_capacity(heads.len());
        for (_, position) in heads {
            let Some(stored) = self.deliveries.get_mut(&position) else {
                continue;
            };
            let Some(webhook) = self.webhooks.get(&stored.delivery.message.webhook_id) else {
                continue;
            };
            let lease = uuid::Uuid::new_v4().to_string();
            stored.lease = Some((lease.clone(), lease_until));
            claimed.push(ClaimedDelivery {
                delivery: stored.delivery.clone(),
                webhook: webhook.clone(),
                lease,
            });
        }
        claimed
    }

    pub(crate) fn record(
        &mut self,
        id: &MessageId,
        lease: &str,
        attempt: &Attempt,
        state: DeliveryState,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> bool {
        let Some(&position) = self.positions.get(id) else {
            return false;
        };
        let Some(stored) = self.deliveries.get_mut(&position) else {
            return false;
        };
        if stored.lease.as_ref().is_none_or(|(held, _)| held != lease) {
            return false;
        }
        stored.lease = None;
        stored.delivery.attempts.push(attempt.clone());
        Self::set_state(
            &mut self.queues,
            &mut stored.delivery,
            state,
            next_attempt_at,
        );
        true
    }

    /// Moves a delivery to `state`, keeping its queue of pending deliveries in step.
    fn set_state(
        queues: &mut HashMap<(WebhookId, String), BTreeSet<(i64, i64)>>,
        delivery: &mut Delivery,
        state: DeliveryState,
        next_attempt_at: Option<DateTime<Utc>>,
    ) {
        let key = (
            delivery.message.webhook_id.clone(),
            delivery.message.ordering_key.clone(),
        );
        let entry = (delivery.message.order, delivery.seq);
        if state == DeliveryState::Pending {
            queues.entry(key).or_default().insert(entry);
        } else if let Some(queue) = queues.get_mut(&key) {
            queue.remove(&entry);
            if queue.is_empty() {
                queues.remove(&key);
            }
        }
        delivery.state = state;
        delivery.next_attempt_at = next_attempt_at;
    }

    pub(crate) fn list(
        &self,
        program: &ProgramId,
        webhook: &WebhookId,
        page: PageRequest,
    ) -> Page<Delivery> {
        let upper = page.before.unwrap_or(i64::MAX);
        let fetched: Vec<Delivery> = self
            .deliveries
            .range(..upper)
            .rev()
            .map(|(_, stored)| &stored.delivery)
            .filter(|d| d.message.webhook_id == *webhook && d.message.program_id == *program)
            .take(page.limit + 1)
            .cloned()
            .collect();
        Page::from_fetched(fetched, page.limit, |d| d.seq)
    }

    pub(crate) fn retry(
        &mut self,
        program: &ProgramId,
        webhook: &WebhookId,
        id: &MessageId,
        now: DateTime<Utc>,
    ) -> Option<Delivery> {
        let position = *self.positions.get(id)?;
        let stored = self.deliveries.get_mut(&position)?;
        let message = &stored.delivery.message;
        if message.webhook_id != *webhook || message.program_id != *program {
            return None;
        }
        stored.lease = None;
        Self::set_state(
            &mut self.queues,
            &mut stored.delivery,
            DeliveryState::Pending,
            Some(now),
        );
        Some(stored.delivery.clone())
    }
}

#[async_trait]
impl WebhookStore for MemoryStore {
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
