//! Embedding the engine in a Rust program: the seed scenario end to end, in memory.
//!
//! An "Article Read" connector with the seed mapping of docs/concepts.md, a rule on `theme` and `total`, and
//! a bulk of events (one without an email, one duplicate); prints each result and the
//! balances.
//!
//! ```sh
//! cargo run --example embed
//! ```

use loyalty::core::clock::SystemClock;
use loyalty::core::connector::ConnectorSpec;
use loyalty::core::engine::IncomingRequest;
use loyalty::core::program::ProgramSpec;
use loyalty::core::rules::RuleSpec;
use loyalty::core::Engine;
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

    let connector: ConnectorSpec = serde_json::from_value(json!({
        "name": "Article Read",
        "eventType": "custom.basic",
        "auth": {"type": "queryToken", "param": "token", "token": "s3cret-token"},
        "mapping": r#"{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead}]} }"#,
    }))?;
    let connector = engine.create_connector(&program.id, connector).await?;
    println!("connector {} at {}", connector.id, connector.endpoint);

    let rule: RuleSpec = serde_json::from_value(json!({
        "name": "Sport readers",
        "connectorId": connector.id,
        "conditions": {"all": [
            {"tag": "theme", "op": "eq", "value": "sport"},
            {"counter": "total", "op": "gte", "value": 5}
        ]},
        "points": {"fixed": 10},
        "limits": [{"count": 3, "per": "day"}]
    }))?;
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
        let why = result
            .reason
            .clone()
            .or_else(|| result.error.as_ref().map(|e| e.message.clone()))
            .or_else(|| {
                result
                    .original_event_id
                    .as_ref()
                    .map(|o| format!("duplicate of {o}"))
            })
            .unwrap_or_default();
        println!(
            "item {}: {:<9} {:>3} points  {} {}",
            result.index,
            result.status.as_str(),
            result.points,
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
    Ok(())
}
