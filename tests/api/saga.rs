//! The saga under contention and crashes: a flash sale never oversells, and
//! after `kill -9` in the middle of a burst of checkouts every unit and every
//! charge is accounted for.

use std::time::Duration;

use agora::domain::order::{Order, OrderStatus, PaymentStatus};
use agora::payments::{ChargeOutcome, ChargeRecord};
use agora::storage::{Store, StoreOptions, TreeName};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;
use crate::shop::{await_status, server, Buyer, Shop, GOOD_CARD, SILENT_CARD};

/// `n` buyers, each with `quantity` of the item in their cart. Sign-ups run
/// two at a time (password hashing is bounded to the cores).
async fn buyers(app: &TestApp, shop: &Shop, n: usize, quantity: i64) -> Vec<Buyer> {
    let mut all = Vec::with_capacity(n);
    for pair in (0..n).collect::<Vec<_>>().chunks(2) {
        let made = join_all(pair.iter().map(|_| Buyer::with_cart(app, shop, quantity))).await;
        all.extend(made);
    }
    all
}

#[tokio::test]
async fn a_flash_sale_sells_exactly_the_stock() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 2_500, 20).await;
    let crowd = buyers(&app, &shop, 120, 1).await;

    let responses = join_all(crowd.iter().map(|b| b.checkout(&app, GOOD_CARD))).await;
    let mut confirmed = 0;
    let mut sold_out = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["status"], "CONFIRMED");
                confirmed += 1;
            }
            StatusCode::CONFLICT => {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["code"], "OUT_OF_STOCK", "{body}");
                sold_out += 1;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!((confirmed, sold_out), (20, 100));
    assert_eq!(
        shop.stock(&app).await,
        (0, 0),
        "nothing oversold, nothing held"
    );
    let orders = join_all(crowd.iter().map(|b| b.orders(&app))).await;
    assert_eq!(
        orders.iter().map(Vec::len).sum::<usize>(),
        20,
        "one order per sale"
    );
}

#[tokio::test]
async fn an_order_pending_at_kill_9_expires_after_restart() {
    let app = server(&[
        ("AGORA_CHECKOUT_WAIT_MS", "200"),
        ("AGORA_PAYMENT_TIMEOUT_MS", "300"),
        ("AGORA_PAYMENT_TTL_SECS", "3"),
    ])
    .await;
    let shop = Shop::open(&app, 500, 5).await;
    let buyer = Buyer::with_cart(&app, &shop, 2).await;
    let id = buyer.checkout_pending(&app, SILENT_CARD).await;
    let mut app = app;
    app.kill9();
    let app = app.restart();
    let expired = await_status(&app, &buyer, &id, "EXPIRED").await;
    assert_eq!(expired["paymentStatus"], "FAILED");
    assert_eq!(shop.stock(&app).await, (5, 5));
}

#[tokio::test]
async fn after_kill_9_mid_burst_every_unit_and_charge_is_accounted_for() {
    const STOCK: i64 = 30;
    let app = server(&[
        ("AGORA_PAYMENT_LATENCY_MS", "150"),
        ("AGORA_PAYMENT_TTL_SECS", "2"),
    ])
    .await;
    let shop = Shop::open(&app, 700, STOCK).await;
    let crowd = buyers(&app, &shop, 40, 1).await;

    // Fire the burst and kill the node while checkouts are mid-saga.
    let client = app.client.clone();
    let url = app.url("/checkout");
    let burst: Vec<_> = crowd
        .iter()
        .map(|b| {
            let request = client
                .post(&url)
                .bearer_auth(&b.token)
                .json(&b.body(GOOD_CARD));
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let mut app = app;
    app.kill9();
    for request in burst {
        let _ = request.await;
    }

    let app = app.restart();
    // Past the payment window: whatever was pending has expired.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let orders: Vec<Value> = join_all(crowd.iter().map(|b| b.orders(&app)))
        .await
        .into_iter()
        .flatten()
        .collect();
    let confirmed: i64 = orders
        .iter()
        .filter(|o| o["status"] == "CONFIRMED")
        .map(|o| o["lines"][0]["quantity"].as_i64().unwrap())
        .sum();
    let (available, on_hand) = shop.stock(&app).await;
    assert_eq!(available, on_hand, "no reservation outlives the window");
    assert_eq!(available + confirmed, STOCK, "orders: {orders:#?}");
    for order in &orders {
        assert!(
            !matches!(
                order["status"].as_str(),
                Some("CREATED" | "PAYMENT_PENDING")
            ),
            "left unfinished: {order}"
        );
    }

    // Every charge the gateway made belongs to a confirmed or refunded order.
    let mut app = app;
    assert!(app.terminate().success());
    let store = Store::open(&app.data_dir().join("node"), StoreOptions::default()).unwrap();
    let (charges, stored): (Vec<(String, ChargeRecord)>, Vec<Order>) = store
        .read(|trees| {
            let mut charges = Vec::new();
            for entry in trees.tree(TreeName::GatewayLedger).iter() {
                let (key, bytes) = entry?;
                let record: ChargeRecord = agora::storage::codec::decode(&bytes)?;
                charges.push((String::from_utf8_lossy(&key).into_owned(), record));
            }
            let mut orders = Vec::new();
            for entry in trees.tree(TreeName::Orders).iter() {
                let (_, bytes) = entry?;
                orders.push(agora::storage::codec::decode(&bytes)?);
            }
            Ok((charges, orders))
        })
        .await
        .unwrap();
    // The node's own database (under `node/`), not an empty one beside it.
    assert!(!stored.is_empty(), "no orders read");
    for (order_id, charge) in charges {
        if !matches!(charge.outcome, ChargeOutcome::Approved(_)) {
            continue;
        }
        let order = stored
            .iter()
            .find(|o| o.id == order_id)
            .unwrap_or_else(|| panic!("a charge without an order: {order_id}"));
        let settled = order.status == OrderStatus::Confirmed
            || (charge.refunded && order.payment_status == PaymentStatus::Refunded);
        assert!(
            settled,
            "charged but neither confirmed nor refunded: {order:?}"
        );
    }
    store.shutdown().await;
}
