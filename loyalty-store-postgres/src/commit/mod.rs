//! Group commit: committer tasks take what waits in the queue and commit each group of
//! batches in one transaction, on the fast path or, after a lost race, on the locked path (the
//! crate documentation gives the algorithm). One file a concern, so that each decision has
//! one place:
//! - `queue`: which waiting batches make a group;
//! - `decide`: which items are duplicates, ignored or accepted, and what they award (in
//!   memory, without I/O: both paths decide with it, on what they read);
//! - `fast`: the unlocked read and the checked write of the fast path;
//! - `locked`: the transaction that claims and locks before it reads;
//! - `keys`: the names of the rows a commit claims and locks, which carry the lock order;
//! - `write`: the one statement, `loyalty_commit`, that both paths end with;
//! - `stats`: the committers' counters.

mod decide;
mod fast;
mod keys;
mod locked;
mod queue;
mod stats;
mod write;

pub(crate) use queue::{Job, Queue};
pub use stats::CommitStats;
pub(crate) use stats::Stats;

use crate::error::{PostgresStoreError, Result};
use crate::hosts::Target;
use crate::rows::to_json;
use crate::rows::{self, EVENT_COLUMNS};
use crate::PostgresOptions;
use loyalty_core::error::StoreError;
use loyalty_core::ledger::LogEntry;
use loyalty_core::store::{Candidate, CommitBatch};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgPool, Postgres};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use fast::{commit_fast, read_state};
use keys::{Enrolment, Enrolments, Identity, Key, MemberKey};
use locked::commit_slots;
use stats::{lap, Timings};

/// A committer task: takes groups of waiting jobs and commits each group in one transaction,
/// until the store is dropped.
pub(crate) async fn run_committer(
    pool: PgPool,
    target: Arc<Target>,
    options: Arc<PostgresOptions>,
    queue: Arc<Mutex<Queue>>,
    stats: Arc<Stats>,
) {
    let mut committer = Committer {
        pool,
        target,
        options,
        connection: None,
        connection_epoch: 0,
        stats,
    };
    loop {
        let group = {
            let mut queue = queue.lock().await;
            queue
                .next_group(committer.options.group_commit_max_items)
                .await
        };
        let Some(group) = group else { return };
        committer.commit_group(group).await;
    }
}

struct Committer {
    pool: PgPool,
    target: Arc<Target>,
    options: Arc<PostgresOptions>,
    /// Kept between transactions: taking a connection from the pool costs a ping (a round
    /// trip) every time, and a committer runs one transaction after another.
    connection: Option<PoolConnection<Postgres>>,
    /// The target's epoch when the connection was taken: after a switch of server it may be
    /// on the old one, and is let go.
    connection_epoch: u64,
    stats: Arc<Stats>,
}

impl Committer {
    async fn commit_group(&mut self, group: Vec<Job>) {
        if group.len() > 1 {
            let batches: Vec<&CommitBatch> = group.iter().map(|job| &job.batch).collect();
            match self.commit_resolving(&batches).await {
                Ok(results) => {
                    for (job, entries) in group.into_iter().zip(results) {
                        // A caller that stopped waiting is committed all the same.
                        let _ = job.reply.send(Ok(entries));
                    }
                    return;
                }
                // The database is unreachable (and a group whose outcome was lost could not be
                // read back): the batches alone would fail the same way. The callers' retries
                // are duplicates if the group did commit.
                Err(error) if error.is_unavailable() && !error.is_retryable() => {
                    tracing::warn!(batches = group.len(), %error, "group commit failed");
                    let error = StoreError::from(error);
                    for job in group {
                        let _ = job.reply.send(Err(error.clone()));
                    }
                    return;
                }
                // One bad batch must not fail the others: commit them one by one.
                Err(error) => tracing::warn!(
                    batches = group.len(),
                    %error,
                    "group commit failed; committing its batches one by one"
                ),
            }
        }
        for job in group {
            let result = self
                .commit_with_retries(&job.batch)
                .await
                .map_err(StoreError::from);
            let _ = job.reply.send(result);
        }
    }

    async fn commit_with_retries(&mut self, batch: &CommitBatch) -> Result<Vec<LogEntry>> {
        let mut attempt = 0;
        loop {
            match self.commit_resolving(&[batch]).await {
                Ok(mut results) => return Ok(results.pop().unwrap_or_default()),
                Err(error) if error.is_retryable() && attempt < self.options.max_retries => {
                    attempt += 1;
                    tracing::debug!(attempt, %error, "retrying a commit");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Commits the batches; when the connection is lost before PostgreSQL answers (a crash, a
    /// failover), reads whether they were committed, and commits them again only if they were
    /// not. Every item's event has its id before the transaction, and a group is one
    /// transaction: its events are all in the log, or none is.
    async fn commit_resolving(&mut self, batches: &[&CommitBatch]) -> Result<Vec<Vec<LogEntry>>> {
        match self.commit_once(batches).await {
            Err(error) if error.outcome_unknown() => {
                tracing::warn!(%error, "a commit's answer was lost; reading whether it committed");
                match self.committed_entries(batches).await? {
                    Some(results) => {
                        tracing::info!("the commit whose answer was lost had committed");
                        Ok(results)
                    }
                    None => self.commit_once(batches).await,
                }
            }
            other => other,
        }
    }

    /// The entries of the batches if their transaction committed, read on the primary of the
    /// moment (after a failover, the new one), waiting up to the acquire timeout for it.
    ///
    /// The read locks the events it finds (`FOR KEY SHARE`, which writes WAL), so its own
    /// COMMIT waits for the synchronous standbys as a write does, and they then hold the lost
    /// commit too: what is answered as accepted has its synchronous copy.
    async fn committed_entries(
        &mut self,
        batches: &[&CommitBatch],
    ) -> Result<Option<Vec<Vec<LogEntry>>>> {
        let ids: Vec<&str> = batches
            .iter()
            .flat_map(|b| b.items.iter().map(|i| i.entry.id.as_str()))
            .collect();
        let mut programs: Vec<&str> = batches.iter().map(|b| b.program_id.as_str()).collect();
        programs.sort_unstable();
        programs.dedup();
        let deadline = Instant::now() + self.options.acquire_timeout;
        let rows = loop {
            match read_committed(&self.pool, &programs, &ids).await {
                Ok(rows) => break rows,
                Err(error) if error.is_unavailable() && Instant::now() < deadline => {
                    tracing::debug!(%error, "waiting for the primary to read a lost commit");
                    self.target.suspect();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error),
            }
        };
        if rows.is_empty() {
            return Ok(None);
        }
        let mut found: std::collections::HashMap<String, LogEntry> = rows
            .iter()
            .map(|row| rows::log_entry(row).map(|entry| (entry.id.as_str().to_owned(), entry)))
            .collect::<Result<_>>()?;
        let mut results = Vec::with_capacity(batches.len());
        for batch in batches {
            let mut entries = Vec::with_capacity(batch.items.len());
            for item in &batch.items {
                let entry = found.remove(item.entry.id.as_str()).ok_or_else(|| {
                    PostgresStoreError::corrupt(
                        "events",
                        "a group commit is in the log in part only",
                    )
                })?;
                entries.push(entry);
            }
            results.push(entries);
        }
        Ok(Some(results))
    }

    async fn commit_once(&mut self, batches: &[&CommitBatch]) -> Result<Vec<Vec<LogEntry>>> {
        // Serialising the items' JSON needs no transaction: done before it starts.
        let mut clock = Instant::now();
        let mut timings = Timings::default();
        let mut slots = prepare(batches)?;
        timings.prepare = lap(&mut clock);
        if self.connection_epoch != self.target.epoch() {
            // The store switched servers since this connection was taken.
            self.discard_connection();
        }
        if self.connection.is_none() {
            self.connection_epoch = self.target.epoch();
            self.connection = Some(committer_connection(&self.pool).await?);
        }

        // The fast path: decide on an unlocked read, then write in one statement that checks
        // that what the decisions read still holds (see `loyalty_commit`).
        let connection = self.connection.as_mut().expect("set above");
        let state = match read_state(connection, &slots).await {
            // The kept connection died while idle (a server restart, a proxy's timeout). The
            // read changed nothing, so a fresh connection may simply try again.
            Err(PostgresStoreError::Database(error)) if is_broken_connection(&error) => {
                self.discard_connection();
                let connection = self
                    .connection
                    .insert(committer_connection(&self.pool).await?);
                read_state(connection, &slots).await
            }
            other => other,
        };
        let connection = self.connection.as_mut().expect("set above");
        let outcome = match state {
            Ok(Some(state)) => {
                timings.read = lap(&mut clock);
                commit_fast(connection, &mut slots, state, &mut timings, &mut clock).await
            }
            // Something only locks can sort out (an owner without its event).
            Ok(None) => Err(PostgresStoreError::Conflict),
            Err(error) => Err(error),
        };
        let outcome = match outcome {
            // Lost a race since the read: decide again, under locks.
            Err(error) if error.is_retryable() => {
                tracing::debug!(%error, "fast commit lost a race; committing under locks");
                self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                slots = prepare(batches)?;
                timings = Timings::default();
                clock = Instant::now();
                // Nested loops over the primary keys, whatever the statistics say (a new
                // database has none), as in `loyalty_commit`: the inputs are small.
                match connection
                    .begin_with(
                        "BEGIN; SET LOCAL enable_seqscan = off; \
                         SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off",
                    )
                    .await
                {
                    Ok(tx) => commit_slots(tx, &mut slots, &mut timings, &mut clock).await,
                    Err(error) => Err(error.into()),
                }
            }
            other => other,
        };
        if let Err(error) = outcome {
            // After a server error the connection is fine (dropping the transaction rolled
            // it back), unless the server is going away or became read-only; after anything
            // else it may be broken.
            let kept = matches!(
                error,
                PostgresStoreError::Database(sqlx::Error::Database(_))
                    | PostgresStoreError::Conflict
                    | PostgresStoreError::Corrupt { .. }
            );
            if !kept || error.server_lost() {
                self.discard_connection();
            }
            if error.server_lost() {
                self.target.suspect();
            }
            return Err(error);
        }
        self.stats.record(batches, &timings);
        let mut results: Vec<Vec<LogEntry>> = batches
            .iter()
            .map(|b| Vec::with_capacity(b.items.len()))
            .collect();
        for slot in slots {
            results[slot.group_index].push(slot.entry);
        }
        Ok(results)
    }

    fn discard_connection(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            connection.close_on_drop();
        }
    }
}

/// The events of `ids` that are in the log, locked so that the transaction's COMMIT waits for
/// the synchronous standbys (see `committed_entries`).
async fn read_committed(
    pool: &PgPool,
    programs: &[&str],
    ids: &[&str],
) -> Result<Vec<sqlx::postgres::PgRow>> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events \
         WHERE program_id = ANY($1) AND id = ANY($2) FOR KEY SHARE"
    ))
    .bind(programs)
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// A connection for a committer, which keeps it. Its statements are planned once, generically:
/// their parameters are arrays whose contents say nothing to the planner, and PostgreSQL
/// otherwise planned every execution anew (custom plans), about a twentieth of its CPU under
/// ingestion. The setting stays on this connection, which is closed, not returned to the
/// pool, when the committer lets it go.
async fn committer_connection(pool: &sqlx::PgPool) -> Result<PoolConnection<Postgres>> {
    let mut connection = pool.acquire().await?;
    connection.close_on_drop();
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *connection)
        .await?;
    Ok(connection)
}

fn is_broken_connection(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_)
    )
}

/// Exponential, with jitter so that two transactions that just deadlocked do not meet again.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(2u64 << attempt.min(6));
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 2_000_000);
    base + Duration::from_nanos(u64::from(jitter))
}

/// One item of the merged batches, with what can be prepared before the transaction.
struct Slot<'a> {
    batch: &'a CommitBatch,
    /// Which batch of the group.
    group_index: usize,
    entry: LogEntry,
    candidate: Option<&'a Candidate>,
    identity: Option<Identity>,
    key: Option<Key>,
    error: Option<String>,
    warnings: String,
}

fn prepare<'a>(batches: &[&'a CommitBatch]) -> Result<Vec<Slot<'a>>> {
    let mut slots = Vec::with_capacity(batches.iter().map(|b| b.items.len()).sum());
    for (group_index, batch) in batches.iter().enumerate() {
        for item in &batch.items {
            let entry = item.entry.clone();
            let candidate = item.candidate.as_ref();
            slots.push(Slot {
                batch,
                group_index,
                error: entry.error.as_ref().map(to_json).transpose()?,
                warnings: to_json(&entry.warnings)?,
                entry,
                candidate,
                identity: candidate.map(|c| Identity {
                    program: batch.program_id.clone(),
                    kind: c.identifier.kind.clone(),
                    value: c.identifier.value.clone(),
                }),
                key: candidate.map(|c| Key {
                    connector: batch.connector_id.clone(),
                    client_event_id: c.client_event_id.clone(),
                    test: batch.test,
                }),
            });
        }
    }
    Ok(slots)
}

fn unzip3<A, B, C>(items: impl Iterator<Item = (A, B, C)>) -> (Vec<A>, Vec<B>, Vec<C>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut c = Vec::new();
    for (x, y, z) in items {
        a.push(x);
        b.push(y);
        c.push(z);
    }
    (a, b, c)
}
