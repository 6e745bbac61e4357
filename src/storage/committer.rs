//! The single writer and its group commit.
//!
//! Why one writer thread: durability costs one fsync (~85 µs here), so
//! writes are grouped: the thread drains every queued job, runs them all in
//! one multi-tree sled transaction, flushes once, then answers each caller.
//! Measured in `../shared/peers` this takes durable writes from ~9k/s (a flush
//! per write) to ~120k/s. Being the only writer also means event sequence
//! numbers are handed out in commit order, so a consumer reading the log in
//! key order can never skip an event that commits late.
//!
//! It is a plain OS thread, not a tokio task, because every step of it blocks.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::{IVec, Transactional};
use tokio::sync::{mpsc, oneshot, watch};

use super::cache::ReadCache;
use super::{codec, Record, StorageError, TreeName, Trees};
use crate::domain::event::{Event, EventBody};
use crate::domain::Timestamp;

/// What the writer thread is asked to do.
pub(super) enum Command {
    /// Run a job in the next group.
    Write(Box<dyn Job>),
    /// Commit what is queued, flush, stop.
    Shutdown(oneshot::Sender<()>),
}

/// A type-erased write job.
pub(super) trait Job: Send {
    /// Runs the job against the group's transaction; true if its staged
    /// writes should be kept.
    fn run(&self, tx: &mut Tx<'_>) -> bool;
    /// Answers the caller once the group is durable (or failed).
    fn finish(self: Box<Self>, committed: Result<(), StorageError>);
}

/// What is done with a job's outcome once its group is durable. It runs on
/// the writer thread, so it must be quick and never block (send on a
/// channel, cast to an actor).
pub(super) type Completion<T, E> = Box<dyn FnOnce(Result<T, E>) + Send>;

/// A job closure with its typed completion.
pub(super) struct TypedJob<F, T, E> {
    job: F,
    result: RefCell<Option<Result<T, E>>>,
    done: Completion<T, E>,
}

impl<F, T, E> TypedJob<F, T, E> {
    pub(super) fn new(job: F, done: Completion<T, E>) -> Self {
        TypedJob {
            job,
            result: RefCell::new(None),
            done,
        }
    }
}

impl<F, T, E> Job for TypedJob<F, T, E>
where
    F: Fn(&mut Tx<'_>) -> Result<T, E> + Send,
    T: Send,
    E: From<StorageError> + Send,
{
    fn run(&self, tx: &mut Tx<'_>) -> bool {
        // A panicking job must not take the writer (and so every other
        // caller) down with it: its writes are discarded and it gets an error.
        let result = catch_unwind(AssertUnwindSafe(|| (self.job)(tx)))
            .unwrap_or_else(|_| Err(StorageError::JobPanicked.into()));
        let keep = result.is_ok();
        *self.result.borrow_mut() = Some(result);
        keep
    }

    fn finish(self: Box<Self>, committed: Result<(), StorageError>) {
        let answer = match (self.result.into_inner(), committed) {
            // A refusal wrote nothing, so it stands even if the group failed.
            (Some(Err(refusal)), _) => Err(refusal),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(e.into()),
            (None, Ok(())) => Err(StorageError::JobPanicked.into()),
        };
        (self.done)(answer);
    }
}

/// A job's view of the group transaction: reads see everything staged before
/// it in the group; its own writes are staged and applied only if it succeeds.
pub struct Tx<'a> {
    views: &'a [TransactionalTree],
    staged: Vec<(TreeName, Vec<u8>, Option<Vec<u8>>)>,
    /// Each event, with its origin (`<node>:<seq>`) when another node made it.
    events: Vec<(EventBody, Option<Vec<u8>>)>,
    conflict: bool,
}

/// A write that rides along in another component's write job, so both
/// commit atomically: the checkout coordinator's log entry for a step travels
/// with the step's own write (an order's transition, a cart's clearing), and
/// the log can never disagree with what the step did.
#[derive(Debug, Clone)]
pub struct Rider {
    /// The tree written.
    pub tree: TreeName,
    /// The key.
    pub key: Vec<u8>,
    /// The encoded value, or `None` to remove the key.
    pub value: Option<Vec<u8>>,
}

impl<'a> Tx<'a> {
    fn new(views: &'a [TransactionalTree]) -> Self {
        Tx {
            views,
            staged: Vec::new(),
            events: Vec::new(),
            conflict: false,
        }
    }

    /// Raw bytes under `key`, including this job's own staged writes.
    pub fn get_raw(&mut self, tree: TreeName, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some((_, _, value)) = self
            .staged
            .iter()
            .rev()
            .find(|(t, k, _)| *t == tree && k == key)
        {
            return Ok(value.clone());
        }
        match self.views[tree.index()].get(key) {
            Ok(value) => Ok(value.map(|v| v.to_vec())),
            Err(UnabortableTransactionError::Conflict) => {
                self.conflict = true;
                Err(StorageError::Conflict)
            }
            Err(UnabortableTransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Reads and decodes a record.
    pub fn get<R: Record>(
        &mut self,
        tree: TreeName,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<R>, StorageError> {
        match self.get_raw(tree, key.as_ref())? {
            Some(bytes) => codec::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `key` exists.
    pub fn contains(
        &mut self,
        tree: TreeName,
        key: impl AsRef<[u8]>,
    ) -> Result<bool, StorageError> {
        Ok(self.get_raw(tree, key.as_ref())?.is_some())
    }

    /// Stages `record` under `key`.
    pub fn put<R: Record>(
        &mut self,
        tree: TreeName,
        key: impl Into<Vec<u8>>,
        record: &R,
    ) -> Result<(), StorageError> {
        let bytes = codec::encode(record)?;
        self.put_raw(tree, key, bytes);
        Ok(())
    }

    /// Stages raw bytes under `key`.
    pub fn put_raw(&mut self, tree: TreeName, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.staged.push((tree, key.into(), Some(value)));
    }

    /// Stages the removal of `key`.
    pub fn remove(&mut self, tree: TreeName, key: impl Into<Vec<u8>>) {
        self.staged.push((tree, key.into(), None));
    }

    /// Stages a [`Rider`]: another component's write, made atomic with this job.
    pub fn ride(&mut self, rider: &Rider) {
        self.staged
            .push((rider.tree, rider.key.clone(), rider.value.clone()));
    }

    /// Appends an event, committed atomically with this job's writes.
    pub fn emit(&mut self, body: EventBody) {
        self.events.push((body, None));
    }

    /// Appends an event another node made (`origin` = `<node>:<seq>`):
    /// every consumer of the log sees it like a local one, and the origin
    /// is kept beside it ([`TreeName::ForeignEvents`]) so the relay never
    /// publishes it again.
    pub fn emit_foreign(&mut self, body: EventBody, origin: Vec<u8>) {
        self.events.push((body, Some(origin)));
    }

    /// Writes the staged changes and events into the transaction.
    fn apply(
        self,
        seq: &mut u64,
        at: Timestamp,
        cached: &mut Vec<(TreeName, Vec<u8>, Option<IVec>)>,
        written: &mut Written,
    ) -> Result<bool, ConflictableTransactionError<StorageError>> {
        let wrote = !self.staged.is_empty() || !self.events.is_empty();
        for (tree, key, value) in self.staged {
            written.key(tree, &key);
            let view = &self.views[tree.index()];
            let value = value.map(IVec::from);
            match &value {
                Some(value) => view.insert(key.as_slice(), value.clone())?,
                None => view.remove(key.as_slice())?,
            };
            if tree.is_cached() {
                cached.push((tree, key, value));
            }
        }
        for (body, origin) in self.events {
            *seq += 1;
            if let Some(origin) = origin {
                self.views[TreeName::ForeignEvents.index()]
                    .insert(&seq.to_be_bytes()[..], origin)?;
                written.per_tree[TreeName::ForeignEvents.index()] += 1;
            }
            let bytes = codec::encode(&Event {
                seq: *seq,
                at,
                body,
            })
            .map_err(ConflictableTransactionError::Abort)?;
            self.views[TreeName::Events.index()].insert(&seq.to_be_bytes()[..], bytes)?;
            written.per_tree[TreeName::Events.index()] += 1;
        }
        Ok(wrote)
    }
}

/// The keys one group writes, per tree, as sled applies them: its
/// transaction keeps one write per key, so a key written by several jobs
/// of a group (a hot SKU's stock) counts once. Reported as
/// `agora_storage_writes_total{tree}`; a write's cost is per key.
#[derive(Default)]
struct Written {
    seen: std::collections::HashSet<(usize, Vec<u8>)>,
    per_tree: [u64; TreeName::ALL.len()],
}

impl Written {
    fn key(&mut self, tree: TreeName, key: &[u8]) {
        if self.seen.insert((tree.index(), key.to_vec())) {
            self.per_tree[tree.index()] += 1;
        }
    }

    fn report(&self) {
        for tree in TreeName::ALL {
            let count = self.per_tree[tree.index()];
            if count > 0 {
                metrics::counter!("agora_storage_writes_total", "tree" => tree.file_name())
                    .increment(count);
            }
        }
    }
}

/// The writer thread's state.
pub(super) struct Committer {
    db: sled::Db,
    trees: Arc<Trees>,
    cache: Arc<ReadCache>,
    last_seq: u64,
    event_watch: watch::Sender<u64>,
    max_group: usize,
    /// Set by a failed flush: the writer stops (fail-stop).
    failed: bool,
}

impl Committer {
    pub(super) fn new(
        db: sled::Db,
        trees: Arc<Trees>,
        cache: Arc<ReadCache>,
        last_seq: u64,
        event_watch: watch::Sender<u64>,
        max_group: usize,
    ) -> Self {
        Committer {
            db,
            trees,
            cache,
            last_seq,
            event_watch,
            max_group: max_group.max(1),
            failed: false,
        }
    }

    /// Serves the queue until shutdown or until every sender is gone.
    pub(super) fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        let mut stopping: Vec<oneshot::Sender<()>> = Vec::new();
        while let Some(first) = queue.blocking_recv() {
            let mut group: Vec<Box<dyn Job>> = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Write(job) => group.push(job),
                    Command::Shutdown(done) => {
                        // Refuse new work, but commit everything already queued.
                        queue.close();
                        stopping.push(done);
                    }
                }
                if group.len() < self.max_group {
                    next = queue.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit(group);
            }
            if self.failed {
                tracing::error!("storage writer stopped after a failed flush; restart the node");
                queue.close();
                while let Ok(command) = queue.try_recv() {
                    match command {
                        Command::Write(job) => job.finish(Err(StorageError::Closed)),
                        Command::Shutdown(done) => stopping.push(done),
                    }
                }
                break;
            }
            if !stopping.is_empty() && queue.is_empty() {
                break;
            }
        }
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "final storage flush failed");
        }
        for done in stopping {
            let _ = done.send(());
        }
    }

    fn commit(&mut self, jobs: Vec<Box<dyn Job>>) {
        let started = Instant::now();
        let last_seq = self.last_seq;
        let at = Timestamp::now();
        let outcome = self.trees.trees.as_slice().transaction(|views| {
            let mut seq = last_seq;
            let mut wrote = false;
            let mut cached = Vec::new();
            let mut written = Written::default();
            for job in &jobs {
                let mut tx = Tx::new(views);
                let keep = job.run(&mut tx);
                if tx.conflict {
                    return Err(ConflictableTransactionError::Conflict);
                }
                if keep {
                    wrote |= tx.apply(&mut seq, at, &mut cached, &mut written)?;
                }
            }
            Ok((seq, wrote, cached, written))
        });
        let result = match outcome {
            Ok((seq, wrote, cached, written)) => {
                self.last_seq = seq;
                written.report();
                self.cache.apply(cached);
                let flushed = if wrote {
                    self.db
                        .flush()
                        .map(drop)
                        .map_err(|e| StorageError::FlushFailed(Arc::new(e)))
                } else {
                    Ok(())
                };
                // The watch is the durable mark consumers read up to: only a
                // successful flush moves it (a later one catches it up).
                if flushed.is_ok() && *self.event_watch.borrow() != self.last_seq {
                    self.event_watch.send_replace(self.last_seq);
                }
                flushed
            }
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, jobs = jobs.len(), "group commit failed");
            if matches!(e, StorageError::FlushFailed(_)) {
                // Memory (and sled) may hold writes the disk does not: stop
                // acknowledging anything rather than drift further.
                self.failed = true;
            }
        }
        metrics::histogram!("agora_storage_group_jobs").record(jobs.len() as f64);
        metrics::histogram!("agora_storage_commit_seconds").record(started.elapsed().as_secs_f64());
        for job in jobs {
            job.finish(result.clone());
        }
    }
}
