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
//! use loyalty_core::prelude::*;
//! use loyalty_store_memory::MemoryStore;
//! use std::sync::Arc;
//!
//! let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock));
//! let (program, _admin_token) = engine
//!     .create_program(ProgramSpec { name: "Readers".into(), ..Default::default() })
//!     .await?;
//! let mapping = r#"{"clientEventId": id, "profile": {"kind": "email", "value": email},
//!                   "payload": {"tags": [{"name": "theme", "value": theme}]}}"#;
//! let connector = engine
//!     .create_connector(
//!         &program.id,
//!         ConnectorSpec::new(
//!             "Article Read",
//!             EventType::CustomBasic,
//!             AuthSpec::query_token("token", "s3cret"),
//!             mapping,
//!         ),
//!     )
//!     .await?;
//! let rule = RuleSpec::new("Sport readers", connector.id.clone(), PointsRule::fixed(10))
//!     .when(Condition::tag("theme", TextTest::Eq("sport".into())))
//!     .limit(Limit::count(1, Period::Day));
//! engine.create_rule(&program.id, rule).await?;
//!
//! let body = br#"{"id": "evt-1", "email": "ann@example.com", "theme": "sport"}"#;
//! let request = IncomingRequest {
//!     connector_id: connector.id.as_str(),
//!     query: "token=s3cret",
//!     headers: &[],
//!     body,
//!     test: false,
//! };
//! let response = engine.ingest(request).await?;
//! match &response.results[0].outcome {
//!     ItemOutcome::Accepted { points, .. } => assert_eq!(*points, 10),
//!     other => panic!("not accepted: {other:?}"),
//! }
//! // Sent again, it is a duplicate: nothing is awarded twice.
//! let again = engine.ingest(request).await?;
//! assert_eq!(again.results[0].status(), ItemStatus::Duplicate);
//! # Ok::<(), Error>(())
//! # }).unwrap();
//! ```

pub mod auth;
pub mod clock;
pub mod connector;
pub mod engine;
pub mod error;
pub mod event;
pub mod feed;
pub mod ids;
pub mod ledger;
pub mod lots;
pub mod mapping;
pub mod member;
pub mod program;
pub mod replay;
pub mod reversal;
pub mod rules;
pub mod secret;
pub mod store;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhooks;

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
    pub use crate::feed::{ChangeBody, FeedItem};
    pub use crate::ids::{ConnectorId, EventId, MemberId, ProgramId, RuleId};
    pub use crate::ledger::ItemStatus;
    pub use crate::program::ProgramSpec;
    pub use crate::replay::{ReplayProgress, ReplaySpec, ReplayState};
    pub use crate::rules::{Condition, Limit, NumberTest, Period, PointsRule, RuleSpec, TextTest};
    pub use crate::store::Store;
    pub use crate::{Engine, Error, Limits};
}
