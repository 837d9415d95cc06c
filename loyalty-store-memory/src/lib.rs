//! The in-memory store of the loyalty engine.
//!
//! All state sits behind one mutex, and [`IngestStore::commit`] holds it for a whole batch: every
//! item is atomic and isolated by construction, which makes this store the reference the
//! PostgreSQL store is checked against (both pass `loyalty_core::testing`). Nothing survives a
//! restart.
//!
//! The change feed is the log itself: a change's position is its `seq` (one counter for
//! events and ledger entries, handed out under the lock, so in commit order), and the feed
//! keeps everything the log keeps (the process's life; a purge of test data removes its
//! changes from the feed as from the log).
//!
//! Each part of the storage contract is implemented in its own module, on the state kept here.
//!
//! [`IngestStore::commit`]: loyalty_core::store::IngestStore::commit

use loyalty_core::connector::Connector;
use loyalty_core::feed::FeedSignal;
use loyalty_core::ids::{ConnectorId, EventId, MemberId, ProgramId, ReplayId, RuleId};
use loyalty_core::ledger::{LedgerEntry, LogEntry};
use loyalty_core::member::{Identifier, Member};
use loyalty_core::program::Program;
use loyalty_core::replay::ReplayRecord;
use loyalty_core::rules::{Rule, Usage, UsageKey};
use loyalty_core::store::PurchaseFound;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// foldhash, not SipHash: the maps are hashed several times for every event under the store's
/// lock. foldhash seeds every map at random, so keys a sender chooses (event ids) cannot be
/// made to collide on purpose.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use sharded::ShardedMap;
// parking_lot's mutex spins briefly before it sleeps: the commits hold it for microseconds,
// and std's went to the kernel (futex wait and wake) on most contended acquisitions.
use parking_lot::{Mutex, MutexGuard};

mod catalog;
mod feed;
mod ingest;
mod log;
mod points;
mod replays;
mod sharded;
mod webhooks;

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    webhooks: Mutex<webhooks::WebhookState>,
    /// Raised after every write, once the lock is released.
    feed: FeedSignal,
}

#[derive(Debug, Default)]
struct State {
    programs: BTreeMap<ProgramId, Program>,
    connectors: HashMap<ConnectorId, Connector>,
    rules: HashMap<RuleId, Rule>,
    members: HashMap<MemberId, Member>,
    identifiers: HashMap<(ProgramId, Identifier), MemberId>,
    /// Per member, then per (rule, period): the rules read a member's map as it is, no copy.
    usage: HashMap<MemberId, Usage>,
    /// The event log by position. Behind a pointer: a B-tree appended to at its right end
    /// leaves its nodes about half full, and a `LogEntry` is a few hundred bytes, so inline
    /// entries would keep about as much empty node space as entries. Shared, so that a commit
    /// copies its entries for the caller after it has let go of the lock.
    events: BTreeMap<i64, Arc<LogEntry>>,
    /// Sharded, as `accepted`: both grow with every event.
    event_positions: ShardedMap<EventId, i64>,
    ledger: BTreeMap<i64, LedgerEntry>,
    /// A member's events and ledger entries: positions in increasing order, as a commit hands
    /// them out in increasing order (a push, where a B-tree searched and split).
    activity: HashMap<MemberId, Vec<i64>>,
    /// The idempotency keys: (connector, clientEventId, test) → the accepted event.
    accepted: ShardedMap<(ConnectorId, String, bool), (EventId, Option<MemberId>)>,
    /// The accepted purchases of each order, oldest first: (program, orderId, test) → them.
    purchases: HashMap<(ProgramId, String, bool), Vec<PurchaseFound>>,
    /// Adjustments' idempotency keys: (program, key) → the adjustment's position.
    adjustment_keys: HashMap<(ProgramId, String), i64>,
    /// The accepted events each replay changed: (program, replay, event).
    replay_changes: HashSet<(ProgramId, ReplayId, EventId)>,
    replays: HashMap<(ProgramId, ReplayId), ReplayRecord>,
    next_position: i64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No poisoning: a panic while holding the lock cannot leave a half-written item, as
        // every commit writes after all its decisions are made.
        self.state.lock()
    }
}

impl State {
    fn position(&mut self) -> i64 {
        self.next_position += 1;
        self.next_position
    }

    /// Appends a ledger entry (not an award: those come with their event) to the ledger, the
    /// member's activity and balance.
    fn append(&mut self, mut entry: LedgerEntry) -> LedgerEntry {
        entry.seq = self.position();
        self.activity
            .entry(entry.member_id.clone())
            .or_default()
            .push(entry.seq);
        if let Some(member) = self.members.get_mut(&entry.member_id) {
            member.balance += entry.points;
        }
        self.ledger.insert(entry.seq, entry.clone());
        entry
    }

    fn member_entries(&self, member: &MemberId) -> Vec<LedgerEntry> {
        self.activity
            .get(member)
            .map_or_else(Vec::new, |positions| {
                positions
                    .iter()
                    .filter_map(|p| self.ledger.get(p).cloned())
                    .collect()
            })
    }

    fn balance(&self, member: &MemberId) -> i64 {
        self.members.get(member).map_or(0, |m| m.balance)
    }

    fn member_usage(&self, member: &MemberId, keys: &[UsageKey]) -> Usage {
        let Some(usage) = self.usage.get(member) else {
            return Usage::default();
        };
        keys.iter()
            .filter_map(|key| usage.get(key).map(|count| (key.clone(), *count)))
            .collect()
    }
}
