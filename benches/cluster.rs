//! An entity call on this node beside the same call on another node: two
//! clustered nodes in this process (`Node::start`, meeting on a nats-server
//! of the bench's own), stock on SKUs owned by each, and node 1's
//! `actors.inventory` timed on its own SKUs (local: the SKU's actor) and on
//! node 2's (remote: NATS request/reply to the owner, which asks its actor).
//!
//! ```text
//! cargo bench --bench cluster              # every operation, local and remote
//! SECS=5 CALLS=5000 cargo bench --bench cluster
//! ```
//!
//! Per operation (`get`, and `reserve+release`: the pair a checkout makes
//! then undoes, two durable changes on the owner): one caller for `CALLS`
//! calls (p50/p99), then 64 callers for `SECS` seconds (calls/s, p50/p99).
//! CPU per call is this process (both nodes) plus nats-server, user +
//! system, over the run ÷ calls. Prints a clear message and exits 0 when no
//! nats-server is found (`NATS_SERVER`, else `PATH`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora::actors::inventory::InventoryActors;
use agora::config::{ClusterSettings, NodeSettings, Settings};
use agora::domain::item::MAX_QUANTITY;
use agora::domain::{new_id_in, Timestamp};
use agora::node::Node;
use agora::storage::StorageError;
use hdrhistogram::Histogram;

#[path = "support/nats.rs"]
mod nats;
#[path = "support/mod.rs"]
mod support;

use nats::{free_port, Nats};
use support::{cpu_micros_of, env_or};

/// SKUs with stock on each node (the 64 callers spread over them, as
/// checkouts over a catalogue do).
const SKUS: usize = 256;
const CALLERS: usize = 64;

/// One operation timed: a call's outcome is checked, its latency kept.
#[derive(Clone, Copy, PartialEq)]
enum Op {
    Get,
    ReserveRelease,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::ReserveRelease => "reserve+release",
        }
    }
}

static CHECKOUT: AtomicU64 = AtomicU64::new(0);

/// Runs `op` once on `sku` through `inventory`.
async fn call(inventory: &InventoryActors, op: Op, sku: &str) {
    match op {
        Op::Get => {
            inventory.get(sku).await.expect("get");
        }
        Op::ReserveRelease => {
            let checkout = format!("bench-{}", CHECKOUT.fetch_add(1, Ordering::Relaxed));
            let deadline = Timestamp(Timestamp::now().0 + 300_000);
            inventory
                .reserve(sku, &checkout, 1, deadline, None)
                .await
                .expect("reserve");
            inventory.release(sku, &checkout).await.expect("release");
        }
    }
}

/// Two nodes' settings on `nats`, each with its own data dir.
fn settings(nats: &str, dirs: &[tempfile::TempDir; 2]) -> [Settings; 2] {
    let nodes: Vec<NodeSettings> = ["n1", "n2"]
        .iter()
        .map(|id| NodeSettings {
            id: (*id).to_owned(),
            http: ([127, 0, 0, 1], free_port()).into(),
        })
        .collect();
    let one = |i: usize| Settings {
        node_id: nodes[i].id.clone(),
        http: nodes[i].http,
        data_dir: dirs[i].path().to_path_buf(),
        payment_latency_ms: 0,
        cluster: ClusterSettings {
            nats: vec![nats.to_owned()],
            nodes: nodes.clone(),
            ..ClusterSettings::default()
        },
        ..Settings::default()
    };
    [one(0), one(1)]
}

/// `SKUS` new SKUs owned by `node`, with stock on it.
async fn stock_on(node: &Node) -> Vec<String> {
    let placement = node.settings.placement();
    let skus: Vec<String> = (0..SKUS)
        .map(|_| new_id_in(placement.local_key().expect("the node owns shards")))
        .collect();
    assert!(skus.iter().all(|s| placement.is_local(s)));
    let staged = skus.clone();
    node.store
        .write(move |tx| {
            for sku in &staged {
                InventoryActors::stage_opening_stock(tx, "bench-item", sku, MAX_QUANTITY)?;
            }
            Ok::<_, StorageError>(())
        })
        .await
        .expect("stage stock");
    skus
}

/// What one run measured.
struct Run {
    calls: u64,
    secs: f64,
    latency: Histogram<u64>,
    /// This process and nats-server, µs.
    cpu: u64,
}

impl Run {
    fn print(&self, what: &str) {
        println!(
            "{what}\t{}\t{:.0}\t{}\t{}\t{:.1}",
            self.calls,
            self.calls as f64 / self.secs,
            self.latency.value_at_quantile(0.50),
            self.latency.value_at_quantile(0.99),
            self.cpu as f64 / self.calls.max(1) as f64,
        );
    }
}

fn cpu_now(nats: u32) -> u64 {
    cpu_micros_of("self") + cpu_micros_of(&nats.to_string())
}

/// One caller, `calls` calls in turn over `skus`.
async fn one_caller(
    inventory: &InventoryActors,
    op: Op,
    skus: &[String],
    calls: u64,
    nats: u32,
) -> Run {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let cpu = cpu_now(nats);
    let start = Instant::now();
    for i in 0..calls {
        let sent = Instant::now();
        call(inventory, op, &skus[i as usize % skus.len()]).await;
        latency
            .record(sent.elapsed().as_micros().max(1) as u64)
            .unwrap();
    }
    Run {
        calls,
        secs: start.elapsed().as_secs_f64(),
        latency,
        cpu: cpu_now(nats) - cpu,
    }
}

/// `CALLERS` closed loops for `secs`, each on its own stride of `skus`.
async fn many_callers(
    inventory: &InventoryActors,
    op: Op,
    skus: &[String],
    secs: u64,
    nats: u32,
) -> Run {
    let skus = Arc::new(skus.to_vec());
    let cpu = cpu_now(nats);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (inventory, skus) = (inventory.clone(), skus.clone());
            tokio::spawn(async move {
                let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut i = caller;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    call(&inventory, op, &skus[i % skus.len()]).await;
                    latency
                        .record(sent.elapsed().as_micros().max(1) as u64)
                        .unwrap();
                    i += CALLERS;
                }
                latency
            })
        })
        .collect();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for task in tasks {
        latency.add(task.await.unwrap()).unwrap();
    }
    Run {
        calls: latency.len(),
        secs: start.elapsed().as_secs_f64(),
        latency,
        cpu: cpu_now(nats) - cpu,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(nats) = Nats::start() else { return };
    let secs: u64 = env_or("SECS", 3);
    let calls: u64 = env_or("CALLS", 3000);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let [first, second] = settings(&nats.url, &dirs);
    let n1 = Node::start(first).await.expect("start n1");
    let n2 = Node::start(second).await.expect("start n2");
    let local = stock_on(&n1).await;
    let remote = stock_on(&n2).await;
    let inventory = n1.actors.inventory.clone();
    // Until node 2 answers on its subjects, a call finds no responders.
    let waited = Instant::now();
    while inventory.get(&remote[0]).await.is_err() {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "n2 never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Warm both paths (actors activated, connections and buffers grown).
    for skus in [&local, &remote] {
        one_caller(&inventory, Op::Get, skus, SKUS as u64 * 2, nats.pid()).await;
        one_caller(&inventory, Op::ReserveRelease, skus, 200, nats.pid()).await;
    }
    println!("call\tcalls\tcalls/s\tp50 µs\tp99 µs\tCPU µs/call");
    for op in [Op::Get, Op::ReserveRelease] {
        let ones = if op == Op::Get { calls } else { calls / 3 };
        for (place, skus) in [("local", &local), ("remote", &remote)] {
            let run = one_caller(&inventory, op, skus, ones, nats.pid()).await;
            run.print(&format!("{} {place}, 1 caller", op.name()));
        }
        for (place, skus) in [("local", &local), ("remote", &remote)] {
            let run = many_callers(&inventory, op, skus, secs, nats.pid()).await;
            run.print(&format!("{} {place}, {CALLERS} callers", op.name()));
        }
    }
    n1.stop().await;
    n2.stop().await;
}
