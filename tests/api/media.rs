//! Item images: upload checked by magic bytes, served content-addressed with
//! strong ETags and immutable caching.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{mouse, TestApp};

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00";

async fn upload(
    app: &TestApp,
    token: Option<&str>,
    item: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/items/{item}/images")))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn sellers_upload_images_that_are_served_with_etags_and_long_caching() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let id = item["id"].as_str().unwrap().to_owned();

    let created = upload(&app, Some(&seller), &id, "image/png", PNG.to_vec()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = created.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("/media/"));
    let item = app.get_json(&format!("/items/{id}")).await;
    assert_eq!(item["images"], serde_json::json!([url]));

    let served = app.get(&url, None).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert!(served.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let etag = served.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "a strong ETag: {etag}"
    );
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    let cached = app
        .client
        .get(app.url(&url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // Judged by the bytes, not only the header.
    for (content_type, body) in [
        ("text/plain", b"hello".to_vec()),
        ("image/png", b"hello, not a png".to_vec()),
        ("image/jpeg", PNG.to_vec()),
    ] {
        let refused = upload(&app, Some(&seller), &id, content_type, body).await;
        assert_eq!(
            refused.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    let mut big = PNG.to_vec();
    big.resize(5 * 1024 * 1024 + 1, 0);
    assert_eq!(
        upload(&app, Some(&seller), &id, "image/png", big)
            .await
            .status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Only the owning seller.
    let other = app.user_token("seller").await;
    assert_eq!(
        upload(&app, Some(&other), &id, "image/png", PNG.to_vec())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let buyer = app.user_token("buyer").await;
    assert_eq!(
        upload(&app, Some(&buyer), &id, "image/png", PNG.to_vec())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        upload(&app, None, &id, "image/png", PNG.to_vec())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Withdrawing the item does not break the image (orders keep showing it).
    let withdrawn = app.delete(&format!("/items/{id}"), Some(&seller)).await;
    assert_eq!(withdrawn.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&url, None).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/media/0000", None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/media/{}", "a".repeat(64)), None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}
