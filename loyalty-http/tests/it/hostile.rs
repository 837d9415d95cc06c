//! Hostile mappings and noisy senders: each fails on its own, and others are served meanwhile.

use crate::harness::*;
use loyalty_core::Limits;
use loyalty_http::HttpConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

async fn connector_with_mapping(
    server: &TestServer,
    program: &str,
    admin: &str,
    mapping: &str,
) -> String {
    let created = server
        .ok(
            Method::POST,
            &format!("/v1/programs/{program}/connectors"),
            admin,
            Some(json!({"name": "Hostile", "eventType": "custom.basic", "auth": {"type": "queryToken", "token": "s3cret-token-1"}, "mapping": mapping})),
        )
        .await;
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mappings_fail_item_by_item() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let cases = [
        (
            "($f := function($n){ $f($n + 1) }; $f(0))",
            "unbounded recursion",
        ),
        (
            "($f := function($n){ $n + $f($n + 1) }; $f(0))",
            "deep recursion",
        ),
        ("[1..100000000]", "a huge range"),
        ("$pad('x', 1000000000)", "a billion characters"),
        (
            "{'big': [1..90000].($string($) & 'xxxxxxxxxx')}",
            "an enormous output",
        ),
        (
            "($loop := function($s){ $loop($s & $s) }; $loop('x'))",
            "doubling strings",
        ),
    ];
    for (mapping, what) in cases {
        let cid = connector_with_mapping(&server, &program, &admin, mapping).await;
        let body = json!([
            article("h-1", "ann@example.com", "sport", 5),
            article("h-2", "ann@example.com", "sport", 5)
        ])
        .to_string();
        let (status, response) = server.send(&cid, "?token=s3cret-token-1", &[], body).await;
        assert_eq!(status, StatusCode::OK, "{what}: {response}");
        for result in response["results"].as_array().unwrap() {
            assert_eq!(result["status"], "rejected", "{what}: {result}");
            assert_eq!(result["error"]["code"], "mapping_error", "{what}: {result}");
            assert!(!result["error"]["message"].as_str().unwrap().is_empty());
        }
    }
    let (status, _) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "the server still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_connectors_are_served_while_a_hostile_mapping_runs() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    // Every item spins until the 50 ms timeout: a bulk of 100 takes the request's whole
    // mapping budget (2 s).
    let hostile = connector_with_mapping(
        &server,
        &program,
        &admin,
        "($f := function($n){ $f($n + 1) }; $f(0))",
    )
    .await;
    let good = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": "s3cret-token-2"}),
        )
        .await;
    let good = good["id"].as_str().unwrap().to_owned();
    let bulk: Vec<Value> = (0..100)
        .map(|i| article(&format!("h-{i}"), "ann@example.com", "sport", 5))
        .collect();
    let hostile_request = {
        let client = server.client.clone();
        let url = server.url(&format!("/v1/incoming/{hostile}?token=s3cret-token-1"));
        let body = Value::Array(bulk.clone()).to_string();
        tokio::spawn(async move {
            let response = client.post(url).body(body).send().await.unwrap();
            let done = std::time::Instant::now();
            (
                response.status(),
                response.json::<Value>().await.unwrap(),
                done,
            )
        })
    };
    let hostile_requests: Vec<_> = (0..3)
        .map(|_| {
            let client = server.client.clone();
            let url = server.url(&format!("/v1/incoming/{hostile}?token=s3cret-token-1"));
            let body = Value::Array(bulk.clone()).to_string();
            tokio::spawn(async move { client.post(url).body(body).send().await.unwrap().status() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut good_done = Vec::new();
    for i in 0..20 {
        let (status, response) = server
            .send(
                &good,
                "?token=s3cret-token-2",
                &[],
                article(&format!("g-{i}"), "bob@example.com", "sport", 5).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(response["results"][0]["status"], "accepted");
        good_done.push(std::time::Instant::now());
    }
    let (status, response, hostile_done) = hostile_request.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["rejected"], 100);
    assert!(
        good_done.iter().all(|t| *t < hostile_done),
        "the good connector's 20 requests were all answered while the hostile bulk was still mapping"
    );
    for request in hostile_requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_noisy_connector_is_rate_limited_alone() {
    let mut config = HttpConfig::new(ROOT);
    config.connector_rate_limit = Some(5);
    let server = TestServer::start_with_config(Limits::default(), config).await;
    let (program, admin) = server.program().await;
    let noisy = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": "s3cret-token-1"}),
        )
        .await;
    let quiet = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": "s3cret-token-1"}),
        )
        .await;
    let (noisy, quiet) = (noisy["id"].as_str().unwrap(), quiet["id"].as_str().unwrap());
    let mut limited = None;
    for i in 0..30 {
        let response = server
            .client
            .post(server.url(&format!("/v1/incoming/{noisy}?token=s3cret-token-1")))
            .body(article(&format!("n-{i}"), "ann@example.com", "sport", 5).to_string())
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let problem: Value = response.json().await.unwrap();
            limited = Some((retry_after, problem));
            break;
        }
    }
    let (retry_after, problem) = limited.expect("the 30 requests in a burst of 10 are limited");
    assert!(retry_after >= 1);
    assert_eq!(problem["code"], "rate_limited");
    let (status, _) = server
        .send(
            quiet,
            "?token=s3cret-token-1",
            &[],
            article("q-1", "bob@example.com", "sport", 5).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "another connector is not limited");
}
