//! Fuzzes what an unauthenticated caller controls on `POST /v1/incoming/{cid}`: the query
//! string, the headers and the body, through every authentication scheme and then the body's
//! JSON parsing and splitting into items.
//!
//! Input format (text-like, so that seeds are readable and editable):
//!
//! ```text
//! <query string>\n
//! <header name>:<header value>\n      (zero or more)
//! \n
//! <body bytes, to the end>
//! ```
//!
//! If there is no blank line, everything after the query line is headers and the body is empty;
//! if there is no newline at all, the whole input is the body.
//!
//! A header value of `@sign` is replaced by the correct signature of the request for the scheme
//! that reads that header (every scheme's signature header: `x-hub-signature-256`,
//! `x-shopify-hmac-sha256`, `stripe-signature`, `x-slack-signature`, `x-hubspot-signature-v3`,
//! `typeform-signature`, `x-wc-webhook-signature`, `x-signature`,
//! `x-zendesk-webhook-signature`, `webhook-signature`, `svix-signature`), and a timestamp
//! header of `@now` by the fixed "now" in that scheme's unit, so the fuzzer also reaches the
//! success paths. When the harness has signed a request for a scheme and each header that
//! scheme reads occurs at most once (the signature and timestamps exactly once), verification
//! must succeed: that is asserted.
#![no_main]

use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use loyalty_core::auth::{
    body_signature, standard_webhooks_signature, Algorithm, AuthFailure, ConnectorAuth, Encoding,
    RequestParts, SenderKind,
};
use loyalty_core::mapping::Document;
use loyalty_core::secret::{Secret, TokenHash};

const HUB_SECRET: &str = "It's a Secret to Everybody";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_614_265_330;
const PATH: &str = "/v1/incoming/con_fuzz";
const BASE_URL: &str = "https://loyalty.example";

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW, 0).unwrap()
}

fn hmac(algorithm: Algorithm, encoding: Encoding, parts: &[&[u8]]) -> String {
    encoding.encode(&algorithm.hmac(HUB_SECRET.as_bytes(), parts))
}

/// Each scheme under test, with the headers it reads: those that must occur exactly once for
/// a signed request to verify, and those (delivery ids) that may be absent.
struct Scheme {
    auth: ConnectorAuth,
    required: &'static [&'static str],
    optional: &'static [&'static str],
}

fn sender(
    sender: SenderKind,
    required: &'static [&'static str],
    optional: &'static [&'static str],
) -> Scheme {
    Scheme {
        auth: ConnectorAuth::Sender {
            sender,
            secrets: vec![Secret::new("old secret"), Secret::new(HUB_SECRET)],
            tolerance_seconds: sender.timestamped().then_some(300),
            public_base_url: None,
        },
        required,
        optional,
    }
}

fn schemes() -> Vec<Scheme> {
    vec![
        Scheme {
            auth: ConnectorAuth::QueryToken {
                param: "token".into(),
                token_hash: TokenHash::of("s3cret-token"),
            },
            required: &[],
            optional: &[],
        },
        Scheme {
            auth: ConnectorAuth::HeaderToken {
                header: "X-Authorization".into(),
                token_hash: TokenHash::of("s3cret-token"),
            },
            required: &[],
            optional: &[],
        },
        Scheme {
            auth: ConnectorAuth::HubSignature {
                header: "X-Hub-Signature-256".into(),
                secrets: vec![Secret::new("old secret"), Secret::new(HUB_SECRET)],
                algorithm: Algorithm::Sha256,
                encoding: Encoding::Hex,
                prefix: None,
                delivery_id_header: Some("X-GitHub-Delivery".into()),
            },
            required: &["x-hub-signature-256"],
            optional: &["x-github-delivery"],
        },
        // hubSignature as Shopify and WooCommerce sign (base64, no prefix): a second look at
        // the same headers, whatever the fuzzer signed them for.
        Scheme {
            auth: ConnectorAuth::HubSignature {
                header: "X-Shopify-Hmac-Sha256".into(),
                secrets: vec![Secret::new(HUB_SECRET)],
                algorithm: Algorithm::Sha256,
                encoding: Encoding::Base64,
                prefix: Some(String::new()),
                delivery_id_header: None,
            },
            required: &["x-shopify-hmac-sha256"],
            optional: &[],
        },
        sender(
            SenderKind::Github,
            &["x-hub-signature-256"],
            &["x-github-delivery"],
        ),
        sender(
            SenderKind::Shopify,
            &["x-shopify-hmac-sha256"],
            &["x-shopify-webhook-id"],
        ),
        sender(SenderKind::Typeform, &["typeform-signature"], &[]),
        sender(
            SenderKind::Woocommerce,
            &["x-wc-webhook-signature"],
            &["x-wc-webhook-delivery-id"],
        ),
        sender(SenderKind::Segment, &["x-signature"], &[]),
        sender(SenderKind::Stripe, &["stripe-signature"], &[]),
        sender(
            SenderKind::Slack,
            &["x-slack-signature", "x-slack-request-timestamp"],
            &[],
        ),
        sender(
            SenderKind::Hubspot,
            &["x-hubspot-signature-v3", "x-hubspot-request-timestamp"],
            &[],
        ),
        sender(
            SenderKind::Zendesk,
            &[
                "x-zendesk-webhook-signature",
                "x-zendesk-webhook-signature-timestamp",
            ],
            &["x-zendesk-webhook-invocation-id"],
        ),
        Scheme {
            auth: ConnectorAuth::StandardWebhooks {
                secrets: vec![Secret::new(WEBHOOK_SECRET)],
                tolerance_seconds: 300,
            },
            required: &["webhook-id", "webhook-timestamp", "webhook-signature"],
            optional: &[],
        },
    ]
}

struct Split<'a> {
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: &'a [u8],
}

fn split(data: &[u8]) -> Split<'_> {
    let Some(first_nl) = data.iter().position(|&b| b == b'\n') else {
        return Split {
            query: String::new(),
            headers: Vec::new(),
            body: data,
        };
    };
    let query = String::from_utf8_lossy(&data[..first_nl]).into_owned();
    let mut rest = &data[first_nl + 1..];
    let mut headers = Vec::new();
    loop {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if line.is_empty() {
            rest = next.unwrap_or(&[]);
            break;
        }
        // Name up to the first ':', value after it (one optional leading space dropped).
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        headers.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
        match next {
            Some(n) => rest = n,
            None => {
                rest = &[];
                break;
            }
        }
    }
    Split {
        query,
        headers,
        body: rest,
    }
}

fuzz_target!(|data: &[u8]| {
    let Split {
        query,
        mut headers,
        body,
    } = split(data);

    // Placeholders that let the fuzzer produce valid credentials: `@now` timestamps first,
    // since signatures cover them.
    let mut replaced: Vec<String> = Vec::new();
    for (name, value) in headers.iter_mut() {
        if value.as_slice() != b"@now" {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let now = match lower.as_str() {
            "webhook-timestamp" | "svix-timestamp" | "x-slack-request-timestamp" => NOW.to_string(),
            "x-hubspot-request-timestamp" => (NOW * 1000).to_string(),
            "x-zendesk-webhook-signature-timestamp" => now().to_rfc3339(),
            _ => continue,
        };
        *value = now.into_bytes();
        replaced.push(lower);
    }
    let first = |wanted: &str| -> Option<String> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(wanted))
            .and_then(|(_, v)| std::str::from_utf8(v).ok().map(str::to_owned))
    };
    let (webhook_id, webhook_ts) = (first("webhook-id"), first("webhook-timestamp"));
    let (svix_id, svix_ts) = (first("svix-id"), first("svix-timestamp"));
    let slack_ts = first("x-slack-request-timestamp").unwrap_or_default();
    let hubspot_ts = first("x-hubspot-request-timestamp").unwrap_or_default();
    let zendesk_ts = first("x-zendesk-webhook-signature-timestamp").unwrap_or_default();
    let mut uri = format!("{BASE_URL}{PATH}");
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query);
    }
    let standard = |id: &Option<String>, ts: &Option<String>| {
        let ts = ts.as_deref()?.parse::<i64>().ok()?;
        standard_webhooks_signature(WEBHOOK_SECRET, id.as_deref()?, ts, body)
    };
    let mut signed: Vec<String> = Vec::new();
    for (name, value) in headers.iter_mut() {
        if value.as_slice() != b"@sign" {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let signature = match lower.as_str() {
            "x-hub-signature-256" => Some(body_signature(
                Algorithm::Sha256,
                Encoding::Hex,
                "sha256=",
                HUB_SECRET,
                body,
            )),
            "x-shopify-hmac-sha256" | "x-wc-webhook-signature" => {
                Some(hmac(Algorithm::Sha256, Encoding::Base64, &[body]))
            }
            "typeform-signature" => Some(format!(
                "sha256={}",
                hmac(Algorithm::Sha256, Encoding::Base64, &[body])
            )),
            "x-signature" => Some(hmac(Algorithm::Sha1, Encoding::Hex, &[body])),
            "stripe-signature" => Some(format!(
                "t={NOW},v1={}",
                hmac(
                    Algorithm::Sha256,
                    Encoding::Hex,
                    &[NOW.to_string().as_bytes(), b".", body]
                )
            )),
            "x-slack-signature" => Some(format!(
                "v0={}",
                hmac(
                    Algorithm::Sha256,
                    Encoding::Hex,
                    &[b"v0:", slack_ts.as_bytes(), b":", body]
                )
            )),
            "x-hubspot-signature-v3" => Some(hmac(
                Algorithm::Sha256,
                Encoding::Base64,
                &[b"POST", uri.as_bytes(), body, hubspot_ts.as_bytes()],
            )),
            "x-zendesk-webhook-signature" => Some(hmac(
                Algorithm::Sha256,
                Encoding::Base64,
                &[zendesk_ts.as_bytes(), body],
            )),
            "webhook-signature" => standard(&webhook_id, &webhook_ts),
            "svix-signature" => standard(&svix_id, &svix_ts),
            _ => None,
        };
        if let Some(signature) = signature {
            *value = signature.into_bytes();
            signed.push(lower);
        }
    }

    let header_refs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let request = RequestParts {
        public_base_url: Some(BASE_URL),
        ..RequestParts::post(PATH, &query, &header_refs, body)
    };
    let count = |wanted: &str| {
        header_refs
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(wanted))
            .count()
    };

    for scheme in schemes() {
        let result = scheme.auth.verify(&request, now());
        // Exercise the error's Display and kind, as the HTTP layer does for logs and metrics.
        if let Err(failure) = &result {
            let _ = failure.to_string();
            let _ = failure.kind();
        }
        // Signed by the harness, each header once, timestamps the harness's: it must verify.
        // (Standard Webhooks' ids are the fuzzer's own text, which may be malformed.)
        let timestamps_fresh = scheme
            .required
            .iter()
            .skip(1)
            .all(|name| replaced.iter().any(|r| r == name));
        let must_verify = !scheme.required.is_empty()
            && !matches!(scheme.auth, ConnectorAuth::StandardWebhooks { .. })
            && signed.iter().any(|s| s == scheme.required[0])
            && scheme.required.iter().all(|name| count(name) == 1)
            && scheme.optional.iter().all(|name| count(name) <= 1)
            && timestamps_fresh;
        if must_verify {
            // A delivery id header that is not printable text is refused as malformed.
            let delivery_ok = scheme.optional.iter().all(|name| {
                header_refs
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .all(|(_, v)| {
                        v.is_empty()
                            || std::str::from_utf8(v)
                                .is_ok_and(|t| t.len() <= 256 && !t.chars().any(char::is_control))
                    })
            });
            if delivery_ok {
                assert!(
                    result.is_ok(),
                    "a correct {} signature was rejected: {result:?}",
                    scheme.auth.scheme()
                );
            }
        }
        if let Ok(ok) = &result {
            if let Some(id) = &ok.delivery_id {
                // A delivery id becomes a clientEventId: bounded and printable.
                assert!(
                    id.len() <= 256 && !id.chars().any(char::is_control),
                    "bad id {id:?}"
                );
            }
            if let ConnectorAuth::StandardWebhooks { .. } = scheme.auth {
                let id = ok
                    .delivery_id
                    .as_deref()
                    .expect("standard webhooks names the message");
                assert!(
                    id.len() <= 256 && !id.contains('.'),
                    "bad message id {id:?}"
                );
            }
        }
        if let Err(AuthFailure::OutsideTolerance(t)) = result {
            assert_eq!(t, 300);
        }
    }

    // The body, as the ingestion path handles it after authentication.
    if let Ok(parsed) = Document::parse_body(body, 1000, &loyalty_core::mapping::Projection::Whole)
    {
        let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        assert_eq!(parsed.bulk, is_array);
        for item in &parsed.items {
            // The raw text kept for the log is the item's own JSON.
            assert!(
                serde_json::from_str::<serde_json::Value>(&item.raw).is_ok(),
                "the raw text of an item is not JSON: {:?}",
                item.raw
            );
        }
        let items: Vec<_> = parsed.items.iter().map(|item| &item.document).collect();
        for item in items {
            let text = item.to_json_string();
            // What we print must be JSON that parses back.
            assert!(
                serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                "to_json_string produced invalid JSON: {text:?}"
            );
            let _ = item.to_json();
            let _ = item.is_object();
        }
    }
});
