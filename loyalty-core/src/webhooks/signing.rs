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
