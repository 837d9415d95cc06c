//! Rules built from Rust types. A [`RuleSpec`] keeps conditions, points and limits in their
//! written form (the form admins send and responses show back); these builders write that
//! form from the typed definition, so that an embedder never assembles JSON by hand, and
//! `Serialize` writes the same form on the wire.
//!
//! ```
//! use loyalty_core::prelude::*;
//!
//! let connector = ConnectorId::new("con_example");
//! let spec = RuleSpec::new("Sport readers", connector, PointsRule::fixed(10))
//!     .when(Condition::all([
//!         Condition::tag("theme", TextTest::Eq("sport".into())),
//!         Condition::counter("total", NumberTest::Gte(5.0)),
//!     ]))
//!     .limit(Limit::count(1, Period::Day));
//! assert_eq!(spec.points, serde_json::json!({"fixed": 10}));
//! assert_eq!(spec.limits, serde_json::json!([{"count": 1, "per": "day"}]));
//! ```

use super::{Condition, ItemField, Limit, NumberTest, Period, PointsRule, RuleSpec, TextTest};
use crate::ids::ConnectorId;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

impl RuleSpec {
    /// A rule on `connector` that awards `points` for every event (add conditions with
    /// [`RuleSpec::when`]).
    pub fn new(name: impl Into<String>, connector: ConnectorId, points: PointsRule) -> Self {
        RuleSpec {
            name: name.into(),
            connector_id: connector,
            conditions: Value::Null,
            points: points.to_written(),
            limits: Value::Null,
            priority: 0,
            stop_other_rules: false,
            pending_days: None,
            active_from: None,
            active_until: None,
        }
    }

    /// Awards only when `condition` holds.
    pub fn when(mut self, condition: Condition) -> Self {
        self.conditions = condition.to_written();
        self
    }

    /// Adds a limit per member and period.
    pub fn limit(mut self, limit: Limit) -> Self {
        match &mut self.limits {
            Value::Array(limits) => limits.push(limit.to_written()),
            other => *other = Value::Array(vec![limit.to_written()]),
        }
        self
    }

    /// Rules run by priority, lower first (then in creation order).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// When this rule awards, the rules after it do not run.
    pub fn stop_other_rules(mut self) -> Self {
        self.stop_other_rules = true;
        self
    }

    /// Its awards become spendable `days` after their event (they count toward limits at
    /// once).
    pub fn pending_days(mut self, days: u32) -> Self {
        self.pending_days = Some(days);
        self
    }

    /// Active only from `from` (inclusive) until `until` (exclusive), either open.
    pub fn active(mut self, from: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Self {
        self.active_from = from;
        self.active_until = until;
        self
    }
}

impl Condition {
    /// Holds when every condition holds (and when there are none).
    pub fn all(conditions: impl IntoIterator<Item = Condition>) -> Self {
        Condition::All(conditions.into_iter().collect())
    }

    /// Holds when at least one condition holds.
    pub fn any(conditions: impl IntoIterator<Item = Condition>) -> Self {
        Condition::Any(conditions.into_iter().collect())
    }

    /// A test on the values of the event's tags named `name`.
    pub fn tag(name: impl Into<String>, test: TextTest) -> Self {
        Condition::Tag {
            name: name.into(),
            test,
        }
    }

    /// A test on the event's counter named `name`.
    pub fn counter(name: impl Into<String>, test: NumberTest) -> Self {
        Condition::Counter {
            name: name.into(),
            test,
        }
    }

    /// The written form (`{"all": [...]}`, `{"tag": "theme", "op": "eq", "value": "sport"}`…).
    pub fn to_written(&self) -> Value {
        match self {
            Condition::All(children) => {
                json!({"all": children.iter().map(Condition::to_written).collect::<Vec<_>>()})
            }
            Condition::Any(children) => {
                json!({"any": children.iter().map(Condition::to_written).collect::<Vec<_>>()})
            }
            Condition::Tag { name, test } => text_test(json!({"tag": name}), test),
            Condition::Counter { name, test } => number_test(json!({"counter": name}), test),
            Condition::Amount(test) => number_test(json!({"field": "amount"}), test),
            Condition::ItemCount(test) => number_test(json!({"field": "itemCount"}), test),
            Condition::Currency(test) => text_test(json!({"field": "currency"}), test),
            Condition::Item(fields) => {
                let item: Map<String, Value> = fields
                    .iter()
                    .map(|(field, values)| {
                        let key = match field {
                            ItemField::Sku => "sku",
                            ItemField::Category => "category",
                            ItemField::Name => "name",
                        };
                        (key.to_owned(), json!(values))
                    })
                    .collect();
                json!({ "item": item })
            }
        }
    }
}

fn text_test(mut leaf: Value, test: &TextTest) -> Value {
    let (op, operand) = match test {
        TextTest::Eq(v) => ("eq", Some(("value", json!(v)))),
        TextTest::Neq(v) => ("neq", Some(("value", json!(v)))),
        TextTest::In(vs) => ("in", Some(("values", json!(vs)))),
        TextTest::NotIn(vs) => ("notIn", Some(("values", json!(vs)))),
        TextTest::Contains(v) => ("contains", Some(("value", json!(v)))),
        TextTest::StartsWith(v) => ("startsWith", Some(("value", json!(v)))),
        TextTest::Exists => ("exists", None),
        TextTest::NotExists => ("notExists", None),
    };
    leaf["op"] = json!(op);
    if let Some((key, value)) = operand {
        leaf[key] = value;
    }
    leaf
}

fn number_test(mut leaf: Value, test: &NumberTest) -> Value {
    let single = |op: &str, value: f64| (op.to_owned(), vec![("value", value)]);
    let (op, operands) = match *test {
        NumberTest::Eq(v) => single("eq", v),
        NumberTest::Neq(v) => single("neq", v),
        NumberTest::Lt(v) => single("lt", v),
        NumberTest::Lte(v) => single("lte", v),
        NumberTest::Gt(v) => single("gt", v),
        NumberTest::Gte(v) => single("gte", v),
        NumberTest::Between(min, max) => ("between".into(), vec![("min", min), ("max", max)]),
        NumberTest::Exists => ("exists".into(), vec![]),
        NumberTest::NotExists => ("notExists".into(), vec![]),
    };
    leaf["op"] = json!(op);
    for (key, value) in operands {
        leaf[key] = number(value);
    }
    leaf
}

/// Whole numbers written as integers (`5`, not `5.0`), as an admin writes them.
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

impl PointsRule {
    /// The same points for every event the rule matches.
    pub fn fixed(points: i64) -> Self {
        PointsRule::Fixed(points)
    }

    /// `points` for every whole `per` of the counter `counter`.
    pub fn per_counter(counter: impl Into<String>, points: i64, per: f64) -> Self {
        PointsRule::PerCounter {
            counter: counter.into(),
            points,
            per,
        }
    }

    /// `points` for every whole `per` of a purchase's amount.
    pub fn per_amount(points: i64, per: f64) -> Self {
        PointsRule::PerAmount { points, per }
    }

    /// The written form (`{"fixed": 10}`, `{"perCounter": {...}}`, `{"perAmount": {...}}`).
    pub fn to_written(&self) -> Value {
        match self {
            PointsRule::Fixed(points) => json!({ "fixed": points }),
            PointsRule::PerCounter {
                counter,
                points,
                per,
            } => {
                json!({"perCounter": {"counter": counter, "points": points, "per": number(*per)}})
            }
            PointsRule::PerAmount { points, per } => {
                json!({"perAmount": {"points": points, "per": number(*per)}})
            }
        }
    }
}

impl Limit {
    /// At most `max` awards per member in each `per`.
    pub fn count(max: i64, per: Period) -> Self {
        Limit::Count { max, per }
    }

    /// At most `max` points per member in each `per` (the last award is cut to fit).
    pub fn points(max: i64, per: Period) -> Self {
        Limit::Points { max, per }
    }

    /// The written form (`{"count": 1, "per": "day"}`).
    pub fn to_written(&self) -> Value {
        match *self {
            Limit::Count { max, per } => json!({"count": max, "per": per}),
            Limit::Points { max, per } => json!({"points": max, "per": per}),
        }
    }
}

macro_rules! serialize_written {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.to_written().serialize(serializer)
            }
        }
    )*};
}
serialize_written!(Condition, PointsRule, Limit);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleDefinition;

    /// Every typed definition, written and compiled again, is itself: the builders and the
    /// parser agree on the written form.
    #[test]
    fn written_forms_compile_back_to_what_wrote_them() {
        let text = || {
            [
                TextTest::Eq("sport".into()),
                TextTest::Neq("news".into()),
                TextTest::In(vec!["a".into(), "b".into()]),
                TextTest::NotIn(vec!["c".into()]),
                TextTest::Contains("or".into()),
                TextTest::StartsWith("sp".into()),
                TextTest::Exists,
                TextTest::NotExists,
            ]
        };
        let numbers = || {
            [
                NumberTest::Eq(5.0),
                NumberTest::Neq(2.5),
                NumberTest::Lt(-1.0),
                NumberTest::Lte(0.0),
                NumberTest::Gt(1e3),
                NumberTest::Gte(5.0),
                NumberTest::Between(1.0, 9.5),
                NumberTest::Exists,
                NumberTest::NotExists,
            ]
        };
        let mut conditions: Vec<Condition> = Vec::new();
        conditions.extend(text().map(|t| Condition::tag("theme", t)));
        conditions.extend(text().map(Condition::Currency));
        conditions.extend(numbers().map(|t| Condition::counter("total", t)));
        conditions.extend(numbers().map(Condition::Amount));
        conditions.extend(numbers().map(Condition::ItemCount));
        conditions.push(Condition::Item(vec![
            (ItemField::Sku, vec!["SKU-1".into(), "SKU-2".into()]),
            (ItemField::Category, vec!["shoes".into()]),
        ]));
        conditions.push(Condition::any([
            Condition::tag("theme", TextTest::Eq("sport".into())),
            Condition::all([Condition::counter("total", NumberTest::Gte(5.0))]),
        ]));
        let points = [
            PointsRule::fixed(10),
            PointsRule::per_counter("total", 2, 1.0),
            PointsRule::per_counter("minutes", 1, 2.5),
            PointsRule::per_amount(1, 10.0),
        ];
        let limits = [
            Limit::count(1, Period::Day),
            Limit::points(500, Period::Week),
            Limit::count(3, Period::Month),
            Limit::points(9, Period::Year),
            Limit::count(1, Period::Lifetime),
        ];
        for (i, condition) in conditions.into_iter().enumerate() {
            let point = &points[i % points.len()];
            let limit = limits[i % limits.len()];
            let spec = RuleSpec::new("r", ConnectorId::new("con_x"), point.clone())
                .when(condition.clone())
                .limit(limit)
                .limit(Limit::count(7, Period::Day));
            let compiled =
                RuleDefinition::compile(&spec.conditions, &spec.points, &spec.limits).unwrap();
            assert_eq!(
                compiled.condition.as_ref(),
                Some(&condition),
                "{condition:?}"
            );
            assert_eq!(&compiled.points, point);
            assert_eq!(compiled.limits, [limit, Limit::count(7, Period::Day)]);
            assert_eq!(
                serde_json::to_value(&condition).unwrap(),
                spec.conditions,
                "Serialize writes the written form"
            );
        }
    }
}
