//! Tenant isolation: a program's token sees nothing of another program, on every admin route.

use crate::harness::*;
use loyalty_http::openapi::{Access, ROUTES};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_program_token_sees_nothing_of_another_program() {
    let server = TestServer::start().await;
    let (a, a_token) = server.program().await;
    let (_b, b_token) = server.program().await;
    let connector = server
        .connector(
            &a,
            &a_token,
            json!({"type": "queryToken", "token": "s3cret-token-1"}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    let rule = server.seed_rule(&a, &a_token, cid, json!([])).await;
    let (_, response) = server
        .send(
            cid,
            "?token=s3cret-token-1",
            &[],
            article("e-1", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    let event = response["results"][0]["eventId"].as_str().unwrap();
    let member = response["results"][0]["memberId"].as_str().unwrap();
    let secret_values = [
        a.as_str(),
        cid,
        event,
        member,
        rule["id"].as_str().unwrap(),
        "ann@example.com",
    ];
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.access == Access::Program) {
        let path = route
            .path
            .replace("{programId}", &a)
            .replace("{connectorId}", cid)
            .replace("{ruleId}", rule["id"].as_str().unwrap())
            .replace("{memberId}", member)
            .replace("{eventId}", event);
        let path = if route.operation_id == "findMember" {
            format!("{path}?kind=email&value=ann@example.com")
        } else {
            path
        };
        let method = Method::from_bytes(route.method.to_uppercase().as_bytes()).unwrap();
        let body = route.request.map(|_| json!({"name": "x", "payload": {}, "eventType": "custom.basic", "auth": {"type": "queryToken"}, "mapping": "$", "connectorId": cid, "points": {"fixed": 1}}));
        let (status, problem) = server
            .call(method.clone(), &path, Some(&b_token), body.clone())
            .await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{method} {path} with another program's token: {status}"
        );
        let text = problem.to_string();
        for value in secret_values.iter().skip(1) {
            assert!(!text.contains(value), "{method} {path} leaked {value}");
        }
        let (status, _) = server.call(method.clone(), &path, None, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        let (status, _) = server
            .call(method, &path, Some("lpt_prg_x.wrong"), body)
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{} {path} with a wrong token",
            route.method
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        ROUTES
            .iter()
            .filter(|r| r.access == Access::Program)
            .count()
    );
    assert!(checked >= 18);
    // Nothing changed in program a.
    let read = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{a}/connectors/{cid}"),
            &a_token,
            None,
        )
        .await;
    assert_eq!(read["name"], "Article Read");
    assert_eq!(
        server.balance(&a, &a_token, "ann@example.com").await,
        Some(10)
    );
}
