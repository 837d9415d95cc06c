//! Templates over HTTP: listed for any admin token, and a connector made from one.

use crate::harness::{TestServer, ROOT};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn templates_are_listed_and_make_connectors() {
    let server = TestServer::start().await;
    let (program, token) = server.program().await;
    for caller in [ROOT, token.as_str()] {
        let list = server.ok(Method::GET, "/v1/templates", caller, None).await;
        let ids: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        for id in [
            "shopify.orders-create",
            "stripe.charge-refunded",
            "gtm.custom-event",
        ] {
            assert!(ids.contains(&id), "{id} in {ids:?}");
        }
        assert!(list["items"][0]["samplePayload"].is_object());
    }
    let (status, _) = server.call(Method::GET, "/v1/templates", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let path = format!("/v1/programs/{program}/connectors");
    let (status, created) = server
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"template": "shopify.orders-create", "name": "My shop"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (
            &created["name"],
            &created["eventType"],
            &created["auth"]["type"]
        ),
        (
            &json!("My shop"),
            &json!("ecommerce.purchase"),
            &json!("shopify")
        )
    );
    assert_eq!(
        created["auth"]["secrets"].as_array().map(Vec::len),
        Some(1),
        "a generated secret is shown once"
    );
    let (status, problem) = server
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"template": "nope"})),
        )
        .await;
    assert_eq!(
        (status, problem["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/template"))
    );
}
