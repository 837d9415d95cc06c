//! Replays over HTTP: the quarantine view, a dry run and an applied replay as background jobs.

use crate::harness::{article, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const FIXED_MAPPING: &str = r#"{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": $number($substringBefore($string(totalArticlesRead), " "))}]} }"#;

fn with_text_counter(event_id: &str, email: &str) -> Value {
    let mut item = article(event_id, email, "sport", 5);
    item["totalArticlesRead"] = json!("7 articles");
    item
}

/// Waits for a replay to end (each poll a request; a replay of a few items ends at once).
async fn ended(server: &TestServer, program: &str, token: &str, id: &str) -> Value {
    let path = format!("/v1/programs/{program}/replays/{id}");
    for _ in 0..500 {
        let replay = server.ok(Method::GET, &path, token, None).await;
        if replay["state"] != "running" {
            return replay;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("replay {id} still running after 500 polls");
}

#[tokio::test]
async fn a_mapping_fix_is_seen_in_the_quarantine_then_replayed_once() {
    let server = TestServer::start().await;
    let (program, token, connector) = server.program_with_query_connector().await;
    server
        .seed_rule(&program, &token, &connector, json!([]))
        .await;
    let bulk = json!([
        with_text_counter("t-1", "ann@example.com"),
        with_text_counter("t-2", "bob@example.com"),
        article("ok-1", "ann@example.com", "sport", 5),
    ]);
    let (status, _) = server
        .send(&connector, "?token=s3cret-token", &[], bulk.to_string())
        .await;
    assert_eq!(status, StatusCode::OK);

    let errors = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/events/errors?connectorId={connector}"),
            &token,
            None,
        )
        .await;
    let group = &errors["items"][0];
    assert_eq!(
        (
            &group["status"],
            &group["code"],
            &group["path"],
            &group["count"]
        ),
        (
            &json!("rejected"),
            &json!("validation_failed"),
            &json!("/payload/counters/0/value"),
            &json!(2)
        ),
        "{errors}"
    );
    assert!(group["exampleEventId"].is_string() && group["firstAt"].is_string());

    // A dry run: 202, then the report; nothing stored.
    let replays = format!("/v1/programs/{program}/replays");
    let (status, created) = server
        .call(
            Method::POST,
            &replays,
            Some(&token),
            Some(json!({"connectorId": connector, "mapping": FIXED_MAPPING})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let dry = ended(&server, &program, &token, &id).await;
    assert_eq!(dry["state"], "done", "{dry}");
    assert_eq!((&dry["processed"], &dry["total"]), (&json!(3), &json!(3)));
    let report = &dry["report"];
    assert_eq!(report["before"]["rejected"], 2);
    assert_eq!(report["after"]["accepted"], 3);
    assert_eq!(
        (&report["points"]["before"], &report["points"]["after"]),
        (&json!(10), &json!(30))
    );
    assert_eq!(report["members"]["changed"], 2);
    assert_eq!(report["changes"].as_array().unwrap().len(), 2);
    assert_eq!(
        server.balance(&program, &token, "ann@example.com").await,
        Some(10)
    );
    assert_eq!(
        server.balance(&program, &token, "bob@example.com").await,
        None
    );

    // Applied: the points once, the new items linked to the replay.
    let applied = |body: Value| {
        let server = &server;
        let replays = replays.clone();
        let token = token.clone();
        let program = program.clone();
        async move {
            let (status, created) = server
                .call(Method::POST, &replays, Some(&token), Some(body))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{created}");
            ended(server, &program, &token, created["id"].as_str().unwrap()).await
        }
    };
    let body = json!({"connectorId": connector, "mapping": FIXED_MAPPING, "statuses": ["rejected"], "apply": true});
    let done = applied(body.clone()).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["report"]["applied"], true);
    assert_eq!(
        server.balance(&program, &token, "ann@example.com").await,
        Some(20)
    );
    assert_eq!(
        server.balance(&program, &token, "bob@example.com").await,
        Some(10)
    );
    let new_item = done["report"]["changes"][0]["after"]["eventId"]
        .as_str()
        .unwrap()
        .to_owned();
    let logged = server.logged_event(&program, &token, &new_item).await;
    assert_eq!(logged["replayId"], done["id"]);
    assert_eq!(logged["status"], "accepted");
    // Again: nothing more.
    let again = applied(body).await;
    assert_eq!(again["state"], "done");
    assert_eq!(
        server.balance(&program, &token, "ann@example.com").await,
        Some(20)
    );
    assert_eq!(
        server.balance(&program, &token, "bob@example.com").await,
        Some(10)
    );
}

#[tokio::test]
async fn replays_answer_errors_as_problems() {
    let server = TestServer::start().await;
    let (program, token, connector) = server.program_with_query_connector().await;
    let replays = format!("/v1/programs/{program}/replays");
    let cases = [
        (
            json!({"connectorId": connector, "mapping": "{"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_mapping",
        ),
        (
            json!({"connectorId": "con_nothing"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"connectorId": connector, "rules": [{"id": "rul_nothing"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"connectorId": connector, "rules": [{"name": "x", "points": {"fixed": -1}}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"connectorId": connector, "statuses": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"connectorId": connector, "surprise": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (body, status, code) in cases {
        let (got, problem) = server
            .call(Method::POST, &replays, Some(&token), Some(body.clone()))
            .await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "{body} {problem}"
        );
    }
    let (status, problem) = server
        .call(
            Method::GET,
            &format!("{replays}/rpl_nothing"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("{replays}/rpl_nothing"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A replay that ended is answered as it is by DELETE.
    let (_, created) = server
        .call(
            Method::POST,
            &replays,
            Some(&token),
            Some(json!({"connectorId": connector})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let done = ended(&server, &program, &token, &id).await;
    assert_eq!(done["state"], "done");
    let (status, after) = server
        .call(
            Method::DELETE,
            &format!("{replays}/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after["state"], "done");
}
