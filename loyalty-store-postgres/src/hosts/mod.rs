//! Which server a pool uses: the first host of the URL whose sessions are what its
//! `target_session_attrs` asks for, found at start and found again, without a restart, when
//! that server dies, is demoted or stops taking writes (a failover or a switchover).
//!
//! A [`Target`] holds the URL's hosts and which one the pool uses now. Three things keep the
//! pool on the right server:
//! - every new connection is checked before the pool hands it out (`after_connect`): a
//!   connection to a server of the wrong kind is closed and the pool tries again, so a write
//!   never goes to a standby or to a primary that was made read-only;
//! - a watcher task keeps one connection of its own to the chosen server and asks it, twice a
//!   second and whenever a query of the store failed as if the server were gone, whether it
//!   is still acceptable; when it is not, it tries every host in order until one is, and
//!   points the pool at it;
//! - a switch starts a new epoch: pooled connections older than it are discarded when next
//!   taken (`before_acquire`), and committers let their kept connection go.
//!
//! A URL of one host without `target_session_attrs` is used as sqlx would use it: no checks,
//! no watcher.

mod url;

pub(crate) use url::DatabaseUrl;
pub use url::SessionAttrs;
use url::{Host, ServerState};

use crate::error::PostgresStoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often the watcher asks the chosen server whether it is still acceptable.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// The longest pause between two rounds over the hosts while none is acceptable.
const MAX_SEARCH_PAUSE: Duration = Duration::from_millis(500);

/// The server a pool uses, and how to find another.
#[derive(Debug)]
pub(crate) struct Target {
    url: DatabaseUrl,
    /// The options the pool connects with, one a host (the URL's, with the store's session
    /// settings).
    pooled: Vec<PgConnectOptions>,
    /// Which host the pool connects to now.
    current: AtomicUsize,
    /// Counts switches: a connection made in an earlier epoch may be on the wrong server.
    epoch: AtomicU64,
    /// When the current epoch began, in microseconds since `born`.
    epoch_began_micros: AtomicU64,
    born: Instant,
    /// Wakes the watcher: a query failed as if the server were gone.
    suspicion: Notify,
    connect_timeout: Duration,
}

impl Target {
    /// Whether this URL needs checks and a watcher (several hosts, or session attributes).
    pub(crate) fn is_watched(&self) -> bool {
        !self.url.is_plain()
    }

    /// The host the pool uses now, `host:port`.
    pub(crate) fn current_host(&self) -> &str {
        &self.url.hosts[self.current.load(Ordering::Acquire)].name
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A query failed as if the server were gone or demoted: the watcher checks it now.
    pub(crate) fn suspect(&self) {
        if self.is_watched() {
            self.suspicion.notify_one();
        }
    }

    /// Finds the first acceptable host; returns the target and a connection to that host made
    /// with the URL's own options (no session settings: migrations run on it).
    pub(crate) async fn find_first(
        url: DatabaseUrl,
        session: impl Fn(PgConnectOptions) -> PgConnectOptions,
        connect_timeout: Duration,
    ) -> Result<(Arc<Self>, PgConnection), PostgresStoreError> {
        let pooled = url
            .hosts
            .iter()
            .map(|h| session(h.options.clone()))
            .collect();
        let target = Self {
            url,
            pooled,
            current: AtomicUsize::new(0),
            epoch: AtomicU64::new(0),
            epoch_began_micros: AtomicU64::new(0),
            born: Instant::now(),
            suspicion: Notify::new(),
            connect_timeout,
        };
        let (index, connection) = if target.is_watched() {
            target.search().await?
        } else {
            let connection = PgConnection::connect_with(&target.url.hosts[0].options).await?;
            (0, connection)
        };
        target.current.store(index, Ordering::Release);
        Ok((Arc::new(target), connection))
    }

    /// A pool on the current host that checks every connection it opens and discards those of
    /// an earlier epoch.
    pub(crate) async fn pool(
        self: &Arc<Self>,
        options: PgPoolOptions,
    ) -> Result<PgPool, PostgresStoreError> {
        let connect = self.pooled[self.current.load(Ordering::Acquire)].clone();
        if !self.is_watched() {
            return Ok(options.connect_with(connect).await?);
        }
        let checked = self.clone();
        let aged = self.clone();
        let pool = options
            .after_connect(move |connection, _| {
                let target = checked.clone();
                Box::pin(async move { target.check_new(connection).await })
            })
            .before_acquire(move |_, meta| {
                let fresh = meta.age <= aged.epoch_age();
                Box::pin(async move { Ok(fresh) })
            })
            .connect_with(connect)
            .await?;
        Ok(pool)
    }

    /// How long the current epoch has lasted.
    fn epoch_age(&self) -> Duration {
        let began = Duration::from_micros(self.epoch_began_micros.load(Ordering::Acquire));
        self.born.elapsed().saturating_sub(began)
    }

    /// The pool's check of a new connection. The pool closes a refused one and tries again,
    /// with the options of the moment (the watcher may meanwhile have chosen another host).
    async fn check_new(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        let state = server_state(connection).await?;
        if self.url.attrs.accepts(state) {
            return Ok(());
        }
        self.suspicion.notify_one();
        Err(sqlx::Error::Configuration(
            format!(
                "{} is {}, not a server for {} sessions; looking for another",
                self.current_host(),
                describe(state),
                self.url.attrs
            )
            .into(),
        ))
    }

    /// Tries every host in order until one is acceptable (for `prefer-standby`: a standby,
    /// else any); its index and a connection to it.
    async fn search(&self) -> Result<(usize, PgConnection), PostgresStoreError> {
        let passes: &[SessionAttrs] = match self.url.attrs {
            SessionAttrs::PreferStandby => &[SessionAttrs::Standby, SessionAttrs::Any],
            attrs => &[attrs][..],
        };
        let mut tried = Vec::new();
        for pass in passes {
            for (index, host) in self.url.hosts.iter().enumerate() {
                match self.try_host(host, *pass).await {
                    Ok(connection) => return Ok((index, connection)),
                    Err(why) => tried.push(format!("{} {why}", host.name)),
                }
            }
        }
        Err(PostgresStoreError::NoServer {
            hosts: self.url.host_names(),
            attrs: self.url.attrs,
            tried: tried.join("; "),
        })
    }

    async fn try_host(&self, host: &Host, attrs: SessionAttrs) -> Result<PgConnection, String> {
        let connecting = PgConnection::connect_with(&host.options);
        let mut connection = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(format!("failed: {}", without_detail(&error))),
            Err(_) => return Err("did not answer in time".into()),
        };
        match tokio::time::timeout(self.connect_timeout, server_state(&mut connection)).await {
            Ok(Ok(state)) if attrs.accepts(state) => Ok(connection),
            Ok(Ok(state)) => {
                let _ = connection.close().await;
                Err(format!("is {}", describe(state)))
            }
            Ok(Err(error)) => Err(format!("failed: {}", without_detail(&error))),
            Err(_) => Err("did not answer in time".into()),
        }
    }

    /// Points the pool at `index` and starts a new epoch.
    fn switch_to(&self, pool: &PgPool, index: usize) {
        pool.set_connect_options(self.pooled[index].clone());
        self.current.store(index, Ordering::Release);
        let now = u64::try_from(self.born.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.epoch_began_micros.store(now, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Keeps the pool on an acceptable server until the store is dropped (`alive` gone) or
    /// the pool closed. `sentinel` is a connection to the current host.
    pub(crate) async fn watch(
        self: Arc<Self>,
        pool: PgPool,
        sentinel: PgConnection,
        alive: Weak<()>,
    ) {
        let mut sentinel = Some(sentinel);
        let mut pause = Duration::from_millis(20);
        let mut lost_at: Option<Instant> = None;
        loop {
            if alive.strong_count() == 0 || pool.is_closed() {
                return;
            }
            match sentinel.as_mut() {
                Some(connection) => {
                    tokio::select! {
                        _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                        _ = self.suspicion.notified() => {}
                    }
                    let checked =
                        tokio::time::timeout(self.connect_timeout, server_state(connection)).await;
                    let why = match checked {
                        Ok(Ok(state)) if self.still_acceptable(state) => continue,
                        Ok(Ok(state)) => format!("is now {}", describe(state)),
                        Ok(Err(error)) => format!("failed: {}", without_detail(&error)),
                        Err(_) => "did not answer in time".into(),
                    };
                    tracing::warn!(
                        host = self.current_host(),
                        attrs = %self.url.attrs,
                        "the database server {why}; looking for one among {}",
                        self.url.host_names()
                    );
                    sentinel = None;
                    lost_at = Some(Instant::now());
                }
                None => match self.search().await {
                    Ok((index, connection)) => {
                        self.switch_to(&pool, index);
                        tracing::warn!(
                            host = self.current_host(),
                            attrs = %self.url.attrs,
                            searched_ms = lost_at.map(|t| t.elapsed().as_millis()),
                            "the database server is found again; the pool now connects to it"
                        );
                        sentinel = Some(connection);
                        pause = Duration::from_millis(20);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "no acceptable database server yet");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_SEARCH_PAUSE);
                    }
                },
            }
        }
    }

    fn still_acceptable(&self, state: ServerState) -> bool {
        match self.url.attrs {
            // Once settled on a primary for want of a standby, stays there until it fails.
            SessionAttrs::PreferStandby => true,
            attrs => attrs.accepts(state),
        }
    }
}

/// What a session learns of its server (one round trip).
async fn server_state(connection: &mut PgConnection) -> Result<ServerState, sqlx::Error> {
    let row =
        sqlx::query("SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'")
            .fetch_one(connection)
            .await?;
    Ok(ServerState {
        in_recovery: row.try_get(0)?,
        read_only: row.try_get(1)?,
    })
}

fn describe(state: ServerState) -> &'static str {
    match (state.in_recovery, state.read_only) {
        (true, _) => "a standby",
        (false, true) => "a read-only primary",
        (false, false) => "a read-write primary",
    }
}

/// A driver error for a message about a host: PostgreSQL's message, or the I/O error; never
/// the options (which hold the password).
fn without_detail(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(e) => e.message().to_owned(),
        sqlx::Error::Io(e) => e.to_string(),
        sqlx::Error::Tls(e) => format!("TLS: {e}"),
        other => other.to_string(),
    }
}
