//! Each sender's delivery id is the default `clientEventId`, so that the sender's retry of a
//! delivery is a duplicate: through `Engine::ingest`, with the memory store.

use chrono::{TimeZone, Utc};
use loyalty_core::auth::{body_signature, standard_webhooks_signature, Algorithm, Encoding};
use loyalty_core::prelude::*;
use loyalty_store_memory::MemoryStore;
use serde_json::json;
use std::sync::Arc;

const SECRET: &str = "s3cret-for-delivery-ids";
const MAPPING: &str =
    r#"{"profile": {"kind": "default", "value": email}, "payload": {"timestamp": at}}"#;

struct Sender {
    engine: Engine,
    connector: String,
}

impl Sender {
    async fn new(auth: serde_json::Value) -> Self {
        let clock = FixedClock::new(Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap());
        let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(clock))
            .with_public_base_url("https://loyalty.example");
        let (program, _) = engine
            .create_program(ProgramSpec {
                name: "Senders".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let spec: ConnectorSpec = serde_json::from_value(json!({
            "name": "Sender", "eventType": "custom.basic", "auth": auth, "mapping": MAPPING,
        }))
        .unwrap();
        let connector = engine.create_connector(&program.id, spec).await.unwrap();
        Sender {
            engine,
            connector: connector.id.to_string(),
        }
    }

    /// Sends the same signed request twice: the ids the items were keyed by, the first time.
    async fn send_twice(&self, headers: &[(&str, &[u8])], body: &str) -> Vec<Option<String>> {
        let send = || {
            self.engine.ingest(IncomingRequest {
                connector_id: &self.connector,
                query: "",
                headers,
                body: body.as_bytes(),
                test: false,
            })
        };
        let first = send().await.unwrap();
        let again = send().await.unwrap();
        for (one, other) in first.results.iter().zip(&again.results) {
            assert_eq!(one.status(), ItemStatus::Accepted, "{one:?}");
            assert_eq!(other.status(), ItemStatus::Duplicate, "{other:?}");
            assert_eq!(one.client_event_id, other.client_event_id);
        }
        first
            .results
            .into_iter()
            .map(|r| r.client_event_id)
            .collect()
    }
}

fn hmac(algorithm: Algorithm, encoding: Encoding, parts: &[&[u8]]) -> String {
    encoding.encode(&algorithm.hmac(SECRET.as_bytes(), parts))
}

fn item(extra: serde_json::Value) -> serde_json::Value {
    let mut item = json!({"email": "ann@example.com", "at": "2026-11-26T11:00:00Z"});
    item.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    item
}

fn one(ids: Vec<Option<String>>) -> String {
    assert_eq!(ids.len(), 1);
    ids.into_iter().next().unwrap().unwrap()
}

#[tokio::test]
async fn header_delivery_ids_key_items_and_bulks() {
    let cases = [
        (
            "github",
            "X-Hub-Signature-256",
            "sha256=",
            Encoding::Hex,
            "X-GitHub-Delivery",
        ),
        (
            "shopify",
            "X-Shopify-Hmac-Sha256",
            "",
            Encoding::Base64,
            "X-Shopify-Webhook-Id",
        ),
        (
            "woocommerce",
            "X-WC-Webhook-Signature",
            "",
            Encoding::Base64,
            "X-WC-Webhook-Delivery-ID",
        ),
    ];
    for (scheme, header, prefix, encoding, delivery_header) in cases {
        let sender = Sender::new(json!({"type": scheme, "secrets": [SECRET]})).await;
        let body = item(json!({})).to_string();
        let signature =
            body_signature(Algorithm::Sha256, encoding, prefix, SECRET, body.as_bytes());
        let headers = [
            (header, signature.as_bytes()),
            (delivery_header, &b"delivery-1"[..]),
        ];
        assert_eq!(
            one(sender.send_twice(&headers, &body).await),
            "delivery-1",
            "{scheme}"
        );
        let bulk = json!([item(json!({})), item(json!({"email": "bob@example.com"}))]).to_string();
        let signature =
            body_signature(Algorithm::Sha256, encoding, prefix, SECRET, bulk.as_bytes());
        let headers = [
            (header, signature.as_bytes()),
            (delivery_header, &b"delivery-2"[..]),
        ];
        assert_eq!(
            sender.send_twice(&headers, &bulk).await,
            vec![Some("delivery-2:0".into()), Some("delivery-2:1".into())],
            "{scheme}"
        );
    }
    let sender = Sender::new(json!({
        "type": "hubSignature", "deliveryIdHeader": "X-Request-Id", "secrets": [SECRET],
    }))
    .await;
    let body = item(json!({})).to_string();
    let signature = body_signature(
        Algorithm::Sha256,
        Encoding::Hex,
        "sha256=",
        SECRET,
        body.as_bytes(),
    );
    let headers = [
        ("X-Hub-Signature-256", signature.as_bytes()),
        ("X-Request-Id", &b"r-9"[..]),
    ];
    assert_eq!(one(sender.send_twice(&headers, &body).await), "r-9");
}

#[tokio::test]
async fn body_field_delivery_ids_name_each_item() {
    let body = item(json!({"event_id": "01HW8V9", "messageId": "ajs-next-69", "id": "evt_1N"}));
    let body = body.to_string();
    let typeform = format!(
        "sha256={}",
        hmac(Algorithm::Sha256, Encoding::Base64, &[body.as_bytes()])
    );
    let sender = Sender::new(json!({"type": "typeform", "secrets": [SECRET]})).await;
    let headers = [("Typeform-Signature", typeform.as_bytes())];
    assert_eq!(one(sender.send_twice(&headers, &body).await), "01HW8V9");

    let segment = hmac(Algorithm::Sha1, Encoding::Hex, &[body.as_bytes()]);
    let sender = Sender::new(json!({"type": "segment", "secrets": [SECRET]})).await;
    let headers = [("X-Signature", segment.as_bytes())];
    assert_eq!(one(sender.send_twice(&headers, &body).await), "ajs-next-69");
    // A bulk: each item by its own id, not by its position.
    let bulk = json!([
        item(json!({"messageId": "m-1"})),
        item(json!({"messageId": "m-2", "email": "bob@example.com"}))
    ])
    .to_string();
    let segment = hmac(Algorithm::Sha1, Encoding::Hex, &[bulk.as_bytes()]);
    let headers = [("X-Signature", segment.as_bytes())];
    assert_eq!(
        sender.send_twice(&headers, &bulk).await,
        vec![Some("m-1".into()), Some("m-2".into())]
    );

    let t = "1795694400";
    let stripe = hmac(
        Algorithm::Sha256,
        Encoding::Hex,
        &[t.as_bytes(), b".", body.as_bytes()],
    );
    let header = format!("t={t},v1={stripe}");
    let sender = Sender::new(json!({"type": "stripe", "secrets": [SECRET]})).await;
    let headers = [("Stripe-Signature", header.as_bytes())];
    assert_eq!(one(sender.send_twice(&headers, &body).await), "evt_1N");
}

#[tokio::test]
async fn timestamped_and_standard_webhooks_delivery_ids() {
    let body = item(json!({})).to_string();
    let at = "2026-11-26T12:00:00Z";
    let zendesk = hmac(
        Algorithm::Sha256,
        Encoding::Base64,
        &[at.as_bytes(), body.as_bytes()],
    );
    let sender = Sender::new(json!({"type": "zendesk", "secrets": [SECRET]})).await;
    let headers = [
        ("X-Zendesk-Webhook-Signature", zendesk.as_bytes()),
        ("X-Zendesk-Webhook-Signature-Timestamp", at.as_bytes()),
        ("X-Zendesk-Webhook-Invocation-Id", &b"8350205582"[..]),
        ("X-Zendesk-Webhook-Id", &b"01F1KRFQ6BG29CNWFR60NK5FNY"[..]),
    ];
    assert_eq!(one(sender.send_twice(&headers, &body).await), "8350205582");

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let sender = Sender::new(json!({"type": "standardWebhooks", "secrets": [secret]})).await;
    let signature =
        standard_webhooks_signature(secret, "msg_2Kx", 1_795_694_400, body.as_bytes()).unwrap();
    for family in ["webhook", "svix"] {
        let names = ["id", "timestamp", "signature"].map(|n| format!("{family}-{n}"));
        let headers = [
            (names[0].as_str(), &b"msg_2Kx"[..]),
            (names[1].as_str(), &b"1795694400"[..]),
            (names[2].as_str(), signature.as_bytes()),
        ];
        let ids = if family == "webhook" {
            sender.send_twice(&headers, &body).await
        } else {
            // The same message under Svix's names is the same delivery: a duplicate.
            let response = sender
                .engine
                .ingest(IncomingRequest {
                    connector_id: &sender.connector,
                    query: "",
                    headers: &headers,
                    body: body.as_bytes(),
                    test: false,
                })
                .await
                .unwrap();
            assert_eq!(response.results[0].status(), ItemStatus::Duplicate);
            vec![response.results[0].client_event_id.clone()]
        };
        assert_eq!(one(ids), "msg_2Kx");
    }

    // Slack and HubSpot name no delivery: the derived id keeps a retry a duplicate.
    let ts = "1795694400";
    let slack = format!(
        "v0={}",
        hmac(
            Algorithm::Sha256,
            Encoding::Hex,
            &[b"v0:", ts.as_bytes(), b":", body.as_bytes()]
        )
    );
    let sender = Sender::new(json!({"type": "slack", "secrets": [SECRET]})).await;
    let headers = [
        ("X-Slack-Signature", slack.as_bytes()),
        ("X-Slack-Request-Timestamp", ts.as_bytes()),
    ];
    assert!(one(sender.send_twice(&headers, &body).await).starts_with("sha256:"));

    let sender = Sender::new(json!({"type": "hubspot", "secrets": [SECRET]})).await;
    let uri = format!("https://loyalty.example/v1/incoming/{}", sender.connector);
    let ms = "1795694400000";
    let hubspot = hmac(
        Algorithm::Sha256,
        Encoding::Base64,
        &[b"POST", uri.as_bytes(), body.as_bytes(), ms.as_bytes()],
    );
    let headers = [
        ("X-HubSpot-Signature-v3", hubspot.as_bytes()),
        ("X-HubSpot-Request-Timestamp", ms.as_bytes()),
    ];
    assert!(one(sender.send_twice(&headers, &body).await).starts_with("sha256:"));
}

#[tokio::test]
async fn hubspot_signs_the_connector_public_url_before_the_engines() {
    let sender = Sender::new(json!({"type": "hubspot", "secrets": [SECRET]})).await;
    let program = sender.engine.list_programs().await.unwrap().remove(0).id;
    let spec = |url: &str| -> ConnectorSpec {
        serde_json::from_value(json!({
            "name": "HubSpot", "eventType": "custom.basic", "mapping": MAPPING,
            "auth": {"type": "hubspot", "secrets": [SECRET]}, "publicBaseUrl": url,
        }))
        .unwrap()
    };
    let connector = sender
        .engine
        .create_connector(&program, spec("https://proxy.example/loyalty/"))
        .await
        .unwrap();
    assert_eq!(
        connector.public_base_url.as_deref(),
        Some("https://proxy.example/loyalty")
    );
    let body = item(json!({})).to_string();
    let ms = "1795694400000";
    let sign = |base: &str| {
        let uri = format!("{base}/v1/incoming/{}?portalId=62515", connector.id);
        hmac(
            Algorithm::Sha256,
            Encoding::Base64,
            &[b"POST", uri.as_bytes(), body.as_bytes(), ms.as_bytes()],
        )
    };
    for (base, accepted) in [
        ("https://proxy.example/loyalty", true),
        ("https://loyalty.example", false),
    ] {
        let signature = sign(base);
        let headers = [
            ("X-HubSpot-Signature-v3", signature.as_bytes()),
            ("X-HubSpot-Request-Timestamp", ms.as_bytes()),
        ];
        let result = sender
            .engine
            .ingest(IncomingRequest {
                connector_id: connector.id.as_str(),
                query: "portalId=62515",
                headers: &headers,
                body: body.as_bytes(),
                test: false,
            })
            .await;
        assert_eq!(result.is_ok(), accepted, "{base}: {result:?}");
    }
    for bad in [
        "ftp://x.example",
        "https://x.example/?a=1",
        "https://x .example",
    ] {
        let refused = sender.engine.create_connector(&program, spec(bad)).await;
        assert!(
            matches!(refused, Err(Error::Invalid { ref path, .. }) if path == "/publicBaseUrl"),
            "{bad}"
        );
    }
}
