//! Members and their identifiers: kinds, `default`, normalisation.

use crate::ids::{MemberId, ProgramId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const MAX_VALUE_CHARS: usize = 256;

/// One identifier of a member, unique within its program.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    pub kind: String,
    pub value: String,
}

/// A member.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: MemberId,
    #[serde(skip)]
    pub program_id: ProgramId,
    pub identifiers: Vec<Identifier>,
    /// The sum of the member's ledger entries.
    pub balance: i64,
    /// Enrolled by a test event and not yet seen in a live one.
    pub test: bool,
    pub created_at: DateTime<Utc>,
}

/// Why an event names no usable member. Such events are `ignored`, and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoredReason {
    MissingIdentifier,
    InvalidIdentifier,
    UnknownMember,
    /// A refund whose purchase is not found (for the member it names, if it names one).
    UnknownOrder,
}

impl IgnoredReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoredReason::MissingIdentifier => "missing_identifier",
            IgnoredReason::InvalidIdentifier => "invalid_identifier",
            IgnoredReason::UnknownMember => "unknown_member",
            IgnoredReason::UnknownOrder => "unknown_order",
        }
    }
}

pub(crate) fn check_kind(kind: &str) -> Result<(), String> {
    let valid = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if valid {
        Ok(())
    } else {
        Err("an identifier kind is 1 to 64 letters, digits or _ - . :".into())
    }
}

/// Normalises the mapped `profile` into an identifier: `default` becomes the program's kind,
/// values are trimmed (an integer is taken as its decimal digits), emails are lower-cased and
/// must look like one.
pub fn normalize(profile: Option<&Value>, default_kind: &str) -> Result<Identifier, IgnoredReason> {
    let profile = match profile {
        None | Some(Value::Null) => return Err(IgnoredReason::MissingIdentifier),
        Some(Value::Object(profile)) => profile,
        Some(_) => return Err(IgnoredReason::InvalidIdentifier),
    };
    let kind = match profile.get("kind") {
        None | Some(Value::Null) => default_kind,
        Some(Value::String(kind)) => match kind.trim() {
            "" | "default" => default_kind,
            kind => kind,
        },
        Some(_) => return Err(IgnoredReason::InvalidIdentifier),
    };
    check_kind(kind).map_err(|_| IgnoredReason::InvalidIdentifier)?;
    let value = match profile.get("value") {
        None | Some(Value::Null) => return Err(IgnoredReason::MissingIdentifier),
        Some(Value::String(value)) => value.trim().to_owned(),
        Some(Value::Number(number)) => {
            integer_digits(number).ok_or(IgnoredReason::InvalidIdentifier)?
        }
        Some(_) => return Err(IgnoredReason::InvalidIdentifier),
    };
    if value.is_empty() {
        return Err(IgnoredReason::MissingIdentifier);
    }
    if value.chars().count() > MAX_VALUE_CHARS || value.chars().any(char::is_control) {
        return Err(IgnoredReason::InvalidIdentifier);
    }
    let value = if kind == "email" {
        let email = value.to_lowercase();
        if !looks_like_email(&email) {
            return Err(IgnoredReason::InvalidIdentifier);
        }
        email
    } else {
        value
    };
    Ok(Identifier {
        kind: kind.to_owned(),
        value,
    })
}

/// The decimal digits of an integral JSON number.
pub(crate) fn integer_digits(number: &serde_json::Number) -> Option<String> {
    if let Some(i) = number.as_i64() {
        return Some(i.to_string());
    }
    if let Some(u) = number.as_u64() {
        return Some(u.to_string());
    }
    let f = number.as_f64()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15)
        .then(|| format!("{}", f as i64))
}

fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && email.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == '<' || c == '>')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(profile: Value, expected: Result<(&str, &str), IgnoredReason>) {
        let got = normalize(Some(&profile), "email");
        let expected = expected.map(|(kind, value)| Identifier {
            kind: kind.into(),
            value: value.into(),
        });
        assert_eq!(got, expected, "profile {profile}");
    }

    #[test]
    fn normalisation() {
        check(
            json!({"kind": "default", "value": "  Ann@Example.COM "}),
            Ok(("email", "ann@example.com")),
        );
        check(
            json!({"value": "ann@example.com"}),
            Ok(("email", "ann@example.com")),
        );
        check(
            json!({"kind": "customerId", "value": 12345}),
            Ok(("customerId", "12345")),
        );
        check(
            json!({"kind": "customerId", "value": " AB-1 "}),
            Ok(("customerId", "AB-1")),
        );
        check(
            json!({"kind": "email", "value": ""}),
            Err(IgnoredReason::MissingIdentifier),
        );
        check(
            json!({"kind": "email", "value": "   "}),
            Err(IgnoredReason::MissingIdentifier),
        );
        check(
            json!({"kind": "email"}),
            Err(IgnoredReason::MissingIdentifier),
        );
        check(
            json!({"kind": "email", "value": "not-an-email"}),
            Err(IgnoredReason::InvalidIdentifier),
        );
        check(
            json!({"kind": "email", "value": 42}),
            Err(IgnoredReason::InvalidIdentifier),
        );
        check(
            json!({"kind": "customerId", "value": 1.5}),
            Err(IgnoredReason::InvalidIdentifier),
        );
        check(
            json!({"kind": "customerId", "value": {"a": 1}}),
            Err(IgnoredReason::InvalidIdentifier),
        );
        check(
            json!({"kind": 7, "value": "x"}),
            Err(IgnoredReason::InvalidIdentifier),
        );
        check(
            json!("ann@example.com"),
            Err(IgnoredReason::InvalidIdentifier),
        );
        assert_eq!(
            normalize(None, "email"),
            Err(IgnoredReason::MissingIdentifier)
        );
        assert_eq!(
            normalize(Some(&Value::Null), "email"),
            Err(IgnoredReason::MissingIdentifier)
        );
    }
}
