//! Inventory actor benchmarks: durable reservations on one hot SKU and
//! spread over 10,000 SKUs, activation cost, and in-memory messages per
//! second per actor.
//!
//! `cargo bench --bench actors`. After criterion's groups, a sustained
//! closed-loop run (64 clients, 3 s per mode) prints operations per second
//! and p50/p99 latency from an HDR histogram. Figures and the peers measured
//! beside them are in BENCHMARKS.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agora::actors::inventory::InventoryActors;
use agora::actors::runtime::RegionSettings;
use agora::domain::item::MAX_QUANTITY;
use agora::domain::Timestamp;
use agora::storage::{StorageError, Store, StoreOptions};
use criterion::{BenchmarkId, Criterion, Throughput};
use hdrhistogram::Histogram;
use tokio::runtime::Runtime;

const CLIENTS: u64 = 64;
const SPREAD: u64 = 10_000;

struct Bench {
    _dir: tempfile::TempDir,
    store: Store,
    inventory: InventoryActors,
}

fn setup(runtime: &Runtime) -> Bench {
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let inventory = InventoryActors::start(store.clone(), RegionSettings::default())
            .await
            .unwrap();
        let ids: Vec<String> = std::iter::once("hot".to_owned())
            .chain((0..SPREAD).map(|i| format!("sku-{i}")))
            .collect();
        store
            .write(move |tx| {
                for id in &ids {
                    InventoryActors::stage_opening_stock(tx, "item", id, MAX_QUANTITY)?;
                }
                Ok::<_, StorageError>(())
            })
            .await
            .unwrap();
        Bench {
            _dir: dir,
            store,
            inventory,
        }
    })
}

static CHECKOUT: AtomicU64 = AtomicU64::new(0);

fn deadline() -> Timestamp {
    Timestamp(Timestamp::now().0 + 300_000)
}

/// One sale: reserve then commit, two durable changes, keeping the SKU's
/// live reservations bounded as real checkouts do.
async fn sale(inventory: &InventoryActors, sku: &str) {
    let checkout = format!("c{}", CHECKOUT.fetch_add(1, Ordering::Relaxed));
    inventory
        .reserve(sku, &checkout, 1, deadline(), None)
        .await
        .unwrap();
    inventory.commit(sku, &checkout).await.unwrap();
}

fn sku_for(client: u64, i: u64, spread: bool) -> String {
    if spread {
        format!("sku-{}", (client * 7919 + i * 104_729) % SPREAD)
    } else {
        "hot".to_owned()
    }
}

fn criterion_groups(c: &mut Criterion, runtime: &Runtime, bench: &Bench) {
    let mut group = c.benchmark_group("inventory");
    group.measurement_time(Duration::from_secs(5));
    for spread in [false, true] {
        let name = if spread {
            "sales_spread_10k"
        } else {
            "sales_hot_sku"
        };
        // Elements = durable changes (a sale is a reserve and a commit).
        group.throughput(Throughput::Elements(CLIENTS * 2));
        group.bench_function(BenchmarkId::new(name, CLIENTS), |b| {
            b.to_async(runtime).iter_custom(|iterations| {
                let inventory = bench.inventory.clone();
                async move {
                    let started = Instant::now();
                    for i in 0..iterations {
                        let clients: Vec<_> = (0..CLIENTS)
                            .map(|client| {
                                let inventory = inventory.clone();
                                tokio::spawn(async move {
                                    sale(&inventory, &sku_for(client, i, spread)).await
                                })
                            })
                            .collect();
                        for client in clients {
                            client.await.unwrap();
                        }
                    }
                    started.elapsed()
                }
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_hot_in_memory", |b| {
        b.to_async(runtime)
            .iter(|| async { bench.inventory.get("hot").await.unwrap() })
    });
    group.bench_function("activation_of_an_unknown_sku", |b| {
        b.to_async(runtime).iter(|| async {
            let id = format!("fresh-{}", CHECKOUT.fetch_add(1, Ordering::Relaxed));
            bench.inventory.get(&id).await.unwrap_err()
        })
    });
    group.finish();
}

/// Runs `CLIENTS` tasks in a closed loop for `secs`, each repeating `op`
/// (which returns the latency of every change it made, in µs); returns
/// operations per second and p50/p99 in µs.
fn closed_loop<F, Fut>(runtime: &Runtime, bench: &Bench, secs: u64, op: F) -> (f64, u64, u64)
where
    F: Fn(InventoryActors, u64, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Vec<u64>> + Send,
{
    runtime.block_on(async {
        let stop = Instant::now() + Duration::from_secs(secs);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (inventory, op) = (bench.inventory.clone(), op.clone());
                tokio::spawn(async move {
                    let mut histogram = Histogram::<u64>::new(3).unwrap();
                    let mut i = 0;
                    while Instant::now() < stop {
                        for latency in op(inventory.clone(), client, i).await {
                            histogram.record(latency).unwrap();
                        }
                        i += 1;
                    }
                    histogram
                })
            })
            .collect();
        let started = Instant::now();
        let mut total = Histogram::<u64>::new(3).unwrap();
        for client in clients {
            total.add(client.await.unwrap()).unwrap();
        }
        let rate = total.len() as f64 / started.elapsed().as_secs_f64();
        (
            rate,
            total.value_at_quantile(0.5),
            total.value_at_quantile(0.99),
        )
    })
}

/// Sales (reserve, then commit) on one hot SKU or spread over 10k SKUs.
fn sustained(runtime: &Runtime, bench: &Bench, spread: bool, secs: u64) -> (f64, u64, u64) {
    closed_loop(
        runtime,
        bench,
        secs,
        move |inventory, client, i| async move {
            let sku = sku_for(client, i, spread);
            let checkout = format!("s{}", CHECKOUT.fetch_add(1, Ordering::Relaxed));
            let t = Instant::now();
            inventory
                .reserve(&sku, &checkout, 1, deadline(), None)
                .await
                .unwrap();
            let reserved = t.elapsed().as_micros() as u64;
            let t = Instant::now();
            inventory.commit(&sku, &checkout).await.unwrap();
            vec![reserved, t.elapsed().as_micros() as u64]
        },
    )
}

/// In-memory `Get`s on one SKU: the messages per second one actor handles.
fn sustained_reads(runtime: &Runtime, bench: &Bench, secs: u64) -> (f64, u64, u64) {
    closed_loop(runtime, bench, secs, |inventory, _, _| async move {
        let t = Instant::now();
        inventory.get("hot").await.unwrap();
        vec![t.elapsed().as_micros() as u64]
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bench = setup(&runtime);
    let mut criterion = Criterion::default().configure_from_args();
    criterion_groups(&mut criterion, &runtime, &bench);
    criterion.final_summary();
    let secs = std::env::var("SUSTAINED_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for spread in [false, true] {
        let (rate, p50, p99) = sustained(&runtime, &bench, spread, secs);
        let mode = if spread {
            "spread over 10k SKUs"
        } else {
            "one hot SKU"
        };
        println!("sustained, {CLIENTS} clients, {mode}: {rate:.0} durable changes/s, p50 {p50} µs, p99 {p99} µs");
    }
    let (rate, p50, p99) = sustained_reads(&runtime, &bench, secs);
    println!("sustained, {CLIENTS} clients, in-memory get on one SKU: {rate:.0} messages/s, p50 {p50} µs, p99 {p99} µs");
    runtime.block_on(async {
        bench.inventory.stop().await;
        bench.store.shutdown().await;
    });
}
