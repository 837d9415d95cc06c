//! Database URLs with libpq's meaning: several `host:port` pairs in the authority, tried in
//! order, and `target_session_attrs` saying which kind of server is acceptable
//! (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`).
//!
//! sqlx parses only single-host URLs, so each host becomes a URL of its own (the same user,
//! database and parameters) that sqlx parses; `target_session_attrs` is taken out and checked
//! by this crate after connecting.

use crate::error::PostgresStoreError;
use sqlx::postgres::PgConnectOptions;
use std::fmt;
use std::str::FromStr;

/// Which servers a session may use (libpq's `target_session_attrs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionAttrs {
    /// Any server that answers (libpq's default).
    Any,
    /// A server whose sessions accept writes: a primary that is not read-only by default.
    ReadWrite,
    /// A server whose sessions are read-only: a standby, or a read-only primary.
    ReadOnly,
    /// A server not in recovery.
    Primary,
    /// A server in recovery (a hot standby).
    Standby,
    /// A standby if one answers, else any server.
    PreferStandby,
}

impl SessionAttrs {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "any" => Self::Any,
            "read-write" => Self::ReadWrite,
            "read-only" => Self::ReadOnly,
            "primary" => Self::Primary,
            "standby" => Self::Standby,
            "prefer-standby" => Self::PreferStandby,
            _ => return None,
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::ReadWrite => "read-write",
            Self::ReadOnly => "read-only",
            Self::Primary => "primary",
            Self::Standby => "standby",
            Self::PreferStandby => "prefer-standby",
        }
    }

    /// Whether a session on a server in this state is acceptable (`PreferStandby` is decided
    /// in two passes by the caller: standbys first, then any).
    pub(crate) fn accepts(self, server: ServerState) -> bool {
        match self {
            Self::Any | Self::PreferStandby => true,
            Self::ReadWrite => !server.read_only,
            Self::ReadOnly => server.read_only,
            Self::Primary => !server.in_recovery,
            Self::Standby => server.in_recovery,
        }
    }

    /// Whether sessions of this kind may write (the only kinds a store writes through).
    pub(crate) fn writes(self) -> bool {
        matches!(self, Self::ReadWrite | Self::Primary)
    }
}

impl fmt::Display for SessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a session learns of its server when it connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerState {
    /// `pg_is_in_recovery()`: a standby.
    pub(crate) in_recovery: bool,
    /// `transaction_read_only` of a new session: a standby, or `default_transaction_read_only`.
    pub(crate) read_only: bool,
}

/// One host of a URL: its connect options, and `host:port` to name it in messages (never the
/// URL, which may hold a password).
#[derive(Clone, Debug)]
pub(crate) struct Host {
    pub(crate) options: PgConnectOptions,
    pub(crate) name: String,
}

/// A parsed database URL.
#[derive(Clone, Debug)]
pub(crate) struct DatabaseUrl {
    /// In the order written, which is the order they are tried in.
    pub(crate) hosts: Vec<Host>,
    pub(crate) attrs: SessionAttrs,
}

fn invalid(message: impl Into<String>) -> PostgresStoreError {
    PostgresStoreError::InvalidUrlPart(message.into())
}

impl DatabaseUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, PostgresStoreError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            // Not a URL: a keyword/value string or something sqlx may still read.
            let options =
                PgConnectOptions::from_str(url).map_err(PostgresStoreError::InvalidUrl)?;
            return Ok(Self::from_options(options));
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (path, query) = match tail.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (tail, None),
        };

        let mut attrs = SessionAttrs::Any;
        let mut kept = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "target_session_attrs" => {
                    attrs = SessionAttrs::parse(value).ok_or_else(|| {
                        invalid(format!(
                            "target_session_attrs must be any, read-write, read-only, primary, \
                             standby or prefer-standby, not {value:?}"
                        ))
                    })?;
                }
                "host" | "hostaddr" | "port" if value.contains(',') || value.contains("%2C") => {
                    return Err(invalid(format!(
                        "write several hosts in the URL's authority \
                         (postgres://user@host1:port1,host2:port2/db), not in its {key} parameter"
                    )));
                }
                _ => kept.push(pair),
            }
        }
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };

        let mut hosts = Vec::new();
        for spec in hostlist.split(',') {
            if spec.is_empty() && hostlist.contains(',') {
                return Err(invalid("an empty host in the URL's list of hosts"));
            }
            let single = match userinfo {
                Some(userinfo) => format!("{scheme}://{userinfo}@{spec}{path}{query}"),
                None => format!("{scheme}://{spec}{path}{query}"),
            };
            let options =
                PgConnectOptions::from_str(&single).map_err(PostgresStoreError::InvalidUrl)?;
            let name = format!("{}:{}", options.get_host(), options.get_port());
            hosts.push(Host { options, name });
        }
        Ok(Self { hosts, attrs })
    }

    /// Options built by a caller: one host, no session attributes.
    pub(crate) fn from_options(options: PgConnectOptions) -> Self {
        let name = format!("{}:{}", options.get_host(), options.get_port());
        Self {
            hosts: vec![Host { options, name }],
            attrs: SessionAttrs::Any,
        }
    }

    /// A URL of one host and no session attributes: connect as sqlx would, without checks.
    pub(crate) fn is_plain(&self) -> bool {
        self.hosts.len() == 1 && self.attrs == SessionAttrs::Any
    }

    /// The URL's hosts, for messages: `h1:5432, h2:5432`.
    pub(crate) fn host_names(&self) -> String {
        self.hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_hosts_each_with_its_port_in_order() {
        let url = DatabaseUrl::parse(
            "postgres://app:secret@db1:5433,db2,[::1]:5434/ledger?target_session_attrs=read-write&sslmode=disable",
        )
        .unwrap();
        assert_eq!(url.attrs, SessionAttrs::ReadWrite);
        let names: Vec<&str> = url.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names[0], "db1:5433");
        assert_eq!(names[1], "db2:5432");
        assert!(names[2].ends_with(":5434"), "{names:?}");
        for host in &url.hosts {
            assert_eq!(host.options.get_username(), "app");
            assert_eq!(host.options.get_database(), Some("ledger"));
        }
        assert!(!url.is_plain());
        assert!(!url.host_names().contains("secret"));
    }

    #[test]
    fn one_host_without_attributes_is_plain() {
        let url = DatabaseUrl::parse("postgresql://postgres@127.0.0.1:5432/postgres").unwrap();
        assert!(url.is_plain());
        assert_eq!(url.hosts[0].name, "127.0.0.1:5432");
        let url = DatabaseUrl::parse("postgres://u@h/db?target_session_attrs=primary").unwrap();
        assert_eq!(url.attrs, SessionAttrs::Primary);
        assert!(!url.is_plain());
    }

    #[test]
    fn every_libpq_value_and_nothing_else() {
        for value in [
            "any",
            "read-write",
            "read-only",
            "primary",
            "standby",
            "prefer-standby",
        ] {
            let url = DatabaseUrl::parse(&format!("postgres://h/db?target_session_attrs={value}"))
                .unwrap();
            assert_eq!(url.attrs.as_str(), value);
        }
        let error = DatabaseUrl::parse("postgres://h/db?target_session_attrs=master").unwrap_err();
        assert!(
            error.to_string().contains("target_session_attrs"),
            "{error}"
        );
        assert!(DatabaseUrl::parse("postgres://h1,,h2/db").is_err());
        assert!(DatabaseUrl::parse("postgres://h/db?host=a,b").is_err());
    }

    #[test]
    fn what_sessions_accept() {
        let primary = ServerState {
            in_recovery: false,
            read_only: false,
        };
        let standby = ServerState {
            in_recovery: true,
            read_only: true,
        };
        let read_only_primary = ServerState {
            in_recovery: false,
            read_only: true,
        };
        assert!(SessionAttrs::ReadWrite.accepts(primary));
        assert!(!SessionAttrs::ReadWrite.accepts(standby));
        assert!(!SessionAttrs::ReadWrite.accepts(read_only_primary));
        assert!(SessionAttrs::Primary.accepts(read_only_primary));
        assert!(SessionAttrs::Standby.accepts(standby));
        assert!(!SessionAttrs::Standby.accepts(primary));
        assert!(SessionAttrs::ReadOnly.accepts(read_only_primary));
        assert!(SessionAttrs::Any.accepts(standby));
    }
}
