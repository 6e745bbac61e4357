//! Search over HTTP: closed-loop clients against the real binary.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::ms;
use super::queries::{queries, CLASSES, Q};

/// Latency per query class, by class.
pub type ByClass = HashMap<&'static str, Histogram<u64>>;

/// `clients` closed-loop HTTP clients searching for `secs`; their merged
/// latencies and the count of failed requests.
pub async fn http_load(base: &str, clients: usize, secs: u64) -> (ByClass, u64) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let all = Arc::new(queries(500));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (client, base, all) = (client.clone(), base.to_owned(), all.clone());
            tokio::spawn(http_client(client, base, all, c * 37, deadline))
        })
        .collect();
    let mut merged = ByClass::new();
    let mut errors = 0;
    for t in tasks {
        let (hist, e) = t.await.unwrap();
        errors += e;
        for (class, h) in hist {
            merged
                .entry(class)
                .or_insert_with(|| Histogram::new(3).unwrap())
                .add(h)
                .unwrap();
        }
    }
    (merged, errors)
}

/// One client: searches one query after another until `deadline`.
async fn http_client(
    client: reqwest::Client,
    base: String,
    all: Arc<Vec<Q>>,
    mut i: usize,
    deadline: Instant,
) -> (ByClass, u64) {
    let mut hist = ByClass::new();
    let mut errors = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let q = &all[i % all.len()];
        let url = format!("{base}/items?size=20&{}", q.url_query());
        let started = Instant::now();
        match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                hist.entry(q.class)
                    .or_insert_with(|| Histogram::new(3).unwrap())
                    .record(started.elapsed().as_micros().max(1) as u64)
                    .unwrap();
            }
            _ => errors += 1,
        }
    }
    (hist, errors)
}

/// Prints one HTTP run: throughput, errors, latency per class.
pub fn print_http(merged: &ByClass, errors: u64, clients: usize, secs: u64) {
    let total: u64 = merged.values().map(|h| h.len()).sum();
    println!("\nover HTTP, {clients} clients, {secs} s: {:.0} searches/s, {errors} errors\n\n| class | p50 ms | p99 ms |\n|---|---|---|", total as f64 / secs as f64);
    for class in CLASSES {
        if let Some(h) = merged.get(class) {
            println!("| {class} | {:.2} | {:.2} |", ms(h, 0.5), ms(h, 0.99));
        }
    }
}
