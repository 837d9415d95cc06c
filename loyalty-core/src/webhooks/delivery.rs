//! A message to one endpoint (a delivery), the attempts to send it, and its states:
//! `pending` (an attempt is due at `nextAttemptAt`) → `delivered` (a 2xx answer) or, once the
//! retry schedule is spent, `failed`. A manual retry puts any delivery back to `pending`.

use super::endpoint::Webhook;
use super::schedule::RetrySchedule;
use crate::ids::{MemberId, MessageId, ProgramId, WebhookId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The longest error text kept with an attempt, in bytes.
pub const MAX_ATTEMPT_ERROR_BYTES: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// One attempt: when, and what came back (an HTTP status) or what went wrong before any
/// answer (a refused target, a timeout, a connection error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; `null` when there was no answer.
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// What an attempt came to, as the sender saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Answered {
        status: u16,
    },
    /// No answer: the error, for the log (never with a secret or the body in it).
    NoAnswer {
        error: String,
    },
}

impl AttemptOutcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, AttemptOutcome::Answered { status } if (200..300).contains(status))
    }

    pub fn into_attempt(self, at: DateTime<Utc>, duration_ms: u64) -> Attempt {
        match self {
            AttemptOutcome::Answered { status } => Attempt {
                at,
                status: Some(status),
                error: None,
                duration_ms,
            },
            AttemptOutcome::NoAnswer { error } => Attempt {
                at,
                status: None,
                error: Some(truncate(error, MAX_ATTEMPT_ERROR_BYTES)),
                duration_ms,
            },
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// A delivery to store: one message for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    /// Its `webhook-id`: derived from the endpoint and the change ([`message_id`]), so that
    /// a change dispatched twice is one delivery.
    pub id: MessageId,
    pub webhook_id: WebhookId,
    pub program_id: ProgramId,
    /// `member.points_changed`, `event.logged` or `webhook.test`.
    pub message_type: String,
    pub member_id: Option<MemberId>,
    /// Messages with the same key go out one at a time, in `order`: a member's id (its
    /// changes in commit order), else the message's own id (no order to keep).
    pub ordering_key: String,
    pub order: i64,
    /// The JSON body, signed and sent byte for byte on every attempt.
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// A stored delivery with its attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub message: NewDelivery,
    pub state: DeliveryState,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
    /// The store's position of the delivery, for listing newest first.
    pub seq: i64,
}

/// A delivery a worker holds for a while (its lease), with its endpoint as it is now.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    pub delivery: Delivery,
    pub webhook: Webhook,
    /// Proves the claim when the attempt is recorded: a worker whose lease ran out (and
    /// whose delivery another worker claimed) records nothing.
    pub lease: String,
}

/// The `webhook-id` of a change sent to an endpoint: `msg_` and 32 hex digits of a SHA-256 of
/// both, the same however often the change is dispatched.
pub fn message_id(webhook: &WebhookId, change: &str) -> MessageId {
    let digest = Sha256::new()
        .chain_update(webhook.as_str())
        .chain_update([0])
        .chain_update(change)
        .finalize();
    MessageId::new(format!("msg_{}", &hex::encode(digest)[..32]))
}

impl Delivery {
    /// What follows an attempt (`attempts` already counts it): delivered on a 2xx answer,
    /// else pending until the schedule's next delay, else failed.
    pub fn after_attempt(
        attempts: u32,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
        schedule: &RetrySchedule,
    ) -> (DeliveryState, Option<DateTime<Utc>>) {
        if outcome.succeeded() {
            return (DeliveryState::Delivered, None);
        }
        match schedule.delay_after_random(attempts) {
            Some(delay) => (DeliveryState::Pending, Some(now + delay)),
            None => (DeliveryState::Failed, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn message_ids_are_stable_per_endpoint_and_change() {
        let a = WebhookId::new("whk_a");
        let b = WebhookId::new("whk_b");
        assert_eq!(message_id(&a, "42"), message_id(&a, "42"));
        assert_ne!(message_id(&a, "42"), message_id(&a, "43"));
        assert_ne!(message_id(&a, "42"), message_id(&b, "42"));
        assert!(message_id(&a, "42").as_str().starts_with("msg_"));
        assert_eq!(message_id(&a, "42").as_str().len(), 36);
    }

    #[test]
    fn an_attempt_delivers_retries_or_gives_up() {
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
        let schedule = RetrySchedule::standard();
        let ok = AttemptOutcome::Answered { status: 204 };
        let error = AttemptOutcome::Answered { status: 500 };
        let timeout = AttemptOutcome::NoAnswer {
            error: "timed out".into(),
        };
        assert_eq!(
            Delivery::after_attempt(1, &ok, now, &schedule),
            (DeliveryState::Delivered, None)
        );
        for outcome in [&error, &timeout, &AttemptOutcome::Answered { status: 301 }] {
            let (state, next) = Delivery::after_attempt(1, outcome, now, &schedule);
            assert_eq!(state, DeliveryState::Pending);
            let wait = (next.unwrap() - now).num_milliseconds();
            assert!((4_000..=6_000).contains(&wait), "{wait}");
        }
        assert_eq!(
            Delivery::after_attempt(schedule.max_attempts(), &error, now, &schedule),
            (DeliveryState::Failed, None)
        );
    }

    #[test]
    fn attempt_errors_are_cut_to_their_bound() {
        let attempt = AttemptOutcome::NoAnswer {
            error: "é".repeat(500),
        }
        .into_attempt(Utc::now(), 3);
        let error = attempt.error.unwrap();
        assert!(error.len() <= MAX_ATTEMPT_ERROR_BYTES && error.len() >= 198);
    }
}
