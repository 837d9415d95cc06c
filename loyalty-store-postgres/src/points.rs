//! Adjustments and admin reversals: each one short transaction that locks its member's row
//! first (`FOR NO KEY UPDATE`, as commits do), so that two reversals of one event, or a
//! reversal and a commit for the member, take turns and each sees what the other wrote. The
//! arithmetic is loyalty-core's (`reversal`); this module only reads and writes.

use crate::error::Result;
use crate::rows::{self, LEDGER_COLUMNS};
use loyalty_core::ids::MemberId;
use loyalty_core::ledger::LedgerEntry;
use loyalty_core::reversal::{admin_shares, reversal_entries, AwardState, ReversalCause};
use loyalty_core::rules::{UsageCount, UsageKey};
use loyalty_core::store::{Adjusted, Adjustment, EventReversal, Reversed};
use sqlx::{PgConnection, PgPool, Row};

pub(crate) async fn adjust(pool: &PgPool, adjustment: Adjustment) -> Result<Adjusted> {
    let entry = adjustment.entry;
    let program = entry.program_id.as_str();
    let mut tx = pool.begin().await?;
    if !lock_member(&mut tx, program, &entry.member_id).await? {
        return Ok(Adjusted::UnknownMember);
    }
    let key = adjustment.idempotency_key.as_deref();
    let inserted = sqlx::query(
        "INSERT INTO ledger_entries (program_id, member_id, seq, id, kind, points, reason, \
             idempotency_key, test, created_at, occurred_at) \
         VALUES ($1, $2, nextval('loyalty_seq'), $3, 'adjustment', $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (program_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING seq",
    )
    .bind(program)
    .bind(entry.member_id.as_str())
    .bind(entry.id.as_str())
    .bind(entry.points)
    .bind(entry.reason.as_deref())
    .bind(key)
    .bind(entry.test)
    .bind(entry.created_at)
    .bind(entry.occurred_at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(inserted) = inserted else {
        // The key is taken (by a transaction that committed meanwhile, if need be: the
        // insert waited for it): this adjustment again, or another one.
        let first = sqlx::query(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger_entries \
             WHERE program_id = $1 AND idempotency_key = $2"
        ))
        .bind(program)
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
        let first = rows::ledger_entry(&first)?;
        let same = first.member_id == entry.member_id
            && first.points == entry.points
            && first.reason == entry.reason;
        if !same {
            return Ok(Adjusted::KeyConflict);
        }
        let balance = balance(&mut tx, program, &first.member_id).await?;
        tx.commit().await?;
        return Ok(Adjusted::Existing {
            entry: first,
            balance,
        });
    };
    let balance = add_to_balance(&mut tx, program, &entry.member_id, entry.points).await?;
    tx.commit().await?;
    Ok(Adjusted::Created {
        entry: LedgerEntry {
            seq: inserted.try_get("seq")?,
            ..entry
        },
        balance,
    })
}

pub(crate) async fn reverse_event(pool: &PgPool, reversal: EventReversal) -> Result<Reversed> {
    let program = reversal.program.as_str();
    let mut tx = pool.begin().await?;
    let event = sqlx::query(
        "SELECT member_id, connector_id FROM events \
         WHERE program_id = $1 AND id = $2 AND status = 'accepted'",
    )
    .bind(program)
    .bind(reversal.event.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(event) = event else {
        return Ok(Reversed::UnknownEvent);
    };
    let member = MemberId::new(event.try_get::<String, _>("member_id")?);
    let connector: String = event.try_get("connector_id")?;
    lock_member(&mut tx, program, &member).await?;
    // The event's awards and whatever took from them, read under the member's lock.
    let rows = sqlx::query(&format!(
        "SELECT {LEDGER_COLUMNS} FROM ledger_entries \
         WHERE program_id = $1 AND member_id = $2 \
           AND ((kind = 'award' AND event_id = $3) \
             OR reverses IN (SELECT id FROM ledger_entries \
                             WHERE program_id = $1 AND member_id = $2 AND kind = 'award' \
                               AND event_id = $3)) \
         ORDER BY seq"
    ))
    .bind(program)
    .bind(member.as_str())
    .bind(reversal.event.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let entries = rows
        .iter()
        .map(rows::ledger_entry)
        .collect::<Result<Vec<_>>>()?;
    let awards = AwardState::of_event(&entries, &reversal.event);
    let shares = admin_shares(&awards, reversal.points);
    let cause = ReversalCause {
        event: None,
        connector: Some(loyalty_core::ids::ConnectorId::new(connector)),
        reason: Some(reversal.reason),
    };
    let (mut written, freed) =
        reversal_entries(&reversal.program, &awards, &shares, &cause, reversal.at);
    if written.is_empty() {
        return Ok(Reversed::NothingLeft);
    }
    for entry in &mut written {
        entry.seq = insert_reversal(&mut tx, entry).await?;
    }
    free_usage(&mut tx, program, &member, &freed).await?;
    let total: i64 = written.iter().map(|e| e.points).sum();
    let balance = add_to_balance(&mut tx, program, &member, total).await?;
    tx.commit().await?;
    Ok(Reversed::Done {
        entries: written,
        balance,
    })
}

/// Locks the member's row; false if there is no such member.
async fn lock_member(tx: &mut PgConnection, program: &str, member: &MemberId) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM members WHERE program_id = $1 AND id = $2 FOR NO KEY UPDATE")
            .bind(program)
            .bind(member.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some(),
    )
}

async fn balance(tx: &mut PgConnection, program: &str, member: &MemberId) -> Result<i64> {
    Ok(
        sqlx::query("SELECT balance FROM members WHERE program_id = $1 AND id = $2")
            .bind(program)
            .bind(member.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get("balance")?,
    )
}

async fn add_to_balance(
    tx: &mut PgConnection,
    program: &str,
    member: &MemberId,
    points: i64,
) -> Result<i64> {
    Ok(sqlx::query(
        "UPDATE members SET balance = balance + $3 WHERE program_id = $1 AND id = $2 \
         RETURNING balance",
    )
    .bind(program)
    .bind(member.as_str())
    .bind(points)
    .fetch_one(&mut *tx)
    .await?
    .try_get("balance")?)
}

async fn insert_reversal(tx: &mut PgConnection, entry: &LedgerEntry) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT INTO ledger_entries (program_id, member_id, seq, id, kind, event_id, \
             connector_id, rule_id, points, reverses, reason, test, created_at, occurred_at) \
         VALUES ($1, $2, nextval('loyalty_seq'), $3, 'reversal', $4, $5, $6, $7, $8, $9, $10, \
             $11, $12) \
         RETURNING seq",
    )
    .bind(entry.program_id.as_str())
    .bind(entry.member_id.as_str())
    .bind(entry.id.as_str())
    .bind(entry.event_id.as_ref().map(|id| id.as_str()))
    .bind(entry.connector_id.as_ref().map(|id| id.as_str()))
    .bind(entry.rule_id.as_ref().map(|id| id.as_str()))
    .bind(entry.points)
    .bind(entry.reverses.as_ref().map(|id| id.as_str()))
    .bind(entry.reason.as_deref())
    .bind(entry.test)
    .bind(entry.created_at)
    .bind(entry.occurred_at)
    .fetch_one(&mut *tx)
    .await?
    .try_get("seq")?)
}

/// Subtracts what a reversal freed from the member's usage rows (which exist: the award
/// added to every one of them).
async fn free_usage(
    tx: &mut PgConnection,
    program: &str,
    member: &MemberId,
    freed: &[(UsageKey, UsageCount)],
) -> Result<()> {
    let rules: Vec<&str> = freed.iter().map(|(k, _)| k.rule_id.as_str()).collect();
    let periods: Vec<&str> = freed.iter().map(|(k, _)| k.period.as_str()).collect();
    let counts: Vec<i64> = freed.iter().map(|(_, c)| c.count).collect();
    let points: Vec<i64> = freed.iter().map(|(_, c)| c.points).collect();
    sqlx::query(
        "UPDATE member_usage u SET count = u.count + d.count, points = u.points + d.points \
         FROM UNNEST($3::text[], $4::text[], $5::bigint[], $6::bigint[]) \
           AS d(rule_id, period, count, points) \
         WHERE u.program_id = $1 AND u.member_id = $2 AND u.rule_id = d.rule_id \
           AND u.period = d.period",
    )
    .bind(program)
    .bind(member.as_str())
    .bind(&rules)
    .bind(&periods)
    .bind(&counts)
    .bind(&points)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
