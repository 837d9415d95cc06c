//! Fuzzes the earning-rule language: the input is JSON `{conditions, points, limits}` (a missing
//! field is `null`; optional `priority` and `stopOtherRules` are used too), compiled with
//! `RuleDefinition::compile`; a rule that compiles is evaluated, alone and next to a fixed rule,
//! on fixed canonical events (a purchase and a basic event), three times in a row with the usage
//! carried over, as for three events of one member on one day.
//!
//! Asserted: every award is > 0 and at most `MAX_AWARD_POINTS`, every trace entry's points are
//! >= 0, a rule that did not fire has 0 points in the trace, and over the three evaluations the
//! rule's limits hold (at most `count` awards, at most `points` points, per period).
#![no_main]

use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use loyalty_core::connector::EventType;
use loyalty_core::event::{self, CanonicalEvent};
use loyalty_core::ids::{ConnectorId, ProgramId, RuleId};
use loyalty_core::rules::{
    apply_usage, Limit, Rule, RuleDefinition, RuleSet, Usage, MAX_AWARD_POINTS,
};
use serde_json::{json, Value};
use std::sync::OnceLock;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

fn events() -> &'static [CanonicalEvent; 2] {
    static EVENTS: OnceLock<[CanonicalEvent; 2]> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let purchase = json!({
            "clientEventId": "evt-1",
            "profile": {"kind": "email", "value": "Ann@Example.com"},
            "payload": {
                "timestamp": "2026-11-26T10:00:00Z",
                "orderId": "o-1",
                "amount": 123.45,
                "currency": "usd",
                "items": [
                    {"sku": "A", "name": "Book", "category": "books", "quantity": 2, "unitPrice": 10},
                    {"sku": "B", "category": "games", "quantity": 1.5}
                ],
                "tags": [
                    {"name": "theme", "value": "sport"},
                    {"name": "theme", "value": "news"},
                    {"name": "channel", "value": "web"},
                    {"name": "flag", "value": true}
                ],
                "counters": [
                    {"name": "total", "value": 5},
                    {"name": "total", "value": 2.5},
                    {"name": "minutes", "value": 42},
                    {"name": "negative", "value": -7},
                    {"name": "huge", "value": 1e300}
                ]
            }
        });
        let basic = json!({
            "profile": {"kind": "customerId", "value": 12345},
            "payload": {
                "tags": [{"name": "theme", "value": "sport"}],
                "counters": [{"name": "total", "value": 5}]
            }
        });
        [
            event::validate(&purchase, EventType::EcommercePurchase, now(), 30).unwrap(),
            event::validate(&basic, EventType::CustomBasic, now(), 30).unwrap(),
        ]
    })
}

fn rule(id: &str, definition: RuleDefinition, conditions: Value, points: Value, limits: Value) -> Rule {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Rule {
        id: RuleId::new(id),
        program_id: ProgramId::new("prg"),
        connector_id: ConnectorId::new("con"),
        name: id.into(),
        definition,
        conditions,
        points,
        limits,
        priority: 0,
        stop_other_rules: false,
        pending_days: None,
        active_from: None,
        active_until: None,
        created_at: at,
        updated_at: at,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let field = |name: &str| input.get(name).cloned().unwrap_or(Value::Null);
    let (conditions, points, limits) = (field("conditions"), field("points"), field("limits"));
    let Ok(definition) = RuleDefinition::compile(&conditions, &points, &limits) else {
        return;
    };
    let _ = definition.needs_purchase();
    let _ = definition.check_fits(EventType::CustomBasic);
    let _ = definition.check_fits(EventType::EcommercePurchase);

    let mut fuzzed = rule("fuzzed", definition.clone(), conditions, points, limits);
    fuzzed.priority = input
        .get("priority")
        .and_then(Value::as_i64)
        .map_or(0, |p| p.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
    fuzzed.stop_other_rules = input
        .get("stopOtherRules")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let fixed_def = RuleDefinition::compile(&Value::Null, &json!({"fixed": 1}), &Value::Null).unwrap();
    let fixed = rule("fixed", fixed_def, Value::Null, json!({"fixed": 1}), Value::Null);

    let sets = [
        RuleSet::new(vec![fuzzed.clone()]),
        RuleSet::new(vec![fixed, fuzzed]),
    ];
    for set in &sets {
        for event in events() {
            let at = event.occurred_at.unwrap_or_else(now);
            let _ = set.usage_keys(at);
            let mut usage = Usage::default();
            let mut awarded_count = 0i64;
            let mut awarded_points = 0i64;
            for _ in 0..3 {
                let evaluation = set.evaluate(event, at, &usage);
                assert_eq!(evaluation.trace.len(), set.rules().len());
                for award in &evaluation.awards {
                    assert!(award.points > 0, "award of {} points: {award:?}", award.points);
                    assert!(award.points <= MAX_AWARD_POINTS, "award over the maximum: {award:?}");
                    if award.rule_id.as_str() == "fuzzed" {
                        awarded_count += 1;
                        awarded_points += award.points;
                    }
                }
                for entry in &evaluation.trace {
                    assert!(entry.points >= 0, "trace entry with negative points: {entry:?}");
                    if !entry.fired {
                        assert_eq!(entry.points, 0, "a rule that did not fire has points: {entry:?}");
                    }
                }
                assert!(evaluation.points() >= 0);
                apply_usage(&mut usage, &evaluation.usage_increments);
            }
            // Every limit holds over the three events (all in the same period).
            for limit in &definition.limits {
                match *limit {
                    Limit::Count { max, .. } => assert!(
                        awarded_count <= max,
                        "{awarded_count} awards over a limit of {max}: {limit:?}"
                    ),
                    Limit::Points { max, .. } => assert!(
                        awarded_points <= max,
                        "{awarded_points} points over a limit of {max}: {limit:?}"
                    ),
                }
            }
        }
    }
});
