//! A member's points as they stand now (spendable, pending, expiring), and the sweep that
//! writes the `expiry` entries of points past their program's expiry.

use super::Engine;
use crate::error::Result;
use crate::ids::{MemberId, ProgramId};
use crate::lots::{points_view, Expiring};
use crate::member::{Identifier, Member};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A member as an admin reads it: `balance` is what can be spent (without pending or expired
/// points, even before the sweep has written their `expiry` entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub id: MemberId,
    pub identifiers: Vec<Identifier>,
    pub balance: i64,
    pub pending: i64,
    /// The next points to expire, soonest first (at most five).
    pub expiring: Vec<Expiring>,
    pub test: bool,
    pub created_at: DateTime<Utc>,
}

impl Engine {
    /// The member with its points as they stand now.
    pub async fn member_view(&self, program: &ProgramId, member: &MemberId) -> Result<MemberView> {
        let member = self.get_member(program, member).await?;
        self.view_of(member).await
    }

    /// The member holding an identifier, with its points as they stand now.
    pub async fn find_member_view(
        &self,
        program: &ProgramId,
        kind: &str,
        value: &str,
    ) -> Result<MemberView> {
        let member = self.find_member(program, kind, value).await?;
        self.view_of(member).await
    }

    async fn view_of(&self, member: Member) -> Result<MemberView> {
        let program = self.get_program(&member.program_id).await?;
        let entries = self
            .store
            .ledger_entries(&member.program_id, &member.id)
            .await?;
        let view = points_view(&entries, self.now(), program.points_expiry);
        Ok(MemberView {
            id: member.id,
            identifiers: member.identifiers,
            balance: view.balance,
            pending: view.pending,
            expiring: view.expiring,
            test: member.test,
            created_at: member.created_at,
        })
    }

    /// Writes the `expiry` entries of every point past its program's expiry at `now`, oldest
    /// first; returns how many entries were written. Safe to run from several processes at
    /// once (each member's expiry is decided under its lock, and an award expires once); the
    /// server runs it every minute, an embedder whenever it likes (tests with a fixed clock).
    ///
    /// A member whose expiry fails does not stop the others: every member is tried, and the
    /// first failure is returned at the end (the entries written meanwhile stay written).
    pub async fn run_expiry(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut written = 0;
        let mut first_failure = None;
        for program in self.store.list_programs().await? {
            let Some(policy) = program.points_expiry else {
                continue;
            };
            let cutoff = now - chrono::Duration::days(i64::from(policy.after_days));
            for member in self.store.members_to_expire(&program.id, cutoff).await? {
                match self
                    .store
                    .write_expiry(&program.id, &member, now, policy)
                    .await
                {
                    Ok(entries) => written += entries.len(),
                    Err(error) => {
                        first_failure.get_or_insert(error);
                    }
                }
            }
        }
        match first_failure {
            Some(error) => Err(error.into()),
            None => Ok(written),
        }
    }
}
