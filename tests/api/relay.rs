//! The relay, through the real binary: node-1's event log appears in the
//! `AGORA_EVENTS` stream under `agora.events.node-1`, as `node-1:1..n` in
//! order without gaps (read with a NATS client of the test's own); after a
//! `kill -9` mid-burst and a restart every event is there exactly once; the
//! lag metric goes back to 0; a single node has no relay. The lag from an
//! event's commit to the stream (the server's stamp minus `Agora-At`) is
//! printed (`--nocapture`), never asserted.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::message::StreamMessage;
use reqwest::StatusCode;

use crate::helpers::{mouse, TestApp};
use crate::nats::{wait_until, NatsServer, TestCluster};
use crate::replication::metric;

/// Far beyond the relay's usual milliseconds: a slow CI box must not fail.
const BOUND: Duration = Duration::from_secs(30);

/// Every message of `subject` in the stream, in stream order.
async fn messages(nats: &NatsServer, subject: &str) -> Vec<StreamMessage> {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client);
    let mut stream = js.get_stream("AGORA_EVENTS").await.expect("the stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut found = Vec::new();
    for seq in 1..=last {
        if let Ok(message) = stream.get_raw_message(seq).await {
            if message.subject.as_str() == subject {
                found.push(message);
            }
        }
    }
    found
}

/// A message's `Nats-Msg-Id`.
fn id(message: &StreamMessage) -> String {
    message
        .headers
        .get(async_nats::header::NATS_MESSAGE_ID)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

/// Waits until `node` relayed everything; returns its last relayed seq.
async fn relayed_all(node: &TestApp) -> u64 {
    wait_until("relay lag 0", BOUND, || async {
        metric(node, "agora_relay_lag_events").await == Some(0.0)
            && metric(node, "agora_relay_relayed_seq").await.unwrap_or(0.0) > 0.0
    })
    .await;
    metric(node, "agora_relay_relayed_seq").await.unwrap() as u64
}

/// Asserts `found` is exactly `node-1:1..=n`, in order.
fn assert_complete(found: &[StreamMessage], n: u64) {
    assert_range(found, 1, n);
}

/// Asserts `found` is exactly `node-1:first..=last`, in order.
fn assert_range(found: &[StreamMessage], first: u64, last: u64) {
    let ids: Vec<String> = found.iter().map(id).collect();
    let expected: Vec<String> = (first..=last).map(|seq| format!("node-1:{seq}")).collect();
    assert_eq!(ids, expected, "node-1's events in the stream");
}

/// p50 and p99 of commit → stream, ms, from the messages' stamps.
fn print_lag(found: &[StreamMessage], what: &str) {
    let mut lags: Vec<i64> = found
        .iter()
        .filter_map(|m| {
            let at: i64 = m.headers.get("Agora-At")?.as_str().parse().ok()?;
            let stored = (m.time.unix_timestamp_nanos() / 1_000_000) as i64;
            Some(stored - at)
        })
        .collect();
    lags.sort_unstable();
    if lags.is_empty() {
        return;
    }
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    println!(
        "{what}: commit → stream over {} events: p50 {} ms, p99 {} ms, max {} ms",
        lags.len(),
        at(0.5),
        at(0.99),
        lags[lags.len() - 1]
    );
}

/// Creates `count` items on `node`, `parallel` at a time; ignores failures
/// (a burst cut by a kill). Returns how many were acknowledged.
async fn burst(client: reqwest::Client, url: String, token: String, count: usize) -> usize {
    let mut created = 0;
    let mut chunks = (0..count).collect::<Vec<_>>();
    while !chunks.is_empty() {
        let take = chunks.len().min(8);
        let wave: Vec<_> = chunks.drain(..take).collect();
        let sends = wave
            .iter()
            .map(|_| client.post(&url).bearer_auth(&token).json(&mouse()).send());
        let results = futures::future::join_all(sends).await;
        let ok = results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::CREATED))
            .count();
        created += ok;
        if ok < wave.len() {
            break;
        }
    }
    created
}

#[tokio::test]
async fn writes_on_node_1_appear_in_the_stream_as_node_1_1_to_n_in_order_without_gaps() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 2).await;
    let node = &cluster.nodes[0];
    let seller = node.home_user_token("seller").await;
    let item = node.create_item(&seller, &mouse()).await;
    let path = format!("/items/{}", item["id"].as_str().unwrap());
    let changed = node
        .patch(&path, Some(&seller), &serde_json::json!({"quantity": 7}))
        .await;
    assert_eq!(changed.status(), StatusCode::OK, "stock change");
    let created = burst(node.client.clone(), node.url("/items"), seller, 200).await;
    assert_eq!(created, 200);

    let n = relayed_all(node).await;

    let found = messages(&nats, "agora.events.node-1").await;
    assert!(n >= 202, "{n} events relayed");
    assert_complete(&found, n);
    let kinds: Vec<&str> = found
        .iter()
        .filter_map(|m| m.headers.get("Agora-Kind").map(|k| k.as_str()))
        .collect();
    assert_eq!(kinds.len(), found.len(), "every message names its kind");
    assert!(kinds.contains(&"item.created"), "{kinds:?}");
    assert!(kinds.contains(&"stock.changed"), "{kinds:?}");
    print_lag(&found, "burst of 200 item creates, 8 at a time");
    assert!(node.logs().contains("relay started"), "{}", node.logs());
}

#[tokio::test]
async fn after_a_kill_9_mid_burst_and_a_restart_every_event_is_in_the_stream_exactly_once_in_order()
{
    let nats = NatsServer::start();
    let mut cluster = TestCluster::start(&nats, 2).await;
    let seller = cluster.nodes[0].home_user_token("seller").await;
    let (client, url) = (
        cluster.nodes[0].client.clone(),
        cluster.nodes[0].url("/items"),
    );
    let writes = tokio::spawn(burst(client, url, seller, 100_000));
    wait_until("some events relayed", BOUND, || async {
        metric(&cluster.nodes[0], "agora_relay_relayed_seq")
            .await
            .unwrap_or(0.0)
            > 50.0
    })
    .await;

    cluster.nodes[0].kill9();
    let created = writes.await.unwrap();
    let killed = cluster.nodes.remove(0);
    cluster.nodes.insert(0, killed.restart());
    let n = relayed_all(&cluster.nodes[0]).await;

    let found = messages(&nats, "agora.events.node-1").await;
    assert!(
        n as usize >= created,
        "{n} events for {created} acknowledged items"
    );
    assert_complete(&found, n);
    println!("killed after {created} acknowledged creates; {n} events relayed exactly once");
}

#[tokio::test]
async fn writes_made_while_nats_is_down_reach_the_stream_in_order_once_it_is_back() {
    let mut nats = NatsServer::start();
    let (cluster, seller, before) = two_nodes_after_one_relayed_item(&nats).await;
    let node = &cluster.nodes[0];

    nats.kill();
    // Down long enough for a batch to fail (its acks time out), so the
    // retry is what brings the events over.
    create_until_a_publish_fails(node, &seller).await;
    assert!(metric(node, "agora_relay_lag_events").await.unwrap_or(0.0) > 0.0);
    nats.restart();
    let took = wait_until("relayed again", BOUND, || async {
        metric(node, "agora_relay_lag_events").await == Some(0.0)
            && metric(node, "agora_relay_relayed_seq").await.unwrap_or(0.0) > before as f64
    })
    .await;
    println!("NATS back: the waiting events relayed {took:?} later");

    let n = metric(node, "agora_relay_relayed_seq").await.unwrap() as u64;
    assert!(n >= before + 10, "{n} events after {before}");
    assert_complete(&messages(&nats, "agora.events.node-1").await, n);
}

#[tokio::test]
async fn after_nats_comes_back_with_an_empty_store_the_relay_sets_up_the_stream_and_loses_nothing_since(
) {
    let mut nats = NatsServer::start();
    let (cluster, seller, before) = two_nodes_after_one_relayed_item(&nats).await;
    let node = &cluster.nodes[0];

    nats.restart_empty();
    // Publishes into a server without the stream fail: the retry (after
    // setting the stream up again) is what brings these events over.
    create_until_a_publish_fails(node, &seller).await;
    let took = wait_until("relayed again", BOUND, || async {
        metric(node, "agora_relay_lag_events").await == Some(0.0)
            && metric(node, "agora_relay_relayed_seq").await.unwrap_or(0.0) > before as f64
    })
    .await;
    println!("NATS back empty: the waiting events relayed {took:?} later");

    let n = metric(node, "agora_relay_relayed_seq").await.unwrap() as u64;
    assert!(n >= before + 10, "{n} events after {before}");
    assert_range(&messages(&nats, "agora.events.node-1").await, before + 1, n);
}

#[tokio::test]
async fn a_single_node_has_no_relay() {
    let app = TestApp::spawn().await;
    let seller = app.home_user_token("seller").await;
    app.create_item(&seller, &mouse()).await;

    assert_eq!(metric(&app, "agora_relay_lag_events").await, None);
    assert_eq!(metric(&app, "agora_relay_published_total").await, None);
    assert!(!app.logs().contains("relay started"), "{}", app.logs());
}

/// Two nodes on `nats` and one item created on node-1 and relayed: the
/// cluster, node-1's seller token, and the events relayed so far.
async fn two_nodes_after_one_relayed_item(nats: &NatsServer) -> (TestCluster, String, u64) {
    let cluster = TestCluster::start(nats, 2).await;
    let node = &cluster.nodes[0];
    let seller = node.home_user_token("seller").await;
    node.create_item(&seller, &mouse()).await;
    let before = relayed_all(node).await;
    (cluster, seller, before)
}

/// Creates five items on `node` (while its NATS is away or empty) and
/// waits until its relay has logged a failed publish.
async fn create_until_a_publish_fails(node: &TestApp, seller: &str) {
    for _ in 0..5 {
        node.create_item(seller, &mouse()).await;
    }
    wait_until("a failed publish", BOUND, || async {
        node.logs().contains("relay: no ack; retrying")
    })
    .await;
}
