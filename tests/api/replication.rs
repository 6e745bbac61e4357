//! Every node consumes the whole stream, through the real binary: three
//! nodes on one NATS; writes go to node-1 (the node a request reaches
//! serves it, until requests are forwarded to owners) and are read on the
//! others. An item is read and found on every node and its changes follow;
//! node-1's stock reaches node-2's item pages, search and a socket there;
//! a buyer's notifications are written by the buyer's node only; a single
//! node has no consumer. Recovery and the relays: `replication_recovery.rs`.
//! Times are printed (`--nocapture`), never asserted.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{item_path, TestApp};
use crate::nats::{wait_until, NatsServer, TestCluster};
use crate::shop::{Buyer, Shop, GOOD_CARD};

/// Far beyond the usual milliseconds: a slow CI box must not fail.
pub(crate) const BOUND: Duration = Duration::from_secs(30);

/// A word no other item has (letters only, so search sees one token).
pub(crate) fn word() -> String {
    let mut n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut word = String::from("zy");
    for _ in 0..10 {
        word.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
    }
    word
}

/// An item named after `word`.
pub(crate) fn gadget(word: &str, quantity: i64) -> Value {
    json!({"name": format!("Gadget {word}"), "description": "A thing", "price": 1500, "quantity": quantity})
}

/// `GET path` on `node`: its status and body (JSON or null).
pub(crate) async fn read(node: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = node.get(path, None).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until `node` answers `path` with a body that `check` accepts
/// (failing with the node's log after [`BOUND`]).
pub(crate) async fn until_read(
    node: &TestApp,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Duration {
    let start = Instant::now();
    while start.elapsed() < BOUND {
        let (status, body) = read(node, path).await;
        if status == StatusCode::OK && check(&body) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = read(node, path).await;
    panic!(
        "{what}: not within {BOUND:?} ({status} {body})\n{}",
        node.logs()
    );
}

/// The ids `node`'s search finds for `word`.
pub(crate) async fn found(node: &TestApp, word: &str) -> Vec<String> {
    let (status, page) = read(node, &format!("/items?term={word}&size=100")).await;
    assert_eq!(status, StatusCode::OK);
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// How many items `node`'s search finds for `word`.
pub(crate) async fn total(node: &TestApp, word: &str) -> u64 {
    let (status, page) = read(node, &format!("/items?term={word}&size=1")).await;
    assert_eq!(status, StatusCode::OK);
    page["total"].as_u64().unwrap()
}

/// A metric's value in `node`'s `/metrics` (`None`: not there).
pub(crate) async fn metric(node: &TestApp, name: &str) -> Option<f64> {
    let text = node
        .client
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Creates `count` items named after `word` on `node`, one at a time.
pub(crate) async fn create_many(
    node: &TestApp,
    seller: &str,
    word: &str,
    count: usize,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let item = node.create_item(seller, &gadget(word, 5)).await;
        ids.push(item["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn an_item_listed_on_node_1_is_read_and_found_on_nodes_2_and_3_and_its_changes_follow() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 3).await;
    let (one, others) = (&cluster.nodes[0], &cluster.nodes[1..]);
    let seller = one.home_user_token("seller").await;
    let word = word();
    let started = Instant::now();
    let item = one.create_item(&seller, &gadget(&word, 40)).await;
    let (id, path) = (item["id"].as_str().unwrap().to_owned(), item_path(&item));

    for node in others {
        until_read(node, &path, "the item on another node", |body| {
            body["name"] == item["name"] && body["price"] == 1500 && body["available"] == 40
        })
        .await;
        wait_until("found by search on another node", BOUND, || async {
            found(node, &word).await == vec![id.clone()]
        })
        .await;
    }
    println!(
        "create on node-1 → found by search on nodes 2 and 3: {:?}",
        started.elapsed()
    );
    let (_, suggestions) = read(&others[0], &format!("/items/suggest?q={}", &word[..6])).await;
    assert!(suggestions.to_string().contains(&word), "{suggestions}");

    let changed = one
        .patch(&path, Some(&seller), &json!({"price": 1234}))
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    for node in others {
        until_read(node, &path, "the new price", |body| body["price"] == 1234).await;
    }
    assert_eq!(
        one.delete(&path, Some(&seller)).await.status(),
        StatusCode::NO_CONTENT
    );
    for node in others {
        until_read(node, &path, "the withdrawal", |body| {
            body["status"] == "inactive"
        })
        .await;
        wait_until("gone from search", BOUND, || async {
            found(node, &word).await.is_empty()
        })
        .await;
    }
}

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket on `node`, signed in with `token`, subscribed to `topic`.
pub(crate) async fn subscribed(node: &TestApp, token: &str, topic: &str) -> Socket {
    let url = format!(
        "{}/ws?token={token}",
        node.base.replacen("http://", "ws://", 1)
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("handshake");
    let subscribe = json!({"type": "subscribe", "topic": topic}).to_string();
    socket.send(Message::Text(subscribe.into())).await.unwrap();
    frame(&mut socket, |f| f["type"] == "subscribed").await;
    socket
}

/// The first JSON frame `wanted` accepts (fails after [`BOUND`]).
pub(crate) async fn frame(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next()).await;
        match next.expect("no such frame in time") {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if wanted(&value) {
                    return value;
                }
            }
            Some(Ok(_)) => continue,
            other => panic!("the socket ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_stock_change_on_node_1_shows_on_node_2s_item_page_and_reaches_a_socket_there() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 3).await;
    let (one, two) = (&cluster.nodes[0], &cluster.nodes[1]);
    // A seller living on node-1: their items and stock live there.
    let seller = one.home_user_token("seller").await;
    let item = one.create_item(&seller, &gadget(&word(), 10)).await;
    let path = item_path(&item);
    until_read(two, &path, "the item on node-2", |body| {
        body["available"] == 10
    })
    .await;
    let viewer = two.home_user_token("buyer").await;
    let topic = format!("item:{}", item["id"].as_str().unwrap());
    let mut socket = subscribed(two, &viewer, &topic).await;

    let adjusted = one
        .post(
            &format!("{path}/stock"),
            Some(&seller),
            &json!({"delta": 7}),
        )
        .await;
    assert_eq!(adjusted.status(), StatusCode::OK);
    let pushed = frame(&mut socket, |f| f["type"] == "stock.changed").await;
    assert_eq!(
        (pushed["itemId"].clone(), pushed["available"].clone()),
        (item["id"].clone(), json!(17))
    );
    let (_, page) = read(two, &path).await;
    assert_eq!(page["available"], 17, "node-2's item page: {page}");
    // node-2 holds no stock of its own for it: only the replica says 17.
    let sold_out = one
        .post(
            &format!("{path}/stock"),
            Some(&seller),
            &json!({"delta": -17}),
        )
        .await;
    assert_eq!(sold_out.status(), StatusCode::OK);
    until_read(two, &path, "sold out on node-2", |body| {
        body["available"] == 0
    })
    .await;
}

#[tokio::test]
async fn search_on_another_node_knows_an_item_in_stock_by_the_stock_of_all_its_variants() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 2).await;
    let (one, two) = (&cluster.nodes[0], &cluster.nodes[1]);
    let seller = one.home_user_token("seller").await;
    let lamp = word();
    let body = json!({"name": format!("Lamp {lamp}"), "description": "d", "price": 900,
    "variants": [
        {"attributes": {"color": "red"}, "price": 900, "quantity": 0},
        {"attributes": {"color": "blue"}, "price": 900, "quantity": 5}
    ]});
    let item = one.create_item(&seller, &body).await;
    let red = item["variants"][0]["variantId"]
        .as_str()
        .unwrap()
        .to_owned();
    let in_stock = format!("/items?term={lamp}&inStock=true");
    // Red comes in and sells out again: blue's stock (known to node-2 only
    // from node-1's events) keeps the item in stock.
    let stock = format!("{}/stock", item_path(&item));
    for delta in [1, -1] {
        let moved = one
            .post(
                &stock,
                Some(&seller),
                &json!({"variantId": red, "delta": delta}),
            )
            .await;
        assert_eq!(moved.status(), StatusCode::OK);
    }
    // A later item, found on node-2, means the index is past the sell-out.
    let later = word();
    one.create_item(&seller, &gadget(&later, 1)).await;
    wait_until("the later item found on node-2", BOUND, || async {
        found(two, &later).await.len() == 1
    })
    .await;
    let (_, page) = read(two, &in_stock).await;
    assert_eq!(page["total"], 1, "in stock on node-2: {page}");
}

/// A buyer signed up on `node` whose home (by placement) is, or is not,
/// that node; with their user id.
async fn buyer_at_home(node: &TestApp, at_home: bool) -> (String, String) {
    for _ in 0..40 {
        let token = node.user_token("buyer").await;
        let me: Value = node
            .get("/users/me", Some(&token))
            .await
            .json()
            .await
            .unwrap();
        let id = me["id"].as_str().unwrap().to_owned();
        let home = node.placement("user", &id).await["node"] == "node-1";
        if home == at_home {
            return (token, id);
        }
    }
    panic!("no buyer placed as wanted in 40 sign-ups");
}

/// `token`'s notifications on `node`.
async fn inbox(node: &TestApp, token: &str) -> Vec<Value> {
    let page: Value = node
        .get("/notifications?size=100", Some(token))
        .await
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_buyers_notifications_reach_them_whichever_node_they_order_and_read_through() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 3).await;
    let one = &cluster.nodes[0];
    let shop = Shop::open(one, 500, 10).await;
    // Both order through node-1; only one of them lives there. The other's
    // order, and its notification, are made on their own node.
    let (away, _) = buyer_at_home(one, false).await;
    let (home, _) = buyer_at_home(one, true).await;
    for token in [&away, &home] {
        let buyer = Buyer::fill(one, token.clone(), &shop, 1).await;
        let response = buyer.checkout(one, GOOD_CARD).await;
        assert!(
            response.status().is_success(),
            "checkout: {}",
            response.status()
        );
    }
    for token in [&away, &home] {
        for node in &cluster.nodes {
            wait_until(
                "the buyer's notification, through every node",
                BOUND,
                || async { !inbox(node, token).await.is_empty() },
            )
            .await;
        }
        assert_eq!(
            inbox(&cluster.nodes[1], token).await,
            inbox(&cluster.nodes[2], token).await,
            "one inbox, wherever it is read"
        );
    }
}

#[tokio::test]
async fn a_single_node_has_no_consumer() {
    let app = TestApp::spawn().await;
    let seller = app.home_user_token("seller").await;
    app.create_item(&seller, &gadget(&word(), 1)).await;
    assert_eq!(metric(&app, "agora_consumer_applied_total").await, None);
    assert!(!app.logs().contains("consumer started"), "{}", app.logs());
}
