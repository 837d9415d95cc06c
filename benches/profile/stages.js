#!/usr/bin/env node
// Reads `perf script -F comm,tid,ip,sym` (DWARF call graphs) of the server on stdin and charges
// each sample to a stage: the innermost frame, leaf first, that names one. Prints the shares.
//   perf record -F 1999 --call-graph dwarf,16384 -p PID -- sleep 8
//   perf script -i perf.data -F comm,tid,ip,sym | node benches/profile/stages.js
'use strict';
const stages = [
  ['log line: writer thread', /tracing_appender|NonBlocking|worker::Worker/],
  ['log line: formatting', /tracing_subscriber|tracing_core|tracing::|request_log::log_requests::\{\{closure\}\}::\{\{closure\}\}/],
  ['metrics', /prometheus_client|metrics::Metrics/],
  ['request id (uuid)', /uuid::/],
  ['body: parse and projection', /Document::parse_body|simd_json|mapping::projection|mapping::document/],
  ['mapping (JSONata / direct)', /mapping::direct|jsonata_core|JsonataMapping|mapping::Mapping/],
  ['rules', /loyalty_core::rules/],
  ['validate, key, log entry', /loyalty_core::event|Engine::prepare|prepare_item|validate|json_text|raw_of|EventId::generate|loyalty_core::member|normalize/],
  ['memory store commit', /loyalty_store_memory/],
  ['authentication', /loyalty_core::auth|authenticate/],
  ['response JSON', /ingest_response|IngestResponse|serde_json::ser/],
  ['ingest handler (rest)', /routes::ingest|extract::read_body|offload/],
  ['HTTP: hyper, axum, tower', /hyper::|axum::|tower::|tower_http|http_body|h1::/],
  ['tokio runtime', /tokio::/],
];
let text = '';
process.stdin.on('data', (d) => (text += d)).on('end', () => {
  const counts = new Map();
  const leaves = new Map();
  let n = 0;
  for (const sample of text.split('\n\n')) {
    const lines = sample.split('\n').filter((l) => l.trim());
    if (!lines.length) continue;
    n++;
    const frames = lines.slice(1).map((l) => l.trim().replace(/^[0-9a-f]+\s+/, ''));
    let stage = null;
    for (const f of frames) {
      const hit = stages.find(([, re]) => re.test(f));
      if (hit) { stage = hit[0]; break; }
    }
    if (!stage) {
      stage = 'other: ' + (frames[0] || '?').slice(0, 60);
      const kernel = frames.length && frames.every((f) => /\[kernel|unknown|^\S+ \(\[/.test(f));
      if (kernel) stage = 'other: kernel';
    }
    counts.set(stage, (counts.get(stage) || 0) + 1);
  }
  console.log(`${n} samples`);
  const sorted = [...counts].sort((a, b) => b[1] - a[1]);
  let other = 0;
  for (const [k, c] of sorted) {
    if (k.startsWith('other: ') && c / n < 0.01) { other += c; continue; }
    console.log(`${((100 * c) / n).toFixed(1).padStart(5)}%  ${k}`);
  }
  console.log(`${((100 * other) / n).toFixed(1).padStart(5)}%  other (each < 1%)`);
});
