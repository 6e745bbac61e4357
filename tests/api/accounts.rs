//! Users and sessions.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{problem, ulid_like, Options, TestApp};

fn email() -> String {
    format!("asha-{}@example.com", ulid_like())
}

#[tokio::test]
async fn registering_returns_the_user_and_never_the_password() {
    let app = TestApp::spawn().await;
    let address = email();
    let response = app
        .register(&address.to_uppercase(), "correct horse", "seller")
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["email"], address, "email is normalized to lower case");
    assert_eq!(user["role"], "seller");
    assert!(
        user["id"].as_str().unwrap().len() == 26
            && user["createdAt"].as_str().unwrap().ends_with('Z')
    );
    let text = user.to_string();
    assert!(
        !text.contains("correct horse") && !text.contains("argon2"),
        "{text}"
    );
}

#[tokio::test]
async fn the_role_defaults_to_buyer() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/users",
            None,
            &json!({"email": email(), "password": "12345678", "name": "B"}),
        )
        .await;
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["role"], "buyer");
}

#[tokio::test]
async fn a_duplicate_email_is_409_email_taken_whatever_its_case() {
    let app = TestApp::spawn().await;
    let address = email();
    assert_eq!(
        app.register(&address, "correct horse", "buyer")
            .await
            .status(),
        StatusCode::CREATED
    );
    let again = app
        .register(
            &format!("  {}", address.to_uppercase()),
            "another one",
            "buyer",
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(problem(again).await["code"], "EMAIL_TAKEN");
}

#[tokio::test]
async fn a_bad_email_a_short_password_and_a_bad_role_are_all_named() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "not-an-email", "password": "short", "name": "  ", "role": "admin"});
    let response = app.post("/users", None, &body).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(response).await;
    assert_eq!(problem["code"], "VALIDATION_FAILED");
    for field in ["email", "password", "name", "role"] {
        assert!(
            problem["errors"][field].is_string(),
            "{field} not named: {problem}"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_or_unknown_email_is_401_invalid_credentials() {
    let app = TestApp::spawn().await;
    let address = email();
    app.register(&address, "correct horse", "buyer").await;
    for (who, password) in [
        (address.as_str(), "wrong horse"),
        ("nobody@example.com", "correct horse"),
    ] {
        let response = app.sign_in(who, password).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(problem(response).await["code"], "INVALID_CREDENTIALS");
    }
}

#[tokio::test]
async fn signing_in_returns_a_token_that_opens_users_me() {
    let app = TestApp::spawn().await;
    let address = email();
    app.register(&address, "correct horse", "buyer").await;
    let session: Value = app
        .sign_in(&address, "correct horse")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"]["email"], address);
    assert!(session["expiresAt"].is_string());
    let me = app.get("/users/me", session["token"].as_str()).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], address);
    assert_eq!(me["addresses"], json!([]));
}

#[tokio::test]
async fn users_me_without_a_valid_token_is_401_with_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    for token in [
        None,
        Some("garbage"),
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let response = app.get("/users/me", token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(problem(response).await["code"], "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn signing_out_kills_the_token_at_once() {
    let app = TestApp::spawn().await;
    let token = app.user_token("buyer").await;
    assert_eq!(
        app.delete("/sessions", Some(&token)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.delete("/sessions", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_session_stops_working_when_it_expires() {
    let app = TestApp::spawn_with(Options::default().env("AGORA_SESSION_TTL_SECS", "1")).await;
    let token = app.user_token("buyer").await;
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_profile_takes_a_name_and_addresses() {
    let app = TestApp::spawn().await;
    let token = app.user_token("buyer").await;
    let address = json!({"line1": " 12  MG Road ", "city": "Bengaluru", "state": "KA", "postalCode": "560001", "country": "IN"});
    let response = app
        .patch(
            "/users/me",
            Some(&token),
            &json!({"name": "Asha <b>K</b>", "addresses": [address]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = app
        .get("/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "Asha K");
    assert_eq!(me["addresses"][0]["line1"], "12 MG Road");
    assert_eq!(me["addresses"][0]["postalCode"], "560001");
}

#[tokio::test]
async fn an_incomplete_address_is_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let token = app.user_token("buyer").await;
    let body = json!({"addresses": [{"line1": "1 Road", "city": "Pune", "country": "IN"}]});
    let response = app.patch("/users/me", Some(&token), &body).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(response).await;
    assert!(
        problem["errors"]["addresses[0].postalCode"].is_string(),
        "{problem}"
    );
}
