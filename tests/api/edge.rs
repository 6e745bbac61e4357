//! The server's edge, below the handlers: short and oversized bodies, idle
//! connections, limits on the request head, and what the HTTP stack
//! answers by itself. Most of these talk raw HTTP/1.1 over TCP, because a
//! well-behaved client cannot send what they send.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{mouse, problem, Options, TestApp};

/// A bound on waits that should end within a few seconds; it only keeps a
/// broken server from hanging the run, and is never what a test measures.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A server with rate limits off and these extra settings.
async fn spawn(settings: &[(&str, &str)]) -> TestApp {
    let mut options = Options::default().env("AGORA_RATE_LIMIT_PER_SEC", "0");
    for (key, value) in settings {
        options = options.env(key, value);
    }
    TestApp::spawn_with(options).await
}

fn address(app: &TestApp) -> &str {
    app.base.trim_start_matches("http://")
}

/// Everything the server sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let reading = tokio::time::timeout(HANG_GUARD, async {
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&received).into_owned();
    assert!(
        reading.is_ok(),
        "the server kept the connection open; it sent: {text}"
    );
    text
}

/// One response: its head, and as many body bytes as it declares.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let reading = tokio::time::timeout(HANG_GUARD, async {
        let mut buffer = [0u8; 8192];
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return;
                }
            }
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&received).into_owned();
    assert!(reading.is_ok(), "no complete response; received: {text}");
    text
}

/// Sends `request` on a new connection; returns the server's answer.
async fn exchange(app: &TestApp, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address(app)).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// The `code` of a raw problem+json response.
fn code(response: &str) -> String {
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}"
    );
    let body: Value = serde_json::from_str(body).expect("a JSON body");
    body["code"].as_str().expect("a code").to_owned()
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_408_once_it_stops_arriving() {
    // Without the body timeout this request would end as 503 TIMEOUT.
    let app = spawn(&[
        ("AGORA_BODY_READ_TIMEOUT_SECS", "1"),
        ("AGORA_REQUEST_TIMEOUT_MS", "20000"),
    ])
    .await;
    let response = exchange(
        &app,
        b"POST /users HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"email\":",
    )
    .await;
    assert_eq!(status(&response), 408, "{response}");
    assert_eq!(code(&response), "REQUEST_TIMEOUT");
}

#[tokio::test]
async fn a_declared_body_over_the_routes_limit_is_413_before_any_of_it_is_sent() {
    // Without the check the handler would wait for the body: 503 TIMEOUT.
    let app = spawn(&[("AGORA_REQUEST_TIMEOUT_MS", "20000")]).await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let id = item["id"].as_str().unwrap();
    let head = |path: &str, content_type: &str, length: usize| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {seller}\r\n\
             content-type: {content_type}\r\ncontent-length: {length}\r\n\r\n"
        )
    };
    let json = exchange(&app, head("/items", "application/json", 2 << 20).as_bytes()).await;
    assert_eq!(status(&json), 413, "{json}");
    assert_eq!(code(&json), "PAYLOAD_TOO_LARGE");
    let images = format!("/items/{id}/images");
    let image = exchange(&app, head(&images, "image/png", 6 << 20).as_bytes()).await;
    assert_eq!(status(&image), 413, "{image}");
    assert_eq!(code(&image), "PAYLOAD_TOO_LARGE");
    // The images route's own limit is 5 MiB: 2 MiB is read and judged.
    let under = app
        .client
        .post(app.url(&images))
        .bearer_auth(&seller)
        .header("content-type", "image/png")
        .body(vec![0u8; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(under.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn connections_that_never_finish_a_request_head_are_closed_and_others_are_served_meanwhile() {
    let app = spawn(&[("AGORA_HEADER_READ_TIMEOUT_SECS", "3")]).await;
    let mut idle = Vec::new();
    for i in 0..500 {
        let mut stream = TcpStream::connect(address(&app)).await.unwrap();
        // Half send part of a head (slowloris), half nothing at all.
        if i % 2 == 0 {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nhost: te")
                .await
                .unwrap();
        }
        idle.push(stream);
    }
    for _ in 0..20 {
        assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
    }
    for stream in &mut idle {
        // Closed by the server, without an answer.
        assert_eq!(read_until_closed(stream).await, "");
    }
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_kept_alive_connection_that_sends_nothing_more_is_closed_after_the_header_timeout() {
    let app = spawn(&[("AGORA_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(status(&response), 200, "{response}");
    // The server kept the connection for another request...
    assert!(!response.to_ascii_lowercase().contains("connection: close"));
    // ...and closed it once none came.
    assert_eq!(read_until_closed(&mut stream).await, "");
}

#[tokio::test]
async fn a_request_target_over_8_kib_is_414_problem_json() {
    let app = spawn(&[]).await;
    let long = format!("/items/{}", "a".repeat(9 * 1024));
    let response = app.get(&long, None).await;
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    assert_eq!(problem(response).await["code"], "URI_TOO_LONG");
    let fine = app
        .get(&format!("/items/{}", "a".repeat(7 * 1024)), None)
        .await;
    assert_eq!(fine.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn request_headers_over_16_kib_are_431_problem_json() {
    let app = spawn(&[]).await;
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-padding", "a".repeat(17 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(problem(response).await["code"], "HEADERS_TOO_LARGE");
}

#[tokio::test]
async fn requests_the_http_stack_refuses_itself_get_a_bare_4xx_and_a_closed_connection() {
    // The README lists these: hyper answers them before any of our code
    // runs, with an empty body. None may be a 5xx or leave the socket open.
    let app = spawn(&[]).await;
    let huge_head = format!(
        "GET /health HTTP/1.1\r\nhost: test\r\nx-padding: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let cases: [(&[u8], u16); 6] = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"G@T /health HTTP/1.1\r\nhost: test\r\n\r\n", 400),
        (b"GET /items/\0 HTTP/1.1\r\nhost: test\r\n\r\n", 400),
        (
            b"POST /users HTTP/1.1\r\nhost: test\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
            400,
        ),
        (
            b"POST /users HTTP/1.1\r\nhost: test\r\ntransfer-encoding: gzip\r\n\r\n",
            400,
        ),
        (huge_head.as_bytes(), 431),
    ];
    for (request, expected) in cases {
        let mut stream = TcpStream::connect(address(&app)).await.unwrap();
        stream.write_all(request).await.unwrap();
        let response = read_response(&mut stream).await;
        let sent = String::from_utf8_lossy(request);
        assert_eq!(status(&response), expected, "{sent}");
        assert!(response.ends_with("\r\n\r\n"), "no body: {response}");
        assert_eq!(read_until_closed(&mut stream).await, "", "{sent}");
    }
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
}
