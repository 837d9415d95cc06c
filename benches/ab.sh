#!/usr/bin/env bash
# Alternates two server binaries on the memory store under the same wrk load, a fresh server a
# run, and prints each run's events/s and server CPU an event: how a change was judged.
#   benches/ab.sh OLD_BINARY NEW_BINARY single|bulk [PAIRS, default 3] [SECONDS, default 8]
# (single: one event a request at 64 connections; bulk: bulks of 100 at 16.) Needs a template
# written by benches/run.sh (target/bench-results/latest/template.json).
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 MODE=$3 PAIRS=${4:-3} SECONDS_A_RUN=${5:-8}
PORT=${PORT:-18290}
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
TEMPLATE="$TARGET_DIR/bench-results/latest/template.json"
LOADGEN="$TARGET_DIR/release/examples/loadgen"
TOKEN="ab-root-$RANDOM$RANDOM"
case "$MODE" in single) BULK=1 CONN=64 ;; bulk) BULK=100 CONN=16 ;; *) echo "single or bulk" >&2; exit 1 ;; esac
run() { # label binary
  "$2" --listen "127.0.0.1:$PORT" --admin-token "$TOKEN" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/programs" && break; sleep 0.1; done
  local setup path
  setup=$("$LOADGEN" --url "http://127.0.0.1:$PORT" --admin-token "$TOKEN" --setup-only 2>/dev/null)
  path=$(node -e 'console.log(JSON.parse(process.argv[1]).path)' "$setup")
  wrk -t2 -c"$CONN" -d2s --timeout 10s -s benches/wrk/ingest.lua "http://127.0.0.1:$PORT$path" -- "$BULK" "$TEMPLATE" 1000 "w$RANDOM" >/dev/null
  local t0 t1 line
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  line=$(wrk -t2 -c"$CONN" -d"${SECONDS_A_RUN}s" --timeout 10s -s benches/wrk/ingest.lua "http://127.0.0.1:$PORT$path" -- "$BULK" "$TEMPLATE" 1000 "m$RANDOM" | sed -n 's/^WRK_RESULT //p')
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  node -e '
    const [label, line, ticks, tck, bulk, load] = process.argv.slice(1);
    const w = JSON.parse(line), events = w.requests * Number(bulk), cpu = Number(ticks) / Number(tck);
    console.log(`${label.padEnd(4)} ${Math.round(events / (w.duration_us / 1e6)).toString().padStart(7)} events/s  ${((cpu * 1e6) / events).toFixed(1).padStart(6)} µs CPU/event  load ${load}`);
  ' "$1" "$line" "$((t1 - t0))" "$(getconf CLK_TCK)" "$BULK" "$(cut -d' ' -f1 /proc/loadavg)"
}
for _ in $(seq 1 "$PAIRS"); do run old "$A"; run new "$B"; done
