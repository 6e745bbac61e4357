//! Checkout: the design's body end to end, declines, price and stock
//! refusals, locks, 202 for a silent gateway, idempotency keys, taxes and
//! shipping, and the risk rules.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{problem, Options, TestApp};
use crate::shop::{
    await_status, history, server, Buyer, Shop, DECLINED_CARD, FULL_CARD, GOOD_CARD, SILENT_CARD,
    TRANSIENT_CARD,
};

#[tokio::test]
async fn the_design_body_confirms_the_order_deducts_stock_and_empties_the_cart() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 999, 100).await;
    let buyer = Buyer::with_cart(&app, &shop, 2).await;
    assert_eq!(buyer.total, 1998, "the design's example");

    let response = buyer.checkout(&app, FULL_CARD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "CONFIRMED");
    assert_eq!(body["paymentStatus"], "SUCCEEDED");
    assert_eq!(
        (body["amount"].clone(), body["currency"].clone()),
        (json!(1998), json!("INR"))
    );

    assert_eq!(
        shop.stock(&app).await,
        (98, 98),
        "two units sold, none held"
    );
    let cart = buyer.cart(&app).await;
    assert_eq!(
        cart["lines"],
        json!([]),
        "a confirmed order empties the cart"
    );

    let order = buyer.order(&app, body["orderId"].as_str().unwrap()).await;
    assert_eq!(history(&order), ["CREATED", "PAYMENT_PENDING", "CONFIRMED"]);
    assert!(order["paymentTxnId"].as_str().unwrap().starts_with("txn_"));
    assert_eq!(order["cardLast4"], "4242");
    assert_eq!(order["lines"][0]["quantity"], 2);
    assert_eq!(order["lines"][0]["unitPrice"], 999);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("agora_checkout_outcomes_total{outcome=\"CONFIRMED\"} 1"),
        "checkout outcomes are counted"
    );

    // Only the last four digits are ever stored or logged.
    let digits: String = FULL_CARD.chars().filter(char::is_ascii_digit).collect();
    assert!(!app.logs().contains(&digits) && !app.logs().contains(FULL_CARD));
    assert!(
        !crate::helpers::dir_contains(app.data_dir(), digits.as_bytes()),
        "the full card number reached the data directory"
    );
}

#[tokio::test]
async fn a_declined_card_fails_the_order_releases_stock_and_keeps_the_cart() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 3).await;
    let response = buyer.checkout(&app, DECLINED_CARD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let first: Value = response.json().await.unwrap();
    assert_eq!(first["status"], "PAYMENT_FAILED");
    assert_eq!(first["paymentStatus"], "FAILED");
    assert!(first["reason"].as_str().unwrap().contains("declined"));
    assert_eq!(
        shop.stock(&app).await,
        (10, 10),
        "the reservation is released"
    );

    let cart = buyer.cart(&app).await;
    assert_eq!(
        cart["lines"][0]["quantity"], 3,
        "the cart is kept for a retry"
    );
    // ...and unlocked: the buyer can change it and pay with another card,
    // with a shipping address this time.
    let mut body = buyer.body(GOOD_CARD);
    body["shippingAddress"] = json!({"line1": "12 MG Road", "city": "Bengaluru",
                                     "postalCode": "560001", "country": "IN"});
    let retry = app.post("/checkout", Some(&buyer.token), &body).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    let retried: Value = retry.json().await.unwrap();
    assert_eq!(retried["status"], "CONFIRMED");
    assert_ne!(retried["orderId"], first["orderId"]);
    assert_eq!(shop.stock(&app).await, (7, 7));
    let order = buyer
        .order(&app, retried["orderId"].as_str().unwrap())
        .await;
    assert_eq!(order["shippingAddress"]["city"], "Bengaluru");
    body["shippingAddress"] = json!({"city": ""});
    let bad = app.post("/checkout", Some(&buyer.token), &body).await;
    let refused = problem(bad).await;
    assert!(
        refused["errors"]["shippingAddress.line1"].is_string(),
        "{refused}"
    );
}

#[tokio::test]
async fn a_gateway_that_keeps_failing_is_retried_then_declined() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let response = buyer.checkout(&app, TRANSIENT_CARD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "PAYMENT_FAILED");
    assert!(
        body["reason"].as_str().unwrap().contains("kept failing"),
        "{body}"
    );
    let order = buyer.order(&app, body["orderId"].as_str().unwrap()).await;
    assert_eq!(order["paymentStatus"], "FAILED");
    assert_eq!(shop.stock(&app).await, (10, 10));
}

#[tokio::test]
async fn a_wrong_amount_is_refused_with_the_expected_one() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 2).await;
    let mut body = buyer.body(GOOD_CARD);
    body["amount"] = json!(1000);
    let response = app.post("/checkout", Some(&buyer.token), &body).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let refused = problem(response).await;
    assert_eq!(refused["code"], "PRICE_CHANGED");
    assert_eq!(refused["expectedAmount"], 1998);

    // A currency other than the cart's is named as a bad field.
    let mut other = buyer.body(GOOD_CARD);
    other["currency"] = json!("USD");
    let response = app.post("/checkout", Some(&buyer.token), &other).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem(response).await["errors"]["currency"].is_string());

    // The seller raises the price: the old total is refused too.
    let patched = app
        .patch(
            &format!("/items/{}", shop.item_id),
            Some(&shop.seller),
            &json!({"price": 1099}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let response = buyer.checkout(&app, GOOD_CARD).await;
    let refused = problem(response).await;
    assert_eq!(refused["code"], "PRICE_CHANGED");
    assert_eq!(refused["expectedAmount"], 2198);
    assert_eq!(
        buyer.cart(&app).await["total"],
        2198,
        "the cart shows the same total"
    );
    assert!(buyer.orders(&app).await.is_empty(), "no order was created");
    assert_eq!(shop.stock(&app).await, (10, 10));
}

#[tokio::test]
async fn out_of_stock_creates_no_order_and_holds_nothing() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 500, 3).await;
    let first = Buyer::with_cart(&app, &shop, 2).await;
    let second = Buyer::with_cart(&app, &shop, 2).await;
    assert_eq!(
        first.checkout(&app, GOOD_CARD).await.status(),
        StatusCode::CREATED
    );

    let response = second.checkout(&app, GOOD_CARD).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let refused = problem(response).await;
    assert_eq!(refused["code"], "OUT_OF_STOCK");
    assert_eq!(
        refused["lines"],
        json!([{"itemId": shop.item_id, "variantId": shop.item_id, "requested": 2, "available": 1}])
    );
    assert!(second.orders(&app).await.is_empty());
    assert_eq!(shop.stock(&app).await, (1, 1), "nothing stays reserved");
    assert_eq!(
        second.cart(&app).await["lines"][0]["quantity"],
        2,
        "cart kept"
    );
}

#[tokio::test]
async fn carts_that_are_empty_missing_or_not_yours_are_refused() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 500, 3).await;
    let owner = Buyer::with_cart(&app, &shop, 1).await;
    let stranger = app.user_token("buyer").await;
    let mut body = owner.body(GOOD_CARD);

    let response = app.post("/checkout", Some(&stranger), &body).await;
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "someone else's cart"
    );
    body["cartId"] = json!("01NOSUCHCART");
    let response = app.post("/checkout", Some(&owner.token), &body).await;
    assert_eq!(problem(response).await["code"], "NOT_FOUND");
    let response = app.post("/checkout", None, &owner.body(GOOD_CARD)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let cleared = app.delete("/cart", Some(&owner.token)).await;
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    let response = owner.checkout(&app, GOOD_CARD).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(response).await["code"], "EMPTY_CART");
}

#[tokio::test]
async fn bad_bodies_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let buyer = app.user_token("buyer").await;
    let response = app
        .post(
            "/checkout",
            Some(&buyer),
            &json!({"amount": -1, "currency": "rupees",
                    "paymentInfo": {"paymentType": "CHEQUE", "cardNo": "12"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = problem(response).await;
    for field in [
        "cartId",
        "amount",
        "currency",
        "paymentInfo.paymentType",
        "paymentInfo.cardNo",
    ] {
        assert!(refused["errors"][field].is_string(), "{field}: {refused}");
    }
    let response = app
        .post("/checkout", Some(&buyer), &json!({"cartId": 5}))
        .await;
    assert_eq!(problem(response).await["code"], "MALFORMED_REQUEST");
}

#[tokio::test]
async fn a_cart_being_checked_out_cannot_be_checked_out_again() {
    let app = server(&[("AGORA_PAYMENT_LATENCY_MS", "1000")]).await;
    let shop = Shop::open(&app, 500, 5).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let (first, second) = tokio::join!(buyer.checkout(&app, GOOD_CARD), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        buyer.checkout(&app, GOOD_CARD).await
    });
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(problem(second).await["code"], "CHECKOUT_IN_PROGRESS");
    let during = app
        .patch(
            "/cart",
            Some(&buyer.token),
            &json!({"itemId": shop.item_id, "quantity": 2}),
        )
        .await;
    assert_eq!(
        during.status(),
        StatusCode::OK,
        "unlocked once the saga ends"
    );
    assert_eq!(buyer.orders(&app).await.len(), 1);
}

#[tokio::test]
async fn a_silent_gateway_gets_202_and_the_order_expires_releasing_its_stock() {
    let app = server(&[
        ("AGORA_CHECKOUT_WAIT_MS", "200"),
        ("AGORA_PAYMENT_TIMEOUT_MS", "500"),
        ("AGORA_PAYMENT_TTL_SECS", "2"),
    ])
    .await;
    let shop = Shop::open(&app, 500, 5).await;
    let buyer = Buyer::with_cart(&app, &shop, 2).await;
    let response = buyer.checkout(&app, SILENT_CARD).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "PAYMENT_PENDING");
    let id = body["orderId"].as_str().unwrap();
    let pending = buyer.order(&app, id).await;
    assert_eq!(pending["paymentStatus"], "PENDING");
    assert_eq!(
        shop.stock(&app).await,
        (3, 5),
        "held while payment is pending"
    );

    let expired = await_status(&app, &buyer, id, "EXPIRED").await;
    assert_eq!(history(&expired), ["CREATED", "PAYMENT_PENDING", "EXPIRED"]);
    assert_eq!(expired["paymentStatus"], "FAILED");
    crate::helpers::eventually("the stock comes back", || async {
        shop.stock(&app).await == (5, 5)
    })
    .await;
    assert_eq!(
        buyer.cart(&app).await["lines"][0]["quantity"],
        2,
        "cart kept"
    );
}

#[tokio::test]
async fn a_payment_that_arrives_after_the_window_is_refunded() {
    let app = server(&[
        ("AGORA_CHECKOUT_WAIT_MS", "200"),
        ("AGORA_PAYMENT_LATENCY_MS", "2500"),
        ("AGORA_PAYMENT_TTL_SECS", "1"),
    ])
    .await;
    let shop = Shop::open(&app, 500, 5).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let id = buyer.checkout_pending(&app, GOOD_CARD).await;
    await_status(&app, &buyer, &id, "EXPIRED").await;
    let mut refunded = Value::Null;
    for _ in 0..100 {
        refunded = buyer.order(&app, &id).await;
        if refunded["paymentStatus"] == "REFUNDED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refunded["paymentStatus"], "REFUNDED", "{refunded}");
    assert_eq!(refunded["status"], "EXPIRED");
    assert_eq!(shop.stock(&app).await, (5, 5));
}

#[tokio::test]
async fn a_retried_request_with_its_key_gets_the_first_answer_and_one_charge() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 2).await;
    let send = |body: Value, key: &'static str| {
        let request = app
            .client
            .post(app.url("/checkout"))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", key)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let first = send(buyer.body(GOOD_CARD), "retry-1").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = send(buyer.body(GOOD_CARD), "retry-1").await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the same answer"
    );
    assert_eq!(buyer.orders(&app).await.len(), 1, "one order");
    assert_eq!(shop.stock(&app).await, (8, 8), "one sale");

    let mut other = buyer.body(GOOD_CARD);
    other["amount"] = json!(1);
    let reused = send(other, "retry-1").await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(reused).await["code"], "IDEMPOTENCY_KEY_REUSED");

    // Refusals are kept too: the same key replays them.
    let empty = send(buyer.body(GOOD_CARD), "retry-2").await;
    assert_eq!(problem(empty).await["code"], "EMPTY_CART");
    Buyer::fill(&app, buyer.token.clone(), &shop, 1).await;
    let replayed = send(buyer.body(GOOD_CARD), "retry-2").await;
    assert_eq!(problem(replayed).await["code"], "EMPTY_CART");
}

#[tokio::test]
async fn a_duplicate_of_a_running_request_is_told_to_wait() {
    let app = server(&[("AGORA_PAYMENT_LATENCY_MS", "1000")]).await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let send = || {
        app.client
            .post(app.url("/checkout"))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", "double-click")
            .json(&buyer.body(GOOD_CARD))
            .send()
    };
    let (first, second) = tokio::join!(send(), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        send().await
    });
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert!(second.headers().contains_key("retry-after"));
    assert_eq!(problem(second).await["code"], "REQUEST_IN_PROGRESS");
    let replay = send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(buyer.orders(&app).await.len(), 1);
}

#[tokio::test]
async fn taxes_and_shipping_from_the_settings_are_what_checkout_charges() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agora.toml");
    std::fs::write(
        &config,
        "[pricing]\ndefault_tax_bps = 500\nshipping_fee = 4900\nfree_shipping_from = 100000\n\
         [pricing.tax_bps_by_category]\nelectronics = 1800\n",
    )
    .unwrap();
    let app = TestApp::spawn_with(
        Options::default()
            .env("AGORA_RATE_LIMIT_PER_SEC", "0")
            .arg("--config")
            .arg(config.to_str().unwrap()),
    )
    .await;
    let shop = Shop::open(&app, 999, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 2).await;
    let cart = buyer.cart(&app).await;
    // 1998 + 18% electronics tax (359.64 → 360) + 4900 shipping.
    assert_eq!(
        (
            cart["subtotal"].clone(),
            cart["tax"].clone(),
            cart["shipping"].clone()
        ),
        (json!(1998), json!(360), json!(4900))
    );
    assert_eq!(buyer.total, 7258);
    let response = buyer.checkout(&app, GOOD_CARD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["amount"], 7258);
    let order = buyer.order(&app, body["orderId"].as_str().unwrap()).await;
    assert_eq!(order["amount"], 7258);
}

#[tokio::test]
async fn risk_rules_decline_with_a_reason_before_payment() {
    let config = risk_config();
    let app = TestApp::spawn_with(
        Options::default()
            .env("AGORA_RATE_LIMIT_PER_SEC", "0")
            .arg("--config")
            .arg(config.path().to_str().unwrap()),
    )
    .await;
    let shop = Shop::open(&app, 60_000, 10).await;
    // Over the ceiling.
    let big = Buyer::with_cart(&app, &shop, 2).await;
    let body: Value = big.checkout(&app, GOOD_CARD).await.json().await.unwrap();
    assert_eq!(body["status"], "PAYMENT_FAILED");
    assert!(
        body["reason"].as_str().unwrap().contains("exceeds"),
        "{body}"
    );
    assert_eq!(shop.stock(&app).await, (10, 10));

    // Two declined cards, then even a good card is declined for a while.
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    for _ in 0..2 {
        let body: Value = buyer
            .checkout(&app, DECLINED_CARD)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["reason"], "card declined");
    }
    let body: Value = buyer.checkout(&app, GOOD_CARD).await.json().await.unwrap();
    assert_eq!(body["status"], "PAYMENT_FAILED");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("2 failed payments"),
        "{body}"
    );
    // The rule is read from the buyer's orders, so it holds after a restart.
    let app = app.restart();
    let body: Value = buyer.checkout(&app, GOOD_CARD).await.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("failed payments"),
        "{body}"
    );
}

fn risk_config() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "[risk]\nmax_order_amount = 100000\nmax_failed_payments = 2\nfailed_payment_window_secs = 600\n",
    )
    .unwrap();
    file
}
