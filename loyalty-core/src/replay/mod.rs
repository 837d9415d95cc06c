//! Replays and backtests: logged items run again through the current or a draft mapping and
//! rule set, in event-time order, with a report of what changes; applied, the changes are
//! made exactly once. What a replay is and reports lives here (pure); running one is
//! `Engine::run_replay`, and storing its changes the store's.

mod report;

pub use report::{
    ItemChange, MemberChange, MembersReport, Outcome, PointsReport, ReplayReport, ReportBuilder,
    RulePoints, StatusCounts,
};

use crate::error::StoreError;
use crate::ids::{ConnectorId, EventId, MemberId, ProgramId, ReplayId};
use crate::ledger::{ItemStatus, LogEntry};
use crate::rules::{Award, RuleSet, Usage, UsageKey};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A replay as an admin asks for it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplaySpec {
    pub connector_id: ConnectorId,
    /// Items received at or after.
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// Items received before (at the latest, when the replay is created).
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    /// The statuses of the items to replay (all four when absent).
    #[serde(default)]
    pub statuses: Option<Vec<ItemStatus>>,
    /// A JSONata mapping to use instead of the connector's.
    #[serde(default)]
    pub mapping: Option<String>,
    /// The connector's rule set for this replay instead of the stored one: a body with only
    /// an existing rule's `id` is that rule as stored; with an `id` and a rule's fields, that
    /// rule as written here; without an `id`, a new rule.
    #[serde(default)]
    pub rules: Option<Vec<Value>>,
    /// Make the changes (exactly once); otherwise nothing is stored.
    #[serde(default)]
    pub apply: bool,
}

impl ReplaySpec {
    /// A dry run of all of the connector's logged items, with its current mapping and rules.
    pub fn new(connector_id: ConnectorId) -> Self {
        Self {
            connector_id,
            from: None,
            to: None,
            statuses: None,
            mapping: None,
            rules: None,
            apply: false,
        }
    }
}

/// Which logged items a replay reads: a connector's, received in `[since, until)`, of these
/// statuses, in event-time order (an item's event time, else its receipt time; then its
/// position in the log).
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayScope {
    pub program: ProgramId,
    pub connector: ConnectorId,
    pub since: Option<DateTime<Utc>>,
    pub until: DateTime<Utc>,
    pub statuses: Vec<ItemStatus>,
}

impl ReplayScope {
    pub fn matches(&self, entry: &LogEntry) -> bool {
        entry.program_id == self.program
            && entry.connector_id == self.connector
            && self.since.is_none_or(|t| entry.received_at >= t)
            && entry.received_at < self.until
            && self.statuses.contains(&entry.status)
    }

    /// The order items are replayed in.
    pub fn order_key(entry: &LogEntry) -> (DateTime<Utc>, i64) {
        (entry.occurred_at.unwrap_or(entry.received_at), entry.seq)
    }
}

/// The items of a replay, page after page, never the whole log at once.
#[async_trait]
pub trait ReplayReader: Send {
    /// The next items in order; empty at the end.
    async fn next_page(&mut self) -> Result<Vec<LogEntry>, StoreError>;
}

/// Where a replay job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayState {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl ReplayState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayState::Running => "running",
            ReplayState::Done => "done",
            ReplayState::Failed => "failed",
            ReplayState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Running, Self::Done, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A replay job as stored: what was asked, its fixed scope, and where it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayRecord {
    pub id: ReplayId,
    #[serde(skip)]
    pub program_id: ProgramId,
    pub spec: ReplaySpec,
    /// The end of the items read, fixed when the replay is created: what it processes anew
    /// is logged after it, so a replay never reads its own items.
    pub until: DateTime<Utc>,
    pub state: ReplayState,
    pub processed: u64,
    pub total: u64,
    pub report: Option<ReplayReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A running replay's counters, shared with whoever watches it, and its cancellation.
#[derive(Debug, Default)]
pub struct ReplayProgress {
    pub processed: AtomicU64,
    pub total: AtomicU64,
    cancelled: AtomicBool,
}

impl ReplayProgress {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// How a replay ended: finished, or stopped by its cancellation (with what it did so far).
#[derive(Clone, Debug, PartialEq)]
pub enum ReplayEnd {
    Done(ReplayReport),
    Cancelled(ReplayReport),
}

/// What an applied replay changes on one accepted event: its awards become `awards`
/// (what is left of the current ones is reversed, the new ones awarded), at most once per
/// replay and event.
#[derive(Clone, Debug)]
pub struct ReplayChange {
    pub program: ProgramId,
    pub replay: ReplayId,
    pub event: EventId,
    pub member: MemberId,
    pub awards: Vec<Award>,
    /// The rules the awards come from (for their pending days).
    pub rules: Arc<RuleSet>,
    pub occurred_at: DateTime<Utc>,
    pub test: bool,
    pub at: DateTime<Utc>,
}

impl ReplayChange {
    /// The reason written on the entries a replay makes: it names the replay.
    pub fn reason(replay: &ReplayId) -> String {
        format!("replay {replay}")
    }

    pub fn is_replay_reason(reason: Option<&str>) -> bool {
        reason.is_some_and(|r| r.starts_with("replay rpl_"))
    }

    /// The usage the new awards add, in every period of the event's time.
    pub fn usage_increments(&self) -> Vec<(UsageKey, crate::rules::UsageCount)> {
        self.awards
            .iter()
            .flat_map(|award| {
                crate::rules::Period::ALL.iter().map(move |period| {
                    (
                        UsageKey {
                            rule_id: award.rule_id.clone(),
                            period: period.key(self.occurred_at),
                        },
                        crate::rules::UsageCount {
                            count: 1,
                            points: award.points,
                        },
                    )
                })
            })
            .collect()
    }
}

/// What applying a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayApplied {
    /// Written now: the points it changed the member's balance by.
    Done { points: i64 },
    /// This replay changed this event before: nothing written.
    AlreadyApplied,
    /// The event is no accepted event of the program (purged meanwhile).
    UnknownEvent,
}

/// Subtracts `sub` from `usage`, dropping keys that reach zero.
pub(crate) fn subtract_usage(usage: &mut Usage, sub: &[(UsageKey, crate::rules::UsageCount)]) {
    for (key, count) in sub {
        if let Some(current) = usage.get_mut(key) {
            current.count -= count.count;
            current.points -= count.points;
            if current.count == 0 && current.points == 0 {
                usage.remove(key);
            }
        } else {
            usage.insert(
                key.clone(),
                crate::rules::UsageCount {
                    count: -count.count,
                    points: -count.points,
                },
            );
        }
    }
}

/// What a replay change writes, decided once for every store: the `reversal` entries that
/// take back what is left of the event's awards (`awards`, read under the member's lock), the
/// new `award` entries, both with the replay's reason and the event's id, and the usage they
/// free and add.
#[derive(Clone, Debug, Default)]
pub struct ChangeEntries {
    pub reversals: Vec<crate::ledger::LedgerEntry>,
    pub awards: Vec<crate::ledger::LedgerEntry>,
    pub freed: Vec<(UsageKey, crate::rules::UsageCount)>,
    pub added: Vec<(UsageKey, crate::rules::UsageCount)>,
}

impl ChangeEntries {
    pub fn of(
        change: &ReplayChange,
        connector: &crate::ids::ConnectorId,
        awards: &[crate::reversal::AwardState],
    ) -> Self {
        use crate::ledger::{EntryKind, LedgerEntry};
        let reason = ReplayChange::reason(&change.replay);
        let shares = crate::reversal::admin_shares(awards, None);
        let cause = crate::reversal::ReversalCause {
            event: Some(change.event.clone()),
            connector: Some(connector.clone()),
            reason: Some(reason.clone()),
        };
        let (reversals, freed) =
            crate::reversal::reversal_entries(&change.program, awards, &shares, &cause, change.at);
        let new_awards = change
            .awards
            .iter()
            .filter(|award| award.points > 0)
            .map(|award| LedgerEntry {
                id: crate::ids::LedgerEntryId::generate(),
                program_id: change.program.clone(),
                member_id: change.member.clone(),
                kind: EntryKind::Award,
                event_id: Some(change.event.clone()),
                connector_id: Some(connector.clone()),
                rule_id: Some(award.rule_id.clone()),
                points: award.points,
                reverses: None,
                reason: Some(reason.clone()),
                available_at: change
                    .rules
                    .pending_days(&award.rule_id)
                    .map(|days| change.occurred_at + chrono::Duration::days(i64::from(days))),
                test: change.test,
                created_at: change.at,
                occurred_at: change.occurred_at,
                seq: 0,
            })
            .collect();
        Self {
            reversals,
            awards: new_awards,
            freed,
            added: change.usage_increments(),
        }
    }

    /// What the entries change the member's balance by.
    pub fn points(&self) -> i64 {
        self.reversals
            .iter()
            .chain(&self.awards)
            .map(|e| e.points)
            .sum()
    }
}
