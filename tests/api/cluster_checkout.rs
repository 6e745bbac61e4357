//! Checkout across nodes (three real nodes on a real nats-server): the
//! coordinator runs on the buyer's node and reserves, commits and releases
//! the SKUs on their owner over NATS; a seller's orders are merged from
//! every node; and a `kill -9` of the SKUs' owner in the middle of
//! concurrent checkouts oversells nothing, loses no acknowledged order,
//! leaves no order stuck and no cart locked once it is back.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{ulid_like, TestApp};
use crate::nats::{wait_until, NatsServer, TestCluster};
use crate::replication::{frame, subscribed};
use crate::shop::{Buyer, Shop, GOOD_CARD};

/// Far beyond the usual milliseconds: a slow CI box must not fail.
const BOUND: Duration = Duration::from_secs(60);

/// A fresh account of `role`, signed in through node 1: its id, its token
/// and the index of the node it lives on.
async fn account(cluster: &TestCluster, role: &str) -> (String, String, usize) {
    let via = &cluster.nodes[0];
    let email = format!("{role}-{}@example.com", ulid_like());
    let created = via.register(&email, "correct horse", role).await;
    assert_eq!(created.status(), StatusCode::CREATED, "register");
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = via.sign_in(&email, "correct horse").await;
    assert_eq!(session.status(), StatusCode::CREATED, "sign in");
    let token = session.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let placed = via.placement("user", &id).await;
    let home = placed["node"]
        .as_str()
        .unwrap()
        .trim_start_matches("node-")
        .parse::<usize>()
        .unwrap()
        - 1;
    (id, token, home)
}

/// A buyer living on another node than `not_on`: (token, node index).
async fn buyer_elsewhere(cluster: &TestCluster, not_on: usize) -> (String, usize) {
    loop {
        let (_, token, home) = account(cluster, "buyer").await;
        if home != not_on {
            return (token, home);
        }
    }
}

/// A seller's shop on their own node: the shop and that node's index.
async fn shop(cluster: &TestCluster, quantity: i64) -> (Shop, usize) {
    let (_, seller, home) = account(cluster, "seller").await;
    let item = cluster.nodes[home]
        .create_item(
            &seller,
            &json!({"name": "Wireless Mouse", "description": "Ergonomic Bluetooth Mouse",
                    "price": 999, "quantity": quantity, "category": "electronics"}),
        )
        .await;
    let shop = Shop {
        seller,
        item_id: item["id"].as_str().unwrap().to_owned(),
    };
    (shop, home)
}

/// Waits until `node` serves the item (its replica has arrived).
async fn replicated(node: &TestApp, item_id: &str) {
    let path = format!("/items/{item_id}");
    wait_until("the item reaches the buyer's node", BOUND, || async {
        node.get(&path, None).await.status() == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn a_buyer_checks_out_skus_owned_by_another_node() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 3).await;
    let (shop, owner) = shop(&cluster, 10).await;
    let (token, home) = buyer_elsewhere(&cluster, owner).await;
    // The buyer talks to the third node: neither theirs nor the SKU's.
    let node = &cluster.nodes[3 - owner - home];
    replicated(node, &shop.item_id).await;
    replicated(&cluster.nodes[home], &shop.item_id).await;
    let buyer = Buyer::fill(node, token, &shop, 2).await;
    let response = buyer.checkout(node, GOOD_CARD).await;
    assert_eq!(response.status(), StatusCode::CREATED, "checkout");
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "CONFIRMED");
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    // The stock moved on the SKU's owner, nothing held.
    assert_eq!(shop.stock(&cluster.nodes[owner]).await, (8, 8));
    // The seller's list (asked of the buyer's node, served by the
    // seller's) holds the order that lives on the buyer's node; shipping
    // it through the seller's node reaches it.
    let seller_node = &cluster.nodes[owner];
    let through_buyers: Value = cluster.nodes[home]
        .get("/seller/orders", Some(&shop.seller))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(through_buyers["items"][0]["id"], order_id.as_str());
    let listed: Value = seller_node
        .get("/seller/orders", Some(&shop.seller))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert_eq!(ids, [order_id.as_str()], "the seller sees the order");
    // The buyer's socket on the SKU's node (not where the order lives)
    // hears the order ship.
    let topic = format!("item:{}", shop.item_id);
    let mut socket = subscribed(seller_node, &buyer.token, &topic).await;
    let shipped = seller_node
        .post(
            &format!("/orders/{order_id}/ship"),
            Some(&shop.seller),
            &json!({}),
        )
        .await;
    assert_eq!(
        shipped.status(),
        StatusCode::OK,
        "ship through the seller's node"
    );
    let seen = buyer.order(node, &order_id).await;
    assert_eq!(seen["status"], "SHIPPED");
    let pushed = frame(&mut socket, |f| {
        f["type"] == "order.updated" && f["status"] == "SHIPPED"
    })
    .await;
    assert_eq!(pushed["orderId"], order_id.as_str());
}

/// Which node a test kills in the middle of the checkouts.
#[derive(Clone, Copy)]
enum Victim {
    /// The node owning the SKU (the buyers live elsewhere).
    SkuOwner,
    /// The buyers' node, where every coordinator runs.
    Coordinators,
}

#[tokio::test]
async fn killing_the_sku_owner_mid_checkouts_oversells_nothing_and_loses_nothing() {
    kill_mid_checkouts(Victim::SkuOwner).await;
}

#[tokio::test]
async fn killing_the_coordinators_node_mid_checkouts_oversells_nothing_and_loses_nothing() {
    kill_mid_checkouts(Victim::Coordinators).await;
}

/// Eight buyers check out two units each of a 30-unit SKU on another
/// node; `victim` is killed (-9) as soon as the first checkout is answered,
/// and restarted on its data. Then: every checkout ends (no order waiting,
/// no cart locked), every acknowledged order is confirmed, and the SKU's
/// stock is conserved (sold units gone, none held, none oversold).
async fn kill_mid_checkouts(victim: Victim) {
    let nats = NatsServer::start();
    // Payments take a while, so the kill finds checkouts at every step:
    // reserving, waiting for the gateway, committing. A charge the killed
    // node never heard back about leaves its order waiting for payment
    // until the payment window closes (3 s here), as with a real gateway.
    let settings = [
        ("AGORA_CHECKOUT_SWEEP_SECS", "1"),
        ("AGORA_PAYMENT_LATENCY_MS", "300"),
        ("AGORA_PAYMENT_TTL_SECS", "3"),
    ];
    let mut cluster = TestCluster::start_with(&nats, 3, &settings).await;
    let stocked = 30;
    let (shop, owner) = shop(&cluster, stocked).await;
    let mut buyers = Vec::new();
    let mut coordinators = None;
    while buyers.len() < 8 {
        let (token, home) = buyer_elsewhere(&cluster, owner).await;
        // Killing the coordinators: every buyer on the same node.
        if matches!(victim, Victim::Coordinators) && *coordinators.get_or_insert(home) != home {
            continue;
        }
        replicated(&cluster.nodes[home], &shop.item_id).await;
        let buyer = Buyer::fill(&cluster.nodes[home], token, &shop, 2).await;
        buyers.push((buyer, home));
    }
    let killed = match victim {
        Victim::SkuOwner => owner,
        Victim::Coordinators => coordinators.unwrap(),
    };
    let acknowledged = checkouts_killing(&mut cluster, &buyers, killed).await;
    let started = Instant::now();
    // Every checkout ends: no order left waiting, no cart left locked.
    let mut sold = 0;
    for (buyer, home) in &buyers {
        let node = &cluster.nodes[*home];
        wait_until(
            "the buyer's orders end and the cart unlocks",
            BOUND,
            || async {
                let orders = buyer.orders(node).await;
                let open = orders
                    .iter()
                    .any(|o| matches!(o["status"].as_str(), Some("CREATED" | "PAYMENT_PENDING")));
                let unlocked = node
                    .patch(
                        "/cart",
                        Some(&buyer.token),
                        &json!({"itemId": shop.item_id, "quantity": 1}),
                    )
                    .await
                    .status()
                    != StatusCode::CONFLICT;
                !open && unlocked
            },
        )
        .await;
        for order in buyer.orders(node).await {
            if order["status"] == "CONFIRMED" {
                sold += order["lines"][0]["quantity"].as_i64().unwrap();
            }
            if acknowledged.contains(&order["id"].as_str().unwrap().to_owned()) {
                assert_eq!(order["status"], "CONFIRMED", "an acknowledged order stays");
            }
        }
    }
    let found: usize = {
        let mut ids = Vec::new();
        for (buyer, home) in &buyers {
            for order in buyer.orders(&cluster.nodes[*home]).await {
                ids.push(order["id"].as_str().unwrap().to_owned());
            }
        }
        acknowledged.iter().filter(|id| ids.contains(id)).count()
    };
    assert_eq!(
        found,
        acknowledged.len(),
        "every acknowledged order is there"
    );
    println!(
        "{} of {} checkouts acknowledged before the kill; all settled {:?} after the restart; {sold} units sold",
        acknowledged.len(),
        buyers.len(),
        started.elapsed()
    );
    let owner_node = &cluster.nodes[owner];
    wait_until("reservations released", BOUND, || async {
        let (available, on_hand) = shop.stock(owner_node).await;
        available == on_hand
    })
    .await;
    assert_eq!(
        shop.stock(owner_node).await,
        (stocked - sold, stocked - sold),
        "stock conserved: sold units left, none held, none oversold"
    );
}

/// Starts every buyer's checkout (staggered 40 ms apart) through their own
/// node, kills node `killed` as soon as the first is answered, restarts it
/// on its data, and returns the orders acknowledged (`201`).
async fn checkouts_killing(
    cluster: &mut TestCluster,
    buyers: &[(Buyer, usize)],
    killed: usize,
) -> Vec<String> {
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.url("")).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (done, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for (n, (buyer, home)) in buyers.iter().enumerate() {
        let request = client
            .post(format!("{}/checkout", bases[*home]))
            .bearer_auth(&buyer.token)
            .json(&buyer.body(GOOD_CARD));
        let done = done.clone();
        tokio::spawn(async move {
            // Staggered, so they are at different steps when the kill comes.
            tokio::time::sleep(Duration::from_millis(40 * n as u64)).await;
            // A request to the killed node itself fails with the connection.
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    Some((
                        status,
                        response.json::<Value>().await.unwrap_or(Value::Null),
                    ))
                }
                Err(_) => None,
            };
            let _ = done.send(answer);
        });
    }
    drop(done);
    let mut results = vec![answers.recv().await.expect("a first answer")];
    cluster.nodes[killed].kill9();
    while let Some(result) = answers.recv().await {
        results.push(result);
    }
    let mut acknowledged = Vec::new();
    for (status, body) in results.iter().flatten() {
        assert_ne!(*status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        println!("checkout answered {status} {}", body["code"]);
        if *status == StatusCode::CREATED {
            acknowledged.push(body["orderId"].as_str().unwrap().to_owned());
        }
    }
    let node = cluster.nodes.remove(killed);
    cluster.nodes.insert(killed, node.restart());
    acknowledged
}

#[tokio::test]
async fn a_checkout_needing_a_dead_nodes_stock_is_refused_at_once_and_given_back_later() {
    let nats = NatsServer::start();
    let settings = [("AGORA_CHECKOUT_SWEEP_SECS", "1")];
    let mut cluster = TestCluster::start_with(&nats, 3, &settings).await;
    let (shop, owner) = shop(&cluster, 10).await;
    let (token, home) = buyer_elsewhere(&cluster, owner).await;
    replicated(&cluster.nodes[home], &shop.item_id).await;
    let buyer = Buyer::fill(&cluster.nodes[home], token, &shop, 1).await;
    cluster.nodes[owner].kill9();
    let started = Instant::now();
    let refused = buyer.checkout(&cluster.nodes[home], GOOD_CARD).await;
    let took = started.elapsed();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "NODE_UNAVAILABLE");
    assert_eq!(body["node"], format!("node-{}", owner + 1));
    println!("checkout refused {took:?} after the SKU owner's kill");
    // Back on its data: the cart is unlocked and nothing stays held.
    let killed = cluster.nodes.remove(owner);
    cluster.nodes.insert(owner, killed.restart());
    let node = &cluster.nodes[home];
    wait_until("the cart is given back", BOUND, || async {
        node.patch(
            "/cart",
            Some(&buyer.token),
            &json!({"itemId": shop.item_id, "quantity": 1}),
        )
        .await
        .status()
            == StatusCode::OK
    })
    .await;
    assert_eq!(shop.stock(&cluster.nodes[owner]).await, (10, 10));
    let again = buyer.checkout(node, GOOD_CARD).await;
    assert_eq!(again.status(), StatusCode::CREATED, "and it can be bought");
}
