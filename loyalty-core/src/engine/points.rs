//! The life of points after the award, from the admin's side: adjustments by hand and the
//! reversal of an event's awards.

use super::Engine;
use crate::error::{Error, Result};
use crate::ids::{EventId, LedgerEntryId, MemberId, ProgramId};
use crate::ledger::{EntryKind, LedgerEntry};
use crate::rules::MAX_AWARD_POINTS;
use crate::store::{Adjusted, Adjustment, EventReversal, Reversed};

/// Reasons and idempotency keys are an admin's words: bounded like names.
const MAX_REASON_CHARS: usize = 500;
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

/// A reversal done: its entries and the member's balance after them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReversalDone {
    pub entries: Vec<LedgerEntry>,
    pub balance: i64,
}

impl ReversalDone {
    /// The points taken back (negative).
    pub fn points(&self) -> i64 {
        self.entries.iter().map(|e| e.points).sum()
    }
}

/// An adjustment stored: its entry, whether this call created it (else the same key had
/// created it before), and the member's balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdjustmentDone {
    pub entry: LedgerEntry,
    pub created: bool,
    pub balance: i64,
}

fn reason_of(reason: &str) -> Result<String> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid("/reason", "a reason is required"));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::invalid(
            "/reason",
            format!("expected at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason.to_owned())
}

impl Engine {
    /// Adds (or, negative, removes) `points` on a member's balance by hand, with a reason. The
    /// same `idempotency_key` again gives back the first adjustment, unchanged; the same key
    /// with other points, member or reason is an `idempotency_conflict`.
    pub async fn adjust_points(
        &self,
        program: &ProgramId,
        member: &MemberId,
        points: i64,
        reason: &str,
        idempotency_key: Option<&str>,
    ) -> Result<AdjustmentDone> {
        if points == 0 || points.abs() > MAX_AWARD_POINTS {
            return Err(Error::invalid(
                "/points",
                format!("expected a non-zero integer between -{MAX_AWARD_POINTS} and {MAX_AWARD_POINTS}"),
            ));
        }
        let reason = reason_of(reason)?;
        if let Some(key) = idempotency_key {
            if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS {
                return Err(Error::invalid(
                    "/idempotencyKey",
                    format!("expected 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"),
                ));
            }
        }
        let stored = self.get_member(program, member).await?;
        let now = self.now();
        let entry = LedgerEntry {
            id: LedgerEntryId::generate(),
            program_id: program.clone(),
            member_id: member.clone(),
            kind: EntryKind::Adjustment,
            event_id: None,
            connector_id: None,
            rule_id: None,
            points,
            reverses: None,
            reason: Some(reason),
            available_at: None,
            test: stored.test,
            created_at: now,
            occurred_at: now,
            seq: 0,
        };
        let adjustment = Adjustment {
            entry,
            idempotency_key: idempotency_key.map(str::to_owned),
        };
        let (entry, created) = match self.store.adjust(adjustment).await? {
            Adjusted::Created { entry, .. } => (entry, true),
            Adjusted::Existing { entry, .. } => (entry, false),
            Adjusted::KeyConflict => {
                return Err(Error::Conflict {
                    code: "idempotency_conflict",
                    message: "this idempotencyKey was used for another adjustment".into(),
                })
            }
            Adjusted::UnknownMember => return Err(Error::NotFound { what: "member" }),
        };
        let balance = self.spendable_balance(program, member).await?;
        Ok(AdjustmentDone {
            entry,
            created,
            balance,
        })
    }

    /// Takes back an accepted event's awards: all that is left, or `points` of it split over
    /// the awards in proportion (the rest from the first award in rule order), with a reason.
    pub async fn reverse_event(
        &self,
        program: &ProgramId,
        event: &EventId,
        points: Option<i64>,
        reason: &str,
    ) -> Result<ReversalDone> {
        if let Some(points) = points {
            if points <= 0 || points > MAX_AWARD_POINTS {
                return Err(Error::invalid(
                    "/points",
                    format!("expected a positive integer up to {MAX_AWARD_POINTS}"),
                ));
            }
        }
        let reason = reason_of(reason)?;
        let reversal = EventReversal {
            program: program.clone(),
            event: event.clone(),
            points,
            reason,
            at: self.now(),
        };
        match self.store.reverse_event(reversal).await? {
            Reversed::Done { entries, .. } => {
                let member = match entries.first() {
                    Some(entry) => entry.member_id.clone(),
                    None => return Err(Error::NotFound { what: "event" }),
                };
                let balance = self.spendable_balance(program, &member).await?;
                Ok(ReversalDone { entries, balance })
            }
            Reversed::NothingLeft => Err(Error::Conflict {
                code: "nothing_to_reverse",
                message: "the event has no points left to reverse".into(),
            }),
            Reversed::UnknownEvent => Err(Error::NotFound { what: "event" }),
        }
    }

    /// What the member can spend now, as `GET …/members/{mid}` says it: the store's answer
    /// is the ledger's plain sum, which counts pending (and not yet swept expired) points.
    /// Read after the change, so a change committed meanwhile by someone else shows too.
    async fn spendable_balance(&self, program: &ProgramId, member: &MemberId) -> Result<i64> {
        Ok(self.member_view(program, member).await?.balance)
    }
}
