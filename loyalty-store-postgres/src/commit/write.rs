//! The write both paths end with: one call of the SQL function `loyalty_commit` (see the
//! initial migration), which claims, enrols, locks and checks what the fast path needs, then
//! inserts the events and ledger entries and adds the usage and the balances.
//!
//! The function takes one array a column. Each table's columns are gathered by one builder
//! (`KeyRows`, `EnrolmentRows`, ...), which binds them under the names of the function's
//! parameters: the call uses named notation (`loyalty_commit(k_connector => $1, ...)`), so a
//! column bound under the wrong name fails the call instead of filling another parameter of
//! the same type.

use super::decide::Decided;
use super::{Enrolment, Enrolments, Identity, Key, MemberKey, Slot};
use crate::error::{PostgresStoreError, Result};
use crate::rows::to_json;
use chrono::{DateTime, Utc};
use loyalty_core::ids::{EventId, MemberId, ProgramId};
use loyalty_core::ledger::{ItemStatus, LedgerEntry, RawJson};
use loyalty_core::rules::{UsageCount, UsageKey};
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Encode, PgConnection, Postgres, Type};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// What a write must claim, enrol, lock and check before it writes: the fast path's, whose
/// decisions were taken on an unlocked read. Empty for a caller that holds them already.
#[derive(Default)]
pub(super) struct Checks<'a> {
    /// The keys to claim.
    pub(super) keys: Vec<Claim<'a>>,
    /// The members to enrol, by identifier.
    pub(super) enrolled: Option<&'a Enrolments>,
    /// The members to lock (all those of accepted items).
    pub(super) locked: Option<&'a BTreeSet<MemberKey>>,
    /// The usage the decisions read (zero where there was none).
    pub(super) expected: Option<&'a BTreeMap<(MemberKey, UsageKey), UsageCount>>,
}

/// A key to claim, with the program and the event that claim it.
pub(super) struct Claim<'a> {
    pub(super) key: &'a Key,
    pub(super) program: &'a ProgramId,
    pub(super) event: &'a EventId,
}

/// Claims, enrols, locks and checks as `checks` says, then inserts the events and ledger
/// entries, adds the usage and the balances: one statement, `loyalty_commit` (one round trip,
/// whatever the number of items). Returns the positions taken from the sequence, ascending:
/// one per event and ledger entry, in the order they were decided.
pub(super) async fn write(
    connection: &mut PgConnection,
    slots: &[Slot<'_>],
    decided: &Decided,
    checks: &Checks<'_>,
) -> Result<Vec<i64>> {
    let mut keys = KeyRows::with_capacity(checks.keys.len());
    for claim in &checks.keys {
        keys.push(claim);
    }
    let mut enrolments = EnrolmentRows::default();
    for (identity, enrolment) in checks.enrolled.into_iter().flatten() {
        enrolments.push(identity, enrolment);
    }
    let mut locked = MemberRows::default();
    for member in checks.locked.into_iter().flatten() {
        locked.push(member);
    }
    let mut expected = UsageRows::default();
    for ((member, key), count) in checks.expected.into_iter().flatten() {
        expected.push(member, key, count);
    }

    let mut events = EventRows::with_capacity(slots.len());
    let mut ledger = LedgerRows::with_capacity(decided.ledgers.iter().map(Vec::len).sum());
    // 1-based ranks into the array of positions: an event, then its ledger entries.
    let mut purchases = PurchaseRows::default();
    let mut ord: i32 = 0;
    for (slot, lines) in slots.iter().zip(&decided.ledgers) {
        ord += 1;
        events.push(ord, slot)?;
        purchases.push(ord, slot);
        for line in lines {
            ord += 1;
            ledger.push(ord, line);
        }
    }
    let mut usage = UsageRows::with_capacity(decided.increments.len());
    for ((member, key), add) in &decided.increments {
        usage.push(member, key, add);
    }
    let mut balances = BalanceRows::with_capacity(decided.balances.len());
    for (member, (delta, test)) in &decided.balances {
        balances.push(member, *delta, *test);
    }

    let mut call = Call::new();
    keys.bind(&mut call)?;
    enrolments.bind(&mut call)?;
    locked.bind(&mut call)?;
    expected.bind(&mut call, EXPECTED_USAGE)?;
    call.bind("position_count", ord)?;
    events.bind(&mut call)?;
    ledger.bind(&mut call)?;
    usage.bind(&mut call, USAGE_INCREMENTS)?;
    balances.bind(&mut call)?;
    purchases.bind(&mut call)?;
    call.fetch(connection).await
}

/// Gives each event its position (skipping those of its ledger entries, which the caller
/// does not return).
pub(super) fn number(slots: &mut [Slot<'_>], decided: &Decided, positions: &[i64]) -> Result<()> {
    let mut next = 0;
    for (slot, ledger) in slots.iter_mut().zip(&decided.ledgers) {
        slot.entry.seq = *positions
            .get(next)
            .ok_or_else(|| PostgresStoreError::corrupt("positions", "fewer than rows"))?;
        next += 1 + ledger.len();
    }
    Ok(())
}

/// One call of `loyalty_commit`, its arguments bound by parameter name.
struct Call {
    /// `SELECT loyalty_commit(name => $1, name => $2, ...`: the same text for every call, so
    /// the statement is prepared once a connection.
    sql: String,
    arguments: PgArguments,
    count: usize,
}

impl Call {
    fn new() -> Self {
        Self {
            sql: String::from("SELECT loyalty_commit("),
            arguments: PgArguments::default(),
            count: 0,
        }
    }

    /// Binds `value` to the function's parameter `name`.
    fn bind<'q, T>(&mut self, name: &str, value: T) -> Result<()>
    where
        T: 'q + Encode<'q, Postgres> + Type<Postgres>,
    {
        self.count += 1;
        if self.count > 1 {
            self.sql.push_str(", ");
        }
        let _ = write!(self.sql, "{name} => ${}", self.count);
        self.arguments.add(value).map_err(sqlx::Error::Encode)?;
        Ok(())
    }

    /// Runs the call. Outside a transaction (the fast path) the statement is its own
    /// transaction, committed at the protocol's Sync; sqlx reads the answer up to the
    /// ReadyForQuery that follows the commit (deferred constraint checks and WAL flush
    /// included), so a caller is answered only once its items are durable.
    async fn fetch(mut self, connection: &mut PgConnection) -> Result<Vec<i64>> {
        self.sql.push(')');
        Ok(sqlx::query_scalar_with(&self.sql, self.arguments)
            .fetch_one(connection)
            .await?)
    }
}

/// `accepted_keys` rows to claim (`k_connector`, `k_client`, `k_test`, `k_program`, `k_event`).
struct KeyRows<'a> {
    connector: Vec<&'a str>,
    client: Vec<&'a str>,
    test: Vec<bool>,
    program: Vec<&'a str>,
    event: Vec<&'a str>,
}

impl<'a> KeyRows<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            connector: Vec::with_capacity(n),
            client: Vec::with_capacity(n),
            test: Vec::with_capacity(n),
            program: Vec::with_capacity(n),
            event: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, claim: &Claim<'a>) {
        self.connector.push(claim.key.connector.as_str());
        self.client.push(claim.key.client_event_id.as_str());
        self.test.push(claim.key.test);
        self.program.push(claim.program.as_str());
        self.event.push(claim.event.as_str());
    }

    fn bind(self, call: &mut Call) -> Result<()> {
        call.bind("k_connector", self.connector)?;
        call.bind("k_client", self.client)?;
        call.bind("k_test", self.test)?;
        call.bind("k_program", self.program)?;
        call.bind("k_event", self.event)
    }
}

/// Identifiers to claim and their new members (`i_program`, `i_kind`, `i_value`, `i_member`,
/// `i_test`, `i_created`): `member_identifiers` and `members` rows.
#[derive(Default)]
struct EnrolmentRows<'a> {
    program: Vec<&'a str>,
    kind: Vec<&'a str>,
    value: Vec<&'a str>,
    member: Vec<&'a str>,
    test: Vec<bool>,
    created: Vec<DateTime<Utc>>,
}

impl<'a> EnrolmentRows<'a> {
    fn push(&mut self, identity: &'a Identity, enrolment: &'a Enrolment) {
        self.program.push(identity.program.as_str());
        self.kind.push(identity.kind.as_str());
        self.value.push(identity.value.as_str());
        self.member.push(enrolment.member.as_str());
        self.test.push(enrolment.test);
        self.created.push(enrolment.created_at);
    }

    fn bind(self, call: &mut Call) -> Result<()> {
        call.bind("i_program", self.program)?;
        call.bind("i_kind", self.kind)?;
        call.bind("i_value", self.value)?;
        call.bind("i_member", self.member)?;
        call.bind("i_test", self.test)?;
        call.bind("i_created", self.created)
    }
}

/// `members` rows to lock (`m_program`, `m_id`).
#[derive(Default)]
struct MemberRows<'a> {
    program: Vec<&'a str>,
    id: Vec<&'a str>,
}

impl<'a> MemberRows<'a> {
    fn push(&mut self, member: &'a MemberKey) {
        self.program.push(member.program.as_str());
        self.id.push(member.member.as_str());
    }

    fn bind(self, call: &mut Call) -> Result<()> {
        call.bind("m_program", self.program)?;
        call.bind("m_id", self.id)
    }
}

/// The parameters of the usage the decisions read, which the call checks.
const EXPECTED_USAGE: [&str; 6] = [
    "v_program",
    "v_member",
    "v_rule",
    "v_period",
    "v_count",
    "v_points",
];
/// The parameters of the usage to add.
const USAGE_INCREMENTS: [&str; 6] = [
    "u_program",
    "u_member",
    "u_rule",
    "u_period",
    "u_count",
    "u_points",
];

/// `member_usage` rows: the usage the decisions read ([`EXPECTED_USAGE`]) or the usage to add
/// ([`USAGE_INCREMENTS`]).
#[derive(Default)]
struct UsageRows<'a> {
    program: Vec<&'a str>,
    member: Vec<&'a str>,
    rule: Vec<&'a str>,
    period: Vec<&'a str>,
    count: Vec<i64>,
    points: Vec<i64>,
}

impl<'a> UsageRows<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            program: Vec::with_capacity(n),
            member: Vec::with_capacity(n),
            rule: Vec::with_capacity(n),
            period: Vec::with_capacity(n),
            count: Vec::with_capacity(n),
            points: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, member: &'a MemberKey, key: &'a UsageKey, usage: &UsageCount) {
        self.program.push(member.program.as_str());
        self.member.push(member.member.as_str());
        self.rule.push(key.rule_id.as_str());
        self.period.push(key.period.as_str());
        self.count.push(usage.count);
        self.points.push(usage.points);
    }

    /// Binds the columns under `names`: program, member, rule, period, count, points.
    fn bind(self, call: &mut Call, names: [&str; 6]) -> Result<()> {
        let [program, member, rule, period, count, points] = names;
        call.bind(program, self.program)?;
        call.bind(member, self.member)?;
        call.bind(rule, self.rule)?;
        call.bind(period, self.period)?;
        call.bind(count, self.count)?;
        call.bind(points, self.points)
    }
}

/// `events` rows (`e_ord`, `e_program`, ... `e_warnings`), one an item.
struct EventRows<'a> {
    ord: Vec<i32>,
    program: Vec<&'a str>,
    id: Vec<&'a str>,
    connector: Vec<&'a str>,
    status: Vec<&'a str>,
    reason: Vec<Option<&'a str>>,
    error: Vec<Option<&'a str>>,
    client_id: Vec<Option<&'a str>>,
    original: Vec<Option<&'a str>>,
    member: Vec<Option<&'a str>>,
    test: Vec<bool>,
    received: Vec<DateTime<Utc>>,
    occurred: Vec<Option<DateTime<Utc>>>,
    points: Vec<i64>,
    awards: Vec<String>,
    raw: Vec<&'a str>,
    truncated: Vec<bool>,
    mapped: Vec<Option<&'a str>>,
    trace: Vec<Option<String>>,
    warnings: Vec<&'a str>,
}

impl<'a> EventRows<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            ord: Vec::with_capacity(n),
            program: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            connector: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            reason: Vec::with_capacity(n),
            error: Vec::with_capacity(n),
            client_id: Vec::with_capacity(n),
            original: Vec::with_capacity(n),
            member: Vec::with_capacity(n),
            test: Vec::with_capacity(n),
            received: Vec::with_capacity(n),
            occurred: Vec::with_capacity(n),
            points: Vec::with_capacity(n),
            awards: Vec::with_capacity(n),
            raw: Vec::with_capacity(n),
            truncated: Vec::with_capacity(n),
            mapped: Vec::with_capacity(n),
            trace: Vec::with_capacity(n),
            warnings: Vec::with_capacity(n),
        }
    }

    /// The item's log entry (with its error and warnings serialised beforehand), at rank `ord`.
    fn push(&mut self, ord: i32, slot: &'a Slot<'_>) -> Result<()> {
        let entry = &slot.entry;
        self.ord.push(ord);
        self.program.push(entry.program_id.as_str());
        self.id.push(entry.id.as_str());
        self.connector.push(entry.connector_id.as_str());
        self.status.push(entry.status.as_str());
        self.reason.push(entry.reason.as_deref());
        self.error.push(slot.error.as_deref());
        self.client_id.push(entry.client_event_id.as_deref());
        self.original
            .push(entry.original_event_id.as_ref().map(EventId::as_str));
        self.member
            .push(entry.member_id.as_ref().map(MemberId::as_str));
        self.test.push(entry.test);
        self.received.push(entry.received_at);
        self.occurred.push(entry.occurred_at);
        self.points.push(entry.points);
        self.awards.push(to_json(&entry.awards)?);
        // Kept as the engine has them: the text of the item and of the mapping's output.
        self.raw.push(entry.raw.as_str());
        self.truncated.push(entry.raw_truncated);
        self.mapped.push(entry.mapped.as_ref().map(RawJson::as_str));
        self.trace
            .push(entry.trace.as_ref().map(to_json).transpose()?);
        self.warnings.push(slot.warnings.as_str());
        Ok(())
    }

    fn bind(self, call: &mut Call) -> Result<()> {
        call.bind("e_ord", self.ord)?;
        call.bind("e_program", self.program)?;
        call.bind("e_id", self.id)?;
        call.bind("e_connector", self.connector)?;
        call.bind("e_status", self.status)?;
        call.bind("e_reason", self.reason)?;
        call.bind("e_error", self.error)?;
        call.bind("e_client_id", self.client_id)?;
        call.bind("e_original", self.original)?;
        call.bind("e_member", self.member)?;
        call.bind("e_test", self.test)?;
        call.bind("e_received", self.received)?;
        call.bind("e_occurred", self.occurred)?;
        call.bind("e_points", self.points)?;
        call.bind("e_awards", self.awards)?;
        call.bind("e_raw", self.raw)?;
        call.bind("e_truncated", self.truncated)?;
        call.bind("e_mapped", self.mapped)?;
        call.bind("e_trace", self.trace)?;
        call.bind("e_warnings", self.warnings)
    }
}

/// `ledger_entries` rows (`l_ord`, `l_program`, ... `l_occurred`).
struct LedgerRows<'a> {
    ord: Vec<i32>,
    program: Vec<&'a str>,
    member: Vec<&'a str>,
    id: Vec<&'a str>,
    event: Vec<Option<&'a str>>,
    connector: Vec<Option<&'a str>>,
    rule: Vec<Option<&'a str>>,
    points: Vec<i64>,
    test: Vec<bool>,
    created: Vec<DateTime<Utc>>,
    occurred: Vec<DateTime<Utc>>,
    available: Vec<Option<DateTime<Utc>>>,
}

impl<'a> LedgerRows<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            ord: Vec::with_capacity(n),
            program: Vec::with_capacity(n),
            member: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            event: Vec::with_capacity(n),
            connector: Vec::with_capacity(n),
            rule: Vec::with_capacity(n),
            points: Vec::with_capacity(n),
            test: Vec::with_capacity(n),
            created: Vec::with_capacity(n),
            occurred: Vec::with_capacity(n),
            available: Vec::with_capacity(n),
        }
    }

    /// The ledger entry, at rank `ord`.
    fn push(&mut self, ord: i32, line: &'a LedgerEntry) {
        self.ord.push(ord);
        self.program.push(line.program_id.as_str());
        self.member.push(line.member_id.as_str());
        self.id.push(line.id.as_str());
        self.event
            .push(line.event_id.as_ref().map(|id| id.as_str()));
        self.connector
            .push(line.connector_id.as_ref().map(|id| id.as_str()));
        self.rule.push(line.rule_id.as_ref().map(|id| id.as_str()));
        self.points.push(line.points);
        self.test.push(line.test);
        self.created.push(line.created_at);
        self.occurred.push(line.occurred_at);
        self.available.push(line.available_at);
    }

    fn bind(self, call: &mut Call) -> Result<()> {
        call.bind("l_ord", self.ord)?;
        call.bind("l_program", self.program)?;
        call.bind("l_member", self.member)?;
        call.bind("l_id", self.id)?;
        call.bind("l_event", self.event)?;
        call.bind("l_connector", self.connector)?;
        call.bind("l_rule", self.rule)?;
        call.bind("l_points", self.points)?;
        call.bind("l_test", self.test)?;
        call.bind("l_created", self.created)?;
        call.bind("l_occurred", self.occurred)?;
        call.bind("l_available", self.available)
    }
}

/// `members` balances to change (`b_program`, `b_member`, `b_delta`, `b_test`).
struct BalanceRows<'a> {
    program: Vec<&'a str>,
    member: Vec<&'a str>,
    delta: Vec<i64>,
    test: Vec<bool>,
}

impl<'a> BalanceRows<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            program: Vec::with_capacity(n),
            member: Vec::with_capacity(n),
            delta: Vec::with_capacity(n),
            test: Vec::with_capacity(n),
        }
    }

    /// The member's balance delta, and whether all its accepted items were test items.
    fn push(&mut self, member: &'a MemberKey, delta: i64, test: bool) {
        self.program.push(member.program.as_str());
        self.member.push(member.member.as_str());
        self.delta.push(delta);
        self.test.push(test);
    }

    fn bind(self, call: &mut Call) -> Result<()> {
        call.bind("b_program", self.program)?;
        call.bind("b_member", self.member)?;
        call.bind("b_delta", self.delta)?;
        call.bind("b_test", self.test)
    }
}

/// `purchases` rows (`p_ord`, … `p_amount`): the accepted purchases, by order.
#[derive(Default)]
struct PurchaseRows<'a> {
    ord: Vec<i32>,
    program: Vec<&'a str>,
    order: Vec<&'a str>,
    test: Vec<bool>,
    event: Vec<&'a str>,
    member: Vec<&'a str>,
    amount: Vec<f64>,
}

impl<'a> PurchaseRows<'a> {
    /// The item at rank `ord`, if it is an accepted purchase.
    fn push(&mut self, ord: i32, slot: &'a Slot<'_>) {
        let purchase = slot
            .candidate
            .and_then(|candidate| candidate.event.purchase.as_ref());
        let (Some(purchase), Some(member), ItemStatus::Accepted) =
            (purchase, &slot.entry.member_id, slot.entry.status)
        else {
            return;
        };
        self.ord.push(ord);
        self.program.push(slot.entry.program_id.as_str());
        self.order.push(purchase.order_id.as_str());
        self.test.push(slot.entry.test);
        self.event.push(slot.entry.id.as_str());
        self.member.push(member.as_str());
        self.amount.push(purchase.amount);
    }

    fn bind(self, call: &mut Call) -> Result<()> {
        call.bind("p_ord", self.ord)?;
        call.bind("p_program", self.program)?;
        call.bind("p_order", self.order)?;
        call.bind("p_test", self.test)?;
        call.bind("p_event", self.event)?;
        call.bind("p_member", self.member)?;
        call.bind("p_amount", self.amount)
    }
}
