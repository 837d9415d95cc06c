//! The ledger messages of a feed page, each with the member's points just after its entry,
//! which [`Lots`] computes from the member's ledger in order. Reading a member's whole ledger
//! for every page made each message of a member with a long ledger cost that ledger (10,000
//! entries: BENCHMARKS.md, "Real time"), so each member's lots are kept between reads, as of
//! the last entry applied, and a read fetches only the entries after it.
//!
//! Why the kept lots stay right: a member's entries take their seq after the member's row
//! lock, so its committed entries are all below any it commits later, and what a read sees of
//! a member (entries up to a seq the feed numbered) never gains an entry below what it saw.
//! The ledger only grows, except that a purge deletes test data: lots that took a test entry
//! are never kept. Lots are kept per expiry policy (a changed policy starts over), for members
//! with at least [`MIN_KEPT_ENTRIES`] entries, and at most [`MAX_KEPT_LOTS`] lots in all (the
//! least recently used go first). A read behind the kept lots (a client catching up from an old
//! cursor) reads the member's ledger from the start, as before.

use crate::error::Result;
use crate::rows::{self, LEDGER_COLUMNS};
use loyalty_core::feed::LedgerChange;
use loyalty_core::ids::ProgramId;
use loyalty_core::ledger::LedgerEntry;
use loyalty_core::lots::Lots;
use loyalty_core::program::PointsExpiry;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Mutex;

/// Shorter ledgers are read whole: keeping them would cost more than it saves.
pub(crate) const MIN_KEPT_ENTRIES: usize = 64;
/// The most lots kept in all (about 100 bytes each).
pub(crate) const MAX_KEPT_LOTS: usize = 500_000;

/// The lots kept by this store, by program and member.
#[derive(Debug, Default)]
pub(crate) struct KeptLots {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    members: HashMap<(ProgramId, String), Kept>,
    /// Lots held in all.
    lots: usize,
    /// Counts uses, to find the least recently used.
    clock: u64,
}

#[derive(Debug)]
struct Kept {
    /// The seq of the last entry applied.
    through: i64,
    /// Entries applied.
    entries: usize,
    lots: Lots,
    used: u64,
}

/// Where one member's read starts.
struct Start {
    after: i64,
    entries: usize,
    lots: Lots,
}

impl KeptLots {
    /// The changes of the ledger entries with these seqs (by member, each list sorted),
    /// reading entries up to `through`.
    pub(crate) async fn changes(
        &self,
        pool: &PgPool,
        program: &ProgramId,
        wanted: &HashMap<String, Vec<i64>>,
        through: i64,
        expiry: Option<PointsExpiry>,
    ) -> Result<HashMap<i64, LedgerChange>> {
        let mut starts: HashMap<&str, Start> = HashMap::with_capacity(wanted.len());
        {
            let mut state = self.lock();
            for (member, seqs) in wanted {
                let key = (program.clone(), member.clone());
                let usable = state.members.get(&key).is_some_and(|kept| {
                    seqs.first().is_some_and(|first| kept.through < *first)
                        && kept.lots.expiry() == expiry
                });
                // Taken out while in use: a concurrent read of the member starts over. Lots
                // ahead of this read stay for the reads at the head.
                let start = match usable.then(|| state.take(&key)).flatten() {
                    Some(kept) => Start {
                        after: kept.through,
                        entries: kept.entries,
                        lots: kept.lots,
                    },
                    None => Start {
                        after: 0,
                        entries: 0,
                        lots: Lots::new(expiry),
                    },
                };
                starts.insert(member.as_str(), start);
            }
        }
        let (members, afters): (Vec<&str>, Vec<i64>) =
            starts.iter().map(|(member, s)| (*member, s.after)).unzip();
        let rows = sqlx::query(&format!(
            "SELECT e.* FROM unnest($2::text[], $3::bigint[]) AS m(member, after_seq), \
             LATERAL (SELECT {LEDGER_COLUMNS} FROM ledger_entries \
                      WHERE program_id = $1 AND member_id = m.member \
                        AND seq > m.after_seq AND seq <= $4) e \
             ORDER BY e.member_id, e.seq"
        ))
        .bind(program.as_str())
        .bind(&members)
        .bind(&afters)
        .bind(through)
        .fetch_all(pool)
        .await?;
        let mut ledgers: HashMap<String, Vec<LedgerEntry>> = HashMap::new();
        for row in &rows {
            let entry = rows::ledger_entry(row)?;
            ledgers
                .entry(entry.member_id.as_str().to_owned())
                .or_default()
                .push(entry);
        }

        let mut changes = HashMap::new();
        let mut keep = Vec::new();
        for (member, mut start) in starts {
            let seqs = &wanted[member];
            let mut test = false;
            for entry in ledgers.get(member).into_iter().flatten() {
                start.lots.apply(entry);
                start.entries += 1;
                start.after = entry.seq;
                test |= entry.test;
                if seqs.binary_search(&entry.seq).is_ok() {
                    changes.insert(entry.seq, LedgerChange::after(&start.lots, entry));
                }
            }
            if !test && start.entries >= MIN_KEPT_ENTRIES {
                keep.push((member.to_owned(), start));
            }
        }
        let mut state = self.lock();
        for (member, start) in keep {
            state.put(
                (program.clone(), member),
                start.after,
                start.entries,
                start.lots,
            );
        }
        Ok(changes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn take(&mut self, key: &(ProgramId, String)) -> Option<Kept> {
        let kept = self.members.remove(key)?;
        self.lots -= kept.lots.lot_count();
        Some(kept)
    }

    /// Keeps the lots, unless lots further on are kept already (another read went ahead).
    fn put(&mut self, key: (ProgramId, String), through: i64, entries: usize, lots: Lots) {
        if self.members.get(&key).is_some_and(|k| k.through >= through) {
            return;
        }
        self.take(&key);
        self.clock += 1;
        self.lots += lots.lot_count();
        self.members.insert(
            key,
            Kept {
                through,
                entries,
                lots,
                used: self.clock,
            },
        );
        if self.lots > MAX_KEPT_LOTS {
            // The least recently used half goes.
            let mut by_use: Vec<(u64, (ProgramId, String))> = self
                .members
                .iter()
                .map(|(key, kept)| (kept.used, key.clone()))
                .collect();
            by_use.sort_unstable_by_key(|(used, _)| *used);
            for (_, key) in by_use {
                if self.lots <= MAX_KEPT_LOTS / 2 {
                    break;
                }
                self.take(&key);
            }
        }
    }
}
