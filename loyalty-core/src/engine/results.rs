//! What ingestion answers.

use crate::event::ItemError;
use crate::ids::{EventId, MemberId};
use crate::ledger::{ItemStatus, LogEntry};
use crate::rules::Award;
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
    /// For an accepted item, always (empty when no rule awarded): the documented shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awards: Option<Vec<Award>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
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
