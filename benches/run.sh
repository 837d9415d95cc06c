#!/usr/bin/env bash
# Measures the five ratios of BENCHMARKS.md in one run, each against its floor, with every
# baseline run beside the server on this machine (about 5 minutes once built):
#
#   1. single events over HTTP (wrk, 64 connections): the server on the memory store / bare axum
#      parsing the same body (examples/bare_axum.rs);
#   2. events per server CPU-second in bulks of 100 (memory store, wrk at 16 connections) / npm
#      `jsonata` evaluations per CPU-second on the same mapping and payload
#      (benches/reference/bench.js: JSON.parse + evaluate + JSON.stringify);
#   3. bulks of 100 (wrk, 16 connections), events/s: memory store / bare axum on the same bulks;
#   4. PostgreSQL single events at 64 connections / pgbench one-row INSERT transactions at 64
#      clients;
#   5. PostgreSQL bulks of 100 at 16 connections, events/s / pgbench rows/s inserting 100 rows a
#      transaction at 16 clients.
#
# Every request carries the seed mapping's payload (benches/payload.json, 1.4 KB compact), each
# event its own event id, members cycling through 1000; the connector has the seed mapping and
# two rules (examples/loadgen.rs --setup-only creates them; benches/wrk/ingest.lua sends).
# pgbench runs on a one-table schema (id, member, points, JSON payload) in the benchmark's fresh
# database, with the payload bound as a parameter of each row (`-M prepared`), so that PostgreSQL
# parses every row's JSON as it does the server's. Server CPU is read from /proc/PID/stat
# (user + system) around each measured run. The PostgreSQL runs also report what each event
# writes: WAL bytes and records (pg_stat_wal), rows, index entries (pg_stat_user_tables times
# the table's indexes), commits, and, in a short run with `log_statement = all` on the
# benchmark's database only, statements (round trips) an event. The server runs as shipped:
# `RUST_LOG=info` (a log line a request), `synchronous_commit = on`.
#
# Knobs (environment): DURATION (s a measured run, default 10), WARMUP (s before each, default
# 2), SOAK (s of a PostgreSQL run of single events at 64 connections that prints the server's RSS
# every minute, default 0: skipped; SOAK=600 for the 10-minute run), ROUND_TRIPS=0 (skip the
# statement count), PORT_BASE (default 18080), SKIP_PG=1, KEEP_DB=1, DATABASE_URL (the PostgreSQL
# server, default postgres://postgres@127.0.0.1:5432/postgres), PG_LOG (its log file, for the
# statement count; default /var/log/postgresql/postgresql-15-main.log), WRK_THREADS (default 2),
# UPDATE_BENCHMARKS=1 (rewrite BENCHMARKS.md's script-output block with this run). Results go to
# target/bench-results/<stamp>/ (and target/bench-results/latest). Needs wrk, pgbench, psql,
# node and npm. All traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SOAK=${SOAK:-0}
PORT_BASE=${PORT_BASE:-18080}
WRK_THREADS=${WRK_THREADS:-2}
MEMBERS=1000
MEM_PORT=$PORT_BASE
PG_PORT=$((PORT_BASE + 1))
BARE_PORT=$((PORT_BASE + 10))
ADMIN_TOKEN="bench-root-$(date +%s)-$RANDOM"
PG_BASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_LOG=${PG_LOG:-/var/log/postgresql/postgresql-15-main.log}
CLK_TCK=$(getconf CLK_TCK)

for tool in wrk node npm curl; do
  command -v "$tool" >/dev/null || { echo "benches/run.sh needs $tool (wrk: apt-get install wrk)" >&2; exit 1; }
done

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$TARGET_DIR/bench-results/$STAMP"
mkdir -p "$OUT/logs"
ln -sfn "$STAMP" "$TARGET_DIR/bench-results/latest"
EXAMPLES="$TARGET_DIR/release/examples"
RESULTS="$OUT/runs.jsonl"
: >"$RESULTS"

say() { printf '\n== %s\n' "$*"; }
note() { printf '%s\n' "$*" | tee -a "$OUT/notes.txt" >&2; }

# ---- processes we start, stopped by pid on exit -----------------------------------------------
PIDS=()
PG_DB=""
cleanup() {
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$PG_DB" ] && [ "${KEEP_DB:-0}" != 1 ]; then
    psql "$PG_BASE_URL" -q -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

stop() { # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local kept=()
  for pid in "${PIDS[@]}"; do [ "$pid" != "$1" ] && kept+=("$pid"); done
  PIDS=("${kept[@]+"${kept[@]}"}")
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---- the machine ------------------------------------------------------------------------------
say "machine"
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc --version)"
  echo "node: $(node --version); $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2); $(pgbench --version 2>/dev/null || echo 'no pgbench')"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "loadavg_at_start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

# ---- build ------------------------------------------------------------------------------------
say "build (release)"
cargo build --release --example server --example bare_axum --example loadgen 2>&1 | tail -n 2
(cd benches/reference && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# The payload as every request carries it: compact, timestamped now, "@ID@" and "@MEMBER@" to be
# filled in by wrk; and the same payload, whole, for pgbench.
TEMPLATE="$OUT/template.json"
node -e '
  const p = JSON.parse(require("fs").readFileSync("benches/payload.json", "utf8"));
  p.eventId = "@ID@";
  p.timestamp = new Date().toISOString();
  p.profile.email = "reader@MEMBER@@example.com";
  process.stdout.write(JSON.stringify(p));' >"$TEMPLATE"
PAYLOAD_TEXT=$(node -e '
  const p = JSON.parse(require("fs").readFileSync("benches/payload.json", "utf8"));
  p.timestamp = new Date().toISOString();
  process.stdout.write(JSON.stringify(p));')
echo "payload: $(wc -c <"$TEMPLATE") bytes an event (compact)" | tee -a "$OUT/machine.txt"

# ---- wrk --------------------------------------------------------------------------------------
# wrk_run LABEL BULK CONNECTIONS URL PID [HEADER=VALUE ...]: a warm-up, then the measured run;
# appends one JSON line to runs.jsonl (events/s, server CPU, latency, errors, RSS).
wrk_run() {
  local label=$1 bulk=$2 connections=$3 url=$4 pid=$5
  shift 5
  echo "-- $label (loadavg $(cut -d' ' -f1 /proc/loadavg))" >&2
  if [ "$WARMUP" -gt 0 ]; then
    wrk -t"$WRK_THREADS" -c"$connections" -d"${WARMUP}s" --timeout 10s -s benches/wrk/ingest.lua \
      "$url" -- "$bulk" "$TEMPLATE" "$MEMBERS" "$label-warm-$RANDOM" "$@" >"$OUT/logs/$label-warmup.log" 2>&1
  fi
  local ticks0 rss0 ticks1 rss1
  ticks0=$(cpu_ticks "$pid")
  rss0=$(rss_kb "$pid")
  wrk -t"$WRK_THREADS" -c"$connections" -d"${DURATION}s" --timeout 10s -s benches/wrk/ingest.lua \
    "$url" -- "$bulk" "$TEMPLATE" "$MEMBERS" "$label-$RANDOM" "$@" >"$OUT/logs/$label.log" 2>&1
  ticks1=$(cpu_ticks "$pid")
  rss1=$(rss_kb "$pid")
  local line
  line=$(sed -n 's/^WRK_RESULT //p' "$OUT/logs/$label.log")
  [ -n "$line" ] || { echo "wrk gave no result for $label (see logs/$label.log)" >&2; exit 1; }
  node -e '
    const [label, bulk, connections, line, ticks, tck, rss0, rss1, load] = process.argv.slice(1);
    const w = JSON.parse(line);
    const seconds = w.duration_us / 1e6, events = w.requests * Number(bulk);
    const cpu = Number(ticks) / Number(tck);
    const errors = w.errors_connect + w.errors_read + w.errors_write + w.errors_status + w.errors_timeout;
    console.log(JSON.stringify({ label, bulk: Number(bulk), connections: Number(connections),
      seconds, requests: w.requests, events, events_per_sec: Math.round(events / seconds),
      server_cpu_s: cpu, server_cores: +(cpu / seconds).toFixed(2),
      events_per_cpu_sec: cpu > 0 ? Math.round(events / cpu) : null,
      server_cpu_us_per_event: cpu > 0 ? +((cpu * 1e6) / events).toFixed(1) : null,
      p50_ms: w.p50_ms, p99_ms: w.p99_ms, errors,
      rss_kb_start: Number(rss0), rss_kb_end: Number(rss1), loadavg_1m: Number(load) }));
  ' "$label" "$bulk" "$connections" "$line" "$((ticks1 - ticks0))" "$CLK_TCK" "$rss0" "$rss1" \
    "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RESULTS"
}

SERVER_PID=""
start_server() { # port, extra flags...
  local port=$1
  shift
  port_free "$port" || { echo "port $port is in use; set PORT_BASE" >&2; exit 1; }
  RUST_LOG="${SERVER_LOG:-info}" "$EXAMPLES/server" --listen "127.0.0.1:$port" --admin-token "$ADMIN_TOKEN" "$@" \
    >>"$OUT/logs/server-$port.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" \
      "http://127.0.0.1:$port/v1/programs" || true)" = 200 ] && return 0
    sleep 0.2
  done
  echo "the server did not come up on port $port (see logs/server-$port.log)" >&2
  exit 1
}

# Creates the program, the connector (query token) and the two rules on the server of PORT;
# sets INGEST_URL. One event is sent and must be accepted.
set_up() { # port
  local setup
  setup=$("$EXAMPLES/loadgen" --url "http://127.0.0.1:$1" --admin-token "$ADMIN_TOKEN" --auth query \
    --setup-only 2>>"$OUT/logs/setup.log")
  INGEST_URL="http://127.0.0.1:$1$(node -e 'console.log(JSON.parse(process.argv[1]).path)' "$setup")"
  local answer
  answer=$(sed -e 's/@ID@/bench-check-'"$RANDOM$RANDOM"'/' -e 's/@MEMBER@/000001/' "$TEMPLATE" |
    curl -s -X POST -H 'content-type: application/json' --data-binary @- "$INGEST_URL")
  case "$answer" in
    *'"accepted"'*) ;;
    *) echo "the set-up's check event was not accepted: $answer" >&2; exit 1 ;;
  esac
}

# ---- memory store and bare axum ---------------------------------------------------------------
say "HTTP: the server on the memory store vs bare axum (wrk, ${DURATION} s a run)"
port_free "$BARE_PORT" || { echo "port $BARE_PORT is in use; set PORT_BASE" >&2; exit 1; }
"$EXAMPLES/bare_axum" --listen "127.0.0.1:$BARE_PORT" >"$OUT/logs/bare_axum.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -d '{}' "http://127.0.0.1:$BARE_PORT/v1/incoming/x" || true)" = 200 ] && break
  sleep 0.1
done
BARE_URL="http://127.0.0.1:$BARE_PORT/v1/incoming/bare?token=unused"

# A fresh server for each memory run: the memory store keeps every event.
mem_run() { # label bulk connections
  start_server "$MEM_PORT"
  set_up "$MEM_PORT"
  wrk_run "$1" "$2" "$3" "$INGEST_URL" "$SERVER_PID"
  stop "$SERVER_PID"
}
wrk_run bare-single-c64 1 64 "$BARE_URL" "$BARE_PID"
mem_run mem-single-c64 1 64
wrk_run bare-bulk100-c16 100 16 "$BARE_URL" "$BARE_PID"
mem_run mem-bulk100-c16 100 16
stop "$BARE_PID"

say "JSONata reference (node, npm jsonata), evaluations per CPU-second"
node benches/reference/bench.js --duration "$DURATION" --warmup 3 | tee "$OUT/reference.json"

# ---- PostgreSQL -------------------------------------------------------------------------------
pg_snapshot() { # url: WAL, commits, rows and index entries so far (JSON)
  psql "$1" -qAtX -c "SELECT json_build_object(
    'wal_bytes', (SELECT wal_bytes FROM pg_stat_wal),
    'wal_records', (SELECT wal_records FROM pg_stat_wal),
    'commits', (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
    'rows', (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables),
    'index_entries', (SELECT coalesce(sum((t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd)
        * (SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid)), 0) FROM pg_stat_user_tables t))"
}
# pg_costs LABEL EVENTS BEFORE AFTER: what each event wrote, appended to pg_costs.jsonl.
pg_costs() {
  node -e '
    const [label, events, a, b] = process.argv.slice(1);
    const x = JSON.parse(a), y = JSON.parse(b), n = Number(events);
    const per = (k) => +((Number(y[k]) - Number(x[k])) / n).toFixed(2);
    console.log(JSON.stringify({ label, events: n, wal_bytes: per("wal_bytes"),
      wal_records: per("wal_records"), commits: per("commits"), rows: per("rows"),
      index_entries: per("index_entries") }));
  ' "$@" | tee -a "$OUT/pg_costs.jsonl"
}

PG_RUN=1
if [ "${SKIP_PG:-0}" = 1 ]; then
  PG_RUN=0
  note "PostgreSQL runs skipped (SKIP_PG=1)."
elif ! command -v pgbench >/dev/null || ! psql "$PG_BASE_URL" -qAtc 'select 1' >/dev/null 2>&1; then
  PG_RUN=0
  note "PostgreSQL runs skipped: no pgbench, or nothing answers at DATABASE_URL ($PG_BASE_URL)."
fi
if [ "$PG_RUN" = 1 ]; then
  say "PostgreSQL: pgbench and the server, one fresh database"
  PG_DB="loyalty_bench_$(date +%s)"
  psql "$PG_BASE_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >/dev/null
  query=""
  case "$PG_BASE_URL" in *\?*) query="?${PG_BASE_URL#*\?}" ;; esac
  without_query=${PG_BASE_URL%%\?*}
  PG_URL="${without_query%/*}/$PG_DB$query"
  echo "database $PG_DB; synchronous_commit=$(psql "$PG_URL" -Atc 'show synchronous_commit')" |
    tee -a "$OUT/machine.txt"

  # pgbench: one table, its own schema so that it never meets the server's tables.
  psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "CREATE SCHEMA pgbench_plain;
    CREATE TABLE pgbench_plain.rows (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      member text NOT NULL, points bigint NOT NULL, payload jsonb NOT NULL)" >/dev/null
  printf '%s\n' '\set member random(1, 1000)' \
    "INSERT INTO pgbench_plain.rows (member, points, payload) VALUES ('reader' || (:member)::text, 10, :payload);" \
    >"$OUT/pgbench-single.sql"
  node -e '
    const rows = [];
    for (let i = 0; i < 100; i++) rows.push("(\x27reader\x27 || (1 + floor(random() * 1000))::int, 10, :payload)");
    console.log("INSERT INTO pgbench_plain.rows (member, points, payload) VALUES " + rows.join(", ") + ";");
  ' >"$OUT/pgbench-bulk100.sql"
  pgbench_run() { # label clients rows_a_transaction script
    echo "-- $1 (loadavg $(cut -d' ' -f1 /proc/loadavg))" >&2
    local before after tps
    before=$(pg_snapshot "$PG_URL")
    pgbench -n -M prepared -c "$2" -j 2 -T "$DURATION" -D "payload=$PAYLOAD_TEXT" -f "$4" "$PG_URL" \
      >"$OUT/logs/$1.log" 2>&1
    sleep 11 # an idle backend flushes its statistics to pg_stat_* within 10 s
    after=$(pg_snapshot "$PG_URL")
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$OUT/logs/$1.log")
    [ -n "$tps" ] || { echo "pgbench gave no rate for $1 (see logs/$1.log)" >&2; exit 1; }
    local transactions
    transactions=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$OUT/logs/$1.log")
    node -e '
      const [label, clients, rows, tps] = process.argv.slice(1);
      console.log(JSON.stringify({ label, clients: Number(clients), rows_a_transaction: Number(rows),
        transactions_per_sec: Math.round(Number(tps)), rows_per_sec: Math.round(Number(tps) * Number(rows)) }));
    ' "$1" "$2" "$3" "$tps" | tee -a "$OUT/pgbench.jsonl"
    pg_costs "$1" "$((transactions * $3))" "$before" "$after" >/dev/null
  }
  pgbench_run pgbench-single-c64 64 1 "$OUT/pgbench-single.sql"
  pgbench_run pgbench-bulk100-c16 16 100 "$OUT/pgbench-bulk100.sql"

  pg_server_run() { # label bulk connections
    local before after events
    before=$(pg_snapshot "$PG_URL")
    wrk_run "$1" "$2" "$3" "$INGEST_URL" "$SERVER_PID"
    sleep 11
    after=$(pg_snapshot "$PG_URL")
    # The warm-up's events count too (they are in the statistics): wrk counts them in its log.
    events=$(node -e '
      const fs = require("fs");
      let n = 0;
      for (const f of process.argv.slice(2)) {
        const m = /^WRK_RESULT (.*)$/m.exec(fs.readFileSync(f, "utf8"));
        if (m) n += JSON.parse(m[1]).requests;
      }
      console.log(n);' "$OUT/logs/$1.log" "$OUT/logs/$1-warmup.log")
    pg_costs "$1" "$((events * $2))" "$before" "$after" >/dev/null
  }
  start_server "$PG_PORT" --database-url "$PG_URL"
  set_up "$PG_PORT"
  pg_server_run pg-single-c64 1 64
  pg_server_run pg-bulk100-c16 100 16
  stop "$SERVER_PID"

  # Statements an event: a short run of each with every statement of this database logged.
  if [ "${ROUND_TRIPS:-1}" = 1 ] && [ -r "$PG_LOG" ]; then
    say "PostgreSQL: statements (round trips) an event, log_statement = all on $PG_DB"
    psql "$PG_URL" -q -c "ALTER DATABASE $PG_DB SET log_statement = 'all'" >/dev/null
    start_server "$PG_PORT" --database-url "$PG_URL"
    set_up "$PG_PORT"
    for spec in "pg-statements-single-c64 1 64" "pg-statements-bulk100-c16 100 16"; do
      set -- $spec
      offset=$(stat -c %s "$PG_LOG")
      wrk -t"$WRK_THREADS" -c"$3" -d3s --timeout 10s -s benches/wrk/ingest.lua "$INGEST_URL" -- \
        "$2" "$TEMPLATE" "$MEMBERS" "$1-$RANDOM" >"$OUT/logs/$1.log" 2>&1
      sleep 1
      statements=$(tail -c +"$((offset + 1))" "$PG_LOG" | grep -c "@$PG_DB .*LOG:  \(statement\|execute\)" || true)
      requests=$(sed -n 's/^WRK_RESULT .*"requests":\([0-9]*\),.*/\1/p' "$OUT/logs/$1.log")
      node -e '
        const [label, statements, events] = process.argv.slice(1).map((x, i) => (i ? Number(x) : x));
        console.log(JSON.stringify({ label, events, statements, statements_per_event: +(statements / events).toFixed(3) }));
      ' "$1" "$statements" "$((requests * $2))" | tee -a "$OUT/pg_statements.jsonl"
    done
    stop "$SERVER_PID"
    psql "$PG_URL" -q -c "ALTER DATABASE $PG_DB RESET log_statement" >/dev/null
  fi

  if [ "$SOAK" -gt 0 ]; then
    say "PostgreSQL soak: single events at 64 connections for $SOAK s, the server's RSS every minute"
    start_server "$PG_PORT" --database-url "$PG_URL"
    set_up "$PG_PORT"
    echo "{\"second\":0,\"rss_kb\":$(rss_kb "$SERVER_PID")}" | tee "$OUT/soak.jsonl"
    wrk -t"$WRK_THREADS" -c64 -d"${SOAK}s" --timeout 10s -s benches/wrk/ingest.lua "$INGEST_URL" -- \
      1 "$TEMPLATE" "$MEMBERS" "soak-$RANDOM" >"$OUT/logs/soak.log" 2>&1 &
    WRK_PID=$!
    PIDS+=("$WRK_PID")
    for ((second = 60; second <= SOAK; second += 60)); do
      sleep 60
      echo "{\"second\":$second,\"rss_kb\":$(rss_kb "$SERVER_PID")}" | tee -a "$OUT/soak.jsonl"
    done
    wait "$WRK_PID" || true
    echo "{\"second\":\"end\",\"rss_kb\":$(rss_kb "$SERVER_PID")}" | tee -a "$OUT/soak.jsonl"
    sed -n 's/^WRK_RESULT //p' "$OUT/logs/soak.log" | tee -a "$OUT/soak.jsonl"
    stop "$SERVER_PID"
  fi
fi

# ---- summary ----------------------------------------------------------------------------------
say "summary"
echo "loadavg_at_end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
node - "$OUT" <<'EOF' | tee "$OUT/summary.md"
const fs = require('fs'), path = require('path');
const out = process.argv[2];
const lines = (f) => { try { return fs.readFileSync(path.join(out, f), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l)); } catch { return []; } };
const byLabel = (f) => Object.fromEntries(lines(f).filter((r) => r.label).map((r) => [r.label, r]));
const runs = byLabel('runs.jsonl'), pgb = byLabel('pgbench.jsonl'), costs = byLabel('pg_costs.jsonl');
const statements = byLabel('pg_statements.jsonl');
const ref = lines('reference.json').pop() || {};
const k = (x) => (x == null ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const get = (o, key) => (o ? o[key] : null);
const rows = [
  ['single events over HTTP, memory store / bare axum parsing the same body (64 connections)',
    get(runs['mem-single-c64'], 'events_per_sec'), get(runs['bare-single-c64'], 'events_per_sec'), 0.6, 'events/s'],
  ['events per server CPU-second, bulks of 100 / npm `jsonata` evaluations per CPU-second',
    get(runs['mem-bulk100-c16'], 'events_per_cpu_sec'), ref.evaluations_per_cpu_sec, 3, 'per CPU-s'],
  ['bulks of 100, events/s / bare axum on the same bulks (16 connections)',
    get(runs['mem-bulk100-c16'], 'events_per_sec'), get(runs['bare-bulk100-c16'], 'events_per_sec'), 0.75, 'events/s'],
  ['PostgreSQL single events at 64 connections / pgbench one-row INSERT transactions at 64 clients',
    get(runs['pg-single-c64'], 'events_per_sec'), get(pgb['pgbench-single-c64'], 'transactions_per_sec'), 0.7, '/s'],
  ['PostgreSQL bulks of 100 over HTTP, events/s / pgbench rows/s, 100 rows a transaction at 16 clients',
    get(runs['pg-bulk100-c16'], 'events_per_sec'), get(pgb['pgbench-bulk100-c16'], 'rows_per_sec'), 0.15, '/s'],
];
const md = ['### The five ratios', '', '| ratio | ours | baseline | ratio | floor | verdict |', '|---|---|---|---|---|---|'];
for (const [name, ours, base, floor] of rows) {
  const r = ours && base ? ours / base : null;
  md.push(`| ${name} | ${k(ours)} | ${k(base)} | ${r == null ? 'n/a' : r.toFixed(2)} | ${floor} | ${r == null ? 'n/a' : r >= floor ? 'met' : '**MISSED**'} |`);
}
md.push('', '### Runs (wrk; server CPU from /proc/PID/stat)', '',
  '| run | events/s | requests/s | server cores | server CPU µs/event | events per CPU-s | p50 ms | p99 ms | errors | RSS start→end MiB | load avg |',
  '|---|---|---|---|---|---|---|---|---|---|---|');
const mib = (kb) => (kb == null ? '?' : (kb / 1024).toFixed(0));
for (const r of Object.values(runs)) {
  md.push(`| ${r.label} | ${k(r.events_per_sec)} | ${k(r.requests / r.seconds)} | ${r.server_cores} | ${r.server_cpu_us_per_event} | ${k(r.events_per_cpu_sec)} | ${r.p50_ms.toFixed(2)} | ${r.p99_ms.toFixed(2)} | ${r.errors} | ${mib(r.rss_kb_start)}→${mib(r.rss_kb_end)} | ${r.loadavg_1m} |`);
}
md.push(`| npm jsonata ${ref.version || '?'} (node ${ref.node || '?'}), parse + evaluate + stringify | ${k(ref.evaluations_per_sec)} evaluations/s | | | ${ref.mean_us} µs wall | ${k(ref.evaluations_per_cpu_sec)} | | | | | |`);
for (const r of Object.values(pgb)) {
  md.push(`| ${r.label} (${r.rows_a_transaction} row(s) a transaction) | ${k(r.rows_per_sec)} rows/s | ${k(r.transactions_per_sec)} transactions/s | | | | | | | | |`);
}
if (Object.keys(costs).length) {
  md.push('', '### What each event (pgbench: each row) writes in PostgreSQL', '',
    '| run | WAL bytes | WAL records | rows written | index entries | commits | statements (round trips) |', '|---|---|---|---|---|---|---|');
  const st = { 'pg-single-c64': statements['pg-statements-single-c64'], 'pg-bulk100-c16': statements['pg-statements-bulk100-c16'],
    'pgbench-single-c64': { statements_per_event: 1 }, 'pgbench-bulk100-c16': { statements_per_event: 0.01 } };
  for (const c of Object.values(costs)) {
    md.push(`| ${c.label} | ${k(c.wal_bytes)} | ${c.wal_records} | ${c.rows} | ${c.index_entries} | ${c.commits} | ${st[c.label] ? st[c.label].statements_per_event : 'n/a'} |`);
  }
  md.push('', 'WAL is the whole cluster\'s (pg_stat_wal): other databases\' writes during a run count too.');
}
const soak = lines('soak.jsonl');
if (soak.length) {
  md.push('', '### PostgreSQL soak (single events, 64 connections): server RSS', '', '| second | RSS MiB |', '|---|---|');
  for (const s of soak.filter((s) => s.rss_kb != null)) md.push(`| ${s.second} | ${(s.rss_kb / 1024).toFixed(1)} |`);
  const w = soak.find((s) => s.requests != null);
  if (w) md.push('', `${k(w.requests)} events in ${(w.duration_us / 1e6).toFixed(0)} s (${k(w.requests / (w.duration_us / 1e6))}/s), errors: ${w.errors_connect + w.errors_read + w.errors_write + w.errors_status + w.errors_timeout}.`);
}
console.log(md.join('\n'));
EOF

# ---- BENCHMARKS.md (UPDATE_BENCHMARKS=1) --------------------------------------------------------
# Rewrites the block between the "script output" markers of BENCHMARKS.md with this run's machine
# and summary; the prose around it (analysis, history) is written by hand.
if [ "${UPDATE_BENCHMARKS:-0}" = 1 ]; then
  node - "$OUT" "$ROOT/BENCHMARKS.md" <<'EOF'
const fs = require('fs'), path = require('path');
const [out, file] = process.argv.slice(2);
const start = '<!-- script output: start -->', end = '<!-- script output: end -->';
const text = fs.readFileSync(file, 'utf8');
const a = text.indexOf(start), b = text.indexOf(end);
if (a < 0 || b < a) { console.error(`BENCHMARKS.md has no "${start}" … "${end}" block`); process.exit(1); }
const machine = fs.readFileSync(path.join(out, 'machine.txt'), 'utf8').trim();
const summary = fs.readFileSync(path.join(out, 'summary.md'), 'utf8').trim();
const fence = '`'.repeat(3);
const block = [start, '', '`target/bench-results/' + path.basename(out) + '`', '', fence, machine, fence, '', summary, '', ''].join('\n');
fs.writeFileSync(file, text.slice(0, a) + block + text.slice(b));
console.log(`BENCHMARKS.md: script output block rewritten from ${out}`);
EOF
fi
echo
echo "raw results: $OUT"
