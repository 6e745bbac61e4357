//! What survives: kill -9, restarts and shutdown; and start-up settings.

use std::io::Write;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{item_path, mouse, run_to_exit, Options, TestApp};

#[tokio::test]
async fn items_acknowledged_just_before_kill_9_are_there_after_restart() {
    let mut app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    // Many concurrent creates, so some acknowledgements share a group commit;
    // the process dies right after the last acknowledgement.
    let creates = (0..40).map(|i| {
        let mut body = mouse();
        body["name"] = json!(format!("Mouse {i}"));
        let (app, seller) = (&app, &seller);
        async move {
            app.create_item(seller, &body).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    });
    let ids: Vec<String> = futures::future::join_all(creates).await;
    app.kill9();
    let app = app.restart();
    for id in &ids {
        let response = app.get(&format!("/items/{id}"), None).await;
        assert_eq!(response.status(), StatusCode::OK, "item {id} lost");
    }
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let app = TestApp::spawn().await;
    let token = app.user_token("buyer").await;
    let app = app.restart();
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sigterm_stops_the_node_cleanly_and_keeps_its_data() {
    let mut app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let status = app.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(app.logs().contains("storage flushed"), "{}", app.logs());
    let app = app.restart();
    let fetched = app.get_json(&item_path(&item)).await;
    assert_eq!(fetched["name"], "Wireless Mouse");
}

#[tokio::test]
async fn a_request_in_flight_at_sigterm_is_finished_before_the_node_stops() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut app = TestApp::spawn().await;
    let body = json!({"email": "late@example.com", "password": "correct horse", "name": "Late"})
        .to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!(
        "POST /users HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{head}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Let the server read the headers, so the request is in flight, then
    // signal while half of the body is still missing.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    app.send_sigterm();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stream.write_all(tail.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(app.wait_exit().success());
    let app = app.restart();
    assert_eq!(
        app.sign_in("late@example.com", "correct horse")
            .await
            .status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn invalid_settings_stop_start_up_with_every_problem_named() {
    let dir = tempfile::tempdir().unwrap();
    let (status, output) = run_to_exit(
        dir.path(),
        &["serve", "--http", "127.0.0.1:0"],
        &[
            ("AGORA_REQUEST_TIMEOUT_MS", "0"),
            ("AGORA_PAYMENT_TTL_SECS", "0"),
        ],
    );
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("request_timeout_ms") && output.contains("payment_ttl_secs"),
        "{output}"
    );
    let (status, output) = run_to_exit(dir.path(), &["serve", "--http", "nowhere"], &[]);
    assert_eq!(status.code(), Some(2), "{output}");
}

#[tokio::test]
async fn the_config_file_is_read_and_the_environment_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.toml");
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(f, "node_id = \"n1\"\nrate_limit_per_sec = 1\n[[cluster.nodes]]\nid = \"n1\"\nhttp = \"127.0.0.1:8080\"").unwrap();
    let config = file.to_str().unwrap();

    let hits_limit = |app: &TestApp| {
        let url = app.url("/health");
        let client = app.client.clone();
        async move {
            for _ in 0..20 {
                if client.get(&url).send().await.unwrap().status() == StatusCode::TOO_MANY_REQUESTS
                {
                    return true;
                }
            }
            false
        }
    };
    let from_file = TestApp::spawn_with(Options::default().arg("--config").arg(config)).await;
    assert!(
        hits_limit(&from_file).await,
        "the file's rate limit applies"
    );
    let env_wins = TestApp::spawn_with(
        Options::default()
            .arg("--config")
            .arg(config)
            .env("AGORA_RATE_LIMIT_PER_SEC", "0"),
    )
    .await;
    assert!(
        !hits_limit(&env_wins).await,
        "the environment overrides the file"
    );
    let flag_wins = TestApp::spawn_with(
        Options::default()
            .arg("--config")
            .arg(config)
            .arg("--rate-limit-per-sec")
            .arg("1")
            .env("AGORA_RATE_LIMIT_PER_SEC", "0"),
    )
    .await;
    assert!(
        hits_limit(&flag_wins).await,
        "the flag overrides the environment"
    );
}
