//! The one error type of `loyalty-core`. Each variant names a failure a caller can act on;
//! [`Error::code`] gives the stable machine code the HTTP layer puts in problem details.

use crate::auth::AuthFailure;
use crate::mapping::CompileError;

/// A failure of an engine operation. Per-item failures of an ingested batch are not errors:
/// they are item results (`rejected`, `ignored`) inside a successful response.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found")]
    NotFound { what: &'static str },

    #[error("{message}")]
    Invalid {
        /// JSON pointer of the offending field in the request body ("" for the whole body).
        path: String,
        message: String,
    },

    #[error("the mapping does not compile: {0}")]
    InvalidMapping(CompileError),

    #[error("{0}")]
    Unauthorized(AuthFailure),

    #[error("the body is not valid JSON: {message} (line {line}, column {column})")]
    InvalidJson {
        message: String,
        line: usize,
        column: usize,
    },

    #[error("the batch holds {items} items; the limit is {limit}")]
    BatchTooLarge { items: usize, limit: usize },

    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },

    /// The request contradicts what is stored: `nothing_to_reverse`, `idempotency_conflict`.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },

    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
}

impl Error {
    /// The stable machine code of this error (the `code` member of a problem document).
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Invalid { .. } => "validation_failed",
            Error::InvalidMapping(_) => "invalid_mapping",
            Error::Unauthorized(_) => "unauthorized",
            Error::InvalidJson { .. } => "invalid_json",
            Error::BatchTooLarge { .. } => "batch_too_large",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::Conflict { code, .. } => code,
            Error::Store(e) if e.unavailable => "database_unavailable",
            Error::Store(_) => "internal_error",
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A failure inside a store. Stores convert their own errors into this one; the message is
/// for operators and never holds request data or secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub message: String,
    /// The database could not be reached, has no primary for now (a failover), or timed out:
    /// worth a retry, as opposed to a bug or a broken invariant. A retry of the same events
    /// is a duplicate if they were committed after all.
    pub unavailable: bool,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            unavailable: false,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            unavailable: true,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
