//! One write of the recommender, computed on the blocking pool from the
//! tree and staged by the single writer: a batch of events with its offset,
//! or a chunk of items re-ranked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::keys;
use super::model::{self, OrderFacts, Overlay};
use crate::domain::event::Event;
use crate::domain::order::Order;
use crate::storage::{StorageError, Store, TreeName, Trees, Tx};

/// Most writes one batch stages: its write joins a group commit with
/// checkout's writes, and a bounded batch keeps that group short.
pub const MAX_WRITES: usize = 1_000;
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
pub(super) async fn apply_batch(
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
pub(super) async fn rerank_some(
    store: &Store,
    items: Vec<String>,
) -> Result<Vec<String>, StorageError> {
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
