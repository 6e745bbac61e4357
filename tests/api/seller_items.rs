//! `GET /seller/items`: a seller's own items with their stock, newest
//! first, withdrawn ones included; nobody else's; sealed cursors; items
//! stored by the previous release are listed too.

use agora::storage::{StorageError, Store, StoreOptions, TreeName};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{problem, TestApp};

/// Lists `name` for `seller` with `quantity` units. Creation times have
/// millisecond resolution (items made in one millisecond are in id order,
/// which is random within it), so each waits for the next.
async fn list(app: &TestApp, seller: &str, name: &str, quantity: i64) -> String {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let item = app
        .create_item(
            seller,
            &json!({"name": name, "description": "for the seller's list", "price": 1250,
                    "quantity": quantity}),
        )
        .await;
    item["id"].as_str().unwrap().to_owned()
}

/// One page of the seller's list: its items and next cursor.
async fn page(app: &TestApp, seller: &str, query: &str) -> (Vec<Value>, Option<String>) {
    let response = app
        .get(&format!("/seller/items{query}"), Some(seller))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let cursor = body["nextCursor"].as_str().map(str::to_owned);
    (body["items"].as_array().unwrap().clone(), cursor)
}

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_seller_lists_their_own_items_newest_first_with_stock_and_withdrawn_ones() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let other = app.user_token("seller").await;
    let lamp = list(&app, &seller, "Desk Lamp", 4).await;
    let kettle = list(&app, &seller, "Kettle", 9).await;
    list(&app, &other, "Someone else's chair", 1).await;
    list(&app, &seller, "Teapot", 2).await;
    let stocked = app
        .post(
            &format!("/items/{lamp}/stock"),
            Some(&seller),
            &json!({"delta": 3}),
        )
        .await;
    assert_eq!(stocked.status(), StatusCode::OK);
    let withdrawn = app.delete(&format!("/items/{kettle}"), Some(&seller)).await;
    assert_eq!(withdrawn.status(), StatusCode::NO_CONTENT);

    let (items, cursor) = page(&app, &seller, "").await;
    assert_eq!(names(&items), ["Teapot", "Kettle", "Desk Lamp"]);
    assert_eq!(cursor, None);
    assert_eq!(items[2]["available"], 7, "stock as it is now");
    assert_eq!(items[2]["price"], 1250);
    assert_eq!(
        items[1]["status"], "inactive",
        "withdrawn items stay listed"
    );

    let (active, _) = page(&app, &seller, "?status=active").await;
    assert_eq!(names(&active), ["Teapot", "Desk Lamp"]);
    let (inactive, _) = page(&app, &seller, "?status=INACTIVE").await;
    assert_eq!(names(&inactive), ["Kettle"]);
    let (others, _) = page(&app, &other, "").await;
    assert_eq!(names(&others), ["Someone else's chair"]);
}

#[tokio::test]
async fn a_sellers_list_pages_by_sealed_cursor_and_refuses_buyers_and_bad_queries() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let other = app.user_token("seller").await;
    for n in 0..5 {
        list(&app, &seller, &format!("Item {n}"), 1).await;
    }
    let (first, cursor) = page(&app, &seller, "?size=2").await;
    assert_eq!(names(&first), ["Item 4", "Item 3"]);
    let cursor = cursor.expect("more to come");
    let (second, cursor) = page(&app, &seller, &format!("?size=2&cursor={cursor}")).await;
    assert_eq!(names(&second), ["Item 2", "Item 1"]);
    let (last, end) = page(
        &app,
        &seller,
        &format!("?size=2&cursor={}", cursor.unwrap()),
    )
    .await;
    assert_eq!(names(&last), ["Item 0"]);
    assert_eq!(end, None);

    let (_, mine) = page(&app, &seller, "?size=1").await;
    let stolen = app
        .get(
            &format!("/seller/items?cursor={}", mine.unwrap()),
            Some(&other),
        )
        .await;
    assert_eq!(
        stolen.status(),
        StatusCode::BAD_REQUEST,
        "another seller's cursor"
    );
    assert_eq!(problem(stolen).await["code"], "INVALID_CURSOR");

    let buyer = app.user_token("buyer").await;
    let refused = app.get("/seller/items", Some(&buyer)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/seller/items", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for query in ["?status=sold", "?size=0", "?size=101"] {
        let response = app
            .get(&format!("/seller/items{query}"), Some(&seller))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
    }
}

#[tokio::test]
async fn items_stored_by_the_previous_release_are_listed_for_their_sellers() {
    let mut app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    list(&app, &seller, "Old Lamp", 1).await;
    list(&app, &seller, "Old Rug", 1).await;

    assert!(app.terminate().success());
    let store = Store::open(&app.data_dir().join("node"), StoreOptions::default()).unwrap();
    // The previous release had no index at all (nor its marker).
    let index: Vec<Vec<u8>> = store.with_trees(|trees| {
        let keys = trees.tree(TreeName::SellerItems).iter().keys();
        keys.map(|k| k.unwrap().to_vec()).collect()
    });
    assert_eq!(index.len(), 3, "two items and the marker");
    store
        .write(move |tx| {
            for key in &index {
                tx.remove(TreeName::SellerItems, key.clone());
            }
            Ok::<_, StorageError>(())
        })
        .await
        .unwrap();
    store.shutdown().await;
    drop(store);
    let app = app.restart();

    let (items, _) = page(&app, &seller, "").await;
    assert_eq!(
        names(&items),
        ["Old Rug", "Old Lamp"],
        "indexed at start-up"
    );
}
