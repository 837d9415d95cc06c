//! Properties of the rule engine, for any rules and any sequence of events: points are never
//! negative, no limit is ever exceeded, replaying a sequence changes no balance, and
//! evaluation is deterministic.

use chrono::{Duration, TimeZone, Utc};
use loyalty_core::clock::FixedClock;
use loyalty_core::engine::IncomingRequest;
use loyalty_core::ledger::ItemStatus;
use loyalty_core::program::ProgramSpec;
use loyalty_core::rules::{Period, RuleSpec};
use loyalty_core::testing::article_connector_spec;
use loyalty_core::Engine;
use loyalty_store_memory::MemoryStore;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug)]
struct RuleCase {
    points: Value,
    limits: Vec<(bool, i64, &'static str)>,
    min_total: i64,
    stop: bool,
    priority: i32,
}

#[derive(Clone, Debug)]
struct EventCase {
    member: u8,
    id: u16,
    day: i64,
    hour: i64,
    total: i64,
    theme: &'static str,
}

fn rule_case() -> impl Strategy<Value = RuleCase> {
    let points = prop_oneof![
        (0i64..50).prop_map(|n| json!({"fixed": n})),
        (0i64..20, 1i64..4)
            .prop_map(|(p, u)| json!({"perCounter": {"counter": "total", "points": p, "per": u}})),
    ];
    let period = prop_oneof![
        Just("day"),
        Just("week"),
        Just("month"),
        Just("year"),
        Just("lifetime")
    ];
    let limit = (any::<bool>(), 0i64..40, period);
    (
        points,
        prop::collection::vec(limit, 0..3),
        -5i64..8,
        any::<bool>(),
        -2i32..3,
    )
        .prop_map(|(points, limits, min_total, stop, priority)| RuleCase {
            points,
            limits,
            min_total,
            stop,
            priority,
        })
}

fn event_case() -> impl Strategy<Value = EventCase> {
    (
        0u8..4,
        0u16..40,
        0i64..20,
        0i64..24,
        -10i64..30,
        prop_oneof![Just("sport"), Just("news")],
    )
        .prop_map(|(member, id, day, hour, total, theme)| EventCase {
            member,
            id,
            day,
            hour,
            total,
            theme,
        })
}

fn body(event: &EventCase, start: chrono::DateTime<Utc>) -> String {
    let at = start + Duration::days(event.day) + Duration::hours(event.hour);
    json!({
        "eventId": format!("e-{}", event.id),
        "timestamp": at.to_rfc3339(),
        "profile": {"email": format!("m{}@example.com", event.member)},
        "article": {"theme": event.theme},
        "totalArticlesRead": event.total
    })
    .to_string()
}

/// Runs the case: returns the ledger's (member, rule, at, points), the balances, and the engine.
async fn run(
    rules: &[RuleCase],
    events: &[EventCase],
) -> (
    Engine,
    loyalty_core::ids::ProgramId,
    loyalty_core::ids::ConnectorId,
    chrono::DateTime<Utc>,
) {
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let clock = Arc::new(FixedClock::new(start + Duration::days(21)));
    let engine = Engine::new(Arc::new(MemoryStore::new()), clock);
    let (program, _) = engine
        .create_program(ProgramSpec {
            name: "P".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let connector = engine
        .create_connector(&program.id, article_connector_spec())
        .await
        .unwrap();
    for (i, rule) in rules.iter().enumerate() {
        let limits: Vec<Value> = rule
            .limits
            .iter()
            .map(|(count, n, per)| {
                if *count {
                    json!({"count": n, "per": per})
                } else {
                    json!({"points": n, "per": per})
                }
            })
            .collect();
        let spec: RuleSpec = serde_json::from_value(json!({
            "name": format!("r{i}"),
            "connectorId": connector.id,
            "conditions": {"any": [{"tag": "theme", "op": "eq", "value": "sport"}, {"counter": "total", "op": "gte", "value": rule.min_total}]},
            "points": rule.points,
            "limits": limits,
            "priority": rule.priority,
            "stopOtherRules": rule.stop,
        }))
        .unwrap();
        engine.create_rule(&program.id, spec).await.unwrap();
    }
    for event in events {
        engine
            .ingest(IncomingRequest {
                connector_id: connector.id.as_str(),
                query: "token=s3cret-token",
                headers: &[],
                body: body(event, start).as_bytes(),
                test: false,
            })
            .await
            .unwrap();
    }
    (engine, program.id, connector.id, start)
}

async fn balances(engine: &Engine, program: &loyalty_core::ids::ProgramId) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for m in 0..4 {
        let email = format!("m{m}@example.com");
        if let Ok(member) = engine.find_member(program, "email", &email).await {
            out.insert(email, member.balance);
        }
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn points_are_never_negative_and_limits_never_exceeded(
        rules in prop::collection::vec(rule_case(), 1..4),
        events in prop::collection::vec(event_case(), 1..60),
    ) {
        runtime().block_on(async {
            let (engine, program, _, _) = run(&rules, &events).await;
            let all_rules = engine.list_rules(&program, None).await.unwrap();
            for (email, balance) in balances(&engine, &program).await {
                let member = engine.find_member(&program, "email", &email).await.unwrap();
                let ledger = engine.store().ledger_entries(&program, &member.id).await.unwrap();
                prop_assert!(ledger.iter().all(|l| l.points > 0), "every ledger entry is positive");
                prop_assert_eq!(balance, ledger.iter().map(|l| l.points).sum::<i64>());
                for (rule, case) in all_rules.iter().zip(&rules) {
                    for (count, max, per) in &case.limits {
                        let period = match *per { "day" => Period::Day, "week" => Period::Week, "month" => Period::Month, "year" => Period::Year, _ => Period::Lifetime };
                        let mut used: HashMap<String, (i64, i64)> = HashMap::new();
                        for line in ledger.iter().filter(|l| l.rule_id.as_ref() == Some(&rule.id)) {
                            let entry = used.entry(period.key(line.occurred_at)).or_default();
                            entry.0 += 1;
                            entry.1 += line.points;
                        }
                        for (key, (n, points)) in used {
                            if *count {
                                prop_assert!(n <= *max, "{} awards in {} over the limit {}", n, key, max);
                            } else {
                                prop_assert!(points <= *max, "{} points in {} over the limit {}", points, key, max);
                            }
                        }
                    }
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn replaying_a_sequence_changes_no_balance(
        rules in prop::collection::vec(rule_case(), 1..3),
        events in prop::collection::vec(event_case(), 1..40),
    ) {
        runtime().block_on(async {
            let (engine, program, connector, start) = run(&rules, &events).await;
            let before = balances(&engine, &program).await;
            for event in &events {
                let response = engine
                    .ingest(IncomingRequest {
                        connector_id: connector.as_str(),
                        query: "token=s3cret-token",
                        headers: &[],
                        body: body(event, start).as_bytes(),
                        test: false,
                    })
                    .await
                    .unwrap();
                prop_assert_eq!(response.results[0].status(), ItemStatus::Duplicate);
            }
            prop_assert_eq!(before, balances(&engine, &program).await);
            Ok(())
        })?;
    }

    #[test]
    fn evaluation_is_deterministic(
        rules in prop::collection::vec(rule_case(), 1..4),
        events in prop::collection::vec(event_case(), 1..30),
    ) {
        runtime().block_on(async {
            let (one, p1, _, _) = run(&rules, &events).await;
            let (two, p2, _, _) = run(&rules, &events).await;
            let b1: Vec<i64> = { let mut v: Vec<_> = balances(&one, &p1).await.into_iter().collect(); v.sort(); v.into_iter().map(|(_, b)| b).collect() };
            let b2: Vec<i64> = { let mut v: Vec<_> = balances(&two, &p2).await.into_iter().collect(); v.sort(); v.into_iter().map(|(_, b)| b).collect() };
            prop_assert_eq!(b1, b2);
            Ok(())
        })?;
    }
}
