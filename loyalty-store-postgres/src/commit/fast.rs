//! The fast path: one unlocked read of everything the decisions need, then one write that
//! claims, enrols, locks and checks that the read still holds (or fails, writing nothing, and
//! the group goes to the locked path).

use super::decide::{
    accepted_items, claimants, decide, member_key, members_to_enrol, usage_keys_of,
};
use super::stats::{lap, Timings};
use super::write::{number, write, Checks, Claim};
use super::{unzip3, Identity, Key, MemberKey, Slot};
use crate::error::Result;
use loyalty_core::ids::{ConnectorId, EventId, MemberId, ProgramId, RuleId};
use loyalty_core::rules::{Usage, UsageCount, UsageKey};
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// What a group read without locks, at one snapshot.
pub(super) struct ReadState {
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
pub(super) async fn read_state(
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
    let (k_connectors, k_clients, k_tests) = unzip3(
        keys.iter()
            .map(|k| (k.connector.as_str(), k.client_event_id.as_str(), k.test)),
    );
    let (i_programs, i_kinds, i_values) = unzip3(
        identities
            .iter()
            .map(|i| (i.program.as_str(), i.kind.as_str(), i.value.as_str())),
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
                let key = Key {
                    connector: ConnectorId::new(a),
                    client_event_id: b,
                    test: row.try_get("t")?,
                };
                state
                    .owners
                    .insert(key, (EventId::new(event), MemberId::new(member)));
            }
            1 => {
                let (Some(value), Some(member)) = (c, d) else {
                    continue;
                };
                let identity = Identity {
                    program: ProgramId::new(a),
                    kind: b,
                    value,
                };
                state.members.insert(identity, MemberId::new(member));
            }
            _ => {
                let (Some(rule), Some(period)) = (c, d) else {
                    continue;
                };
                let member = MemberKey {
                    program: ProgramId::new(a),
                    member: MemberId::new(b),
                };
                state.usage.entry(member).or_default().insert(
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
pub(super) async fn commit_fast(
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
    for (identity, enrolment) in &enrolled {
        members.insert(identity.clone(), enrolment.member.clone());
    }
    let member_of = |index: usize| member_key(&slots[index], &members);
    let new_members: BTreeSet<MemberKey> = enrolled
        .iter()
        .map(|(identity, enrolment)| MemberKey {
            program: identity.program.clone(),
            member: enrolment.member.clone(),
        })
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
                Claim {
                    key,
                    program: &slot.batch.program_id,
                    event: &slot.entry.id,
                }
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
