//! The data-lake hand-off: the event log as JSON lines, for batch engines
//! (Spark, DuckDB) that train better models offline than the recommender's
//! counters.
//!
//! One line per event, in log order:
//! `{"seq":1,"at":"2026-…Z","type":"item.created","data":{…}}`. Item events
//! carry the whole item; `order.updated` is joined with its order's lines,
//! amount and currency (the event itself names only the order), so a
//! consumer needs nothing but the file. Fields use the API's spelling.

use std::io::{self, Write};

use serde_json::{json, Value};

use crate::domain::item::Item;
use crate::domain::order::Order;
use crate::storage::events::{read_after, Event, EventBody};
use crate::storage::{StorageError, TreeName, Trees};

/// Events read per chunk.
const CHUNK: usize = 1024;

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the log failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Writing the output failed.
    #[error("writing the export: {0}")]
    Io(#[from] io::Error),
}

/// Writes the events after `after` (up to `limit` of them) to `out`, one
/// JSON object per line; returns how many. Blocking: reads sled directly.
pub fn export_events(
    trees: &Trees,
    after: u64,
    limit: u64,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let end = match trees
        .tree(TreeName::Events)
        .last()
        .map_err(StorageError::from)?
    {
        Some((key, _)) => u64::from_be_bytes(key[..8].try_into().unwrap_or([0; 8])),
        None => 0,
    };
    let mut position = after;
    let mut written = 0u64;
    while position < end && written < limit {
        let want = usize::try_from((limit - written).min(CHUNK as u64)).unwrap_or(CHUNK);
        let events = read_after(trees, position, end, want)?;
        let Some(last) = events.last() else {
            break;
        };
        position = last.seq;
        for event in &events {
            serde_json::to_writer(&mut *out, &event_json(trees, event)?)
                .map_err(io::Error::from)?;
            out.write_all(b"\n")?;
            written += 1;
        }
    }
    out.flush()?;
    Ok(written)
}

/// One event as its export line's JSON.
pub fn event_json(trees: &Trees, event: &Event) -> Result<Value, StorageError> {
    let data = match &event.body {
        EventBody::ItemCreated(item)
        | EventBody::ItemUpdated(item)
        | EventBody::ItemDeactivated(item) => item_json(item),
        EventBody::StockChanged {
            item_id,
            variant_id,
            available,
            reserved,
        } => json!({
            "itemId": item_id,
            "variantId": variant_id,
            "available": available,
            "reserved": reserved,
        }),
        EventBody::OrderUpdated {
            order_id,
            user_id,
            status,
            payment_status,
        } => {
            let mut data = json!({
                "orderId": order_id,
                "userId": user_id,
                "status": status.as_str(),
                "paymentStatus": payment_status.as_str(),
            });
            let order = match trees.get::<Order>(TreeName::Orders, order_id.as_bytes())? {
                Some(order) => Some(order),
                None => trees.get::<Order>(TreeName::OrderArchive, order_id.as_bytes())?,
            };
            if let Some(order) = order {
                data["amount"] = json!(order.amount);
                data["currency"] = json!(order.currency);
                data["lines"] = order
                    .lines
                    .iter()
                    .map(|l| {
                        json!({
                            "itemId": l.item_id,
                            "variantId": l.variant_id,
                            "sellerId": l.seller_id,
                            "quantity": l.quantity,
                            "unitPrice": l.unit_price,
                        })
                    })
                    .collect();
            }
            data
        }
        EventBody::WishlistAdded { user_id, item_id } => json!({
            "userId": user_id,
            "itemId": item_id,
        }),
    };
    Ok(json!({
        "seq": event.seq,
        "at": event.at.to_rfc3339(),
        "type": event.body.kind(),
        "data": data,
    }))
}

fn attributes(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| json!({}))
}

fn item_json(item: &Item) -> Value {
    json!({
        "id": item.id,
        "sellerId": item.seller_id,
        "name": item.name,
        "description": item.description,
        "price": item.price,
        "currency": item.currency,
        "sku": item.sku,
        "brand": item.brand,
        "category": item.category,
        "tags": item.tags,
        "attributes": attributes(&item.attributes_json),
        "status": item.status.as_str(),
        "variants": item.variants.iter().map(|v| json!({
            "variantId": v.id,
            "sku": v.sku,
            "price": v.price,
            "attributes": attributes(&v.attributes_json),
        })).collect::<Vec<_>>(),
        "images": item.images.iter().map(|key| format!("/media/{key}")).collect::<Vec<_>>(),
        "createdAt": item.created_at.to_rfc3339(),
        "updatedAt": item.updated_at.to_rfc3339(),
    })
}
