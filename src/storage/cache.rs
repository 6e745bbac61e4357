//! A write-through read cache in front of sled for the hot point-read trees
//! (items, stock, sessions, users).
//!
//! Why: sled may touch the disk, so reads run on the blocking pool, and the
//! hop there and back (two thread wake-ups) cost more than everything else a
//! `GET /items/{id}` does (profiled: ~50% of CPU samples were those wake-ups).
//! A hit is served on the reactor thread with no sled call at all.
//!
//! Correctness: the single writer updates the cache after each committed
//! group, in commit order, so a cached value is never older than the newest
//! commit it has seen. A miss is filled by the reader only if no group
//! committed between the reader's sled read and its insert (the `epoch`
//! check, under `fill`), so a slow reader can never install a value a writer
//! has already replaced, even if the newer value was evicted meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use quick_cache::sync::Cache;
use quick_cache::Weighter;
use sled::IVec;

use super::TreeName;

/// Bytes charged per entry on top of key and value (bookkeeping).
const ENTRY_OVERHEAD: u64 = 64;

#[derive(Clone)]
struct ByteWeight;

impl Weighter<Vec<u8>, IVec> for ByteWeight {
    fn weight(&self, key: &Vec<u8>, value: &IVec) -> u64 {
        key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD
    }
}

/// The cache. Keys are `[tree index] ‖ key`.
pub(super) struct ReadCache {
    entries: Cache<Vec<u8>, IVec, ByteWeight>,
    // Resolved once: a labelled lookup per read is measurable on hot paths.
    hits: metrics::Counter,
    misses: metrics::Counter,
    epoch: AtomicU64,
    fill: RwLock<()>,
}

fn cache_key(tree: TreeName, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(tree.index() as u8);
    out.extend_from_slice(key);
    out
}

impl ReadCache {
    /// A cache holding about `bytes` of keys and values.
    pub(super) fn new(bytes: u64) -> Self {
        let estimated_items = (bytes / 1024).max(16) as usize;
        ReadCache {
            entries: Cache::with_weighter(estimated_items, bytes.max(1), ByteWeight),
            hits: metrics::counter!("agora_storage_cache_total", "result" => "hit"),
            misses: metrics::counter!("agora_storage_cache_total", "result" => "miss"),
            epoch: AtomicU64::new(0),
            fill: RwLock::new(()),
        }
    }

    /// The cached value, if any. Never blocks on I/O.
    pub(super) fn get(&self, tree: TreeName, key: &[u8]) -> Option<IVec> {
        let value = self.entries.get(&cache_key(tree, key));
        if value.is_some() {
            self.hits.increment(1)
        } else {
            self.misses.increment(1)
        }
        value
    }

    /// The commit epoch to pass to [`Self::fill`] after a read from sled.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches a value read from sled, unless a group committed since `seen`.
    pub(super) fn fill(&self, tree: TreeName, key: &[u8], value: IVec, seen: u64) {
        let Ok(_guard) = self.fill.read() else { return };
        if self.epoch.load(Ordering::Acquire) == seen {
            self.entries.insert(cache_key(tree, key), value);
        }
    }

    /// Applies a committed group's writes (the writer thread only).
    pub(super) fn apply(&self, writes: Vec<(TreeName, Vec<u8>, Option<IVec>)>) {
        if writes.is_empty() {
            return;
        }
        let Ok(_guard) = self.fill.write() else {
            return;
        };
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for (tree, key, value) in writes {
            let key = cache_key(tree, &key);
            match value {
                Some(value) => self.entries.insert(key, value),
                None => {
                    self.entries.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_that_raced_a_commit_is_dropped() {
        let cache = ReadCache::new(1 << 20);
        let seen = cache.epoch();
        // A reader read v1 from sled; meanwhile a writer commits v2, which is
        // then evicted (here: removed) before the reader gets to fill.
        cache.apply(vec![(
            TreeName::Items,
            b"k".to_vec(),
            Some(IVec::from(&b"v2"[..])),
        )]);
        cache.apply(vec![(TreeName::Items, b"k".to_vec(), None)]);
        cache.fill(TreeName::Items, b"k", IVec::from(&b"v1"[..]), seen);
        assert_eq!(
            cache.get(TreeName::Items, b"k"),
            None,
            "stale v1 must not be cached"
        );

        let seen = cache.epoch();
        cache.fill(TreeName::Items, b"k", IVec::from(&b"v2"[..]), seen);
        assert_eq!(
            cache.get(TreeName::Items, b"k").as_deref(),
            Some(&b"v2"[..])
        );
        assert_eq!(
            cache.get(TreeName::Stock, b"k"),
            None,
            "trees do not share keys"
        );
    }
}
