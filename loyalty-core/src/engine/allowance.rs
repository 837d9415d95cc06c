//! What is left of each limit of each rule for a member, now.

use super::Engine;
use crate::error::Result;
use crate::ids::{MemberId, ProgramId, RuleId};
use crate::rules::{Limit, Period, UsageKey};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One rule's limits for one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleAllowance {
    pub rule_id: RuleId,
    pub rule_name: String,
    pub limits: Vec<LimitAllowance>,
}

/// One limit in the current period: how much is used (awards for a count limit, points for a
/// points limit), what remains, and when the period resets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitAllowance {
    pub per: Period,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    pub used: i64,
    pub remaining: i64,
    /// `None` for a lifetime limit.
    pub resets_at: Option<DateTime<Utc>>,
}

impl Engine {
    /// Every rule of the program, each with what is left of its limits for the member in the
    /// current period (by the engine's clock).
    pub async fn allowance(
        &self,
        program: &ProgramId,
        member: &MemberId,
    ) -> Result<Vec<RuleAllowance>> {
        self.get_member(program, member).await?;
        let now = self.now();
        let rules = self.store.list_rules(program, None).await?;
        let keys: Vec<UsageKey> = rules
            .iter()
            .flat_map(|rule| {
                rule.definition.limits.iter().map(|limit| UsageKey {
                    rule_id: rule.id.clone(),
                    period: limit.period().key(now),
                })
            })
            .collect();
        let usage = self.store.usage(program, member, &keys).await?;
        Ok(rules
            .into_iter()
            .map(|rule| {
                let limits = rule
                    .definition
                    .limits
                    .iter()
                    .map(|limit| {
                        let per = limit.period();
                        let key = UsageKey {
                            rule_id: rule.id.clone(),
                            period: per.key(now),
                        };
                        let counted = usage.get(&key).copied().unwrap_or_default();
                        let (count, points, max, used) = match *limit {
                            Limit::Count { max, .. } => (Some(max), None, max, counted.count),
                            Limit::Points { max, .. } => (None, Some(max), max, counted.points),
                        };
                        LimitAllowance {
                            per,
                            count,
                            points,
                            used,
                            remaining: (max - used).max(0),
                            resets_at: per.next_start(now),
                        }
                    })
                    .collect();
                RuleAllowance {
                    rule_id: rule.id,
                    rule_name: rule.name,
                    limits,
                }
            })
            .collect())
    }
}
