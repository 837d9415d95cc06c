//! The change feed: every committed change of a program (a ledger entry, a logged event), in
//! commit order per member, each with a **position**, the cursor a reader resumes from.
//!
//! Stores keep the feed durably (PostgreSQL: a table written in the same transaction as the
//! change, numbered by a sequencer once committed, kept at least
//! [`FEED_RETENTION_MINUTES`]) or for the process's life (the memory store: its log). A
//! reader asks for the changes after its cursor ([`crate::store::FeedStore::changes_after`]) and,
//! when it has caught up, waits on the store's [`FeedSignal`], which the store raises after
//! every commit (PostgreSQL: after any process's commit). [`crate::Engine::subscribe`] wraps
//! that loop into a stream for embedders; the HTTP layer's stream route shares one reader per
//! program among its clients.
//!
//! What a change says is the stream's message, serialized as the HTTP API documents it:
//! a ledger change is `{memberId, entry, balance, pending}` (the member's spendable balance
//! and pending points just after the entry, at the entry's time, from the ledger up to and
//! including it); an event change is the event-log item without its `raw` payload.
//! Purging test data emits nothing: the purged changes simply disappear from the feed.

use crate::event::ItemError;
use crate::ids::{ConnectorId, EventId, MemberId, ProgramId};
use crate::ledger::{ItemStatus, LedgerEntry, LogEntry};
use crate::lots::Lots;
use crate::program::PointsExpiry;
use crate::rules::{Award, TraceEntry};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

/// How long a store keeps the feed at least: a reader that comes back within this time with
/// its cursor misses nothing.
pub const FEED_RETENTION_MINUTES: i64 = 60;

/// The most changes one read returns.
pub const MAX_FEED_PAGE: usize = 1000;

/// A position in a program's feed: positions grow in commit order per member (and per
/// program, among changes that are visible together). `0` is before the first change.
pub type FeedPosition = i64;

/// One committed change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub position: FeedPosition,
    pub program_id: ProgramId,
    /// Whether the change is test data.
    pub test: bool,
    pub body: ChangeBody,
}

/// What changed.
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeBody {
    /// Shared, as a logged event is: a change is cloned for every reader.
    Ledger(Arc<LedgerChange>),
    Event(LoggedEvent),
}

/// The kind of a change, as the stream names it (`event:` of an SSE message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Ledger,
    Event,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Ledger => "ledger",
            ChangeKind::Event => "event",
        }
    }
}

impl Change {
    pub fn kind(&self) -> ChangeKind {
        match self.body {
            ChangeBody::Ledger(_) => ChangeKind::Ledger,
            ChangeBody::Event(_) => ChangeKind::Event,
        }
    }

    /// The member the change is about (an event that named none has none).
    pub fn member_id(&self) -> Option<&MemberId> {
        match &self.body {
            ChangeBody::Ledger(ledger) => Some(&ledger.member_id),
            ChangeBody::Event(event) => event.0.member_id.as_ref(),
        }
    }

    /// The message's JSON text (the `data:` of an SSE message).
    pub fn data_json(&self) -> String {
        let text = match &self.body {
            ChangeBody::Ledger(ledger) => serde_json::to_string(ledger),
            ChangeBody::Event(event) => serde_json::to_string(event),
        };
        // Serializing these types cannot fail: no map with non-string keys, no failing impl.
        text.unwrap_or_else(|_| "{}".into())
    }
}

/// A ledger entry with the member's points just after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerChange {
    pub member_id: MemberId,
    pub entry: LedgerEntry,
    /// Spendable, just after the entry, at the entry's time.
    pub balance: i64,
    /// Pending, just after the entry, at the entry's time.
    pub pending: i64,
}

impl LedgerChange {
    /// The change of `entry`, the last entry `lots` took (the member's points just after it,
    /// at its time).
    pub fn after(lots: &Lots, entry: &LedgerEntry) -> Self {
        let view = lots.view(entry.created_at);
        Self {
            member_id: entry.member_id.clone(),
            entry: entry.clone(),
            balance: view.balance,
            pending: view.pending,
        }
    }

    /// The change of `member_ledger[index]`, from the member's ledger in ledger order (only the
    /// entries up to and including it are read).
    pub fn of_entry(
        member_ledger: &[LedgerEntry],
        index: usize,
        expiry: Option<PointsExpiry>,
    ) -> Self {
        let mut lots = Lots::new(expiry);
        for entry in &member_ledger[..=index] {
            lots.apply(entry);
        }
        Self::after(&lots, &member_ledger[index])
    }

    /// The changes of the entries of one member's ledger whose `seq` is in `wanted` (sorted),
    /// by seq, in one pass over the ledger (in ledger order, read up to the last one wanted):
    /// a page of many messages of a member with a long ledger reads that ledger once, not once
    /// a message.
    pub fn of_entries<'a>(
        member_ledger: impl IntoIterator<Item = &'a LedgerEntry>,
        wanted: &[i64],
        expiry: Option<PointsExpiry>,
    ) -> Vec<(i64, Self)> {
        let mut changes = Vec::with_capacity(wanted.len());
        let Some(&last) = wanted.last() else {
            return changes;
        };
        let mut lots = Lots::new(expiry);
        for entry in member_ledger {
            if entry.seq > last {
                break;
            }
            lots.apply(entry);
            if wanted.binary_search(&entry.seq).is_ok() {
                changes.push((entry.seq, Self::after(&lots, entry)));
            }
        }
        changes
    }
}

/// A logged event, serialized as the event log shows it but without the raw payload (which
/// may be large and is read from the event log when wanted).
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedEvent(pub Arc<LogEntry>);

/// The event log item's fields but `raw`, borrowed. It must list the same fields, with the
/// same attributes, as [`LogEntry`]; a test checks that they agree.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventWithoutRaw<'a> {
    id: &'a EventId,
    connector_id: &'a ConnectorId,
    status: ItemStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: &'a Option<ItemError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_event_id: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_event_id: &'a Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    member_id: &'a Option<MemberId>,
    test: bool,
    received_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    occurred_at: Option<DateTime<Utc>>,
    points: i64,
    awards: &'a [Award],
    raw_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mapped: &'a Option<crate::ledger::RawJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: &'a Option<Vec<TraceEntry>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_id: &'a Option<crate::ids::ReplayId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed_event_id: &'a Option<EventId>,
}

impl Serialize for LoggedEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = &*self.0;
        EventWithoutRaw {
            id: &e.id,
            connector_id: &e.connector_id,
            status: e.status,
            reason: &e.reason,
            error: &e.error,
            client_event_id: &e.client_event_id,
            original_event_id: &e.original_event_id,
            member_id: &e.member_id,
            test: e.test,
            received_at: e.received_at,
            occurred_at: e.occurred_at,
            points: e.points,
            awards: &e.awards,
            raw_truncated: e.raw_truncated,
            mapped: &e.mapped,
            trace: &e.trace,
            warnings: &e.warnings,
            replay_id: &e.replay_id,
            replayed_event_id: &e.replayed_event_id,
        }
        .serialize(serializer)
    }
}

/// One read of the feed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangePage {
    /// In position order.
    pub changes: Vec<Change>,
    /// The cursor was older than what the store keeps: changes after it are gone, and the
    /// page starts with the oldest change kept.
    pub missed: bool,
}

/// What a subscription yields.
#[derive(Clone, Debug, PartialEq)]
pub enum FeedItem {
    Change(Change),
    /// Changes between the cursor and the next change are past retention: the reader missed
    /// them (it should read its state again, e.g. the member's balance).
    Missed,
}

/// Raised by a store after each commit, so that feed readers wait instead of polling. Cheap
/// to clone (all clones are one signal). Runtime-agnostic (`event-listener`).
#[derive(Clone, Debug, Default)]
pub struct FeedSignal(Arc<event_listener::Event>);

impl FeedSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes every reader waiting now.
    pub fn notify(&self) {
        self.0.notify(usize::MAX);
    }

    /// A wait for the next [`notify`](Self::notify). Take it *before* reading the feed, then
    /// await it if the read found nothing: a commit between the read and the await still
    /// wakes it.
    pub fn listen(&self) -> event_listener::EventListener {
        self.0.listen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{LedgerEntryId, RuleId};
    use crate::ledger::{EntryKind, RawJson};
    use chrono::{Duration, TimeZone};

    /// A ledger with pending awards, awards that expire, reversals, an expiry and negative
    /// adjustments (one larger than what is there).
    fn mixed_ledger() -> Vec<LedgerEntry> {
        let day = |n: i64| Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap() + Duration::days(n);
        let entry = |n: i64, kind: EntryKind, points: i64, reverses: Option<i64>| LedgerEntry {
            id: LedgerEntryId::new(format!("led_{n}")),
            program_id: ProgramId::new("prg_a"),
            member_id: MemberId::new("mem_a"),
            kind,
            event_id: (kind == EntryKind::Award).then(|| EventId::new(format!("evt_{n}"))),
            connector_id: None,
            rule_id: (kind == EntryKind::Award).then(|| RuleId::new("rul_a")),
            points,
            reverses: reverses.map(|r| LedgerEntryId::new(format!("led_{r}"))),
            reason: None,
            available_at: (kind == EntryKind::Award && n % 3 == 0).then(|| day(n + 5)),
            test: false,
            created_at: day(n),
            occurred_at: day(n),
            seq: n * 2,
        };
        let mut ledger = Vec::new();
        for n in 1..40 {
            ledger.push(match n % 7 {
                3 => entry(n, EntryKind::Reversal, -4, Some(n - 1)),
                5 => entry(n, EntryKind::Adjustment, -25, None),
                6 => entry(n, EntryKind::Expiry, -10, Some(n - 6)),
                _ => entry(n, EntryKind::Award, 10, None),
            });
        }
        ledger
    }

    #[test]
    fn a_page_of_ledger_changes_has_the_points_of_each_entry_alone() {
        let ledger = mixed_ledger();
        for expiry in [None, Some(PointsExpiry { after_days: 9 })] {
            let wanted: Vec<i64> = ledger
                .iter()
                .map(|e| e.seq)
                .filter(|s| s % 3 != 1)
                .collect();
            let page = LedgerChange::of_entries(&ledger, &wanted, expiry);
            assert_eq!(page.len(), wanted.len());
            for (seq, change) in page {
                let index = ledger.iter().position(|e| e.seq == seq).unwrap();
                assert_eq!(change, LedgerChange::of_entry(&ledger, index, expiry));
            }
        }
        assert!(LedgerChange::of_entries(&ledger, &[], None).is_empty());
    }

    #[test]
    fn an_event_change_is_the_log_item_without_raw() {
        let entry = LogEntry {
            id: EventId::new("evt_1"),
            program_id: ProgramId::new("prg_1"),
            connector_id: ConnectorId::new("con_1"),
            status: ItemStatus::Accepted,
            reason: Some("r".into()),
            error: None,
            client_event_id: Some("c-1".into()),
            original_event_id: Some(EventId::new("evt_0")),
            member_id: Some(MemberId::new("mem_1")),
            test: true,
            received_at: Utc::now(),
            occurred_at: Some(Utc::now()),
            points: 10,
            awards: Vec::new(),
            raw: RawJson::from_json_text(r#"{"big": "payload"}"#),
            raw_truncated: false,
            mapped: Some(RawJson::from_json_text(r#"{"a": 1}"#)),
            trace: Some(Vec::new()),
            warnings: vec!["w".into()],
            replay_id: Some(crate::ids::ReplayId::new("rpl_1")),
            replayed_event_id: Some(EventId::new("evt_0")),
            seq: 7,
        };
        let mut expected = serde_json::to_value(&entry).unwrap();
        expected.as_object_mut().unwrap().remove("raw");
        let change = serde_json::to_value(LoggedEvent(Arc::new(entry))).unwrap();
        assert_eq!(change, expected);
    }
}
