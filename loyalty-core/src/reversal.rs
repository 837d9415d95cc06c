//! Taking points back: how much of each award a refund or an admin reversal takes, and the
//! limit usage that frees. Pure arithmetic on integers, written once for every store.

use crate::ids::{ConnectorId, EventId, LedgerEntryId, MemberId, ProgramId, RuleId};
use crate::ledger::{EntryKind, LedgerEntry};
use crate::rules::{Period, Usage, UsageCount, UsageKey};
use chrono::{DateTime, Utc};

/// One award of an event and what reversals took from it so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwardState {
    pub entry: LedgerEntryId,
    pub member: MemberId,
    pub rule: RuleId,
    pub points: i64,
    /// Points reversed so far (positive).
    pub reversed: i64,
    /// Points that expired (positive): gone from the award, but they still count toward the
    /// limits, which only reversals free.
    pub expired: i64,
    pub occurred_at: DateTime<Utc>,
    pub test: bool,
}

impl AwardState {
    /// What can still be taken back: neither reversed nor expired.
    pub fn left(&self) -> i64 {
        (self.points - self.reversed - self.expired).max(0)
    }

    /// What still counts toward the rule's limits: all but what reversals took.
    fn counted(&self) -> i64 {
        (self.points - self.reversed).max(0)
    }

    /// The awards of `event` among `entries` (a member's ledger), with what reversals and
    /// expiries took, in rule order as awarded (entry order).
    pub fn of_event(entries: &[LedgerEntry], event: &EventId) -> Vec<AwardState> {
        let mut awards: Vec<AwardState> = entries
            .iter()
            .filter(|e| e.kind == EntryKind::Award && e.event_id.as_ref() == Some(event))
            .filter_map(|e| {
                Some(AwardState {
                    entry: e.id.clone(),
                    member: e.member_id.clone(),
                    rule: e.rule_id.clone()?,
                    points: e.points,
                    reversed: 0,
                    expired: 0,
                    occurred_at: e.occurred_at,
                    test: e.test,
                })
            })
            .collect();
        let takers = entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Reversal | EntryKind::Expiry));
        for entry in takers {
            if let Some(award) = awards
                .iter_mut()
                .find(|a| Some(&a.entry) == entry.reverses.as_ref())
            {
                if entry.kind == EntryKind::Reversal {
                    award.reversed += -entry.points;
                } else {
                    award.expired += -entry.points;
                }
            }
        }
        awards
    }
}

/// What a refund of `refunded` (major units; `None`: all of it) of a purchase of `amount`
/// takes from each award: each award's share `refunded / amount` of its points, rounded down,
/// never more than is left of it. A refund of the whole amount or more (or of a purchase
/// without a positive amount) takes all that is left.
pub fn refund_shares(awards: &[AwardState], amount: f64, refunded: Option<f64>) -> Vec<i64> {
    awards
        .iter()
        .map(|award| match refunded {
            Some(refunded) if amount > 0.0 && refunded < amount => {
                let share = (award.points as f64 * refunded.max(0.0) / amount).floor() as i64;
                share.clamp(0, award.left())
            }
            _ => award.left(),
        })
        .collect()
}

/// What an admin reversal of `points` (`None`: all that is left) takes from each award: in
/// proportion to what is left of each, rounded down, the rest from the first awards (in rule
/// order) that have some left; never more than is left in all.
pub fn admin_shares(awards: &[AwardState], points: Option<i64>) -> Vec<i64> {
    let left: i64 = awards.iter().map(AwardState::left).sum();
    let Some(points) = points else {
        return awards.iter().map(AwardState::left).collect();
    };
    let points = points.clamp(0, left);
    if left == 0 {
        return vec![0; awards.len()];
    }
    let mut shares: Vec<i64> = awards
        .iter()
        .map(|a| ((a.left() as i128 * points as i128) / left as i128) as i64)
        .collect();
    let mut rest = points - shares.iter().sum::<i64>();
    for (share, award) in shares.iter_mut().zip(awards) {
        let room = award.left() - *share;
        let take = rest.min(room);
        *share += take;
        rest -= take;
    }
    shares
}

/// What caused a reversal: a refund event (and its connector), or an admin's reason.
#[derive(Clone, Debug, Default)]
pub struct ReversalCause {
    pub event: Option<EventId>,
    pub connector: Option<ConnectorId>,
    pub reason: Option<String>,
}

/// The `reversal` entries that take `shares` from `awards` (a zero share writes nothing), and
/// the usage they free, summed per key. Entry positions (`seq`) are the store's to assign.
pub fn reversal_entries(
    program: &ProgramId,
    awards: &[AwardState],
    shares: &[i64],
    cause: &ReversalCause,
    at: DateTime<Utc>,
) -> (Vec<LedgerEntry>, Vec<(UsageKey, UsageCount)>) {
    let mut entries = Vec::new();
    let mut freed: Vec<(UsageKey, UsageCount)> = Vec::new();
    for (award, &share) in awards.iter().zip(shares) {
        if share <= 0 {
            continue;
        }
        entries.push(LedgerEntry {
            id: LedgerEntryId::generate(),
            program_id: program.clone(),
            member_id: award.member.clone(),
            kind: EntryKind::Reversal,
            event_id: cause.event.clone(),
            connector_id: cause.connector.clone(),
            rule_id: Some(award.rule.clone()),
            points: -share,
            reverses: Some(award.entry.clone()),
            reason: cause.reason.clone(),
            available_at: None,
            test: award.test,
            created_at: at,
            occurred_at: at,
            seq: 0,
        });
        for (key, count) in usage_freed(award, share) {
            match freed.iter_mut().find(|(k, _)| *k == key) {
                Some((_, sum)) => sum.add(count),
                None => freed.push((key, count)),
            }
        }
    }
    (entries, freed)
}

/// The usage a reversal of `reversing` points of `award` frees: its points in every period of
/// the award's time, and the award itself (a count) once nothing is left of it.
pub fn usage_freed(award: &AwardState, reversing: i64) -> Vec<(UsageKey, UsageCount)> {
    let emptied = award.counted() > 0 && reversing >= award.counted();
    Period::ALL
        .iter()
        .map(|period| {
            (
                UsageKey {
                    rule_id: award.rule.clone(),
                    period: period.key(award.occurred_at),
                },
                UsageCount {
                    count: if emptied { -1 } else { 0 },
                    points: -reversing,
                },
            )
        })
        .collect()
}

/// A member's usage as its ledger says: every award counts in every period of its time, less
/// what reversals freed (expiry frees nothing: the points were earned). Stores that forget
/// entries (a purge) recompute what is left with it.
pub fn usage_of(entries: &[LedgerEntry]) -> Usage {
    let mut usage = Usage::default();
    let awards = entries.iter().filter(|e| e.kind == EntryKind::Award);
    for award in awards {
        let Some(rule) = &award.rule_id else { continue };
        let reversed: i64 = entries
            .iter()
            .filter(|e| e.kind == EntryKind::Reversal && e.reverses.as_ref() == Some(&award.id))
            .map(|e| -e.points)
            .sum();
        let left = (award.points - reversed).max(0);
        for period in Period::ALL {
            usage
                .entry(UsageKey {
                    rule_id: rule.clone(),
                    period: period.key(award.occurred_at),
                })
                .or_default()
                .add(UsageCount {
                    count: i64::from(left > 0),
                    points: left,
                });
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn award(rule: &str, points: i64, reversed: i64) -> AwardState {
        AwardState {
            entry: LedgerEntryId::new(format!("led_{rule}")),
            member: MemberId::new("mem_a"),
            rule: RuleId::new(rule),
            points,
            reversed,
            expired: 0,
            occurred_at: Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
            test: false,
        }
    }

    #[test]
    fn refunds_take_each_award_s_share_rounded_down() {
        let check = |awards: &[AwardState], amount, refunded, expected: &[i64]| {
            assert_eq!(
                refund_shares(awards, amount, refunded),
                expected,
                "{refunded:?} of {amount}"
            );
        };
        // 15 of 20 against a 10-point award reverses 7.
        check(&[award("r1", 10, 0)], 20.0, Some(15.0), &[7]);
        check(
            &[award("r1", 10, 0), award("r2", 3, 0)],
            20.0,
            Some(10.0),
            &[5, 1],
        );
        check(&[award("r1", 10, 0)], 20.0, None, &[10]);
        check(&[award("r1", 10, 0)], 20.0, Some(25.0), &[10]);
        // Never more than is left.
        check(&[award("r1", 10, 8)], 20.0, Some(15.0), &[2]);
        check(&[award("r1", 10, 10)], 20.0, None, &[0]);
        check(&[award("r1", 10, 0)], 0.0, Some(5.0), &[10]);
        check(&[award("r1", 10, 0)], 20.0, Some(-5.0), &[0]);
    }

    #[test]
    fn expired_points_are_not_taken_back_but_still_count_toward_limits() {
        let partly_expired = AwardState {
            expired: 4,
            ..award("r1", 10, 0)
        };
        assert_eq!(
            refund_shares(std::slice::from_ref(&partly_expired), 20.0, None),
            [6]
        );
        assert_eq!(
            admin_shares(std::slice::from_ref(&partly_expired), Some(100)),
            [6]
        );
        let gone = AwardState {
            expired: 10,
            ..award("r1", 10, 0)
        };
        assert_eq!(refund_shares(&[gone], 20.0, None), [0]);
        // Reversing what is left frees its points, but 4 expired points still count.
        let freed = usage_freed(&partly_expired, 6);
        assert!(freed.iter().all(|(_, c)| *c
            == UsageCount {
                count: 0,
                points: -6
            }));
    }

    #[test]
    fn admin_reversals_split_in_proportion_and_the_rest_from_the_first() {
        let awards = [award("r1", 10, 0), award("r2", 5, 0)];
        assert_eq!(admin_shares(&awards, None), [10, 5]);
        assert_eq!(admin_shares(&awards, Some(7)), [5, 2]);
        assert_eq!(admin_shares(&awards, Some(1)), [1, 0]);
        assert_eq!(admin_shares(&awards, Some(100)), [10, 5]);
        let partly = [award("r1", 10, 9), award("r2", 5, 0)];
        assert_eq!(admin_shares(&partly, Some(3)), [1, 2]);
        assert_eq!(admin_shares(&[award("r1", 4, 4)], Some(3)), [0]);
    }

    #[test]
    fn a_reversal_frees_points_and_the_count_once_the_award_is_gone() {
        let partial = usage_freed(&award("r1", 10, 0), 4);
        assert!(partial.iter().all(|(_, c)| *c
            == UsageCount {
                count: 0,
                points: -4
            }));
        assert_eq!(partial.len(), Period::ALL.len());
        let last = usage_freed(&award("r1", 10, 4), 6);
        assert!(last.iter().all(|(_, c)| *c
            == UsageCount {
                count: -1,
                points: -6
            }));
    }

    #[test]
    fn usage_from_the_ledger_counts_what_is_left_of_each_award() {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let entry = |id: &str, kind, points, reverses: Option<&str>| LedgerEntry {
            id: LedgerEntryId::new(id),
            program_id: crate::ids::ProgramId::new("prg_a"),
            member_id: MemberId::new("mem_a"),
            kind,
            event_id: Some(EventId::new("evt_a")),
            connector_id: None,
            rule_id: Some(RuleId::new("r1")),
            points,
            reverses: reverses.map(LedgerEntryId::new),
            reason: None,
            available_at: None,
            test: false,
            created_at: at,
            occurred_at: at,
            seq: 0,
        };
        let day = UsageKey {
            rule_id: RuleId::new("r1"),
            period: Period::Day.key(at),
        };
        let entries = [
            entry("a1", EntryKind::Award, 10, None),
            entry("a2", EntryKind::Award, 5, None),
            entry("x1", EntryKind::Reversal, -5, Some("a2")),
            entry("x2", EntryKind::Reversal, -3, Some("a1")),
            entry("e1", EntryKind::Expiry, -2, Some("a1")),
        ];
        assert_eq!(
            usage_of(&entries)[&day],
            UsageCount {
                count: 1,
                points: 7
            }
        );
    }
}
