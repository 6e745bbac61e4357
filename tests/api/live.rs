//! Live updates over `GET /ws`, with a tokio-tungstenite client against the
//! real server.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;
use crate::shop::{server, Buyer, Shop, GOOD_CARD};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(app: &TestApp, token: &str) -> String {
    format!(
        "{}/ws?token={token}",
        app.base.replacen("http://", "ws://", 1)
    )
}

async fn open(app: &TestApp, token: &str) -> Socket {
    let (socket, response) = tokio_tungstenite::connect_async(ws_url(app, token))
        .await
        .expect("websocket handshake");
    assert_eq!(response.status(), 101);
    socket
}

/// The next JSON text frame, skipping pings; `None` when the socket closes
/// or nothing arrives within `wait`.
async fn next_json(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// Reads frames until one satisfies `wanted` (fails after a generous limit).
async fn until(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = next_json(socket, left)
            .await
            .expect("socket ended or went quiet");
        if wanted(&frame) {
            return frame;
        }
    }
}

/// Reads until the socket ends; returns the close code if a close frame came.
async fn close_code(socket: &mut Socket) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return None,
            Err(_) => panic!("the socket stayed open"),
        }
    }
}

async fn send(socket: &mut Socket, value: Value) {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn no_valid_token_is_refused_before_the_upgrade() {
    let app = TestApp::spawn().await;
    for token in ["", "not-a-token", &"x".repeat(43)] {
        match tokio_tungstenite::connect_async(ws_url(&app, token)).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 401, "token {token:?}"),
            other => panic!(
                "token {token:?}: expected 401, got {:?}",
                other.map(|(_, r)| r.status())
            ),
        }
    }
    // A plain request, with a valid token, is told to upgrade.
    let token = app.user_token("buyer").await;
    let plain = app.get(&format!("/ws?token={token}"), None).await;
    assert_eq!(plain.status(), StatusCode::UPGRADE_REQUIRED);
}

#[tokio::test]
async fn a_checkout_reaches_every_socket_of_its_buyer_and_no_one_else() {
    let app = server(&[("AGORA_PAYMENT_LATENCY_MS", "0")]).await;
    let shop = Shop::open(&app, 500, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let stranger = app.user_token("buyer").await;
    let mut phone = open(&app, &buyer.token).await;
    let mut laptop = open(&app, &buyer.token).await;
    let mut other = open(&app, &stranger).await;

    let response = buyer.checkout(&app, GOOD_CARD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.unwrap();
    let order_id = order["orderId"].as_str().unwrap();
    for socket in [&mut phone, &mut laptop] {
        let confirmed = until(socket, |f| {
            f["type"] == "order.updated" && f["orderId"] == order_id && f["status"] == "CONFIRMED"
        })
        .await;
        assert_eq!(confirmed["paymentStatus"], "SUCCEEDED");
        assert!(confirmed["at"].is_string());
    }
    // The stranger's socket heard nothing of it.
    assert_eq!(
        next_json(&mut other, Duration::from_millis(500)).await,
        None
    );
}

#[tokio::test]
async fn item_topics_carry_stock_and_bad_frames_get_errors_or_close() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 500, 10).await;
    let viewer = app.user_token("buyer").await;
    let mut socket = open(&app, &viewer).await;
    let topic = format!("item:{}", shop.item_id);
    send(&mut socket, json!({"type": "subscribe", "topic": topic})).await;
    assert_eq!(
        next_json(&mut socket, Duration::from_secs(10))
            .await
            .unwrap()["type"],
        "subscribed"
    );

    let changed = app
        .post(
            &format!("/items/{}/stock", shop.item_id),
            Some(&shop.seller),
            &json!({"delta": 7}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let frame = until(&mut socket, |f| f["type"] == "stock.changed").await;
    assert_eq!(frame["itemId"], json!(shop.item_id));
    assert_eq!(frame["available"], 17);

    // Unknown types and topics get error frames; the socket stays open.
    send(&mut socket, json!({"type": "dance"})).await;
    assert_eq!(
        next_json(&mut socket, Duration::from_secs(10))
            .await
            .unwrap()["code"],
        "UNKNOWN_TYPE"
    );
    for bad in ["orders:all", "item:nope", "item:01ZZZZZZZZZZZZZZZZZZZZZZZZ"] {
        send(&mut socket, json!({"type": "subscribe", "topic": bad})).await;
        let error = next_json(&mut socket, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(error["type"], "error", "{bad}: {error}");
    }
    // Unsubscribed, it hears no more stock changes.
    send(&mut socket, json!({"type": "unsubscribe", "topic": topic})).await;
    assert_eq!(
        next_json(&mut socket, Duration::from_secs(10))
            .await
            .unwrap()["type"],
        "unsubscribed"
    );
    app.post(
        &format!("/items/{}/stock", shop.item_id),
        Some(&shop.seller),
        &json!({"delta": 1}),
    )
    .await;
    send(&mut socket, json!({"type": "ping"})).await;
    assert_eq!(
        next_json(&mut socket, Duration::from_secs(10))
            .await
            .unwrap()["type"],
        "pong"
    );

    // Garbage closes only that socket (1003); an oversized frame closes with 1009.
    let mut bystander = open(&app, &viewer).await;
    socket
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, Some(CloseCode::Unsupported));
    let mut big = open(&app, &viewer).await;
    let _ = big.send(Message::Text("x".repeat(70 * 1024).into())).await;
    assert_eq!(close_code(&mut big).await, Some(CloseCode::Size));
    send(&mut bystander, json!({"type": "ping"})).await;
    assert_eq!(
        next_json(&mut bystander, Duration::from_secs(10))
            .await
            .unwrap()["type"],
        "pong"
    );
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_while_others_keep_receiving() {
    let app = server(&[("AGORA_WS_QUEUE_MESSAGES", "64")]).await;
    let shop = Shop::open(&app, 500, 10).await;
    let viewer = app.user_token("buyer").await;
    let topic = json!({"type": "subscribe", "topic": format!("item:{}", shop.item_id)});

    // The slow client: a tiny receive buffer, then it never reads again.
    let address = app.base.trim_start_matches("http://").parse().unwrap();
    let tcp = TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(1024).unwrap();
    let stream = tcp.connect(address).await.unwrap();
    let (mut slow, _) =
        tokio_tungstenite::client_async(ws_url(&app, &viewer), MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    send(&mut slow, topic.clone()).await;
    let mut fast = open(&app, &viewer).await;
    send(&mut fast, topic).await;
    assert_eq!(
        next_json(&mut fast, Duration::from_secs(10)).await.unwrap()["type"],
        "subscribed"
    );

    // Stock changes until the server gives up on the slow client.
    let mut delta_total = 10;
    let path = format!("/items/{}/stock", shop.item_id);
    let one = json!({"delta": 1});
    for round in 0.. {
        let changes = (0..20).map(|_| app.post(&path, Some(&shop.seller), &one));
        for response in futures::future::join_all(changes).await {
            assert_eq!(response.status(), StatusCode::OK);
        }
        delta_total += 20;
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        if metrics
            .lines()
            .any(|l| l.starts_with("agora_ws_slow_clients_dropped_total") && !l.ends_with(" 0"))
        {
            break;
        }
        assert!(round < 500, "the slow client was never dropped");
    }
    // The fast client still hears every change, up to the last one.
    until(&mut fast, |f| {
        f["type"] == "stock.changed" && f["available"] == delta_total
    })
    .await;
    // The slow one, once it reads, finds its socket closed after what was
    // already in flight.
    let mut slow_frames = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(20), slow.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| f.code),
            Ok(Some(Ok(_))) => slow_frames += 1,
            Ok(Some(Err(_)) | None) => break None,
            Err(_) => panic!("the slow socket stayed open"),
        }
    };
    assert!(
        slow_frames < delta_total,
        "the slow client got everything: it was not dropped"
    );
    assert!(matches!(ended, None | Some(CloseCode::Again)), "{ended:?}");
}

#[tokio::test]
async fn signing_out_closes_that_session_s_sockets_at_once_and_no_other_session_s() {
    let app = TestApp::spawn().await;
    let email = format!("buyer-{}@example.com", crate::helpers::ulid_like());
    assert_eq!(
        app.register(&email, "correct horse", "buyer")
            .await
            .status(),
        StatusCode::CREATED
    );
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let session: Value = app
            .sign_in(&email, "correct horse")
            .await
            .json()
            .await
            .unwrap();
        tokens.push(session["token"].as_str().unwrap().to_owned());
    }
    let mut leaving = open(&app, &tokens[0]).await;
    let mut staying = open(&app, &tokens[1]).await;
    // Both sockets are past their first session check before the sign-out.
    for socket in [&mut leaving, &mut staying] {
        send(socket, json!({"type": "ping"})).await;
        let pong = next_json(socket, Duration::from_secs(20)).await;
        assert_eq!(pong.unwrap()["type"], "pong");
    }

    let out = app.delete("/sessions", Some(&tokens[0])).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    // Well inside the 5-second periodic session check: the sign-out itself
    // closes the socket.
    let closed = tokio::time::timeout(Duration::from_secs(2), close_code(&mut leaving))
        .await
        .expect("the signed-out session's socket closes at once");
    assert_eq!(closed, Some(CloseCode::Policy));

    // The other session's socket is still served.
    send(&mut staying, json!({"type": "ping"})).await;
    let pong = next_json(&mut staying, Duration::from_secs(20)).await;
    assert_eq!(pong.expect("still open")["type"], "pong");
}

async fn inbox(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app
        .get(&format!("/notifications{query}"), Some(token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn order_updates_land_in_the_inbox_once_and_can_be_marked_read() {
    let app = server(&[("AGORA_PAYMENT_LATENCY_MS", "0")]).await;
    let shop = Shop::open(&app, 500, 10).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let mut socket = open(&app, &buyer.token).await;
    let response = buyer.checkout(&app, GOOD_CARD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.unwrap();
    let order_id = order["orderId"].as_str().unwrap().to_owned();

    // Pushed as a notification frame too.
    let pushed = until(&mut socket, |f| {
        f["type"] == "notification" && f["message"].as_str().unwrap_or("").contains("confirmed")
    })
    .await;
    assert_eq!(pushed["orderId"], json!(order_id));

    // CREATED, PAYMENT_PENDING, CONFIRMED: newest first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let page = loop {
        let page = inbox(&app, &buyer.token, "").await;
        if page["items"].as_array().unwrap().len() == 3 {
            break page;
        }
        assert!(tokio::time::Instant::now() < deadline, "inbox: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let statuses: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["CONFIRMED", "PAYMENT_PENDING", "CREATED"]);
    let newest = &page["items"][0];
    for field in [
        "id",
        "type",
        "orderId",
        "status",
        "message",
        "createdAt",
        "read",
    ] {
        assert!(newest.get(field).is_some(), "{field} missing: {newest}");
    }
    assert_eq!(newest["read"], false);

    // Cursor pages of one.
    let first = inbox(&app, &buyer.token, "?size=1").await;
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = inbox(&app, &buyer.token, &format!("?size=1&cursor={cursor}")).await;
    assert_eq!(second["items"][0]["status"], "PAYMENT_PENDING");
    assert_eq!(
        app.get("/notifications?cursor=%%%", Some(&buyer.token))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/notifications?size=0", Some(&buyer.token))
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get("/notifications", None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Read: 204, idempotent; someone else's or unknown: 404.
    let id = newest["id"].as_str().unwrap().to_owned();
    let stranger = app.user_token("buyer").await;
    let path = format!("/notifications/{id}/read");
    assert_eq!(
        app.post(&path, Some(&stranger), &json!({})).await.status(),
        StatusCode::NOT_FOUND
    );
    for _ in 0..2 {
        assert_eq!(
            app.post(&path, Some(&buyer.token), &json!({}))
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        app.post("/notifications/zzzz/read", Some(&buyer.token), &json!({}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        inbox(&app, &buyer.token, "").await["items"][0]["read"],
        true
    );
    assert!(inbox(&app, &stranger, "").await["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // The outbound channel (the logging notifier) got it too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !app.logs().contains("outbound notification") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no outbound notification logged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A restart re-reads nothing twice and keeps what was read.
    let app = app.restart();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = inbox(&app, &buyer.token, "").await;
    assert_eq!(after["items"].as_array().unwrap().len(), 3);
    assert_eq!(after["items"][0]["read"], true);
}
