//! The locked path, after the fast path lost a race: one transaction that finds members, claims
//! keys, enrols and locks members in the global lock order, reads usage under those locks, and
//! only then decides and writes.

use super::decide::{
    accepted_items, claimants, decide, member_key, members_to_enrol, usage_keys_of,
};
use super::stats::{lap, Timings};
use super::write::{number, write, Checks};
use super::{unzip3, Enrolments, Identity, Key, MemberKey, Slot};
use crate::error::{PostgresStoreError, Result};
use loyalty_core::ids::{ConnectorId, EventId, MemberId, ProgramId};
use loyalty_core::rules::{Usage, UsageCount, UsageKey};
use sqlx::{Postgres, Row, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// Commits the prepared items in `tx`, settling their entries.
pub(super) async fn commit_slots(
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

async fn find_members(
    tx: &mut Transaction<'_, Postgres>,
    identities: &BTreeSet<Identity>,
) -> Result<HashMap<Identity, MemberId>> {
    if identities.is_empty() {
        return Ok(HashMap::new());
    }
    let (programs, kinds, values) = unzip3(
        identities
            .iter()
            .map(|i| (i.program.as_str(), i.kind.as_str(), i.value.as_str())),
    );
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
        Identity {
            program: ProgramId::new(row.try_get::<String, _>("program_id")?),
            kind: row.try_get("kind")?,
            value: row.try_get("value")?,
        },
        MemberId::new(row.try_get::<String, _>("member_id")?),
    ))
}

fn key_row(row: &sqlx::postgres::PgRow) -> Result<Key> {
    Ok(Key {
        connector: ConnectorId::new(row.try_get::<String, _>("connector_id")?),
        client_event_id: row.try_get("client_event_id")?,
        test: row.try_get("test")?,
    })
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
        connectors.push(key.connector.as_str());
        client_ids.push(key.client_event_id.as_str());
        tests.push(key.test);
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
        let key = key_row(row)?;
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
    let (connectors, client_ids, tests) = unzip3(
        keys.iter()
            .map(|k| (k.connector.as_str(), k.client_event_id.as_str(), k.test)),
    );
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
                key_row(row)?,
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
    wanted: &Enrolments,
) -> Result<HashMap<Identity, MemberId>> {
    let mut programs = Vec::with_capacity(wanted.len());
    let mut kinds = Vec::with_capacity(wanted.len());
    let mut values = Vec::with_capacity(wanted.len());
    let mut ids = Vec::with_capacity(wanted.len());
    let mut tests = Vec::with_capacity(wanted.len());
    let mut created = Vec::with_capacity(wanted.len());
    for (identity, enrolment) in wanted {
        programs.push(identity.program.as_str());
        kinds.push(identity.kind.as_str());
        values.push(identity.value.as_str());
        ids.push(enrolment.member.as_str());
        tests.push(enrolment.test);
        created.push(enrolment.created_at);
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
        .map(|m| (m.program.as_str(), m.member.as_str()))
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
        .flat_map(|(member, keys)| {
            keys.iter().map(move |key| {
                (
                    member.program.as_str(),
                    member.member.as_str(),
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
        let member = MemberKey {
            program: ProgramId::new(row.try_get::<String, _>("program_id")?),
            member: MemberId::new(row.try_get::<String, _>("member_id")?),
        };
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
