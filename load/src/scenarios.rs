//! What each scenario's workers do, one iteration at a time, and what they
//! keep for the invariant checks.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::client::Caller;
use crate::seed::{Seed, ADJECTIVES, BRANDS, CATEGORIES, NOUNS};

/// A load scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Search and item views.
    Browse,
    /// Cart churn: lines set, changed and removed; carts read.
    Cart,
    /// The seller's stock adjustments (`delta` −1) on one hot SKU: one
    /// durable single-row update per request through the SKU's actor, the
    /// like of a hot-row `UPDATE` in PostgreSQL.
    Stock,
    /// The full purchase (cart, then checkout) on SKUs spread over the
    /// seeded items.
    Checkout,
    /// `--buyers` buyers, one unit each, of one hot SKU with `--stock` units.
    FlashSale,
    /// `--sockets` websockets listening to their buyers' orders while
    /// checkouts flow.
    Websocket,
    /// A blend: 90% reads (item views, search, suggestions, carts), the rest
    /// cart updates and checkouts.
    Mixed,
}

impl Scenario {
    /// Whether the scenario checks out (and so has orders to read back).
    pub fn buys(self) -> bool {
        matches!(
            self,
            Scenario::Checkout | Scenario::FlashSale | Scenario::Websocket | Scenario::Mixed
        )
    }

    /// Whether every worker hits the one seeded item.
    pub fn one_item(self) -> bool {
        matches!(self, Scenario::FlashSale | Scenario::Stock)
    }

    /// Whether it searches (so seeding waits for the index).
    pub fn searches(self) -> bool {
        matches!(self, Scenario::Browse | Scenario::Mixed)
    }
}

/// Lines a churned cart holds at most, about (the API allows 100).
const CART_LINES: usize = 8;

/// The card every checkout pays with: approved by the simulated gateway.
const CARD: &str = "**** **** **** 4242";

/// Checkout outcomes as the harness saw them, shared by the workers.
#[derive(Default)]
pub struct Tally {
    /// Answered `201` with `CONFIRMED`.
    pub confirmed: AtomicU64,
    /// Answered `201` with `PAYMENT_FAILED`.
    pub payment_failed: AtomicU64,
    /// Answered `202`: (buyer, order id), settled before the checks.
    pub pending: Mutex<Vec<(usize, String)>>,
    /// Refusals (`409`, `422`, ...) by problem code.
    pub refused: Mutex<BTreeMap<String, u64>>,
    /// No answer, or a `5xx`: the order (or stock change) may or may not
    /// exist.
    pub unknown: AtomicU64,
    /// Units the seller's adjustments took (stock scenario), acknowledged.
    pub adjusted: AtomicU64,
}

/// A buyer's cart as one worker set it.
#[derive(Default)]
pub struct CartModel {
    /// Item → quantity, as last set and acknowledged.
    pub lines: HashMap<String, u64>,
    /// Items whose last update got no answer: their line is unknown.
    pub uncertain: Vec<String>,
}

/// A worker's own state between iterations.
pub struct Worker {
    /// The buyers this worker acts as, in turn (no other worker uses them,
    /// so their carts are never contended). Empty in a flash sale, where
    /// buyers come from a shared queue.
    pub own: Vec<usize>,
    turn: usize,
    /// The buyer of the current iteration.
    pub buyer: Option<usize>,
    /// Each own buyer's cart, as set by this worker (cart churn).
    pub carts: HashMap<usize, CartModel>,
    rng: StdRng,
}

impl Worker {
    /// Worker `n` of `workers`, over `buyers` buyers (`0` in a flash sale).
    pub fn new(n: usize, workers: usize, buyers: usize, seed: u64) -> Worker {
        use rand::SeedableRng;
        Worker {
            own: (n..buyers).step_by(workers.max(1)).collect(),
            turn: 0,
            buyer: None,
            carts: HashMap::new(),
            rng: StdRng::seed_from_u64(seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        }
    }

    /// Moves to the next own buyer and signs the caller in as them.
    fn next_buyer(&mut self, shared: &Shared, caller: &mut Caller) {
        if self.own.is_empty() {
            return;
        }
        let buyer = self.own[self.turn % self.own.len()];
        self.turn = self.turn.wrapping_add(1);
        self.buyer = Some(buyer);
        caller.token = Some(shared.seed.buyers[buyer].clone());
    }
}

/// What the workers share.
pub struct Shared {
    /// The scenario.
    pub scenario: Scenario,
    /// The seeded data.
    pub seed: Seed,
    /// Checkout outcomes.
    pub tally: Tally,
    /// The next flash-sale buyer to try.
    pub next_buyer: AtomicUsize,
}

/// Whether a worker goes on after an iteration.
pub enum Next {
    /// Schedule another iteration.
    Continue,
    /// Nothing left to do (every flash-sale buyer has tried).
    Done,
}

/// Runs one iteration of the scenario, counted from `since`.
pub async fn step(
    shared: &Shared,
    caller: &mut Caller,
    worker: &mut Worker,
    since: Instant,
) -> Next {
    worker.next_buyer(shared, caller);
    match shared.scenario {
        Scenario::Browse => {
            if worker.rng.gen_ratio(1, 3) {
                search(shared, caller, worker, since).await;
            } else {
                view_item(shared, caller, worker, since).await;
            }
        }
        Scenario::Cart => {
            if worker.rng.gen_ratio(1, 5) {
                read_cart(caller, since).await;
            } else {
                churn_cart(shared, caller, worker, since).await;
            }
        }
        Scenario::Stock => take_one_unit(shared, caller, since).await,
        Scenario::Checkout | Scenario::Websocket => {
            let item = pick(shared, worker);
            buy(shared, caller, worker, &item, since).await;
        }
        Scenario::FlashSale => return flash_sale_turn(shared, caller, worker, since).await,
        Scenario::Mixed => mixed(shared, caller, worker, since).await,
    }
    Next::Continue
}

/// The stock scenario: the seller takes one unit of the one item.
async fn take_one_unit(shared: &Shared, caller: &mut Caller, since: Instant) {
    caller.token = Some(shared.seed.seller.clone());
    let path = format!("/items/{}/stock", shared.seed.items[0].id);
    let request = caller
        .request(Method::POST, &path)
        .json(&json!({"delta": -1}));
    let reply = caller.send("stock.update", since, request).await;
    let tally = &shared.tally;
    if reply.is(StatusCode::OK) {
        tally.adjusted.fetch_add(1, Ordering::Relaxed);
    } else if reply.status.is_none_or(|s| s.is_server_error()) {
        tally.unknown.fetch_add(1, Ordering::Relaxed);
    }
}

/// A flash sale: the next buyer who has not tried buys the hot item;
/// `Done` once every buyer has tried.
async fn flash_sale_turn(
    shared: &Shared,
    caller: &mut Caller,
    worker: &mut Worker,
    since: Instant,
) -> Next {
    let next = shared.next_buyer.fetch_add(1, Ordering::Relaxed);
    let Some(token) = shared.seed.buyers.get(next) else {
        return Next::Done;
    };
    caller.token = Some(token.clone());
    worker.buyer = Some(next);
    let hot = shared.seed.items[0].id.clone();
    buy(shared, caller, worker, &hot, since).await;
    Next::Continue
}

/// The mixed scenario's roll: mostly views and searches, some suggestions
/// and cart reads and changes, a few purchases.
async fn mixed(shared: &Shared, caller: &mut Caller, worker: &mut Worker, since: Instant) {
    let roll = worker.rng.gen_range(0..100);
    match roll {
        0..55 => view_item(shared, caller, worker, since).await,
        55..80 => search(shared, caller, worker, since).await,
        80..85 => {
            let prefix = &NOUNS[worker.rng.gen_range(0..NOUNS.len())][..3];
            let path = format!("/items/suggest?q={prefix}");
            caller
                .send("suggest", since, caller.request(Method::GET, &path))
                .await;
        }
        85..90 => read_cart(caller, since).await,
        90..96 => churn_cart(shared, caller, worker, since).await,
        _ => {
            let item = pick(shared, worker);
            buy(shared, caller, worker, &item, since).await;
        }
    }
}

/// The buyer reads their cart.
async fn read_cart(caller: &mut Caller, since: Instant) {
    caller
        .send("cart.get", since, caller.request(Method::GET, "/cart"))
        .await;
}

fn pick(shared: &Shared, worker: &mut Worker) -> String {
    let items = &shared.seed.items;
    items[worker.rng.gen_range(0..items.len())].id.clone()
}

async fn view_item(shared: &Shared, caller: &mut Caller, worker: &mut Worker, since: Instant) {
    let item = pick(shared, worker);
    let path = format!("/items/{item}");
    caller
        .send("item.get", since, caller.request(Method::GET, &path))
        .await;
}

/// Half the searches are the head: a noun, or an adjective and a noun (the
/// 132 queries shoppers repeat, which the node's result cache serves). The
/// other half is the long tail, which rarely repeats: the same words
/// narrowed by a brand and a price band, or by a category and a lowest
/// price and sorted by price.
async fn search(_shared: &Shared, caller: &mut Caller, worker: &mut Worker, since: Instant) {
    let rng = &mut worker.rng;
    let noun = NOUNS[rng.gen_range(0..NOUNS.len())];
    let adjective = ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())];
    let path = match rng.gen_range(0..4) {
        0 => format!("/items?term={noun}&size=20"),
        1 => format!("/items?term={adjective}+{noun}&size=20"),
        2 => {
            let brand = BRANDS[rng.gen_range(0..BRANDS.len())];
            let low = rng.gen_range(100..9_000);
            format!(
                "/items?term={adjective}+{noun}&brand={brand}&minPrice={low}&maxPrice={}&size=20",
                low + 1_000
            )
        }
        _ => {
            let category = CATEGORIES[rng.gen_range(0..CATEGORIES.len())];
            let low = rng.gen_range(100..9_000);
            format!("/items?term={noun}&category={category}&minPrice={low}&sort=price_asc&size=20")
        }
    };
    caller
        .send("search", since, caller.request(Method::GET, &path))
        .await;
}

/// Sets a random line of the buyer's cart to 0–3 units, keeping the model.
async fn churn_cart(shared: &Shared, caller: &mut Caller, worker: &mut Worker, since: Instant) {
    let buyer = worker.buyer.unwrap_or(0);
    let lines = worker.carts.get(&buyer).map_or(0, |c| c.lines.len());
    // Carts stay the size shoppers keep (about `CART_LINES`): a full cart
    // gets an existing line changed or removed, not a new one.
    let existing = (lines >= CART_LINES)
        .then(|| {
            let cart = &worker.carts[&buyer];
            let k = worker.rng.gen_range(0..cart.lines.len());
            cart.lines.keys().nth(k).cloned()
        })
        .flatten();
    let item = match existing {
        Some(item) => item,
        None => pick(shared, worker),
    };
    let quantity: u64 = worker.rng.gen_range(0..=3);
    let request = caller
        .request(Method::PATCH, "/cart")
        .json(&json!({"itemId": item, "quantity": quantity}));
    let reply = caller.send("cart.update", since, request).await;
    let cart = worker.carts.entry(worker.buyer.unwrap_or(0)).or_default();
    if reply.is(StatusCode::OK) {
        cart.uncertain.retain(|i| *i != item);
        if quantity == 0 {
            cart.lines.remove(&item);
        } else {
            cart.lines.insert(item, quantity);
        }
    } else if reply.status.is_none_or(|s| s.is_server_error()) {
        cart.uncertain.push(item);
    }
}

/// Puts one unit of `item` in the cart and checks out.
async fn buy(
    shared: &Shared,
    caller: &mut Caller,
    worker: &mut Worker,
    item: &str,
    since: Instant,
) {
    let request = caller
        .request(Method::PATCH, "/cart")
        .json(&json!({"itemId": item, "quantity": 1}));
    let cart = caller.send("cart.update", since, request).await;
    if !cart.is(StatusCode::OK) {
        return;
    }
    let body = json!({
        "cartId": cart.body["id"],
        "amount": cart.body["total"],
        "paymentInfo": {"paymentType": "CARD", "cardNo": CARD},
    });
    let request = caller.request(Method::POST, "/checkout").json(&body);
    let reply = caller.send("checkout", Instant::now(), request).await;
    // The whole purchase, from when it was due (an open loop's lateness
    // shows here, not only in the cart update that went first).
    caller.record_since("purchase", since, &reply);
    let tally = &shared.tally;
    match reply.status {
        Some(StatusCode::CREATED) => {
            let counter = match reply.body["status"].as_str() {
                Some("CONFIRMED") => &tally.confirmed,
                _ => &tally.payment_failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Some(StatusCode::ACCEPTED) => {
            let id = reply.body["orderId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let buyer = worker.buyer.unwrap_or(0);
            lock(&tally.pending).push((buyer, id));
        }
        Some(status) if status.is_client_error() => {
            let code = reply.code().unwrap_or("").to_owned();
            let key = format!("{} {code}", status.as_u16());
            *lock(&tally.refused).entry(key).or_insert(0) += 1;
        }
        _ => {
            tally.unknown.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Locks `mutex`, shrugging off a poisoned lock (a panicked worker's
/// counts are still counts).
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
