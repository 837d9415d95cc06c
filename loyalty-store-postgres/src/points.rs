//! Adjustments and admin reversals: each one short transaction that locks its member's row
//! first (`FOR NO KEY UPDATE`, as commits do), so that two reversals of one event, or a
//! reversal and a commit for the member, take turns and each sees what the other wrote. The
//! arithmetic is loyalty-core's (`reversal`); this module only reads and writes.

use crate::error::{PostgresStoreError, Result};
use crate::rows::{self, to_json, LEDGER_COLUMNS};
use crate::PostgresStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loyalty_core::ids::ProgramId;
use loyalty_core::ids::{EventId, MemberId};
use loyalty_core::ledger::{ItemStatus, LedgerEntry, LogEntry};
use loyalty_core::lots::expiry_entries;
use loyalty_core::program::PointsExpiry;
use loyalty_core::reversal::{
    admin_shares, refund_shares, reversal_entries, AwardState, ReversalCause,
};
use loyalty_core::rules::{UsageCount, UsageKey};
use loyalty_core::store::PointsStore;
use loyalty_core::store::StoreResult;
use loyalty_core::store::{
    decide_refund, settle_duplicate, settle_refund, settle_unknown_order, Adjusted, Adjustment,
    CommitBatch, EventReversal, PendingItem, Prior, PurchaseFound, RefundDecision, Reversed,
};
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
    let entries = event_awards(&mut tx, program, &member, &reversal.event).await?;
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
    let balance = write_reversals(&mut tx, program, &member, &mut written, &freed).await?;
    tx.commit().await?;
    Ok(Reversed::Done {
        entries: written,
        balance,
    })
}

/// Locks the member's row; false if there is no such member.
pub(crate) async fn lock_member(
    tx: &mut PgConnection,
    program: &str,
    member: &MemberId,
) -> Result<bool> {
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

pub(crate) async fn add_to_balance(
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

/// Writes reversals of one member's awards, with the usage they free and the balance; returns
/// the balance after them. The member's row is locked by the caller.
pub(crate) async fn write_reversals(
    tx: &mut PgConnection,
    program: &str,
    member: &MemberId,
    reversals: &mut [LedgerEntry],
    freed: &[(UsageKey, UsageCount)],
) -> Result<i64> {
    for reversal in reversals.iter_mut() {
        reversal.seq = insert_reversal(&mut *tx, reversal).await?;
    }
    free_usage(&mut *tx, program, member, freed).await?;
    let total: i64 = reversals.iter().map(|e| e.points).sum();
    add_to_balance(tx, program, member, total).await
}

async fn insert_reversal(tx: &mut PgConnection, entry: &LedgerEntry) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT INTO ledger_entries (program_id, member_id, seq, id, kind, event_id, \
             connector_id, rule_id, points, reverses, reverses_seq, reason, test, created_at, \
             occurred_at) \
         VALUES ($1, $2, nextval('loyalty_seq'), $3, 'reversal', $4, $5, $6, $7, $8, \
             (SELECT a.seq FROM ledger_entries a \
              WHERE a.program_id = $1 AND a.member_id = $2 AND a.id = $8), \
             $9, $10, $11, $12) \
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

/// The newest accepted purchase of an order.
pub(crate) async fn find_purchase(
    connection: &mut PgConnection,
    program: &str,
    order_id: &str,
    test: bool,
) -> Result<Option<PurchaseFound>> {
    let row = sqlx::query(
        "SELECT event_id, member_id, amount FROM purchases \
         WHERE program_id = $1 AND order_id = $2 AND test = $3 ORDER BY seq DESC LIMIT 1",
    )
    .bind(program)
    .bind(order_id)
    .bind(test)
    .fetch_optional(&mut *connection)
    .await?;
    row.map(|row| {
        Ok(PurchaseFound {
            event: EventId::new(row.try_get::<String, _>("event_id")?),
            member: MemberId::new(row.try_get::<String, _>("member_id")?),
            amount: row.try_get("amount")?,
        })
    })
    .transpose()
}

/// One item of a refund connector's batch, in a transaction of its own: a refund is decided
/// under its purchase's member lock (so that concurrent refunds of one order, or deliveries of
/// one refund, take turns and each sees what the other took), then its event, its key, its
/// reversals, the usage they free and the balance are written together. Other items (rejected
/// or ignored before the store) are only logged.
pub(crate) async fn commit_refund_item(
    pool: &PgPool,
    batch: &CommitBatch,
    item: &PendingItem,
) -> Result<LogEntry> {
    let mut entry = item.entry.clone();
    let mut tx = pool.begin().await?;
    let Some(refund) = &item.refund else {
        entry.seq = insert_event(&mut tx, &entry).await?;
        tx.commit().await?;
        return Ok(entry);
    };
    let program = batch.program_id.as_str();
    let purchase = find_purchase(&mut tx, program, &refund.refund.order_id, batch.test).await?;
    if let Some(purchase) = &purchase {
        // Read again under the member's lock: a purge or a newer purchase of the order may
        // have committed since the first read; then the refund is decided again.
        let locked = lock_member(&mut tx, program, &purchase.member).await?;
        let again = find_purchase(&mut tx, program, &refund.refund.order_id, batch.test).await?;
        if !locked || again.as_ref() != Some(purchase) {
            return Err(PostgresStoreError::Conflict);
        }
    }
    let named = match &refund.identifier {
        Some(identifier) => Some(
            sqlx::query(
                "SELECT member_id FROM member_identifiers \
                 WHERE program_id = $1 AND kind = $2 AND value = $3",
            )
            .bind(program)
            .bind(identifier.kind.as_str())
            .bind(identifier.value.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get::<String, _>("member_id").map(MemberId::new))
            .transpose()?,
        ),
        None => None,
    };
    let prior = sqlx::query(
        "SELECT k.event_id, e.member_id FROM accepted_keys k \
         JOIN events e ON e.program_id = k.program_id AND e.id = k.event_id \
         WHERE k.connector_id = $1 AND k.client_event_id = $2 AND k.test = $3",
    )
    .bind(batch.connector_id.as_str())
    .bind(refund.client_event_id.as_str())
    .bind(batch.test)
    .fetch_optional(&mut *tx)
    .await?
    .map(|row| -> Result<Prior> {
        Ok(Prior {
            event: Some(EventId::new(row.try_get::<String, _>("event_id")?)),
            member: row
                .try_get::<Option<String>, _>("member_id")?
                .map(MemberId::new),
        })
    })
    .transpose()?;
    let mut reversals = Vec::new();
    let mut freed = Vec::new();
    match decide_refund(prior, purchase, named) {
        RefundDecision::Duplicate(prior) => settle_duplicate(&mut entry, prior),
        RefundDecision::UnknownOrder => settle_unknown_order(&mut entry),
        RefundDecision::Reverse(purchase) => {
            let entries = event_awards(&mut tx, program, &purchase.member, &purchase.event).await?;
            let awards = AwardState::of_event(&entries, &purchase.event);
            let shares = refund_shares(&awards, purchase.amount, refund.refund.amount);
            let cause = ReversalCause {
                event: Some(entry.id.clone()),
                connector: Some(batch.connector_id.clone()),
                reason: refund.refund.reason.clone(),
            };
            (reversals, freed) = reversal_entries(
                &batch.program_id,
                &awards,
                &shares,
                &cause,
                batch.received_at,
            );
            settle_refund(&mut entry, &purchase, &reversals);
        }
    }
    entry.seq = insert_event(&mut tx, &entry).await?;
    if entry.status == ItemStatus::Accepted {
        let claimed = sqlx::query(
            "INSERT INTO accepted_keys (connector_id, client_event_id, test, program_id, event_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(batch.connector_id.as_str())
        .bind(refund.client_event_id.as_str())
        .bind(batch.test)
        .bind(program)
        .bind(entry.id.as_str())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            // Taken by a delivery of the same refund meanwhile (one with no purchase lock to
            // wait on cannot be accepted, so this is rare): decided again, as a duplicate.
            return Err(PostgresStoreError::Conflict);
        }
        if let Some(member) = entry.member_id.clone() {
            write_reversals(&mut tx, program, &member, &mut reversals, &freed).await?;
        }
    }
    tx.commit().await?;
    Ok(entry)
}

/// An event's awards and whatever took from them, for the member whose row is locked.
pub(crate) async fn event_awards(
    tx: &mut PgConnection,
    program: &str,
    member: &MemberId,
    event: &EventId,
) -> Result<Vec<LedgerEntry>> {
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
    .bind(event.as_str())
    .fetch_all(&mut *tx)
    .await?;
    rows.iter().map(rows::ledger_entry).collect()
}

/// One log entry, with its position.
async fn insert_event(tx: &mut PgConnection, entry: &LogEntry) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT INTO events (program_id, id, seq, connector_id, status, reason, error, \
             client_event_id, original_event_id, member_id, test, received_at, occurred_at, \
             points, awards, raw, raw_truncated, mapped, trace, warnings) \
         VALUES ($1, $2, nextval('loyalty_seq'), $3, $4, $5, $6::json, $7, $8, $9, $10, $11, \
             $12, $13, $14::json, $15::json, $16, $17::json, $18::json, $19::json) \
         RETURNING seq",
    )
    .bind(entry.program_id.as_str())
    .bind(entry.id.as_str())
    .bind(entry.connector_id.as_str())
    .bind(entry.status.as_str())
    .bind(entry.reason.as_deref())
    .bind(entry.error.as_ref().map(to_json).transpose()?)
    .bind(entry.client_event_id.as_deref())
    .bind(entry.original_event_id.as_ref().map(|id| id.as_str()))
    .bind(entry.member_id.as_ref().map(|id| id.as_str()))
    .bind(entry.test)
    .bind(entry.received_at)
    .bind(entry.occurred_at)
    .bind(entry.points)
    .bind(to_json(&entry.awards)?)
    .bind(entry.raw.as_str())
    .bind(entry.raw_truncated)
    .bind(entry.mapped.as_ref().map(|m| m.as_str()))
    .bind(entry.trace.as_ref().map(to_json).transpose()?)
    .bind(to_json(&entry.warnings)?)
    .fetch_one(&mut *tx)
    .await?
    .try_get("seq")?)
}

/// Members with an award at or before `cutoff` that reversals and expiries have not used up.
pub(crate) async fn members_to_expire(
    pool: &PgPool,
    program: &str,
    cutoff: DateTime<Utc>,
) -> Result<Vec<MemberId>> {
    let rows = sqlx::query(
        "SELECT DISTINCT a.member_id FROM ledger_entries a \
         WHERE a.program_id = $1 AND a.kind = 'award' AND a.occurred_at <= $2 \
           AND a.points > COALESCE((SELECT sum(-t.points) FROM ledger_entries t \
                                    WHERE t.program_id = a.program_id \
                                      AND t.member_id = a.member_id AND t.reverses = a.id), 0) \
         ORDER BY a.member_id",
    )
    .bind(program)
    .bind(cutoff)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok(MemberId::new(row.try_get::<String, _>("member_id")?)))
        .collect()
}

/// The member's expiries, decided on its whole ledger under its row lock: a second sweep (in
/// this process or another) waits, then finds nothing left to expire.
pub(crate) async fn write_expiry(
    pool: &PgPool,
    program: &str,
    member: &MemberId,
    now: DateTime<Utc>,
    policy: PointsExpiry,
) -> Result<Vec<LedgerEntry>> {
    let mut tx = pool.begin().await?;
    if !lock_member(&mut tx, program, member).await? {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT {LEDGER_COLUMNS} FROM ledger_entries \
         WHERE program_id = $1 AND member_id = $2 ORDER BY seq"
    ))
    .bind(program)
    .bind(member.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let entries = rows
        .iter()
        .map(rows::ledger_entry)
        .collect::<Result<Vec<_>>>()?;
    let mut expired = expiry_entries(&entries, now, policy);
    if expired.is_empty() {
        return Ok(expired);
    }
    for entry in &mut expired {
        entry.seq = sqlx::query(
            "INSERT INTO ledger_entries (program_id, member_id, seq, id, kind, rule_id, points, \
                 reverses, reverses_seq, test, created_at, occurred_at) \
             VALUES ($1, $2, nextval('loyalty_seq'), $3, 'expiry', $4, $5, $6, \
                 (SELECT a.seq FROM ledger_entries a \
                  WHERE a.program_id = $1 AND a.member_id = $2 AND a.id = $6), \
                 $7, $8, $9) \
             RETURNING seq",
        )
        .bind(program)
        .bind(member.as_str())
        .bind(entry.id.as_str())
        .bind(entry.rule_id.as_ref().map(|id| id.as_str()))
        .bind(entry.points)
        .bind(entry.reverses.as_ref().map(|id| id.as_str()))
        .bind(entry.test)
        .bind(entry.created_at)
        .bind(entry.occurred_at)
        .fetch_one(&mut *tx)
        .await?
        .try_get("seq")?;
    }
    let total: i64 = expired.iter().map(|e| e.points).sum();
    add_to_balance(&mut tx, program, member, total).await?;
    tx.commit().await?;
    Ok(expired)
}

#[async_trait]
impl PointsStore for PostgresStore {
    async fn members_to_expire(
        &self,
        program: &ProgramId,
        cutoff: DateTime<Utc>,
    ) -> StoreResult<Vec<MemberId>> {
        Ok(members_to_expire(&self.pool, program.as_str(), cutoff).await?)
    }

    async fn write_expiry(
        &self,
        program: &ProgramId,
        member: &MemberId,
        now: DateTime<Utc>,
        policy: PointsExpiry,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let written = self
            .retrying("an expiry", || {
                write_expiry(&self.pool, program.as_str(), member, now, policy)
            })
            .await?;
        if !written.is_empty() {
            self.feed.committed(program);
        }
        Ok(written)
    }

    async fn adjust(&self, adjustment: Adjustment) -> StoreResult<Adjusted> {
        let program = adjustment.entry.program_id.clone();
        let adjusted = self
            .retrying("an adjustment", || adjust(&self.pool, adjustment.clone()))
            .await?;
        self.feed.committed(&program);
        Ok(adjusted)
    }

    async fn reverse_event(&self, reversal: EventReversal) -> StoreResult<Reversed> {
        let program = reversal.program.clone();
        let reversed = self
            .retrying("a reversal", || reverse_event(&self.pool, reversal.clone()))
            .await?;
        self.feed.committed(&program);
        Ok(reversed)
    }
}
