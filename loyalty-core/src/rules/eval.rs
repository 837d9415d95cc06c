//! Evaluation: a pure function of the event, the rules, the member's usage and the time,
//! which explains itself in a trace.

use super::usage::period_name;
use super::*;
use crate::error::Result;
use crate::event::CanonicalEvent;
use crate::ids::RuleId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One award of one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Award {
    pub rule_id: RuleId,
    pub points: i64,
}

/// What one rule did with one event, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceEntry {
    pub rule_id: RuleId,
    pub rule_name: String,
    pub fired: bool,
    pub points: i64,
    /// The first condition or limit that stopped the rule (or, for a rule that fired, a cut).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The result of evaluating a connector's rules on one event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub awards: Vec<Award>,
    pub trace: Vec<TraceEntry>,
    /// The usage to add, one entry per awarded rule and period.
    pub usage_increments: Vec<(UsageKey, UsageCount)>,
}

impl Evaluation {
    pub fn points(&self) -> i64 {
        self.awards.iter().map(|a| a.points).sum()
    }
}

/// A connector's rules, in evaluation order: `priority` (lower first), then creation order.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    pub fn new(mut rules: Vec<Rule>) -> Self {
        rules.sort_by(|a, b| {
            (a.priority, a.created_at, &a.id).cmp(&(b.priority, b.created_at, &b.id))
        });
        Self { rules }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How long the awards of `rule` stay pending, if they do.
    pub fn pending_days(&self, rule: &RuleId) -> Option<u32> {
        self.rules
            .iter()
            .find(|r| r.id == *rule)
            .and_then(|r| r.pending_days)
            .filter(|days| *days > 0)
    }

    /// The usage an evaluation at `at` reads: the periods that the rules' limits name.
    pub fn usage_keys(&self, at: DateTime<Utc>) -> Vec<UsageKey> {
        let mut keys: Vec<UsageKey> = self
            .rules
            .iter()
            .flat_map(|rule| {
                rule.definition.limits.iter().map(move |limit| UsageKey {
                    rule_id: rule.id.clone(),
                    period: limit.period().key(at),
                })
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Evaluates every rule on `event`, which happened at `at`, for a member whose usage is
    /// `usage`. Pure and deterministic.
    pub fn evaluate(&self, event: &CanonicalEvent, at: DateTime<Utc>, usage: &Usage) -> Evaluation {
        let mut evaluation = Evaluation::default();
        let mut stopped_by: Option<&Rule> = None;
        for rule in &self.rules {
            let mut entry = TraceEntry {
                rule_id: rule.id.clone(),
                rule_name: rule.name.clone(),
                fired: false,
                points: 0,
                reason: None,
            };
            match stopped_by {
                Some(stopper) => {
                    entry.reason = Some(format!(
                        "stopped by rule {:?} ({})",
                        stopper.name, stopper.id
                    ))
                }
                None => match evaluate_rule(rule, event, at, usage) {
                    Ok((points, note)) => {
                        entry.fired = true;
                        entry.points = points;
                        entry.reason = note;
                        evaluation.awards.push(Award {
                            rule_id: rule.id.clone(),
                            points,
                        });
                        for period in Period::ALL {
                            evaluation.usage_increments.push((
                                UsageKey {
                                    rule_id: rule.id.clone(),
                                    period: period.key(at),
                                },
                                UsageCount { count: 1, points },
                            ));
                        }
                        if rule.stop_other_rules {
                            stopped_by = Some(rule);
                        }
                    }
                    Err(reason) => entry.reason = Some(reason),
                },
            }
            evaluation.trace.push(entry);
        }
        evaluation
    }
}

/// Ok((points, note)) when the rule awards, else the reason it does not.
fn evaluate_rule(
    rule: &Rule,
    event: &CanonicalEvent,
    at: DateTime<Utc>,
    usage: &Usage,
) -> Result<(i64, Option<String>), String> {
    if let Some(from) = rule.active_from {
        if at < from {
            return Err(format!(
                "not active yet: the rule starts at {}",
                from.to_rfc3339()
            ));
        }
    }
    if let Some(until) = rule.active_until {
        if at >= until {
            return Err(format!(
                "no longer active: the rule ended at {}",
                until.to_rfc3339()
            ));
        }
    }
    if let Some(condition) = &rule.definition.condition {
        check_condition(condition, event, &ConditionPath::Root)?;
    }
    let mut points = points_for(&rule.definition.points, event)?;
    let mut note = None;
    for limit in &rule.definition.limits {
        let key = UsageKey {
            rule_id: rule.id.clone(),
            period: limit.period().key(at),
        };
        let used = usage.get(&key).copied().unwrap_or_default();
        match *limit {
            Limit::Count { max, per } => {
                if used.count >= max {
                    return Err(format!(
                        "limit reached: {max} award(s) per {} ({} already)",
                        period_name(per),
                        used.count
                    ));
                }
            }
            Limit::Points { max, per } => {
                let room = max - used.points;
                if room <= 0 {
                    return Err(format!(
                        "limit reached: {max} points per {} ({} already)",
                        period_name(per),
                        used.points
                    ));
                }
                if points > room {
                    note = Some(format!(
                        "cut from {points} to {room} points by the limit of {max} points per {}",
                        period_name(per)
                    ));
                    points = room;
                }
            }
        }
    }
    Ok((points, note))
}

fn whole_units(value: f64, per: f64) -> f64 {
    let units = (value / per).floor();
    if units.is_finite() && units > 0.0 {
        units
    } else {
        0.0
    }
}

fn points_for(rule: &PointsRule, event: &CanonicalEvent) -> Result<i64, String> {
    let points = match rule {
        PointsRule::Fixed(points) => *points,
        PointsRule::PerCounter {
            counter,
            points,
            per,
        } => {
            let value = event
                .counter(counter)
                .ok_or_else(|| format!("no points: the counter {counter:?} is missing"))?;
            (whole_units(value, *per) * *points as f64).min(MAX_AWARD_POINTS as f64) as i64
        }
        PointsRule::PerAmount { points, per } => {
            let amount = event.purchase.as_ref().map_or(0.0, |p| p.amount);
            (whole_units(amount, *per) * *points as f64).min(MAX_AWARD_POINTS as f64) as i64
        }
    };
    if points <= 0 {
        return Err("no points: the award comes to 0".into());
    }
    Ok(points.min(MAX_AWARD_POINTS))
}

impl Condition {
    pub(super) fn needs_purchase(&self) -> bool {
        match self {
            Condition::All(children) | Condition::Any(children) => {
                children.iter().any(Condition::needs_purchase)
            }
            Condition::Amount(_)
            | Condition::ItemCount(_)
            | Condition::Currency(_)
            | Condition::Item(_) => true,
            Condition::Tag { .. } | Condition::Counter { .. } => false,
        }
    }
}

/// Ok when the condition holds, else the description of the first leaf that failed.
/// Where a condition sits in a rule (`/conditions/all/0/any/1`): written out only when it
/// fails, as conditions are checked for every event.
enum ConditionPath<'a> {
    Root,
    Child {
        parent: &'a ConditionPath<'a>,
        group: &'static str,
        index: usize,
    },
}

impl fmt::Display for ConditionPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionPath::Root => f.write_str("/conditions"),
            ConditionPath::Child {
                parent,
                group,
                index,
            } => write!(f, "{parent}/{group}/{index}"),
        }
    }
}

fn check_condition(
    condition: &Condition,
    event: &CanonicalEvent,
    path: &ConditionPath<'_>,
) -> Result<(), String> {
    match condition {
        Condition::All(children) => {
            for (index, child) in children.iter().enumerate() {
                let child_path = ConditionPath::Child {
                    parent: path,
                    group: "all",
                    index,
                };
                check_condition(child, event, &child_path)?;
            }
            Ok(())
        }
        Condition::Any(children) => {
            let mut first_failure = None;
            for (index, child) in children.iter().enumerate() {
                let child_path = ConditionPath::Child {
                    parent: path,
                    group: "any",
                    index,
                };
                match check_condition(child, event, &child_path) {
                    Ok(()) => return Ok(()),
                    Err(reason) => {
                        first_failure.get_or_insert(reason);
                    }
                }
            }
            Err(format!(
                "none of {path}/any held; the first: {}",
                first_failure.unwrap_or_else(|| "empty".into())
            ))
        }
        Condition::Tag { name, test } => {
            let values: Vec<&str> = event.tag_values(name).collect();
            if test_text(test, &values) {
                Ok(())
            } else {
                Err(format!(
                    "condition {path} failed: tag {name:?} {} (tag values: {})",
                    describe_text(test),
                    show_values(&values)
                ))
            }
        }
        Condition::Counter { name, test } => {
            let value = event.counter(name);
            if test_number(test, value) {
                Ok(())
            } else {
                Err(format!(
                    "condition {path} failed: counter {name:?} {} (counter is {})",
                    describe_number(test),
                    value.map_or_else(|| "missing".to_owned(), |v| v.to_string())
                ))
            }
        }
        Condition::Amount(test) | Condition::ItemCount(test) => {
            let (field, value) = match (condition, &event.purchase) {
                (Condition::Amount(_), Some(p)) => ("amount", Some(p.amount)),
                (_, Some(p)) => ("itemCount", Some(p.item_count())),
                (Condition::Amount(_), None) => ("amount", None),
                (_, None) => ("itemCount", None),
            };
            if test_number(test, value) {
                Ok(())
            } else {
                Err(format!(
                    "condition {path} failed: {field} {} ({field} is {})",
                    describe_number(test),
                    value.map_or_else(|| "missing".to_owned(), |v| v.to_string())
                ))
            }
        }
        Condition::Currency(test) => {
            let currency: Vec<&str> = event.purchase.iter().map(|p| p.currency.as_str()).collect();
            if test_text(test, &currency) {
                Ok(())
            } else {
                Err(format!(
                    "condition {path} failed: currency {} (currency is {})",
                    describe_text(test),
                    show_values(&currency)
                ))
            }
        }
        Condition::Item(fields) => {
            let items = event.purchase.as_ref().map_or(&[][..], |p| &p.items);
            let matched = items.iter().any(|item| {
                fields.iter().all(|(field, wanted)| {
                    let value = match field {
                        ItemField::Sku => &item.sku,
                        ItemField::Category => &item.category,
                        ItemField::Name => &item.name,
                    };
                    value
                        .as_ref()
                        .is_some_and(|v| wanted.iter().any(|w| w == v))
                })
            });
            if matched {
                Ok(())
            } else {
                Err(format!("condition {path} failed: no item matches"))
            }
        }
    }
}

fn show_values(values: &[&str]) -> String {
    if values.is_empty() {
        "none".into()
    } else {
        values
            .iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Positive tests hold when some value satisfies them; negative ones when none does.
fn test_text(test: &TextTest, values: &[&str]) -> bool {
    match test {
        TextTest::Eq(v) => values.iter().any(|x| x == v),
        TextTest::Neq(v) => !values.iter().any(|x| x == v),
        TextTest::In(vs) => values.iter().any(|x| vs.iter().any(|v| v == x)),
        TextTest::NotIn(vs) => !values.iter().any(|x| vs.iter().any(|v| v == x)),
        TextTest::Contains(v) => values.iter().any(|x| x.contains(v.as_str())),
        TextTest::StartsWith(v) => values.iter().any(|x| x.starts_with(v.as_str())),
        TextTest::Exists => !values.is_empty(),
        TextTest::NotExists => values.is_empty(),
    }
}

fn describe_text(test: &TextTest) -> String {
    match test {
        TextTest::Eq(v) => format!("eq {v:?}"),
        TextTest::Neq(v) => format!("neq {v:?}"),
        TextTest::In(vs) => format!("in {vs:?}"),
        TextTest::NotIn(vs) => format!("notIn {vs:?}"),
        TextTest::Contains(v) => format!("contains {v:?}"),
        TextTest::StartsWith(v) => format!("startsWith {v:?}"),
        TextTest::Exists => "exists".into(),
        TextTest::NotExists => "notExists".into(),
    }
}

/// A missing number satisfies only `neq` and `notExists`.
fn test_number(test: &NumberTest, value: Option<f64>) -> bool {
    match (test, value) {
        (NumberTest::Exists, v) => v.is_some(),
        (NumberTest::NotExists, v) => v.is_none(),
        (NumberTest::Neq(_), None) => true,
        (_, None) => false,
        (NumberTest::Eq(x), Some(v)) => v == *x,
        (NumberTest::Neq(x), Some(v)) => v != *x,
        (NumberTest::Lt(x), Some(v)) => v < *x,
        (NumberTest::Lte(x), Some(v)) => v <= *x,
        (NumberTest::Gt(x), Some(v)) => v > *x,
        (NumberTest::Gte(x), Some(v)) => v >= *x,
        (NumberTest::Between(min, max), Some(v)) => v >= *min && v <= *max,
    }
}

fn describe_number(test: &NumberTest) -> String {
    match test {
        NumberTest::Eq(x) => format!("eq {x}"),
        NumberTest::Neq(x) => format!("neq {x}"),
        NumberTest::Lt(x) => format!("lt {x}"),
        NumberTest::Lte(x) => format!("lte {x}"),
        NumberTest::Gt(x) => format!("gt {x}"),
        NumberTest::Gte(x) => format!("gte {x}"),
        NumberTest::Between(a, b) => format!("between {a} and {b}"),
        NumberTest::Exists => "exists".into(),
        NumberTest::NotExists => "notExists".into(),
    }
}
