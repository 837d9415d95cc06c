//! `loyalty`: the facade over the engine's crates, so that the examples and benchmarks at the
//! root of the workspace (`cargo run --example server`, `cargo bench`) see all of them.
//!
//! - [`core`]: the pure engine (connectors, authentication, mapping, rules, the store contract).
//! - [`store_memory`], [`store_postgres`]: the two stores.
//! - [`http`]: the axum front end.

pub use loyalty_core as core;
pub use loyalty_http as http;
pub use loyalty_store_memory as store_memory;
pub use loyalty_store_postgres as store_postgres;
