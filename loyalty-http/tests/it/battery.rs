//! A battery of bad requests against the real server: each gets the status and problem code
//! the API promises, nothing is stored for it, the server goes on answering, and memory stays put.

use crate::harness::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Sends raw bytes over TCP and returns the status code of the answer.
async fn raw(server: &TestServer, request: Vec<u8>) -> u16 {
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer (and close) before reading everything: ignore write errors.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_store_nothing() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let query = server
        .connector(
            &program,
            &admin,
            json!({"type": "queryToken", "token": "s3cret-token-1"}),
        )
        .await;
    let qid = query["id"].as_str().unwrap().to_owned();
    let hub = server
        .connector(
            &program,
            &admin,
            json!({"type": "hubSignature", "secrets": ["hub-secret-1"]}),
        )
        .await;
    let hid = hub["id"].as_str().unwrap().to_owned();
    let q = "?token=s3cret-token-1";
    let before = rss_kib();

    for round in 0..3 {
        let bad_json: Vec<(&str, Vec<u8>)> = vec![
            ("empty", b"".to_vec()),
            ("whitespace", b"  \n ".to_vec()),
            ("truncated", b"{\"eventId\": \"a\", \"profile\": {".to_vec()),
            ("trailing garbage", b"{\"a\": 1} xyz".to_vec()),
            ("single quotes", b"{'a': 1}".to_vec()),
            ("NaN", b"{\"a\": NaN}".to_vec()),
            ("Infinity", b"{\"a\": Infinity}".to_vec()),
            ("invalid UTF-8", b"{\"a\": \"\xff\xfe\"}".to_vec()),
            ("lone surrogate", b"{\"a\": \"\\ud800\"}".to_vec()),
            ("number beyond f64", b"{\"a\": 1e400}".to_vec()),
            (
                "nesting 100,000 deep",
                [vec![b'['; 100_000], vec![b']'; 100_000]].concat(),
            ),
            ("deep objects", "{\"a\":".repeat(50_000).into_bytes()),
        ];
        for (what, body) in bad_json {
            let (status, problem) = server.send(&qid, q, &[], body).await;
            assert_eq!(
                (status, problem["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_json")),
                "{what}"
            );
            assert!(
                problem["line"].is_number() && problem["column"].is_number(),
                "{what}"
            );
        }
        // Over the body limit: declared, and chunked without a length.
        let big = vec![b' '; 1024 * 1024 + 10];
        let (status, problem) = server.send(&qid, q, &[], big.clone()).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
        );
        let mut chunked = format!("POST /v1/incoming/{qid}{q} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
        for _ in 0..20 {
            chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
            chunked.extend_from_slice(&vec![b' '; 64 * 1024]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(raw(&server, chunked).await, 413, "chunked over the limit");
        let lying = format!("POST /v1/incoming/{qid}{q} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\nConnection: close\r\n\r\n{{}}").into_bytes();
        assert_eq!(
            raw(&server, lying).await,
            413,
            "declared length over the limit"
        );
        // Over the batch limit.
        let items: Vec<_> = (0..1001).map(|i| json!({"eventId": i})).collect();
        let (status, problem) = server
            .send(&qid, q, &[], serde_json::to_vec(&items).unwrap())
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("batch_too_large"))
        );
        // Credentials: wrong, missing, truncated, wrong case, twice; malformed signatures.
        let body = article(&format!("x-{round}"), "ann@example.com", "sport", 5).to_string();
        for bad in [
            "?token=s3cret-token-",
            "?token=S3CRET-TOKEN-1",
            "",
            "?token=",
            "?tok=s3cret-token-1",
            "?token=s3cret-token-1&token=s",
            "?token=%00",
        ] {
            let (status, problem) = server.send(&qid, bad, &[], body.clone()).await;
            assert_eq!(
                (status, problem["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{bad}"
            );
        }
        let good = hub_signature("hub-secret-1", body.as_bytes());
        let reserialised = hub_signature(
            "hub-secret-1",
            serde_json::from_str::<serde_json::Value>(&body)
                .unwrap()
                .to_string()
                .replace(':', ": ")
                .as_bytes(),
        );
        let truncated = good[..good.len() - 2].to_owned();
        let upper = good.to_uppercase();
        let non_hex = format!("sha256={}", "g".repeat(64));
        for signature in [
            "",
            "sha256=",
            "sha1=abcd",
            truncated.as_str(),
            upper.as_str(),
            non_hex.as_str(),
            reserialised.as_str(),
            "sha256=0000",
        ] {
            let (status, problem) = server
                .send(
                    &hid,
                    "",
                    &[("X-Hub-Signature-256", signature)],
                    body.clone(),
                )
                .await;
            assert_eq!(
                (status, problem["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("unauthorized")),
                "{signature:?}"
            );
        }
        // Unknown connectors of odd shapes.
        for id in [
            "con_nope",
            "x",
            "..%2F..%2Fetc",
            "%00",
            "a%20b",
            &"z".repeat(5000),
            "con_%E2%9C%93",
        ] {
            let (status, problem) = server.send(id, q, &[], body.clone()).await;
            assert_eq!(
                (status, problem["code"].as_str()),
                (StatusCode::NOT_FOUND, Some("not_found")),
                "{id}"
            );
        }
    }
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
        "nothing was stored for refused requests"
    );

    // Bodies that are JSON but odd: each item gets a status of its own and is logged, truncated.
    let odd = json!([1, "text", null, [1, 2], {"eventId": "big", "profile": {"email": "ann@example.com"}, "totalArticlesRead": 1, "pad": "x".repeat(1_000_000)}]);
    let (status, response) = server.send(&qid, q, &[], odd.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    let statuses: Vec<&str> = response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["rejected", "rejected", "rejected", "rejected", "accepted"]
    );
    let big = response["results"][4]["eventId"].as_str().unwrap();
    let logged = server.logged_event(&program, &admin, big).await;
    assert_eq!(logged["rawTruncated"], true);
    assert!(logged["raw"].as_str().unwrap().len() <= 16 * 1024);
    let duplicate_keys = br#"{"eventId": "d-1", "eventId": "d-2", "profile": {"email": "ann@example.com"}, "totalArticlesRead": 1}"#.to_vec();
    let (status, response) = server.send(&qid, q, &[], duplicate_keys).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        response["results"][0]["clientEventId"], "d-2",
        "the last of duplicate keys wins, as in JavaScript"
    );

    let (status, _) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "the server still answers");
    let after = rss_kib();
    assert!(
        after < before + 96 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
}
