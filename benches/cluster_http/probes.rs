//! The cluster's timing probes: how soon an item listed on one node is
//! found by search on another, and how soon a killed node's entities
//! answer `503 NODE_UNAVAILABLE` elsewhere.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{Cluster, User};

/// Whether node `n`'s search finds `word` now.
async fn finds(cluster: &Cluster, n: usize, word: &str) -> bool {
    let url = format!("{}/items?term={word}&size=1", cluster.base(n));
    let page: Value = cluster
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["total"].as_u64().unwrap_or(0) >= 1
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Lists `count` items on `seller`'s node, one at a time; for each, the
/// time from its `201` until that node's search finds it and until the
/// next node's does.
pub async fn freshness(cluster: &Cluster, seller: &User, count: usize) {
    let other = (seller.node + 1) % super::NODES;
    let mut here = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut there = here.clone();
    let tag: u32 = rand::random();
    for i in 0..count {
        let word = format!("fresh{tag:x}n{i}");
        let body = json!({"name": format!("Freshness {word}"), "description": "Freshness probe",
                          "price": 500, "quantity": 10});
        let created = cluster
            .client
            .post(format!("{}/items", cluster.base(seller.node)))
            .bearer_auth(&seller.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let listed = Instant::now();
        let (mut seen_here, mut seen_there) = (None, None);
        while seen_here.is_none() || seen_there.is_none() {
            assert!(
                listed.elapsed() < Duration::from_secs(60),
                "{word} never found"
            );
            if seen_here.is_none() && finds(cluster, seller.node, &word).await {
                seen_here = Some(listed.elapsed());
            }
            if seen_there.is_none() && finds(cluster, other, &word).await {
                seen_there = Some(listed.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        here.record(seen_here.unwrap().as_micros() as u64).unwrap();
        there
            .record(seen_there.unwrap().as_micros() as u64)
            .unwrap();
    }
    println!(
        "\nsearch freshness, {count} items listed on node-{}: found there p50 {:.0} ms, \
         max {:.0} ms; found on node-{} p50 {:.0} ms, max {:.0} ms",
        seller.node + 1,
        ms(&here, 0.5),
        ms(&here, 1.0),
        other + 1,
        ms(&there, 0.5),
        ms(&there, 1.0),
    );
}

/// `PATCH /items/{id}` through node 1: its status and problem code.
async fn patch(cluster: &Cluster, seller: &User, item: &str, price: u64) -> (u16, String) {
    patch_at(&cluster.client, cluster.base(0), &seller.token, item, price).await
}

/// What one probe sent after the kill saw: when it was sent and answered
/// (since the kill), and its status and code.
struct Probe {
    sent: Duration,
    answered: Duration,
    outcome: String,
}

/// Until `item` answers `200` through node 1 (bounded); how long it took
/// and what it answered before.
async fn until_served(cluster: &Cluster, seller: &User, item: &str) -> (Duration, Vec<String>) {
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let (status, code) = patch(cluster, seller, item, 1000).await;
        if status == 200 {
            return (started.elapsed(), seen);
        }
        if seen.last() != Some(&format!("{status} {code}")) {
            seen.push(format!("{status} {code}"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never served: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kills `seller`'s node (not node 1) `trials` times. Each time a probe
/// (`PATCH /items/{id}` of one of its `items` through node 1) starts every
/// 2 ms from the kill until one answers `503 NODE_UNAVAILABLE`; then the
/// node is started again and timed until it serves the item.
pub async fn dead_node(cluster: &mut Cluster, seller: &User, items: &[String], trials: usize) {
    let victim = seller.node;
    assert_ne!(victim, 0, "the seller must live off node 1");
    println!(
        "\nkill -9 node-{}: PATCH /items/{{id}} through node-1, a probe every 2 ms",
        victim + 1
    );
    println!("trial\tfirst NODE_UNAVAILABLE answer\tsent at\tprobes timed out (sent up to)\tserving again after restart");
    let item = &items[0];
    until_served(cluster, seller, item).await;
    for trial in 0..trials {
        let (first, timed_out) = kill_and_probe(cluster, seller, item, victim).await;
        let restarted = Instant::now();
        cluster.nodes[victim] = cluster.start_node(victim);
        let (_, seen) = until_served(cluster, seller, item).await;
        let serving = restarted.elapsed();
        let late = timed_out.iter().map(|p| p.sent).max().unwrap_or_default();
        let outcomes: Vec<&str> = timed_out.iter().map(|p| p.outcome.as_str()).collect();
        println!(
            "{}\t{:.1} ms\t{:.1} ms\t{} {:?} (sent up to {:.1} ms, answered after {:.1} s)\t{:.2} s {:?}",
            trial + 1,
            first.answered.as_secs_f64() * 1000.0,
            first.sent.as_secs_f64() * 1000.0,
            timed_out.len(),
            outcomes.first(),
            late.as_secs_f64() * 1000.0,
            timed_out.iter().map(|p| p.answered).max().unwrap_or_default().as_secs_f64(),
            serving.as_secs_f64(),
            seen,
        );
    }
}

/// Kills node `victim` and sends a probe every 2 ms until one answers
/// `503 NODE_UNAVAILABLE`; that probe, and those that answered otherwise
/// (waited for, bounded).
async fn kill_and_probe(
    cluster: &Cluster,
    seller: &User,
    item: &str,
    victim: usize,
) -> (Probe, Vec<Probe>) {
    let killed = Instant::now();
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(cluster.nodes[victim].pid() as libc::pid_t, libc::SIGKILL) };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut first = None;
    while first.is_none() {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "never 503 NODE_UNAVAILABLE"
        );
        let (cluster_client, base) = (cluster.client.clone(), cluster.base(0).to_owned());
        let (token, item, tx) = (seller.token.clone(), item.to_owned(), tx.clone());
        tokio::spawn(async move {
            let sent = killed.elapsed();
            let (status, code) = patch_at(&cluster_client, &base, &token, &item, 1001).await;
            let outcome = format!("{status} {code}");
            let _ = tx.send(Probe {
                sent,
                answered: killed.elapsed(),
                outcome,
            });
        });
        tokio::time::sleep(Duration::from_millis(2)).await;
        while let Ok(probe) = rx.try_recv() {
            if probe.outcome == "503 NODE_UNAVAILABLE" && first.is_none() {
                first = Some(probe);
            }
        }
    }
    drop(tx);
    // Probes still out (sent to the dying node) wait for their answer.
    let mut timed_out = Vec::new();
    while let Ok(Some(probe)) = tokio::time::timeout(Duration::from_secs(40), rx.recv()).await {
        if probe.outcome != "503 NODE_UNAVAILABLE" {
            timed_out.push(probe);
        }
    }
    (first.expect("a NODE_UNAVAILABLE probe"), timed_out)
}

/// One probe's `PATCH`: status and problem code (`0` and the error when
/// no answer came).
async fn patch_at(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    item: &str,
    price: u64,
) -> (u16, String) {
    let reply = client
        .patch(format!("{base}/items/{item}"))
        .bearer_auth(token)
        .json(&json!({"price": price}))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    match reply {
        Ok(r) => {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().unwrap_or("").to_owned())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// How many of `items` node 1 finds (`PATCH` answered `200`) and how many
/// it answers otherwise, with the first other answer: a check that the
/// kills lost nothing.
pub async fn survivors(cluster: &Cluster, seller: &User, items: &[String]) {
    let mut other = Vec::new();
    for item in items {
        let (status, code) = patch(cluster, seller, item, 1003).await;
        if status != 200 {
            other.push(format!("{item}: {status} {code}"));
        }
    }
    println!(
        "after the kills: {} of {} items of the killed node answer 200 through node-1; others: {:?}",
        items.len() - other.len(),
        items.len(),
        other.iter().take(3).collect::<Vec<_>>(),
    );
}
