//! Programs: one loyalty program is one tenant. Nothing crosses programs.

use crate::error::{Error, Result};
use crate::ids::ProgramId;
use crate::secret::TokenHash;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const DEFAULT_IDENTIFIER_KIND: &str = "email";

/// A program as an admin creates it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgramSpec {
    pub name: String,
    pub default_identifier_kind: Option<String>,
    pub enroll_unknown_members: Option<bool>,
    /// Points of an award expire this long after its event (`null`: never).
    #[serde(default)]
    pub points_expiry: Option<PointsExpiry>,
}

/// The program's expiry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PointsExpiry {
    pub after_days: u32,
}

impl PointsExpiry {
    /// When points earned by an event at `occurred_at` expire.
    pub fn expires_at(self, occurred_at: DateTime<Utc>) -> DateTime<Utc> {
        occurred_at + chrono::Duration::days(i64::from(self.after_days))
    }
}

/// The longest expiry or pending delay: a hundred years.
pub const MAX_DAYS: u32 = 36_600;

/// A stored program.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Program {
    pub id: ProgramId,
    pub name: String,
    /// What `kind: "default"` in a mapped profile means.
    pub default_identifier_kind: String,
    /// Whether an unknown identifier enrols a new member (else the event is ignored).
    pub enroll_unknown_members: bool,
    pub points_expiry: Option<PointsExpiry>,
    /// The program's own admin token, only as a hash.
    #[serde(skip)]
    pub admin_token_hash: TokenHash,
    pub created_at: DateTime<Utc>,
}

impl ProgramSpec {
    pub(crate) fn validate(&self) -> Result<()> {
        check_name(&self.name, "/name")?;
        if let Some(expiry) = self.points_expiry {
            if expiry.after_days == 0 || expiry.after_days > MAX_DAYS {
                return Err(Error::invalid(
                    "/pointsExpiry/afterDays",
                    format!("afterDays must be between 1 and {MAX_DAYS}"),
                ));
            }
        }
        if let Some(kind) = &self.default_identifier_kind {
            crate::member::check_kind(kind)
                .map_err(|m| Error::invalid("/defaultIdentifierKind", m))?;
            if kind == "default" {
                return Err(Error::invalid(
                    "/defaultIdentifierKind",
                    "\"default\" cannot name itself",
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn check_name(name: &str, path: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid(path, "a name is 1 to 200 characters"));
    }
    Ok(())
}

/// A new admin token for `program`: `lpt_<programId>.<random>`. The token names its program,
/// so that a valid token used on another program is told apart (403) from a wrong one (401)
/// without any lookup by token.
pub(crate) fn program_token(program: &ProgramId) -> String {
    format!("lpt_{program}.{}", crate::secret::generate_token(""))
}

/// The program an admin token names, if it has the shape of one.
pub fn program_of_token(token: &str) -> Option<ProgramId> {
    let (program, secret) = token.strip_prefix("lpt_")?.split_once('.')?;
    (program.starts_with("prg_") && !secret.is_empty()).then(|| ProgramId::new(program))
}
