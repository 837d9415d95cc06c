//! Reading the event log and the ledger, and purging test data.

use super::StoreResult;
use crate::ids::{ConnectorId, EventId, MemberId, ProgramId};
use crate::ledger::{
    ActivityItem, ErrorGroup, EventFilter, LedgerEntry, LogEntry, Page, PageRequest, PurgeCounts,
};
use async_trait::async_trait;

/// The event log and the ledger as admins read them, and the purge of test data.
#[async_trait]
pub trait LogStore: Send + Sync {
    async fn list_events(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
        page: PageRequest,
    ) -> StoreResult<Page<LogEntry>>;
    async fn get_event(&self, program: &ProgramId, id: &EventId) -> StoreResult<Option<LogEntry>>;
    async fn member_activity(
        &self,
        program: &ProgramId,
        member: &MemberId,
        page: PageRequest,
    ) -> StoreResult<Page<ActivityItem>>;
    async fn ledger_entries(
        &self,
        program: &ProgramId,
        member: &MemberId,
    ) -> StoreResult<Vec<LedgerEntry>>;

    /// Deletes the connector's test events, their ledger entries and usage, and the test
    /// members left with no events; balances become as if the test events never happened.
    async fn purge_test_data(
        &self,
        program: &ProgramId,
        connector: &ConnectorId,
    ) -> StoreResult<PurgeCounts>;

    /// The rejected and ignored items the filter keeps (its connector, time and test flag;
    /// not its status or member), grouped as [`ErrorGroup::group`] says, largest first.
    async fn event_errors(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
    ) -> StoreResult<Vec<ErrorGroup>>;
}
