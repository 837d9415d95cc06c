//! Group commit and the commit algorithm (the crate documentation explains both).

use crate::error::{PostgresStoreError, Result};
use crate::rows::to_json;
use crate::PostgresOptions;
use chrono::{DateTime, Utc};
use loyalty_core::error::StoreError;
use loyalty_core::ids::{EventId, MemberId};
use loyalty_core::ledger::{LedgerEntry, LogEntry};
use loyalty_core::rules::{apply_usage, Usage, UsageCount, UsageKey};
use loyalty_core::store::{
    settle_accepted, settle_duplicate, settle_unknown_member, Candidate, CommitBatch, StoreResult,
};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgPool, Postgres, Row, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

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
) {
    let mut committer = Committer {
        pool,
        options,
        connection: None,
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
        let mut slots = prepare(batches)?;
        if self.connection.is_none() {
            self.connection = Some(self.pool.acquire().await?);
        }
        let outcome = match self.connection.as_mut().expect("set above").begin().await {
            Ok(tx) => Some(commit_slots(tx, &mut slots).await),
            // The kept connection died while idle (a server restart, a proxy's timeout).
            // Nothing was sent, so a fresh connection may simply try again.
            Err(error) if is_broken_connection(&error) => None,
            Err(error) => Some(Err(error.into())),
        };
        let outcome = match outcome {
            Some(outcome) => outcome,
            None => {
                self.discard_connection();
                let connection = self.connection.insert(self.pool.acquire().await?);
                commit_slots(connection.begin().await?, &mut slots).await
            }
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

/// One item of the merged batches, with what can be prepared before the transaction.
struct Slot<'a> {
    batch: &'a CommitBatch,
    /// Which batch of the group.
    group_index: usize,
    entry: LogEntry,
    candidate: Option<&'a Candidate>,
    identity: Option<Identity>,
    key: Option<Key>,
    raw: String,
    mapped: Option<String>,
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
                raw: to_json(&entry.raw)?,
                mapped: entry.mapped.as_ref().map(to_json).transpose()?,
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
async fn commit_slots(mut tx: Transaction<'_, Postgres>, slots: &mut [Slot<'_>]) -> Result<()> {
    // Phase 1, only for batches that do not enrol: whether their members exist decides whether
    // their items may be accepted, hence whether they claim their keys. A read: enrolling now
    // would also enrol for items that turn out duplicates.
    let lookups: BTreeSet<Identity> = slots
        .iter()
        .filter(|s| !s.batch.enroll_unknown_members)
        .filter_map(|s| s.identity.clone())
        .collect();
    let mut members = find_members(&mut tx, &lookups).await?;

    // Phase 2: claim the keys, in key order. The claimant of a key is the first item that may
    // be accepted; earlier items with the key are ignored (unknown member), later ones are its
    // duplicates, as they would be one by one.
    let mut claimants: BTreeMap<Key, usize> = BTreeMap::new();
    let mut keys: BTreeSet<Key> = BTreeSet::new();
    for (index, slot) in slots.iter().enumerate() {
        if let (Some(key), Some(identity)) = (&slot.key, &slot.identity) {
            keys.insert(key.clone());
            if slot.batch.enroll_unknown_members || members.contains_key(identity) {
                claimants.entry(key.clone()).or_insert(index);
            }
        }
    }
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
    let accepted: BTreeSet<usize> = claimants
        .iter()
        .filter(|(key, _)| claimed.contains(*key))
        .map(|(_, index)| *index)
        .collect();

    // Phase 3: the members of accepted items, enrolling the unknown ones (in identifier order).
    let mut wanted: BTreeMap<Identity, (MemberId, bool, DateTime<Utc>)> = BTreeMap::new();
    for &index in &accepted {
        let slot = &slots[index];
        let identity = slot.identity.as_ref().expect("a candidate");
        if !members.contains_key(identity) {
            wanted.entry(identity.clone()).or_insert_with(|| {
                (
                    MemberId::generate(),
                    slot.batch.test,
                    slot.batch.received_at,
                )
            });
        }
    }
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
    let member_of = |index: usize| -> MemberKey {
        let slot = &slots[index];
        let member = &members[slot.identity.as_ref().expect("a candidate")];
        (
            slot.batch.program_id.as_str().to_owned(),
            member.as_str().to_owned(),
        )
    };
    let locked: BTreeSet<MemberKey> = accepted.iter().map(|&index| member_of(index)).collect();
    if !locked.is_empty() && lock_members(&mut tx, &locked).await? != locked.len() {
        // A member found above was purged since.
        return Err(PostgresStoreError::Conflict);
    }
    let usage_keys: HashMap<usize, (MemberKey, Vec<UsageKey>)> = accepted
        .iter()
        .map(|&index| {
            let slot = &slots[index];
            let at = slot.candidate.expect("a candidate").occurred_at;
            (index, (member_of(index), slot.batch.rules.usage_keys(at)))
        })
        .collect();
    let mut usage = read_usage(&mut tx, &usage_keys).await?;

    // Phase 5: decide, item by item, in order; an award's usage counts for the next item.
    let mut ledgers: Vec<Vec<LedgerEntry>> = vec![Vec::new(); slots.len()];
    let mut increments: BTreeMap<(MemberKey, UsageKey), UsageCount> = BTreeMap::new();
    let mut balances: BTreeMap<MemberKey, (i64, bool)> = BTreeMap::new();
    for index in 0..slots.len() {
        let Some(key) = slots[index].key.clone() else {
            continue;
        };
        let claimant = claimants.get(&key).filter(|_| claimed.contains(&key));
        if let Some((original, member)) = owners.get(&key).filter(|_| claimant.is_none()) {
            settle_duplicate(
                &mut slots[index].entry,
                original.clone(),
                Some(member.clone()),
            );
            continue;
        }
        match claimant {
            Some(&claimant) if claimant < index => {
                let original = slots[claimant].entry.id.clone();
                let member = slots[claimant].entry.member_id.clone();
                settle_duplicate(&mut slots[index].entry, original, member);
            }
            Some(&claimant) if claimant == index => {
                let (member_key, keys) = &usage_keys[&index];
                let member_usage = usage.entry(member_key.clone()).or_default();
                let view: Usage = keys
                    .iter()
                    .filter_map(|k| member_usage.get(k).map(|count| (k.clone(), *count)))
                    .collect();
                let member = MemberId::new(member_key.1.as_str());
                let slot = &mut slots[index];
                let candidate = slot.candidate.expect("a candidate");
                let (evaluation, ledger) = settle_accepted(
                    &mut slot.entry,
                    candidate,
                    &member,
                    &slot.batch.rules,
                    &view,
                );
                apply_usage(member_usage, &evaluation.usage_increments);
                for (usage_key, add) in evaluation.usage_increments {
                    let count = increments
                        .entry((member_key.clone(), usage_key))
                        .or_default();
                    count.count += add.count;
                    count.points += add.points;
                }
                let balance = balances.entry(member_key.clone()).or_insert((0, true));
                balance.0 += slot.entry.points;
                balance.1 &= slot.batch.test;
                ledgers[index] = ledger;
            }
            _ => settle_unknown_member(&mut slots[index].entry),
        }
    }

    // Phase 6: every write in one statement, which also numbers the events and ledger entries
    // (while the members are locked, so that a member's activity is in the order it happened).
    let positions = write(&mut tx, slots, &ledgers, &increments, &balances).await?;
    // The events' positions, skipping those of the ledger entries (which are not returned).
    let mut next = 0;
    for (slot, ledger) in slots.iter_mut().zip(&ledgers) {
        slot.entry.seq = *positions
            .get(next)
            .ok_or_else(|| PostgresStoreError::corrupt("positions", "fewer than rows"))?;
        next += 1 + ledger.len();
    }
    tx.commit().await?;
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

/// Inserts the events and ledger entries, adds the usage and the balances, in one statement
/// (one round trip, whatever the number of items). Returns the positions taken from the
/// sequence, ascending: one per event and ledger entry, in the order they were decided.
async fn write(
    tx: &mut Transaction<'_, Postgres>,
    slots: &[Slot<'_>],
    ledgers: &[Vec<LedgerEntry>],
    increments: &BTreeMap<(MemberKey, UsageKey), UsageCount>,
    balances: &BTreeMap<MemberKey, (i64, bool)>,
) -> Result<Vec<i64>> {
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
    let lines = ledgers.iter().map(Vec::len).sum();
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
    for (slot, ledger) in slots.iter().zip(ledgers) {
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
        e_raw.push(slot.raw.as_str());
        e_truncated.push(entry.raw_truncated);
        e_mapped.push(slot.mapped.as_deref());
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

    // Data-modifying CTEs all run, referenced or not; `positions` is evaluated once.
    let positions: Vec<i64> = sqlx::query_scalar(
        "WITH positions AS ( \
             SELECT ARRAY(SELECT nextval('loyalty_seq') FROM generate_series(1, $1::int) \
                          ORDER BY 1) AS seqs \
         ), new_events AS ( \
             INSERT INTO events (program_id, id, seq, connector_id, status, reason, error, \
                 client_event_id, original_event_id, member_id, test, received_at, occurred_at, \
                 points, awards, raw, raw_truncated, mapped, trace, warnings) \
             SELECT q.program_id, q.id, p.seqs[q.ord], q.connector_id, q.status, q.reason, \
                 q.error::json, q.client_event_id, q.original_event_id, q.member_id, q.test, \
                 q.received_at, q.occurred_at, q.points, q.awards::json, q.raw::json, \
                 q.raw_truncated, q.mapped::json, q.trace::json, q.warnings::json \
             FROM positions p, UNNEST($2::int[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
                 $12::bool[], $13::timestamptz[], $14::timestamptz[], $15::bigint[], \
                 $16::text[], $17::text[], $18::bool[], $19::text[], $20::text[], $21::text[]) \
               AS q(ord, program_id, id, connector_id, status, reason, error, client_event_id, \
                 original_event_id, member_id, test, received_at, occurred_at, points, awards, \
                 raw, raw_truncated, mapped, trace, warnings) \
         ), new_ledger AS ( \
             INSERT INTO ledger_entries (program_id, member_id, seq, id, event_id, connector_id, \
                 rule_id, points, test, created_at, occurred_at) \
             SELECT q.program_id, q.member_id, p.seqs[q.ord], q.id, q.event_id, q.connector_id, \
                 q.rule_id, q.points, q.test, q.created_at, q.occurred_at \
             FROM positions p, UNNEST($22::int[], $23::text[], $24::text[], $25::text[], \
                 $26::text[], $27::text[], $28::text[], $29::bigint[], $30::bool[], \
                 $31::timestamptz[], $32::timestamptz[]) \
               AS q(ord, program_id, member_id, id, event_id, connector_id, rule_id, points, \
                 test, created_at, occurred_at) \
         ), new_usage AS ( \
             INSERT INTO member_usage AS u (program_id, member_id, rule_id, period, count, points) \
             SELECT * FROM UNNEST($33::text[], $34::text[], $35::text[], $36::text[], \
                 $37::bigint[], $38::bigint[]) \
             ON CONFLICT (program_id, member_id, rule_id, period) DO UPDATE \
                 SET count = u.count + EXCLUDED.count, points = u.points + EXCLUDED.points \
         ), new_balances AS ( \
             UPDATE members m SET balance = m.balance + d.delta, test = m.test AND d.test \
             FROM UNNEST($39::text[], $40::text[], $41::bigint[], $42::bool[]) \
               AS d(program_id, id, delta, test) \
             WHERE m.program_id = d.program_id AND m.id = d.id \
         ) \
         SELECT seqs FROM positions",
    )
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
    .fetch_one(&mut **tx)
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
