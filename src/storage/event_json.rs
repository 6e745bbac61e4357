//! One event as a line of JSON, both ways: the form the archive stores and
//! the export writes (`{"seq":1,"at":"…","type":"item.created","data":{…}}`,
//! fields in the API's spelling), and the reading of such a line back into
//! the event, for consumers that start below the live log.

use serde_json::{json, Value};

use crate::domain::event::{Event, EventBody};
use crate::domain::item::{Item, ItemStatus, Variant};
use crate::domain::order::{Order, OrderStatus, PaymentStatus};
use crate::domain::Timestamp;
use crate::storage::{StorageError, TreeName, Trees};

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
            let data = json!({
                "orderId": order_id,
                "userId": user_id,
                "status": status.as_str(),
                "paymentStatus": payment_status.as_str(),
            });
            with_order(trees, order_id, data)?
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

/// `order.updated`'s data joined with its order's lines, amount and
/// currency (the event names only the order), from the hot tree or the
/// archive; unchanged if the order is in neither.
fn with_order(trees: &Trees, order_id: &str, mut data: Value) -> Result<Value, StorageError> {
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
    Ok(data)
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

/// Reads an export line back into the event it was made from (for a
/// consumer reading the archive). Fields the export leaves out are
/// rebuilt: an item has variants if it has more than one or its one
/// variant is not the item itself; attributes come back as compact JSON.
pub fn event_from_json(line: &str) -> Result<Event, StorageError> {
    let bad = |reason: &str| StorageError::Codec {
        kind: "archived event",
        reason: reason.to_owned(),
    };
    let value: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
    let seq = value["seq"].as_u64().ok_or_else(|| bad("no seq"))?;
    let at = timestamp(&value["at"]).ok_or_else(|| bad("no time"))?;
    let data = &value["data"];
    let text = |field: &str| data[field].as_str().map(str::to_owned);
    let need = |field: &str| text(field).ok_or_else(|| bad(&format!("no {field}")));
    let body = match value["type"].as_str().unwrap_or_default() {
        "item.created" => EventBody::ItemCreated(item_from_json(data).ok_or_else(|| bad("item"))?),
        "item.updated" => EventBody::ItemUpdated(item_from_json(data).ok_or_else(|| bad("item"))?),
        "item.deactivated" => {
            EventBody::ItemDeactivated(item_from_json(data).ok_or_else(|| bad("item"))?)
        }
        "stock.changed" => EventBody::StockChanged {
            item_id: need("itemId")?,
            variant_id: need("variantId")?,
            available: data["available"]
                .as_i64()
                .ok_or_else(|| bad("no available"))?,
            reserved: data["reserved"]
                .as_i64()
                .ok_or_else(|| bad("no reserved"))?,
        },
        "order.updated" => EventBody::OrderUpdated {
            order_id: need("orderId")?,
            user_id: need("userId")?,
            status: OrderStatus::parse(&need("status")?).ok_or_else(|| bad("status"))?,
            payment_status: payment_status(&need("paymentStatus")?)
                .ok_or_else(|| bad("paymentStatus"))?,
        },
        "wishlist.added" => EventBody::WishlistAdded {
            user_id: need("userId")?,
            item_id: need("itemId")?,
        },
        other => return Err(bad(&format!("unknown type {other:?}"))),
    };
    Ok(Event { seq, at, body })
}

fn timestamp(value: &Value) -> Option<Timestamp> {
    let parsed = time::OffsetDateTime::parse(
        value.as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .map(Timestamp)
}

fn payment_status(raw: &str) -> Option<PaymentStatus> {
    [
        PaymentStatus::Pending,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::Refunded,
    ]
    .into_iter()
    .find(|s| s.as_str() == raw)
}

fn item_from_json(data: &Value) -> Option<Item> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let compact = |v: &Value| serde_json::to_string(v).ok();
    let variants = data["variants"]
        .as_array()?
        .iter()
        .map(|v| {
            Some(Variant {
                id: text(&v["variantId"])?,
                sku: text(&v["sku"]),
                attributes_json: compact(&v["attributes"])?,
                price: v["price"].as_i64()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let id = text(&data["id"])?;
    let has_variants = variants.len() > 1 || variants.iter().any(|v| v.id != id);
    Some(Item {
        seller_id: text(&data["sellerId"])?,
        name: text(&data["name"])?,
        description: text(&data["description"])?,
        price: data["price"].as_i64()?,
        currency: text(&data["currency"])?,
        sku: text(&data["sku"]),
        brand: text(&data["brand"]),
        category: text(&data["category"]),
        tags: data["tags"].as_array()?.iter().filter_map(text).collect(),
        attributes_json: compact(&data["attributes"])?,
        has_variants,
        variants,
        status: match data["status"].as_str()? {
            "active" => ItemStatus::Active,
            _ => ItemStatus::Inactive,
        },
        images: data["images"]
            .as_array()?
            .iter()
            .filter_map(|i| i.as_str()?.strip_prefix("/media/").map(str::to_owned))
            .collect(),
        created_at: timestamp(&data["createdAt"])?,
        updated_at: timestamp(&data["updatedAt"])?,
        id,
    })
}
