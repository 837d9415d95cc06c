//! Health, metrics, the OpenAPI document, and logs that never hold a secret.

use crate::harness::*;
use loyalty_http::openapi::{document, ROUTES};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn health_and_metrics() {
    let server = TestServer::start().await;
    let (status, body) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (program, admin) = server.program().await;
    let connector = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": "s3cret-token-1"}),
        )
        .await;
    let cid = connector["id"].as_str().unwrap();
    server
        .send(
            cid,
            "?token=s3cret-token-1",
            &[],
            article("e-1", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    server
        .send(
            cid,
            "?token=wrong-token-1",
            &[],
            article("e-2", "ann@example.com", "sport", 5).to_string(),
        )
        .await;
    let text = server.text("/metrics").await;
    assert!(
        text.contains(&format!(
            "loyalty_ingest_auth_failures_total{{connector=\"{cid}\",reason=\"wrong\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains("loyalty_ingest_items_total{status=\"accepted\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("loyalty_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("route=\"/v1/incoming/{connector_id}\""),
        "{text}"
    );
}

#[test]
fn committed_openapi_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json");
    let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p loyalty-http --test it committed_openapi` and commit it"
    );
    assert_eq!(document()["openapi"], "3.1.0");
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let server = TestServer::start().await;
    for route in ROUTES {
        let path = route.path.replace('{', "x").replace('}', "");
        let method = Method::from_bytes(route.method.to_uppercase().as_bytes()).unwrap();
        let (status, problem) = server.call(method, &path, None, None).await;
        let unrouted =
            status == StatusCode::NOT_FOUND && problem["detail"] == "no route for this path";
        assert!(
            !unrouted && status != StatusCode::METHOD_NOT_ALLOWED,
            "{} {} is documented but not served",
            route.method,
            route.path
        );
    }
    let (status, body) = server.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, document());
}

#[tokio::test]
async fn logs_never_hold_tokens_signatures_or_secrets() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let query_token = "q-token-never-logged-1";
    let header_token = "h-token-never-logged-2";
    let hub_secret = "hub-secret-never-logged-3";
    let q = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": query_token}),
        )
        .await;
    let h = server
        .connector(
            &program,
            &admin,
            json!({"type": "headerToken", "token": header_token}),
        )
        .await;
    let s = server
        .connector(
            &program,
            &admin,
            json!({"type": "hubSignature", "secrets": [hub_secret]}),
        )
        .await;
    let body = article("e-1", "ann@example.com", "sport", 5).to_string();
    let signature = hub_signature(hub_secret, body.as_bytes());
    server
        .send(
            q["id"].as_str().unwrap(),
            &format!("?token={query_token}"),
            &[],
            body.clone(),
        )
        .await;
    server
        .send(
            q["id"].as_str().unwrap(),
            &format!("?token={query_token}x"),
            &[],
            body.clone(),
        )
        .await;
    server
        .send(
            h["id"].as_str().unwrap(),
            "",
            &[("x-authorization", header_token)],
            body.clone(),
        )
        .await;
    server
        .send(
            s["id"].as_str().unwrap(),
            "",
            &[("x-hub-signature-256", &signature)],
            body.clone(),
        )
        .await;
    server
        .send(
            s["id"].as_str().unwrap(),
            "",
            &[("x-hub-signature-256", "sha256=00")],
            body.clone(),
        )
        .await;
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(logs.contains("request"), "the request lines are there");
    assert!(
        logs.contains(q["id"].as_str().unwrap()),
        "with the connector"
    );
    for secret in [
        query_token,
        header_token,
        hub_secret,
        &signature[7..],
        &admin,
        ROOT,
    ] {
        assert!(!logs.contains(secret), "the logs hold a secret");
    }
    // Nor does the event log or any admin answer.
    let log = server
        .ok(
            Method::GET,
            &format!("/v1/programs/{program}/events?limit=100"),
            &admin,
            None,
        )
        .await;
    let text = log.to_string();
    for secret in [query_token, header_token, hub_secret, &signature[7..]] {
        assert!(!text.contains(secret));
    }
}

/// Every answer has a request id, the 404s and 405s of no route included; a request id a
/// client sends (a safe one) comes back as it was sent.
#[tokio::test]
async fn every_answer_has_a_request_id() {
    let server = TestServer::start().await;
    for (method, path, expected) in [
        (Method::GET, "/v1/programs", StatusCode::OK),
        (Method::GET, "/v1/nothing-here", StatusCode::NOT_FOUND),
        (Method::PUT, "/v1/programs", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/v1/programs/prg%00x", StatusCode::NOT_FOUND),
    ] {
        let response = server
            .client
            .request(method, server.url(path))
            .bearer_auth(ROOT)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{path}");
        let id = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(id.is_some_and(|id| id.len() >= 16), "{path}");
    }
    let response = server
        .client
        .get(server.url("/v1/nothing-here"))
        .header("x-request-id", "client-chosen_1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen_1");
}
