//! The life of points after the award: expiry, adjustments, reversals.

use super::StoreResult;
use crate::ids::{EventId, MemberId, ProgramId};
use crate::ledger::LedgerEntry;
use crate::program::PointsExpiry;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// An admin's adjustment, ready to store: its entry (kind `adjustment`, its points and reason)
/// and the key that makes sending it again harmless.
#[derive(Clone, Debug)]
pub struct Adjustment {
    pub entry: LedgerEntry,
    pub idempotency_key: Option<String>,
}

/// What storing an adjustment did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adjusted {
    /// Stored; the member's balance after it.
    Created {
        entry: LedgerEntry,
        balance: i64,
    },
    /// The key was used before by this very adjustment (same member, points and reason): the
    /// stored entry, unchanged.
    Existing {
        entry: LedgerEntry,
        balance: i64,
    },
    /// The key was used before by another adjustment.
    KeyConflict,
    UnknownMember,
}

/// An admin's reversal of an event's awards.
#[derive(Clone, Debug)]
pub struct EventReversal {
    pub program: ProgramId,
    pub event: EventId,
    /// All that is left when `None`.
    pub points: Option<i64>,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// What a reversal did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reversed {
    /// The `reversal` entries written (one per award that gave some back) and the member's
    /// balance after them.
    Done {
        entries: Vec<LedgerEntry>,
        balance: i64,
    },
    /// The event's awards have nothing left to give back (or it awarded nothing).
    NothingLeft,
    /// No accepted event with this id in the program.
    UnknownEvent,
}

/// Ledger changes that are not an event's award: expiry, adjustments, reversals.
#[async_trait]
pub trait PointsStore: Send + Sync {
    /// Members of the program who may have points past their expiry: at least every member
    /// with an award that happened at or before `cutoff` and still has points left.
    async fn members_to_expire(
        &self,
        program: &ProgramId,
        cutoff: DateTime<Utc>,
    ) -> StoreResult<Vec<MemberId>>;

    /// Under the member's lock: reads its ledger, and writes an `expiry` entry for each lot
    /// [`crate::lots::points_view`] says has expired at `now` (at most one per award, also
    /// when several processes sweep at once). Returns the entries written.
    async fn write_expiry(
        &self,
        program: &ProgramId,
        member: &MemberId,
        now: DateTime<Utc>,
        policy: PointsExpiry,
    ) -> StoreResult<Vec<LedgerEntry>>;

    /// Stores an adjustment, atomically with the member's balance; an idempotency key is
    /// claimed at most once per program, also under concurrency.
    async fn adjust(&self, adjustment: Adjustment) -> StoreResult<Adjusted>;

    /// Reverses an accepted event's awards as [`crate::reversal::admin_shares`] says, on what
    /// is left of them at that moment (concurrent reversals never take more than was given),
    /// freeing the usage [`crate::reversal::usage_freed`] says.
    async fn reverse_event(&self, reversal: EventReversal) -> StoreResult<Reversed>;
}
