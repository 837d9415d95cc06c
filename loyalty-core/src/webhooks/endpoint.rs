//! An endpoint as an admin writes it (`WebhookSpec`), as it is stored (`Webhook`, with its
//! secrets), and as it is shown (`WebhookView`, never a secret).

use super::target::TargetUrl;
use crate::error::{Error, Result};
use crate::ids::{ProgramId, WebhookId};
use crate::secret::{generate_standard_webhooks_secret, Secret};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest target URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// How long an old secret still signs after a rotation, unless told otherwise: a day, so that
/// receivers have time to take the new one.
pub const DEFAULT_ROTATION_GRACE_SECONDS: u64 = 24 * 3600;
/// The longest grace a rotation may give the old secret: a week.
pub const MAX_ROTATION_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// What an endpoint subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    /// A ledger entry changed a member's points (the stream's `ledger` message).
    #[serde(rename = "member.points_changed")]
    MemberPointsChanged,
    /// An item was logged, whatever its status (the stream's `event` message).
    #[serde(rename = "event.logged")]
    EventLogged,
}

impl EventKind {
    pub const ALL: [EventKind; 2] = [EventKind::MemberPointsChanged, EventKind::EventLogged];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MemberPointsChanged => "member.points_changed",
            EventKind::EventLogged => "event.logged",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// An endpoint as an admin writes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSpec {
    pub url: String,
    pub events: Vec<String>,
    /// A `whsec_` secret to sign with; one is generated (and shown once) when absent.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A secret rotation as an admin asks for it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotationSpec {
    /// The new secret; generated (and shown once) when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// How long the current secret keeps signing beside the new one.
    #[serde(default)]
    pub grace_seconds: Option<u64>,
}

/// One signing secret; an old one (after a rotation) until it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSecret {
    pub secret: Secret,
    /// `None` for the current secret.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub program_id: ProgramId,
    pub url: String,
    /// Sorted, without repeats.
    pub events: Vec<EventKind>,
    /// The current secret first, then old ones still in their grace period.
    pub secrets: Vec<WebhookSecret>,
    pub created_at: DateTime<Utc>,
    /// The feed position up to which the program's changes have been turned into deliveries
    /// (the feed's head when the endpoint was created: it gets what is committed after).
    pub dispatch_cursor: i64,
}

/// An endpoint as answered: everything but its secrets.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<EventKind>,
    pub created_at: DateTime<Utc>,
    /// When the old secrets of a rotation stop signing (none when there is no old secret).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl WebhookSpec {
    /// The checked endpoint and, if one was generated, its secret (to show once). The target's
    /// address is checked as far as the URL itself says (a literal address, `localhost`); a
    /// name is resolved and checked by the caller, which can do I/O.
    pub fn into_webhook(
        self,
        program: &ProgramId,
        allow_private: bool,
        now: DateTime<Utc>,
        dispatch_cursor: i64,
    ) -> Result<(Webhook, Option<Secret>)> {
        let url = TargetUrl::parse(&self.url).map_err(|message| Error::Invalid {
            path: "/url".into(),
            message,
        })?;
        if !allow_private {
            url.check_literal_host().map_err(|message| Error::Invalid {
                path: "/url".into(),
                message,
            })?;
        }
        let events = parse_events(&self.events)?;
        let (secret, generated) = secret_or_generated(self.secret, "/secret")?;
        let webhook = Webhook {
            id: WebhookId::generate(),
            program_id: program.clone(),
            url: url.as_str().to_owned(),
            events,
            secrets: vec![WebhookSecret {
                secret,
                expires_at: None,
            }],
            created_at: now,
            dispatch_cursor,
        };
        Ok((webhook, generated))
    }
}

fn parse_events(names: &[String]) -> Result<Vec<EventKind>> {
    if names.is_empty() {
        return Err(Error::Invalid {
            path: "/events".into(),
            message: "name at least one event: member.points_changed, event.logged".into(),
        });
    }
    let mut events = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let kind = EventKind::parse(name).ok_or_else(|| Error::Invalid {
            path: format!("/events/{index}"),
            message: "unknown event; the events are member.points_changed and event.logged".into(),
        })?;
        events.push(kind);
    }
    events.sort();
    events.dedup();
    Ok(events)
}

/// A secret as given (checked) or a new one (returned a second time, to show once).
fn secret_or_generated(given: Option<String>, path: &str) -> Result<(Secret, Option<Secret>)> {
    match given {
        Some(secret) => {
            let key = secret.strip_prefix("whsec_").and_then(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
            });
            match key {
                Some(key) if (24..=64).contains(&key.len()) => Ok((Secret::new(secret), None)),
                _ => Err(Error::Invalid {
                    path: path.into(),
                    message: "a webhook secret is whsec_ followed by the base64 of 24 to 64 bytes"
                        .into(),
                }),
            }
        }
        None => {
            let secret = generate_standard_webhooks_secret();
            Ok((secret.clone(), Some(secret)))
        }
    }
}

impl Webhook {
    pub fn view(&self, now: DateTime<Utc>) -> WebhookView {
        WebhookView {
            id: self.id.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            created_at: self.created_at,
            previous_secret_expires_at: self
                .signing_secrets(now)
                .filter_map(|secret| secret.expires_at)
                .max(),
        }
    }

    pub fn subscribes_to(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }

    /// The secrets that sign a message sent at `now`: the current one, and old ones whose
    /// grace has not ended.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> impl Iterator<Item = &WebhookSecret> {
        self.secrets
            .iter()
            .filter(move |secret| secret.expires_at.is_none_or(|end| end > now))
    }

    /// A new current secret: the current one signs beside it for the grace period, and old
    /// secrets whose grace has ended are dropped. Returns the new secret if it was generated.
    pub fn rotate(&mut self, spec: RotationSpec, now: DateTime<Utc>) -> Result<Option<Secret>> {
        let grace = spec.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECONDS);
        if grace > MAX_ROTATION_GRACE_SECONDS {
            return Err(Error::Invalid {
                path: "/graceSeconds".into(),
                message: format!("the grace is at most {MAX_ROTATION_GRACE_SECONDS} seconds"),
            });
        }
        let (secret, generated) = secret_or_generated(spec.secret, "/secret")?;
        let ends = now + Duration::seconds(grace as i64);
        let mut secrets = vec![WebhookSecret {
            secret,
            expires_at: None,
        }];
        for old in &self.secrets {
            let expires_at = match old.expires_at {
                None => ends,
                Some(end) => end.min(ends),
            };
            if expires_at > now {
                secrets.push(WebhookSecret {
                    secret: old.secret.clone(),
                    expires_at: Some(expires_at),
                });
            }
        }
        self.secrets = secrets;
        Ok(generated)
    }
}
