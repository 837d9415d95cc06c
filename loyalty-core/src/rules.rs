//! Earning rules: conditions on tags, counters and purchase fields; points; limits per member
//! and calendar period; and their evaluation, a pure function of the event, the rules, the
//! member's usage and the time, which explains itself in a trace.

use crate::connector::EventType;
use crate::error::{Error, Result};
use crate::event::CanonicalEvent;
use crate::ids::{ConnectorId, ProgramId, RuleId};
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

/// The largest award of one rule for one event; keeps sums far from overflow.
pub const MAX_AWARD_POINTS: i64 = 1_000_000_000_000;
const MAX_CONDITION_DEPTH: usize = 16;
const MAX_CONDITION_LEAVES: usize = 256;
const MAX_LIMITS: usize = 10;

/// A rule as an admin writes it. `conditions`, `points` and `limits` are kept as written
/// (responses show them back) and compiled into a [`RuleDefinition`].
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSpec {
    pub name: String,
    pub connector_id: ConnectorId,
    #[serde(default)]
    pub conditions: Value,
    pub points: Value,
    #[serde(default)]
    pub limits: Value,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub stop_other_rules: bool,
    pub active_from: Option<DateTime<Utc>>,
    pub active_until: Option<DateTime<Utc>>,
}

/// A stored rule.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub id: RuleId,
    pub program_id: ProgramId,
    pub connector_id: ConnectorId,
    pub name: String,
    pub conditions: Value,
    pub points: Value,
    pub limits: Value,
    pub priority: i32,
    pub stop_other_rules: bool,
    pub active_from: Option<DateTime<Utc>>,
    pub active_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub definition: RuleDefinition,
}

impl RuleSpec {
    /// The spec with its window at the precision stores keep (see `clock::stored_precision`),
    /// before anything is checked or stored: however it was built, what is checked is what
    /// is stored.
    pub fn at_stored_precision(mut self) -> Self {
        self.active_from = self.active_from.map(crate::clock::stored_precision);
        self.active_until = self.active_until.map(crate::clock::stored_precision);
        self
    }

    /// Compiles the written parts; every error names its JSON path.
    pub fn compile(&self) -> Result<RuleDefinition> {
        crate::program::check_name(&self.name, "/name")?;
        if let (Some(from), Some(until)) = (self.active_from, self.active_until) {
            if until <= from {
                return Err(Error::invalid(
                    "/activeUntil",
                    "activeUntil must be after activeFrom",
                ));
            }
        }
        RuleDefinition::compile(&self.conditions, &self.points, &self.limits)
    }
}

/// The compiled form of a rule's conditions, points and limits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleDefinition {
    pub condition: Option<Condition>,
    pub points: PointsRule,
    pub limits: Vec<Limit>,
}

impl RuleDefinition {
    pub fn compile(conditions: &Value, points: &Value, limits: &Value) -> Result<Self> {
        let mut leaves = 0;
        let condition = match conditions {
            Value::Null => None,
            Value::Object(o) if o.is_empty() => None,
            other => Some(parse_condition(other, "/conditions", 0, &mut leaves)?),
        };
        Ok(Self {
            condition,
            points: parse_points(points)?,
            limits: parse_limits(limits)?,
        })
    }

    /// Whether the rule reads purchase fields, so that it only fits an `ecommerce.purchase`
    /// connector.
    pub fn needs_purchase(&self) -> bool {
        matches!(self.points, PointsRule::PerAmount { .. })
            || self
                .condition
                .as_ref()
                .is_some_and(Condition::needs_purchase)
    }

    pub fn check_fits(&self, event_type: EventType) -> Result<()> {
        if self.needs_purchase() && event_type != EventType::EcommercePurchase {
            return Err(Error::invalid(
                "/connectorId",
                "this rule reads purchase fields (field, item or perAmount), but its connector's event type is not ecommerce.purchase",
            ));
        }
        Ok(())
    }
}

/// A condition tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Tag {
        name: String,
        test: TextTest,
    },
    Counter {
        name: String,
        test: NumberTest,
    },
    Amount(NumberTest),
    ItemCount(NumberTest),
    Currency(TextTest),
    /// True when some item matches every given field.
    Item(Vec<(ItemField, Vec<String>)>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemField {
    Sku,
    Category,
    Name,
}

/// A test on text values (tags, currency).
#[derive(Clone, Debug, PartialEq)]
pub enum TextTest {
    Eq(String),
    Neq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Contains(String),
    StartsWith(String),
    Exists,
    NotExists,
}

/// A test on a number (counters, amount, item count).
#[derive(Clone, Debug, PartialEq)]
pub enum NumberTest {
    Eq(f64),
    Neq(f64),
    Lt(f64),
    Lte(f64),
    Gt(f64),
    Gte(f64),
    Between(f64, f64),
    Exists,
    NotExists,
}

/// How many points a rule awards.
#[derive(Clone, Debug, PartialEq)]
pub enum PointsRule {
    Fixed(i64),
    /// `points` for every whole `per` of the counter.
    PerCounter {
        counter: String,
        points: i64,
        per: f64,
    },
    /// `points` for every whole `per` of the purchase amount.
    PerAmount {
        points: i64,
        per: f64,
    },
}

impl Default for PointsRule {
    fn default() -> Self {
        PointsRule::Fixed(0)
    }
}

/// A calendar period in UTC (weeks start on Monday).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
    Year,
    Lifetime,
}

impl Period {
    pub const ALL: [Period; 5] = [
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Year,
        Period::Lifetime,
    ];

    /// The key of the period holding `at`: `d2026-11-26`, `w2026-W48`, `m2026-11`, `y2026`, `lifetime`.
    pub fn key(self, at: DateTime<Utc>) -> String {
        // Digits written by hand: keys are built for every limit of every event, and
        // `format!` (let alone chrono's `format`, which parses its pattern each call) cost
        // more than the rest of a rule's evaluation.
        let mut key = String::with_capacity(11);
        let (letter, year, rest): (char, i32, &[u32]) = match self {
            Period::Day => ('d', at.year(), &[at.month(), at.day()]),
            Period::Week => {
                let week = at.iso_week();
                key.push('w');
                push_digits(&mut key, week.year(), 4);
                key.push_str("-W");
                push_digits(&mut key, week.week() as i32, 2);
                return key;
            }
            Period::Month => ('m', at.year(), &[at.month()]),
            Period::Year => ('y', at.year(), &[]),
            Period::Lifetime => return "lifetime".into(),
        };
        key.push(letter);
        push_digits(&mut key, year, 4);
        for part in rest {
            key.push('-');
            push_digits(&mut key, *part as i32, 2);
        }
        key
    }
}

/// `value` in decimal, zero-padded to `width` digits (as `{:0width$}` would).
fn push_digits(out: &mut String, value: i32, width: usize) {
    if value < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 10];
    let mut n = value.unsigned_abs();
    let mut len = 0;
    while n > 0 || len == 0 {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    let width = width.saturating_sub(usize::from(value < 0));
    for _ in len..width {
        out.push('0');
    }
    for digit in digits[..len].iter().rev() {
        out.push(char::from(*digit));
    }
}

/// A limit per member per period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// At most this many awards.
    Count { max: i64, per: Period },
    /// At most this many points; the last award is cut to fit.
    Points { max: i64, per: Period },
}

/// Usage of one rule by one member in one period.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UsageKey {
    pub rule_id: RuleId,
    pub period: String,
}

/// How often, and for how many points, a rule awarded a member in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCount {
    pub count: i64,
    pub points: i64,
}

/// A member's usage, by key. Missing keys are zero. Hashed with foldhash, not SipHash: it is
/// read for every rule limit of every event (the keys are rule ids and period names, never a
/// sender's text, and foldhash seeds every map at random anyway).
pub type Usage = HashMap<UsageKey, UsageCount, foldhash::fast::RandomState>;

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

/// Adds an evaluation's increments to a usage map (for the next event of the same member).
pub fn apply_usage(usage: &mut Usage, increments: &[(UsageKey, UsageCount)]) {
    for (key, add) in increments {
        usage.entry(key.clone()).or_default().add(*add);
    }
}

impl UsageCount {
    /// Counts `other` too: the one place usage is added up.
    pub fn add(&mut self, other: UsageCount) {
        self.count += other.count;
        self.points += other.points;
    }
}

impl Limit {
    pub fn period(self) -> Period {
        match self {
            Limit::Count { per, .. } | Limit::Points { per, .. } => per,
        }
    }
}

fn period_name(period: Period) -> &'static str {
    match period {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
        Period::Year => "year",
        Period::Lifetime => "lifetime",
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
    fn needs_purchase(&self) -> bool {
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

// ---- parsing the written form --------------------------------------------------------------

fn object_at<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| Error::invalid(path, "expected an object"))
}

fn string_at(object: &Map<String, Value>, field: &str, path: &str) -> Result<String> {
    match object.get(field) {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 1024 => Ok(s.clone()),
        Some(Value::Number(n)) => {
            Ok(crate::member::integer_digits(n).unwrap_or_else(|| n.to_string()))
        }
        Some(Value::Bool(b)) => Ok(b.to_string()),
        _ => Err(Error::invalid(
            format!("{path}/{field}"),
            "expected a non-empty string",
        )),
    }
}

fn number_at(object: &Map<String, Value>, field: &str, path: &str) -> Result<f64> {
    object
        .get(field)
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite())
        .ok_or_else(|| Error::invalid(format!("{path}/{field}"), "expected a finite number"))
}

fn strings_at(object: &Map<String, Value>, path: &str) -> Result<Vec<String>> {
    let (field, value) = match (object.get("values"), object.get("value")) {
        (Some(v), _) => ("values", v),
        (None, Some(v)) => ("value", v),
        (None, None) => {
            return Err(Error::invalid(
                format!("{path}/values"),
                "expected an array of strings",
            ))
        }
    };
    let items = value
        .as_array()
        .filter(|a| !a.is_empty() && a.len() <= 1000)
        .ok_or_else(|| {
            Error::invalid(
                format!("{path}/{field}"),
                "expected a non-empty array of strings",
            )
        })?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => {
                Ok(crate::member::integer_digits(n).unwrap_or_else(|| n.to_string()))
            }
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(Error::invalid(
                format!("{path}/{field}/{i}"),
                "expected a string",
            )),
        })
        .collect()
}

fn op_at<'a>(object: &'a Map<String, Value>, path: &str) -> Result<&'a str> {
    object
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(format!("{path}/op"), "expected an operator"))
}

fn parse_text_test(object: &Map<String, Value>, path: &str) -> Result<TextTest> {
    Ok(match op_at(object, path)? {
        "eq" => TextTest::Eq(string_at(object, "value", path)?),
        "neq" => TextTest::Neq(string_at(object, "value", path)?),
        "in" => TextTest::In(strings_at(object, path)?),
        "notIn" => TextTest::NotIn(strings_at(object, path)?),
        "contains" => TextTest::Contains(string_at(object, "value", path)?),
        "startsWith" => TextTest::StartsWith(string_at(object, "value", path)?),
        "exists" => TextTest::Exists,
        "notExists" => TextTest::NotExists,
        other => {
            return Err(Error::invalid(
                format!("{path}/op"),
                format!("unknown operator {other:?}: expected eq, neq, in, notIn, contains, startsWith, exists or notExists"),
            ))
        }
    })
}

fn parse_number_test(object: &Map<String, Value>, path: &str) -> Result<NumberTest> {
    Ok(match op_at(object, path)? {
        "eq" => NumberTest::Eq(number_at(object, "value", path)?),
        "neq" => NumberTest::Neq(number_at(object, "value", path)?),
        "lt" => NumberTest::Lt(number_at(object, "value", path)?),
        "lte" => NumberTest::Lte(number_at(object, "value", path)?),
        "gt" => NumberTest::Gt(number_at(object, "value", path)?),
        "gte" => NumberTest::Gte(number_at(object, "value", path)?),
        "between" => {
            let (min, max) = (number_at(object, "min", path)?, number_at(object, "max", path)?);
            if min > max {
                return Err(Error::invalid(format!("{path}/max"), "max must not be below min"));
            }
            NumberTest::Between(min, max)
        }
        "exists" => NumberTest::Exists,
        "notExists" => NumberTest::NotExists,
        other => {
            return Err(Error::invalid(
                format!("{path}/op"),
                format!("unknown operator {other:?}: expected eq, neq, lt, lte, gt, gte, between, exists or notExists"),
            ))
        }
    })
}

fn parse_condition(
    value: &Value,
    path: &str,
    depth: usize,
    leaves: &mut usize,
) -> Result<Condition> {
    if depth > MAX_CONDITION_DEPTH {
        return Err(Error::invalid(
            path,
            format!("conditions nest deeper than {MAX_CONDITION_DEPTH}"),
        ));
    }
    let object = object_at(value, path)?;
    let group = |key: &str, leaves: &mut usize| -> Result<Vec<Condition>> {
        let children = object.get(key).and_then(Value::as_array).ok_or_else(|| {
            Error::invalid(format!("{path}/{key}"), "expected an array of conditions")
        })?;
        if key == "any" && children.is_empty() {
            return Err(Error::invalid(
                format!("{path}/any"),
                "any needs at least one condition",
            ));
        }
        children
            .iter()
            .enumerate()
            .map(|(i, c)| parse_condition(c, &format!("{path}/{key}/{i}"), depth + 1, leaves))
            .collect()
    };
    if object.contains_key("all") {
        return Ok(Condition::All(group("all", leaves)?));
    }
    if object.contains_key("any") {
        return Ok(Condition::Any(group("any", leaves)?));
    }
    *leaves += 1;
    if *leaves > MAX_CONDITION_LEAVES {
        return Err(Error::invalid(
            path,
            format!("more than {MAX_CONDITION_LEAVES} conditions"),
        ));
    }
    if object.contains_key("tag") {
        let name = string_at(object, "tag", path)?;
        return Ok(Condition::Tag {
            name,
            test: parse_text_test(object, path)?,
        });
    }
    if object.contains_key("counter") {
        let name = string_at(object, "counter", path)?;
        return Ok(Condition::Counter {
            name,
            test: parse_number_test(object, path)?,
        });
    }
    if object.contains_key("field") {
        return match object.get("field").and_then(Value::as_str) {
            Some("amount") => Ok(Condition::Amount(parse_number_test(object, path)?)),
            Some("itemCount") => Ok(Condition::ItemCount(parse_number_test(object, path)?)),
            Some("currency") => Ok(Condition::Currency(parse_text_test(object, path)?)),
            _ => Err(Error::invalid(
                format!("{path}/field"),
                "expected \"amount\", \"currency\" or \"itemCount\"",
            )),
        };
    }
    if let Some(item) = object.get("item") {
        let item_path = format!("{path}/item");
        let fields = object_at(item, &item_path)?;
        if fields.is_empty() {
            return Err(Error::invalid(
                item_path,
                "name at least one of sku, category, name",
            ));
        }
        return fields
            .iter()
            .map(|(key, wanted)| {
                let field = match key.as_str() {
                    "sku" => ItemField::Sku,
                    "category" => ItemField::Category,
                    "name" => ItemField::Name,
                    _ => {
                        return Err(Error::invalid(
                            format!("{item_path}/{key}"),
                            "expected sku, category or name",
                        ))
                    }
                };
                let wanted = match wanted {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(_) => {
                        let mut holder = Map::new();
                        holder.insert("values".into(), wanted.clone());
                        strings_at(&holder, &format!("{item_path}/{key}"))?
                    }
                    _ => {
                        return Err(Error::invalid(
                            format!("{item_path}/{key}"),
                            "expected a string or an array of strings",
                        ))
                    }
                };
                Ok((field, wanted))
            })
            .collect::<Result<Vec<_>>>()
            .map(Condition::Item);
    }
    Err(Error::invalid(
        path,
        "expected all, any, tag, counter, field or item",
    ))
}

fn integer_at(object: &Map<String, Value>, field: &str, path: &str) -> Result<i64> {
    object
        .get(field)
        .and_then(Value::as_i64)
        .filter(|n| (0..=MAX_AWARD_POINTS).contains(n))
        .ok_or_else(|| {
            Error::invalid(
                format!("{path}/{field}"),
                format!("expected an integer from 0 to {MAX_AWARD_POINTS}"),
            )
        })
}

fn per_at(object: &Map<String, Value>, path: &str) -> Result<f64> {
    match object.get("per") {
        None | Some(Value::Null) => Ok(1.0),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite() && *f > 0.0)
            .ok_or_else(|| Error::invalid(format!("{path}/per"), "expected a number > 0")),
    }
}

fn parse_points(value: &Value) -> Result<PointsRule> {
    let object = object_at(value, "/points")?;
    if object.contains_key("fixed") {
        return Ok(PointsRule::Fixed(integer_at(object, "fixed", "/points")?));
    }
    if let Some(inner) = object.get("perCounter") {
        let path = "/points/perCounter";
        let inner = object_at(inner, path)?;
        return Ok(PointsRule::PerCounter {
            counter: string_at(inner, "counter", path)?,
            points: integer_at(inner, "points", path)?,
            per: per_at(inner, path)?,
        });
    }
    if let Some(inner) = object.get("perAmount") {
        let path = "/points/perAmount";
        let inner = object_at(inner, path)?;
        return Ok(PointsRule::PerAmount {
            points: integer_at(inner, "points", path)?,
            per: per_at(inner, path)?,
        });
    }
    Err(Error::invalid(
        "/points",
        "expected {\"fixed\": N}, {\"perCounter\": {...}} or {\"perAmount\": {...}}",
    ))
}

fn parse_limits(value: &Value) -> Result<Vec<Limit>> {
    let entries = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(entries) if entries.len() <= MAX_LIMITS => entries,
        _ => {
            return Err(Error::invalid(
                "/limits",
                format!("expected an array of at most {MAX_LIMITS} limits"),
            ))
        }
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let path = format!("/limits/{i}");
            let object = object_at(entry, &path)?;
            let per = match object.get("per").and_then(Value::as_str) {
                Some("day") => Period::Day,
                Some("week") => Period::Week,
                Some("month") => Period::Month,
                Some("year") => Period::Year,
                Some("lifetime") => Period::Lifetime,
                _ => {
                    return Err(Error::invalid(
                        format!("{path}/per"),
                        "expected day, week, month, year or lifetime",
                    ))
                }
            };
            if object.contains_key("count") {
                Ok(Limit::Count {
                    max: integer_at(object, "count", &path)?,
                    per,
                })
            } else if object.contains_key("points") {
                Ok(Limit::Points {
                    max: integer_at(object, "points", &path)?,
                    per,
                })
            } else {
                Err(Error::invalid(path, "expected count or points"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Counter, Tag};
    use chrono::TimeZone;
    use serde_json::json;

    pub(crate) fn rule(id: &str, conditions: Value, points: Value, limits: Value) -> Rule {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Rule {
            id: RuleId::new(id),
            program_id: ProgramId::new("prg"),
            connector_id: ConnectorId::new("con"),
            name: id.into(),
            definition: RuleDefinition::compile(&conditions, &points, &limits).unwrap(),
            conditions,
            points,
            limits,
            priority: 0,
            stop_other_rules: false,
            active_from: None,
            active_until: None,
            created_at: at,
            updated_at: at,
        }
    }

    fn event(tags: &[(&str, &str)], counters: &[(&str, f64)]) -> CanonicalEvent {
        CanonicalEvent {
            client_event_id: None,
            occurred_at: None,
            tags: tags
                .iter()
                .map(|(n, v)| Tag {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
            counters: counters
                .iter()
                .map(|(n, v)| Counter {
                    name: (*n).into(),
                    value: *v,
                })
                .collect(),
            purchase: None,
            warnings: vec![],
        }
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
    }

    /// One rule, one event: the points awarded or the reason it did not fire.
    fn check(
        conditions: Value,
        tags: &[(&str, &str)],
        counters: &[(&str, f64)],
        expected: std::result::Result<i64, &str>,
    ) {
        let rules = RuleSet::new(vec![rule(
            "r",
            conditions.clone(),
            json!({"fixed": 10}),
            Value::Null,
        )]);
        let evaluation = rules.evaluate(&event(tags, counters), at(), &Usage::default());
        let entry = &evaluation.trace[0];
        match expected {
            Ok(points) => assert_eq!(
                (entry.fired, entry.points),
                (true, points),
                "{conditions} {entry:?}"
            ),
            Err(reason) => {
                assert!(!entry.fired, "{conditions} fired");
                let got = entry.reason.clone().unwrap_or_default();
                assert!(
                    got.contains(reason),
                    "{conditions}: {got:?} should contain {reason:?}"
                );
            }
        }
    }

    #[test]
    fn the_seed_rule() {
        let seed = json!({"all": [{"tag": "theme", "op": "eq", "value": "sport"}, {"counter": "total", "op": "gte", "value": 5}]});
        check(
            seed.clone(),
            &[("theme", "sport")],
            &[("total", 5.0)],
            Ok(10),
        );
        check(
            seed.clone(),
            &[("theme", "news")],
            &[("total", 5.0)],
            Err("/conditions/all/0"),
        );
        check(
            seed.clone(),
            &[("theme", "sport")],
            &[("total", 3.0)],
            Err("/conditions/all/1 failed: counter \"total\" gte 5 (counter is 3)"),
        );
        check(
            seed,
            &[("theme", "sport")],
            &[("total", 3.0), ("total", 2.0)],
            Ok(10),
        );
    }

    #[test]
    fn tag_operators_over_repeated_tags() {
        let tags = [("cat", "sport"), ("cat", "news")];
        check(
            json!({"tag": "cat", "op": "eq", "value": "news"}),
            &tags,
            &[],
            Ok(10),
        );
        check(
            json!({"tag": "cat", "op": "neq", "value": "news"}),
            &tags,
            &[],
            Err("neq"),
        );
        check(
            json!({"tag": "cat", "op": "neq", "value": "tech"}),
            &tags,
            &[],
            Ok(10),
        );
        check(
            json!({"tag": "cat", "op": "in", "values": ["tech", "sport"]}),
            &tags,
            &[],
            Ok(10),
        );
        check(
            json!({"tag": "cat", "op": "notIn", "values": ["tech", "sport"]}),
            &tags,
            &[],
            Err("notIn"),
        );
        check(
            json!({"tag": "cat", "op": "contains", "value": "por"}),
            &tags,
            &[],
            Ok(10),
        );
        check(
            json!({"tag": "cat", "op": "startsWith", "value": "ne"}),
            &tags,
            &[],
            Ok(10),
        );
        check(json!({"tag": "cat", "op": "exists"}), &tags, &[], Ok(10));
        check(json!({"tag": "dog", "op": "notExists"}), &tags, &[], Ok(10));
        check(
            json!({"tag": "cat", "op": "notExists"}),
            &tags,
            &[],
            Err("notExists"),
        );
    }

    #[test]
    fn counter_operators_and_any() {
        let c = [("n", 5.0)];
        check(
            json!({"counter": "n", "op": "between", "min": 5, "max": 6}),
            &[],
            &c,
            Ok(10),
        );
        check(
            json!({"counter": "n", "op": "lt", "value": 5}),
            &[],
            &c,
            Err("lt 5"),
        );
        check(
            json!({"counter": "m", "op": "gt", "value": 0}),
            &[],
            &c,
            Err("missing"),
        );
        check(json!({"counter": "m", "op": "notExists"}), &[], &c, Ok(10));
        check(
            json!({"any": [{"counter": "n", "op": "gt", "value": 9}, {"all": [{"counter": "n", "op": "eq", "value": 5}]}]}),
            &[],
            &c,
            Ok(10),
        );
        check(
            json!({"any": [{"counter": "n", "op": "gt", "value": 9}]}),
            &[],
            &c,
            Err("none of /conditions/any held"),
        );
    }

    #[test]
    fn limits_priority_and_stop() {
        let mut first = rule(
            "a",
            Value::Null,
            json!({"perCounter": {"counter": "n", "points": 3, "per": 2}}),
            json!([{"points": 10, "per": "day"}]),
        );
        first.priority = -1;
        first.stop_other_rules = true;
        let second = rule("b", Value::Null, json!({"fixed": 1}), Value::Null);
        let rules = RuleSet::new(vec![second, first]);
        let mut usage = Usage::default();
        let e = event(&[], &[("n", 5.0)]);
        let one = rules.evaluate(&e, at(), &usage);
        assert_eq!(
            one.awards,
            vec![Award {
                rule_id: RuleId::new("a"),
                points: 6
            }]
        );
        assert!(one.trace[1]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("stopped by rule"));
        apply_usage(&mut usage, &one.usage_increments);
        let two = rules.evaluate(&e, at(), &usage);
        assert_eq!(two.awards[0].points, 4, "cut to fit the 10 points a day");
        apply_usage(&mut usage, &two.usage_increments);
        let three = rules.evaluate(&e, at(), &usage);
        assert_eq!(
            three.awards,
            vec![Award {
                rule_id: RuleId::new("b"),
                points: 1
            }]
        );
        assert!(three.trace[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("limit reached"));
        let tomorrow = at() + chrono::Duration::days(1);
        assert_eq!(rules.evaluate(&e, tomorrow, &usage).awards[0].points, 6);
    }

    #[test]
    fn period_keys() {
        let sunday = Utc.with_ymd_and_hms(2026, 11, 29, 23, 59, 59).unwrap();
        let monday = sunday + chrono::Duration::seconds(1);
        assert_eq!(Period::Week.key(sunday), "w2026-W48");
        assert_eq!(Period::Week.key(monday), "w2026-W49");
        assert_eq!(Period::Day.key(monday), "d2026-11-30");
        assert_eq!(Period::Month.key(monday), "m2026-11");
        assert_eq!(Period::Year.key(monday), "y2026");
        // The hand-written digits agree with `format!` over years of days, ISO week-years
        // that differ from the calendar year included.
        let mut at = Utc.with_ymd_and_hms(1998, 12, 20, 12, 0, 0).unwrap();
        for _ in 0..4000 {
            let week = at.iso_week();
            assert_eq!(
                Period::Day.key(at),
                format!("d{:04}-{:02}-{:02}", at.year(), at.month(), at.day())
            );
            assert_eq!(
                Period::Week.key(at),
                format!("w{:04}-W{:02}", week.year(), week.week())
            );
            assert_eq!(
                Period::Month.key(at),
                format!("m{:04}-{:02}", at.year(), at.month())
            );
            at += chrono::Duration::days(3);
        }
        let early = Utc.with_ymd_and_hms(7, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(Period::Year.key(early), "y0007");
    }

    #[test]
    fn written_form_errors_name_the_path() {
        let err = |c: Value, p: Value, l: Value| match RuleDefinition::compile(&c, &p, &l) {
            Err(Error::Invalid { path, .. }) => path,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(
                json!({"all": [{"tag": "t", "op": "like", "value": "x"}]}),
                json!({"fixed": 1}),
                Value::Null
            ),
            "/conditions/all/0/op"
        );
        assert_eq!(
            err(Value::Null, json!({"fixed": -1}), Value::Null),
            "/points/fixed"
        );
        assert_eq!(
            err(
                Value::Null,
                json!({"fixed": 1}),
                json!([{"count": 1, "per": "hour"}])
            ),
            "/limits/0/per"
        );
        assert_eq!(
            err(
                Value::Null,
                json!({"perCounter": {"counter": "n", "points": 1, "per": 0}}),
                Value::Null
            ),
            "/points/perCounter/per"
        );
    }
}
