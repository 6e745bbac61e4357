//! The storefront and the seller page in a real browser (headless Chromium
//! through chromedriver), against the real binary. Only the `data-test`
//! hooks of issue 20 are relied on, never the layout. Each test ends by
//! checking the browser console holds no `SEVERE` entry.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::{ulid_like, TestApp};
use crate::nats::wait_until;

/// WebDriver's Enter key.
pub const ENTER: &str = "\u{E007}";

/// A seller with one item named `name` at ₹`price`/100, `quantity` units,
/// found by search; the seller's token and the item's id.
pub async fn listed(app: &TestApp, name: &str, price: i64, quantity: i64) -> (String, String) {
    let seller = app.user_token("seller").await;
    let item = app
        .create_item(
            &seller,
            &json!({"name": name, "description": "Ergonomic Bluetooth mouse",
                    "price": price, "currency": "INR", "quantity": quantity,
                    "category": "electronics", "brand": "Logi"}),
        )
        .await;
    let id = item["id"].as_str().unwrap().to_owned();
    wait_until("the item is searchable", crate::browser::BOUND, || async {
        let page = app.get_json("/items?term=mouse").await;
        page["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["id"] == id.as_str()))
    })
    .await;
    (seller, id)
}

/// A new seller with one item made through the API (`name`, ₹`price`/100,
/// `quantity` units), signed in on the seller page, which lists it; the
/// seller's API token and the item.
pub async fn seller_on_page(
    app: &TestApp,
    browser: &Browser,
    name: &str,
    price: i64,
    quantity: i64,
) -> (String, Value) {
    let email = format!("seller-{}@example.com", ulid_like());
    let created = app.register(&email, "correct horse", "seller").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let session: Value = app
        .sign_in(&email, "correct horse")
        .await
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap().to_owned();
    let item = app
        .create_item(
            &token,
            &json!({"name": name, "description": "Made through the API", "price": price,
                    "quantity": quantity}),
        )
        .await;
    browser.goto(&app.url("/seller")).await;
    browser.type_into("email", &email).await;
    browser.type_into("password", "correct horse").await;
    browser.click("sign-in-submit").await;
    browser.first_hook_containing("seller-item", name).await;
    (token, item)
}

/// Fails with the entries if the console logged anything severe.
pub async fn no_severe_console_errors(browser: &Browser) {
    let severe = browser.severe_console_entries().await;
    assert!(severe.is_empty(), "severe console entries: {severe:#?}");
}

#[tokio::test]
async fn a_shopper_finds_an_item_by_a_misspelt_word_and_opens_its_page() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(1280).await else {
        return;
    };
    listed(&app, "Wireless Mouse", 999, 100).await;
    browser.goto(&app.url("/")).await;
    browser.type_into("search-input", "wirless mose").await;
    browser.type_into_more("search-input", ENTER).await;
    let result = browser
        .first_hook_containing("search-result", "Wireless Mouse")
        .await;
    result.click().await.expect("open the result");
    browser
        .text_until("item-name", |t| t == "Wireless Mouse")
        .await;
    let price = browser.text_until("item-price", |t| !t.is_empty()).await;
    assert!(
        price.contains("9.99") && price.contains('₹'),
        "price shown as {price:?}"
    );
    browser
        .text_until("item-available", |t| t.starts_with("100"))
        .await;
    no_severe_console_errors(&browser).await;
    browser.close().await;
}

#[tokio::test]
async fn the_item_page_follows_its_stock_live_on_a_phone() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(375).await else {
        return;
    };
    let (seller, id) = listed(&app, "Wireless Mouse", 999, 100).await;
    browser.goto(&app.url(&format!("/#/item/{id}"))).await;
    browser
        .text_until("item-name", |t| t == "Wireless Mouse")
        .await;
    browser
        .text_until("item-available", |t| t.starts_with("100"))
        .await;
    // A seller's change reaches the open page without a reload.
    let changed = app
        .post(
            &format!("/items/{id}/stock"),
            Some(&seller),
            &json!({"delta": 5}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    browser
        .text_until("item-available", |t| t.starts_with("105"))
        .await;
    no_severe_console_errors(&browser).await;
    browser.close().await;
}

#[tokio::test]
async fn markup_typed_by_anyone_is_shown_as_its_characters_and_runs_nothing() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(1280).await else {
        return;
    };
    // The server strips tags from what sellers type (`domain/text.rs`), so
    // a name keeps only what survives that: entities, shown literally.
    let name = "Mouse &lt;img src=x onerror=alert(1)&gt; & <3";
    let (_, id) = listed(&app, name, 999, 100).await;
    browser.goto(&app.url(&format!("/#/item/{id}"))).await;
    let shown = browser
        .text_until("item-name", |t| t.starts_with("Mouse"))
        .await;
    assert_eq!(shown, name, "the name's characters, as characters");
    // A search term is not stored at all: the page echoes it, as text.
    let hostile = "<img src=x onerror=alert(1)>";
    browser
        .goto(&app.url(&format!("/#/search?term={}", urlencode(hostile))))
        .await;
    let heading = browser
        .run("return document.querySelector('h1').textContent")
        .await;
    assert!(
        heading.as_str().is_some_and(|h| h.contains(hostile)),
        "heading {heading}"
    );
    let images = browser
        .run("return document.querySelectorAll('main img[src=\"x\"], h1 img').length")
        .await;
    assert_eq!(images, json!(0), "the term became markup");
    // An alert would be open now, and the next command would fail.
    assert!(
        browser.client.get_alert_text().await.is_err(),
        "an alert ran"
    );
    no_severe_console_errors(&browser).await;
    browser.close().await;
}

/// `text` percent-encoded for a query string.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_guest_cart_survives_sign_in_and_its_order_turns_shipped_live() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(1280).await else {
        return;
    };
    let (seller, id) = listed(&app, "Wireless Mouse", 999, 100).await;
    let email = format!("buyer-{}@example.com", ulid_like());
    let created = app.register(&email, "correct horse", "buyer").await;
    assert_eq!(created.status(), StatusCode::CREATED);

    // A guest fills a cart, then signs in: the line is still there.
    browser.goto(&app.url(&format!("/#/item/{id}"))).await;
    browser
        .text_until("item-name", |t| t == "Wireless Mouse")
        .await;
    browser.click("add-to-cart").await;
    browser
        .text_until("cart-count", |t| t.starts_with('1'))
        .await;
    browser.click("sign-in-link").await;
    browser.type_into("email", &email).await;
    browser.type_into("password", "correct horse").await;
    browser.click("sign-in-submit").await;
    // Signed in (the guest's count was "1" already, so wait for the name).
    browser.text_until("user-name", |t| !t.is_empty()).await;
    browser
        .text_until("cart-count", |t| t.starts_with('1'))
        .await;

    // Checkout with a test card: the order page shows it confirmed.
    browser.click("cart-link").await;
    assert_eq!(browser.wait_hooks("cart-line", 1).await, 1);
    browser.click("checkout").await;
    browser.type_into("address-line1", "1 MG Road").await;
    browser.type_into("address-city", "Bengaluru").await;
    browser.type_into("address-postal-code", "560001").await;
    browser.type_into("address-country", "IN").await;
    browser
        .type_into("card-number", "4111 1111 1111 4242")
        .await;
    browser.click("place-order").await;
    browser
        .text_until("order-status", |t| t.contains("CONFIRMED"))
        .await;

    // The seller ships through the API: the open page turns SHIPPED.
    let orders: Value = app
        .get("/seller/orders", Some(&seller))
        .await
        .json()
        .await
        .unwrap();
    let order_id = orders["items"][0]["id"].as_str().unwrap().to_owned();
    let shipped = app
        .post(
            &format!("/orders/{order_id}/ship"),
            Some(&seller),
            &json!({}),
        )
        .await;
    assert_eq!(shipped.status(), StatusCode::OK);
    browser
        .text_until("order-status", |t| t.contains("SHIPPED"))
        .await;
    no_severe_console_errors(&browser).await;
    browser.close().await;
}

#[tokio::test]
async fn a_seller_lists_an_item_priced_in_major_units() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::open(1280).await else {
        return;
    };
    // An item listed elsewhere (through the API) is on the seller's list,
    // its stock following changes live.
    let (token, chair) = seller_on_page(&app, &browser, "Garden Chair", 4500, 3).await;
    let token = token.as_str();
    browser
        .text_until("seller-item-available", |t| t == "3")
        .await;
    let restocked = app
        .post(
            &format!("/items/{}/stock", chair["id"].as_str().unwrap()),
            Some(token),
            &json!({"delta": 5}),
        )
        .await;
    assert_eq!(restocked.status(), StatusCode::OK);
    browser
        .text_until("seller-item-available", |t| t == "8")
        .await;
    let name = format!("Desk Lamp {}", ulid_like());
    browser.type_into("new-item-name", &name).await;
    browser
        .type_into("new-item-description", "A warm light")
        .await;
    browser.type_into("new-item-price", "12.50").await;
    browser.type_into("new-item-quantity", "7").await;
    browser.click("new-item-submit").await;
    let listed = browser.first_hook_containing("seller-item", &name).await;
    assert!(listed.text().await.unwrap().contains(&name));
    // Through the API: 12.50 was stored as 1250 minor units.
    // Search indexes on a timer: wait for the new item to be found.
    let word = name.split(' ').next_back().unwrap().to_lowercase();
    let found = || async {
        let page = app.get_json(&format!("/items?term={word}")).await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name.as_str())
            .cloned()
    };
    wait_until(
        "the new item is searchable",
        crate::browser::BOUND,
        || async { found().await.is_some() },
    )
    .await;
    let item = found().await.unwrap();
    assert_eq!(item["price"], 1250, "12.50 stored as minor units");
    no_severe_console_errors(&browser).await;
    browser.close().await;
}
