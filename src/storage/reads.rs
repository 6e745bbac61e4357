//! The store's reads: the read cache first for the hot trees, else sled
//! on the blocking pool, a bounded number at a time.

use super::{codec, Record, StorageError, Store, TreeName, Trees};

impl Store {
    /// Reads one record. For the hot trees a cache hit costs no sled call and
    /// no thread hop; anything else reads sled on the blocking pool.
    pub async fn get<R: Record>(
        &self,
        tree: TreeName,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<R>, StorageError> {
        match self.get_bytes(tree, key.as_ref()).await? {
            Some(bytes) => codec::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Reads one raw value (for index trees whose values are plain ids),
    /// through the read cache like [`Self::get`].
    pub async fn get_raw(
        &self,
        tree: TreeName,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .get_bytes(tree, key.as_ref())
            .await?
            .map(|bytes| bytes.to_vec()))
    }

    /// The stored bytes under `key`: from the cache for cached trees, else
    /// from sled on the blocking pool (filling the cache for cached trees).
    /// Cloning the value is a reference count, not a copy: what a reader
    /// that only compares records (the item pages) uses.
    pub async fn get_bytes(
        &self,
        tree: TreeName,
        key: &[u8],
    ) -> Result<Option<sled::IVec>, StorageError> {
        let cache = &self.inner.cache;
        if tree.is_cached() {
            if let Some(bytes) = cache.get(tree, key) {
                return Ok(Some(bytes));
            }
        }
        let seen = cache.epoch();
        let owned = key.to_vec();
        let found = self
            .read(move |trees| Ok(trees.tree(tree).get(owned)?))
            .await?;
        if let (true, Some(bytes)) = (tree.is_cached(), &found) {
            cache.fill(tree, key, bytes.clone(), seen);
        }
        Ok(found)
    }

    /// The stored bytes under each of `keys`, in order: cache hits first,
    /// then every miss in one read on the blocking pool (one thread hop for
    /// a whole search page instead of one per record).
    pub async fn get_many_bytes(
        &self,
        tree: TreeName,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<sled::IVec>>, StorageError> {
        let cache = &self.inner.cache;
        let mut found: Vec<Option<sled::IVec>> = vec![None; keys.len()];
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match tree.is_cached().then(|| cache.get(tree, key)).flatten() {
                Some(bytes) => found[i] = Some(bytes),
                None => missing.push(i),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let seen = cache.epoch();
        let wanted: Vec<Vec<u8>> = missing.iter().map(|&i| keys[i].clone()).collect();
        let read = self
            .read(move |trees| {
                let tree = trees.tree(tree);
                wanted
                    .iter()
                    .map(|key| Ok(tree.get(key)?))
                    .collect::<Result<Vec<_>, StorageError>>()
            })
            .await?;
        for (i, bytes) in missing.into_iter().zip(read) {
            if let (true, Some(bytes)) = (tree.is_cached(), &bytes) {
                cache.fill(tree, &keys[i], bytes.clone(), seen);
            }
            found[i] = bytes;
        }
        Ok(found)
    }

    /// Decoded records under each of `keys`, in order ([`Self::get_many_bytes`]).
    pub async fn get_many<R: Record>(
        &self,
        tree: TreeName,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<R>>, StorageError> {
        self.get_many_bytes(tree, keys)
            .await?
            .into_iter()
            .map(|bytes| bytes.map(|b| codec::decode(&b)).transpose())
            .collect()
    }

    /// Runs a read on the blocking pool, at most `reads_at_once` at a time.
    ///
    /// Unbounded, a catalogue larger than the caches grew the pool to 150
    /// threads under 32 clients (a search page reads its 20 items at once),
    /// each thread keeping its own allocator pages: ~170 MiB of RSS at 1M
    /// items, for no throughput on 2 cores.
    pub async fn read<T, F>(&self, read: F) -> Result<T, StorageError>
    where
        F: FnOnce(&Trees) -> Result<T, StorageError> + Send + 'static,
        T: Send + 'static,
    {
        let trees = self.inner.trees.clone();
        // The semaphore is never closed.
        let permit = self.inner.reads.clone().acquire_owned().await.ok();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            read(&trees)
        })
        .await
        .unwrap_or(Err(StorageError::JobPanicked))
    }

    /// Runs `read` on the calling thread: for code already off the async
    /// threads (start-up, offline commands, blocking-pool tasks).
    pub fn with_trees<T>(&self, read: impl FnOnce(&Trees) -> T) -> T {
        read(&self.inner.trees)
    }
}
