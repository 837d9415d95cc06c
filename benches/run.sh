#!/usr/bin/env bash
# Regenerates every number of BENCHMARKS.md, on this machine, in about 6–9 minutes (once built):
#
#   1. builds the release examples (server, bare_axum, loadgen) and the criterion bench;
#   2. criterion: the mapping alone, 10 rules, the whole engine in memory (single and bulk 100);
#   3. the JSONata reference (node, npm jsonata pinned) on the same mapping and payload;
#   4. HTTP: bare axum vs the example server (memory store) for 1, 16 and 64 connections one
#      event a request, bulks of 100, and each authentication scheme (query, header, hub);
#   5. the same server on PostgreSQL (a fresh database) when DATABASE_URL is set or PostgreSQL
#      answers on 127.0.0.1:5432, with a longer run that watches the server's RSS; then the
#      store alone (examples/pg_ingest: single events at 16 and 64 tasks, bulks of 1000, and the
#      plain set-based insert of the same rows, the database's limit);
#   6. prints the ratios side by side and writes everything to target/bench-results/<stamp>/
#      (and target/bench-results/latest).
#
# Knobs (environment): DURATION (s per load run, default 10), WARMUP (s, default 1),
# SOAK (s of the PostgreSQL memory run, default 60; 0 skips it), MEASURE (criterion
# measurement s, default 3), PORT_BASE (default 18080), SKIP_PG=1, SKIP_HTTP=1,
# KEEP_DB=1 (keep the benchmark database), DATABASE_URL (PostgreSQL server to use),
# UPDATE_BENCHMARKS=1 (rewrite BENCHMARKS.md's script-output block with this run),
# SERVER_LOG (the server's RUST_LOG, default info: one log line a request, as shipped).
# All traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
SOAK=${SOAK:-60}
MEASURE=${MEASURE:-3}
PORT_BASE=${PORT_BASE:-18080}
MEM_PORT=$PORT_BASE
PG_PORT=$((PORT_BASE + 1))
BARE_PORT=$((PORT_BASE + 10))
ADMIN_TOKEN="bench-root-$(date +%s)-$RANDOM"

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$TARGET_DIR/bench-results/$STAMP"
mkdir -p "$OUT/logs"
ln -sfn "$STAMP" "$TARGET_DIR/bench-results/latest"
EXAMPLES="$TARGET_DIR/release/examples"

say() { printf '\n== %s\n' "$*"; }
note() { printf '%s\n' "$*" | tee -a "$OUT/notes.txt" >&2; }

# ---- processes we start, stopped by pid on exit -----------------------------------------------
PIDS=()
PG_DB=""
PG_ADMIN_URL=""
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$PG_DB" ] && [ "${KEEP_DB:-0}" != 1 ]; then
    psql "$PG_ADMIN_URL" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
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

wait_http() { # url what [auth header]
  for _ in $(seq 1 300); do
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' ${3:+-H "$3"} "$1" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.2
  done
  echo "$2 did not come up ($1)" >&2
  return 1
}

# ---- the machine ------------------------------------------------------------------------------
say "machine"
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "ram: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc --version)"
  echo "node: $(node --version)"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "loadavg_at_start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

# ---- build ------------------------------------------------------------------------------------
say "build (release)"
cargo build --release --example bare_axum --example loadgen 2>&1 | tail -n 3
HAVE_SERVER=1
if ! cargo build --release --example server >"$OUT/logs/build-server.log" 2>&1; then
  HAVE_SERVER=0
  note "WARNING: 'cargo build --release --example server' failed (see logs/build-server.log): the server runs are skipped."
fi
cargo bench --bench pipeline --no-run 2>&1 | tail -n 2
HAVE_PG_INGEST=1
if ! cargo build --release -p loyalty-store-postgres --example pg_ingest >"$OUT/logs/build-pg_ingest.log" 2>&1; then
  HAVE_PG_INGEST=0
  note "WARNING: the pg_ingest build failed (see logs/build-pg_ingest.log): the store-level PostgreSQL run is skipped."
fi

# ---- criterion --------------------------------------------------------------------------------
say "criterion (warm-up 1 s, measurement ${MEASURE} s a bench)"
cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time "$MEASURE" --noplot \
  2>&1 | tee "$OUT/logs/criterion.log" | grep -E '^[a-z_]+/|time:|thrpt:' || true
node - "$TARGET_DIR/criterion" >"$OUT/criterion.json" <<'EOF'
const fs = require('fs'), path = require('path');
const base = process.argv[2];
const benches = {
  mapping_seed: 'mapping/seed_parse_apply_output', mapping_parse: 'mapping/parse_only',
  mapping_apply: 'mapping/apply_only', rules_10: 'rules/evaluate_10_mixed',
  engine_single: 'engine/single/1', engine_bulk100: 'engine/bulk/100',
};
const elements = { engine_bulk100: 100 };
const out = {};
for (const [key, dir] of Object.entries(benches)) {
  const file = path.join(base, dir, 'new', 'estimates.json');
  if (!fs.existsSync(file)) continue;
  const e = JSON.parse(fs.readFileSync(file, 'utf8'));
  const ns = e.mean.point_estimate / (elements[key] || 1);
  out[key] = { bench: dir, ns_per_element: Math.round(ns), per_sec: Math.round(1e9 / ns),
    ci95_ns: [e.mean.confidence_interval.lower_bound, e.mean.confidence_interval.upper_bound]
      .map((x) => Math.round(x / (elements[key] || 1))) };
}
console.log(JSON.stringify(out, null, 1));
EOF

# ---- the JSONata reference --------------------------------------------------------------------
say "JSONata reference (node)"
(cd benches/reference && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
node benches/reference/bench.js --duration 10 --warmup 3 | tee "$OUT/reference.json"

# ---- HTTP -------------------------------------------------------------------------------------
LOADGEN_OUT="$OUT/loadgen.jsonl"
: >"$LOADGEN_OUT"

loadgen() { # label, then loadgen flags
  local label=$1
  shift
  echo "-- $label (loadavg $(cut -d' ' -f1 /proc/loadavg))" >&2
  "$EXAMPLES/loadgen" --label "$label" --duration "$DURATION" --warmup "$WARMUP" "$@" \
    2>"$OUT/logs/$label.log" | tee -a "$LOADGEN_OUT"
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
  wait_http "http://127.0.0.1:$port/v1/programs" "the server" "Authorization: Bearer $ADMIN_TOKEN"
}

# One engine run on a fresh in-memory server (the memory store keeps every event, so a fresh
# process per run keeps runs comparable and memory bounded).
engine_mem() { # label, loadgen flags...
  local label=$1
  shift
  start_server "$MEM_PORT"
  loadgen "$label" --url "http://127.0.0.1:$MEM_PORT" --admin-token "$ADMIN_TOKEN" \
    --server-pid "$SERVER_PID" "$@"
  stop "$SERVER_PID"
}

if [ "${SKIP_HTTP:-0}" != 1 ]; then
  say "HTTP: bare axum vs the server, memory store (${DURATION} s a run)"
  port_free "$BARE_PORT" || { echo "port $BARE_PORT is in use; set PORT_BASE" >&2; exit 1; }
  "$EXAMPLES/bare_axum" --listen "127.0.0.1:$BARE_PORT" >"$OUT/logs/bare_axum.log" 2>&1 &
  BARE_PID=$!
  PIDS+=("$BARE_PID")
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
      -d '{}' "http://127.0.0.1:$BARE_PORT/v1/incoming/x" || true)" = 200 ] && break
    sleep 0.1
  done
  BARE=(--target bare --url "http://127.0.0.1:$BARE_PORT" --server-pid "$BARE_PID")
  # Bare and engine runs alternate, so that a change in the machine's load hits both.
  for c in 1 16 64; do
    loadgen "bare-single-c$c" "${BARE[@]}" --connections "$c" --mode single
    if [ "$HAVE_SERVER" = 1 ]; then
      engine_mem "mem-single-c$c-query" --connections "$c" --mode single --auth query
    fi
  done
  loadgen "bare-bulk100-c16" "${BARE[@]}" --connections 16 --mode bulk --bulk-size 100
  if [ "$HAVE_SERVER" = 1 ]; then
    engine_mem "mem-bulk100-c16-query" --connections 16 --mode bulk --bulk-size 100 --auth query
    engine_mem "mem-bulk100-c4-hub" --connections 4 --mode bulk --bulk-size 100 --auth hub
    engine_mem "mem-single-c16-header" --connections 16 --mode single --auth header
    engine_mem "mem-single-c16-hub" --connections 16 --mode single --auth hub
  fi
  stop "$BARE_PID"

  # ---- PostgreSQL -----------------------------------------------------------------------------
  PG_BASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  if [ "${SKIP_PG:-0}" = 1 ] || [ "$HAVE_SERVER" != 1 ]; then
    note "PostgreSQL runs skipped."
  elif [ -z "${DATABASE_URL:-}" ] && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    note "PostgreSQL runs skipped: DATABASE_URL is not set and nothing answers on 127.0.0.1:5432."
  else
    say "HTTP: the server on PostgreSQL (fresh database)"
    PG_DB="loyalty_bench_$(date +%s)"
    PG_ADMIN_URL=$PG_BASE_URL
    psql "$PG_ADMIN_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >/dev/null
    query=""
    case "$PG_BASE_URL" in *\?*) query="?${PG_BASE_URL#*\?}" ;; esac
    without_query=${PG_BASE_URL%%\?*}
    PG_URL="${without_query%/*}/$PG_DB$query"
    echo "database $PG_DB; synchronous_commit=$(psql "$PG_URL" -Atc 'show synchronous_commit')" |
      tee -a "$OUT/machine.txt"
    start_server "$PG_PORT" --database-url "$PG_URL"
    PG_FLAGS=(--url "http://127.0.0.1:$PG_PORT" --admin-token "$ADMIN_TOKEN" --server-pid "$SERVER_PID")
    loadgen "pg-single-c16-query" "${PG_FLAGS[@]}" --connections 16 --mode single --auth query
    loadgen "pg-single-c64-query" "${PG_FLAGS[@]}" --connections 64 --mode single --auth query
    loadgen "pg-bulk100-c16-hub" "${PG_FLAGS[@]}" --connections 16 --mode bulk --bulk-size 100 --auth hub
    if [ "$SOAK" -gt 0 ]; then
      DURATION=$SOAK loadgen "pg-soak-c16-header-${SOAK}s" "${PG_FLAGS[@]}" --connections 16 \
        --mode single --auth header
    fi
    stop "$SERVER_PID"
    # The store alone, in the same run: single events at 16 and 64 tasks, bulks of 1000, and
    # the plain set-based insert of the same rows (the database's limit), on a database of its own.
    if [ "$HAVE_PG_INGEST" = 1 ]; then
      say "PostgreSQL store alone (pg_ingest, ${DURATION} s a phase)"
      "$EXAMPLES/pg_ingest" --url "$PG_BASE_URL" --duration "$DURATION" 2>&1 | tee "$OUT/pg_ingest.txt"
    fi
  fi
fi

# ---- profile (PROFILE=1) ------------------------------------------------------------------------
# perf on the criterion bench engine/single; each sample of the timed Engine::ingest calls is
# charged to the innermost frame of the engine's own crates ("where the time goes").
if [ "${PROFILE:-0}" = 1 ]; then
  say "profile: perf on engine/single"
  BENCH_BIN=$(cargo bench --bench pipeline --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -n 1)
  perf record -q -F 999 --call-graph dwarf,65528 -o "$OUT/perf.data" -- \
    "$BENCH_BIN" --bench --profile-time 10 engine/single >/dev/null 2>&1
  perf script -i "$OUT/perf.data" -F ip,sym 2>/dev/null | node -e '
    let text = "";
    process.stdin.on("data", (d) => (text += d)).on("end", () => {
      const own = /loyalty_(core|store_memory)::/;
      const counts = new Map();
      let n = 0;
      for (const sample of text.split("\n\n")) {
        const frames = sample.split("\n").map((l) => l.trim()).filter(Boolean)
          .map((l) => l.replace(/^[0-9a-f]+\s+/, "").replace(/\+0x[0-9a-f]+$/, "").replace(/ \(inlined\)$/, ""));
        if (!frames.some((f) => f.includes("Engine::ingest")) || frames.some((f) => f.includes("seeded_engine"))) continue;
        n++;
        const key = frames.find((f) => own.test(f)) || "(outside the engine) " + frames[0];
        counts.set(key, (counts.get(key) || 0) + 1);
      }
      console.log(`${n} samples inside the timed Engine::ingest calls; share by innermost engine frame:`);
      for (const [k, c] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
        console.log(`${((100 * c) / n).toFixed(1).padStart(5)}%  ${k.slice(0, 140)}`);
      }
    });' | tee "$OUT/profile.txt"
  rm -f "$OUT/perf.data"
fi

# ---- summary ----------------------------------------------------------------------------------
say "summary"
node - "$OUT" <<'EOF' | tee "$OUT/summary.md"
const fs = require('fs'), path = require('path');
const out = process.argv[2];
const read = (f) => { try { return fs.readFileSync(path.join(out, f), 'utf8'); } catch { return ''; } };
const crit = JSON.parse(read('criterion.json') || '{}');
const ref = JSON.parse(read('reference.json').trim().split('\n').pop() || '{}');
const runs = {};
for (const line of read('loadgen.jsonl').split('\n')) {
  if (line.trim()) { const r = JSON.parse(line); runs[r.label] = r; }
}
const k = (x) => (x == null ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const ratio = (a, b) => (a && b ? (a / b).toFixed(2) + 'x' : 'n/a');
const verdict = (ok) => (ok == null ? 'n/a' : ok ? 'met' : 'MISSED');
const lines = [];
lines.push('### Stages (criterion, one core)', '', '| bench | per element | per second |', '|---|---|---|');
for (const [key, c] of Object.entries(crit)) {
  lines.push(`| ${c.bench} | ${(c.ns_per_element / 1000).toFixed(2)} µs | ${k(c.per_sec)} |`);
}
lines.push(`| reference: jsonata ${ref.version} (node ${ref.node}), parse + evaluate + stringify | ${ref.mean_us} µs | ${k(ref.evaluations_per_sec)} (${k(ref.evaluations_per_cpu_sec)} per CPU-s) |`);
lines.push('', '### HTTP (loadgen on the same 2 cores)', '',
  '| run | events/s | requests/s | p50 ms | p99 ms | p99.9 ms | errors | server CPU µs/event | server cores | loadgen cores | load avg | server RSS start→end MiB | RSS growth KiB/event |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|');
const mib = (kb) => (kb == null ? '?' : (kb / 1024).toFixed(0));
for (const r of Object.values(runs)) {
  const f1 = (x) => (x == null ? '?' : x.toFixed(1)), f2 = (x) => (x == null ? '?' : x.toFixed(2));
  lines.push(`| ${r.label} | ${k(r.events_per_sec)} | ${k(r.requests_per_sec)} | ${r.p50_ms} | ${r.p99_ms} | ${r.p999_ms} | ${r.errors} | ${f1(r.server_cpu_us_per_event)} | ${f2(r.server_cpu_cores)} | ${f2(r.loadgen_cpu_cores)} | ${f2(r.loadavg_1m)} | ${mib(r.server_rss_kb_start)}→${mib(r.server_rss_kb_end)} | ${r.server_rss_kb_end != null && r.events ? ((r.server_rss_kb_end - r.server_rss_kb_start) / r.events).toFixed(2) : '?'} |`);
}
const eng = crit.engine_single && crit.engine_single.per_sec;
const refRate = ref.evaluations_per_sec;
const best = (prefix) => Math.max(0, ...Object.values(runs).filter((r) => r.label.startsWith(prefix)).map((r) => r.events_per_sec));
const bareBest = best('bare-single-'), memBest = best('mem-single-');
// Bulks, like single events, at their best: the floor names no connection count.
const bulkRuns = Object.values(runs).filter((r) => r.label.startsWith('mem-bulk100-'));
const bulkBest = bulkRuns.sort((a, b) => b.events_per_sec - a.events_per_sec)[0];
const bulk = bulkBest && bulkBest.events_per_sec;
lines.push('', '### Ratios and floors', '', '| comparison | ours | other | ratio | floor | verdict |', '|---|---|---|---|---|---|');
lines.push(`| mapping alone: ours vs reference | ${k(crit.mapping_seed && crit.mapping_seed.per_sec)} | ${k(refRate)} | ${ratio(crit.mapping_seed && crit.mapping_seed.per_sec, refRate)} | — | — |`);
lines.push(`| engine pipeline in memory (single) vs reference mapping alone | ${k(eng)} | ${k(refRate)} | ${ratio(eng, refRate)} | >= 3x | ${verdict(eng && refRate ? eng / refRate >= 3 : null)} |`);
for (const c of [1, 16, 64]) {
  const m = runs[`mem-single-c${c}-query`], b = runs[`bare-single-c${c}`];
  if (m && b) lines.push(`| HTTP single event, ${c} connection(s): memory server vs bare axum | ${k(m.events_per_sec)} | ${k(b.events_per_sec)} | ${ratio(m.events_per_sec, b.events_per_sec)} | — | — |`);
}
if (memBest && bareBest) lines.push(`| HTTP single event, best of each | ${k(memBest)} | ${k(bareBest)} | ${ratio(memBest, bareBest)} | >= 0.5x | ${verdict(memBest / bareBest >= 0.5)} |`);
{
  const m = runs['mem-single-c16-query'], b = runs['bare-single-c16'];
  if (m && b && m.server_cpu_us_per_event && b.server_cpu_us_per_event) {
    lines.push(`| HTTP single event, 16 connections, server CPU per event (rate at equal CPU) | ${m.server_cpu_us_per_event.toFixed(1)} µs | ${b.server_cpu_us_per_event.toFixed(1)} µs | ${ratio(b.server_cpu_us_per_event, m.server_cpu_us_per_event)} | >= 0.5x | ${verdict(b.server_cpu_us_per_event / m.server_cpu_us_per_event >= 0.5)} |`);
  }
}
if (bulk) lines.push(`| HTTP bulks of 100 in memory, best (${bulkBest.label}) | ${k(bulk)} | 100,000 | ${ratio(bulk, 100000)} | >= 100,000 events/s | ${verdict(bulk >= 100000)} |`);
const pg = Object.values(runs).filter((r) => r.label.startsWith('pg-'));
if (pg.length) lines.push('', `PostgreSQL over HTTP: best ${k(Math.max(...pg.map((r) => r.events_per_sec)))} events/s.`);
const ingest = read('pg_ingest.txt').split('\n').filter((l) => /^(single|bulk|limit|ratio)/.test(l));
if (ingest.length) {
  const rate = (prefix) => { const l = ingest.find((x) => x.startsWith(prefix)); const m = l && l.match(/: (\d+) events\/s/); return m ? Number(m[1]) : null; };
  const single64 = rate('single, 64 tasks'), bulk1000 = rate('bulk of'), limit = rate('limit');
  lines.push('', '### PostgreSQL store alone (pg_ingest, same run)', '', '| comparison | ours | other | ratio | floor | verdict |', '|---|---|---|---|---|---|');
  lines.push(`| single events, 16 tasks | ${k(rate('single, 16 tasks'))} | — | — | — | — |`);
  lines.push(`| single events, 64 tasks | ${k(single64)} | 10,000 | ${ratio(single64, 10000)} | >= 10,000 events/s | ${verdict(single64 == null ? null : single64 >= 10000)} |`);
  lines.push(`| bulks of 1000 vs plain set-based insert of the same rows | ${k(bulk1000)} | ${k(limit)} | ${ratio(bulk1000, limit)} | >= 0.5x | ${verdict(bulk1000 && limit ? bulk1000 / limit >= 0.5 : null)} |`);
}
console.log(lines.join('\n'));
EOF
echo "loadavg_at_end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

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
