//! The storage conformance suite, against PostgreSQL: one fresh database per test.

mod common;

use loyalty_core::store::Store;
use std::sync::Arc;

async fn new_store() -> Arc<dyn Store> {
    common::new_store().await
}

loyalty_core::store_conformance_suite!(new_store);
