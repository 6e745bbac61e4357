//! Sign-in throttling per account: failures for one email make its attempts
//! wait, whoever sends them and whatever the password, and are logged with
//! the email hashed and counted in `/metrics`.

use std::time::Duration;

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::helpers::{eventually, problem, ulid_like, Options, TestApp};

/// Three free failures, then 3 s, 6 s, ... waits.
async fn throttled_server() -> TestApp {
    TestApp::spawn_with(
        Options::default()
            .env("AGORA_RATE_LIMIT_PER_SEC", "0")
            .env("AGORA_SIGN_IN_FREE_FAILURES", "3")
            .env("AGORA_SIGN_IN_FIRST_WAIT_MS", "3000")
            .env("AGORA_SIGN_IN_LONGEST_WAIT_SECS", "60"),
    )
    .await
}

async fn registered(app: &TestApp, name: &str) -> String {
    let email = format!("{name}-{}@example.com", ulid_like());
    let created = app.register(&email, "correct horse", "buyer").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    email
}

/// One counter's value from `/metrics` (0 when not yet reported).
async fn counter(app: &TestApp, name: &str) -> u64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn repeated_failures_make_that_email_wait_even_with_the_right_password() {
    let app = throttled_server().await;
    let target = registered(&app, "target").await;
    let other = registered(&app, "other").await;

    for guess in 1..=3 {
        let response = app.sign_in(&target, &format!("guess-number-{guess}")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {guess}");
        assert_eq!(problem(response).await["code"], "INVALID_CREDENTIALS");
    }
    // The owner's right password waits too: a 201 here would tell a
    // guesser that the guess was right.
    let waiting = app.sign_in(&target, "correct horse").await;
    assert_eq!(waiting.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = waiting.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry_after), "{retry_after}");
    assert_eq!(problem(waiting).await["code"], "SIGN_IN_THROTTLED");

    // Another account is not affected.
    assert_eq!(
        app.sign_in(&other, "correct horse").await.status(),
        StatusCode::CREATED
    );

    // Once the wait is over the right password works and clears the count:
    // the next failure is an ordinary 401, not another wait.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        app.sign_in(&target, "correct horse").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.sign_in(&target, "guess-number-4").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Logged with the email hashed, never the email or a password. The
    // server's output reaches the test through a pipe: wait for the last line.
    eventually("the fourth failure is logged", || async {
        app.logs().matches("sign-in failed").count() >= 4
    })
    .await;
    let logs = app.logs();
    let hashed: String = Sha256::digest(target.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let failures: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("sign-in failed"))
        .collect();
    assert_eq!(failures.len(), 4, "{logs}");
    assert!(failures.iter().all(|line| line.contains(&hashed)), "{logs}");
    assert!(!logs.contains(&target), "the email in clear: {logs}");
    assert!(!logs.contains("guess-number"), "a password: {logs}");
    assert!(!logs.contains("correct horse"), "a password: {logs}");

    assert_eq!(counter(&app, "agora_sign_in_failures_total").await, 4);
    assert_eq!(counter(&app, "agora_sign_in_throttled_total").await, 1);
}

#[tokio::test]
async fn an_email_without_an_account_is_throttled_the_same_way() {
    let app = throttled_server().await;
    let nobody = format!("nobody-{}@example.com", ulid_like());
    for _ in 0..3 {
        assert_eq!(
            app.sign_in(&nobody, "correct horse").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let waiting = app.sign_in(&nobody, "correct horse").await;
    assert_eq!(waiting.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(waiting.headers().contains_key("retry-after"));
    assert_eq!(problem(waiting).await["code"], "SIGN_IN_THROTTLED");
}
