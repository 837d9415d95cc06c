//! Reads: members, their activity, the event log; and the purge of test data.

use super::Engine;
use crate::clock::stored_precision;
use crate::error::{Error, Result};
use crate::ids::{ConnectorId, EventId, MemberId, ProgramId};
use crate::ledger::{
    decode_cursor, ActivityItem, ErrorGroup, EventFilter, LogEntry, Page, PageRequest, PurgeCounts,
    MAX_PAGE_SIZE,
};
use crate::member::{normalize, Member};

impl Engine {
    /// The member with this identifier (`kind` may be `default`).
    pub async fn find_member(
        &self,
        program: &ProgramId,
        kind: &str,
        value: &str,
    ) -> Result<Member> {
        let p = self.get_program(program).await?;
        let profile = serde_json::json!({"kind": kind, "value": value});
        let identifier =
            normalize(Some(&profile), &p.default_identifier_kind).map_err(|reason| {
                Error::invalid(
                    "value",
                    format!("not a valid identifier ({})", reason.as_str()),
                )
            })?;
        self.store
            .find_member(program, &identifier)
            .await?
            .ok_or(Error::NotFound { what: "member" })
    }

    pub async fn get_member(&self, program: &ProgramId, id: &MemberId) -> Result<Member> {
        self.store
            .get_member(program, id)
            .await?
            .ok_or(Error::NotFound { what: "member" })
    }

    pub async fn member_activity(
        &self,
        program: &ProgramId,
        id: &MemberId,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<ActivityItem>> {
        self.get_member(program, id).await?;
        let page = page_request(limit, cursor)?;
        Ok(self.store.member_activity(program, id, page).await?)
    }

    pub async fn list_events(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<LogEntry>> {
        self.get_program(program).await?;
        let page = page_request(limit, cursor)?;
        // The bounds are compared with stored instants: at their precision, on every store.
        let filter = EventFilter {
            since: filter.since.map(stored_precision),
            until: filter.until.map(stored_precision),
            ..filter.clone()
        };
        Ok(self.store.list_events(program, &filter, page).await?)
    }

    /// The rejected and ignored items, grouped by status, code and path, largest first: what
    /// to fix before a replay.
    pub async fn event_errors(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
    ) -> Result<Vec<ErrorGroup>> {
        self.get_program(program).await?;
        let filter = EventFilter {
            status: None,
            member_id: None,
            since: filter.since.map(stored_precision),
            until: filter.until.map(stored_precision),
            ..filter.clone()
        };
        Ok(self.store.event_errors(program, &filter).await?)
    }

    pub async fn get_event(&self, program: &ProgramId, id: &EventId) -> Result<LogEntry> {
        self.store
            .get_event(program, id)
            .await?
            .ok_or(Error::NotFound { what: "event" })
    }

    /// Deletes the connector's test data.
    pub async fn purge_test_data(
        &self,
        program: &ProgramId,
        connector: &ConnectorId,
    ) -> Result<PurgeCounts> {
        // A deleted connector's test data can still be purged: deleting a connector must not
        // leave test points on balances for good.
        self.get_connector_including_deleted(program, connector)
            .await?;
        Ok(self.store.purge_test_data(program, connector).await?)
    }
}

fn page_request(limit: Option<usize>, cursor: Option<&str>) -> Result<PageRequest> {
    let limit = limit.unwrap_or(crate::ledger::DEFAULT_PAGE_SIZE);
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(Error::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    let before = cursor
        .map(|c| {
            decode_cursor(c)
                .ok_or_else(|| Error::invalid("cursor", "not a cursor this API returned"))
        })
        .transpose()?;
    Ok(PageRequest { limit, before })
}
