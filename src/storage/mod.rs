//! Storage: one sled database per node, a tree per record kind.
//!
//! - [`codec`]: how values become bytes (bincode 2 behind a version byte).
//! - [`committer`]: the single writer. Every write is a job run by one thread
//!   that groups queued jobs into one multi-tree sled transaction and one
//!   flush (group commit), then answers every job in the group. Being the only
//!   writer is also what keeps the event log gap-free and in commit order.
//! - [`events`]: the event log (transactional outbox) and its consumers;
//!   [`event_json`]: one event as a JSON line (the archive's and the
//!   export's form); [`export`]: the log as JSON lines.
//! - [`archive`]: the log's older part, moved out of sled into compressed
//!   JSON-lines segment files (read with the live log as one).
//!
//! Reads go straight to sled, on the blocking thread pool: sled calls may
//! touch the disk and must never run on the async reactor threads.

pub mod archive;
pub mod archiver;
pub mod backfill;
mod cache;
pub mod codec;
mod committer;
pub mod event_json;
pub mod event_log;
pub mod export;
mod reads;
mod records;
mod trees;

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::domain::sealed::Sealer;
use archive::Archive;
use cache::ReadCache;
pub use codec::Record;
use committer::{Command, Committer, TypedJob};
pub use committer::{Rider, Tx};
pub use trees::{TreeName, Trees};

/// Why storage failed. Cheap to clone: one failure answers a whole group.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// sled reported an I/O or internal error.
    #[error("storage I/O: {0}")]
    Io(Arc<sled::Error>),
    /// A stored value could not be encoded or decoded.
    #[error("codec ({kind}): {reason}")]
    Codec {
        /// Record kind.
        kind: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The writer has stopped (shutdown, or it failed).
    #[error("storage is closed")]
    Closed,
    /// A write job panicked; its writes were discarded.
    #[error("a write job panicked")]
    JobPanicked,
    /// The flush after a committed group failed: its writes may or may not
    /// be durable. The writer stops (fail-stop) after reporting this.
    #[error("storage flush failed; the outcome is unknown: {0}")]
    FlushFailed(Arc<sled::Error>),
    /// sled saw a conflicting transaction. The writer retries these itself;
    /// a job only sees it while being re-run.
    #[error("transaction conflict")]
    Conflict,
}

impl From<sled::Error> for StorageError {
    fn from(e: sled::Error) -> Self {
        StorageError::Io(Arc::new(e))
    }
}

/// Tuning for the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled page cache, bytes.
    pub cache_bytes: u64,
    /// Most jobs in one group commit.
    pub max_group: usize,
    /// Queued write jobs before writers wait (backpressure).
    pub queue_depth: usize,
    /// Read cache for hot point reads, bytes.
    pub read_cache_bytes: u64,
    /// sled reads running at once on the blocking pool; the rest wait
    /// their turn (see [`Store::read`]).
    pub reads_at_once: usize,
}

/// sled reads at once per core: a read that misses sled's cache decodes
/// pages (CPU) and may wait on the disk, so a few per core keep both busy.
pub const READS_PER_CORE: usize = 8;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 64 * 1024 * 1024,
            max_group: 512,
            queue_depth: 8192,
            read_cache_bytes: 64 * 1024 * 1024,
            reads_at_once: READS_PER_CORE
                * std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Handle to the node's database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    trees: Arc<Trees>,
    cache: Arc<ReadCache>,
    writes: mpsc::Sender<Command>,
    last_event: watch::Receiver<u64>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    sealer: Sealer,
    archive: Archive,
    /// Permits for [`Store::read`].
    reads: Arc<Semaphore>,
}

impl Store {
    /// Opens (or creates) the database under `dir` and starts the writer thread.
    ///
    /// Blocking: opening sled reads its log and may take a while on a large
    /// database; call it at start-up or on the blocking pool.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StorageError> {
        let sealer = Sealer::new(
            node_key(dir, "seal.key")
                .map_err(|e| StorageError::Io(Arc::new(sled::Error::Io(e))))?,
        );
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(options.cache_bytes)
            .open()?;
        let trees = TreeName::ALL
            .iter()
            .map(|name| db.open_tree(name.file_name()))
            .collect::<Result<Vec<_>, _>>()?;
        let trees = Arc::new(Trees { trees });
        // Sequence numbers continue after the archive's even if sled holds
        // no event at all.
        let archive = Archive::new(dir);
        let archived = archive
            .archived_through()
            .map_err(|e| StorageError::Io(Arc::new(sled::Error::Io(e))))?;
        let last_seq = event_log::last_sequence(&trees)?.max(archived);
        let (writes, queue) = mpsc::channel(options.queue_depth);
        let (event_tx, last_event) = watch::channel(last_seq);
        let cache = Arc::new(ReadCache::new(options.read_cache_bytes));
        let committer = Committer::new(
            db.clone(),
            trees.clone(),
            cache.clone(),
            last_seq,
            event_tx,
            options.max_group,
        );
        let handle = std::thread::Builder::new()
            .name("agora-committer".into())
            .spawn(move || committer.run(queue))
            .map_err(|e| StorageError::Io(Arc::new(sled::Error::Io(e))))?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                trees,
                cache,
                writes,
                last_event,
                committer: Mutex::new(Some(handle)),
                sealer,
                archive,
                reads: Arc::new(Semaphore::new(options.reads_at_once.max(1))),
            }),
        })
    }

    /// Seals and opens the tokens this node hands out (list cursors, opaque
    /// ids), with a key kept beside the database.
    pub fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    /// The event log's archive (segment files beside the database).
    pub fn archive(&self) -> &Archive {
        &self.inner.archive
    }

    /// Runs `job` in the writer thread and waits until its writes are durable.
    ///
    /// `job` reads through the [`Tx`] (seeing earlier jobs of its group) and
    /// stages writes and events. If it returns `Ok`, its writes commit
    /// atomically with its events; if it returns `Err`, nothing it staged is
    /// written. It may run more than once, so it must be a pure function of
    /// what it reads.
    pub async fn write<T, E, F>(&self, job: F) -> Result<T, E>
    where
        F: Fn(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let done = move |result| {
            let _ = reply.send(result);
        };
        if let Err(refused) = self.submit(job, done).await {
            return Err(refused.into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StorageError::Closed.into()))
    }

    /// Queues `job` like [`Self::write`], but instead of waiting, has the
    /// writer call `done` with the outcome once the group is durable.
    ///
    /// For actors that keep handling messages while their flush is in
    /// flight: no task has to wait for the answer. `done` runs on the writer
    /// thread and must not block. Waits only for room in the queue.
    pub async fn submit<T, E, F>(
        &self,
        job: F,
        done: impl FnOnce(Result<T, E>) + Send + 'static,
    ) -> Result<(), StorageError>
    where
        F: Fn(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let job = Box::new(TypedJob::new(job, Box::new(done)));
        self.inner
            .writes
            .send(Command::Write(job))
            .await
            .map_err(|_| StorageError::Closed)
    }

    /// Watches the sequence number of the newest durable event.
    pub fn event_watch(&self) -> watch::Receiver<u64> {
        self.inner.last_event.clone()
    }

    /// Whether the writer is still accepting writes.
    pub fn is_writable(&self) -> bool {
        !self.inner.writes.is_closed()
    }

    /// Total bytes sled reports on disk.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(self.inner.db.size_on_disk()?)
    }

    /// Drains queued writes, flushes, and stops the writer. Later writes fail
    /// with [`StorageError::Closed`]. Idempotent.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self
            .inner
            .writes
            .send(Command::Shutdown(done))
            .await
            .is_ok()
        {
            let _ = finished.await;
        }
        let handle = self.inner.committer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

/// A 32-byte secret kept at `<dir>/keys/<name>`, made on first use
/// (written to a temporary file, then renamed, so a crash never leaves half
/// a key). Only the node reads it: the folder is `0700`, the file `0600`.
pub fn node_key(dir: &Path, name: &str) -> std::io::Result<[u8; 32]> {
    let folder = dir.join("keys");
    let path = folder.join(name);
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
    }
    std::fs::create_dir_all(&folder)?;
    let key: [u8; 32] = rand::random();
    let temporary = path.with_extension("tmp");
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&key)?;
        file.sync_all()?;
    }
    #[cfg(not(unix))]
    std::fs::write(&temporary, key)?;
    std::fs::rename(&temporary, &path)?;
    Ok(key)
}
