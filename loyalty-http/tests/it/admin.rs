//! The admin API: every route, its statuses and its errors.

use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn programs() {
    let server = TestServer::start().await;
    let (status, problem) = server
        .call(
            Method::POST,
            "/v1/programs",
            None,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, _) = server
        .call(
            Method::POST,
            "/v1/programs",
            Some("wrong"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, created) = server
        .call(Method::POST, "/v1/programs", Some(ROOT), Some(json!({"name": "Readers", "defaultIdentifierKind": "customerId", "enrollUnknownMembers": false})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["defaultIdentifierKind"], "customerId");
    assert_eq!(created["enrollUnknownMembers"], false);
    let id = created["id"].as_str().unwrap();
    let token = created["adminToken"].as_str().unwrap();
    let listed = server.ok(Method::GET, "/v1/programs", ROOT, None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(
        listed["items"][0].get("adminToken").is_none(),
        "tokens are shown only at creation"
    );
    let read = server
        .ok(Method::GET, &format!("/v1/programs/{id}"), token, None)
        .await;
    assert_eq!(read["name"], "Readers");
    assert!(read.get("adminToken").is_none());
    let (status, problem) = server
        .call(Method::GET, "/v1/programs", Some(token), None)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = server
        .call(
            Method::POST,
            "/v1/programs",
            Some(token),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = server
        .call(
            Method::POST,
            "/v1/programs",
            Some(ROOT),
            Some(json!({"name": ""})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str(), problem["path"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            Some("/name")
        )
    );
    let (status, problem) = server
        .call(
            Method::POST,
            "/v1/programs",
            Some(ROOT),
            Some(json!({"name": 7})),
        )
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/name"))
    );
    let (status, _) = server
        .call(Method::GET, "/v1/programs/prg_nope", Some(ROOT), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = server
        .client
        .post(server.url("/v1/programs"))
        .bearer_auth(ROOT)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_json");
}

#[tokio::test]
async fn connectors() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let base = format!("/v1/programs/{program}/connectors");
    let created = server
        .connector(&program, &admin, json!({"type": "queryToken"}))
        .await;
    let generated = created["auth"]["token"].as_str().unwrap().to_owned();
    assert_eq!(created["auth"]["param"], "token");
    let cid = created["id"].as_str().unwrap();
    let (status, response) = server
        .send(
            cid,
            &format!("?token={generated}"),
            &[],
            article("e-1", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the generated token works: {response}"
    );
    let listed = server.ok(Method::GET, &base, &admin, None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(listed["items"][0]["auth"].get("token").is_none());
    let read = server
        .ok(Method::GET, &format!("{base}/{cid}"), &admin, None)
        .await;
    assert_eq!(read["mapping"], SEED_MAPPING);
    assert!(read["auth"].get("token").is_none());
    // API.md's create body, word for word, with its six-character token.
    let example = server
        .ok(
            Method::POST,
            &base,
            &admin,
            Some(json!({
                "name": "Article Read",
                "eventType": "custom.basic",
                "auth": {"type": "queryToken", "param": "token", "token": "s3cret"},
                "mapping": SEED_MAPPING,
                "testMode": false,
                "maxEventAgeDays": 30
            })),
        )
        .await;
    let (status, response) = server
        .send(
            example["id"].as_str().unwrap(),
            "?token=s3cret",
            &[],
            article("e-1", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    let (status, problem) = server
        .call(
            Method::POST,
            &base,
            Some(&admin),
            Some(json!({"name": "x", "eventType": "custom.basic", "auth": {"type": "queryToken", "token": ""}, "mapping": SEED_MAPPING})),
        )
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/auth/token"))
    );
    for (auth, path) in [
        (
            json!({"type": "queryToken", "token": "t".repeat(513)}),
            "/auth/token",
        ),
        (
            json!({"type": "hubSignature", "secrets": ["s3cret", ""]}),
            "/auth/secrets/1",
        ),
    ] {
        let (status, problem) = server
            .call(
                Method::POST,
                &base,
                Some(&admin),
                Some(json!({"name": "x", "eventType": "custom.basic", "auth": auth, "mapping": SEED_MAPPING})),
            )
            .await;
        assert_eq!(
            (status, problem["path"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(path))
        );
    }
    // PUT without the token keeps it.
    let replaced = server
        .ok(
            Method::PUT,
            &format!("{base}/{cid}"),
            &admin,
            Some(json!({"name": "Article Read v2", "eventType": "custom.basic", "auth": {"type": "queryToken"}, "mapping": SEED_MAPPING, "testMode": true})),
        )
        .await;
    assert_eq!(replaced["name"], "Article Read v2");
    assert!(replaced["auth"].get("token").is_none());
    let (status, response) = server
        .send(
            cid,
            &format!("?token={generated}"),
            &[],
            article("e-2", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let event = response["results"][0]["eventId"].as_str().unwrap();
    let logged = server.logged_event(&program, &admin, event).await;
    assert_eq!(logged["test"], true, "testMode stores test data");
    // Invalid mapping: 422 with the engine's message and the position.
    let (status, problem) = server
        .call(
            Method::POST,
            &base,
            Some(&admin),
            Some(json!({"name": "Bad", "eventType": "custom.basic", "auth": {"type": "queryToken"}, "mapping": "{ \"a\": foo bar }"})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_mapping"))
    );
    assert_eq!(
        (problem["line"].as_i64(), problem["column"].as_i64()),
        (Some(1), Some(12))
    );
    assert!(
        problem["message"].as_str().unwrap().contains("S02"),
        "{problem}"
    );
    let (status, problem) = server
        .call(Method::POST, &base, Some(&admin), Some(json!({"name": "Bad", "eventType": "custom.other", "auth": {"type": "queryToken"}, "mapping": "$"})))
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/eventType"))
    );
    let (status, problem) = server
        .call(Method::POST, &base, Some(&admin), Some(json!({"name": "Bad", "eventType": "custom.basic", "auth": {"type": "hubSignature", "algorithm": "md5"}, "mapping": "$"})))
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/auth/algorithm"))
    );
    let (status, _) = server
        .call(Method::DELETE, &format!("{base}/{cid}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .call(Method::GET, &format!("{base}/{cid}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .send(cid, &format!("?token={generated}"), &[], "{}")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rules() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": "s3cret-token-1"}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    let base = format!("/v1/programs/{program}/rules");
    let rule = server
        .seed_rule(&program, &admin, cid, json!([{"count": 1, "per": "day"}]))
        .await;
    let rid = rule["id"].as_str().unwrap();
    assert_eq!(rule["limits"], json!([{"count": 1, "per": "day"}]));
    assert_eq!(rule["conditions"]["all"][0]["tag"], "theme");
    let listed = server
        .ok(
            Method::GET,
            &format!("{base}?connectorId={cid}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let listed = server
        .ok(
            Method::GET,
            &format!("{base}?connectorId=con_other"),
            &admin,
            None,
        )
        .await;
    assert!(listed["items"].as_array().unwrap().is_empty());
    let replaced = server
        .ok(Method::PUT, &format!("{base}/{rid}"), &admin, Some(json!({"name": "All readers", "connectorId": cid, "points": {"perCounter": {"counter": "total", "points": 1, "per": 1}}})))
        .await;
    assert_eq!(replaced["name"], "All readers");
    let (_, response) = server
        .send(
            cid,
            "?token=s3cret-token-1",
            &[],
            article("e-1", "ann@example.com", "news", 7).to_string(),
        )
        .await;
    assert_eq!(response["results"][0]["points"], 7);
    let read = server
        .ok(Method::GET, &format!("{base}/{rid}"), &admin, None)
        .await;
    assert_eq!(read["points"]["perCounter"]["counter"], "total");
    let (status, problem) = server
        .call(Method::POST, &base, Some(&admin), Some(json!({"name": "Bad", "connectorId": cid, "points": {"fixed": 1}, "conditions": {"all": [{"tag": "t", "op": "like", "value": 1}]}})))
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/conditions/all/0/op")
        )
    );
    let (status, problem) = server
        .call(Method::POST, &base, Some(&admin), Some(json!({"name": "Bad", "connectorId": cid, "points": {"perAmount": {"points": 1, "per": 1}}})))
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/connectorId")),
        "perAmount needs a purchase connector"
    );
    let (status, _) = server
        .call(
            Method::POST,
            &base,
            Some(&admin),
            Some(json!({"name": "Bad", "connectorId": "con_nope", "points": {"fixed": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server
        .call(Method::DELETE, &format!("{base}/{rid}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .call(Method::GET, &format!("{base}/{rid}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn members_activity_and_events() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": "s3cret-token-1"}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    server.seed_rule(&program, &admin, cid, json!([])).await;
    for i in 0..5 {
        server
            .send(
                cid,
                "?token=s3cret-token-1",
                &[],
                article(&format!("e-{i}"), "Ann@Example.com", "sport", 5).to_string(),
            )
            .await;
    }
    server
        .send(
            cid,
            "?token=s3cret-token-1",
            &[],
            article("e-0", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    let member = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/members?kind=email&value=ANN@example.com"),
            &admin,
            None,
        )
        .await;
    assert_eq!(member["balance"], 50);
    assert_eq!(
        member["identifiers"],
        json!([{"kind": "email", "value": "ann@example.com"}])
    );
    assert_eq!(member["test"], false);
    let mid = member["id"].as_str().unwrap();
    let by_default = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/members?kind=default&value=ann@example.com"),
            &admin,
            None,
        )
        .await;
    assert_eq!(by_default["id"], member["id"]);
    let read = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/members/{mid}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(read["balance"], 50);
    assert!(read["createdAt"].is_string());
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/v1/programs/{program}/members?kind=email&value=bob@example.com"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/v1/programs/{program}/members/mem_nope"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Activity, paginated.
    let first = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/members/{mid}/activity?limit=4"),
            &admin,
            None,
        )
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 4);
    assert_eq!(first["items"][0]["type"], "event");
    assert_eq!(first["items"][0]["status"], "duplicate");
    assert_eq!(first["items"][1]["type"], "ledger");
    let cursor = first["nextCursor"].as_str().unwrap();
    let rest = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/members/{mid}/activity?limit=100&cursor={cursor}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        rest["items"].as_array().unwrap().len(),
        7,
        "6 events + 5 ledger entries in all"
    );
    assert!(rest["nextCursor"].is_null());
    // The event log, filtered and paginated.
    let log = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/events?status=duplicate"),
            &admin,
            None,
        )
        .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
    let log = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/events?connectorId={cid}&memberId={mid}&limit=2"),
            &admin,
            None,
        )
        .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 2);
    assert!(log["nextCursor"].is_string());
    let (status, problem) = server
        .call(
            Method::GET,
            &format!("/v1/programs/{program}/events?status=weird"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("status"))
    );
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/v1/programs/{program}/events?cursor=zzz"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/v1/programs/{program}/events?limit=0"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/v1/programs/{program}/events/evt_nope"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, problem) = server
        .call(Method::GET, "/v1/nothing-here", Some(&admin), None)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    // A known path with another method: 405, and the problem document says so too.
    for (method, path) in [
        (Method::PUT, "/v1/programs".to_owned()),
        (Method::DELETE, format!("/v1/programs/{program}")),
        (Method::GET, "/v1/incoming/con_x".to_owned()),
    ] {
        let (status, problem) = server.call(method, &path, Some(&admin), None).await;
        assert_eq!(
            (
                status,
                problem["status"].as_u64(),
                problem["title"].as_str(),
                problem["code"].as_str()
            ),
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Some(405),
                Some("Method Not Allowed"),
                Some("method_not_allowed")
            ),
            "{path}"
        );
    }
}

/// PostgreSQL's text cannot hold a NUL character: objects to store and URLs with one are
/// refused up front, with the same answer whatever the store.
#[tokio::test]
async fn nul_characters_are_refused_before_any_store_sees_them() {
    let server = TestServer::start().await;
    let (status, problem) = server
        .call(
            Method::POST,
            "/v1/programs",
            Some(ROOT),
            Some(json!({"name": "nul\u{0}prog"})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str(), problem["path"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            Some("/name")
        )
    );
    let (program, admin) = server.program().await;
    let connector = server
        .connector(&program, &admin, json!({"type": "queryToken"}))
        .await;
    let cid = connector["id"].as_str().unwrap();
    let (status, problem) = server
        .call(
            Method::POST,
            &format!("/v1/programs/{program}/rules"),
            Some(&admin),
            Some(json!({"name": "r", "connectorId": cid, "conditions": {"all": [{"tag": "a/\u{0}", "op": "exists"}]}, "points": {"fixed": 1}})),
        )
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/conditions/all/0/tag")
        )
    );
    // In a key too, with the pointer escaped (`/` as `~1`, `~` as `~0`).
    let (status, problem) = server
        .call(
            Method::POST,
            &format!("/v1/programs/{program}/rules"),
            Some(&admin),
            Some(json!({"name": "r", "connectorId": cid, "points": {"fixed": 1}, "conditions": {"all": [{"a/~\u{0}": 1}]}})),
        )
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/conditions/all/0/a~1~0\u{0}")
        )
    );
    let events = format!("/v1/programs/{program}/events?connectorId=con%00x");
    let (status, problem) = server.call(Method::GET, &events, Some(&admin), None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    // Only once the caller is known.
    let (status, _) = server.call(Method::GET, &events, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (method, path) in [
        (
            Method::GET,
            format!("/v1/programs/{program}/members/mem%00x"),
        ),
        (
            Method::GET,
            format!("/v1/programs/{program}/events/evt%00x"),
        ),
        (Method::POST, "/v1/incoming/con%00x".to_owned()),
    ] {
        let (status, problem) = server.call(method, &path, Some(&admin), None).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    // A simulation stores nothing: its payload may hold what an ingested item may.
    let simulated = server
        .ok(
            Method::POST,
            &format!("/v1/programs/{program}/connectors/{cid}/simulate"),
            &admin,
            Some(json!({"payload": article("n-1", "ann@example.com", "sp\u{0}rt", 5)})),
        )
        .await;
    assert_eq!(simulated["results"][0]["status"], "accepted");
}
