//! Losing the database's primary: a primary and its synchronous standby, made here from
//! scratch (`initdb`, `pg_basebackup -R`, `synchronous_standby_names`); one server process
//! streams bulks into them through a two-host URL; the primary is SIGKILLed in the middle of
//! the stream and the standby promoted. Every event answered `accepted` must be on the new
//! primary, exactly once, without restarting the server; resending everything must double
//! nothing; while no primary answers, requests get 503 `database_unavailable`.
//!
//! Needs PostgreSQL's server binaries (`initdb`, `pg_ctl`, `pg_basebackup`): found in
//! `PG_BIN`, else in the newest `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package).
//! `initdb` refuses to run as root, so as root the clusters are run as the `postgres` user
//! (with `runuser`), which that package creates.

mod common;

use common::{all_events, check_balances, setup, Server};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, Row};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ITEMS_PER_BULK: usize = 50;
const BULKS: usize = 80;
const SENDERS: usize = 2;
/// The primary is killed once this many bulks were answered.
const KILL_AFTER_BULKS: usize = 12;

/// PostgreSQL's server binaries.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup) were not found in \
             /usr/lib/postgresql/*/bin: install them (Debian: `apt-get install postgresql`) or \
             set PG_BIN to their directory"
        )
    })
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("`id -u` runs");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// A free TCP port on the loopback interface (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two clusters in a temporary directory: the primary and its synchronous standby.
struct Clusters {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    primary_port: u16,
    standby_port: u16,
}

impl Clusters {
    fn create() -> Self {
        let bin = pg_bin();
        let as_postgres = running_as_root();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("loyalty-failover-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        if as_postgres {
            let chown = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .output()
                .unwrap();
            assert!(
                chown.status.success(),
                "initdb refuses to run as root, so this test runs PostgreSQL as the `postgres` \
                 user, which must exist (Debian's postgresql package creates it): {}",
                String::from_utf8_lossy(&chown.stderr)
            );
        }
        let clusters = Self {
            bin,
            dir,
            as_postgres,
            primary_port: free_port(),
            standby_port: free_port(),
        };
        clusters.pg(
            "initdb",
            &[
                "-D",
                &clusters.data("primary"),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
        );
        clusters.start("primary", clusters.primary_port, "'*'");
        clusters.pg(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &clusters.primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &clusters.data("standby"),
                "-R",
                "--checkpoint=fast",
                "--wal-method=stream",
            ],
        );
        // The standby asks for no synchronous standby of its own: once promoted, it has none,
        // and would otherwise wait for one forever (an HA manager such as Patroni manages
        // this setting on each promotion).
        clusters.start("standby", clusters.standby_port, "''");
        clusters
    }

    fn data(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when the test runs as root).
    fn pg(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{} could not run: {e}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}\n{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.logs()
        );
        output
    }

    fn start(&self, name: &str, port: u16, synchronous_standby_names: &str) {
        let options = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={dir} \
             -c synchronous_standby_names={synchronous_standby_names} \
             -c synchronous_commit=on -c wal_level=replica -c max_wal_senders=4 \
             -c hot_standby=on -c shared_buffers=16MB -c max_connections=40",
            dir = self.dir.display()
        );
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(name),
                "-l",
                &self.dir.join(format!("{name}.log")).display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// SIGKILLs a cluster's postmaster and every process it started, as if its machine died.
    fn kill(&self, name: &str) {
        let pid_file = self.dir.join(name).join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).unwrap();
        let postmaster: u32 = text.lines().next().unwrap().trim().parse().unwrap();
        let children = children_of(postmaster);
        let status = Command::new("kill")
            .args(["-KILL", &postmaster.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -KILL {postmaster}");
        // Its processes too (a backend may have exited meanwhile: then there is nothing to do).
        for child in children {
            let _ = Command::new("kill")
                .args(["-KILL", &child.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    fn promote(&self, name: &str) {
        self.pg(
            "pg_ctl",
            &["-D", &self.data(name), "-w", "-t", "60", "promote"],
        );
    }

    fn url(port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    fn logs(&self) -> String {
        ["primary", "standby"]
            .iter()
            .map(|name| {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {name}.log (end)\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        for name in ["primary", "standby"] {
            let pid_file = self.dir.join(name).join("postmaster.pid");
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.lines().next().map(str::to_owned))
            {
                let _ = Command::new("kill")
                    .args(["-KILL", pid.trim()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The processes whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: the command may hold spaces, so read after its ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            children.push(child);
        }
    }
    children
}

async fn wait_for_synchronous_standby(primary: &str) {
    let mut connection = PgConnection::connect(primary).await.unwrap();
    for _ in 0..300 {
        let sync: Option<String> = sqlx::query_scalar(
            "SELECT sync_state FROM pg_stat_replication WHERE sync_state = 'sync' LIMIT 1",
        )
        .fetch_optional(&mut connection)
        .await
        .unwrap();
        if sync.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the standby did not become the primary's synchronous standby in 30 s");
}

fn bulk(b: usize) -> String {
    Value::Array(
        (0..ITEMS_PER_BULK)
            .map(|i| {
                json!({"eventId": format!("b{b}-{i}"), "timestamp": "2026-12-01T10:00:00Z",
                       "profile": {"email": format!("m{}@example.com", (b * ITEMS_PER_BULK + i) % 97)},
                       "article": {"theme": "sport"}, "totalArticlesRead": 5})
            })
            .collect(),
    )
    .to_string()
}

/// What the stream saw: the ids answered `accepted`, the times of answers, the 503s.
#[derive(Default)]
struct Seen {
    accepted: Vec<String>,
    /// For each bulk answered with at least one `accepted` item: when the request that was
    /// answered was sent, and when its answer came.
    accepted_at: Vec<(Instant, Instant)>,
    unavailable: usize,
    transport_errors: usize,
}

/// Sends `body` until it is answered 200, retrying 503s (which must say
/// `database_unavailable`, with `Retry-After`) and lost connections every 100 ms. The answer,
/// and when the request that got it was sent.
async fn send_until_answered(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    seen: &Mutex<Seen>,
) -> (Value, Instant) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no answer in 120 s");
        let sent_at = Instant::now();
        match client.post(url).body(body.to_owned()).send().await {
            Ok(response) if response.status() == 200 => {
                return (response.json().await.unwrap(), sent_at);
            }
            Ok(response) if response.status() == 503 => {
                assert!(
                    response.headers().contains_key("retry-after"),
                    "a 503 says when to retry"
                );
                let problem: Value = response.json().await.unwrap();
                assert_eq!(problem["code"], "database_unavailable", "{problem}");
                seen.lock().unwrap().unavailable += 1;
            }
            Ok(response) => panic!(
                "unexpected answer {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ),
            Err(_) => seen.lock().unwrap().transport_errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_primary_loses_no_accepted_event_and_doubles_none() {
    let clusters = Clusters::create();
    let (p1, p2) = (clusters.primary_port, clusters.standby_port);
    wait_for_synchronous_standby(&Clusters::url(p1)).await;

    let write_url = format!(
        "postgres://postgres@127.0.0.1:{p1},127.0.0.1:{p2}/postgres?target_session_attrs=read-write"
    );
    let read_url = format!(
        "postgres://postgres@127.0.0.1:{p2},127.0.0.1:{p1}/postgres?target_session_attrs=prefer-standby"
    );
    let server = Server::start_with(&[
        "--database-url",
        &write_url,
        "--database-read-url",
        &read_url,
        "--db-acquire-timeout-ms",
        "3000",
    ]);
    let client = reqwest::Client::new();
    let (pid, token, cid) = setup(&client, &server.base, json!([])).await;
    let ingest = format!("{}/v1/incoming/{cid}?token=s3cret-token", server.base);

    // The stream: SENDERS tasks, each sending its share of the bulks one after another.
    let answered = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (client, ingest, answered, seen) = (
            client.clone(),
            ingest.clone(),
            answered.clone(),
            seen.clone(),
        );
        senders.push(tokio::spawn(async move {
            for b in (sender..BULKS).step_by(SENDERS) {
                let (answer, sent_at) =
                    send_until_answered(&client, &ingest, &bulk(b), &seen).await;
                let answered_at = Instant::now();
                let mut seen = seen.lock().unwrap();
                let mut any = false;
                for result in answer["results"].as_array().unwrap() {
                    match result["status"].as_str().unwrap() {
                        "accepted" => {
                            any = true;
                            seen.accepted
                                .push(result["clientEventId"].as_str().unwrap().to_owned());
                        }
                        "duplicate" => {}
                        other => panic!("unexpected status {other}: {result}"),
                    }
                }
                if any {
                    seen.accepted_at.push((sent_at, answered_at));
                }
                drop(seen);
                answered.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    while answered.load(Ordering::SeqCst) < KILL_AFTER_BULKS {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_at = Instant::now();
    clusters.kill("primary");
    clusters.promote("standby");
    let promoted_at = Instant::now();
    for sender in senders {
        sender.await.unwrap();
    }
    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    assert!(
        answered.load(Ordering::SeqCst) == BULKS,
        "every bulk was answered in the end"
    );
    // The first write accepted from a request sent after the kill.
    let first_accepted_after = seen
        .accepted_at
        .iter()
        .filter(|(sent, _)| *sent > killed_at)
        .map(|(_, answered)| answered)
        .min()
        .expect("writes were accepted after the failover");
    for line in server.log_lines() {
        eprintln!("server: {line}");
    }
    let lost_answers = server
        .log_lines()
        .iter()
        .filter(|line| line.contains("a commit's answer was lost"))
        .count();
    eprintln!(
        "failover: {lost_answers} commits lost their answer and were read back; SIGKILL of the primary to the standby promoted: {} ms; to the first accepted \
         write: {} ms ({} answers 503 database_unavailable, {} lost connections meanwhile)",
        (promoted_at - killed_at).as_millis(),
        (*first_accepted_after - killed_at).as_millis(),
        seen.unavailable,
        seen.transport_errors
    );

    // Every event answered accepted is on the new primary, and once.
    let mut new_primary = PgConnection::connect(&Clusters::url(p2)).await.unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut new_primary)
        .await
        .unwrap();
    assert!(!in_recovery, "the standby was promoted");
    let rows = sqlx::query(
        "SELECT client_event_id, count(*) FROM events \
         WHERE connector_id = $1 AND status = 'accepted' GROUP BY client_event_id",
    )
    .bind(&cid)
    .fetch_all(&mut new_primary)
    .await
    .unwrap();
    let stored: HashMap<String, i64> = rows
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect();
    let acknowledged: HashSet<&String> = seen.accepted.iter().collect();
    assert_eq!(
        acknowledged.len(),
        seen.accepted.len(),
        "no event was answered accepted twice"
    );
    for id in &acknowledged {
        assert_eq!(
            stored.get(*id),
            Some(&1),
            "{id} was answered accepted: it is on the new primary, once"
        );
    }
    assert!(
        stored.values().all(|n| *n == 1),
        "no event is accepted twice"
    );
    assert_eq!(
        stored.len(),
        BULKS * ITEMS_PER_BULK,
        "every event of the stream is accepted exactly once"
    );

    // Resending everything doubles nothing.
    let again = Mutex::new(Seen::default());
    for b in 0..BULKS {
        let (answer, _) = send_until_answered(&client, &ingest, &bulk(b), &again).await;
        assert_eq!(answer["accepted"], 0, "bulk {b} again: {answer}");
        assert_eq!(answer["duplicates"].as_u64(), Some(ITEMS_PER_BULK as u64));
    }
    let events = all_events(&client, &server.base, &token, &pid).await;
    let balances = check_balances(&client, &server.base, &token, &pid, &events).await;
    assert_eq!(
        balances.values().sum::<i64>(),
        10 * (BULKS * ITEMS_PER_BULK) as i64,
        "10 points an event, once"
    );

    // The event log is read from the replica's URL, and says so.
    let response = client
        .get(format!("{}/v1/programs/{pid}/events?limit=1", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["loyalty-read-from"], "replica");

    // With no primary at all, a request gets a clear 503 within the acquire timeout.
    clusters.kill("standby");
    let started = Instant::now();
    let response = client.post(&ingest).body(bulk(BULKS)).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "database_unavailable");
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(server);
    assert!(Path::new(&clusters.dir).exists());
}
