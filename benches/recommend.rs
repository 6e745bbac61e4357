//! Recommendations over HTTP, and the recommender's own throughput.
//!
//! ```text
//! cargo bench --bench recommend
//! ITEMS=10000 ORDERS=5000 SECS=5 cargo bench --bench recommend
//! ```
//!
//! The real binary on a temp data dir: a seller lists `ITEMS` items (20
//! categories, 50 brands), `ORDERS` confirmed orders of 1–3 items each are
//! placed through the API (skewed: a few items sell most; half the
//! multi-item orders pair an item with a fixed partner), then, after the
//! recommender has caught up, `CLIENTS` closed-loop clients (4) call each
//! endpoint for `SECS` seconds (10) beside `GET /items/{id}`, the plain
//! item read measured in the same run. Last, the server is stopped and
//! `agora recommendations rebuild` replays the whole log through the
//! recommender: its events/s. Bounded in time and count; the server is
//! stopped by its PID.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

#[path = "support/mod.rs"]
mod support;

use support::{create_item, env_or, fetch_json, token, Server};

/// A request: URL and bearer token.
type Call = (String, Option<String>);

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Skewed toward 0: a few items sell most.
    fn skewed(&mut self, n: usize) -> usize {
        ((self.unit().powi(3) * n as f64) as usize).min(n - 1)
    }
}

async fn seed_items(client: &Client, base: &str, seller: &str, items: usize) -> Vec<String> {
    let ids = Arc::new(tokio::sync::Mutex::new(vec![String::new(); items]));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, base, seller, ids, next) = (
            client.clone(),
            base.to_owned(),
            seller.to_owned(),
            ids.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= items {
                    break;
                }
                let body = json!({"name": format!("Item {i} lamp"), "description": "A benchmark item",
                    "price": 1000 + i as i64, "quantity": 100_000_000,
                    "category": format!("category-{}", i % 20), "brand": format!("Brand {}", i % 50)});
                ids.lock().await[i] = create_item(&client, &base, &seller, &body).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(ids).unwrap().into_inner()
}

/// Places `orders` confirmed orders from `buyers`; returns how many.
async fn seed_orders(
    client: &Client,
    base: &str,
    buyers: &[String],
    items: &[String],
    orders: usize,
) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (b, buyer) in buyers.iter().enumerate() {
        let (client, base, buyer, items, done, next) = (
            client.clone(),
            base.to_owned(),
            buyer.clone(),
            items.to_vec(),
            done.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (b as u64 + 1));
            loop {
                if next.fetch_add(1, Ordering::Relaxed) as usize >= orders {
                    break;
                }
                let first = rng.skewed(items.len());
                let mut lines = vec![first];
                let extra = rng.next() % 3;
                for _ in 0..extra {
                    lines.push(if rng.next() % 2 == 0 {
                        (first + 1) % items.len()
                    } else {
                        rng.skewed(items.len())
                    });
                }
                let mut cart = Value::Null;
                for line in lines {
                    cart = fetch_json(
                        client
                            .patch(format!("{base}/cart"))
                            .bearer_auth(&buyer)
                            .json(&json!({"itemId": items[line], "quantity": 1})),
                    )
                    .await;
                }
                let body = json!({"cartId": cart["id"], "amount": cart["total"],
                    "paymentInfo": {"paymentType": "CARD", "cardNo": "**** 1234"}});
                let response = client
                    .post(format!("{base}/checkout"))
                    .bearer_auth(&buyer)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                if response.status() == StatusCode::CREATED {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed)
}

async fn lag(client: &Client, base: &str) -> u64 {
    let ready = fetch_json(client.get(format!("{base}/ready"))).await;
    ready["recommender"]["lag"].as_u64().unwrap_or(u64::MAX)
}

/// `clients` closed loops calling `path(i)` for `secs`: (requests/s,
/// latency µs, errors).
async fn measure(
    client: &Client,
    clients: usize,
    secs: u64,
    paths: Arc<Vec<Call>>,
) -> (f64, Histogram<u64>, u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, paths) = (client.clone(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3).unwrap();
            let mut errors = 0;
            let mut i = c;
            while Instant::now() < deadline {
                let (url, token) = &paths[i % paths.len()];
                i += clients;
                let mut request = client.get(url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let began = Instant::now();
                match request.send().await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        let _ = response.bytes().await;
                        histogram
                            .record(began.elapsed().as_micros() as u64)
                            .unwrap();
                    }
                    _ => errors += 1,
                }
            }
            (histogram, errors)
        }));
    }
    let mut histogram = Histogram::<u64>::new(3).unwrap();
    let mut errors = 0;
    for task in tasks {
        let (h, e) = task.await.unwrap();
        histogram.add(h).unwrap();
        errors += e;
    }
    let rate = histogram.len() as f64 / started.elapsed().as_secs_f64();
    (rate, histogram, errors)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let items: usize = env_or("ITEMS", 2_000);
    let orders: usize = env_or("ORDERS", 2_000);
    let secs: u64 = env_or("SECS", 10);
    let clients: usize = env_or("CLIENTS", 4);
    let data = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in(data.path(), &["--payment-latency-ms", "0"]);
    let base = server.base.clone();
    let client = Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let (ids, buyers) = seed(&client, &base, items, orders).await;
    let scenarios = scenarios(&client, &base, &ids, &buyers).await;
    println!("endpoint\tclients\treq/s\tp50 ms\tp99 ms\terrors\tvs item read");
    let mut baseline = None;
    for (name, paths) in scenarios {
        let (rate, histogram, errors) = measure(&client, clients, secs, Arc::new(paths)).await;
        let base_rate = *baseline.get_or_insert(rate);
        println!(
            "{name}\t{clients}\t{rate:.0}\t{:.2}\t{:.2}\t{errors}\t{:.2}",
            histogram.value_at_quantile(0.50) as f64 / 1000.0,
            histogram.value_at_quantile(0.99) as f64 / 1000.0,
            rate / base_rate,
        );
    }
    drop(server);
    rebuild(data.path());
}

/// Lists `items` items, signs up 32 buyers, places `orders` orders and
/// waits for the recommender to catch up; the item ids and the buyers'
/// tokens.
async fn seed(
    client: &Client,
    base: &str,
    items: usize,
    orders: usize,
) -> (Vec<String>, Vec<String>) {
    let seller = token(client, base, "seller@bench.example", "seller").await;
    let started = Instant::now();
    let ids = seed_items(client, base, &seller, items).await;
    println!(
        "seeded {items} items in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut buyers = Vec::new();
    for b in 0..32 {
        buyers.push(token(client, base, &format!("buyer{b}@bench.example"), "buyer").await);
    }
    let started = Instant::now();
    let placed = seed_orders(client, base, &buyers, &ids, orders).await;
    let placing = started.elapsed();
    let after_orders = Instant::now();
    while lag(client, base).await > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "{placed} orders in {:.1} s ({:.0}/s); recommender caught up {:.0} ms after the last one",
        placing.as_secs_f64(),
        placed as f64 / placing.as_secs_f64(),
        after_orders.elapsed().as_secs_f64() * 1000.0
    );
    (ids, buyers)
}

/// The endpoints measured, the plain item read first (the peer). Popular
/// items (bought together often) and the least popular (whose related
/// list falls back to search).
async fn scenarios(
    client: &Client,
    base: &str,
    ids: &[String],
    buyers: &[String],
) -> Vec<(&'static str, Vec<Call>)> {
    let popular = fetch_json(client.get(format!("{base}/recommendations?size=50"))).await;
    let hot: Vec<String> = popular["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let cold: Vec<String> = ids[ids.len() - 50..].to_vec();
    let url = |path: String| format!("{base}{path}");
    vec![
        (
            "GET /items/{id} (peer: plain read)",
            hot.iter()
                .map(|id| (url(format!("/items/{id}")), None))
                .collect(),
        ),
        (
            "GET /recommendations (popular)",
            vec![(url("/recommendations?size=10".into()), None)],
        ),
        (
            "GET /recommendations (personalized)",
            buyers
                .iter()
                .map(|t| (url("/recommendations?size=10".into()), Some(t.clone())))
                .collect(),
        ),
        (
            "GET /items/{id}/related (bought together)",
            hot.iter()
                .map(|id| (url(format!("/items/{id}/related?size=10")), None))
                .collect(),
        ),
        (
            "GET /items/{id}/related (similar, via search)",
            cold.iter()
                .map(|id| (url(format!("/items/{id}/related?size=10")), None))
                .collect(),
        ),
    ]
}

/// The recommender alone: the whole log replayed by a rebuild (the server
/// stopped).
fn rebuild(data: &std::path::Path) {
    let bin = std::env::var("AGORA_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_agora").to_owned());
    let output = std::process::Command::new(bin)
        .args(["recommendations", "rebuild", "--data-dir"])
        .arg(data)
        .current_dir(data)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the rebuild");
    println!(
        "rebuild: {}",
        String::from_utf8_lossy(&output.stdout).trim()
    );
}
