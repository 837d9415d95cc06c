//! Authentication as an admin writes it ([`AuthSpec`]), as it is stored ([`ConnectorAuth`]:
//! token hashes, secrets that never print) and as responses show it ([`AuthView`]).

use super::common::{Algorithm, Encoding};
use super::standard::standard_webhooks_key;
use crate::error::{Error, Result};
use crate::secret::{
    generate_standard_webhooks_secret, generate_token, random_bytes_32, Secret, TokenHash,
};
use serde::{Deserialize, Serialize};

pub const DEFAULT_QUERY_PARAM: &str = "token";
pub const DEFAULT_TOKEN_HEADER: &str = "X-Authorization";
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
const MAX_SECRETS: usize = 10;
const MAX_SECRET_LEN: usize = 512;
const MAX_TOLERANCE_SECONDS: u64 = 86_400;

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
    /// An HMAC of the body in one header, in any of the ways senders write it.
    #[serde(rename_all = "camelCase")]
    HubSignature {
        header: Option<String>,
        algorithm: Option<String>,
        encoding: Option<String>,
        /// Written before the digest; `<algorithm>=` when left out, `""` for none.
        prefix: Option<String>,
        /// The header that names the delivery (the default `clientEventId`).
        delivery_id_header: Option<String>,
        secrets: Option<Vec<String>>,
    },
    #[serde(rename_all = "camelCase")]
    StandardWebhooks {
        secrets: Option<Vec<String>>,
        tolerance_seconds: Option<u64>,
    },
    // The senders' own schemes: only secrets, and a tolerance for the timestamped.
    Github {
        secrets: Option<Vec<String>>,
    },
    Shopify {
        secrets: Option<Vec<String>>,
    },
    Typeform {
        secrets: Option<Vec<String>>,
    },
    Woocommerce {
        secrets: Option<Vec<String>>,
    },
    Segment {
        secrets: Option<Vec<String>>,
    },
    #[serde(rename_all = "camelCase")]
    Stripe {
        secrets: Option<Vec<String>>,
        tolerance_seconds: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    Slack {
        secrets: Option<Vec<String>>,
        tolerance_seconds: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    Hubspot {
        secrets: Option<Vec<String>>,
        tolerance_seconds: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    Zendesk {
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
            encoding: None,
            prefix: None,
            delivery_id_header: None,
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

    /// A sender's own scheme (`"github"`, `"stripe"`, …) with these secrets and the default
    /// tolerance; `None` for a name that is not one.
    pub fn sender(scheme: &str, secrets: impl IntoIterator<Item = String>) -> Option<Self> {
        let kind = SenderKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == scheme)?;
        Some(kind.spec(Some(secrets.into_iter().collect()), None))
    }

    /// The spec of scheme `scheme` with everything left out: what a template names.
    pub(crate) fn of_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "queryToken" => Some(AuthSpec::QueryToken {
                param: None,
                token: None,
            }),
            "headerToken" => Some(AuthSpec::HeaderToken {
                header: None,
                token: None,
            }),
            "hubSignature" => Some(AuthSpec::HubSignature {
                header: None,
                algorithm: None,
                encoding: None,
                prefix: None,
                delivery_id_header: None,
                secrets: None,
            }),
            "standardWebhooks" => Some(AuthSpec::StandardWebhooks {
                secrets: None,
                tolerance_seconds: None,
            }),
            _ => SenderKind::ALL
                .into_iter()
                .find(|kind| kind.as_str() == scheme)
                .map(|kind| kind.spec(None, None)),
        }
    }

    /// A sender's scheme as its kind, secrets and tolerance; `None` for the other schemes.
    fn sender_parts(&self) -> Option<SenderParts> {
        use AuthSpec as A;
        let (sender, secrets, tolerance_seconds) = match self {
            A::Github { secrets } => (SenderKind::Github, secrets, None),
            A::Shopify { secrets } => (SenderKind::Shopify, secrets, None),
            A::Typeform { secrets } => (SenderKind::Typeform, secrets, None),
            A::Woocommerce { secrets } => (SenderKind::Woocommerce, secrets, None),
            A::Segment { secrets } => (SenderKind::Segment, secrets, None),
            A::Stripe {
                secrets,
                tolerance_seconds,
            } => (SenderKind::Stripe, secrets, *tolerance_seconds),
            A::Slack {
                secrets,
                tolerance_seconds,
            } => (SenderKind::Slack, secrets, *tolerance_seconds),
            A::Hubspot {
                secrets,
                tolerance_seconds,
            } => (SenderKind::Hubspot, secrets, *tolerance_seconds),
            A::Zendesk {
                secrets,
                tolerance_seconds,
            } => (SenderKind::Zendesk, secrets, *tolerance_seconds),
            _ => return None,
        };
        Some(SenderParts {
            sender,
            secrets: secrets.clone(),
            tolerance_seconds,
        })
    }
}

struct SenderParts {
    sender: SenderKind,
    secrets: Option<Vec<String>>,
    tolerance_seconds: Option<u64>,
}

/// The senders whose scheme is fixed but for the secrets (and a tolerance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SenderKind {
    Github,
    Shopify,
    Typeform,
    Woocommerce,
    Segment,
    Stripe,
    Slack,
    Hubspot,
    Zendesk,
}

impl SenderKind {
    pub const ALL: [SenderKind; 9] = [
        SenderKind::Github,
        SenderKind::Shopify,
        SenderKind::Typeform,
        SenderKind::Woocommerce,
        SenderKind::Segment,
        SenderKind::Stripe,
        SenderKind::Slack,
        SenderKind::Hubspot,
        SenderKind::Zendesk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SenderKind::Github => "github",
            SenderKind::Shopify => "shopify",
            SenderKind::Typeform => "typeform",
            SenderKind::Woocommerce => "woocommerce",
            SenderKind::Segment => "segment",
            SenderKind::Stripe => "stripe",
            SenderKind::Slack => "slack",
            SenderKind::Hubspot => "hubspot",
            SenderKind::Zendesk => "zendesk",
        }
    }

    /// Whether the scheme signs a timestamp (and so has a tolerance).
    pub fn timestamped(self) -> bool {
        matches!(
            self,
            SenderKind::Stripe | SenderKind::Slack | SenderKind::Hubspot | SenderKind::Zendesk
        )
    }

    fn spec(self, secrets: Option<Vec<String>>, tolerance_seconds: Option<u64>) -> AuthSpec {
        use AuthSpec as A;
        match self {
            SenderKind::Github => A::Github { secrets },
            SenderKind::Shopify => A::Shopify { secrets },
            SenderKind::Typeform => A::Typeform { secrets },
            SenderKind::Woocommerce => A::Woocommerce { secrets },
            SenderKind::Segment => A::Segment { secrets },
            SenderKind::Stripe => A::Stripe {
                secrets,
                tolerance_seconds,
            },
            SenderKind::Slack => A::Slack {
                secrets,
                tolerance_seconds,
            },
            SenderKind::Hubspot => A::Hubspot {
                secrets,
                tolerance_seconds,
            },
            SenderKind::Zendesk => A::Zendesk {
                secrets,
                tolerance_seconds,
            },
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
    /// Stored before `algorithm`, `encoding`, `prefix` and `deliveryIdHeader` existed: their
    /// defaults are what such a connector verified.
    #[serde(rename_all = "camelCase")]
    HubSignature {
        header: String,
        secrets: Vec<Secret>,
        #[serde(default)]
        algorithm: Algorithm,
        #[serde(default)]
        encoding: Encoding,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery_id_header: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    StandardWebhooks {
        secrets: Vec<Secret>,
        tolerance_seconds: u64,
    },
    /// A sender's own scheme. HubSpot signs the URL it posted to: `public_base_url` is the
    /// connector's `publicBaseUrl`, kept here so that nothing else in the store changes.
    #[serde(rename_all = "camelCase")]
    Sender {
        sender: SenderKind,
        secrets: Vec<Secret>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tolerance_seconds: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_base_url: Option<String>,
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
        encoding: &'static str,
        prefix: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        delivery_id_header: Option<String>,
        secret_count: usize,
    },
    #[serde(rename_all = "camelCase")]
    StandardWebhooks {
        tolerance_seconds: u64,
        secret_count: usize,
    },
    #[serde(untagged)]
    Sender(SenderView),
}

/// A sender's scheme as responses show it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SenderView {
    #[serde(rename = "type")]
    pub sender: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
    pub secret_count: usize,
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
    /// `public_base_url` is the connector's, which HubSpot's scheme signs.
    pub(crate) fn from_spec(
        spec: AuthSpec,
        previous: Option<&ConnectorAuth>,
        public_base_url: Option<&str>,
    ) -> Result<(ConnectorAuth, GeneratedCredentials)> {
        let mut generated = GeneratedCredentials::default();
        if let Some(SenderParts {
            sender,
            secrets,
            tolerance_seconds,
        }) = spec.sender_parts()
        {
            let tolerance_seconds = if sender.timestamped() {
                Some(check_tolerance(tolerance_seconds)?)
            } else {
                None
            };
            let kept = match previous {
                Some(ConnectorAuth::Sender {
                    sender: previous_sender,
                    secrets,
                    ..
                }) if *previous_sender == sender => Some(secrets),
                _ => None,
            };
            let auth = ConnectorAuth::Sender {
                sender,
                secrets: secrets_or_hex(secrets, kept, &mut generated)?,
                tolerance_seconds,
                public_base_url: public_base_url.map(str::to_owned),
            };
            return Ok((auth, generated));
        }
        let previous_token = match previous {
            Some(ConnectorAuth::QueryToken { token_hash, .. })
            | Some(ConnectorAuth::HeaderToken { token_hash, .. }) => Some(token_hash),
            _ => None,
        };
        let mut token_hash = |token: Option<String>| -> Result<TokenHash> {
            Ok(match (token, previous_token) {
                (Some(token), _) => TokenHash::of(&check_token(&token, "/auth/token")?),
                (None, Some(hash)) => hash.clone(),
                (None, None) => {
                    let token = generate_token("");
                    let hash = TokenHash::of(&token);
                    generated.token = Some(token);
                    hash
                }
            })
        };
        let auth = match spec {
            AuthSpec::QueryToken { param, token } => ConnectorAuth::QueryToken {
                param: name_or_default(param, DEFAULT_QUERY_PARAM, "/auth/param")?,
                token_hash: token_hash(token)?,
            },
            AuthSpec::HeaderToken { header, token } => {
                let header = name_or_default(header, DEFAULT_TOKEN_HEADER, "/auth/header")?;
                check_header_name(&header, "/auth/header")?;
                ConnectorAuth::HeaderToken {
                    header,
                    token_hash: token_hash(token)?,
                }
            }
            AuthSpec::HubSignature {
                header,
                algorithm,
                encoding,
                prefix,
                delivery_id_header,
                secrets,
            } => {
                let header = name_or_default(header, DEFAULT_SIGNATURE_HEADER, "/auth/header")?;
                check_header_name(&header, "/auth/header")?;
                let algorithm = match algorithm {
                    None => Algorithm::Sha256,
                    Some(name) => Algorithm::parse(&name).ok_or_else(|| {
                        Error::invalid(
                            "/auth/algorithm",
                            format!("unsupported algorithm {name:?}: give sha1, sha256 or sha512"),
                        )
                    })?,
                };
                let encoding = match encoding {
                    None => Encoding::Hex,
                    Some(name) => Encoding::parse(&name).ok_or_else(|| {
                        Error::invalid(
                            "/auth/encoding",
                            format!("unsupported encoding {name:?}: give hex or base64"),
                        )
                    })?,
                };
                if let Some(prefix) = &prefix {
                    if prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(Error::invalid(
                            "/auth/prefix",
                            "a prefix is at most 64 visible ASCII characters",
                        ));
                    }
                }
                let delivery_id_header = delivery_id_header
                    .map(|name| {
                        let name = name_or_default(Some(name), "", "/auth/deliveryIdHeader")?;
                        check_header_name(&name, "/auth/deliveryIdHeader")?;
                        Ok::<_, Error>(name)
                    })
                    .transpose()?;
                let kept = match previous {
                    Some(ConnectorAuth::HubSignature { secrets, .. }) => Some(secrets),
                    _ => None,
                };
                ConnectorAuth::HubSignature {
                    header,
                    secrets: secrets_or_hex(secrets, kept, &mut generated)?,
                    algorithm,
                    encoding,
                    prefix,
                    delivery_id_header,
                }
            }
            AuthSpec::StandardWebhooks {
                secrets,
                tolerance_seconds,
            } => {
                let tolerance_seconds = check_tolerance(tolerance_seconds)?;
                let secrets = match (secrets, previous) {
                    (Some(secrets), _) => check_secrets(secrets, true)?,
                    (None, Some(ConnectorAuth::StandardWebhooks { secrets, .. })) => {
                        secrets.clone()
                    }
                    (None, _) => {
                        let secret = generate_standard_webhooks_secret();
                        generated.secrets = Some(vec![secret.expose().to_owned()]);
                        vec![secret]
                    }
                };
                ConnectorAuth::StandardWebhooks {
                    secrets,
                    tolerance_seconds,
                }
            }
            _ => unreachable!("the senders' schemes are built above"),
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
            ConnectorAuth::HubSignature {
                header,
                secrets,
                algorithm,
                encoding,
                prefix,
                delivery_id_header,
            } => AuthView::HubSignature {
                header: header.clone(),
                algorithm: algorithm.as_str(),
                encoding: encoding.as_str(),
                prefix: hub_prefix(*algorithm, prefix.as_deref()),
                delivery_id_header: delivery_id_header.clone(),
                secret_count: secrets.len(),
            },
            ConnectorAuth::StandardWebhooks {
                secrets,
                tolerance_seconds,
            } => AuthView::StandardWebhooks {
                tolerance_seconds: *tolerance_seconds,
                secret_count: secrets.len(),
            },
            ConnectorAuth::Sender {
                sender,
                secrets,
                tolerance_seconds,
                ..
            } => AuthView::Sender(SenderView {
                sender: sender.as_str(),
                tolerance_seconds: *tolerance_seconds,
                secret_count: secrets.len(),
            }),
        }
    }

    /// The name of the scheme, for logs and metrics.
    pub fn scheme(&self) -> &'static str {
        match self {
            ConnectorAuth::QueryToken { .. } => "queryToken",
            ConnectorAuth::HeaderToken { .. } => "headerToken",
            ConnectorAuth::HubSignature { .. } => "hubSignature",
            ConnectorAuth::StandardWebhooks { .. } => "standardWebhooks",
            ConnectorAuth::Sender { sender, .. } => sender.as_str(),
        }
    }

    /// The query parameter that carries a secret, so that logs can redact it.
    pub fn secret_query_param(&self) -> Option<&str> {
        match self {
            ConnectorAuth::QueryToken { param, .. } => Some(param),
            _ => None,
        }
    }

    /// The connector's own public base URL, where its scheme keeps one (HubSpot's).
    pub fn public_base_url(&self) -> Option<&str> {
        match self {
            ConnectorAuth::Sender {
                public_base_url, ..
            } => public_base_url.as_deref(),
            _ => None,
        }
    }
}

/// What a hub signature's digest follows: the prefix given, else `<algorithm>=`.
pub(crate) fn hub_prefix(algorithm: Algorithm, prefix: Option<&str>) -> String {
    prefix.map_or_else(|| format!("{}=", algorithm.as_str()), str::to_owned)
}

fn check_tolerance(tolerance_seconds: Option<u64>) -> Result<u64> {
    let tolerance_seconds = tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS);
    if tolerance_seconds == 0 || tolerance_seconds > MAX_TOLERANCE_SECONDS {
        return Err(Error::invalid(
            "/auth/toleranceSeconds",
            "toleranceSeconds must be between 1 and 86400",
        ));
    }
    Ok(tolerance_seconds)
}

/// The secrets given, else the `kept` ones, else one generated: 64 hex digits.
fn secrets_or_hex(
    secrets: Option<Vec<String>>,
    kept: Option<&Vec<Secret>>,
    generated: &mut GeneratedCredentials,
) -> Result<Vec<Secret>> {
    Ok(match (secrets, kept) {
        (Some(secrets), _) => check_secrets(secrets, false)?,
        (None, Some(secrets)) => secrets.clone(),
        (None, None) => {
            let secret = hex::encode(random_bytes_32());
            generated.secrets = Some(vec![secret.clone()]);
            vec![Secret::new(secret)]
        }
    })
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
