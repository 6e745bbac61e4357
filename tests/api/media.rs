//! Item images: uploads decoded in full as their declared type, served
//! content-addressed with strong ETags and immutable caching.

use std::io::Cursor;

use image::{ImageFormat, RgbImage, RgbaImage};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{mouse, problem, TestApp};

/// A real `width` × `height` image in `format`, made here.
fn encoded(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    if format == ImageFormat::Jpeg {
        // JPEG has no alpha channel.
        RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 90]))
            .write_to(&mut bytes, format)
            .unwrap();
    } else {
        RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([x as u8, y as u8, 90, 255])
        })
        .write_to(&mut bytes, format)
        .unwrap();
    }
    bytes.into_inner()
}

fn png() -> Vec<u8> {
    encoded(ImageFormat::Png, 4, 3)
}

#[tokio::test]
async fn sellers_upload_images_that_are_served_with_etags_and_long_caching() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let id = item["id"].as_str().unwrap().to_owned();

    let created = app
        .upload_image(Some(&seller), &id, "image/png", png())
        .await;
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
    assert_eq!(
        served.bytes().await.unwrap().as_ref(),
        png(),
        "the bytes as sent"
    );
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
        ("image/jpeg", png()),
    ] {
        let refused = app
            .upload_image(Some(&seller), &id, content_type, body)
            .await;
        assert_eq!(
            refused.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    let mut big = png();
    big.resize(5 * 1024 * 1024 + 1, 0);
    assert_eq!(
        app.upload_image(Some(&seller), &id, "image/png", big)
            .await
            .status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Only the owning seller.
    let other = app.user_token("seller").await;
    assert_eq!(
        app.upload_image(Some(&other), &id, "image/png", png())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let buyer = app.user_token("buyer").await;
    assert_eq!(
        app.upload_image(Some(&buyer), &id, "image/png", png())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.upload_image(None, &id, "image/png", png())
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

#[tokio::test]
async fn only_images_that_decode_in_full_as_their_declared_type_are_stored() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let id = item["id"].as_str().unwrap().to_owned();

    for (content_type, format) in [
        ("image/png", ImageFormat::Png),
        ("image/jpeg", ImageFormat::Jpeg),
        ("image/webp", ImageFormat::WebP),
    ] {
        let real = encoded(format, 16, 16);
        let created = app
            .upload_image(Some(&seller), &id, content_type, real.clone())
            .await;
        assert_eq!(created.status(), StatusCode::CREATED, "{content_type}");
        let url = created.json::<Value>().await.unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let served = app.get(&url, None).await;
        assert_eq!(served.headers()["content-type"], content_type);
        assert_eq!(
            served.bytes().await.unwrap().as_ref(),
            real,
            "stored as sent"
        );
    }

    let html = b"<html><script>alert(document.cookie)</script></html>".as_slice();
    let polyglot = |magic: &[u8]| [magic, html].concat();
    let truncated = |format: ImageFormat| {
        let whole = encoded(format, 64, 64);
        whole[..whole.len() / 2].to_vec()
    };
    let refused = [
        (
            "PNG magic then HTML",
            "image/png",
            polyglot(b"\x89PNG\r\n\x1a\n"),
        ),
        (
            "JPEG magic then HTML",
            "image/jpeg",
            polyglot(&[0xFF, 0xD8, 0xFF, 0xE0]),
        ),
        (
            "WebP magic then HTML",
            "image/webp",
            polyglot(b"RIFF\x40\x00\x00\x00WEBPVP8 "),
        ),
        ("half a PNG", "image/png", truncated(ImageFormat::Png)),
        ("half a JPEG", "image/jpeg", truncated(ImageFormat::Jpeg)),
        ("half a WebP", "image/webp", truncated(ImageFormat::WebP)),
        ("a PNG declared as JPEG", "image/jpeg", png()),
        // Tiny on the wire (it compresses to almost nothing) but wider
        // than the server decodes: a decompression bomb in miniature.
        (
            "9000 pixels wide",
            "image/png",
            encoded(ImageFormat::Png, 9_000, 1),
        ),
    ];
    for (what, content_type, body) in refused {
        let response = app
            .upload_image(Some(&seller), &id, content_type, body)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{what}"
        );
        assert_eq!(
            problem(response).await["code"],
            "UNSUPPORTED_MEDIA_TYPE",
            "{what}"
        );
    }
    let item = app.get_json(&format!("/items/{id}")).await;
    assert_eq!(
        item["images"].as_array().unwrap().len(),
        3,
        "only the three real images were added"
    );
}
