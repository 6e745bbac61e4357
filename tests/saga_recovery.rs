//! Model-based test of saga compensation: for every point at which a node
//! can die during a two-line checkout (after each durable step of the saga,
//! with the gateway approving, declining, or never answering), a fresh node
//! on the same sled files recovers, and then:
//!
//! - no order is left `CREATED` and no saga log is left;
//! - stock is conserved and nothing stays reserved once the window passed;
//! - units are sold exactly when the order is `CONFIRMED`;
//! - a charge the gateway approved belongs to a `CONFIRMED` order or was
//!   refunded.
//!
//! The steps before the crash are made with the same components and riders
//! the coordinator uses; the recovery is the real one (`CheckoutCoordinators::recover`).

use std::path::Path;

use agora::actors::cart::Owner;
use agora::actors::checkout::saga::{Saga, Step};
use agora::actors::inventory::Command;
use agora::actors::order::Change;
use agora::config::Settings;
use agora::domain::cart::CartLine;
use agora::domain::fulfilment::parts_for;
use agora::domain::item::ItemInput;
use agora::domain::order::{Order, OrderLine, OrderStatus, PaymentStatus, Transition};
use agora::domain::user::Role;
use agora::domain::Timestamp;
use agora::node::Node;
use agora::payments::{ChargeOutcome, ChargeRecord, ChargeRequest};
use agora::services::account::Authenticated;
use agora::storage::TreeName;
use futures::StreamExt;

mod common;
use common::{eventually, start_node, test_settings};

const STOCK: i64 = 10;
const WINDOW_MS: i64 = 400;

/// A node on `dir`'s files, built by the one builder. The gateway answers
/// at once; an attempt times out after 200 ms, so a charge the gateway
/// never saw is known unmade ~1 s after the crash (four attempts and their
/// backoff: `Payments::decision_window`), and recovery waits no longer.
/// (The checkout's window is set on the saga by hand below: no coordinator
/// here starts a checkout of its own.)
async fn node(dir: &Path) -> Node {
    let settings = Settings {
        payment_timeout_ms: 200,
        ..test_settings(dir)
    };
    start_node(settings).await
}

/// What the gateway does with the charge.
#[derive(Debug, Clone, Copy)]
enum Gateway {
    Approves,
    Declines,
    NeverAnswers,
}

/// Whose steps the log was left by.
#[derive(Debug, Clone, Copy)]
enum Flow {
    /// This release: the order stored once, waiting for payment; the
    /// confirmation does not move the log.
    Current,
    /// The release before it (a log it left must still recover): the order
    /// stored `CREATED`, then moved to `PAYMENT_PENDING`; the confirmation
    /// logged `Confirmed`.
    Previous,
}

/// Runs the saga's durable steps in order, stopping after `steps` of them.
async fn run_until(dir: &Path, steps: usize, gateway: Gateway, flow: Flow) -> (Saga, Vec<String>) {
    let node = node(dir).await;
    let catalog = node.services.catalog.clone();
    let seller = Authenticated {
        user_id: "seller".into(),
        role: Role::Seller,
        session_key: [1; 32],
    };
    let mut variants = Vec::new();
    for name in ["Mouse", "Pad"] {
        let input = ItemInput {
            name: Some(name.into()),
            description: Some("d".into()),
            price: Some(500),
            quantity: Some(STOCK),
            ..Default::default()
        };
        variants.push(catalog.create(&seller, input).await.unwrap().item.id);
    }
    variants.sort();
    for v in &variants {
        let line = CartLine {
            item_id: v.clone(),
            variant_id: v.clone(),
            quantity: 2,
            unit_price: 500,
            currency: "INR".into(),
        };
        node.actors
            .carts
            .set_line("cart", Owner::User("buyer".into()), line)
            .await
            .unwrap();
    }
    let now = Timestamp::now();
    let mut saga = Saga {
        checkout_id: "ck".into(),
        order_id: "order".into(),
        user_id: "buyer".into(),
        cart_id: "cart".into(),
        lines: variants
            .iter()
            .map(|v| OrderLine {
                item_id: v.clone(),
                variant_id: v.clone(),
                seller_id: "seller".into(),
                name: "x".into(),
                quantity: 2,
                unit_price: 500,
            })
            .collect(),
        amount: 2000,
        currency: "INR".into(),
        card_last4: Some("1234".into()),
        deadline: Timestamp(now.0 + WINDOW_MS),
        step: Step::Reserving,
        started_at: now,
        committed: Vec::new(),
        returned: Vec::new(),
    };
    node.actors
        .carts
        .begin_checkout("cart", "ck")
        .await
        .unwrap();
    let mut done = 0;
    macro_rules! step {
        ($body:expr) => {
            if done == steps {
                node.stop().await;
                return (saga, variants);
            }
            $body;
            done += 1;
        };
    }
    for v in &variants {
        let rider = saga.rider_at(Step::Reserving).unwrap();
        step!(node
            .actors
            .inventory
            .reserve(v, "ck", 2, saga.deadline, Some(rider))
            .await
            .unwrap());
    }
    let mut order = Order {
        id: "order".into(),
        user_id: "buyer".into(),
        checkout_id: "ck".into(),
        lines: saga.lines.clone(),
        amount: 2000,
        currency: "INR".into(),
        status: OrderStatus::Created,
        payment_status: PaymentStatus::Pending,
        payment_txn_id: None,
        card_last4: Some("1234".into()),
        failure_reason: None,
        stock_to_return: false,
        payment_check_due: false,
        shipping_address: None,
        expires_at: saga.deadline,
        history: vec![Transition {
            status: OrderStatus::Created,
            at: now,
        }],
        created_at: now,
        updated_at: now,
        fulfilment: parts_for(&saga.lines, now),
    };
    match flow {
        Flow::Current => {
            // Stored once, waiting for payment, with the log at Charging.
            order.status = OrderStatus::PaymentPending;
            order.history.push(Transition {
                status: OrderStatus::PaymentPending,
                at: now,
            });
            let rider = saga.rider_at(Step::Charging).unwrap();
            step!(node.actors.orders.create(order, Some(rider)).await.unwrap());
        }
        Flow::Previous => {
            let rider = saga.rider_at(Step::OrderCreated).unwrap();
            step!(node.actors.orders.create(order, Some(rider)).await.unwrap());
            saga.step = Step::OrderCreated;
            let rider = saga.rider_at(Step::Charging).unwrap();
            step!(node
                .actors
                .orders
                .update(
                    "order",
                    Change::to(OrderStatus::PaymentPending),
                    Some(rider)
                )
                .await
                .unwrap());
        }
    }
    saga.step = Step::Charging;
    let card = match gateway {
        Gateway::Approves => "4111 1111 1111 1111",
        Gateway::Declines => "4000 0000 0000 0002",
        Gateway::NeverAnswers => {
            // Nothing more can happen before the crash.
            node.stop().await;
            return (saga, variants);
        }
    };
    step!(
        node.payments
            .charge(ChargeRequest {
                order_id: "order".into(),
                amount: 2000,
                currency: "INR".into(),
                payment_type: "CARD".into(),
                card_no: card.into(),
            })
            .await
    );
    if let Gateway::Approves = gateway {
        for v in &variants {
            let mut next = saga.clone();
            next.committed.push(v.clone());
            let rider = next.rider_at(Step::Charging).unwrap();
            let command = Command::Commit {
                checkout_id: "ck".into(),
            };
            step!(node
                .actors
                .inventory
                .change_with(v, command, Some(rider))
                .await
                .unwrap());
            saga = next;
        }
        // The current release confirms without moving the log.
        let rider = match flow {
            Flow::Current => None,
            Flow::Previous => Some(saga.rider_at(Step::Confirmed).unwrap()),
        };
        let change = Change {
            status: Some(OrderStatus::Confirmed),
            payment_status: Some(PaymentStatus::Succeeded),
            txn_id: Some("txn".into()),
            reason: None,
        };
        step!(node
            .actors
            .orders
            .update("order", change, rider)
            .await
            .unwrap());
        if let Flow::Previous = flow {
            saga.step = Step::Confirmed;
        }
    }
    assert_eq!(done, steps.min(done), "ran out of steps to take");
    node.stop().await;
    (saga, variants)
}

async fn check_recovery(steps: usize, gateway: Gateway, flow: Flow) {
    let dir = tempfile::tempdir().unwrap();
    let (_, variants) = run_until(dir.path(), steps, gateway, flow).await;

    // A fresh node on the same files: recovery (the node runs it as it
    // starts; again here, to see it succeed), then the window passes.
    let node = node(dir.path()).await;
    let store = node.store.clone();
    node.actors.checkouts.recover().await.unwrap();
    node.actors.orders.recover().await.unwrap();
    node.actors.inventory.recover().await.unwrap();
    let case = format!("{flow:?} log, crash after {steps} steps, gateway {gateway:?}");
    eventually(&case, || async {
        let order = store.get::<Order>(TreeName::Orders, "order").await.unwrap();
        let levels = node
            .actors
            .inventory
            .levels(variants.clone())
            .await
            .unwrap();
        let settled = order.as_ref().is_none_or(|o| {
            !matches!(o.status, OrderStatus::Created | OrderStatus::PaymentPending)
                && !o.payment_check_due
        });
        settled && levels.iter().all(|l| l.reserved == 0)
    })
    .await;

    let order = store.get::<Order>(TreeName::Orders, "order").await.unwrap();
    let levels = node
        .actors
        .inventory
        .levels(variants.clone())
        .await
        .unwrap();
    let confirmed = order
        .as_ref()
        .is_some_and(|o| o.status == OrderStatus::Confirmed);
    for level in &levels {
        assert_eq!(level.available + level.sold, STOCK, "{case}: conserved");
        assert_eq!(
            level.sold,
            if confirmed { 2 } else { 0 },
            "{case}: sold iff confirmed"
        );
    }
    let sagas = store
        .read(|t| Ok(t.tree(TreeName::Sagas).len()))
        .await
        .unwrap();
    assert_eq!(sagas, 0, "{case}: the log is finished");
    let charge = store
        .read(|t| t.get::<ChargeRecord>(TreeName::GatewayLedger, b"order"))
        .await
        .unwrap();
    if let Some(ChargeRecord {
        outcome: ChargeOutcome::Approved(_),
        refunded,
        ..
    }) = charge
    {
        let order = order.as_ref().expect("a charge has an order");
        assert!(
            confirmed || (refunded && order.payment_status == PaymentStatus::Refunded),
            "{case}: charged but neither confirmed nor refunded: {order:?}"
        );
    }
    let cart = node.actors.carts.get("cart").await.unwrap();
    let lines = cart.map_or(0, |c| c.lines.len());
    assert_eq!(lines, if confirmed { 0 } else { 2 }, "{case}: the cart");
    drop(store);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_recovers_to_a_consistent_state() {
    // This release. Approves: 2 reserves, create (waiting for payment),
    // charge, 2 commits, confirm = 7 steps (0..=7); declines: 4; never
    // answers: 3.
    let mut cases = Vec::new();
    cases.extend((0..=7).map(|s| (s, Gateway::Approves, Flow::Current)));
    cases.extend((0..=4).map(|s| (s, Gateway::Declines, Flow::Current)));
    cases.extend((0..=3).map(|s| (s, Gateway::NeverAnswers, Flow::Current)));
    // Logs left by the release before: create and pending are two steps,
    // and the confirmation logs `Confirmed`. Steps 0..=2 are the same as
    // this release's.
    cases.extend((3..=8).map(|s| (s, Gateway::Approves, Flow::Previous)));
    cases.extend((3..=5).map(|s| (s, Gateway::Declines, Flow::Previous)));
    cases.extend((3..=4).map(|s| (s, Gateway::NeverAnswers, Flow::Previous)));
    // Four at a time, a new case starting as soon as one ends (each spends
    // most of its time waiting for a deadline or the gateway's window).
    futures::stream::iter(cases)
        .for_each_concurrent(4, |(s, g, f)| check_recovery(s, g, f))
        .await;
}
