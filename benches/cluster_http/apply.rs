//! What applying another node's events costs: the checkout load on node 1
//! alone (its buyers, its sellers' items), while nodes 2 and 3 only apply
//! node 1's events (and beat their hearts). Each process's CPU ÷ node 1's
//! checkouts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::support::cpu_micros_of;
use super::support::Server;
use super::{buyer_loop, Cluster, Counters, User};

/// Runs `buyers` (all on node 1) on `items` (node 1's) for `secs`.
pub async fn one_node_loaded(cluster: &Cluster, buyers: &[User], items: &[String], secs: u64) {
    let items = Arc::new(items.to_vec());
    let counters = Arc::new(Counters::default());
    let nats = cluster.nats.pid().to_string();
    let cpu = || {
        let mut each: Vec<u64> = cluster.nodes.iter().map(Server::cpu_micros).collect();
        each.push(cpu_micros_of(&nats));
        each
    };
    let before = cpu();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let tasks: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, buyer)| {
            assert_eq!(buyer.node, 0);
            tokio::spawn(buyer_loop(
                cluster.client.clone(),
                cluster.base(0).to_owned(),
                buyer.token.clone(),
                items.clone(),
                counters.clone(),
                deadline,
                i,
            ))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let confirmed = counters.confirmed.load(Ordering::Relaxed).max(1) as f64;
    let per: Vec<String> = cpu()
        .iter()
        .zip(&before)
        .map(|(after, before)| format!("{:.0}", (after - before) as f64 / confirmed))
        .collect();
    println!(
        "\nnode-1 loaded alone ({} buyers): {:.0} checkouts/s; CPU µs per checkout: node-1 {}, \
         node-2 {}, node-3 {}, nats-server {}",
        buyers.len(),
        confirmed / secs,
        per[0],
        per[1],
        per[2],
        per[3],
    );
}
