//! The wishlist: add, list, remove; idempotent; 404 and 401 where due.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{mouse, TestApp};

async fn wishlist(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.get("/wishlist", Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

async fn put(app: &TestApp, token: Option<&str>, item: &str) -> StatusCode {
    app.client
        .put(app.url(&format!("/wishlist/{item}")))
        .bearer_auth(token.unwrap_or(""))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn buyers_keep_a_wishlist_of_items_for_sale() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let mouse_id = app.create_item(&seller, &mouse()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut lamp = mouse();
    lamp["name"] = json!("Desk Lamp");
    let lamp_id = app.create_item(&seller, &lamp).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let buyer = app.user_token("buyer").await;
    let other = app.user_token("buyer").await;

    // Anonymous: 401.
    assert_eq!(
        app.get("/wishlist", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(put(&app, None, &mouse_id).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.delete(&format!("/wishlist/{mouse_id}"), None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Unknown items: 404.
    for unknown in ["nope", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"] {
        assert_eq!(
            put(&app, Some(&buyer), unknown).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.delete(&format!("/wishlist/{unknown}"), Some(&buyer))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
    }

    // Adding is idempotent; the newest addition comes first.
    for _ in 0..2 {
        assert_eq!(
            put(&app, Some(&buyer), &mouse_id).await,
            StatusCode::NO_CONTENT
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        put(&app, Some(&buyer), &lamp_id).await,
        StatusCode::NO_CONTENT
    );
    let items = wishlist(&app, &buyer).await;
    let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Desk Lamp", "Wireless Mouse"]);
    assert_eq!(items[1]["available"], 100);
    assert!(
        wishlist(&app, &other).await.is_empty(),
        "wishlists are per user"
    );

    // Removing is idempotent.
    for _ in 0..2 {
        let removed = app
            .delete(&format!("/wishlist/{lamp_id}"), Some(&buyer))
            .await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(wishlist(&app, &buyer).await.len(), 1);

    // An item withdrawn by its seller leaves the list and cannot be added.
    let withdrawn = app
        .delete(&format!("/items/{mouse_id}"), Some(&seller))
        .await;
    assert_eq!(withdrawn.status(), StatusCode::NO_CONTENT);
    assert!(wishlist(&app, &buyer).await.is_empty());
    assert_eq!(
        put(&app, Some(&other), &mouse_id).await,
        StatusCode::NOT_FOUND
    );
}
