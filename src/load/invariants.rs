//! After the load: every 202'd order settled, then the run's orders, items
//! and carts read back through the API and checked against what the
//! harness was told.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::client::Targets;
use super::scenarios::{lock, Scenario, Shared, Worker};
use super::seed::expect;

/// Read-backs at once.
const READ_CONCURRENCY: usize = 16;
/// How long 202'd orders get to reach a final state.
const SETTLE: Duration = Duration::from_secs(30);

/// One checked invariant.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is claimed.
    pub name: String,
    /// Whether it held.
    pub held: bool,
    /// The figures behind the verdict.
    pub detail: String,
}

impl Check {
    fn new(name: &str, held: bool, detail: String) -> Check {
        Check {
            name: name.to_owned(),
            held,
            detail,
        }
    }
}

/// What the read-back found, for the report and the websocket check.
pub struct ReadBack {
    /// The checks.
    pub checks: Vec<Check>,
    /// Orders the API holds for the run, by status.
    pub orders_by_status: HashMap<String, u64>,
    /// `CONFIRMED` orders per buyer.
    pub confirmed_per_buyer: Vec<u64>,
}

/// Settles pending orders, reads the run back and checks it.
pub async fn check(
    targets: &Targets,
    shared: &Shared,
    workers: &[Worker],
) -> anyhow::Result<ReadBack> {
    let (client, base) = targets.node(0);
    let seed = &shared.seed;
    // A quiet point: no order of the run still on its way (`CREATED`,
    // `PAYMENT_PENDING`), and the orders read the same before and after the
    // items (at most `SETTLE`; orders still pending then count as slack).
    let deadline = Instant::now() + SETTLE;
    let (orders, available) = loop {
        let before = all_orders(&client, &base, shared).await?;
        let available = availability(&client, &base, shared).await?;
        let after = all_orders(&client, &base, shared).await?;
        let moving = after.iter().any(ReadOrder::on_its_way);
        if (!moving && before == after) || Instant::now() >= deadline {
            break (after, available);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let pending_ids: HashSet<String> = lock(&shared.tally.pending)
        .iter()
        .map(|(_, id)| id.clone())
        .collect();
    let settled_confirmed = orders
        .iter()
        .filter(|o| o.status == "CONFIRMED" && pending_ids.contains(&o.id))
        .count() as u64;
    let still_moving = orders.iter().filter(|o| o.on_its_way()).count() as u64;

    let mut held: HashMap<&str, u64> = HashMap::new();
    let mut by_status: HashMap<String, u64> = HashMap::new();
    let mut confirmed_per_buyer = vec![0u64; seed.buyers.len()];
    for order in &orders {
        *by_status.entry(order.status.clone()).or_insert(0) += 1;
        if order.status == "CONFIRMED" {
            confirmed_per_buyer[order.buyer] += 1;
        }
        if order.holds_stock() {
            for (item, units) in &order.lines {
                *held.entry(item.as_str()).or_insert(0) += units;
            }
        }
    }

    if shared.scenario == Scenario::Stock {
        // The seller's acknowledged adjustments took these units.
        let taken = shared.tally.adjusted.load(Ordering::Relaxed);
        *held.entry(seed.items[0].id.as_str()).or_insert(0) += taken;
    }
    let mut checks = Vec::new();
    let mut oversold = Vec::new();
    let mut unbalanced = Vec::new();
    for (item, available) in seed.items.iter().zip(&available) {
        let held = held.get(item.id.as_str()).copied().unwrap_or(0);
        if *available < 0 || held > item.stock {
            oversold.push(format!("{} (available {available}, taken {held})", item.id));
        }
        if available.saturating_add(held as i64) != item.stock as i64 {
            unbalanced.push(format!(
                "{}: {available} available + {held} taken != {} listed",
                item.id, item.stock
            ));
        }
    }
    let sold: u64 = held.values().sum();
    checks.push(Check::new(
        "no oversold SKU",
        oversold.is_empty(),
        if oversold.is_empty() {
            format!(
                "{} items: none below zero or taken beyond its stock ({sold} units taken)",
                seed.items.len()
            )
        } else {
            format!("oversold: {}", oversold.join(", "))
        },
    ));
    let unanswered = shared.tally.unknown.load(Ordering::Relaxed);
    if shared.scenario == Scenario::Stock && unanswered > 0 {
        // Unanswered adjustments may or may not have landed.
        let item = &seed.items[0];
        let taken = held.get(item.id.as_str()).copied().unwrap_or(0);
        let gap = (item.stock as i64)
            .saturating_sub(taken as i64)
            .saturating_sub(available[0]);
        if (0..=unanswered as i64).contains(&gap) {
            unbalanced.clear();
        }
    }
    checks.push(Check::new(
        "stock conserved",
        unbalanced.is_empty(),
        if unbalanced.is_empty() && shared.scenario == Scenario::Stock {
            "available + units taken by acknowledged adjustments = units listed".to_owned()
        } else if unbalanced.is_empty() {
            "for every item, available + units in live orders = units listed".to_owned()
        } else {
            unbalanced.join("; ")
        },
    ));

    if shared.scenario.buys() {
        let tally = &shared.tally;
        let answered = tally.confirmed.load(Ordering::Relaxed) + settled_confirmed;
        let unknown = tally.unknown.load(Ordering::Relaxed);
        let in_api = by_status.get("CONFIRMED").copied().unwrap_or(0);
        let acknowledged = tally.confirmed.load(Ordering::Relaxed)
            + tally.payment_failed.load(Ordering::Relaxed)
            + lock(&tally.pending).len() as u64;
        let total = orders.len() as u64;
        let slack = unknown + still_moving;
        checks.push(Check::new(
            "confirmed orders = successful checkouts",
            in_api >= answered && in_api <= answered + slack,
            format!(
                "{in_api} CONFIRMED in the API; {answered} checkouts answered CONFIRMED \
                 (201, or 202 then settled){}",
                if slack > 0 {
                    format!(", {unknown} unanswered, {still_moving} still pending")
                } else {
                    String::new()
                }
            ),
        ));
        checks.push(Check::new(
            "every order was acknowledged",
            total >= acknowledged && total <= acknowledged + unknown,
            format!("{total} orders in the API; {acknowledged} acknowledged by 201/202"),
        ));
        if shared.scenario == Scenario::FlashSale {
            let stock = seed.items[0].stock;
            // Buyers who got their turn (all, unless the run ended first).
            let tried =
                (shared.next_buyer.load(Ordering::Relaxed) as u64).min(seed.buyers.len() as u64);
            let want = stock.min(tried);
            let hot_confirmed: u64 = orders
                .iter()
                .filter(|o| o.status == "CONFIRMED")
                .flat_map(|o| o.lines.iter().map(|(_, units)| units))
                .sum();
            checks.push(Check::new(
                "the hot SKU sold exactly its stock",
                hot_confirmed == want,
                format!(
                    "{hot_confirmed} units confirmed of {stock} listed; {tried} of {} buyers tried",
                    seed.buyers.len()
                ),
            ));
        }
    }

    if shared.scenario == Scenario::Cart {
        checks.push(carts_match(&client, &base, shared, workers).await?);
    }

    Ok(ReadBack {
        checks,
        orders_by_status: by_status,
        confirmed_per_buyer,
    })
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

/// Each buyer's cart, read back, has exactly the lines its worker set
/// (leaving out lines whose last update went unanswered).
async fn carts_match(
    client: &Client,
    base: &str,
    shared: &Shared,
    workers: &[Worker],
) -> anyhow::Result<Check> {
    let mut mismatched = Vec::new();
    let mut lines = 0;
    let mut carts = 0;
    for (buyer, model) in workers.iter().flat_map(|w| w.carts.iter()) {
        carts += 1;
        let token = &shared.seed.buyers[*buyer];
        let cart = expect(
            client.get(format!("{base}/cart")).bearer_auth(token),
            StatusCode::OK,
            "reading a cart",
        )
        .await?;
        let mut actual: HashMap<String, u64> = HashMap::new();
        for line in cart["lines"].as_array().into_iter().flatten() {
            let item = line["itemId"].as_str().unwrap_or_default().to_owned();
            actual.insert(item, line["quantity"].as_u64().unwrap_or(0));
        }
        let known = |item: &&String| !model.uncertain.contains(item);
        let mut expected: Vec<(&String, &u64)> =
            model.lines.iter().filter(|(i, _)| known(i)).collect();
        let mut got: Vec<(&String, &u64)> = actual.iter().filter(|(i, _)| known(i)).collect();
        expected.sort();
        got.sort();
        lines += expected.len();
        if expected != got {
            mismatched.push(format!("buyer {buyer}: set {expected:?}, read {got:?}"));
        }
    }
    Ok(Check::new(
        "carts hold what was set",
        mismatched.is_empty(),
        if mismatched.is_empty() {
            format!("{carts} carts, {lines} lines, each as last set")
        } else {
            mismatched.join("; ")
        },
    ))
}

/// Whether every `CONFIRMED` order reached every socket of its buyer (and
/// every socket opened): compared buyer by buyer.
pub fn pushes_check(heard: &[u64], expected: &[u64], failed: usize) -> Check {
    let short = heard.iter().zip(expected).filter(|(h, e)| h != e).count();
    Check::new(
        "every confirmation pushed to its buyer's sockets",
        short == 0 && failed == 0,
        format!(
            "{} CONFIRMED frames received of {} expected; {short} buyers off; {failed} sockets failed to open",
            heard.iter().sum::<u64>(),
            expected.iter().sum::<u64>()
        ),
    )
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
