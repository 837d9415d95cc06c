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
//! A header value of `@sign` is replaced by the correct signature for the body (hub signature for
//! `x-hub-signature-256`, a Standard Webhooks `v1,...` for `webhook-signature`), and a
//! `webhook-timestamp` of `@now` by the fixed "now", so the fuzzer can also reach the success
//! paths. When the harness has computed a correct hub signature and the header occurs exactly
//! once, verification must succeed: that is asserted.
#![no_main]

use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use loyalty_core::auth::{
    hub_signature, standard_webhooks_signature, AuthFailure, ConnectorAuth, RequestParts,
};
use loyalty_core::mapping::Document;
use loyalty_core::secret::{Secret, TokenHash};

const HUB_SECRET: &str = "It's a Secret to Everybody";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_614_265_330;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW, 0).unwrap()
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

    // Placeholders that let the fuzzer produce valid credentials.
    let mut computed_hub = false;
    for (name, value) in headers.iter_mut() {
        if name.eq_ignore_ascii_case("webhook-timestamp") && value.as_slice() == b"@now" {
            *value = NOW.to_string().into_bytes();
        }
    }
    let webhook_id = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("webhook-id"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok().map(str::to_owned));
    let webhook_ts = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("webhook-timestamp"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<i64>().ok());
    for (name, value) in headers.iter_mut() {
        if value.as_slice() != b"@sign" {
            continue;
        }
        if name.eq_ignore_ascii_case("x-hub-signature-256") {
            *value = hub_signature(HUB_SECRET, body).into_bytes();
            computed_hub = true;
        } else if name.eq_ignore_ascii_case("webhook-signature") {
            if let (Some(id), Some(ts)) = (&webhook_id, webhook_ts) {
                if let Some(sig) = standard_webhooks_signature(WEBHOOK_SECRET, id, ts, body) {
                    *value = sig.into_bytes();
                }
            }
        }
    }

    let header_refs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let request = RequestParts {
        query: &query,
        headers: &header_refs,
        body,
    };

    let schemes = [
        ConnectorAuth::QueryToken {
            param: "token".into(),
            token_hash: TokenHash::of("s3cret-token"),
        },
        ConnectorAuth::HeaderToken {
            header: "X-Authorization".into(),
            token_hash: TokenHash::of("s3cret-token"),
        },
        ConnectorAuth::HubSignature {
            header: "X-Hub-Signature-256".into(),
            secrets: vec![Secret::new("old secret"), Secret::new(HUB_SECRET)],
        },
        ConnectorAuth::StandardWebhooks {
            secrets: vec![Secret::new(WEBHOOK_SECRET)],
            tolerance_seconds: 300,
        },
    ];
    for auth in &schemes {
        let result = auth.verify(&request, now());
        // Exercise the error's Display and kind, as the HTTP layer does for logs and metrics.
        if let Err(failure) = &result {
            let _ = failure.to_string();
            let _ = failure.kind();
        }
        if let ConnectorAuth::HubSignature { header, .. } = auth {
            let occurrences = header_refs
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(header))
                .count();
            if computed_hub && occurrences == 1 {
                assert!(
                    result.is_ok(),
                    "a correct hub signature was rejected: {result:?}"
                );
            }
        }
        if let (ConnectorAuth::StandardWebhooks { .. }, Ok(ok)) = (auth, &result) {
            // A message id that authenticated must be the webhook-id header, and usable as
            // a clientEventId prefix.
            let id = ok.message_id.as_deref().expect("standard webhooks sets message_id");
            assert!(id.len() <= 256 && !id.contains('.'), "bad message id {id:?}");
        }
        if let Err(AuthFailure::OutsideTolerance(t)) = result {
            assert_eq!(t, 300);
        }
    }

    // The body, as the ingestion path handles it after authentication.
    if let Ok(parsed) = Document::parse_body(body, 1000, &loyalty_core::mapping::Projection::Whole) {
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
