//! The engine: the operations an embedding program (or the HTTP layer) calls.

use crate::auth::{Authenticated, RequestParts};
use crate::clock::{stored_precision, Clock};
use crate::connector::{Connector, ConnectorSpec, ConnectorView};
use crate::error::{Error, Result};
use crate::event::{validate, ItemError};
use crate::ids::{ConnectorId, EventId, MemberId, ProgramId, RuleId};
use crate::ledger::{
    decode_cursor, ActivityItem, EventFilter, ItemStatus, LogEntry, Page, PageRequest, PurgeCounts,
    RawJson, MAX_PAGE_SIZE,
};
use crate::mapping::{Body, BodyError, BodyItem, Document, JsonataMapping, Mapping, MappingLimits};
use crate::member::{normalize, Identifier, IgnoredReason, Member};
use crate::program::{Program, ProgramSpec, DEFAULT_IDENTIFIER_KIND};
use crate::rules::{apply_usage, Award, Rule, RuleSet, RuleSpec, TraceEntry, Usage};
use crate::secret::TokenHash;
use crate::store::{Candidate, CommitBatch, PendingItem, Store};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Limits of the engine (DESIGN.md gives the defaults).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch_items: usize,
    pub mapping: MappingLimits,
    /// The raw item kept in the log, in bytes; longer ones are truncated and flagged.
    pub max_raw_bytes: usize,
    /// Mapping time for a whole request: past it, the remaining items are rejected, so that
    /// one hostile mapping cannot hold a worker for `max_batch_items` × the per-item timeout.
    pub max_request_mapping_time: std::time::Duration,
    /// How long a loaded connector (with its compiled mapping and rules) is reused before it
    /// is read again from the store. Changes made through this engine apply at once; this
    /// bounds how long another process's changes take to be seen.
    pub connector_cache_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch_items: 1000,
            mapping: MappingLimits::default(),
            max_raw_bytes: 16 * 1024,
            max_request_mapping_time: std::time::Duration::from_secs(2),
            connector_cache_ttl: Duration::seconds(1),
        }
    }
}

/// A request to a connector's endpoint, without HTTP.
#[derive(Clone, Copy, Debug)]
pub struct IncomingRequest<'a> {
    pub connector_id: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
    /// `?test=true`: store as test data.
    pub test: bool,
}

/// The answer to an ingestion request: one result per item, in order.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngestResponse {
    pub results: Vec<ItemResult>,
    pub accepted: usize,
    pub duplicates: usize,
    pub ignored: usize,
    pub rejected: usize,
}

/// What happened to one item.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    pub index: usize,
    pub status: ItemStatus,
    pub event_id: EventId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_event_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<MemberId>,
    pub points: i64,
    /// For an accepted item, always (empty when no rule awarded): API.md's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awards: Option<Vec<Award>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

impl IngestResponse {
    fn from_entries(entries: Vec<LogEntry>) -> Self {
        let mut response = IngestResponse {
            results: Vec::with_capacity(entries.len()),
            accepted: 0,
            duplicates: 0,
            ignored: 0,
            rejected: 0,
        };
        for (index, entry) in entries.into_iter().enumerate() {
            match entry.status {
                ItemStatus::Accepted => response.accepted += 1,
                ItemStatus::Duplicate => response.duplicates += 1,
                ItemStatus::Ignored => response.ignored += 1,
                ItemStatus::Rejected => response.rejected += 1,
            }
            response.results.push(ItemResult {
                index,
                status: entry.status,
                event_id: entry.id,
                original_event_id: entry.original_event_id,
                client_event_id: entry.client_event_id,
                member_id: entry.member_id,
                points: entry.points,
                awards: (entry.status == ItemStatus::Accepted).then_some(entry.awards),
                reason: entry.reason,
                error: entry.error,
            });
        }
        response
    }
}

/// What a simulation says would happen to one item.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedItem {
    pub index: usize,
    pub status: ItemStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_event_id: Option<EventId>,
    pub mapped: Option<Value>,
    pub member: Option<SimulatedMember>,
    pub points: i64,
    pub awards: Vec<Award>,
    pub trace: Vec<TraceEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The member a simulated item would use or create.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedMember {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<MemberId>,
    pub kind: String,
    pub value: String,
    pub would_enroll: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SimulationResponse {
    pub results: Vec<SimulatedItem>,
}

/// A connector ready to ingest: its program, compiled mapping and rules.
#[derive(Debug)]
struct LoadedConnector {
    program: Program,
    connector: Connector,
    mapping: Arc<dyn Mapping>,
    rules: Arc<RuleSet>,
    loaded_at: DateTime<Utc>,
    /// Recent mapping time per item, in microseconds.
    mapping_micros: AtomicU64,
    /// A request is reloading this entry.
    refreshing: std::sync::atomic::AtomicBool,
}

/// A request whose connector is found and whose authentication holds: ready for
/// [`Engine::map_items`]. It owns what it needs, so it can move to another thread.
#[derive(Debug)]
pub struct AuthenticatedRequest {
    loaded: Arc<LoadedConnector>,
    auth: Authenticated,
    test: bool,
    received_at: DateTime<Utc>,
}

impl AuthenticatedRequest {
    /// Whether this connector's mapping has lately taken long enough per item (over half a
    /// millisecond) that a server should run it away from the threads that serve everyone.
    pub fn mapping_is_slow(&self) -> bool {
        self.loaded.mapping_micros.load(Ordering::Relaxed) > 500
    }

    pub fn connector_id(&self) -> &ConnectorId {
        &self.loaded.connector.id
    }
}

/// The loyalty engine. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    connectors: RwLock<HashMap<ConnectorId, Arc<LoadedConnector>>>,
}

/// A `clientEventId` for an item that names none: a hash of the connector and the item's JSON,
/// in a canonical form (see `write_canonical`), so that the same payload re-serialised by its
/// sender (other spacing, key order or escapes, `1.0` for `1`) is still a duplicate.
fn derived_client_event_id(connector: &ConnectorId, item_json: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(connector.as_str().as_bytes());
    hasher.update(b"\n");
    // simd-json (parsing in place, hence the copy): twice as fast as a serde_json tree here.
    // The body was checked already; should this parse fail anyway, the bytes stand in.
    let mut bytes = item_json.as_bytes().to_vec();
    match simd_json::to_borrowed_value(&mut bytes) {
        Ok(value) => {
            let mut canonical = Vec::with_capacity(item_json.len());
            write_canonical(&value, &mut canonical);
            hasher.update(&canonical);
        }
        Err(_) => hasher.update(item_json.as_bytes()),
    }
    format!("sha256:{}", &hex::encode(hasher.finalize())[..40])
}

/// Compact JSON with object keys sorted (by their UTF-8 bytes; the last of duplicate keys
/// wins, as when parsed), strings escaped as serde_json escapes them, and whole numbers written
/// as integers. Recursion is bounded by the body's depth limit (128), checked before.
///
/// Ids derived before this form (a hash of the raw bytes, until 2026-11-26) differ: an item
/// accepted before that and resent after it is not recognised as a duplicate.
fn write_canonical(value: &simd_json::BorrowedValue<'_>, out: &mut Vec<u8>) {
    use simd_json::{BorrowedValue as Value, StaticNode};
    use std::io::Write;
    match value {
        Value::Static(StaticNode::Null) => out.extend_from_slice(b"null"),
        Value::Static(StaticNode::Bool(true)) => out.extend_from_slice(b"true"),
        Value::Static(StaticNode::Bool(false)) => out.extend_from_slice(b"false"),
        Value::Static(StaticNode::I64(n)) => write!(out, "{n}").expect("writing to memory"),
        Value::Static(StaticNode::U64(n)) => write!(out, "{n}").expect("writing to memory"),
        Value::Static(StaticNode::F64(f)) => {
            // A whole f64 is an exact integer: written in digits, as the same number written
            // without a fraction or an exponent is (`1e16`, `1.0e16`, `10000000000000000`).
            if f.fract() == 0.0 && f.abs() < 1e38 {
                write!(out, "{}", *f as i128).expect("writing to memory");
            } else {
                let number = serde_json::Number::from_f64(*f);
                write!(
                    out,
                    "{}",
                    number.map_or_else(|| "null".into(), |n| n.to_string())
                )
                .expect("writing to memory");
            }
        }
        Value::String(text) => {
            serde_json::to_writer(&mut *out, text.as_ref()).expect("writing to memory")
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // simd-json keeps every duplicate key, in order: the stable sort keeps that order,
            // and only the last of equal keys is written.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let last_of_each = entries
                .iter()
                .enumerate()
                .filter(|(index, (key, _))| {
                    entries.get(index + 1).is_none_or(|next| next.0 != *key)
                })
                .map(|(_, entry)| *entry);
            out.push(b'{');
            for (index, (key, item)) in last_of_each.enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key.as_ref()).expect("writing to memory");
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
    }
}

/// A value's JSON text, by serde_json's writer (`Display` goes through `fmt` a fragment at a
/// time). Serialising a `serde_json::Value` cannot fail: its keys are strings.
fn json_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

fn raw_of(text: &str, limit: usize) -> (RawJson, bool) {
    if text.len() <= limit {
        // Straight into the shared text: one allocation and one copy.
        (RawJson::from_json_text(text), false)
    } else {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        (RawJson::string(&text[..end]), true)
    }
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self::with_limits(store, clock, Limits::default())
    }

    pub fn with_limits(store: Arc<dyn Store>, clock: Arc<dyn Clock>, limits: Limits) -> Self {
        Self {
            store,
            clock,
            limits,
            connectors: RwLock::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock's time at the precision stores keep, whatever the clock.
    pub fn now(&self) -> DateTime<Utc> {
        stored_precision(self.clock.now())
    }

    // ---- programs ---------------------------------------------------------------------------

    /// Creates a program; returns it and its admin token (shown only now).
    pub async fn create_program(&self, spec: ProgramSpec) -> Result<(Program, String)> {
        spec.validate()?;
        let id = ProgramId::generate();
        let token = crate::program::program_token(&id);
        let program = Program {
            id,
            name: spec.name.trim().to_owned(),
            default_identifier_kind: spec
                .default_identifier_kind
                .unwrap_or_else(|| DEFAULT_IDENTIFIER_KIND.into()),
            enroll_unknown_members: spec.enroll_unknown_members.unwrap_or(true),
            admin_token_hash: TokenHash::of(&token),
            created_at: self.now(),
        };
        self.store.insert_program(&program).await?;
        Ok((program, token))
    }

    pub async fn list_programs(&self) -> Result<Vec<Program>> {
        Ok(self.store.list_programs().await?)
    }

    pub async fn get_program(&self, id: &ProgramId) -> Result<Program> {
        self.store
            .get_program(id)
            .await?
            .ok_or(Error::NotFound { what: "program" })
    }

    /// Whether `token` is the program's admin token (constant-time). An unknown program is
    /// simply `false`, so that a caller cannot tell which programs exist.
    pub async fn verify_program_token(&self, id: &ProgramId, token: &str) -> Result<bool> {
        Ok(self
            .store
            .get_program(id)
            .await?
            .is_some_and(|p| p.admin_token_hash.matches(token.as_bytes())))
    }

    // ---- connectors -------------------------------------------------------------------------

    pub async fn create_connector(
        &self,
        program: &ProgramId,
        spec: ConnectorSpec,
    ) -> Result<ConnectorView> {
        self.get_program(program).await?;
        let max_event_age_days = spec.check()?;
        JsonataMapping::compile(&spec.mapping).map_err(Error::InvalidMapping)?;
        let (auth, generated) = spec.auth_for(None)?;
        let now = self.now();
        let connector = Connector {
            id: ConnectorId::generate(),
            program_id: program.clone(),
            name: spec.name.trim().to_owned(),
            event_type: spec.event_type,
            auth,
            mapping: spec.mapping,
            test_mode: spec.test_mode,
            max_event_age_days,
            revision: 1,
            created_at: now,
            updated_at: now,
            deleted: false,
        };
        self.store.put_connector(&connector).await?;
        Ok(connector.view(&generated))
    }

    pub async fn get_connector(&self, program: &ProgramId, id: &ConnectorId) -> Result<Connector> {
        match self.get_connector_including_deleted(program, id).await? {
            c if !c.deleted => Ok(c),
            _ => Err(Error::NotFound { what: "connector" }),
        }
    }

    async fn get_connector_including_deleted(
        &self,
        program: &ProgramId,
        id: &ConnectorId,
    ) -> Result<Connector> {
        match self.store.get_connector(id).await? {
            Some(c) if c.program_id == *program => Ok(c),
            _ => Err(Error::NotFound { what: "connector" }),
        }
    }

    pub async fn list_connectors(&self, program: &ProgramId) -> Result<Vec<Connector>> {
        self.get_program(program).await?;
        Ok(self.store.list_connectors(program).await?)
    }

    /// Replaces a connector. Left-out tokens and secrets keep their current values.
    pub async fn replace_connector(
        &self,
        program: &ProgramId,
        id: &ConnectorId,
        spec: ConnectorSpec,
    ) -> Result<ConnectorView> {
        let current = self.get_connector(program, id).await?;
        let max_event_age_days = spec.check()?;
        JsonataMapping::compile(&spec.mapping).map_err(Error::InvalidMapping)?;
        let (auth, generated) = spec.auth_for(Some(&current.auth))?;
        if spec.event_type != current.event_type {
            for rule in self.store.list_rules(program, Some(id)).await? {
                rule.definition.check_fits(spec.event_type).map_err(|_| {
                    Error::invalid(
                        "/eventType",
                        format!("rule {} reads purchase fields; change or delete it before changing the event type", rule.id),
                    )
                })?;
            }
        }
        let connector = Connector {
            name: spec.name.trim().to_owned(),
            event_type: spec.event_type,
            auth,
            mapping: spec.mapping,
            test_mode: spec.test_mode,
            max_event_age_days,
            revision: current.revision + 1,
            updated_at: self.now(),
            ..current
        };
        self.store.put_connector(&connector).await?;
        self.forget(id);
        Ok(connector.view(&generated))
    }

    /// Deletes a connector and its rules. Its logged events stay in the log.
    pub async fn delete_connector(&self, program: &ProgramId, id: &ConnectorId) -> Result<()> {
        let current = self.get_connector(program, id).await?;
        for rule in self.store.list_rules(program, Some(id)).await? {
            self.store.delete_rule(program, &rule.id).await?;
        }
        let connector = Connector {
            deleted: true,
            updated_at: self.now(),
            revision: current.revision + 1,
            ..current
        };
        self.store.put_connector(&connector).await?;
        self.forget(id);
        Ok(())
    }

    fn forget(&self, id: &ConnectorId) {
        self.connectors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    // ---- rules --------------------------------------------------------------------------------

    async fn rule_from_spec(
        &self,
        program: &ProgramId,
        spec: &RuleSpec,
    ) -> Result<crate::rules::RuleDefinition> {
        let definition = spec.compile()?;
        let connector = self
            .get_connector(program, &spec.connector_id)
            .await
            .map_err(|_| {
                Error::invalid("/connectorId", "no connector with this id in this program")
            })?;
        definition.check_fits(connector.event_type)?;
        Ok(definition)
    }

    pub async fn create_rule(&self, program: &ProgramId, spec: RuleSpec) -> Result<Rule> {
        let spec = spec.at_stored_precision();
        let definition = self.rule_from_spec(program, &spec).await?;
        let now = self.now();
        let rule = Rule {
            id: RuleId::generate(),
            program_id: program.clone(),
            connector_id: spec.connector_id,
            name: spec.name.trim().to_owned(),
            conditions: spec.conditions,
            points: spec.points,
            limits: spec.limits,
            priority: spec.priority,
            stop_other_rules: spec.stop_other_rules,
            active_from: spec.active_from,
            active_until: spec.active_until,
            created_at: now,
            updated_at: now,
            definition,
        };
        self.store.put_rule(&rule).await?;
        self.forget(&rule.connector_id);
        Ok(rule)
    }

    pub async fn get_rule(&self, program: &ProgramId, id: &RuleId) -> Result<Rule> {
        self.store
            .get_rule(program, id)
            .await?
            .ok_or(Error::NotFound { what: "rule" })
    }

    pub async fn list_rules(
        &self,
        program: &ProgramId,
        connector: Option<&ConnectorId>,
    ) -> Result<Vec<Rule>> {
        self.get_program(program).await?;
        Ok(self.store.list_rules(program, connector).await?)
    }

    pub async fn replace_rule(
        &self,
        program: &ProgramId,
        id: &RuleId,
        spec: RuleSpec,
    ) -> Result<Rule> {
        let current = self.get_rule(program, id).await?;
        let spec = spec.at_stored_precision();
        let definition = self.rule_from_spec(program, &spec).await?;
        let rule = Rule {
            connector_id: spec.connector_id,
            name: spec.name.trim().to_owned(),
            conditions: spec.conditions,
            points: spec.points,
            limits: spec.limits,
            priority: spec.priority,
            stop_other_rules: spec.stop_other_rules,
            active_from: spec.active_from,
            active_until: spec.active_until,
            updated_at: self.now(),
            definition,
            ..current.clone()
        };
        self.store.put_rule(&rule).await?;
        self.forget(&current.connector_id);
        self.forget(&rule.connector_id);
        Ok(rule)
    }

    pub async fn delete_rule(&self, program: &ProgramId, id: &RuleId) -> Result<()> {
        let current = self.get_rule(program, id).await?;
        self.store.delete_rule(program, id).await?;
        self.forget(&current.connector_id);
        Ok(())
    }

    // ---- ingestion ----------------------------------------------------------------------------

    async fn load(&self, id: &ConnectorId) -> Result<Arc<LoadedConnector>> {
        let now = self.now();
        if let Some(loaded) = self
            .connectors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
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
        let previous = self
            .connectors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
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
            refreshing: std::sync::atomic::AtomicBool::new(false),
        });
        self.connectors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), loaded.clone());
        Ok(loaded)
    }

    /// Authenticates and processes one request: one result per item, each committed
    /// atomically, with accepted points on the balance before this returns.
    ///
    /// This is [`Engine::authenticate`], [`Engine::map_items`] and [`Engine::commit`] in a
    /// row; a server that wants the CPU-bound middle step off its async workers calls them
    /// one by one.
    pub async fn ingest(&self, request: IncomingRequest<'_>) -> Result<IngestResponse> {
        let authenticated = self.authenticate(&request).await?;
        let batch = self.map_items(&authenticated, request.body)?;
        self.commit(batch).await
    }

    /// Step 1: finds the connector and checks the request's authentication and size.
    pub async fn authenticate(
        &self,
        request: &IncomingRequest<'_>,
    ) -> Result<AuthenticatedRequest> {
        let received_at = self.now();
        let loaded = self.load(&ConnectorId::new(request.connector_id)).await?;
        if request.body.len() > self.limits.max_body_bytes {
            return Err(Error::PayloadTooLarge {
                limit: self.limits.max_body_bytes,
            });
        }
        let parts = RequestParts {
            query: request.query,
            headers: request.headers,
            body: request.body,
        };
        let auth = loaded
            .connector
            .auth
            .verify(&parts, received_at)
            .map_err(Error::Unauthorized)?;
        Ok(AuthenticatedRequest {
            test: request.test || loaded.connector.test_mode,
            loaded,
            auth,
            received_at,
        })
    }

    /// Step 2 (synchronous, CPU-bound): parses the body and maps, validates and keys every
    /// item. Time spent mapping is remembered per connector (see
    /// [`AuthenticatedRequest::mapping_is_slow`]).
    pub fn map_items(&self, request: &AuthenticatedRequest, body: &[u8]) -> Result<CommitBatch> {
        let loaded = &request.loaded;
        let body = Document::parse_body(
            body,
            self.limits.max_batch_items,
            loaded.mapping.projection(),
        )
        .map_err(|e| self.body_error(e))?;
        let started = Instant::now();
        let items = self.prepare(
            loaded,
            loaded.mapping.as_ref(),
            body,
            &request.auth,
            request.test,
            request.received_at,
        )?;
        if !items.is_empty() {
            let per_item = started.elapsed().as_micros() as u64 / items.len() as u64;
            // An exponential moving average, racy on purpose: it is a hint, not a count.
            let previous = loaded.mapping_micros.load(Ordering::Relaxed);
            loaded
                .mapping_micros
                .store((previous * 7 + per_item) / 8, Ordering::Relaxed);
        }
        Ok(CommitBatch {
            program_id: loaded.program.id.clone(),
            connector_id: loaded.connector.id.clone(),
            test: request.test,
            enroll_unknown_members: loaded.program.enroll_unknown_members,
            rules: loaded.rules.clone(),
            received_at: request.received_at,
            items,
        })
    }

    fn body_error(&self, error: BodyError) -> Error {
        match error {
            BodyError::Syntax(e) => Error::InvalidJson {
                message: e.message,
                line: e.line,
                column: e.column,
            },
            BodyError::TooManyItems(items) => Error::BatchTooLarge {
                items,
                limit: self.limits.max_batch_items,
            },
        }
    }

    /// Step 3: commits the batch; accepted points are on the balances when this returns.
    pub async fn commit(&self, batch: CommitBatch) -> Result<IngestResponse> {
        let entries = self.store.commit(batch).await?;
        Ok(IngestResponse::from_entries(entries))
    }

    /// The connector's authentication scheme and secret query parameter, for the HTTP layer's
    /// metrics and log redaction, without authenticating anything.
    pub async fn connector_auth_info(&self, id: &str) -> Option<(&'static str, Option<String>)> {
        let loaded = self.load(&ConnectorId::new(id)).await.ok()?;
        let auth = &loaded.connector.auth;
        Some((auth.scheme(), auth.secret_query_param().map(str::to_owned)))
    }

    /// Steps 2 and 3 of DESIGN.md for every item: map, validate, normalise the identifier,
    /// choose the idempotency key. Synchronous: the document never crosses an await.
    fn prepare(
        &self,
        loaded: &LoadedConnector,
        mapping: &dyn Mapping,
        body: Body<'_>,
        authenticated: &Authenticated,
        test: bool,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<PendingItem>> {
        let bulk = body.bulk;
        let started = Instant::now();
        let connector = &loaded.connector;
        let mut items = Vec::with_capacity(body.items.len());
        for (
            index,
            BodyItem {
                document: item,
                raw: raw_text,
            },
        ) in body.items.into_iter().enumerate()
        {
            let (raw, raw_truncated) = raw_of(&raw_text, self.limits.max_raw_bytes);
            let mut entry = LogEntry {
                id: EventId::generate(),
                program_id: loaded.program.id.clone(),
                connector_id: connector.id.clone(),
                status: ItemStatus::Rejected,
                reason: None,
                error: None,
                client_event_id: None,
                original_event_id: None,
                member_id: None,
                test,
                received_at,
                occurred_at: None,
                points: 0,
                awards: Vec::new(),
                raw,
                raw_truncated,
                mapped: None,
                trace: None,
                warnings: Vec::new(),
                seq: 0,
            };
            if !item.is_object() {
                entry.error = Some(ItemError::validation(
                    if bulk {
                        format!("/{index}")
                    } else {
                        String::new()
                    },
                    "an item must be a JSON object",
                ));
                items.push(PendingItem {
                    entry,
                    candidate: None,
                });
                continue;
            }
            if started.elapsed() > self.limits.max_request_mapping_time {
                entry.error = Some(ItemError {
                    code: "mapping_error".into(),
                    message: "the request's mapping time budget was spent on earlier items".into(),
                    path: None,
                });
                items.push(PendingItem {
                    entry,
                    candidate: None,
                });
                continue;
            }
            let mapped = match mapping.apply(&item, &self.limits.mapping) {
                Ok(mapped) => mapped,
                Err(e) => {
                    entry.error = Some(ItemError {
                        code: "mapping_error".into(),
                        message: e.message,
                        path: None,
                    });
                    items.push(PendingItem {
                        entry,
                        candidate: None,
                    });
                    continue;
                }
            };
            // Kept as text: the log stores and answers it, and text clones cheaply.
            entry.mapped = Some(RawJson::from_json_text(json_text(&mapped)));
            let event = match validate(
                &mapped,
                connector.event_type,
                received_at,
                connector.max_event_age_days,
            ) {
                Ok(event) => event,
                Err(error) => {
                    entry.error = Some(error);
                    items.push(PendingItem {
                        entry,
                        candidate: None,
                    });
                    continue;
                }
            };
            // DESIGN.md: a missing timestamp means the time received.
            entry.occurred_at = Some(event.occurred_at.unwrap_or(received_at));
            entry.warnings = event.warnings.clone();
            let client_event_id = event
                .client_event_id
                .clone()
                .or_else(|| event.purchase.as_ref().map(|p| p.order_id.clone()))
                .or_else(|| {
                    authenticated.message_id.as_ref().map(|id| {
                        if bulk {
                            format!("{id}:{index}")
                        } else {
                            id.clone()
                        }
                    })
                })
                .unwrap_or_else(|| {
                    // The fallback key hashes the item's JSON (its canonical form).
                    derived_client_event_id(&connector.id, &raw_text)
                });
            entry.client_event_id = Some(client_event_id.clone());
            let identifier = match normalize(
                mapped.get("profile"),
                &loaded.program.default_identifier_kind,
            ) {
                Ok(identifier) => identifier,
                Err(reason) => {
                    entry.status = ItemStatus::Ignored;
                    entry.reason = Some(reason.as_str().into());
                    items.push(PendingItem {
                        entry,
                        candidate: None,
                    });
                    continue;
                }
            };
            let occurred_at = entry.occurred_at.unwrap_or(received_at);
            items.push(PendingItem {
                entry,
                candidate: Some(Candidate {
                    identifier,
                    client_event_id,
                    event,
                    occurred_at,
                }),
            });
        }
        Ok(items)
    }

    // ---- simulation ---------------------------------------------------------------------------

    /// What would happen to `payload` (an object or an array of them), with the connector's
    /// mapping or `mapping` instead. Reads, never writes.
    pub async fn simulate(
        &self,
        program: &ProgramId,
        connector_id: &ConnectorId,
        payload: Value,
        mapping: Option<&str>,
        test: Option<bool>,
    ) -> Result<SimulationResponse> {
        self.get_connector(program, connector_id).await?;
        let loaded = self.load(connector_id).await?;
        let candidate_mapping: Option<JsonataMapping> = mapping
            .map(JsonataMapping::compile)
            .transpose()
            .map_err(Error::InvalidMapping)?;
        let mapping: &dyn Mapping = match &candidate_mapping {
            Some(m) => m,
            None => loaded.mapping.as_ref(),
        };
        let test = test.unwrap_or(loaded.connector.test_mode);
        let received_at = self.now();
        let body = Document::items_of(payload, self.limits.max_batch_items)
            .map_err(|e| self.body_error(e))?;
        let items = self.prepare(
            &loaded,
            mapping,
            body,
            &Authenticated::default(),
            test,
            received_at,
        )?;

        // Earlier items of the same payload count, as they would in a real delivery.
        let mut members: HashMap<Identifier, (Option<MemberId>, Usage)> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut results = Vec::with_capacity(items.len());
        for (index, PendingItem { entry, candidate }) in items.into_iter().enumerate() {
            let mut result = SimulatedItem {
                index,
                status: entry.status,
                reason: entry.reason,
                error: entry.error,
                client_event_id: entry.client_event_id,
                original_event_id: None,
                mapped: entry.mapped.map(|m| m.to_value()),
                member: None,
                points: 0,
                awards: Vec::new(),
                trace: Vec::new(),
                warnings: entry.warnings,
            };
            let Some(candidate) = candidate else {
                results.push(result);
                continue;
            };
            if !members.contains_key(&candidate.identifier) {
                let found = self
                    .store
                    .find_member(program, &candidate.identifier)
                    .await?;
                members.insert(
                    candidate.identifier.clone(),
                    (found.map(|m| m.id), Usage::default()),
                );
            }
            let (member_id, overlay) = members
                .get_mut(&candidate.identifier)
                .expect("inserted above");
            result.member = Some(SimulatedMember {
                id: member_id.clone(),
                kind: candidate.identifier.kind.clone(),
                value: candidate.identifier.value.clone(),
                would_enroll: member_id.is_none() && loaded.program.enroll_unknown_members,
            });
            if member_id.is_none() && !loaded.program.enroll_unknown_members {
                result.status = ItemStatus::Ignored;
                result.reason = Some(IgnoredReason::UnknownMember.as_str().into());
                results.push(result);
                continue;
            }
            let original = self
                .store
                .find_accepted(connector_id, &candidate.client_event_id, test)
                .await?;
            if original.is_some() || !seen.insert(candidate.client_event_id.clone()) {
                result.status = ItemStatus::Duplicate;
                result.original_event_id = original;
                results.push(result);
                continue;
            }
            let mut usage = match member_id {
                Some(id) => {
                    let keys = loaded.rules.usage_keys(candidate.occurred_at);
                    self.store.usage(program, id, &keys).await?
                }
                None => Usage::default(),
            };
            apply_usage(
                &mut usage,
                &overlay
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect::<Vec<_>>(),
            );
            let evaluation = loaded
                .rules
                .evaluate(&candidate.event, candidate.occurred_at, &usage);
            apply_usage(overlay, &evaluation.usage_increments);
            result.status = ItemStatus::Accepted;
            result.points = evaluation.points();
            result.awards = evaluation.awards;
            result.trace = evaluation.trace;
            results.push(result);
        }
        Ok(SimulationResponse { results })
    }

    // ---- members, events, purge -------------------------------------------------------------

    /// The member with this identifier (`kind` may be `default`).
    pub async fn find_member(
        &self,
        program: &ProgramId,
        kind: &str,
        value: &str,
    ) -> Result<Member> {
        let p = self.get_program(program).await?;
        let profile = serde_json::json!({"kind": kind, "value": value});
        let identifier =
            normalize(Some(&profile), &p.default_identifier_kind).map_err(|reason| {
                Error::invalid(
                    "value",
                    format!("not a valid identifier ({})", reason.as_str()),
                )
            })?;
        self.store
            .find_member(program, &identifier)
            .await?
            .ok_or(Error::NotFound { what: "member" })
    }

    pub async fn get_member(&self, program: &ProgramId, id: &MemberId) -> Result<Member> {
        self.store
            .get_member(program, id)
            .await?
            .ok_or(Error::NotFound { what: "member" })
    }

    pub async fn member_activity(
        &self,
        program: &ProgramId,
        id: &MemberId,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<ActivityItem>> {
        self.get_member(program, id).await?;
        let page = page_request(limit, cursor)?;
        Ok(self.store.member_activity(program, id, page).await?)
    }

    pub async fn list_events(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<LogEntry>> {
        self.get_program(program).await?;
        let page = page_request(limit, cursor)?;
        // The bounds are compared with stored instants: at their precision, on every store.
        let filter = EventFilter {
            since: filter.since.map(stored_precision),
            until: filter.until.map(stored_precision),
            ..filter.clone()
        };
        Ok(self.store.list_events(program, &filter, page).await?)
    }

    pub async fn get_event(&self, program: &ProgramId, id: &EventId) -> Result<LogEntry> {
        self.store
            .get_event(program, id)
            .await?
            .ok_or(Error::NotFound { what: "event" })
    }

    /// Deletes the connector's test data.
    pub async fn purge_test_data(
        &self,
        program: &ProgramId,
        connector: &ConnectorId,
    ) -> Result<PurgeCounts> {
        // A deleted connector's test data can still be purged: deleting a connector must not
        // leave test points on balances for good.
        self.get_connector_including_deleted(program, connector)
            .await?;
        Ok(self.store.purge_test_data(program, connector).await?)
    }
}

fn page_request(limit: Option<usize>, cursor: Option<&str>) -> Result<PageRequest> {
    let limit = limit.unwrap_or(crate::ledger::DEFAULT_PAGE_SIZE);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(Error::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    let before = cursor
        .map(|c| {
            decode_cursor(c)
                .ok_or_else(|| Error::invalid("cursor", "not a cursor this API returned"))
        })
        .transpose()?;
    Ok(PageRequest { limit, before })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_client_event_id_ignores_how_the_payload_was_serialised() {
        let connector = ConnectorId::new("con_a");
        let id = |text: &str| derived_client_event_id(&connector, text);
        let first = id(r#"{"user":{"email":"ann@example.com","age":30},"tags":["a","b"],"n":1}"#);
        for same in [
            "{ \"n\": 1, \"tags\": [\"a\", \"b\"],\n  \"user\": {\"age\": 30.0, \"email\": \"ann@example.com\"} }",
            r#"{"user":{"age":3e1,"email":"ann\u0040example.com"},"tags":["a","b"],"n":1.0}"#,
        ] {
            assert_eq!(id(same), first, "{same}");
        }
        for other in [
            r#"{"user":{"email":"ann@example.com","age":31},"tags":["a","b"],"n":1}"#,
            r#"{"user":{"email":"ann@example.com","age":30},"tags":["b","a"],"n":1}"#,
            r#"{"user":{"email":"ann@example.com","age":30},"tags":["a","b"],"n":1.5}"#,
            r#"{"user":{"email":"ann@example.com","age":"30"},"tags":["a","b"],"n":1}"#,
        ] {
            assert_ne!(id(other), first, "{other}");
        }
        for (one, other) in [
            (r#"{"n":-0}"#, r#"{"n":0}"#),
            (r#"{"n":-0.0}"#, r#"{"n":0}"#),
            (r#"{"n":1e16}"#, r#"{"n":10000000000000000}"#),
            (r#"{"n":2.5e20}"#, r#"{"n":250000000000000000000}"#),
            (r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
            (r#"{"b":0,"a":1,"a":2,"a":3}"#, r#"{"a":3,"b":0}"#),
            (r#"{"s":"\u00e9\/"}"#, r#"{"s":"é/"}"#),
        ] {
            assert_eq!(id(one), id(other), "{one} vs {other}");
        }
        assert_ne!(
            derived_client_event_id(&ConnectorId::new("con_b"), r#"{"n":1}"#),
            id(r#"{"n":1}"#),
            "the connector is part of the id"
        );
        assert!(first.starts_with("sha256:") && first.len() == 47);
    }
}
