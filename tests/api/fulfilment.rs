//! Per-seller fulfilment: each seller ships and delivers only their part of
//! a marketplace order and sees only that part (`/seller/orders`, and the
//! answers of ship and deliver); the buyer sees every part; orders stored
//! by the previous release take part too.

use agora::domain::order::Order;
use agora::storage::{codec, StorageError, Store, StoreOptions, TreeName};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, problem, TestApp};
use crate::shop::{history, server, Buyer, Shop, DECLINED_CARD, GOOD_CARD};

/// The signed-in user's id.
async fn user_id(app: &TestApp, token: &str) -> String {
    let me: Value = app
        .get("/users/me", Some(token))
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

/// A buyer with one unit of `a`'s item and two of `b`'s in their cart.
async fn buyer_of_both(app: &TestApp, a: &Shop, b: &Shop) -> Buyer {
    let buyer = Buyer::with_cart(app, a, 1).await;
    Buyer::fill(app, buyer.token.clone(), b, 2).await
}

/// Checks out with a shipping address; returns the order id.
async fn place(app: &TestApp, buyer: &Buyer, card: &str) -> String {
    let mut body = buyer.body(card);
    body["shippingAddress"] = json!({"line1": "1 MG Road", "city": "Bengaluru",
                                     "postalCode": "560001", "country": "IN"});
    let response = app.post("/checkout", Some(&buyer.token), &body).await;
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    body["orderId"].as_str().unwrap().to_owned()
}

async fn act(app: &TestApp, token: &str, id: &str, what: &str) -> reqwest::Response {
    app.post(&format!("/orders/{id}/{what}"), Some(token), &json!({}))
        .await
}

/// Asserts `view` is `seller`'s view: their lines only, their part only,
/// the address, and nothing of the payment, the buyer or other sellers.
fn assert_sellers_view(view: &Value, seller: &str, item: &str, others: &[&str]) {
    let lines = view["lines"].as_array().unwrap();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l["itemId"] == item), "{view}");
    let parts = view["fulfilment"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{view}");
    assert_eq!(parts[0]["sellerId"], seller);
    let paid = matches!(
        view["status"].as_str(),
        Some("CONFIRMED" | "SHIPPED" | "DELIVERED")
    );
    if paid {
        assert_eq!(view["shippingAddress"]["city"], "Bengaluru");
    } else {
        assert!(
            view["shippingAddress"].is_null(),
            "an unpaid order's address is not the seller's business: {view}"
        );
    }
    for hidden in [
        "paymentTxnId",
        "cardLast4",
        "paymentStatus",
        "amount",
        "userId",
        "history",
    ] {
        assert!(view.get(hidden).is_none(), "{hidden} shown: {view}");
    }
    let text = view.to_string();
    for other in others {
        assert!(!text.contains(other), "{other} shown: {view}");
    }
}

fn part_status(order: &Value, seller: &str) -> String {
    order["fulfilment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["sellerId"] == seller)
        .unwrap_or_else(|| panic!("no part of {seller}: {order}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn two_sellers_each_ship_and_deliver_only_their_own_part() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        Shop::open(&app, 999, 10).await,
        Shop::open(&app, 500, 10).await,
    );
    let (a_id, b_id) = (
        user_id(&app, &a.seller).await,
        user_id(&app, &b.seller).await,
    );
    let buyer = buyer_of_both(&app, &a, &b).await;
    let id = place(&app, &buyer, GOOD_CARD).await;
    let placed = buyer.order(&app, &id).await;
    assert_eq!(part_status(&placed, &a_id), "PENDING");
    assert_eq!(part_status(&placed, &b_id), "PENDING");
    let txn = placed["paymentTxnId"].as_str().unwrap().to_owned();

    let response = act(&app, &a.seller, &id, "ship").await;
    assert_eq!(response.status(), StatusCode::OK);
    let view: Value = response.json().await.unwrap();
    assert_sellers_view(&view, &a_id, &a.item_id, &[&b_id, &b.item_id, &txn]);
    assert_eq!(view["fulfilment"][0]["status"], "SHIPPED");
    assert_eq!(view["status"], "CONFIRMED", "b has not shipped");

    let order = buyer.order(&app, &id).await;
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(part_status(&order, &a_id), "SHIPPED");
    assert_eq!(part_status(&order, &b_id), "PENDING", "only a's part moved");

    let response = buyer.cancel(&app, &id).await;
    assert_eq!(
        response.status(),
        StatusCode::CONFLICT,
        "a part has shipped"
    );
    assert_eq!(problem(response).await["code"], "INVALID_TRANSITION");
    for (seller, what, why) in [
        (&a.seller, "ship", "shipping twice"),
        (&b.seller, "deliver", "delivering before shipping"),
    ] {
        let response = act(&app, seller, &id, what).await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "{why}");
        assert_eq!(problem(response).await["code"], "INVALID_TRANSITION");
    }

    let view: Value = act(&app, &b.seller, &id, "ship")
        .await
        .json()
        .await
        .unwrap();
    assert_sellers_view(&view, &b_id, &b.item_id, &[&a_id, &a.item_id, &txn]);
    assert_eq!(view["status"], "SHIPPED", "every part has shipped");
    let view: Value = act(&app, &a.seller, &id, "deliver")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "SHIPPED", "b's part is still on its way");
    assert_eq!(view["fulfilment"][0]["status"], "DELIVERED");
    let view: Value = act(&app, &b.seller, &id, "deliver")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "DELIVERED");

    let delivered = buyer.order(&app, &id).await;
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
    assert_eq!(part_status(&delivered, &a_id), "DELIVERED");
    assert_eq!(part_status(&delivered, &b_id), "DELIVERED");

    // The buyer hears of each change of the order's status (the inbox is
    // fed by the same `order.updated` events as the sockets); a part that
    // moves while the order's status stays is not news.
    let inbox = || async {
        let page: Value = app
            .get("/notifications?size=100", Some(&buyer.token))
            .await
            .json()
            .await
            .unwrap();
        let mut statuses: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["orderId"] == id.as_str())
            .map(|n| n["status"].as_str().unwrap().to_owned())
            .collect();
        statuses.reverse();
        statuses
    };
    eventually("the delivery is in the inbox", || async {
        inbox().await.last().is_some_and(|s| s == "DELIVERED")
    })
    .await;
    assert_eq!(inbox().await, history(&delivered));
}

#[tokio::test]
async fn an_order_that_is_not_confirmed_cannot_be_shipped() {
    let app = server(&[]).await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let id = place(&app, &buyer, DECLINED_CARD).await;
    let response = act(&app, &shop.seller, &id, "ship").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let refusal = problem(response).await;
    assert_eq!(refusal["code"], "INVALID_TRANSITION");
    assert_eq!(refusal["orderStatus"], "PAYMENT_FAILED");
}

/// Every order of one `/seller/orders` listing, page by page.
async fn seller_orders(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/seller/orders?size=1{query}&cursor={c}"),
            None => format!("/seller/orders?size=1{query}"),
        };
        let response = app.get(&path, Some(token)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let page: Value = response.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 1);
        seen.extend(items.iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn a_seller_lists_the_orders_holding_their_items_newest_first_each_as_their_view() {
    let app = TestApp::spawn().await;
    let (a, b) = (
        Shop::open(&app, 999, 10).await,
        Shop::open(&app, 500, 10).await,
    );
    let (a_id, b_id) = (
        user_id(&app, &a.seller).await,
        user_id(&app, &b.seller).await,
    );
    let buyer = buyer_of_both(&app, &a, &b).await;
    let first = place(&app, &buyer, GOOD_CARD).await;
    let only_b = Buyer::with_cart(&app, &b, 1).await;
    place(&app, &only_b, GOOD_CARD).await;
    let txn = buyer.order(&app, &first).await["paymentTxnId"]
        .as_str()
        .unwrap()
        .to_owned();
    let buyer = buyer_of_both(&app, &a, &b).await;
    let failed = place(&app, &buyer, DECLINED_CARD).await;

    let listed = seller_orders(&app, &a.seller, "").await;
    let ids: Vec<&str> = listed.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [failed.as_str(), first.as_str()],
        "a's orders, newest first"
    );
    for view in &listed {
        assert_sellers_view(view, &a_id, &a.item_id, &[&b_id, &b.item_id, &txn]);
    }
    assert_eq!(listed[0]["status"], "PAYMENT_FAILED");
    assert!(
        listed[0]["shippingAddress"].is_null(),
        "a declined buyer's address stays with the buyer"
    );
    assert_eq!(listed[1]["shippingAddress"]["city"], "Bengaluru");
    assert_eq!(seller_orders(&app, &b.seller, "").await.len(), 3);
    let confirmed = seller_orders(&app, &a.seller, "&status=CONFIRMED").await;
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0]["id"], first.as_str());
    assert_eq!(confirmed[0]["fulfilment"][0]["status"], "PENDING");

    let response = app.get("/seller/orders?status=LOST", Some(&a.seller)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = app.get("/seller/orders", Some(&buyer.token)).await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "buyers are not sellers"
    );
    let response = app.get("/seller/orders", None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// A cursor the server handed out, on `path` (`?size=1`), as `token`.
async fn first_cursor(app: &TestApp, path: &str, token: &str) -> String {
    let page: Value = app.get(path, Some(token)).await.json().await.unwrap();
    page["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_owned()
}

#[tokio::test]
async fn order_cursors_are_sealed_per_list_and_forged_ones_are_refused() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let older = place(&app, &buyer, GOOD_CARD).await;
    let buyer = Buyer::fill(&app, buyer.token.clone(), &shop, 1).await;
    place(&app, &buyer, GOOD_CARD).await;

    let buyers = first_cursor(&app, "/orders?size=1", &buyer.token).await;
    let stranger = app.user_token("buyer").await;
    let sellers = first_cursor(&app, "/seller/orders?size=1", &shop.seller).await;
    let page: Value = app
        .get(
            &format!("/orders?size=1&cursor={buyers}"),
            Some(&buyer.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"][0]["id"],
        older.as_str(),
        "a sealed cursor pages on"
    );

    // The position a cursor of the previous release carried in the clear:
    // reverse creation time ‖ order id, here before every order.
    let unsealed = URL_SAFE_NO_PAD.encode([&[0u8; 8][..], older.as_bytes()].concat());
    let mut edited = buyers.clone().into_bytes();
    edited[2] = if edited[2] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    for (path, token, why) in [
        (
            format!("/orders?cursor={unsealed}"),
            &buyer.token,
            "made by the client",
        ),
        (format!("/orders?cursor={edited}"), &buyer.token, "edited"),
        (
            format!("/orders?cursor={sellers}"),
            &buyer.token,
            "another list's",
        ),
        (
            format!("/seller/orders?cursor={buyers}"),
            &shop.seller,
            "another list's",
        ),
        (
            format!("/seller/orders?cursor={unsealed}"),
            &shop.seller,
            "made by the client",
        ),
        (
            format!("/orders?cursor={buyers}"),
            &stranger,
            "another buyer's",
        ),
    ] {
        let response = app.get(&path, Some(token)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{why}: {path}");
        assert_eq!(problem(response).await["code"], "INVALID_CURSOR");
    }
}

/// Rewrites every stored order as the previous release wrote it (format
/// version 1: no `fulfilment`, its last field) and drops the sellers' index,
/// which that release did not have.
async fn make_previous_release(store: &Store) {
    let orders = store
        .read(|trees| {
            let mut orders = Vec::new();
            for entry in trees.tree(TreeName::Orders).iter() {
                let (key, bytes) = entry?;
                let mut order: Order = codec::decode(&bytes)?;
                order.fulfilment.clear();
                let mut old = codec::encode(&order)?;
                assert_eq!(old.pop(), Some(0), "an empty list is one byte");
                old[0] = 1;
                orders.push((key.to_vec(), old));
            }
            let index: Vec<Vec<u8>> = trees
                .tree(TreeName::SellerOrders)
                .iter()
                .keys()
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(|k| k.to_vec())
                .collect();
            Ok((orders, index))
        })
        .await
        .unwrap();
    store
        .write(move |tx| {
            for (key, old) in &orders.0 {
                tx.put_raw(TreeName::Orders, key.clone(), old.clone());
            }
            for key in &orders.1 {
                tx.remove(TreeName::SellerOrders, key.clone());
            }
            Ok::<_, StorageError>(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn orders_stored_by_the_previous_release_are_listed_for_their_sellers_and_ship() {
    let mut app = server(&[]).await;
    let (a, b) = (
        Shop::open(&app, 999, 10).await,
        Shop::open(&app, 500, 10).await,
    );
    let (a_id, b_id) = (
        user_id(&app, &a.seller).await,
        user_id(&app, &b.seller).await,
    );
    let buyer = buyer_of_both(&app, &a, &b).await;
    let id = place(&app, &buyer, GOOD_CARD).await;
    let shipped = Buyer::with_cart(&app, &a, 1).await;
    let shipped_id = place(&app, &shipped, GOOD_CARD).await;
    assert_eq!(
        act(&app, &a.seller, &shipped_id, "ship").await.status(),
        StatusCode::OK
    );

    assert!(app.terminate().success());
    let store = Store::open(&app.data_dir().join("node"), StoreOptions::default()).unwrap();
    make_previous_release(&store).await;
    store.shutdown().await;
    drop(store);
    let app = app.restart();

    let listed = seller_orders(&app, &a.seller, "").await;
    let ids: Vec<&str> = listed.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [shipped_id.as_str(), id.as_str()],
        "indexed at start-up"
    );
    assert_eq!(
        listed[0]["fulfilment"][0]["status"], "SHIPPED",
        "from its status"
    );
    assert_eq!(listed[1]["fulfilment"][0]["status"], "PENDING");
    assert_eq!(seller_orders(&app, &b.seller, "").await.len(), 1);

    let response = act(&app, &a.seller, &id, "ship").await;
    assert_eq!(response.status(), StatusCode::OK);
    let order = buyer.order(&app, &id).await;
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(part_status(&order, &a_id), "SHIPPED");
    assert_eq!(part_status(&order, &b_id), "PENDING");
    assert_eq!(
        part_status(&shipped.order(&app, &shipped_id).await, &a_id),
        "SHIPPED"
    );
}
