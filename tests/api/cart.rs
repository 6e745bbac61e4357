//! Carts: the original design's PATCH body, price snapshots, soft stock
//! checks, guest carts and their merge at sign-in, one cart per user,
//! concurrency and durability.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{item_path, mouse, problem, ulid_like, TestApp};

async fn patch_cart(app: &TestApp, token: Option<&str>, body: Value) -> reqwest::Response {
    app.patch("/cart", token, &body).await
}

async fn cart(app: &TestApp, token: Option<&str>) -> Value {
    let response = app.get("/cart", token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn guest_cart(app: &TestApp, cart_token: &str) -> Value {
    let response = app
        .client
        .get(app.url("/cart"))
        .header("x-cart-token", cart_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn guest_patch(app: &TestApp, cart_token: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app.client.patch(app.url("/cart")).json(&body);
    if let Some(token) = cart_token {
        request = request.header("x-cart-token", token);
    }
    request.send().await.unwrap()
}

fn item_id(item: &Value) -> String {
    item["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_original_design_body_fills_the_cart_and_totals_at_current_prices() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let buyer = app.user_token("buyer").await;
    let item = app.create_item(&seller, &mouse()).await;
    let response = patch_cart(
        &app,
        Some(&buyer),
        json!({"itemId": item["id"], "quantity": 2}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cart = cart(&app, Some(&buyer)).await;
    assert!(cart["id"].is_string() && cart["expiresAt"].is_string());
    assert_eq!(cart["lines"][0]["quantity"], 2);
    assert_eq!(cart["lines"][0]["name"], "Wireless Mouse");
    assert_eq!(cart["lines"][0]["lineTotal"], 1998);
    assert_eq!(
        (
            cart["subtotal"].clone(),
            cart["tax"].clone(),
            cart["shipping"].clone()
        ),
        (json!(1998), json!(0), json!(0))
    );
    assert_eq!(
        (cart["total"].clone(), cart["currency"].clone()),
        (json!(1998), json!("INR"))
    );

    // The seller raises the price: the line keeps its snapshot, the total follows today's price.
    app.patch(&item_path(&item), Some(&seller), &json!({"price": 1099}))
        .await;
    let cart = self::cart(&app, Some(&buyer)).await;
    assert_eq!(
        (
            cart["lines"][0]["unitPrice"].clone(),
            cart["lines"][0]["currentPrice"].clone()
        ),
        (json!(999), json!(1099))
    );
    assert_eq!(cart["total"], 2198);
    let fetched = app.get_json(&item_path(&item)).await;
    assert_eq!(fetched["available"], 100, "a cart reserves nothing");
}

#[tokio::test]
async fn quantities_are_bounded_and_zero_removes_the_line() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let buyer = app.user_token("buyer").await;
    let mut body = mouse();
    body["quantity"] = json!(5_000);
    let item = app.create_item(&seller, &body).await;
    for (quantity, field) in [
        (json!(-1), "quantity"),
        (json!(1_001), "quantity"),
        (Value::Null, "quantity"),
    ] {
        let response = patch_cart(
            &app,
            Some(&buyer),
            json!({"itemId": item["id"], "quantity": quantity}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(problem(response).await["errors"][field].is_string());
    }
    let missing = patch_cart(&app, Some(&buyer), json!({"quantity": 1})).await;
    assert!(problem(missing).await["errors"]["itemId"].is_string());
    patch_cart(
        &app,
        Some(&buyer),
        json!({"itemId": item["id"], "quantity": 1_000}),
    )
    .await;
    patch_cart(
        &app,
        Some(&buyer),
        json!({"itemId": item["id"], "quantity": 0}),
    )
    .await;
    assert_eq!(cart(&app, Some(&buyer)).await["lines"], json!([]));
}

#[tokio::test]
async fn unknown_inactive_and_out_of_stock_items_are_refused() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let buyer = app.user_token("buyer").await;
    let unknown = patch_cart(
        &app,
        Some(&buyer),
        json!({"itemId": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "quantity": 1}),
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let mut body = mouse();
    body["quantity"] = json!(3);
    let item = app.create_item(&seller, &body).await;
    let too_many = patch_cart(
        &app,
        Some(&buyer),
        json!({"itemId": item["id"], "quantity": 4}),
    )
    .await;
    assert_eq!(too_many.status(), StatusCode::CONFLICT);
    let problem_body = problem(too_many).await;
    assert_eq!(
        (
            problem_body["code"].clone(),
            problem_body["available"].clone()
        ),
        (json!("INSUFFICIENT_STOCK"), json!(3))
    );

    app.delete(&item_path(&item), Some(&seller)).await;
    let inactive = patch_cart(
        &app,
        Some(&buyer),
        json!({"itemId": item["id"], "quantity": 1}),
    )
    .await;
    assert_eq!(inactive.status(), StatusCode::CONFLICT);
    assert_eq!(problem(inactive).await["code"], "ITEM_INACTIVE");
}

#[tokio::test]
async fn an_item_with_variants_needs_the_variant_and_uses_its_price() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let buyer = app.user_token("buyer").await;
    let body = json!({"name": "Shirt", "description": "Cotton", "price": 500,
        "variants": [{"sku": "S", "price": 500, "quantity": 5}, {"sku": "XL", "price": 650, "quantity": 5}]});
    let item = app.create_item(&seller, &body).await;
    let missing = patch_cart(
        &app,
        Some(&buyer),
        json!({"itemId": item["id"], "quantity": 1}),
    )
    .await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem(missing).await["errors"]["variantId"].is_string());
    let xl = item["variants"][1]["variantId"].clone();
    let response = patch_cart(
        &app,
        Some(&buyer),
        json!({"itemId": item["id"], "variantId": xl, "quantity": 2}),
    )
    .await;
    let cart: Value = response.json().await.unwrap();
    assert_eq!(
        (cart["lines"][0]["variantId"].clone(), cart["total"].clone()),
        (xl, json!(1300))
    );
}

#[tokio::test]
async fn delete_empties_the_cart() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let buyer = app.user_token("buyer").await;
    let item = app.create_item(&seller, &mouse()).await;
    patch_cart(
        &app,
        Some(&buyer),
        json!({"itemId": item["id"], "quantity": 1}),
    )
    .await;
    assert_eq!(
        app.delete("/cart", Some(&buyer)).await.status(),
        StatusCode::NO_CONTENT
    );
    let cart = cart(&app, Some(&buyer)).await;
    assert_eq!(
        (cart["lines"].clone(), cart["total"].clone()),
        (json!([]), json!(0))
    );
}

#[tokio::test]
async fn forty_concurrent_changes_of_one_cart_are_all_kept() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let buyer = app.user_token("buyer").await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let mut body = mouse();
        body["name"] = json!(format!("Mouse {i}"));
        ids.push(item_id(&app.create_item(&seller, &body).await));
    }
    let changes = ids.iter().map(|id| {
        let (app, buyer) = (&app, &buyer);
        async move {
            patch_cart(app, Some(buyer), json!({"itemId": id, "quantity": 1}))
                .await
                .status()
        }
    });
    let statuses = futures::future::join_all(changes).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let cart = cart(&app, Some(&buyer)).await;
    assert_eq!(cart["lines"].as_array().unwrap().len(), 40);
    assert_eq!(cart["total"], 40 * 999);
}

#[tokio::test]
async fn a_cart_change_acknowledged_before_kill_9_is_kept() {
    let mut app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let buyer = app.user_token("buyer").await;
    let item = app.create_item(&seller, &mouse()).await;
    assert_eq!(
        patch_cart(
            &app,
            Some(&buyer),
            json!({"itemId": item["id"], "quantity": 3})
        )
        .await
        .status(),
        StatusCode::OK
    );
    app.kill9();
    let app = app.restart();
    let cart = cart(&app, Some(&buyer)).await;
    assert_eq!(cart["lines"][0]["quantity"], 3);
}

#[tokio::test]
async fn one_cart_per_user_across_devices() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let email = format!("two-devices-{}@example.com", ulid_like());
    app.register(&email, "correct horse", "buyer").await;
    let phone: Value = app
        .sign_in(&email, "correct horse")
        .await
        .json()
        .await
        .unwrap();
    let laptop: Value = app
        .sign_in(&email, "correct horse")
        .await
        .json()
        .await
        .unwrap();
    let (phone, laptop) = (
        phone["token"].as_str().unwrap(),
        laptop["token"].as_str().unwrap(),
    );
    patch_cart(
        &app,
        Some(phone),
        json!({"itemId": item["id"], "quantity": 2}),
    )
    .await;
    let seen = cart(&app, Some(laptop)).await;
    assert_eq!(seen["lines"][0]["quantity"], 2);
    assert_eq!(seen["id"], cart(&app, Some(phone)).await["id"]);
}

#[tokio::test]
async fn a_guest_cart_is_kept_by_token_and_merged_at_sign_in() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let mut scarce = mouse();
    scarce["quantity"] = json!(5);
    let scarce = app.create_item(&seller, &scarce).await;
    let plenty = app.create_item(&seller, &mouse()).await;

    let first = guest_patch(&app, None, json!({"itemId": scarce["id"], "quantity": 4})).await;
    assert_eq!(first.status(), StatusCode::OK);
    let token = first.json::<Value>().await.unwrap()["cartToken"]
        .as_str()
        .unwrap()
        .to_owned();
    guest_patch(
        &app,
        Some(&token),
        json!({"itemId": plenty["id"], "quantity": 1}),
    )
    .await;
    assert_eq!(
        guest_cart(&app, &token).await["lines"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        cart(&app, None).await["lines"],
        json!([]),
        "no token, no cart"
    );

    // The user already has 3 of the scarce item: 3 + 4 is capped at the 5 in stock.
    let email = format!("merge-{}@example.com", ulid_like());
    app.register(&email, "correct horse", "buyer").await;
    let session: Value = app
        .sign_in(&email, "correct horse")
        .await
        .json()
        .await
        .unwrap();
    let user = session["token"].as_str().unwrap().to_owned();
    patch_cart(
        &app,
        Some(&user),
        json!({"itemId": scarce["id"], "quantity": 3}),
    )
    .await;
    app.delete("/sessions", Some(&user)).await;
    let merged = app
        .post(
            "/sessions",
            None,
            &json!({"email": email, "password": "correct horse", "cartToken": token}),
        )
        .await;
    assert_eq!(merged.status(), StatusCode::CREATED);
    let user = merged.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cart = cart(&app, Some(&user)).await;
    let quantity = |id: &Value| {
        cart["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["itemId"] == *id)
            .map(|l| l["quantity"].clone())
    };
    assert_eq!(quantity(&scarce["id"]), Some(json!(5)));
    assert_eq!(quantity(&plenty["id"]), Some(json!(1)));
    assert_eq!(
        guest_cart(&app, &token).await["lines"],
        json!([]),
        "the guest cart is used up"
    );
}

#[tokio::test]
async fn an_invalid_bearer_token_is_401_not_a_guest_cart() {
    let app = TestApp::spawn().await;
    let response = app
        .get("/cart", Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signing_in_twice_with_one_guest_token_merges_once() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let first = guest_patch(&app, None, json!({"itemId": item["id"], "quantity": 2})).await;
    let token = first.json::<Value>().await.unwrap()["cartToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let email = format!("twice-{}@example.com", ulid_like());
    app.register(&email, "correct horse", "buyer").await;
    let body = json!({"email": email, "password": "correct horse", "cartToken": token});
    let (a, b) = tokio::join!(
        app.post("/sessions", None, &body),
        app.post("/sessions", None, &body)
    );
    assert_eq!(
        (a.status(), b.status()),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    let user = a.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cart(&app, Some(&user)).await["lines"][0]["quantity"],
        2,
        "not 4"
    );
}
