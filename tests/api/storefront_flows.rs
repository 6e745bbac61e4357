//! The storefront's harder paths in a real browser: a checkout that meets
//! a price change and a declined card before it orders (once), and a
//! seller's image upload on the seller page.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::{ulid_like, Options, TestApp};
use crate::nats::wait_until;
use crate::shop::{Buyer, Shop, GOOD_CARD};
use crate::storefront_browser::{listed, no_severe_console_errors, seller_on_page};

/// A new buyer signed in through the page; their email and API token.
async fn signed_in_buyer(app: &TestApp, browser: &Browser) -> (String, String) {
    let email = format!("buyer-{}@example.com", ulid_like());
    let created = app.register(&email, "correct horse", "buyer").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    browser.goto(&app.url("/#/signin")).await;
    browser.type_into("email", &email).await;
    browser.type_into("password", "correct horse").await;
    browser.click("sign-in-submit").await;
    browser.text_until("user-name", |t| !t.is_empty()).await;
    let session: Value = app
        .sign_in(&email, "correct horse")
        .await
        .json()
        .await
        .unwrap();
    (email, session["token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_checkout_shows_a_new_price_and_a_decline_then_orders_once_at_the_new_total() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(1280).await else {
        return;
    };
    let (seller, id) = listed(&app, "Wireless Mouse", 999, 100).await;
    let (_, token) = signed_in_buyer(&app, &browser).await;
    browser.goto(&app.url(&format!("/#/item/{id}"))).await;
    browser.click("add-to-cart").await;
    browser
        .text_until("cart-count", |t| t.starts_with('1'))
        .await;
    browser.goto(&app.url("/#/checkout")).await;
    browser.type_into("address-line1", "1 MG Road").await;
    browser.type_into("address-city", "Bengaluru").await;
    browser.type_into("address-postal-code", "560001").await;
    browser.type_into("address-country", "IN").await;

    // The seller raises the price while the buyer is on the page.
    let raised = app
        .patch(
            &format!("/items/{id}"),
            Some(&seller),
            &json!({"price": 1299}),
        )
        .await;
    assert_eq!(raised.status(), StatusCode::OK);
    browser
        .type_into("card-number", "4000 0000 0000 0002")
        .await;
    browser.click("place-order").await;
    let told = browser.text_until("price-changed", |t| !t.is_empty()).await;
    assert!(told.contains("12.99"), "the new total is shown: {told}");

    // Confirmed at the new total, the card is declined: the page says so.
    browser.click("place-order").await;
    browser.text_until("declined", |t| !t.is_empty()).await;

    // Another card: the order is confirmed, at the new total, once.
    browser
        .type_into("card-number", "4242 4242 4242 4242")
        .await;
    browser.click("place-order").await;
    browser
        .text_until("order-status", |t| t.contains("CONFIRMED"))
        .await;
    let orders: Value = app.get("/orders", Some(&token)).await.json().await.unwrap();
    let statuses: Vec<(&str, i64)> = orders["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["status"].as_str().unwrap(), o["amount"].as_i64().unwrap()))
        .collect();
    let confirmed: Vec<_> = statuses.iter().filter(|(s, _)| *s == "CONFIRMED").collect();
    assert_eq!(confirmed.len(), 1, "ordered once: {statuses:?}");
    assert!(
        confirmed[0].1 >= 1299,
        "the new price (with any tax and shipping): {statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|(s, _)| *s == "PAYMENT_FAILED")
            .count(),
        1,
        "the declined attempt: {statuses:?}"
    );
    no_severe_console_errors(&browser).await;
    browser.close().await;
}

/// A 64×64 PNG of one colour, written to a temporary file.
fn png_file(dir: &std::path::Path) -> std::path::PathBuf {
    let image = image::RgbImage::from_pixel(64, 64, image::Rgb([200, 80, 40]));
    let path = dir.join("lamp.png");
    image.save(&path).unwrap();
    path
}

#[tokio::test]
async fn a_seller_uploads_an_image_from_the_seller_page() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(1280).await else {
        return;
    };
    let (_, lamp) = seller_on_page(&app, &browser, "Desk Lamp", 2500, 2).await;

    let dir = tempfile::tempdir().unwrap();
    let file = png_file(dir.path());
    // A file input takes the file's path as typed keys (WebDriver).
    browser
        .hook("image-file")
        .await
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    browser.hook("seller-item-image").await;
    let item = app
        .get_json(&format!("/items/{}", lamp["id"].as_str().unwrap()))
        .await;
    let images = item["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{item}");
    let served = app.get(images[0].as_str().unwrap(), None).await;
    assert_eq!(served.status(), StatusCode::OK);
    no_severe_console_errors(&browser).await;
    browser.close().await;
}

/// How far the page scrolls sideways (0 when it fits the window), and
/// the widest element's description when it does not.
async fn sideways(browser: &Browser) -> (i64, String) {
    let found = browser
        .run(
            "const root = document.documentElement;
             const over = root.scrollWidth - root.clientWidth;
             let widest = '';
             for (const el of document.querySelectorAll('body *')) {
               const r = el.getBoundingClientRect();
               if (r.right > root.clientWidth + 1) { widest = el.tagName + '.' + el.className + ' ' + r.right; break; }
             }
             return [over, widest];",
        )
        .await;
    (
        found[0].as_i64().unwrap(),
        found[1].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn no_shopper_page_scrolls_sideways_on_a_375_px_phone() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(375).await else {
        return;
    };
    let (_, id) = listed(
        &app,
        "Wireless Mouse with a rather long descriptive name",
        99_999,
        5,
    )
    .await;
    let (_, _) = signed_in_buyer(&app, &browser).await;
    browser.goto(&app.url(&format!("/#/item/{id}"))).await;
    browser.click("add-to-cart").await;
    browser
        .text_until("cart-count", |t| t.starts_with('1'))
        .await;
    for (route, hook) in [
        ("/#/", "recommendation"),
        ("/#/search?term=mouse", "search-result"),
        (&format!("/#/item/{id}") as &str, "item-name"),
        ("/#/cart", "cart-line"),
        ("/#/checkout", "place-order"),
        ("/#/orders", "order-filter"),
    ] {
        browser.goto(&app.url(route)).await;
        browser.hook(hook).await;
        let (over, widest) = sideways(&browser).await;
        assert!(
            over <= 0 && widest.is_empty(),
            "{route} is wider than the phone by {over} px: {widest}"
        );
    }
    no_severe_console_errors(&browser).await;
    browser.close().await;
}

#[tokio::test]
async fn the_seller_page_shows_a_new_order_live_and_ships_it() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(1280).await else {
        return;
    };
    let (seller, item) = seller_on_page(&app, &browser, "Desk Lamp", 2500, 5).await;
    let shop = Shop {
        seller,
        item_id: item["id"].as_str().unwrap().to_owned(),
    };
    assert_eq!(browser.hooks("seller-order").await.len(), 0);

    // A buyer orders while the page is open: it appears without a reload.
    let buyer = Buyer::with_cart(&app, &shop, 2).await;
    let answer = buyer.checkout(&app, GOOD_CARD).await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    let order: Value = answer.json().await.unwrap();
    browser
        .text_until("seller-order-status", |t| t == "CONFIRMED")
        .await;
    browser.click("ship").await;
    browser
        .text_until("seller-order-status", |t| t == "SHIPPED")
        .await;
    let id = order["orderId"].as_str().unwrap();
    assert_eq!(buyer.order(&app, id).await["status"], "SHIPPED");
    no_severe_console_errors(&browser).await;
    browser.close().await;
}

#[tokio::test]
async fn a_search_past_the_count_limit_shows_its_count_as_a_lower_bound() {
    let app = TestApp::spawn_with(
        Options::default()
            .env("AGORA_RATE_LIMIT_PER_SEC", "0")
            .env("AGORA_SEARCH_TOTAL_EXACT_LIMIT", "3"),
    )
    .await;
    let Some(browser) = Browser::open(1280).await else {
        return;
    };
    let (seller, _) = listed(&app, "Wireless Mouse", 999, 5).await;
    for n in 0..4 {
        app.create_item(
            &seller,
            &json!({"name": format!("Travel Mouse {n}"), "description": "Small",
                    "price": 799, "quantity": 5}),
        )
        .await;
    }
    wait_until(
        "five mice are searchable",
        crate::browser::BOUND,
        || async {
            let page = app.get_json("/items?term=mouse&sort=newest").await;
            page["items"]
                .as_array()
                .is_some_and(|items| items.len() == 5)
        },
    )
    .await;
    browser.goto(&app.url("/#/search?term=mouse")).await;
    // 5 matches, counted up to 3 (the limit in this test; 10,000 by default).
    browser
        .text_until("result-count", |t| t.starts_with("3+"))
        .await;
    assert_eq!(browser.wait_hooks("search-result", 5).await, 5);
    browser.goto(&app.url("/#/search?term=wireless")).await;
    browser.text_until("result-count", |t| t == "1 item").await;
    no_severe_console_errors(&browser).await;
    browser.close().await;
}
