#!/usr/bin/env bash
# The real-time numbers of BENCHMARKS.md ("Real time"), on this machine, loopback only:
#
#   1. builds the release example server and load generator;
#   2. ingestion side by side, on each store (memory, and PostgreSQL in a fresh database per
#      run), one event a request: nothing else; 1 and 10 webhook endpoints (a receiver inside
#      the load generator; delivery latency from the change's time to its receipt);
#      100 stream clients reading; 1000 stream clients that never read. Each run has its own
#      server process (a run's webhook backlog never leaks into the next), and the configurations
#      alternate, ROUNDS times;
#   3. the change feed's cost for a member with a long ledger (benches/feed_cost.py) on
#      PostgreSQL;
#   4. prints a table of medians and writes every result line to
#      $CARGO_TARGET_DIR/realtime-results/<stamp>/ (and .../latest).
#
# Knobs (environment): DURATION (s a run, default 10), WARMUP (s, default 1), CONNECTIONS
# (default 16), ROUNDS (default 2), STORES (default "memory postgres"), CONFIGS (default all:
# "plain webhooks1 webhooks10 stream100 stalled1000"), FEED_ENTRIES (default 10000; 0 skips
# step 3), PORT (default 18190), DATABASE_URL (PostgreSQL server, default the local one).
# Take the benchmark lock around it on a shared machine: `flock /work/bench.lock benches/realtime.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-16}
ROUNDS=${ROUNDS:-2}
STORES=${STORES:-memory postgres}
CONFIGS=${CONFIGS:-plain webhooks1 webhooks10 stream100 stalled1000}
FEED_ENTRIES=${FEED_ENTRIES:-10000}
PORT=${PORT:-18190}
PG_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
TOKEN="realtime-bench-$(date +%s)-$RANDOM"
TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$TARGET_DIR/realtime-results/$STAMP"
mkdir -p "$OUT"
ln -sfn "$STAMP" "$TARGET_DIR/realtime-results/latest"
EXAMPLES="$TARGET_DIR/release/examples"
# 1000 stalled clients and 100 readers: a socket each, in the server and here.
ulimit -n 65536 2>/dev/null || true

SERVER_PID=""
DATABASE=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
  if [ -n "$DATABASE" ]; then
    psql "$PG_URL" -q -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1 || true
    DATABASE=""
  fi
}
trap stop_server EXIT

start_server() { # store
  local flags=(--listen "127.0.0.1:$PORT" --admin-token "$TOKEN" --allow-private-webhook-targets)
  if [ "$1" = postgres ]; then
    DATABASE="loyalty_realtime_bench_$$"
    psql "$PG_URL" -q -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null
    psql "$PG_URL" -q -c "CREATE DATABASE $DATABASE" >/dev/null
    flags+=(--database-url "${PG_URL%/*}/$DATABASE")
  fi
  env -u DATABASE_URL RUST_LOG=warn "$EXAMPLES/server" "${flags[@]}" >>"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$OUT/server.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "the server did not answer" >&2
  exit 1
}

config_flags() {
  case "$1" in
    plain) echo "" ;;
    webhooks1) echo "--webhook-endpoints 1" ;;
    webhooks10) echo "--webhook-endpoints 10" ;;
    stream100) echo "--stream-clients 100" ;;
    stalled1000) echo "--stalled-stream-clients 1000" ;;
    *) echo "unknown configuration $1" >&2; exit 1 ;;
  esac
}

echo "== build (release)"
cargo build --release --quiet --example server --example loadgen
echo "load before: $(uptime)" | tee "$OUT/notes.txt"

echo "== ingestion beside webhooks and stream clients ($ROUNDS rounds, ${DURATION}s a run)"
for round in $(seq 1 "$ROUNDS"); do
  for store in $STORES; do
    for config in $CONFIGS; do
      start_server "$store"
      # shellcheck disable=SC2046
      "$EXAMPLES/loadgen" --url "http://127.0.0.1:$PORT" --admin-token "$TOKEN" \
        --duration "$DURATION" --warmup "$WARMUP" --connections "$CONNECTIONS" --mode single \
        --server-pid "$SERVER_PID" --label "$store/$config/$round" $(config_flags "$config") \
        2>>"$OUT/loadgen.log" | tee -a "$OUT/results.jsonl"
      stop_server
    done
  done
done

if [ "$FEED_ENTRIES" -gt 0 ]; then
  echo "== the feed's cost for a member with $FEED_ENTRIES ledger entries (PostgreSQL)"
  start_server postgres
  python3 benches/feed_cost.py --url "http://127.0.0.1:$PORT" --admin-token "$TOKEN" \
    --entries "$FEED_ENTRIES" | tee "$OUT/feed_cost.json"
  stop_server
fi
echo "load after: $(uptime)" | tee -a "$OUT/notes.txt"

echo "== medians by store and configuration"
python3 - "$OUT/results.jsonl" <<'EOF' | tee "$OUT/table.md"
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    store, config, _ = r["label"].split("/")
    runs.setdefault((store, config), []).append(r)
def med(rs, key, scale=1):
    values = [r[key] for r in rs if r.get(key) is not None]
    return "" if not values else f"{statistics.median(values) / scale:,.1f}"
print("| store | with | events/s | server CPU µs/event | p99 ms | server RSS end MiB | webhook deliveries/s | webhook p50 ms | webhook p99 ms | stream p50 ms | stream p99 ms | runs |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (store, config), rs in runs.items():
    print(f"| {store} | {config} | {med(rs, 'events_per_sec')} | {med(rs, 'server_cpu_us_per_event')} "
          f"| {med(rs, 'p99_ms')} | {med(rs, 'server_rss_kb_end', 1024)} "
          f"| {med(rs, 'webhook_deliveries_per_sec')} | {med(rs, 'webhook_p50_ms')} | {med(rs, 'webhook_p99_ms')} "
          f"| {med(rs, 'stream_p50_ms')} | {med(rs, 'stream_p99_ms')} | {len(rs)} |")
EOF
echo "results in $OUT"
