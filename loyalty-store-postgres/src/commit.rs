//! Group commit and the commit algorithm (the crate documentation explains both).

use crate::error::{PostgresStoreError, Result};
use crate::rows::to_json;
use crate::PostgresOptions;
use chrono::{DateTime, Utc};
use loyalty_core::error::StoreError;
use loyalty_core::ids::RuleId;
use loyalty_core::ids::{EventId, MemberId};
use loyalty_core::ledger::{LedgerEntry, LogEntry, RawJson};
use loyalty_core::rules::{apply_usage, Usage, UsageCount, UsageKey};
use loyalty_core::store::{
    settle_accepted, settle_duplicate, settle_unknown_member, Candidate, CommitBatch, Prior,
    StoreResult,
};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Counters of the committers, for [`crate::PostgresStore::commit_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions that committed.
    pub transactions: u64,
    /// Batches (callers' requests) they committed.
    pub batches: u64,
    /// Items they committed.
    pub items: u64,
    /// Fast-path writes that lost a race (see the crate documentation) and were decided
    /// again on the locked path.
    pub fallbacks: u64,
    /// Time spent, over all committed transactions, serialising the items before the
    /// transaction.
    pub prepare_nanos: u64,
    /// ... in the reads that precede the decisions (the fast path's read; on the locked path,
    /// begin, keys, members, locks and usage).
    pub read_nanos: u64,
    /// ... deciding the items (rules evaluation), in memory.
    pub decide_nanos: u64,
    /// ... in the write statement (on the fast path, its own transaction: with its commit and
    /// WAL flush).
    pub write_nanos: u64,
    /// ... committing (the WAL flush), on the locked path.
    pub commit_nanos: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    transactions: AtomicU64,
    batches: AtomicU64,
    items: AtomicU64,
    fallbacks: AtomicU64,
    prepare_nanos: AtomicU64,
    read_nanos: AtomicU64,
    decide_nanos: AtomicU64,
    write_nanos: AtomicU64,
    commit_nanos: AtomicU64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> CommitStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CommitStats {
            transactions: get(&self.transactions),
            batches: get(&self.batches),
            items: get(&self.items),
            fallbacks: get(&self.fallbacks),
            prepare_nanos: get(&self.prepare_nanos),
            read_nanos: get(&self.read_nanos),
            decide_nanos: get(&self.decide_nanos),
            write_nanos: get(&self.write_nanos),
            commit_nanos: get(&self.commit_nanos),
        }
    }

    fn record(&self, batches: &[&CommitBatch], timings: &Timings) {
        let add = |a: &AtomicU64, n: u64| a.fetch_add(n, Ordering::Relaxed);
        add(&self.transactions, 1);
        add(&self.batches, batches.len() as u64);
        add(
            &self.items,
            batches.iter().map(|b| b.items.len() as u64).sum(),
        );
        add(&self.prepare_nanos, timings.prepare);
        add(&self.read_nanos, timings.read);
        add(&self.decide_nanos, timings.decide);
        add(&self.write_nanos, timings.write);
        add(&self.commit_nanos, timings.commit);
    }
}

/// Nanoseconds in each phase of one transaction.
#[derive(Debug, Default)]
struct Timings {
    prepare: u64,
    read: u64,
    decide: u64,
    write: u64,
    commit: u64,
}

/// Nanoseconds since `since`, and restarts it.
fn lap(since: &mut Instant) -> u64 {
    let now = Instant::now();
    let nanos = u64::try_from((now - *since).as_nanos()).unwrap_or(u64::MAX);
    *since = now;
    nanos
}

/// One caller's batch, waiting for a committer.
pub(crate) struct Job {
    pub(crate) batch: CommitBatch,
    pub(crate) reply: oneshot::Sender<StoreResult<Vec<LogEntry>>>,
}

/// The committers' shared end of the queue.
pub(crate) struct Queue {
    rx: mpsc::Receiver<Job>,
    /// A job taken from the channel that did not fit the previous group: it opens the next.
    held: Option<Job>,
}

impl Queue {
    pub(crate) fn new(rx: mpsc::Receiver<Job>) -> Self {
        Self { rx, held: None }
    }

    /// Waits for one job, then takes whatever else is already waiting, up to `max_items`
    /// items. `None` once every sender is gone.
    async fn next_group(&mut self, max_items: usize) -> Option<Vec<Job>> {
        let first = match self.held.take() {
            Some(job) => job,
            None => self.rx.recv().await?,
        };
        let mut items = first.batch.items.len();
        // Whether an item may be accepted is decided from the members known before its
        // transaction and its batch's enrolment flag. Two batches of one program that disagree
        // on the flag (it changed between them) could enrol a member for each other, which
        // that decision would miss, so they are never merged.
        let mut enrolment = HashMap::from([(
            first.batch.program_id.clone(),
            first.batch.enroll_unknown_members,
        )]);
        let mut group = vec![first];
        while items < max_items {
            let Ok(job) = self.rx.try_recv() else { break };
            let fits = items + job.batch.items.len() <= max_items;
            let agrees = enrolment
                .get(&job.batch.program_id)
                .is_none_or(|flag| *flag == job.batch.enroll_unknown_members);
            if !fits || !agrees {
                self.held = Some(job);
                break;
            }
            items += job.batch.items.len();
            enrolment.insert(
                job.batch.program_id.clone(),
                job.batch.enroll_unknown_members,
            );
            group.push(job);
        }
        Some(group)
    }
}

/// A committer task: takes groups of waiting jobs and commits each group in one transaction,
/// until the store is dropped.
pub(crate) async fn run_committer(
    pool: PgPool,
    options: Arc<PostgresOptions>,
    queue: Arc<Mutex<Queue>>,
    stats: Arc<Stats>,
) {
    let mut committer = Committer {
        pool,
        options,
        connection: None,
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
    options: Arc<PostgresOptions>,
    /// Kept between transactions: taking a connection from the pool costs a ping (a round
    /// trip) every time, and a committer runs one transaction after another.
    connection: Option<PoolConnection<Postgres>>,
    stats: Arc<Stats>,
}

impl Committer {
    async fn commit_group(&mut self, group: Vec<Job>) {
        if group.len() > 1 {
            let batches: Vec<&CommitBatch> = group.iter().map(|job| &job.batch).collect();
            match self.commit_once(&batches).await {
                Ok(results) => {
                    for (job, entries) in group.into_iter().zip(results) {
                        // A caller that stopped waiting is committed all the same.
                        let _ = job.reply.send(Ok(entries));
                    }
                    return;
                }
                // The database is unreachable: the batches alone would fail the same way, and
                // after a failed COMMIT they may even have been committed, so no replay.
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
            match self.commit_once(&[batch]).await {
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

    async fn commit_once(&mut self, batches: &[&CommitBatch]) -> Result<Vec<Vec<LogEntry>>> {
        // Serialising the items' JSON needs no transaction: done before it starts.
        let mut clock = Instant::now();
        let mut timings = Timings::default();
        let mut slots = prepare(batches)?;
        timings.prepare = lap(&mut clock);
        if self.connection.is_none() {
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
            // it back); after anything else it may be broken.
            if !matches!(
                error,
                PostgresStoreError::Database(sqlx::Error::Database(_))
                    | PostgresStoreError::Conflict
                    | PostgresStoreError::Corrupt { .. }
            ) {
                self.discard_connection();
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

/// (program, kind, value)
type Identity = (String, String, String);
/// (connector, clientEventId, test)
type Key = (String, String, bool);
/// (program, member)
type MemberKey = (String, String);
/// The members to enrol: each identifier's new member, whether it is a test member, and when.
type Enrolments = BTreeMap<Identity, (MemberId, bool, DateTime<Utc>)>;

/// A new member (id, test flag, enrolment time) for each identifier of an accepted item that
/// has no member yet: the fast and the locked path decide enrolments alike.
fn members_to_enrol(
    slots: &[Slot<'_>],
    accepted: &BTreeSet<usize>,
    members: &HashMap<Identity, MemberId>,
) -> Enrolments {
    let mut enrolments = Enrolments::new();
    for &index in accepted {
        let slot = &slots[index];
        let identity = slot.identity.as_ref().expect("a candidate");
        if !members.contains_key(identity) {
            enrolments.entry(identity.clone()).or_insert_with(|| {
                (
                    MemberId::generate(),
                    slot.batch.test,
                    slot.batch.received_at,
                )
            });
        }
    }
    enrolments
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
                identity: candidate.map(|c| {
                    (
                        batch.program_id.as_str().to_owned(),
                        c.identifier.kind.clone(),
                        c.identifier.value.clone(),
                    )
                }),
                key: candidate.map(|c| {
                    (
                        batch.connector_id.as_str().to_owned(),
                        c.client_event_id.clone(),
                        batch.test,
                    )
                }),
            });
        }
    }
    Ok(slots)
}

/// Commits the prepared items in `tx`, settling their entries.
async fn commit_slots(
    mut tx: Transaction<'_, Postgres>,
    slots: &mut [Slot<'_>],
    timings: &mut Timings,
    clock: &mut Instant,
) -> Result<()> {
    // Phase 1, only for batches that do not enrol: whether their members exist decides whether
    // their items may be accepted, hence whether they claim their keys. A read: enrolling now
    // would also enrol for items that turn out duplicates.
    let lookups: BTreeSet<Identity> = slots
        .iter()
        .filter(|s| !s.batch.enroll_unknown_members)
        .filter_map(|s| s.identity.clone())
        .collect();
    let mut members = find_members(&mut tx, &lookups).await?;

    // Phase 2: claim the keys of the claimants (see `claimants`), in key order; every key is
    // read, to find the owners of the others.
    let keys: BTreeSet<Key> = slots
        .iter()
        .filter(|slot| slot.identity.is_some())
        .filter_map(|slot| slot.key.clone())
        .collect();
    let claimants = claimants(slots, &members);
    let Claims {
        claimed,
        mut owners,
        unseen,
    } = claim_keys(&mut tx, &keys, &claimants, slots).await?;
    if !unseen.is_empty() {
        // Held by transactions that committed while the claim waited for them: visible now.
        let found = find_owners(&mut tx, &unseen).await?;
        if found.len() != unseen.len() {
            // Gone again: a purge removed them meanwhile.
            return Err(PostgresStoreError::Conflict);
        }
        owners.extend(found);
    }
    let accepted = accepted_items(&claimants, &claimed);

    // Phase 3: the members of accepted items, enrolling the unknown ones (in identifier order).
    let wanted = members_to_enrol(slots, &accepted, &members);
    if !wanted.is_empty() {
        members.extend(resolve_members(&mut tx, &wanted).await?);
        let unseen: BTreeSet<Identity> = wanted
            .keys()
            .filter(|identity| !members.contains_key(*identity))
            .cloned()
            .collect();
        if !unseen.is_empty() {
            // Enrolled by transactions that committed while the enrolment waited for them.
            let found = find_members(&mut tx, &unseen).await?;
            if found.len() != unseen.len() {
                return Err(PostgresStoreError::Conflict);
            }
            members.extend(found);
        }
    }

    // Phase 4: lock the members of accepted items, in member order, then read their usage,
    // which only a holder of the member's lock writes: the read is current.
    let member_of = |index: usize| member_key(&slots[index], &members);
    let locked: BTreeSet<MemberKey> = accepted.iter().map(|&index| member_of(index)).collect();
    if !locked.is_empty() && lock_members(&mut tx, &locked).await? != locked.len() {
        // A member found above was purged since.
        return Err(PostgresStoreError::Conflict);
    }
    let usage_keys = usage_keys_of(slots, &accepted, member_of);
    let mut usage = read_usage(&mut tx, &usage_keys).await?;
    timings.read = lap(clock);

    // Phase 5: decide, item by item, in order; an award's usage counts for the next item.
    let decided = decide(
        slots,
        &claimants,
        &claimed,
        &owners,
        &usage_keys,
        &mut usage,
    );
    timings.decide = lap(clock);

    // Phase 6: every write in one statement, which also numbers the events and ledger entries
    // (while the members are locked, so that a member's activity is in the order it happened).
    let positions = write(&mut tx, slots, &decided, &Checks::default()).await?;
    number(slots, &decided, &positions)?;
    timings.write = lap(clock);
    tx.commit().await?;
    timings.commit = lap(clock);
    Ok(())
}

/// What the decisions of a group wrote down.
struct Decided {
    /// Each item's ledger entries.
    ledgers: Vec<Vec<LedgerEntry>>,
    /// The usage to add, summed per member and key.
    increments: BTreeMap<(MemberKey, UsageKey), UsageCount>,
    /// Each member's balance delta, and whether all its accepted items were test items.
    balances: BTreeMap<MemberKey, (i64, bool)>,
}

/// The claimant of each key: the first item with it that may be accepted (its batch enrols
/// unknown members, or its member exists). Earlier items with the key are ignored (no
/// member), later ones are its duplicates, as they would be one by one.
fn claimants(slots: &[Slot<'_>], members: &HashMap<Identity, MemberId>) -> BTreeMap<Key, usize> {
    let mut claimants = BTreeMap::new();
    for (index, slot) in slots.iter().enumerate() {
        if let (Some(key), Some(identity)) = (&slot.key, &slot.identity) {
            if slot.batch.enroll_unknown_members || members.contains_key(identity) {
                claimants.entry(key.clone()).or_insert(index);
            }
        }
    }
    claimants
}

/// The items accepted: the claimants of the keys claimed.
fn accepted_items(claimants: &BTreeMap<Key, usize>, claimed: &BTreeSet<Key>) -> BTreeSet<usize> {
    claimants
        .iter()
        .filter(|(key, _)| claimed.contains(*key))
        .map(|(_, index)| *index)
        .collect()
}

/// The (program, member) of a candidate item whose member is known.
fn member_key(slot: &Slot<'_>, members: &HashMap<Identity, MemberId>) -> MemberKey {
    let member = &members[slot.identity.as_ref().expect("a candidate")];
    (
        slot.batch.program_id.as_str().to_owned(),
        member.as_str().to_owned(),
    )
}

/// For each accepted item, its member and the usage keys its rules read at its time.
fn usage_keys_of(
    slots: &[Slot<'_>],
    accepted: &BTreeSet<usize>,
    member_of: impl Fn(usize) -> MemberKey,
) -> HashMap<usize, (MemberKey, Vec<UsageKey>)> {
    accepted
        .iter()
        .map(|&index| {
            let slot = &slots[index];
            let at = slot.candidate.expect("a candidate").occurred_at;
            (index, (member_of(index), slot.batch.rules.usage_keys(at)))
        })
        .collect()
}

/// Settles every item, in order: a duplicate of an earlier owner or claimant, accepted (its
/// key's claimant: the rules are evaluated on its member's usage, to which each award adds for
/// the next item of the member), or ignored (no member).
fn decide(
    slots: &mut [Slot<'_>],
    claimants: &BTreeMap<Key, usize>,
    claimed: &BTreeSet<Key>,
    owners: &HashMap<Key, (EventId, MemberId)>,
    usage_keys: &HashMap<usize, (MemberKey, Vec<UsageKey>)>,
    usage: &mut HashMap<MemberKey, Usage>,
) -> Decided {
    let mut decided = Decided {
        ledgers: vec![Vec::new(); slots.len()],
        increments: BTreeMap::new(),
        balances: BTreeMap::new(),
    };
    for index in 0..slots.len() {
        let Some(key) = slots[index].key.clone() else {
            continue;
        };
        let claimant = claimants.get(&key).filter(|_| claimed.contains(&key));
        if let Some((original, member)) = owners.get(&key).filter(|_| claimant.is_none()) {
            let prior = Prior {
                event: Some(original.clone()),
                member: Some(member.clone()),
            };
            settle_duplicate(&mut slots[index].entry, prior);
            continue;
        }
        match claimant {
            Some(&claimant) if claimant < index => {
                let original = slots[claimant].entry.id.clone();
                let member = slots[claimant].entry.member_id.clone();
                let prior = Prior {
                    event: Some(original),
                    member,
                };
                settle_duplicate(&mut slots[index].entry, prior);
            }
            Some(&claimant) if claimant == index => {
                let (member_key, _) = &usage_keys[&index];
                // The member's usage as read for the batch, plus what earlier items of the
                // batch added: evaluation looks up only the keys it needs.
                let member_usage = usage.entry(member_key.clone()).or_default();
                let member = MemberId::new(member_key.1.as_str());
                let slot = &mut slots[index];
                let candidate = slot.candidate.expect("a candidate");
                let (evaluation, ledger) = settle_accepted(
                    &mut slot.entry,
                    candidate,
                    &member,
                    &slot.batch.rules,
                    member_usage,
                );
                apply_usage(member_usage, &evaluation.usage_increments);
                for (usage_key, add) in evaluation.usage_increments {
                    let count = decided
                        .increments
                        .entry((member_key.clone(), usage_key))
                        .or_default();
                    count.count += add.count;
                    count.points += add.points;
                }
                let balance = decided
                    .balances
                    .entry(member_key.clone())
                    .or_insert((0, true));
                balance.0 += slot.entry.points;
                balance.1 &= slot.batch.test;
                decided.ledgers[index] = ledger;
            }
            _ => settle_unknown_member(&mut slots[index].entry),
        }
    }
    decided
}

/// Gives each event its position (skipping those of its ledger entries, which the caller
/// does not return).
fn number(slots: &mut [Slot<'_>], decided: &Decided, positions: &[i64]) -> Result<()> {
    let mut next = 0;
    for (slot, ledger) in slots.iter_mut().zip(&decided.ledgers) {
        slot.entry.seq = *positions
            .get(next)
            .ok_or_else(|| PostgresStoreError::corrupt("positions", "fewer than rows"))?;
        next += 1 + ledger.len();
    }
    Ok(())
}

/// What a group read without locks, at one snapshot.
struct ReadState {
    /// Keys held by accepted events, with the event and its member.
    owners: HashMap<Key, (EventId, MemberId)>,
    /// Members of the identifiers that have one.
    members: HashMap<Identity, MemberId>,
    /// Those members' usage, for the keys the groups' rules name.
    usage: HashMap<MemberKey, Usage>,
}

/// One statement, no transaction, no lock: the owners of the group's keys, the members of its
/// identifiers, and their usage. `None` if a key's owner has no event (a purge is deleting
/// it): only the locked path sorts that out.
async fn read_state(
    connection: &mut PgConnection,
    slots: &[Slot<'_>],
) -> Result<Option<ReadState>> {
    let keys: BTreeSet<&Key> = slots.iter().filter_map(|s| s.key.as_ref()).collect();
    let identities: BTreeSet<&Identity> =
        slots.iter().filter_map(|s| s.identity.as_ref()).collect();
    let mut rule_periods: BTreeSet<(String, String)> = BTreeSet::new();
    for slot in slots {
        if let Some(candidate) = slot.candidate {
            for key in slot.batch.rules.usage_keys(candidate.occurred_at) {
                rule_periods.insert((key.rule_id.as_str().to_owned(), key.period));
            }
        }
    }
    let mut state = ReadState {
        owners: HashMap::new(),
        members: HashMap::new(),
        usage: HashMap::new(),
    };
    if keys.is_empty() && identities.is_empty() {
        return Ok(Some(state));
    }
    let (k_connectors, k_clients, k_tests) =
        unzip3(keys.iter().map(|(c, i, t)| (c.as_str(), i.as_str(), *t)));
    let (i_programs, i_kinds, i_values) = unzip3(
        identities
            .iter()
            .map(|(p, k, v)| (p.as_str(), k.as_str(), v.as_str())),
    );
    let (rules, periods): (Vec<&str>, Vec<&str>) = rule_periods
        .iter()
        .map(|(r, p)| (r.as_str(), p.as_str()))
        .unzip();
    // LATERAL ... LIMIT 1: one index lookup per input row, whatever the planner thinks of the
    // tables' sizes (a new database has no statistics).
    let rows = sqlx::query(
        "WITH found AS ( \
             SELECT q.program_id, q.kind, q.value, i.member_id \
             FROM UNNEST($4::text[], $5::text[], $6::text[]) AS q(program_id, kind, value) \
             CROSS JOIN LATERAL (SELECT i.member_id FROM member_identifiers i \
                 WHERE i.program_id = q.program_id AND i.kind = q.kind AND i.value = q.value \
                 LIMIT 1) i \
         ) \
         SELECT 0 AS what, q.connector_id AS a, q.client_event_id AS b, q.test AS t, \
             k.event_id AS c, k.member_id AS d, NULL::bigint AS n, NULL::bigint AS s \
         FROM UNNEST($1::text[], $2::text[], $3::bool[]) AS q(connector_id, client_event_id, test) \
         CROSS JOIN LATERAL (SELECT k.event_id, \
                 (SELECT e.member_id FROM events e \
                  WHERE e.program_id = k.program_id AND e.id = k.event_id LIMIT 1) AS member_id \
             FROM accepted_keys k WHERE k.connector_id = q.connector_id \
               AND k.client_event_id = q.client_event_id AND k.test = q.test LIMIT 1) k \
         UNION ALL \
         SELECT 1, f.program_id, f.kind, NULL, f.value, f.member_id, NULL, NULL FROM found f \
         UNION ALL \
         SELECT 2, m.program_id, m.member_id, NULL, r.rule_id, r.period, u.count, u.points \
         FROM (SELECT DISTINCT program_id, member_id FROM found) m \
         CROSS JOIN UNNEST($7::text[], $8::text[]) AS r(rule_id, period) \
         CROSS JOIN LATERAL (SELECT u.count, u.points FROM member_usage u \
             WHERE u.program_id = m.program_id AND u.member_id = m.member_id \
               AND u.rule_id = r.rule_id AND u.period = r.period LIMIT 1) u",
    )
    .bind(k_connectors)
    .bind(k_clients)
    .bind(k_tests)
    .bind(i_programs)
    .bind(i_kinds)
    .bind(i_values)
    .bind(rules)
    .bind(periods)
    .fetch_all(&mut *connection)
    .await?;
    for row in &rows {
        let what: i32 = row.try_get("what")?;
        let a: String = row.try_get("a")?;
        let b: String = row.try_get("b")?;
        let c: Option<String> = row.try_get("c")?;
        let d: Option<String> = row.try_get("d")?;
        match what {
            0 => {
                let (Some(event), Some(member)) = (c, d) else {
                    return Ok(None);
                };
                state.owners.insert(
                    (a, b, row.try_get("t")?),
                    (EventId::new(event), MemberId::new(member)),
                );
            }
            1 => {
                let (Some(value), Some(member)) = (c, d) else {
                    continue;
                };
                state.members.insert((a, b, value), MemberId::new(member));
            }
            _ => {
                let (Some(rule), Some(period)) = (c, d) else {
                    continue;
                };
                state.usage.entry((a, b)).or_default().insert(
                    UsageKey {
                        rule_id: RuleId::new(rule),
                        period,
                    },
                    UsageCount {
                        count: row.try_get("n")?,
                        points: row.try_get("s")?,
                    },
                );
            }
        }
    }
    Ok(Some(state))
}

/// The fast path's decisions and write: decides on `state` (an unlocked read) as the locked
/// path would on a read under locks, then writes in one statement (autocommit: one round
/// trip, one transaction) that claims, enrols and locks, and fails with a serialization
/// failure, writing nothing, if the read no longer holds.
async fn commit_fast(
    connection: &mut PgConnection,
    slots: &mut [Slot<'_>],
    state: ReadState,
    timings: &mut Timings,
    clock: &mut Instant,
) -> Result<()> {
    let ReadState {
        owners,
        mut members,
        usage: read_usage,
    } = state;
    // A claimant (see `claimants`) is accepted if no accepted event holds its key.
    let claimants = claimants(slots, &members);
    let claimed: BTreeSet<Key> = claimants
        .keys()
        .filter(|key| !owners.contains_key(*key))
        .cloned()
        .collect();
    let accepted = accepted_items(&claimants, &claimed);

    // Members to enrol: those of accepted items that have none.
    let enrolled = members_to_enrol(slots, &accepted, &members);
    for (identity, (id, _, _)) in &enrolled {
        members.insert(identity.clone(), id.clone());
    }
    let member_of = |index: usize| member_key(&slots[index], &members);
    let new_members: BTreeSet<MemberKey> = enrolled
        .iter()
        .map(|((program, _, _), (id, _, _))| (program.clone(), id.as_str().to_owned()))
        .collect();
    let locked: BTreeSet<MemberKey> = accepted.iter().map(|&index| member_of(index)).collect();
    let usage_keys = usage_keys_of(slots, &accepted, member_of);
    // What the decisions read, to be checked under the locks (a new member has no usage).
    let mut expected: BTreeMap<(MemberKey, UsageKey), UsageCount> = BTreeMap::new();
    for (member, keys) in usage_keys.values() {
        if new_members.contains(member) {
            continue;
        }
        for key in keys {
            let count = read_usage
                .get(member)
                .and_then(|usage| usage.get(key))
                .copied()
                .unwrap_or_default();
            expected.insert((member.clone(), key.clone()), count);
        }
    }
    let mut usage = read_usage;
    let decided = decide(
        slots,
        &claimants,
        &claimed,
        &owners,
        &usage_keys,
        &mut usage,
    );
    timings.decide = lap(clock);

    let checks = Checks {
        keys: claimed
            .iter()
            .map(|key| {
                let slot = &slots[claimants[key]];
                (
                    key.clone(),
                    slot.batch.program_id.as_str(),
                    slot.entry.id.as_str(),
                )
            })
            .collect(),
        enrolled: Some(&enrolled),
        locked: Some(&locked),
        expected: Some(&expected),
    };
    let positions = write(&mut *connection, slots, &decided, &checks).await?;
    timings.write = lap(clock);
    number(slots, &decided, &positions)?;
    Ok(())
}

async fn find_members(
    tx: &mut Transaction<'_, Postgres>,
    identities: &BTreeSet<Identity>,
) -> Result<HashMap<Identity, MemberId>> {
    if identities.is_empty() {
        return Ok(HashMap::new());
    }
    let (programs, kinds, values) = unzip3(identities.iter().map(|(p, k, v)| (p, k, v)));
    let rows = sqlx::query(
        "SELECT i.program_id, i.kind, i.value, i.member_id \
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS q(program_id, kind, value) \
         JOIN member_identifiers i \
           ON i.program_id = q.program_id AND i.kind = q.kind AND i.value = q.value",
    )
    .bind(programs)
    .bind(kinds)
    .bind(values)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(identity_row).collect()
}

fn identity_row(row: &sqlx::postgres::PgRow) -> Result<(Identity, MemberId)> {
    Ok((
        (
            row.try_get("program_id")?,
            row.try_get("kind")?,
            row.try_get("value")?,
        ),
        MemberId::new(row.try_get::<String, _>("member_id")?),
    ))
}

/// What claiming the keys found.
struct Claims {
    /// Keys this transaction now holds.
    claimed: BTreeSet<Key>,
    /// Keys held by accepted events (committed before the claim's snapshot), with the event's
    /// member.
    owners: HashMap<Key, (EventId, MemberId)>,
    /// Keys the claim lost to transactions that committed after its snapshot.
    unseen: Vec<Key>,
}

/// Inserts the claimed keys in key order (a key held by a transaction in flight makes the
/// insert wait for that transaction's outcome), and reads the owners of all the keys.
async fn claim_keys(
    tx: &mut Transaction<'_, Postgres>,
    keys: &BTreeSet<Key>,
    claimants: &BTreeMap<Key, usize>,
    slots: &[Slot<'_>],
) -> Result<Claims> {
    let mut claims = Claims {
        claimed: BTreeSet::new(),
        owners: HashMap::new(),
        unseen: Vec::new(),
    };
    if keys.is_empty() {
        return Ok(claims);
    }
    let mut connectors = Vec::with_capacity(keys.len());
    let mut client_ids = Vec::with_capacity(keys.len());
    let mut tests = Vec::with_capacity(keys.len());
    let mut programs = Vec::with_capacity(keys.len());
    let mut events = Vec::with_capacity(keys.len());
    let mut claim = Vec::with_capacity(keys.len());
    for key in keys {
        let (connector, client_id, test) = key;
        connectors.push(connector.as_str());
        client_ids.push(client_id.as_str());
        tests.push(*test);
        let claimant = claimants.get(key).map(|&index| &slots[index]);
        programs.push(claimant.map(|s| s.batch.program_id.as_str()));
        events.push(claimant.map(|s| s.entry.id.as_str()));
        claim.push(claimant.is_some());
    }
    // The outer query reads accepted_keys with the statement's snapshot: it sees the keys
    // committed before, not the ones inserted by the statement nor by the transactions it
    // waited for.
    let rows = sqlx::query(
        "WITH q AS ( \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bool[], $4::text[], $5::text[], \
                                  $6::bool[]) \
               AS q(connector_id, client_event_id, test, program_id, event_id, claim) \
         ), claimed AS ( \
             INSERT INTO accepted_keys (connector_id, client_event_id, test, program_id, event_id) \
             SELECT connector_id, client_event_id, test, program_id, event_id FROM q \
             WHERE claim \
             ORDER BY connector_id COLLATE \"C\", client_event_id COLLATE \"C\", test \
             ON CONFLICT DO NOTHING \
             RETURNING connector_id, client_event_id, test \
         ) \
         SELECT q.connector_id, q.client_event_id, q.test, q.claim, \
                c.connector_id IS NOT NULL AS claimed, k.event_id, e.member_id \
         FROM q \
         LEFT JOIN claimed c ON c.connector_id = q.connector_id \
           AND c.client_event_id = q.client_event_id AND c.test = q.test \
         LEFT JOIN accepted_keys k ON k.connector_id = q.connector_id \
           AND k.client_event_id = q.client_event_id AND k.test = q.test \
         LEFT JOIN events e ON e.program_id = k.program_id AND e.id = k.event_id",
    )
    .bind(connectors)
    .bind(client_ids)
    .bind(tests)
    .bind(programs)
    .bind(events)
    .bind(claim)
    .fetch_all(&mut **tx)
    .await?;
    for row in &rows {
        let key: Key = (
            row.try_get("connector_id")?,
            row.try_get("client_event_id")?,
            row.try_get("test")?,
        );
        // Claimed wins over an owner in the snapshot: that owner was purged while we waited.
        if row.try_get("claimed")? {
            claims.claimed.insert(key);
            continue;
        }
        let event: Option<String> = row.try_get("event_id")?;
        let member: Option<String> = row.try_get("member_id")?;
        match (event, member) {
            (Some(event), Some(member)) => {
                claims
                    .owners
                    .insert(key, (EventId::new(event), MemberId::new(member)));
            }
            // An accepted event always has a member: the key and its event are written and
            // purged together, so seeing one without the other is a race. Read again.
            (Some(_), None) => claims.unseen.push(key),
            (None, _) if row.try_get("claim")? => claims.unseen.push(key),
            // Not held, and not claimed: its items are ignored.
            (None, _) => {}
        }
    }
    Ok(claims)
}

/// The accepted event holding each key (and its member), for the keys that have one.
async fn find_owners(
    tx: &mut Transaction<'_, Postgres>,
    keys: &[Key],
) -> Result<HashMap<Key, (EventId, MemberId)>> {
    let (connectors, client_ids, tests) = unzip3(keys.iter().map(|(c, i, t)| (c, i, *t)));
    let rows = sqlx::query(
        "SELECT k.connector_id, k.client_event_id, k.test, k.event_id, e.member_id \
         FROM UNNEST($1::text[], $2::text[], $3::bool[]) AS q(connector_id, client_event_id, test) \
         JOIN accepted_keys k ON k.connector_id = q.connector_id \
           AND k.client_event_id = q.client_event_id AND k.test = q.test \
         JOIN events e ON e.program_id = k.program_id AND e.id = k.event_id \
         WHERE e.member_id IS NOT NULL",
    )
    .bind(connectors)
    .bind(client_ids)
    .bind(tests)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                (
                    row.try_get("connector_id")?,
                    row.try_get("client_event_id")?,
                    row.try_get("test")?,
                ),
                (
                    EventId::new(row.try_get::<String, _>("event_id")?),
                    MemberId::new(row.try_get::<String, _>("member_id")?),
                ),
            ))
        })
        .collect()
}

/// The members of these identifiers: those that exist, and new ones for the others (the
/// identifier is claimed first, in identifier order, and the member inserted only if the
/// claim won). Identifiers enrolled by a transaction that committed while the claim waited
/// for it are missing from the answer.
async fn resolve_members(
    tx: &mut Transaction<'_, Postgres>,
    wanted: &BTreeMap<Identity, (MemberId, bool, DateTime<Utc>)>,
) -> Result<HashMap<Identity, MemberId>> {
    let mut programs = Vec::with_capacity(wanted.len());
    let mut kinds = Vec::with_capacity(wanted.len());
    let mut values = Vec::with_capacity(wanted.len());
    let mut ids = Vec::with_capacity(wanted.len());
    let mut tests = Vec::with_capacity(wanted.len());
    let mut created = Vec::with_capacity(wanted.len());
    for ((program, kind, value), (id, test, at)) in wanted {
        programs.push(program.as_str());
        kinds.push(kind.as_str());
        values.push(value.as_str());
        ids.push(id.as_str());
        tests.push(*test);
        created.push(*at);
    }
    let rows = sqlx::query(
        "WITH q AS ( \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], \
                                  $6::timestamptz[]) \
               AS q(program_id, kind, value, member_id, test, created_at) \
         ), existing AS ( \
             SELECT i.program_id, i.kind, i.value, i.member_id \
             FROM q JOIN member_identifiers i \
               ON i.program_id = q.program_id AND i.kind = q.kind AND i.value = q.value \
         ), claimed AS ( \
             INSERT INTO member_identifiers (program_id, kind, value, member_id) \
             SELECT q.program_id, q.kind, q.value, q.member_id FROM q \
             WHERE NOT EXISTS (SELECT 1 FROM existing x WHERE x.program_id = q.program_id \
                               AND x.kind = q.kind AND x.value = q.value) \
             ORDER BY q.program_id COLLATE \"C\", q.kind COLLATE \"C\", q.value COLLATE \"C\" \
             ON CONFLICT DO NOTHING \
             RETURNING program_id, kind, value, member_id \
         ), enrolled AS ( \
             INSERT INTO members (program_id, id, balance, test, created_at) \
             SELECT q.program_id, q.member_id, 0, q.test, q.created_at \
             FROM q JOIN claimed c ON c.program_id = q.program_id AND c.member_id = q.member_id \
         ) \
         SELECT program_id, kind, value, member_id FROM existing \
         UNION ALL \
         SELECT program_id, kind, value, member_id FROM claimed",
    )
    .bind(programs)
    .bind(kinds)
    .bind(values)
    .bind(ids)
    .bind(tests)
    .bind(created)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(identity_row).collect()
}

/// Locks the members in member order; returns how many exist. FOR NO KEY UPDATE excludes the
/// other commits and purges of a member, but not the foreign-key checks (FOR KEY SHARE) of a
/// duplicate that names it.
async fn lock_members(
    tx: &mut Transaction<'_, Postgres>,
    members: &BTreeSet<MemberKey>,
) -> Result<usize> {
    let (programs, ids): (Vec<&str>, Vec<&str>) = members
        .iter()
        .map(|(p, m)| (p.as_str(), m.as_str()))
        .unzip();
    // The locking clause applies to rows as the sort emits them, so they are locked in order.
    let rows = sqlx::query(
        "SELECT m.id FROM members m \
         JOIN UNNEST($1::text[], $2::text[]) AS q(program_id, id) \
           ON m.program_id = q.program_id AND m.id = q.id \
         ORDER BY m.program_id, m.id \
         FOR NO KEY UPDATE OF m",
    )
    .bind(programs)
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.len())
}

async fn read_usage(
    tx: &mut Transaction<'_, Postgres>,
    usage_keys: &HashMap<usize, (MemberKey, Vec<UsageKey>)>,
) -> Result<HashMap<MemberKey, Usage>> {
    let wanted: BTreeSet<(&str, &str, &str, &str)> = usage_keys
        .values()
        .flat_map(|((program, member), keys)| {
            keys.iter().map(move |key| {
                (
                    program.as_str(),
                    member.as_str(),
                    key.rule_id.as_str(),
                    key.period.as_str(),
                )
            })
        })
        .collect();
    let mut usage: HashMap<MemberKey, Usage> = HashMap::new();
    if wanted.is_empty() {
        return Ok(usage);
    }
    let mut programs = Vec::with_capacity(wanted.len());
    let mut members = Vec::with_capacity(wanted.len());
    let mut rules = Vec::with_capacity(wanted.len());
    let mut periods = Vec::with_capacity(wanted.len());
    for (program, member, rule, period) in wanted {
        programs.push(program);
        members.push(member);
        rules.push(rule);
        periods.push(period);
    }
    let rows = sqlx::query(
        "SELECT u.program_id, u.member_id, u.rule_id, u.period, u.count, u.points \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) \
           AS q(program_id, member_id, rule_id, period) \
         JOIN member_usage u ON u.program_id = q.program_id AND u.member_id = q.member_id \
           AND u.rule_id = q.rule_id AND u.period = q.period",
    )
    .bind(programs)
    .bind(members)
    .bind(rules)
    .bind(periods)
    .fetch_all(&mut **tx)
    .await?;
    for row in &rows {
        let member: MemberKey = (row.try_get("program_id")?, row.try_get("member_id")?);
        usage.entry(member).or_default().insert(
            UsageKey {
                rule_id: row.try_get::<String, _>("rule_id")?.as_str().into(),
                period: row.try_get("period")?,
            },
            UsageCount {
                count: row.try_get("count")?,
                points: row.try_get("points")?,
            },
        );
    }
    Ok(usage)
}

/// What a write must claim, enrol, lock and check before it writes: the fast path's, whose
/// decisions were taken on an unlocked read. Empty for a caller that holds them already.
#[derive(Default)]
struct Checks<'a> {
    /// The keys to claim, with the program and the event that claims each.
    keys: Vec<(Key, &'a str, &'a str)>,
    /// The members to enrol: identifier, new member id, test, enrolment time.
    enrolled: Option<&'a Enrolments>,
    /// The members to lock (all those of accepted items).
    locked: Option<&'a BTreeSet<MemberKey>>,
    /// The usage the decisions read (zero where there was none).
    expected: Option<&'a BTreeMap<(MemberKey, UsageKey), UsageCount>>,
}

/// Claims, enrols, locks and checks as `checks` says, then inserts the events and ledger
/// entries, adds the usage and the balances: one statement, `loyalty_commit` (one round trip,
/// whatever the number of items). Returns the positions taken from the sequence, ascending:
/// one per event and ledger entry, in the order they were decided.
async fn write(
    connection: &mut PgConnection,
    slots: &[Slot<'_>],
    decided: &Decided,
    checks: &Checks<'_>,
) -> Result<Vec<i64>> {
    let mut k_connector = Vec::with_capacity(checks.keys.len());
    let mut k_client = Vec::with_capacity(checks.keys.len());
    let mut k_test = Vec::with_capacity(checks.keys.len());
    let mut k_program = Vec::with_capacity(checks.keys.len());
    let mut k_event = Vec::with_capacity(checks.keys.len());
    for ((connector, client, test), program, event) in &checks.keys {
        k_connector.push(connector.as_str());
        k_client.push(client.as_str());
        k_test.push(*test);
        k_program.push(*program);
        k_event.push(*event);
    }
    let mut i_program = Vec::new();
    let mut i_kind = Vec::new();
    let mut i_value = Vec::new();
    let mut i_member = Vec::new();
    let mut i_test = Vec::new();
    let mut i_created = Vec::new();
    for ((program, kind, value), (member, test, at)) in checks.enrolled.into_iter().flatten() {
        i_program.push(program.as_str());
        i_kind.push(kind.as_str());
        i_value.push(value.as_str());
        i_member.push(member.as_str());
        i_test.push(*test);
        i_created.push(*at);
    }
    let (m_program, m_id): (Vec<&str>, Vec<&str>) = checks
        .locked
        .into_iter()
        .flatten()
        .map(|(p, m)| (p.as_str(), m.as_str()))
        .unzip();
    let mut v_program = Vec::new();
    let mut v_member = Vec::new();
    let mut v_rule = Vec::new();
    let mut v_period = Vec::new();
    let mut v_count = Vec::new();
    let mut v_points = Vec::new();
    for (((program, member), key), count) in checks.expected.into_iter().flatten() {
        v_program.push(program.as_str());
        v_member.push(member.as_str());
        v_rule.push(key.rule_id.as_str());
        v_period.push(key.period.as_str());
        v_count.push(count.count);
        v_points.push(count.points);
    }

    let n = slots.len();
    let mut e_ord = Vec::with_capacity(n);
    let mut e_program = Vec::with_capacity(n);
    let mut e_id = Vec::with_capacity(n);
    let mut e_connector = Vec::with_capacity(n);
    let mut e_status = Vec::with_capacity(n);
    let mut e_reason = Vec::with_capacity(n);
    let mut e_error = Vec::with_capacity(n);
    let mut e_client_id = Vec::with_capacity(n);
    let mut e_original = Vec::with_capacity(n);
    let mut e_member = Vec::with_capacity(n);
    let mut e_test = Vec::with_capacity(n);
    let mut e_received = Vec::with_capacity(n);
    let mut e_occurred = Vec::with_capacity(n);
    let mut e_points = Vec::with_capacity(n);
    let mut e_awards = Vec::with_capacity(n);
    let mut e_raw = Vec::with_capacity(n);
    let mut e_truncated = Vec::with_capacity(n);
    let mut e_mapped = Vec::with_capacity(n);
    let mut e_trace = Vec::with_capacity(n);
    let mut e_warnings = Vec::with_capacity(n);
    let lines = decided.ledgers.iter().map(Vec::len).sum();
    let mut l_ord = Vec::with_capacity(lines);
    let mut l_program = Vec::with_capacity(lines);
    let mut l_member = Vec::with_capacity(lines);
    let mut l_id = Vec::with_capacity(lines);
    let mut l_event = Vec::with_capacity(lines);
    let mut l_connector = Vec::with_capacity(lines);
    let mut l_rule = Vec::with_capacity(lines);
    let mut l_points = Vec::with_capacity(lines);
    let mut l_test = Vec::with_capacity(lines);
    let mut l_created = Vec::with_capacity(lines);
    let mut l_occurred = Vec::with_capacity(lines);
    // 1-based ranks into the array of positions: an event, then its ledger entries.
    let mut ord: i32 = 0;
    for (slot, ledger) in slots.iter().zip(&decided.ledgers) {
        let entry = &slot.entry;
        ord += 1;
        e_ord.push(ord);
        e_program.push(entry.program_id.as_str());
        e_id.push(entry.id.as_str());
        e_connector.push(entry.connector_id.as_str());
        e_status.push(entry.status.as_str());
        e_reason.push(entry.reason.as_deref());
        e_error.push(slot.error.as_deref());
        e_client_id.push(entry.client_event_id.as_deref());
        e_original.push(entry.original_event_id.as_ref().map(EventId::as_str));
        e_member.push(entry.member_id.as_ref().map(MemberId::as_str));
        e_test.push(entry.test);
        e_received.push(entry.received_at);
        e_occurred.push(entry.occurred_at);
        e_points.push(entry.points);
        e_awards.push(to_json(&entry.awards)?);
        // Kept as the engine has them: the text of the item and of the mapping's output.
        e_raw.push(entry.raw.as_str());
        e_truncated.push(entry.raw_truncated);
        e_mapped.push(entry.mapped.as_ref().map(RawJson::as_str));
        e_trace.push(entry.trace.as_ref().map(to_json).transpose()?);
        e_warnings.push(slot.warnings.as_str());
        for line in ledger {
            ord += 1;
            l_ord.push(ord);
            l_program.push(line.program_id.as_str());
            l_member.push(line.member_id.as_str());
            l_id.push(line.id.as_str());
            l_event.push(line.event_id.as_str());
            l_connector.push(line.connector_id.as_str());
            l_rule.push(line.rule_id.as_str());
            l_points.push(line.points);
            l_test.push(line.test);
            l_created.push(line.created_at);
            l_occurred.push(line.occurred_at);
        }
    }

    let increments = &decided.increments;
    let balances = &decided.balances;
    let mut u_program = Vec::with_capacity(increments.len());
    let mut u_member = Vec::with_capacity(increments.len());
    let mut u_rule = Vec::with_capacity(increments.len());
    let mut u_period = Vec::with_capacity(increments.len());
    let mut u_count = Vec::with_capacity(increments.len());
    let mut u_points = Vec::with_capacity(increments.len());
    for (((program, member), key), add) in increments {
        u_program.push(program.as_str());
        u_member.push(member.as_str());
        u_rule.push(key.rule_id.as_str());
        u_period.push(key.period.as_str());
        u_count.push(add.count);
        u_points.push(add.points);
    }

    let mut b_program = Vec::with_capacity(balances.len());
    let mut b_member = Vec::with_capacity(balances.len());
    let mut b_delta = Vec::with_capacity(balances.len());
    let mut b_test = Vec::with_capacity(balances.len());
    for ((program, member), (delta, test)) in balances {
        b_program.push(program.as_str());
        b_member.push(member.as_str());
        b_delta.push(*delta);
        b_test.push(*test);
    }

    // Outside a transaction (the fast path) the statement is its own transaction, committed at
    // the protocol's Sync; sqlx reads the answer up to the ReadyForQuery that follows the
    // commit (deferred constraint checks and WAL flush included), so a caller is answered only
    // once its items are durable.
    let positions: Vec<i64> = sqlx::query_scalar(
        "SELECT loyalty_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, \
             $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, $41, $42, $43, $44, $45, $46, \
             $47, $48, $49, $50, $51, $52, $53, $54, $55, $56, $57, $58, $59, $60, $61)",
    )
    .bind(k_connector)
    .bind(k_client)
    .bind(k_test)
    .bind(k_program)
    .bind(k_event)
    .bind(i_program)
    .bind(i_kind)
    .bind(i_value)
    .bind(i_member)
    .bind(i_test)
    .bind(i_created)
    .bind(m_program)
    .bind(m_id)
    .bind(v_program)
    .bind(v_member)
    .bind(v_rule)
    .bind(v_period)
    .bind(v_count)
    .bind(v_points)
    .bind(ord)
    .bind(e_ord)
    .bind(e_program)
    .bind(e_id)
    .bind(e_connector)
    .bind(e_status)
    .bind(e_reason)
    .bind(e_error)
    .bind(e_client_id)
    .bind(e_original)
    .bind(e_member)
    .bind(e_test)
    .bind(e_received)
    .bind(e_occurred)
    .bind(e_points)
    .bind(e_awards)
    .bind(e_raw)
    .bind(e_truncated)
    .bind(e_mapped)
    .bind(e_trace)
    .bind(e_warnings)
    .bind(l_ord)
    .bind(l_program)
    .bind(l_member)
    .bind(l_id)
    .bind(l_event)
    .bind(l_connector)
    .bind(l_rule)
    .bind(l_points)
    .bind(l_test)
    .bind(l_created)
    .bind(l_occurred)
    .bind(u_program)
    .bind(u_member)
    .bind(u_rule)
    .bind(u_period)
    .bind(u_count)
    .bind(u_points)
    .bind(b_program)
    .bind(b_member)
    .bind(b_delta)
    .bind(b_test)
    .fetch_one(&mut *connection)
    .await?;
    Ok(positions)
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
