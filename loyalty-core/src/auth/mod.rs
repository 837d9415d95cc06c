//! Connector authentication: a token in a query parameter or a header, an HMAC of the body
//! (`hubSignature`, and the senders that sign so: GitHub, Shopify, Typeform, WooCommerce,
//! Segment), the timestamped schemes of Stripe, Slack, HubSpot and Zendesk, and Standard
//! Webhooks (Svix). Every comparison is constant-time, every secret of a connector is tried
//! (so that secrets rotate), and signatures are computed over the raw body bytes exactly as
//! received.
//!
//! One file a family: `spec` (as written, stored and shown), `common` (headers, HMACs,
//! digests, timestamps), `body` (an HMAC of the body in one header), `timestamped` (a signed
//! timestamp beside the body), `standard` (Standard Webhooks).

mod body;
mod common;
mod spec;
mod standard;
#[cfg(test)]
mod tests;
mod timestamped;

pub use common::{Algorithm, Encoding};
pub use spec::{
    AuthSpec, AuthView, ConnectorAuth, GeneratedCredentials, SenderKind, SenderView,
    DEFAULT_QUERY_PARAM, DEFAULT_SIGNATURE_HEADER, DEFAULT_TOKEN_HEADER, DEFAULT_TOLERANCE_SECONDS,
};
pub use standard::{sign_standard_webhooks, standard_webhooks_signature};

use chrono::{DateTime, Utc};
use common::{single_header, single_query_value};

/// What a successful authentication adds to the request: where the items' default
/// `clientEventId` (the sender's delivery id) comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authenticated {
    /// A delivery id from a header (`webhook-id`, `X-GitHub-Delivery`, …): the default
    /// `clientEventId` of a single item, `<id>:<index>` for the items of a bulk.
    pub delivery_id: Option<String>,
    /// The body field that carries each item's own delivery id (Stripe's `id`, Typeform's
    /// `event_id`, Segment's `messageId`).
    pub delivery_id_field: Option<&'static str>,
}

/// Why a request was not authenticated. The messages say which check failed and what was
/// wrong with the request's shape, never what the right value would have been.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("the credential {0} is missing")]
    Missing(String),
    #[error("the credential {0} is given more than once")]
    Duplicated(String),
    #[error("the signature header is malformed: {0}")]
    Malformed(String),
    #[error("the credentials are wrong")]
    WrongCredentials,
    #[error("the webhook timestamp is outside the tolerance of {0} seconds")]
    OutsideTolerance(u64),
    /// The connector cannot verify anything yet (HubSpot's scheme without a public URL).
    #[error("the connector is not configured to verify this scheme: {0}")]
    NotConfigured(&'static str),
}

impl AuthFailure {
    /// A short machine label, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthFailure::Missing(_) => "missing",
            AuthFailure::Duplicated(_) => "duplicated",
            AuthFailure::Malformed(_) => "malformed",
            AuthFailure::WrongCredentials => "wrong",
            AuthFailure::OutsideTolerance(_) => "timestamp",
            AuthFailure::NotConfigured(_) => "not_configured",
        }
    }
}

/// The parts of an HTTP request that authentication looks at, without knowing HTTP.
#[derive(Clone, Copy, Debug)]
pub struct RequestParts<'a> {
    /// The method, upper case (`POST`).
    pub method: &'a str,
    /// The path as the server received it, without the query (`/v1/incoming/con_…`).
    pub path: &'a str,
    /// The raw query string, without the `?`.
    pub query: &'a str,
    /// Header names (any case) and raw values, in the order received.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body exactly as received.
    pub body: &'a [u8],
    /// Scheme, host and any prefix the sender put before `path` (`https://loyalty.example`):
    /// schemes that sign the URL (HubSpot's) need it, since a proxy may stand between.
    pub public_base_url: Option<&'a str>,
}

impl<'a> RequestParts<'a> {
    /// A `POST` to `path` with no public base URL.
    pub fn post(
        path: &'a str,
        query: &'a str,
        headers: &'a [(&'a str, &'a [u8])],
        body: &'a [u8],
    ) -> Self {
        RequestParts {
            method: "POST",
            path,
            query,
            headers,
            body,
            public_base_url: None,
        }
    }
}

impl ConnectorAuth {
    /// Checks one request. On success, says where the items' default `clientEventId` comes
    /// from. `public_base_url` in `request` is used only where the connector has none.
    pub fn verify(
        &self,
        request: &RequestParts<'_>,
        now: DateTime<Utc>,
    ) -> Result<Authenticated, AuthFailure> {
        match self {
            ConnectorAuth::QueryToken { param, token_hash } => {
                let token = single_query_value(request.query, param)?;
                if token_hash.matches(token.as_bytes()) {
                    Ok(Authenticated::default())
                } else {
                    Err(AuthFailure::WrongCredentials)
                }
            }
            ConnectorAuth::HeaderToken { header, token_hash } => {
                let token = single_header(request.headers, header)?;
                if token_hash.matches(token) {
                    Ok(Authenticated::default())
                } else {
                    Err(AuthFailure::WrongCredentials)
                }
            }
            ConnectorAuth::HubSignature {
                header,
                secrets,
                algorithm,
                encoding,
                prefix,
                delivery_id_header,
            } => body::verify(
                request,
                secrets,
                &body::BodySignature {
                    header,
                    algorithm: *algorithm,
                    encoding: *encoding,
                    prefix: &spec::hub_prefix(*algorithm, prefix.as_deref()),
                    delivery: match delivery_id_header {
                        Some(name) => body::Delivery::Header(name),
                        None => body::Delivery::None,
                    },
                },
            ),
            ConnectorAuth::StandardWebhooks {
                secrets,
                tolerance_seconds,
            } => standard::verify(request, secrets, *tolerance_seconds, now),
            ConnectorAuth::Sender {
                sender,
                secrets,
                tolerance_seconds,
                public_base_url,
            } => {
                let tolerance = tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS);
                match sender {
                    SenderKind::Stripe => timestamped::stripe(request, secrets, tolerance, now),
                    SenderKind::Slack => timestamped::slack(request, secrets, tolerance, now),
                    SenderKind::Zendesk => timestamped::zendesk(request, secrets, tolerance, now),
                    SenderKind::Hubspot => {
                        let base = public_base_url.as_deref().or(request.public_base_url);
                        timestamped::hubspot(request, secrets, tolerance, now, base)
                    }
                    body_sender => body::verify(
                        request,
                        secrets,
                        &body::BodySignature::of(*body_sender)
                            .expect("every other sender signs the body alone"),
                    ),
                }
            }
        }
    }
}

/// `prefix` + the HMAC of `body` under `secret`, encoded: the header value a sender that
/// signs the body alone computes (`hubSignature` and the senders that sign so).
pub fn body_signature(
    algorithm: Algorithm,
    encoding: Encoding,
    prefix: &str,
    secret: &str,
    body: &[u8],
) -> String {
    format!(
        "{prefix}{}",
        encoding.encode(&algorithm.hmac(secret.as_bytes(), &[body]))
    )
}

/// `sha256=` + lowercase hex HMAC-SHA256 of `body`: the hub signature a sender computes.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    body_signature(Algorithm::Sha256, Encoding::Hex, "sha256=", secret, body)
}
