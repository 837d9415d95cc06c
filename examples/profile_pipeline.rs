//! A driver for profilers: runs single "Article Read" events through the whole in-memory
//! pipeline (authenticate, parse, map, validate, evaluate, commit), nothing else.
//!
//! ```sh
//! cargo build --release --example profile_pipeline
//! valgrind --tool=callgrind target/release/examples/profile_pipeline 2000
//! ```

use loyalty::core::clock::SystemClock;
use loyalty::core::engine::IncomingRequest;
use loyalty::core::program::ProgramSpec;
use loyalty::core::testing::{article_connector_spec, seed_rule_spec};
use loyalty::core::Engine;
use loyalty::store_memory::MemoryStore;
use serde_json::json;
use std::sync::Arc;

// mimalloc: the engine allocates many small, short-lived values (JSON trees, strings), and
// glibc's malloc spent about a quarter of the pipeline's instructions on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let payload: serde_json::Value = serde_json::from_str(include_str!("../benches/payload.json"))?;
    let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock));
    let (program, _) = engine
        .create_program(ProgramSpec {
            name: "P".into(),
            ..Default::default()
        })
        .await?;
    let connector = engine
        .create_connector(&program.id, article_connector_spec())
        .await?;
    engine
        .create_rule(&program.id, seed_rule_spec(&connector.id, 3))
        .await?;
    // One template, with fixed-width digits patched per event: building the bodies costs a
    // copy each, so a profile of the whole run is the pipeline's.
    let mut template = payload.clone();
    template["eventId"] = json!("evt-000000000000");
    template["timestamp"] = json!(chrono::Utc::now().to_rfc3339());
    template["profile"]["email"] = json!("member0000@example.com");
    let template = serde_json::to_vec(&template)?;
    let find = |needle: &[u8]| {
        template
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("the template has the field")
    };
    let event_digits = find(b"evt-000000000000") + 4;
    let member_digits = find(b"member0000@") + 6;
    let bodies: Vec<Vec<u8>> = (0..events)
        .map(|i| {
            let mut body = template.clone();
            write_digits(&mut body[event_digits..event_digits + 12], i as u64);
            write_digits(
                &mut body[member_digits..member_digits + 4],
                (i % 1000) as u64,
            );
            body
        })
        .collect();
    let started = std::time::Instant::now();
    let mut accepted = 0;
    for body in &bodies {
        let response = engine
            .ingest(IncomingRequest {
                connector_id: connector.id.as_str(),
                query: "token=s3cret-token",
                headers: &[],
                body,
                test: false,
            })
            .await?;
        accepted += response.accepted;
    }
    let elapsed = started.elapsed();
    println!(
        "{accepted} of {events} accepted in {elapsed:?}: {:.1} µs an event, {:.0} events/s",
        elapsed.as_secs_f64() * 1e6 / events as f64,
        events as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Writes `n` as zero-padded decimal digits filling `out`.
fn write_digits(out: &mut [u8], mut n: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (n % 10) as u8;
        n /= 10;
    }
}
