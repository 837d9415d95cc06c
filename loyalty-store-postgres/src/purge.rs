//! Purging a connector's test data, in one transaction.

use crate::error::Result;
use crate::rows::{self, LEDGER_COLUMNS};
use loyalty_core::ids::{ConnectorId, ProgramId};
use loyalty_core::ledger::{ItemStatus, PurgeCounts};
use loyalty_core::reversal::usage_of;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, BTreeSet};

/// Lock order, as in a commit: the connector row (which serialises purges of one connector),
/// the test keys, the members (sorted). Commits only ever wait on keys and members, in that
/// order, so a purge and a commit cannot wait on each other in a cycle, except through a
/// duplicate naming a member the purge deletes, which the caller retries.
pub(crate) async fn purge_once(
    pool: &PgPool,
    program: &ProgramId,
    connector: &ConnectorId,
) -> Result<PurgeCounts> {
    let mut counts = PurgeCounts::default();
    let mut tx = pool.begin().await?;
    // FOR NO KEY UPDATE, so that commits' foreign-key checks on the connector go on.
    let exists =
        sqlx::query("SELECT 1 FROM connectors WHERE program_id = $1 AND id = $2 FOR NO KEY UPDATE")
            .bind(program.as_str())
            .bind(connector.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Ok(counts);
    }

    // The events to delete are those committed now; later ones stay, as if they came after.
    let doomed = sqlx::query(
        "SELECT id, member_id, client_event_id, status FROM events \
         WHERE program_id = $1 AND connector_id = $2 AND test",
    )
    .bind(program.as_str())
    .bind(connector.as_str())
    .fetch_all(&mut *tx)
    .await?;
    if doomed.is_empty() {
        return Ok(counts);
    }
    let mut ids = Vec::with_capacity(doomed.len());
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut accepted_ids = Vec::new();
    let mut accepted_keys = Vec::new();
    let mut accepted_members = Vec::new();
    for row in &doomed {
        let id: String = row.try_get("id")?;
        let member: Option<String> = row.try_get("member_id")?;
        let status: String = row.try_get("status")?;
        if let Some(member) = &member {
            touched.insert(member.clone());
        }
        if status == ItemStatus::Accepted.as_str() {
            if let (Some(client_id), Some(member)) =
                (row.try_get::<Option<String>, _>("client_event_id")?, member)
            {
                accepted_keys.push(client_id);
                accepted_members.push(member);
                accepted_ids.push(id.clone());
            }
        }
        ids.push(id);
    }

    // Keys go only if they still name the doomed event.
    sqlx::query(
        "DELETE FROM accepted_keys k \
         USING UNNEST($3::text[], $4::text[]) AS d(client_event_id, event_id) \
         WHERE k.connector_id = $2 AND k.test AND k.client_event_id = d.client_event_id \
           AND k.event_id = d.event_id AND k.program_id = $1",
    )
    .bind(program.as_str())
    .bind(connector.as_str())
    .bind(&accepted_keys)
    .bind(&accepted_ids)
    .execute(&mut *tx)
    .await?;

    let touched: Vec<String> = touched.into_iter().collect();
    sqlx::query(
        "SELECT m.id FROM members m \
         WHERE m.program_id = $1 AND m.id = ANY($2::text[]) \
         ORDER BY m.program_id, m.id FOR NO KEY UPDATE",
    )
    .bind(program.as_str())
    .bind(&touched)
    .fetch_all(&mut *tx)
    .await?;

    // The doomed events' entries (awards, and a refund's reversals), and whatever reverses
    // or expires their awards: in one statement, so that a reversal and its award go together.
    let lines = sqlx::query(
        "WITH doomed AS ( \
             SELECT l.member_id, l.id, l.kind FROM ledger_entries l \
             JOIN UNNEST($2::text[], $3::text[]) AS d(member_id, event_id) \
               ON l.member_id = d.member_id AND l.event_id = d.event_id \
             WHERE l.program_id = $1 AND l.test \
         ) \
         DELETE FROM ledger_entries l \
         WHERE l.program_id = $1 \
           AND ((l.member_id, l.id) IN (SELECT member_id, id FROM doomed) \
             OR (l.member_id, l.reverses) IN \
                  (SELECT member_id, id FROM doomed WHERE kind = 'award')) \
         RETURNING l.member_id, l.points",
    )
    .bind(program.as_str())
    .bind(&accepted_members)
    .bind(&accepted_ids)
    .fetch_all(&mut *tx)
    .await?;
    counts.ledger_entries = lines.len() as u64;

    if !lines.is_empty() {
        let mut balances: BTreeMap<String, i64> = BTreeMap::new();
        for line in &lines {
            let member: String = line.try_get("member_id")?;
            *balances.entry(member).or_default() -= line.try_get::<i64, _>("points")?;
        }
        // What is left of each member's ledger says what is left of its usage.
        let mut u_member = Vec::new();
        let mut u_rule = Vec::new();
        let mut u_period = Vec::new();
        let mut u_count = Vec::new();
        let mut u_points = Vec::new();
        for member in balances.keys() {
            let rows = sqlx::query(&format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger_entries \
                 WHERE program_id = $1 AND member_id = $2 ORDER BY seq"
            ))
            .bind(program.as_str())
            .bind(member.as_str())
            .fetch_all(&mut *tx)
            .await?;
            let entries = rows
                .iter()
                .map(rows::ledger_entry)
                .collect::<Result<Vec<_>>>()?;
            for (key, count) in usage_of(&entries) {
                u_member.push(member.clone());
                u_rule.push(key.rule_id.as_str().to_owned());
                u_period.push(key.period);
                u_count.push(count.count);
                u_points.push(count.points);
            }
        }
        let (b_member, b_delta): (Vec<&str>, Vec<i64>) =
            balances.iter().map(|(m, d)| (m.as_str(), *d)).unzip();
        sqlx::query(
            "DELETE FROM member_usage WHERE program_id = $1 AND member_id = ANY($2::text[])",
        )
        .bind(program.as_str())
        .bind(&b_member)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "WITH balances AS ( \
                 UPDATE members m SET balance = m.balance + d.delta \
                 FROM UNNEST($7::text[], $8::bigint[]) AS d(id, delta) \
                 WHERE m.program_id = $1 AND m.id = d.id \
             ) \
             INSERT INTO member_usage (program_id, member_id, rule_id, period, count, points) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bigint[], \
                 $6::bigint[])",
        )
        .bind(program.as_str())
        .bind(u_member)
        .bind(u_rule)
        .bind(u_period)
        .bind(u_count)
        .bind(u_points)
        .bind(b_member)
        .bind(b_delta)
        .execute(&mut *tx)
        .await?;
    }

    counts.events =
        sqlx::query("DELETE FROM events WHERE program_id = $1 AND id = ANY($2::text[])")
            .bind(program.as_str())
            .bind(&ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();

    // Test members left with no activity at all (any connector's); their identifiers and
    // usage go with them (ON DELETE CASCADE).
    counts.members = sqlx::query(
        "DELETE FROM members m \
         WHERE m.program_id = $1 AND m.id = ANY($2::text[]) AND m.test \
           AND NOT EXISTS (SELECT 1 FROM events e \
                           WHERE e.program_id = m.program_id AND e.member_id = m.id) \
           AND NOT EXISTS (SELECT 1 FROM ledger_entries l \
                           WHERE l.program_id = m.program_id AND l.member_id = m.id)",
    )
    .bind(program.as_str())
    .bind(&touched)
    .execute(&mut *tx)
    .await?
    .rows_affected();

    tx.commit().await?;
    Ok(counts)
}
