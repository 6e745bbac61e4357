//! The notifications inbox's ids and cursors: opaque, unguessable, and
//! refused when forged or edited.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{eventually, problem, TestApp};
use crate::shop::{server, Buyer, Shop, GOOD_CARD};

async fn inbox(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.get(&format!("/notifications{query}"), Some(token))
        .await
}

/// The buyer's whole inbox, once it holds `count` notifications.
async fn inbox_of(app: &TestApp, token: &str, count: usize) -> Vec<Value> {
    eventually("the inbox fills", || async {
        let page: Value = inbox(app, token, "?size=100").await.json().await.unwrap();
        page["items"].as_array().unwrap().len() == count
    })
    .await;
    let page: Value = inbox(app, token, "?size=100").await.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

/// Flips one character of `token` (keeping it base64url).
fn edited(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[2] = if bytes[2] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn notification_ids_are_opaque_and_only_their_owner_can_use_them() {
    let app = server(&[("AGORA_PAYMENT_LATENCY_MS", "0")]).await;
    let shop = Shop::open(&app, 500, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let url = format!(
        "{}/ws?token={}",
        app.base.replacen("http://", "ws://", 1),
        buyer.token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(
        buyer.checkout(&app, GOOD_CARD).await.status(),
        StatusCode::CREATED
    );

    // CREATED, PAYMENT_PENDING, CONFIRMED: three events in a row, whose ids
    // share nothing a client could count or guess from.
    let items = inbox_of(&app, &buyer.token, 3).await;
    let ids: Vec<&str> = items.iter().map(|n| n["id"].as_str().unwrap()).collect();
    for id in &ids {
        assert!(id.len() >= 22, "at least 128 bits: {id}");
        assert!(
            !id.bytes().all(|b| b.is_ascii_hexdigit()),
            "not a counter in hex: {id}"
        );
    }
    assert_ne!(ids[0][..6], ids[1][..6], "{ids:?}");
    assert_ne!(ids[1][..6], ids[2][..6], "{ids:?}");

    // The socket's frame carries the same id as the inbox.
    let pushed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(Ok(Message::Text(text))) = socket.next().await {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "notification" && frame["id"] == json!(ids[0]) {
                    return frame;
                }
            }
        }
    })
    .await
    .expect("the confirmation's frame carries the inbox's id");
    assert_eq!(pushed["message"], items[0]["message"]);

    // Reading works by the opaque id; a stranger, an edit, a forgery or the
    // old counter-style id finds nothing.
    let stranger = app.user_token("buyer").await;
    let read = |id: &str| format!("/notifications/{id}/read");
    assert_eq!(
        app.post(&read(ids[1]), Some(&stranger), &json!({}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    for forged in [edited(ids[1]), "0000000000000001".into(), "A".repeat(32)] {
        let response = app
            .post(&read(&forged), Some(&buyer.token), &json!({}))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{forged}");
        assert_eq!(problem(response).await["code"], "NOT_FOUND");
    }
    assert_eq!(
        app.post(&read(ids[1]), Some(&buyer.token), &json!({}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let items = inbox_of(&app, &buyer.token, 3).await;
    let read_flags: Vec<bool> = items.iter().map(|n| n["read"].as_bool().unwrap()).collect();
    assert_eq!(read_flags, [false, true, false]);

    // Stored notifications keep their ids across a restart.
    let app = app.restart();
    let again = inbox_of(&app, &buyer.token, 3).await;
    let again: Vec<&str> = again.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(again, ids);
    assert_eq!(
        app.post(&read(ids[2]), Some(&buyer.token), &json!({}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn an_inbox_cursor_that_was_forged_or_edited_is_invalid() {
    let app = server(&[("AGORA_PAYMENT_LATENCY_MS", "0")]).await;
    let shop = Shop::open(&app, 500, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    assert_eq!(
        buyer.checkout(&app, GOOD_CARD).await.status(),
        StatusCode::CREATED
    );
    let all = inbox_of(&app, &buyer.token, 3).await;

    let first: Value = inbox(&app, &buyer.token, "?size=1")
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let second: Value = inbox(&app, &buyer.token, &format!("?size=1&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"][0]["id"], all[1]["id"]);

    // The old unsealed form (the sequence number in base64), an edit, and
    // a notification id offered as a cursor are all refused.
    let id = all[0]["id"].as_str().unwrap().to_owned();
    for forged in ["AAAAAAAAAAE".to_owned(), edited(&cursor), id] {
        let response = inbox(&app, &buyer.token, &format!("?cursor={forged}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{forged}");
        assert_eq!(problem(response).await["code"], "INVALID_CURSOR");
    }
}
