//! After the load: every 202'd order settled, then the run's orders, items
//! and carts read back through the API and checked against what the
//! harness was told.
//!
//! `read` reads the run back; this module holds the checks.

mod read;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use reqwest::{Client, StatusCode};
use serde::Serialize;

use crate::client::Targets;
use crate::scenarios::{lock, Scenario, Shared, Worker};
use crate::seed::expect;
pub use read::ReadOrder;

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
    let (orders, available) = read::quiet_point(&client, &base, shared).await?;
    let mut by_status: HashMap<String, u64> = HashMap::new();
    let mut confirmed_per_buyer = vec![0u64; shared.seed.buyers.len()];
    for order in &orders {
        *by_status.entry(order.status.clone()).or_insert(0) += 1;
        if order.status == "CONFIRMED" {
            confirmed_per_buyer[order.buyer] += 1;
        }
    }
    let taken = units_taken(&orders, shared);
    let mut checks = vec![
        oversold_check(shared, &taken, &available),
        conserved_check(shared, &taken, &available),
    ];
    if shared.scenario.buys() {
        checks.extend(order_checks(shared, &orders, &by_status));
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

/// Units taken per item: by the orders that hold stock (reserved or sold)
/// and, in the stock scenario, by the seller's acknowledged adjustments.
fn units_taken<'a>(orders: &'a [ReadOrder], shared: &'a Shared) -> HashMap<&'a str, u64> {
    let mut taken: HashMap<&str, u64> = HashMap::new();
    for order in orders.iter().filter(|o| o.holds_stock()) {
        for (item, units) in &order.lines {
            *taken.entry(item.as_str()).or_insert(0) += units;
        }
    }
    if shared.scenario == Scenario::Stock {
        let adjusted = shared.tally.adjusted.load(Ordering::Relaxed);
        *taken.entry(shared.seed.items[0].id.as_str()).or_insert(0) += adjusted;
    }
    taken
}

/// No item below zero, none taken beyond its stock.
fn oversold_check(shared: &Shared, taken: &HashMap<&str, u64>, available: &[i64]) -> Check {
    let items = &shared.seed.items;
    let mut oversold = Vec::new();
    for (item, available) in items.iter().zip(available) {
        let held = taken.get(item.id.as_str()).copied().unwrap_or(0);
        if *available < 0 || held > item.stock {
            oversold.push(format!("{} (available {available}, taken {held})", item.id));
        }
    }
    let sold: u64 = taken.values().sum();
    Check::new(
        "no oversold SKU",
        oversold.is_empty(),
        if oversold.is_empty() {
            format!(
                "{} items: none below zero or taken beyond its stock ({sold} units taken)",
                items.len()
            )
        } else {
            format!("oversold: {}", oversold.join(", "))
        },
    )
}

/// For every item, available + units taken = units listed.
fn conserved_check(shared: &Shared, taken: &HashMap<&str, u64>, available: &[i64]) -> Check {
    let items = &shared.seed.items;
    let mut unbalanced = Vec::new();
    for (item, available) in items.iter().zip(available) {
        let held = taken.get(item.id.as_str()).copied().unwrap_or(0);
        if available.saturating_add(held as i64) != item.stock as i64 {
            unbalanced.push(format!(
                "{}: {available} available + {held} taken != {} listed",
                item.id, item.stock
            ));
        }
    }
    let unanswered = shared.tally.unknown.load(Ordering::Relaxed);
    if shared.scenario == Scenario::Stock && unanswered > 0 {
        // Unanswered adjustments may or may not have landed.
        let item = &items[0];
        let held = taken.get(item.id.as_str()).copied().unwrap_or(0);
        let gap = (item.stock as i64)
            .saturating_sub(held as i64)
            .saturating_sub(available[0]);
        if (0..=unanswered as i64).contains(&gap) {
            unbalanced.clear();
        }
    }
    Check::new(
        "stock conserved",
        unbalanced.is_empty(),
        if unbalanced.is_empty() && shared.scenario == Scenario::Stock {
            "available + units taken by acknowledged adjustments = units listed".to_owned()
        } else if unbalanced.is_empty() {
            "for every item, available + units in live orders = units listed".to_owned()
        } else {
            unbalanced.join("; ")
        },
    )
}

/// What the API holds against what checkouts were answered: confirmed
/// orders, acknowledged orders, and in a flash sale the hot SKU's sales.
fn order_checks(
    shared: &Shared,
    orders: &[ReadOrder],
    by_status: &HashMap<String, u64>,
) -> Vec<Check> {
    let tally = &shared.tally;
    let answered =
        tally.confirmed.load(Ordering::Relaxed) + read::settled_confirmed(orders, shared);
    let unknown = tally.unknown.load(Ordering::Relaxed);
    let still_moving = orders.iter().filter(|o| o.on_its_way()).count() as u64;
    let in_api = by_status.get("CONFIRMED").copied().unwrap_or(0);
    let acknowledged = tally.confirmed.load(Ordering::Relaxed)
        + tally.payment_failed.load(Ordering::Relaxed)
        + lock(&tally.pending).len() as u64;
    let total = orders.len() as u64;
    let slack = unknown + still_moving;
    let mut checks = vec![
        Check::new(
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
        ),
        Check::new(
            "every order was acknowledged",
            total >= acknowledged && total <= acknowledged + unknown,
            format!("{total} orders in the API; {acknowledged} acknowledged by 201/202"),
        ),
    ];
    if shared.scenario == Scenario::FlashSale {
        checks.push(flash_sale_check(shared, orders));
    }
    checks
}

/// The hot SKU sold exactly its stock (or one unit per buyer who tried,
/// if fewer tried).
fn flash_sale_check(shared: &Shared, orders: &[ReadOrder]) -> Check {
    let seed = &shared.seed;
    let stock = seed.items[0].stock;
    // Buyers who got their turn (all, unless the run ended first).
    let tried = (shared.next_buyer.load(Ordering::Relaxed) as u64).min(seed.buyers.len() as u64);
    let want = stock.min(tried);
    let hot_confirmed: u64 = orders
        .iter()
        .filter(|o| o.status == "CONFIRMED")
        .flat_map(|o| o.lines.iter().map(|(_, units)| units))
        .sum();
    Check::new(
        "the hot SKU sold exactly its stock",
        hot_confirmed == want,
        format!(
            "{hot_confirmed} units confirmed of {stock} listed; {tried} of {} buyers tried",
            seed.buyers.len()
        ),
    )
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
