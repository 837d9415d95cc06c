//! Newtype ids. Each carries a short prefix (`prg_`, `con_`, ...) so that an id pasted into a
//! log search or a support ticket says what it names.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        // Shared text: an id is cloned into every log entry, ledger line and index that names
        // it, and a clone is a reference count, not an allocation.
        pub struct $name(Arc<str>);

        impl $name {
            /// The prefix every generated id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id: a UUIDv7, so that ids sort in creation order within a process
            /// (rules of equal priority run in creation order) and still carry 74 random bits.
            pub fn generate() -> Self {
                const AT: usize = $prefix.len() + 1;
                let mut text = [0u8; AT + uuid::fmt::Simple::LENGTH];
                text[..AT - 1].copy_from_slice($prefix.as_bytes());
                text[AT - 1] = b'_';
                uuid::Uuid::now_v7().simple().encode_lower(&mut text[AT..]);
                // Prefix and hex digits: ASCII.
                Self(Arc::from(std::str::from_utf8(&text).unwrap_or_default()))
            }

            /// Wraps an id read from a store or a URL. No check is made: an id that names
            /// nothing is simply not found.
            pub fn new(id: impl Into<String>) -> Self {
                Self(Arc::from(id.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(Arc::from(id))
            }
        }
    };
}

id_type!(
    /// A loyalty program (one tenant).
    ProgramId,
    "prg"
);
id_type!(
    /// A connector ("incoming event"): one endpoint with its authentication and mapping.
    ConnectorId,
    "con"
);
id_type!(
    /// An earning rule.
    RuleId,
    "rul"
);
id_type!(
    /// A member of a program.
    MemberId,
    "mem"
);
id_type!(
    /// One logged item, whatever its status.
    EventId,
    "evt"
);
id_type!(
    /// One ledger entry.
    LedgerEntryId,
    "led"
);
id_type!(
    /// A replay (or backtest) of logged events.
    ReplayId,
    "rpl"
);

id_type!(
    /// An outbound webhook endpoint of a program.
    WebhookId,
    "whk"
);
id_type!(
    /// One message to one webhook endpoint: the `webhook-id` it is sent with, the same on
    /// every attempt, so that a receiver can drop a message it already handled.
    MessageId,
    "msg"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_are_unique() {
        let a = EventId::generate();
        let b = EventId::generate();
        assert!(a.as_str().starts_with("evt_"), "{a}");
        assert_eq!(a.as_str().len(), 4 + 32);
        assert!(a.as_str()[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(MemberId::generate().as_str().starts_with("mem_"));
        // Wrapped and generated ids compare by text.
        assert_eq!(EventId::new(a.as_str()), a);
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        let back: EventId = serde_json::from_str(&format!("\"{a}\"")).unwrap();
        assert_eq!(back, a);
    }
}
