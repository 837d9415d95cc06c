//! The storage conformance suite: one set of behaviours every [`Store`] must show, driven
//! through the [`Engine`] exactly as the HTTP layer drives it. A store's tests run it with
//! [`store_conformance_suite!`](crate::store_conformance_suite):
//!
//! ```ignore
//! async fn new_store() -> Arc<dyn Store> { Arc::new(MemoryStore::new()) }
//! loyalty_core::store_conformance_suite!(new_store);
//! ```

use crate::clock::FixedClock;
use crate::connector::ConnectorSpec;
use crate::engine::{Engine, IncomingRequest, IngestResponse, Limits};
use crate::ids::{ConnectorId, MemberId, ProgramId};
use crate::ledger::{EventFilter, ItemStatus};
use crate::program::ProgramSpec;
use crate::rules::RuleSpec;
use crate::store::Store;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Generates one `#[tokio::test]` per behaviour of the suite, each with a fresh store from
/// `$make` (an async fn returning `Arc<dyn Store>`).
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:path) => {
        $crate::store_conformance_suite!(@tests $make;
            accepts_and_awards_points,
            duplicates_award_once,
            live_and_test_are_separate_namespaces,
            rejected_and_ignored_items_do_not_claim_their_id,
            unknown_members_are_ignored_when_enrolment_is_off,
            bulk_items_are_processed_one_by_one,
            concurrent_deliveries_accept_once_and_respect_limits,
            point_limits_cut_the_last_award,
            purge_removes_only_test_data,
            test_members_become_live,
            event_log_filters_and_pages,
            activity_lists_events_and_ledger_newest_first,
            programs_are_isolated,
            connectors_and_rules_round_trip,
            what_is_stored_comes_back_as_written,
            balances_equal_ledger_sums
        );
    };
    (@tests $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::testing::$name($make().await).await;
            }
        )*
    };
}

pub const TOKEN: &str = "s3cret-token";
pub const SEED_MAPPING: &str = r#"{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead}]} }"#;

/// The time every suite test runs at.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

/// A program with the seed "Article Read" connector (query token) and, if `limits` is given,
/// the seed rule: 10 points for a sport article when `total >= 5`.
#[derive(Debug)]
pub struct Fixture {
    pub engine: Arc<Engine>,
    pub clock: Arc<FixedClock>,
    pub program: ProgramId,
    pub connector: ConnectorId,
}

impl Fixture {
    pub async fn new(store: Arc<dyn Store>, limits: Option<Value>) -> Self {
        Self::with_program(
            store,
            limits,
            ProgramSpec {
                name: "Readers".into(),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn with_program(
        store: Arc<dyn Store>,
        limits: Option<Value>,
        spec: ProgramSpec,
    ) -> Self {
        let clock = Arc::new(FixedClock::new(now()));
        // Generous mapping time: the suite runs on busy CI machines, and a mapping timeout
        // is not what it tests.
        let defaults = Limits::default();
        let engine_limits = Limits {
            mapping: crate::mapping::MappingLimits {
                timeout: std::time::Duration::from_secs(5),
                ..defaults.mapping
            },
            max_request_mapping_time: std::time::Duration::from_secs(60),
            ..defaults
        };
        let engine = Arc::new(Engine::with_limits(store, clock.clone(), engine_limits));
        let (program, _) = engine.create_program(spec).await.unwrap();
        let connector = engine
            .create_connector(&program.id, article_connector_spec())
            .await
            .unwrap();
        let fixture = Self {
            engine,
            clock,
            program: program.id,
            connector: connector.id,
        };
        if let Some(limits) = limits {
            fixture.add_rule("Sport readers", limits).await;
        }
        fixture
    }

    pub async fn add_rule(&self, name: &str, limits: Value) {
        let spec: RuleSpec = serde_json::from_value(json!({
            "name": name,
            "connectorId": self.connector,
            "conditions": {"all": [
                {"tag": "theme", "op": "eq", "value": "sport"},
                {"counter": "total", "op": "gte", "value": 5}
            ]},
            "points": {"fixed": 10},
            "limits": limits,
        }))
        .unwrap();
        self.engine.create_rule(&self.program, spec).await.unwrap();
    }

    pub async fn send(&self, body: &str, test: bool) -> IngestResponse {
        self.engine
            .ingest(IncomingRequest {
                connector_id: self.connector.as_str(),
                query: "token=s3cret-token",
                headers: &[],
                body: body.as_bytes(),
                test,
            })
            .await
            .unwrap()
    }

    pub async fn balance(&self, email: &str) -> Option<i64> {
        self.engine
            .find_member(&self.program, "email", email)
            .await
            .ok()
            .map(|m| m.balance)
    }

    pub async fn member(&self, email: &str) -> MemberId {
        self.engine
            .find_member(&self.program, "email", email)
            .await
            .unwrap()
            .id
    }
}

pub fn article_connector_spec() -> ConnectorSpec {
    serde_json::from_value(json!({
        "name": "Article Read",
        "eventType": "custom.basic",
        "auth": {"type": "queryToken", "param": "token", "token": TOKEN},
        "mapping": SEED_MAPPING,
    }))
    .unwrap()
}

/// The seed rule of docs/http-api.md on `connector`: 10 points for a sport article when `total >= 5`,
/// at most `per_day` times a day.
pub fn seed_rule_spec(connector: &ConnectorId, per_day: i64) -> RuleSpec {
    serde_json::from_value(json!({
        "name": "Sport readers",
        "connectorId": connector,
        "conditions": {"all": [
            {"tag": "theme", "op": "eq", "value": "sport"},
            {"counter": "total", "op": "gte", "value": 5}]},
        "points": {"fixed": 10},
        "limits": [{"count": per_day, "per": "day"}]
    }))
    .unwrap()
}

/// An "Article Read" payload as the seed scenario sends it.
pub fn article(event_id: &str, email: &str, theme: &str, total: i64) -> Value {
    json!({
        "eventId": event_id,
        "timestamp": "2026-11-26T11:00:00Z",
        "profile": {"email": email},
        "article": {"theme": theme, "title": "A match"},
        "totalArticlesRead": total
    })
}

fn statuses(response: &IngestResponse) -> Vec<ItemStatus> {
    response.results.iter().map(|r| r.status()).collect()
}

pub async fn accepts_and_awards_points(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    let response = f
        .send(
            &article("a-1", "Ann@Example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(statuses(&response), [ItemStatus::Accepted]);
    let result = &response.results[0];
    assert_eq!(result.points(), 10);
    assert_eq!(result.client_event_id.as_deref(), Some("a-1"));
    assert_eq!(f.balance("ann@example.com").await, Some(10));
    let logged = f
        .engine
        .get_event(&f.program, &result.event_id)
        .await
        .unwrap();
    assert_eq!(logged.status, ItemStatus::Accepted);
    assert_eq!(logged.points, 10);
    assert_eq!(logged.member_id.as_ref(), result.member_id());
    assert_eq!(logged.raw.to_value()["eventId"], "a-1");
    assert_eq!(
        logged.mapped.as_ref().unwrap().to_value()["clientEventId"],
        "a-1"
    );
    let trace = logged.trace.unwrap();
    assert_eq!(trace.len(), 1);
    assert!(trace[0].fired);
    // A non-matching article is accepted with 0 points, and the trace says why.
    let response = f
        .send(
            &article("a-2", "ann@example.com", "news", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(
        (response.results[0].status(), response.results[0].points()),
        (ItemStatus::Accepted, 0)
    );
    let logged = f
        .engine
        .get_event(&f.program, &response.results[0].event_id)
        .await
        .unwrap();
    assert!(logged.trace.unwrap()[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("/conditions/all/0"));
    assert_eq!(f.balance("ann@example.com").await, Some(10));
}

pub async fn duplicates_award_once(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    let body = article("a-1", "ann@example.com", "sport", 5).to_string();
    let first = f.send(&body, false).await;
    let second = f.send(&body, false).await;
    assert_eq!(statuses(&second), [ItemStatus::Duplicate]);
    assert_eq!(
        second.results[0].original_event_id(),
        Some(&first.results[0].event_id)
    );
    assert_eq!(second.results[0].points(), 0);
    assert_eq!(f.balance("ann@example.com").await, Some(10));
    // Both deliveries are in the log, under the ids they were answered with.
    let duplicate = f
        .engine
        .get_event(&f.program, &second.results[0].event_id)
        .await
        .unwrap();
    assert_eq!(duplicate.status, ItemStatus::Duplicate);
    assert_eq!(
        duplicate.original_event_id.as_ref(),
        Some(&first.results[0].event_id)
    );
    // Without a clientEventId, the same payload derives the same id.
    let anonymous = json!({"profile": {"email": "bob@example.com"}, "article": {"theme": "sport"}, "totalArticlesRead": 9}).to_string();
    let one = f.send(&anonymous, false).await;
    let two = f.send(&anonymous, false).await;
    assert_eq!(
        (one.results[0].status(), two.results[0].status()),
        (ItemStatus::Accepted, ItemStatus::Duplicate)
    );
    assert_eq!(
        one.results[0].client_event_id,
        two.results[0].client_event_id
    );
    assert_eq!(f.balance("bob@example.com").await, Some(10));
}

pub async fn live_and_test_are_separate_namespaces(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    let body = article("a-1", "ann@example.com", "sport", 5).to_string();
    let test = f.send(&body, true).await;
    assert_eq!(statuses(&test), [ItemStatus::Accepted]);
    let live = f.send(&body, false).await;
    assert_eq!(statuses(&live), [ItemStatus::Accepted]);
    let test_again = f.send(&body, true).await;
    assert_eq!(statuses(&test_again), [ItemStatus::Duplicate]);
    assert_eq!(
        test_again.results[0].original_event_id(),
        Some(&test.results[0].event_id)
    );
    assert_eq!(f.balance("ann@example.com").await, Some(20));
}

pub async fn rejected_and_ignored_items_do_not_claim_their_id(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    let mut broken = article("a-1", "ann@example.com", "sport", 5);
    broken["totalArticlesRead"] = json!("many");
    let response = f.send(&broken.to_string(), false).await;
    assert_eq!(statuses(&response), [ItemStatus::Rejected]);
    let error = response.results[0].error().unwrap();
    assert_eq!(
        (error.code.as_str(), error.path.as_deref()),
        ("validation_failed", Some("/payload/counters/0/value"))
    );
    let no_email = article("a-1", "", "sport", 5);
    let response = f.send(&no_email.to_string(), false).await;
    assert_eq!(statuses(&response), [ItemStatus::Ignored]);
    assert_eq!(response.results[0].reason(), Some("missing_identifier"));
    let bad_email = article("a-1", "not-an-email", "sport", 5);
    let response = f.send(&bad_email.to_string(), false).await;
    assert_eq!(response.results[0].reason(), Some("invalid_identifier"));
    let fixed = f
        .send(
            &article("a-1", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(statuses(&fixed), [ItemStatus::Accepted]);
    let log = f
        .engine
        .list_events(&f.program, &EventFilter::default(), None, None)
        .await
        .unwrap();
    assert_eq!(log.items.len(), 4, "every item is logged");
    assert_eq!(log.items[0].status, ItemStatus::Accepted);
    assert_eq!(log.items[3].status, ItemStatus::Rejected);
}

pub async fn unknown_members_are_ignored_when_enrolment_is_off(store: Arc<dyn Store>) {
    let spec = ProgramSpec {
        name: "Closed".into(),
        enroll_unknown_members: Some(false),
        ..Default::default()
    };
    let f = Fixture::with_program(store, Some(json!([])), spec).await;
    let response = f
        .send(
            &article("a-1", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(statuses(&response), [ItemStatus::Ignored]);
    assert_eq!(response.results[0].reason(), Some("unknown_member"));
    assert_eq!(f.balance("ann@example.com").await, None);
    let logged = f
        .engine
        .get_event(&f.program, &response.results[0].event_id)
        .await
        .unwrap();
    assert_eq!(logged.reason.as_deref(), Some("unknown_member"));
}

pub async fn bulk_items_are_processed_one_by_one(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    let body = json!([
        article("b-1", "ann@example.com", "sport", 5),
        article("b-2", "", "sport", 5),
        article("b-1", "ann@example.com", "sport", 5),
        {"eventId": "b-3", "profile": {"email": "ann@example.com"}, "totalArticlesRead": "x"},
        42,
        article("b-4", "bob@example.com", "sport", 7),
    ])
    .to_string();
    let response = f.send(&body, false).await;
    use ItemStatus::*;
    assert_eq!(
        statuses(&response),
        [Accepted, Ignored, Duplicate, Rejected, Rejected, Accepted]
    );
    assert_eq!(
        (
            response.accepted,
            response.duplicates,
            response.ignored,
            response.rejected
        ),
        (2, 1, 1, 2)
    );
    assert_eq!(
        response.results.iter().map(|r| r.index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        response.results[2].original_event_id(),
        Some(&response.results[0].event_id)
    );
    assert_eq!(
        response.results[4].error().unwrap().path.as_deref(),
        Some("/4")
    );
    for result in &response.results {
        let logged = f
            .engine
            .get_event(&f.program, &result.event_id)
            .await
            .unwrap();
        assert_eq!(logged.status, result.status());
    }
    assert_eq!(f.balance("ann@example.com").await, Some(10));
    assert_eq!(f.balance("bob@example.com").await, Some(10));
}

/// Issue 2, point 8: 16 concurrent tasks, a few thousand deliveries, many duplicates, many for
/// one member under a limited rule.
pub async fn concurrent_deliveries_accept_once_and_respect_limits(store: Arc<dyn Store>) {
    let f = Arc::new(Fixture::new(store, Some(json!([{"count": 25, "per": "day"}]))).await);
    let distinct = 600;
    let tasks = 16;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            let mut results = Vec::new();
            // Every task sends every event id, in a different order, some as bulks.
            let mut ids: Vec<usize> = (0..distinct).collect();
            ids.rotate_left(task * 37 % distinct);
            for chunk in ids.chunks(if task % 2 == 0 { 1 } else { 8 }) {
                let items: Vec<Value> = chunk
                    .iter()
                    .map(|i| {
                        let email = if i % 3 == 0 {
                            "hot@example.com".to_owned()
                        } else {
                            format!("m{}@example.com", i % 50)
                        };
                        article(&format!("e-{i}"), &email, "sport", 5)
                    })
                    .collect();
                let body = if items.len() == 1 {
                    items[0].to_string()
                } else {
                    Value::Array(items).to_string()
                };
                let response = f.send(&body, false).await;
                results.extend(
                    response
                        .results
                        .into_iter()
                        .map(|r| (r.status(), r.points(), r.client_event_id.unwrap()))
                        .map(|(status, points, id)| (id, status, points)),
                );
            }
            results
        }));
    }
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    for handle in handles {
        for (id, status, _) in handle.await.unwrap() {
            total += 1;
            match status {
                ItemStatus::Accepted => *accepted.entry(id).or_default() += 1,
                ItemStatus::Duplicate => {}
                other => panic!("unexpected status {other:?}"),
            }
        }
    }
    assert_eq!(total, distinct * tasks);
    assert_eq!(accepted.len(), distinct, "every event id accepted");
    assert!(
        accepted.values().all(|n| *n == 1),
        "each event id accepted exactly once"
    );
    assert_eq!(
        f.balance("hot@example.com").await,
        Some(250),
        "25 awards a day, no more"
    );
    let hot = f.member("hot@example.com").await;
    let ledger = f
        .engine
        .store()
        .ledger_entries(&f.program, &hot)
        .await
        .unwrap();
    assert_eq!(ledger.len(), 25);
    for m in 0..50 {
        let email = format!("m{m}@example.com");
        if let Some(balance) = f.balance(&email).await {
            let id = f.member(&email).await;
            let sum: i64 = f
                .engine
                .store()
                .ledger_entries(&f.program, &id)
                .await
                .unwrap()
                .iter()
                .map(|l| l.points)
                .sum();
            assert_eq!(balance, sum);
            assert!(balance <= 250);
        }
    }
}

pub async fn point_limits_cut_the_last_award(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([{"points": 25, "per": "week"}]))).await;
    let mut points = Vec::new();
    for i in 0..4 {
        let response = f
            .send(
                &article(&format!("p-{i}"), "ann@example.com", "sport", 5).to_string(),
                false,
            )
            .await;
        points.push(response.results[0].points());
    }
    assert_eq!(points, [10, 10, 5, 0]);
    assert_eq!(f.balance("ann@example.com").await, Some(25));
}

pub async fn purge_removes_only_test_data(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([{"count": 2, "per": "day"}]))).await;
    f.send(
        &article("l-1", "ann@example.com", "sport", 5).to_string(),
        false,
    )
    .await;
    let test_run = json!([
        article("t-1", "ann@example.com", "sport", 5),
        article("t-2", "tess@example.com", "sport", 5),
        article("t-3", "", "sport", 5),
    ]);
    let response = f.send(&test_run.to_string(), true).await;
    assert_eq!(response.accepted, 2);
    assert_eq!(f.balance("ann@example.com").await, Some(20));
    // The test award counts toward the limit until purged.
    let blocked = f
        .send(
            &article("l-2", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(blocked.results[0].points(), 0);
    let tess = f
        .engine
        .find_member(&f.program, "email", "tess@example.com")
        .await
        .unwrap();
    assert!(tess.test);
    let counts = f
        .engine
        .purge_test_data(&f.program, &f.connector)
        .await
        .unwrap();
    assert_eq!(
        (counts.events, counts.ledger_entries, counts.members),
        (3, 2, 1)
    );
    assert_eq!(f.balance("ann@example.com").await, Some(10));
    assert_eq!(f.balance("tess@example.com").await, None);
    // Ann's activity keeps her live items only, and pages over them one at a time.
    let ann = f.member("ann@example.com").await;
    let mut activity = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = f
            .engine
            .member_activity(&f.program, &ann, Some(1), cursor.as_deref())
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1, "no empty page before the end");
        activity.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        activity.len(),
        3,
        "l-1, its ledger entry and l-2 (no points): {activity:?}"
    );
    assert!(activity.iter().all(|a| !a.test));
    // Limits count as if the test events never happened.
    let live = f
        .send(
            &article("l-3", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(live.results[0].points(), 10);
    // Purged test ids can be sent again, for test or for real.
    let again = f
        .send(
            &article("t-1", "ann@example.com", "news", 5).to_string(),
            true,
        )
        .await;
    assert_eq!(again.results[0].status(), ItemStatus::Accepted);
    let log = f
        .engine
        .list_events(&f.program, &EventFilter::default(), Some(500), None)
        .await
        .unwrap();
    assert_eq!(
        log.items.iter().filter(|e| !e.test).count(),
        3,
        "live events untouched"
    );
    let nothing = f
        .engine
        .purge_test_data(&f.program, &f.connector)
        .await
        .unwrap();
    assert_eq!(nothing.events, 1);
}

pub async fn test_members_become_live(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    f.send(
        &article("t-1", "ann@example.com", "sport", 5).to_string(),
        true,
    )
    .await;
    let member = f
        .engine
        .find_member(&f.program, "email", "ann@example.com")
        .await
        .unwrap();
    assert!(member.test);
    f.send(
        &article("l-1", "ann@example.com", "sport", 5).to_string(),
        false,
    )
    .await;
    let member = f
        .engine
        .find_member(&f.program, "email", "ann@example.com")
        .await
        .unwrap();
    assert!(!member.test);
    let counts = f
        .engine
        .purge_test_data(&f.program, &f.connector)
        .await
        .unwrap();
    assert_eq!(counts.members, 0, "a member with live activity stays");
    assert_eq!(f.balance("ann@example.com").await, Some(10));
}

pub async fn event_log_filters_and_pages(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    for i in 0..7 {
        f.send(
            &article(&format!("e-{i}"), "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    }
    f.send(
        &article("e-0", "ann@example.com", "sport", 5).to_string(),
        false,
    )
    .await;
    f.send(&article("e-x", "", "sport", 5).to_string(), false)
        .await;
    let all = |limit, cursor: Option<String>| {
        let engine = f.engine.clone();
        let program = f.program.clone();
        async move {
            engine
                .list_events(
                    &program,
                    &EventFilter::default(),
                    Some(limit),
                    cursor.as_deref(),
                )
                .await
                .unwrap()
        }
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = all(4, cursor).await;
        seen.extend(page.items.iter().map(|e| (e.seq, e.id.clone())));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 9);
    assert!(
        seen.windows(2).all(|w| w[0].0 > w[1].0),
        "newest first, no overlap"
    );
    let unique: HashSet<_> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(unique.len(), 9);
    let filter = |status| EventFilter {
        status: Some(status),
        ..Default::default()
    };
    let count = |status| {
        let engine = f.engine.clone();
        let program = f.program.clone();
        async move {
            engine
                .list_events(&program, &filter(status), Some(100), None)
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(count(ItemStatus::Accepted).await, 7);
    assert_eq!(count(ItemStatus::Duplicate).await, 1);
    assert_eq!(count(ItemStatus::Ignored).await, 1);
    assert_eq!(count(ItemStatus::Rejected).await, 0);
    let member = f.member("ann@example.com").await;
    let by_member = EventFilter {
        member_id: Some(member),
        ..Default::default()
    };
    assert_eq!(
        f.engine
            .list_events(&f.program, &by_member, Some(100), None)
            .await
            .unwrap()
            .items
            .len(),
        8
    );
    let by_connector = EventFilter {
        connector_id: Some(ConnectorId::new("con_other")),
        ..Default::default()
    };
    assert!(f
        .engine
        .list_events(&f.program, &by_connector, None, None)
        .await
        .unwrap()
        .items
        .is_empty());
    let future = EventFilter {
        since: Some(now() + chrono::Duration::seconds(1)),
        ..Default::default()
    };
    assert!(f
        .engine
        .list_events(&f.program, &future, None, None)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(f
        .engine
        .list_events(&f.program, &EventFilter::default(), None, Some("garbage"))
        .await
        .is_err());
}

pub async fn activity_lists_events_and_ledger_newest_first(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    f.add_rule("Second rule", json!([])).await;
    for i in 0..3 {
        f.send(
            &article(&format!("e-{i}"), "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    }
    let member = f.member("ann@example.com").await;
    let page = f
        .engine
        .member_activity(&f.program, &member, Some(100), None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 9, "3 events and 2 ledger entries each");
    assert!(page.items.windows(2).all(|w| w[0].seq > w[1].seq));
    let ledger_points: i64 = page
        .items
        .iter()
        .filter(|a| a.rule_id.is_some())
        .map(|a| a.points)
        .sum();
    assert_eq!(ledger_points, 60);
    let first = f
        .engine
        .member_activity(&f.program, &member, Some(5), None)
        .await
        .unwrap();
    let rest = f
        .engine
        .member_activity(&f.program, &member, Some(5), first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(first.items.len() + rest.items.len(), 9);
    assert!(rest.next_cursor.is_none());
}

pub async fn programs_are_isolated(store: Arc<dyn Store>) {
    let a = Fixture::new(store.clone(), Some(json!([]))).await;
    a.send(
        &article("e-1", "ann@example.com", "sport", 5).to_string(),
        false,
    )
    .await;
    let b = Fixture::new(store, Some(json!([]))).await;
    let member = a.member("ann@example.com").await;
    assert!(b.engine.get_member(&b.program, &member).await.is_err());
    assert!(b
        .engine
        .find_member(&b.program, "email", "ann@example.com")
        .await
        .is_err());
    assert!(b
        .engine
        .list_events(&b.program, &EventFilter::default(), None, None)
        .await
        .unwrap()
        .items
        .is_empty());
    let event = a
        .engine
        .list_events(&a.program, &EventFilter::default(), None, None)
        .await
        .unwrap()
        .items[0]
        .id
        .clone();
    assert!(b.engine.get_event(&b.program, &event).await.is_err());
    assert!(b
        .engine
        .get_connector(&b.program, &a.connector)
        .await
        .is_err());
    assert!(b
        .engine
        .purge_test_data(&b.program, &a.connector)
        .await
        .is_err());
    assert!(b
        .engine
        .member_activity(&b.program, &member, None, None)
        .await
        .is_err());
    // The same email in program b is another member.
    b.send(
        &article("e-1", "ann@example.com", "sport", 5).to_string(),
        false,
    )
    .await;
    assert_ne!(b.member("ann@example.com").await, member);
}

/// A rule's conditions, points and limits come back as written, keys in their order; instants
/// with more precision than a store keeps (nanoseconds; PostgreSQL keeps microseconds) are cut
/// before they are stored: what a response says is what a later read says.
pub async fn what_is_stored_comes_back_as_written(store: Arc<dyn Store>) {
    let f = Fixture::new(store, None).await;
    let spec: RuleSpec = serde_json::from_value(json!({
        "name": "Windowed",
        "connectorId": f.connector.as_str(),
        "conditions": {"any": [{"tag": "theme", "op": "eq", "value": "sport"},
                               {"counter": "total", "op": "between", "min": 5, "max": 9}]},
        "points": {"perCounter": {"counter": "total", "points": 3, "per": 2}},
        "limits": [{"per": "day", "count": 2}, {"points": 100, "per": "week"}],
        "activeFrom": "2026-01-01T00:00:00.123456789Z",
        "activeUntil": "2027-01-01T00:00:00.000000999Z"
    }))
    .unwrap();
    let written = |rule: &crate::rules::Rule| {
        [&rule.conditions, &rule.points, &rule.limits].map(|v| v.to_string())
    };
    let created = f.engine.create_rule(&f.program, spec).await.unwrap();
    assert_eq!(
        written(&created),
        [
            r#"{"any":[{"tag":"theme","op":"eq","value":"sport"},{"counter":"total","op":"between","min":5,"max":9}]}"#,
            r#"{"perCounter":{"counter":"total","points":3,"per":2}}"#,
            r#"[{"per":"day","count":2},{"points":100,"per":"week"}]"#
        ]
    );
    let read = f.engine.get_rule(&f.program, &created.id).await.unwrap();
    assert_eq!(written(&read), written(&created));
    assert_eq!(
        (read.active_from, read.active_until),
        (created.active_from, created.active_until)
    );
    assert_eq!(
        created.active_from.unwrap().to_rfc3339(),
        "2026-01-01T00:00:00.123456+00:00"
    );
    let mut item = article("e-1", "ann@example.com", "sport", 5);
    item["timestamp"] = json!("2026-11-26T11:00:00.987654321Z");
    let response = f.send(&item.to_string(), false).await;
    assert_eq!(response.results[0].status(), ItemStatus::Accepted);
    let logged = f
        .engine
        .get_event(&f.program, &response.results[0].event_id)
        .await
        .unwrap();
    assert_eq!(
        logged.occurred_at.unwrap().to_rfc3339(),
        "2026-11-26T11:00:00.987654+00:00"
    );
}

pub async fn connectors_and_rules_round_trip(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([{"count": 1, "per": "day"}]))).await;
    let rules = f.engine.list_rules(&f.program, None).await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].limits, json!([{"count": 1, "per": "day"}]));
    let mut spec = article_connector_spec();
    spec.name = "Renamed".into();
    if let crate::auth::AuthSpec::QueryToken { token, .. } = &mut spec.auth {
        *token = None;
    }
    let view = f
        .engine
        .replace_connector(&f.program, &f.connector, spec)
        .await
        .unwrap();
    assert_eq!(view.name, "Renamed");
    assert_eq!(view.revision, 2);
    // The token was kept.
    let response = f
        .send(
            &article("e-1", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(response.results[0].points(), 10);
    f.engine
        .delete_rule(&f.program, &rules[0].id)
        .await
        .unwrap();
    assert!(f
        .engine
        .list_rules(&f.program, None)
        .await
        .unwrap()
        .is_empty());
    let response = f
        .send(
            &article("e-2", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(response.results[0].points(), 0);
    f.engine
        .delete_connector(&f.program, &f.connector)
        .await
        .unwrap();
    assert!(f
        .engine
        .list_connectors(&f.program)
        .await
        .unwrap()
        .is_empty());
    let gone = f
        .engine
        .ingest(IncomingRequest {
            connector_id: f.connector.as_str(),
            query: "token=s3cret-token",
            headers: &[],
            body: b"{}",
            test: false,
        })
        .await;
    assert!(matches!(gone, Err(crate::Error::NotFound { .. })));
    // Its events stay in the log.
    assert_eq!(
        f.engine
            .list_events(&f.program, &EventFilter::default(), None, None)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

pub async fn balances_equal_ledger_sums(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([{"points": 30, "per": "day"}]))).await;
    for i in 0..40 {
        let email = format!("m{}@example.com", i % 4);
        let test = i % 5 == 0;
        f.send(
            &article(&format!("e-{}", i % 30), &email, "sport", 5 + (i % 3)).to_string(),
            test,
        )
        .await;
    }
    f.engine
        .purge_test_data(&f.program, &f.connector)
        .await
        .unwrap();
    for m in 0..4 {
        let email = format!("m{m}@example.com");
        let Some(balance) = f.balance(&email).await else {
            continue;
        };
        let id = f.member(&email).await;
        let ledger = f
            .engine
            .store()
            .ledger_entries(&f.program, &id)
            .await
            .unwrap();
        assert_eq!(balance, ledger.iter().map(|l| l.points).sum::<i64>());
        assert!(ledger.iter().all(|l| !l.test && l.points > 0));
        assert!(balance <= 30);
    }
}
