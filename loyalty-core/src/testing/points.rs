//! The life of points after the award: adjustments and admin reversals, alone and under
//! concurrency.

use super::*;
use crate::error::Error;
use crate::ids::EventId;
use crate::ledger::{EntryKind, ItemStatus};

async fn awarded_event(f: &Fixture, id: &str, email: &str) -> EventId {
    let response = f
        .send(&article(id, email, "sport", 5).to_string(), false)
        .await;
    assert_eq!(statuses(&response), [ItemStatus::Accepted]);
    assert_eq!(response.results[0].points(), 10);
    response.results[0].event_id.clone()
}

fn conflict_code(result: Result<impl std::fmt::Debug, Error>) -> &'static str {
    match result {
        Err(Error::Conflict { code, .. }) => code,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Every entry is well formed and every balance is the sum of its member's entries.
async fn assert_ledger_consistent(f: &Fixture, member: &MemberId) {
    let entries = f
        .engine
        .store()
        .ledger_entries(&f.program, member)
        .await
        .unwrap();
    for entry in &entries {
        assert!(entry.is_well_formed(), "{entry:?}");
    }
    let stored = f.engine.get_member(&f.program, member).await.unwrap();
    assert_eq!(
        stored.balance,
        entries.iter().map(|e| e.points).sum::<i64>()
    );
}

pub async fn adjustments_say_why_and_happen_once(store: Arc<dyn Store>) {
    let f = Fixture::new(store, Some(json!([]))).await;
    awarded_event(&f, "a-1", "ann@example.com").await;
    let ann = f.member("ann@example.com").await;
    let (e, p) = (&f.engine, &f.program);

    let first = e
        .adjust_points(p, &ann, 50, " goodwill ", Some("k-1"))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.balance, 60);
    assert_eq!(first.entry.kind, EntryKind::Adjustment);
    assert_eq!(first.entry.reason.as_deref(), Some("goodwill"));
    let again = e
        .adjust_points(p, &ann, 50, "goodwill", Some("k-1"))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.entry.id, first.entry.id);
    assert_eq!(again.balance, 60, "the same key changes nothing");
    let other = e.adjust_points(p, &ann, 51, "goodwill", Some("k-1")).await;
    assert_eq!(conflict_code(other), "idempotency_conflict");

    // Negative, below zero: a balance is shown as it is.
    let taken = e
        .adjust_points(p, &ann, -70, "chargeback", None)
        .await
        .unwrap();
    assert_eq!(taken.balance, -10);
    for (points, reason, path) in [(0, "x", "/points"), (5, "  ", "/reason")] {
        match e.adjust_points(p, &ann, points, reason, None).await {
            Err(Error::Invalid { path: got, .. }) => assert_eq!(got, path),
            other => panic!("expected a validation error at {path}, got {other:?}"),
        }
    }
    assert!(matches!(
        e.adjust_points(p, &MemberId::new("mem_nobody"), 5, "x", None)
            .await,
        Err(Error::NotFound { what: "member" })
    ));

    let activity = e.member_activity(p, &ann, None, None).await.unwrap();
    let kinds: Vec<_> = activity
        .items
        .iter()
        .filter_map(|i| i.entry_kind.map(|k| (k, i.points, i.reason.clone())))
        .collect();
    assert_eq!(
        kinds,
        [
            (EntryKind::Adjustment, -70, Some("chargeback".into())),
            (EntryKind::Adjustment, 50, Some("goodwill".into())),
            (EntryKind::Award, 10, None),
        ]
    );
    assert_ledger_consistent(&f, &ann).await;
}

pub async fn concurrent_adjustments_with_one_key_happen_once(store: Arc<dyn Store>) {
    let f = Arc::new(Fixture::new(store, Some(json!([]))).await);
    awarded_event(&f, "a-1", "ann@example.com").await;
    let ann = f.member("ann@example.com").await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (f, ann) = (f.clone(), ann.clone());
            tokio::spawn(async move {
                f.engine
                    .adjust_points(&f.program, &ann, 5, "welcome gift", Some("gift-1"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        let done = task.await.unwrap();
        created += usize::from(done.created);
        ids.insert(done.entry.id);
    }
    assert_eq!((created, ids.len()), (1, 1));
    assert_eq!(f.balance("ann@example.com").await, Some(15));
    assert_ledger_consistent(&f, &ann).await;
}

pub async fn admin_reversals_take_back_what_is_left_and_free_the_limit(store: Arc<dyn Store>) {
    // Once a day: a second sport article the same day awards nothing, until the first
    // award is reversed to nothing.
    let f = Fixture::new(store, Some(json!([{"count": 1, "per": "day"}]))).await;
    let event = awarded_event(&f, "a-1", "ann@example.com").await;
    let ann = f.member("ann@example.com").await;
    let (e, p) = (&f.engine, &f.program);

    let part = e
        .reverse_event(p, &event, Some(3), "damaged goods")
        .await
        .unwrap();
    assert_eq!((part.points(), part.balance), (-3, 7));
    let entry = &part.entries[0];
    assert_eq!(entry.kind, EntryKind::Reversal);
    assert_eq!(entry.reason.as_deref(), Some("damaged goods"));
    assert!(entry.reverses.is_some());
    // A partial reversal frees points, not the award itself: the limit still holds.
    let blocked = f
        .send(
            &article("a-2", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(blocked.results[0].points(), 0);

    let rest = e
        .reverse_event(p, &event, None, "order cancelled")
        .await
        .unwrap();
    assert_eq!((rest.points(), rest.balance), (-7, 0));
    assert_eq!(
        conflict_code(e.reverse_event(p, &event, None, "again").await),
        "nothing_to_reverse"
    );
    assert!(matches!(
        e.reverse_event(p, &EventId::new("evt_nope"), None, "x")
            .await,
        Err(Error::NotFound { what: "event" })
    ));
    // Reversed to nothing, the award no longer counts toward the daily limit.
    let freed = f
        .send(
            &article("a-3", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(freed.results[0].points(), 10);
    assert_eq!(f.balance("ann@example.com").await, Some(10));
    assert_ledger_consistent(&f, &ann).await;
}

pub async fn concurrent_reversals_never_take_more_than_was_given(store: Arc<dyn Store>) {
    let f = Arc::new(Fixture::new(store, Some(json!([]))).await);
    let event = awarded_event(&f, "a-1", "ann@example.com").await;
    let ann = f.member("ann@example.com").await;
    // 16 reversals of 1 point each against a 10-point award: ten take one, six find nothing.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (f, event) = (f.clone(), event.clone());
            tokio::spawn(async move {
                f.engine
                    .reverse_event(&f.program, &event, Some(1), &format!("part {i}"))
                    .await
            })
        })
        .collect();
    let (mut taken, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(done) => taken += -done.points(),
            Err(Error::Conflict {
                code: "nothing_to_reverse",
                ..
            }) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((taken, refused), (10, 6));
    assert_eq!(f.balance("ann@example.com").await, Some(0));
    assert_ledger_consistent(&f, &ann).await;
}

pub async fn purge_takes_the_reversals_of_what_it_removes(store: Arc<dyn Store>) {
    // Twice a day: a live award and a test award, the test one partly reversed, then purged.
    let f = Fixture::new(store, Some(json!([{"count": 2, "per": "day"}]))).await;
    awarded_event(&f, "live-1", "ann@example.com").await;
    let test = f
        .send(
            &article("test-1", "ann@example.com", "sport", 5).to_string(),
            true,
        )
        .await;
    assert_eq!(test.results[0].points(), 10);
    let ann = f.member("ann@example.com").await;
    let reversed = f
        .engine
        .reverse_event(
            &f.program,
            &test.results[0].event_id,
            Some(4),
            "trying it out",
        )
        .await
        .unwrap();
    assert_eq!(reversed.balance, 16);
    let counts = f
        .engine
        .purge_test_data(&f.program, &f.connector)
        .await
        .unwrap();
    assert_eq!((counts.events, counts.ledger_entries), (1, 2));
    assert_eq!(f.balance("ann@example.com").await, Some(10));
    assert_ledger_consistent(&f, &ann).await;
    // The test award no longer counts toward the daily limit: one more live award fits.
    let second = f
        .send(
            &article("live-2", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(second.results[0].points(), 10);
    let third = f
        .send(
            &article("live-3", "ann@example.com", "sport", 5).to_string(),
            false,
        )
        .await;
    assert_eq!(third.results[0].points(), 0);
}

pub async fn allowance_says_what_is_left_of_each_limit(store: Arc<dyn Store>) {
    let f = Fixture::new(
        store,
        Some(json!([{"count": 2, "per": "day"}, {"points": 15, "per": "week"}])),
    )
    .await;
    let event = awarded_event(&f, "a-1", "ann@example.com").await;
    let ann = f.member("ann@example.com").await;
    let rules = f.engine.allowance(&f.program, &ann).await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].rule_name, "Sport readers");
    let left: Vec<_> = rules[0]
        .limits
        .iter()
        .map(|l| (l.per, l.count, l.points, l.used, l.remaining))
        .collect();
    use crate::rules::Period;
    assert_eq!(
        left,
        [
            (Period::Day, Some(2), None, 1, 1),
            (Period::Week, None, Some(15), 10, 5)
        ]
    );
    // The suite's clock is 2026-11-26 12:00, a Thursday.
    let resets: Vec<_> = rules[0].limits.iter().map(|l| l.resets_at).collect();
    assert_eq!(
        resets,
        [
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap()),
            Some(Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap())
        ]
    );
    // Reversed to nothing, the award no longer counts.
    f.engine
        .reverse_event(&f.program, &event, None, "cancelled")
        .await
        .unwrap();
    let rules = f.engine.allowance(&f.program, &ann).await.unwrap();
    let used: Vec<_> = rules[0].limits.iter().map(|l| l.used).collect();
    assert_eq!(used, [0, 0]);
}

pub async fn expired_points_leave_the_balance_and_the_sweep_writes_them_once(
    store: Arc<dyn Store>,
) {
    let spec = crate::program::ProgramSpec {
        name: "Expiring".into(),
        points_expiry: Some(crate::program::PointsExpiry { after_days: 30 }),
        ..Default::default()
    };
    let f = Arc::new(Fixture::with_program(store, Some(json!([])), spec).await);
    awarded_event(&f, "a-1", "ann@example.com").await;
    awarded_event(&f, "b-1", "bob@example.com").await;
    let ann = f.member("ann@example.com").await;
    let view = f.engine.member_view(&f.program, &ann).await.unwrap();
    assert_eq!(view.balance, 10);
    // The suite's events happen at 11:00 on the suite's day.
    let expires = Utc.with_ymd_and_hms(2026, 12, 26, 11, 0, 0).unwrap();
    assert_eq!(
        view.expiring,
        [crate::lots::Expiring {
            points: 10,
            at: expires
        }]
    );
    f.clock.advance(chrono::Duration::days(31));
    let view = f.engine.member_view(&f.program, &ann).await.unwrap();
    assert_eq!(
        (view.balance, view.expiring.len()),
        (0, 0),
        "expired points leave the balance before the sweep runs"
    );
    // Eight sweeps at once write each member's expiry once.
    let now = f.engine.now();
    let sweeps: Vec<_> = (0..8)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { f.engine.run_expiry(now).await.unwrap() })
        })
        .collect();
    let mut written = 0;
    for sweep in sweeps {
        written += sweep.await.unwrap();
    }
    assert_eq!(written, 2);
    assert_eq!(f.engine.run_expiry(now).await.unwrap(), 0);
    let entries = f
        .engine
        .store()
        .ledger_entries(&f.program, &ann)
        .await
        .unwrap();
    let expiry = entries
        .iter()
        .find(|e| e.kind == EntryKind::Expiry)
        .unwrap();
    assert_eq!((expiry.points, expiry.occurred_at), (-10, expires));
    assert_ledger_consistent(&f, &ann).await;
    let view = f.engine.member_view(&f.program, &ann).await.unwrap();
    assert_eq!(view.balance, 0);
    // Expired points are gone: a reversal finds nothing left to take (not a second -10).
    let event = f
        .engine
        .store()
        .ledger_entries(&f.program, &ann)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == EntryKind::Award)
        .and_then(|e| e.event_id)
        .unwrap();
    assert_eq!(
        conflict_code(
            f.engine
                .reverse_event(&f.program, &event, None, "late")
                .await
        ),
        "nothing_to_reverse"
    );
    assert_ledger_consistent(&f, &ann).await;
    assert_eq!(f.balance("ann@example.com").await, Some(0));
}

pub async fn pending_points_are_spendable_after_their_delay(store: Arc<dyn Store>) {
    let f = Fixture::new(store, None).await;
    let spec: RuleSpec = serde_json::from_value(json!({
        "name": "Held a week",
        "connectorId": f.connector,
        "conditions": {"tag": "theme", "op": "eq", "value": "sport"},
        "points": {"fixed": 10},
        "limits": [{"count": 1, "per": "day"}],
        "pendingDays": 7
    }))
    .unwrap();
    let rule = f.engine.create_rule(&f.program, spec).await.unwrap();
    assert_eq!(rule.pending_days, Some(7));
    let event = awarded_event(&f, "a-1", "ann@example.com").await;
    let ann = f.member("ann@example.com").await;
    let view = f.engine.member_view(&f.program, &ann).await.unwrap();
    assert_eq!((view.balance, view.pending), (0, 10));
    // Pending points count toward limits at once.
    let allowance = f.engine.allowance(&f.program, &ann).await.unwrap();
    assert_eq!(allowance[0].limits[0].remaining, 0);
    // A reversal while pending takes the pending points.
    let part = f
        .engine
        .reverse_event(&f.program, &event, Some(4), "partial return")
        .await
        .unwrap();
    assert_eq!(part.points(), -4);
    // Answers give the balance a member can spend, as the member's view does.
    assert_eq!(part.balance, 0);
    let adjusted = f
        .engine
        .adjust_points(&f.program, &ann, 3, "welcome gift", None)
        .await
        .unwrap();
    assert_eq!(adjusted.balance, 3);
    let view = f.engine.member_view(&f.program, &ann).await.unwrap();
    assert_eq!((view.balance, view.pending), (3, 6));
    f.clock.advance(chrono::Duration::days(7));
    let view = f.engine.member_view(&f.program, &ann).await.unwrap();
    assert_eq!((view.balance, view.pending), (9, 0));
    assert_ledger_consistent(&f, &ann).await;
}
