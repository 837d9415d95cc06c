//! Purging a connector's test data, in one transaction.

use crate::error::Result;
use chrono::{DateTime, Utc};
use loyalty_core::ids::{ConnectorId, ProgramId, RuleId};
use loyalty_core::ledger::{ItemStatus, PurgeCounts};
use loyalty_core::rules::{apply_usage, Period, Usage, UsageCount, UsageKey};
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

    let lines = sqlx::query(
        "DELETE FROM ledger_entries l \
         USING UNNEST($2::text[], $3::text[]) AS d(member_id, event_id) \
         WHERE l.program_id = $1 AND l.member_id = d.member_id AND l.event_id = d.event_id \
           AND l.test \
         RETURNING l.member_id, l.rule_id, l.occurred_at, l.points",
    )
    .bind(program.as_str())
    .bind(&accepted_members)
    .bind(&accepted_ids)
    .fetch_all(&mut *tx)
    .await?;
    counts.ledger_entries = lines.len() as u64;

    // Undo each line's usage exactly as an award added it (every period), and its points.
    let mut usage: BTreeMap<String, Usage> = BTreeMap::new();
    let mut balances: BTreeMap<String, i64> = BTreeMap::new();
    for line in &lines {
        let member: String = line.try_get("member_id")?;
        let rule = RuleId::new(line.try_get::<String, _>("rule_id")?);
        let at: DateTime<Utc> = line.try_get("occurred_at")?;
        let points: i64 = line.try_get("points")?;
        let undo: Vec<(UsageKey, UsageCount)> = Period::ALL
            .iter()
            .map(|period| {
                (
                    UsageKey {
                        rule_id: rule.clone(),
                        period: period.key(at),
                    },
                    UsageCount {
                        count: -1,
                        points: -points,
                    },
                )
            })
            .collect();
        apply_usage(usage.entry(member.clone()).or_default(), &undo);
        *balances.entry(member).or_default() -= points;
    }
    if !lines.is_empty() {
        let mut u_member = Vec::new();
        let mut u_rule = Vec::new();
        let mut u_period = Vec::new();
        let mut u_count = Vec::new();
        let mut u_points = Vec::new();
        for (member, member_usage) in &usage {
            for (key, delta) in member_usage {
                u_member.push(member.as_str());
                u_rule.push(key.rule_id.as_str());
                u_period.push(key.period.as_str());
                u_count.push(delta.count);
                u_points.push(delta.points);
            }
        }
        let (b_member, b_delta): (Vec<&str>, Vec<i64>) =
            balances.iter().map(|(m, d)| (m.as_str(), *d)).unzip();
        sqlx::query(
            "WITH undone_usage AS ( \
                 UPDATE member_usage u \
                 SET count = u.count + d.count, points = u.points + d.points \
                 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) \
                   AS d(member_id, rule_id, period, count, points) \
                 WHERE u.program_id = $1 AND u.member_id = d.member_id \
                   AND u.rule_id = d.rule_id AND u.period = d.period \
             ) \
             UPDATE members m SET balance = m.balance + d.delta \
             FROM UNNEST($7::text[], $8::bigint[]) AS d(id, delta) \
             WHERE m.program_id = $1 AND m.id = d.id",
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
