//! A replay of a large log on PostgreSQL: its rate, and the process's memory while it runs.
//!
//! ```sh
//! cargo run --release -p loyalty-store-postgres --example pg_replay -- \
//!     [--url postgres://postgres@127.0.0.1:5432/postgres] [--items 1000000] [--members 10000] \
//!     [--apply] [--keep-db]
//! ```
//!
//! On a database it creates (and drops unless `--keep-db`): the seed connector and rule, then
//! `--items` logged items that the mapping rejected (a counter sent as text, "7 articles"),
//! written straight into the log by one set-based statement a 100,000 (what ingestion would
//! have logged, without the time to ingest them); then a replay of them through the fixed
//! mapping, a dry run unless `--apply`. It prints the rate and the resident memory (VmRSS)
//! before, at every tenth of the run, and its peak (VmHWM): the replay pages through the log,
//! so the memory stays flat whatever the number of items.

use loyalty_core::clock::SystemClock;
use loyalty_core::ledger::ItemStatus;
use loyalty_core::program::ProgramSpec;
use loyalty_core::replay::{ReplayProgress, ReplaySpec};
use loyalty_core::testing::{article_connector_spec, seed_rule_spec, SEED_MAPPING};
use loyalty_core::Engine;
use loyalty_store_postgres::{PostgresOptions, PostgresStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    url: String,
    items: i64,
    members: i64,
    apply: bool,
    keep_db: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        items: 1_000_000,
        members: 10_000,
        apply: false,
        keep_db: false,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || {
            given
                .next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--url" => args.url = value(),
            "--items" => args.items = value().parse().expect("--items"),
            "--members" => args.members = value().parse().expect("--members"),
            "--apply" => args.apply = true,
            "--keep-db" => args.keep_db = true,
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// A line of /proc/self/status, in MiB.
fn memory(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let admin_options = PgConnectOptions::from_str(&args.url).expect("--url");
    let mut admin = PgConnection::connect_with(&admin_options)
        .await
        .expect("PostgreSQL is not reachable (see --url)");
    let database = format!("pg_replay_{}", std::process::id());
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .expect("CREATE DATABASE");
    let store = PostgresStore::connect_with(
        admin_options.clone().database(&database),
        PostgresOptions::default(),
    )
    .await
    .expect("connect the store");
    let pool = store.pool().clone();
    let engine = Arc::new(Engine::new(Arc::new(store), Arc::new(SystemClock)));
    let (program, _) = engine
        .create_program(ProgramSpec {
            name: "Readers".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let connector = engine
        .create_connector(&program.id, article_connector_spec())
        .await
        .unwrap();
    engine
        .create_rule(&program.id, seed_rule_spec(&connector.id, 1000))
        .await
        .unwrap();

    // The log: what ingestion logs for an item the mapping's output failed to validate.
    let started = Instant::now();
    let chunk = 100_000;
    let mut from = 0;
    while from < args.items {
        let to = (from + chunk).min(args.items);
        sqlx::query(
            "INSERT INTO events (program_id, id, seq, connector_id, status, error, \
                 client_event_id, test, received_at, points, awards, raw, raw_truncated, \
                 warnings) \
             SELECT $1, 'evt_bench' || g, nextval('loyalty_seq'), $2, 'rejected', \
                 json_build_object('code', 'validation_failed', \
                     'message', 'expected a number', 'path', '/payload/counters/0/value'), \
                 NULL, false, now() - interval '1 hour' + g * interval '1 millisecond', 0, \
                 '[]'::json, \
                 json_build_object('eventId', 'b-' || g, \
                     'timestamp', to_char(now() - interval '2 hours' + g * interval '1 millisecond', \
                         'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                     'profile', json_build_object('email', 'm' || (g % $5) || '@example.com'), \
                     'article', json_build_object('theme', 'sport', 'title', 'A match'), \
                     'totalArticlesRead', '7 articles'), \
                 false, '[]'::json \
             FROM generate_series($3::bigint, $4::bigint - 1) AS g",
        )
        .bind(program.id.as_str())
        .bind(connector.id.as_str())
        .bind(from)
        .bind(to)
        .bind(args.members)
        .execute(&pool)
        .await
        .expect("write the log");
        from = to;
    }
    pool.execute("ANALYZE events").await.unwrap();
    println!(
        "{} logged items written in {:.1} s",
        args.items,
        started.elapsed().as_secs_f64()
    );

    let fixed = SEED_MAPPING.replace(
        r#""value": totalArticlesRead"#,
        r#""value": $number($substringBefore($string(totalArticlesRead), " "))"#,
    );
    let record = engine
        .create_replay(
            &program.id,
            ReplaySpec {
                mapping: Some(fixed),
                statuses: Some(vec![ItemStatus::Rejected]),
                apply: args.apply,
                ..ReplaySpec::new(connector.id.clone())
            },
        )
        .await
        .unwrap();
    let progress = ReplayProgress::new();
    let rss_before = memory("VmRSS:");
    println!("resident before the replay: {rss_before:.1} MiB");
    let watcher = {
        let progress = progress.clone();
        let total = args.items as u64;
        tokio::spawn(async move {
            let mut next = total / 10;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let done = progress.processed();
                if done >= next && next > 0 {
                    println!(
                        "  {:>3}%  {done:>8} items  resident {:.1} MiB",
                        done * 100 / total,
                        memory("VmRSS:")
                    );
                    next += total / 10;
                }
                if done >= total {
                    return;
                }
            }
        })
    };
    let started = Instant::now();
    let ended = engine
        .run_recorded_replay(record, &progress)
        .await
        .expect("the replay");
    let seconds = started.elapsed().as_secs_f64();
    watcher.abort();
    let report = ended.report.expect("a report");
    println!(
        "replay ({}) of {} items: {:?} in {seconds:.1} s, {:.0} items/s; after: {} accepted, {} points, {} members changed",
        if args.apply { "applied" } else { "dry run" },
        ended.processed,
        ended.state,
        ended.processed as f64 / seconds,
        report.after.accepted,
        report.points.after,
        report.members.changed,
    );
    println!(
        "resident after: {:.1} MiB; peak resident (VmHWM) over the whole run: {:.1} MiB",
        memory("VmRSS:"),
        memory("VmHWM:")
    );
    pool.close().await;
    if !args.keep_db {
        let _ = admin
            .execute(format!("DROP DATABASE {database} WITH (FORCE)").as_str())
            .await;
    } else {
        println!("kept database {database}");
    }
}
