//! What the stores give back: the log, activity, isolation, round trips, balances.

use super::*;
use crate::ledger::{EventFilter, ItemStatus};
use std::collections::HashSet;

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
