//! Codec and storage micro-benchmarks.
//!
//! `cargo bench --bench storage`. Figures and their reading are in
//! BENCHMARKS.md; compare ratios within one run, not absolute numbers across
//! runs (the machines are shared).

use std::time::{Duration, Instant};

use agora::domain::item::{validate_new_item, Item, ItemInput};
use agora::domain::Timestamp;
use agora::storage::{codec, StorageError, Store, StoreOptions, TreeName};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;

fn sample_item() -> Item {
    let body = json!({
        "name": "Wireless Mouse", "description": "Ergonomic Bluetooth Mouse with a long battery life and silent clicks",
        "price": 999, "quantity": 100, "sku": "MOUSE-001", "brand": "Logi", "category": "electronics",
        "tags": ["mouse", "bluetooth", "wireless"], "attributes": {"color": "black", "dpi": 1600},
        "variants": [
            {"sku": "MOUSE-001-BLK", "attributes": {"color": "black"}, "price": 999, "quantity": 60},
            {"sku": "MOUSE-001-WHT", "attributes": {"color": "white"}, "price": 1049, "quantity": 40}
        ]
    });
    let input: ItemInput = serde_json::from_value(body).unwrap();
    validate_new_item(input, "01M866PXHB9ZHF0KB13TW7F0RA", Timestamp::now())
        .unwrap()
        .item
}

fn codec_benches(c: &mut Criterion) {
    let item = sample_item();
    let bytes = codec::encode(&item).unwrap();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode_item", |b| {
        b.iter(|| codec::encode(std::hint::black_box(&item)).unwrap())
    });
    group.bench_function("decode_item", |b| {
        b.iter(|| codec::decode::<Item>(std::hint::black_box(&bytes)).unwrap())
    });
    group.finish();
}

async fn put(store: &Store, item: &Item, key: u64) {
    let item = item.clone();
    store
        .write(move |tx| {
            tx.put(TreeName::Items, key.to_be_bytes().to_vec(), &item)?;
            Ok::<_, StorageError>(())
        })
        .await
        .unwrap();
}

fn storage_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store =
        runtime.block_on(async { Store::open(dir.path(), StoreOptions::default()).unwrap() });
    let item = sample_item();
    runtime.block_on(put(&store, &item, 0));

    let mut group = c.benchmark_group("storage");
    group.measurement_time(Duration::from_secs(5));
    // The same record through the read cache (a hit after the first call):
    // no sled call, no thread hop.
    group.bench_function("get_item_cached", |b| {
        b.to_async(&runtime).iter(|| async {
            store
                .get::<Item>(TreeName::Items, 0u64.to_be_bytes())
                .await
                .unwrap()
                .unwrap()
        })
    });
    group.bench_function("get_item_via_blocking_pool", |b| {
        b.to_async(&runtime).iter(|| async {
            store
                .read(|trees| trees.get::<Item>(TreeName::Items, 0u64.to_be_bytes()))
                .await
                .unwrap()
                .unwrap()
        })
    });
    // Durable writes: `concurrency` writers each waiting for their own
    // acknowledgement. At 1 every write pays its own fsync; above that the
    // single writer groups them into one transaction and one flush.
    for concurrency in [1u64, 16, 64] {
        group.throughput(Throughput::Elements(concurrency));
        group.bench_with_input(
            BenchmarkId::new("put_durable", concurrency),
            &concurrency,
            |b, &n| {
                b.to_async(&runtime).iter_custom(|iterations| {
                    let (store, item) = (store.clone(), item.clone());
                    async move {
                        let started = Instant::now();
                        for i in 0..iterations {
                            let writes = (0..n).map(|j| {
                                let (store, item) = (store.clone(), item.clone());
                                tokio::spawn(async move { put(&store, &item, 1 + i * n + j).await })
                            });
                            for write in writes.collect::<Vec<_>>() {
                                write.await.unwrap();
                            }
                        }
                        started.elapsed()
                    }
                })
            },
        );
    }
    group.finish();
    runtime.block_on(store.shutdown());
}

/// Raw sled, the two ways one group of writes can be made atomic: the
/// multi-tree transaction the writer uses (18 trees, a group's 50 inserts
/// spread over six of them) and one `Batch` on a single tree holding every
/// kind under a prefix. Each iteration is one group plus its flush. Measured
/// to decide whether moving every record kind into one tree would pay
/// (BENCHMARKS.md, issue 4).
fn sled_group_benches(c: &mut Criterion) {
    use sled::Transactional;
    const PER_GROUP: u64 = 50;
    let value = vec![7u8; 160];
    let key = |group: u64, k: u64| -> Vec<u8> {
        let mut key = vec![(k % 6) as u8];
        if k % 6 == 0 {
            key.extend_from_slice(b"hot-sku");
        } else {
            key.extend_from_slice(&(group * PER_GROUP + k).to_be_bytes());
            key.extend_from_slice(b"-order-id");
        }
        key
    };
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(256 << 20)
        .open()
        .unwrap();
    let trees: Vec<sled::Tree> = (0..18)
        .map(|i| db.open_tree(format!("t{i}")).unwrap())
        .collect();
    let one = db.open_tree("all").unwrap();
    let mut group = c.benchmark_group("sled_group_commit");
    group.throughput(Throughput::Elements(PER_GROUP));
    let mut n = 0u64;
    group.bench_function("multi_tree_transaction", |b| {
        b.iter(|| {
            n += 1;
            trees
                .as_slice()
                .transaction(|views| {
                    for k in 0..PER_GROUP {
                        views[(k % 6) as usize].insert(key(n, k), value.clone())?;
                    }
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .unwrap();
            db.flush().unwrap();
        })
    });
    group.bench_function("single_tree_batch", |b| {
        b.iter(|| {
            n += 1;
            let mut batch = sled::Batch::default();
            for k in 0..PER_GROUP {
                batch.insert(key(n, k), value.clone());
            }
            one.apply_batch(batch).unwrap();
            db.flush().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, codec_benches, storage_benches, sled_group_benches);
criterion_main!(benches);
