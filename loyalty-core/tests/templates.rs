//! Every template's mapping over its sample payload, through the mapping engine and the
//! canonical event's validation, checked field by field; and connectors made from templates.

use chrono::{DateTime, Duration, Utc};
use loyalty_core::event::{validate, CanonicalEvent, Purchase};
use loyalty_core::mapping::{Document, JsonataMapping, Mapping, MappingLimits};
use loyalty_core::templates::{self, Template};
use serde_json::Value;

/// The template's mapping over each item of its sample: the mapped JSON and the validated
/// event, validated as if received a minute after `occurred`.
fn run(template: &Template, occurred: DateTime<Utc>) -> Vec<(Value, CanonicalEvent)> {
    let mapping = JsonataMapping::compile(template.mapping)
        .unwrap_or_else(|e| panic!("{}: {e}", template.id));
    let sample = template.sample_payload();
    let items = match sample {
        Value::Array(items) => items,
        item => vec![item],
    };
    items
        .into_iter()
        .map(|item| {
            let document = Document::from_json(item);
            let mapped = mapping
                .apply(&document, &MappingLimits::default())
                .unwrap_or_else(|e| panic!("{}: {e:?}", template.id));
            let event = validate(
                &mapped,
                template.event_type,
                occurred + Duration::minutes(1),
                36_600,
            )
            .unwrap_or_else(|e| panic!("{}: {e:?}\n{mapped:#}", template.id));
            assert_eq!(event.occurred_at, Some(occurred), "{}", template.id);
            (mapped, event)
        })
        .collect()
}

fn template(id: &str) -> &'static Template {
    templates::find(id).unwrap_or_else(|| panic!("no template {id}"))
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn tags(event: &CanonicalEvent) -> Vec<(String, String)> {
    event
        .tags
        .iter()
        .map(|t| (t.name.clone(), t.value.clone()))
        .collect()
}

fn counters(event: &CanonicalEvent) -> Vec<(String, f64)> {
    event
        .counters
        .iter()
        .map(|c| (c.name.clone(), c.value))
        .collect()
}

fn pairs<const N: usize>(items: [(&str, &str); N]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A purchase's lines as (sku, name, quantity, unit price).
fn lines(purchase: &Purchase) -> Vec<(&str, &str, f64, f64)> {
    purchase
        .items
        .iter()
        .map(|i| {
            (
                i.sku.as_deref().unwrap(),
                i.name.as_deref().unwrap(),
                i.quantity,
                i.unit_price.unwrap(),
            )
        })
        .collect()
}

fn profile(mapped: &Value) -> (String, String) {
    let profile = &mapped["profile"];
    (
        profile["kind"].as_str().unwrap().to_owned(),
        profile["value"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn every_template_maps_its_sample_into_a_valid_event() {
    let ids: Vec<&str> = templates::all().iter().map(|t| t.id).collect();
    for required in [
        "shopify.orders-create",
        "shopify.refunds-create",
        "stripe.checkout-session-completed",
        "stripe.charge-refunded",
        "woocommerce.order-created",
        "typeform.form-response",
        "hubspot.contact-event",
        "segment.track",
        "github.push",
        "gtm.custom-event",
    ] {
        assert!(ids.contains(&required), "{required}");
    }
    for template in templates::all() {
        let view = serde_json::to_value(template.view()).unwrap();
        assert_eq!(view["id"], template.id);
        assert_eq!(view["auth"]["type"], template.auth_type);
        assert_eq!(view["eventType"], template.event_type.as_str());
        assert!(view["samplePayload"].is_object() || view["samplePayload"].is_array());
    }
}

#[test]
fn shopify_order_and_refund() {
    let [(mapped, event)] = <[_; 1]>::try_from(run(
        template("shopify.orders-create"),
        at("2022-01-01T00:00:00Z"),
    ))
    .unwrap();
    assert_eq!(profile(&mapped), ("email".into(), "jon@example.com".into()));
    let purchase = event.purchase.clone().unwrap();
    // The sample's 18-digit id is past 2^53: read as a double, as the refund's order_id is.
    assert_eq!(purchase.order_id, "820982911946154500");
    assert_eq!(purchase.amount, 404.95);
    assert_eq!(purchase.currency, "USD");
    assert_eq!(
        lines(&purchase),
        [
            ("SKU2006-001", "Aviator sunglasses", 1.0, 89.99),
            (
                "LENS-PROTECT-2YR",
                "Lens Protection Plan (2 Year)",
                1.0,
                19.99
            ),
            ("CASE-LEATHER-PREM", "Premium Leather Case", 1.0, 24.99),
            ("SKU2006-020", "Mid-century lounger", 1.0, 159.99),
            ("SKU2006-035", "Coffee table", 1.0, 119.99),
        ]
    );
    assert_eq!(tags(&event), pairs([("source", "shopify")]));

    let [(mapped, event)] = <[_; 1]>::try_from(run(
        template("shopify.refunds-create"),
        at("2022-01-01T00:00:00Z"),
    ))
    .unwrap();
    assert!(mapped.get("profile").is_none());
    assert_eq!(
        event.client_event_id.as_deref(),
        Some("shopify-refund-890088186047892400")
    );
    let refund = event.refund.unwrap();
    assert_eq!(
        refund.order_id, purchase.order_id,
        "the refund finds its order"
    );
    assert_eq!(refund.amount, Some(75.0));
    assert_eq!(refund.currency, None);
    assert_eq!(refund.reason.as_deref(), Some("Things were damaged"));
}

#[test]
fn stripe_checkout_and_refund_in_major_units() {
    let [(mapped, event)] = <[_; 1]>::try_from(run(
        template("stripe.checkout-session-completed"),
        at("2012-01-18T02:24:38Z"),
    ))
    .unwrap();
    assert_eq!(
        profile(&mapped),
        ("email".into(), "example@example.com".into())
    );
    let purchase = event.purchase.clone().unwrap();
    assert_eq!(purchase.order_id, "pi_00000000000000");
    assert_eq!(purchase.amount, 250.0, "25000 cents");
    assert_eq!(purchase.currency, "USD");
    assert!(purchase.items.is_empty());
    assert_eq!(
        tags(&event),
        pairs([("source", "stripe"), ("mode", "payment")])
    );

    let [(mapped, event)] = <[_; 1]>::try_from(run(
        template("stripe.charge-refunded"),
        at("2012-01-18T02:24:38Z"),
    ))
    .unwrap();
    assert!(mapped.get("profile").is_none());
    // No clientEventId: the event id, Stripe's delivery id, keys it.
    assert_eq!(event.client_event_id, None);
    let refund = event.refund.unwrap();
    // An old API version: the charge names no PaymentIntent.
    assert_eq!(refund.order_id, "ch_00000000000000");
    assert_eq!(refund.amount, Some(10.0), "1000 cents");
    assert_eq!(refund.currency.as_deref(), Some("USD"));
    assert_eq!(refund.reason, None);

    // A zero-decimal currency is not divided; the newest of several refunds counts.
    let mapping = JsonataMapping::compile(template("stripe.charge-refunded").mapping).unwrap();
    let charge = serde_json::json!({"created": 1_700_000_000, "id": "evt_1", "data": {"object": {
        "id": "ch_1", "payment_intent": "pi_1", "currency": "jpy", "amount_refunded": 1500,
        "refunds": {"object": "list", "data": [
            {"amount": 500, "reason": "requested_by_customer"}, {"amount": 1000}
        ]}
    }}});
    let mapped = mapping
        .apply(&Document::from_json(charge), &MappingLimits::default())
        .unwrap();
    assert_eq!(
        mapped["payload"],
        serde_json::json!({"timestamp": 1_700_000_000_000_i64, "orderId": "pi_1",
            "amount": 500, "currency": "JPY", "reason": "requested_by_customer"})
    );
}

#[test]
fn woocommerce_order() {
    let [(mapped, event)] = <[_; 1]>::try_from(run(
        template("woocommerce.order-created"),
        at("2017-03-22T19:28:02Z"),
    ))
    .unwrap();
    assert_eq!(
        profile(&mapped),
        ("email".into(), "john.doe@example.com".into())
    );
    let purchase = event.purchase.clone().unwrap();
    assert_eq!(purchase.order_id, "727");
    assert_eq!(purchase.amount, 29.35);
    assert_eq!(purchase.currency, "USD");
    assert_eq!(
        lines(&purchase),
        [
            ("93", "Woo Single #1", 2.0, 3.0),
            (
                "Bar3",
                "Ship Your Idea &ndash; Color: Black, Size: M Test",
                1.0,
                12.0
            ),
        ]
    );
    assert_eq!(
        tags(&event),
        pairs([("source", "woocommerce"), ("status", "processing")])
    );
}

#[test]
fn typeform_hubspot_segment_github_gtm() {
    let [(mapped, event)] = <[_; 1]>::try_from(run(
        template("typeform.form-response"),
        at("2018-01-18T18:17:02Z"),
    ))
    .unwrap();
    assert_eq!(
        profile(&mapped),
        ("email".into(), "laura@example.com".into())
    );
    assert_eq!(event.client_event_id, None, "event_id is the delivery id");
    assert_eq!(
        tags(&event),
        pairs([
            ("source", "typeform"),
            ("form", "lT4Z3j"),
            ("formTitle", "Webhooks example")
        ])
    );
    assert_eq!(
        counters(&event),
        [("answers".to_string(), 12.0), ("score".to_string(), 9.0)]
    );

    let [(mapped, event)] = <[_; 1]>::try_from(run(
        template("hubspot.contact-event"),
        at("2019-07-26T04:00:00Z"),
    ))
    .unwrap();
    assert_eq!(profile(&mapped), ("hubspotContactId".into(), "123".into()));
    assert_eq!(
        event.client_event_id.as_deref(),
        Some("hubspot-12345-1-123")
    );
    assert_eq!(
        tags(&event),
        pairs([
            ("source", "hubspot"),
            ("subscriptionType", "contact.creation"),
            ("changeSource", "CRM")
        ])
    );

    let [(mapped, event)] = <[_; 1]>::try_from(run(
        template("segment.track"),
        at("2015-12-12T19:11:01.249Z"),
    ))
    .unwrap();
    assert_eq!(profile(&mapped), ("customerId".into(), "AiUGstSDIg".into()));
    assert_eq!(event.client_event_id, None, "messageId is the delivery id");
    assert_eq!(
        tags(&event),
        pairs([
            ("source", "segment"),
            ("event", "Course Clicked"),
            ("title", "Intro to Analytics")
        ])
    );
    assert!(event.counters.is_empty());

    let [(mapped, event)] =
        <[_; 1]>::try_from(run(template("github.push"), at("2019-05-15T15:19:25Z"))).unwrap();
    assert_eq!(
        profile(&mapped),
        (
            "email".into(),
            "21031067+codertocat@users.noreply.github.com".into()
        )
    );
    assert_eq!(
        tags(&event),
        pairs([
            ("source", "github"),
            ("repository", "Codertocat/Hello-World"),
            ("ref", "refs/heads/master")
        ])
    );
    assert_eq!(counters(&event), [("commits".to_string(), 1.0)]);

    let [(mapped, event)] = <[_; 1]>::try_from(run(
        template("gtm.custom-event"),
        at("2026-11-26T11:00:00Z"),
    ))
    .unwrap();
    assert_eq!(profile(&mapped), ("email".into(), "ann@example.com".into()));
    assert_eq!(
        tags(&event),
        pairs([
            ("source", "gtm"),
            ("event", "new_subscriber"),
            ("formLocation", "footer")
        ])
    );
    assert!(event.counters.is_empty());
}

#[tokio::test]
async fn connectors_from_templates() {
    use loyalty_core::prelude::*;
    use loyalty_core::templates::ConnectorFromTemplate;
    use std::sync::Arc;

    let engine = Engine::new(
        Arc::new(loyalty_store_memory::MemoryStore::new()),
        Arc::new(SystemClock),
    );
    let (program, _) = engine
        .create_program(ProgramSpec {
            name: "Templates".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(engine.templates().len(), templates::all().len());
    for template in engine.templates() {
        let view = engine
            .create_connector_from_template(&program.id, ConnectorFromTemplate::new(template.id))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", template.id));
        assert_eq!(view.name, template.name);
        assert_eq!(view.event_type, template.event_type);
        assert_eq!(view.mapping, template.mapping);
        assert_eq!(view.auth["type"], template.auth_type, "{}", template.id);
        let generated = view.auth.get("secrets").or(view.auth.get("token"));
        assert!(
            generated.is_some(),
            "{}: a credential is generated",
            template.id
        );
    }
    // Fields given beside the template win whole: an auth given replaces the template's.
    let request: ConnectorFromTemplate = serde_json::from_value(serde_json::json!({
        "template": "shopify.orders-create",
        "name": "My shop",
        "auth": {"type": "hubSignature", "encoding": "base64", "prefix": "", "secrets": ["s"]},
        "testMode": true,
    }))
    .unwrap();
    let view = engine
        .create_connector_from_template(&program.id, request)
        .await
        .unwrap();
    assert_eq!(view.name, "My shop");
    assert!(view.test_mode);
    assert_eq!(view.event_type, EventType::EcommercePurchase);
    assert_eq!(view.auth["type"], "hubSignature");
    assert_eq!(view.auth["encoding"], "base64");
    assert!(view.auth.get("secrets").is_none(), "nothing generated");
    let unknown = engine
        .create_connector_from_template(&program.id, ConnectorFromTemplate::new("paypal.sale"))
        .await;
    assert!(matches!(unknown, Err(Error::Invalid { ref path, .. }) if path == "/template"));
}

#[tokio::test]
async fn a_shopify_refund_takes_back_its_orders_points() {
    use loyalty_core::auth::{body_signature, Algorithm, Encoding};
    use loyalty_core::engine::ItemOutcome;
    use loyalty_core::prelude::*;
    use loyalty_core::templates::ConnectorFromTemplate;
    use std::sync::Arc;

    let clock = FixedClock::new(at("2022-01-01T00:05:00Z"));
    let engine = Engine::new(
        Arc::new(loyalty_store_memory::MemoryStore::new()),
        Arc::new(clock),
    );
    let (program, _) = engine
        .create_program(ProgramSpec {
            name: "Shop".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let connector = |template: &str| {
        let request: ConnectorFromTemplate = serde_json::from_value(serde_json::json!({
            "template": template,
            "auth": {"type": "shopify", "secrets": ["shpss_secret"]},
        }))
        .unwrap();
        engine.create_connector_from_template(&program.id, request)
    };
    let orders = connector("shopify.orders-create").await.unwrap();
    let refunds = connector("shopify.refunds-create").await.unwrap();
    let rule: RuleSpec = serde_json::from_value(serde_json::json!({
        "name": "A point a dollar", "connectorId": orders.id,
        "points": {"perAmount": {"points": 1, "per": 1}},
    }))
    .unwrap();
    engine.create_rule(&program.id, rule).await.unwrap();
    let send = |connector: ConnectorId, template: &str| {
        let body = template_body(template);
        let engine = &engine;
        async move {
            let signature = body_signature(
                Algorithm::Sha256,
                Encoding::Base64,
                "",
                "shpss_secret",
                body.as_bytes(),
            );
            let headers = [("X-Shopify-Hmac-Sha256", signature.as_bytes())];
            engine
                .ingest(IncomingRequest {
                    connector_id: connector.as_str(),
                    query: "",
                    headers: &headers,
                    body: body.as_bytes(),
                    test: false,
                })
                .await
                .unwrap()
                .results
                .remove(0)
        }
    };
    let order = send(orders.id.clone(), "shopify.orders-create").await;
    assert_eq!(order.points(), 404, "{order:?}");
    let refund = send(refunds.id.clone(), "shopify.refunds-create").await;
    // 75 of 404.95 refunded: 74 of the 404 points, rounded down.
    assert!(
        matches!(refund.outcome, ItemOutcome::Refunded { points: -74, .. }),
        "{refund:?}"
    );
    let member = engine
        .find_member(&program.id, "email", "jon@example.com")
        .await
        .unwrap();
    assert_eq!(member.balance, 404 - 74);
}

/// A template's sample as the sender's body.
fn template_body(id: &str) -> String {
    template(id).sample_payload().to_string()
}
