//! Rules as an admin writes them, and their compiled definition: the condition tree, the
//! points, the limits. The written form is parsed here, every error naming its path.

use super::*;
use crate::connector::EventType;
use crate::error::{Error, Result};
use crate::ids::{ConnectorId, ProgramId, RuleId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// Its awards count toward limits at once but are spendable only this many days after
    /// their event (absent or 0: at once).
    #[serde(default)]
    pub pending_days: Option<u32>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_days: Option<u32>,
    pub active_from: Option<DateTime<Utc>>,
    pub active_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub definition: RuleDefinition,
}

impl Rule {
    /// The rule an admin's spec makes, with its compiled definition: the one place a spec's
    /// fields become a stored rule's, for a new rule and a replaced one alike.
    pub(crate) fn written(
        id: RuleId,
        program_id: ProgramId,
        spec: RuleSpec,
        definition: RuleDefinition,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Rule {
            id,
            program_id,
            connector_id: spec.connector_id,
            name: spec.name.trim().to_owned(),
            conditions: spec.conditions,
            points: spec.points,
            limits: spec.limits,
            priority: spec.priority,
            stop_other_rules: spec.stop_other_rules,
            pending_days: spec.pending_days,
            active_from: spec.active_from,
            active_until: spec.active_until,
            created_at,
            updated_at,
            definition,
        }
    }
}

impl RuleSpec {
    /// The spec with its window at the precision stores keep (see `clock::stored_precision`),
    /// before anything is checked or stored: however it was built, what is checked is what
    /// is stored.
    pub(crate) fn at_stored_precision(mut self) -> Self {
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
        if self
            .pending_days
            .is_some_and(|d| d > crate::program::MAX_DAYS)
        {
            return Err(Error::invalid(
                "/pendingDays",
                format!(
                    "pendingDays must be between 0 and {}",
                    crate::program::MAX_DAYS
                ),
            ));
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
        if event_type == EventType::EcommerceRefund {
            return Err(Error::invalid(
                "/connectorId",
                "rules do not apply to an ecommerce.refund connector: a refund takes back what its purchase earned",
            ));
        }
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
