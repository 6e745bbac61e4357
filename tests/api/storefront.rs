//! The pages the binary serves: the storefront at `/`, the seller page at
//! `/seller`, and their embedded assets, each with a policy that lets only
//! this origin's scripts and styles run.

use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;

use crate::helpers::{problem, TestApp};

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_storefront_and_the_seller_page_are_html_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    for (path, script) in [
        ("/", "/assets/storefront.js"),
        ("/seller", "/assets/seller.js"),
    ] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            header(&response, CONTENT_TYPE).starts_with("text/html"),
            "{path}"
        );
        let policy = header(&response, CONTENT_SECURITY_POLICY);
        for directive in [
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "img-src 'self' data:",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        let html = response.text().await.unwrap();
        assert!(html.contains(&format!("src=\"{script}\"")), "{path}");
        assert!(!html.contains("<script>"), "{path}: no inline script");
        assert!(!html.contains("style="), "{path}: no inline style");
    }
}

#[tokio::test]
async fn assets_load_with_their_types_and_revalidate_by_etag() {
    let app = TestApp::spawn().await;
    // Every script, style and icon in `web/` (the pages import each other,
    // so a module left out of the binary breaks them).
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut assets: Vec<(String, &str)> = std::fs::read_dir(&web)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| {
            let kind = match name.rsplit('.').next()? {
                "js" => "text/javascript",
                "css" => "text/css",
                "svg" => "image/svg+xml",
                _ => return None,
            };
            Some((format!("/assets/{name}"), kind))
        })
        .collect();
    assets.sort();
    assert!(assets.len() >= 10, "{assets:?}");
    for (path, kind) in assets {
        let path = path.as_str();
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(header(&response, CONTENT_TYPE).starts_with(kind), "{path}");
        assert!(!header(&response, "cache-control".parse().unwrap()).is_empty());
        let tag = header(&response, ETAG);
        assert!(!tag.is_empty(), "{path}");

        let again = reqwest::Client::new()
            .get(app.url(path))
            .header(IF_NONE_MATCH, &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
}

#[tokio::test]
async fn an_unknown_asset_is_a_404_problem() {
    let app = TestApp::spawn().await;
    for path in [
        "/assets/nope.js",
        "/assets/..%2Findex.html",
        "/assets/index.html",
    ] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(problem(response).await["code"], "NOT_FOUND", "{path}");
    }
}

#[tokio::test]
async fn the_pages_stay_out_of_the_openapi_document() {
    let app = TestApp::spawn().await;
    let document = app.get_json("/openapi.json").await;
    let paths = document["paths"].as_object().unwrap();
    for path in ["/", "/seller", "/assets/{file}"] {
        assert!(!paths.contains_key(path), "{path}");
    }
}
