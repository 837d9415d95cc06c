//! The headers of one attempt: Standard Webhooks, signed with every secret that signs at the
//! time of the attempt (so a receiver that has either secret of a rotation accepts it).

use super::delivery::Delivery;
use super::endpoint::Webhook;
use crate::auth::sign_standard_webhooks;
use chrono::{DateTime, Utc};

/// `webhook-id`, `webhook-timestamp` and `webhook-signature`, as sent.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}

impl std::fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("id", &self.id)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// The signed headers of an attempt at `now` (the timestamp is the attempt's: receivers refuse
/// old timestamps, and a retry hours later must pass). `None` if the endpoint has no valid
/// secret, which creation and rotation do not allow.
pub fn attempt_headers(
    webhook: &Webhook,
    delivery: &Delivery,
    now: DateTime<Utc>,
) -> Option<SignedHeaders> {
    let secrets: Vec<_> = webhook
        .signing_secrets(now)
        .map(|secret| secret.secret.clone())
        .collect();
    let id = delivery.message.id.as_str();
    let timestamp = now.timestamp();
    let signature =
        sign_standard_webhooks(&secrets, id, timestamp, delivery.message.body.as_bytes())?;
    Some(SignedHeaders {
        id: id.to_owned(),
        timestamp: timestamp.to_string(),
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MessageId, ProgramId, WebhookId};
    use crate::secret::Secret;
    use crate::webhooks::{DeliveryState, NewDelivery, WebhookSecret};
    use chrono::TimeZone;

    /// The specification's published vector, signed as an attempt, beside an old secret still
    /// in its grace and one past it.
    #[test]
    fn attempts_are_signed_as_the_specification_says_with_every_live_secret() {
        let now = Utc.timestamp_opt(1_614_265_330, 0).unwrap();
        let secret = |text: &str, expires_at| WebhookSecret {
            secret: Secret::new(text),
            expires_at,
        };
        let webhook = Webhook {
            id: WebhookId::new("whk_1"),
            program_id: ProgramId::new("prg_1"),
            url: "https://example.com/".into(),
            events: Vec::new(),
            secrets: vec![
                secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", None),
                secret(
                    "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                    Some(now + chrono::Duration::hours(1)),
                ),
                secret(
                    "whsec_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
                    Some(now - chrono::Duration::seconds(1)),
                ),
            ],
            created_at: now,
            dispatch_cursor: 0,
        };
        let delivery = Delivery {
            message: NewDelivery {
                id: MessageId::new("msg_p5jXN8AQM9LWM0D4loKWxJek"),
                webhook_id: webhook.id.clone(),
                program_id: webhook.program_id.clone(),
                message_type: "event.logged".into(),
                member_id: None,
                ordering_key: "k".into(),
                order: 1,
                body: r#"{"test": 2432232314}"#.into(),
                created_at: now,
            },
            state: DeliveryState::Pending,
            next_attempt_at: Some(now),
            attempts: Vec::new(),
            seq: 1,
        };
        let headers = attempt_headers(&webhook, &delivery, now).unwrap();
        assert_eq!(headers.id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(headers.timestamp, "1614265330");
        let entries: Vec<&str> = headers.signature.split(' ').collect();
        assert_eq!(entries.len(), 2, "the expired secret no longer signs");
        assert_eq!(
            entries[0],
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(!format!("{headers:?}").contains("v1,"));
    }
}
