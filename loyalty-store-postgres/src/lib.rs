//! The PostgreSQL store of the loyalty engine: durable, and exactly once across processes.
//!
//! [`PostgresStore`] implements [`loyalty_core::store::Store`] with the same semantics as the
//! in-memory reference store (both pass `loyalty_core::testing`), but any number of store
//! instances, in any number of processes, may share one database.
//!
//! # Schema
//!
//! The embedded migrations (`migrations/`, applied by [`PostgresStore::connect`]) make the
//! schema hold the invariants: `accepted_keys` has the idempotency key
//! `(connector, clientEventId, test)` as its primary key, so that two accepted events can never
//! share one; ledger entries are positive and point at real events and members; balances and
//! usage are never negative; statuses are checked. Events and ledger entries take their `seq`
//! from one sequence, so that a member's activity (both) is ordered by it.
//!
//! # Commit
//!
//! [`Store::commit`] queues the batch for a committer task; a committer takes every batch that
//! is waiting (up to [`PostgresOptions::group_commit_max_items`] items), commits them in one
//! transaction (`synchronous_commit` stays on: the answer comes after the WAL is flushed), and
//! answers each caller with its own entries, only once they are committed. If that merged
//! transaction fails, its batches are committed one by one, so that one bad batch fails alone;
//! a single batch is run again after a deadlock, a serialization failure or a race with a
//! purge. A committer keeps its connection between transactions.
//!
//! **The fast path: two round trips, whatever the number of items, and no transaction open
//! while Rust decides.**
//! 1. **Read**, in one statement without locks (one snapshot): the owners of the group's keys,
//!    the members of its identifiers and those members' usage for the keys its rules name.
//! 2. **Decide** every item in order, in memory, exactly as the locked path below does on what
//!    it read under locks: `settle_duplicate`, `settle_unknown_member`, `settle_accepted`,
//!    each award's usage counting for the next item of the same member; a member id is drawn
//!    for each identifier to enrol.
//! 3. **Write**, in one statement that is its own transaction: the `loyalty_commit` function
//!    (see the migration) claims the keys of the accepted items, enrols the new identifiers,
//!    locks the members, checks that their usage is still what step 1 read, then numbers and
//!    inserts the events and ledger entries and adds the usage and the balances. If anything
//!    step 2 relied on changed meanwhile (a key taken or an identifier enrolled by a
//!    concurrent commit, a usage changed, a member purged), the statement fails with a
//!    serialization failure, writes nothing, and the group is decided again on the locked
//!    path. So the decisions are exactly those of the locked path, and the members are locked
//!    only for the duration of one statement and its WAL flush.
//!
//! **The locked path** (after a lost race): one transaction, in `READ COMMITTED`, of a few
//! set-based statements (arrays bound as parameters and `UNNEST`ed):
//! 1. **Find members** by identifier, only for batches whose program does not enrol unknown
//!    members: whether the member exists decides whether the item may be accepted. A read:
//!    enrolling now would enrol members for items that turn out duplicates.
//! 2. **Claim keys**, in key order: `INSERT … ON CONFLICT DO NOTHING` of the key of each item
//!    that may be accepted (the first such item of each key). A key held by a transaction in
//!    flight, in this process or another, makes the insert wait for that transaction's
//!    outcome: this is what makes concurrent deliveries give exactly one `accepted`. The same
//!    statement reads the owners of the keys that were already taken; a key lost to a
//!    transaction that committed during the wait is read again by a second statement.
//! 3. **Resolve members** of accepted items, in identifier order: existing ones are read, and
//!    for the others the identifier is claimed (`ON CONFLICT DO NOTHING`) and the member
//!    inserted only if the claim won, so that racing enrolments leave no orphan; one enrolled
//!    meanwhile by another transaction is read again.
//! 4. **Lock the members** of accepted items, `FOR NO KEY UPDATE`, in member order, and only
//!    then read their usage (a later statement, so a later snapshot): whoever writes a
//!    member's usage or balance holds that lock, so the read is current and concurrent events
//!    cannot exceed a rule's limit.
//! 5. **Decide** every item in order, as above.
//! 6. **Write** with `loyalty_commit` (nothing left to claim, lock or check): number events
//!    and ledger entries from the shared sequence (while the members are locked, so a
//!    member's activity is in the order it happened), insert them, upsert the summed usage
//!    increments, add each member's balance delta where it changes (and make a test member
//!    live on its first live event); then commit.
//!
//! **Lock order.** Keys, then identifiers, then members, each sorted (bytewise: the columns
//! are `COLLATE "C"`). Every commit, on either path, in every process, takes its locks in that
//! one global order, so commits cannot deadlock each other. Only accepted items claim keys;
//! ignored and rejected ones leave them free.
//!
//! # Failover
//!
//! A URL may name several hosts with libpq's `target_session_attrs`; the store then writes
//! only to a server whose sessions are read-write, and finds the next one, without a restart,
//! when it dies or is demoted (the `hosts` module). A commit whose answer was lost (the
//! connection broke, the server was killed) is read back on the primary of the moment: its
//! events' ids were drawn before the transaction, so they are all in the log, and their
//! entries are the answer, or none is, and the group is committed again. That read locks the
//! events it finds, so its own COMMIT waits for the synchronous standbys: no answer is given
//! before a synchronous copy exists. A read URL may serve the admin's stale-tolerant reads
//! (event log, activity).
//!
//! # Purge
//!
//! [`Store::purge_test_data`] is one transaction too: it locks the connector row (so purges of
//! one connector run one at a time), deletes the test keys of the events it removes, locks
//! their members in member order, deletes the ledger entries while undoing their usage and
//! balances, deletes the events, and deletes the test members left with no activity. Races
//! with commits (a member read in step 1 and purged before step 4, an owner purged between a
//! claim and its read, a duplicate naming a member being deleted) roll one side back, which is
//! then run again.

#![warn(missing_docs)]

mod commit;
mod error;
mod feed;
mod hosts;
mod points;
mod purge;
mod replay;
mod rows;
mod webhooks;

pub use commit::CommitStats;
pub use error::PostgresStoreError;
pub use hosts::SessionAttrs;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commit::{Job, Queue};
use hosts::{DatabaseUrl, Target};
use loyalty_core::connector::Connector;
use loyalty_core::error::StoreError;
use loyalty_core::feed::{ChangePage, FeedPosition, FeedSignal};
use loyalty_core::ids::{
    ConnectorId, EventId, MemberId, MessageId, ProgramId, ReplayId, RuleId, WebhookId,
};
use loyalty_core::ledger::{
    ActivityItem, ErrorGroup, EventFilter, LedgerEntry, LogEntry, Page, PageRequest, PurgeCounts,
};
use loyalty_core::member::{Identifier, Member};
use loyalty_core::program::{PointsExpiry, Program};
use loyalty_core::replay::{ReplayApplied, ReplayChange, ReplayReader, ReplayRecord, ReplayScope};
use loyalty_core::rules::{Rule, Usage, UsageCount, UsageKey};
use loyalty_core::store::{
    Adjusted, Adjustment, CommitBatch, EventReversal, PurchaseFound, Reversed, Store, StoreResult,
};
use loyalty_core::webhooks::{
    Attempt, ClaimedDelivery, Delivery, DeliveryState, NewDelivery, Webhook,
};
use rows::{
    CONNECTOR_COLUMNS, EVENT_COLUMNS, LEDGER_COLUMNS, MEMBER_COLUMNS, PROGRAM_COLUMNS, RULE_COLUMNS,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, QueryBuilder, Row};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Settings of a [`PostgresStore`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The most connections the pool opens (committers and reads share them).
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing as unavailable.
    pub acquire_timeout: Duration,
    /// The server's `statement_timeout` for every connection (`None`: the server's default).
    pub statement_timeout: Option<Duration>,
    /// Group commit merges waiting batches into one transaction up to this many items (a
    /// larger batch is committed alone).
    pub group_commit_max_items: usize,
    /// How many committer tasks run transactions in parallel; each keeps one connection of the
    /// pool. Two let one transaction be built while another waits for its WAL flush, and keep
    /// ingestion going while one waits on a lock; more mostly make transactions of one process
    /// queue on each other's keys and members (duplicate-heavy traffic is fastest with one).
    pub committers: usize,
    /// How many batches may wait for a committer before `commit` waits to enqueue.
    pub queue_capacity: usize,
    /// How many times a transaction that lost a race (deadlock, serialization failure, a
    /// concurrent purge) is run again before its error is returned.
    pub max_retries: u32,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
            group_commit_max_items: 1000,
            committers: 2,
            queue_capacity: 1024,
            max_retries: 5,
        }
    }
}

/// The PostgreSQL store. Cheap to clone: clones share the pool and the committers, which stop
/// when the last clone is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    /// The primary's pool: every write and every read a decision rests on.
    pool: PgPool,
    /// The replica's pool, for the reads that may be a little stale, and its target.
    reads: Option<(PgPool, Arc<Target>)>,
    /// Which of the URL's hosts is the primary now.
    target: Arc<Target>,
    options: Arc<PostgresOptions>,
    queue: mpsc::Sender<Job>,
    stats: Arc<commit::Stats>,
    /// The watchers stop once every clone of the store is dropped.
    _alive: Arc<()>,
    feed: Arc<feed::Feed>,
}

impl fmt::Debug for PostgresStore {
    // Not the pool's Debug: its connect options hold the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("options", &self.options)
            .field("primary", &self.target.current_host())
            .field("reads_from_replica", &self.reads.is_some())
            .field("connections", &self.pool.size())
            .field("idle_connections", &self.pool.num_idle())
            .finish()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?...`), applies the
    /// pending migrations and starts the committers. Must be called inside a Tokio runtime,
    /// which then runs the committers.
    ///
    /// The URL may name several hosts, as libpq's do
    /// (`postgres://user@host1:5432,host2:5432/db?target_session_attrs=read-write`): the
    /// store then writes only to the first host that is a read-write primary, and finds the
    /// new one after a failover (see the `hosts` module). Such a URL must say
    /// `target_session_attrs=read-write` or `primary`.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, PostgresStoreError> {
        Self::open(DatabaseUrl::parse(url)?, None, options).await
    }

    /// [`connect`](Self::connect), and read the admin's event log and members' activity from
    /// `read_url` (a replica, with the same multi-host syntax; `target_session_attrs` is then
    /// typically `prefer-standby`). Those reads may lag the primary by the replica's
    /// replication delay; ingestion and every decision read the primary.
    pub async fn connect_with_replica(
        url: &str,
        read_url: &str,
        options: PostgresOptions,
    ) -> Result<Self, PostgresStoreError> {
        let reads = DatabaseUrl::parse(read_url)?;
        Self::open(DatabaseUrl::parse(url)?, Some(reads), options).await
    }

    /// [`connect`](Self::connect), with connection options built by the caller.
    pub async fn connect_with(
        connect_options: PgConnectOptions,
        options: PostgresOptions,
    ) -> Result<Self, PostgresStoreError> {
        Self::open(DatabaseUrl::from_options(connect_options), None, options).await
    }

    async fn open(
        url: DatabaseUrl,
        read_url: Option<DatabaseUrl>,
        options: PostgresOptions,
    ) -> Result<Self, PostgresStoreError> {
        if !url.is_plain() && !url.attrs.writes() {
            return Err(PostgresStoreError::InvalidUrlPart(format!(
                "the database URL says target_session_attrs={}; the store writes, so it must \
                 say read-write (or primary), and a replica's URL goes to the read URL",
                url.attrs
            )));
        }
        let statement_timeout = options.statement_timeout;
        let session = move |connect: PgConnectOptions| {
            let connect = connect.application_name("loyalty");
            match statement_timeout {
                Some(timeout) => {
                    connect.options([("statement_timeout", format!("{}ms", timeout.as_millis()))])
                }
                None => connect,
            }
        };
        let (target, mut connection) =
            Target::find_first(url, session, options.acquire_timeout).await?;
        // Migrations run on a connection of their own, without the statement timeout: a future
        // migration may build an index on a large table. The migrator takes an advisory lock,
        // so processes starting together apply each migration once.
        MIGRATOR.run(&mut connection).await?;
        warn_if_acknowledged_before_flush(&mut connection).await;

        // No ping before each checkout: it would double the round trips of every read (the
        // engine reloads its connectors once a second). A connection that died while idle
        // fails its next query, and the pool drops it.
        let pool_options = || {
            PgPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout)
                .test_before_acquire(false)
        };
        let pool = target.pool(pool_options()).await?;
        let alive = Arc::new(());
        if target.is_watched() {
            tokio::spawn(
                target
                    .clone()
                    .watch(pool.clone(), connection, Arc::downgrade(&alive)),
            );
        } else {
            connection.close().await?;
        }
        let reads = match read_url {
            None => None,
            Some(read_url) => {
                let (read_target, connection) =
                    Target::find_first(read_url, session, options.acquire_timeout).await?;
                let reads = read_target.pool(pool_options()).await?;
                if read_target.is_watched() {
                    tokio::spawn(read_target.clone().watch(
                        reads.clone(),
                        connection,
                        Arc::downgrade(&alive),
                    ));
                } else {
                    connection.close().await?;
                }
                Some((reads, read_target))
            }
        };

        let options = Arc::new(options);
        let (sender, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let queue = Arc::new(Mutex::new(Queue::new(receiver)));
        let stats = Arc::new(commit::Stats::default());
        for _ in 0..options.committers.max(1) {
            tokio::spawn(commit::run_committer(
                pool.clone(),
                target.clone(),
                options.clone(),
                queue.clone(),
                stats.clone(),
            ));
        }
        let feed = Arc::new(feed::Feed::start(&pool));
        Ok(Self {
            pool,
            reads,
            target,
            options,
            queue: sender,
            stats,
            _alive: alive,
            feed,
        })
    }

    /// The pool the admin's stale-tolerant reads use: the replica's, else the primary's.
    fn read_pool(&self) -> &PgPool {
        self.reads.as_ref().map_or(&self.pool, |(pool, _)| pool)
    }

    /// Whether the event log and members' activity are read from a replica (and so may lag
    /// the primary by its replication delay).
    pub fn reads_from_replica(&self) -> bool {
        self.reads.is_some()
    }

    /// The `host:port` the store writes to now (after a failover, the new primary's).
    pub fn primary_host(&self) -> String {
        self.target.current_host().to_owned()
    }

    /// The connection pool, for maintenance and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The options the store was built with.
    pub fn options(&self) -> &PostgresOptions {
        &self.options
    }

    /// Commits a batch (see the crate documentation); the feed is told by the caller.
    async fn commit_batch(&self, batch: CommitBatch) -> StoreResult<Vec<LogEntry>> {
        if batch.items.iter().any(|item| item.refund.is_some()) {
            // Refunds are rare and each needs its purchase's member locked first: one short
            // transaction an item, outside the group commit.
            let mut entries = Vec::with_capacity(batch.items.len());
            for item in &batch.items {
                let entry = self
                    .retrying("a refund", || {
                        points::commit_refund_item(&self.pool, &batch, item)
                    })
                    .await?;
                entries.push(entry);
            }
            return Ok(entries);
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { batch, reply })
            .await
            .map_err(|_| store_error(PostgresStoreError::CommitterStopped))?;
        answer
            .await
            .map_err(|_| store_error(PostgresStoreError::CommitterStopped))?
    }

    /// What the committers did since the store was opened (counters only grow): for metrics
    /// and benchmarks.
    pub fn commit_stats(&self) -> CommitStats {
        self.stats.snapshot()
    }
}

fn store_error(error: impl Into<PostgresStoreError>) -> StoreError {
    StoreError::from(error.into())
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_program(&self, program: &Program) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO programs (id, name, default_identifier_kind, enroll_unknown_members, \
                 admin_token_hash, created_at, points_expiry_days) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
                 default_identifier_kind = EXCLUDED.default_identifier_kind, \
                 enroll_unknown_members = EXCLUDED.enroll_unknown_members, \
                 points_expiry_days = EXCLUDED.points_expiry_days, \
                 admin_token_hash = EXCLUDED.admin_token_hash, created_at = EXCLUDED.created_at",
        )
        .bind(program.id.as_str())
        .bind(&program.name)
        .bind(&program.default_identifier_kind)
        .bind(program.enroll_unknown_members)
        .bind(program.admin_token_hash.as_hex())
        .bind(program.created_at)
        .bind(
            program
                .points_expiry
                .map(|e| i32::try_from(e.after_days).unwrap_or(i32::MAX)),
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn get_program(&self, id: &ProgramId) -> StoreResult<Option<Program>> {
        let row = sqlx::query(&format!(
            "SELECT {PROGRAM_COLUMNS} FROM programs WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.as_ref().map(rows::program).transpose()?)
    }

    async fn list_programs(&self) -> StoreResult<Vec<Program>> {
        let rows = sqlx::query(&format!(
            "SELECT {PROGRAM_COLUMNS} FROM programs ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows.iter().map(rows::program).collect::<Result<_, _>>()?)
    }

    async fn put_connector(&self, connector: &Connector) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO connectors (id, program_id, name, event_type, auth, mapping, test_mode, \
                 max_event_age_days, revision, created_at, updated_at, deleted) \
             VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET program_id = EXCLUDED.program_id, \
                 name = EXCLUDED.name, event_type = EXCLUDED.event_type, auth = EXCLUDED.auth, \
                 mapping = EXCLUDED.mapping, test_mode = EXCLUDED.test_mode, \
                 max_event_age_days = EXCLUDED.max_event_age_days, \
                 revision = EXCLUDED.revision, created_at = EXCLUDED.created_at, \
                 updated_at = EXCLUDED.updated_at, deleted = EXCLUDED.deleted",
        )
        .bind(connector.id.as_str())
        .bind(connector.program_id.as_str())
        .bind(&connector.name)
        .bind(connector.event_type.as_str())
        .bind(rows::to_json(&connector.auth)?)
        .bind(&connector.mapping)
        .bind(connector.test_mode)
        .bind(i32::try_from(connector.max_event_age_days).unwrap_or(i32::MAX))
        .bind(connector.revision)
        .bind(connector.created_at)
        .bind(connector.updated_at)
        .bind(connector.deleted)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn get_connector(&self, id: &ConnectorId) -> StoreResult<Option<Connector>> {
        let row = sqlx::query(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.as_ref().map(rows::connector).transpose()?)
    }

    async fn list_connectors(&self, program: &ProgramId) -> StoreResult<Vec<Connector>> {
        let rows = sqlx::query(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors \
             WHERE program_id = $1 AND NOT deleted ORDER BY created_at, id"
        ))
        .bind(program.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows.iter().map(rows::connector).collect::<Result<_, _>>()?)
    }

    async fn put_rule(&self, rule: &Rule) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO rules (id, program_id, connector_id, name, conditions, points, limits, \
                 priority, stop_other_rules, active_from, active_until, created_at, updated_at, \
                 pending_days) \
             VALUES ($1, $2, $3, $4, $5::json, $6::json, $7::json, $8, $9, $10, $11, $12, $13, \
                 $14) \
             ON CONFLICT (id) DO UPDATE SET program_id = EXCLUDED.program_id, \
                 connector_id = EXCLUDED.connector_id, name = EXCLUDED.name, \
                 conditions = EXCLUDED.conditions, points = EXCLUDED.points, \
                 limits = EXCLUDED.limits, priority = EXCLUDED.priority, \
                 stop_other_rules = EXCLUDED.stop_other_rules, \
                 active_from = EXCLUDED.active_from, active_until = EXCLUDED.active_until, \
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, \
                 pending_days = EXCLUDED.pending_days",
        )
        .bind(rule.id.as_str())
        .bind(rule.program_id.as_str())
        .bind(rule.connector_id.as_str())
        .bind(&rule.name)
        .bind(rows::to_json(&rule.conditions)?)
        .bind(rows::to_json(&rule.points)?)
        .bind(rows::to_json(&rule.limits)?)
        .bind(rule.priority)
        .bind(rule.stop_other_rules)
        .bind(rule.active_from)
        .bind(rule.active_until)
        .bind(rule.created_at)
        .bind(rule.updated_at)
        .bind(
            rule.pending_days
                .map(|d| i32::try_from(d).unwrap_or(i32::MAX)),
        )
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn get_rule(&self, program: &ProgramId, id: &RuleId) -> StoreResult<Option<Rule>> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM rules WHERE id = $1 AND program_id = $2"
        ))
        .bind(id.as_str())
        .bind(program.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.as_ref().map(rows::rule).transpose()?)
    }

    async fn list_rules(
        &self,
        program: &ProgramId,
        connector: Option<&ConnectorId>,
    ) -> StoreResult<Vec<Rule>> {
        let rows = match connector {
            Some(connector) => {
                sqlx::query(&format!(
                    "SELECT {RULE_COLUMNS} FROM rules \
                 WHERE program_id = $1 AND connector_id = $2 ORDER BY created_at, id"
                ))
                .bind(program.as_str())
                .bind(connector.as_str())
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                "SELECT {RULE_COLUMNS} FROM rules WHERE program_id = $1 ORDER BY created_at, id"
            ))
                .bind(program.as_str())
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(store_error)?;
        Ok(rows.iter().map(rows::rule).collect::<Result<_, _>>()?)
    }

    async fn delete_rule(&self, program: &ProgramId, id: &RuleId) -> StoreResult<bool> {
        let result = sqlx::query("DELETE FROM rules WHERE id = $1 AND program_id = $2")
            .bind(id.as_str())
            .bind(program.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn find_member(
        &self,
        program: &ProgramId,
        identifier: &Identifier,
    ) -> StoreResult<Option<Member>> {
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM member_identifiers i0 \
             JOIN members m ON m.program_id = i0.program_id AND m.id = i0.member_id \
             WHERE i0.program_id = $1 AND i0.kind = $2 AND i0.value = $3"
        ))
        .bind(program.as_str())
        .bind(&identifier.kind)
        .bind(&identifier.value)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.as_ref().map(rows::member).transpose()?)
    }

    async fn get_member(&self, program: &ProgramId, id: &MemberId) -> StoreResult<Option<Member>> {
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members m WHERE m.program_id = $1 AND m.id = $2"
        ))
        .bind(program.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.as_ref().map(rows::member).transpose()?)
    }

    async fn usage(
        &self,
        program: &ProgramId,
        member: &MemberId,
        keys: &[UsageKey],
    ) -> StoreResult<Usage> {
        if keys.is_empty() {
            return Ok(Usage::default());
        }
        let (rules, periods): (Vec<&str>, Vec<&str>) = keys
            .iter()
            .map(|k| (k.rule_id.as_str(), k.period.as_str()))
            .unzip();
        let rows = sqlx::query(
            "SELECT u.rule_id, u.period, u.count, u.points \
             FROM UNNEST($3::text[], $4::text[]) AS q(rule_id, period) \
             JOIN member_usage u ON u.rule_id = q.rule_id AND u.period = q.period \
             WHERE u.program_id = $1 AND u.member_id = $2",
        )
        .bind(program.as_str())
        .bind(member.as_str())
        .bind(rules)
        .bind(periods)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut usage = Usage::default();
        for row in &rows {
            usage.insert(
                UsageKey {
                    rule_id: RuleId::new(row.try_get::<String, _>("rule_id").map_err(store_error)?),
                    period: row.try_get("period").map_err(store_error)?,
                },
                UsageCount {
                    count: row.try_get("count").map_err(store_error)?,
                    points: row.try_get("points").map_err(store_error)?,
                },
            );
        }
        Ok(usage)
    }

    async fn find_accepted(
        &self,
        connector: &ConnectorId,
        client_event_id: &str,
        test: bool,
    ) -> StoreResult<Option<EventId>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT event_id FROM accepted_keys \
             WHERE connector_id = $1 AND client_event_id = $2 AND test = $3",
        )
        .bind(connector.as_str())
        .bind(client_event_id)
        .bind(test)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(id.map(EventId::new))
    }

    async fn commit(&self, batch: CommitBatch) -> StoreResult<Vec<LogEntry>> {
        let replayed = batch
            .items
            .iter()
            .any(|item| item.entry.replay_id.is_some());
        let program = batch.program_id.clone();
        let committed = self.commit_batch(batch).await;
        self.feed.committed(&program);
        let entries = committed?;
        if replayed {
            // Items a replay processed anew: linked to it once committed.
            replay::link_replayed(&self.pool, &entries).await?;
        }
        Ok(entries)
    }

    async fn list_events(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
        page: PageRequest,
    ) -> StoreResult<Page<LogEntry>> {
        // Only the filters that are set go into the SQL, so that each combination gets a plan
        // (and an index) of its own rather than one generic plan full of `$n IS NULL OR`.
        let mut query = QueryBuilder::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE program_id = "
        ));
        query.push_bind(program.as_str());
        if let Some(before) = page.before {
            query.push(" AND seq < ").push_bind(before);
        }
        if let Some(connector) = &filter.connector_id {
            query
                .push(" AND connector_id = ")
                .push_bind(connector.as_str());
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(member) = &filter.member_id {
            query.push(" AND member_id = ").push_bind(member.as_str());
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
        query
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(fetch_limit(page.limit));
        let rows = query
            .build()
            .fetch_all(self.read_pool())
            .await
            .map_err(store_error)?;
        let entries = rows
            .iter()
            .map(rows::log_entry)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_fetched(entries, page.limit, |e| e.seq))
    }

    async fn get_event(&self, program: &ProgramId, id: &EventId) -> StoreResult<Option<LogEntry>> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE program_id = $1 AND id = $2"
        ))
        .bind(program.as_str())
        .bind(id.as_str())
        .fetch_optional(self.read_pool())
        .await
        .map_err(store_error)?;
        Ok(row.as_ref().map(rows::log_entry).transpose()?)
    }

    async fn member_activity(
        &self,
        program: &ProgramId,
        member: &MemberId,
        page: PageRequest,
    ) -> StoreResult<Page<ActivityItem>> {
        let rows = sqlx::query(
            "(SELECT 'event' AS kind, e.seq, e.received_at AS at, e.id AS event_id, \
                  e.client_event_id, e.status, e.points, NULL::text AS rule_id, \
                  NULL::text AS ledger_entry_id, NULL::text AS entry_kind, NULL::text AS reason, \
                  e.test \
              FROM events e WHERE e.program_id = $1 AND e.member_id = $2 AND e.seq < $3 \
              ORDER BY e.seq DESC LIMIT $4) \
             UNION ALL \
             (SELECT 'ledger', l.seq, l.created_at, l.event_id, NULL, NULL, l.points, \
                  l.rule_id, l.id, l.kind, l.reason, l.test \
              FROM ledger_entries l WHERE l.program_id = $1 AND l.member_id = $2 AND l.seq < $3 \
              ORDER BY l.seq DESC LIMIT $4) \
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(program.as_str())
        .bind(member.as_str())
        .bind(page.before.unwrap_or(i64::MAX))
        .bind(fetch_limit(page.limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(store_error)?;
        let items = rows
            .iter()
            .map(rows::activity_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_fetched(items, page.limit, |a| a.seq))
    }

    async fn ledger_entries(
        &self,
        program: &ProgramId,
        member: &MemberId,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger_entries \
             WHERE program_id = $1 AND member_id = $2 ORDER BY seq"
        ))
        .bind(program.as_str())
        .bind(member.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(rows::ledger_entry)
            .collect::<Result<_, _>>()?)
    }

    async fn find_purchase(
        &self,
        program: &ProgramId,
        order_id: &str,
        test: bool,
    ) -> StoreResult<Option<PurchaseFound>> {
        let mut connection = self.pool.acquire().await.map_err(store_error)?;
        Ok(points::find_purchase(&mut connection, program.as_str(), order_id, test).await?)
    }

    async fn members_to_expire(
        &self,
        program: &ProgramId,
        cutoff: DateTime<Utc>,
    ) -> StoreResult<Vec<MemberId>> {
        Ok(points::members_to_expire(&self.pool, program.as_str(), cutoff).await?)
    }

    async fn write_expiry(
        &self,
        program: &ProgramId,
        member: &MemberId,
        now: DateTime<Utc>,
        policy: PointsExpiry,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let written = self
            .retrying("an expiry", || {
                points::write_expiry(&self.pool, program.as_str(), member, now, policy)
            })
            .await?;
        if !written.is_empty() {
            self.feed.committed(program);
        }
        Ok(written)
    }

    async fn adjust(&self, adjustment: Adjustment) -> StoreResult<Adjusted> {
        let program = adjustment.entry.program_id.clone();
        let adjusted = self
            .retrying("an adjustment", || {
                points::adjust(&self.pool, adjustment.clone())
            })
            .await?;
        self.feed.committed(&program);
        Ok(adjusted)
    }

    async fn reverse_event(&self, reversal: EventReversal) -> StoreResult<Reversed> {
        let program = reversal.program.clone();
        let reversed = self
            .retrying("a reversal", || {
                points::reverse_event(&self.pool, reversal.clone())
            })
            .await?;
        self.feed.committed(&program);
        Ok(reversed)
    }

    async fn purge_test_data(
        &self,
        program: &ProgramId,
        connector: &ConnectorId,
    ) -> StoreResult<PurgeCounts> {
        let mut attempt = 0;
        loop {
            match purge::purge_once(&self.pool, program, connector).await {
                Ok(counts) => return Ok(counts),
                Err(error) if error.is_retryable() && attempt < self.options.max_retries => {
                    attempt += 1;
                    tracing::debug!(attempt, %error, "retrying a purge");
                    tokio::time::sleep(commit::backoff(attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    async fn event_errors(
        &self,
        program: &ProgramId,
        filter: &EventFilter,
    ) -> StoreResult<Vec<ErrorGroup>> {
        Ok(replay::event_errors(&self.pool, program, filter).await?)
    }

    async fn replay_count(&self, scope: &ReplayScope) -> StoreResult<u64> {
        Ok(replay::replay_count(&self.pool, scope).await?)
    }

    async fn replay_reader(
        &self,
        scope: &ReplayScope,
        page_size: usize,
    ) -> StoreResult<Box<dyn ReplayReader>> {
        Ok(Box::new(
            replay::replay_reader(&self.pool, scope, page_size).await?,
        ))
    }

    async fn apply_replay_change(&self, change: ReplayChange) -> StoreResult<ReplayApplied> {
        self.retrying("a replay change", || {
            replay::apply_replay_change(&self.pool, &change)
        })
        .await
    }

    async fn put_replay(&self, record: &ReplayRecord) -> StoreResult<()> {
        Ok(replay::put_replay(&self.pool, record).await?)
    }

    async fn get_replay(
        &self,
        program: &ProgramId,
        id: &ReplayId,
    ) -> StoreResult<Option<ReplayRecord>> {
        Ok(replay::get_replay(&self.pool, program, id).await?)
    }

    async fn running_replays(&self) -> StoreResult<Vec<ReplayRecord>> {
        Ok(replay::running_replays(&self.pool).await?)
    }

    async fn feed_head(&self, program: &ProgramId) -> StoreResult<FeedPosition> {
        Ok(feed::head(&self.pool, program).await?)
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

    async fn put_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        Ok(webhooks::put_webhook(&self.pool, webhook).await?)
    }

    async fn get_webhook(
        &self,
        program: &ProgramId,
        id: &WebhookId,
    ) -> StoreResult<Option<Webhook>> {
        Ok(webhooks::get_webhook(&self.pool, program, id).await?)
    }

    async fn list_webhooks(&self, program: Option<&ProgramId>) -> StoreResult<Vec<Webhook>> {
        Ok(webhooks::list_webhooks(&self.pool, program).await?)
    }

    async fn delete_webhook(&self, program: &ProgramId, id: &WebhookId) -> StoreResult<bool> {
        Ok(webhooks::delete_webhook(&self.pool, program, id).await?)
    }

    async fn enqueue_deliveries(
        &self,
        webhook: &WebhookId,
        cursor: Option<(i64, i64)>,
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool> {
        self.retrying("enqueue deliveries", || {
            webhooks::enqueue(&self.pool, webhook, cursor, deliveries)
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        Ok(webhooks::claim(&self.pool, now, lease_until, limit).await?)
    }

    async fn record_attempt(
        &self,
        delivery: &MessageId,
        lease: &str,
        attempt: &Attempt,
        state: DeliveryState,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        Ok(webhooks::record(&self.pool, delivery, lease, attempt, state, next_attempt_at).await?)
    }

    async fn list_deliveries(
        &self,
        program: &ProgramId,
        webhook: &WebhookId,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        Ok(webhooks::list(&self.pool, program, webhook, page).await?)
    }

    async fn retry_delivery(
        &self,
        program: &ProgramId,
        webhook: &WebhookId,
        id: &MessageId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Delivery>> {
        Ok(webhooks::retry(&self.pool, program, webhook, id, now).await?)
    }
}

impl PostgresStore {
    /// Runs a short transaction again when PostgreSQL says it may (a deadlock, a
    /// serialization failure, a lost connection), as commits and purges are.
    async fn retrying<T, F, Fut>(&self, what: &'static str, mut run: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = error::Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match run().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_retryable() && attempt < self.options.max_retries => {
                    attempt += 1;
                    tracing::debug!(attempt, %error, what, "retrying");
                    tokio::time::sleep(commit::backoff(attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// A ledger must not acknowledge points that a crash could take back: warn when the server
/// acknowledges commits before their WAL is flushed (`synchronous_commit` `off`), or before a
/// synchronous standby has it while one is configured (`local`).
async fn warn_if_acknowledged_before_flush(connection: &mut PgConnection) {
    let settings: Result<(String, String), _> = sqlx::query_as(
        "SELECT current_setting('synchronous_commit'), \
                current_setting('synchronous_standby_names')",
    )
    .fetch_one(connection)
    .await;
    match settings {
        Ok((commit, standbys))
            if commit == "off" || (commit == "local" && !standbys.is_empty()) =>
        {
            tracing::warn!(
                synchronous_commit = %commit,
                synchronous_standby_names = %standbys,
                "PostgreSQL acknowledges commits before they are safe: a crash or a failover \
                 may lose points the server answered as accepted; set synchronous_commit = on"
            )
        }
        Ok((commit, standbys)) => tracing::info!(
            synchronous_commit = %commit,
            synchronous_standby_names = %standbys,
            "PostgreSQL commit durability"
        ),
        Err(error) => tracing::debug!(%error, "could not read synchronous_commit"),
    }
}

/// One more than the page, to learn whether there is a next one.
fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
}
