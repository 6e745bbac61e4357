//! Orders: the read path (newest first, status filter, cursor pages, 404
//! for others), cancellation with release or refund (one notification),
//! the sellers' shipping and delivery, and an expired order's cart.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, problem, TestApp};
use crate::shop::{
    await_status, history, server, Buyer, Shop, DECLINED_CARD, GOOD_CARD, SILENT_CARD,
};

async fn place(app: &TestApp, buyer: &Buyer, shop: &Shop, card: &str) -> String {
    let buyer = Buyer::fill(app, buyer.token.clone(), shop, 1).await;
    let response = buyer.checkout(app, card).await;
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    body["orderId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_buyers_orders_page_newest_first_and_filter_by_status() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 100, 50).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let mut placed = Vec::new();
    for card in [
        GOOD_CARD,
        DECLINED_CARD,
        GOOD_CARD,
        GOOD_CARD,
        DECLINED_CARD,
    ] {
        placed.push(place(&app, &buyer, &shop, card).await);
    }
    placed.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/orders?size=2&cursor={c}"),
            None => "/orders?size=2".to_owned(),
        };
        let page: Value = app
            .get(&path, Some(&buyer.token))
            .await
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, placed, "every order once, newest first");

    let failed: Value = app
        .get("/orders?status=PAYMENT_FAILED", Some(&buyer.token))
        .await
        .json()
        .await
        .unwrap();
    let failed: Vec<&str> = failed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, [placed[0].as_str(), placed[3].as_str()]);

    let other = Buyer::with_cart(&app, &shop, 1).await;
    assert!(other.orders(&app).await.is_empty(), "only one's own orders");
    let response = app
        .get(&format!("/orders/{}", placed[0]), Some(&other.token))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "others' orders are hidden"
    );

    let response = app.get("/orders?status=LOST", Some(&buyer.token)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = app.get("/orders?size=0", Some(&buyer.token)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = app
        .get("/orders?cursor=not-ours!", Some(&buyer.token))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(response).await["code"], "INVALID_CURSOR");
    let response = app.get("/orders", None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cancelling_a_paid_order_refunds_it_and_puts_the_stock_back() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 3).await;
    let body: Value = buyer.checkout(&app, GOOD_CARD).await.json().await.unwrap();
    let id = body["orderId"].as_str().unwrap();
    assert_eq!(shop.stock(&app).await, (7, 7));

    let response = buyer.cancel(&app, id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(cancelled["paymentStatus"], "REFUNDED");
    assert_eq!(
        history(&cancelled),
        ["CREATED", "PAYMENT_PENDING", "CONFIRMED", "CANCELLED"]
    );
    assert_eq!(
        shop.stock(&app).await,
        (10, 10),
        "sold units are back on sale"
    );

    let again = buyer.cancel(&app, id).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(problem(again).await["code"], "INVALID_TRANSITION");
    assert_eq!(shop.stock(&app).await, (10, 10), "and only once");
}

#[tokio::test]
async fn cancelling_a_pending_order_releases_its_reservation() {
    let app = server(&[
        ("AGORA_CHECKOUT_WAIT_MS", "100"),
        ("AGORA_PAYMENT_TIMEOUT_MS", "300"),
    ])
    .await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 4).await;
    let id = buyer.checkout_pending(&app, SILENT_CARD).await;
    assert_eq!(shop.stock(&app).await, (6, 10));
    let stranger = app.user_token("buyer").await;
    let response = app
        .post(&format!("/orders/{id}/cancel"), Some(&stranger), &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = buyer.cancel(&app, &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(cancelled["paymentStatus"], "FAILED");
    assert_eq!(shop.stock(&app).await, (10, 10));
}

#[tokio::test]
async fn sellers_of_the_items_ship_and_deliver_and_shipped_orders_cannot_be_cancelled() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let body: Value = buyer.checkout(&app, GOOD_CARD).await.json().await.unwrap();
    let id = body["orderId"].as_str().unwrap();
    let ship = format!("/orders/{id}/ship");
    let deliver = format!("/orders/{id}/deliver");

    let response = app.post(&deliver, Some(&shop.seller), &json!({})).await;
    assert_eq!(
        problem(response).await["code"],
        "INVALID_TRANSITION",
        "not shipped yet"
    );
    let response = app.post(&ship, Some(&buyer.token), &json!({})).await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "buyers do not ship"
    );
    let other_seller = app.user_token("seller").await;
    let response = app.post(&ship, Some(&other_seller), &json!({})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "not their item");

    let response = app.post(&ship, Some(&shop.seller), &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "SHIPPED");
    let response = buyer.cancel(&app, id).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem(response).await["code"], "INVALID_TRANSITION");

    let response = app.post(&deliver, Some(&shop.seller), &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let delivered = buyer.order(&app, id).await;
    assert_eq!(
        history(&delivered),
        [
            "CREATED",
            "PAYMENT_PENDING",
            "CONFIRMED",
            "SHIPPED",
            "DELIVERED"
        ]
    );
    let response = app.post(&deliver, Some(&shop.seller), &json!({})).await;
    assert_eq!(
        problem(response).await["code"],
        "INVALID_TRANSITION",
        "final"
    );
    assert_eq!(shop.stock(&app).await, (9, 9));
}

/// The caller's notifications (first page of 100).
async fn notifications(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.get("/notifications?size=100", Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn cancelling_a_confirmed_order_writes_one_notification() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let cancelled = place(&app, &buyer, &shop, GOOD_CARD).await;
    let response = buyer.cancel(&app, &cancelled).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The notifier writes in the order of the event log: once a later
    // order's confirmation is in the inbox, everything the cancel emitted is.
    let later = place(&app, &buyer, &shop, GOOD_CARD).await;
    eventually("the later order's confirmation is in the inbox", || async {
        notifications(&app, &buyer.token)
            .await
            .iter()
            .any(|n| n["orderId"] == later.as_str() && n["status"] == "CONFIRMED")
    })
    .await;

    let inbox = notifications(&app, &buyer.token).await;
    let statuses: Vec<&str> = inbox
        .iter()
        .rev()
        .filter(|n| n["orderId"] == cancelled.as_str())
        .map(|n| n["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["CREATED", "PAYMENT_PENDING", "CONFIRMED", "CANCELLED"],
        "one notification per change: {inbox:#?}"
    );
}

#[tokio::test]
async fn an_order_that_expires_unlocks_its_cart_at_once() {
    // The gateway's timeout is far beyond the payment window: the checkout
    // is still waiting for the silent card long after the order expired.
    let app = server(&[
        ("AGORA_PAYMENT_TTL_SECS", "1"),
        ("AGORA_CHECKOUT_WAIT_MS", "100"),
        ("AGORA_PAYMENT_TIMEOUT_MS", "120000"),
    ])
    .await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let id = buyer.checkout_pending(&app, SILENT_CARD).await;
    let change = json!({"itemId": shop.item_id, "quantity": 2});
    let response = app.patch("/cart", Some(&buyer.token), &change).await;
    assert_eq!(response.status(), StatusCode::CONFLICT, "held while paying");
    assert_eq!(problem(response).await["code"], "CHECKOUT_IN_PROGRESS");

    await_status(&app, &buyer, &id, "EXPIRED").await;
    let response = app.patch("/cart", Some(&buyer.token), &change).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the cart is the buyer's again"
    );
    let again = Buyer::fill(&app, buyer.token.clone(), &shop, 2).await;
    let response = again.checkout(&app, GOOD_CARD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "CONFIRMED");
    assert_eq!(
        shop.stock(&app).await,
        (8, 8),
        "only the new order's units sold"
    );
}
