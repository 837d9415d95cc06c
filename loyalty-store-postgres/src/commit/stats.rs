//! The committers' counters and the timing of a transaction's phases: what
//! [`crate::PostgresStore::commit_stats`] reports, for benchmarks and tuning.

use loyalty_core::store::CommitBatch;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counters of the committers, for [`crate::PostgresStore::commit_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions that committed.
    pub transactions: u64,
    /// Batches (callers' requests) they committed.
    pub batches: u64,
    /// Items they committed.
    pub items: u64,
    /// Fast-path writes that lost a race (see the crate documentation) and were decided
    /// again on the locked path.
    pub fallbacks: u64,
    /// Time spent, over all committed transactions, serialising the items before the
    /// transaction.
    pub prepare_nanos: u64,
    /// ... in the reads that precede the decisions (the fast path's read; on the locked path,
    /// begin, keys, members, locks and usage).
    pub read_nanos: u64,
    /// ... deciding the items (rules evaluation), in memory.
    pub decide_nanos: u64,
    /// ... in the write statement (on the fast path, its own transaction: with its commit and
    /// WAL flush).
    pub write_nanos: u64,
    /// ... committing (the WAL flush), on the locked path.
    pub commit_nanos: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    transactions: AtomicU64,
    batches: AtomicU64,
    items: AtomicU64,
    pub(super) fallbacks: AtomicU64,
    prepare_nanos: AtomicU64,
    read_nanos: AtomicU64,
    decide_nanos: AtomicU64,
    write_nanos: AtomicU64,
    commit_nanos: AtomicU64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> CommitStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CommitStats {
            transactions: get(&self.transactions),
            batches: get(&self.batches),
            items: get(&self.items),
            fallbacks: get(&self.fallbacks),
            prepare_nanos: get(&self.prepare_nanos),
            read_nanos: get(&self.read_nanos),
            decide_nanos: get(&self.decide_nanos),
            write_nanos: get(&self.write_nanos),
            commit_nanos: get(&self.commit_nanos),
        }
    }

    pub(super) fn record(&self, batches: &[&CommitBatch], timings: &Timings) {
        let add = |a: &AtomicU64, n: u64| a.fetch_add(n, Ordering::Relaxed);
        add(&self.transactions, 1);
        add(&self.batches, batches.len() as u64);
        add(
            &self.items,
            batches.iter().map(|b| b.items.len() as u64).sum(),
        );
        add(&self.prepare_nanos, timings.prepare);
        add(&self.read_nanos, timings.read);
        add(&self.decide_nanos, timings.decide);
        add(&self.write_nanos, timings.write);
        add(&self.commit_nanos, timings.commit);
    }
}

/// Nanoseconds in each phase of one transaction.
#[derive(Debug, Default)]
pub(super) struct Timings {
    pub(super) prepare: u64,
    pub(super) read: u64,
    pub(super) decide: u64,
    pub(super) write: u64,
    pub(super) commit: u64,
}

/// Nanoseconds since `since`, and restarts it.
pub(super) fn lap(since: &mut Instant) -> u64 {
    let now = Instant::now();
    let nanos = u64::try_from((now - *since).as_nanos()).unwrap_or(u64::MAX);
    *since = now;
    nanos
}
