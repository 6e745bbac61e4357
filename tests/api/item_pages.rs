//! Item pages: kept rendered between views, yet right to the last write
//! (a seller's change, a stock change, a checkout, an image, a withdrawal),
//! and revalidated by `ETag` / `If-None-Match`.

use std::io::Cursor;

use image::{ImageFormat, RgbaImage};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{item_path, mouse, TestApp};
use crate::shop::{server, Buyer, Shop, GOOD_CARD};

/// `GET path` with `If-None-Match: tag`.
async fn get_if_none_match(app: &TestApp, path: &str, tag: &str) -> Response {
    app.client
        .get(app.url(path))
        .header("if-none-match", tag)
        .send()
        .await
        .unwrap()
}

/// The page's ETag and JSON.
async fn page(app: &TestApp, path: &str) -> (String, Value) {
    let response = app.get(path, None).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    (etag, response.json().await.unwrap())
}

#[tokio::test]
async fn a_price_change_and_a_stock_change_read_back_at_once() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let path = item_path(&app.create_item(&seller, &mouse()).await);
    // Viewed twice first, so the page is kept before the changes.
    for _ in 0..2 {
        assert_eq!(app.get_json(&path).await["price"], 999);
    }

    let patched = app
        .patch(&path, Some(&seller), &json!({"price": 1299}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    assert_eq!(app.get_json(&path).await["price"], 1299, "the new price");

    let stock_path = format!("{path}/stock");
    let moved = app
        .post(&stock_path, Some(&seller), &json!({"delta": -40}))
        .await;
    assert_eq!(moved.status(), StatusCode::OK);
    let item = app.get_json(&path).await;
    assert_eq!(
        (item["available"].clone(), item["quantity"].clone()),
        (json!(60), json!(60))
    );

    // Back and forth: each view shows the write just before it.
    for (delta, expected) in [(5, 65), (-1, 64), (36, 100)] {
        app.post(&stock_path, Some(&seller), &json!({ "delta": delta }))
            .await;
        assert_eq!(app.get_json(&path).await["available"], expected);
    }
}

#[tokio::test]
async fn a_checkout_moves_the_stock_an_item_page_shows_at_once() {
    let app = server(&[]).await;
    let shop = Shop::open(&app, 999, 10).await;
    assert_eq!(shop.stock(&app).await, (10, 10));
    assert_eq!(shop.stock(&app).await, (10, 10), "kept, and still right");

    let buyer = Buyer::with_cart(&app, &shop, 3).await;
    let response = buyer.checkout(&app, GOOD_CARD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        shop.stock(&app).await,
        (7, 7),
        "three sold by the inventory actor"
    );
}

#[tokio::test]
async fn an_unchanged_page_is_304_by_its_etag_and_a_changed_one_200_with_a_new_etag() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let path = item_path(&app.create_item(&seller, &mouse()).await);
    let (etag, _) = page(&app, &path).await;
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    let response = app.get(&path, None).await;
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(
        response.headers()["etag"].to_str().unwrap(),
        etag,
        "same page, same tag"
    );

    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let response = get_if_none_match(&app, &path, &tag).await;
        assert_eq!(
            response.status(),
            StatusCode::NOT_MODIFIED,
            "If-None-Match: {tag}"
        );
        assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
        assert!(response.bytes().await.unwrap().is_empty(), "no body");
    }
    let other = get_if_none_match(&app, &path, "\"not-this-page\"").await;
    assert_eq!(other.status(), StatusCode::OK);

    app.post(
        &format!("{path}/stock"),
        Some(&seller),
        &json!({"delta": 1}),
    )
    .await;
    let response = get_if_none_match(&app, &path, &etag).await;
    assert_eq!(response.status(), StatusCode::OK, "the stock changed");
    let new_etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    assert_eq!(response.json::<Value>().await.unwrap()["available"], 101);
    let again = get_if_none_match(&app, &path, &new_etag).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_withdrawn_item_reads_inactive_at_once() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let path = item_path(&app.create_item(&seller, &mouse()).await);
    let (etag, item) = page(&app, &path).await;
    assert_eq!(item["status"], "active");

    let response = app.delete(&path, Some(&seller)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = get_if_none_match(&app, &path, &etag).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "inactive"
    );
}

#[tokio::test]
async fn an_added_image_shows_on_the_page_at_once() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let path = item_path(&item);
    assert_eq!(page(&app, &path).await.1["images"], json!([]));

    let mut png = Cursor::new(Vec::new());
    RgbaImage::from_fn(3, 2, |x, y| image::Rgba([x as u8, y as u8, 7, 255]))
        .write_to(&mut png, ImageFormat::Png)
        .unwrap();
    let id = item["id"].as_str().unwrap();
    let created = app
        .upload_image(Some(&seller), id, "image/png", png.into_inner())
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = created.json::<Value>().await.unwrap()["url"].clone();
    assert_eq!(page(&app, &path).await.1["images"], json!([url]));
}

#[tokio::test]
async fn an_item_page_is_sent_uncompressed_as_its_strong_etag_names() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let path = item_path(&app.create_item(&seller, &mouse()).await);
    let response = app
        .client
        .get(app.url(&path))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("content-encoding").is_none());
    assert!(response.headers()["etag"]
        .to_str()
        .unwrap()
        .starts_with('"'));
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["name"], "Wireless Mouse");
}
