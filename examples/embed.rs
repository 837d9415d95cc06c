//! Embedding the engine in a Rust program: the seed scenario end to end, in memory.
//!
//! An "Article Read" connector with the seed mapping of docs/concepts.md, a rule on `theme` and
//! `total` built from typed conditions, and a bulk of events (one without an email, one duplicate); prints each result and the
//! balances.
//!
//! ```sh
//! cargo run --example embed
//! ```

use futures::StreamExt;
use loyalty::core::ledger::EntryKind;
use loyalty::core::prelude::*;
use loyalty::store_memory::MemoryStore;
use serde_json::json;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock));

    let (program, _admin_token) = engine
        .create_program(ProgramSpec {
            name: "Readers' club".into(),
            ..Default::default()
        })
        .await?;

    let mapping = r#"{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead}]} }"#;
    let connector = ConnectorSpec::new(
        "Article Read",
        EventType::CustomBasic,
        AuthSpec::query_token("token", "s3cret-token"),
        mapping,
    );
    let connector = engine.create_connector(&program.id, connector).await?;
    println!("connector {}", connector.id);

    let rule = RuleSpec::new("Sport readers", connector.id.clone(), PointsRule::fixed(10))
        .when(Condition::all([
            Condition::tag("theme", TextTest::Eq("sport".into())),
            Condition::counter("total", NumberTest::Gte(5.0)),
        ]))
        .limit(Limit::count(3, Period::Day));
    let rule = engine.create_rule(&program.id, rule).await?;
    println!("rule {} ({})", rule.id, rule.name);

    let now = chrono::Utc::now().to_rfc3339();
    let article = |id: &str, email: Option<&str>, theme: &str, total: i64| {
        json!({
            "eventId": id,
            "timestamp": now,
            "profile": {"email": email},
            "article": {"theme": theme, "title": "Derby night"},
            "totalArticlesRead": total
        })
    };
    let bulk = json!([
        article("evt-1", Some("ann@example.com"), "sport", 5),
        article("evt-2", Some("bob@example.com"), "sport", 12),
        article("evt-3", None, "sport", 9),
        article("evt-1", Some("ann@example.com"), "sport", 5),
        article("evt-4", Some("ann@example.com"), "politics", 6),
    ]);
    let body = serde_json::to_vec(&bulk)?;
    let response = engine
        .ingest(IncomingRequest {
            connector_id: connector.id.as_str(),
            query: "token=s3cret-token",
            headers: &[],
            body: &body,
            test: false,
        })
        .await?;

    for result in &response.results {
        let why = match &result.outcome {
            ItemOutcome::Accepted { awards, .. } => format!("{} award(s)", awards.len()),
            ItemOutcome::Refunded { reversed, .. } => format!("{} reversal(s)", reversed.len()),
            ItemOutcome::Duplicate {
                original_event_id, ..
            } => format!(
                "duplicate of {}",
                original_event_id.as_ref().map_or("?", |id| id.as_str())
            ),
            ItemOutcome::Ignored { reason } => reason.clone().unwrap_or_default(),
            ItemOutcome::Rejected { error } => error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
        };
        println!(
            "item {}: {:<9} {:>3} points  {} {}",
            result.index,
            result.status().as_str(),
            result.points(),
            result.client_event_id.as_deref().unwrap_or("-"),
            why
        );
    }
    println!(
        "accepted {}, duplicates {}, ignored {}, rejected {}",
        response.accepted, response.duplicates, response.ignored, response.rejected
    );
    for email in ["ann@example.com", "bob@example.com"] {
        let member = engine.find_member(&program.id, "email", email).await?;
        println!("{email}: balance {}", member.balance);
    }

    // The feed: every committed change, in commit order, from any position. A subscription
    // never ends; it waits for the next commit (of this process or, on PostgreSQL, another).
    let ann = engine
        .find_member(&program.id, "email", "ann@example.com")
        .await?;
    let mut ann_changes = engine.subscribe(program.id.clone(), Some(0), Some(ann.id.clone()));
    // An adjustment by hand; its key makes sending it again harmless.
    engine
        .adjust_points(&program.id, &ann.id, 5, "Welcome gift", Some("welcome-ann"))
        .await?;
    // Ann's changes so far, up to the adjustment.
    loop {
        match ann_changes.next().await {
            Some(Ok(FeedItem::Change(change))) => match &change.body {
                ChangeBody::Ledger(line) => {
                    println!(
                        "feed #{}: {} {:+} points, balance {}",
                        change.position,
                        line.entry.kind.as_str(),
                        line.entry.points,
                        line.balance
                    );
                    if line.entry.kind == EntryKind::Adjustment {
                        break;
                    }
                }
                ChangeBody::Event(event) => {
                    println!(
                        "feed #{}: event {}",
                        change.position,
                        event.0.status.as_str()
                    )
                }
            },
            other => anyhow::bail!("the feed ended or failed: {other:?}"),
        }
    }

    // A backtest: the logged events again through a draft rule set (the same rule at 20
    // points), as a dry run: a report, and nothing stored.
    let mut spec = ReplaySpec::new(connector.id.clone());
    spec.rules = Some(vec![json!({
        "id": rule.id, "name": rule.name, "connectorId": connector.id,
        "conditions": rule.conditions, "points": {"fixed": 20}, "limits": rule.limits,
    })]);
    let replay = engine.create_replay(&program.id, spec).await?;
    let replay = engine
        .run_recorded_replay(replay, &ReplayProgress::new())
        .await?;
    if let Some(report) = &replay.report {
        println!(
            "backtest: {} points before, {} with the draft rules",
            report.points.before, report.points.after
        );
    }
    Ok(())
}
