//! The write both paths end with: one call of the SQL function `loyalty_commit` (see the
//! initial migration), which claims, enrols, locks and checks what the fast path needs, then
//! inserts the events and ledger entries and adds the usage and the balances.

use super::decide::Decided;
use super::{Enrolments, Key, MemberKey, Slot};
use crate::error::{PostgresStoreError, Result};
use crate::rows::to_json;
use loyalty_core::ids::{EventId, MemberId};
use loyalty_core::ledger::RawJson;
use loyalty_core::rules::{UsageCount, UsageKey};
use sqlx::PgConnection;
use std::collections::{BTreeMap, BTreeSet};

/// What a write must claim, enrol, lock and check before it writes: the fast path's, whose
/// decisions were taken on an unlocked read. Empty for a caller that holds them already.
#[derive(Default)]
pub(super) struct Checks<'a> {
    /// The keys to claim, with the program and the event that claims each.
    pub(super) keys: Vec<(Key, &'a str, &'a str)>,
    /// The members to enrol: identifier, new member id, test, enrolment time.
    pub(super) enrolled: Option<&'a Enrolments>,
    /// The members to lock (all those of accepted items).
    pub(super) locked: Option<&'a BTreeSet<MemberKey>>,
    /// The usage the decisions read (zero where there was none).
    pub(super) expected: Option<&'a BTreeMap<(MemberKey, UsageKey), UsageCount>>,
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
