//! Outbound webhooks in the stores: endpoints, the cursor that turns the feed into deliveries
//! once, claims that never hand one delivery to two workers, a member's messages in order,
//! retries, the attempt log.

use super::*;
use crate::ids::{MessageId, WebhookId};
use crate::ledger::PageRequest;
use crate::webhooks::{
    message_id, Attempt, ClaimedDelivery, Delivery, DeliveryState, NewDelivery, RotationSpec,
    TargetPolicy, WebhookSpec,
};
use chrono::Duration;

async fn endpoint(f: &Fixture) -> WebhookId {
    let spec = WebhookSpec {
        url: "https://hooks.example.com/loyalty".into(),
        events: vec!["member.points_changed".into(), "event.logged".into()],
        secret: None,
    };
    let (view, _) = f
        .engine
        .create_webhook(&f.program, spec, TargetPolicy::default())
        .await
        .unwrap();
    view.id
}

/// What most tests here start from: a program with one endpoint subscribed to both message
/// types, and the store's delivery calls on that endpoint (unwrapped).
struct Hooks {
    f: Fixture,
    store: Arc<dyn Store>,
    id: WebhookId,
}

impl Hooks {
    async fn new(store: Arc<dyn Store>) -> Self {
        let f = Fixture::new(store.clone(), None).await;
        let id = endpoint(&f).await;
        Self { f, store, id }
    }

    /// A message of this endpoint, `order`-th of its ordering `key`.
    fn message(&self, key: &str, order: i64) -> NewDelivery {
        self.message_to(&self.id, key, order)
    }

    /// A message of another endpoint of the same program.
    fn message_to(&self, webhook: &WebhookId, key: &str, order: i64) -> NewDelivery {
        NewDelivery {
            id: message_id(webhook, &format!("{key}:{order}")),
            webhook_id: webhook.clone(),
            program_id: self.f.program.clone(),
            message_type: "member.points_changed".into(),
            member_id: None,
            ordering_key: key.into(),
            order,
            body: format!(r#"{{"type":"member.points_changed","data":{{"n":{order}}}}}"#),
            created_at: now(),
        }
    }

    /// Stores these deliveries of this endpoint without moving its cursor.
    async fn enqueue(&self, messages: &[NewDelivery]) {
        self.enqueue_to(&self.id, messages).await;
    }

    async fn enqueue_to(&self, webhook: &WebhookId, messages: &[NewDelivery]) {
        assert!(self
            .store
            .enqueue_deliveries(webhook, None, messages)
            .await
            .unwrap());
    }

    /// Up to `limit` deliveries due at `at`, leased for `lease`.
    async fn claim(
        &self,
        at: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Vec<ClaimedDelivery> {
        self.store
            .claim_deliveries(at, at + lease, limit)
            .await
            .unwrap()
    }

    /// Records an attempt answered `status` under `lease`; whether the lease still held.
    async fn record(
        &self,
        message: &MessageId,
        lease: &str,
        status: u16,
        state: DeliveryState,
        next: Option<DateTime<Utc>>,
    ) -> bool {
        self.store
            .record_attempt(message, lease, &attempt(status), state, next)
            .await
            .unwrap()
    }

    /// The endpoint's deliveries, newest first.
    async fn deliveries(&self) -> Vec<Delivery> {
        self.store
            .list_deliveries(&self.f.program, &self.id, PageRequest::default())
            .await
            .unwrap()
            .items
    }

    async fn cursor(&self) -> i64 {
        self.store
            .get_webhook(&self.f.program, &self.id)
            .await
            .unwrap()
            .unwrap()
            .dispatch_cursor
    }
}

fn attempt(status: u16) -> Attempt {
    Attempt {
        at: now(),
        status: Some(status),
        error: None,
        duration_ms: 3,
    }
}

fn ids(claimed: &[ClaimedDelivery]) -> Vec<MessageId> {
    let mut ids: Vec<MessageId> = claimed
        .iter()
        .map(|c| c.delivery.message.id.clone())
        .collect();
    ids.sort();
    ids
}

pub async fn webhooks_round_trip_and_rotate_their_secret(store: Arc<dyn Store>) {
    let h = Hooks::new(store.clone()).await;
    let (f, id) = (&h.f, &h.id);
    let other = Fixture::new(store.clone(), None).await;
    let stored = store.get_webhook(&f.program, id).await.unwrap().unwrap();
    assert_eq!(stored.url, "https://hooks.example.com/loyalty");
    assert_eq!(stored.secrets.len(), 1);
    assert!(stored.secrets[0].secret.expose().starts_with("whsec_"));
    assert!(store
        .get_webhook(&other.program, id)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.list_webhooks(Some(&f.program)).await.unwrap().len(),
        1
    );
    assert!(store
        .list_webhooks(Some(&other.program))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_webhooks(None)
        .await
        .unwrap()
        .iter()
        .any(|w| w.id == *id));

    // A rotation keeps the old secret beside the new one; the cursor is the dispatcher's.
    let moved = Some((stored.dispatch_cursor, stored.dispatch_cursor + 7));
    assert!(store.enqueue_deliveries(id, moved, &[]).await.unwrap());
    let (_, generated) = f
        .engine
        .rotate_webhook_secret(&f.program, id, RotationSpec::default())
        .await
        .unwrap();
    let rotated = store.get_webhook(&f.program, id).await.unwrap().unwrap();
    assert_eq!(rotated.secrets.len(), 2);
    assert_eq!(Some(&rotated.secrets[0].secret), generated.as_ref());
    assert_eq!(rotated.secrets[1].secret, stored.secrets[0].secret);
    assert_eq!(
        rotated.secrets[1].expires_at,
        Some(now() + Duration::days(1))
    );
    assert_eq!(rotated.dispatch_cursor, stored.dispatch_cursor + 7);

    assert!(!store.delete_webhook(&other.program, id).await.unwrap());
    assert!(store.delete_webhook(&f.program, id).await.unwrap());
    assert!(store.get_webhook(&f.program, id).await.unwrap().is_none());
}

pub async fn deliveries_move_the_cursor_once(store: Arc<dyn Store>) {
    let h = Hooks::new(store.clone()).await;
    let from = h.cursor().await;
    let first = [h.message("a", 1), h.message("a", 2)];
    assert!(store
        .enqueue_deliveries(&h.id, Some((from, from + 2)), &first)
        .await
        .unwrap());
    // A second dispatcher that read the same cursor stores nothing.
    assert!(!store
        .enqueue_deliveries(&h.id, Some((from, from + 2)), &[h.message("b", 1)])
        .await
        .unwrap());
    // The same message again is the same delivery.
    assert!(store
        .enqueue_deliveries(&h.id, Some((from + 2, from + 3)), &first[..1])
        .await
        .unwrap());
    let deliveries = h.deliveries().await;
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries.iter().all(|d| d.state == DeliveryState::Pending));
    // Newest first.
    assert_eq!(deliveries[0].message.id, first[1].id);
    assert_eq!(deliveries[0].message.body, first[1].body);
    assert_eq!(h.cursor().await, from + 3);
}

pub async fn a_members_messages_go_out_one_at_a_time_in_order(store: Arc<dyn Store>) {
    let h = Hooks::new(store).await;
    let a: Vec<_> = (1..=3).map(|n| h.message("mem_a", n)).collect();
    let b = h.message("mem_b", 1);
    // Enqueued out of order: the order, not the arrival, decides.
    h.enqueue(&[a[1].clone(), b.clone(), a[0].clone(), a[2].clone()])
        .await;
    let minute = Duration::seconds(60);
    let claimed = h.claim(now(), minute, 10).await;
    let mut expected = vec![a[0].id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(
        ids(&claimed),
        expected,
        "only the head of each member's queue"
    );
    assert!(claimed.iter().all(|c| c.webhook.id == h.id));
    // Held: nobody else gets them while the lease runs.
    assert!(h.claim(now(), minute, 10).await.is_empty());

    let head = claimed
        .iter()
        .find(|c| c.delivery.message.id == a[0].id)
        .unwrap();
    let retry_at = now() + Duration::seconds(5);
    let pending = DeliveryState::Pending;
    assert!(
        h.record(&a[0].id, &head.lease, 500, pending, Some(retry_at))
            .await
    );
    // The failed head waits for its retry, and the member's next message waits behind it.
    assert!(h.claim(now(), minute, 10).await.is_empty());
    let again = h.claim(retry_at, minute, 10).await;
    assert_eq!(ids(&again), vec![a[0].id.clone()]);
    assert_eq!(again[0].delivery.attempts, vec![attempt(500)]);
    let delivered = DeliveryState::Delivered;
    assert!(
        h.record(&a[0].id, &again[0].lease, 204, delivered, None)
            .await
    );
    let next = h.claim(retry_at, minute, 10).await;
    assert_eq!(ids(&next), vec![a[1].id.clone()]);

    // The log: every attempt, oldest first.
    let deliveries = h.deliveries().await;
    let first = deliveries.iter().find(|d| d.message.id == a[0].id).unwrap();
    assert_eq!(first.state, DeliveryState::Delivered);
    assert_eq!(first.next_attempt_at, None);
    assert_eq!(first.attempts, vec![attempt(500), attempt(204)]);
}

pub async fn an_expired_lease_is_claimed_again_and_the_late_worker_records_nothing(
    store: Arc<dyn Store>,
) {
    let h = Hooks::new(store).await;
    let m = h.message("mem_a", 1);
    h.enqueue(std::slice::from_ref(&m)).await;
    let lease = Duration::seconds(30);
    let first = h.claim(now(), lease, 10).await;
    assert_eq!(first.len(), 1);
    let second = h.claim(now() + Duration::seconds(31), lease, 10).await;
    assert_eq!(ids(&second), vec![m.id.clone()]);
    assert_ne!(first[0].lease, second[0].lease);
    let delivered = DeliveryState::Delivered;
    assert!(!h.record(&m.id, &first[0].lease, 204, delivered, None).await);
    assert!(
        h.record(&m.id, &second[0].lease, 204, delivered, None)
            .await
    );
    // A lease is used once.
    assert!(
        !h.record(&m.id, &second[0].lease, 204, delivered, None)
            .await
    );
    assert_eq!(h.deliveries().await[0].attempts.len(), 1);
}

pub async fn concurrent_workers_never_claim_one_delivery_twice(store: Arc<dyn Store>) {
    let h = Hooks::new(store.clone()).await;
    let messages: Vec<_> = (0..60).map(|n| h.message(&format!("mem_{n}"), 1)).collect();
    h.enqueue(&messages).await;
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store
                        .claim_deliveries(now(), now() + Duration::minutes(5), 4)
                        .await
                        .unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|c| c.delivery.message.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), unique.len(), "a delivery was claimed twice");
    assert_eq!(unique.len(), 60);
}

pub async fn a_manual_retry_sends_a_delivery_again(store: Arc<dyn Store>) {
    let h = Hooks::new(store.clone()).await;
    let other = Fixture::new(store.clone(), None).await;
    let m = h.message("mem_a", 1);
    h.enqueue(std::slice::from_ref(&m)).await;
    let minute = Duration::minutes(1);
    let claimed = h.claim(now(), minute, 1).await;
    h.record(&m.id, &claimed[0].lease, 410, DeliveryState::Failed, None)
        .await;
    assert!(h
        .claim(now() + Duration::days(2), Duration::days(1), 1)
        .await
        .is_empty());
    assert!(store
        .retry_delivery(&other.program, &h.id, &m.id, now())
        .await
        .unwrap()
        .is_none());
    let later = now() + Duration::hours(1);
    let retried = store
        .retry_delivery(&h.f.program, &h.id, &m.id, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retried.state, DeliveryState::Pending);
    assert_eq!(retried.next_attempt_at, Some(later));
    assert_eq!(retried.attempts.len(), 1);
    assert_eq!(ids(&h.claim(later, minute, 1).await), vec![m.id.clone()]);
}

pub async fn deleting_an_endpoint_drops_its_deliveries(store: Arc<dyn Store>) {
    let h = Hooks::new(store.clone()).await;
    let kept = endpoint(&h.f).await;
    h.enqueue(&[h.message("mem_a", 1)]).await;
    let other = h.message_to(&kept, "mem_a", 1);
    h.enqueue_to(&kept, std::slice::from_ref(&other)).await;
    assert!(store.delete_webhook(&h.f.program, &h.id).await.unwrap());
    let mine: Vec<_> = h
        .claim(now(), Duration::minutes(1), 100)
        .await
        .into_iter()
        .filter(|c| c.delivery.message.program_id == h.f.program)
        .map(|c| c.delivery.message.id)
        .collect();
    assert_eq!(mine, vec![other.id]);
}

/// The dispatcher turns each committed change into one delivery per subscribed endpoint, once
/// (dispatching again creates nothing), from the endpoint's creation on, in commit order per
/// member.
pub async fn committed_changes_become_deliveries_once(store: Arc<dyn Store>) {
    let f = Fixture::new(store.clone(), Some(json!([]))).await;
    f.send(
        &article("before", "ann@example.com", "sport", 5).to_string(),
        false,
    )
    .await;
    let both = endpoint(&f).await;
    let spec = WebhookSpec {
        url: "https://hooks.example.com/points".into(),
        events: vec!["member.points_changed".into()],
        secret: None,
    };
    let (points_only, _) = f
        .engine
        .create_webhook(&f.program, spec, TargetPolicy::default())
        .await
        .unwrap();
    for (id, email) in [
        ("e-1", "ann@example.com"),
        ("e-2", "bob@example.com"),
        ("e-3", "ann@example.com"),
    ] {
        f.send(&article(id, email, "sport", 5).to_string(), false)
            .await;
    }
    // The feed may be numbered a moment after the commit (PostgreSQL): dispatch until the
    // three events and their three awards are there.
    let mut created = 0;
    for _ in 0..200 {
        created += f.engine.dispatch_webhooks().await.unwrap().deliveries;
        if created >= 9 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(created, 9, "6 messages to one endpoint, 3 to the other");
    assert_eq!(f.engine.dispatch_webhooks().await.unwrap().deliveries, 0);
    let list = |id: WebhookId| {
        let engine = f.engine.clone();
        let program = f.program.clone();
        async move {
            engine
                .list_deliveries(&program, &id, None, None)
                .await
                .unwrap()
                .items
        }
    };
    let all = list(both.clone()).await;
    assert_eq!(all.len(), 6);
    let points = list(points_only.id.clone()).await;
    assert_eq!(points.len(), 3);
    assert!(points
        .iter()
        .all(|d| d.message.message_type == "member.points_changed"));
    // Oldest first: ann's balances after each award, in commit order.
    let ann = f.member("ann@example.com").await;
    let balances: Vec<i64> = points
        .iter()
        .rev()
        .filter(|d| d.message.member_id.as_ref() == Some(&ann))
        .map(|d| {
            let body: Value = serde_json::from_str(&d.message.body).unwrap();
            assert_eq!(body["type"], "member.points_changed");
            assert!(body["timestamp"].is_string());
            body["data"]["balance"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(
        balances,
        vec![20, 30],
        "the award before the endpoint existed is not sent"
    );
    let orders: Vec<i64> = points.iter().rev().map(|d| d.message.order).collect();
    assert!(orders.windows(2).all(|w| w[0] < w[1]));
    assert!(points
        .iter()
        .all(|d| d.message.ordering_key.starts_with("mem_")));
    let logged: Vec<Value> = all
        .iter()
        .filter(|d| d.message.message_type == "event.logged")
        .map(|d| serde_json::from_str(&d.message.body).unwrap())
        .collect();
    assert_eq!(logged.len(), 3);
    assert!(logged
        .iter()
        .all(|b| b["data"]["status"] == "accepted" && b["data"].get("raw").is_none()));
}
