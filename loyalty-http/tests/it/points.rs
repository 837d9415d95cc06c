//! The life of points over HTTP: adjustments, reversals and refunds, answered as documented.

use crate::harness::{article, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A program whose member ann earned 10 points for one event: (server, program, token,
/// member id, event id).
async fn ann_with_an_award() -> (TestServer, String, String, String, String) {
    let server = TestServer::start().await;
    let (program, token, connector) = server.program_with_query_connector().await;
    server
        .seed_rule(&program, &token, &connector, json!([]))
        .await;
    let (status, body) = server
        .send(
            &connector,
            "?token=s3cret-token",
            &[],
            article("a-1", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = &body["results"][0];
    assert_eq!(result["points"], 10);
    let member = result["memberId"].as_str().unwrap().to_owned();
    let event = result["eventId"].as_str().unwrap().to_owned();
    (server, program, token, member, event)
}

#[tokio::test]
async fn adjustments_answer_201_then_200_for_their_key_and_409_for_another_body() {
    let (server, program, token, member, _) = ann_with_an_award().await;
    let path = format!("/v1/programs/{program}/members/{member}/adjustments");
    let body = json!({"points": 25, "reason": "goodwill", "idempotencyKey": "k-1"});
    let (status, first) = server
        .call(Method::POST, &path, Some(&token), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        (
            &first["kind"],
            &first["points"],
            &first["reason"],
            &first["balance"]
        ),
        (
            &json!("adjustment"),
            &json!(25),
            &json!("goodwill"),
            &json!(35)
        )
    );
    assert!(first["at"].is_string() && first["id"].is_string());
    let (status, again) = server
        .call(Method::POST, &path, Some(&token), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);
    let cases: [(Value, StatusCode, &str); 4] = [
        (
            json!({"points": 26, "reason": "goodwill", "idempotencyKey": "k-1"}),
            StatusCode::CONFLICT,
            "idempotency_conflict",
        ),
        (
            json!({"points": 0, "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"points": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"points": 5, "reason": "x", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (body, expected, code) in cases {
        let (status, problem) = server
            .call(Method::POST, &path, Some(&token), Some(body.clone()))
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (expected, Some(code)),
            "{body}"
        );
    }
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/v1/programs/{program}/members/mem_nobody/adjustments"),
            Some(&token),
            Some(json!({"points": 5, "reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.balance(&program, &token, "ann@example.com").await,
        Some(35)
    );
}

#[tokio::test]
async fn reversals_answer_what_they_took_and_409_when_nothing_is_left() {
    let (server, program, token, _, event) = ann_with_an_award().await;
    let path = format!("/v1/programs/{program}/events/{event}/reverse");
    let (status, part) = server
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"reason": "damaged", "points": 4})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{part}");
    assert_eq!((&part["points"], &part["balance"]), (&json!(-4), &json!(6)));
    assert_eq!(part["reversed"][0]["points"], -4);
    let (status, rest) = server
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"reason": "cancelled"})),
        )
        .await;
    assert_eq!((status, &rest["points"]), (StatusCode::OK, &json!(-6)));
    let (status, problem) = server
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"reason": "again"})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("nothing_to_reverse"))
    );
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/v1/programs/{program}/events/evt_nope/reverse"),
            Some(&token),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_refund_over_http_answers_reversed_points_and_its_purchase() {
    let server = TestServer::start().await;
    let (program, token) = server.program().await;
    let connector = |event_type: &str, mapping: &str| {
        json!({"name": event_type, "eventType": event_type,
               "auth": {"type": "queryToken", "token": "s3cret-token"}, "mapping": mapping})
    };
    let create = |body: Value| {
        let (server, program, token) = (&server, &program, &token);
        async move {
            server
                .ok(
                    Method::POST,
                    &format!("/v1/programs/{program}/connectors"),
                    token,
                    Some(body),
                )
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let orders = create(connector(
        "ecommerce.purchase",
        r#"{"profile": {"kind": "email", "value": email}, "payload": {"orderId": order, "amount": total, "currency": "EUR"}}"#,
    ))
    .await;
    let refunds = create(connector(
        "ecommerce.refund",
        r#"{"clientEventId": id, "payload": {"orderId": order, "amount": amount}}"#,
    ))
    .await;
    server
        .ok(
            Method::POST,
            &format!("/v1/programs/{program}/rules"),
            &token,
            Some(json!({"name": "Per euro", "connectorId": orders, "points": {"perAmount": {"points": 1, "per": 1}}})),
        )
        .await;
    let (_, bought) = server
        .send(
            &orders,
            "?token=s3cret-token",
            &[],
            json!({"email": "ann@example.com", "order": "o-1", "total": 20}).to_string(),
        )
        .await;
    assert_eq!(bought["results"][0]["points"], 20);
    let refund = json!({"id": "r-1", "order": "o-1", "amount": 15}).to_string();
    let (status, refunded) = server
        .send(&refunds, "?token=s3cret-token", &[], refund.clone())
        .await;
    assert_eq!(status, StatusCode::OK);
    let result = &refunded["results"][0];
    assert_eq!(
        (
            &result["status"],
            &result["points"],
            &result["originalEventId"]
        ),
        (
            &json!("accepted"),
            &json!(-15),
            &bought["results"][0]["eventId"]
        )
    );
    assert_eq!(result["reversed"][0]["points"], -15);
    let (_, again) = server
        .send(&refunds, "?token=s3cret-token", &[], refund)
        .await;
    assert_eq!(again["results"][0]["status"], "duplicate");
    let (_, unknown) = server
        .send(
            &refunds,
            "?token=s3cret-token",
            &[],
            json!({"id": "r-2", "order": "o-404"}).to_string(),
        )
        .await;
    assert_eq!(
        (
            &unknown["results"][0]["status"],
            &unknown["results"][0]["reason"]
        ),
        (&json!("ignored"), &json!("unknown_order"))
    );
    assert_eq!(
        server.balance(&program, &token, "ann@example.com").await,
        Some(5)
    );
}

#[tokio::test]
async fn allowance_answers_each_limit_with_its_reset() {
    let (server, program, token, member, event) = ann_with_an_award().await;
    let rules = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/rules"),
            &token,
            None,
        )
        .await;
    let rule = rules["items"][0]["id"].as_str().unwrap().to_owned();
    let mut spec = rules["items"][0].clone();
    spec["limits"] = json!([{"count": 1, "per": "day"}, {"points": 100, "per": "lifetime"}]);
    let spec = json!({"name": spec["name"], "connectorId": spec["connectorId"],
        "conditions": spec["conditions"], "points": spec["points"], "limits": spec["limits"]});
    server
        .ok(
            Method::PUT,
            &format!("/v1/programs/{program}/rules/{rule}"),
            &token,
            Some(spec),
        )
        .await;
    let path = format!("/v1/programs/{program}/members/{member}/allowance");
    let allowance = server.ok(Method::GET, &path, &token, None).await;
    let limits = &allowance["items"][0]["limits"];
    assert_eq!(allowance["items"][0]["ruleId"], rule.as_str());
    assert_eq!(
        (
            &limits[0]["per"],
            &limits[0]["count"],
            &limits[0]["used"],
            &limits[0]["remaining"]
        ),
        (&json!("day"), &json!(1), &json!(1), &json!(0))
    );
    assert!(limits[0]["resetsAt"]
        .as_str()
        .unwrap()
        .ends_with("T00:00:00Z"));
    assert_eq!(
        (
            &limits[1]["points"],
            &limits[1]["used"],
            &limits[1]["remaining"],
            &limits[1]["resetsAt"]
        ),
        (&json!(100), &json!(10), &json!(90), &Value::Null)
    );
    server
        .ok(
            Method::POST,
            &format!("/v1/programs/{program}/events/{event}/reverse"),
            &token,
            Some(json!({"reason": "cancelled"})),
        )
        .await;
    let allowance = server.ok(Method::GET, &path, &token, None).await;
    assert_eq!(allowance["items"][0]["limits"][0]["remaining"], 1);
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/v1/programs/{program}/members/mem_nobody/allowance"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_member_reads_with_pending_and_expiring_points() {
    let server = TestServer::start().await;
    let program = server
        .ok(
            Method::POST,
            "/v1/programs",
            crate::harness::ROOT,
            Some(json!({"name": "Expiring", "pointsExpiry": {"afterDays": 30}})),
        )
        .await;
    assert_eq!(program["pointsExpiry"], json!({"afterDays": 30}));
    let (id, token) = (
        program["id"].as_str().unwrap().to_owned(),
        program["adminToken"].as_str().unwrap().to_owned(),
    );
    let connector = server
        .connector(
            &id,
            &token,
            json!({"type": "queryToken", "token": "s3cret-token"}),
        )
        .await;
    let connector = connector["id"].as_str().unwrap().to_owned();
    let rule = server.seed_rule(&id, &token, &connector, json!([])).await;
    let mut held = json!({"name": "Held", "connectorId": connector, "points": {"fixed": 5},
        "conditions": rule["conditions"], "pendingDays": 14});
    let held_rule = server
        .ok(
            Method::POST,
            &format!("/v1/programs/{id}/rules"),
            &token,
            Some(held.take()),
        )
        .await;
    assert_eq!(held_rule["pendingDays"], 14);
    server
        .send(
            &connector,
            "?token=s3cret-token",
            &[],
            article("a-1", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    let member = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{id}/members?kind=email&value=ann@example.com"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        (&member["balance"], &member["pending"]),
        (&json!(10), &json!(5))
    );
    let expiring = member["expiring"].as_array().unwrap();
    assert_eq!(expiring.len(), 2);
    assert_eq!(
        expiring
            .iter()
            .map(|e| e["points"].as_i64().unwrap())
            .sum::<i64>(),
        15
    );
    let (status, problem) = server
        .call(
            Method::POST,
            "/v1/programs",
            Some(crate::harness::ROOT),
            Some(json!({"name": "Never", "pointsExpiry": {"afterDays": 0}})),
        )
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/pointsExpiry/afterDays")
        )
    );
}
