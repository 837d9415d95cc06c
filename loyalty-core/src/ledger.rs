//! The event log, the append-only ledger, a member's activity, and pagination.

use crate::event::ItemError;
use crate::ids::{ConnectorId, EventId, LedgerEntryId, MemberId, ProgramId, ReplayId, RuleId};
use crate::rules::{Award, TraceEntry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What became of one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Accepted,
    Duplicate,
    Ignored,
    Rejected,
}

impl ItemStatus {
    pub const ALL: [ItemStatus; 4] = [
        ItemStatus::Accepted,
        ItemStatus::Duplicate,
        ItemStatus::Ignored,
        ItemStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Accepted => "accepted",
            ItemStatus::Duplicate => "duplicate",
            ItemStatus::Ignored => "ignored",
            ItemStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// JSON text kept as text: the raw item and the mapped event of a log entry are stored and
/// answered as they are, never parsed into a tree again. The text is checked only when it is
/// serialized into a response (rare), not when it is stored (every event). Shared, so that
/// a store can keep a log entry and hand a copy back without copying the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawJson(std::sync::Arc<str>);

impl RawJson {
    /// Wraps text that is one JSON value: it came out of a parser or a serializer.
    pub fn from_json_text(text: impl Into<std::sync::Arc<str>>) -> Self {
        Self(text.into())
    }

    /// A JSON string holding `text`.
    pub fn string(text: &str) -> Self {
        Self(
            serde_json::to_string(text)
                .unwrap_or_else(|_| "\"\"".into())
                .into(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parsed, for inspection (tests, tools).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match serde_json::value::RawValue::from_string(self.0.to_string()) {
            Ok(raw) => raw.serialize(serializer),
            // Not JSON after all (cannot happen for text the engine made): show it as a string.
            Err(_) => serializer.serialize_str(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        Ok(Self(raw.get().into()))
    }
}

/// One item of the event log: every item received is logged, whatever its status.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub id: EventId,
    #[serde(skip)]
    pub program_id: ProgramId,
    pub connector_id: ConnectorId,
    pub status: ItemStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_event_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<MemberId>,
    pub test: bool,
    pub received_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    pub points: i64,
    pub awards: Vec<Award>,
    /// The item as received; past the size limit, its first bytes as a string.
    pub raw: RawJson,
    pub raw_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The mapping's output, as JSON text.
    pub mapped: Option<RawJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<TraceEntry>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// An item a replay processed anew: the replay, and the logged item it replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_id: Option<ReplayId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_event_id: Option<EventId>,
    /// Position in the log, assigned by the store: the pagination key.
    #[serde(skip)]
    pub seq: i64,
}

/// Why a ledger entry changes a balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// Points a rule gave for an event (positive).
    Award,
    /// Points taken back from an award, by a refund or an admin (negative).
    Reversal,
    /// Points an admin added or removed by hand, with a reason (non-zero).
    Adjustment,
    /// Points of an award that expired (negative).
    Expiry,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Award => "award",
            EntryKind::Reversal => "reversal",
            EntryKind::Adjustment => "adjustment",
            EntryKind::Expiry => "expiry",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            EntryKind::Award,
            EntryKind::Reversal,
            EntryKind::Adjustment,
            EntryKind::Expiry,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One ledger entry: a change of a member's points and what caused it. Never updated; only
/// purge deletes, and only test entries.
///
/// The sign and the links follow the kind: an award is positive and names its event and
/// rule; a reversal and an expiry are negative and name the award they take from (`reverses`,
/// and its rule); a reversal by a refund names the refund event, one by an admin its reason;
/// an adjustment is non-zero and has a reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub id: LedgerEntryId,
    #[serde(skip)]
    pub program_id: ProgramId,
    pub member_id: MemberId,
    pub kind: EntryKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<ConnectorId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<RuleId>,
    pub points: i64,
    /// The award a reversal or an expiry takes points from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverses: Option<LedgerEntryId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// An award of a rule with pending days: spendable from then on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_at: Option<DateTime<Utc>>,
    pub test: bool,
    pub created_at: DateTime<Utc>,
    /// When what caused it happened (an award's event time: the period its usage counts in).
    pub occurred_at: DateTime<Utc>,
    #[serde(skip)]
    pub seq: i64,
}

impl LedgerEntry {
    /// Whether the entry keeps the rules of its kind (sign and links); every store refuses
    /// one that does not, PostgreSQL by its CHECK constraints as well.
    pub fn is_well_formed(&self) -> bool {
        match self.kind {
            EntryKind::Award => {
                self.points > 0
                    && self.event_id.is_some()
                    && self.rule_id.is_some()
                    && self.reverses.is_none()
            }
            EntryKind::Reversal => {
                self.points < 0
                    && self.reverses.is_some()
                    && (self.event_id.is_some() || self.reason.is_some())
            }
            EntryKind::Expiry => self.points < 0 && self.reverses.is_some(),
            EntryKind::Adjustment => {
                self.points != 0 && self.reason.is_some() && self.reverses.is_none()
            }
        }
    }
}

/// What an item of a member's activity is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityType {
    Event,
    Ledger,
}

/// One line of a member's activity: an event or a ledger entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityItem {
    #[serde(rename = "type")]
    pub kind: ActivityType,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    /// A ledger entry's kind.
    #[serde(rename = "kind", skip_serializing_if = "Option::is_none")]
    pub entry_kind: Option<EntryKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub points: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<RuleId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_entry_id: Option<LedgerEntryId>,
    pub test: bool,
    #[serde(skip)]
    pub seq: i64,
}

impl ActivityItem {
    pub fn of_event(entry: &LogEntry) -> Self {
        Self {
            kind: ActivityType::Event,
            at: entry.received_at,
            event_id: Some(entry.id.clone()),
            client_event_id: entry.client_event_id.clone(),
            status: Some(entry.status),
            entry_kind: None,
            reason: None,
            points: entry.points,
            rule_id: None,
            ledger_entry_id: None,
            test: entry.test,
            seq: entry.seq,
        }
    }

    pub fn of_ledger(entry: &LedgerEntry) -> Self {
        Self {
            kind: ActivityType::Ledger,
            at: entry.created_at,
            event_id: entry.event_id.clone(),
            client_event_id: None,
            status: None,
            entry_kind: Some(entry.kind),
            reason: entry.reason.clone(),
            points: entry.points,
            rule_id: entry.rule_id.clone(),
            ledger_entry_id: Some(entry.id.clone()),
            test: entry.test,
            seq: entry.seq,
        }
    }
}

/// Filters of the event log.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub connector_id: Option<ConnectorId>,
    pub status: Option<ItemStatus>,
    pub member_id: Option<MemberId>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    pub until: Option<DateTime<Utc>>,
    pub test: Option<bool>,
}

impl EventFilter {
    pub fn matches(&self, entry: &LogEntry) -> bool {
        self.connector_id
            .as_ref()
            .is_none_or(|c| *c == entry.connector_id)
            && self.status.is_none_or(|s| s == entry.status)
            && self
                .member_id
                .as_ref()
                .is_none_or(|m| Some(m) == entry.member_id.as_ref())
            && self.since.is_none_or(|t| entry.received_at >= t)
            && self.until.is_none_or(|t| entry.received_at < t)
            && self.test.is_none_or(|t| t == entry.test)
    }
}

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 500;

/// A page request, newest first: items with a position below `before` (all if `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub before: Option<i64>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_PAGE_SIZE,
            before: None,
        }
    }
}

/// One page, newest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` items fetched newest first: the extra one only
    /// says that there is a next page.
    pub fn from_fetched(mut items: Vec<T>, limit: usize, seq: impl Fn(&T) -> i64) -> Self {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| encode_cursor(seq(last)))
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

pub(crate) fn encode_cursor(seq: i64) -> String {
    format!("c{seq}")
}

pub(crate) fn decode_cursor(cursor: &str) -> Option<i64> {
    cursor
        .strip_prefix('c')?
        .parse()
        .ok()
        .filter(|s: &i64| *s >= 0)
}

/// What a purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeCounts {
    pub events: u64,
    pub ledger_entries: u64,
    pub members: u64,
}

/// Rejected or ignored items of the log that went wrong the same way: one status, one code
/// (the error's code, or the ignored reason) and one path (a rejected item's JSON path).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorGroup {
    pub status: ItemStatus,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub count: u64,
    /// When the first and the last of them were received.
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// The newest of them, to look at, and its error's message.
    pub example_event_id: EventId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ErrorGroup {
    /// The group key of an entry, if it is rejected or ignored.
    pub fn key_of(entry: &LogEntry) -> Option<(ItemStatus, String, Option<String>)> {
        match entry.status {
            ItemStatus::Rejected => {
                let error = entry.error.as_ref();
                Some((
                    ItemStatus::Rejected,
                    error.map_or_else(|| "unknown".into(), |e| e.code.clone()),
                    error.and_then(|e| e.path.clone()),
                ))
            }
            ItemStatus::Ignored => Some((
                ItemStatus::Ignored,
                entry.reason.clone().unwrap_or_else(|| "unknown".into()),
                None,
            )),
            _ => None,
        }
    }

    /// Groups entries given newest first (as a log is read), largest group first.
    pub fn group<'a>(entries: impl Iterator<Item = &'a LogEntry>) -> Vec<ErrorGroup> {
        let mut groups: Vec<ErrorGroup> = Vec::new();
        let mut index: std::collections::HashMap<(ItemStatus, String, Option<String>), usize> =
            std::collections::HashMap::new();
        for entry in entries {
            let Some(key) = Self::key_of(entry) else {
                continue;
            };
            match index.get(&key) {
                Some(&i) => {
                    let group = &mut groups[i];
                    group.count += 1;
                    group.first_at = group.first_at.min(entry.received_at);
                    group.last_at = group.last_at.max(entry.received_at);
                }
                None => {
                    index.insert(key.clone(), groups.len());
                    let (status, code, path) = key;
                    groups.push(ErrorGroup {
                        status,
                        code,
                        path,
                        count: 1,
                        first_at: entry.received_at,
                        last_at: entry.received_at,
                        example_event_id: entry.id.clone(),
                        message: entry.error.as_ref().map(|e| e.message.clone()),
                    });
                }
            }
        }
        Self::sort(&mut groups);
        groups
    }

    /// Largest first; then by status, code and path, so that the order is stable.
    pub fn sort(groups: &mut [ErrorGroup]) {
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.status.as_str().cmp(b.status.as_str()))
                .then_with(|| a.code.cmp(&b.code))
                .then_with(|| a.path.cmp(&b.path))
        });
    }
}
