//! The storage conformance suite, against the memory store.

use loyalty_core::store::Store;
use loyalty_store_memory::MemoryStore;
use std::sync::Arc;

async fn new_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

loyalty_core::store_conformance_suite!(new_store);
