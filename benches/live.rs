//! Live updates: push latency and fan-out with 1, 1,000 and 10,000 open
//! websockets against the real binary, and server memory per idle socket.
//!
//! ```text
//! cargo bench --bench live
//! SOCKETS=1,1000 CHANGES=50 cargo bench --bench live
//! ```
//!
//! For each socket count N: N sockets of one user each follow one item's
//! topic; the harness then makes `CHANGES` stock changes one after another
//! (`POST /items/{id}/stock`, durable) and every socket records when it
//! receives each `stock.changed`. Latency is from just before the HTTP
//! request to the frame's arrival (the whole transition: request, durable
//! write, event log, hub, socket). Both sides share the machine's two
//! cores, so the 10,000-socket figures include the client parsing 10,000
//! frames per change. The harness raises its file limit to the hard limit;
//! the server inherits it. Bounded in time; the server is stopped by PID.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use reqwest::Client;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use support::{create_item, env_or, token, Server};

fn raise_file_limit() -> u64 {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}

/// Each change's send time, by the `available` count it produces.
type Sent = Arc<Mutex<Vec<Option<Instant>>>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let limit = raise_file_limit();
    let counts: Vec<usize> = env_or("SOCKETS", "1,1000,10000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let changes: usize = env_or("CHANGES", 50);
    println!("# live bench: file limit {limit}, {changes} stock changes per socket count");
    println!("| open sockets | push p50 ms | push p99 ms | max ms | frames received | frames/s fanned out | server RSS per idle socket |");
    println!("|---|---|---|---|---|---|---|");
    for n in counts {
        let server = Server::start(&[]);
        let base = server.base.clone();
        let client = Client::new();
        let seller = token(&client, &base, "seller@bench.example", "seller").await;
        let viewer = token(&client, &base, "viewer@bench.example", "buyer").await;
        let body =
            json!({"name": "Live Item", "description": "Watched", "price": 100, "quantity": 0});
        let item_id = create_item(&client, &base, &seller, &body).await;
        let url = format!("{}/ws?token={viewer}", base.replacen("http://", "ws://", 1));
        let rss_before = server.rss_kib();
        let sent: Sent = Arc::new(Mutex::new(vec![None; changes + 1]));
        let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
        let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let last_arrival = Arc::new(Mutex::new(Instant::now()));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n.max(1));
        let mut readers = Vec::with_capacity(n);
        // Open in waves, so the accept queue is never the bottleneck.
        for wave in (0..n).collect::<Vec<_>>().chunks(200) {
            let opened = futures::future::join_all(wave.iter().map(|_| {
                let url = url.clone();
                async move { tokio_tungstenite::connect_async(url).await.unwrap().0 }
            }))
            .await;
            for mut socket in opened {
                let (sent, latency, received, last_arrival, ready) = (
                    sent.clone(),
                    latency.clone(),
                    received.clone(),
                    last_arrival.clone(),
                    ready_tx.clone(),
                );
                let topic = json!({"type": "subscribe", "topic": format!("item:{item_id}")});
                readers.push(tokio::spawn(async move {
                    socket
                        .send(Message::Text(topic.to_string().into()))
                        .await
                        .unwrap();
                    let mut seen = 0usize;
                    while let Some(Ok(frame)) = socket.next().await {
                        let Message::Text(text) = frame else { continue };
                        let arrived = Instant::now();
                        let value: Value = serde_json::from_str(&text).unwrap();
                        match value["type"].as_str() {
                            Some("subscribed") => {
                                let _ = ready.send(()).await;
                            }
                            Some("stock.changed") => {
                                let k = value["available"].as_u64().unwrap_or(0) as usize;
                                if let Some(Some(at)) = sent.lock().unwrap().get(k) {
                                    latency
                                        .lock()
                                        .unwrap()
                                        .record((arrived - *at).as_micros().max(1) as u64)
                                        .unwrap();
                                }
                                received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                *last_arrival.lock().unwrap() = arrived;
                                seen += 1;
                                if seen == changes {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    socket
                }));
            }
        }
        for _ in 0..n {
            ready_rx.recv().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_open = server.rss_kib();
        let started = Instant::now();
        for k in 1..=changes {
            sent.lock().unwrap()[k] = Some(Instant::now());
            let response = client
                .post(format!("{base}/items/{item_id}/stock"))
                .bearer_auth(&seller)
                .json(&json!({"delta": 1}))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            // Paced a little, so each change is its own fan-out.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while received.load(std::sync::atomic::Ordering::Relaxed) < (n * changes) as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let span = last_arrival.lock().unwrap().duration_since(started);
        let got = received.load(std::sync::atomic::Ordering::Relaxed);
        let h = latency.lock().unwrap().clone();
        let per_socket = (rss_open.saturating_sub(rss_before)) as f64 / n.max(1) as f64;
        println!(
            "| {n} | {:.2} | {:.2} | {:.1} | {got} of {} | {:.0} | {:.1} KiB |",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0,
            n * changes,
            got as f64 / span.as_secs_f64(),
            per_socket,
        );
        for reader in readers {
            reader.abort();
        }
        drop(server);
    }
}
