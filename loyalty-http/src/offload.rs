//! Where an ingested request is mapped: on the async worker that received it, or away from
//! the async workers' task queues.
//!
//! Mapping is CPU-bound and, for a hostile expression, slow. Big bodies, bulks and connectors
//! whose mapping has lately been slow are mapped where they cannot hold up other requests, so
//! that every other connector is served meanwhile; small single events, nearly all traffic,
//! are mapped inline, which costs no thread hand-over.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Bodies above this size are never mapped inline.
pub const OFFLOAD_BODY_BYTES: usize = 64 * 1024;

/// Where a piece of mapping work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offload {
    /// On the async worker, as part of the request's task: for small single events.
    Inline,
    /// `tokio::task::block_in_place`: the worker hands its queue to another thread and maps
    /// the request right here. Where the blocking pool took the request to another thread
    /// and woke its task again afterwards, two wake-ups that left a tenth of the machine idle
    /// in bulks (see BENCHMARKS.md). Tokio refuses it inside a `LocalSet` on a multi-threaded
    /// runtime, which is why the router's documentation rules that out.
    InPlace,
    /// On tokio's blocking pool: a current-thread runtime (an embedder's choice) has no other
    /// worker to hand its queue to.
    BlockingPool,
}

/// The work panicked (a bug, in jsonata-core or ours, that some input reaches). The request
/// is then answered as one that cannot be mapped, never by a dropped connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Panicked;

impl Offload {
    /// Where to map `body`: away from the async workers when it is big, a bulk (a JSON array)
    /// or for a connector whose mapping has lately been slow; inline otherwise.
    pub fn for_body(body: &[u8], mapping_is_slow: bool) -> Self {
        let bulk = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        if !(body.len() > OFFLOAD_BODY_BYTES || bulk || mapping_is_slow) {
            Offload::Inline
        } else if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
            Offload::InPlace
        } else {
            Offload::BlockingPool
        }
    }

    /// Runs `work` where this says.
    pub async fn run<T, F>(self, work: F) -> Result<T, Panicked>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let guarded = move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|_| Panicked)
        };
        match self {
            Offload::Inline => guarded(),
            Offload::InPlace => tokio::task::block_in_place(guarded),
            Offload::BlockingPool => tokio::task::spawn_blocking(guarded)
                .await
                .unwrap_or(Err(Panicked)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_events_inline_the_rest_in_place() {
        let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(OFFLOAD_BODY_BYTES));
        for (body, slow, expected) in [
            (&b"{\"a\": 1}"[..], false, Offload::Inline),
            (b"  \n[{\"a\": 1}]", false, Offload::InPlace),
            (b"{\"a\": 1}", true, Offload::InPlace),
            (big.as_bytes(), false, Offload::InPlace),
        ] {
            assert_eq!(
                Offload::for_body(body, slow),
                expected,
                "{}",
                String::from_utf8_lossy(&body[..body.len().min(20)])
            );
        }
        assert_eq!(Offload::InPlace.run(|| 7).await, Ok(7));
        assert_eq!(
            Offload::InPlace.run(|| panic!("a bug")).await,
            Err::<(), _>(Panicked)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_offloads_to_the_blocking_pool() {
        assert_eq!(Offload::for_body(b"[]", false), Offload::BlockingPool);
        assert_eq!(Offload::for_body(b"{}", false), Offload::Inline);
        assert_eq!(Offload::BlockingPool.run(|| 7).await, Ok(7));
        assert_eq!(
            Offload::Inline.run(|| panic!("a bug")).await,
            Err::<(), _>(Panicked)
        );
    }
}
