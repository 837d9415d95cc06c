//! Connector authentication: a token in a query parameter, a token in a header, a GitHub-style
//! hub signature, or Standard Webhooks. Every comparison is constant-time, and signatures are
//! computed over the raw body bytes exactly as received.

use crate::error::{Error, Result};
use crate::secret::{generate_token, random_bytes_32, Secret, TokenHash};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const DEFAULT_QUERY_PARAM: &str = "token";
pub const DEFAULT_TOKEN_HEADER: &str = "X-Authorization";
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
const MAX_SECRETS: usize = 10;
const MAX_SECRET_LEN: usize = 512;

/// Authentication as an admin writes it (docs/http-api.md). Left-out tokens and secrets are
/// generated (new connector) or kept (replacement).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum AuthSpec {
    #[serde(rename_all = "camelCase")]
    QueryToken {
        param: Option<String>,
        token: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    HeaderToken {
        header: Option<String>,
        token: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    HubSignature {
        header: Option<String>,
        algorithm: Option<String>,
        secrets: Option<Vec<String>>,
    },
    #[serde(rename_all = "camelCase")]
    StandardWebhooks {
        secrets: Option<Vec<String>>,
        tolerance_seconds: Option<u64>,
    },
}

impl AuthSpec {
    /// A token in the query string (`?param=token`).
    pub fn query_token(param: impl Into<String>, token: impl Into<String>) -> Self {
        AuthSpec::QueryToken {
            param: Some(param.into()),
            token: Some(token.into()),
        }
    }

    /// A token in a header.
    pub fn header_token(header: impl Into<String>, token: impl Into<String>) -> Self {
        AuthSpec::HeaderToken {
            header: Some(header.into()),
            token: Some(token.into()),
        }
    }

    /// An HMAC-SHA256 signature of the raw body, `sha256=<hex>` in `X-Hub-Signature-256`.
    pub fn hub_signature(secrets: impl IntoIterator<Item = String>) -> Self {
        AuthSpec::HubSignature {
            header: None,
            algorithm: None,
            secrets: Some(secrets.into_iter().collect()),
        }
    }

    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    pub fn standard_webhooks(secrets: impl IntoIterator<Item = String>) -> Self {
        AuthSpec::StandardWebhooks {
            secrets: Some(secrets.into_iter().collect()),
            tolerance_seconds: None,
        }
    }
}

/// Authentication as stored: tokens only as hashes; HMAC keys (which must be kept to verify)
/// as [`Secret`]s that never print.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ConnectorAuth {
    #[serde(rename_all = "camelCase")]
    QueryToken {
        param: String,
        token_hash: TokenHash,
    },
    #[serde(rename_all = "camelCase")]
    HeaderToken {
        header: String,
        token_hash: TokenHash,
    },
    #[serde(rename_all = "camelCase")]
    HubSignature {
        header: String,
        secrets: Vec<Secret>,
    },
    #[serde(rename_all = "camelCase")]
    StandardWebhooks {
        secrets: Vec<Secret>,
        tolerance_seconds: u64,
    },
}

/// What responses show of a connector's authentication: never a token or a secret.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AuthView {
    QueryToken {
        param: String,
    },
    HeaderToken {
        header: String,
    },
    #[serde(rename_all = "camelCase")]
    HubSignature {
        header: String,
        algorithm: &'static str,
        secret_count: usize,
    },
    #[serde(rename_all = "camelCase")]
    StandardWebhooks {
        tolerance_seconds: u64,
        secret_count: usize,
    },
}

/// Tokens and secrets the engine generated because the admin left them out: returned once,
/// in the creation response, and never again.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedCredentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<String>>,
}

impl GeneratedCredentials {
    pub fn is_empty(&self) -> bool {
        self.token.is_none() && self.secrets.is_none()
    }
}

impl ConnectorAuth {
    /// Builds the stored form of `spec`. Where a token or the secrets are left out, the
    /// `previous` ones are kept if they are of the same scheme, else new ones are generated.
    pub(crate) fn from_spec(
        spec: AuthSpec,
        previous: Option<&ConnectorAuth>,
    ) -> Result<(ConnectorAuth, GeneratedCredentials)> {
        let mut generated = GeneratedCredentials::default();
        let auth = match spec {
            AuthSpec::QueryToken { param, token } => {
                let param = name_or_default(param, DEFAULT_QUERY_PARAM, "/auth/param")?;
                let token_hash = match (token, previous) {
                    (Some(token), _) => TokenHash::of(&check_token(&token, "/auth/token")?),
                    (None, Some(ConnectorAuth::QueryToken { token_hash, .. }))
                    | (None, Some(ConnectorAuth::HeaderToken { token_hash, .. })) => {
                        token_hash.clone()
                    }
                    (None, _) => {
                        let token = generate_token("");
                        let hash = TokenHash::of(&token);
                        generated.token = Some(token);
                        hash
                    }
                };
                ConnectorAuth::QueryToken { param, token_hash }
            }
            AuthSpec::HeaderToken { header, token } => {
                let header = name_or_default(header, DEFAULT_TOKEN_HEADER, "/auth/header")?;
                check_header_name(&header, "/auth/header")?;
                let token_hash = match (token, previous) {
                    (Some(token), _) => TokenHash::of(&check_token(&token, "/auth/token")?),
                    (None, Some(ConnectorAuth::QueryToken { token_hash, .. }))
                    | (None, Some(ConnectorAuth::HeaderToken { token_hash, .. })) => {
                        token_hash.clone()
                    }
                    (None, _) => {
                        let token = generate_token("");
                        let hash = TokenHash::of(&token);
                        generated.token = Some(token);
                        hash
                    }
                };
                ConnectorAuth::HeaderToken { header, token_hash }
            }
            AuthSpec::HubSignature {
                header,
                algorithm,
                secrets,
            } => {
                let header = name_or_default(header, DEFAULT_SIGNATURE_HEADER, "/auth/header")?;
                check_header_name(&header, "/auth/header")?;
                if let Some(algorithm) = algorithm {
                    if !algorithm.eq_ignore_ascii_case("sha256") {
                        return Err(Error::invalid(
                            "/auth/algorithm",
                            format!(
                                "unsupported algorithm {algorithm:?}: only \"sha256\" is supported"
                            ),
                        ));
                    }
                }
                let secrets = match (secrets, previous) {
                    (Some(secrets), _) => check_secrets(secrets, false)?,
                    (None, Some(ConnectorAuth::HubSignature { secrets, .. })) => secrets.clone(),
                    (None, _) => {
                        let secret = hex::encode(random_bytes_32());
                        generated.secrets = Some(vec![secret.clone()]);
                        vec![Secret::new(secret)]
                    }
                };
                ConnectorAuth::HubSignature { header, secrets }
            }
            AuthSpec::StandardWebhooks {
                secrets,
                tolerance_seconds,
            } => {
                let tolerance_seconds = tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS);
                if tolerance_seconds == 0 || tolerance_seconds > 86_400 {
                    return Err(Error::invalid(
                        "/auth/toleranceSeconds",
                        "toleranceSeconds must be between 1 and 86400",
                    ));
                }
                let secrets = match (secrets, previous) {
                    (Some(secrets), _) => check_secrets(secrets, true)?,
                    (None, Some(ConnectorAuth::StandardWebhooks { secrets, .. })) => {
                        secrets.clone()
                    }
                    (None, _) => {
                        let secret = format!("whsec_{}", BASE64.encode(random_bytes_32()));
                        generated.secrets = Some(vec![secret.clone()]);
                        vec![Secret::new(secret)]
                    }
                };
                ConnectorAuth::StandardWebhooks {
                    secrets,
                    tolerance_seconds,
                }
            }
        };
        Ok((auth, generated))
    }

    pub fn view(&self) -> AuthView {
        match self {
            ConnectorAuth::QueryToken { param, .. } => AuthView::QueryToken {
                param: param.clone(),
            },
            ConnectorAuth::HeaderToken { header, .. } => AuthView::HeaderToken {
                header: header.clone(),
            },
            ConnectorAuth::HubSignature { header, secrets } => AuthView::HubSignature {
                header: header.clone(),
                algorithm: "sha256",
                secret_count: secrets.len(),
            },
            ConnectorAuth::StandardWebhooks {
                secrets,
                tolerance_seconds,
            } => AuthView::StandardWebhooks {
                tolerance_seconds: *tolerance_seconds,
                secret_count: secrets.len(),
            },
        }
    }

    /// The name of the scheme, for logs and metrics.
    pub fn scheme(&self) -> &'static str {
        match self {
            ConnectorAuth::QueryToken { .. } => "queryToken",
            ConnectorAuth::HeaderToken { .. } => "headerToken",
            ConnectorAuth::HubSignature { .. } => "hubSignature",
            ConnectorAuth::StandardWebhooks { .. } => "standardWebhooks",
        }
    }

    /// The query parameter that carries a secret, so that logs can redact it.
    pub fn secret_query_param(&self) -> Option<&str> {
        match self {
            ConnectorAuth::QueryToken { param, .. } => Some(param),
            _ => None,
        }
    }

    /// Checks one request. On success, says what the scheme contributes to the items (the
    /// Standard Webhooks message id, the default `clientEventId`).
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
            ConnectorAuth::HubSignature { header, secrets } => {
                let value = single_header(request.headers, header)?;
                let digest = parse_hub_signature(value)?;
                let matched = secrets.iter().fold(false, |matched, secret| {
                    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
                        .expect("HMAC accepts keys of any length");
                    mac.update(request.body);
                    // verify_slice is constant-time; every secret is tried so that the time
                    // taken does not say which one matched.
                    mac.verify_slice(&digest).is_ok() | matched
                });
                if matched {
                    Ok(Authenticated::default())
                } else {
                    Err(AuthFailure::WrongCredentials)
                }
            }
            ConnectorAuth::StandardWebhooks {
                secrets,
                tolerance_seconds,
            } => verify_standard_webhooks(request, secrets, *tolerance_seconds, now),
        }
    }
}

/// What a successful authentication adds to the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authenticated {
    /// Standard Webhooks' `webhook-id`: the default `clientEventId` of the items.
    pub message_id: Option<String>,
}

/// Why a request was not authenticated. The messages say what was wrong with the request's
/// shape, never what the right value would have been.
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
        }
    }
}

/// The parts of an HTTP request that authentication looks at, without knowing HTTP.
#[derive(Clone, Copy, Debug)]
pub struct RequestParts<'a> {
    /// The raw query string, without the `?`.
    pub query: &'a str,
    /// Header names (any case) and raw values, in the order received.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body exactly as received.
    pub body: &'a [u8],
}

fn single_query_value(query: &str, param: &str) -> Result<String, AuthFailure> {
    let mut found = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == param {
            if found.is_some() {
                return Err(AuthFailure::Duplicated(format!(
                    "query parameter {param:?}"
                )));
            }
            found = Some(value.into_owned());
        }
    }
    match found {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(AuthFailure::Missing(format!("query parameter {param:?}"))),
    }
}

fn single_header<'a>(headers: &[(&str, &'a [u8])], name: &str) -> Result<&'a [u8], AuthFailure> {
    let mut found = None;
    for (header, value) in headers {
        if header.eq_ignore_ascii_case(name) {
            if found.is_some() {
                return Err(AuthFailure::Duplicated(format!("header {name}")));
            }
            found = Some(*value);
        }
    }
    match found {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(AuthFailure::Missing(format!("header {name}"))),
    }
}

fn parse_hub_signature(value: &[u8]) -> Result<Vec<u8>, AuthFailure> {
    let hex_digest = value.strip_prefix(b"sha256=").ok_or_else(|| {
        AuthFailure::Malformed("expected sha256=<64 lowercase hex digits>".into())
    })?;
    if hex_digest.len() != 64
        || !hex_digest
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(AuthFailure::Malformed(
            "expected sha256=<64 lowercase hex digits>".into(),
        ));
    }
    hex::decode(hex_digest).map_err(|_| AuthFailure::Malformed("not hex".into()))
}

/// The key of a Standard Webhooks secret: the base64 after `whsec_`.
fn standard_webhooks_key(secret: &Secret) -> Option<Vec<u8>> {
    let encoded = secret.expose();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    BASE64.decode(encoded).ok()
}

fn verify_standard_webhooks(
    request: &RequestParts<'_>,
    secrets: &[Secret],
    tolerance_seconds: u64,
    now: DateTime<Utc>,
) -> Result<Authenticated, AuthFailure> {
    let id = single_header(request.headers, "webhook-id")?;
    let timestamp = single_header(request.headers, "webhook-timestamp")?;
    let signatures = single_header(request.headers, "webhook-signature")?;
    let id = std::str::from_utf8(id)
        .ok()
        .filter(|id| id.len() <= 256 && !id.contains('.'))
        .ok_or_else(|| {
            AuthFailure::Malformed(
                "webhook-id must be text of at most 256 bytes without '.'".into(),
            )
        })?;
    let timestamp_text = std::str::from_utf8(timestamp).unwrap_or("");
    let seconds: i64 = timestamp_text
        .parse()
        .map_err(|_| AuthFailure::Malformed("webhook-timestamp must be integer seconds".into()))?;
    if now.timestamp().abs_diff(seconds) > tolerance_seconds {
        return Err(AuthFailure::OutsideTolerance(tolerance_seconds));
    }
    let signatures = std::str::from_utf8(signatures)
        .map_err(|_| AuthFailure::Malformed("webhook-signature is not text".into()))?;
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
    let mut matched = false;
    for secret in secrets {
        let Some(key) = standard_webhooks_key(secret) else {
            continue;
        };
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_text.as_bytes());
        mac.update(b".");
        mac.update(request.body);
        for candidate in &candidates {
            matched |= mac.clone().verify_slice(candidate).is_ok();
        }
    }
    if matched {
        Ok(Authenticated {
            message_id: Some(id.to_owned()),
        })
    } else {
        Err(AuthFailure::WrongCredentials)
    }
}

/// `sha256=` + lowercase hex HMAC-SHA256 of `body`: the hub signature a sender computes.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `v1,<base64>`: the Standard Webhooks signature a sender computes.
pub fn standard_webhooks_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    let key = standard_webhooks_key(&Secret::new(secret))?;
    let mut mac = HmacSha256::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

fn name_or_default(name: Option<String>, default: &str, path: &str) -> Result<String> {
    match name {
        None => Ok(default.to_owned()),
        Some(name) if !name.trim().is_empty() && name.len() <= 128 => Ok(name.trim().to_owned()),
        Some(_) => Err(Error::invalid(
            path,
            "must be a non-empty name of at most 128 characters",
        )),
    }
}

fn check_header_name(name: &str, path: &str) -> Result<()> {
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            path,
            format!("{name:?} is not a valid HTTP header name"),
        ))
    }
}

/// Any length from 1 byte: the sender's system may impose its own token (the documentation's
/// example is `s3cret`); a token left out is generated, long and random.
fn check_token(token: &str, path: &str) -> Result<String> {
    if token.is_empty() || token.len() > MAX_SECRET_LEN {
        return Err(Error::invalid(path, "a token must be 1 to 512 bytes long"));
    }
    Ok(token.to_owned())
}

fn check_secrets(secrets: Vec<String>, standard_webhooks: bool) -> Result<Vec<Secret>> {
    if secrets.is_empty() || secrets.len() > MAX_SECRETS {
        return Err(Error::invalid("/auth/secrets", "give 1 to 10 secrets"));
    }
    secrets
        .into_iter()
        .enumerate()
        .map(|(index, secret)| {
            let path = format!("/auth/secrets/{index}");
            // As for tokens: the sender's platform may have chosen a short one.
            if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
                return Err(Error::invalid(path, "a secret must be 1 to 512 bytes long"));
            }
            let secret = Secret::new(secret);
            if standard_webhooks && standard_webhooks_key(&secret).is_none_or(|key| key.is_empty())
            {
                return Err(Error::invalid(
                    path,
                    "a Standard Webhooks secret is whsec_ followed by base64",
                ));
            }
            Ok(secret)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn parts<'a>(
        query: &'a str,
        headers: &'a [(&'a str, &'a [u8])],
        body: &'a [u8],
    ) -> RequestParts<'a> {
        RequestParts {
            query,
            headers,
            body,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_614_265_330, 0).unwrap()
    }

    #[test]
    fn github_published_vector() {
        assert_eq!(
            hub_signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let auth = ConnectorAuth::HubSignature {
            header: DEFAULT_SIGNATURE_HEADER.into(),
            secrets: vec![
                Secret::new("old secret"),
                Secret::new("It's a Secret to Everybody"),
            ],
        };
        let signature = b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let headers = [("x-hub-signature-256", &signature[..])];
        assert!(auth
            .verify(&parts("", &headers, b"Hello, World!"), now())
            .is_ok());
        assert_eq!(
            auth.verify(&parts("", &headers, b"Hello, World! "), now()),
            Err(AuthFailure::WrongCredentials)
        );
        let upper = b"sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17";
        assert!(matches!(
            auth.verify(
                &parts("", &[("X-Hub-Signature-256", &upper[..])], b"Hello, World!"),
                now()
            ),
            Err(AuthFailure::Malformed(_))
        ));
        assert!(matches!(
            auth.verify(&parts("", &[], b"Hello, World!"), now()),
            Err(AuthFailure::Missing(_))
        ));
    }

    #[test]
    fn standard_webhooks_specification_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(
            standard_webhooks_signature(
                secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                body
            )
            .unwrap(),
            expected
        );
        let auth = ConnectorAuth::StandardWebhooks {
            secrets: vec![Secret::new(secret)],
            tolerance_seconds: 300,
        };
        let signature = format!("v1,bm90IGl0 {expected}");
        let headers = [
            ("webhook-id", &b"msg_p5jXN8AQM9LWM0D4loKWxJek"[..]),
            ("webhook-timestamp", &b"1614265330"[..]),
            ("webhook-signature", signature.as_bytes()),
        ];
        let ok = auth.verify(&parts("", &headers, body), now()).unwrap();
        assert_eq!(
            ok.message_id.as_deref(),
            Some("msg_p5jXN8AQM9LWM0D4loKWxJek")
        );
        let late = now() + chrono::Duration::seconds(301);
        assert_eq!(
            auth.verify(&parts("", &headers, body), late),
            Err(AuthFailure::OutsideTolerance(300))
        );
        let early = now() - chrono::Duration::seconds(301);
        assert_eq!(
            auth.verify(&parts("", &headers, body), early),
            Err(AuthFailure::OutsideTolerance(300))
        );
        assert_eq!(
            auth.verify(&parts("", &headers, br#"{"test":2432232314}"#), now()),
            Err(AuthFailure::WrongCredentials)
        );
    }

    #[test]
    fn query_token_single_exact_and_case_sensitive() {
        let auth = ConnectorAuth::QueryToken {
            param: "token".into(),
            token_hash: TokenHash::of("s3cret-token"),
        };
        let body = b"{}";
        assert!(auth
            .verify(&parts("token=s3cret-token&test=true", &[], body), now())
            .is_ok());
        assert!(auth
            .verify(&parts("token=s3cret%2Dtoken", &[], body), now())
            .is_ok());
        assert_eq!(
            auth.verify(&parts("token=S3CRET-TOKEN", &[], body), now()),
            Err(AuthFailure::WrongCredentials)
        );
        assert_eq!(
            auth.verify(&parts("token=s3cret-toke", &[], body), now()),
            Err(AuthFailure::WrongCredentials)
        );
        assert!(matches!(
            auth.verify(
                &parts("token=s3cret-token&token=s3cret-token", &[], body),
                now()
            ),
            Err(AuthFailure::Duplicated(_))
        ));
        assert!(matches!(
            auth.verify(&parts("", &[], body), now()),
            Err(AuthFailure::Missing(_))
        ));
    }

    #[test]
    fn header_token_any_case_name_once() {
        let auth = ConnectorAuth::HeaderToken {
            header: "X-Authorization".into(),
            token_hash: TokenHash::of("s3cret-token"),
        };
        assert!(auth
            .verify(
                &parts("", &[("x-authorization", &b"s3cret-token"[..])], b""),
                now()
            )
            .is_ok());
        assert!(matches!(
            auth.verify(
                &parts(
                    "",
                    &[
                        ("x-authorization", &b"s3cret-token"[..]),
                        ("X-Authorization", &b"s3cret-token"[..])
                    ],
                    b""
                ),
                now()
            ),
            Err(AuthFailure::Duplicated(_))
        ));
        assert_eq!(
            auth.verify(
                &parts("", &[("x-authorization", &b"wrong-token"[..])], b""),
                now()
            ),
            Err(AuthFailure::WrongCredentials)
        );
    }

    #[test]
    fn left_out_secrets_are_generated_once_and_kept_on_replace() {
        let spec = AuthSpec::QueryToken {
            param: None,
            token: None,
        };
        let (auth, generated) = ConnectorAuth::from_spec(spec.clone(), None).unwrap();
        let token = generated.token.unwrap();
        let query = format!("token={token}");
        assert!(auth.verify(&parts(&query, &[], b""), now()).is_ok());
        let (kept, generated_again) = ConnectorAuth::from_spec(spec, Some(&auth)).unwrap();
        assert!(generated_again.is_empty());
        assert!(kept.verify(&parts(&query, &[], b""), now()).is_ok());
        let debug = format!("{auth:?}");
        assert!(!debug.contains(&token));
    }
}
