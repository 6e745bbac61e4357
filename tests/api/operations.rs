//! Health, readiness, metrics and the OpenAPI document.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{item_path, mouse, TestApp};

#[tokio::test]
async fn health_and_ready_are_200_on_a_running_node() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
    let ready = app.get("/ready", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap()["storage"], "ok");
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_route() {
    let app = TestApp::spawn().await;
    let document: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = document["paths"].as_object().unwrap();
    let expected = [
        ("/users", "post"),
        ("/users/me", "get"),
        ("/users/me", "patch"),
        ("/sessions", "post"),
        ("/sessions", "delete"),
        ("/items", "post"),
        ("/items/{id}", "get"),
        ("/items/{id}", "patch"),
        ("/items/{id}", "delete"),
        ("/items/{id}/stock", "post"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    assert!(document["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_with_latency_histograms() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    for _ in 0..3 {
        app.get(&item_path(&item), None).await;
    }
    app.get("/items/01ARZ3NDEKTSV4RRFFQ69G5FAV", None).await;
    for odd in ["BREW", "XYZZY"] {
        let method = reqwest::Method::from_bytes(odd.as_bytes()).unwrap();
        app.client
            .request(method, app.url("/health"))
            .send()
            .await
            .unwrap();
    }
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.starts_with(needle))
            .map(str::to_owned)
    };
    let ok = line(r#"agora_http_requests_total{method="GET",route="/items/{id}",status="200"}"#)
        .expect(&text);
    assert!(ok.ends_with(" 3"), "{ok}");
    assert!(
        line(r#"agora_http_requests_total{method="GET",route="/items/{id}",status="404"}"#)
            .is_some()
    );
    assert!(text.contains(r#"agora_http_request_duration_seconds_bucket{method="GET",route="/items/{id}",status="200",le="#));
    // Unknown methods share one label value instead of each adding a series.
    let other = line(r#"agora_http_requests_total{method="other",route="/health",status="405"}"#)
        .expect(&text);
    assert!(other.ends_with(" 2"), "{other}");
    assert!(!text.contains("BREW") && !text.contains("XYZZY"));
}
