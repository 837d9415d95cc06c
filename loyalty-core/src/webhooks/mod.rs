//! Outbound webhooks: a program's endpoints, the messages sent to them and the rules those
//! messages follow, with no I/O. One file a concern: `endpoint.rs` (an endpoint as written and
//! as stored, its secrets and their rotation), `target.rs` (which URLs and addresses may be
//! sent to), `schedule.rs` (when a failed message is tried again), `delivery.rs` (a message,
//! its attempts and its states) and `signing.rs` (the Standard Webhooks headers of an attempt).
//!
//! What moves messages (a dispatcher that turns the change feed into deliveries, the workers
//! that claim and send them) is in the engine and in `loyalty-http`: the core only decides.

mod delivery;
mod endpoint;
mod schedule;
mod signing;
mod target;

pub use delivery::{
    message_id, Attempt, AttemptOutcome, ClaimedDelivery, Delivery, DeliveryState, NewDelivery,
    MAX_ATTEMPT_ERROR_BYTES,
};
pub use endpoint::{
    EventKind, RotationSpec, Webhook, WebhookSecret, WebhookSpec, WebhookView,
    DEFAULT_ROTATION_GRACE_SECONDS, MAX_ROTATION_GRACE_SECONDS, MAX_URL_BYTES,
};
pub use schedule::RetrySchedule;
pub use signing::{attempt_headers, SignedHeaders};
pub use target::{address_is_private, TargetPolicy, TargetUrl};

/// The `type` of a test message (`POST …/webhooks/{id}/test`).
pub const TEST_MESSAGE_TYPE: &str = "webhook.test";
