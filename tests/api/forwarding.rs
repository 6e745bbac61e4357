//! Any node serves the whole contract: a request for an entity owned by
//! another node is forwarded to its owner over NATS (three real nodes on a
//! real nats-server). Sign-up reaches the node its email is placed on, so
//! an address registers once whichever node is asked; a seller's item
//! changes through any node; a killed owner's entities answer
//! `503 NODE_UNAVAILABLE` at once while the rest keeps working.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{mouse, problem, ulid_like, TestApp};
use crate::nats::{NatsServer, TestCluster};

/// Registers `email` (through `via`) as `role` and signs in; returns the
/// user's id and token.
async fn account(via: &TestApp, email: &str, role: &str) -> (String, String) {
    let created = via.register(email, "correct horse", role).await;
    if created.status() != StatusCode::CREATED {
        panic!("register: {}", created.text().await.unwrap());
    }
    let user: Value = created.json().await.unwrap();
    let session = via.sign_in(email, "correct horse").await;
    assert_eq!(session.status(), StatusCode::CREATED, "sign in");
    let session: Value = session.json().await.unwrap();
    (
        user["id"].as_str().unwrap().to_owned(),
        session["token"].as_str().unwrap().to_owned(),
    )
}

/// The index in `cluster.nodes` of the node owning the entity.
async fn owner_index(cluster: &TestCluster, kind: &str, id: &str) -> usize {
    let placed = cluster.nodes[0].placement(kind, id).await;
    let node = placed["node"].as_str().unwrap();
    node.trim_start_matches("node-").parse::<usize>().unwrap() - 1
}

#[tokio::test]
async fn an_email_registers_once_whichever_node_is_asked() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 3).await;
    let email = format!("once-{}@example.com", ulid_like());
    let (user_id, _) = account(&cluster.nodes[0], &email, "buyer").await;
    for node in &cluster.nodes {
        let again = node.register(&email, "another horse", "buyer").await;
        assert_eq!(again.status(), StatusCode::CONFLICT, "a second sign-up");
        assert_eq!(problem(again).await["code"], "EMAIL_TAKEN");
        let session = node.sign_in(&email, "correct horse").await;
        assert_eq!(session.status(), StatusCode::CREATED, "sign in anywhere");
    }
    // The account and its sessions live on the node its email is placed
    // on, whichever node was asked.
    let owner = owner_index(&cluster, "user", &user_id).await;
    let session = cluster.nodes[(owner + 1) % 3]
        .sign_in(&email, "correct horse")
        .await;
    let token = session.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = cluster.nodes[owner].get("/users/me", Some(&token)).await;
    assert_eq!(me.status(), StatusCode::OK, "the owner knows the session");
}

#[tokio::test]
async fn a_sellers_item_changes_through_any_node() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 3).await;
    let email = format!("seller-{}@example.com", ulid_like());
    let (seller_id, token) = account(&cluster.nodes[2], &email, "seller").await;
    let home = owner_index(&cluster, "user", &seller_id).await;
    let item = cluster.nodes[home].create_item(&token, &mouse()).await;
    let id = item["id"].as_str().unwrap().to_owned();
    assert_eq!(
        owner_index(&cluster, "item", &id).await,
        home,
        "beside its seller"
    );
    for (n, node) in cluster.nodes.iter().enumerate() {
        let price = 1000 + n as i64;
        let changed = node
            .patch(
                &format!("/items/{id}"),
                Some(&token),
                &json!({"price": price}),
            )
            .await;
        assert_eq!(changed.status(), StatusCode::OK, "PATCH through node {n}");
        let read = cluster.nodes[home].get_json(&format!("/items/{id}")).await;
        assert_eq!(read["price"], price, "changed on its owner");
        let stock = node
            .post(
                &format!("/items/{id}/stock"),
                Some(&token),
                &json!({"delta": 1}),
            )
            .await;
        assert_eq!(stock.status(), StatusCode::OK, "stock through node {n}");
    }
    let read = cluster.nodes[home].get_json(&format!("/items/{id}")).await;
    assert_eq!(read["available"], 103, "100 listed and 3 added");
}

#[tokio::test]
async fn a_killed_owners_entities_answer_node_unavailable_at_once() {
    let nats = NatsServer::start();
    let mut cluster = TestCluster::start(&nats, 3).await;
    let email = format!("seller-{}@example.com", ulid_like());
    let (seller_id, token) = account(&cluster.nodes[0], &email, "seller").await;
    let home = owner_index(&cluster, "user", &seller_id).await;
    let item = cluster.nodes[home].create_item(&token, &mouse()).await;
    let id = item["id"].as_str().unwrap().to_owned();
    cluster.nodes[home].kill9();
    let other = &cluster.nodes[(home + 1) % 3];
    let started = Instant::now();
    let refused = other
        .patch(&format!("/items/{id}"), Some(&token), &json!({"price": 1}))
        .await;
    let took = started.elapsed();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let body = problem(refused).await;
    assert_eq!(body["code"], "NODE_UNAVAILABLE");
    assert_eq!(body["node"], format!("node-{}", home + 1));
    println!("503 NODE_UNAVAILABLE {took:?} after the kill");
    // Everything else keeps working.
    assert_eq!(other.get("/health", None).await.status(), StatusCode::OK);
    let fresh = format!("after-{}@example.com", ulid_like());
    let mut registered = 0;
    for _ in 0..6 {
        let email = format!("{}{fresh}", ulid_like());
        let answer = other.register(&email, "correct horse", "buyer").await;
        match answer.status() {
            StatusCode::CREATED => registered += 1,
            StatusCode::SERVICE_UNAVAILABLE => {}
            status => panic!("sign-up answered {status}"),
        }
    }
    assert!(registered > 0, "sign-ups placed on live nodes still work");
}

#[tokio::test]
async fn a_frozen_owner_answers_503_until_thawed_and_then_serves_again() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 3).await;
    let email = format!("seller-{}@example.com", ulid_like());
    let (seller_id, token) = account(&cluster.nodes[0], &email, "seller").await;
    let home = owner_index(&cluster, "user", &seller_id).await;
    let item = cluster.nodes[home].create_item(&token, &mouse()).await;
    let path = format!("/items/{}", item["id"].as_str().unwrap());
    let other = &cluster.nodes[(home + 1) % 3];
    cluster.nodes[home].freeze();
    // Frozen, it first times out (NATS has not dropped it yet), then is
    // dropped and answers nothing at once.
    let started = Instant::now();
    crate::nats::wait_until(
        "the frozen owner is refused at once",
        Duration::from_secs(30),
        || async {
            let answer = other.patch(&path, Some(&token), &json!({"price": 5})).await;
            assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
            problem(answer).await["code"] == "NODE_UNAVAILABLE"
        },
    )
    .await;
    println!(
        "frozen owner refused at once {:?} after SIGSTOP",
        started.elapsed()
    );
    cluster.nodes[home].thaw();
    crate::nats::wait_until(
        "the thawed owner serves again",
        Duration::from_secs(30),
        || async {
            let answer = other.patch(&path, Some(&token), &json!({"price": 6})).await;
            answer.status() == StatusCode::OK
        },
    )
    .await;
    assert_eq!(cluster.nodes[home].get_json(&path).await["price"], 6);
}
