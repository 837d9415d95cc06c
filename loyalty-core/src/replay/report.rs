//! A replay's report: counts by status, points by rule, the members whose balance changes and
//! the first changed items, before and after. Built item by item in bounded memory (only the
//! first changes are kept; rules are few).

use crate::event::ItemError;
use crate::ids::{EventId, MemberId, RuleId};
use crate::ledger::ItemStatus;
use crate::rules::{Award, TraceEntry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The changed items a report shows.
pub const MAX_CHANGES: usize = 50;
/// The members a report shows: those whose balance changes most.
pub const MAX_MEMBERS: usize = 20;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub accepted: u64,
    pub duplicate: u64,
    pub ignored: u64,
    pub rejected: u64,
}

impl StatusCounts {
    fn add(&mut self, status: ItemStatus) {
        match status {
            ItemStatus::Accepted => self.accepted += 1,
            ItemStatus::Duplicate => self.duplicate += 1,
            ItemStatus::Ignored => self.ignored += 1,
            ItemStatus::Rejected => self.rejected += 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RulePoints {
    pub rule_id: RuleId,
    pub before: i64,
    pub after: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointsReport {
    pub before: i64,
    pub after: i64,
    pub by_rule: Vec<RulePoints>,
}

/// A member whose balance the replay changes: its balance before and after. A member the
/// replay would enrol has no id yet (and a balance of 0 before).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberChange {
    pub member_id: Option<MemberId>,
    pub before: i64,
    pub after: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersReport {
    pub changed: u64,
    pub largest: Vec<MemberChange>,
}

/// What became of an item, before the replay (as logged) or after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub status: ItemStatus,
    pub points: i64,
    #[serde(default)]
    pub awards: Vec<Award>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<MemberId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<TraceEntry>>,
    /// After an applied replay, the item it logged when it processed this one anew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
}

impl Outcome {
    /// Whether `other` differs in what counts: status, points or awards.
    pub fn differs_from(&self, other: &Outcome) -> bool {
        self.status != other.status || self.points != other.points || self.awards != other.awards
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemChange {
    pub event_id: EventId,
    pub before: Outcome,
    pub after: Outcome,
}

/// A replay's report. With `applied`, what the replay did; otherwise what it would do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    pub applied: bool,
    pub before: StatusCounts,
    pub after: StatusCounts,
    pub points: PointsReport,
    pub members: MembersReport,
    /// Items whose outcome changes, in all (`changes` shows the first).
    pub changed: u64,
    pub changes: Vec<ItemChange>,
    /// Items left as they were because they cannot be replayed faithfully: a raw item cut at
    /// the log's size limit, an accepted refund, or an accepted event whose awards were
    /// reversed since (by a refund or an admin).
    pub skipped: u64,
}

/// Builds a report item by item.
#[derive(Debug, Default)]
pub struct ReportBuilder {
    report: ReplayReport,
    by_rule: BTreeMap<RuleId, (i64, i64)>,
}

impl ReportBuilder {
    pub fn new(applied: bool) -> Self {
        Self {
            report: ReplayReport {
                applied,
                ..Default::default()
            },
            by_rule: BTreeMap::new(),
        }
    }

    /// One item's outcome before and after.
    pub fn record(&mut self, event_id: &EventId, before: Outcome, after: Outcome) {
        let report = &mut self.report;
        report.before.add(before.status);
        report.after.add(after.status);
        report.points.before += before.points;
        report.points.after += after.points;
        for award in &before.awards {
            self.by_rule.entry(award.rule_id.clone()).or_default().0 += award.points;
        }
        for award in &after.awards {
            self.by_rule.entry(award.rule_id.clone()).or_default().1 += award.points;
        }
        if before.differs_from(&after) {
            report.changed += 1;
            if report.changes.len() < MAX_CHANGES {
                report.changes.push(ItemChange {
                    event_id: event_id.clone(),
                    before,
                    after,
                });
            }
        }
    }

    /// An item left as it was (see [`ReplayReport::skipped`]).
    pub fn skip(&mut self, event_id: &EventId, before: Outcome) {
        self.report.skipped += 1;
        self.record(event_id, before.clone(), before);
    }

    /// The report, with the members' balances before and after.
    pub fn finish(mut self, members: impl Iterator<Item = MemberChange>) -> ReplayReport {
        self.report.points.by_rule = self
            .by_rule
            .into_iter()
            .map(|(rule_id, (before, after))| RulePoints {
                rule_id,
                before,
                after,
            })
            .collect();
        let mut changed: Vec<MemberChange> = members.filter(|m| m.before != m.after).collect();
        self.report.members.changed = changed.len() as u64;
        changed.sort_by(|a, b| {
            (b.after - b.before)
                .abs()
                .cmp(&(a.after - a.before).abs())
                .then_with(|| a.member_id.cmp(&b.member_id))
        });
        changed.truncate(MAX_MEMBERS);
        self.report.members.largest = changed;
        self.report
    }
}
