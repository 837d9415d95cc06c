//! Secrets: generated tokens, stored token hashes, and HMAC keys that never print.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret value that must be kept (an HMAC key). Its `Debug` never shows the value, so it
/// cannot leak through a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: only for computing a signature.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The SHA-256 of a bearer token, lowercase hex. Tokens are stored only as hashes: a leaked
/// database does not hand out the tokens. (They are random and long, so a fast hash is enough.)
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(hex::encode(Sha256::digest(token.as_bytes())))
    }

    /// Constant-time: compares the hash of `presented` with this one.
    pub fn matches(&self, presented: &[u8]) -> bool {
        // Hex on the stack: this runs for every authenticated request.
        let mut digest = [0u8; 64];
        if hex::encode_to_slice(Sha256::digest(presented), &mut digest).is_err() {
            return false;
        }
        digest.ct_eq(self.0.as_bytes()).into()
    }

    pub fn from_hex(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    pub fn as_hex(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(***)")
    }
}

/// A new random token: 244 random bits from the OS generator (two uuid v4), hex-encoded.
pub fn generate_token(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Random bytes for a generated HMAC key.
pub(crate) fn random_bytes_32() -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out
}

/// A new Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes (the
/// specification asks for 24 to 64).
pub fn generate_standard_webhooks_secret() -> Secret {
    use base64::Engine as _;
    Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random_bytes_32())
    ))
}
