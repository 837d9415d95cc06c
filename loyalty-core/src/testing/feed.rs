//! The change feed: every committed change once, in commit order per member, resumable by
//! cursor, and a subscription that wakes up on new commits.

use super::*;
use crate::feed::{Change, ChangeBody, ChangeKind, FeedItem, FeedPosition, MAX_FEED_PAGE};
use crate::ids::EventId;
use crate::ledger::{LedgerEntry, LogEntry, PageRequest};
use futures::StreamExt;
use std::collections::HashMap;

/// Everything in the program's feed after `after`, read page by page.
async fn read_all(
    f: &Fixture,
    after: FeedPosition,
    member: Option<&MemberId>,
    page: usize,
) -> Vec<Change> {
    let mut all: Vec<Change> = Vec::new();
    let mut cursor = after;
    loop {
        let read = f
            .engine
            .changes_after(&f.program, cursor, member, page)
            .await
            .unwrap();
        assert!(!read.missed, "nothing is past retention in a fresh store");
        let Some(last) = read.changes.last() else {
            return all;
        };
        cursor = last.position;
        all.extend(read.changes);
    }
}

async fn all_events(f: &Fixture) -> Vec<LogEntry> {
    let page = PageRequest {
        limit: 500,
        before: None,
    };
    let store = f.engine.store();
    let mut events = store
        .list_events(&f.program, &Default::default(), page)
        .await
        .unwrap()
        .items;
    events.reverse();
    events
}

/// Positions strictly grow, and each event and ledger entry of the program is there once.
fn assert_once_each(changes: &[Change], events: &[LogEntry], ledger: &[LedgerEntry]) {
    for pair in changes.windows(2) {
        assert!(pair[0].position < pair[1].position, "positions grow");
    }
    let mut seen_events: HashMap<EventId, usize> = HashMap::new();
    let mut seen_entries = HashMap::new();
    for change in changes {
        match &change.body {
            ChangeBody::Event(event) => {
                assert_eq!(change.test, event.0.test);
                *seen_events.entry(event.0.id.clone()).or_default() += 1;
            }
            ChangeBody::Ledger(ledger) => {
                assert_eq!(change.test, ledger.entry.test);
                *seen_entries.entry(ledger.entry.id.clone()).or_default() += 1;
            }
        }
    }
    assert_eq!(
        seen_events.len(),
        events.len(),
        "every event is in the feed"
    );
    for event in events {
        assert_eq!(seen_events.get(&event.id), Some(&1), "{event:?}");
    }
    assert_eq!(
        seen_entries.len(),
        ledger.len(),
        "every ledger entry is in the feed"
    );
    for entry in ledger {
        assert_eq!(seen_entries.get(&entry.id), Some(&1), "{entry:?}");
    }
}

pub async fn the_feed_has_every_change_once_in_commit_order(store: Arc<dyn Store>) {
    let spec = crate::program::ProgramSpec {
        name: "Expiring".into(),
        points_expiry: Some(crate::program::PointsExpiry { after_days: 30 }),
        ..Default::default()
    };
    let f = Fixture::with_program(store, Some(json!([])), spec).await;
    let start = f.engine.feed_head(&f.program).await.unwrap();
    let awarded = f
        .send(
            &article("a-1", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(statuses(&awarded), [ItemStatus::Accepted]);
    let bulk = json!([
        article("a-1", "ann@example.com", "sport", 5),
        article("a-2", "ann@example.com", "music", 5),
        article("b-1", "", "sport", 5),
        article("t-1", "bob@example.com", "sport", 5),
    ]);
    f.send(&bulk.to_string(), false).await;
    f.send(
        &article("t-2", "tess@example.com", "sport", 5).to_string(),
        true,
    )
    .await;
    let ann = f.member("ann@example.com").await;
    f.engine
        .adjust_points(&f.program, &ann, 25, "goodwill", None)
        .await
        .unwrap();
    f.engine
        .reverse_event(&f.program, &awarded.results[0].event_id, Some(4), "mistake")
        .await
        .unwrap();
    f.clock.advance(chrono::Duration::days(31));
    assert!(f.engine.run_expiry(f.engine.now()).await.unwrap() > 0);

    let changes = read_all(&f, start, None, 3).await;
    let events = all_events(&f).await;
    let mut ledger = Vec::new();
    for email in ["ann@example.com", "bob@example.com", "tess@example.com"] {
        let member = f.member(email).await;
        let store = f.engine.store();
        ledger.extend(store.ledger_entries(&f.program, &member).await.unwrap());
    }
    assert_once_each(&changes, &events, &ledger);
    let kinds: Vec<ChangeKind> = changes.iter().map(Change::kind).collect();
    assert!(kinds.contains(&ChangeKind::Ledger) && kinds.contains(&ChangeKind::Event));
    assert!(changes.iter().any(|c| c.test) && changes.iter().any(|c| !c.test));

    // Ann's changes, in commit order: award, award of the bulk's duplicate is none, ...
    let ann_points: Vec<(i64, i64)> = changes
        .iter()
        .filter_map(|c| match &c.body {
            ChangeBody::Ledger(l) if l.member_id == ann => Some((l.entry.points, l.balance)),
            _ => None,
        })
        .collect();
    // Award 10, adjustment 25, reversal of 4; then the sweep expires the 6 left of the award
    // (the adjustment does not expire).
    assert_eq!(ann_points, [(10, 10), (25, 35), (-4, 31), (-6, 25)]);
    let view = f.engine.member_view(&f.program, &ann).await.unwrap();
    assert_eq!(view.balance, 25);

    // An event's message is the log item without its raw payload.
    let message = changes
        .iter()
        .find(|c| c.kind() == ChangeKind::Event)
        .unwrap()
        .data_json();
    let message: Value = serde_json::from_str(&message).unwrap();
    assert!(message.get("raw").is_none() && message.get("id").is_some());
    let ledger_message = changes
        .iter()
        .find(|c| c.kind() == ChangeKind::Ledger)
        .unwrap()
        .data_json();
    let ledger_message: Value = serde_json::from_str(&ledger_message).unwrap();
    for field in ["memberId", "entry", "balance", "pending"] {
        assert!(ledger_message.get(field).is_some(), "{field}");
    }

    // A member's own feed is the same changes, filtered.
    let ann_only = read_all(&f, start, Some(&ann), 2).await;
    let expected: Vec<&Change> = changes
        .iter()
        .filter(|c| c.member_id() == Some(&ann))
        .collect();
    assert_eq!(ann_only.iter().collect::<Vec<_>>(), expected);

    // Resuming from any cursor gives exactly what came after it.
    let middle = changes[changes.len() / 2].position;
    let rest = read_all(&f, middle, None, MAX_FEED_PAGE).await;
    let after_middle: Vec<&Change> = changes.iter().filter(|c| c.position > middle).collect();
    assert_eq!(rest.iter().collect::<Vec<_>>(), after_middle);
    // And nothing after the end.
    let head = f.engine.feed_head(&f.program).await.unwrap();
    assert!(read_all(&f, head, None, 10).await.is_empty());
}

pub async fn the_feed_follows_commit_order_per_member_under_concurrency(store: Arc<dyn Store>) {
    let f = Arc::new(Fixture::new(store, Some(json!([]))).await);
    let start = f.engine.feed_head(&f.program).await.unwrap();
    let members = ["ann@example.com", "bob@example.com", "cid@example.com"];
    let senders: Vec<_> = (0..8)
        .map(|sender| {
            let f = Arc::clone(&f);
            tokio::spawn(async move {
                for round in 0..10 {
                    let items: Vec<Value> = members
                        .iter()
                        .map(|m| article(&format!("{sender}-{round}-{m}"), m, "sport", 5))
                        .collect();
                    f.send(&Value::Array(items).to_string(), false).await;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let changes = read_all(&f, start, None, 37).await;
    for email in members {
        let member = f.member(email).await;
        let balances: Vec<i64> = changes
            .iter()
            .filter_map(|c| match &c.body {
                ChangeBody::Ledger(l) if l.member_id == member => Some(l.balance),
                _ => None,
            })
            .collect();
        // Each award adds 10 to what the previous one left: the feed has them in the order
        // they were committed.
        let expected: Vec<i64> = (1..=80).map(|n| n * 10).collect();
        assert_eq!(balances, expected, "{email}");
    }
    let events = all_events(&f).await;
    assert_eq!(
        changes
            .iter()
            .filter(|c| c.kind() == ChangeKind::Event)
            .count(),
        events.len()
    );
}

pub async fn a_subscription_gets_what_is_committed_after_it(store: Arc<dyn Store>) {
    let f = Arc::new(Fixture::new(store, Some(json!([]))).await);
    let other = Fixture::new(Arc::clone(f.engine.store()), Some(json!([]))).await;
    f.send(
        &article("old", "ann@example.com", "sport", 5).to_string(),
        false,
    )
    .await;
    let mut from_now = f.engine.subscribe(f.program.clone(), None, None);
    let mut from_start = f.engine.subscribe(f.program.clone(), Some(0), None);
    let ann = f.member("ann@example.com").await;
    let mut ann_only = f.engine.subscribe(f.program.clone(), Some(0), Some(ann));
    // The subscription from now reads the head when first polled, in the task: send until
    // it yields, and it yields a change committed after "old", never "old" itself.
    let first = tokio::spawn(async move {
        let item = from_now.next().await;
        (item, from_now)
    });
    other
        .send(
            &article("elsewhere", "zed@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    let mut sent = Vec::new();
    let wait = std::time::Duration::from_secs(30);
    let started = std::time::Instant::now();
    while !first.is_finished() && started.elapsed() < wait {
        let id = format!("new-{}", sent.len());
        let response = f
            .send(
                &article(&id, "bob@example.com", "sport", 5).to_string(),
                false,
            )
            .await;
        sent.push(response.results[0].event_id.clone());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (item, _) = tokio::time::timeout(wait, first).await.unwrap().unwrap();
    match item.unwrap().unwrap() {
        FeedItem::Change(change) => {
            assert_eq!(change.program_id, f.program);
            match change.body {
                ChangeBody::Event(event) => assert!(sent.contains(&event.0.id), "{event:?}"),
                other => panic!("an event comes before its award: {other:?}"),
            }
        }
        FeedItem::Missed => panic!("nothing is missed"),
    }
    let mut from_start_items = Vec::new();
    while from_start_items.len() < 4 {
        let item = tokio::time::timeout(wait, from_start.next()).await.unwrap();
        from_start_items.push(item.unwrap().unwrap());
    }
    let ids: Vec<Option<EventId>> = from_start_items
        .iter()
        .map(|item| match item {
            FeedItem::Change(c) => match &c.body {
                ChangeBody::Event(e) => Some(e.0.id.clone()),
                ChangeBody::Ledger(l) => l.entry.event_id.clone(),
            },
            FeedItem::Missed => None,
        })
        .collect();
    let old = Some(
        f.engine
            .store()
            .list_events(&f.program, &Default::default(), PageRequest::default())
            .await
            .unwrap()
            .items
            .last()
            .unwrap()
            .id
            .clone(),
    );
    assert_eq!(ids[0], old);
    assert_eq!(ids[1], old);
    assert_eq!(ids[2], Some(sent[0].clone()));
    let item = tokio::time::timeout(wait, ann_only.next()).await.unwrap();
    assert!(matches!(item.unwrap().unwrap(), FeedItem::Change(c) if c.position > 0));
}

/// The balances of a member's ledger messages, in feed order.
fn balances_of(changes: &[Change], member: &MemberId) -> Vec<i64> {
    changes
        .iter()
        .filter_map(|c| match &c.body {
            ChangeBody::Ledger(l) if l.member_id == *member => Some(l.balance),
            _ => None,
        })
        .collect()
}

/// A member with a long ledger (stores may keep what they computed of it between reads): each
/// ledger message carries the balance just after its entry, whether the feed is read in small
/// pages from the start, again from an older cursor, or at its head as entries come.
pub async fn a_long_ledger_has_each_entrys_balance_in_every_read(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    let send = |from: usize, to: usize| {
        let items: Vec<Value> = (from..to)
            .map(|i| article(&format!("long-{i}"), "ann@example.com", "sport", 5))
            .collect();
        let body = Value::Array(items).to_string();
        let f = &f;
        async move {
            let answer = f.send(&body, false).await;
            assert_eq!(answer.accepted, to - from);
        }
    };
    send(0, 150).await;
    let ann = f.member("ann@example.com").await;
    // A negative adjustment in the middle: the lots after it are what is left.
    f.engine
        .adjust_points(&f.program, &ann, -95, "chargeback", None)
        .await
        .unwrap();
    send(150, 200).await;
    let mut expected: Vec<i64> = (1..=150).map(|n| n * 10).collect();
    expected.push(1500 - 95);
    expected.extend((1..=50).map(|n| 1405 + n * 10));

    let whole = read_all(&f, 0, None, 7).await;
    assert_eq!(balances_of(&whole, &ann), expected, "read in small pages");
    let again = read_all(&f, 0, Some(&ann), 13).await;
    assert_eq!(
        balances_of(&again, &ann),
        expected,
        "read again from the start"
    );
    let middle = whole[whole.len() / 2].position;
    let behind = read_all(&f, middle, None, 5).await;
    let tail = balances_of(&behind, &ann);
    assert_eq!(
        tail,
        expected[expected.len() - tail.len()..],
        "from the middle"
    );

    // At the head, as more comes.
    let mut cursor = whole.last().unwrap().position;
    for round in 0..3 {
        send(200 + round * 10, 210 + round * 10).await;
        let more = read_all(&f, cursor, None, 4).await;
        let last = *expected.last().unwrap();
        let next: Vec<i64> = (1..=10).map(|n| last + n * 10).collect();
        assert_eq!(balances_of(&more, &ann), next, "round {round}");
        expected.extend(next);
        cursor = more.last().unwrap().position;
    }
}
