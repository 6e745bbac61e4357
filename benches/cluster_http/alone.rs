//! The cluster's local twin: one node alone (no `[cluster]`, no NATS) on
//! the same box, under the same buyers' loop.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::Client;
use serde_json::json;

use super::support::{create_item, token, Server};
use super::{buyer_loop, Counters, ITEMS_PER_NODE};

/// `buyers` loops for `secs` against a fresh single node; prints a line
/// in the checkout table's shape.
pub async fn checkout(buyers: usize, secs: u64) {
    let server = Server::start(&["--payment-latency-ms", "0"]);
    let base = server.base.clone();
    let client = Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let seller = token(&client, &base, "seller@alone.bench", "seller").await;
    let mut items = Vec::new();
    for i in 0..ITEMS_PER_NODE {
        let body = json!({"name": format!("Alone item {i}"), "description": "A benchmark item",
                          "price": 999, "quantity": 100_000_000});
        items.push(create_item(&client, &base, &seller, &body).await);
    }
    let items = Arc::new(items);
    let mut tokens = Vec::new();
    for i in 0..buyers {
        tokens.push(token(&client, &base, &format!("buyer{i}@alone.bench"), "buyer").await);
    }
    let counters = Arc::new(Counters::default());
    let cpu_before = server.cpu_micros();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(buyer_loop(
                client,
                base,
                token,
                items.clone(),
                counters.clone(),
                deadline,
                i,
            ))
        })
        .collect();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for task in tasks {
        latency.add(task.await.unwrap()).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = server.cpu_micros() - cpu_before;
    let confirmed = counters.confirmed.load(Ordering::Relaxed);
    println!(
        "alone \t{buyers}\t{:.0}\t{:.2}\t{:.2}\t{}\t{}\t{:.0}\t-\t{:.2}\t-\t(one node, no NATS)",
        confirmed as f64 / secs,
        latency.value_at_quantile(0.50) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        counters.refused.load(Ordering::Relaxed),
        counters.errors.load(Ordering::Relaxed),
        cpu as f64 / confirmed.max(1) as f64,
        cpu as f64 / 1e6 / secs,
    );
}
