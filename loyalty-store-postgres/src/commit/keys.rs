//! The rows a commit claims and locks, named: idempotency keys, identifiers and members. A
//! commit locks them in one global order, keys, then identifiers, then members, each sorted
//! bytewise (the columns are `COLLATE "C"`), and takes that order from these types: their
//! derived `Ord` compares the fields in declaration order, each id newtype compares its text as
//! `str` does (bytewise), so a `BTreeSet` of them iterates in the order the SQL sorts and locks.

use chrono::{DateTime, Utc};
use loyalty_core::ids::{ConnectorId, MemberId, ProgramId};
use std::collections::BTreeMap;

/// An idempotency key: the primary key of `accepted_keys`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Key {
    pub(super) connector: ConnectorId,
    pub(super) client_event_id: String,
    pub(super) test: bool,
}

/// An identifier within its program: the primary key of `member_identifiers`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Identity {
    pub(super) program: ProgramId,
    pub(super) kind: String,
    pub(super) value: String,
}

/// A member: the primary key of `members`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct MemberKey {
    pub(super) program: ProgramId,
    pub(super) member: MemberId,
}

/// The member to enrol for an identifier.
#[derive(Clone, Debug)]
pub(super) struct Enrolment {
    pub(super) member: MemberId,
    pub(super) test: bool,
    pub(super) created_at: DateTime<Utc>,
}

/// The members to enrol, by identifier (so in lock order).
pub(super) type Enrolments = BTreeMap<Identity, Enrolment>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    /// Texts whose bytewise order differs from a case-insensitive or a locale's order, and
    /// prefixes of one another.
    const TEXTS: [&str; 10] = [
        "",
        "a",
        "A",
        "B",
        "aa",
        "a b",
        "a\u{0}",
        "z",
        "é",
        "\u{10000}",
    ];

    fn pairs() -> impl Iterator<Item = (&'static str, &'static str)> {
        TEXTS
            .iter()
            .flat_map(|a| TEXTS.iter().map(move |b| (*a, *b)))
    }

    /// The lock order is the order the tuples of strings had: each field compared in turn,
    /// bytewise.
    #[test]
    fn keys_sort_as_their_text_tuples() {
        for (a, b) in pairs() {
            for (x, y) in pairs() {
                for (s, t) in [(false, false), (false, true), (true, false)] {
                    let key = |c: &str, i: &str, t: bool| Key {
                        connector: ConnectorId::new(c),
                        client_event_id: i.to_owned(),
                        test: t,
                    };
                    assert_eq!(
                        key(a, x, s).cmp(&key(b, y, t)),
                        (a, x, s).cmp(&(b, y, t)),
                        "{a:?} {x:?} {s} / {b:?} {y:?} {t}"
                    );
                }
                let identity = |p: &str, k: &str, v: &str| Identity {
                    program: ProgramId::new(p),
                    kind: k.to_owned(),
                    value: v.to_owned(),
                };
                assert_eq!(
                    identity(a, x, "v").cmp(&identity(b, y, "v")),
                    (a, x, "v").cmp(&(b, y, "v"))
                );
                assert_eq!(
                    identity("p", a, x).cmp(&identity("p", b, y)),
                    ("p", a, x).cmp(&("p", b, y))
                );
                let member = |p: &str, m: &str| MemberKey {
                    program: ProgramId::new(p),
                    member: MemberId::new(m),
                };
                assert_eq!(member(a, x).cmp(&member(b, y)), (a, x).cmp(&(b, y)));
            }
        }
        assert_eq!("a".cmp("B"), Ordering::Greater, "bytewise, not by case");
    }
}
