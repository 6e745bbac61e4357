//! The recommender's consumer: batches computed off the writer and
//! committed with their offset, paced catch-up, reset and rebuild.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::keys;
use super::model::{self, OrderFacts, Overlay};
use crate::domain::event::Event;
use crate::domain::order::Order;
use crate::storage::events::EventConsumer;
use crate::storage::{StorageError, Store, TreeName, Trees, Tx};

/// The consumer's name (in logs; its offset is kept in its own tree).
pub(super) const CONSUMER: &str = "recommender";
/// Events read per batch.
const BATCH: usize = 256;
/// Most writes one batch stages: its write joins a group commit with
/// checkout's writes, and a bounded batch keeps that group short.
pub const MAX_WRITES: usize = 1_000;
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

/// The facts of the orders `ids` (hot tree first, then the archive).
pub(super) fn order_facts(
    trees: &Trees,
    ids: Vec<String>,
) -> Result<HashMap<String, OrderFacts>, StorageError> {
    let mut facts = HashMap::with_capacity(ids.len());
    for id in ids {
        let order = match trees.get::<Order>(TreeName::Orders, id.as_bytes())? {
            Some(order) => Some(order),
            None => trees.get::<Order>(TreeName::OrderArchive, id.as_bytes())?,
        };
        if let Some(order) = order {
            let lines = order
                .lines
                .iter()
                .map(|l| (l.item_id.clone(), l.quantity))
                .collect();
            facts.insert(
                id,
                OrderFacts {
                    user_id: order.user_id,
                    lines,
                },
            );
        }
    }
    Ok(facts)
}

/// Applies events from the front of `events` (up to [`MAX_WRITES`] writes)
/// and moves the offset past them, in one atomic write; returns how many
/// were taken, and the items whose ranking keys now lag.
///
/// The changes are computed on the blocking pool from a snapshot of the
/// tree: the recommender is its only writer, so the snapshot is current.
/// The write job re-checks the stored offset (a reset in between would
/// move it) and only stages the result: the single writer does no reads
/// or computing for the recommender.
async fn apply_batch(
    store: &Store,
    events: Arc<Vec<Event>>,
    from: usize,
) -> Result<(usize, HashSet<String>), StorageError> {
    let wanted = model::confirmed_orders(&events[from..]);
    let computed = store
        .read(move |trees| {
            let orders = order_facts(trees, wanted)?;
            let tree = trees.tree(TreeName::Recommendations);
            let before = keys::applied(tree)?;
            let mut batch = Overlay::new(|key: &[u8]| Ok(tree.get(key)?.map(|v| v.to_vec())));
            let (taken, _) = model::apply_events(&mut batch, &events[from..], &orders, MAX_WRITES)?;
            Ok((before, taken, batch.into_writes()))
        })
        .await?;
    let (before, taken, (writes, deferred)) = computed;
    let writes = Arc::new(writes);
    let current = store
        .write(move |tx| {
            let offset = tx
                .get_raw(TreeName::Recommendations, &keys::offset_key())?
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map_or(0, u64::from_be_bytes);
            if offset != before {
                return Ok::<_, StorageError>(false);
            }
            stage(tx, &writes);
            Ok(true)
        })
        .await?;
    if !current {
        return Err(StorageError::Codec {
            kind: "recommender",
            reason: "the offset moved while a batch was computed".into(),
        });
    }
    Ok((taken, deferred))
}

/// Stages a batch's precomputed writes into the recommender's tree.
fn stage(tx: &mut Tx<'_>, writes: &model::Writes) {
    for (key, value) in writes {
        match value {
            Some(value) => tx.put_raw(TreeName::Recommendations, key.clone(), value.clone()),
            None => tx.remove(TreeName::Recommendations, key.clone()),
        }
    }
}

/// Moves the ranking keys of `items` (up to [`MAX_WRITES`] writes) in
/// one write, computed off the writer like a batch; returns the items left
/// for the next call.
async fn rerank_some(store: &Store, items: Vec<String>) -> Result<Vec<String>, StorageError> {
    let computed = store
        .read(move |trees| {
            let tree = trees.tree(TreeName::Recommendations);
            let mut batch = Overlay::new(|key: &[u8]| Ok(tree.get(key)?.map(|v| v.to_vec())));
            let left = model::rerank(&mut batch, items, MAX_WRITES)?;
            Ok((left, batch.into_writes().0))
        })
        .await?;
    let (left, writes) = computed;
    let count = writes.len();
    let writes = Arc::new(writes);
    store
        .write(move |tx| {
            stage(tx, &writes);
            Ok::<_, StorageError>(())
        })
        .await?;
    metrics::counter!("agora_recommender_rerank_writes_total").increment(count as u64);
    Ok(left)
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

pub(super) async fn consume(
    store: Store,
    mut consumer: EventConsumer,
    position: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
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
    // The pass under way (one write's worth per turn, so it never holds
    // the writer long); items deferred meanwhile wait for the next pass.
    let mut pass = HashSet::new();
    let mut reranked_at = Instant::now();
    while let Some(events) = consumer.next_or_stop(BATCH, &mut stop).await {
        let catching_up = events.len() == BATCH;
        let events = Arc::new(events);
        let mut from = 0;
        while from < events.len() {
            let started = Instant::now();
            match apply_batch(&store, events.clone(), from).await {
                Ok((taken, deferred)) => {
                    from += taken;
                    lagging.extend(deferred);
                    let last = events[from - 1].seq;
                    // Drained: the rankings catch up before the consumer
                    // says it has; otherwise they move every few seconds.
                    let drained = last >= *store.event_watch().borrow();
                    if drained || (pass.is_empty() && reranked_at.elapsed() >= RERANK_EVERY) {
                        // A new pass: what lagged until now.
                        pass.extend(std::mem::take(&mut lagging));
                        reranked_at = Instant::now();
                    }
                    if !pass.is_empty() {
                        pass = rerank(&store, pass, drained).await;
                    }
                    // Drained, the consumer says it is caught up only once
                    // the rankings are: a failed re-rank write is retried
                    // here, as no new event may come to retry it.
                    while drained && !pass.is_empty() {
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stop.wait_for(|s| *s) => return,
                        }
                        pass = rerank(&store, pass, true).await;
                    }
                    position.store(last, Ordering::Relaxed);
                    metrics::counter!("agora_recommender_events_total").increment(taken as u64);
                    metrics::gauge!("agora_recommender_offset").set(last as f64);
                }
                Err(e) => {
                    // Read again from the durable offset.
                    tracing::warn!(error = %e, "recommender batch not written; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match store
                        .read(|trees| keys::applied(trees.tree(TreeName::Recommendations)))
                        .await
                    {
                        Ok(offset) => consumer = EventConsumer::at(store.clone(), CONSUMER, offset),
                        Err(e) => {
                            tracing::warn!(error = %e, "recommender cannot reopen its offset")
                        }
                    }
                    break;
                }
            }
            // Behind: yield the writer as long as the batch held it, so a
            // backlog is worked off at no more than about half its pace.
            if catching_up || from < events.len() {
                let pause = started.elapsed().min(Duration::from_millis(200));
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
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
