//! Simulation: what would happen to a payload, read from the store, never written.

use super::Engine;
use crate::auth::Authenticated;
use crate::error::{Error, Result};
use crate::event::ItemError;
use crate::ids::{ConnectorId, EventId, MemberId, ProgramId};
use crate::ledger::ItemStatus;
use crate::mapping::{Document, JsonataMapping, Mapping};
use crate::member::{Identifier, IgnoredReason};
use crate::reversal::{refund_shares, AwardState};
use crate::rules::{apply_usage, Award, TraceEntry, Usage};
use crate::store::{
    decide, decide_refund, Decision, PendingItem, Prior, RefundCandidate, RefundDecision,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// What a simulation says would happen to one item.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedItem {
    pub index: usize,
    pub status: ItemStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_event_id: Option<EventId>,
    pub mapped: Option<Value>,
    pub member: Option<SimulatedMember>,
    pub points: i64,
    pub awards: Vec<Award>,
    pub trace: Vec<TraceEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The member a simulated item would use or create.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedMember {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<MemberId>,
    pub kind: String,
    pub value: String,
    pub would_enroll: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SimulationResponse {
    pub results: Vec<SimulatedItem>,
}

impl Engine {
    /// What would happen to `payload` (an object or an array of them), with the connector's
    /// mapping or `mapping` instead. Reads, never writes.
    pub async fn simulate(
        &self,
        program: &ProgramId,
        connector_id: &ConnectorId,
        payload: Value,
        mapping: Option<&str>,
        test: Option<bool>,
    ) -> Result<SimulationResponse> {
        self.get_connector(program, connector_id).await?;
        let loaded = self.load(connector_id).await?;
        let candidate_mapping: Option<JsonataMapping> = mapping
            .map(JsonataMapping::compile)
            .transpose()
            .map_err(Error::InvalidMapping)?;
        let mapping: &dyn Mapping = match &candidate_mapping {
            Some(m) => m,
            None => loaded.mapping.as_ref(),
        };
        let test = test.unwrap_or(loaded.connector.test_mode);
        let received_at = self.now();
        let body = Document::items_of(payload, self.limits.max_batch_items)
            .map_err(|e| self.body_error(e))?;
        let items = self.prepare(
            &loaded,
            mapping,
            body,
            &Authenticated::default(),
            test,
            received_at,
        )?;

        // Earlier items of the same payload count, as they would in a real delivery.
        let mut members: HashMap<Identifier, (Option<MemberId>, Usage)> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut results = Vec::with_capacity(items.len());
        for (
            index,
            PendingItem {
                entry,
                candidate,
                refund,
            },
        ) in items.into_iter().enumerate()
        {
            let mut result = SimulatedItem {
                index,
                status: entry.status,
                reason: entry.reason,
                error: entry.error,
                client_event_id: entry.client_event_id,
                original_event_id: None,
                mapped: entry.mapped.map(|m| m.to_value()),
                member: None,
                points: 0,
                awards: Vec::new(),
                trace: Vec::new(),
                warnings: entry.warnings,
            };
            if let Some(refund) = refund {
                self.simulate_refund(program, connector_id, test, &refund, &mut seen, &mut result)
                    .await?;
                results.push(result);
                continue;
            }
            let Some(candidate) = candidate else {
                results.push(result);
                continue;
            };
            if !members.contains_key(&candidate.identifier) {
                let found = self
                    .store
                    .find_member(program, &candidate.identifier)
                    .await?;
                members.insert(
                    candidate.identifier.clone(),
                    (found.map(|m| m.id), Usage::default()),
                );
            }
            let (member_id, overlay) = members
                .get_mut(&candidate.identifier)
                .expect("inserted above");
            result.member = Some(SimulatedMember {
                id: member_id.clone(),
                kind: candidate.identifier.kind.clone(),
                value: candidate.identifier.value.clone(),
                would_enroll: member_id.is_none() && loaded.program.enroll_unknown_members,
            });
            let prior = self
                .simulated_prior(connector_id, &candidate.client_event_id, test, &seen)
                .await?;
            match decide(
                prior,
                member_id.clone(),
                loaded.program.enroll_unknown_members,
            ) {
                Decision::Duplicate(prior) => {
                    result.status = ItemStatus::Duplicate;
                    result.original_event_id = prior.event;
                    results.push(result);
                    continue;
                }
                Decision::UnknownMember => {
                    result.status = ItemStatus::Ignored;
                    result.reason = Some(IgnoredReason::UnknownMember.as_str().into());
                    results.push(result);
                    continue;
                }
                Decision::Accept { .. } => {
                    seen.insert(candidate.client_event_id.clone());
                }
            }
            let mut usage = match member_id {
                Some(id) => {
                    let keys = loaded.rules.usage_keys(candidate.occurred_at);
                    self.store.usage(program, id, &keys).await?
                }
                None => Usage::default(),
            };
            apply_usage(
                &mut usage,
                &overlay
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect::<Vec<_>>(),
            );
            let evaluation = loaded
                .rules
                .evaluate(&candidate.event, candidate.occurred_at, &usage);
            apply_usage(overlay, &evaluation.usage_increments);
            result.status = ItemStatus::Accepted;
            result.points = evaluation.points();
            result.awards = evaluation.awards;
            result.trace = evaluation.trace;
            results.push(result);
        }
        Ok(SimulationResponse { results })
    }
}

impl Engine {
    /// What holds a key in a simulation: a stored accepted event, or an earlier item of the
    /// payload that would be accepted.
    async fn simulated_prior(
        &self,
        connector_id: &ConnectorId,
        client_event_id: &str,
        test: bool,
        seen: &HashSet<String>,
    ) -> Result<Option<Prior>> {
        Ok(
            match self
                .store
                .find_accepted(connector_id, client_event_id, test)
                .await?
            {
                Some(original) => Some(Prior {
                    event: Some(original),
                    member: None,
                }),
                None => seen.contains(client_event_id).then_some(Prior {
                    event: None,
                    member: None,
                }),
            },
        )
    }

    /// What a refund would take back: decided as a store decides it, on what is stored now.
    pub(super) async fn simulate_refund(
        &self,
        program: &ProgramId,
        connector_id: &ConnectorId,
        test: bool,
        candidate: &RefundCandidate,
        seen: &mut HashSet<String>,
        result: &mut SimulatedItem,
    ) -> Result<()> {
        let prior = self
            .simulated_prior(connector_id, &candidate.client_event_id, test, seen)
            .await?;
        let purchase = self
            .store
            .find_purchase(program, &candidate.refund.order_id, test)
            .await?;
        let named = match &candidate.identifier {
            Some(identifier) => Some(
                self.store
                    .find_member(program, identifier)
                    .await?
                    .map(|m| m.id),
            ),
            None => None,
        };
        match decide_refund(prior, purchase, named) {
            RefundDecision::Duplicate(prior) => {
                result.status = ItemStatus::Duplicate;
                result.original_event_id = prior.event;
            }
            RefundDecision::UnknownOrder => {
                result.status = ItemStatus::Ignored;
                result.reason = Some(IgnoredReason::UnknownOrder.as_str().into());
            }
            RefundDecision::Reverse(purchase) => {
                seen.insert(candidate.client_event_id.clone());
                let entries = self.store.ledger_entries(program, &purchase.member).await?;
                let awards = AwardState::of_event(&entries, &purchase.event);
                let shares = refund_shares(&awards, purchase.amount, candidate.refund.amount);
                result.status = ItemStatus::Accepted;
                result.original_event_id = Some(purchase.event.clone());
                result.points = -shares.iter().sum::<i64>();
                result.awards = awards
                    .iter()
                    .zip(&shares)
                    .filter(|(_, share)| **share > 0)
                    .map(|(award, share)| Award {
                        rule_id: award.rule.clone(),
                        points: -share,
                    })
                    .collect();
            }
        }
        Ok(())
    }
}
