//! Ingestion over HTTP: the three schemes right and wrong, bulk, duplicates, test data,
//! limits, errors.

use crate::check::*;
use crate::harness::*;
use loyalty_core::Limits;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "s3cret-token-1";

#[tokio::test]
async fn query_token_right_and_wrong() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "param": "token", "token": TOKEN}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    assert_eq!(connector["endpoint"], format!("/v1/incoming/{cid}"));
    assert!(
        connector["auth"].get("token").is_none(),
        "a given token is never echoed"
    );
    server.seed_rule(&program, &admin, cid, json!([])).await;
    let body = article("a-1", "ann@example.com", "sport", 5).to_string();
    let (status, response) = server
        .send(cid, &format!("?token={TOKEN}"), &[], body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(response["results"][0]["status"], "accepted");
    assert_eq!(response["results"][0]["points"], 10);
    assert_eq!(
        server.balance(&program, &admin, "ann@example.com").await,
        Some(10)
    );
    let refused = |query: &str| {
        (
            ingest(cid, query, &[], body.clone()),
            expect(StatusCode::UNAUTHORIZED).code("unauthorized"),
        )
    };
    check_all(
        &server,
        [
            refused("?token=wrong-token"),
            refused(""),
            refused("?token="),
            refused("?Token=s3cret-token-1"),
            refused("?token=S3CRET-TOKEN-1"),
            refused("?token=s3cret-token-"),
            refused("?token=s3cret-token-1&token=s3cret-token-1"),
        ],
    )
    .await;
    // Nothing was stored for the failures.
    let log = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/events"),
            &admin,
            None,
        )
        .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn header_token_right_and_wrong() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "headerToken", "token": TOKEN}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    assert_eq!(connector["auth"]["header"], "X-Authorization");
    let body = article("a-1", "ann@example.com", "sport", 5).to_string();
    let unauthorized = |why| expect(StatusCode::UNAUTHORIZED).because(why);
    check_all(
        &server,
        [
            (
                ingest(cid, "", &[("x-authorization", TOKEN)], body.clone()),
                expect(StatusCode::OK),
            ),
            (
                ingest(cid, "", &[], body.clone()),
                unauthorized("missing header"),
            ),
            (
                ingest(cid, "", &[("x-authorization", "wrong")], body.clone()),
                unauthorized("wrong token"),
            ),
            (
                ingest(cid, format!("?token={TOKEN}"), &[], body.clone()),
                unauthorized("token in the wrong place"),
            ),
            (
                ingest(
                    cid,
                    "",
                    &[("x-authorization", TOKEN), ("x-authorization", TOKEN)],
                    body,
                ),
                unauthorized("given twice"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn hub_signature_right_and_wrong() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "hubSignature", "secrets": ["old-secret-1", "new-secret-2"]}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    assert!(
        connector["auth"].get("secrets").is_none(),
        "secrets are never returned"
    );
    assert_eq!(connector["auth"]["secretCount"], 2);
    // Bytes as a sender would write them: spacing that re-serialisation would change.
    let body = format!(
        "{{ \"eventId\" : \"h-1\",\n  \"timestamp\": \"{}\", \"profile\": {{\"email\": \"ann@example.com\"}}, \"article\": {{\"theme\": \"sport\"}}, \"totalArticlesRead\": 5 }}",
        chrono::Utc::now().to_rfc3339()
    );
    for secret in ["old-secret-1", "new-secret-2"] {
        let signature = hub_signature(secret, body.as_bytes());
        let (status, response) = server
            .send(
                cid,
                "",
                &[("X-Hub-Signature-256", &signature)],
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{response}");
    }
    let reserialised = serde_json::from_str::<Value>(&body).unwrap().to_string();
    let signed =
        |signature: &str| ingest(cid, "", &[("X-Hub-Signature-256", signature)], body.clone());
    check_all(
        &server,
        [
            (
                signed(&hub_signature("new-secret-2", reserialised.as_bytes())),
                expect(StatusCode::UNAUTHORIZED)
                    .because("a signature of the re-serialised body does not match the raw bytes"),
            ),
            (
                signed(&hub_signature("not-a-secret", body.as_bytes())),
                expect(StatusCode::UNAUTHORIZED),
            ),
            (
                ingest(cid, "", &[], body.clone()),
                expect(StatusCode::UNAUTHORIZED).because("missing header"),
            ),
        ],
    )
    .await;
    let good = hub_signature("new-secret-2", body.as_bytes());
    for malformed in [
        good.trim_start_matches("sha256="),
        &good.to_uppercase().replace("SHA256=", "sha256="),
        "sha256=zz",
        "sha1=abc",
    ] {
        let problem = check(
            &server,
            &signed(malformed),
            &expect(StatusCode::UNAUTHORIZED).because("a malformed signature"),
        )
        .await;
        assert!(
            !problem["detail"].as_str().unwrap().contains(&good[7..]),
            "the right signature is never told"
        );
    }
}

#[tokio::test]
async fn standard_webhooks_and_replays() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(&program, &admin, json!({"type": "standardWebhooks"}))
        .await;
    let cid = connector["id"].as_str().unwrap();
    let secret = connector["auth"]["secrets"][0].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_"),
        "a generated secret is shown once"
    );
    let read = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/connectors/{cid}"),
            &admin,
            None,
        )
        .await;
    assert!(read["auth"].get("secrets").is_none());
    let mut body = article("ignored", "ann@example.com", "sport", 5);
    body.as_object_mut().unwrap().remove("eventId");
    let body = body.to_string();
    let now = chrono::Utc::now().timestamp();
    let sign = |id: &str, at: i64| {
        loyalty_core::auth::standard_webhooks_signature(&secret, id, at, body.as_bytes()).unwrap()
    };
    let headers = |id: &'static str, at: i64, signature: String| {
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", at.to_string()),
            ("webhook-signature", signature),
        ]
    };
    let send = |h: Vec<(&'static str, String)>| {
        let server = &server;
        let body = body.clone();
        async move {
            let pairs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            server.send(cid, "", &pairs, body).await
        }
    };
    let (status, first) = send(headers("msg_1", now, sign("msg_1", now))).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["results"][0]["clientEventId"], "msg_1");
    let (status, replay) = send(headers("msg_1", now, sign("msg_1", now))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        replay["results"][0]["status"], "duplicate",
        "a replay inside the tolerance is a duplicate"
    );
    let signed = |id: &str, at: i64, signature: String| {
        let at = at.to_string();
        let headers = [
            ("webhook-id", id),
            ("webhook-timestamp", at.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        ingest(cid, "", &headers, body.clone())
    };
    let old = now - 301;
    // A margin: `now` is floored to the second and the request takes its time, so a timestamp
    // just past the tolerance could fall back inside it by the time the server reads its clock.
    let future = now + 310;
    let unauthorized = |why| expect(StatusCode::UNAUTHORIZED).because(why);
    check_all(
        &server,
        [
            (
                signed("msg_2", old, sign("msg_2", old)),
                unauthorized("outside the tolerance"),
            ),
            (
                signed("msg_2", future, sign("msg_2", future)),
                unauthorized("outside the tolerance, ahead"),
            ),
            (
                signed("msg_2", now, sign("msg_3", now)),
                unauthorized("signature of another id"),
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn bulk_with_mixed_statuses_and_duplicates() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": TOKEN}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    server
        .seed_rule(&program, &admin, cid, json!([{"count": 1, "per": "day"}]))
        .await;
    let mut bad = article("b-4", "ann@example.com", "sport", 5);
    bad["totalArticlesRead"] = json!({"n": 1});
    let bulk = json!([
        article("b-1", "ann@example.com", "sport", 5),
        article("b-2", "", "sport", 5),
        article("b-1", "ann@example.com", "sport", 5),
        bad,
        article("b-5", "ann@example.com", "sport", 9),
    ]);
    let (status, response) = server
        .send(cid, &format!("?token={TOKEN}"), &[], bulk.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    let statuses: Vec<&str> = response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "ignored", "duplicate", "rejected", "accepted"]
    );
    // Accepted items carry their awards, none ([]) when the day's limit is used; others none.
    let awards: Vec<Option<usize>> = response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.get("awards").map(|a| a.as_array().unwrap().len()))
        .collect();
    assert_eq!(awards, [Some(1), None, None, None, Some(0)]);
    // An event without a timestamp happened when it was received.
    let mut untimed = article("b-6", "ann@example.com", "sport", 5);
    untimed.as_object_mut().unwrap().remove("timestamp");
    let (_, sent) = server
        .send(cid, &format!("?token={TOKEN}"), &[], untimed.to_string())
        .await;
    let logged = server
        .logged_event(
            &program,
            &admin,
            sent["results"][0]["eventId"].as_str().unwrap(),
        )
        .await;
    assert_eq!(logged["status"], "accepted");
    assert_eq!(logged["occurredAt"], logged["receivedAt"]);
    assert_eq!(
        (
            response["accepted"].as_i64(),
            response["duplicates"].as_i64(),
            response["ignored"].as_i64(),
            response["rejected"].as_i64()
        ),
        (Some(2), Some(1), Some(1), Some(1))
    );
    assert_eq!(response["results"][1]["reason"], "missing_identifier");
    assert_eq!(
        response["results"][2]["originalEventId"],
        response["results"][0]["eventId"]
    );
    assert_eq!(response["results"][3]["error"]["code"], "validation_failed");
    assert_eq!(
        response["results"][3]["error"]["path"],
        "/payload/counters/0/value"
    );
    assert_eq!(response["results"][4]["points"], 0, "the daily limit");
    assert_eq!(
        server.balance(&program, &admin, "ann@example.com").await,
        Some(10)
    );
    for result in response["results"].as_array().unwrap() {
        let id = result["eventId"].as_str().unwrap();
        let logged = server.logged_event(&program, &admin, id).await;
        assert_eq!(logged["status"], result["status"]);
    }
    let accepted = &response["results"][4];
    let logged = server
        .logged_event(&program, &admin, accepted["eventId"].as_str().unwrap())
        .await;
    assert!(
        logged["trace"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("limit reached"),
        "{logged}"
    );
    assert_eq!(logged["raw"]["eventId"], "b-5");
    assert_eq!(logged["rawTruncated"], false);
}

#[tokio::test]
async fn request_level_errors() {
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        max_batch_items: 10,
        ..Limits::default()
    };
    let server = TestServer::start_with(limits).await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": TOKEN}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    let q = format!("?token={TOKEN}");
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let batch: Vec<Value> = (0..11)
        .map(|i| article(&format!("x-{i}"), "a@example.com", "sport", 1))
        .collect();
    check_all(
        &server,
        [
            (
                ingest("con_doesnotexist", &q, &[], "{}"),
                expect(StatusCode::NOT_FOUND).code("not_found"),
            ),
            (
                ingest(cid, &q, &[], "{\"a\": 1,\n \"b\": }"),
                expect(StatusCode::BAD_REQUEST)
                    .code("invalid_json")
                    .position(2, 7),
            ),
            (
                ingest(cid, &q, &[], ""),
                expect(StatusCode::BAD_REQUEST).code("invalid_json"),
            ),
            (
                ingest(cid, &q, &[], big),
                expect(StatusCode::PAYLOAD_TOO_LARGE).code("payload_too_large"),
            ),
            (
                ingest(cid, &q, &[], Value::Array(batch).to_string()),
                expect(StatusCode::PAYLOAD_TOO_LARGE).code("batch_too_large"),
            ),
        ],
    )
    .await;
    let log = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/events"),
            &admin,
            None,
        )
        .await;
    assert!(
        log["items"].as_array().unwrap().is_empty(),
        "nothing stored for refused requests"
    );
    // The server still answers.
    let (status, _) = server
        .send(
            cid,
            &q,
            &[],
            article("ok", "a@example.com", "sport", 1).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn test_events_and_purge() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": TOKEN}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    server.seed_rule(&program, &admin, cid, json!([])).await;
    let live = format!("?token={TOKEN}");
    let test = format!("?token={TOKEN}&test=true");
    server
        .send(
            cid,
            &live,
            &[],
            article("l-1", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    let (_, response) = server
        .send(
            cid,
            &test,
            &[],
            json!([
                article("t-1", "ann@example.com", "sport", 5),
                article("t-2", "tess@example.com", "sport", 5)
            ])
            .to_string(),
        )
        .await;
    assert_eq!(response["accepted"], 2);
    let logged = server
        .logged_event(
            &program,
            &admin,
            response["results"][0]["eventId"].as_str().unwrap(),
        )
        .await;
    assert_eq!(logged["test"], true);
    assert_eq!(
        server.balance(&program, &admin, "ann@example.com").await,
        Some(20)
    );
    let tess = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/members?kind=email&value=tess@example.com"),
            &admin,
            None,
        )
        .await;
    assert_eq!(tess["test"], true);
    let counts = server.purge(&program, &admin, cid).await;
    assert_eq!(
        counts,
        json!({"events": 2, "ledgerEntries": 2, "members": 1})
    );
    assert_eq!(
        server.balance(&program, &admin, "ann@example.com").await,
        Some(10)
    );
    assert_eq!(
        server.balance(&program, &admin, "tess@example.com").await,
        None
    );
    let (_, again) = server
        .send(
            cid,
            &test,
            &[],
            article("t-1", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    assert_eq!(
        again["results"][0]["status"], "accepted",
        "purged test ids can be sent again"
    );
    // Deleting the connector leaves its test data purgeable (and its live data untouched).
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/v1/programs/{program}/connectors/{cid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let counts = server.purge(&program, &admin, cid).await;
    assert_eq!(
        counts,
        json!({"events": 1, "ledgerEntries": 1, "members": 0})
    );
    assert_eq!(
        server.balance(&program, &admin, "ann@example.com").await,
        Some(10)
    );
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/v1/programs/{program}/connectors/con_nope/purge"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn simulate_with_and_without_a_candidate_mapping() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": TOKEN}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    server
        .seed_rule(&program, &admin, cid, json!([{"count": 1, "per": "day"}]))
        .await;
    let path = format!("/v1/programs/{program}/connectors/{cid}/simulate");
    let payload = json!([
        article("s-1", "ann@example.com", "sport", 5),
        article("s-2", "ann@example.com", "sport", 5),
        article("s-3", "", "sport", 5)
    ]);
    let simulated = server
        .ok(
            Method::POST,
            &path,
            &admin,
            Some(json!({"payload": payload})),
        )
        .await;
    let results = simulated["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[0]["points"], 10);
    assert_eq!(
        results[0]["member"],
        json!({"kind": "email", "value": "ann@example.com", "wouldEnroll": true})
    );
    assert_eq!(results[0]["mapped"]["clientEventId"], "s-1");
    assert_eq!(results[0]["trace"][0]["fired"], true);
    assert_eq!(
        results[1]["points"], 0,
        "the limit counts earlier items of the same payload"
    );
    assert_eq!(results[2]["status"], "ignored");
    assert_eq!(results[2]["reason"], "missing_identifier");
    // Nothing was stored.
    assert_eq!(
        server.balance(&program, &admin, "ann@example.com").await,
        None
    );
    let log = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/events"),
            &admin,
            None,
        )
        .await;
    assert!(log["items"].as_array().unwrap().is_empty());
    // After a real event, simulation sees the member and the spent limit.
    server
        .send(
            cid,
            &format!("?token={TOKEN}"),
            &[],
            article("r-1", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    let simulated = server
        .ok(
            Method::POST,
            &path,
            &admin,
            Some(json!({"payload": article("r-1", "ann@example.com", "sport", 5)})),
        )
        .await;
    assert_eq!(simulated["results"][0]["status"], "duplicate");
    let simulated = server
        .ok(
            Method::POST,
            &path,
            &admin,
            Some(json!({"payload": article("r-2", "ann@example.com", "sport", 5)})),
        )
        .await;
    assert_eq!(simulated["results"][0]["member"]["wouldEnroll"], false);
    assert!(simulated["results"][0]["member"]["id"]
        .as_str()
        .unwrap()
        .starts_with("mem_"));
    assert!(simulated["results"][0]["trace"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("limit reached"));
    // A candidate mapping.
    let candidate = r#"{"clientEventId": eventId, "profile": {"kind": "customerId", "value": profile.email}, "payload": {"tags": [{"name": "theme", "value": "sport"}], "counters": [{"name": "total", "value": 50}]}}"#;
    let simulated = server
        .ok(Method::POST, &path, &admin, Some(json!({"payload": article("c-1", "bob@example.com", "news", 1), "mapping": candidate})))
        .await;
    assert_eq!(simulated["results"][0]["member"]["kind"], "customerId");
    assert_eq!(simulated["results"][0]["points"], 10);
    let (status, problem) = server
        .call(
            Method::POST,
            &path,
            Some(&admin),
            Some(json!({"payload": {}, "mapping": "{ \"a\": "})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_mapping"))
    );
    assert!(
        problem["position"].is_number()
            && problem["line"].is_number()
            && problem["column"].is_number()
    );
    assert_eq!(
        server.balance(&program, &admin, "bob@example.com").await,
        None
    );
}

/// A website or a tag manager posts from a browser: the endpoint answers its CORS preflight,
/// whatever the token header the connector chose, and its answers may be read cross-origin.
/// The admin routes do not.
#[tokio::test]
async fn browsers_may_post_events_cross_origin() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "headerToken", "header": "X-Api-Key", "token": TOKEN}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    let preflight = server
        .client
        .request(Method::OPTIONS, server.url(&format!("/v1/incoming/{cid}")))
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-api-key")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("x-api-key"));
    let posted = server
        .client
        .post(server.url(&format!("/v1/incoming/{cid}")))
        .header("origin", "https://shop.example.com")
        .header("content-type", "application/json")
        .header("x-api-key", TOKEN)
        .body(article("c-1", "ann@example.com", "sport", 5).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::OK);
    assert_eq!(posted.headers()["access-control-allow-origin"], "*");
    assert!(posted.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("x-request-id"));
    // The admin API gives a browser on another origin nothing.
    let admin_preflight = server
        .client
        .request(Method::OPTIONS, server.url("/v1/programs"))
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(admin_preflight
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn a_simulation_names_a_payload_and_a_mapping_that_are_there() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": TOKEN}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    let path = format!("/v1/programs/{program}/connectors/{cid}/simulate");
    let article = article("s-1", "ann@example.com", "sport", 5);
    for (body, pointer) in [
        (json!({"payload": article, "mapping": null}), "/mapping"),
        (json!({"payload": null}), "/payload"),
        (json!({"payload": "an event"}), "/payload"),
        (json!({"payload": 5}), "/payload"),
    ] {
        let (status, problem) = server
            .call(Method::POST, &path, Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["code"], "validation_failed", "{body}");
        assert_eq!(problem["path"], pointer, "{body}");
    }
}
