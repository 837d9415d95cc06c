//! What a member's points are made of, at a moment: each award (and each positive adjustment)
//! is a lot, with when it becomes spendable (pending awards) and when it expires (the
//! program's policy); reversals and expiries take from the lot they name, and a negative
//! adjustment uses up the oldest lots first. From that, the spendable balance, the pending
//! points, the next points to expire, and the points that have expired but have no `expiry`
//! entry yet (the sweep writes those). Pure: every store and the engine read the same answer.

use crate::ids::LedgerEntryId;
use crate::ledger::{EntryKind, LedgerEntry};
use crate::program::PointsExpiry;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// How many of the next expiries a member view lists.
pub const EXPIRING_SHOWN: usize = 5;

/// Points that expire at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expiring {
    pub points: i64,
    pub at: DateTime<Utc>,
}

/// A member's points at a moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PointsView {
    /// What can be spent: the ledger's sum without pending and expired points.
    pub balance: i64,
    /// Awarded, counted toward limits, not yet spendable.
    pub pending: i64,
    /// The next lots to expire, soonest first.
    pub expiring: Vec<Expiring>,
    /// Lots past their expiry with points left and no `expiry` entry yet: (award, points).
    pub expired: Vec<(LedgerEntryId, i64)>,
}

#[derive(Clone, Debug)]
struct Lot {
    award: Option<LedgerEntryId>,
    left: i64,
    occurred_at: DateTime<Utc>,
    available_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

/// The member's points at `now`, from all of its ledger entries (in ledger order).
pub fn points_view(
    entries: &[LedgerEntry],
    now: DateTime<Utc>,
    expiry: Option<PointsExpiry>,
) -> PointsView {
    let mut lots = Lots::new(expiry);
    for entry in entries {
        lots.apply(entry);
    }
    lots.view(now)
}

/// A member's lots built entry by entry, in ledger order: the state [`points_view`] folds the
/// ledger into, kept so that the views after each of many entries (the change feed's ledger
/// messages) cost one pass over the ledger, and so that it can be carried on from where it
/// was when more entries come.
#[derive(Clone, Debug)]
pub struct Lots {
    expiry: Option<PointsExpiry>,
    lots: Vec<Lot>,
    /// What negative adjustments could not take from the lots of their time: later lots pay it.
    debt: i64,
    /// The sum of the entries applied.
    total: i64,
}

impl Lots {
    /// No entries yet, under the program's expiry policy.
    pub fn new(expiry: Option<PointsExpiry>) -> Self {
        Self {
            expiry,
            lots: Vec::new(),
            debt: 0,
            total: 0,
        }
    }

    /// The expiry policy the lots were built under.
    pub fn expiry(&self) -> Option<PointsExpiry> {
        self.expiry
    }

    /// How many lots it holds (what keeping it costs).
    pub fn lot_count(&self) -> usize {
        self.lots.len()
    }

    /// Takes the member's next entry in ledger order (an entry that happened earlier but
    /// arrives later does not move what an older adjustment took).
    pub fn apply(&mut self, entry: &LedgerEntry) {
        self.total += entry.points;
        match entry.kind {
            EntryKind::Award | EntryKind::Adjustment if entry.points > 0 => {
                let award = entry.kind == EntryKind::Award;
                let mut lot = Lot {
                    award: award.then(|| entry.id.clone()),
                    left: entry.points,
                    occurred_at: if award {
                        entry.occurred_at
                    } else {
                        entry.created_at
                    },
                    available_at: entry.available_at,
                    expires_at: self
                        .expiry
                        .filter(|_| award)
                        .map(|policy| policy.expires_at(entry.occurred_at)),
                };
                let paid = self.debt.min(lot.left);
                lot.left -= paid;
                self.debt -= paid;
                self.lots.push(lot);
            }
            EntryKind::Reversal | EntryKind::Expiry => {
                if let Some(lot) = self
                    .lots
                    .iter_mut()
                    .find(|l| l.award.is_some() && l.award == entry.reverses)
                {
                    lot.left -= (-entry.points).min(lot.left);
                }
            }
            EntryKind::Adjustment if entry.points < 0 => {
                // The oldest points first, among those not expired when it was made.
                let mut owed = -entry.points;
                let mut open: Vec<&mut Lot> = self
                    .lots
                    .iter_mut()
                    .filter(|l| l.left > 0 && l.expires_at.is_none_or(|at| at > entry.created_at))
                    .collect();
                open.sort_by_key(|l| l.occurred_at);
                for lot in open {
                    let take = owed.min(lot.left);
                    lot.left -= take;
                    owed -= take;
                }
                self.debt += owed;
            }
            _ => {}
        }
    }

    /// The member's points at `now`, from the entries applied so far.
    pub fn view(&self, now: DateTime<Utc>) -> PointsView {
        let mut view = PointsView::default();
        let mut expiring = Vec::new();
        for lot in self.lots.iter().filter(|l| l.left > 0) {
            match lot.expires_at {
                Some(at) if at <= now => {
                    if let Some(award) = &lot.award {
                        view.expired.push((award.clone(), lot.left));
                    }
                    continue;
                }
                Some(at) => expiring.push(Expiring {
                    points: lot.left,
                    at,
                }),
                None => {}
            }
            if lot.available_at.is_some_and(|at| at > now) {
                view.pending += lot.left;
            }
        }
        expiring.sort_by_key(|e| e.at);
        expiring.truncate(EXPIRING_SHOWN);
        view.expiring = expiring;
        let expired: i64 = view.expired.iter().map(|(_, points)| points).sum();
        view.balance = self.total - view.pending - expired;
        view
    }
}

/// The `expiry` entries for what has expired in `entries` at `now` (positions are the store's
/// to assign): each takes what is left of one award, with the award's rule, dated when it
/// expired.
pub fn expiry_entries(
    entries: &[LedgerEntry],
    now: DateTime<Utc>,
    policy: PointsExpiry,
) -> Vec<LedgerEntry> {
    let view = points_view(entries, now, Some(policy));
    view.expired
        .into_iter()
        .filter_map(|(award, points)| {
            let award = entries.iter().find(|e| e.id == award)?;
            Some(LedgerEntry {
                id: LedgerEntryId::generate(),
                program_id: award.program_id.clone(),
                member_id: award.member_id.clone(),
                kind: EntryKind::Expiry,
                event_id: None,
                connector_id: None,
                rule_id: award.rule_id.clone(),
                points: -points,
                reverses: Some(award.id.clone()),
                reason: None,
                available_at: None,
                test: award.test,
                created_at: now,
                occurred_at: policy.expires_at(award.occurred_at),
                seq: 0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EventId, MemberId, ProgramId, RuleId};
    use chrono::{Duration, TimeZone};

    fn day(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap() + Duration::days(n)
    }

    fn entry(id: &str, kind: EntryKind, points: i64, at: i64) -> LedgerEntry {
        LedgerEntry {
            id: LedgerEntryId::new(id),
            program_id: ProgramId::new("prg_a"),
            member_id: MemberId::new("mem_a"),
            kind,
            event_id: (kind == EntryKind::Award).then(|| EventId::new(format!("evt_{id}"))),
            connector_id: None,
            rule_id: (kind == EntryKind::Award).then(|| RuleId::new("rul_a")),
            points,
            reverses: None,
            reason: None,
            available_at: None,
            test: false,
            created_at: day(at),
            occurred_at: day(at),
            seq: 0,
        }
    }

    fn taking(id: &str, kind: EntryKind, points: i64, award: &str, at: i64) -> LedgerEntry {
        LedgerEntry {
            reverses: Some(LedgerEntryId::new(award)),
            ..entry(id, kind, points, at)
        }
    }

    const THIRTY_DAYS: Option<PointsExpiry> = Some(PointsExpiry { after_days: 30 });

    #[test]
    fn expired_points_leave_the_balance_before_the_sweep_writes_them() {
        let entries = [
            entry("a1", EntryKind::Award, 10, 0),
            entry("a2", EntryKind::Award, 20, 10),
        ];
        let before = points_view(&entries, day(29), THIRTY_DAYS);
        assert_eq!((before.balance, before.pending), (30, 0));
        assert_eq!(
            before.expiring,
            [
                Expiring {
                    points: 10,
                    at: day(30)
                },
                Expiring {
                    points: 20,
                    at: day(40)
                }
            ]
        );
        let after = points_view(&entries, day(30), THIRTY_DAYS);
        assert_eq!(after.balance, 20);
        assert_eq!(after.expired, [(LedgerEntryId::new("a1"), 10)]);
        // Once the sweep wrote the expiry, nothing more is expired, and the balance is the same.
        let mut swept = entries.to_vec();
        swept.push(taking("x1", EntryKind::Expiry, -10, "a1", 30));
        let swept = points_view(&swept, day(31), THIRTY_DAYS);
        assert_eq!((swept.balance, swept.expired.len()), (20, 0));
        assert_eq!(points_view(&entries, day(400), None).balance, 30);
    }

    #[test]
    fn negative_adjustments_use_the_oldest_points_first() {
        let entries = [
            entry("a1", EntryKind::Award, 10, 0),
            entry("a2", EntryKind::Award, 20, 10),
            entry("n1", EntryKind::Adjustment, -15, 12),
        ];
        let view = points_view(&entries, day(35), THIRTY_DAYS);
        // a1 was used up by the adjustment: nothing of it expires; 15 of a2 are left.
        assert!(view.expired.is_empty());
        assert_eq!(view.balance, 15);
        assert_eq!(
            view.expiring,
            [Expiring {
                points: 15,
                at: day(40)
            }]
        );
        let view = points_view(&entries, day(40), THIRTY_DAYS);
        assert_eq!((view.balance, view.expired.len()), (0, 1));
    }

    #[test]
    fn pending_points_count_once_available_and_a_reversal_takes_them() {
        let pending = LedgerEntry {
            available_at: Some(day(14)),
            ..entry("a1", EntryKind::Award, 10, 0)
        };
        let entries = [pending.clone(), entry("a2", EntryKind::Award, 5, 1)];
        let view = points_view(&entries, day(7), None);
        assert_eq!((view.balance, view.pending), (5, 10));
        let view = points_view(&entries, day(14), None);
        assert_eq!((view.balance, view.pending), (15, 0));
        let reversed = [
            pending,
            entry("a2", EntryKind::Award, 5, 1),
            taking("r1", EntryKind::Reversal, -4, "a1", 2),
        ];
        let view = points_view(&reversed, day(7), None);
        assert_eq!((view.balance, view.pending), (5, 6));
    }

    #[test]
    fn what_an_entry_took_does_not_move_when_entries_come_later() {
        // An adjustment made after a1 expired takes nothing of it, swept or not.
        let unswept = [
            entry("a1", EntryKind::Award, 10, 0),
            entry("a2", EntryKind::Award, 20, 10),
            entry("n1", EntryKind::Adjustment, -5, 35),
        ];
        let mut swept = unswept.to_vec();
        swept.insert(2, taking("x1", EntryKind::Expiry, -10, "a1", 30));
        assert_eq!(points_view(&unswept, day(36), THIRTY_DAYS).balance, 15);
        assert_eq!(points_view(&swept, day(36), THIRTY_DAYS).balance, 15);
        // An award that happened before a1 but arrives after the adjustment and a1's expiry
        // does not give a1 points back to expire a second time.
        let late = [
            entry("a1", EntryKind::Award, 10, 0),
            entry("n1", EntryKind::Adjustment, -4, 1),
            taking("x1", EntryKind::Expiry, -6, "a1", 30),
            entry("a0", EntryKind::Award, 3, -1),
        ];
        let view = points_view(&late, day(31), THIRTY_DAYS);
        assert_eq!(view.expired, [(LedgerEntryId::new("a0"), 3)]);
        assert_eq!(view.balance, 0);
    }

    #[test]
    fn a_deficit_shows_as_a_negative_balance() {
        let entries = [
            entry("a1", EntryKind::Award, 10, 0),
            entry("n1", EntryKind::Adjustment, -25, 1),
        ];
        let view = points_view(&entries, day(2), THIRTY_DAYS);
        assert_eq!((view.balance, view.pending), (-15, 0));
        assert!(view.expiring.is_empty());
    }
}
