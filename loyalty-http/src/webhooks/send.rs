//! One attempt: a signed POST with timeouts, no redirects followed, no proxy, and the answer
//! read to a bound.

use super::guard::{GuardedResolver, Refused};
use super::WebhookConfig;
use loyalty_core::webhooks::{attempt_headers, AttemptOutcome, ClaimedDelivery, TargetUrl};
use std::error::Error as _;
use std::sync::Arc;

pub(crate) fn client(config: &WebhookConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver {
            policy: config.policy(),
        }))
        // A redirect could lead anywhere, private addresses included; a proxy would resolve
        // the name itself, past the guard.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .user_agent(concat!("loyalty-webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// Sends the delivery once and says what came of it. Nothing in the outcome holds the URL
/// (its query may carry a token) or a secret.
pub(crate) async fn attempt(
    client: &reqwest::Client,
    config: &WebhookConfig,
    claimed: &ClaimedDelivery,
    now: chrono::DateTime<chrono::Utc>,
) -> AttemptOutcome {
    let no_answer = |error: String| AttemptOutcome::NoAnswer { error };
    let target = match TargetUrl::parse(&claimed.webhook.url) {
        Ok(target) => target,
        Err(error) => return no_answer(error),
    };
    if let Some(address) = target.literal_address() {
        if !config.policy().allows(address) {
            return no_answer(Refused.to_string());
        }
    }
    let Some(headers) = attempt_headers(&claimed.webhook, &claimed.delivery, now) else {
        return no_answer("the endpoint has no valid secret".into());
    };
    let request = client
        .post(target.as_str())
        .header("content-type", "application/json")
        .header("webhook-id", &headers.id)
        .header("webhook-timestamp", &headers.timestamp)
        .header("webhook-signature", &headers.signature)
        .body(claimed.delivery.message.body.clone());
    match request.send().await {
        Ok(mut response) => {
            let status = response.status().as_u16();
            // Read (and drop) the answer up to the bound, so that the connection can be used
            // again; a receiver that sends more is not waited for.
            let mut read = 0usize;
            while read < config.max_response_bytes {
                match response.chunk().await {
                    Ok(Some(chunk)) => read += chunk.len(),
                    _ => break,
                }
            }
            AttemptOutcome::Answered { status }
        }
        Err(error) => no_answer(describe(&error)),
    }
}

/// What went wrong, without the URL reqwest puts in its messages.
fn describe(error: &reqwest::Error) -> String {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<Refused>().is_some() {
            return Refused.to_string();
        }
        source = cause.source();
    }
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        let mut root: &dyn std::error::Error = error;
        while let Some(next) = root.source() {
            root = next;
        }
        format!("could not connect: {root}")
    } else {
        let error = error.to_string();
        // reqwest names the URL in its message: keep only what precedes it.
        let cut = error.find(" for url").unwrap_or(error.len());
        error[..cut].to_owned()
    }
}
