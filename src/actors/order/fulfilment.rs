//! A seller's part of an order, and the `seller_orders` index that lists a
//! seller's orders (written with each new order; built once, at start-up,
//! for orders stored before it existed).

use super::{user_order_key, OrderEntity, OrderError, OrderState};
use crate::domain::order::{FulfilmentStatus, Order};
use crate::domain::Timestamp;
use crate::storage::{codec, StorageError, Store, TreeName};

/// The key in `seller_orders` saying every stored order is indexed. It
/// sorts before any seller's entries (ids are never empty) and goes with
/// the tree: an index that is missing or wiped has no marker either.
const INDEX_COMPLETE: &[u8] = b"\0complete";

/// How many orders one backfill step reads (and indexes in one write).
const BACKFILL_CHUNK: usize = 512;

/// `seller ‖ 0 ‖ reverse time ‖ order`: a seller's orders sort newest first
/// (the layout of `user_orders`).
pub fn seller_order_key(seller_id: &str, created_at: Timestamp, order_id: &str) -> Vec<u8> {
    user_order_key(seller_id, created_at, order_id)
}

impl OrderEntity {
    /// Moves `seller_id`'s part (and the order, once every part has moved);
    /// stores it before answering.
    pub(super) async fn fulfil(
        &self,
        state: &mut OrderState,
        seller_id: &str,
        to: FulfilmentStatus,
    ) -> Result<Order, OrderError> {
        let Some(mut order) = state.order.clone() else {
            return Err(OrderError::NotFound);
        };
        order.fulfil(seller_id, to, Timestamp::now())?;
        self.save(state, order, None).await
    }
}

/// Indexes every stored order (live and archived) by its sellers, unless
/// the index says it is complete; returns how many orders it read.
///
/// Costs one scan of the order trees, once, a chunk at a time: orders
/// stored by a release without the index are found here, and new orders
/// index themselves in the write that stores them. Writing an entry twice
/// is harmless, so orders created while this runs need no care.
pub async fn index_sellers(store: &Store) -> Result<usize, StorageError> {
    let complete = store
        .read(|trees| {
            Ok(trees
                .tree(TreeName::SellerOrders)
                .contains_key(INDEX_COMPLETE)?)
        })
        .await?;
    if complete {
        return Ok(0);
    }
    let mut read = 0;
    for tree in [TreeName::Orders, TreeName::OrderArchive] {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let from = after.clone();
            let (entries, last, count) = store
                .read(move |trees| next_chunk(trees, tree, from))
                .await?;
            read += count;
            if !entries.is_empty() {
                store
                    .write(move |tx| {
                        for key in &entries {
                            tx.put_raw(TreeName::SellerOrders, key.clone(), Vec::new());
                        }
                        Ok::<_, StorageError>(())
                    })
                    .await?;
            }
            match last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
    }
    store
        .write(|tx| {
            tx.put_raw(TreeName::SellerOrders, INDEX_COMPLETE, Vec::new());
            Ok::<_, StorageError>(())
        })
        .await?;
    Ok(read)
}

/// Index entries, the last key read if there may be more, and how many
/// orders were read.
type Chunk = (Vec<Vec<u8>>, Option<Vec<u8>>, usize);

/// The [`Chunk`] of up to [`BACKFILL_CHUNK`] orders of `tree` after the key
/// `after`.
fn next_chunk(
    trees: &crate::storage::Trees,
    tree: TreeName,
    after: Option<Vec<u8>>,
) -> Result<Chunk, StorageError> {
    use std::ops::Bound;
    let start = match after {
        Some(key) => Bound::Excluded(key),
        None => Bound::Unbounded,
    };
    let mut entries = Vec::new();
    let mut last = None;
    let mut count = 0;
    for entry in trees
        .tree(tree)
        .range::<Vec<u8>, _>((start, Bound::Unbounded))
        .take(BACKFILL_CHUNK)
    {
        let (key, bytes) = entry?;
        last = Some(key.to_vec());
        count += 1;
        // One unreadable order must not keep every other seller's list
        // incomplete; it is reported, as on any other read of it.
        let order: Order = match codec::decode(&bytes) {
            Ok(order) => order,
            Err(e) => {
                tracing::warn!(order = %String::from_utf8_lossy(&key), error = %e, "order not indexed by seller");
                continue;
            }
        };
        for part in &order.fulfilment {
            entries.push(seller_order_key(
                &part.seller_id,
                order.created_at,
                &order.id,
            ));
        }
    }
    let more = count == BACKFILL_CHUNK;
    Ok((entries, last.filter(|_| more), count))
}
