//! The live stream over a real socket: SSE frames as a client reads them, resumption with
//! Last-Event-ID, a member's stream, authorisation, and the end of streams at shutdown.

use crate::harness::{article, TestServer, ROOT};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

/// One SSE message: its `id:`, `event:` and `data:` (comments are skipped).
#[derive(Debug)]
struct Message {
    id: Option<String>,
    event: String,
    data: Value,
}

struct SseReader {
    response: reqwest::Response,
    buffer: String,
    comments: usize,
}

impl SseReader {
    async fn open(server: &TestServer, path: &str, token: &str, last: Option<&str>) -> Self {
        let mut request = server
            .client
            .get(server.url(path))
            .header("authorization", format!("Bearer {token}"));
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: String::new(),
            comments: 0,
        }
    }

    /// The next message, or `None` when the server ended the stream.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                    } else if let Some(value) = line.strip_prefix("id: ") {
                        id = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("event: ") {
                        event = value.to_owned();
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push_str(value);
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).unwrap();
                return Some(Message { id, event, data });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("a message within 30 s")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn the_stream_sends_each_change_once_and_resumes_from_last_event_id() {
    let server = TestServer::start().await;
    let (program, token, connector) = server.program_with_query_connector().await;
    server
        .seed_rule(&program, &token, &connector, json!([]))
        .await;
    let path = format!("/v1/programs/{program}/stream");
    let mut stream = SseReader::open(&server, &path, &token, None).await;
    let query = "?token=s3cret-token";
    let body = article("a-1", "ann@example.com", "sport", 5).to_string();
    let (status, sent) = server.send(&connector, query, &[], body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let event_id = sent["results"][0]["eventId"].as_str().unwrap().to_owned();

    let first = stream.next().await.unwrap();
    assert_eq!(first.event, "event");
    assert_eq!(first.data["id"], event_id);
    assert_eq!(first.data["status"], "accepted");
    assert!(first.data.get("raw").is_none(), "the stream leaves raw out");
    let second = stream.next().await.unwrap();
    assert_eq!(second.event, "ledger");
    assert_eq!(second.data["entry"]["kind"], "award");
    assert_eq!(second.data["entry"]["eventId"], event_id);
    assert_eq!(
        (
            second.data["balance"].clone(),
            second.data["pending"].clone()
        ),
        (json!(10), json!(0))
    );
    let member = second.data["memberId"].as_str().unwrap().to_owned();
    let first_id = first.id.clone().unwrap();
    assert!(second.id.clone().unwrap().parse::<i64>().unwrap() > first_id.parse::<i64>().unwrap());

    // A duplicate is logged (an event) and changes no points.
    server.send(&connector, query, &[], body).await;
    let third = stream.next().await.unwrap();
    assert_eq!(
        (third.event.as_str(), &third.data["status"]),
        ("event", &json!("duplicate"))
    );

    // Reconnecting after the first message gets the rest, once.
    let mut resumed = SseReader::open(&server, &path, &token, Some(&first_id)).await;
    let again = resumed.next().await.unwrap();
    assert_eq!(
        (again.id, again.event.as_str()),
        (second.id.clone(), "ledger")
    );
    let again = resumed.next().await.unwrap();
    assert_eq!(again.id, third.id);
    // ?after= does the same for clients that cannot set the header.
    let after = format!("{path}?after={first_id}");
    let mut by_query = SseReader::open(&server, &after, &token, None).await;
    assert_eq!(by_query.next().await.unwrap().id, second.id);

    // A member's stream has only that member's changes.
    let bob = article("b-1", "bob@example.com", "sport", 5).to_string();
    let member_path = format!("{path}?memberId={member}&after=0");
    let mut ann_only = SseReader::open(&server, &member_path, &token, None).await;
    server.send(&connector, query, &[], bob).await;
    let ann = article("a-2", "ann@example.com", "sport", 5).to_string();
    server.send(&connector, query, &[], ann).await;
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let message = ann_only.next().await.unwrap();
        let whose = match message.event.as_str() {
            "ledger" => message.data["memberId"].clone(),
            _ => message.data["memberId"].clone(),
        };
        assert_eq!(whose, json!(member));
        seen.push(message);
    }
    assert_eq!(seen[4].data["balance"], 20);

    // Shutdown ends every stream, so that it does not wait for them.
    drop(server);
    tokio::time::timeout(Duration::from_secs(30), async {
        while stream.next().await.is_some() {}
    })
    .await
    .expect("the stream ends at shutdown");
}

#[tokio::test]
async fn the_stream_is_for_the_programs_admins_only() {
    let server = TestServer::start().await;
    let (program, token) = server.program().await;
    let (_, other_token) = server.program().await;
    let path = format!("/v1/programs/{program}/stream");
    let status_of = |token: Option<String>, last: Option<&'static str>, path: String| {
        let request = server.client.get(server.url(&path));
        let request = match token {
            Some(token) => request.header("authorization", format!("Bearer {token}")),
            None => request,
        };
        let request = match last {
            Some(last) => request.header("last-event-id", last),
            None => request,
        };
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        status_of(None, None, path.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(Some(other_token), None, path.clone()).await,
        StatusCode::FORBIDDEN
    );
    let unknown = "/v1/programs/prg_unknown/stream".to_owned();
    assert_eq!(
        status_of(Some(ROOT.into()), None, unknown).await,
        StatusCode::NOT_FOUND
    );
    let bad = Some("not-a-number");
    assert_eq!(
        status_of(Some(token.clone()), bad, path.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let bad_query = format!("{path}?after=-1");
    assert_eq!(
        status_of(Some(token.clone()), None, bad_query).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A cursor the stream never handed out is reported, and the stream goes on from now.
    let mut stream = SseReader::open(&server, &path, &token, Some("999999")).await;
    let reset = stream.next().await.unwrap();
    assert_eq!(
        (reset.event.as_str(), reset.data),
        ("reset", json!({"reason": "cursor_expired"}))
    );
}
