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
//! Nothing twice: each origin's last applied sequence is kept in the
//! `replication` tree, and an event at or below it is skipped (a
//! redelivery after a crash between this write and the ack).

use crate::domain::event::{Event, EventBody};
use crate::domain::item::{seller_sku_key, Item};
use crate::domain::stock::StockReplica;
use crate::domain::Timestamp;
use crate::storage::{StorageError, TreeName, Tx, STREAM_APPLIED};

/// One event of another node, as the stream delivered it.
#[derive(Debug, Clone)]
pub(super) struct Foreign {
    /// The node that made it.
    pub origin: String,
    /// Its sequence number in that node's log.
    pub origin_seq: u64,
    /// Its sequence number in the stream.
    pub stream_seq: u64,
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
    let mut stream = last_stream_seq(tx)?;
    for foreign in batch {
        stream = stream.max(foreign.stream_seq);
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
    tx.put_raw(
        TreeName::Replication,
        STREAM_APPLIED.to_vec(),
        stream.to_be_bytes().to_vec(),
    );
    Ok(applied)
}

/// The last sequence of `origin` applied here (0: none).
pub(super) fn last_applied(tx: &mut Tx<'_>, origin: &str) -> Result<u64, StorageError> {
    Ok(tx
        .get_raw(TreeName::Replication, origin.as_bytes())?
        .map_or(0, |bytes| be_u64(&bytes)))
}

fn last_stream_seq(tx: &mut Tx<'_>) -> Result<u64, StorageError> {
    Ok(tx
        .get_raw(TreeName::Replication, STREAM_APPLIED)?
        .map_or(0, |bytes| be_u64(&bytes)))
}

/// A big-endian u64 (0 when the bytes are not 8).
pub(super) fn be_u64(bytes: &[u8]) -> u64 {
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
