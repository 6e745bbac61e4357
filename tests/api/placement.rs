//! `GET /cluster/placement/{kind}/{id}`: ids that are enough to route (a
//! buyer's cart and orders in the buyer's shard, an item's variants in the
//! item's), the endpoint's refusals, and three nodes of one cluster giving
//! the same answers.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{problem, Options, TestApp};
use crate::nats::{NatsServer, TestCluster};
use crate::shop::{server, Buyer, Shop, GOOD_CARD};

#[tokio::test]
async fn a_buyers_cart_and_the_orders_of_their_checkouts_are_placed_in_the_buyers_shard() {
    let app = server(&[]).await;
    let shop = Shop::open(&app, 999, 100).await;
    let buyer = Buyer::with_cart(&app, &shop, 1).await;
    let user = app.get("/users/me", Some(&buyer.token)).await;
    let user_id = user.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let home = app.placement("user", &user_id).await;

    assert_eq!(
        app.placement("cart", &buyer.cart_id).await["shard"],
        home["shard"]
    );
    for _ in 0..2 {
        let response = buyer.checkout(&app, GOOD_CARD).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let order_id = response.json::<Value>().await.unwrap()["orderId"]
            .as_str()
            .unwrap()
            .to_owned();
        let order = app.placement("order", &order_id).await;
        assert_eq!(order["shard"], home["shard"], "order {order_id}");
        assert_eq!(order["node"], home["node"]);
        Buyer::fill(&app, buyer.token.clone(), &shop, 1).await;
    }
}

#[tokio::test]
async fn an_items_variants_are_placed_in_the_items_shard() {
    let app = server(&[]).await;
    let seller = app.user_token("seller").await;
    let variants: Vec<Value> = (0..6)
        .map(|i| json!({"sku": format!("S{i}"), "price": 500, "quantity": 5}))
        .collect();
    let item = app
        .create_item(
            &seller,
            &json!({"name": "T-shirt", "description": "Cotton", "price": 500, "variants": variants}),
        )
        .await;
    let home = app.placement("item", item["id"].as_str().unwrap()).await;
    let variants = item["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 6);
    for variant in variants {
        let sku = app
            .placement("sku", variant["variantId"].as_str().unwrap())
            .await;
        assert_eq!(sku["shard"], home["shard"], "{variant}");
    }
}

#[tokio::test]
async fn a_lone_node_owns_every_id_and_answers_anyone() {
    let app = TestApp::spawn_with(
        Options::default()
            .env("AGORA_RATE_LIMIT_PER_SEC", "0")
            .env("AGORA_NODE_ID", "solo"),
    )
    .await;
    let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for kind in ["item", "user", "cart", "order", "checkout", "sku"] {
        let placed = app.placement(kind, id).await;
        // The id's placement key is 0xD676 = 54,902; 54,902 mod 1024 = 630.
        assert_eq!(
            placed,
            json!({"kind": kind, "id": id, "shard": 630, "node": "solo"})
        );
    }
}

#[tokio::test]
async fn an_unknown_kind_or_a_string_that_is_not_an_id_is_404_not_found() {
    let app = server(&[]).await;
    let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for path in [
        format!("/cluster/placement/wishlist/{id}"),
        "/cluster/placement/order/not-an-id".to_owned(),
        "/cluster/placement/item/01ARZ3NDEKTSV4RRFFQ69G5FA".to_owned(),
        format!("/cluster/placement/{id}"),
    ] {
        let response = app.get(&path, None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(problem(response).await["code"], "NOT_FOUND", "{path}");
    }
    let document = app.get_json("/openapi.json").await;
    let route = &document["paths"]["/cluster/placement/{kind}/{id}"]["get"];
    assert!(route["responses"]["404"].is_object(), "{route}");
}

#[tokio::test]
async fn three_nodes_of_one_cluster_place_every_id_alike_and_across_all_three() {
    let nats = NatsServer::start();
    let cluster = TestCluster::start(&nats, 3).await;
    let nodes = &cluster.nodes;
    let mut owners = std::collections::BTreeSet::new();
    for _ in 0..48 {
        let id = ulid::Ulid::new().to_string();
        let answers = [
            nodes[0].placement("order", &id).await,
            nodes[1].placement("order", &id).await,
            nodes[2].placement("order", &id).await,
        ];
        assert_eq!(answers[0], answers[1], "{id}");
        assert_eq!(answers[0], answers[2], "{id}");
        let key = (u128::from(id.parse::<ulid::Ulid>().unwrap()) >> 64) as u16;
        assert_eq!(answers[0]["shard"], u32::from(key) % 1024, "{id}");
        owners.insert(answers[0]["node"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        owners.into_iter().collect::<Vec<_>>(),
        ["node-1", "node-2", "node-3"],
        "48 random ids land on every node"
    );
}

#[tokio::test]
async fn a_guests_lines_merged_at_sign_in_land_in_a_cart_in_the_buyers_shard() {
    let app = server(&[]).await;
    let shop = Shop::open(&app, 999, 100).await;
    let guest = app
        .patch(
            "/cart",
            None,
            &json!({"itemId": shop.item_id, "quantity": 2}),
        )
        .await;
    assert_eq!(guest.status(), StatusCode::OK);
    let guest: Value = guest.json().await.unwrap();
    let email = format!("placed-{}@example.com", crate::helpers::ulid_like());
    app.register(&email, "correct horse", "buyer").await;
    let session = app
        .post(
            "/sessions",
            None,
            &json!({"email": email, "password": "correct horse", "cartToken": guest["cartToken"]}),
        )
        .await;
    assert_eq!(session.status(), StatusCode::CREATED);
    let token = session.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.get("/users/me", Some(&token)).await;
    let user_id = me.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cart = app
        .get("/cart", Some(&token))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(cart["lines"][0]["quantity"], 2, "the guest's lines merged");
    assert_ne!(cart["id"], guest["id"], "into the buyer's own cart");
    assert_eq!(
        app.placement("cart", cart["id"].as_str().unwrap()).await["shard"],
        app.placement("user", &user_id).await["shard"]
    );
}
