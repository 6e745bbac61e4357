//! Health, readiness, metrics and the OpenAPI document.

use std::io::{BufRead, BufReader};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{agora_command, item_path, mouse, problem, Options, TestApp, ONE_PIXEL_PNG};

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
        ("/cluster", "get"),
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

#[tokio::test]
async fn with_admin_http_set_metrics_move_to_their_own_listener() {
    let app = TestApp::spawn_with(
        Options::default()
            .env("AGORA_RATE_LIMIT_PER_SEC", "0")
            .arg("--admin-http")
            .arg("127.0.0.1:0"),
    )
    .await;
    let admin = app.admin_base().expect("the admin listener's address");
    app.get("/health", None).await;
    let metrics = app
        .client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"agora_http_requests_total{method="GET",route="/health""#),
        "{text}"
    );
    let public = app.get("/metrics", None).await;
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem(public).await["code"], "NOT_FOUND");
    let document: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert!(document["paths"].get("/metrics").is_none());
    // The admin listener serves nothing else.
    let other = app
        .client
        .get(format!("{admin}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_admin_address_may_come_from_the_environment() {
    let app = TestApp::spawn_with(
        Options::default()
            .env("AGORA_RATE_LIMIT_PER_SEC", "0")
            .env("AGORA_ADMIN_HTTP", "127.0.0.1:0"),
    )
    .await;
    let admin = app.admin_base().expect("the admin listener's address");
    let metrics = app
        .client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert_eq!(
        app.get("/metrics", None).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn serve_is_the_default_command_and_takes_its_flags_without_being_named() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let mut child = agora_command(
        dir.path(),
        &[
            "--http",
            "127.0.0.1:0",
            "--data-dir",
            scratch.to_str().unwrap(),
        ],
        &[],
    )
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let listening = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("agora listening on ").map(str::to_owned))
    })
    .join()
    .unwrap();
    let Some(base) = listening else {
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        panic!(
            "no node started: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(scratch.join("db").exists() || scratch.read_dir().unwrap().next().is_some());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn the_data_directory_and_everything_in_it_are_private_to_the_nodes_user() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    // Touch every kind of file the node writes: records, the search index,
    // an image, the sealing key (written at start).
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let uploaded = app
        .upload_image(
            Some(&seller),
            item["id"].as_str().unwrap(),
            "image/png",
            ONE_PIXEL_PNG.to_vec(),
        )
        .await;
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    crate::helpers::eventually("the item is indexed", || async {
        app.get_json("/items?term=mouse").await["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
    })
    .await;
    let root = app.data_dir().join("node");
    let mode = |path: &std::path::Path| path.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    let mut pending = vec![root];
    let mut files = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                pending.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    assert!(files > 3, "only {files} files were checked");
}
