//! The recommender's consumer: the task that applies the log batch by
//! batch (each write computed off the writer, in `writes.rs`), paced
//! catch-up and the re-rank passes; reset and rebuild.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::keys;
use super::model;
use super::writes::{apply_batch, rerank_some, MAX_WRITES};
use crate::domain::event::Event;
use crate::storage::event_log::EventConsumer;
use crate::storage::{StorageError, Store, TreeName};

/// The consumer's name (in logs; its offset is kept in its own tree).
pub(super) const CONSUMER: &str = "recommender";
/// Events read per batch.
const BATCH: usize = 256;
/// While events keep coming, the ranking keys of items bought meanwhile
/// move at most this often (an item bought k times in between moves its
/// keys once instead of k times); once the log is drained they move at
/// once, before the consumer reports itself caught up.
const RERANK_EVERY: Duration = Duration::from_secs(5);
/// Items per re-rank write: an item moves at most 7 keys (3 rankings out,
/// 3 in, its record), so a write stays within [`MAX_WRITES`].
const RERANK_CHUNK: usize = MAX_WRITES / 7;
/// Whether the aggregates are of this version's layout.
pub(super) async fn has_current_format(store: &Store) -> Result<bool, StorageError> {
    store
        .read(|trees| {
            let stored = trees
                .tree(TreeName::Recommendations)
                .get(keys::format_key())?;
            Ok(stored.is_some_and(|v| v.as_ref() == keys::FORMAT.to_be_bytes()))
        })
        .await
}

/// Empties the aggregates (their offset with them: the consumer starts
/// again at the beginning of the log).
/// The format key goes first and comes back last, so a crash half-way is
/// seen at the next start, which resets again.
pub async fn reset(store: &Store) -> Result<(), StorageError> {
    store
        .write(|tx| {
            tx.remove(TreeName::Recommendations, keys::format_key());
            tx.remove(TreeName::Recommendations, keys::offset_key());
            Ok::<_, StorageError>(())
        })
        .await?;
    loop {
        let keys: Vec<Vec<u8>> = store
            .read(|trees| {
                trees
                    .tree(TreeName::Recommendations)
                    .iter()
                    .keys()
                    .take(4096)
                    .map(|k| Ok(k?.to_vec()))
                    .collect()
            })
            .await?;
        if keys.is_empty() {
            break;
        }
        let keys = Arc::new(keys);
        store
            .write(move |tx| {
                for key in keys.iter() {
                    tx.remove(TreeName::Recommendations, key.clone());
                }
                Ok::<_, StorageError>(())
            })
            .await?;
    }
    store
        .write(|tx| {
            tx.put_raw(
                TreeName::Recommendations,
                keys::format_key(),
                keys::FORMAT.to_be_bytes().to_vec(),
            );
            Ok::<_, StorageError>(())
        })
        .await
}

/// Rebuilds the aggregates from the whole log (the node must be stopped):
/// resets them, then applies every event. Returns the events applied.
pub async fn rebuild(store: &Store) -> Result<u64, StorageError> {
    reset(store).await?;
    let mut consumer = EventConsumer::at(store.clone(), CONSUMER, 0);
    let end = *store.event_watch().borrow();
    let mut applied = 0;
    let mut lagging = HashSet::new();
    while consumer.position() < end {
        let events = Arc::new(consumer.next_batch(BATCH).await?);
        if events.is_empty() {
            break;
        }
        let mut from = 0;
        while from < events.len() {
            let (taken, deferred) = apply_batch(store, events.clone(), from).await?;
            from += taken;
            lagging.extend(deferred);
        }
        applied += events.len() as u64;
    }
    let lagging: Vec<String> = lagging.into_iter().collect();
    for chunk in lagging.chunks(RERANK_CHUNK) {
        let mut left = chunk.to_vec();
        while !left.is_empty() {
            left = rerank_some(store, left).await?;
        }
    }
    Ok(applied)
}

/// The items whose ranking keys lag (left by a node that stopped before
/// it re-ranked them).
async fn lagging_items(store: &Store) -> Result<HashSet<String>, StorageError> {
    store
        .read(|trees| {
            let tree = trees.tree(TreeName::Recommendations);
            let prefix = [keys::ITEM];
            let mut lagging = HashSet::new();
            for entry in tree.scan_prefix(prefix) {
                let (key, value) = entry?;
                let item: model::RecoItem = match crate::storage::codec::decode(&value) {
                    Ok(item) => item,
                    Err(_) => continue,
                };
                if model::lags(&item) {
                    if let Ok(id) = String::from_utf8(key[1..].to_vec()) {
                        lagging.insert(id);
                    }
                }
            }
            Ok(lagging)
        })
        .await
}

/// The consumer task: applies the log to the aggregates until `stop`,
/// publishing its position, and keeps the ranking keys moving.
pub(super) async fn consume(
    store: Store,
    consumer: EventConsumer,
    position: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) {
    let mut run = Consuming::start(store, consumer, position, stop).await;
    while let Some(events) = run.consumer.next_or_stop(BATCH, &mut run.stop).await {
        if run.handle(events).await.is_break() {
            return;
        }
    }
}

/// What the consumer task carries from one batch to the next.
struct Consuming {
    store: Store,
    consumer: EventConsumer,
    position: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
    /// Items whose ranking keys lag and that no pass has taken yet.
    lagging: HashSet<String>,
    /// The pass under way (one write's worth per turn, so it never holds
    /// the writer long); items deferred meanwhile wait for the next pass.
    pass: HashSet<String>,
    /// When the last pass began.
    reranked_at: Instant,
}

impl Consuming {
    /// Re-ranks what a previous run left lagging before the first batch.
    async fn start(
        store: Store,
        consumer: EventConsumer,
        position: Arc<AtomicU64>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let mut lagging = match lagging_items(&store).await {
            Ok(lagging) => lagging,
            Err(e) => {
                tracing::warn!(error = %e, "recommender could not list the items it left unranked");
                HashSet::new()
            }
        };
        if !lagging.is_empty() {
            lagging = rerank(&store, lagging, true).await;
        }
        Consuming {
            store,
            consumer,
            position,
            stop,
            lagging,
            pass: HashSet::new(),
            reranked_at: Instant::now(),
        }
    }

    /// Applies one batch read from the log, a write's worth at a time;
    /// `Break` once asked to stop. A failed write reopens the consumer at
    /// the durable offset and drops the rest of the batch.
    async fn handle(&mut self, events: Vec<Event>) -> ControlFlow<()> {
        let catching_up = events.len() == BATCH;
        let events = Arc::new(events);
        let mut from = 0;
        while from < events.len() {
            let started = Instant::now();
            match apply_batch(&self.store, events.clone(), from).await {
                Ok((taken, deferred)) => {
                    from += taken;
                    self.lagging.extend(deferred);
                    self.applied(taken, events[from - 1].seq).await?;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recommender batch not written; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.reopen().await;
                    return ControlFlow::Continue(());
                }
            }
            // Behind: yield the writer as long as the batch held it, so a
            // backlog is worked off at no more than about half its pace.
            if catching_up || from < events.len() {
                let pause = started.elapsed().min(Duration::from_millis(200));
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = self.stop.wait_for(|s| *s) => return ControlFlow::Break(()),
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// After a write that applied `taken` events up to `last`: moves the
    /// rankings that are due, then publishes the position.
    async fn applied(&mut self, taken: usize, last: u64) -> ControlFlow<()> {
        // Drained: the rankings catch up before the consumer says it has;
        // otherwise they move every few seconds.
        let drained = last >= *self.store.event_watch().borrow();
        if drained || (self.pass.is_empty() && self.reranked_at.elapsed() >= RERANK_EVERY) {
            // A new pass: what lagged until now.
            self.pass.extend(std::mem::take(&mut self.lagging));
            self.reranked_at = Instant::now();
        }
        if !self.pass.is_empty() {
            self.pass = rerank(&self.store, std::mem::take(&mut self.pass), drained).await;
        }
        // Drained, the consumer says it is caught up only once the rankings
        // are: a failed re-rank write is retried here, as no new event may
        // come to retry it.
        while drained && !self.pass.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.stop.wait_for(|s| *s) => return ControlFlow::Break(()),
            }
            self.pass = rerank(&self.store, std::mem::take(&mut self.pass), true).await;
        }
        self.position.store(last, Ordering::Relaxed);
        metrics::counter!("agora_recommender_events_total").increment(taken as u64);
        metrics::gauge!("agora_recommender_offset").set(last as f64);
        ControlFlow::Continue(())
    }

    /// Reads again from the durable offset (after a batch was not written).
    async fn reopen(&mut self) {
        match self
            .store
            .read(|trees| keys::applied(trees.tree(TreeName::Recommendations)))
            .await
        {
            Ok(offset) => self.consumer = EventConsumer::at(self.store.clone(), CONSUMER, offset),
            Err(e) => {
                tracing::warn!(error = %e, "recommender cannot reopen its offset")
            }
        }
    }
}

/// Re-ranks `lagging`: all of it when `all`, else one write's worth (the
/// rest waits for the next turn). Returns what is still lagging; a failed
/// write keeps its items for the next turn.
async fn rerank(store: &Store, mut lagging: HashSet<String>, all: bool) -> HashSet<String> {
    loop {
        let chunk: Vec<String> = lagging.iter().take(RERANK_CHUNK).cloned().collect();
        for id in &chunk {
            lagging.remove(id);
        }
        match rerank_some(store, chunk.clone()).await {
            Ok(left) => lagging.extend(left),
            Err(e) => {
                tracing::warn!(error = %e, "recommender re-rank not written; retrying later");
                lagging.extend(chunk);
                return lagging;
            }
        }
        if !all || lagging.is_empty() {
            return lagging;
        }
    }
}
