use super::*;
use crate::error::Error;
use crate::event::CanonicalEvent;
use crate::event::{Counter, Tag};
use crate::ids::{ConnectorId, ProgramId, RuleId};
use chrono::TimeZone;
use chrono::{DateTime, Datelike, Utc};
use serde_json::json;
use serde_json::Value;

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
        pending_days: None,
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
        refund: None,
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

#[test]
fn periods_reset_at_the_next_utc_boundary() {
    let at = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    };
    for (period, now, next) in [
        (
            Period::Day,
            "2026-11-26T12:00:00Z",
            Some("2026-11-27T00:00:00Z"),
        ),
        (
            Period::Day,
            "2026-12-31T23:59:59Z",
            Some("2027-01-01T00:00:00Z"),
        ),
        (
            Period::Week,
            "2026-11-26T12:00:00Z",
            Some("2026-11-30T00:00:00Z"),
        ),
        (
            Period::Week,
            "2026-11-30T00:00:00Z",
            Some("2026-12-07T00:00:00Z"),
        ),
        (
            Period::Week,
            "2026-11-29T23:00:00Z",
            Some("2026-11-30T00:00:00Z"),
        ),
        (
            Period::Month,
            "2026-11-26T12:00:00Z",
            Some("2026-12-01T00:00:00Z"),
        ),
        (
            Period::Month,
            "2026-12-15T00:00:00Z",
            Some("2027-01-01T00:00:00Z"),
        ),
        (
            Period::Year,
            "2026-11-26T12:00:00Z",
            Some("2027-01-01T00:00:00Z"),
        ),
        (Period::Lifetime, "2026-11-26T12:00:00Z", None),
    ] {
        assert_eq!(
            period.next_start(at(now)),
            next.map(at),
            "{period:?} at {now}"
        );
        if let Some(next) = next {
            // The boundary starts another period, and the instant before it is still this one.
            assert_ne!(period.key(at(next)), period.key(at(now)));
            assert_eq!(
                period.key(at(next) - chrono::Duration::seconds(1)),
                period.key(at(now))
            );
        }
    }
}
