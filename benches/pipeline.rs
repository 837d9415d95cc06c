//! The engine's pipeline, stage by stage and whole, in memory.
//!
//! - `mapping/*`: the seed mapping (docs/concepts.md) on the ~1.4 KB "Article Read" payload of
//!   `benches/payload.json` (parse the body into a `Document`, apply, serialize the output), plus
//!   the parse and the apply alone, to show where the time goes.
//! - `rules/evaluate_10_mixed`: ten rules of mixed kinds on one canonical event.
//! - `engine/*`: `Engine::ingest` on the memory store: authenticate (query token), parse, map,
//!   validate, evaluate, commit, for one event a request and for bulks of 100. Every event has
//!   its own `eventId` (a counter spliced into the body) so all are accepted, never duplicates,
//!   and the members cycle through 1000 e-mail addresses.
//!
//! `benches/run.sh` runs it with short measurement times; `cargo bench --bench pipeline` alone
//! uses criterion's defaults.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use loyalty::core::clock::SystemClock;
use loyalty::core::connector::EventType;
use loyalty::core::engine::IncomingRequest;
use loyalty::core::event::validate;
use loyalty::core::ids::{ConnectorId, ProgramId, RuleId};
use loyalty::core::mapping::{Document, JsonataMapping, Mapping, MappingLimits};
use loyalty::core::program::ProgramSpec;
use loyalty::core::rules::{Rule, RuleSet, RuleSpec, Usage, UsageCount};
use loyalty::core::testing::{article_connector_spec, seed_rule_spec, SEED_MAPPING, TOKEN};
use loyalty::core::Engine;
use loyalty::store_memory::MemoryStore;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

// The allocator of the example server, so that these numbers are the server's engine.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAYLOAD: &str = include_str!("payload.json");
/// Distinct members the events cycle through.
const MEMBERS: u64 = 1000;
const EVENT_ID_DIGITS: usize = 20;
const MEMBER_DIGITS: usize = 4;

/// The payload as compact JSON text (key order kept), exactly what `bench.js` evaluates.
fn compact_payload() -> String {
    let value: Value = serde_json::from_str(PAYLOAD).expect("benches/payload.json is JSON");
    serde_json::to_string(&value).unwrap()
}

/// A compact payload with a fixed-width event id and member number that can be overwritten in
/// place, timestamped `at`.
struct Template {
    body: Vec<u8>,
    /// (start of the event id digits, start of the member digits) for each item.
    slots: Vec<(usize, usize)>,
}

impl Template {
    fn new(items: usize, at: DateTime<Utc>) -> Self {
        let mut value: Value = serde_json::from_str(PAYLOAD).unwrap();
        value["eventId"] = json!(format!("evt-bench-{}", "0".repeat(EVENT_ID_DIGITS)));
        value["timestamp"] = json!(at.to_rfc3339_opts(SecondsFormat::Secs, true));
        value["profile"]["email"] =
            json!(format!("reader{}@example.com", "0".repeat(MEMBER_DIGITS)));
        let item = serde_json::to_string(&value).unwrap();
        let id_at = item.find("evt-bench-").unwrap() + "evt-bench-".len();
        let member_at = item.find("\"reader").unwrap() + "\"reader".len();
        let mut body = if items == 1 {
            String::new()
        } else {
            "[".to_owned()
        };
        let mut slots = Vec::with_capacity(items);
        for index in 0..items {
            if index > 0 {
                body.push(',');
            }
            let start = body.len();
            body.push_str(&item);
            slots.push((start + id_at, start + member_at));
        }
        if items > 1 {
            body.push(']');
        }
        Self {
            body: body.into_bytes(),
            slots,
        }
    }

    /// Gives every item a new event id from `counter` and the member `id % MEMBERS`.
    fn renumber(&mut self, counter: &AtomicU64) {
        for &(id_at, member_at) in &self.slots {
            let id = counter.fetch_add(1, Ordering::Relaxed);
            write_digits(&mut self.body[id_at..id_at + EVENT_ID_DIGITS], id);
            write_digits(
                &mut self.body[member_at..member_at + MEMBER_DIGITS],
                id % MEMBERS,
            );
        }
    }
}

/// Writes `n` as zero-padded decimal digits filling `out`.
fn write_digits(out: &mut [u8], mut n: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn mapping(c: &mut Criterion) {
    let body = compact_payload();
    let bytes = body.as_bytes();
    let mapping = JsonataMapping::compile(SEED_MAPPING).unwrap();
    let limits = MappingLimits::default();
    let expected = mapping
        .apply(&Document::parse(bytes).unwrap(), &limits)
        .unwrap();
    assert_eq!(expected["payload"]["tags"][0]["value"], "sport");
    assert_eq!(expected["payload"]["counters"][0]["value"], 7);

    let mut group = c.benchmark_group("mapping");
    group.throughput(Throughput::Elements(1));
    // What bench.js measures of the reference: text in, JSON text out. The body is parsed as
    // the engine parses it: checked whole, built only as far as the mapping reads.
    let projection = mapping.projection();
    group.bench_function("seed_parse_apply_output", |b| {
        b.iter(|| {
            let document = Document::parse_projected(black_box(bytes), projection).unwrap();
            let mapped = mapping.apply(&document, &limits).unwrap();
            serde_json::to_string(&mapped).unwrap()
        })
    });
    group.bench_function("parse_only", |b| {
        b.iter(|| Document::parse_projected(black_box(bytes), projection).unwrap())
    });
    // Every field built, as before projections (for comparison).
    group.bench_function("parse_whole", |b| {
        b.iter(|| Document::parse(black_box(bytes)).unwrap())
    });
    let document = Document::parse_projected(bytes, projection).unwrap();
    group.bench_function("apply_only", |b| {
        b.iter(|| mapping.apply(black_box(&document), &limits).unwrap())
    });
    group.finish();

    // A bulk body of 100 items: the items' spans found, then each item parsed as above.
    let bulk = format!("[{}]", vec![body.as_str(); 100].join(",\n"));
    let mut group = c.benchmark_group("mapping");
    group.throughput(Throughput::Elements(100));
    group.bench_function("bulk100_split_parse", |b| {
        b.iter(|| Document::parse_body(black_box(bulk.as_bytes()), 1000, projection).unwrap())
    });
    group.finish();
}

/// Ten rules of mixed kinds: tag and counter leaves, `all`/`any` (nested), fixed and
/// per-counter points, count and points limits over every period.
fn ten_rules(connector: &ConnectorId) -> Vec<Value> {
    vec![
        json!({"name": "Sport readers", "conditions": {"all": [
            {"tag": "theme", "op": "eq", "value": "sport"},
            {"counter": "total", "op": "gte", "value": 5}]},
            "points": {"fixed": 10}, "limits": [{"count": 1, "per": "day"}]}),
        json!({"name": "Long reads", "conditions": {"counter": "readingSeconds", "op": "gte", "value": 120},
            "points": {"perCounter": {"counter": "readingSeconds", "points": 1, "per": 60}},
            "limits": [{"points": 50, "per": "week"}]}),
        json!({"name": "Premium plans", "conditions": {"tag": "plan", "op": "in", "values": ["premium", "gold"]},
            "points": {"fixed": 5}}),
        json!({"name": "Other themes", "conditions": {"any": [
            {"tag": "theme", "op": "eq", "value": "politics"},
            {"tag": "theme", "op": "eq", "value": "culture"},
            {"tag": "section", "op": "startsWith", "value": "foot"}]},
            "points": {"fixed": 3}, "limits": [{"count": 3, "per": "day"}, {"count": 10, "per": "week"}]}),
        json!({"name": "Milestone", "conditions": {"counter": "total", "op": "between", "min": 5, "max": 10},
            "points": {"fixed": 50}, "limits": [{"count": 1, "per": "lifetime"}]}),
        json!({"name": "Other languages", "conditions": {"tag": "language", "op": "neq", "value": "en"},
            "points": {"fixed": 2}}),
        json!({"name": "Words", "conditions": {"counter": "wordCount", "op": "exists"},
            "points": {"perCounter": {"counter": "wordCount", "points": 1, "per": 100}},
            "limits": [{"points": 100, "per": "month"}]}),
        json!({"name": "Sport or business, no paywall", "conditions": {"all": [
            {"any": [{"tag": "theme", "op": "eq", "value": "sport"}, {"tag": "theme", "op": "eq", "value": "business"}]},
            {"tag": "paywall", "op": "notExists"},
            {"counter": "total", "op": "gt", "value": 3}]},
            "points": {"fixed": 7}, "priority": 1}),
        json!({"name": "Ball games", "conditions": {"tag": "section", "op": "contains", "value": "ball"},
            "points": {"fixed": 1}, "limits": [{"count": 5, "per": "day"}]}),
        json!({"name": "Daily habit", "points": {"fixed": 1}, "limits": [{"points": 365, "per": "year"}]}),
    ]
    .into_iter()
    .map(|mut spec| {
        spec["connectorId"] = json!(connector);
        spec
    })
    .collect()
}

fn rules(c: &mut Criterion) {
    let at = Utc::now();
    let program = ProgramId::generate();
    let connector = ConnectorId::generate();
    let rules: Vec<Rule> = ten_rules(&connector)
        .into_iter()
        .map(|value| {
            let spec: RuleSpec = serde_json::from_value(value).unwrap();
            let definition = spec.compile().unwrap();
            Rule {
                id: RuleId::generate(),
                program_id: program.clone(),
                connector_id: connector.clone(),
                name: spec.name,
                conditions: spec.conditions,
                points: spec.points,
                limits: spec.limits,
                priority: spec.priority,
                stop_other_rules: spec.stop_other_rules,
                pending_days: spec.pending_days,
                active_from: spec.active_from,
                active_until: spec.active_until,
                created_at: at,
                updated_at: at,
                definition,
            }
        })
        .collect();
    let set = RuleSet::new(rules);
    let mapped = json!({
        "clientEventId": "evt-1",
        "profile": {"kind": "default", "value": "reader0001@example.com"},
        "payload": {
            "timestamp": (at - Duration::minutes(1)).to_rfc3339(),
            "tags": [
                {"name": "theme", "value": "sport"},
                {"name": "section", "value": "football"},
                {"name": "language", "value": "en"},
                {"name": "plan", "value": "premium"}
            ],
            "counters": [
                {"name": "total", "value": 7},
                {"name": "readingSeconds", "value": 214},
                {"name": "wordCount", "value": 842}
            ]
        }
    });
    let event = validate(&mapped, EventType::CustomBasic, at, 30).unwrap();
    // A member who already used some of the limits: the sport rule's daily award, the
    // milestone, and part of the weekly long-read points.
    let mut usage = Usage::default();
    for (index, key) in set.usage_keys(at).into_iter().enumerate() {
        if index % 2 == 0 {
            usage.insert(
                key,
                UsageCount {
                    count: 1,
                    points: 45,
                },
            );
        }
    }
    let evaluation = set.evaluate(&event, at, &usage);
    assert_eq!(evaluation.trace.len(), 10);
    assert!(evaluation.trace.iter().any(|t| t.fired));
    assert!(evaluation.trace.iter().any(|t| !t.fired));

    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(1));
    group.bench_function("evaluate_10_mixed", |b| {
        b.iter(|| set.evaluate(black_box(&event), at, black_box(&usage)))
    });
    group.finish();
}

/// A fresh in-memory engine with the seed connector (query token) and the seed rule of
/// docs/http-api.md (10 points for a sport article when `total >= 5`, once a day), whose 1000
/// members already exist.
async fn seeded_engine(counter: &AtomicU64) -> (Arc<Engine>, String) {
    let engine = Arc::new(Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
    ));
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
        .create_rule(&program.id, seed_rule_spec(&connector.id, 1))
        .await
        .unwrap();
    let connector = connector.id.as_str().to_owned();
    // Enrol every member first, so that the timed events are the steady state.
    let mut warm = Template::new(100, Utc::now() - Duration::minutes(1));
    for _ in 0..MEMBERS / 100 {
        warm.renumber(counter);
        assert_eq!(ingest(&engine, &connector, &warm.body).await, 100);
    }
    (engine, connector)
}

/// Ingests one body; returns the number of accepted items (all of them, or it panics).
async fn ingest(engine: &Engine, connector: &str, body: &[u8]) -> usize {
    let query = format!("token={TOKEN}");
    let response = engine
        .ingest(IncomingRequest {
            connector_id: connector,
            query: &query,
            headers: &[],
            body,
            test: false,
        })
        .await
        .unwrap();
    assert_eq!(
        response.accepted,
        response.results.len(),
        "every event must be accepted: {:?}",
        response.results.first()
    );
    response.accepted
}

/// The timed part of the engine benches: `iters` requests of `template`'s items, each item with
/// a new event id. A function of its own so that a profiler can be told to look only here
/// (`valgrind --tool=callgrind --toggle-collect='*timed_requests*'`).
#[inline(never)]
async fn timed_requests(
    engine: &Engine,
    connector: &str,
    template: &mut Template,
    counter: &AtomicU64,
    iters: u64,
) {
    let query = format!("token={TOKEN}");
    let size = template.slots.len();
    for _ in 0..iters {
        template.renumber(counter);
        let response = engine
            .ingest(IncomingRequest {
                connector_id: connector,
                query: &query,
                headers: &[],
                body: &template.body,
                test: false,
            })
            .await
            .unwrap();
        assert_eq!(response.accepted, size);
        black_box(response);
    }
}

fn engine(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("engine");
    // Each sample builds a fresh store (outside the timed part) so memory stays bounded.
    group.sample_size(20);
    for size in [1usize, 100] {
        group.throughput(Throughput::Elements(size as u64));
        let name = if size == 1 { "single" } else { "bulk" };
        group.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
            b.to_async(&runtime).iter_custom(|iters| {
                let counter = counter.clone();
                async move {
                    let (engine, connector) = seeded_engine(&counter).await;
                    let mut template = Template::new(size, Utc::now() - Duration::minutes(1));
                    let started = Instant::now();
                    timed_requests(&engine, &connector, &mut template, &counter, iters).await;
                    let elapsed = started.elapsed();
                    drop(engine);
                    elapsed
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, mapping, rules, engine);
criterion_main!(benches);
