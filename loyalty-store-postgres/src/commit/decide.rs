//! The decisions: which item claims each key, which items are accepted, which members to
//! enrol, and each item's outcome in order (duplicate, ignored for want of a member, or
//! accepted with its awards, each award's usage counting for the member's next item). In
//! memory and without I/O, on what a path read: the fast and the locked path decide alike, so
//! only what they read differs.

use super::{Enrolment, Enrolments, Identity, Key, MemberKey, Slot};
use loyalty_core::ids::{EventId, MemberId};
use loyalty_core::ledger::LedgerEntry;
use loyalty_core::rules::{apply_usage, Usage, UsageCount, UsageKey};
use loyalty_core::store::{
    settle_accepted, settle_duplicate, settle_unknown_member, Decision, Prior,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A new member (id, test flag, enrolment time) for each identifier of an accepted item that
/// has no member yet: the fast and the locked path decide enrolments alike.
pub(super) fn members_to_enrol(
    slots: &[Slot<'_>],
    accepted: &BTreeSet<usize>,
    members: &HashMap<Identity, MemberId>,
) -> Enrolments {
    let mut enrolments = Enrolments::new();
    for &index in accepted {
        let slot = &slots[index];
        let identity = slot.identity.as_ref().expect("a candidate");
        if !members.contains_key(identity) {
            enrolments
                .entry(identity.clone())
                .or_insert_with(|| Enrolment {
                    member: MemberId::generate(),
                    test: slot.batch.test,
                    created_at: slot.batch.received_at,
                });
        }
    }
    enrolments
}

/// What the decisions of a group wrote down.
pub(super) struct Decided {
    /// Each item's ledger entries.
    pub(super) ledgers: Vec<Vec<LedgerEntry>>,
    /// The usage to add, summed per member and key.
    pub(super) increments: BTreeMap<(MemberKey, UsageKey), UsageCount>,
    /// Each member's balance delta, and whether all its accepted items were test items.
    pub(super) balances: BTreeMap<MemberKey, (i64, bool)>,
}

/// The claimant of each key: the first item with it that may be accepted (its batch enrols
/// unknown members, or its member exists). Earlier items with the key are ignored (no
/// member), later ones are its duplicates, as they would be one by one.
pub(super) fn claimants(
    slots: &[Slot<'_>],
    members: &HashMap<Identity, MemberId>,
) -> BTreeMap<Key, usize> {
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
pub(super) fn accepted_items(
    claimants: &BTreeMap<Key, usize>,
    claimed: &BTreeSet<Key>,
) -> BTreeSet<usize> {
    claimants
        .iter()
        .filter(|(key, _)| claimed.contains(*key))
        .map(|(_, index)| *index)
        .collect()
}

/// The member of a candidate item whose member is known.
pub(super) fn member_key(slot: &Slot<'_>, members: &HashMap<Identity, MemberId>) -> MemberKey {
    MemberKey {
        program: slot.batch.program_id.clone(),
        member: members[slot.identity.as_ref().expect("a candidate")].clone(),
    }
}

/// For each accepted item, its member and the usage keys its rules read at its time.
pub(super) fn usage_keys_of(
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

/// Settles every item, in order, by loyalty-core's decision: a duplicate of an earlier owner or
/// claimant, accepted (its key's claimant: the rules are evaluated on its member's usage, to
/// which each award adds for the next item of the member), or ignored (no member).
pub(super) fn decide(
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
        let claimant = claimants
            .get(&key)
            .copied()
            .filter(|_| claimed.contains(&key));
        // What holds the key: an earlier item of the group that claimed it, else an accepted
        // event stored before (a later claimant has not claimed it yet, in item order).
        let prior = match claimant {
            Some(claimant) if claimant < index => Some(Prior {
                event: Some(slots[claimant].entry.id.clone()),
                member: slots[claimant].entry.member_id.clone(),
            }),
            Some(_) => None,
            None => owners.get(&key).map(|(original, member)| Prior {
                event: Some(original.clone()),
                member: Some(member.clone()),
            }),
        };
        // Enrolments were made before deciding (`members_to_enrol`): the claimant has its
        // member; any other item without an owner could not have one.
        let member = (claimant == Some(index)).then(|| usage_keys[&index].0.member.clone());
        match loyalty_core::store::decide(prior, member, false) {
            Decision::Duplicate(prior) => settle_duplicate(&mut slots[index].entry, prior),
            Decision::UnknownMember => settle_unknown_member(&mut slots[index].entry),
            Decision::Accept { .. } => {
                let (member_key, _) = &usage_keys[&index];
                // The member's usage as read for the batch, plus what earlier items of the
                // batch added: evaluation looks up only the keys it needs.
                let member_usage = usage.entry(member_key.clone()).or_default();
                let slot = &mut slots[index];
                let candidate = slot.candidate.expect("a candidate");
                let (evaluation, ledger) = settle_accepted(
                    &mut slot.entry,
                    candidate,
                    &member_key.member,
                    &slot.batch.rules,
                    member_usage,
                );
                apply_usage(member_usage, &evaluation.usage_increments);
                for (usage_key, add) in evaluation.usage_increments {
                    decided
                        .increments
                        .entry((member_key.clone(), usage_key))
                        .or_default()
                        .add(add);
                }
                let balance = decided
                    .balances
                    .entry(member_key.clone())
                    .or_insert((0, true));
                balance.0 += slot.entry.points;
                balance.1 &= slot.batch.test;
                decided.ledgers[index] = ledger;
            }
        }
    }
    decided
}
