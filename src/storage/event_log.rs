//! The event log: an append-only, gap-free, ordered log in sled (the
//! transactional outbox), and durable per-consumer offsets.
//!
//! Events are appended by write jobs ([`super::Tx::emit`]) in the same atomic
//! write as the state change they describe, so the log never claims a change
//! that did not happen and never misses one that did. Consumers read after
//! their committed offset: every event at least once, in order, across
//! restarts; exactly once when a consumer commits after handling each batch
//! and does not crash in between.
//!
//! Events every durable consumer has handled are moved to the archive
//! ([`super::archive`]) by the archive pass (`archiver.rs`); a consumer positioned
//! below the live log (a rebuild from 0, one that was far behind) reads
//! them from there, seamlessly and in order.

use tokio::sync::watch;

use super::archive::ArchivedLines;
use super::event_json::event_from_json;
use super::{codec, StorageError, Store, TreeName, Trees};
use crate::domain::event::Event;

/// The sequence number of the newest event (0 when the log is empty).
pub(super) fn last_sequence(trees: &Trees) -> Result<u64, StorageError> {
    match trees.tree(TreeName::Events).last()? {
        Some((key, _)) => Ok(seq_from_key(&key)),
        None => Ok(0),
    }
}

fn seq_from_key(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&key[..8]);
    u64::from_be_bytes(bytes)
}

/// Reads up to `max` events with sequence numbers in `after+1 ..= upto`.
pub fn read_after(
    trees: &Trees,
    after: u64,
    upto: u64,
    max: usize,
) -> Result<Vec<Event>, StorageError> {
    if upto <= after {
        return Ok(Vec::new());
    }
    let (start, end) = (after.saturating_add(1).to_be_bytes(), upto.to_be_bytes());
    trees
        .tree(TreeName::Events)
        .range(start..=end)
        .take(max)
        .map(|entry| {
            let (_, value) = entry?;
            codec::decode(&value)
        })
        .collect()
}

fn io_error(e: std::io::Error) -> StorageError {
    StorageError::Io(std::sync::Arc::new(sled::Error::Io(e)))
}

/// A named reader of the log with a durable offset.
pub struct EventConsumer {
    name: String,
    store: Store,
    position: u64,
    watch: watch::Receiver<u64>,
    /// Where it reads the archive, while below the live log (kept so each
    /// segment is decompressed once, not once per batch).
    archived: Option<ArchivedLines>,
}

impl EventConsumer {
    /// Opens the consumer `name`, positioned after its committed offset.
    pub async fn open(store: Store, name: &str) -> Result<Self, StorageError> {
        let key = name.to_owned();
        let position = store
            .read(move |trees| {
                Ok(trees
                    .tree(TreeName::Offsets)
                    .get(key.as_bytes())?
                    .map(|v| seq_from_key(&v))
                    .unwrap_or(0))
            })
            .await?;
        let watch = store.event_watch();
        Ok(EventConsumer {
            name: name.to_owned(),
            store,
            position,
            watch,
            archived: None,
        })
    }

    /// A consumer positioned after `position`, for one that keeps its offset
    /// elsewhere (the search index keeps it in its own commits, atomically
    /// with what it indexed).
    pub fn at(store: Store, name: &str, position: u64) -> Self {
        let watch = store.event_watch();
        EventConsumer {
            name: name.to_owned(),
            store,
            position,
            watch,
            archived: None,
        }
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sequence number of the last event handed out.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next events after the last one handed out, up to `max` (at least
    /// one); waits while there are none. Only events already flushed to disk
    /// are handed out: a consumer never acts on a change a crash could undo.
    /// Returns an empty batch only if storage closed.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Event>, StorageError> {
        let max = max.max(1);
        loop {
            let after = self.position;
            let durable = *self.watch.borrow_and_update();
            if durable > after {
                let mut batch = self
                    .store
                    .read(move |trees| read_after(trees, after, durable, max))
                    .await?;
                // sled's range reads are not snapshots: a trim under this
                // one can leave a gap in it. The rest is read again.
                if let Some(gap) = batch.windows(2).position(|w| w[1].seq != w[0].seq + 1) {
                    batch.truncate(gap + 1);
                }
                // The next event is not in sled: it was archived (perhaps
                // just now, while this consumer was reading).
                if batch.first().is_none_or(|e| e.seq != after + 1) {
                    let archived = self.read_archived(after, durable, max).await?;
                    if !archived.is_empty() {
                        batch = archived;
                    } else if self.position > after {
                        // Only unreadable lines were passed: read on.
                        continue;
                    } else if let Some(first) = batch.first() {
                        // In neither: lost (a segment removed by hand?).
                        tracing::error!(consumer = %self.name, after, first = first.seq, "events missing from the log and the archive; skipped");
                    }
                }
                if let Some(last) = batch.last() {
                    self.position = last.seq;
                    return Ok(batch);
                }
            }
            // Wait for a flush past our position; errs once the writer is gone.
            if self.watch.wait_for(|&newest| newest > after).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    /// Up to `max` archived events after `after` and at most `upto`.
    async fn read_archived(
        &mut self,
        after: u64,
        upto: u64,
        max: usize,
    ) -> Result<Vec<Event>, StorageError> {
        let cursor = self.archived.take().filter(|c| c.position() == after);
        let archive = self.store.archive().clone();
        let name = self.name.clone();
        let (events, passed, cursor) = tokio::task::spawn_blocking(move || {
            let mut reused = cursor.is_some();
            let mut lines = match cursor {
                Some(lines) => lines,
                None => archive.lines_after(after).map_err(io_error)?,
            };
            let mut events = Vec::new();
            let mut finished = false;
            while events.len() < max && lines.position() < upto {
                let Some((seq, line)) = lines.next_line().map_err(io_error)? else {
                    // A kept cursor knows only the segments listed when it
                    // was made: list them again for one archived since.
                    if std::mem::take(&mut reused) {
                        lines = archive.lines_after(lines.position()).map_err(io_error)?;
                        continue;
                    }
                    finished = true;
                    break;
                };
                match event_from_json(&line) {
                    Ok(event) => events.push(event),
                    // Not a line this node could have written; skipping it
                    // beats stopping the consumer for good.
                    Err(e) => {
                        tracing::error!(consumer = %name, seq, error = %e, "skipped an archived event it cannot read")
                    }
                }
            }
            // A cursor past its last segment is dropped: segments archived
            // since it listed them are found by the next one.
            let passed = lines.position();
            Ok::<_, StorageError>((events, passed, (!finished).then_some(lines)))
        })
        .await
        .unwrap_or(Err(StorageError::JobPanicked))?;
        self.archived = cursor;
        if events.is_empty() {
            // Lines skipped as unreadable are behind the consumer too.
            self.position = self.position.max(passed);
        }
        Ok(events)
    }

    /// [`Self::next_batch`] for a consumer task: `None` once `stop` turns
    /// true (or its sender is gone) or storage closes. A failed read is
    /// logged and retried after a pause; the position does not move.
    pub async fn next_or_stop(
        &mut self,
        max: usize,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Vec<Event>> {
        loop {
            let batch = tokio::select! {
                batch = self.next_batch(max) => batch,
                _ = stop.wait_for(|s| *s) => return None,
            };
            match batch {
                Ok(events) if events.is_empty() => return None,
                Ok(events) => return Some(events),
                Err(e) => {
                    tracing::warn!(consumer = %self.name, error = %e, "cannot read the event log; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = stop.wait_for(|s| *s) => return None,
                    }
                }
            }
        }
    }

    /// Durably records that every event up to and including `seq` is handled.
    /// An offset never passes what was handed out.
    pub async fn commit(&self, seq: u64) -> Result<(), StorageError> {
        let seq = seq.min(self.position);
        let key = self.name.clone().into_bytes();
        self.store
            .write(move |tx| {
                tx.put_raw(TreeName::Offsets, key.clone(), seq.to_be_bytes().to_vec());
                Ok::<_, StorageError>(())
            })
            .await
    }
}
