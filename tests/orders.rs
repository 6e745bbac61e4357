//! Order actors against real sled files: the state machine with its events,
//! payment-deadline expiry that gives stock back (also across a restart),
//! and the per-user index, newest first.

use std::time::Duration;

use agora::actors::cart::CartActors;
use agora::actors::inventory::InventoryActors;
use std::sync::Arc;

use agora::actors::order::{Change, OrderActors, OrderError};
use agora::actors::runtime::RegionSettings;
use agora::domain::event::EventBody;
use agora::domain::fulfilment::parts_for;
use agora::domain::order::{Order, OrderLine, OrderStatus, PaymentStatus, Transition};
use agora::domain::{new_id, Timestamp};
use agora::payments::{Payments, SimulatedGateway};
use agora::storage::event_log::EventConsumer;
use agora::storage::{StorageError, Store, TreeName};
use tempfile::TempDir;

mod common;
use common::{eventually, reopen};

struct Node {
    dir: TempDir,
    store: Store,
    inventory: InventoryActors,
    orders: OrderActors,
}

async fn node_at(dir: TempDir) -> Node {
    let store = reopen(dir.path()).await;
    let inventory = InventoryActors::start(store.clone(), RegionSettings::default())
        .await
        .unwrap();
    let gateway = Arc::new(SimulatedGateway::new(store.clone(), Duration::ZERO));
    let payments = Payments::new(
        gateway,
        Duration::from_secs(1),
        1,
        Duration::from_millis(10),
    );
    let carts = CartActors::start(
        store.clone(),
        Duration::from_secs(3600),
        RegionSettings::default(),
    )
    .await
    .unwrap();
    let orders = OrderActors::start(
        store.clone(),
        inventory.clone(),
        carts,
        payments,
        RegionSettings::default(),
    )
    .await
    .unwrap();
    Node {
        dir,
        store,
        inventory,
        orders,
    }
}

async fn restart(node: Node) -> Node {
    node.orders.stop().await;
    node.inventory.stop().await;
    node.store.shutdown().await;
    let dir = node.dir;
    drop((node.orders, node.inventory, node.store));
    node_at(dir).await
}

fn order(user: &str, checkout: &str, expires_in_ms: i64) -> Order {
    let now = Timestamp::now();
    let lines = vec![OrderLine {
        item_id: "item".into(),
        variant_id: "sku".into(),
        seller_id: "seller".into(),
        name: "Mouse".into(),
        quantity: 2,
        unit_price: 999,
    }];
    Order {
        id: new_id(),
        user_id: user.into(),
        checkout_id: checkout.into(),
        fulfilment: parts_for(&lines, now),
        lines,
        amount: 1998,
        currency: "INR".into(),
        status: OrderStatus::Created,
        payment_status: PaymentStatus::Pending,
        payment_txn_id: None,
        card_last4: Some("1234".into()),
        failure_reason: None,
        stock_to_return: false,
        payment_check_due: false,
        shipping_address: None,
        expires_at: Timestamp(now.0 + expires_in_ms),
        history: vec![Transition {
            status: OrderStatus::Created,
            at: now,
        }],
        created_at: now,
        updated_at: now,
    }
}

async fn stock(node: &Node, quantity: i64) {
    node.store
        .write(move |tx| {
            InventoryActors::stage_opening_stock(tx, "item", "sku", quantity)?;
            Ok::<_, StorageError>(())
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_move_only_along_the_state_machine_and_announce_each_move() {
    let node = node_at(TempDir::new().unwrap()).await;
    let mut events = EventConsumer::open(node.store.clone(), "test")
        .await
        .unwrap();
    let created = node
        .orders
        .create(order("u1", "k1", 60_000), None)
        .await
        .unwrap();
    assert_eq!(
        node.orders.create(created.clone(), None).await.unwrap(),
        created,
        "idempotent for its checkout"
    );
    let mut other = created.clone();
    other.checkout_id = "k2".into();
    assert!(matches!(
        node.orders.create(other, None).await,
        Err(OrderError::Conflict)
    ));

    let id = created.id.clone();
    node.orders
        .update(&id, Change::to(OrderStatus::PaymentPending), None)
        .await
        .unwrap();
    let paid = Change {
        status: Some(OrderStatus::Confirmed),
        payment_status: Some(PaymentStatus::Succeeded),
        txn_id: Some("txn_1".into()),
        reason: None,
    };
    let confirmed = node.orders.update(&id, paid, None).await.unwrap();
    assert_eq!(
        (
            confirmed.payment_status,
            confirmed.payment_txn_id.as_deref()
        ),
        (PaymentStatus::Succeeded, Some("txn_1"))
    );
    assert!(matches!(
        node.orders
            .update(&id, Change::to(OrderStatus::Expired), None)
            .await,
        Err(OrderError::InvalidTransition(_))
    ));
    node.orders
        .update(&id, Change::to(OrderStatus::Shipped), None)
        .await
        .unwrap();
    let history: Vec<_> = node
        .orders
        .get(&id)
        .await
        .unwrap()
        .unwrap()
        .history
        .iter()
        .map(|t| t.status)
        .collect();
    assert_eq!(
        history,
        [
            OrderStatus::Created,
            OrderStatus::PaymentPending,
            OrderStatus::Confirmed,
            OrderStatus::Shipped
        ]
    );

    let batch = events.next_batch(100).await.unwrap();
    let statuses: Vec<_> = batch
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::OrderUpdated {
                order_id, status, ..
            } if *order_id == id => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses, history,
        "one order.updated per stored change, none for refusals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_expires_at_its_deadline_and_gives_its_stock_back() {
    let node = node_at(TempDir::new().unwrap()).await;
    stock(&node, 5).await;
    let draft = order("u1", "k1", 400);
    node.inventory
        .reserve("sku", "k1", 2, draft.expires_at.plus_secs(60), None)
        .await
        .unwrap();
    let created = node.orders.create(draft, None).await.unwrap();
    node.orders
        .update(&created.id, Change::to(OrderStatus::PaymentPending), None)
        .await
        .unwrap();
    eventually("the order expires", || async {
        node.orders.get(&created.id).await.unwrap().unwrap().status == OrderStatus::Expired
    })
    .await;
    let expired = node.orders.get(&created.id).await.unwrap().unwrap();
    assert_eq!(expired.payment_status, PaymentStatus::Failed);
    eventually("the stock is back", || async {
        node.inventory.levels(vec!["sku".into()]).await.unwrap()[0].available == 5
    })
    .await;
    // Listed until the gateway has had its whole decision window to show a
    // late charge (none here), then settled.
    eventually("the order is settled", || async {
        let pending = node
            .store
            .read(|t| Ok(t.tree(TreeName::PendingOrders).len()))
            .await
            .unwrap();
        let order = node.orders.get(&created.id).await.unwrap().unwrap();
        pending == 0 && !order.payment_check_due
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_passed_while_the_node_was_down_fires_after_restart() {
    let node = node_at(TempDir::new().unwrap()).await;
    let created = node
        .orders
        .create(order("u1", "k1", 300), None)
        .await
        .unwrap();
    node.orders
        .update(&created.id, Change::to(OrderStatus::PaymentPending), None)
        .await
        .unwrap();
    let node = restart(node).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Nobody asks for the order: start-up recovery re-arms its deadline.
    assert_eq!(node.orders.recover().await.unwrap(), 1);
    eventually("the order expires after the restart", || async {
        let stored = node
            .store
            .get::<Order>(TreeName::Orders, created.id.as_bytes())
            .await
            .unwrap();
        stored.is_some_and(|o| o.status == OrderStatus::Expired)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_orders_are_indexed_newest_first() {
    let node = node_at(TempDir::new().unwrap()).await;
    let mut ids = Vec::new();
    for checkout in ["k1", "k2", "k3"] {
        ids.push(
            node.orders
                .create(order("u1", checkout, 60_000), None)
                .await
                .unwrap()
                .id,
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    node.orders
        .create(order("u2", "k4", 60_000), None)
        .await
        .unwrap();
    let listed: Vec<String> = node
        .store
        .read(|trees| {
            let mut out = Vec::new();
            for entry in trees.tree(TreeName::UserOrders).scan_prefix(b"u1\0") {
                let (key, _) = entry?;
                out.push(String::from_utf8_lossy(&key[b"u1\0".len() + 8..]).into_owned());
            }
            Ok(out)
        })
        .await
        .unwrap();
    ids.reverse();
    assert_eq!(listed, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_final_orders_move_to_the_archive_and_stay_readable() {
    use agora::services::order::OrderService;
    let node = node_at(TempDir::new().unwrap()).await;
    let service = OrderService::new(node.store.clone(), node.orders.clone());
    let done = node
        .orders
        .create(order("u1", "k1", 60_000), None)
        .await
        .unwrap();
    node.orders
        .update(&done.id, Change::to(OrderStatus::Cancelled), None)
        .await
        .unwrap();
    let live = node
        .orders
        .create(order("u1", "k2", 60_000), None)
        .await
        .unwrap();
    node.orders
        .update(&live.id, Change::to(OrderStatus::PaymentPending), None)
        .await
        .unwrap();

    let cutoff = Timestamp(Timestamp::now().0 + 1_000);
    assert_eq!(
        service.archive_before(cutoff).await.unwrap(),
        1,
        "only the final one"
    );
    let in_tree = |tree| {
        let store = node.store.clone();
        let id = done.id.clone();
        async move {
            store
                .read(move |t| Ok(t.tree(tree).contains_key(id.as_bytes())?))
                .await
                .unwrap()
        }
    };
    assert!(!in_tree(TreeName::Orders).await && in_tree(TreeName::OrderArchive).await);

    // Same reads as before: by id, and in the user's list, newest first.
    let read = service.get("u1", &done.id).await.unwrap();
    assert_eq!(read.status, OrderStatus::Cancelled);
    let page = service.list("u1", None, None, 10).await.unwrap();
    let ids: Vec<_> = page.orders.iter().map(|o| o.id.clone()).collect();
    assert_eq!(ids, [live.id.clone(), done.id.clone()]);
    assert!(
        service.get("u2", &done.id).await.is_err(),
        "still only the buyer's"
    );
}
