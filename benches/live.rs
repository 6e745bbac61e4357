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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use reqwest::Client;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
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

/// What the readers record, shared by all of them.
#[derive(Clone)]
struct Tally {
    sent: Sent,
    latency: Arc<Mutex<Histogram<u64>>>,
    received: Arc<AtomicU64>,
    last_arrival: Arc<Mutex<Instant>>,
}

impl Tally {
    fn new(changes: usize) -> Tally {
        Tally {
            sent: Arc::new(Mutex::new(vec![None; changes + 1])),
            latency: Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap())),
            received: Arc::new(AtomicU64::new(0)),
            last_arrival: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// A `stock.changed` frame with `available` = `k` arrived `at`.
    fn record(&self, k: usize, at: Instant) {
        if let Some(Some(sent)) = self.sent.lock().unwrap().get(k) {
            self.latency
                .lock()
                .unwrap()
                .record((at - *sent).as_micros().max(1) as u64)
                .unwrap();
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        *self.last_arrival.lock().unwrap() = at;
    }
}

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
        run_count(n, changes).await;
    }
}

/// One row: a fresh server, `n` sockets following one item, `changes`
/// stock changes pushed to them.
async fn run_count(n: usize, changes: usize) {
    let server = Server::start(&[]);
    let base = server.base.clone();
    let client = Client::new();
    let seller = token(&client, &base, "seller@bench.example", "seller").await;
    let viewer = token(&client, &base, "viewer@bench.example", "buyer").await;
    let body = json!({"name": "Live Item", "description": "Watched", "price": 100, "quantity": 0});
    let item_id = create_item(&client, &base, &seller, &body).await;
    let url = format!("{}/ws?token={viewer}", base.replacen("http://", "ws://", 1));
    let rss_before = server.rss_kib();
    let tally = Tally::new(changes);
    let readers = open_sockets(&url, &item_id, n, changes, &tally).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = server.rss_kib();
    let started = Instant::now();
    for k in 1..=changes {
        tally.sent.lock().unwrap()[k] = Some(Instant::now());
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
    while tally.received.load(Ordering::Relaxed) < (n * changes) as u64 && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let span = tally.last_arrival.lock().unwrap().duration_since(started);
    let got = tally.received.load(Ordering::Relaxed);
    let h = tally.latency.lock().unwrap().clone();
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

/// Opens `n` sockets following `item_id`'s topic and waits until every one
/// is subscribed; each reads until it has seen `changes` changes.
async fn open_sockets(
    url: &str,
    item_id: &str,
    n: usize,
    changes: usize,
    tally: &Tally,
) -> Vec<JoinHandle<Socket>> {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n.max(1));
    let mut readers = Vec::with_capacity(n);
    // Open in waves, so the accept queue is never the bottleneck.
    for wave in (0..n).collect::<Vec<_>>().chunks(200) {
        let opened = futures::future::join_all(
            wave.iter()
                .map(|_| async move { tokio_tungstenite::connect_async(url).await.unwrap().0 }),
        )
        .await;
        for socket in opened {
            let topic = json!({"type": "subscribe", "topic": format!("item:{item_id}")});
            readers.push(tokio::spawn(read_frames(
                socket,
                topic,
                changes,
                tally.clone(),
                ready_tx.clone(),
            )));
        }
    }
    for _ in 0..n {
        ready_rx.recv().await.unwrap();
    }
    readers
}

/// A websocket client connection.
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Subscribes to `topic`, says so on `ready`, then records each
/// `stock.changed` until `changes` of them arrived.
async fn read_frames(
    mut socket: Socket,
    topic: Value,
    changes: usize,
    tally: Tally,
    ready: tokio::sync::mpsc::Sender<()>,
) -> Socket {
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
                tally.record(k, arrived);
                seen += 1;
                if seen == changes {
                    break;
                }
            }
            _ => {}
        }
    }
    socket
}
