//! The read-back: the run's orders and items, read through the API at a
//! quiet point (no order of the run still on its way).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::scenarios::{lock, Shared};
use crate::seed::expect;

/// Read-backs at once.
const READ_CONCURRENCY: usize = 16;
/// How long 202'd orders get to reach a final state.
const SETTLE: Duration = Duration::from_secs(30);

/// The run's orders and every seeded item's `available`, read at a quiet
/// point: no order of the run still on its way (`CREATED`,
/// `PAYMENT_PENDING`), and the orders read the same before and after the
/// items (at most `SETTLE`; orders still pending then count as slack).
pub(super) async fn quiet_point(
    client: &Client,
    base: &str,
    shared: &Shared,
) -> anyhow::Result<(Vec<ReadOrder>, Vec<i64>)> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let before = all_orders(client, base, shared).await?;
        let available = availability(client, base, shared).await?;
        let after = all_orders(client, base, shared).await?;
        let moving = after.iter().any(ReadOrder::on_its_way);
        if (!moving && before == after) || Instant::now() >= deadline {
            return Ok((after, available));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Orders that were answered 202 and are `CONFIRMED` now.
pub(super) fn settled_confirmed(orders: &[ReadOrder], shared: &Shared) -> u64 {
    let pending_ids: HashSet<String> = lock(&shared.tally.pending)
        .iter()
        .map(|(_, id)| id.clone())
        .collect();
    orders
        .iter()
        .filter(|o| o.status == "CONFIRMED" && pending_ids.contains(&o.id))
        .count() as u64
}

/// Every order of the run's buyers (none for scenarios that do not buy).
async fn all_orders(
    client: &Client,
    base: &str,
    shared: &Shared,
) -> anyhow::Result<Vec<ReadOrder>> {
    if !shared.scenario.buys() {
        return Ok(Vec::new());
    }
    let per_buyer: Vec<Vec<ReadOrder>> = stream::iter(shared.seed.buyers.iter().enumerate())
        .map(|(b, token)| orders_of(client, base, b, token))
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(per_buyer.into_iter().flatten().collect())
}

/// Every seeded item's `available`, in seed order.
async fn availability(client: &Client, base: &str, shared: &Shared) -> anyhow::Result<Vec<i64>> {
    stream::iter(&shared.seed.items)
        .map(|item| {
            let request = client.get(format!("{base}/items/{}", item.id));
            async move {
                let read = expect(request, StatusCode::OK, "reading an item").await?;
                read["available"]
                    .as_i64()
                    .ok_or_else(|| anyhow::anyhow!("item {} has no `available`: {read}", item.id))
            }
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await
}

/// Every order of buyer `b`, all pages.
async fn orders_of(
    client: &Client,
    base: &str,
    b: usize,
    token: &str,
) -> anyhow::Result<Vec<ReadOrder>> {
    let mut orders = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/orders?size=100");
        if let Some(cursor) = &cursor {
            url.push_str("&cursor=");
            url.push_str(cursor);
        }
        let page = expect(
            client.get(url).bearer_auth(token),
            StatusCode::OK,
            "listing orders",
        )
        .await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for order in &items {
            orders.push(ReadOrder::from_json(b, order)?);
        }
        match page["nextCursor"].as_str() {
            // An empty page or a cursor that does not move ends the listing.
            Some(next) if !items.is_empty() && cursor.as_deref() != Some(next) => {
                cursor = Some(next.to_owned())
            }
            _ => return Ok(orders),
        }
    }
}

/// An order as read back: its id, buyer, status and (item, units) lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOrder {
    /// Its id.
    pub id: String,
    /// The buyer's index in the seed.
    pub buyer: usize,
    /// Status.
    pub status: String,
    /// (item id, units).
    pub lines: Vec<(String, u64)>,
}

impl ReadOrder {
    /// From a `GET /orders` entry; an entry without its id, status or a
    /// line's item and quantity is an error, not a zero.
    pub fn from_json(buyer: usize, order: &Value) -> anyhow::Result<ReadOrder> {
        let field = |v: &Value, key: &str| {
            v[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("an order without `{key}`: {order}"))
        };
        let mut lines = Vec::new();
        for line in order["lines"].as_array().into_iter().flatten() {
            let units = line["quantity"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("an order line without `quantity`: {order}"))?;
            lines.push((field(line, "itemId")?, units));
        }
        Ok(ReadOrder {
            id: field(order, "id")?,
            buyer,
            status: field(order, "status")?,
            lines,
        })
    }

    /// Whether the order still holds its stock (reserved or sold).
    pub fn holds_stock(&self) -> bool {
        matches!(
            self.status.as_str(),
            "CREATED" | "PAYMENT_PENDING" | "CONFIRMED" | "SHIPPED" | "DELIVERED"
        )
    }

    /// Whether it has not reached an outcome yet.
    pub fn on_its_way(&self) -> bool {
        matches!(self.status.as_str(), "CREATED" | "PAYMENT_PENDING")
    }
}
