//! Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature` (several
//! space-separated `v1,<base64>`), an HMAC-SHA256 of `id.timestamp.body` under the base64 key
//! after `whsec_`. Svix, where the specification comes from, sends the same headers named
//! `svix-*`.

use super::common::{any_matches, check_timestamp, header_text, optional_header, Algorithm};
use super::{AuthFailure, Authenticated, RequestParts};
use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};

/// The key of a Standard Webhooks secret: the base64 after `whsec_`.
pub(crate) fn standard_webhooks_key(secret: &Secret) -> Option<Vec<u8>> {
    let encoded = secret.expose();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    BASE64.decode(encoded).ok()
}

pub(super) fn verify(
    request: &RequestParts<'_>,
    secrets: &[Secret],
    tolerance_seconds: u64,
    now: DateTime<Utc>,
) -> Result<Authenticated, AuthFailure> {
    // The `webhook-` names when any of them is there, else Svix's: one family, never a mix.
    let mut prefix = "webhook";
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        if optional_header(request.headers, name)?.is_some() {
            prefix = "webhook";
            break;
        }
        prefix = "svix";
    }
    let header = |suffix: &str| {
        let name = format!("{prefix}-{suffix}");
        optional_header(request.headers, &name)?
            .map(|value| (value, name.clone()))
            .ok_or(AuthFailure::Missing(format!("header {name}")))
    };
    let (id, id_name) = header("id")?;
    let (timestamp, timestamp_name) = header("timestamp")?;
    let (signatures, signature_name) = header("signature")?;
    let id = std::str::from_utf8(id)
        .ok()
        // It becomes a clientEventId: printable, as the stores keep text (no NUL in PostgreSQL).
        .filter(|id| id.len() <= 256 && !id.contains('.') && !id.chars().any(char::is_control))
        .ok_or_else(|| {
            AuthFailure::Malformed(format!(
                "{id_name} must be printable text of at most 256 bytes without '.'"
            ))
        })?;
    let timestamp_text = std::str::from_utf8(timestamp).unwrap_or("");
    check_timestamp(timestamp_text, 1, tolerance_seconds, now, &timestamp_name)?;
    let signatures = header_text(signatures, &signature_name)?;
    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .collect();
    if candidates.is_empty() {
        return Err(AuthFailure::Malformed(
            "expected v1,<base64> signatures".into(),
        ));
    }
    let keys: Vec<Vec<u8>> = secrets.iter().filter_map(standard_webhooks_key).collect();
    if any_matches(
        keys.iter().map(Vec::as_slice),
        Algorithm::Sha256,
        &signed_content(id, timestamp_text, request.body),
        &candidates,
    ) {
        Ok(Authenticated {
            delivery_id: Some(id.to_owned()),
            delivery_id_field: None,
        })
    } else {
        Err(AuthFailure::WrongCredentials)
    }
}

/// What a Standard Webhooks signature covers: `id.timestamp.body`. Verification (here) and
/// signing (our outbound webhooks) both use it, so they cannot disagree.
fn signed_content<'a>(id: &'a str, timestamp: &'a str, body: &'a [u8]) -> [&'a [u8]; 5] {
    [id.as_bytes(), b".", timestamp.as_bytes(), b".", body]
}

/// `v1,<base64>`: the Standard Webhooks signature a sender computes.
pub fn standard_webhooks_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    sign_standard_webhooks(&[Secret::new(secret)], id, timestamp, body)
}

/// The `webhook-signature` header of a message signed with every one of `secrets` (during a
/// rotation, the new secret and the old one): `v1,<base64>` entries separated by spaces, so
/// that a receiver that knows either secret accepts it. `None` if no secret is a valid
/// `whsec_` key.
pub fn sign_standard_webhooks(
    secrets: &[Secret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    let timestamp = timestamp.to_string();
    let signatures: Vec<String> = secrets
        .iter()
        .filter_map(standard_webhooks_key)
        .map(|key| {
            let digest = Algorithm::Sha256.hmac(&key, &signed_content(id, &timestamp, body));
            format!("v1,{}", BASE64.encode(digest))
        })
        .collect();
    (!signatures.is_empty()).then(|| signatures.join(" "))
}
