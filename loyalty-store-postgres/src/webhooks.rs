//! Outbound webhooks: endpoints, and deliveries claimed by workers of any process with
//! `FOR UPDATE SKIP LOCKED` and a lease (see the migration `*_webhooks.sql`).

use crate::error::{PostgresStoreError, Result};
use crate::rows;
use crate::PostgresStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loyalty_core::ids::{MemberId, MessageId, ProgramId, WebhookId};
use loyalty_core::ledger::{Page, PageRequest};
use loyalty_core::store::StoreResult;
use loyalty_core::store::WebhookStore;
use loyalty_core::webhooks::{
    Attempt, ClaimedDelivery, Delivery, DeliveryState, EventKind, NewDelivery, Webhook,
    WebhookSecret,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

const WEBHOOK_COLUMNS: &str = "id, program_id, url, events, secrets, dispatch_cursor, created_at";
const DELIVERY_COLUMNS: &str = "id, seq, webhook_id, program_id, message_type, member_id, \
     ordering_key, ordering, body, created_at, state, next_attempt_at, attempts";

fn webhook(row: &PgRow) -> Result<Webhook> {
    let events: Vec<String> = row.try_get("events")?;
    let events = events
        .iter()
        .map(|name| {
            EventKind::parse(name)
                .ok_or_else(|| PostgresStoreError::corrupt("webhooks.events", "unknown event"))
        })
        .collect::<Result<Vec<_>>>()?;
    let secrets: serde_json::Value = row.try_get("secrets")?;
    let secrets: Vec<WebhookSecret> = serde_json::from_value(secrets)
        .map_err(|e| PostgresStoreError::json("webhooks.secrets", &e))?;
    Ok(Webhook {
        id: WebhookId::new(row.try_get::<String, _>("id")?),
        program_id: ProgramId::new(row.try_get::<String, _>("program_id")?),
        url: row.try_get("url")?,
        events,
        secrets,
        created_at: row.try_get("created_at")?,
        dispatch_cursor: row.try_get("dispatch_cursor")?,
    })
}

fn delivery(row: &PgRow) -> Result<Delivery> {
    let state: String = row.try_get("state")?;
    let state = DeliveryState::parse(&state)
        .ok_or_else(|| PostgresStoreError::corrupt("webhook_deliveries.state", "unknown state"))?;
    let attempts: serde_json::Value = row.try_get("attempts")?;
    let attempts: Vec<Attempt> = serde_json::from_value(attempts)
        .map_err(|e| PostgresStoreError::json("webhook_deliveries.attempts", &e))?;
    Ok(Delivery {
        message: NewDelivery {
            id: MessageId::new(row.try_get::<String, _>("id")?),
            webhook_id: WebhookId::new(row.try_get::<String, _>("webhook_id")?),
            program_id: ProgramId::new(row.try_get::<String, _>("program_id")?),
            message_type: row.try_get("message_type")?,
            member_id: row
                .try_get::<Option<String>, _>("member_id")?
                .map(MemberId::new),
            ordering_key: row.try_get("ordering_key")?,
            order: row.try_get("ordering")?,
            body: row.try_get("body")?,
            created_at: row.try_get("created_at")?,
        },
        state,
        next_attempt_at: row.try_get("next_attempt_at")?,
        attempts,
        seq: row.try_get("seq")?,
    })
}

pub(crate) async fn put_webhook(pool: &PgPool, webhook: &Webhook) -> Result<()> {
    let events: Vec<&str> = webhook.events.iter().map(|e| e.as_str()).collect();
    sqlx::query(
        "INSERT INTO webhooks (id, program_id, url, events, secrets, dispatch_cursor, created_at) \
         VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, events = EXCLUDED.events, \
             secrets = EXCLUDED.secrets",
    )
    .bind(webhook.id.as_str())
    .bind(webhook.program_id.as_str())
    .bind(&webhook.url)
    .bind(&events)
    .bind(rows::to_json(&webhook.secrets)?)
    .bind(webhook.dispatch_cursor)
    .bind(webhook.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn get_webhook(
    pool: &PgPool,
    program: &ProgramId,
    id: &WebhookId,
) -> Result<Option<Webhook>> {
    let row = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND program_id = $2"
    ))
    .bind(id.as_str())
    .bind(program.as_str())
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(webhook).transpose()
}

pub(crate) async fn list_webhooks(
    pool: &PgPool,
    program: Option<&ProgramId>,
) -> Result<Vec<Webhook>> {
    let rows = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks \
         WHERE $1::text IS NULL OR program_id = $1 ORDER BY created_at, id"
    ))
    .bind(program.map(|p| p.as_str()))
    .fetch_all(pool)
    .await?;
    rows.iter().map(webhook).collect()
}

pub(crate) async fn delete_webhook(
    pool: &PgPool,
    program: &ProgramId,
    id: &WebhookId,
) -> Result<bool> {
    let done = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND program_id = $2")
        .bind(id.as_str())
        .bind(program.as_str())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn enqueue(
    pool: &PgPool,
    webhook: &WebhookId,
    cursor: Option<(i64, i64)>,
    deliveries: &[NewDelivery],
) -> Result<bool> {
    let mut tx = pool.begin().await?;
    if let Some((from, to)) = cursor {
        // The row lock orders concurrent dispatchers of one endpoint; the loser sees the
        // cursor moved and stores nothing.
        let moved = sqlx::query(
            "UPDATE webhooks SET dispatch_cursor = $3 WHERE id = $1 AND dispatch_cursor = $2",
        )
        .bind(webhook.as_str())
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
    }
    if !deliveries.is_empty() {
        let column = |f: fn(&NewDelivery) -> String| deliveries.iter().map(f).collect::<Vec<_>>();
        let ids = column(|d| d.id.to_string());
        let programs = column(|d| d.program_id.to_string());
        let types = column(|d| d.message_type.clone());
        let members: Vec<Option<String>> = deliveries
            .iter()
            .map(|d| d.member_id.as_ref().map(|m| m.to_string()))
            .collect();
        let keys = column(|d| d.ordering_key.clone());
        let orders: Vec<i64> = deliveries.iter().map(|d| d.order).collect();
        let bodies = column(|d| d.body.clone());
        let created: Vec<DateTime<Utc>> = deliveries.iter().map(|d| d.created_at).collect();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, program_id, message_type, \
                 member_id, ordering_key, ordering, body, created_at, state, next_attempt_at) \
             SELECT d.id, $1, d.program_id, d.message_type, d.member_id, d.ordering_key, \
                 d.ordering, d.body, d.created_at, 'pending', d.created_at \
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::bigint[], $8::text[], $9::timestamptz[]) \
                 AS d (id, program_id, message_type, member_id, ordering_key, ordering, body, \
                 created_at) \
             ORDER BY d.ordering \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(webhook.as_str())
        .bind(&ids)
        .bind(&programs)
        .bind(&types)
        .bind(&members)
        .bind(&keys)
        .bind(&orders)
        .bind(&bodies)
        .bind(&created)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(crate) async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<ClaimedDelivery>> {
    let lease = uuid_text();
    // SKIP LOCKED: a delivery another worker is claiming right now is left to it; one whose
    // claim committed carries a running lease, which the recheck of the locked row sees.
    let rows = sqlx::query(&format!(
        "WITH due AS ( \
             SELECT d.id FROM webhook_deliveries d \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
               AND (d.leased_until IS NULL OR d.leased_until <= $1) \
               AND NOT EXISTS ( \
                   SELECT 1 FROM webhook_deliveries p \
                   WHERE p.webhook_id = d.webhook_id AND p.ordering_key = d.ordering_key \
                     AND p.state = 'pending' AND (p.ordering, p.seq) < (d.ordering, d.seq)) \
             ORDER BY d.next_attempt_at \
             LIMIT $3 \
             FOR UPDATE SKIP LOCKED) \
         UPDATE webhook_deliveries w SET lease = $4, leased_until = $2 \
         FROM due WHERE w.id = due.id \
         RETURNING {}",
        DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("w.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(now)
    .bind(lease_until)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(&lease)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let deliveries = rows.iter().map(delivery).collect::<Result<Vec<_>>>()?;
    let mut webhook_ids: Vec<&str> = deliveries
        .iter()
        .map(|d| d.message.webhook_id.as_str())
        .collect();
    webhook_ids.sort_unstable();
    webhook_ids.dedup();
    let webhooks = sqlx::query(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ANY($1)"
    ))
    .bind(&webhook_ids)
    .fetch_all(pool)
    .await?
    .iter()
    .map(webhook)
    .collect::<Result<Vec<_>>>()?;
    Ok(deliveries
        .into_iter()
        .filter_map(|delivery| {
            // An endpoint deleted since the claim took its deliveries with it.
            let webhook = webhooks
                .iter()
                .find(|w| w.id == delivery.message.webhook_id)?
                .clone();
            Some(ClaimedDelivery {
                delivery,
                webhook,
                lease: lease.clone(),
            })
        })
        .collect())
}

pub(crate) async fn record(
    pool: &PgPool,
    id: &MessageId,
    lease: &str,
    attempt: &Attempt,
    state: DeliveryState,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET attempts = attempts || jsonb_build_array($3::jsonb), \
             state = $4, next_attempt_at = $5, lease = NULL, leased_until = NULL \
         WHERE id = $1 AND lease = $2",
    )
    .bind(id.as_str())
    .bind(lease)
    .bind(rows::to_json(attempt)?)
    .bind(state.as_str())
    .bind(next_attempt_at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn list(
    pool: &PgPool,
    program: &ProgramId,
    webhook: &WebhookId,
    page: PageRequest,
) -> Result<Page<Delivery>> {
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
         WHERE webhook_id = $1 AND program_id = $2 AND seq < $3 \
         ORDER BY seq DESC LIMIT $4"
    ))
    .bind(webhook.as_str())
    .bind(program.as_str())
    .bind(page.before.unwrap_or(i64::MAX))
    .bind(crate::fetch_limit(page.limit))
    .fetch_all(pool)
    .await?;
    let items = rows.iter().map(delivery).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_fetched(items, page.limit, |d| d.seq))
}

pub(crate) async fn retry(
    pool: &PgPool,
    program: &ProgramId,
    webhook: &WebhookId,
    id: &MessageId,
    now: DateTime<Utc>,
) -> Result<Option<Delivery>> {
    let row = sqlx::query(&format!(
        "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $4, lease = NULL, \
             leased_until = NULL \
         WHERE id = $1 AND webhook_id = $2 AND program_id = $3 \
         RETURNING {DELIVERY_COLUMNS}"
    ))
    .bind(id.as_str())
    .bind(webhook.as_str())
    .bind(program.as_str())
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(delivery).transpose()
}

/// A lease: random, so that a worker can prove the claim is still its own.
fn uuid_text() -> String {
    loyalty_core::secret::generate_token("lease_")
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn put_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        Ok(put_webhook(&self.pool, webhook).await?)
    }

    async fn get_webhook(
        &self,
        program: &ProgramId,
        id: &WebhookId,
    ) -> StoreResult<Option<Webhook>> {
        Ok(get_webhook(&self.pool, program, id).await?)
    }

    async fn list_webhooks(&self, program: Option<&ProgramId>) -> StoreResult<Vec<Webhook>> {
        Ok(list_webhooks(&self.pool, program).await?)
    }

    async fn delete_webhook(&self, program: &ProgramId, id: &WebhookId) -> StoreResult<bool> {
        Ok(delete_webhook(&self.pool, program, id).await?)
    }

    async fn enqueue_deliveries(
        &self,
        webhook: &WebhookId,
        cursor: Option<(i64, i64)>,
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool> {
        self.retrying("enqueue deliveries", || {
            enqueue(&self.pool, webhook, cursor, deliveries)
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        Ok(claim(&self.pool, now, lease_until, limit).await?)
    }

    async fn record_attempt(
        &self,
        delivery: &MessageId,
        lease: &str,
        attempt: &Attempt,
        state: DeliveryState,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        Ok(record(&self.pool, delivery, lease, attempt, state, next_attempt_at).await?)
    }

    async fn list_deliveries(
        &self,
        program: &ProgramId,
        webhook: &WebhookId,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        Ok(list(&self.pool, program, webhook, page).await?)
    }

    async fn retry_delivery(
        &self,
        program: &ProgramId,
        webhook: &WebhookId,
        id: &MessageId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Delivery>> {
        Ok(retry(&self.pool, program, webhook, id, now).await?)
    }
}
