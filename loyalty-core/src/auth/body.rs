//! An HMAC of the body alone, in one header: `hubSignature` as configured, and the senders
//! whose scheme is a fixed case of it.

use super::common::{
    any_matches, delivery_id_header, secret_keys, single_header, Algorithm, Encoding,
};
use super::{AuthFailure, Authenticated, RequestParts, SenderKind};
use crate::secret::Secret;

/// Where a scheme's delivery id comes from.
#[derive(Clone, Copy, Debug)]
pub(super) enum Delivery<'a> {
    None,
    Header(&'a str),
    /// A field of each item of the body.
    BodyField(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct BodySignature<'a> {
    pub header: &'a str,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    pub prefix: &'a str,
    pub delivery: Delivery<'a>,
}

impl BodySignature<'static> {
    /// The senders whose scheme is an HMAC of the body alone, as each documents it.
    pub(super) fn of(sender: SenderKind) -> Option<Self> {
        let (header, algorithm, encoding, prefix, delivery) = match sender {
            SenderKind::Github => (
                "X-Hub-Signature-256",
                Algorithm::Sha256,
                Encoding::Hex,
                "sha256=",
                Delivery::Header("X-GitHub-Delivery"),
            ),
            SenderKind::Shopify => (
                "X-Shopify-Hmac-Sha256",
                Algorithm::Sha256,
                Encoding::Base64,
                "",
                Delivery::Header("X-Shopify-Webhook-Id"),
            ),
            SenderKind::Typeform => (
                "Typeform-Signature",
                Algorithm::Sha256,
                Encoding::Base64,
                "sha256=",
                Delivery::BodyField("event_id"),
            ),
            SenderKind::Woocommerce => (
                "X-WC-Webhook-Signature",
                Algorithm::Sha256,
                Encoding::Base64,
                "",
                Delivery::Header("X-WC-Webhook-Delivery-ID"),
            ),
            SenderKind::Segment => (
                "X-Signature",
                Algorithm::Sha1,
                Encoding::Hex,
                "",
                Delivery::BodyField("messageId"),
            ),
            _ => return None,
        };
        Some(BodySignature {
            header,
            algorithm,
            encoding,
            prefix,
            delivery,
        })
    }
}

pub(super) fn verify(
    request: &RequestParts<'_>,
    secrets: &[Secret],
    scheme: &BodySignature<'_>,
) -> Result<Authenticated, AuthFailure> {
    let value = single_header(request.headers, scheme.header)?;
    let digest = value
        .strip_prefix(scheme.prefix.as_bytes())
        .ok_or_else(|| {
            AuthFailure::Malformed(format!(
                "header {} must start with {:?}",
                scheme.header, scheme.prefix
            ))
        })?;
    let digest = scheme.encoding.decode(
        digest,
        scheme.algorithm,
        &format!("header {}", scheme.header),
    )?;
    // Read before the signature is checked, so that a doubled delivery header is refused
    // whatever the signature; it is used only once the signature holds.
    let mut authenticated = Authenticated::default();
    match scheme.delivery {
        Delivery::None => {}
        Delivery::Header(name) => {
            authenticated.delivery_id = delivery_id_header(request.headers, name)?
        }
        Delivery::BodyField(field) => authenticated.delivery_id_field = Some(field),
    }
    if any_matches(
        secret_keys(secrets),
        scheme.algorithm,
        &[request.body],
        &[digest],
    ) {
        Ok(authenticated)
    } else {
        Err(AuthFailure::WrongCredentials)
    }
}
