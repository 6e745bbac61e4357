//! Replication under failure, through the real binary: a node killed and
//! restarted (its durable consumer kept, or lost) catches up and applies
//! nothing twice; NATS away, or back with an empty store, loses nothing;
//! the relays publish each event once, by its origin, never what they
//! applied. The commit → applied lag is measured from two nodes' exported
//! logs and printed (`--nocapture`), never asserted.

use std::collections::HashMap;

use serde_json::Value;

use crate::helpers::{run_output, TestApp};
use crate::nats::{wait_until, NatsServer, TestCluster};
use crate::replication::{create_many, found, gadget, metric, total, word, BOUND};

/// Creates `count` items named after `word` on `node`, 8 at a time.
async fn create_concurrently(
    node: &TestApp,
    seller: &str,
    word: &str,
    count: usize,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let wave = (count - ids.len()).min(8);
        let body = gadget(word, 5);
        let made =
            futures::future::join_all((0..wave).map(|_| node.create_item(seller, &body))).await;
        ids.extend(
            made.iter()
                .map(|item| item["id"].as_str().unwrap().to_owned()),
        );
    }
    ids
}

/// `agora events export` of a stopped node, parsed.
fn export(node: &TestApp) -> Vec<Value> {
    let dir = node.data_dir().join("node");
    let (status, stdout, stderr) = run_output(
        node.data_dir(),
        &["events", "export", "--data-dir", dir.to_str().unwrap()],
    );
    assert!(status.success(), "{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// How many times each item was created in an exported log.
fn creations(log: &[Value]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for line in log.iter().filter(|l| l["type"] == "item.created") {
        *seen
            .entry(line["data"]["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    seen
}

/// An RFC 3339 time as Unix milliseconds.
fn ms(at: &Value) -> i64 {
    let parsed = time::OffsetDateTime::parse(
        at.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    (parsed.unix_timestamp_nanos() / 1_000_000) as i64
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

/// Deletes node `node`'s durable consumer, as a NATS that lost it would.
async fn delete_consumer(nats: &NatsServer, node: &str) {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let stream = async_nats::jetstream::new(client)
        .get_stream("AGORA_EVENTS")
        .await
        .expect("the stream");
    stream
        .delete_consumer(&format!("agora-{node}"))
        .await
        .expect("delete the consumer");
}

#[tokio::test]
async fn a_node_killed_and_restarted_catches_up_on_what_it_missed_and_applies_nothing_twice() {
    let nats = NatsServer::start();
    let mut cluster = TestCluster::start(&nats, 3).await;
    let seller = cluster.nodes[0].home_user_token("seller").await;
    let word = word();
    let mut ids = create_many(&cluster.nodes[0], &seller, &word, 1).await;
    wait_until("node-3 has the first item", BOUND, || async {
        found(&cluster.nodes[2], &word).await.len() == 1
    })
    .await;

    // Killed: it resumes from its durable consumer.
    let mut three = cluster.nodes.remove(2);
    three.kill9();
    ids.extend(create_many(&cluster.nodes[0], &seller, &word, 10).await);
    let three = three.restart();
    let caught_up = wait_until("node-3 caught up after kill -9", BOUND, || async {
        found(&three, &word).await.len() == ids.len()
    })
    .await;
    println!(
        "node-3 restarted: {} missed items found in {caught_up:?}",
        ids.len() - 1
    );

    // Killed, and its consumer lost too: set up again after what it applied.
    let mut three = three;
    three.kill9();
    delete_consumer(&nats, "node-3").await;
    ids.extend(create_many(&cluster.nodes[0], &seller, &word, 10).await);
    let mut three = three.restart();
    wait_until("node-3 caught up with a new consumer", BOUND, || async {
        found(&three, &word).await.len() == ids.len()
    })
    .await;

    let mut hits = found(&three, &word).await;
    hits.sort();
    ids.sort();
    assert_eq!(hits, ids, "each item found once on node-3");
    three.terminate();
    let log = creations(&export(&three));
    let twice: Vec<_> = log.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied twice on node-3: {twice:?}");
    assert!(
        ids.iter().all(|id| log.get(id) == Some(&1)),
        "every item once in node-3's log"
    );
}

/// When the stream stored each of node-1's events: its seq → Unix ms.
async fn stored_at(
    stream: &mut async_nats::jetstream::stream::Stream,
    last: u64,
) -> HashMap<u64, i64> {
    let mut stored = HashMap::new();
    for seq in 1..=last {
        let message = stream.get_raw_message(seq).await.expect("a message");
        let id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .unwrap()
            .as_str();
        if let Some(origin_seq) = id.strip_prefix("node-1:") {
            let at = (message.time.unix_timestamp_nanos() / 1_000_000) as i64;
            stored.insert(origin_seq.parse().unwrap(), at);
        }
    }
    stored
}

/// Prints p50/p99 of commit on node-1 → applied on node-2, and of its two
/// legs (→ the stream, stream → applied), over the items `ids`.
fn print_lags(one: &[Value], two: &[Value], stored: &HashMap<u64, i64>, ids: &[String]) {
    let created = |log: &[Value]| -> HashMap<String, (u64, i64)> {
        log.iter()
            .filter(|l| l["type"] == "item.created")
            .map(|l| {
                let id = l["data"]["id"].as_str().unwrap().to_owned();
                (id, (l["seq"].as_u64().unwrap(), ms(&l["at"])))
            })
            .collect()
    };
    let (made, applied) = (created(one), created(two));
    let mut legs = [Vec::new(), Vec::new(), Vec::new()];
    for id in ids {
        let ((seq, made_at), (_, applied_at)) = (made[id], applied[id]);
        legs[0].push(applied_at - made_at);
        legs[1].push(stored[&seq] - made_at);
        legs[2].push(applied_at - stored[&seq]);
    }
    let names = [
        "commit on node-1 → applied on node-2",
        "  commit → stream",
        "  stream → applied",
    ];
    for (name, lags) in names.iter().zip(&mut legs) {
        lags.sort_unstable();
        println!(
            "{name} over {} items made 8 at a time (debug build): p50 {} ms, p99 {} ms, max {} ms",
            lags.len(),
            percentile(lags, 0.5),
            percentile(lags, 0.99),
            lags[lags.len() - 1]
        );
    }
}

#[tokio::test]
async fn the_relays_publish_each_event_once_by_its_origin_and_never_what_they_applied() {
    let nats = NatsServer::start();
    let mut cluster = TestCluster::start(&nats, 3).await;
    let seller = cluster.nodes[0].home_user_token("seller").await;
    let word = word();
    let ids = create_concurrently(&cluster.nodes[0], &seller, &word, 160).await;
    for node in &cluster.nodes[1..] {
        wait_until("every item applied", BOUND, || async {
            total(node, &word).await == ids.len() as u64
                && metric(node, "agora_consumer_lag_events").await == Some(0.0)
        })
        .await;
        let applied = metric(node, "agora_consumer_applied_total").await.unwrap();
        assert!(applied >= 2.0 * ids.len() as f64, "{applied}");
        let timed = metric(node, "agora_consumer_lag_seconds_count").await;
        assert_eq!(timed, Some(applied), "each applied event's lag is recorded");
    }
    for node in &cluster.nodes {
        wait_until("relay lag 0", BOUND, || async {
            metric(node, "agora_relay_lag_events").await == Some(0.0)
        })
        .await;
    }
    let made = metric(&cluster.nodes[0], "agora_relay_relayed_seq")
        .await
        .unwrap() as u64;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let mut stream = async_nats::jetstream::new(client)
        .get_stream("AGORA_EVENTS")
        .await
        .expect("the stream");
    let state = stream.info().await.expect("info").state.clone();
    assert_eq!(
        state.messages, made,
        "one message per event made (node-1's {made})"
    );

    let stored = stored_at(&mut stream, state.last_sequence).await;
    // Commit on node-1 → the applied copy's commit on node-2, per item.
    let mut two = cluster.nodes.remove(1);
    let mut one = cluster.nodes.remove(0);
    two.terminate();
    one.terminate();
    print_lags(&export(&one), &export(&two), &stored, &ids);
}

#[tokio::test]
async fn events_made_while_nats_is_away_or_loses_its_store_reach_the_other_node_once_it_is_back() {
    let mut nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 2).await;
    let (one, two) = (&cluster.nodes[0], &cluster.nodes[1]);
    let seller = one.home_user_token("seller").await;
    let word = word();
    let mut ids = create_many(one, &seller, &word, 1).await;
    let all_found = |count: usize| {
        let word = word.clone();
        async move {
            wait_until("node-2 found them all", BOUND, || async {
                found(two, &word).await.len() == count
            })
            .await
        }
    };
    all_found(1).await;

    nats.kill();
    ids.extend(create_many(one, &seller, &word, 3).await);
    nats.restart();
    let back = all_found(ids.len()).await;
    println!("NATS back: node-2 found the items made meanwhile in {back:?}");

    nats.restart_empty();
    ids.extend(create_many(one, &seller, &word, 3).await);
    let rebuilt = all_found(ids.len()).await;
    println!("NATS back empty: node-2 found the items made meanwhile in {rebuilt:?}");
    let mut hits = found(two, &word).await;
    hits.sort();
    ids.sort();
    assert_eq!(hits, ids);
}
