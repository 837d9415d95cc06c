//! The queries of replays: the log's errors grouped, the log in event-time order, the changes a
//! replay applies to accepted events (once per replay and event), and replay jobs.

use crate::error::{PostgresStoreError, Result};
use crate::points;
use crate::rows::{self, to_json, EVENT_COLUMNS};
use crate::PostgresStore;
use async_trait::async_trait;
use loyalty_core::error::StoreError;
use loyalty_core::ids::{ConnectorId, EventId, MemberId, ProgramId, ReplayId};
use loyalty_core::ledger::{ErrorGroup, EventFilter, ItemStatus, LedgerEntry, LogEntry};
use loyalty_core::replay::{
    ChangeEntries, ReplayApplied, ReplayChange, ReplayReader, ReplayRecord, ReplayScope,
    ReplayState,
};
use loyalty_core::reversal::AwardState;
use loyalty_core::rules::{UsageCount, UsageKey};
use loyalty_core::store::ReplayStore;
use loyalty_core::store::StoreResult;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row, Transaction};
use std::collections::HashMap;

/// The rejected and ignored items, grouped: one statement groups (with each group's newest
/// position), a second reads those examples' messages.
pub(crate) async fn event_errors(
    pool: &PgPool,
    program: &ProgramId,
    filter: &EventFilter,
) -> Result<Vec<ErrorGroup>> {
    let mut query = QueryBuilder::new(
        "SELECT status, COALESCE(error->>'code', reason, 'unknown') AS code, \
             error->>'path' AS path, count(*) AS count, min(received_at) AS first_at, \
             max(received_at) AS last_at, max(seq) AS example \
         FROM events WHERE status IN ('rejected', 'ignored') AND program_id = ",
    );
    query.push_bind(program.as_str());
    if let Some(connector) = &filter.connector_id {
        query
            .push(" AND connector_id = ")
            .push_bind(connector.as_str());
    }
    if let Some(since) = filter.since {
        query.push(" AND received_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND received_at < ").push_bind(until);
    }
    if let Some(test) = filter.test {
        query.push(" AND test = ").push_bind(test);
    }
    query.push(" GROUP BY 1, 2, 3");
    let rows = query.build().fetch_all(pool).await?;
    let examples: Vec<i64> = rows
        .iter()
        .map(|r| r.try_get("example"))
        .collect::<std::result::Result<_, _>>()?;
    let found = sqlx::query(
        "SELECT seq, id, error->>'message' AS message FROM events \
         WHERE program_id = $1 AND seq = ANY($2)",
    )
    .bind(program.as_str())
    .bind(&examples)
    .fetch_all(pool)
    .await?;
    let mut by_seq = std::collections::HashMap::new();
    for row in &found {
        let seq: i64 = row.try_get("seq")?;
        let id: String = row.try_get("id")?;
        let message: Option<String> = row.try_get("message")?;
        by_seq.insert(seq, (id, message));
    }
    let mut groups = Vec::with_capacity(rows.len());
    for (row, example) in rows.iter().zip(examples) {
        let status: String = row.try_get("status")?;
        let (id, message) = by_seq.remove(&example).unwrap_or_default();
        groups.push(ErrorGroup {
            status: ItemStatus::parse(&status).unwrap_or(ItemStatus::Rejected),
            code: row.try_get("code")?,
            path: row.try_get("path")?,
            count: u64::try_from(row.try_get::<i64, _>("count")?).unwrap_or(0),
            first_at: row.try_get("first_at")?,
            last_at: row.try_get("last_at")?,
            example_event_id: EventId::new(id),
            message,
        });
    }
    ErrorGroup::sort(&mut groups);
    Ok(groups)
}

/// How many items a replay reads.
pub(crate) async fn replay_count(pool: &PgPool, scope: &ReplayScope) -> Result<u64> {
    let statuses: Vec<&str> = scope.statuses.iter().map(|s| s.as_str()).collect();
    let count: i64 = sqlx::query(
        "SELECT count(*) AS count FROM events \
         WHERE program_id = $1 AND connector_id = $2 \
           AND ($3::timestamptz IS NULL OR received_at >= $3) AND received_at < $4 \
           AND status = ANY ($5)",
    )
    .bind(scope.program.as_str())
    .bind(scope.connector.as_str())
    .bind(scope.since)
    .bind(scope.until)
    .bind(&statuses)
    .fetch_one(pool)
    .await?
    .try_get("count")?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// A replay's items through a cursor held open in a transaction of its own: PostgreSQL sorts
/// the positions in event-time order, and each page reads its items by position.
pub(crate) struct PgReplayReader {
    tx: Transaction<'static, Postgres>,
    program: ProgramId,
    page_size: i64,
}

pub(crate) async fn replay_reader(
    pool: &PgPool,
    scope: &ReplayScope,
    page_size: usize,
) -> Result<PgReplayReader> {
    let mut tx = pool.begin().await?;
    let statuses: Vec<&str> = scope.statuses.iter().map(|s| s.as_str()).collect();
    sqlx::query("SELECT loyalty_replay_items('replay_items', $1, $2, $3, $4, $5)")
        .bind(scope.program.as_str())
        .bind(scope.connector.as_str())
        .bind(scope.since)
        .bind(scope.until)
        .bind(&statuses)
        .execute(&mut *tx)
        .await?;
    Ok(PgReplayReader {
        tx,
        program: scope.program.clone(),
        page_size: i64::try_from(page_size.max(1)).unwrap_or(500),
    })
}

impl PgReplayReader {
    async fn page(&mut self) -> Result<Vec<LogEntry>> {
        // FETCH takes no parameter: the count is a number this code chose.
        let positions: Vec<i64> = sqlx::query(&format!(
            "FETCH FORWARD {} FROM replay_items",
            self.page_size
        ))
        .fetch_all(&mut *self.tx)
        .await?
        .iter()
        .map(|row| row.try_get("seq"))
        .collect::<std::result::Result<_, _>>()?;
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE program_id = $1 AND seq = ANY($2)"
        ))
        .bind(self.program.as_str())
        .bind(&positions)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut by_seq: HashMap<i64, LogEntry> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let entry = rows::log_entry(row)?;
            by_seq.insert(entry.seq, entry);
        }
        Ok(positions
            .into_iter()
            .filter_map(|seq| by_seq.remove(&seq))
            .collect())
    }
}

#[async_trait]
impl ReplayReader for PgReplayReader {
    async fn next_page(&mut self) -> std::result::Result<Vec<LogEntry>, StoreError> {
        Ok(self.page().await?)
    }
}

/// A replay change: claims (replay, event), locks the member, reverses what is left of the
/// event's awards and awards anew, with their usage and the balance; one transaction.
pub(crate) async fn apply_replay_change(
    pool: &PgPool,
    change: &ReplayChange,
) -> Result<ReplayApplied> {
    let program = change.program.as_str();
    let mut tx = pool.begin().await?;
    let event = sqlx::query(
        "SELECT connector_id FROM events \
         WHERE program_id = $1 AND id = $2 AND status = 'accepted' AND member_id = $3",
    )
    .bind(program)
    .bind(change.event.as_str())
    .bind(change.member.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(event) = event else {
        return Ok(ReplayApplied::UnknownEvent);
    };
    let connector = ConnectorId::new(event.try_get::<String, _>("connector_id")?);
    // A concurrent claim of the same change waits here for the first one's outcome.
    let claimed = sqlx::query(
        "INSERT INTO replay_changes (program_id, replay_id, event_id, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(program)
    .bind(change.replay.as_str())
    .bind(change.event.as_str())
    .bind(change.at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(ReplayApplied::AlreadyApplied);
    }
    if !points::lock_member(&mut tx, program, &change.member).await? {
        return Ok(ReplayApplied::UnknownEvent);
    }
    let lines = points::event_awards(&mut tx, program, &change.member, &change.event).await?;
    let awards = AwardState::of_event(&lines, &change.event);
    let mut entries = ChangeEntries::of(change, &connector, &awards);
    let points = entries.points();
    points::write_reversals(
        &mut tx,
        program,
        &change.member,
        &mut entries.reversals,
        &entries.freed,
    )
    .await?;
    for award in &entries.awards {
        insert_award(&mut tx, award).await?;
    }
    add_usage(&mut tx, program, &change.member, &entries.added).await?;
    let awarded: i64 = entries.awards.iter().map(|e| e.points).sum();
    points::add_to_balance(&mut tx, program, &change.member, awarded).await?;
    tx.commit().await?;
    Ok(ReplayApplied::Done { points })
}

async fn insert_award(tx: &mut PgConnection, entry: &LedgerEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO ledger_entries (program_id, member_id, seq, id, kind, event_id, \
             connector_id, rule_id, points, reason, available_at, test, created_at, occurred_at) \
         VALUES ($1, $2, nextval('loyalty_seq'), $3, 'award', $4, $5, $6, $7, $8, $9, $10, $11, \
             $12)",
    )
    .bind(entry.program_id.as_str())
    .bind(entry.member_id.as_str())
    .bind(entry.id.as_str())
    .bind(entry.event_id.as_ref().map(|id| id.as_str()))
    .bind(entry.connector_id.as_ref().map(|id| id.as_str()))
    .bind(entry.rule_id.as_ref().map(|id| id.as_str()))
    .bind(entry.points)
    .bind(entry.reason.as_deref())
    .bind(entry.available_at)
    .bind(entry.test)
    .bind(entry.created_at)
    .bind(entry.occurred_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn add_usage(
    tx: &mut PgConnection,
    program: &str,
    member: &MemberId,
    added: &[(UsageKey, UsageCount)],
) -> Result<()> {
    if added.is_empty() {
        return Ok(());
    }
    let rules: Vec<&str> = added.iter().map(|(k, _)| k.rule_id.as_str()).collect();
    let periods: Vec<&str> = added.iter().map(|(k, _)| k.period.as_str()).collect();
    let counts: Vec<i64> = added.iter().map(|(_, c)| c.count).collect();
    let points: Vec<i64> = added.iter().map(|(_, c)| c.points).collect();
    sqlx::query(
        "INSERT INTO member_usage AS u (program_id, member_id, rule_id, period, count, points) \
         SELECT $1, $2, d.rule_id, d.period, sum(d.count), sum(d.points) \
         FROM UNNEST($3::text[], $4::text[], $5::bigint[], $6::bigint[]) \
           AS d(rule_id, period, count, points) \
         GROUP BY d.rule_id, d.period \
         ON CONFLICT (program_id, member_id, rule_id, period) DO UPDATE \
           SET count = u.count + EXCLUDED.count, points = u.points + EXCLUDED.points",
    )
    .bind(program)
    .bind(member.as_str())
    .bind(&rules)
    .bind(&periods)
    .bind(&counts)
    .bind(&points)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Links the items a replay processed anew to it, once their commit is done (a separate
/// statement: the commit's own is shared by every ingestion path).
pub(crate) async fn link_replayed(pool: &PgPool, entries: &[LogEntry]) -> Result<()> {
    let linked: Vec<&LogEntry> = entries.iter().filter(|e| e.replay_id.is_some()).collect();
    if linked.is_empty() {
        return Ok(());
    }
    let programs: Vec<&str> = linked.iter().map(|e| e.program_id.as_str()).collect();
    let ids: Vec<&str> = linked.iter().map(|e| e.id.as_str()).collect();
    let replays: Vec<Option<&str>> = linked
        .iter()
        .map(|e| e.replay_id.as_ref().map(|r| r.as_str()))
        .collect();
    let replayed: Vec<Option<&str>> = linked
        .iter()
        .map(|e| e.replayed_event_id.as_ref().map(|r| r.as_str()))
        .collect();
    sqlx::query(
        "UPDATE events e SET replay_id = d.replay_id, replayed_event_id = d.replayed \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) \
           AS d(program_id, id, replay_id, replayed) \
         WHERE e.program_id = d.program_id AND e.id = d.id",
    )
    .bind(&programs)
    .bind(&ids)
    .bind(&replays)
    .bind(&replayed)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn put_replay(pool: &PgPool, record: &ReplayRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO replays (program_id, id, spec, until, state, processed, total, report, \
             error, created_at, updated_at) \
         VALUES ($1, $2, $3::json, $4, $5, $6, $7, $8::json, $9, $10, $11) \
         ON CONFLICT (program_id, id) DO UPDATE SET state = EXCLUDED.state, \
             processed = EXCLUDED.processed, total = EXCLUDED.total, \
             report = EXCLUDED.report, error = EXCLUDED.error, updated_at = EXCLUDED.updated_at",
    )
    .bind(record.program_id.as_str())
    .bind(record.id.as_str())
    .bind(to_json(&record.spec)?)
    .bind(record.until)
    .bind(record.state.as_str())
    .bind(i64::try_from(record.processed).unwrap_or(i64::MAX))
    .bind(i64::try_from(record.total).unwrap_or(i64::MAX))
    .bind(record.report.as_ref().map(to_json).transpose()?)
    .bind(record.error.as_deref())
    .bind(record.created_at)
    .bind(record.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

const REPLAY_COLUMNS: &str = "program_id, id, spec::text AS spec, until, state, processed, \
     total, report::text AS report, error, created_at, updated_at";

pub(crate) async fn get_replay(
    pool: &PgPool,
    program: &ProgramId,
    id: &ReplayId,
) -> Result<Option<ReplayRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {REPLAY_COLUMNS} FROM replays WHERE program_id = $1 AND id = $2"
    ))
    .bind(program.as_str())
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(replay_record).transpose()
}

pub(crate) async fn running_replays(pool: &PgPool) -> Result<Vec<ReplayRecord>> {
    let rows = sqlx::query(&format!(
        "SELECT {REPLAY_COLUMNS} FROM replays WHERE state = 'running' ORDER BY created_at"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter().map(replay_record).collect()
}

fn replay_record(row: &sqlx::postgres::PgRow) -> Result<ReplayRecord> {
    let corrupt = |what: &'static str| PostgresStoreError::corrupt(what, "not what was stored");
    let state: String = row.try_get("state")?;
    Ok(ReplayRecord {
        id: ReplayId::new(row.try_get::<String, _>("id")?),
        program_id: ProgramId::new(row.try_get::<String, _>("program_id")?),
        spec: serde_json::from_str(&row.try_get::<String, _>("spec")?)
            .map_err(|_| corrupt("replays.spec"))?,
        until: row.try_get("until")?,
        state: ReplayState::parse(&state).ok_or_else(|| corrupt("replays.state"))?,
        processed: u64::try_from(row.try_get::<i64, _>("processed")?).unwrap_or(0),
        total: u64::try_from(row.try_get::<i64, _>("total")?).unwrap_or(0),
        report: row
            .try_get::<Option<String>, _>("report")?
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|_| corrupt("replays.report"))?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[async_trait]
impl ReplayStore for PostgresStore {
    async fn replay_count(&self, scope: &ReplayScope) -> StoreResult<u64> {
        Ok(replay_count(&self.pool, scope).await?)
    }

    async fn replay_reader(
        &self,
        scope: &ReplayScope,
        page_size: usize,
    ) -> StoreResult<Box<dyn ReplayReader>> {
        Ok(Box::new(replay_reader(&self.pool, scope, page_size).await?))
    }

    async fn apply_replay_change(&self, change: ReplayChange) -> StoreResult<ReplayApplied> {
        self.retrying("a replay change", || {
            apply_replay_change(&self.pool, &change)
        })
        .await
    }

    async fn put_replay(&self, record: &ReplayRecord) -> StoreResult<()> {
        Ok(put_replay(&self.pool, record).await?)
    }

    async fn get_replay(
        &self,
        program: &ProgramId,
        id: &ReplayId,
    ) -> StoreResult<Option<ReplayRecord>> {
        Ok(get_replay(&self.pool, program, id).await?)
    }

    async fn running_replays(&self) -> StoreResult<Vec<ReplayRecord>> {
        Ok(running_replays(&self.pool).await?)
    }
}
