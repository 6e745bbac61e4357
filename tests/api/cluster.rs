//! The cluster's foundation, through the real binary: `GET /cluster` on a
//! single node and on three nodes meeting on a NATS server of the test's
//! own; a killed node read `down` by the others and `up` again once
//! restarted; `/ready` following this node's reach of NATS. Measured times
//! are printed (`--nocapture`), never asserted.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use async_nats::jetstream::kv::Operation;

use crate::helpers::{problem, run_to_exit, TestApp};
use crate::nats::{cluster_toml, free_port, wait_until, NatsServer, TestCluster};

/// Far beyond the ~3.5 s a killed node takes to read `down`: a slow,
/// shared CI machine must not fail these.
const BOUND: Duration = Duration::from_secs(30);

/// Whether every node of `cluster` lists every node `up`.
async fn all_up(cluster: &TestCluster) -> bool {
    for node in &cluster.nodes {
        let nodes = node.cluster_nodes().await;
        if nodes.len() != cluster.nodes.len() || nodes.iter().any(|(_, _, s)| s != "up") {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn a_single_node_lists_itself_up_and_needs_no_nats() {
    let app = TestApp::spawn().await;

    let body = app.get_json("/cluster").await;

    assert_eq!(body["node"], "node-1");
    assert_eq!(body["shards"], 1024);
    let nodes = app.cluster_nodes().await;
    assert_eq!(
        nodes,
        vec![("node-1".into(), app.address().into(), "up".into())]
    );
    let ready = app.get_json("/ready").await;
    assert!(
        ready.get("nats").is_none(),
        "a single node has no NATS: {ready}"
    );
}

#[tokio::test]
async fn three_nodes_on_one_nats_each_list_all_three_up_at_their_bound_addresses() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 3).await;

    let took = wait_until("every node lists all three up", BOUND, || all_up(&cluster)).await;

    println!("three nodes all up on every node {took:?} after the last started");
    let addresses: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| n.address().to_owned())
        .collect();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let body = node.get_json("/cluster").await;
        assert_eq!(body["node"], format!("node-{}", i + 1));
        let listed: Vec<(String, String, String)> = node.cluster_nodes().await;
        let expected: Vec<(String, String, String)> = (0..3)
            .map(|j| (format!("node-{}", j + 1), addresses[j].clone(), "up".into()))
            .collect();
        assert_eq!(listed, expected, "node-{} lists", i + 1);
    }
}

#[tokio::test]
async fn a_killed_node_reads_down_on_the_others_and_up_again_once_restarted() {
    let nats = NatsServer::start();
    let mut cluster = TestCluster::start(&nats, 3).await;
    wait_until("all up", BOUND, || all_up(&cluster)).await;

    cluster.nodes[2].kill9();
    let took = wait_until("node-3 down on node-1 and node-2", BOUND, || async {
        cluster.nodes[0].status_of("node-3").await == "down"
            && cluster.nodes[1].status_of("node-3").await == "down"
    })
    .await;
    println!("node-3 killed: down on both others after {took:?}");
    assert_eq!(cluster.nodes[0].status_of("node-2").await, "up");

    let killed = cluster.nodes.pop().expect("node-3");
    cluster.nodes.push(killed.restart());
    let took = wait_until("all up again", BOUND, || all_up(&cluster)).await;
    println!("node-3 restarted on its data: all up again after {took:?}");
    let address = cluster.nodes[2].address().to_owned();
    let listed = cluster.nodes[0].cluster_nodes().await;
    assert_eq!(listed[2], ("node-3".into(), address, "up".into()));
}

#[tokio::test]
async fn a_frozen_node_is_dropped_by_nats_and_rejoins_when_thawed() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 2).await;
    wait_until("both up", BOUND, || all_up(&cluster)).await;
    assert!(nats.client_names().await.contains(&"node-2".to_owned()));

    cluster.nodes[1].freeze();
    let took = wait_until("NATS drops node-2", BOUND, || async {
        !nats.client_names().await.contains(&"node-2".to_owned())
    })
    .await;
    println!("node-2 frozen: dropped by NATS after {took:?}");
    wait_until("node-2 down on node-1", BOUND, || async {
        cluster.nodes[0].status_of("node-2").await == "down"
    })
    .await;

    cluster.nodes[1].thaw();
    let took = wait_until("both up again", BOUND, || all_up(&cluster)).await;
    println!("node-2 thawed: up on both after {took:?}");
    assert!(nats.client_names().await.contains(&"node-2".to_owned()));
}

#[tokio::test]
async fn a_node_stopped_gracefully_reads_down_at_the_next_look() {
    let nats = NatsServer::start();
    let mut cluster = TestCluster::start(&nats, 2).await;
    wait_until("both up", BOUND, || all_up(&cluster)).await;

    let status = cluster.nodes[1].terminate();
    assert!(status.success(), "node-2 stopped cleanly: {status}");

    // It deleted its heartbeat on the way out (a killed node's would live
    // on for the bucket's 5 s TTL).
    let heartbeat = nats.heartbeat("node-2").await;
    assert!(
        heartbeat.is_none_or(|entry| entry.operation != Operation::Put),
        "node-2's heartbeat is still there"
    );
    let took = wait_until("node-2 down on node-1", BOUND, || async {
        cluster.nodes[0].status_of("node-2").await == "down"
    })
    .await;
    println!("node-2 stopped gracefully: down on node-1 after {took:?}");
}

#[tokio::test]
async fn a_heartbeat_names_the_node_its_bound_address_and_its_start() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 1).await;

    let entry = nats.heartbeat("node-1").await.expect("node-1's heartbeat");

    let heartbeat: Value = serde_json::from_slice(&entry.value).unwrap();
    assert_eq!(heartbeat["id"], "node-1");
    assert_eq!(heartbeat["http"], cluster.nodes[0].address());
    assert!(
        heartbeat["started"].as_u64().unwrap() > 1_700_000_000_000,
        "{heartbeat}"
    );
}

#[tokio::test]
async fn a_node_whose_nats_does_not_answer_refuses_to_start_and_says_where_it_looked() {
    let dir = tempfile::TempDir::new().unwrap();
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    std::fs::write(dir.path().join("cluster.toml"), cluster_toml(&nowhere, 1)).unwrap();
    let data = dir.path().join("data");
    let args = ["serve", "--http", "127.0.0.1:0", "--config", "cluster.toml"];
    let data_arg = ["--data-dir", data.to_str().unwrap()];

    let (status, output) = run_to_exit(dir.path(), &[&args[..], &data_arg[..]].concat(), &[]);

    assert!(!status.success(), "it started: {output}");
    assert!(output.contains("cannot reach NATS"), "{output}");
    assert!(output.contains(&nowhere), "{output}");
}

#[tokio::test]
async fn a_node_whose_nats_has_no_jetstream_refuses_to_start_and_says_so() {
    let nats = NatsServer::start_without_jetstream();
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("cluster.toml"),
        cluster_toml(&nats.url(), 1),
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = ["serve", "--http", "127.0.0.1:0", "--config", "cluster.toml"];
    let data_arg = ["--data-dir", data.to_str().unwrap()];

    let (status, output) = run_to_exit(dir.path(), &[&args[..], &data_arg[..]].concat(), &[]);

    assert!(!status.success(), "it started: {output}");
    assert!(output.contains("is JetStream enabled"), "{output}");
}

#[tokio::test]
async fn ready_is_503_while_nats_is_out_of_reach_and_200_once_it_is_back_with_every_peer_up() {
    let mut nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 2).await;
    wait_until("both up", BOUND, || all_up(&cluster)).await;
    let node = &cluster.nodes[0];
    let ready = node.get_json("/ready").await;
    assert_eq!(ready["nats"], "connected", "{ready}");

    nats.kill();
    let took = wait_until("/ready 503", BOUND, || async {
        node.get("/ready", None).await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    println!("NATS killed: /ready 503 after {took:?}");
    let refused = node.get("/ready", None).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = problem(refused).await;
    assert_eq!(body["code"], "UNAVAILABLE");
    assert_eq!(body["nats"], "unreachable");
    assert_eq!(node.status_of("node-1").await, "down");
    wait_until("node-2 down on node-1", BOUND, || async {
        node.status_of("node-2").await == "down"
    })
    .await;

    nats.restart();
    let took = wait_until("/ready 200 again", BOUND, || async {
        node.get("/ready", None).await.status() == StatusCode::OK
    })
    .await;
    println!("NATS restarted on the same port: /ready 200 after {took:?}");
    assert_eq!(node.status_of("node-1").await, "up");
    // The heartbeat bucket lives in NATS's memory: the nodes create it
    // again and see each other.
    let took = wait_until("both up again", BOUND, || all_up(&cluster)).await;
    println!("NATS restarted: both nodes up on both after {took:?} more");
}

#[tokio::test]
async fn nodes_find_each_other_again_after_nats_restarts_with_an_empty_store() {
    let mut nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 2).await;
    wait_until("both up", BOUND, || all_up(&cluster)).await;

    nats.restart_empty();
    wait_until("node-2 down on node-1", BOUND, || async {
        cluster.nodes[0].status_of("node-2").await == "down"
    })
    .await;

    // Their heartbeats find no bucket and create it again.
    let took = wait_until("both up again", BOUND, || all_up(&cluster)).await;
    println!("NATS restarted empty: both nodes up on both after {took:?}");
}

#[tokio::test]
async fn the_metrics_count_the_nodes_up_and_say_whether_nats_is_reached() {
    let nats = NatsServer::start();
    let mut cluster = TestCluster::start(&nats, 2).await;
    let metrics = |node: &TestApp| {
        let url = node.url("/metrics");
        let client = node.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let node = &cluster.nodes[0];
    wait_until("two nodes up in the metrics", BOUND, || async {
        let text = metrics(node).await;
        text.contains("agora_cluster_nodes_up 2") && text.contains("agora_nats_connected 1")
    })
    .await;

    cluster.nodes[1].kill9();
    let node = &cluster.nodes[0];
    wait_until("one node up in the metrics", BOUND, || async {
        metrics(node).await.contains("agora_cluster_nodes_up 1")
    })
    .await;
}
