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

async fn run_mode(hot: bool, latency_ms: u64, secs: u64, buyers: usize, skus: usize) -> Outcome {
    let latency = latency_ms.to_string();
    let server = Server::start(&["--payment-latency-ms", &latency]);
    let base = server.base.clone();
    let client = Client::builder()
        .pool_max_idle_per_host(buyers)
        .build()
        .unwrap();
    let seller = token(&client, &base, "seller@bench.example", "seller").await;
    let items = if hot { 1 } else { skus };
    let mut item_ids = Vec::with_capacity(items);
    for i in 0..items {
        let body = json!({"name": format!("Item {i}"), "description": "A benchmark item",
                          "price": 999, "quantity": 100_000_000});
        item_ids.push(create_item(&client, &base, &seller, &body).await);
    }
    // Sign-ups two at a time: password hashing is bounded to the cores.
    let mut tokens = Vec::with_capacity(buyers);
    for pair in (0..buyers).collect::<Vec<_>>().chunks(2) {
        let made =
            futures::future::join_all(
                pair.iter().map(|i| {
                    let (client, base) = (client.clone(), base.clone());
                    async move {
                        token(&client, &base, &format!("buyer{i}@bench.example"), "buyer").await
                    }
                }),
            )
            .await;
        tokens.extend(made);
    }

    let confirmed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let item_ids = Arc::new(item_ids);
    let cpu_before = server.cpu_micros();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::with_capacity(buyers);
    for (n, token) in tokens.into_iter().enumerate() {
        let (client, base, items) = (client.clone(), base.clone(), item_ids.clone());
        let (confirmed, refused, errors) = (confirmed.clone(), refused.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut i = n;
            while Instant::now() < deadline {
                i = i.wrapping_mul(2_654_435_761).wrapping_add(1);
                let item = &items[i % items.len()];
                let cart = client
                    .patch(format!("{base}/cart"))
                    .bearer_auth(&token)
                    .json(&json!({"itemId": item, "quantity": 1}))
                    .send()
                    .await;
                let Ok(cart) = cart else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let cart: Value = cart.json().await.unwrap_or(Value::Null);
                let body = json!({"cartId": cart["id"], "amount": cart["total"],
                                  "paymentInfo": {"paymentType": "CARD", "cardNo": "**** **** **** 1234"}});
                let sent = Instant::now();
                let response = client
                    .post(format!("{base}/checkout"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let took = sent.elapsed().as_micros() as u64;
                match response {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        let _ = r.bytes().await;
                        confirmed.fetch_add(1, Ordering::Relaxed);
                        latency.record(took.max(1)).unwrap();
                    }
                    Ok(r) if r.status().is_client_error() => {
                        let _ = r.bytes().await;
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latency
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for task in tasks {
        latency.add(task.await.unwrap()).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let server_cpu = server.cpu_micros().saturating_sub(cpu_before);
    if std::env::var_os("METRICS").is_some() {
        // The server's own view: write groups, commit times, saga outcomes.
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
    drop(server);
    Outcome {
        confirmed: confirmed.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        secs,
        latency,
        server_cpu,
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
