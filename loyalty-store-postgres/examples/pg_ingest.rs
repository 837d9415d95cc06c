//! The PostgreSQL store under load, without HTTP: one run against a fresh database.
//!
//! ```sh
//! cargo run --release -p loyalty-store-postgres --example pg_ingest -- \
//!     [--url postgres://postgres@127.0.0.1:5432/postgres] [--duration 10] [--members 1000] \
//!     [--clients 16,64] [--bulk-size 1000] [--bulk-clients 2] [--phases single,bulk,limit] \
//!     [--committers N] [--log-slow MS] [--setup-sql SQL] [--keep-db]
//! ```
//!
//! In one run, on a database it creates (and drops unless `--keep-db`):
//! 1. **single**: `Engine::ingest` (the engine with the PostgreSQL store, the seed connector and
//!    the seed rule, as the load generator sets them up) with 16 and 64 concurrent tasks, each
//!    sending one event a request, one request after another;
//! 2. **bulk**: `--bulk-clients` tasks sending arrays of `--bulk-size` events;
//! 3. **limit**: the same rows the bulk phase stored (events, ledger entries, balance updates),
//!    inserted into the same tables of another program by plain set-based statements (one
//!    `UNNEST` statement a batch of `--bulk-size`, autocommit), by as many tasks, without the
//!    engine: what PostgreSQL alone does with those rows on this machine, now.
//!
//! Every event has its own `eventId` and the members cycle through `--members` addresses;
//! the payload is `benches/payload.json` (as the load generator's), timestamped now. It prints
//! events/s for each phase, latency percentiles, the store's commit statistics (transactions,
//! items a transaction, phases), the WAL written an event, and the ratio bulk/limit.
//! Other benchmarks may share the machine: run it several times and compare ratios.
//!
//! `--log-slow MS` logs the statements slower than that, with their plans (auto_explain, nested
//! statements included: the foreign-key checks and `loyalty_commit`'s statements), to the
//! server's log; `--setup-sql` runs SQL once the schema is there (to try without an index or a
//! constraint); `--committers` overrides `PostgresOptions::committers`. The example server
//! allocates with mimalloc and this driver with the system allocator: with
//! `LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2` the engine's share comes closer to
//! the server's.

use chrono::{SecondsFormat, Utc};
use loyalty_core::clock::SystemClock;
use loyalty_core::engine::IncomingRequest;
use loyalty_core::ledger::ItemStatus;
use loyalty_core::program::ProgramSpec;
use loyalty_core::testing::{article_connector_spec, seed_rule_spec, TOKEN};
use loyalty_core::{Engine, Limits};
use loyalty_store_postgres::{CommitStats, PostgresOptions, PostgresStore};
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAYLOAD: &str = include_str!("../../benches/payload.json");
const QUERY: &str = "token=s3cret-token";

struct Args {
    url: String,
    duration: u64,
    members: u64,
    clients: Vec<usize>,
    bulk_size: usize,
    bulk_clients: usize,
    keep_db: bool,
    phases: String,
    committers: Option<usize>,
    /// `log_min_duration_statement` (ms) for the benchmark's database.
    log_slow: Option<u64>,
    /// SQL run once the schema is there (experiments: drop an index, a constraint).
    setup_sql: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        url: std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        duration: 10,
        members: 1000,
        clients: vec![16, 64],
        bulk_size: 1000,
        bulk_clients: 2,
        keep_db: false,
        phases: "single,bulk,limit".into(),
        committers: None,
        log_slow: None,
        setup_sql: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value(),
            "--duration" => args.duration = value().parse().expect("--duration"),
            "--members" => args.members = value().parse().expect("--members"),
            "--clients" => {
                args.clients = value()
                    .split(',')
                    .map(|c| c.parse().expect("--clients"))
                    .collect()
            }
            "--bulk-size" => args.bulk_size = value().parse().expect("--bulk-size"),
            "--bulk-clients" => args.bulk_clients = value().parse().expect("--bulk-clients"),
            "--phases" => args.phases = value(),
            "--committers" => args.committers = Some(value().parse().expect("--committers")),
            "--keep-db" => args.keep_db = true,
            "--setup-sql" => args.setup_sql = Some(value()),
            "--log-slow" => args.log_slow = Some(value().parse().expect("--log-slow")),
            "--help" | "-h" => {
                println!(
                    "pg_ingest [--url URL] [--duration S] [--members N] [--clients 16,64] \
                     [--bulk-size N] [--bulk-clients N] [--phases single,bulk,limit] \
                     [--committers N] [--log-slow MS] [--setup-sql SQL] [--keep-db]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown flag {other} (see --help)"),
        }
    }
    args
}

/// Item texts with fixed-width placeholders for the event id and the member.
struct Payload {
    parts: [String; 3],
}

impl Payload {
    fn new() -> Self {
        let mut value: Value = serde_json::from_str(PAYLOAD).expect("benches/payload.json");
        value["eventId"] = json!("@@EVENT@@");
        value["timestamp"] = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
        value["profile"]["email"] = json!("@@MEMBER@@");
        let text = value.to_string();
        let (a, rest) = text.split_once("@@EVENT@@").expect("event placeholder");
        let (b, c) = rest.split_once("@@MEMBER@@").expect("member placeholder");
        Self {
            parts: [a.to_owned(), b.to_owned(), c.to_owned()],
        }
    }

    fn push(&self, out: &mut String, event: u64, member: u64) {
        use std::fmt::Write;
        out.push_str(&self.parts[0]);
        let _ = write!(out, "evt-{event:020}");
        out.push_str(&self.parts[1]);
        let _ = write!(out, "reader{member:06}@example.com");
        out.push_str(&self.parts[2]);
    }
}

struct Shared {
    engine: Arc<Engine>,
    connector: String,
    payload: Payload,
    next_event: AtomicU64,
    members: u64,
    /// A nonce, so that two runs on a kept database do not collide.
    run: u64,
}

#[derive(Default)]
struct TaskResult {
    events: u64,
    /// Time in `Engine::map_items` (parsing, mapping, validation).
    engine_us: u64,
    not_accepted: u64,
    latencies_us: Vec<u32>,
}

async fn load_task(shared: Arc<Shared>, items: usize, stop: Arc<AtomicBool>) -> TaskResult {
    let mut result = TaskResult::default();
    let mut body = String::new();
    while !stop.load(Ordering::Relaxed) {
        body.clear();
        let first = shared.next_event.fetch_add(items as u64, Ordering::Relaxed);
        if items > 1 {
            body.push('[');
        }
        for i in 0..items as u64 {
            if i > 0 {
                body.push(',');
            }
            let n = first + i;
            shared
                .payload
                .push(&mut body, shared.run + n, n % shared.members);
        }
        if items > 1 {
            body.push(']');
        }
        // Engine::ingest, step by step, to time the engine's own work (authentication, parsing,
        // mapping, validation: CPU) apart from the store's commit.
        let started = Instant::now();
        let request = IncomingRequest {
            connector_id: &shared.connector,
            query: QUERY,
            headers: &[],
            body: body.as_bytes(),
            test: false,
        };
        let response = match shared.engine.authenticate(&request).await {
            Ok(authenticated) => {
                let mapping = Instant::now();
                let batch = shared.engine.map_items(&authenticated, request.body);
                result.engine_us += mapping.elapsed().as_micros() as u64;
                match batch {
                    Ok(batch) => shared.engine.commit(batch).await,
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        let elapsed = started.elapsed();
        match response {
            Ok(response) => {
                result.events += response.results.len() as u64;
                result.not_accepted += response
                    .results
                    .iter()
                    .filter(|r| r.status() != ItemStatus::Accepted)
                    .count() as u64;
            }
            Err(error) => {
                eprintln!("ingest failed: {error}");
                result.not_accepted += items as u64;
            }
        }
        result
            .latencies_us
            .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }
    result
}

struct PhaseResult {
    events_per_sec: f64,
}

async fn wal_lsn(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

fn stats_line(before: &CommitStats, after: &CommitStats) -> String {
    let tx = after.transactions - before.transactions;
    let items = after.items - before.items;
    let batches = after.batches - before.batches;
    let ms = |a: u64, b: u64| (a - b) as f64 / 1e6 / tx.max(1) as f64;
    format!(
        "transactions {tx}, {:.1} requests and {:.1} items a transaction, {} decided again \
         under locks; \
         ms a transaction: prepare {:.2}, reads (keys, members, locks, usage) {:.2}, \
         decide {:.2}, write {:.2}, commit {:.2}",
        batches as f64 / tx.max(1) as f64,
        items as f64 / tx.max(1) as f64,
        after.fallbacks - before.fallbacks,
        ms(after.prepare_nanos, before.prepare_nanos),
        ms(after.read_nanos, before.read_nanos),
        ms(after.decide_nanos, before.decide_nanos),
        ms(after.write_nanos, before.write_nanos),
        ms(after.commit_nanos, before.commit_nanos),
    )
}

async fn run_phase(
    label: &str,
    shared: &Arc<Shared>,
    store: &PostgresStore,
    clients: usize,
    items: usize,
    duration: Duration,
) -> PhaseResult {
    // One second of warm-up (not counted), then the measured run.
    for (measured, length) in [(false, Duration::from_secs(1)), (true, duration)] {
        let stop = Arc::new(AtomicBool::new(false));
        let stats_before = store.commit_stats();
        let wal_before = wal_lsn(store.pool()).await;
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| tokio::spawn(load_task(shared.clone(), items, stop.clone())))
            .collect();
        tokio::time::sleep(length).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = TaskResult::default();
        for task in tasks {
            let r = task.await.expect("load task");
            all.events += r.events;
            all.engine_us += r.engine_us;
            all.not_accepted += r.not_accepted;
            all.latencies_us.extend(r.latencies_us);
        }
        let elapsed = started.elapsed().as_secs_f64();
        if !measured {
            continue;
        }
        let wal = wal_lsn(store.pool()).await - wal_before;
        let stats_after = store.commit_stats();
        all.latencies_us.sort_unstable();
        let rate = all.events as f64 / elapsed;
        println!(
            "{label}: {rate:.0} events/s ({} events in {elapsed:.1} s, {} not accepted), \
             latency ms p50 {:.1} p99 {:.1} max {:.1}, WAL {:.0} B an event, \
             engine (parse, map, validate) {:.1} µs an event",
            all.events,
            all.not_accepted,
            percentile(&all.latencies_us, 0.5),
            percentile(&all.latencies_us, 0.99),
            percentile(&all.latencies_us, 1.0),
            wal as f64 / all.events.max(1) as f64,
            all.engine_us as f64 / all.events.max(1) as f64,
        );
        println!("  {}", stats_line(&stats_before, &stats_after));
        return PhaseResult {
            events_per_sec: rate,
        };
    }
    unreachable!()
}

/// The limit: the bulk phase's rows again, by plain set-based statements into the same tables
/// of another program, `clients` tasks, each statement one batch of `size` events, their
/// ledger entries and their members' balance updates, committed alone (autocommit).
async fn run_limit(
    pool: &PgPool,
    source_program: &str,
    clients: usize,
    size: usize,
    duration: Duration,
) -> f64 {
    // The rows to copy: the last `size` events of the bulk phase, with their ledger entries.
    let events = sqlx::query(
        "SELECT status, reason, error::text AS error, client_event_id, member_id, test, \
             received_at, occurred_at, points, awards::text AS awards, raw::text AS raw, \
             raw_truncated, mapped::text AS mapped, trace::text AS trace, \
             warnings::text AS warnings, id \
         FROM events WHERE program_id = $1 ORDER BY seq DESC LIMIT $2",
    )
    .bind(source_program)
    .bind(size as i64)
    .fetch_all(pool)
    .await
    .expect("read the bulk phase's events");
    assert!(!events.is_empty(), "the bulk phase stored no events");
    let ledger_of: std::collections::HashMap<String, Vec<(String, i64)>> = {
        let ids: Vec<String> = events.iter().map(|r| r.get::<String, _>("id")).collect();
        let rows = sqlx::query(
            "SELECT event_id, rule_id, points FROM ledger_entries \
             WHERE program_id = $1 AND event_id = ANY($2)",
        )
        .bind(source_program)
        .bind(&ids)
        .fetch_all(pool)
        .await
        .expect("read the ledger");
        let mut map: std::collections::HashMap<String, Vec<(String, i64)>> = Default::default();
        for row in rows {
            map.entry(row.get("event_id"))
                .or_default()
                .push((row.get("rule_id"), row.get("points")));
        }
        map
    };
    // A program, connector and members of its own (the same member ids, another program).
    let program = format!("prg_limit_{}", std::process::id());
    let connector = format!("con_limit_{}", std::process::id());
    pool.execute(
        format!(
            "INSERT INTO programs VALUES ('{program}', 'limit', 'email', true, 'x', now()); \
             INSERT INTO connectors (id, program_id, name, event_type, auth, mapping, test_mode, \
                 max_event_age_days, revision, created_at, updated_at, deleted) \
             VALUES ('{connector}', '{program}', 'limit', 'custom.basic', '{{}}', '', false, 30, 1, \
                 now(), now(), false)"
        )
        .as_str(),
    )
    .await
    .expect("limit program");
    let source_members: Vec<String> = {
        let mut m: Vec<String> = events
            .iter()
            .filter_map(|r| r.get::<Option<String>, _>("member_id"))
            .collect();
        m.sort();
        m.dedup();
        m
    };
    sqlx::query(
        "INSERT INTO members (program_id, id, balance, test, created_at) \
         SELECT $1, id, 0, false, now() FROM UNNEST($2::text[]) AS u(id)",
    )
    .bind(&program)
    .bind(&source_members)
    .execute(pool)
    .await
    .expect("limit members");

    let events = Arc::new(events);
    let ledger_of = Arc::new(ledger_of);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (pool, events, ledger_of, stop, count, counting) = (
            pool.clone(),
            events.clone(),
            ledger_of.clone(),
            stop.clone(),
            count.clone(),
            counting.clone(),
        );
        let (program, connector) = (program.clone(), connector.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                insert_limit_batch(&pool, &program, &connector, &events, &ledger_of).await;
                if counting.load(Ordering::Relaxed) {
                    count.fetch_add(events.len() as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let wal_before = wal_lsn(pool).await;
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    let counted = count.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let wal = wal_lsn(pool).await - wal_before;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("limit task");
    }
    let rate = counted as f64 / elapsed;
    let lines: usize = ledger_of.values().map(Vec::len).sum();
    println!(
        "limit ({clients} tasks, {} events + {lines} ledger entries + balances a statement): \
         {rate:.0} events/s, WAL {:.0} B an event",
        events.len(),
        wal as f64 / counted.max(1) as f64
    );
    rate
}

async fn insert_limit_batch(
    pool: &PgPool,
    program: &str,
    connector: &str,
    events: &[sqlx::postgres::PgRow],
    ledger_of: &std::collections::HashMap<String, Vec<(String, i64)>>,
) {
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut ord = Vec::with_capacity(n);
    let mut l_ord = Vec::new();
    let mut l_member = Vec::new();
    let mut l_event = Vec::new();
    let mut l_id = Vec::new();
    let mut l_rule = Vec::new();
    let mut l_points = Vec::new();
    let mut balances: std::collections::BTreeMap<String, i64> = Default::default();
    let get = |r: &sqlx::postgres::PgRow, c: &str| r.get::<Option<String>, _>(c);
    let mut k: i32 = 0;
    for row in events {
        let id = format!("evt_{}", uuid_like());
        k += 1;
        ord.push(k);
        let source: String = row.get("id");
        if let Some(lines) = ledger_of.get(&source) {
            let member: String = row.get("member_id");
            for (rule, points) in lines {
                k += 1;
                l_ord.push(k);
                l_member.push(member.clone());
                l_event.push(id.clone());
                l_id.push(format!("led_{}", uuid_like()));
                l_rule.push(rule.clone());
                l_points.push(*points);
                *balances.entry(member.clone()).or_default() += points;
            }
        }
        ids.push(id);
    }
    let (b_member, b_delta): (Vec<String>, Vec<i64>) = balances.into_iter().unzip();
    let col = |c: &str| events.iter().map(|r| get(r, c)).collect::<Vec<_>>();
    let bools = |c: &str| {
        events
            .iter()
            .map(|r| r.get::<bool, _>(c))
            .collect::<Vec<_>>()
    };
    let times = |c: &str| {
        events
            .iter()
            .map(|r| r.get::<Option<chrono::DateTime<Utc>>, _>(c))
            .collect::<Vec<_>>()
    };
    let points: Vec<i64> = events.iter().map(|r| r.get::<i64, _>("points")).collect();
    let result = sqlx::query(
        "WITH positions AS ( \
             SELECT ARRAY(SELECT nextval('loyalty_seq') FROM generate_series(1, $1::int)) AS s \
         ), e AS ( \
             INSERT INTO events (program_id, id, seq, connector_id, status, reason, error, \
                 client_event_id, original_event_id, member_id, test, received_at, occurred_at, \
                 points, awards, raw, raw_truncated, mapped, trace, warnings) \
             SELECT $2, q.id, p.s[q.ord], $3, q.status, q.reason, q.error::json, q.id, NULL, \
                 q.member_id, q.test, q.received_at, q.occurred_at, q.points, q.awards::json, \
                 q.raw::json, q.raw_truncated, q.mapped::json, q.trace::json, q.warnings::json \
             FROM positions p, UNNEST($4::int[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::text[], $10::bool[], $11::timestamptz[], $12::timestamptz[], \
                 $13::bigint[], $14::text[], $15::text[], $16::bool[], $17::text[], $18::text[], \
                 $19::text[]) AS q(ord, id, status, reason, error, member_id, test, received_at, \
                 occurred_at, points, awards, raw, raw_truncated, mapped, trace, warnings) \
         ), l AS ( \
             INSERT INTO ledger_entries (program_id, member_id, seq, id, event_id, connector_id, \
                 rule_id, points, test, created_at, occurred_at) \
             SELECT $2, q.member_id, p.s[q.ord], q.id, q.event_id, $3, q.rule_id, q.points, \
                 false, now(), now() \
             FROM positions p, UNNEST($20::int[], $21::text[], $22::text[], $23::text[], \
                 $24::text[], $25::bigint[]) AS q(ord, member_id, event_id, id, rule_id, points) \
         ) \
         UPDATE members m SET balance = m.balance + d.delta \
         FROM UNNEST($26::text[], $27::bigint[]) AS d(id, delta) \
         WHERE m.program_id = $2 AND m.id = d.id",
    )
    .bind(k)
    .bind(program)
    .bind(connector)
    .bind(&ord)
    .bind(&ids)
    .bind(
        events
            .iter()
            .map(|r| r.get::<String, _>("status"))
            .collect::<Vec<_>>(),
    )
    .bind(col("reason"))
    .bind(col("error"))
    .bind(col("member_id"))
    .bind(bools("test"))
    .bind(times("received_at"))
    .bind(times("occurred_at"))
    .bind(&points)
    .bind(col("awards"))
    .bind(col("raw"))
    .bind(bools("raw_truncated"))
    .bind(col("mapped"))
    .bind(col("trace"))
    .bind(col("warnings"))
    .bind(&l_ord)
    .bind(&l_member)
    .bind(&l_event)
    .bind(&l_id)
    .bind(&l_rule)
    .bind(&l_points)
    .bind(&b_member)
    .bind(&b_delta)
    .execute(pool)
    .await;
    if let Err(error) = result {
        // Two tasks updating the same balances may deadlock: the statement is simply lost.
        eprintln!("limit batch failed: {error}");
    }
}

fn uuid_like() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:032x}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let admin_options = PgConnectOptions::from_str(&args.url).expect("--url");
    let mut admin = PgConnection::connect_with(&admin_options)
        .await
        .expect("PostgreSQL is not reachable (see --url)");
    let database = format!(
        "pg_ingest_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    );
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .expect("CREATE DATABASE");
    if let Some(ms) = args.log_slow {
        // The slow statements and, with auto_explain, their plans (nested ones too: foreign-key
        // checks, functions) go to the server's log.
        for setting in [
            format!("log_min_duration_statement = {ms}"),
            "session_preload_libraries = 'auto_explain'".into(),
            format!("auto_explain.log_min_duration = {ms}"),
            "auto_explain.log_analyze = on".into(),
            "auto_explain.log_nested_statements = on".into(),
        ] {
            admin
                .execute(format!("ALTER DATABASE {database} SET {setting}").as_str())
                .await
                .expect("ALTER DATABASE");
        }
    }
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', \
         'commit_delay', 'shared_buffers', 'wal_compression', 'jit', 'server_version')",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap_or_default();
    println!(
        "database {database}; {}; loadavg {}",
        settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .next()
            .unwrap_or("?")
    );

    let mut options = PostgresOptions {
        max_connections: 16,
        ..Default::default()
    };
    if let Some(committers) = args.committers {
        options.committers = committers;
    }
    let store = PostgresStore::connect_with(admin_options.clone().database(&database), options)
        .await
        .expect("connect the store");
    if let Some(sql) = &args.setup_sql {
        store
            .pool()
            .execute(sql.as_str())
            .await
            .expect("--setup-sql");
    }
    let limits = Limits {
        // A bulk of 1000 of this payload is 1.5 MB.
        max_body_bytes: 16 * 1024 * 1024,
        max_request_mapping_time: Duration::from_secs(60),
        ..Limits::default()
    };
    let engine = Arc::new(Engine::with_limits(
        Arc::new(store.clone()),
        Arc::new(SystemClock),
        limits,
    ));
    let (program, _) = engine
        .create_program(ProgramSpec {
            name: "Readers".into(),
            ..Default::default()
        })
        .await
        .expect("program");
    let connector = engine
        .create_connector(&program.id, article_connector_spec())
        .await
        .expect("connector");
    engine
        .create_rule(&program.id, seed_rule_spec(&connector.id, 1))
        .await
        .expect("create the rule");
    assert!(QUERY.ends_with(TOKEN));
    let shared = Arc::new(Shared {
        engine,
        connector: connector.id.as_str().to_owned(),
        payload: Payload::new(),
        next_event: AtomicU64::new(0),
        members: args.members,
        run: (Utc::now().timestamp_micros() as u64 % 1_000_000) * 10_000_000_000,
    });
    let duration = Duration::from_secs(args.duration);
    let phases: Vec<&str> = args.phases.split(',').collect();

    if phases.contains(&"single") {
        for &clients in &args.clients {
            run_phase(
                &format!("single, {clients} tasks"),
                &shared,
                &store,
                clients,
                1,
                duration,
            )
            .await;
        }
    }
    let mut bulk = None;
    if phases.contains(&"bulk") {
        bulk = Some(
            run_phase(
                &format!("bulk of {}, {} tasks", args.bulk_size, args.bulk_clients),
                &shared,
                &store,
                args.bulk_clients,
                args.bulk_size,
                duration,
            )
            .await,
        );
    }
    if phases.contains(&"limit") {
        let limit = run_limit(
            store.pool(),
            program.id.as_str(),
            args.bulk_clients,
            args.bulk_size,
            duration,
        )
        .await;
        if let Some(bulk) = bulk {
            println!(
                "ratio bulk/limit: {:.2} (floor 0.5)",
                bulk.events_per_sec / limit
            );
        }
    }

    let pool = store.pool().clone();
    let sizes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT relname::text, pg_total_relation_size(oid) FROM pg_class \
         WHERE relname IN ('events', 'ledger_entries', 'member_usage', 'accepted_keys', 'members') \
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    println!(
        "table sizes (with indexes, MiB): {}",
        sizes
            .iter()
            .map(|(t, s)| format!("{t} {:.1}", *s as f64 / 1048576.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(shared);
    drop(store);
    pool.close().await;
    if !args.keep_db {
        let _ = admin
            .execute(format!("DROP DATABASE {database} WITH (FORCE)").as_str())
            .await;
    } else {
        println!("kept database {database}");
    }
}
