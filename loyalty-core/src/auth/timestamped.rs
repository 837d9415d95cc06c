//! Senders that sign a timestamp with the body, so that a captured request cannot be
//! replayed outside the tolerance: Stripe, Slack, Zendesk and HubSpot (which also signs the
//! method and the URL).

use super::common::{
    any_matches, check_timestamp, header_text, secret_keys, single_header, Algorithm, Encoding,
};
use super::{AuthFailure, Authenticated, RequestParts};
use crate::secret::Secret;
use chrono::{DateTime, Utc};

/// `Stripe-Signature: t=<seconds>,v1=<hex>[,v1=<hex>…]` over `t.body`. Entries of other
/// schemes (`v0`, the test-mode scheme) are ignored: only `v1` counts, as Stripe's libraries
/// do.
pub(super) fn stripe(
    request: &RequestParts<'_>,
    secrets: &[Secret],
    tolerance_seconds: u64,
    now: DateTime<Utc>,
) -> Result<Authenticated, AuthFailure> {
    const HEADER: &str = "Stripe-Signature";
    let value = header_text(single_header(request.headers, HEADER)?, HEADER)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for entry in value.split(',') {
        let Some((key, item)) = entry.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" if timestamp.is_some() => {
                return Err(AuthFailure::Malformed(format!(
                    "header {HEADER} has more than one t"
                )))
            }
            "t" => timestamp = Some(item),
            "v1" => candidates.push(Encoding::Hex.decode(
                item.as_bytes(),
                Algorithm::Sha256,
                &format!("a v1 entry of header {HEADER}"),
            )?),
            _ => {}
        }
    }
    let timestamp = timestamp
        .ok_or_else(|| AuthFailure::Malformed(format!("header {HEADER} has no t=<timestamp>")))?;
    if candidates.is_empty() {
        return Err(AuthFailure::Malformed(format!(
            "header {HEADER} has no v1 signature"
        )));
    }
    check_timestamp(
        timestamp,
        1,
        tolerance_seconds,
        now,
        "the t of Stripe-Signature",
    )?;
    signed(
        secrets,
        &[timestamp.as_bytes(), b".", request.body],
        &candidates,
        Authenticated {
            delivery_id: None,
            delivery_id_field: Some("id"),
        },
    )
}

/// `X-Slack-Signature: v0=<hex>` over `v0:<timestamp>:<body>`, the timestamp in
/// `X-Slack-Request-Timestamp`.
pub(super) fn slack(
    request: &RequestParts<'_>,
    secrets: &[Secret],
    tolerance_seconds: u64,
    now: DateTime<Utc>,
) -> Result<Authenticated, AuthFailure> {
    const SIGNATURE: &str = "X-Slack-Signature";
    const TIMESTAMP: &str = "X-Slack-Request-Timestamp";
    let signature = single_header(request.headers, SIGNATURE)?;
    let timestamp = header_text(single_header(request.headers, TIMESTAMP)?, TIMESTAMP)?;
    let digest = signature.strip_prefix(b"v0=").ok_or_else(|| {
        AuthFailure::Malformed(format!("header {SIGNATURE} must start with \"v0=\""))
    })?;
    let digest = Encoding::Hex.decode(digest, Algorithm::Sha256, &format!("header {SIGNATURE}"))?;
    check_timestamp(
        timestamp,
        1,
        tolerance_seconds,
        now,
        &format!("header {TIMESTAMP}"),
    )?;
    signed(
        secrets,
        &[b"v0:", timestamp.as_bytes(), b":", request.body],
        &[digest],
        Authenticated::default(),
    )
}

/// `X-Zendesk-Webhook-Signature: <base64>` over `<timestamp><body>`, the timestamp (RFC 3339)
/// in `X-Zendesk-Webhook-Signature-Timestamp`. The delivery is
/// `X-Zendesk-Webhook-Invocation-Id`; `X-Zendesk-Webhook-Id` names the webhook, not the
/// delivery.
pub(super) fn zendesk(
    request: &RequestParts<'_>,
    secrets: &[Secret],
    tolerance_seconds: u64,
    now: DateTime<Utc>,
) -> Result<Authenticated, AuthFailure> {
    const SIGNATURE: &str = "X-Zendesk-Webhook-Signature";
    const TIMESTAMP: &str = "X-Zendesk-Webhook-Signature-Timestamp";
    let signature = single_header(request.headers, SIGNATURE)?;
    let timestamp = header_text(single_header(request.headers, TIMESTAMP)?, TIMESTAMP)?;
    let digest =
        Encoding::Base64.decode(signature, Algorithm::Sha256, &format!("header {SIGNATURE}"))?;
    let at = DateTime::parse_from_rfc3339(timestamp).map_err(|_| {
        AuthFailure::Malformed(format!("header {TIMESTAMP} must be an RFC 3339 time"))
    })?;
    check_timestamp(
        &at.timestamp().to_string(),
        1,
        tolerance_seconds,
        now,
        TIMESTAMP,
    )?;
    let delivery_id =
        super::common::delivery_id_header(request.headers, "X-Zendesk-Webhook-Invocation-Id")?;
    signed(
        secrets,
        &[timestamp.as_bytes(), request.body],
        &[digest],
        Authenticated {
            delivery_id,
            delivery_id_field: None,
        },
    )
}

/// HubSpot's v3: `X-HubSpot-Signature-v3: <base64>` over method + URI + body + timestamp,
/// the timestamp in milliseconds in `X-HubSpot-Request-Timestamp`. The URI is the one HubSpot
/// posted to: the public base URL, the path and the query. HubSpot's documentation has the
/// receiver decode percent-escapes in it, while its SDKs sign the URI as given, so both are
/// accepted.
pub(super) fn hubspot(
    request: &RequestParts<'_>,
    secrets: &[Secret],
    tolerance_seconds: u64,
    now: DateTime<Utc>,
    public_base_url: Option<&str>,
) -> Result<Authenticated, AuthFailure> {
    const SIGNATURE: &str = "X-HubSpot-Signature-v3";
    const TIMESTAMP: &str = "X-HubSpot-Request-Timestamp";
    let signature = single_header(request.headers, SIGNATURE)?;
    let timestamp = header_text(single_header(request.headers, TIMESTAMP)?, TIMESTAMP)?;
    let digest =
        Encoding::Base64.decode(signature, Algorithm::Sha256, &format!("header {SIGNATURE}"))?;
    check_timestamp(
        timestamp,
        1000,
        tolerance_seconds,
        now,
        &format!("header {TIMESTAMP}"),
    )?;
    let base = public_base_url.ok_or(AuthFailure::NotConfigured(
        "HubSpot signs the URL it posts to: set the connector's publicBaseUrl or the server's public base URL",
    ))?;
    let mut uri = format!("{}{}", base.trim_end_matches('/'), request.path);
    if !request.query.is_empty() {
        uri.push('?');
        uri.push_str(request.query);
    }
    let decoded = percent_decode(&uri);
    let keys: Vec<&[u8]> = secret_keys(secrets).collect();
    let mut matched = false;
    for uri in [Some(uri.as_bytes()), decoded.as_deref()]
        .into_iter()
        .flatten()
    {
        matched |= any_matches(
            keys.iter().copied(),
            Algorithm::Sha256,
            &[
                request.method.as_bytes(),
                uri,
                request.body,
                timestamp.as_bytes(),
            ],
            std::slice::from_ref(&digest),
        );
    }
    if matched {
        Ok(Authenticated::default())
    } else {
        Err(AuthFailure::WrongCredentials)
    }
}

/// `text` with its percent-escapes decoded, when it has any.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    if !text.contains('%') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    Some(out)
}

fn signed(
    secrets: &[Secret],
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
    authenticated: Authenticated,
) -> Result<Authenticated, AuthFailure> {
    if any_matches(secret_keys(secrets), Algorithm::Sha256, parts, candidates) {
        Ok(authenticated)
    } else {
        Err(AuthFailure::WrongCredentials)
    }
}
