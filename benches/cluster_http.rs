//! A three-node cluster over HTTP: nats-server and three `agora serve`
//! processes (the binary `cargo bench` builds) on loopback, this bench the
//! only client.
//!
//! ```text
//! cargo bench --bench cluster_http                # 10 s per mode, 1 round
//! SECS=10 ROUNDS=2 cargo bench --bench cluster_http
//! ```
//!
//! 1. Checkout, first on one node alone (no `[cluster]`, no NATS: the
//!    twin), then `BUYERS` (64) closed loops of `PATCH /cart` + `POST
//!    /checkout`, each buyer's requests sent to the buyer's node: *local*,
//!    every buyer buying items of sellers on its own node; *remote*, items of
//!    sellers on the next node (every stock reservation and commit a call
//!    to the SKU's node). Checkouts/s, p50/p99, CPU per checkout (the
//!    three nodes and nats-server, `/proc/<pid>/stat` before/after).
//!    Then node 1 loaded alone: what nodes 2 and 3 spend applying its events.
//! 2. During each mode, the relay lag (an event's commit → applied on
//!    another node) from every node's `agora_consumer_lag_seconds`.
//! 3. Search freshness: an item listed on node 1 → found by `GET
//!    /items?term=` on node 2, `FRESH` (20) items one after the other.
//! 4. A dead node: `kill -9` node 3, then `PATCH /items/{id}` of one of
//!    its items through node 1 until `503 NODE_UNAVAILABLE`; node 3 started
//!    again between `TRIALS` (5) trials.
//!
//! `ALONE=0` skips the twin, `ROUNDS=0` the cluster's checkout modes.
//!
//! Bounded: every wait has a limit; processes are stopped by PID. Prints a
//! clear message and exits 0 when no nats-server is found.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

#[path = "cluster_http/alone.rs"]
mod alone;
#[path = "cluster_http/apply.rs"]
mod apply;
#[path = "cluster_http/lag.rs"]
mod lag;
#[path = "support/nats.rs"]
mod nats;
#[path = "cluster_http/probes.rs"]
mod probes;
#[path = "support/mod.rs"]
mod support;

use nats::{free_port, Nats};
use support::{cpu_micros_of, env_or, fetch_json, Server};

/// Nodes in the cluster.
const NODES: usize = 3;
/// Items listed by the sellers of each node.
const ITEMS_PER_NODE: usize = 100;

/// The running cluster: NATS, the nodes, their data dirs and config.
pub struct Cluster {
    nats: Nats,
    nodes: Vec<Server>,
    dirs: Vec<tempfile::TempDir>,
    config: PathBuf,
    _config_dir: tempfile::TempDir,
    client: Client,
}

impl Cluster {
    fn start(nats: Nats) -> Cluster {
        let config_dir = tempfile::tempdir().unwrap();
        let config = config_dir.path().join("cluster.toml");
        let mut text = format!("[cluster]\nnats = {:?}\n", nats.url);
        for n in 1..=NODES {
            text += &format!(
                "\n[[cluster.nodes]]\nid = \"node-{n}\"\nhttp = \"127.0.0.1:{}\"\n",
                free_port()
            );
        }
        std::fs::write(&config, text).unwrap();
        let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut cluster = Cluster {
            nats,
            nodes: Vec::new(),
            dirs,
            config,
            _config_dir: config_dir,
            client: Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .unwrap(),
        };
        for n in 0..NODES {
            let node = cluster.start_node(n);
            cluster.nodes.push(node);
        }
        cluster
    }

    /// Starts node `n` (0-based) on its data dir.
    pub fn start_node(&self, n: usize) -> Server {
        let id = format!("node-{}", n + 1);
        let config = self.config.display().to_string();
        Server::start_in(
            self.dirs[n].path(),
            &[
                "--config",
                &config,
                "--node-id",
                &id,
                "--payment-latency-ms",
                "0",
            ],
        )
    }

    pub fn base(&self, n: usize) -> &str {
        &self.nodes[n].base
    }

    /// CPU used so far by the nodes and by nats-server, µs.
    fn cpu(&self) -> (u64, u64) {
        let nodes: u64 = self.nodes.iter().map(Server::cpu_micros).sum();
        (nodes, cpu_micros_of(&self.nats.pid().to_string()))
    }
}

/// A user placed on a node, signed in there.
#[derive(Clone)]
pub struct User {
    pub node: usize,
    pub token: String,
}

/// Signs up `email` through node 1 and signs in on the node it lives on.
async fn sign_up(cluster: &Cluster, email: &str, role: &str) -> User {
    let (client, first) = (&cluster.client, cluster.base(0));
    let body = json!({"email": email, "password": "benchmark", "name": "Bench", "role": role});
    let user = fetch_json(client.post(format!("{first}/users")).json(&body)).await;
    let id = user["id"].as_str().expect("a user id");
    let placed = fetch_json(client.get(format!("{first}/cluster/placement/user/{id}"))).await;
    let node: usize = placed["node"].as_str().unwrap()["node-".len()..]
        .parse()
        .unwrap();
    let base = cluster.base(node - 1);
    let session = fetch_json(
        client
            .post(format!("{base}/sessions"))
            .json(&json!({"email": email, "password": "benchmark"})),
    )
    .await;
    User {
        node: node - 1,
        token: session["token"].as_str().unwrap().to_owned(),
    }
}

/// Signs up users with `role` until every node has `per_node`; per node.
async fn users_per_node(cluster: &Cluster, role: &str, per_node: usize) -> Vec<Vec<User>> {
    let mut placed: Vec<Vec<User>> = vec![Vec::new(); NODES];
    let mut i = 0;
    while placed.iter().any(|users| users.len() < per_node) {
        assert!(i < per_node * NODES * 10, "placement never filled a node");
        let user = sign_up(cluster, &format!("{role}{i}@cluster.bench"), role).await;
        i += 1;
        if placed[user.node].len() < per_node {
            placed[user.node].push(user);
        }
    }
    placed
}

/// Each node's sellers list `ITEMS_PER_NODE` items there; ids per node.
async fn list_items(cluster: &Cluster, sellers: &[Vec<User>]) -> Vec<Vec<String>> {
    let mut items = Vec::new();
    for (node, sellers) in sellers.iter().enumerate() {
        let mut ids = Vec::new();
        for i in 0..ITEMS_PER_NODE {
            let seller = &sellers[i % sellers.len()];
            let body = json!({"name": format!("Clusterbench item {node} {i}"),
                              "description": "A cluster benchmark item",
                              "price": 999, "quantity": 100_000_000});
            let item = fetch_json(
                cluster
                    .client
                    .post(format!("{}/items", cluster.base(node)))
                    .bearer_auth(&seller.token)
                    .json(&body),
            )
            .await;
            ids.push(item["id"].as_str().expect("item id").to_owned());
        }
        items.push(ids);
    }
    items
}

/// Waits until every node's search finds every item (their replicas are
/// there: a cart on any node can take any item).
async fn wait_replicated(cluster: &Cluster) {
    let want = (NODES * ITEMS_PER_NODE) as u64;
    let started = Instant::now();
    for n in 0..NODES {
        loop {
            let url = format!("{}/items?term=clusterbench&size=1", cluster.base(n));
            let page = fetch_json(cluster.client.get(url)).await;
            if page["total"].as_u64().unwrap_or(0) >= want {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "items never replicated"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a checkout loop counts.
#[derive(Default)]
struct Counters {
    confirmed: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

/// One buyer's closed loop until `deadline`: its node, its items.
async fn buyer_loop(
    client: Client,
    base: String,
    token: String,
    items: Arc<Vec<String>>,
    counters: Arc<Counters>,
    deadline: Instant,
    mut i: usize,
) -> Histogram<u64> {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    while Instant::now() < deadline {
        i = i.wrapping_mul(2_654_435_761).wrapping_add(1);
        let item = &items[i % items.len()];
        let cart = client
            .patch(format!("{base}/cart"))
            .bearer_auth(&token)
            .json(&json!({"itemId": item, "quantity": 1}))
            .send()
            .await;
        let cart: Value = match cart {
            Ok(r) if r.status() == StatusCode::OK => r.json().await.unwrap_or(Value::Null),
            _ => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let body = json!({"cartId": cart["id"], "amount": cart["total"],
                          "paymentInfo": {"paymentType": "CARD", "cardNo": "**** **** **** 4242"}});
        let sent = Instant::now();
        let reply = client
            .post(format!("{base}/checkout"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        let took = sent.elapsed().as_micros() as u64;
        let counter = match reply {
            Ok(r) if r.status() == StatusCode::CREATED => {
                latency.record(took.max(1)).unwrap();
                &counters.confirmed
            }
            Ok(r) if r.status().is_client_error() => &counters.refused,
            _ => &counters.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    latency
}

/// One checkout mode: `buyers` loops, each buying items of the node
/// `offset` after its own.
async fn checkout_mode(
    cluster: &Cluster,
    buyers: &[User],
    items: &[Vec<String>],
    offset: usize,
    secs: u64,
) {
    let items: Vec<Arc<Vec<String>>> = items.iter().cloned().map(Arc::new).collect();
    let counters = Arc::new(Counters::default());
    let lag_before = lag::scrape(cluster).await;
    let cpu_before = cluster.cpu();
    let driver_before = cpu_micros_of("self");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let tasks: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, buyer)| {
            let sold_on = (buyer.node + offset) % NODES;
            tokio::spawn(buyer_loop(
                cluster.client.clone(),
                cluster.base(buyer.node).to_owned(),
                buyer.token.clone(),
                items[sold_on].clone(),
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
    let (nodes, nats) = cluster.cpu();
    let (nodes, nats) = (nodes - cpu_before.0, nats - cpu_before.1);
    let cpu = nodes + nats;
    let driver = cpu_micros_of("self") - driver_before;
    let lag = lag::scrape(cluster).await.since(&lag_before);
    let confirmed = counters.confirmed.load(Ordering::Relaxed);
    println!(
        "{}\t{}\t{:.0}\t{:.2}\t{:.2}\t{}\t{}\t{:.0}\t{:.0}\t{:.2}\t{:.2}\t{}",
        if offset == 0 { "local " } else { "remote" },
        buyers.len(),
        confirmed as f64 / secs,
        latency.value_at_quantile(0.50) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        counters.refused.load(Ordering::Relaxed),
        counters.errors.load(Ordering::Relaxed),
        cpu as f64 / confirmed.max(1) as f64,
        nats as f64 / confirmed.max(1) as f64,
        cpu as f64 / 1e6 / secs,
        driver as f64 / 1e6 / secs,
        lag.describe(),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(nats) = Nats::start() else { return };
    let secs: u64 = env_or("SECS", 10);
    let rounds: usize = env_or("ROUNDS", 1);
    let buyers_wanted: usize = env_or("BUYERS", 64);
    println!("mode\tbuyers\tcheckouts/s\tp50 ms\tp99 ms\trefused\terrors\tCPU µs/checkout\tof which NATS\tserver cores\tdriver cores\trelay lag (commit → applied elsewhere)");
    // The twin first, before any node of the cluster runs.
    if env_or("ALONE", 1) == 1 {
        alone::checkout(buyers_wanted, secs).await;
    }
    let mut cluster = Cluster::start(nats);
    let setup = Instant::now();
    let sellers = users_per_node(&cluster, "seller", 2).await;
    let per_node = buyers_wanted.div_ceil(NODES);
    let buyers = users_per_node(&cluster, "buyer", per_node).await;
    // Round-robin over the nodes, so every node has as many buyers.
    let buyers: Vec<User> = (0..per_node)
        .flat_map(|i| buyers.iter().map(move |on| on[i].clone()))
        .take(buyers_wanted)
        .collect();
    let items = list_items(&cluster, &sellers).await;
    wait_replicated(&cluster).await;
    eprintln!("seeded in {:.1} s", setup.elapsed().as_secs_f64());

    for _ in 0..rounds {
        checkout_mode(&cluster, &buyers, &items, 0, secs).await;
        checkout_mode(&cluster, &buyers, &items, 1, secs).await;
    }

    let on_first: Vec<User> = buyers.iter().filter(|b| b.node == 0).cloned().collect();
    apply::one_node_loaded(&cluster, &on_first, &items[0], secs).await;
    probes::freshness(&cluster, &sellers[0][0], env_or("FRESH", 20)).await;
    // The first seller of node 3 listed every other item there.
    let own: Vec<String> = items[2].iter().step_by(2).cloned().collect();
    probes::survivors(&cluster, &sellers[2][0], &own).await;
    probes::dead_node(&mut cluster, &sellers[2][0], &own, env_or("TRIALS", 5)).await;
    probes::survivors(&cluster, &sellers[2][0], &own).await;
}
