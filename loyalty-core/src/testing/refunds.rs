//! Refunds as incoming events: what a purchase earned comes back exactly once, in proportion,
//! never more than was given, also when deliveries race.

use super::*;
use crate::connector::EventType;
use crate::ids::EventId;
use crate::ledger::ItemStatus;
use crate::rules::{PointsRule, RuleSpec};

const PURCHASE_MAPPING: &str = r#"{"clientEventId": id, "profile": {"kind": "email", "value": email}, "payload": {"orderId": order, "amount": amount, "currency": "EUR", "timestamp": at}}"#;
const REFUND_MAPPING: &str = r#"{"clientEventId": id, "profile": email ? {"kind": "email", "value": email} : null, "payload": {"orderId": order, "amount": amount, "reason": why}}"#;

/// A program with a purchase connector (1 point a euro, and 10 points once a day) and a
/// refund connector.
#[derive(Debug)]
pub struct Shop {
    pub f: Fixture,
    pub purchases: ConnectorId,
    pub refunds: ConnectorId,
}

impl Shop {
    pub async fn new(store: Arc<dyn Store>) -> Self {
        let f = Fixture::new(store, None).await;
        let connector = |name: &str, event_type, mapping: &str| {
            ConnectorSpec::new(
                name,
                event_type,
                crate::auth::AuthSpec::query_token("token", TOKEN),
                mapping,
            )
        };
        let purchases = f
            .engine
            .create_connector(
                &f.program,
                connector("Orders", EventType::EcommercePurchase, PURCHASE_MAPPING),
            )
            .await
            .unwrap()
            .id;
        let refunds = f
            .engine
            .create_connector(
                &f.program,
                connector("Refunds", EventType::EcommerceRefund, REFUND_MAPPING),
            )
            .await
            .unwrap()
            .id;
        for spec in [
            RuleSpec::new(
                "Per euro",
                purchases.clone(),
                PointsRule::per_amount(1, 1.0),
            ),
            RuleSpec::new("Daily bonus", purchases.clone(), PointsRule::fixed(10))
                .limit(crate::rules::Limit::count(1, crate::rules::Period::Day)),
        ] {
            f.engine.create_rule(&f.program, spec).await.unwrap();
        }
        Self {
            f,
            purchases,
            refunds,
        }
    }

    async fn send(&self, connector: &ConnectorId, body: Value, test: bool) -> IngestResponse {
        self.f
            .engine
            .ingest(IncomingRequest {
                connector_id: connector.as_str(),
                query: "token=s3cret-token",
                headers: &[],
                body: body.to_string().as_bytes(),
                test,
            })
            .await
            .unwrap()
    }

    pub async fn buy(&self, id: &str, email: &str, order: &str, amount: f64) -> IngestResponse {
        let at = now().to_rfc3339();
        let body = json!({"id": id, "email": email, "order": order, "amount": amount, "at": at});
        self.send(&self.purchases, body, false).await
    }

    pub async fn refund(&self, id: &str, order: &str, amount: Option<f64>) -> IngestResponse {
        let body = json!({"id": id, "order": order, "amount": amount, "why": "returned"});
        self.send(&self.refunds, body, false).await
    }

    async fn refund_for(&self, id: &str, email: &str, order: &str) -> IngestResponse {
        let body = json!({"id": id, "email": email, "order": order});
        self.send(&self.refunds, body, false).await
    }
}

fn one(response: &IngestResponse) -> (ItemStatus, i64) {
    assert_eq!(response.results.len(), 1);
    (response.results[0].status(), response.results[0].points())
}

pub async fn refunds_reverse_what_the_purchase_earned(store: Arc<dyn Store>) {
    let shop = Shop::new(store).await;
    let bought = shop.buy("p-1", "ann@example.com", "o-1", 20.0).await;
    assert_eq!(one(&bought), (ItemStatus::Accepted, 30));
    let purchase: EventId = bought.results[0].event_id.clone();

    // 15 of 20: 15 of the 20 per-euro points, 7 of the 10 bonus points (rounded down).
    let partial = shop.refund("r-1", "o-1", Some(15.0)).await;
    assert_eq!(one(&partial), (ItemStatus::Accepted, -22));
    let result = &partial.results[0];
    assert_eq!(result.original_event_id(), Some(&purchase));
    let mut reversed: Vec<i64> = match &result.outcome {
        crate::engine::ItemOutcome::Refunded { reversed, .. } => {
            reversed.iter().map(|a| a.points).collect()
        }
        other => panic!("{other:?}"),
    };
    reversed.sort();
    assert_eq!(reversed, [-15, -7]);
    assert_eq!(shop.f.balance("ann@example.com").await, Some(8));

    // The same refund again changes nothing.
    let again = shop.refund("r-1", "o-1", Some(15.0)).await;
    assert_eq!(one(&again), (ItemStatus::Duplicate, 0));
    // Another one for more than is left takes what is left.
    let rest = shop.refund("r-2", "o-1", Some(15.0)).await;
    assert_eq!(one(&rest), (ItemStatus::Accepted, -8));
    assert_eq!(shop.f.balance("ann@example.com").await, Some(0));
    let nothing = shop.refund("r-3", "o-1", None).await;
    assert_eq!(one(&nothing), (ItemStatus::Accepted, 0));

    // Unknown orders, and orders of someone else, are ignored.
    let unknown = shop.refund("r-4", "o-404", None).await;
    assert_eq!(one(&unknown), (ItemStatus::Ignored, 0));
    assert_eq!(unknown.results[0].reason(), Some("unknown_order"));
    let bobs = shop.buy("p-2", "bob@example.com", "o-2", 5.0).await;
    assert_eq!(one(&bobs), (ItemStatus::Accepted, 15));
    let not_hers = shop.refund_for("r-5", "ann@example.com", "o-2").await;
    assert_eq!(not_hers.results[0].reason(), Some("unknown_order"));
    let his = shop.refund_for("r-6", "bob@example.com", "o-2").await;
    assert_eq!(one(&his), (ItemStatus::Accepted, -15));

    // The daily bonus was reversed to nothing: it no longer counts, so it is given again.
    let next = shop.buy("p-3", "ann@example.com", "o-3", 2.0).await;
    assert_eq!(one(&next), (ItemStatus::Accepted, 12));
    let ann = shop.f.member("ann@example.com").await;
    let entries = shop
        .f
        .engine
        .store()
        .ledger_entries(&shop.f.program, &ann)
        .await
        .unwrap();
    assert!(entries.iter().all(|e| e.is_well_formed()), "{entries:?}");
    assert_eq!(entries.iter().map(|e| e.points).sum::<i64>(), 12);
}

pub async fn concurrent_refunds_never_reverse_more_than_was_earned(store: Arc<dyn Store>) {
    let shop = Arc::new(Shop::new(store).await);
    let bought = shop.buy("p-1", "ann@example.com", "o-1", 20.0).await;
    assert_eq!(one(&bought), (ItemStatus::Accepted, 30));
    // 16 deliveries of one refund, and 16 partial refunds of 5 whose sum is four times the
    // order, all at once.
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let shop = shop.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    shop.refund("same", "o-1", Some(5.0)).await
                } else {
                    shop.refund(&format!("part-{i}"), "o-1", Some(5.0)).await
                }
            })
        })
        .collect();
    let mut taken = 0;
    let mut same_accepted = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let response = task.await.unwrap();
        let (status, points) = one(&response);
        assert!(points <= 0);
        taken -= points;
        if i % 2 == 0 && status == ItemStatus::Accepted {
            same_accepted += 1;
        }
    }
    assert_eq!(same_accepted, 1, "one delivery of the same refund counts");
    assert_eq!(taken, 30, "all that was earned, and not a point more");
    assert_eq!(shop.f.balance("ann@example.com").await, Some(0));
}
