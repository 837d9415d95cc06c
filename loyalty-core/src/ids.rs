//! Newtype ids. Each carries a short prefix (`prg_`, `con_`, ...) so that an id pasted into a
//! log search or a support ticket says what it names.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every generated id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id: a UUIDv7, so that ids sort in creation order within a process
            /// (rules of equal priority run in creation order) and still carry 74 random bits.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Wraps an id read from a store or a URL. No check is made: an id that names
            /// nothing is simply not found.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
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
                Self(id.to_owned())
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
