//! Sessions and media on every node of a cluster (three nodes on a NATS of
//! the test's own): a token from one node works on the others, a sign-out
//! on one is refused on the others and closes the session's sockets there,
//! a restarted node still accepts a token, NATS out of reach makes signing
//! in and out answer 503 rather than half-succeed, and an image uploaded on
//! one node is served by another. Measured times are printed
//! (`--nocapture`), never asserted.
//!
//! Writes go to the node the test sends them to (forwarding to owners comes
//! later), and reads use `GET /wishlist`, which needs only the session:
//! `GET /users/me` reads the user's record, which lives on the node that
//! registered them.

use std::io::Cursor;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{mouse, problem, ulid_like, TestApp};
use crate::nats::{wait_until, NatsServer, TestCluster};

/// Far beyond the milliseconds these take: a slow, shared CI machine must
/// not fail them.
const BOUND: Duration = Duration::from_secs(30);

/// Registers a user with `role` on `node` and signs in there; returns the
/// token.
async fn signed_in(node: &TestApp, role: &str) -> (String, String) {
    let email = format!("{role}-{}@example.com", ulid_like());
    let created = node.register(&email, "correct horse", role).await;
    assert_eq!(created.status(), StatusCode::CREATED, "register");
    (email.clone(), sign_in(node, &email).await)
}

/// [`signed_in`] for a user who lives on `node` (users are placed by their
/// email; this registers until one lands there), so what is tested is that
/// node's own handling, not the forwarding to another.
async fn signed_in_at_home(node: &TestApp, role: &str) -> (String, String) {
    let me = node.get_json("/cluster").await["node"].clone();
    loop {
        let email = format!("{role}-{}@example.com", ulid_like());
        let created = node.register(&email, "correct horse", role).await;
        assert_eq!(created.status(), StatusCode::CREATED, "register");
        let id = created.json::<Value>().await.unwrap()["id"].clone();
        if node.placement("user", id.as_str().unwrap()).await["node"] == me {
            return (email.clone(), sign_in(node, &email).await);
        }
    }
}

async fn sign_in(node: &TestApp, email: &str) -> String {
    let session = node.sign_in(email, "correct horse").await;
    assert_eq!(session.status(), StatusCode::CREATED, "sign in");
    let body: Value = session.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// The status of `GET /wishlist` with `token` on `node`.
async fn wishlist(node: &TestApp, token: &str) -> StatusCode {
    node.get("/wishlist", Some(token)).await.status()
}

/// Polls `node` every 2 ms until `token` is refused; returns how long that
/// took.
async fn until_refused(node: &TestApp, token: &str) -> Duration {
    let start = Instant::now();
    while start.elapsed() < BOUND {
        if wishlist(node, token).await == StatusCode::UNAUTHORIZED {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the token still works on {} after {BOUND:?}", node.base);
}

#[tokio::test]
async fn a_token_from_signing_in_on_node_1_works_on_nodes_2_and_3() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 3).await;
    let (_, token) = signed_in(&cluster.nodes[0], "buyer").await;

    for node in &cluster.nodes {
        assert_eq!(
            wishlist(node, &token).await,
            StatusCode::OK,
            "{}",
            node.base
        );
    }
    // And nothing else passes for one.
    let forged = "A".repeat(43);
    assert_eq!(
        wishlist(&cluster.nodes[1], &forged).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn signing_out_on_node_2_refuses_the_token_on_nodes_1_and_3_and_closes_its_socket_on_node_3()
{
    let nats = NatsServer::start();
    // Sockets never check their session by themselves during the test, so
    // only the sign-out's news can close one.
    let cluster =
        TestCluster::start_with(&nats, 3, &[("AGORA_WS_SESSION_CHECK_SECS", "3600")]).await;
    let [one, two, three] = &cluster.nodes[..] else {
        unreachable!()
    };
    let (email, token) = signed_in(one, "buyer").await;
    let mut socket = open_socket(three, &token).await;
    let mut took = Vec::new();
    for trial in 0..5 {
        let token = if trial == 0 {
            token.clone()
        } else {
            sign_in(one, &email).await
        };
        for node in [one, three] {
            assert_eq!(wishlist(node, &token).await, StatusCode::OK);
        }

        let out = two.delete("/sessions", Some(&token)).await;
        assert_eq!(out.status(), StatusCode::NO_CONTENT);
        let (on_one, on_three) =
            tokio::join!(until_refused(one, &token), until_refused(three, &token));
        took.push(on_one.max(on_three));
    }

    let closed = close_code(&mut socket).await;
    assert_eq!(closed, Some(CloseCode::Policy));
    took.sort();
    println!(
        "sign-out on node-2 -> 401 on nodes 1 and 3: p50 {:?}, max {:?} over {} trials",
        took[took.len() / 2],
        took[took.len() - 1],
        took.len()
    );
}

#[tokio::test]
async fn a_node_restarted_after_a_sign_in_still_accepts_the_token() {
    let nats = NatsServer::start();
    let mut cluster = TestCluster::start(&nats, 3).await;
    let (_, token) = signed_in(&cluster.nodes[0], "buyer").await;
    assert_eq!(wishlist(&cluster.nodes[1], &token).await, StatusCode::OK);

    // The node that issued it, and one that had already seen it.
    for i in [0, 1] {
        let node = cluster.nodes.remove(i);
        cluster.nodes.insert(i, node.restart());
        assert_eq!(
            wishlist(&cluster.nodes[i], &token).await,
            StatusCode::OK,
            "node-{} after its restart",
            i + 1
        );
    }
}

#[tokio::test]
async fn an_expired_session_is_refused_on_every_node_and_leaves_the_bucket() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start_with(&nats, 2, &[("AGORA_SESSION_TTL_SECS", "2")]).await;
    let (_, token) = signed_in(&cluster.nodes[0], "buyer").await;
    assert_eq!(wishlist(&cluster.nodes[1], &token).await, StatusCode::OK);
    assert_eq!(nats.session_keys().await.len(), 1);

    for node in &cluster.nodes {
        until_refused(node, &token).await;
    }
    let took = wait_until("the bucket drops the expired session", BOUND, || async {
        nats.session_keys().await.is_empty()
    })
    .await;
    println!("a 2 s session left the bucket {took:?} after both nodes refused it");
}

#[tokio::test]
async fn a_nats_that_lost_its_store_ends_every_session_on_every_node_alike() {
    let mut nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 2).await;
    let (email, token) = signed_in(&cluster.nodes[0], "buyer").await;
    assert_eq!(wishlist(&cluster.nodes[1], &token).await, StatusCode::OK);

    nats.restart_empty();
    for node in &cluster.nodes {
        let took = wait_until("the lost session refused", BOUND, || async {
            wishlist(node, &token).await == StatusCode::UNAUTHORIZED
        })
        .await;
        println!(
            "NATS back empty: {} refuses the lost session after {took:?}",
            node.base
        );
    }
    let token = sign_in(&cluster.nodes[0], &email).await;
    assert_eq!(wishlist(&cluster.nodes[1], &token).await, StatusCode::OK);
}

#[tokio::test]
async fn while_nats_is_out_of_reach_signing_in_and_out_answer_503_and_change_nothing() {
    let mut nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 2).await;
    let [one, two] = &cluster.nodes[..] else {
        unreachable!()
    };
    // The user lives on node 1, which answers for them even without NATS.
    let (email, token) = signed_in_at_home(one, "buyer").await;
    assert_eq!(wishlist(two, &token).await, StatusCode::OK);

    nats.kill();
    let refused = one.sign_in(&email, "correct horse").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(problem(refused).await["code"], "UNAVAILABLE");
    let kept = one.delete("/sessions", Some(&token)).await;
    assert_eq!(kept.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem(kept).await["code"], "UNAVAILABLE");
    // Nothing was signed out: the token still works where it is known
    // (node 2 could only reach the user's node through NATS).
    assert_eq!(wishlist(one, &token).await, StatusCode::OK);

    nats.restart();
    let took = wait_until("sign-out works again", BOUND, || async {
        two.delete("/sessions", Some(&token)).await.status() == StatusCode::NO_CONTENT
    })
    .await;
    println!("NATS restarted: sign-out answered 204 after {took:?}");
    until_refused(one, &token).await;
}

#[tokio::test]
async fn an_image_uploaded_on_node_1_is_served_by_node_2_with_the_same_bytes_and_type() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 2).await;
    let [one, two] = &cluster.nodes[..] else {
        unreachable!()
    };
    let (_, seller) = signed_in(one, "seller").await;
    let item = one.create_item(&seller, &mouse()).await;
    let id = item["id"].as_str().unwrap();
    // Noise does not compress: a PNG of ~3 MB, several times NATS's 1 MB
    // max_payload.
    let image = noise_png(900, 800);
    assert!(image.len() > 2 * 1024 * 1024, "{} bytes", image.len());

    let started = Instant::now();
    let created = one
        .upload_image(Some(&seller), id, "image/png", image.clone())
        .await;
    let upload = started.elapsed();
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = created.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();

    let started = Instant::now();
    let served = two.get(&url, None).await;
    let first = started.elapsed();
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().as_ref(), image.as_slice());
    let started = Instant::now();
    let again = two.get(&url, None).await;
    let second = started.elapsed();
    assert_eq!(again.bytes().await.unwrap().as_ref(), image.as_slice());
    println!(
        "{} KiB image: upload on node-1 {upload:?}; first GET on node-2 (from NATS) {first:?}, \
         second (its own copy) {second:?}",
        image.len() / 1024
    );
    let nowhere = format!("/media/{}", "0".repeat(64));
    assert_eq!(
        two.get(&nowhere, None).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn while_nats_is_out_of_reach_an_upload_and_a_miss_elsewhere_answer_503() {
    let mut nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 2).await;
    let [one, two] = &cluster.nodes[..] else {
        unreachable!()
    };
    // The seller lives on node 1: their items' changes are made there.
    let (_, seller) = signed_in_at_home(one, "seller").await;
    let item = one.create_item(&seller, &mouse()).await;
    let id = item["id"].as_str().unwrap();
    let shared = one
        .upload_image(Some(&seller), id, "image/png", noise_png(8, 8))
        .await;
    assert_eq!(shared.status(), StatusCode::CREATED);
    let url = shared.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();

    nats.kill();
    let refused = one
        .upload_image(Some(&seller), id, "image/png", noise_png(9, 9))
        .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(problem(refused).await["code"], "UNAVAILABLE");
    // Not added to the item: the other nodes could not serve it.
    let images = one.get_json(&format!("/items/{id}")).await["images"].clone();
    assert_eq!(images, json!([url]));
    // Node 2 does not hold the first image and cannot ask: 503, not 404.
    let miss = two.get(&url, None).await;
    assert_eq!(miss.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Node 1 serves its own copy.
    assert_eq!(one.get(&url, None).await.status(), StatusCode::OK);
}

/// A `width` × `height` PNG of pseudo-random pixels.
fn noise_png(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let image = image::RgbaImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        image::Rgba(state.to_le_bytes()[..4].try_into().unwrap())
    });
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A websocket on `node` with `token`, past its first session check (it
/// answered a ping).
async fn open_socket(node: &TestApp, token: &str) -> Socket {
    let url = format!(
        "{}/ws?token={token}",
        node.base.replacen("http://", "ws://", 1)
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket handshake");
    assert_eq!(response.status(), 101);
    let ping = json!({"type": "ping"}).to_string();
    socket.send(Message::Text(ping.into())).await.unwrap();
    loop {
        match tokio::time::timeout(BOUND, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.contains("pong") => return socket,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no pong: {other:?}"),
        }
    }
}

/// Reads until the socket ends (within [`BOUND`]); the close code if a
/// close frame came.
async fn close_code(socket: &mut Socket) -> Option<CloseCode> {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return None,
            Err(_) => panic!("the socket stayed open for {BOUND:?}"),
        }
    }
}
