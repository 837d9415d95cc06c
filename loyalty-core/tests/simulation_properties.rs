//! Simulation tells the truth: for any sequence of deliveries (single items and bulks,
//! duplicates within and across requests, unknown members while the program enrols and while
//! it does not, limits, test and live data), simulating a request gives, item by item, the
//! status, points, awards and rule trace that ingesting the same request gives right after.

use chrono::{Duration, TimeZone, Utc};
use loyalty_core::clock::FixedClock;
use loyalty_core::engine::{IncomingRequest, SimulatedItem};
use loyalty_core::ids::{ConnectorId, ProgramId};
use loyalty_core::program::{Program, ProgramSpec};
use loyalty_core::rules::RuleSpec;
use loyalty_core::testing::article_connector_spec;
use loyalty_core::{Engine, Limits};
use loyalty_store_memory::MemoryStore;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone, Debug)]
struct Item {
    member: u8,
    id: u8,
    day: i64,
    theme: &'static str,
    total: i64,
}

#[derive(Clone, Debug)]
enum Step {
    /// One request: one item, or a bulk of several.
    Deliver {
        items: Vec<Item>,
        bulk: bool,
        test: bool,
    },
    /// The program starts or stops enrolling unknown members.
    SetEnrolment(bool),
}

fn item() -> impl Strategy<Value = Item> {
    (
        0u8..5,
        0u8..8,
        0i64..3,
        prop_oneof![Just("sport"), Just("news")],
        0i64..8,
    )
        .prop_map(|(member, id, day, theme, total)| Item {
            member,
            id,
            day,
            theme,
            total,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (prop::collection::vec(item(), 1..4), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(items, bulk, test)| Step::Deliver { bulk: bulk || items.len() > 1, items, test }),
        1 => any::<bool>().prop_map(Step::SetEnrolment),
    ]
}

fn payload(item: &Item) -> Value {
    let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap() + Duration::days(item.day);
    json!({
        "eventId": format!("e-{}", item.id),
        "timestamp": at.to_rfc3339(),
        "profile": {"email": format!("m{}@example.com", item.member)},
        "article": {"theme": item.theme},
        "totalArticlesRead": item.total
    })
}

async fn setup(enrol: bool) -> (Engine, ProgramId, ConnectorId) {
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 3, 5, 0, 0, 0).unwrap(),
    ));
    // Reloaded for every request, so that a change of the program's enrolment shows at once.
    let limits = Limits {
        connector_cache_ttl: Duration::zero(),
        ..Limits::default()
    };
    let engine = Engine::with_limits(Arc::new(MemoryStore::new()), clock, limits);
    let (program, _) = engine
        .create_program(ProgramSpec {
            name: "P".into(),
            enroll_unknown_members: Some(enrol),
            ..Default::default()
        })
        .await
        .unwrap();
    let connector = engine
        .create_connector(&program.id, article_connector_spec())
        .await
        .unwrap();
    for spec in [
        json!({"name": "sport", "conditions": {"tag": "theme", "op": "eq", "value": "sport"},
               "points": {"fixed": 10}, "limits": [{"count": 2, "per": "day"}], "priority": 1}),
        json!({"name": "readers", "conditions": {"counter": "total", "op": "gte", "value": 3},
               "points": {"perCounter": {"counter": "total", "points": 2, "per": 1}},
               "limits": [{"points": 25, "per": "week"}], "priority": 2}),
    ] {
        let mut spec = spec;
        spec["connectorId"] = json!(connector.id);
        let spec: RuleSpec = serde_json::from_value(spec).unwrap();
        engine.create_rule(&program.id, spec).await.unwrap();
    }
    (engine, program.id, connector.id)
}

async fn set_enrolment(engine: &Engine, program: &ProgramId, enrol: bool) {
    let current = engine.get_program(program).await.unwrap();
    let changed = Program {
        enroll_unknown_members: enrol,
        ..current
    };
    engine.store().insert_program(&changed).await.unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn simulating_a_request_predicts_ingesting_it(
        enrol in any::<bool>(),
        steps in prop::collection::vec(step(), 1..30),
    ) {
        runtime().block_on(async {
            let (engine, program, connector) = setup(enrol).await;
            for step in &steps {
                let (items, bulk, test) = match step {
                    Step::SetEnrolment(enrol) => {
                        set_enrolment(&engine, &program, *enrol).await;
                        continue;
                    }
                    Step::Deliver { items, bulk, test } => (items, *bulk, *test),
                };
                let body = if bulk {
                    Value::Array(items.iter().map(payload).collect())
                } else {
                    payload(&items[0])
                };
                let simulated: Vec<SimulatedItem> = engine
                    .simulate(&program, &connector, body.clone(), None, Some(test))
                    .await
                    .unwrap()
                    .results;
                let text = body.to_string();
                let ingested = engine
                    .ingest(IncomingRequest {
                        connector_id: connector.as_str(),
                        query: "token=s3cret-token",
                        headers: &[],
                        body: text.as_bytes(),
                        test,
                    })
                    .await
                    .unwrap();
                prop_assert_eq!(simulated.len(), ingested.results.len());
                for (simulated, result) in simulated.iter().zip(&ingested.results) {
                    let logged = engine.get_event(&program, &result.event_id).await.unwrap();
                    let context = format!("item {} of {step:?}", result.index);
                    prop_assert_eq!(simulated.status, result.status(), "{}", context);
                    prop_assert_eq!(simulated.reason.as_deref(), result.reason(), "{}", context);
                    prop_assert_eq!(simulated.points, result.points(), "{}", context);
                    prop_assert_eq!(&simulated.awards, &logged.awards, "{}", context);
                    prop_assert_eq!(&simulated.trace, &logged.trace.unwrap_or_default(), "{}", context);
                    if let Some(original) = &simulated.original_event_id {
                        prop_assert_eq!(Some(original), result.original_event_id(), "{}", context);
                    }
                }
            }
            Ok(())
        })?;
    }
}
