//! The change feed on PostgreSQL (the migration `20261208020000_feed.sql` says how it is
//! kept): the sequencer that numbers committed changes, the listener that wakes this
//! process's readers when any process numbered some, and the reads.
//!
//! Committing never waits for the feed: a commit only writes its `feed_pending` row (by
//! trigger, in its own transaction). This process's sequencer task numbers them right after
//! (it is poked after each commit), a sweep every second numbers what a process that died
//! left behind, and every read numbers what is pending first, so a reader sees at least
//! everything committed before it read.

mod ledgers;

use crate::error::Result;
use crate::rows::{self, EVENT_COLUMNS, PROGRAM_COLUMNS};
use crate::PostgresStore;
use async_trait::async_trait;
use loyalty_core::feed::{
    Change, ChangeBody, ChangePage, FeedPosition, FeedSignal, LoggedEvent, FEED_RETENTION_MINUTES,
};
use loyalty_core::ids::{MemberId, ProgramId};
use loyalty_core::ledger::LogEntry;
use loyalty_core::store::{FeedStore, StoreResult};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Row};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// The channel `loyalty_feed_sequence` notifies (the payload is the program id).
const CHANNEL: &str = "loyalty_feed";
/// How often the sweep numbers what other processes left pending.
const SWEEP: Duration = Duration::from_secs(1);

/// The feed's background work of one store (and its clones): stopped when dropped.
#[derive(Debug)]
pub(crate) struct Feed {
    signal: FeedSignal,
    shared: Arc<Shared>,
    tasks: Vec<AbortHandle>,
    /// Members' lots between reads (see `ledgers`).
    kept: ledgers::KeptLots,
}

#[derive(Debug, Default)]
struct Shared {
    /// Programs this process committed to since the sequencer last ran.
    dirty: Mutex<HashSet<ProgramId>>,
    wake: Notify,
}

impl Feed {
    /// Starts the sequencer and the listener. Must be called inside a Tokio runtime.
    pub(crate) fn start(pool: &PgPool) -> Self {
        let signal = FeedSignal::new();
        let shared = Arc::new(Shared::default());
        let sequencer = tokio::spawn(run_sequencer(pool.clone(), Arc::downgrade(&shared)));
        let listener = tokio::spawn(run_listener(pool.clone(), signal.clone()));
        Self {
            signal,
            shared,
            tasks: vec![sequencer.abort_handle(), listener.abort_handle()],
            kept: ledgers::KeptLots::default(),
        }
    }

    pub(crate) fn signal(&self) -> FeedSignal {
        self.signal.clone()
    }

    /// Asks the sequencer to number what was just committed to `program`.
    pub(crate) fn committed(&self, program: &ProgramId) {
        let mut dirty = self.shared.dirty.lock().unwrap_or_else(|e| e.into_inner());
        dirty.insert(program.clone());
        drop(dirty);
        self.shared.wake.notify_one();
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn run_sequencer(pool: PgPool, shared: Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let swept = tokio::select! {
            () = strong.wake.notified() => false,
            () = tokio::time::sleep(SWEEP) => true,
        };
        let mut programs: Vec<ProgramId> = {
            let mut dirty = strong.dirty.lock().unwrap_or_else(|e| e.into_inner());
            dirty.drain().collect()
        };
        drop(strong);
        if swept {
            match pending_programs(&pool).await {
                Ok(more) => programs.extend(more),
                Err(error) => tracing::warn!(%error, "reading the feed's pending programs"),
            }
            programs.sort();
            programs.dedup();
        }
        for program in programs {
            if let Err(error) = sequence(&pool, &program).await {
                // The sweep takes it up again.
                tracing::warn!(%error, "numbering the change feed");
            }
        }
    }
}

async fn pending_programs(pool: &PgPool) -> Result<Vec<ProgramId>> {
    let rows = sqlx::query("SELECT DISTINCT program_id FROM feed_pending")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| Ok(ProgramId::new(row.try_get::<String, _>(0)?)))
        .collect()
}

/// Wakes this process's readers whenever any process numbered changes; also after the
/// connection was lost (notifications sent meanwhile are lost, so readers look again).
async fn run_listener(pool: PgPool, signal: FeedSignal) {
    loop {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            signal.notify();
            loop {
                match listener.try_recv().await? {
                    Some(_) => signal.notify(),
                    // Reconnected: what was sent meanwhile is lost.
                    None => signal.notify(),
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        if let Err(error) = listening.await {
            tracing::warn!(%error, "listening for the change feed");
        }
        signal.notify();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Numbers the program's committed pending changes; returns the head and the pruned position.
async fn sequence(pool: &PgPool, program: &ProgramId) -> Result<(FeedPosition, FeedPosition)> {
    let row = sqlx::query(
        "SELECT head, pruned FROM loyalty_feed_sequence($1, make_interval(mins => $2))",
    )
    .bind(program.as_str())
    .bind(i32::try_from(FEED_RETENTION_MINUTES).unwrap_or(i32::MAX))
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("head")?, row.try_get("pruned")?))
}

pub(crate) async fn head(pool: &PgPool, program: &ProgramId) -> Result<FeedPosition> {
    Ok(sequence(pool, program).await?.0)
}

impl Feed {
    pub(crate) async fn changes_after(
        &self,
        pool: &PgPool,
        program: &ProgramId,
        after: FeedPosition,
        member: Option<&MemberId>,
        limit: usize,
    ) -> Result<ChangePage> {
        changes_after(pool, &self.kept, program, after, member, limit).await
    }
}

async fn changes_after(
    pool: &PgPool,
    kept: &ledgers::KeptLots,
    program: &ProgramId,
    after: FeedPosition,
    member: Option<&MemberId>,
    limit: usize,
) -> Result<ChangePage> {
    let (head, pruned) = sequence(pool, program).await?;
    // A cursor this feed never handed out (past the head) is as good as lost.
    let missed = after < pruned || after > head;
    let from = if after > head {
        head
    } else {
        after.max(pruned)
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT position, kind, seq, member_id FROM feed \
         WHERE program_id = $1 AND position > $2 AND ($3::text IS NULL OR member_id = $3) \
         ORDER BY position LIMIT $4",
    )
    .bind(program.as_str())
    .bind(from)
    .bind(member.map(MemberId::as_str))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut feed = Vec::with_capacity(rows.len());
    let mut event_seqs = Vec::new();
    // Each member's ledger seqs on the page, in order.
    let mut wanted: HashMap<String, Vec<i64>> = HashMap::new();
    let mut last_ledger_seq = 0;
    for row in &rows {
        let position: i64 = row.try_get("position")?;
        let kind: i8 = row.try_get("kind")?;
        let seq: i64 = row.try_get("seq")?;
        let member: Option<String> = row.try_get("member_id")?;
        if kind == b'e' as i8 {
            event_seqs.push(seq);
        } else if let Some(member) = member {
            wanted.entry(member).or_default().push(seq);
            last_ledger_seq = last_ledger_seq.max(seq);
        }
        feed.push((position, kind == b'e' as i8, seq));
    }
    let events: HashMap<i64, LogEntry> = if event_seqs.is_empty() {
        HashMap::new()
    } else {
        sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE program_id = $1 AND seq = ANY($2)"
        ))
        .bind(program.as_str())
        .bind(&event_seqs)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| rows::log_entry(row).map(|e| (e.seq, e)))
        .collect::<Result<_>>()?
    };
    let expiry = if wanted.is_empty() {
        None
    } else {
        let row = sqlx::query(&format!(
            "SELECT {PROGRAM_COLUMNS} FROM programs WHERE id = $1"
        ))
        .bind(program.as_str())
        .fetch_optional(pool)
        .await?;
        row.as_ref()
            .map(rows::program)
            .transpose()?
            .and_then(|p| p.points_expiry)
    };
    let mut ledger_changes = if wanted.is_empty() {
        HashMap::new()
    } else {
        for seqs in wanted.values_mut() {
            seqs.sort_unstable();
        }
        kept.changes(pool, program, &wanted, last_ledger_seq, expiry)
            .await?
    };
    let mut changes = Vec::with_capacity(feed.len());
    let mut events = events;
    for (position, is_event, seq) in feed {
        // A row whose event or entry is gone was purged (test data): nothing to show.
        let (test, body) = if is_event {
            let Some(event) = events.remove(&seq) else {
                continue;
            };
            (event.test, ChangeBody::Event(LoggedEvent(Arc::new(event))))
        } else {
            let Some(change) = ledger_changes.remove(&seq) else {
                continue;
            };
            (change.entry.test, ChangeBody::Ledger(Arc::new(change)))
        };
        changes.push(Change {
            position,
            program_id: program.clone(),
            test,
            body,
        });
    }
    Ok(ChangePage { changes, missed })
}

#[async_trait]
impl FeedStore for PostgresStore {
    async fn feed_head(&self, program: &ProgramId) -> StoreResult<FeedPosition> {
        Ok(head(&self.pool, program).await?)
    }

    async fn changes_after(
        &self,
        program: &ProgramId,
        after: FeedPosition,
        member: Option<&MemberId>,
        limit: usize,
    ) -> StoreResult<ChangePage> {
        Ok(self
            .feed
            .changes_after(&self.pool, program, after, member, limit)
            .await?)
    }

    fn feed_signal(&self) -> FeedSignal {
        self.feed.signal()
    }
}
