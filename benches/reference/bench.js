#!/usr/bin/env node
// The JSONata reference implementation (npm `jsonata`, pinned in package.json) on the seed
// seed mapping (docs/concepts.md) and the payload of ../payload.json: per evaluation, JSON.parse of the
// compact text + evaluate + JSON.stringify of the result, the same work as the Rust bench
// `mapping/seed_parse_apply_output`. Prints one JSON line with evaluations per second.
//
//   node bench.js [--duration SECONDS] [--warmup SECONDS]

'use strict';

const fs = require('fs');
const path = require('path');
const jsonata = require('jsonata');

// The mapping the engine's tests and benches use (loyalty-core/src/testing.rs SEED_MAPPING),
// read from the source so that the two can never drift; the copy below is the fallback.
const SEED_MAPPING_COPY =
  '{ "clientEventId": eventId, "profile": {"kind": "default", "value": profile.email}, "payload": {"timestamp": timestamp, "tags": [{"name": "theme", "value": article.theme}], "counters": [{"name": "total", "value": totalArticlesRead}]} }';

function seedMapping() {
  const file = path.join(__dirname, '..', '..', 'loyalty-core', 'src', 'testing.rs');
  try {
    const match = /SEED_MAPPING: &str = r#"(.*)"#;/.exec(fs.readFileSync(file, 'utf8'));
    if (match) return { source: match[1], from: 'loyalty-core/src/testing.rs' };
  } catch (_) {
    // fall through
  }
  return { source: SEED_MAPPING_COPY, from: 'bench.js copy' };
}

function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0 || at + 1 >= process.argv.length) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`--${name} needs a positive number`);
  }
  return value;
}

async function main() {
  const duration = arg('duration', 10);
  const warmup = arg('warmup', 3);
  const mapping = seedMapping();
  // Compact text, key order kept: byte for byte what the Rust bench parses.
  const text = JSON.stringify(
    JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'payload.json'), 'utf8')),
  );
  const expression = jsonata(mapping.source);

  const once = async () => JSON.stringify(await expression.evaluate(JSON.parse(text)));

  const sample = JSON.parse(await once());
  if (
    sample.payload.tags[0].value !== 'sport' ||
    sample.payload.counters[0].value !== 7 ||
    sample.profile.value !== 'reader0001@example.com'
  ) {
    throw new Error(`unexpected mapping output: ${JSON.stringify(sample)}`);
  }

  // Runs `once` in chunks until `seconds` have passed; returns [count, wall s, CPU s].
  const run = async (seconds) => {
    const chunk = 200;
    let count = 0;
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const end = t0 + BigInt(Math.round(seconds * 1e9));
    let now = t0;
    while (now < end) {
      for (let i = 0; i < chunk; i++) {
        await once();
      }
      count += chunk;
      now = process.hrtime.bigint();
    }
    const cpu = process.cpuUsage(cpu0);
    return [count, Number(now - t0) / 1e9, (cpu.user + cpu.system) / 1e6];
  };

  await run(warmup);
  const [evaluations, seconds, cpuSeconds] = await run(duration);
  const result = {
    bench: 'reference_mapping',
    implementation: 'jsonata (npm)',
    version: require('jsonata/package.json').version,
    node: process.version,
    mapping_from: mapping.from,
    payload_bytes: Buffer.byteLength(text),
    evaluations,
    seconds: Number(seconds.toFixed(3)),
    cpu_seconds: Number(cpuSeconds.toFixed(3)),
    evaluations_per_sec: Math.round(evaluations / seconds),
    evaluations_per_cpu_sec: Math.round(evaluations / cpuSeconds),
    mean_us: Number(((seconds * 1e6) / evaluations).toFixed(2)),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
