//! The console's files and `/v1/me`, which the console signs in with.

use crate::harness::{TestServer, ROOT};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn me_names_the_root_or_the_program_of_a_token() {
    let server = TestServer::start().await;
    let (program, admin) = server.program().await;
    let root = server.ok(Method::GET, "/v1/me", ROOT, None).await;
    assert_eq!(root, json!({"role": "root"}));
    let own = server.ok(Method::GET, "/v1/me", &admin, None).await;
    assert_eq!(own, json!({"role": "program", "programId": program}));
    let forged = format!("lpt_{program}.wrong");
    for token in [None, Some("not-a-token-at-all"), Some(forged.as_str())] {
        let (status, problem) = server.call(Method::GET, "/v1/me", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(problem["code"], "unauthorized");
    }
}

#[tokio::test]
async fn the_console_is_served_with_its_types_a_strict_policy_and_revalidation() {
    let server = TestServer::start().await;
    for (path, content_type) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
        ("/console/js/main.js", "text/javascript; charset=utf-8"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), content_type, "{path}");
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("cache-control"), "no-cache");
        let etag = header("etag");
        let again = server
            .client
            .get(server.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.headers().contains_key("content-security-policy"));
    }
    let page = server.text("/console").await;
    assert!(page.contains("/console/js/main.js"));
    // Nothing from another origin, nothing inline.
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(!page.contains("style=") && !page.contains("<style"));

    let slash = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(server.url("/console/"))
        .send()
        .await
        .unwrap();
    assert_eq!(slash.status(), StatusCode::PERMANENT_REDIRECT);
    let (status, problem) = server
        .call(Method::GET, "/console/js/missing.js", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "not_found");
}
