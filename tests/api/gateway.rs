//! The gateway's duties: request ids, rate limits, body limits, CORS, and
//! problem+json for every error.

use reqwest::header::HeaderValue;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{eventually, item_path, mouse, problem, Options, TestApp, ONE_PIXEL_PNG};

#[tokio::test]
async fn every_response_carries_a_request_id_echoing_the_clients() {
    let app = TestApp::spawn().await;
    let generated = app.get("/health", None).await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!id.is_empty());
    let echoed = app
        .client
        .get(app.url("/items/nope"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(Options::default().env("AGORA_RATE_LIMIT_PER_SEC", "1")).await;
    let mut limited = None;
    for _ in 0..20 {
        let response = app.get("/health", None).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("20 quick requests at 1/s must hit the limit");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(problem(response).await["code"], "RATE_LIMITED");
}

#[tokio::test]
async fn signed_in_clients_have_their_own_bucket() {
    let app = TestApp::spawn_with(Options::default().env("AGORA_RATE_LIMIT_PER_SEC", "2")).await;
    // Registration and sign-in spend the anonymous (IP) bucket...
    let token = loop {
        let email = format!("{}@example.com", crate::helpers::ulid_like());
        if app
            .register(&email, "correct horse", "buyer")
            .await
            .status()
            != StatusCode::CREATED
        {
            tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            continue;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let session = app.sign_in(&email, "correct horse").await;
        if session.status() == StatusCode::CREATED {
            break session.json::<serde_json::Value>().await.unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned();
        }
    };
    // ...then exhaust the IP bucket anonymously.
    while app.get("/health", None).await.status() != StatusCode::TOO_MANY_REQUESTS {}
    // The token's bucket is untouched.
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_two_mebibyte_body_is_413() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let mut body = mouse();
    body["description"] = json!("x".repeat(2 * 1024 * 1024));
    let response = app.post("/items", Some(&seller), &body).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem(response).await["code"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn a_non_json_content_type_is_415() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/users"))
        .body("email=a@b.c")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(problem(response).await["code"], "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_problem_json() {
    let app = TestApp::spawn().await;
    let missing = app.get("/no/such/thing", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem(missing).await["code"], "NOT_FOUND");
    let wrong = app.client.put(app.url("/health")).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong.headers().contains_key("allow"));
    assert_eq!(problem(wrong).await["code"], "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/items"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let allowed = response.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allowed.contains("POST"), "{allowed}");
}

#[tokio::test]
async fn hostile_input_never_causes_a_server_error() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let nasty = [
        json!({"name": "\u{0000}\u{FEFF}", "description": null, "price": i64::MAX, "quantity": i64::MIN}),
        json!({"name": "😀".repeat(300), "description": "\u{202E}".repeat(50), "price": 0, "quantity": 0}),
        json!({"name": "x", "description": "y", "price": 1, "quantity": 1, "variants": [{"price": -1, "quantity": 1e3}]}),
        json!({"name": "x", "description": "y", "price": 1, "quantity": 1, "attributes": {"": 1}}),
        json!({"name": "x", "description": "y", "price": 1, "quantity": 1, "tags": [null]}),
        json!("just a string"),
        json!(null),
    ];
    for body in nasty {
        let response = app.post("/items", Some(&seller), &body).await;
        assert!(
            response.status().is_client_error() || response.status() == StatusCode::CREATED,
            "{body}"
        );
        if response.status().is_client_error() {
            problem(response).await;
        }
    }
    // 100,000 levels of nesting (200 KB): parsing must refuse, not overflow the stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let response = app
        .client
        .post(app.url("/items"))
        .bearer_auth(&seller)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    problem(response).await;
    let odd_paths = [
        "/items/%00",
        "/items/..%2F..%2Fetc",
        "/users/me?token=%FF",
        "/items/x/stock",
    ];
    for path in odd_paths {
        let response = app.get(path, None).await;
        assert!(
            response.status().is_client_error(),
            "{path}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_503_timeout() {
    // Argon2id hashing alone takes far longer than one millisecond.
    let app = TestApp::spawn_with(Options::default().env("AGORA_REQUEST_TIMEOUT_MS", "1")).await;
    let response = app
        .register("slow@example.com", "correct horse", "buyer")
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem(response).await["code"], "TIMEOUT");
}

#[tokio::test]
async fn a_request_id_is_echoed_only_if_it_is_1_to_128_visible_ascii_characters() {
    let app = TestApp::spawn().await;
    let sent_back = |id: &[u8]| {
        let request = app
            .client
            .get(app.url("/health"))
            .header("x-request-id", HeaderValue::from_bytes(id).unwrap());
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"].as_bytes().to_vec()
        }
    };
    let longest = [b'a'; 128];
    assert_eq!(sent_back(&longest).await, longest);
    assert_eq!(sent_back(b"trace-me-42").await, b"trace-me-42");
    let refused: [&'static [u8]; 4] = [&[b'a'; 129], b"", b"has space", "café".as_bytes()];
    for id in refused {
        let made = sent_back(id).await;
        assert_ne!(made, id);
        // A fresh ULID instead.
        assert_eq!(made.len(), 26, "{}", String::from_utf8_lossy(&made));
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_media_may_be_embedded_elsewhere() {
    let app = TestApp::spawn().await;
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
    let media: serde_json::Value = uploaded.json().await.unwrap();
    let media = media["url"].as_str().unwrap().to_owned();
    let paths = [
        "/health",
        "/items/nope",
        "/users/me",
        &item_path(&item),
        &media,
    ];
    for path in paths {
        let response = app.get(path, None).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.starts_with("default-src 'none'"), "{path}: {policy}");
        if path == media {
            assert_eq!(headers["cross-origin-resource-policy"], "cross-origin");
        } else {
            assert!(
                policy.contains("frame-ancestors 'none'"),
                "{path}: {policy}"
            );
        }
    }
}

/// Whether `response` says it varies on `Origin` (among other headers).
fn varies_on_origin(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("origin"))
}

/// Whether `response` lets no other origin read it.
fn grants_no_origin(response: &reqwest::Response) -> bool {
    !response
        .headers()
        .contains_key("access-control-allow-origin")
}

#[tokio::test]
async fn a_request_without_an_origin_gets_no_cors_headers_but_varies_on_origin() {
    let app = TestApp::spawn().await;
    let response = app.get("/health", None).await;
    assert!(response.status().is_success());
    let headers = response.headers();
    assert!(grants_no_origin(&response), "{headers:?}");
    assert!(
        !headers.contains_key("access-control-expose-headers"),
        "{headers:?}"
    );
    // A cache must not hand this answer to a cross-origin request.
    assert!(varies_on_origin(&response), "{headers:?}");
}

#[tokio::test]
async fn a_cross_origin_request_gets_the_cors_headers_only_from_an_allowed_origin() {
    let app = TestApp::spawn_with(
        Options::default()
            .env("AGORA_RATE_LIMIT_PER_SEC", "0")
            .env("AGORA_CORS_ORIGINS", "https://shop.example"),
    )
    .await;
    let from = |origin: &'static str| {
        app.client
            .get(app.url("/health"))
            .header("origin", origin)
            .send()
    };
    let allowed = from("https://shop.example").await.unwrap();
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example"
    );
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert!(varies_on_origin(&allowed), "{headers:?}");

    let other = from("https://elsewhere.example").await.unwrap();
    assert!(other.status().is_success());
    let headers = other.headers();
    assert!(grants_no_origin(&other), "{headers:?}");
    assert!(varies_on_origin(&other), "{headers:?}");
}

#[tokio::test]
async fn every_line_logged_inside_a_request_names_its_method_route_and_request_id() {
    let app = TestApp::spawn().await;
    for id in ["log-me-1", "log-me-2"] {
        let refused = app
            .client
            .post(app.url("/sessions"))
            .header("x-request-id", id)
            .json(&json!({"email": "nobody@example.com", "password": "not-the-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    eventually("both failures are logged", || async {
        app.logs().matches("sign-in failed").count() >= 2
    })
    .await;
    let logs = app.logs();
    for id in ["log-me-1", "log-me-2"] {
        let span = format!(r#"request{{method=POST route="/sessions" request_id="{id}"}}"#);
        let line = logs
            .lines()
            .find(|line| line.contains("sign-in failed") && line.contains(id));
        assert!(
            line.is_some_and(|line| line.contains(&span)),
            "{span}\n{logs}"
        );
    }
}
