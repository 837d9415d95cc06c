//! Table-driven checks: each case is a request and what must come back, run through one
//! helper, so that a change to how answers are read is a change here and not in every test.

use crate::harness::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A request to make.
#[derive(Clone, Debug)]
pub enum Call {
    /// An admin call, with a JSON body.
    Admin {
        method: Method,
        path: String,
        token: Option<String>,
        body: Option<Value>,
    },
    /// An admin call with a body as raw text, sent as JSON.
    AdminText {
        method: Method,
        path: String,
        token: Option<String>,
        text: String,
    },
    /// A post to a connector's endpoint: `query` starts with `?` (or is empty).
    Ingest {
        connector: String,
        query: String,
        headers: Vec<(String, String)>,
        body: String,
    },
}

pub fn api(
    method: Method,
    path: impl Into<String>,
    token: Option<&str>,
    body: Option<Value>,
) -> Call {
    Call::Admin {
        method,
        path: path.into(),
        token: token.map(str::to_owned),
        body,
    }
}

/// An admin call with a token and a body, the most common shape.
pub fn api_json(method: Method, path: impl Into<String>, token: &str, body: Value) -> Call {
    api(method, path, Some(token), Some(body))
}

pub fn api_text(
    method: Method,
    path: impl Into<String>,
    token: Option<&str>,
    text: impl Into<String>,
) -> Call {
    Call::AdminText {
        method,
        path: path.into(),
        token: token.map(str::to_owned),
        text: text.into(),
    }
}

pub fn ingest(
    connector: &str,
    query: impl Into<String>,
    headers: &[(&str, &str)],
    body: impl Into<String>,
) -> Call {
    Call::Ingest {
        connector: connector.to_owned(),
        query: query.into(),
        headers: headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        body: body.into(),
    }
}

impl Call {
    pub async fn run(&self, server: &TestServer) -> (StatusCode, Value) {
        match self {
            Call::Admin {
                method,
                path,
                token,
                body,
            } => {
                server
                    .call(method.clone(), path, token.as_deref(), body.clone())
                    .await
            }
            Call::AdminText {
                method,
                path,
                token,
                text,
            } => {
                let mut request = server
                    .client
                    .request(method.clone(), server.url(path))
                    .header("content-type", "application/json")
                    .body(text.clone());
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                let text = response.text().await.unwrap();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Call::Ingest {
                connector,
                query,
                headers,
                body,
            } => {
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                server.send(connector, query, &headers, body.clone()).await
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Call::Admin {
                method, path, body, ..
            } => match body {
                Some(body) => format!("{method} {path} {body}"),
                None => format!("{method} {path}"),
            },
            Call::AdminText {
                method, path, text, ..
            } => format!("{method} {path} {text:?}"),
            Call::Ingest {
                connector,
                query,
                headers,
                ..
            } => format!("POST /v1/incoming/{connector}{query} {headers:?}"),
        }
    }
}

/// What a call must answer: its status and, where given, the problem document's `code`,
/// `path`, `title`, and the `line` and `column` of a JSON or mapping error. An error's problem
/// document always repeats the status.
#[derive(Clone, Debug)]
pub struct Expect {
    status: StatusCode,
    code: Option<&'static str>,
    pointer: Option<String>,
    title: Option<&'static str>,
    position: Option<(i64, i64)>,
    because: &'static str,
}

pub fn expect(status: StatusCode) -> Expect {
    Expect {
        status,
        code: None,
        pointer: None,
        title: None,
        position: None,
        because: "",
    }
}

impl Expect {
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The problem's `path`: the JSON pointer (or query parameter) at fault.
    pub fn at(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = Some(pointer.into());
        self
    }

    pub fn title(mut self, title: &'static str) -> Self {
        self.title = Some(title);
        self
    }

    pub fn position(mut self, line: i64, column: i64) -> Self {
        self.position = Some((line, column));
        self
    }

    /// Why, for the failure message.
    pub fn because(mut self, why: &'static str) -> Self {
        self.because = why;
        self
    }
}

/// Makes the call and checks its answer; returns the answer's body for further checks.
pub async fn check(server: &TestServer, call: &Call, expected: &Expect) -> Value {
    let (status, body) = call.run(server).await;
    let what = format!("{} ({})", call.describe(), expected.because);
    assert_eq!(status, expected.status, "{what}: {body}");
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            body["status"].as_u64(),
            Some(u64::from(status.as_u16())),
            "{what}: {body}"
        );
    }
    if let Some(code) = expected.code {
        assert_eq!(body["code"].as_str(), Some(code), "{what}: {body}");
    }
    if let Some(pointer) = &expected.pointer {
        assert_eq!(
            body["path"].as_str(),
            Some(pointer.as_str()),
            "{what}: {body}"
        );
    }
    if let Some(title) = expected.title {
        assert_eq!(body["title"].as_str(), Some(title), "{what}: {body}");
    }
    if let Some((line, column)) = expected.position {
        assert_eq!(
            (body["line"].as_i64(), body["column"].as_i64()),
            (Some(line), Some(column)),
            "{what}: {body}"
        );
    }
    body
}

/// Checks every case of a table, in order.
pub async fn check_all(server: &TestServer, cases: impl IntoIterator<Item = (Call, Expect)>) {
    for (call, expected) in cases {
        check(server, &call, &expected).await;
    }
}
