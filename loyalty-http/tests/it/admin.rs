//! The admin API: every route, its statuses and its errors.

use crate::check::*;
use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn programs() {
    let server = TestServer::start().await;
    let x = || Some(json!({"name": "x"}));
    check_all(
        &server,
        [
            (
                api(Method::POST, "/v1/programs", None, x()),
                expect(StatusCode::UNAUTHORIZED).code("unauthorized"),
            ),
            (
                api(Method::POST, "/v1/programs", Some("wrong"), x()),
                expect(StatusCode::UNAUTHORIZED),
            ),
        ],
    )
    .await;
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
    let programs = "/v1/programs";
    check_all(
        &server,
        [
            (
                api(Method::GET, programs, Some(token), None),
                expect(StatusCode::FORBIDDEN).code("forbidden"),
            ),
            (
                api(Method::POST, programs, Some(token), x()),
                expect(StatusCode::FORBIDDEN),
            ),
            (
                api(
                    Method::POST,
                    programs,
                    Some(ROOT),
                    Some(json!({"name": ""})),
                ),
                expect(StatusCode::UNPROCESSABLE_ENTITY)
                    .code("validation_failed")
                    .at("/name"),
            ),
            (
                api(Method::POST, programs, Some(ROOT), Some(json!({"name": 7}))),
                expect(StatusCode::UNPROCESSABLE_ENTITY).at("/name"),
            ),
            (
                api(Method::GET, "/v1/programs/prg_nope", Some(ROOT), None),
                expect(StatusCode::NOT_FOUND),
            ),
            (
                api_text(Method::POST, programs, Some(ROOT), "{\"name\": "),
                expect(StatusCode::BAD_REQUEST).code("invalid_json"),
            ),
        ],
    )
    .await;
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
    // The documented create body, word for word, with its six-character token.
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
    let with_auth = |auth: serde_json::Value| {
        let body = json!({"name": "x", "eventType": "custom.basic", "auth": auth, "mapping": SEED_MAPPING});
        api_json(Method::POST, &base, &admin, body)
    };
    check_all(
        &server,
        [
            (
                with_auth(json!({"type": "queryToken", "token": ""})),
                expect(StatusCode::UNPROCESSABLE_ENTITY).at("/auth/token"),
            ),
            (
                with_auth(json!({"type": "queryToken", "token": "t".repeat(513)})),
                expect(StatusCode::UNPROCESSABLE_ENTITY).at("/auth/token"),
            ),
            (
                with_auth(json!({"type": "hubSignature", "secrets": ["s3cret", ""]})),
                expect(StatusCode::UNPROCESSABLE_ENTITY).at("/auth/secrets/1"),
            ),
        ],
    )
    .await;
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
    let problem = check(
        &server,
        &api_json(Method::POST, &base, &admin, json!({"name": "Bad", "eventType": "custom.basic", "auth": {"type": "queryToken"}, "mapping": "{ \"a\": foo bar }"})),
        &expect(StatusCode::UNPROCESSABLE_ENTITY)
            .code("invalid_mapping")
            .position(1, 12),
    )
    .await;
    assert!(
        problem["message"].as_str().unwrap().contains("S02"),
        "{problem}"
    );
    let one = format!("{base}/{cid}");
    check_all(
        &server,
        [
            (
                api_json(Method::POST, &base, &admin, json!({"name": "Bad", "eventType": "custom.other", "auth": {"type": "queryToken"}, "mapping": "$"})),
                expect(StatusCode::UNPROCESSABLE_ENTITY).at("/eventType"),
            ),
            (
                api_json(Method::POST, &base, &admin, json!({"name": "Bad", "eventType": "custom.basic", "auth": {"type": "hubSignature", "algorithm": "md5"}, "mapping": "$"})),
                expect(StatusCode::UNPROCESSABLE_ENTITY).at("/auth/algorithm"),
            ),
            (
                api(Method::DELETE, &one, Some(&admin), None),
                expect(StatusCode::NO_CONTENT),
            ),
            (
                api(Method::GET, &one, Some(&admin), None),
                expect(StatusCode::NOT_FOUND),
            ),
            (
                ingest(cid, format!("?token={generated}"), &[], "{}"),
                expect(StatusCode::NOT_FOUND),
            ),
        ],
    )
    .await;
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
    let one = format!("{base}/{rid}");
    check_all(
        &server,
        [
            (
                api_json(Method::POST, &base, &admin, json!({"name": "Bad", "connectorId": cid, "points": {"fixed": 1}, "conditions": {"all": [{"tag": "t", "op": "like", "value": 1}]}})),
                expect(StatusCode::UNPROCESSABLE_ENTITY).at("/conditions/all/0/op"),
            ),
            (
                api_json(Method::POST, &base, &admin, json!({"name": "Bad", "connectorId": cid, "points": {"perAmount": {"points": 1, "per": 1}}})),
                expect(StatusCode::UNPROCESSABLE_ENTITY)
                    .at("/connectorId")
                    .because("perAmount needs a purchase connector"),
            ),
            (
                api_json(Method::POST, &base, &admin, json!({"name": "Bad", "connectorId": "con_nope", "points": {"fixed": 1}})),
                expect(StatusCode::UNPROCESSABLE_ENTITY),
            ),
            (
                api(Method::DELETE, &one, Some(&admin), None),
                expect(StatusCode::NO_CONTENT),
            ),
            (
                api(Method::GET, &one, Some(&admin), None),
                expect(StatusCode::NOT_FOUND),
            ),
        ],
    )
    .await;
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
    let get = |path: String| api(Method::GET, path, Some(&admin), None);
    check_all(
        &server,
        [
            (
                get(format!(
                    "/v1/programs/{program}/members?kind=email&value=bob@example.com"
                )),
                expect(StatusCode::NOT_FOUND),
            ),
            (
                get(format!("/v1/programs/{program}/members/mem_nope")),
                expect(StatusCode::NOT_FOUND),
            ),
        ],
    )
    .await;
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
    let events = format!("/v1/programs/{program}/events");
    // A known path with another method: 405, and the problem document says so too.
    let not_allowed = || {
        expect(StatusCode::METHOD_NOT_ALLOWED)
            .title("Method Not Allowed")
            .code("method_not_allowed")
    };
    check_all(
        &server,
        [
            (
                get(format!("{events}?status=weird")),
                expect(StatusCode::UNPROCESSABLE_ENTITY).at("status"),
            ),
            (
                get(format!("{events}?cursor=zzz")),
                expect(StatusCode::UNPROCESSABLE_ENTITY),
            ),
            (
                get(format!("{events}?limit=0")),
                expect(StatusCode::UNPROCESSABLE_ENTITY),
            ),
            (
                get(format!("{events}/evt_nope")),
                expect(StatusCode::NOT_FOUND),
            ),
            (
                get("/v1/nothing-here".into()),
                expect(StatusCode::NOT_FOUND).code("not_found"),
            ),
            (
                api(Method::PUT, "/v1/programs", Some(&admin), None),
                not_allowed(),
            ),
            (
                api(
                    Method::DELETE,
                    format!("/v1/programs/{program}"),
                    Some(&admin),
                    None,
                ),
                not_allowed(),
            ),
            (get("/v1/incoming/con_x".into()), not_allowed()),
        ],
    )
    .await;
}

/// PostgreSQL's text cannot hold a NUL character: objects to store and URLs with one are
/// refused up front, with the same answer whatever the store.
#[tokio::test]
async fn nul_characters_are_refused_before_any_store_sees_them() {
    let server = TestServer::start().await;
    check(
        &server,
        &api_json(
            Method::POST,
            "/v1/programs",
            ROOT,
            json!({"name": "nul\u{0}prog"}),
        ),
        &expect(StatusCode::UNPROCESSABLE_ENTITY)
            .code("validation_failed")
            .at("/name"),
    )
    .await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(&program, &admin, json!({"type": "queryToken"}))
        .await;
    let cid = connector["id"].as_str().unwrap();
    let rules = format!("/v1/programs/{program}/rules");
    let events = format!("/v1/programs/{program}/events?connectorId=con%00x");
    let not_found = || expect(StatusCode::NOT_FOUND).code("not_found");
    check_all(
        &server,
        [
            (
                api_json(Method::POST, &rules, &admin, json!({"name": "r", "connectorId": cid, "conditions": {"all": [{"tag": "a/\u{0}", "op": "exists"}]}, "points": {"fixed": 1}})),
                expect(StatusCode::UNPROCESSABLE_ENTITY).at("/conditions/all/0/tag"),
            ),
            // In a key too, with the pointer escaped (`/` as `~1`, `~` as `~0`).
            (
                api_json(Method::POST, &rules, &admin, json!({"name": "r", "connectorId": cid, "points": {"fixed": 1}, "conditions": {"all": [{"a/~\u{0}": 1}]}})),
                expect(StatusCode::UNPROCESSABLE_ENTITY).at("/conditions/all/0/a~1~0\u{0}"),
            ),
            (
                api(Method::GET, &events, Some(&admin), None),
                expect(StatusCode::BAD_REQUEST).code("bad_request"),
            ),
            // Only once the caller is known.
            (
                api(Method::GET, &events, None, None),
                expect(StatusCode::UNAUTHORIZED),
            ),
            (
                api(Method::GET, format!("/v1/programs/{program}/members/mem%00x"), Some(&admin), None),
                not_found(),
            ),
            (
                api(Method::GET, format!("/v1/programs/{program}/events/evt%00x"), Some(&admin), None),
                not_found(),
            ),
            (
                api(Method::POST, "/v1/incoming/con%00x", Some(&admin), None),
                not_found(),
            ),
        ],
    )
    .await;
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

/// JSON Schema, and so the OpenAPI document, takes `30.0` for the integer 30: so does the API.
#[tokio::test]
async fn whole_numbers_with_a_zero_fraction_are_integers() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .ok(
            Method::POST,
            &format!("/v1/programs/{program}/connectors"),
            &admin,
            Some(json!({"name": "Article Read", "eventType": "custom.basic", "auth": {"type": "queryToken", "token": "s3cret-token-1"}, "mapping": SEED_MAPPING, "maxEventAgeDays": 30.0})),
        )
        .await;
    assert_eq!(connector["maxEventAgeDays"], 30);
    let cid = connector["id"].as_str().unwrap();
    let rule = server
        .ok(
            Method::POST,
            &format!("/v1/programs/{program}/rules"),
            &admin,
            Some(json!({"name": "All", "connectorId": cid, "points": {"fixed": 10.0}, "priority": 2.0, "limits": [{"count": 1.0, "per": "day"}]})),
        )
        .await;
    assert_eq!(
        (&rule["points"], &rule["priority"], &rule["limits"]),
        (
            &json!({"fixed": 10}),
            &json!(2),
            &json!([{"count": 1, "per": "day"}])
        )
    );
    check(
        &server,
        &api_json(
            Method::POST,
            format!("/v1/programs/{program}/rules"),
            &admin,
            json!({"name": "Half", "connectorId": cid, "points": {"fixed": 10.5}}),
        ),
        &expect(StatusCode::UNPROCESSABLE_ENTITY).at("/points/fixed"),
    )
    .await;
}
