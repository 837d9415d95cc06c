//! Ingestion: acceptance, duplicates, namespaces, enrolment, bulks, concurrency, limits, purge.

use super::*;
use crate::ledger::{EventFilter, ItemStatus};
use std::collections::HashMap;

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
