//! End-to-end checkout throughput over HTTP: the real binary (built by
//! `cargo bench`), a closed loop of buyers each filling their cart
//! (`PATCH /cart`) and checking it out (`POST /checkout`: the whole saga,
//! durable at every step), on one hot SKU or spread over many.
//!
//! ```text
//! cargo bench --bench checkout                     # every mode, 10 s each
//! SECS=5 MODES=hot-0 cargo bench --bench checkout  # one mode
//! ```
//!
//! Env: `AGORA_BIN` (another build of the server to run), `SECS` (10 per mode), `BUYERS` (64 concurrent buyers, one connection
//! each), `MODES` (comma list of `hot-0`, `hot-50`, `spread-0`, `spread-50`:
//! SKU layout and simulated payment latency in ms), `SKUS` (1,000 for
//! spread). The client shares the machine with the server: figures are a
//! floor for the server and a ceiling for this box. Bounded in time; the
//! server is stopped by its PID at the end of each mode.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

#[path = "support/mod.rs"]
mod support;

use support::{create_item, env_or, token, Server};

struct Outcome {
    confirmed: u64,
    refused: u64,
    errors: u64,
    secs: f64,
    latency: Histogram<u64>,
    /// Server CPU (user + system) over the loop, µs.
    server_cpu: u64,
}

/// What the buyers count, shared by all of them.
#[derive(Default)]
struct Counters {
    confirmed: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

/// One mode: a fresh server, seeded, then `buyers` closed loops for `secs`.
async fn run_mode(hot: bool, latency_ms: u64, secs: u64, buyers: usize, skus: usize) -> Outcome {
    let latency = latency_ms.to_string();
    let server = Server::start(&["--payment-latency-ms", &latency]);
    let base = server.base.clone();
    let client = Client::builder()
        .pool_max_idle_per_host(buyers)
        .build()
        .unwrap();
    let item_ids = Arc::new(seed_items(&client, &base, if hot { 1 } else { skus }).await);
    let tokens = sign_up_buyers(&client, &base, buyers).await;

    let counters = Arc::new(Counters::default());
    let cpu_before = server.cpu_micros();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(n, token)| {
            let buyer = Buyer {
                client: client.clone(),
                base: base.clone(),
                token,
                items: item_ids.clone(),
                counters: counters.clone(),
            };
            tokio::spawn(buyer.run(n, deadline))
        })
        .collect();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for task in tasks {
        latency.add(task.await.unwrap()).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let server_cpu = server.cpu_micros().saturating_sub(cpu_before);
    if std::env::var_os("METRICS").is_some() {
        print_server_metrics(&client, &base).await;
    }
    drop(server);
    Outcome {
        confirmed: counters.confirmed.load(Ordering::Relaxed),
        refused: counters.refused.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        secs,
        latency,
        server_cpu,
    }
}

/// `items` items with stock enough for any run; their ids.
async fn seed_items(client: &Client, base: &str, items: usize) -> Vec<String> {
    let seller = token(client, base, "seller@bench.example", "seller").await;
    let mut item_ids = Vec::with_capacity(items);
    for i in 0..items {
        let body = json!({"name": format!("Item {i}"), "description": "A benchmark item",
                          "price": 999, "quantity": 100_000_000});
        item_ids.push(create_item(client, base, &seller, &body).await);
    }
    item_ids
}

/// One token per buyer. Sign-ups two at a time: password hashing is
/// bounded to the cores.
async fn sign_up_buyers(client: &Client, base: &str, buyers: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(buyers);
    for pair in (0..buyers).collect::<Vec<_>>().chunks(2) {
        let made =
            futures::future::join_all(
                pair.iter().map(|i| {
                    let (client, base) = (client.clone(), base.to_owned());
                    async move {
                        token(&client, &base, &format!("buyer{i}@bench.example"), "buyer").await
                    }
                }),
            )
            .await;
        tokens.extend(made);
    }
    tokens
}

/// One buyer's closed loop: fill the cart, check it out, again.
struct Buyer {
    client: Client,
    base: String,
    token: String,
    items: Arc<Vec<String>>,
    counters: Arc<Counters>,
}

impl Buyer {
    /// Runs until `deadline`; the latency of each confirmed checkout.
    async fn run(self, n: usize, deadline: Instant) -> Histogram<u64> {
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut i = n;
        while Instant::now() < deadline {
            i = i.wrapping_mul(2_654_435_761).wrapping_add(1);
            let item = &self.items[i % self.items.len()];
            let Some(cart) = self.fill_cart(item).await else {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if let Some(took) = self.check_out(&cart).await {
                latency.record(took.max(1)).unwrap();
            }
        }
        latency
    }

    /// `PATCH /cart` with one unit of `item`; the cart, or `None` if the
    /// request failed.
    async fn fill_cart(&self, item: &str) -> Option<Value> {
        let cart = self
            .client
            .patch(format!("{}/cart", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"itemId": item, "quantity": 1}))
            .send()
            .await
            .ok()?;
        Some(cart.json().await.unwrap_or(Value::Null))
    }

    /// `POST /checkout`, counted; its latency in µs when confirmed.
    async fn check_out(&self, cart: &Value) -> Option<u64> {
        let body = json!({"cartId": cart["id"], "amount": cart["total"],
                          "paymentInfo": {"paymentType": "CARD", "cardNo": "**** **** **** 1234"}});
        let sent = Instant::now();
        let response = self
            .client
            .post(format!("{}/checkout", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await;
        let took = sent.elapsed().as_micros() as u64;
        match response {
            Ok(r) if r.status() == StatusCode::CREATED => {
                let _ = r.bytes().await;
                self.counters.confirmed.fetch_add(1, Ordering::Relaxed);
                Some(took)
            }
            Ok(r) if r.status().is_client_error() => {
                let _ = r.bytes().await;
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// The server's own view: write groups, commit times, saga outcomes.
async fn print_server_metrics(client: &Client, base: &str) {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in text.lines().filter(|l| {
        l.starts_with("agora_actors_live")
            || ((l.starts_with("agora_storage") || l.starts_with("agora_checkout"))
                && (l.contains("_sum") || l.contains("_count")))
    }) {
        eprintln!("  {line}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we ignore.
    let secs: u64 = env_or("SECS", 10);
    let buyers: usize = env_or("BUYERS", 64);
    let skus: usize = env_or("SKUS", 1_000);
    let modes: String = env_or("MODES", "hot-0,hot-50,spread-0,spread-50".to_owned());
    println!("mode\tbuyers\tcheckouts/s\tp50 ms\tp99 ms\trefused\terrors\tserver cores\tserver µs/checkout");
    for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (layout, latency) = mode.split_once('-').expect("mode like hot-0");
        let latency: u64 = latency.parse().expect("latency in ms");
        let outcome = run_mode(layout == "hot", latency, secs, buyers, skus).await;
        println!(
            "{mode}\t{buyers}\t{:.0}\t{:.2}\t{:.2}\t{}\t{}\t{:.2}\t{:.0}",
            outcome.confirmed as f64 / outcome.secs,
            outcome.latency.value_at_quantile(0.50) as f64 / 1000.0,
            outcome.latency.value_at_quantile(0.99) as f64 / 1000.0,
            outcome.refused,
            outcome.errors,
            outcome.server_cpu as f64 / 1e6 / outcome.secs,
            outcome.server_cpu as f64 / outcome.confirmed.max(1) as f64,
        );
    }
}
