//! Replays: the log's errors grouped, dry runs that store nothing, and applying exactly once.

use super::*;
use crate::ledger::{EventFilter, ItemStatus};

/// An article whose counter is text: rejected with `validation_failed` at
/// `/payload/counters/0/value` by the seed mapping.
pub fn article_with_text_counter(event_id: &str, email: &str) -> Value {
    let mut item = article(event_id, email, "sport", 5);
    item["totalArticlesRead"] = json!("five");
    item
}

pub async fn event_errors_are_grouped_by_code_and_path(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    let bulk = json!([
        article_with_text_counter("t-1", "ann@example.com"),
        article_with_text_counter("t-2", "bob@example.com"),
        article_with_text_counter("t-3", "ann@example.com"),
        article("ok-1", "ann@example.com", "sport", 5),
        article("no-one", "", "sport", 5),
    ]);
    f.send(&bulk.to_string(), false).await;
    let last = f
        .send(
            &article_with_text_counter("t-4", "cy@example.com").to_string(),
            false,
        )
        .await;
    let groups = f
        .engine
        .event_errors(
            &f.program,
            &EventFilter {
                connector_id: Some(f.connector.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    let rejected = &groups[0];
    assert_eq!(rejected.status, ItemStatus::Rejected);
    assert_eq!(rejected.code, "validation_failed");
    assert_eq!(rejected.path.as_deref(), Some("/payload/counters/0/value"));
    assert_eq!(rejected.count, 4);
    assert_eq!(rejected.example_event_id, last.results[0].event_id);
    assert!(rejected.message.is_some());
    assert!(rejected.first_at <= rejected.last_at);
    let ignored = &groups[1];
    assert_eq!(ignored.status, ItemStatus::Ignored);
    assert_eq!(ignored.count, 1);
    assert_eq!(ignored.path, None);

    // Filters: another connector has none; a window after everything has none.
    let other = f
        .engine
        .event_errors(
            &f.program,
            &EventFilter {
                connector_id: Some(crate::ids::ConnectorId::new("con_other")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(other.is_empty());
    let later = f
        .engine
        .event_errors(
            &f.program,
            &EventFilter {
                since: Some(now() + chrono::Duration::seconds(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(later.is_empty());
}

/// The seed mapping fixed for a sender that writes its counter as text ("7 articles"): the
/// number before the first space.
pub fn fixed_mapping() -> String {
    SEED_MAPPING.replace(
        r#""value": totalArticlesRead"#,
        r#""value": $number($substringBefore($string(totalArticlesRead), " "))"#,
    )
}

/// An article whose counter is sent as text ("7 articles"): the seed mapping's output fails
/// validation, the fixed mapping's passes.
pub fn article_with_text_number(event_id: &str, email: &str, at: &str) -> Value {
    let mut item = article(event_id, email, "sport", 5);
    item["totalArticlesRead"] = json!("7 articles");
    item["timestamp"] = json!(at);
    item
}

/// Two of Ann's and one of Bob's items rejected by the mapping's bug, one of Ann's
/// accepted; then the clock moves on, so that a replay created now reads them.
async fn mapping_bug_day(f: &Fixture) {
    let bulk = json!([
        article_with_text_number("t-1", "ann@example.com", "2026-11-26T09:00:00Z"),
        article_with_text_number("t-2", "bob@example.com", "2026-11-26T09:30:00Z"),
        article("ok-1", "ann@example.com", "sport", 5),
        article_with_text_number("t-3", "ann@example.com", "2026-11-26T10:00:00Z"),
    ]);
    let sent = f.send(&bulk.to_string(), false).await;
    assert_eq!(
        statuses(&sent),
        [
            ItemStatus::Rejected,
            ItemStatus::Rejected,
            ItemStatus::Accepted,
            ItemStatus::Rejected
        ]
    );
    f.clock.advance(chrono::Duration::minutes(5));
}

async fn run(f: &Fixture, spec: crate::replay::ReplaySpec) -> crate::replay::ReplayRecord {
    let record = f.engine.create_replay(&f.program, spec).await.unwrap();
    let progress = crate::replay::ReplayProgress::new();
    let done = f
        .engine
        .run_recorded_replay(record, &progress)
        .await
        .unwrap();
    assert_eq!(done.state, crate::replay::ReplayState::Done, "{done:?}");
    assert_eq!(done.processed, done.total);
    done
}

async fn log_size(f: &Fixture) -> usize {
    f.engine
        .list_events(&f.program, &EventFilter::default(), Some(500), None)
        .await
        .unwrap()
        .items
        .len()
}

pub async fn dry_runs_report_and_store_nothing(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    mapping_bug_day(&f).await;
    let events = log_size(&f).await;
    let ann = f.member("ann@example.com").await;
    let usage_keys = f
        .engine
        .list_rules(&f.program, Some(&f.connector))
        .await
        .unwrap();
    let rule = usage_keys[0].id.clone();

    let done = run(
        &f,
        crate::replay::ReplaySpec {
            mapping: Some(fixed_mapping()),
            ..crate::replay::ReplaySpec::new(f.connector.clone())
        },
    )
    .await;
    let report = done.report.unwrap();
    assert!(!report.applied);
    assert_eq!(done.total, 4);
    assert_eq!((report.before.accepted, report.before.rejected), (1, 3));
    assert_eq!((report.after.accepted, report.after.rejected), (4, 0));
    assert_eq!((report.points.before, report.points.after), (10, 40));
    assert_eq!(report.points.by_rule.len(), 1);
    assert_eq!(report.points.by_rule[0].rule_id, rule);
    assert_eq!(
        (
            report.points.by_rule[0].before,
            report.points.by_rule[0].after
        ),
        (10, 40)
    );
    assert_eq!(report.changed, 3);
    assert_eq!(report.changes.len(), 3);
    let first = &report.changes[0];
    assert_eq!(first.before.status, ItemStatus::Rejected);
    assert_eq!(first.after.status, ItemStatus::Accepted);
    assert_eq!(first.after.points, 10);
    assert!(first.after.trace.as_ref().is_some_and(|t| t[0].fired));
    assert_eq!(report.members.changed, 2);
    let ann_change = report
        .members
        .largest
        .iter()
        .find(|m| m.member_id.as_ref() == Some(&ann))
        .unwrap();
    assert_eq!((ann_change.before, ann_change.after), (10, 30));
    // Bob would be enrolled: no id yet.
    assert!(report
        .members
        .largest
        .iter()
        .any(|m| m.member_id.is_none() && m.after == 10));

    // Nothing stored: no event, no member, no balance, no key.
    assert_eq!(log_size(&f).await, events);
    assert_eq!(f.balance("ann@example.com").await, Some(10));
    assert_eq!(f.balance("bob@example.com").await, None);
    assert_eq!(
        f.engine
            .store()
            .find_accepted(&f.connector, "t-1", false)
            .await
            .unwrap(),
        None
    );
    let entries = f
        .engine
        .store()
        .ledger_entries(&f.program, &ann)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);

    // A filter by status: only the rejected ones.
    let rejected_only = run(
        &f,
        crate::replay::ReplaySpec {
            mapping: Some(fixed_mapping()),
            statuses: Some(vec![ItemStatus::Rejected]),
            ..crate::replay::ReplaySpec::new(f.connector.clone())
        },
    )
    .await;
    assert_eq!(rejected_only.total, 3);
    assert_eq!(rejected_only.report.unwrap().points.after, 30);
}

pub async fn applied_replays_change_things_once(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([{"count": 2, "per": "day"}]))).await;
    mapping_bug_day(&f).await;
    let spec = crate::replay::ReplaySpec {
        mapping: Some(fixed_mapping()),
        apply: true,
        ..crate::replay::ReplaySpec::new(f.connector.clone())
    };
    let done = run(&f, spec.clone()).await;
    let report = done.report.clone().unwrap();
    assert!(report.applied);
    // Items the mapping refused have no event time of their own: they come in their receipt
    // time's place, after Ann's accepted 11:00 item; the limit of two a day leaves her last
    // one without points.
    assert_eq!(f.balance("ann@example.com").await, Some(20));
    assert_eq!(f.balance("bob@example.com").await, Some(10));
    assert_eq!((report.points.before, report.points.after), (10, 30));
    let new_items: Vec<_> = report
        .changes
        .iter()
        .filter_map(|c| c.after.event_id.clone())
        .collect();
    assert_eq!(new_items.len(), 3);
    for id in &new_items {
        let logged = f.engine.get_event(&f.program, id).await.unwrap();
        assert_eq!(logged.replay_id.as_ref(), Some(&done.id));
        assert!(logged.replayed_event_id.is_some());
        assert_eq!(logged.status, ItemStatus::Accepted);
    }
    let limited = report
        .changes
        .iter()
        .find(|c| c.after.points == 0)
        .expect("one item reached the limit");
    assert_eq!(limited.after.status, ItemStatus::Accepted);
    let ann = f.member("ann@example.com").await;
    let entries = f
        .engine
        .store()
        .ledger_entries(&f.program, &ann)
        .await
        .unwrap();
    assert_eq!(entries.iter().map(|e| e.points).sum::<i64>(), 20);

    // The same replay again, as when a restart finds it running: nothing more.
    let mut interrupted = done.clone();
    interrupted.state = crate::replay::ReplayState::Running;
    f.engine.store().put_replay(&interrupted).await.unwrap();
    assert_eq!(f.engine.running_replays().await.unwrap().len(), 1);
    let again = f
        .engine
        .run_recorded_replay(interrupted, &crate::replay::ReplayProgress::new())
        .await
        .unwrap();
    assert_eq!(again.report.as_ref().map(|r| r.points.after), Some(30));
    assert_eq!(again.state, crate::replay::ReplayState::Done);
    assert_eq!(f.balance("ann@example.com").await, Some(20));
    assert_eq!(f.balance("bob@example.com").await, Some(10));
    // A new replay of the same items: their keys are taken, their events unchanged.
    f.clock.advance(chrono::Duration::minutes(1));
    let second = run(&f, spec).await;
    assert_eq!(f.balance("ann@example.com").await, Some(20));
    assert_eq!(f.balance("bob@example.com").await, Some(10));
    assert_eq!(second.report.unwrap().points.after, 30);
    // The item sent again (its sender fixed too) is a duplicate, not a second award.
    let resent = f
        .send(
            &article("t-2", "bob@example.com", "sport", 7).to_string(),
            false,
        )
        .await;
    assert_eq!(statuses(&resent), [ItemStatus::Duplicate]);
}

pub async fn backtests_of_draft_rules_replace_awards_once(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([{"count": 1, "per": "day"}]))).await;
    let mut items = Vec::new();
    // Received latest first: the 10:00 item took the day's award.
    for (i, at) in ["10:00", "09:00", "08:00"].iter().enumerate() {
        let mut item = article(&format!("a-{i}"), "ann@example.com", "sport", 5);
        item["timestamp"] = json!(format!("2026-11-26T{at}:00Z"));
        items.push(item);
    }
    f.send(&Value::Array(items).to_string(), false).await;
    assert_eq!(f.balance("ann@example.com").await, Some(10));
    f.clock.advance(chrono::Duration::minutes(5));
    let rule = f
        .engine
        .list_rules(&f.program, Some(&f.connector))
        .await
        .unwrap()[0]
        .id
        .clone();
    let draft = |points: i64, per_day: i64| {
        json!({"id": rule, "name": "Sport readers", "conditions": {"all": [
            {"tag": "theme", "op": "eq", "value": "sport"}]},
            "points": {"fixed": points}, "limits": [{"count": per_day, "per": "day"}]})
    };
    // Dry run: two a day of 5 points each, in event-time order: 08:00 and 09:00.
    let spec = crate::replay::ReplaySpec {
        rules: Some(vec![draft(5, 2)]),
        ..crate::replay::ReplaySpec::new(f.connector.clone())
    };
    let dry = run(&f, spec.clone()).await.report.unwrap();
    assert_eq!((dry.points.before, dry.points.after), (10, 10));
    assert_eq!(dry.changed, 3);
    assert_eq!(f.balance("ann@example.com").await, Some(10));

    // Applied, by two runs of it at once: changed once.
    let record = f
        .engine
        .create_replay(
            &f.program,
            crate::replay::ReplaySpec {
                apply: true,
                ..spec
            },
        )
        .await
        .unwrap();
    let (one, other) = (
        crate::replay::ReplayProgress::new(),
        crate::replay::ReplayProgress::new(),
    );
    let (a, b) = futures::join!(
        f.engine.run_recorded_replay(record.clone(), &one),
        f.engine.run_recorded_replay(record.clone(), &other),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(f.balance("ann@example.com").await, Some(10));
    let ann = f.member("ann@example.com").await;
    let entries = f
        .engine
        .store()
        .ledger_entries(&f.program, &ann)
        .await
        .unwrap();
    // The 10:00 award of 10 reversed; 08:00 and 09:00 awarded 5 each.
    let replay_reason = format!("replay {}", record.id);
    let by_replay: Vec<i64> = entries
        .iter()
        .filter(|e| e.reason.as_deref() == Some(replay_reason.as_str()))
        .map(|e| e.points)
        .collect();
    assert_eq!(by_replay.iter().sum::<i64>(), 0);
    assert_eq!(by_replay.len(), 3, "{entries:?}");
    assert_eq!(entries.iter().map(|e| e.points).sum::<i64>(), 10);
    // The stored rule is unchanged: a draft is not saved.
    let stored = f.engine.get_rule(&f.program, &rule).await.unwrap();
    assert_eq!(stored.points, json!({"fixed": 10}));
    // The allowance agrees with the ledger: two awards today.
    let usage = f
        .engine
        .store()
        .usage(
            &f.program,
            &ann,
            &[crate::rules::UsageKey {
                rule_id: rule.clone(),
                period: crate::rules::Period::Day.key(now()),
            }],
        )
        .await
        .unwrap();
    assert_eq!(usage.values().next().map(|u| u.count), Some(2));
}

pub async fn concurrent_replays_of_one_day_award_once(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    mapping_bug_day(&f).await;
    let spec = crate::replay::ReplaySpec {
        mapping: Some(fixed_mapping()),
        statuses: Some(vec![ItemStatus::Rejected]),
        apply: true,
        ..crate::replay::ReplaySpec::new(f.connector.clone())
    };
    let first = f
        .engine
        .create_replay(&f.program, spec.clone())
        .await
        .unwrap();
    let second = f.engine.create_replay(&f.program, spec).await.unwrap();
    let (one, other) = (
        crate::replay::ReplayProgress::new(),
        crate::replay::ReplayProgress::new(),
    );
    let (a, b) = futures::join!(
        f.engine.run_recorded_replay(first, &one),
        f.engine.run_recorded_replay(second, &other),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(f.balance("ann@example.com").await, Some(30));
    assert_eq!(f.balance("bob@example.com").await, Some(10));
    let accepted = f
        .engine
        .list_events(
            &f.program,
            &EventFilter {
                status: Some(ItemStatus::Accepted),
                ..Default::default()
            },
            Some(500),
            None,
        )
        .await
        .unwrap();
    assert_eq!(accepted.items.len(), 4);
}

pub async fn cancelled_replays_stop(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    mapping_bug_day(&f).await;
    let record = f
        .engine
        .create_replay(
            &f.program,
            crate::replay::ReplaySpec {
                ..crate::replay::ReplaySpec::new(f.connector.clone())
            },
        )
        .await
        .unwrap();
    let cancelled = f
        .engine
        .cancel_replay(&f.program, &record.id)
        .await
        .unwrap();
    assert_eq!(cancelled.state, crate::replay::ReplayState::Cancelled);
    let progress = crate::replay::ReplayProgress::new();
    progress.cancel();
    let ended = f
        .engine
        .run_recorded_replay(record, &progress)
        .await
        .unwrap();
    assert_eq!(ended.state, crate::replay::ReplayState::Cancelled);
    assert!(f.engine.running_replays().await.unwrap().is_empty());
    // A bad draft is refused before anything runs.
    let refused = f
        .engine
        .create_replay(
            &f.program,
            crate::replay::ReplaySpec {
                mapping: Some("{".into()),
                ..crate::replay::ReplaySpec::new(f.connector.clone())
            },
        )
        .await;
    assert!(matches!(refused, Err(crate::Error::InvalidMapping(_))));
}
