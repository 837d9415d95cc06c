//! The loyalty engine's pure domain.
//!
//! `loyalty-core` turns authenticated requests from outside systems into loyalty points:
//! it checks a connector's authentication, maps each JSON item with the connector's JSONata
//! expression into a canonical event, resolves the member, evaluates the earning rules and
//! hands one atomic commit per batch to a [`store::Store`]. It does no I/O of its own: storage
//! and time come in through the [`store::Store`] and [`clock::Clock`] traits.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use loyalty_core::{Engine, clock::SystemClock, program::ProgramSpec};
//! use loyalty_store_memory::MemoryStore;
//!
//! let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock));
//! let (program, admin_token) = engine
//!     .create_program(ProgramSpec { name: "Readers".into(), ..Default::default() })
//!     .await
//!     .unwrap();
//! assert!(!admin_token.is_empty());
//! assert_eq!(program.name, "Readers");
//! # });
//! ```

pub mod auth;
pub mod clock;
pub mod connector;
pub mod engine;
pub mod error;
pub mod event;
pub mod ids;
pub mod ledger;
pub mod mapping;
pub mod member;
pub mod program;
pub mod reversal;
pub mod rules;
pub mod secret;
pub mod store;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;

pub use engine::{Engine, Limits};
pub use error::Error;

/// What an embedding program needs, in one import: `use loyalty_core::prelude::*;`.
pub mod prelude {
    pub use crate::auth::AuthSpec;
    pub use crate::clock::{Clock, FixedClock, SystemClock};
    pub use crate::connector::{ConnectorSpec, EventType};
    pub use crate::engine::{
        IncomingRequest, IngestResponse, ItemOutcome, ItemResult, SimulationResponse,
    };
    pub use crate::error::Result;
    pub use crate::ids::{ConnectorId, EventId, MemberId, ProgramId, RuleId};
    pub use crate::ledger::ItemStatus;
    pub use crate::program::ProgramSpec;
    pub use crate::rules::{Condition, Limit, NumberTest, Period, PointsRule, RuleSpec, TextTest};
    pub use crate::store::Store;
    pub use crate::{Engine, Error, Limits};
}
