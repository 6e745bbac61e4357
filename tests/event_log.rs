//! The event log and its consumers, against real sled files: a consumer
//! resumes from its durable offset after a restart and sees every event once,
//! in order; concurrent writers never leave a gap in the sequence; a
//! consumer reads across the archive into the live log.

use agora::actors::inventory::InventoryActors;
use agora::actors::runtime::RegionSettings;
use agora::domain::event::{Event, EventBody};
use agora::domain::item::{ItemInput, VariantInput};
use agora::domain::user::Role;
use agora::services::account::Authenticated;
use agora::services::catalog::CatalogService;
use agora::storage::archiver::{archive_pass, ArchivePolicy};
use agora::storage::event_json::event_json;
use agora::storage::event_log::EventConsumer;
use agora::storage::{StorageError, Store, StoreOptions, TreeName};

mod common;
use common::reopen;

fn seller() -> Authenticated {
    Authenticated {
        user_id: "seller-1".into(),
        role: Role::Seller,
        session_key: [7; 32],
    }
}

fn item(name: &str) -> ItemInput {
    ItemInput {
        name: Some(name.into()),
        description: Some("d".into()),
        price: Some(100),
        quantity: Some(5),
        ..Default::default()
    }
}

async fn catalog(store: &Store) -> CatalogService {
    let inventory = InventoryActors::start(store.clone(), RegionSettings::default())
        .await
        .unwrap();
    CatalogService::new(store.clone(), inventory)
}

async fn list(store: &Store, names: &[&str]) -> Vec<String> {
    let catalog = catalog(store).await;
    let mut ids = Vec::new();
    for name in names {
        ids.push(catalog.create(&seller(), item(name)).await.unwrap().item.id);
    }
    ids
}

/// Every event as a short label: the item name for `item.created`, the new
/// availability for `stock.changed` (each new item emits both, in that order).
fn names(batch: &[Event]) -> Vec<String> {
    batch
        .iter()
        .map(|e| match &e.body {
            EventBody::ItemCreated(item) => item.name.clone(),
            EventBody::StockChanged { available, .. } => format!("stock={available}"),
            other => other.kind().to_owned(),
        })
        .collect()
}

/// Only the item names, in order.
fn created(batch: &[Event]) -> Vec<String> {
    names(batch)
        .into_iter()
        .filter(|n| !n.starts_with("stock="))
        .collect()
}

#[tokio::test]
async fn a_consumer_resumes_from_its_offset_after_a_restart_and_sees_each_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    list(&store, &["a", "b", "c"]).await;

    let mut consumer = EventConsumer::open(store.clone(), "indexer").await.unwrap();
    let first = consumer.next_batch(4).await.unwrap();
    assert_eq!(names(&first), ["a", "stock=5", "b", "stock=5"]);
    assert_eq!(
        first.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    consumer.commit(4).await.unwrap();
    // "c" is handed out but the consumer dies before committing it.
    assert_eq!(created(&consumer.next_batch(10).await.unwrap()), ["c"]);
    drop(consumer);
    store.shutdown().await;
    drop(store);

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    list(&store, &["d", "e"]).await;
    let mut consumer = EventConsumer::open(store.clone(), "indexer").await.unwrap();
    assert_eq!(consumer.position(), 4);
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let batch = consumer.next_batch(2).await.unwrap();
        consumer.commit(batch.last().unwrap().seq).await.unwrap();
        seen.extend(batch);
    }
    assert_eq!(created(&seen), ["c", "d", "e"]);
    assert_eq!(
        seen.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (5..=10).collect::<Vec<_>>()
    );

    // Another consumer has its own offset and starts from the beginning.
    let mut other = EventConsumer::open(store.clone(), "recommender")
        .await
        .unwrap();
    assert_eq!(
        created(&other.next_batch(100).await.unwrap()),
        ["a", "b", "c", "d", "e"]
    );
}

#[tokio::test]
async fn a_waiting_consumer_wakes_when_an_event_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut consumer = EventConsumer::open(store.clone(), "hub").await.unwrap();
    let waiting = tokio::spawn(async move { consumer.next_batch(10).await.unwrap() });
    tokio::task::yield_now().await;
    list(&store, &["late"]).await;
    let batch = waiting.await.unwrap();
    assert_eq!(created(&batch), ["late"]);
}

#[tokio::test]
async fn concurrent_writers_produce_a_gap_free_ordered_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let names: Vec<String> = (0..25).map(|i| format!("t{t}-{i}")).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                list(&store, &refs).await;
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut consumer = EventConsumer::open(store.clone(), "audit").await.unwrap();
    let events = consumer.next_batch(1_000).await.unwrap();
    assert_eq!(events.len(), 400, "item.created and stock.changed per item");
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == i as u64 + 1),
        "sequence has a gap"
    );
    // Each writer's own items appear in the order it wrote them.
    for t in 0..8 {
        let prefix = format!("t{t}-");
        let mine: Vec<String> = created(&events)
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        let expected: Vec<String> = (0..25).map(|i| format!("t{t}-{i}")).collect();
        assert_eq!(mine, expected);
    }
}

#[tokio::test]
async fn a_refused_write_leaves_no_trace_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let catalog = catalog(&store).await;
    let mut first = item("first");
    first.sku = Some("SKU-1".into());
    catalog.create(&seller(), first).await.unwrap();
    let mut clash = item("clash");
    clash.sku = Some("sku-1".into());
    assert!(catalog.create(&seller(), clash).await.is_err());
    list(&store, &["after"]).await;
    let mut consumer = EventConsumer::open(store.clone(), "audit").await.unwrap();
    let events = consumer.next_batch(10).await.unwrap();
    assert_eq!(names(&events), ["first", "stock=5", "after", "stock=5"]);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "no gap left by the refusal"
    );
}

/// Every event from `consumer` up to `end`.
async fn read_to(consumer: &mut EventConsumer, end: u64) -> Vec<Event> {
    let mut events = Vec::new();
    while consumer.position() < end {
        events.extend(consumer.next_batch(7).await.unwrap());
    }
    events
}

#[tokio::test]
async fn a_consumer_from_zero_reads_the_archive_then_the_live_log_and_sees_every_event_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let catalog = catalog(&store).await;
    // Everything an item event carries, so its archived line must bring
    // back every field: variants, attributes, SKUs, tags.
    let fancy = ItemInput {
        sku: Some("LAMP-1".into()),
        brand: Some("Lumo".into()),
        category: Some("Lamps".into()),
        tags: Some(vec!["warm".into(), "desk".into()]),
        attributes: Some(serde_json::json!({"watts": 40, "colour": {"name": "brass"}})),
        variants: Some(vec![
            VariantInput {
                sku: Some("LAMP-1-S".into()),
                attributes: Some(serde_json::json!({"size": "S"})),
                price: Some(900),
                quantity: Some(3),
            },
            VariantInput {
                sku: Some("LAMP-1-L".into()),
                attributes: Some(serde_json::json!({"size": "L"})),
                price: Some(1200),
                quantity: Some(2),
            },
        ]),
        ..item("Arc Lamp")
    };
    catalog.create(&seller(), fancy).await.unwrap();
    list(&store, &["a", "b", "c", "d"]).await;
    let newest = *store.event_watch().borrow();
    let mut first_reader = EventConsumer::open(store.clone(), "first").await.unwrap();
    let original = read_to(&mut first_reader, newest).await;
    first_reader.commit(newest).await.unwrap();

    // A consumer that committed only the first 4 holds the archive there.
    let slow = EventConsumer::open(store.clone(), "slow").await.unwrap();
    slow.commit(0).await.unwrap();
    let policy = ArchivePolicy {
        keep: 2,
        min_events: 1,
    };
    let held = archive_pass(&store, &[("test", 4)], policy).await.unwrap();
    assert_eq!(held.archived_through, 0, "{held:?}");
    assert_eq!(held.held_by.as_deref(), Some("slow"));
    let mut slow = slow;
    read_to(&mut slow, 4).await;
    slow.commit(4).await.unwrap();
    let report = archive_pass(&store, &[("test", newest)], policy)
        .await
        .unwrap();
    assert_eq!(report.archived_through, 4, "{report:?}");
    // A reader at the archive's end when the next segment is written.
    let mut racer = EventConsumer::at(store.clone(), "racer", 0);
    assert_eq!(racer.next_batch(100).await.unwrap(), original[..4]);
    // One whose batch ended exactly there: its cursor knows only that segment.
    let mut exact = EventConsumer::at(store.clone(), "exact", 0);
    assert_eq!(exact.next_batch(4).await.unwrap(), original[..4]);
    read_to(&mut slow, newest).await;
    slow.commit(newest).await.unwrap();
    let report = archive_pass(&store, &[("test", newest)], policy)
        .await
        .unwrap();
    assert_eq!(report.archived_through, newest - 2, "{report:?}");
    assert_eq!(report.live, 2);

    assert_eq!(read_to(&mut racer, newest).await, original[4..]);
    assert_eq!(read_to(&mut exact, newest).await, original[4..]);
    drop(exact);
    let mut late = EventConsumer::at(store.clone(), "late", 0);
    assert_eq!(read_to(&mut late, newest).await, original);
    let mut middle = EventConsumer::at(store.clone(), "middle", 3);
    assert_eq!(read_to(&mut middle, newest).await, original[3..]);

    // After a restart the sequence goes on after the archived events.
    store.shutdown().await;
    drop((late, middle, racer, slow, first_reader, catalog, store));
    let store = reopen(dir.path()).await;
    assert_eq!(*store.event_watch().borrow(), newest);
    list(&store, &["e"]).await;
    let mut consumer = EventConsumer::at(store.clone(), "after", newest);
    let next = consumer.next_batch(1).await.unwrap();
    assert_eq!(next[0].seq, newest + 1);
}

#[tokio::test]
async fn archived_lines_a_consumer_cannot_read_are_skipped_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    list(&store, &["a", "b", "c"]).await;
    let newest = *store.event_watch().borrow();
    let policy = ArchivePolicy {
        keep: 2,
        min_events: 1,
    };
    let report = archive_pass(&store, &[], policy).await.unwrap();
    assert_eq!(report.archived_through, newest - 2);
    // Every archived line replaced by one of a kind this node never wrote.
    let segments = store.archive().segments().unwrap();
    std::fs::remove_file(&segments[0].path).unwrap();
    store
        .archive()
        .write_segment(1, newest - 2, |out| {
            for seq in 1..=newest - 2 {
                writeln!(out, "{{\"seq\":{seq},\"type\":\"from.the.future\"}}")?;
            }
            Ok(())
        })
        .unwrap();

    let mut consumer = EventConsumer::at(store.clone(), "late", 0);
    // A guard against a consumer that would retry the same lines forever.
    let batch = tokio::time::timeout(std::time::Duration::from_secs(30), consumer.next_batch(10))
        .await
        .expect("the consumer moves past unreadable lines")
        .unwrap();
    let seqs: Vec<u64> = batch.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [newest - 1, newest]);
}

#[tokio::test]
async fn a_batch_with_a_gap_stops_before_it_and_the_rest_is_read_from_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    list(&store, &["a", "b", "c"]).await;
    let newest = *store.event_watch().borrow();
    let mut first = EventConsumer::at(store.clone(), "first", 0);
    let original = read_to(&mut first, newest).await;
    // What a read sees when a trim runs under it (sled's range iterators
    // are not snapshots): event 1 read before the trim, then 4 after it.
    store
        .with_trees(|trees| {
            store.archive().write_segment(1, 3, |out| {
                for event in &original[..3] {
                    let line = event_json(trees, event).map_err(std::io::Error::other)?;
                    writeln!(out, "{line}")?;
                }
                Ok(())
            })
        })
        .unwrap();
    store
        .write(|tx| {
            for seq in 2..=3u64 {
                tx.remove(TreeName::Events, seq.to_be_bytes().to_vec());
            }
            Ok::<_, StorageError>(())
        })
        .await
        .unwrap();

    let mut reader = EventConsumer::at(store.clone(), "reader", 0);
    assert_eq!(read_to(&mut reader, newest).await, original);
}
