//! Bodies as senders send them: JSON with or without a content type or as text/plain, HTML
//! forms read as one object (signed over the bytes as received), anything else 415.

use crate::harness::{hub_signature, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

const FORM_MAPPING: &str = r#"{"clientEventId": data.id, "profile": {"kind": "email", "value": data.email}, "payload": {"tags": [{"name": "type", "value": type}, {"name": "interest", "value": data.merges.INTERESTS}]}}"#;

/// A Mailchimp "subscribe" webhook as Mailchimp documents it.
const MAILCHIMP: &str = "type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bid%5D=8a25ff1d98\
    &data%5Blist_id%5D=a6b5da1054&data%5Bemail%5D=api%40mailchimp.com&data%5Bemail_type%5D=html\
    &data%5Bmerges%5D%5BEMAIL%5D=api%40mailchimp.com&data%5Bmerges%5D%5BFNAME%5D=Mailchimp\
    &data%5Bmerges%5D%5BINTERESTS%5D=Group1%2CGroup2&data%5Bip_opt%5D=10.20.10.30";

async fn post(
    server: &TestServer,
    connector: &str,
    content_type: Option<&str>,
    headers: &[(&str, String)],
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let mut request = server
        .client
        .post(server.url(&format!("/v1/incoming/{connector}")))
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn forms_are_read_as_one_object_and_signed_as_received() {
    let server = TestServer::start().await;
    let (program, token) = server.program().await;
    let connector = server
        .ok(
            Method::POST,
            &format!("/v1/programs/{program}/connectors"),
            &token,
            Some(json!({"name": "Mailchimp", "eventType": "custom.basic",
                "auth": {"type": "hubSignature", "secrets": ["form-secret"]}, "mapping": FORM_MAPPING})),
        )
        .await;
    let connector = connector["id"].as_str().unwrap().to_owned();
    let signed = vec![(
        "x-hub-signature-256",
        hub_signature("form-secret", MAILCHIMP.as_bytes()),
    )];
    let (status, body) = post(
        &server,
        &connector,
        Some("application/x-www-form-urlencoded"),
        &signed,
        MAILCHIMP,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = &body["results"][0];
    assert_eq!(
        (&result["status"], &result["clientEventId"]),
        (&json!("accepted"), &json!("8a25ff1d98"))
    );
    let logged = server
        .logged_event(&program, &token, result["eventId"].as_str().unwrap())
        .await;
    assert_eq!(
        logged["raw"]["data"]["merges"]["INTERESTS"],
        "Group1,Group2"
    );
    assert_eq!(logged["mapped"]["payload"]["tags"][0]["value"], "subscribe");
    // Sent again: a duplicate. A tampered form: 401.
    let (_, again) = post(
        &server,
        &connector,
        Some("application/x-www-form-urlencoded; charset=utf-8"),
        &signed,
        MAILCHIMP,
    )
    .await;
    assert_eq!(again["results"][0]["status"], "duplicate");
    let tampered = MAILCHIMP.replace("subscribe", "unsubscribe");
    let (status, _) = post(
        &server,
        &connector,
        Some("application/x-www-form-urlencoded"),
        &signed,
        &tampered,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn json_comes_with_any_of_its_content_types_and_other_types_are_415() {
    let server = TestServer::start().await;
    let (_, _, connector) = server.program_with_query_connector().await;
    let connector = format!("{connector}?token=s3cret-token");
    let event = |id: &str| crate::harness::article(id, "ann@example.com", "sport", 5).to_string();
    for (i, content_type) in [
        None,
        Some("application/json"),
        Some("text/plain;charset=UTF-8"),
        Some("application/cloudevents+json"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = post(
            &server,
            &connector,
            content_type,
            &[],
            &event(&format!("e-{i}")),
        )
        .await;
        assert_eq!(
            (status, &body["results"][0]["status"]),
            (StatusCode::OK, &json!("accepted")),
            "{content_type:?}"
        );
    }
    for content_type in [
        "application/xml",
        "multipart/form-data; boundary=x",
        "image/png",
    ] {
        let (status, problem) =
            post(&server, &connector, Some(content_type), &[], &event("e-x")).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("unsupported_media_type")
            ),
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn hostile_forms_get_clear_answers() {
    let server = TestServer::start().await;
    let (_, token, connector) = server.program_with_query_connector().await;
    let connector = format!("{connector}?token=s3cret-token");
    let form = Some("application/x-www-form-urlencoded");
    // Over the body limit, as for JSON: 413 before anything is read into a document.
    let big = "a=".to_owned() + &"x".repeat(1024 * 1024);
    let (status, problem) = post(&server, &connector, form, &[], &big).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    let deep = format!("{}=1", "a".to_owned() + &"[b]".repeat(10_000));
    let many = "k=1&".repeat(200_000);
    let cases = [
        ("deep brackets", deep),
        ("a key 200,000 times", many),
        ("bad percent escapes", "a=%zz%&b=%E2%82&%=%%".to_owned()),
        ("invalid UTF-8 once decoded", "a=%ff%fe".to_owned()),
        (
            "markup",
            "profile[email]=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
        ),
        ("nothing but separators", "&&&==&".to_owned()),
    ];
    for (what, body) in cases {
        let (status, answer) = post(&server, &connector, form, &[], &body).await;
        // One object, mapped like any item: answered item by item, never an error page.
        assert_eq!(status, StatusCode::OK, "{what}: {answer}");
        assert_eq!(
            answer["results"].as_array().map(Vec::len),
            Some(1),
            "{what}"
        );
    }
    assert_eq!(
        server.ok(Method::GET, "/healthz", &token, None).await["status"],
        "ok"
    );
}
