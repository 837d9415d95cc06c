//! Loaded connectors (program, compiled mapping, rules), kept for a short time so that an
//! ingestion request costs no store read in the common case.

use super::Engine;
use crate::connector::Connector;
use crate::error::{Error, Result};
use crate::ids::ConnectorId;
use crate::mapping::{JsonataMapping, Mapping};
use crate::program::Program;
use crate::rules::RuleSet;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A connector ready to ingest: its program, compiled mapping and rules.
#[derive(Debug)]
pub(crate) struct LoadedConnector {
    pub(super) program: Program,
    pub(super) connector: Connector,
    pub(super) mapping: Arc<dyn Mapping>,
    pub(super) rules: Arc<RuleSet>,
    pub(super) loaded_at: DateTime<Utc>,
    /// Recent mapping time per item, in microseconds.
    pub(super) mapping_micros: AtomicU64,
    /// A request is reloading this entry.
    pub(super) refreshing: AtomicBool,
}

/// The loaded connectors, by id.
#[derive(Debug, Default)]
pub(crate) struct ConnectorCache(RwLock<HashMap<ConnectorId, Arc<LoadedConnector>>>);

impl ConnectorCache {
    fn get(&self, id: &ConnectorId) -> Option<Arc<LoadedConnector>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    fn insert(&self, id: ConnectorId, loaded: Arc<LoadedConnector>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, loaded);
    }

    fn remove(&self, id: &ConnectorId) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

impl Engine {
    pub(super) async fn load(&self, id: &ConnectorId) -> Result<Arc<LoadedConnector>> {
        let now = self.now();
        if let Some(loaded) = self.connectors.get(id) {
            if now - loaded.loaded_at < self.limits.connector_cache_ttl {
                return Ok(loaded.clone());
            }
            // Expired: one request reloads it while the others go on with the entry they
            // have, so that an expiry under load costs one round of queries, not one each.
            if loaded.refreshing.swap(true, Ordering::AcqRel) {
                return Ok(loaded.clone());
            }
        }
        let reloaded = self.reload(id, now).await;
        if reloaded.is_err() {
            // Deleted elsewhere, or the store failed: nothing stale is kept.
            self.forget(id);
        }
        reloaded
    }

    async fn reload(&self, id: &ConnectorId, now: DateTime<Utc>) -> Result<Arc<LoadedConnector>> {
        let connector = match self.store.get_connector(id).await? {
            Some(c) if !c.deleted => c,
            _ => return Err(Error::NotFound { what: "connector" }),
        };
        let program = self
            .store
            .get_program(&connector.program_id)
            .await?
            .ok_or(Error::NotFound { what: "connector" })?;
        let rules = self
            .store
            .list_rules(&connector.program_id, Some(id))
            .await?;
        // Reuse the compiled mapping when the connector did not change.
        let previous = self.connectors.get(id);
        let (mapping, mapping_micros): (Arc<dyn Mapping>, u64) = match previous {
            Some(p) if p.connector.revision == connector.revision => {
                (p.mapping.clone(), p.mapping_micros.load(Ordering::Relaxed))
            }
            _ => (
                Arc::new(
                    JsonataMapping::compile(&connector.mapping).map_err(Error::InvalidMapping)?,
                ),
                0,
            ),
        };
        let loaded = Arc::new(LoadedConnector {
            program,
            connector,
            mapping,
            rules: Arc::new(RuleSet::new(rules)),
            loaded_at: now,
            mapping_micros: AtomicU64::new(mapping_micros),
            refreshing: AtomicBool::new(false),
        });
        self.connectors.insert(id.clone(), loaded.clone());
        Ok(loaded)
    }

    pub(super) fn forget(&self, id: &ConnectorId) {
        self.connectors.remove(id);
    }
}
