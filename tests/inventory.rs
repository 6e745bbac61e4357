//! Inventory actors against real sled files: no overselling under
//! contention, idempotent steps, reservation expiry (also across a restart),
//! durability, and memory following the working set.

use std::time::Duration;

use agora::actors::inventory::{InventoryActors, InventoryError};
use agora::actors::runtime::RegionSettings;
use agora::domain::event::EventBody;
use agora::domain::stock::StockError;
use agora::domain::Timestamp;
use agora::storage::event_log::EventConsumer;
use agora::storage::{StorageError, Store};
use tempfile::TempDir;

mod common;
use common::{eventually, last_event, reopen};

struct Node {
    dir: TempDir,
    store: Store,
    inventory: InventoryActors,
}

async fn node_at(dir: TempDir, idle: Duration) -> Node {
    let store = reopen(dir.path()).await;
    let settings = RegionSettings {
        idle,
        ..Default::default()
    };
    let inventory = InventoryActors::start(store.clone(), settings)
        .await
        .unwrap();
    Node {
        dir,
        store,
        inventory,
    }
}

async fn node() -> Node {
    node_at(TempDir::new().unwrap(), Duration::from_secs(60)).await
}

async fn stock(node: &Node, variant: &str, quantity: i64) {
    let variant = variant.to_owned();
    node.store
        .write(move |tx| {
            InventoryActors::stage_opening_stock(tx, "item-1", &variant, quantity)?;
            Ok::<_, StorageError>(())
        })
        .await
        .unwrap();
}

async fn restart(node: Node, idle: Duration) -> Node {
    node.inventory.stop().await;
    node.store.shutdown().await;
    let dir = node.dir;
    drop(node.store);
    drop(node.inventory);
    node_at(dir, idle).await
}

fn soon(millis: i64) -> Timestamp {
    Timestamp(Timestamp::now().0 + millis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_buyers_for_a_hundred_units_get_exactly_a_hundred() {
    let node = node().await;
    stock(&node, "hot", 100).await;
    let buyers: Vec<_> = (0..1_000)
        .map(|i| {
            let inventory = node.inventory.clone();
            tokio::spawn(async move {
                inventory
                    .reserve("hot", &format!("checkout-{i}"), 1, soon(60_000), None)
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for buyer in buyers {
        match buyer.await.unwrap() {
            Ok(_) => won += 1,
            Err(InventoryError::Refused(StockError::Insufficient { available: 0 })) => {}
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }
    assert_eq!(won, 100);
    let level = node.inventory.get("hot").await.unwrap();
    assert_eq!((level.available, level.reserved, level.sold), (0, 100, 0));
    let durable = node.inventory.levels(vec!["hot".into()]).await.unwrap()[0];
    assert_eq!(durable, level, "what was acknowledged is what is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_is_idempotent_per_checkout() {
    let node = node().await;
    stock(&node, "sku", 10).await;
    let inventory = &node.inventory;
    inventory
        .reserve("sku", "c1", 3, soon(60_000), None)
        .await
        .unwrap();
    let again = inventory
        .reserve("sku", "c1", 3, soon(60_000), None)
        .await
        .unwrap();
    assert_eq!(
        (again.available, again.reserved),
        (7, 3),
        "a repeated reserve holds nothing more"
    );
    assert!(matches!(
        inventory.reserve("sku", "c1", 5, soon(60_000), None).await,
        Err(InventoryError::Refused(StockError::ReservationMismatch {
            quantity: 3
        }))
    ));
    let sold = inventory.commit("sku", "c1").await.unwrap();
    assert_eq!((sold.available, sold.reserved, sold.sold), (7, 0, 3));
    assert_eq!(
        inventory.commit("sku", "c1").await.unwrap(),
        sold,
        "a repeated commit is a no-op"
    );
    assert_eq!(
        inventory.release("sku", "c1").await.unwrap(),
        sold,
        "releasing a sale changes nothing"
    );
    assert!(matches!(
        inventory.reserve("sku", "c1", 3, soon(60_000), None).await,
        Err(InventoryError::Refused(StockError::AlreadyFinished))
    ));

    inventory
        .reserve("sku", "c2", 2, soon(60_000), None)
        .await
        .unwrap();
    inventory.release("sku", "c2").await.unwrap();
    let released = inventory.release("sku", "c2").await.unwrap();
    assert_eq!((released.available, released.reserved), (7, 0));
    assert!(matches!(
        inventory.commit("sku", "c2").await,
        Err(InventoryError::Refused(StockError::AlreadyFinished))
    ));
    assert!(matches!(
        inventory.commit("sku", "nobody").await,
        Err(InventoryError::Refused(StockError::NoReservation))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restocking_never_goes_below_zero() {
    let node = node().await;
    stock(&node, "sku", 5).await;
    node.inventory
        .reserve("sku", "c1", 2, soon(60_000), None)
        .await
        .unwrap();
    assert!(matches!(
        node.inventory.adjust("sku", -4).await,
        Err(InventoryError::Refused(StockError::Insufficient {
            available: 3
        }))
    ));
    let level = node.inventory.adjust("sku", -3).await.unwrap();
    assert_eq!(
        (level.available, level.reserved),
        (0, 2),
        "reserved units are not the seller's to remove"
    );
    assert!(matches!(
        node.inventory.adjust("nope", 1).await,
        Err(InventoryError::UnknownVariant)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_reservation_is_released_by_the_actor_and_announced() {
    let node = node().await;
    stock(&node, "sku", 4).await;
    let mut consumer = EventConsumer::open(node.store.clone(), "test")
        .await
        .unwrap();
    node.inventory
        .reserve("sku", "c1", 3, soon(150), None)
        .await
        .unwrap();
    node.inventory
        .reserve("sku", "c2", 1, soon(60_000), None)
        .await
        .unwrap();
    // The durable record (what item pages read) is what must change.
    eventually("the first reservation expires", || async {
        node.inventory.levels(vec!["sku".into()]).await.unwrap()[0].reserved == 1
    })
    .await;
    let level = node.inventory.levels(vec!["sku".into()]).await.unwrap()[0];
    assert_eq!((level.available, level.reserved), (3, 1));
    assert!(matches!(
        node.inventory.commit("sku", "c1").await,
        Err(InventoryError::Refused(StockError::AlreadyFinished))
    ));
    match last_event(&mut consumer).await {
        Some(EventBody::StockChanged {
            available: 3,
            reserved: 1,
            ..
        }) => {}
        other => panic!("expected stock.changed to 3 available, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_passed_while_the_node_was_down_is_enforced_at_start() {
    let node = node().await;
    stock(&node, "sku", 10).await;
    node.inventory
        .reserve("sku", "c1", 4, soon(200), None)
        .await
        .unwrap();
    node.inventory
        .reserve("sku", "c2", 1, soon(60_000), None)
        .await
        .unwrap();
    let node = restart(node, Duration::from_secs(60)).await;
    let held = node.inventory.levels(vec!["sku".into()]).await.unwrap()[0];
    assert_eq!(held.reserved, 5, "both reservations survived the restart");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Nobody asks for the SKU: start-up recovery re-arms its deadlines.
    assert_eq!(node.inventory.recover().await.unwrap(), 1);
    eventually("the lapsed reservation is released", || async {
        node.inventory.levels(vec!["sku".into()]).await.unwrap()[0].reserved == 1
    })
    .await;
    let level = node.inventory.levels(vec!["sku".into()]).await.unwrap()[0];
    assert_eq!((level.available, level.reserved), (9, 1));
    // And the release is announced, like any other stock change.
    let mut consumer = EventConsumer::open(node.store.clone(), "after-restart")
        .await
        .unwrap();
    match last_event(&mut consumer).await {
        Some(EventBody::StockChanged {
            available: 9,
            reserved: 1,
            ..
        }) => {}
        other => panic!("expected stock.changed to 9 available, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_a_restart() {
    let node = node().await;
    stock(&node, "sku", 10).await;
    let writes: Vec<_> = (0..50)
        .map(|i| {
            let inventory = node.inventory.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    inventory
                        .reserve("sku", &format!("c{i}"), 1, soon(60_000), None)
                        .await
                        .map(drop)
                } else {
                    inventory.adjust("sku", 2).await.map(drop)
                }
            })
        })
        .collect();
    let mut acknowledged = 0;
    for write in writes {
        acknowledged += i64::from(write.await.unwrap().is_ok());
    }
    assert_eq!(acknowledged, 50);
    let before = node.inventory.get("sku").await.unwrap();
    let node = restart(node, Duration::from_secs(60)).await;
    assert_eq!(node.inventory.get("sku").await.unwrap(), before);
    assert_eq!((before.available, before.reserved), (10 + 50 - 25, 25));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_skus_touched_once_leave_none_alive() {
    let node = node_at(TempDir::new().unwrap(), Duration::from_secs(1)).await;
    let ids: Vec<u32> = (0..100_000).collect();
    for chunk in ids.chunks(2_000) {
        let reads: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let inventory = node.inventory.clone();
                tokio::spawn(async move { inventory.get(&format!("sku-{i}")).await })
            })
            .collect();
        for read in reads {
            assert!(matches!(
                read.await.unwrap(),
                Err(InventoryError::UnknownVariant)
            ));
        }
    }
    eventually("every idle SKU actor passivated", || async {
        node.inventory.live() == 0
    })
    .await;
}
