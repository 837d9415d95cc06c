//! A hash map that grows a piece at a time.
//!
//! The store keeps two maps that grow with every event: the idempotency keys and the events by
//! id. One hash table of a million entries doubles in one step, moving every entry into a new
//! table of fresh memory, and it does so under the store's lock: measured at 0.3–0.7 s with
//! every other request waiting (the latency maximum of a 10 s load run, on a VM where first
//! touching memory is slow). Split by the key's hash into [`SHARDS`] tables, each doubling
//! moves a 256th of the entries, and the pauses shrink with it; the total work is the same.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

type Shard<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// How many tables: a power of two, so that a shard is chosen by the hash's top bits.
const SHARDS: usize = 256;

#[derive(Debug)]
pub(crate) struct ShardedMap<K, V> {
    /// Chooses the shard. Each shard hashes with a seed of its own, so that the bits that
    /// chose the shard do not also cluster the keys inside it.
    chooser: foldhash::fast::RandomState,
    shards: Box<[Shard<K, V>]>,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self {
            chooser: foldhash::fast::RandomState::default(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // The top bits: SHARDS is a power of two no larger than 2^64.
        (self.chooser.hash_one(key) >> (u64::BITS - SHARDS.trailing_zeros())) as usize
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].get(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard_of(&key);
        self.shards[shard].insert(key, value)
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard_of(key);
        self.shards[shard].remove(key)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(Shard::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_one_map() {
        let mut map = ShardedMap::default();
        for i in 0..10_000u32 {
            assert_eq!(map.insert(i.to_string(), i), None);
        }
        assert_eq!(map.insert("17".to_owned(), 170), Some(17));
        assert_eq!(map.len(), 10_000);
        assert_eq!(map.get("17"), Some(&170));
        assert_eq!(map.get("9999"), Some(&9999));
        assert_eq!(map.get("10000"), None);
        for i in (0..10_000u32).step_by(2) {
            assert!(map.remove(i.to_string().as_str()).is_some());
        }
        assert_eq!(map.remove("0"), None);
        assert_eq!(map.len(), 5_000);
        assert_eq!(map.get("1"), Some(&1));
        assert_eq!(map.get("2"), None);
    }

    #[test]
    fn spreads_keys_over_the_shards() {
        let mut map = ShardedMap::default();
        for i in 0..(SHARDS as u32 * 64) {
            map.insert(i, ());
        }
        let used = map.shards.iter().filter(|s| !s.is_empty()).count();
        assert_eq!(used, SHARDS, "every shard gets keys");
        let largest = map.shards.iter().map(Shard::len).max().unwrap_or(0);
        assert!(largest < 64 * 3, "a shard holds {largest} of 64 expected");
    }
}
