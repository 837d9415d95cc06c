//! The dispatcher: turns the change feed into deliveries. Each endpoint keeps a cursor over
//! its program's feed; the deliveries for the changes after it and the cursor's new place are
//! stored together ([`crate::store::WebhookStore::enqueue_deliveries`]). The feed row written in the
//! change's own transaction is therefore the outbox: a committed change is never lost, never
//! sent before it is committed, and dispatched once even when several processes dispatch.

use super::Engine;
use crate::error::Result;
use crate::feed::{Change, ChangeBody, ChangeKind, FeedPosition, MAX_FEED_PAGE};
use crate::ids::{ProgramId, WebhookId};
use crate::webhooks::{message_id, EventKind, NewDelivery, Webhook};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// What one dispatch pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Deliveries created.
    pub deliveries: usize,
    /// Some endpoint is behind by more than one read: dispatch again at once.
    pub more: bool,
    /// Some endpoint's cursor was older than the feed keeps: changes were missed.
    pub missed: bool,
}

/// A delivery's body: `{type, timestamp, data}`, `data` the stream message's object.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: DateTime<Utc>,
    data: &'a RawValue,
}

impl Engine {
    /// Where a new endpoint's dispatch starts: the program's feed head (it gets the changes
    /// committed after its creation).
    pub(crate) async fn webhook_start_cursor(&self, program: &ProgramId) -> Result<FeedPosition> {
        Ok(self.store.feed_head(program).await?)
    }

    /// One pass over every endpoint of every program: reads each program's feed once from
    /// its slowest endpoint's cursor (at most [`MAX_FEED_PAGE`] changes) and stores each
    /// endpoint's deliveries with its new cursor.
    pub async fn dispatch_webhooks(&self) -> Result<DispatchReport> {
        let mut by_program: BTreeMap<ProgramId, Vec<Webhook>> = BTreeMap::new();
        for webhook in self.store.list_webhooks(None).await? {
            by_program
                .entry(webhook.program_id.clone())
                .or_default()
                .push(webhook);
        }
        let mut report = DispatchReport::default();
        for (program, webhooks) in by_program {
            let from = webhooks
                .iter()
                .map(|w| w.dispatch_cursor)
                .min()
                .unwrap_or_default();
            let page = self
                .store
                .changes_after(&program, from, None, MAX_FEED_PAGE)
                .await?;
            report.missed |= page.missed;
            report.more |= page.changes.len() >= MAX_FEED_PAGE;
            let Some(last) = page.changes.last().map(|c| c.position) else {
                continue;
            };
            let bodies: Vec<(EventKind, String)> = page.changes.iter().map(body_of).collect();
            for webhook in &webhooks {
                if webhook.dispatch_cursor >= last {
                    continue;
                }
                let deliveries: Vec<NewDelivery> = page
                    .changes
                    .iter()
                    .zip(&bodies)
                    .filter(|(change, (kind, _))| {
                        change.position > webhook.dispatch_cursor && webhook.subscribes_to(*kind)
                    })
                    .map(|(change, (kind, body))| delivery(&webhook.id, change, *kind, body))
                    .collect();
                let count = deliveries.len();
                if self
                    .store
                    .enqueue_deliveries(
                        &webhook.id,
                        Some((webhook.dispatch_cursor, last)),
                        &deliveries,
                    )
                    .await?
                {
                    report.deliveries += count;
                }
            }
        }
        Ok(report)
    }
}

fn body_of(change: &Change) -> (EventKind, String) {
    let (kind, timestamp) = match &change.body {
        ChangeBody::Ledger(ledger) => (EventKind::MemberPointsChanged, ledger.entry.created_at),
        ChangeBody::Event(event) => (EventKind::EventLogged, event.0.received_at),
    };
    debug_assert_eq!(
        kind == EventKind::MemberPointsChanged,
        change.kind() == ChangeKind::Ledger
    );
    let data = change.data_json();
    let body = match RawValue::from_string(data) {
        Ok(data) => serde_json::to_string(&Body {
            kind: kind.as_str(),
            timestamp,
            data: &data,
        }),
        Err(error) => Err(error),
    };
    // The feed's own serialization is JSON: this cannot fail.
    (kind, body.unwrap_or_else(|_| "{}".into()))
}

fn delivery(webhook: &WebhookId, change: &Change, kind: EventKind, body: &str) -> NewDelivery {
    let id = message_id(webhook, &change.position.to_string());
    let member = change.member_id().cloned();
    NewDelivery {
        ordering_key: member
            .as_ref()
            .map_or_else(|| id.as_str().to_owned(), |m| m.as_str().to_owned()),
        id,
        webhook_id: webhook.clone(),
        program_id: change.program_id.clone(),
        message_type: kind.as_str().to_owned(),
        member_id: member,
        order: change.position,
        body: body.to_owned(),
        created_at: match &change.body {
            ChangeBody::Ledger(ledger) => ledger.entry.created_at,
            ChangeBody::Event(event) => event.0.received_at,
        },
    }
}
