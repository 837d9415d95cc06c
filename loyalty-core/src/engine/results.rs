//! What ingestion answers: one result per item, an enum by status, so that what only one
//! status has (awards, the original event, a reason, an error) exists only there.

use crate::event::ItemError;
use crate::ids::{EventId, MemberId};
use crate::ledger::{ItemStatus, LogEntry};
use crate::rules::Award;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

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
#[derive(Clone, Debug, PartialEq)]
pub struct ItemResult {
    /// The item's position in the request (0 for a single object).
    pub index: usize,
    /// The item's entry in the event log, whatever its status.
    pub event_id: EventId,
    /// The idempotency key, once the item was mapped far enough to have one.
    pub client_event_id: Option<String>,
    pub outcome: ItemOutcome,
}

/// What happened to one item, by status.
#[derive(Clone, Debug, PartialEq)]
pub enum ItemOutcome {
    /// Committed: `points` (the sum of `awards`, possibly 0) are on the member's balance.
    Accepted {
        member_id: Option<MemberId>,
        points: i64,
        awards: Vec<Award>,
    },
    /// A refund settled against its purchase (`original_event_id`): `points` (negative, the
    /// sum of `reversed`) were taken back from the member's balance.
    Refunded {
        original_event_id: EventId,
        member_id: Option<MemberId>,
        points: i64,
        reversed: Vec<Award>,
    },
    /// The key was taken by an accepted event: nothing changed.
    Duplicate {
        original_event_id: Option<EventId>,
        member_id: Option<MemberId>,
    },
    /// Valid, but about nobody the program counts (`reason`, e.g. `unknown_member`).
    Ignored { reason: Option<String> },
    /// Not a valid event: `error` says why and where.
    Rejected { error: Option<ItemError> },
}

impl ItemResult {
    pub fn status(&self) -> ItemStatus {
        match self.outcome {
            ItemOutcome::Accepted { .. } | ItemOutcome::Refunded { .. } => ItemStatus::Accepted,
            ItemOutcome::Duplicate { .. } => ItemStatus::Duplicate,
            ItemOutcome::Ignored { .. } => ItemStatus::Ignored,
            ItemOutcome::Rejected { .. } => ItemStatus::Rejected,
        }
    }

    /// Points awarded: 0 unless accepted.
    pub fn points(&self) -> i64 {
        match self.outcome {
            ItemOutcome::Accepted { points, .. } | ItemOutcome::Refunded { points, .. } => points,
            _ => 0,
        }
    }

    /// The member the item counted for (accepted) or the original counted for (duplicate).
    pub fn member_id(&self) -> Option<&MemberId> {
        match &self.outcome {
            ItemOutcome::Accepted { member_id, .. }
            | ItemOutcome::Refunded { member_id, .. }
            | ItemOutcome::Duplicate { member_id, .. } => member_id.as_ref(),
            _ => None,
        }
    }

    /// The accepted event whose key this item repeated, or the purchase a refund refers to.
    pub fn original_event_id(&self) -> Option<&EventId> {
        match &self.outcome {
            ItemOutcome::Duplicate {
                original_event_id, ..
            } => original_event_id.as_ref(),
            ItemOutcome::Refunded {
                original_event_id, ..
            } => Some(original_event_id),
            _ => None,
        }
    }

    /// Why an item was ignored.
    pub fn reason(&self) -> Option<&str> {
        match &self.outcome {
            ItemOutcome::Ignored { reason } => reason.as_deref(),
            _ => None,
        }
    }

    /// Why an item was rejected.
    pub fn error(&self) -> Option<&ItemError> {
        match &self.outcome {
            ItemOutcome::Rejected { error } => error.as_ref(),
            _ => None,
        }
    }

    fn from_entry(index: usize, entry: LogEntry) -> Self {
        let outcome = match (entry.status, entry.original_event_id) {
            (ItemStatus::Accepted, Some(original_event_id)) => ItemOutcome::Refunded {
                original_event_id,
                member_id: entry.member_id,
                points: entry.points,
                reversed: entry.awards,
            },
            (ItemStatus::Accepted, None) => ItemOutcome::Accepted {
                member_id: entry.member_id,
                points: entry.points,
                awards: entry.awards,
            },
            (ItemStatus::Duplicate, original_event_id) => ItemOutcome::Duplicate {
                original_event_id,
                member_id: entry.member_id,
            },
            (ItemStatus::Ignored, _) => ItemOutcome::Ignored {
                reason: entry.reason,
            },
            (ItemStatus::Rejected, _) => ItemOutcome::Rejected { error: entry.error },
        };
        ItemResult {
            index,
            event_id: entry.id,
            client_event_id: entry.client_event_id,
            outcome,
        }
    }
}

/// The wire form is one flat object: `index`, `status`, `eventId`, then the fields the status
/// has (`points` always, 0 unless accepted; `awards` on every accepted item, empty when no rule
/// awarded; a refund's `reversed` and `originalEventId` instead).
impl Serialize for ItemResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("index", &self.index)?;
        map.serialize_entry("status", &self.status())?;
        map.serialize_entry("eventId", &self.event_id)?;
        if let Some(original) = self.original_event_id() {
            map.serialize_entry("originalEventId", original)?;
        }
        if let Some(client_event_id) = &self.client_event_id {
            map.serialize_entry("clientEventId", client_event_id)?;
        }
        if let Some(member) = self.member_id() {
            map.serialize_entry("memberId", member)?;
        }
        map.serialize_entry("points", &self.points())?;
        match &self.outcome {
            ItemOutcome::Accepted { awards, .. } => map.serialize_entry("awards", awards)?,
            ItemOutcome::Refunded { reversed, .. } => map.serialize_entry("reversed", reversed)?,
            ItemOutcome::Ignored {
                reason: Some(reason),
            } => map.serialize_entry("reason", reason)?,
            ItemOutcome::Rejected { error: Some(error) } => map.serialize_entry("error", error)?,
            _ => {}
        }
        map.end()
    }
}

impl IngestResponse {
    pub(crate) fn from_entries(entries: Vec<LogEntry>) -> Self {
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
            response.results.push(ItemResult::from_entry(index, entry));
        }
        response
    }
}
