//! Ingestion in three steps: authenticate (async: the connector may have to be loaded), map
//! (synchronous and CPU-bound, so that a server can run it off its async workers), commit.

use super::cache::LoadedConnector;
use super::client_id::derived_client_event_id;
use super::{Engine, IngestResponse};
use crate::auth::{Authenticated, RequestParts};
use crate::error::{Error, Result};
use crate::event::{validate, ItemError};
use crate::ids::{ConnectorId, EventId};
use crate::ledger::{ItemStatus, LogEntry, RawJson};
use crate::mapping::{Body, BodyError, BodyItem, Document, Mapping};
use crate::member::{normalize, IgnoredReason};
use crate::store::{Candidate, CommitBatch, PendingItem, RefundCandidate};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

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

/// The connector a request is sent to, found and loaded, before its authentication is
/// checked.
#[derive(Clone, Debug)]
pub struct IngestTarget {
    loaded: Arc<LoadedConnector>,
}

impl IngestTarget {
    pub fn connector_id(&self) -> &ConnectorId {
        &self.loaded.connector.id
    }

    /// The connector's authentication scheme (`queryToken`, `hubSignature`, …).
    pub fn scheme(&self) -> &'static str {
        self.loaded.connector.auth.scheme()
    }

    /// The query parameter that carries the connector's token, if it has one: a server keeps
    /// it out of its logs.
    pub fn secret_query_param(&self) -> Option<&str> {
        self.loaded.connector.auth.secret_query_param()
    }
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

/// A value's JSON text, by serde_json's writer (`Display` goes through `fmt` a fragment at a
/// time). Serialising a `serde_json::Value` cannot fail: its keys are strings.
fn json_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

/// The text of field `field` of an item (a string, or a number written as it is), as a
/// delivery id: at most 256 printable bytes. Parsed from the raw item, since the mapping's
/// projection may not have kept the field.
fn body_field_id(item_json: &str, field: &str) -> Option<String> {
    let item: serde_json::Map<String, Value> = serde_json::from_str(item_json).ok()?;
    let id = match item.get(field)? {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    (!id.is_empty() && id.len() <= 256 && !id.chars().any(char::is_control)).then_some(id)
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

    /// Step 1: finds the connector and checks the request's authentication and size
    /// ([`Engine::ingest_target`] then [`Engine::authenticate_for`]).
    pub async fn authenticate(
        &self,
        request: &IncomingRequest<'_>,
    ) -> Result<AuthenticatedRequest> {
        let target = self.ingest_target(request.connector_id).await?;
        self.authenticate_for(target, request)
    }

    /// The connector a request is sent to, loaded: a server calls this once, before it reads
    /// the body (an unknown connector is `NotFound` before anything is read), then
    /// [`Engine::authenticate_for`] once the body is in.
    pub async fn ingest_target(&self, connector_id: &str) -> Result<IngestTarget> {
        Ok(IngestTarget {
            loaded: self.load(&ConnectorId::new(connector_id)).await?,
        })
    }

    /// Checks the request's size and authentication against its connector.
    pub fn authenticate_for(
        &self,
        target: IngestTarget,
        request: &IncomingRequest<'_>,
    ) -> Result<AuthenticatedRequest> {
        let received_at = self.now();
        let loaded = target.loaded;
        if request.body.len() > self.limits.max_body_bytes {
            return Err(Error::PayloadTooLarge {
                limit: self.limits.max_body_bytes,
            });
        }
        // Ingestion is a POST to the connector's endpoint, `/v1/incoming/{connectorId}` (a
        // fixed path of the API); a server behind a proxy names the URL its senders see in a
        // public base URL. HubSpot signs that URL.
        let path = format!("/v1/incoming/{}", loaded.connector.id);
        let parts = RequestParts {
            public_base_url: self.public_base_url.as_deref(),
            ..RequestParts::post(&path, request.query, request.headers, request.body)
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

    pub(super) fn body_error(&self, error: BodyError) -> Error {
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

    /// Prepares every item for the store: map, validate, normalise the identifier, choose the
    /// idempotency key. Synchronous: the document never crosses an await.
    pub(super) fn prepare(
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
                replay_id: None,
                replayed_event_id: None,
                seq: 0,
            };
            let prepared = self.prepare_item(
                loaded,
                mapping,
                &ItemInput {
                    index,
                    bulk,
                    document: &item,
                    raw_text: &raw_text,
                },
                authenticated,
                started,
                &mut entry,
            );
            let (candidate, refund) = match prepared {
                Ok(Prepared::Award(candidate)) => (Some(candidate), None),
                Ok(Prepared::Refund(refund)) => (None, Some(refund)),
                Err(Settled::Rejected(error)) => {
                    entry.error = Some(error);
                    (None, None)
                }
                Err(Settled::Ignored(reason)) => {
                    entry.status = ItemStatus::Ignored;
                    entry.reason = Some(reason.as_str().into());
                    (None, None)
                }
            };
            items.push(PendingItem {
                entry,
                candidate,
                refund,
            });
        }
        Ok(items)
    }
}

/// One item of a body, as received.
struct ItemInput<'a> {
    index: usize,
    bulk: bool,
    document: &'a Document,
    raw_text: &'a str,
}

/// An item ready for the store.
enum Prepared {
    Award(Candidate),
    Refund(RefundCandidate),
}

/// An item settled before the store: rejected (not a valid event), or ignored (about nobody).
enum Settled {
    Rejected(ItemError),
    Ignored(IgnoredReason),
}

impl Engine {
    /// Maps, validates and keys one item, filling in its log entry as far as it gets.
    #[allow(clippy::too_many_arguments)] // the item, its request's context, and its entry
    fn prepare_item(
        &self,
        loaded: &LoadedConnector,
        mapping: &dyn Mapping,
        input: &ItemInput<'_>,
        authenticated: &Authenticated,
        started: Instant,
        entry: &mut LogEntry,
    ) -> std::result::Result<Prepared, Settled> {
        let connector = &loaded.connector;
        let received_at = entry.received_at;
        if !input.document.is_object() {
            let path = if input.bulk {
                format!("/{}", input.index)
            } else {
                String::new()
            };
            return Err(Settled::Rejected(ItemError::validation(
                path,
                "an item must be a JSON object",
            )));
        }
        let mapping_error = |message: String| {
            Settled::Rejected(ItemError {
                code: "mapping_error".into(),
                message,
                path: None,
            })
        };
        if started.elapsed() > self.limits.max_request_mapping_time {
            return Err(mapping_error(
                "the request's mapping time budget was spent on earlier items".into(),
            ));
        }
        let mapped = mapping
            .apply(input.document, &self.limits.mapping)
            .map_err(|e| mapping_error(e.message))?;
        // Kept as text: the log stores and answers it, and text clones cheaply.
        entry.mapped = Some(RawJson::from_json_text(json_text(&mapped)));
        let event = validate(
            &mapped,
            connector.event_type,
            received_at,
            connector.max_event_age_days,
        )
        .map_err(Settled::Rejected)?;
        // A missing timestamp means the time received.
        let occurred_at = event.occurred_at.unwrap_or(received_at);
        entry.occurred_at = Some(occurred_at);
        entry.warnings = event.warnings.clone();
        let client_event_id = event
            .client_event_id
            .clone()
            .or_else(|| event.purchase.as_ref().map(|p| p.order_id.clone()))
            .or_else(|| {
                authenticated.delivery_id.as_ref().map(|id| {
                    if input.bulk {
                        format!("{id}:{}", input.index)
                    } else {
                        id.clone()
                    }
                })
            })
            .or_else(|| {
                // An item's own delivery id (Stripe's `id`, Segment's `messageId`) names that
                // item alone, in a bulk as well.
                authenticated
                    .delivery_id_field
                    .and_then(|field| body_field_id(input.raw_text, field))
            })
            .unwrap_or_else(|| {
                // The fallback key hashes the item's JSON (its canonical form).
                derived_client_event_id(&connector.id, input.raw_text)
            });
        entry.client_event_id = Some(client_event_id.clone());
        let default_kind = &loaded.program.default_identifier_kind;
        if let Some(refund) = event.refund {
            // A refund needs no profile (its purchase names the member); one given must be
            // valid, and the purchase's (the store checks that).
            let identifier = match mapped.get("profile") {
                None | Some(Value::Null) => None,
                profile => Some(normalize(profile, default_kind).map_err(Settled::Ignored)?),
            };
            return Ok(Prepared::Refund(RefundCandidate {
                client_event_id,
                refund,
                identifier,
                occurred_at,
            }));
        }
        let identifier =
            normalize(mapped.get("profile"), default_kind).map_err(Settled::Ignored)?;
        Ok(Prepared::Award(Candidate {
            identifier,
            client_event_id,
            event,
            occurred_at,
        }))
    }
}
