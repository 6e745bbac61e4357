//! What another node's event does to this node, inside one write job: the
//! replica it feeds, the copy in this node's own log (so search, the hub,
//! the recommender and the inbox see it like a local event), and the
//! record of what was applied, all atomic.
//!
//! - `item.*`: the item record, exactly as a local one (the `items` tree,
//!   and its SKU codes in the seller's index on `item.created`), replaced
//!   only by a record at least as recent (`updated_at`);
//! - `stock.changed`: the `stock_replicas` tree (never `stock`, the
//!   inventory actors' truth), replaced only by a later event of the same
//!   origin;
//! - `order.updated`, `wishlist.added`: nothing but the log copy.
//!
//! The marks (`foreign_events`: this log's sequence → `<node>:<seq>`) are
//! read by the relay, which passes over those events, and dropped once
//! its offset is past them.
//!
//! Nothing twice: each origin's last applied sequence is kept in the
//! `replication` tree, and an event at or below it is skipped (a
//! redelivery after a crash between this write and the ack).

use crate::domain::event::{Event, EventBody};
use crate::domain::item::{seller_sku_key, Item};
use crate::domain::stock::StockReplica;
use crate::domain::Timestamp;
use std::collections::HashSet;

use crate::storage::{StorageError, Store, TreeName, Tx};

/// One event of another node, as the stream delivered it.
#[derive(Debug, Clone)]
pub(super) struct Foreign {
    /// The node that made it.
    pub origin: String,
    /// Its sequence number in that node's log.
    pub origin_seq: u64,
    /// The event.
    pub event: Event,
}

/// What one batch did.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// Commit times (at their origin) of the events applied.
    pub at: Vec<Timestamp>,
    /// Events skipped: already applied, or older than the replica.
    pub skipped: usize,
}

/// Applies `batch` in order (a pure function of what it reads: the write
/// job may run it twice).
pub(super) fn apply_batch(tx: &mut Tx<'_>, batch: &[Foreign]) -> Result<Applied, StorageError> {
    let mut applied = Applied::default();
    for foreign in batch {
        if foreign.origin_seq <= last_applied(tx, &foreign.origin)? {
            applied.skipped += 1;
            continue;
        }
        tx.put_raw(
            TreeName::Replication,
            foreign.origin.as_bytes().to_vec(),
            foreign.origin_seq.to_be_bytes().to_vec(),
        );
        if apply_one(tx, foreign)? {
            let origin = format!("{}:{}", foreign.origin, foreign.origin_seq);
            tx.emit_foreign(foreign.event.body.clone(), origin.into_bytes());
            applied.at.push(foreign.event.at);
        } else {
            applied.skipped += 1;
        }
    }
    Ok(applied)
}

/// The last sequence of `origin` applied here (0: none).
fn last_applied(tx: &mut Tx<'_>, origin: &str) -> Result<u64, StorageError> {
    Ok(tx
        .get_raw(TreeName::Replication, origin.as_bytes())?
        .map_or(0, |bytes| be_u64(&bytes)))
}

/// A big-endian u64 (0 when the bytes are not 8).
fn be_u64(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map_or(0, u64::from_be_bytes)
}

/// Updates the replica `foreign` feeds; false if it was older than what
/// the replica holds (then it is not copied to the log either).
fn apply_one(tx: &mut Tx<'_>, foreign: &Foreign) -> Result<bool, StorageError> {
    match &foreign.event.body {
        EventBody::ItemCreated(item) => {
            let newer = put_item(tx, item)?;
            if newer {
                for sku in item.sku_codes() {
                    let key = seller_sku_key(&item.seller_id, sku);
                    tx.put_raw(TreeName::SellerSkus, key, item.id.as_bytes().to_vec());
                }
            }
            Ok(newer)
        }
        EventBody::ItemUpdated(item) | EventBody::ItemDeactivated(item) => put_item(tx, item),
        EventBody::StockChanged {
            item_id,
            variant_id,
            available,
            reserved,
        } => {
            let current: Option<StockReplica> =
                tx.get(TreeName::StockReplicas, variant_id.as_bytes())?;
            if current.is_some_and(|c| !c.is_older_than(&foreign.origin, foreign.origin_seq)) {
                return Ok(false);
            }
            let replica = StockReplica {
                item_id: item_id.clone(),
                available: *available,
                reserved: *reserved,
                origin: foreign.origin.clone(),
                origin_seq: foreign.origin_seq,
            };
            tx.put(TreeName::StockReplicas, variant_id.as_bytes(), &replica)?;
            Ok(true)
        }
        EventBody::OrderUpdated { .. } | EventBody::WishlistAdded { .. } => Ok(true),
    }
}

/// Writes `item` unless the record held is more recent.
fn put_item(tx: &mut Tx<'_>, item: &Item) -> Result<bool, StorageError> {
    let current: Option<Item> = tx.get(TreeName::Items, item.id.as_bytes())?;
    if current.is_some_and(|c| c.updated_at > item.updated_at) {
        return Ok(false);
    }
    tx.put(TreeName::Items, item.id.as_bytes(), item)?;
    Ok(true)
}

/// The sequence numbers among `events` (one contiguous run of this
/// node's log) that another node made: the relay passes over them.
pub(super) async fn foreign_among(
    store: &Store,
    events: &[Event],
) -> Result<HashSet<u64>, StorageError> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(HashSet::new());
    };
    let (from, to) = (first.seq.to_be_bytes(), last.seq.to_be_bytes());
    store
        .read(move |trees| {
            trees
                .tree(TreeName::ForeignEvents)
                .range(from..=to)
                .keys()
                .map(|key| Ok(be_u64(&key?)))
                .collect()
        })
        .await
}

/// Drops the foreign marks up to `upto`, once the relay's committed offset
/// is past them (never read again). A failure only leaves them for the
/// next batch's pass.
pub(super) async fn forget_foreign(store: &Store, upto: u64) {
    let end = upto.to_be_bytes();
    let marked = store
        .read(move |trees| {
            trees
                .tree(TreeName::ForeignEvents)
                .range(..=end)
                .keys()
                .map(|key| Ok(key?.to_vec()))
                .collect::<Result<Vec<_>, StorageError>>()
        })
        .await;
    let keys = match marked {
        Ok(keys) if keys.is_empty() => return,
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "relay: cannot read the foreign marks");
            return;
        }
    };
    let forgotten = store
        .write(move |tx| {
            for key in &keys {
                tx.remove(TreeName::ForeignEvents, key.clone());
            }
            Ok::<_, StorageError>(())
        })
        .await;
    if let Err(e) = forgotten {
        tracing::warn!(error = %e, "relay: cannot drop the foreign marks");
    }
}
