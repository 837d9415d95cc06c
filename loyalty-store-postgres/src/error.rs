//! The one error type of the crate, and its conversion into the engine's [`StoreError`].

use loyalty_core::error::StoreError;

/// A failure of the PostgreSQL store.
///
/// Messages never hold request data, secrets or the connection URL (which may carry a
/// password): PostgreSQL's own messages name constraints and types, not values, and decoding
/// failures name the column, not what it held.
#[derive(Debug, thiserror::Error)]
pub enum PostgresStoreError {
    /// The connection URL does not parse.
    #[error("invalid PostgreSQL connection URL")]
    InvalidUrl(#[source] sqlx::Error),

    /// A part of the connection URL this crate reads itself is wrong (the list of hosts,
    /// `target_session_attrs`).
    #[error("invalid PostgreSQL connection URL: {0}")]
    InvalidUrlPart(String),

    /// No server of the URL accepts the sessions it asks for: none answers, or none is a
    /// primary (during a failover), or none is a standby.
    #[error("no server of {hosts} accepts {attrs} sessions: {tried}")]
    NoServer {
        /// The URL's `host:port` pairs.
        hosts: String,
        /// The URL's `target_session_attrs`.
        attrs: crate::SessionAttrs,
        /// What each host answered.
        tried: String,
    },

    /// Applying the embedded migrations failed.
    #[error("migrating the schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// The driver or the server failed.
    #[error("PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),

    /// A stored value does not decode into its domain type.
    #[error("stored {what} does not decode: {detail}")]
    Corrupt {
        /// The table and column.
        what: &'static str,
        /// What is wrong, without the stored value.
        detail: String,
    },

    /// The group-commit task is gone (its runtime shut down).
    #[error("the store's committer task has stopped")]
    CommitterStopped,

    /// A concurrent purge removed a member or an accepted event this transaction had read;
    /// it was rolled back and may simply be run again.
    #[error("a concurrent change invalidated the transaction")]
    Conflict,
}

impl PostgresStoreError {
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            what,
            detail: detail.into(),
        }
    }

    /// A JSON column that does not decode. serde_json's message may quote the stored data,
    /// so only its category and position are kept.
    pub(crate) fn json(what: &'static str, error: &serde_json::Error) -> Self {
        Self::corrupt(
            what,
            format!(
                "{:?} error at line {} column {}",
                error.classify(),
                error.line(),
                error.column()
            ),
        )
    }

    /// The SQLSTATE of a server error.
    pub(crate) fn sqlstate(&self) -> Option<String> {
        match self {
            Self::Database(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
            _ => None,
        }
    }

    /// Whether running the same transaction again may succeed: the server rolled it back
    /// because of a deadlock, a serialization failure, or a race with a purge (whose deleted
    /// member or event then fails a foreign key). Connection failures are not retried: the
    /// transaction may have committed.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Conflict => true,
            _ => matches!(
                self.sqlstate().as_deref(),
                Some("40001" | "40P01" | "23503")
            ),
        }
    }

    /// Whether the server may have committed what was sent though no answer came back: the
    /// connection broke, or the server was shut down or crashed, in the middle of a statement
    /// or of its COMMIT. Only reading the database again can tell.
    pub(crate) fn outcome_unknown(&self) -> bool {
        match self {
            Self::Database(error) => match error {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(e) => e
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")),
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether the server looks gone or no longer takes writes (a failover, a switchover, a
    /// crash): the connection must not be used again, and the store looks for the primary.
    pub(crate) fn server_lost(&self) -> bool {
        self.outcome_unknown()
            || matches!(self, Self::NoServer { .. })
            || matches!(self, Self::Database(sqlx::Error::PoolTimedOut))
            // read_only_sql_transaction: a write reached a standby or a read-only primary.
            || self.sqlstate().as_deref() == Some("25006")
    }

    /// Whether the database could not be reached, was overloaded or timed out: worth a retry
    /// later, as opposed to a bug or a broken invariant.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(e) => sqlx_unavailable(e),
            Self::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_unavailable(e),
            Self::CommitterStopped | Self::Conflict | Self::NoServer { .. } => true,
            Self::InvalidUrl(_)
            | Self::InvalidUrlPart(_)
            | Self::Migrate(_)
            | Self::Corrupt { .. } => false,
        }
    }
}

fn sqlx_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            // 08: connection exception; 53: insufficient resources (too many connections, disk
            // full); 57: operator intervention (statement timeout, shutdown); 40: deadlock or
            // serialization failure that outlived the retries; 55P03: lock timeout; 25006: a
            // write reached a server that has become read-only (a demoted primary).
            ["08", "53", "57", "40"].iter().any(|c| code.starts_with(c))
                || code == "55P03"
                || code == "25006"
        }),
        _ => false,
    }
}

impl From<PostgresStoreError> for StoreError {
    fn from(error: PostgresStoreError) -> Self {
        if error.is_unavailable() {
            StoreError::unavailable(error.to_string())
        } else {
            StoreError::new(error.to_string())
        }
    }
}

pub(crate) type Result<T, E = PostgresStoreError> = std::result::Result<T, E>;
