//! What every scheme's verification shares: finding a header or a query parameter exactly
//! once, HMACs by algorithm, digests decoded from their text form, constant-time comparison
//! over every secret, and timestamps checked against a tolerance.

use super::AuthFailure;
use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// The hash of an HMAC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]
            .into_iter()
            .find(|algorithm| name.eq_ignore_ascii_case(algorithm.as_str()))
    }

    pub(crate) fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    /// The HMAC of the concatenation of `parts` under `key`.
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac =
                <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key");
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
            Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
            Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
        }
    }
}

/// How a digest is written in its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Lowercase hexadecimal.
    #[default]
    Hex,
    /// Standard base64, padded.
    Base64,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        [Encoding::Hex, Encoding::Base64]
            .into_iter()
            .find(|encoding| name.eq_ignore_ascii_case(encoding.as_str()))
    }

    pub fn encode(self, digest: &[u8]) -> String {
        match self {
            Encoding::Hex => hex::encode(digest),
            Encoding::Base64 => BASE64.encode(digest),
        }
    }

    /// The digest written in `text`, which must be exactly one digest of `algorithm`: a
    /// truncated or padded digest is malformed rather than merely wrong.
    pub(crate) fn decode(
        self,
        text: &[u8],
        algorithm: Algorithm,
        what: &str,
    ) -> Result<Vec<u8>, AuthFailure> {
        let malformed = || {
            AuthFailure::Malformed(format!(
                "{what} must be a {} HMAC-{} digest",
                match self {
                    Encoding::Hex => "lowercase hex",
                    Encoding::Base64 => "base64",
                },
                algorithm.as_str().to_uppercase()
            ))
        };
        let digest = match self {
            // Lowercase only: the senders write it so, and one spelling means one text to sign.
            Encoding::Hex if text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
                hex::decode(text).map_err(|_| malformed())?
            }
            Encoding::Hex => return Err(malformed()),
            Encoding::Base64 => BASE64.decode(text).map_err(|_| malformed())?,
        };
        if digest.len() == algorithm.digest_len() {
            Ok(digest)
        } else {
            Err(malformed())
        }
    }
}

/// Whether any secret's HMAC of `parts` is one of `candidates`. Every secret and every
/// candidate is compared, in constant time, so that the time taken says neither which secret
/// matched nor how much of a candidate was right.
pub(crate) fn any_matches<'s>(
    keys: impl IntoIterator<Item = &'s [u8]>,
    algorithm: Algorithm,
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
) -> bool {
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        let expected = algorithm.hmac(key, parts);
        for candidate in candidates {
            matched |= expected.ct_eq(candidate);
        }
    }
    matched.into()
}

/// The secrets as HMAC keys: their UTF-8 bytes, as every sender but Standard Webhooks uses them.
pub(crate) fn secret_keys(secrets: &[Secret]) -> impl Iterator<Item = &[u8]> {
    secrets.iter().map(|secret| secret.expose().as_bytes())
}

pub(crate) fn single_query_value(query: &str, param: &str) -> Result<String, AuthFailure> {
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

/// The one non-empty value of header `name` (any case): missing, empty or repeated is refused.
pub(crate) fn single_header<'a>(
    headers: &[(&str, &'a [u8])],
    name: &str,
) -> Result<&'a [u8], AuthFailure> {
    optional_header(headers, name)?.ok_or_else(|| AuthFailure::Missing(format!("header {name}")))
}

/// As [`single_header`], for a header that may be absent.
pub(crate) fn optional_header<'a>(
    headers: &[(&str, &'a [u8])],
    name: &str,
) -> Result<Option<&'a [u8]>, AuthFailure> {
    let mut found = None;
    for (header, value) in headers {
        if header.eq_ignore_ascii_case(name) {
            if found.is_some() {
                return Err(AuthFailure::Duplicated(format!("header {name}")));
            }
            found = Some(*value);
        }
    }
    Ok(found.filter(|value| !value.is_empty()))
}

/// A header's value as text.
pub(crate) fn header_text<'a>(value: &'a [u8], name: &str) -> Result<&'a str, AuthFailure> {
    std::str::from_utf8(value)
        .map_err(|_| AuthFailure::Malformed(format!("header {name} is not text")))
}

/// A delivery id from a header: printable text of at most 256 bytes, which becomes a
/// `clientEventId`. An absent header gives none; a repeated one is refused, since the two
/// could name two deliveries.
pub(crate) fn delivery_id_header(
    headers: &[(&str, &[u8])],
    name: &str,
) -> Result<Option<String>, AuthFailure> {
    let Some(value) = optional_header(headers, name)? else {
        return Ok(None);
    };
    match std::str::from_utf8(value) {
        Ok(id) if id.len() <= 256 && !id.chars().any(char::is_control) => Ok(Some(id.to_owned())),
        _ => Err(AuthFailure::Malformed(format!(
            "header {name} must be printable text of at most 256 bytes"
        ))),
    }
}

/// A timestamp in integer `units` per second (1 or 1000) within `tolerance_seconds` of
/// `now`, before or after.
pub(crate) fn check_timestamp(
    text: &str,
    units_per_second: i64,
    tolerance_seconds: u64,
    now: DateTime<Utc>,
    what: &str,
) -> Result<(), AuthFailure> {
    let value: i64 = text.parse().map_err(|_| {
        AuthFailure::Malformed(format!(
            "{what} must be an integer number of {}",
            if units_per_second == 1 {
                "seconds"
            } else {
                "milliseconds"
            }
        ))
    })?;
    let now = now.timestamp_millis() / (1000 / units_per_second);
    if now.abs_diff(value) > tolerance_seconds.saturating_mul(units_per_second as u64) {
        return Err(AuthFailure::OutsideTolerance(tolerance_seconds));
    }
    Ok(())
}
