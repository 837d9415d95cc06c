//! What only the PostgreSQL store has to show: migrations, constraints of the schema, several
//! store instances (processes) on one database, and isolation of a failing batch.

mod common;

use loyalty_core::clock::FixedClock;
use loyalty_core::engine::{IncomingRequest, IngestResponse};
use loyalty_core::ids::{ConnectorId, EventId, ProgramId};
use loyalty_core::ledger::{EventFilter, ItemStatus};
use loyalty_core::mapping::MappingLimits;
use loyalty_core::program::ProgramSpec;
use loyalty_core::rules::RuleSpec;
use loyalty_core::store::{CatalogStore, LogStore};
use loyalty_core::testing::{article, article_connector_spec, now};
use loyalty_core::{Engine, Limits};
use loyalty_store_postgres::{PostgresOptions, PostgresStore};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Engine limits with generous mapping budgets: these tests load a small machine, and a
/// mapping timeout would reject items for reasons that have nothing to do with the store.
fn patient_limits() -> Limits {
    Limits {
        mapping: MappingLimits {
            timeout: Duration::from_secs(10),
            ..MappingLimits::default()
        },
        max_request_mapping_time: Duration::from_secs(60),
        ..Limits::default()
    }
}

fn engine(store: &PostgresStore) -> Arc<Engine> {
    Arc::new(Engine::with_limits(
        Arc::new(store.clone()),
        Arc::new(FixedClock::new(now())),
        patient_limits(),
    ))
}

/// A program with the seed connector and, if `limits` is given, the seed rule.
async fn setup(engine: &Engine, limits: Option<Value>) -> (ProgramId, ConnectorId) {
    let (program, _) = engine
        .create_program(ProgramSpec {
            name: "Readers".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let connector = engine
        .create_connector(&program.id, article_connector_spec())
        .await
        .unwrap();
    if let Some(limits) = limits {
        let spec: RuleSpec = serde_json::from_value(json!({
            "name": "Sport readers",
            "connectorId": connector.id,
            "conditions": {"all": [
                {"tag": "theme", "op": "eq", "value": "sport"},
                {"counter": "total", "op": "gte", "value": 5}
            ]},
            "points": {"fixed": 10},
            "limits": limits,
        }))
        .unwrap();
        engine.create_rule(&program.id, spec).await.unwrap();
    }
    (program.id, connector.id)
}

async fn send(
    engine: &Engine,
    connector: &ConnectorId,
    body: &str,
    test: bool,
) -> Result<IngestResponse, loyalty_core::Error> {
    engine
        .ingest(IncomingRequest {
            connector_id: connector.as_str(),
            query: "token=s3cret-token",
            headers: &[],
            body: body.as_bytes(),
            test,
        })
        .await
}

fn sqlstate(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(e) => e.code().map(|c| c.into_owned()).unwrap_or_default(),
        other => panic!("expected a database error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_twice() {
    let database = common::fresh_database().await;
    let first = common::connect(database.clone()).await;
    let second = common::connect(database).await;
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(second.pool())
            .await
            .unwrap();
    assert!(!applied.is_empty());
    assert!(applied.iter().all(|(_, success)| *success));
    let versions: HashSet<i64> = applied.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions.len(), applied.len(), "each migration applied once");
    // Both instances work on the one schema.
    let (program, _) = engine(&first)
        .create_program(ProgramSpec {
            name: "Shared".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(second.get_program(&program.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_holds_the_invariants() {
    let store = common::connect(common::fresh_database().await).await;
    let engine = engine(&store);
    let (program, connector) = setup(&engine, Some(json!([]))).await;
    let response = send(
        &engine,
        &connector,
        &article("a-1", "ann@example.com", "sport", 5).to_string(),
        false,
    )
    .await
    .unwrap();
    let event = &response.results[0].event_id;
    let member = response.results[0].member_id().cloned().unwrap();
    let pool = store.pool();

    // A second accepted key for (connector, clientEventId, test), even naming a real event.
    let second_key = sqlx::query(
        "INSERT INTO accepted_keys (connector_id, client_event_id, test, program_id, event_id) \
         VALUES ($1, 'a-1', false, $2, $3)",
    )
    .bind(connector.as_str())
    .bind(program.as_str())
    .bind(event.as_str())
    .execute(pool)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&second_key), "23505", "unique violation");
    // The test namespace is another key.
    sqlx::query(
        "INSERT INTO accepted_keys (connector_id, client_event_id, test, program_id, event_id) \
         VALUES ($1, 'a-1', true, $2, $3)",
    )
    .bind(connector.as_str())
    .bind(program.as_str())
    .bind(event.as_str())
    .execute(pool)
    .await
    .unwrap();
    // A key must name an event that exists.
    let dangling = sqlx::query(
        "INSERT INTO accepted_keys (connector_id, client_event_id, test, program_id, event_id) \
         VALUES ($1, 'a-2', false, $2, 'evt_nope')",
    )
    .bind(connector.as_str())
    .bind(program.as_str())
    .execute(pool)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&dangling), "23503", "foreign key violation");

    let ledger = |points: i64, member: String| {
        sqlx::query(
            "INSERT INTO ledger_entries (program_id, member_id, seq, id, event_id, connector_id, \
                 rule_id, points, test, created_at, occurred_at) \
             VALUES ($1, $2, nextval('loyalty_seq'), 'led_x', $3, $4, 'rul_x', $5, false, \
                 now(), now())",
        )
        .bind(program.as_str())
        .bind(member)
        .bind(event.as_str())
        .bind(connector.as_str())
        .bind(points)
        .execute(pool)
    };
    let zero = ledger(0, member.to_string()).await.unwrap_err();
    assert_eq!(sqlstate(&zero), "23514", "ledger points are positive");
    let stranger = ledger(5, "mem_nobody".into()).await.unwrap_err();
    assert_eq!(sqlstate(&stranger), "23503", "ledger entries name a member");

    // Each kind of entry keeps its sign and its links (a balance itself may go below zero: a
    // reversal may take back points already spent).
    let entry = |kind: &str, points: i64, reverses: Option<&str>, reason: Option<&str>| {
        sqlx::query(
            "INSERT INTO ledger_entries (program_id, member_id, seq, id, kind, event_id, \
                 connector_id, rule_id, points, reverses, reason, test, created_at, occurred_at) \
             VALUES ($1, $2, nextval('loyalty_seq'), 'led_' || nextval('loyalty_seq'), $3, NULL, \
                 NULL, NULL, $4, $5, $6, false, now(), now())",
        )
        .bind(program.as_str())
        .bind(member.as_str())
        .bind(kind.to_owned())
        .bind(points)
        .bind(reverses.map(str::to_owned))
        .bind(reason.map(str::to_owned))
        .execute(pool)
    };
    for (kind, points, reverses, reason, why) in [
        (
            "award",
            5,
            None,
            Some("x"),
            "an award names its event and rule",
        ),
        (
            "adjustment",
            0,
            None,
            Some("x"),
            "an adjustment is not zero",
        ),
        ("adjustment", 5, None, None, "an adjustment says why"),
        (
            "reversal",
            -5,
            None,
            Some("x"),
            "a reversal names its award",
        ),
        (
            "reversal",
            5,
            Some("led_x"),
            Some("x"),
            "a reversal is negative",
        ),
        ("expiry", -5, None, None, "an expiry names its award"),
        ("gift", 5, None, Some("x"), "kinds are known"),
    ] {
        let refused = entry(kind, points, reverses, reason).await.unwrap_err();
        assert_eq!(sqlstate(&refused), "23514", "{why}");
    }
    let dangling = sqlx::query(
        "INSERT INTO ledger_entries (program_id, member_id, seq, id, kind, points, reverses, \
             reverses_seq, reason, test, created_at, occurred_at) \
         VALUES ($1, $2, nextval('loyalty_seq'), 'led_dangling', 'reversal', -5, 'led_nope', \
             -1, 'x', false, now(), now())",
    )
    .bind(program.as_str())
    .bind(member.as_str())
    .execute(pool)
    .await
    .unwrap_err();
    assert_eq!(
        sqlstate(&dangling),
        "23503",
        "a reversal takes from an existing award"
    );
    entry("adjustment", -5, None, Some("goodwill, taken back"))
        .await
        .unwrap();
    let status = sqlx::query("UPDATE events SET status = 'lost' WHERE program_id = $1")
        .bind(program.as_str())
        .execute(pool)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&status), "23514", "statuses are checked");
}

/// Two store instances, as two processes would be, with their own pools and committers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_database_accept_once_and_respect_limits() {
    let database = common::fresh_database().await;
    let store_a = common::connect(database.clone()).await;
    let store_b = common::connect(database).await;
    let engine_a = engine(&store_a);
    let (program, connector) = setup(&engine_a, Some(json!([{"count": 25, "per": "day"}]))).await;
    // Built after the setup: an engine caches connectors, and this one must load them.
    let engine_b = engine(&store_b);

    let distinct = 240;
    let mut handles = Vec::new();
    for task in 0..8usize {
        let engine = if task % 2 == 0 {
            engine_a.clone()
        } else {
            engine_b.clone()
        };
        let connector = connector.clone();
        handles.push(tokio::spawn(async move {
            let mut ids: Vec<usize> = (0..distinct).collect();
            ids.rotate_left(task * 53 % distinct);
            if task % 4 >= 2 {
                ids.reverse();
            }
            let mut results = Vec::new();
            for chunk in ids.chunks(if task % 3 == 0 { 1 } else { 6 }) {
                let items: Vec<Value> = chunk
                    .iter()
                    .map(|i| {
                        let email = if i % 3 == 0 {
                            "hot@example.com".to_owned()
                        } else {
                            format!("m{}@example.com", i % 20)
                        };
                        article(&format!("e-{i}"), &email, "sport", 5)
                    })
                    .collect();
                let response = send(&engine, &connector, &Value::Array(items).to_string(), false)
                    .await
                    .unwrap();
                results.extend(response.results);
            }
            results
        }));
    }
    let mut accepted: HashMap<String, Vec<EventId>> = HashMap::new();
    let mut duplicates: Vec<(String, EventId)> = Vec::new();
    for handle in handles {
        for result in handle.await.unwrap() {
            let id = result.client_event_id.clone().unwrap();
            match result.status() {
                ItemStatus::Accepted => accepted.entry(id).or_default().push(result.event_id),
                ItemStatus::Duplicate => {
                    duplicates.push((id, result.original_event_id().unwrap().clone()))
                }
                other => panic!("unexpected status {other:?}"),
            }
        }
    }
    assert_eq!(accepted.len(), distinct, "every event id accepted");
    assert!(
        accepted.values().all(|events| events.len() == 1),
        "each event id accepted exactly once"
    );
    assert_eq!(duplicates.len(), distinct * 7);
    for (id, original) in &duplicates {
        assert_eq!(
            &accepted[id][0], original,
            "a duplicate names the accepted event"
        );
    }

    let hot = engine_b
        .find_member(&program, "email", "hot@example.com")
        .await
        .unwrap();
    assert_eq!(hot.balance, 250, "25 awards a day, no more");
    let ledger = store_b.ledger_entries(&program, &hot.id).await.unwrap();
    assert_eq!(ledger.len(), 25);
    for m in 0..20 {
        let member = engine_a
            .find_member(&program, "email", &format!("m{m}@example.com"))
            .await
            .unwrap();
        let ledger = store_a.ledger_entries(&program, &member.id).await.unwrap();
        assert_eq!(member.balance, ledger.iter().map(|l| l.points).sum::<i64>());
        assert!(member.balance <= 250);
    }
    // One log entry per delivery, in both stores' view.
    let log = store_a
        .list_events(
            &program,
            &EventFilter::default(),
            loyalty_core::ledger::PageRequest {
                limit: 5000,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(log.items.len(), distinct * 8);
}

/// A batch the database refuses (here a clientEventId with a NUL character, which a text
/// column cannot hold) fails alone, even when merged with others into one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_batch_does_not_fail_the_others() {
    let store = PostgresStore::connect_with(
        common::fresh_database().await,
        PostgresOptions {
            committers: 1,
            ..PostgresOptions::default()
        },
    )
    .await
    .unwrap();
    let engine = engine(&store);
    let (program, connector) = setup(&engine, Some(json!([]))).await;
    let mut handles = Vec::new();
    for i in 0..24 {
        let engine = engine.clone();
        let connector = connector.clone();
        handles.push(tokio::spawn(async move {
            let id = if i == 11 {
                "bad\u{0}id".to_owned()
            } else {
                format!("ok-{i}")
            };
            let body = article(&id, &format!("m{i}@example.com"), "sport", 5).to_string();
            (i, send(&engine, &connector, &body, false).await)
        }));
    }
    for handle in handles {
        let (i, response) = handle.await.unwrap();
        if i == 11 {
            // Either the store refuses it, or (if the engine learns to) it is rejected.
            if let Ok(response) = response {
                assert_eq!(response.results[0].status(), ItemStatus::Rejected);
            }
        } else {
            let response = response.unwrap();
            assert_eq!(
                response.results[0].status(),
                ItemStatus::Accepted,
                "item {i}"
            );
        }
    }
    let log = engine
        .list_events(&program, &EventFilter::default(), Some(100), None)
        .await
        .unwrap();
    assert!(log.items.len() >= 23);
}

/// The raw item is kept as received, \u0000 included (which jsonb would refuse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_items_keep_nul_escapes() {
    let store = common::connect(common::fresh_database().await).await;
    let engine = engine(&store);
    let (program, connector) = setup(&engine, Some(json!([]))).await;
    let body = article("n-1", "ann@example.com", "spo\u{0}rt", 5).to_string();
    let response = send(&engine, &connector, &body, false).await.unwrap();
    assert_eq!(response.results[0].status(), ItemStatus::Accepted);
    let logged = engine
        .get_event(&program, &response.results[0].event_id)
        .await
        .unwrap();
    assert_eq!(logged.raw.to_value()["article"]["theme"], "spo\u{0}rt");
    assert!(logged.trace.is_some());
}

/// Purges racing test deliveries: every race is retried, and balances always equal the
/// ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purges_racing_deliveries_keep_balances_consistent() {
    let store = common::connect(common::fresh_database().await).await;
    let engine = engine(&store);
    let (program, connector) = setup(&engine, Some(json!([{"count": 3, "per": "day"}]))).await;
    let mut handles = Vec::new();
    for task in 0..4 {
        let engine = engine.clone();
        let connector = connector.clone();
        handles.push(tokio::spawn(async move {
            for round in 0..30 {
                let items: Vec<Value> = (0..4)
                    .map(|i| {
                        article(
                            &format!("t-{}", (task + round + i) % 10),
                            &format!("m{}@example.com", (task + i) % 3),
                            "sport",
                            5,
                        )
                    })
                    .collect();
                let test = round % 4 != 0;
                send(&engine, &connector, &Value::Array(items).to_string(), test)
                    .await
                    .unwrap();
            }
        }));
    }
    let purger = {
        let engine = engine.clone();
        let (program, connector) = (program.clone(), connector.clone());
        tokio::spawn(async move {
            for _ in 0..15 {
                engine.purge_test_data(&program, &connector).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for handle in handles {
        handle.await.unwrap();
    }
    purger.await.unwrap();
    engine.purge_test_data(&program, &connector).await.unwrap();

    let log = engine
        .list_events(&program, &EventFilter::default(), Some(500), None)
        .await
        .unwrap();
    assert!(log.items.iter().all(|e| !e.test), "every test event purged");
    for m in 0..3 {
        let Ok(member) = engine
            .find_member(&program, "email", &format!("m{m}@example.com"))
            .await
        else {
            continue;
        };
        let ledger = store.ledger_entries(&program, &member.id).await.unwrap();
        assert!(ledger.iter().all(|l| !l.test));
        assert_eq!(member.balance, ledger.iter().map(|l| l.points).sum::<i64>());
        assert!(!member.test, "only members with live events are left");
        assert!(ledger.len() <= 3, "the limit counts live awards only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_hides_the_password() {
    let options = common::fresh_database().await.password("hunter2-secret");
    let store = common::connect(options).await;
    let shown = format!("{store:?}");
    assert!(shown.contains("PostgresStore"));
    assert!(!shown.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_is_refused_without_echoing_it() {
    let error = PostgresStore::connect("postgres://user:pa55word@[::1", PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("pa55word"));
    assert!(!error.is_unavailable());
}

/// The fast path decides on an unlocked read; a key claimed meanwhile by another transaction
/// makes its write fail and the group is decided again under locks: a duplicate of the event
/// that won, never a second acceptance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_taken_after_the_read_is_decided_again_under_locks() {
    let store = common::connect(common::fresh_database().await).await;
    let engine = engine(&store);
    let (program, connector) = setup(&engine, Some(json!([]))).await;
    let first = send(
        &engine,
        &connector,
        &article("a-1", "ann@example.com", "sport", 5).to_string(),
        false,
    )
    .await
    .unwrap();
    let member = first.results[0].member_id().cloned().unwrap();
    assert_eq!(store.commit_stats().fallbacks, 0);

    // Another process's commit of "race", in flight: its key is claimed but not committed, so
    // the store's read does not see it.
    let pool = store.pool();
    let mut other = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO accepted_keys (connector_id, client_event_id, test, program_id, event_id) \
         VALUES ($1, 'race', false, $2, 'evt_race')",
    )
    .bind(connector.as_str())
    .bind(program.as_str())
    .execute(&mut *other)
    .await
    .unwrap();
    let delivery = {
        let (engine, connector) = (engine.clone(), connector.clone());
        tokio::spawn(async move {
            send(
                &engine,
                &connector,
                &article("race", "ann@example.com", "sport", 5).to_string(),
                false,
            )
            .await
        })
    };
    // Until the store's write waits for that key.
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sqlx::query(
        "INSERT INTO events (program_id, id, seq, connector_id, status, client_event_id, \
             member_id, test, received_at, occurred_at, points, awards, raw, raw_truncated, \
             warnings) \
         VALUES ($1, 'evt_race', nextval('loyalty_seq'), $2, 'accepted', 'race', $3, false, \
             now(), now(), 0, '[]', '{}', false, '[]')",
    )
    .bind(program.as_str())
    .bind(connector.as_str())
    .bind(member.as_str())
    .execute(&mut *other)
    .await
    .unwrap();
    other.commit().await.unwrap();

    let response = delivery.await.unwrap().unwrap();
    assert_eq!(response.results[0].status(), ItemStatus::Duplicate);
    assert_eq!(
        response.results[0].original_event_id().map(EventId::as_str),
        Some("evt_race")
    );
    assert_eq!(response.results[0].member_id(), Some(&member));
    assert_eq!(store.commit_stats().fallbacks, 1);
    // Nothing of the lost attempt was written but its log entry, as a duplicate.
    let accepted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE program_id = $1 AND client_event_id = 'race' \
         AND status = 'accepted'",
    )
    .bind(program.as_str())
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(accepted, 1);
}

/// A subscription on one store instance (one process) sees what another commits, once and in
/// order; a cursor older than what the feed keeps says so and goes on from the oldest kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_feed_crosses_store_instances_and_says_when_a_cursor_is_too_old() {
    use futures::StreamExt;
    use loyalty_core::feed::{ChangeBody, FeedItem};
    let database = common::fresh_database().await;
    let store_a = common::connect(database.clone()).await;
    let store_b = common::connect(database).await;
    let engine_a = engine(&store_a);
    let (program, connector) = setup(&engine_a, Some(json!([]))).await;
    let engine_b = engine(&store_b);
    let mut stream = engine_b.subscribe(program.clone(), Some(0), None);
    let sent = 20;
    let sender = tokio::spawn({
        let engine_a = engine_a.clone();
        let connector = connector.clone();
        async move {
            for n in 0..sent {
                let body = article(&format!("e-{n}"), "ann@example.com", "sport", 5);
                send(&engine_a, &connector, &body.to_string(), false)
                    .await
                    .unwrap();
            }
        }
    });
    let mut balances = Vec::new();
    let mut events = 0;
    while balances.len() < sent {
        let item = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("store B's subscription sees store A's commits")
            .unwrap()
            .unwrap();
        match item {
            FeedItem::Change(change) => match change.body {
                ChangeBody::Ledger(ledger) => balances.push(ledger.balance),
                ChangeBody::Event(_) => events += 1,
            },
            FeedItem::Missed => panic!("nothing is past retention"),
        }
    }
    sender.await.unwrap();
    assert_eq!(events, sent);
    let expected: Vec<i64> = (1..=sent as i64).map(|n| n * 10).collect();
    assert_eq!(balances, expected);

    // Pretend the first ten positions were pruned.
    sqlx::query("UPDATE feed_heads SET pruned_through = 10 WHERE program_id = $1")
        .bind(program.as_str())
        .execute(store_a.pool())
        .await
        .unwrap();
    let page = engine_b.changes_after(&program, 3, None, 5).await.unwrap();
    assert!(page.missed);
    assert_eq!(page.changes[0].position, 11);
    let page = engine_b.changes_after(&program, 10, None, 5).await.unwrap();
    assert!(!page.missed);
    // A cursor past the head was never handed out: missed, and on from the head.
    let page = engine_b
        .changes_after(&program, 1_000_000, None, 5)
        .await
        .unwrap();
    assert!(page.missed && page.changes.is_empty());
}
