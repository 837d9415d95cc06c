//! Fuzzes canonical-event validation: the input is taken as a mapping's output (any JSON),
//! validated as `custom.basic` and as `ecommerce.purchase`, and, when valid, its profile is
//! normalised into a member identifier and a fixed set of rules (touching every kind of
//! condition and points) is evaluated on it.
//!
//! Asserted: a valid event respects the documented bounds (tags, counters, items, finite
//! numbers, timestamp window), a normalised e-mail is lower-case, and every award is > 0.
#![no_main]

use chrono::{DateTime, Duration, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use loyalty_core::connector::EventType;
use loyalty_core::event::{self, MAX_COUNTERS, MAX_ITEMS, MAX_TAGS};
use loyalty_core::ids::{ConnectorId, ProgramId, RuleId};
use loyalty_core::member;
use loyalty_core::rules::{Rule, RuleDefinition, RuleSet, Usage};
use serde_json::{json, Value};
use std::sync::OnceLock;

const MAX_AGE_DAYS: u32 = 30;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

fn rule(id: &str, conditions: Value, points: Value, limits: Value) -> Rule {
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
        pending_days: None,
        active_from: None,
        active_until: None,
        created_at: at,
        updated_at: at,
    }
}

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        RuleSet::new(vec![
            rule(
                "tags",
                json!({"all": [
                    {"tag": "event", "op": "exists"},
                    {"any": [
                        {"tag": "theme", "op": "in", "values": ["sport", "news"]},
                        {"tag": "page_path", "op": "startsWith", "value": "/"},
                        {"tag": "title", "op": "contains", "value": "a"}
                    ]}
                ]}),
                json!({"fixed": 10}),
                json!([{"count": 1, "per": "day"}]),
            ),
            rule(
                "counter",
                json!({"counter": "total", "op": "between", "min": 1, "max": 1e12}),
                json!({"perCounter": {"counter": "total", "points": 3, "per": 0.5}}),
                json!([{"points": 100, "per": "week"}]),
            ),
            rule(
                "big-counter",
                json!({"counter": "total", "op": "gt", "value": 0}),
                json!({"perCounter": {"counter": "total", "points": 1000000000000i64, "per": 1e-300}}),
                Value::Null,
            ),
            rule(
                "purchase",
                json!({"all": [
                    {"field": "currency", "op": "eq", "value": "USD"},
                    {"field": "amount", "op": "gte", "value": 1},
                    {"field": "itemCount", "op": "neq", "value": 3}
                ]}),
                json!({"perAmount": {"points": 2, "per": 1}}),
                json!([{"points": 500, "per": "month"}, {"count": 3, "per": "year"}]),
            ),
            rule(
                "item",
                json!({"item": {"sku": ["A", "B"], "category": "books"}}),
                json!({"fixed": 5}),
                json!([{"count": 1, "per": "lifetime"}]),
            ),
        ])
    })
}

fn check_event(mapped: &Value, event: &event::CanonicalEvent, event_type: EventType) {
    let received = now();
    assert!(event.tags.len() <= MAX_TAGS, "too many tags");
    assert!(event.counters.len() <= MAX_COUNTERS, "too many counters");
    for counter in &event.counters {
        assert!(counter.value.is_finite(), "non-finite counter {counter:?}");
        assert!(!counter.name.trim().is_empty());
    }
    for tag in &event.tags {
        assert!(!tag.name.trim().is_empty());
    }
    if let Some(at) = event.occurred_at {
        assert!(at <= received + Duration::minutes(5), "event in future accepted");
        assert!(
            at >= received - Duration::days(i64::from(MAX_AGE_DAYS)),
            "event too old accepted"
        );
    }
    match (event_type, &event.purchase) {
        (EventType::CustomBasic, p) => assert!(p.is_none()),
        (EventType::EcommercePurchase, None) => panic!("purchase event without purchase"),
        (EventType::EcommercePurchase, Some(p)) => {
            assert!(p.amount.is_finite() && p.amount >= 0.0, "amount {}", p.amount);
            assert!(p.items.len() <= MAX_ITEMS);
            assert!(p.currency.len() == 3 && p.currency.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(!p.order_id.is_empty());
            for item in &p.items {
                assert!(item.quantity.is_finite() && item.quantity > 0.0);
                assert!(item.unit_price.is_none_or(|u| u.is_finite() && u >= 0.0));
            }
        }
    }

    match member::normalize(mapped.get("profile"), "email") {
        Ok(identifier) => {
            assert!(!identifier.value.is_empty());
            assert!(!identifier.kind.is_empty());
            if identifier.kind == "email" {
                assert_eq!(identifier.value, identifier.value.to_lowercase());
                assert!(identifier.value.contains('@'));
            }
            // Normalisation is idempotent: the normalised identifier normalises to itself.
            let again = member::normalize(
                Some(&json!({"kind": identifier.kind, "value": identifier.value})),
                "email",
            );
            assert_eq!(again.as_ref(), Ok(&identifier), "normalize is not idempotent");
        }
        Err(reason) => {
            let _ = reason.as_str();
        }
    }

    let at = event.occurred_at.unwrap_or(received);
    let evaluation = rules().evaluate(event, at, &Usage::default());
    for award in &evaluation.awards {
        assert!(award.points > 0, "award of {} points", award.points);
        assert!(award.points <= loyalty_core::rules::MAX_AWARD_POINTS);
    }
    for entry in &evaluation.trace {
        assert!(entry.points >= 0, "trace entry with {} points", entry.points);
    }
    let _ = rules().usage_keys(at);
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for event_type in [EventType::CustomBasic, EventType::EcommercePurchase] {
        match event::validate(&value, event_type, now(), MAX_AGE_DAYS) {
            Ok(event) => check_event(&value, &event, event_type),
            Err(error) => {
                assert!(
                    matches!(
                        error.code.as_str(),
                        "validation_failed" | "event_in_future" | "event_too_old"
                    ),
                    "unknown error code {error:?}"
                );
            }
        }
    }
});
